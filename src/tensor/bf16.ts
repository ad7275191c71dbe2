// bf16 matmuls (bf16 operands, fp32 accumulation) and fp32 <-> bf16 conversion: the native kernels
// of native/gemm_bf16*.cpp behind a typed API. Reference twins: src/tensor/reference/bf16.ts.
//
// Implementations, chosen at load time (like the fp32 ISA): 'amx' (AMX-BF16 tiles; untested on the
// development machine), 'avx512bf16' (VDPBF16PS), 'portable' (plain C++, same arithmetic; never
// chosen automatically: tests select it with setBf16Impl('portable') or MIXTUNE_BF16=portable) and
// 'none'. On a CPU without bf16 instructions the GEMMs throw (code ENOBF16) naming what is missing
// -- a caller asking for bf16 never silently gets a slow path. Callers check once up front with
// requireBf16() for a one-line user-facing error. The conversions work on every CPU.
//
// Use in a training step (master weights stay fp32): once per optimizer step, for each weight
// W [out, in] pack op(B) for the forward (Y = X W^T: packBf16B(true, in, out, W)) and for the
// input gradient (dX = dY W: packBf16B(false, out, in, W)) into buffers reused across steps; the
// weight gradient dW (+)= dY^T X uses gemmBf16(true, false, out, in, T, 1, dY, X, 1, dW) on the
// fp32 activations (rounded while packed).
import { native } from '../native.js';
import { MixtuneError } from '../util/errors.js';
import { timed, timedGemm } from './profile.js';
import type { Bf16Operand } from './reference/bf16.js';

export type { Bf16Operand } from './reference/bf16.js';
export type Bf16Impl = 'amx' | 'avx512bf16' | 'portable' | 'none';

export interface Bf16Support {
  /** The CPU has AVX512-BF16 (with AVX-512 F/VL/DQ/BW enabled by the OS). */
  avx512bf16: boolean;
  /** The CPU has AMX-TILE + AMX-BF16 and the OS granted the tile state. */
  amxBf16: boolean;
  /** What the CPU's best bf16 path is ('none' without bf16 instructions). */
  best: Bf16Impl;
  /** What a bf16 GEMM uses now. */
  current: Bf16Impl;
  available: boolean;
  /** Why current is 'none' (empty otherwise). */
  reason: string;
}

export function bf16Support(): Bf16Support {
  return native().bf16Info() as Bf16Support;
}

/** True when bf16 GEMMs run (current implementation is not 'none'). */
export function hasBf16(): boolean {
  return bf16Support().available;
}

/** Throws a one-line MixtuneError when bf16 GEMMs cannot run, naming the missing instructions. */
export function requireBf16(what = 'bf16 precision'): void {
  const s = bf16Support();
  if (!s.available) throw new MixtuneError(`${what} is unavailable: ${s.reason}`);
}

/** Selects the implementation ('auto' = the CPU's best); throws if the CPU cannot run it. */
export function setBf16Impl(impl: Bf16Impl | 'auto'): void {
  native().setBf16Isa(impl);
}

/** fp32 -> bf16 bits, round to nearest even, NaN -> 0x7FC0, denormals kept (PyTorch's rounding). */
export function f32ToBf16(src: Float32Array, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  native().f32ToBf16(src, dst);
  return dst;
}

/** bf16 bits -> fp32 (exact). */
export function bf16ToF32(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  native().bf16ToF32(src, dst);
  return dst;
}

/**
 * C = alpha * bf16(op(A)) . bf16(op(B)) + beta * C with fp32 accumulation; shapes, transposes and
 * beta as Kernels.gemm. A and B are each fp32 (rounded to bf16 while packed) or bf16 bits.
 */
export function gemmBf16(
  transA: boolean, transB: boolean, M: number, N: number, K: number,
  alpha: number, A: Bf16Operand, B: Bf16Operand, beta: number, C: Float32Array,
): void {
  const t = `bf16 ${transA ? 't' : 'n'}${transB ? 't' : 'n'}`;
  timedGemm('gemm_bf16', t, M, N, K, () => native().gemmBf16(transA, transB, M, N, K, alpha, A, B, beta, C));
}

