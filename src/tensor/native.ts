// The native backend: forwards each call to the C++ addon, which checks every array length
// and throws (never crashes) on a bad call. Argument order is exactly the Kernels interface.
import type { Kernels } from './kernels.js';
import { native } from '../native.js';

export function createNativeKernels(): Kernels {
  const n = native();
  return {
    name: 'native',
    gemm: (ta, tb, M, N, K, alpha, A, B, beta, C) => n.gemm!(ta, tb, M, N, K, alpha, A, B, beta, C),
    embeddingForward: (ids, table, dim, out) => n.embeddingForward!(ids, table, dim, out),
    embeddingBackward: (ids, dOut, dim, dTable) => n.embeddingBackward!(ids, dOut, dim, dTable),
    rmsnormForward: (x, w, rows, dim, eps, out, rstd) => n.rmsnormForward!(x, w, rows, dim, eps, out, rstd),
    rmsnormBackward: (x, w, rstd, dOut, rows, dim, dX, dW) => n.rmsnormBackward!(x, w, rstd, dOut, rows, dim, dX, dW),
    rope: (x, pos, T, nHeads, headDim, invFreq, sign) => n.rope!(x, pos, T, nHeads, headDim, invFreq, sign),
    add: (a, b, count, out) => n.add!(a, b, count, out),
    swigluForward: (gate, up, count, out) => n.swigluForward!(gate, up, count, out),
    swigluBackward: (gate, up, dOut, count, dGate, dUp) => n.swigluBackward!(gate, up, dOut, count, dGate, dUp),
    attentionForward: (q, k, v, out, lse, B, Tq, Tk, nH, nKv, D, scale, qOffset) =>
      n.attentionForward!(q, k, v, out, lse, B, Tq, Tk, nH, nKv, D, scale, qOffset),
    attentionBackward: (q, k, v, out, lse, dOut, dq, dk, dv, B, T, nH, nKv, D, scale) =>
      n.attentionBackward!(q, k, v, out, lse, dOut, dq, dk, dv, B, T, nH, nKv, D, scale),
    attentionLayoutForward: (q, k, v, out, stats, B, T, nH, nKv, D, scale, group, part, nInputs, weighting, maxInputs) =>
      n.attentionLayoutForward!(q, k, v, out, stats, B, T, nH, nKv, D, scale, group, part, nInputs, weighting, maxInputs),
    attentionLayoutBackward: (q, k, v, out, stats, dOut, dq, dk, dv, B, T, nH, nKv, D, scale, group, part, nInputs, weighting, maxInputs) =>
      n.attentionLayoutBackward!(q, k, v, out, stats, dOut, dq, dk, dv, B, T, nH, nKv, D, scale, group, part, nInputs, weighting, maxInputs),
    crossEntropy: (logits, targets, N, V, ignoreIndex, losses, dLogits, gradScale) =>
      n.crossEntropy!(logits, targets, N, V, ignoreIndex, losses, dLogits, gradScale),
    adamw: (p, g, m, v, count, lr, b1, b2, eps, wd, step) => n.adamw!(p, g, m, v, count, lr, b1, b2, eps, wd, step),
  };
}

let instance: Kernels | null = null;
/** The process-wide native backend (loads the addon on first use; throws if it is not built). */
export function nativeKernels(): Kernels {
  if (!instance) instance = createNativeKernels();
  return instance;
}
