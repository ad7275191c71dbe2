// Differentiable ops over the Kernels interface. Each op computes its forward with a kernel and,
// when a tape is active and an input needs a gradient, records a closure that accumulates the
// input gradients (always "+=", so a tensor consumed twice, like the residual stream, sums both).
import type { Kernels } from './kernels.js';
import { Tape, Tensor } from './tensor.js';
import { gemmBf16, gemmBf16Packed } from './bf16.js';
import type { Bf16Weights } from './bf16-weights.js';

export interface OpContext {
  k: Kernels;
  /** null: inference, nothing is recorded. */
  tape: Tape | null;
  /** training.precision bf16: the linear layers' GEMMs on bf16 operands (fp32 accumulation). */
  bf16?: Bf16Weights | null;
}

function tracks(ctx: OpContext, ...inputs: (Tensor | null | undefined)[]): boolean {
  return ctx.tape !== null && inputs.some((t) => t?.requiresGrad);
}

function addInto(dst: Float32Array, src: Float32Array): void {
  for (let i = 0; i < dst.length; i++) dst[i]! += src[i]!;
}

/** out[t] = table[ids[t]] */
export function embedding(ctx: OpContext, ids: Int32Array, table: Tensor): Tensor {
  const dim = table.shape[1]!;
  const out = Tensor.zeros([ids.length, dim]);
  ctx.k.embeddingForward(ids, table.data, dim, out.data);
  if (tracks(ctx, table)) {
    out.requiresGrad = true;
    ctx.tape!.record(() => {
      if (out.grad) ctx.k.embeddingBackward(ids, out.grad, dim, table.gradBuffer());
    });
  }
  return out;
}

/** RMSNorm over the last dimension. */
export function rmsnorm(ctx: OpContext, x: Tensor, w: Tensor, eps: number): Tensor {
  const dim = w.size;
  const rows = x.size / dim;
  const out = Tensor.zeros(x.shape);
  const rstd = new Float32Array(rows);
  ctx.k.rmsnormForward(x.data, w.data, rows, dim, eps, out.data, rstd);
  if (tracks(ctx, x, w)) {
    out.requiresGrad = true;
    ctx.tape!.record(() => {
      if (!out.grad) return;
      const dX = new Float32Array(x.size);
      // The kernel accumulates dW; a frozen weight gets a scratch buffer.
      const dW = w.requiresGrad ? w.gradBuffer() : new Float32Array(dim);
      ctx.k.rmsnormBackward(x.data, w.data, rstd, out.grad, rows, dim, dX, dW);
      if (x.requiresGrad) {
        if (x.grad) addInto(x.grad, dX);
        else x.grad = dX;
      }
    });
  }
  return out;
}

