// Reference twins of the bf16 kernels (native/gemm_bf16*.cpp): plain loops, the test oracle.
// - Conversion: fp32 -> bf16 rounds to nearest even, every NaN becomes 0x7FC0, denormals are
//   rounded (PyTorch's round_to_nearest_even, bit for bit); bf16 -> fp32 is exact.
// - GEMM: C = alpha * bf16(op(A)) . bf16(op(B)) + beta * C, where fp32 operands are rounded to
//   bf16 and bf16 operands (Uint16Array) are used as they are; bf16 denormals count as zero (as
//   VDPBF16PS / TDPBF16PS treat them); the products are exact and summed in fp64 here (the native
//   kernels sum in fp32, so they agree to fp32 accumulation-order error).
// - Packed op(B) (gemmBf16PackB): NR = 32-column panels, k padded to a multiple of 32; panel p, k
//   pair kk, column c, e = 0/1 holds bf16(op(B)(2kk + e, 32p + c)) at p*32*kp + kk*64 + 2c + e.

export type Bf16Operand = Float32Array | Uint16Array;

export const BF16_NR = 32;
export const BF16_PACK_K_ALIGN = 32;

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** The bf16 bits of an fp32 value (round to nearest even; NaN -> 0x7FC0). */
export function f32ToBf16Bits(x: number): number {
  f32[0] = x;
  const u = u32[0]!;
  if ((u & 0x7fffffff) >>> 0 > 0x7f800000) return 0x7fc0;
  return ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;
}

/** The fp32 value of bf16 bits (exact). */
export function bf16BitsToF32(h: number): number {
  u32[0] = (h & 0xffff) << 16;
  return f32[0]!;
}

/** x rounded to bf16 precision, as an fp32 value. */
export function roundToBf16(x: number): number {
  return bf16BitsToF32(f32ToBf16Bits(x));
}

export function refF32ToBf16(src: Float32Array, dst: Uint16Array = new Uint16Array(src.length)): Uint16Array {
  if (dst.length < src.length) throw new TypeError(`f32ToBf16: dst is too short: need ${src.length}, got ${dst.length}`);
  for (let i = 0; i < src.length; i++) dst[i] = f32ToBf16Bits(src[i]!);
  return dst;
}

export function refBf16ToF32(src: Uint16Array, dst: Float32Array = new Float32Array(src.length)): Float32Array {
  if (dst.length < src.length) throw new TypeError(`bf16ToF32: dst is too short: need ${src.length}, got ${dst.length}`);
  // Through the bits: a JS number would not keep a NaN's payload.
  const bits = new Uint32Array(dst.buffer, dst.byteOffset, dst.length);
  for (let i = 0; i < src.length; i++) bits[i] = src[i]! << 16;
  return dst;
}

/** An operand's elements as the values a bf16 GEMM multiplies (bf16-rounded, denormals as zero). */
export function bf16GemmValues(X: Bf16Operand, n: number): Float64Array {
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const h = X instanceof Uint16Array ? X[i]! : f32ToBf16Bits(X[i]!);
    out[i] = (h & 0x7f80) === 0 ? 0 : bf16BitsToF32(h);
  }
  return out;
}

function checkDim(fn: string, name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0) throw new TypeError(`${fn}: ${name} must be an integer >= 0`);
}

export function refGemmBf16(
  transA: boolean, transB: boolean, M: number, N: number, K: number,
  alpha: number, A: Bf16Operand, B: Bf16Operand, beta: number, C: Float32Array,
): void {
  checkDim('gemmBf16', 'M', M);
  checkDim('gemmBf16', 'N', N);
  checkDim('gemmBf16', 'K', K);
  if (A.length < M * K) throw new TypeError(`gemmBf16: A is too short: need ${M * K}, got ${A.length}`);
  if (B.length < K * N) throw new TypeError(`gemmBf16: B is too short: need ${K * N}, got ${B.length}`);
  if (C.length < M * N) throw new TypeError(`gemmBf16: C is too short: need ${M * N}, got ${C.length}`);
  const a = bf16GemmValues(A, M * K);
  const b = bf16GemmValues(B, K * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      if (alpha !== 0) {
        for (let k = 0; k < K; k++) s += (transA ? a[k * M + i]! : a[i * K + k]!) * (transB ? b[j * K + k]! : b[k * N + j]!);
      }
      const idx = i * N + j;
      C[idx] = beta === 0 ? alpha * s : alpha * s + beta * C[idx]!;
    }
  }
}

export function refGemmBf16PackedSize(K: number, N: number): number {
  const kp = Math.ceil(Math.max(K, 1) / BF16_PACK_K_ALIGN) * BF16_PACK_K_ALIGN;
  return Math.ceil(N / BF16_NR) * BF16_NR * kp;
}

/** The packed op(B) layout, bit for bit what the native gemmBf16PackB writes. */
export function refGemmBf16PackB(transB: boolean, K: number, N: number, B: Bf16Operand, dst?: Uint16Array): Uint16Array {
  const size = refGemmBf16PackedSize(K, N);
  const out = dst ?? new Uint16Array(size);
  if (out.length < size) throw new TypeError(`gemmBf16PackB: dst is too short: need ${size}, got ${out.length}`);
  const kp = Math.ceil(Math.max(K, 1) / BF16_PACK_K_ALIGN) * BF16_PACK_K_ALIGN;
  const panels = Math.ceil(N / BF16_NR);
  for (let p = 0; p < panels; p++) {
    for (let k = 0; k < kp; k++) {
      const kk = k >> 1, e = k & 1;
      for (let c = 0; c < BF16_NR; c++) {
        const j = p * BF16_NR + c;
        let v = 0;
        if (j < N && k < K) {
          const idx = transB ? j * K + k : k * N + j;
          v = B instanceof Uint16Array ? B[idx]! : f32ToBf16Bits(B[idx]!);
        }
        out[p * BF16_NR * kp + kk * 2 * BF16_NR + 2 * c + e] = v;
      }
    }
  }
  return out;
}

/** gemmBf16 with a packed op(B) (K x N), by unpacking it. */
export function refGemmBf16Packed(
  transA: boolean, M: number, N: number, K: number, alpha: number, A: Bf16Operand, packedB: Uint16Array, beta: number, C: Float32Array,
): void {
  const kp = Math.ceil(Math.max(K, 1) / BF16_PACK_K_ALIGN) * BF16_PACK_K_ALIGN;
  if (packedB.length < refGemmBf16PackedSize(K, N)) throw new TypeError('gemmBf16Packed: packedB is too short');
  const B = new Uint16Array(K * N);
  for (let k = 0; k < K; k++)
    for (let j = 0; j < N; j++) {
      const p = Math.floor(j / BF16_NR), c = j % BF16_NR;
      B[k * N + j] = packedB[p * BF16_NR * kp + (k >> 1) * 2 * BF16_NR + 2 * c + (k & 1)]!;
    }
  refGemmBf16(transA, false, M, N, K, alpha, A, B, beta, C);
}
