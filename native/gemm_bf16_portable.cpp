// bf16 GEMM, portable build: plain C++ with the same packed layouts and the same arithmetic
// definition as the hardware paths (bf16 denormals as zero, exact products, fp32 sums). It is never
// chosen automatically: a CPU without AVX512-BF16 / AMX-BF16 gets an error from gemmBf16, not this
// slow path. It is selected explicitly (setBf16Isa('portable') / MIXTUNE_BF16=portable) by the
// tests, and defines the results of a bf16 GEMM on any CPU. The conversions are here too (they
// need no bf16 instructions and are used on every CPU).
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "gemm_bf16.h"

namespace mt {

#include "bf16_scalar.inc"

namespace {
constexpr int MR = kBf16MrPortable;
constexpr int NR = kBf16Nr;
static inline float ftz(float x) { return (x < 1.17549435e-38f && x > -1.17549435e-38f) ? 0.0f * x : x; }
}  // namespace

void gemm_bf16_pack_a_portable(const void* A, bool a_f32, int64_t lda, bool transA, int64_t i0, int64_t mc, int64_t p0,
                               int64_t kc, int64_t kcp, uint16_t* dst) {
  for (int64_t ip = 0; ip < mc; ip += MR) {
    uint16_t* d = dst + (ip / MR) * MR * kcp;
    for (int64_t k = 0; k < kcp; ++k) {
      const int64_t kk = k >> 1, e = k & 1;
      for (int r = 0; r < MR; ++r) {
        const int64_t i = ip + r;
        d[kk * 2 * MR + 2 * r + e] = (i < mc && k < kc) ? bf16_elem(A, a_f32, lda, transA, i0 + i, p0 + k) : 0;
      }
    }
  }
}

void gemm_bf16_pack_b_portable(const void* B, bool b_f32, int64_t ldb, bool transB, int64_t p0, int64_t kc,
                               int64_t kcp, int64_t j0, int64_t nc, uint16_t* dst, int64_t pstride) {
  for (int64_t jp = 0; jp < nc; jp += NR) {
    uint16_t* d = dst + (jp / NR) * pstride;
    for (int64_t k = 0; k < kcp; ++k) {
      const int64_t kk = k >> 1, e = k & 1;
      for (int c = 0; c < NR; ++c) {
        const int64_t j = jp + c;
        // op(B)(k, j) = transB ? B[j*ldb + k] : B[k*ldb + j]
        d[kk * 2 * NR + 2 * c + e] = (j < nc && k < kc) ? bf16_elem(B, b_f32, ldb, !transB, j0 + j, p0 + k) : 0;
      }
    }
  }
}

void gemm_bf16_macro_portable(int64_t mc, int64_t nc, int64_t kcp, const uint16_t* pa, const uint16_t* pb,
                              int64_t pb_stride, float* C, int64_t ldc, float alpha, float beta) {
  const int64_t nkk = kcp / 2;
  for (int64_t ip = 0; ip < mc; ip += MR) {
    const int64_t rows = mc - ip < MR ? mc - ip : MR;
    const uint16_t* a = pa + (ip / MR) * MR * kcp;
    for (int64_t jp = 0; jp < nc; jp += NR) {
      const int64_t cols = nc - jp < NR ? nc - jp : NR;
      const uint16_t* b = pb + (jp / NR) * pb_stride;
      float acc[MR][NR];
      for (int r = 0; r < MR; ++r)
        for (int c = 0; c < NR; ++c) acc[r][c] = 0.0f;
      for (int64_t kk = 0; kk < nkk; ++kk) {
        float bv[2][NR], av[2][MR];
        for (int c = 0; c < NR; ++c) {
          bv[0][c] = f32_from_bf16_daz(b[kk * 2 * NR + 2 * c]);
          bv[1][c] = f32_from_bf16_daz(b[kk * 2 * NR + 2 * c + 1]);
        }
        for (int r = 0; r < MR; ++r) {
          av[0][r] = f32_from_bf16_daz(a[kk * 2 * MR + 2 * r]);
          av[1][r] = f32_from_bf16_daz(a[kk * 2 * MR + 2 * r + 1]);
        }
        for (int r = 0; r < MR; ++r)
          for (int c = 0; c < NR; ++c) {
            // As VDPBF16PS: both products are exact in fp32 (8-bit significands), the odd one is
            // added first, each sum rounded to nearest even, denormal sums flushed to zero.
            acc[r][c] = ftz(acc[r][c] + av[1][r] * bv[1][c]);
            acc[r][c] = ftz(acc[r][c] + av[0][r] * bv[0][c]);
          }
      }
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t c = 0; c < cols; ++c) {
          float* cc = C + (ip + r) * ldc + jp + c;
          *cc = beta == 0.0f ? alpha * acc[r][c] : alpha * acc[r][c] + beta * *cc;
        }
    }
  }
}

void f32_to_bf16_portable(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = bf16_from_f32(src[i]);
}

void bf16_to_f32_portable(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = f32_from_bf16(src[i]);
}

}  // namespace mt
