// The plain-TypeScript reference backend: simple loops, fp64 accumulation where it helps
// clarity, no threads. It is the oracle the native kernels are tested against.
import type { Kernels } from './kernels.js';
import { refGemm } from './reference/gemm.js';
import * as ops from './reference/ops.js';
import { refAttentionForward, refAttentionBackward } from './reference/attention.js';

export const referenceKernels: Kernels = {
  name: 'reference',
  gemm: refGemm,
  embeddingForward: ops.refEmbeddingForward,
  embeddingBackward: ops.refEmbeddingBackward,
  rmsnormForward: ops.refRmsnormForward,
  rmsnormBackward: ops.refRmsnormBackward,
  rope: ops.refRope,
  swigluForward: ops.refSwigluForward,
  swigluBackward: ops.refSwigluBackward,
  attentionForward: refAttentionForward,
  attentionBackward: refAttentionBackward,
  // TODO(layout attention): replaced by the reference implementation in the layout-attention work.
  attentionLayoutForward: () => {
    throw new Error('attentionLayoutForward: not implemented yet');
  },
  attentionLayoutBackward: () => {
    throw new Error('attentionLayoutBackward: not implemented yet');
  },
  crossEntropy: ops.refCrossEntropy,
  adamw: ops.refAdamw,
};