/** y = x · Wᵀ (+ b), x [rows, in], W [out, in] (the HF / PyTorch layout). */
export function linear(ctx: OpContext, x: Tensor, W: Tensor, b?: Tensor | null): Tensor {
  const [outF, inF] = W.shape as [number, number];
  const rows = x.size / inF;
  const y = Tensor.zeros([rows, outF]);
  const packs = ctx.bf16?.of(W);
  if (packs) gemmBf16Packed(false, rows, outF, inF, 1, x.data, packs.fwd, 0, y.data);
  else ctx.k.gemm(false, true, rows, outF, inF, 1, x.data, W.data, 0, y.data);
  if (b) {
    const bd = b.data;
    const yd = y.data;
    for (let r = 0; r < rows; r++) {
      const o = r * outF;
      for (let j = 0; j < outF; j++) yd[o + j]! += bd[j]!;
    }
  }
  if (tracks(ctx, x, W, b)) {
    y.requiresGrad = true;
    ctx.tape!.record(() => {
      const dY = y.grad;
      if (!dY) return;
      if (packs) {
        if (x.requiresGrad) gemmBf16Packed(false, rows, inF, outF, 1, dY, packs.bwd, 1, x.gradBuffer());
        if (W.requiresGrad) gemmBf16(true, false, outF, inF, rows, 1, dY, x.data, 1, W.gradBuffer());
      } else {
        if (x.requiresGrad) ctx.k.gemm(false, false, rows, inF, outF, 1, dY, W.data, 1, x.gradBuffer());
        if (W.requiresGrad) ctx.k.gemm(true, false, outF, inF, rows, 1, dY, x.data, 1, W.gradBuffer());
      }
      if (b?.requiresGrad) {
        const db = b.gradBuffer();
        for (let r = 0; r < rows; r++) {
          const o = r * outF;
          for (let j = 0; j < outF; j++) db[j]! += dY[o + j]!;
        }
      }
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
 * Grouped-query attention over q [B*T, H*D], k/v [B*T, Hkv*D]: plain causal per row, or
 * layout-aware (packed groups, MISO inputs) when a layout is given.
 */
export function attention(ctx: OpContext, q: Tensor, k: Tensor, v: Tensor, s: AttentionShape, layout?: AttentionLayout): Tensor {
  const { batch: B, seq: T, nHeads, nKvHeads, headDim } = s;
  const out = Tensor.zeros([B * T, nHeads * headDim]);
  const scale = 1 / Math.sqrt(headDim);
  let maxInputs = 1;
  let weighting: Int32Array | null = null;
  if (layout) {
    for (const n of layout.nInputs) maxInputs = Math.max(maxInputs, n);
    weighting = Int32Array.from(layout.weighting, (w) => WEIGHTING_CODE[w]);
  }
  const lse = new Float32Array(B * nHeads * T * maxInputs);
  if (layout) {
    ctx.k.attentionLayoutForward(q.data, k.data, v.data, out.data, lse, B, T, nHeads, nKvHeads, headDim, scale,
      layout.group, layout.part, layout.nInputs, weighting!, maxInputs);
  } else {
    ctx.k.attentionForward(q.data, k.data, v.data, out.data, lse, B, T, T, nHeads, nKvHeads, headDim, scale, 0);
  }
  if (tracks(ctx, q, k, v)) {
    out.requiresGrad = true;
    ctx.tape!.record(() => {
      if (!out.grad) return;
      const dq = new Float32Array(q.size);
      const dk = new Float32Array(k.size);
      const dv = new Float32Array(v.size);
      if (layout) {
        ctx.k.attentionLayoutBackward(q.data, k.data, v.data, out.data, lse, out.grad, dq, dk, dv, B, T, nHeads, nKvHeads, headDim, scale,
          layout.group, layout.part, layout.nInputs, weighting!, maxInputs);
      } else {
        ctx.k.attentionBackward(q.data, k.data, v.data, out.data, lse, out.grad, dq, dk, dv, B, T, nHeads, nKvHeads, headDim, scale);
      }
      for (const [t, d] of [[q, dq], [k, dk], [v, dv]] as const) {
        if (!t.requiresGrad) continue;
        if (t.grad) addInto(t.grad, d);
        else t.grad = d;
      }
    });
  }
  return out;
}

/** silu(gate) * up */
export function swiglu(ctx: OpContext, gate: Tensor, up: Tensor): Tensor {
  const out = Tensor.zeros(gate.shape);
  ctx.k.swigluForward(gate.data, up.data, gate.size, out.data);
  if (tracks(ctx, gate, up)) {
    out.requiresGrad = true;
    ctx.tape!.record(() => {
      if (!out.grad) return;
      const dG = new Float32Array(gate.size);
      const dU = new Float32Array(up.size);
      ctx.k.swigluBackward(gate.data, up.data, out.grad, gate.size, dG, dU);
      if (gate.requiresGrad) {
        if (gate.grad) addInto(gate.grad, dG);
        else gate.grad = dG;
      }
      if (up.requiresGrad) {
        if (up.grad) addInto(up.grad, dU);
        else up.grad = dU;
      }
    });
  }
  return out;
}

/** a + b (same shape) */
export function add(ctx: OpContext, a: Tensor, b: Tensor): Tensor {
  const out = Tensor.zeros(a.shape);
  const o = out.data;
  const ad = a.data;
  const bd = b.data;
  for (let i = 0; i < o.length; i++) o[i] = ad[i]! + bd[i]!;
  if (tracks(ctx, a, b)) {
    out.requiresGrad = true;
    ctx.tape!.record(() => {
      const g = out.grad;
      if (!g) return;
      // The first consumer to need a gradient may take over the buffer: out.grad is dead after this.
      let shared = false;
      for (const t of [a, b]) {
        if (!t.requiresGrad) continue;
        if (t.grad) addInto(t.grad, g);
        else if (!shared) {
          t.grad = g;
          shared = true;
        } else t.grad = g.slice();
      }
      out.grad = null;
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
  const losses = new Float32Array(N);
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
      if (logits.grad) addInto(logits.grad, logits.data);
      else logits.grad = logits.data;
    });
  }
  return { sum, count };
}
