// Differentiable ops over the Kernels interface. Each op computes its forward with a kernel and,
// when a tape is active and an input needs a gradient, records a closure that accumulates the
// input gradients (always "+=", so a tensor consumed twice, like the residual stream, sums both).
//
// Buffers: with a workspace in the context (training), activations and their gradients are
// reused step after step (src/tensor/workspace.ts) and come back dirty, so every forward kernel
// here overwrites its output completely, and a gradient is written (not added) when its tensor
// has none yet. An op's backward is the last reader of its output's gradient and gives that
// buffer back at once, which keeps the backward's peak memory at what it was with fresh buffers.
import type { Kernels } from './kernels.js';
import { dequantizeBf16, Tape, Tensor } from './tensor.js';
import { attentionBackwardBf16, attentionForwardBf16, gemmBf16, gemmBf16Packed } from './bf16.js';
import type { Bf16Weights } from './bf16-weights.js';
import { Workspace } from './workspace.js';
import { profEnd, profStart } from './profile.js';

export interface OpContext {
  k: Kernels;
  /** null: inference, nothing is recorded. */
  tape: Tape | null;
  /**
   * training.precision bf16: the linear layers' GEMMs and the causal attention's products on bf16
   * operands (fp32 accumulation), those that training.bf16_ops names.
   */
  bf16?: Bf16Weights | null;
  /** Reusable buffers for this forward / backward (training); absent = fresh arrays. */
  ws?: Workspace | null;
}

function tracks(ctx: OpContext, ...inputs: (Tensor | null | undefined)[]): boolean {
  return ctx.tape !== null && inputs.some((t) => t?.requiresGrad);
}

/** A buffer of n floats with arbitrary contents (fresh and zeroed without a workspace). */
function buf(ctx: OpContext, n: number): Float32Array {
  if (ctx.ws) return ctx.ws.take(n);
  const t0 = profStart();
  const a = new Float32Array(n);
  profEnd('alloc', t0);
  return a;
}

function act(ctx: OpContext, shape: readonly number[]): Tensor {
  return new Tensor(buf(ctx, shape.reduce((a, b) => a * b, 1)), shape);
}

/** Whether t's gradient buffer may be a workspace buffer (t is an activation of this step). */
function isActivation(ctx: OpContext, t: Tensor): boolean {
  return !!ctx.ws && ctx.ws.owns(t.data);
}

/**
 * t.grad += d, where d is a dead buffer of this op: an activation without a gradient takes d
 * over, otherwise d is added (native, multithreaded) and given back.
 */
function accumulate(ctx: OpContext, t: Tensor, d: Float32Array): void {
  if (!t.requiresGrad) {
    ctx.ws?.give(d);
    return;
  }
  if (!t.grad && isActivation(ctx, t)) {
    t.grad = d;
    return;
  }
  const g = t.gradBuffer();
  ctx.k.add(g, d, g.length, g);
  ctx.ws?.give(d);
}

/** The op's output gradient is dead after its backward: back to the workspace. */
function release(ctx: OpContext, out: Tensor): void {
  if (ctx.ws && out.grad) {
    ctx.ws.give(out.grad);
    out.grad = null;
  }
}

/** out[t] = table[ids[t]] */
export function embedding(ctx: OpContext, ids: Int32Array, table: Tensor): Tensor {
  const dim = table.shape[1]!;
  const out = act(ctx, [ids.length, dim]);
  const bits = table.bf16;
  if (bits) {
    // a bf16-stored (frozen) table: gather and widen the rows (exact)
    const t0 = profStart();
    const vocab = table.shape[0]!;
    for (let i = 0; i < ids.length; i++) {
      const id = ids[i]!;
      if (!(id >= 0 && id < vocab)) throw new RangeError(`embedding: token id ${id} outside [0, ${vocab})`);
      dequantizeBf16(bits.subarray(id * dim, (id + 1) * dim), out.data.subarray(i * dim, (i + 1) * dim));
    }
    profEnd('embedding', t0);
  } else {
    ctx.k.embeddingForward(ids, table.data, dim, out.data);
  }
  if (tracks(ctx, table)) {
    out.requiresGrad = true;
    ctx.tape!.record(() => {
      if (out.grad) ctx.k.embeddingBackward(ids, out.grad, dim, table.gradBuffer());
      release(ctx, out);
    });
  }
  return out;
}