/**
 * op(B) (K x N) packed once into the GEMM's panel layout, for reuse by many gemmBf16Packed calls
 * (a weight packed once per optimizer step). The layout is the same for every implementation.
 */
export class PackedBf16 {
  readonly K: number;
  readonly N: number;
  /** The packed bf16 panels (a 64-byte aligned view). */
  readonly data: Uint16Array;

  constructor(K: number, N: number) {
    const size = native().gemmBf16PackedSize(K, N) as number;
    const raw = new Uint16Array(size + 32);
    const off = native().bf16AlignOffset(raw) as number;
    this.K = K;
    this.N = N;
    this.data = raw.subarray(off, off + size);
  }

  /** Packs op(B) (transB: B is N x K, else K x N) into this buffer. */
  pack(transB: boolean, B: Bf16Operand): this {
    timed('pack_bf16', () => native().gemmBf16PackB(transB, this.K, this.N, B, this.data));
    return this;
  }
}

/** Packs op(B) (K x N) into `reuse` when its shape matches, else into a new buffer. */
export function packBf16B(transB: boolean, K: number, N: number, B: Bf16Operand, reuse?: PackedBf16): PackedBf16 {
  const p = reuse && reuse.K === K && reuse.N === N ? reuse : new PackedBf16(K, N);
  return p.pack(transB, B);
}

/** gemmBf16 with a prepacked op(B): C = alpha * bf16(op(A)) . B + beta * C (B.K = K, B.N = N). */
export function gemmBf16Packed(
  transA: boolean, M: number, N: number, K: number, alpha: number, A: Bf16Operand, B: PackedBf16, beta: number, C: Float32Array,
): void {
  if (B.K !== K || B.N !== N) throw new TypeError(`gemmBf16Packed: packed B is ${B.K}x${B.N}, the call needs ${K}x${N}`);
  const t = `bf16 ${transA ? 't' : 'n'}p`;
  timedGemm('gemm_bf16', t, M, N, K, () => native().gemmBf16Packed(transA, M, N, K, alpha, A, B.data, beta, C));
}

/**
 * Causal grouped-query attention with bf16 products (training.precision bf16): arguments and
 * shapes exactly as Kernels.attentionForward. The products QKᵀ and PV take bf16 operands
 * (scale·q, k, v and the probabilities rounded to nearest even) with fp32 accumulation; the
 * online softmax, lse and the output normalization stay fp32 (native/attention.h; reference twin:
 * src/tensor/reference/attention-bf16.ts). Throws (code ENOBF16) where bf16 GEMMs cannot run.
 * lo (optional, Int32Array [B*Tq]): query i sees keys [lo[i], qOffset + i] — rows packed with
 * several samples, each attending causally within its own span; absent = plain causal rows.
 */
export function attentionForwardBf16(
  q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, lse: Float32Array,
  B: number, Tq: number, Tk: number, nHeads: number, nKvHeads: number, headDim: number, scale: number, qOffset: number,
  lo?: Int32Array | null,
): void {
  timed('attention', () => native().attentionForwardBf16(q, k, v, out, lse, B, Tq, Tk, nHeads, nKvHeads, headDim, scale, qOffset, lo ?? null));
}

/**
 * Backward of attentionForwardBf16 (as Kernels.attentionBackward): the five products (dP = dO·Vᵀ,
 * S = QKᵀ recomputed, dV = Pᵀ·dO, dK = dSᵀ·Q, dQ = dS·K) on bf16 operands (P and dS rounded), with
 * fp32 accumulation; P, Delta and dS = P (dP − Delta) are computed in fp32.
 */
export function attentionBackwardBf16(
  q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, lse: Float32Array, dOut: Float32Array,
  dq: Float32Array, dk: Float32Array, dv: Float32Array,
  B: number, T: number, nHeads: number, nKvHeads: number, headDim: number, scale: number, lo?: Int32Array | null,
): void {
  timed('attention', () => native().attentionBackwardBf16(q, k, v, out, lse, dOut, dq, dk, dv, B, T, nHeads, nKvHeads, headDim, scale, lo ?? null));
}
