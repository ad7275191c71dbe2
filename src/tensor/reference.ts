// The plain-TypeScript reference backend: simple loops, fp64 accumulation where it helps
// clarity, no threads. It is the oracle the native kernels are tested against.
import type { Kernels } from './kernels.js';
import { refGemm } from './reference/gemm.js';
import * as ops from './reference/ops.js';
import { refAttentionForward, refAttentionBackward } from './reference/attention.js';
import { refAttentionLayoutForward, refAttentionLayoutBackward } from './reference/attention-layout.js';

export const referenceKernels: Kernels = {
  name: 'reference',
  gemm: refGemm,
  embeddingForward: ops.refEmbeddingForward,
  embeddingBackward: ops.refEmbeddingBackward,
  rmsnormForward: ops.refRmsnormForward,
  rmsnormBackward: ops.refRmsnormBackward,
  rope: ops.refRope,
  add: ops.refAdd,
  swigluForward: ops.refSwigluForward,
  swigluBackward: ops.refSwigluBackward,
  attentionForward: refAttentionForward,
  attentionBackward: refAttentionBackward,
  attentionLayoutForward: refAttentionLayoutForward,
  attentionLayoutBackward: refAttentionLayoutBackward,
  crossEntropy: ops.refCrossEntropy,
  adamw: ops.refAdamw,
};
