import type { Kernels } from '../kernels.js';
export const refGemm: Kernels['gemm'] = () => { throw new Error('TODO refGemm'); };
