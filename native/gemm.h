// fp32 GEMM and FMA-peak leaf kernels: plain declarations only (this header is included by the
// ISA-specific translation units, so it must not contain inline code).
//
// Design (BLIS/GotoBLAS style): the generic TU (gemm.cpp) splits C into independent tiles, one
// tile per parallel_for item. A tile is computed over K in KC-deep slices: op(A) rows are packed
// into MR-row micro-panels (k-major, MR floats per k, zero padded), op(B) columns into NR-column
// micro-panels (k-major, NR floats per k, zero padded); transposes are handled entirely by the
// packing routines, so every ISA has one register-blocked microkernel.
#pragma once
#include <cstddef>
#include <cstdint>

namespace mt {

// Register-block shapes of each ISA's microkernel.
enum : int {
  kGemmMrAvx512 = 14, kGemmNrAvx512 = 32,
  kGemmMrAvx2 = 6, kGemmNrAvx2 = 16,
  kGemmMrPortable = 4, kGemmNrPortable = 8,
};

// Packs rows [i0, i0+mc) x k-range [p0, p0+kc) of op(A) into ceil(mc/MR) micro-panels of MR*kc
// floats each (dst[panel*MR*kc + k*MR + r]); rows past mc are zero.
// op(A)(i,k) = transA ? A[k*lda + i] : A[i*lda + k].
// Packs k-range [p0, p0+kc) x columns [j0, j0+nc) of op(B) into ceil(nc/NR) micro-panels of NR*kc
// floats each (dst[panel*NR*kc + k*NR + c]); columns past nc are zero.
// op(B)(k,j) = transB ? B[j*ldb + k] : B[k*ldb + j].
// Macro kernel: C[0:mc, 0:nc] (row stride ldc) = alpha * packA * packB + beta * C, where
// beta == 0 never reads C.
#define MT_GEMM_DECLARE(SUF)                                                                          \
  void gemm_pack_a_##SUF(const float* A, int64_t lda, bool transA, int64_t i0, int64_t mc, int64_t p0, \
                         int64_t kc, float* dst);                                                     \
  void gemm_pack_b_##SUF(const float* B, int64_t ldb, bool transB, int64_t p0, int64_t kc, int64_t j0, \
                         int64_t nc, float* dst);                                                     \
  void gemm_macro_##SUF(int64_t mc, int64_t nc, int64_t kc, const float* pa, const float* pb, float* C, \
                        int64_t ldc, float alpha, float beta);                                        \
  /* y[n] = alpha * sum_k W[n*ldw + k] * x[k] + beta * y[n] for n in [n0, n1) (beta 0: overwrite) */  \
  void gemv_dot_##SUF(const float* W, int64_t ldw, const float* x, int64_t K, int64_t n0, int64_t n1,  \
                      float alpha, float beta, float* y);                                             \
  /* y[n] = alpha * sum_k x[k] * W[k*ldw + n] + beta * y[n] for n in [n0, n1) */                      \
  void gemv_axpy_##SUF(const float* W, int64_t ldw, const float* x, int64_t K, int64_t n0, int64_t n1, \
                       float alpha, float beta, float* y);                                           \
  /* Skinny block: C(s, j) = alpha * sum_k Sp[s*ss + k*sk] * X[k*xs + j] + beta * C(s, j) for s < ns, */ \
  /* j < nx <= 2 vectors; C(s, j) at C[s*ldc + j] (row_out) or C[j*ldc + s]. X readable to 2 vectors. */ \
  void gemm_skinny_##SUF(int64_t K, const float* Sp, int64_t ss, int64_t sk, int64_t ns, const float* X,  \
                         int64_t xs, int64_t nx, float* C, int64_t ldc, bool row_out, float alpha, float beta);

MT_GEMM_DECLARE(avx512)
MT_GEMM_DECLARE(avx2)
MT_GEMM_DECLARE(portable)

// FMA peak loops: run `iters` iterations of a register-resident loop of independent FMA chains
// (returns a value derived from all accumulators so the loop cannot be removed). *flops_out
// receives the number of floating-point operations performed (2 per lane per FMA).
double peak_fma_avx512(int64_t iters, float seed, double* flops_out);  // 512-bit (zmm) FMAs
double peak_fma_avx512y(int64_t iters, float seed, double* flops_out); // 256-bit FMAs, 32 regs
double peak_fma_avx2(int64_t iters, float seed, double* flops_out);    // 256-bit (ymm) FMAs
double peak_fma_portable(int64_t iters, float seed, double* flops_out);

}  // namespace mt
