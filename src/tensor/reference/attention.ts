import type { Kernels } from '../kernels.js';
export const refAttentionForward: Kernels['attentionForward'] = () => { throw new Error('TODO'); };
export const refAttentionBackward: Kernels['attentionBackward'] = () => { throw new Error('TODO'); };