/** RMSNorm over the last dimension. */
export function rmsnorm(ctx: OpContext, x: Tensor, w: Tensor, eps: number): Tensor {
  const dim = w.size;
  const rows = x.size / dim;
  const out = act(ctx, x.shape);
  const rstd = buf(ctx, rows);
  ctx.k.rmsnormForward(x.data, w.data, rows, dim, eps, out.data, rstd);
  if (tracks(ctx, x, w)) {
    out.requiresGrad = true;
    ctx.tape!.record(() => {
      if (!out.grad) return;
      const dX = buf(ctx, x.size);
      // The kernel accumulates dW; a frozen weight gets a scratch buffer.
      const dW = w.requiresGrad ? w.gradBuffer() : buf(ctx, dim);
      ctx.k.rmsnormBackward(x.data, w.data, rstd, out.grad, rows, dim, dX, dW);
      if (!w.requiresGrad) ctx.ws?.give(dW);
      release(ctx, out);
      accumulate(ctx, x, dX);
    });
  }
  return out;
}

/**
 * y = x · Wᵀ (+ b), x [rows, in], W [out, in] (the HF / PyTorch layout). role 'lm_head': the
 * output projection, whose products training.bf16_ops names apart from the trunk's.
 */
export function linear(ctx: OpContext, x: Tensor, W: Tensor, b?: Tensor | null, role: 'trunk' | 'lm_head' = 'trunk'): Tensor {
  const [outF, inF] = W.shape as [number, number];
  const rows = x.size / inF;
  const y = act(ctx, [rows, outF]);
  // A bf16-stored frozen weight (lora.base_dtype: bf16) multiplies from its bits, packed per call
  // (no fp32 or packed copy kept); trained weights under training.precision bf16 use their packs.
  const bits = W.bf16;
  if (bits && W.requiresGrad) throw new Error('linear: a bf16-stored weight cannot be trained');
  // training.bf16_ops: which of this layer's three products take bf16 operands
  const bf = bits ? null : ctx.bf16 ?? null;
  const head = role === 'lm_head';
  const bf16Fwd = !!bf?.uses(head ? 'lm_head' : 'linear_forward');
  const bf16Dx = !!bf?.uses(head ? 'lm_head' : 'linear_input_grad');
  const bf16Dw = !!bf?.uses(head ? 'lm_head' : 'linear_weight_grad');
  if (bits) gemmBf16(false, true, rows, outF, inF, 1, x.data, bits, 0, y.data);
  else if (bf16Fwd) gemmBf16Packed(false, rows, outF, inF, 1, x.data, bf!.forward(W), 0, y.data);
  else ctx.k.gemm(false, true, rows, outF, inF, 1, x.data, W.data, 0, y.data);
  if (b) {
    const t0 = profStart();
    const bd = b.data;
    const yd = y.data;
    for (let r = 0; r < rows; r++) {
      const o = r * outF;
      for (let j = 0; j < outF; j++) yd[o + j]! += bd[j]!;
    }
    profEnd('bias', t0);
  }
  if (tracks(ctx, x, W, b)) {
    y.requiresGrad = true;
    ctx.tape!.record(() => {
      const dY = y.grad;
      if (!dY) return;
      if (x.requiresGrad) {
        // dX written into a fresh workspace buffer when x has no gradient yet (no zeroing pass).
        const fresh = !x.grad && isActivation(ctx, x);
        const dX = fresh ? buf(ctx, x.size) : x.gradBuffer();
        if (bits) gemmBf16(false, false, rows, inF, outF, 1, dY, bits, fresh ? 0 : 1, dX);
        else if (bf16Dx) gemmBf16Packed(false, rows, inF, outF, 1, dY, bf!.inputGrad(W), fresh ? 0 : 1, dX);
        else ctx.k.gemm(false, false, rows, inF, outF, 1, dY, W.data, fresh ? 0 : 1, dX);
        if (fresh) x.grad = dX;
      }
      if (W.requiresGrad) {
        // After zeroGrad() the weight gradient is overwritten (beta 0): no zero pass, no read of C.
        const g = W.gradToOverwrite();
        const dW = g ? g.buf : W.gradBuffer();
        const beta = g?.overwrite ? 0 : 1;
        if (bf16Dw) gemmBf16(true, false, outF, inF, rows, 1, dY, x.data, beta, dW);
        else ctx.k.gemm(true, false, outF, inF, rows, 1, dY, x.data, beta, dW);
      }
      if (b?.requiresGrad) {
        const t0 = profStart();
        const db = b.gradBuffer();
        for (let r = 0; r < rows; r++) {
          const o = r * outF;
          for (let j = 0; j < outF; j++) db[j]! += dY[o + j]!;
        }
        profEnd('bias', t0);
      }
      release(ctx, y);
    });
  }
  return y;
}

