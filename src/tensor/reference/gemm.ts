// Reference GEMM: C = alpha * op(A) · op(B) + beta * C with plain loops and fp64 accumulation.
import type { Kernels } from '../kernels.js';

function checkDim(name: string, v: number): void {
  if (!Number.isInteger(v) || v < 0) throw new TypeError(`gemm: ${name} must be an integer >= 0`);
}

export const refGemm: Kernels['gemm'] = (transA, transB, M, N, K, alpha, A, B, beta, C) => {
  checkDim('M', M);
  checkDim('N', N);
  checkDim('K', K);
  if (A.length < M * K) throw new TypeError(`gemm: A is too short: need ${M * K}, got ${A.length}`);
  if (B.length < K * N) throw new TypeError(`gemm: B is too short: need ${K * N}, got ${B.length}`);
  if (C.length < M * N) throw new TypeError(`gemm: C is too short: need ${M * N}, got ${C.length}`);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      if (alpha !== 0) {
        for (let k = 0; k < K; k++) {
          const a = transA ? A[k * M + i]! : A[i * K + k]!;
          const b = transB ? B[j * K + k]! : B[k * N + j]!;
          s += a * b;
        }
      }
      const idx = i * N + j;
      C[idx] = beta === 0 ? alpha * s : alpha * s + beta * C[idx]!;
    }
  }
};