/** Rotate-half RoPE applied in place to x [T, nHeads*headDim]; returns x. */
export function ropeInPlace(ctx: OpContext, x: Tensor, pos: Int32Array, nHeads: number, headDim: number, invFreq: Float32Array): Tensor {
  const T = pos.length;
  ctx.k.rope(x.data, pos, T, nHeads, headDim, invFreq, 1);
  if (tracks(ctx, x)) {
    // The rotation is orthogonal: its backward is the inverse rotation of the gradient. It runs
    // before the producer of x (the q/k projection) reads x.grad, which is x's own buffer.
    ctx.tape!.record(() => {
      if (x.grad) ctx.k.rope(x.grad, pos, T, nHeads, headDim, invFreq, -1);
    });
  }
  return x;
}

export interface AttentionShape {
  batch: number;
  seq: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
}

export type Weighting = 'uniform' | 'fid' | 'vanilla';
export const WEIGHTING_CODE: Record<Weighting, number> = { uniform: 0, fid: 1, vanilla: 2 };

/** Which tokens see which (docs/design.md §2); see Kernels.attentionLayoutForward. */
export interface AttentionLayout {
  /** Global group id per token ([B*T]); a group's tokens are contiguous within one row. */
  group: Int32Array;
  /** Part per token: 0..n-1 input parts, -1 output part. */
  part: Int32Array;
  /** Per global group: number of input parts and weighting. */
  nInputs: Int32Array;
  weighting: Weighting[];
}

/**
 * For a layout whose groups all have one input (packed samples, MoI chunks): per token, the first
 * token of its group in its row (the token attends causally to [lo, itself]); null when some group
 * has several inputs (MISO), which needs the layout-aware kernel. Cached per layout object.
 */
const packedLoCache = new WeakMap<AttentionLayout, Int32Array | null>();
function packedLo(layout: AttentionLayout, B: number, T: number): Int32Array | null {
  let lo = packedLoCache.get(layout);
  if (lo !== undefined) return lo;
  lo = layout.nInputs.every((n) => n === 1) ? groupStarts(layout.group, B, T) : null;
  packedLoCache.set(layout, lo);
  return lo;
}

/** Per token of B rows of T, the row position where its group's run of tokens starts. */
export function groupStarts(group: Int32Array, B: number, T: number): Int32Array {
  const lo = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    let start = 0;
    for (let t = 0; t < T; t++) {
      if (t > 0 && group[b * T + t] !== group[b * T + t - 1]) start = t;
      lo[b * T + t] = start;
    }
  }
  return lo;
}

/**
 * Grouped-query attention over q [B*T, H*D], k/v [B*T, Hkv*D]: plain causal per row, or
 * layout-aware (packed groups, MISO inputs) when a layout is given. Under training.precision bf16
 * (ctx.bf16, with 'attention' in training.bf16_ops) the products run on bf16 operands for causal
 * rows and rows of packed one-input groups (each token sees its own group's keys); MISO layouts
 * keep the fp32 layout-aware kernel.
 */
export function attention(ctx: OpContext, q: Tensor, k: Tensor, v: Tensor, s: AttentionShape, layout?: AttentionLayout): Tensor {
  const { batch: B, seq: T, nHeads, nKvHeads, headDim } = s;
  const out = act(ctx, [B * T, nHeads * headDim]);
  const scale = 1 / Math.sqrt(headDim);
  let maxInputs = 1;
  let weighting: Int32Array | null = null;
  if (layout) {
    for (const n of layout.nInputs) maxInputs = Math.max(maxInputs, n);
    weighting = Int32Array.from(layout.weighting, (w) => WEIGHTING_CODE[w]);
  }
  const lse = buf(ctx, B * nHeads * T * maxInputs);
  // bf16 attention: plain causal rows (lo null) or packed one-input groups (lo per token).
  const bf16Lo = ctx.bf16 ? (layout ? packedLo(layout, B, T) : null) : null;
  const bf16 = !!ctx.bf16?.uses('attention') && (!layout || bf16Lo !== null);
  if (bf16) {
    attentionForwardBf16(q.data, k.data, v.data, out.data, lse, B, T, T, nHeads, nKvHeads, headDim, scale, 0, bf16Lo);
  } else if (layout) {
    ctx.k.attentionLayoutForward(q.data, k.data, v.data, out.data, lse, B, T, nHeads, nKvHeads, headDim, scale,
      layout.group, layout.part, layout.nInputs, weighting!, maxInputs);
  } else {
    ctx.k.attentionForward(q.data, k.data, v.data, out.data, lse, B, T, T, nHeads, nKvHeads, headDim, scale, 0);
  }
  if (tracks(ctx, q, k, v)) {
    out.requiresGrad = true;
    ctx.tape!.record(() => {
      if (!out.grad) return;
      const dq = buf(ctx, q.size);
      const dk = buf(ctx, k.size);
      const dv = buf(ctx, v.size);
      if (bf16) {
        attentionBackwardBf16(q.data, k.data, v.data, out.data, lse, out.grad, dq, dk, dv, B, T, nHeads, nKvHeads, headDim, scale, bf16Lo);
      } else if (layout) {
        ctx.k.attentionLayoutBackward(q.data, k.data, v.data, out.data, lse, out.grad, dq, dk, dv, B, T, nHeads, nKvHeads, headDim, scale,
          layout.group, layout.part, layout.nInputs, weighting!, maxInputs);
      } else {
        ctx.k.attentionBackward(q.data, k.data, v.data, out.data, lse, out.grad, dq, dk, dv, B, T, nHeads, nKvHeads, headDim, scale);
      }
      release(ctx, out);
      accumulate(ctx, q, dq);
      accumulate(ctx, k, dk);
      accumulate(ctx, v, dv);
    });
  }
  return out;
}

/** silu(gate) * up */
export function swiglu(ctx: OpContext, gate: Tensor, up: Tensor): Tensor {
  const out = act(ctx, gate.shape);
  ctx.k.swigluForward(gate.data, up.data, gate.size, out.data);
  if (tracks(ctx, gate, up)) {
    out.requiresGrad = true;
    ctx.tape!.record(() => {
      if (!out.grad) return;
      const dG = buf(ctx, gate.size);
      const dU = buf(ctx, up.size);
      ctx.k.swigluBackward(gate.data, up.data, out.grad, gate.size, dG, dU);
      release(ctx, out);
      accumulate(ctx, gate, dG);
      accumulate(ctx, up, dU);
    });
  }
  return out;
}

/** a + b (same shape) */
export function add(ctx: OpContext, a: Tensor, b: Tensor): Tensor {
  const out = act(ctx, a.shape);
  ctx.k.add(a.data, b.data, out.size, out.data);
  if (tracks(ctx, a, b)) {
    out.requiresGrad = true;
    ctx.tape!.record(() => {
      const g = out.grad;
      if (!g) return;
      // d(a) = d(b) = g. out.grad is dead after this: a takes it over, b gets a copy (one
      // buffer must not be two tensors' gradients: each is accumulated into separately).
      out.grad = null;
      if (b.requiresGrad) {
        const gb = buf(ctx, g.length);
        gb.set(g);
        accumulate(ctx, b, gb);
      }
      accumulate(ctx, a, g);
    });
  }
  return out;
}

export interface LossResult {
  /** Sum over labelled tokens of -log p(target). */
  sum: number;
  /** Number of labelled tokens (targets !== ignoreIndex). */
  count: number;
}

/**
 * Softmax cross-entropy of logits [N, V] against targets. When the tape is active, the
 * gradient of (sum of token losses × gradScale) is written in place into the logits buffer during
 * the forward (the fused kernel does both at once), and the backward hands it to the producer.
 */
export function crossEntropy(ctx: OpContext, logits: Tensor, targets: Int32Array, ignoreIndex: number, gradScale: number): LossResult {
  const [N, V] = logits.shape as [number, number];
  const losses = buf(ctx, N);
  const wantGrad = tracks(ctx, logits);
  ctx.k.crossEntropy(logits.data, targets, N, V, ignoreIndex, losses, wantGrad ? logits.data : null, gradScale);
  let sum = 0;
  let count = 0;
  for (let i = 0; i < N; i++) {
    if (targets[i] === ignoreIndex) continue;
    sum += losses[i]!;
    count++;
  }
  if (wantGrad) {
    ctx.tape!.record(() => {
      // logits.data now holds d(loss)/d(logits); it becomes the gradient of the logits tensor.
      if (logits.grad) ctx.k.add(logits.grad, logits.data, logits.size, logits.grad);
      else logits.grad = logits.data;
    });
  }
  return { sum, count };
}
