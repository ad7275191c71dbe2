// gemm leaf kernels, AVX-512 build (14x32 zmm microkernel: 28 accumulators + 2 B vectors + 1 broadcast).
#pragma GCC target("avx512f,avx512vl,avx512dq,avx512bw,fma")
#include <immintrin.h>
#include <cstddef>
#include <cstdint>

#include "gemm.h"

namespace mt {

namespace {
typedef __m512 V;
constexpr int VL = 16;
static inline V vzero() { return _mm512_setzero_ps(); }
static inline V vload(const float* p) { return _mm512_load_ps(p); }
static inline V vloadu(const float* p) { return _mm512_loadu_ps(p); }
static inline void vstore(float* p, V v) { _mm512_store_ps(p, v); }
static inline void vstoreu(float* p, V v) { _mm512_storeu_ps(p, v); }
static inline V vbcast(float x) { return _mm512_set1_ps(x); }
static inline V vfma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
static inline V vmul(V a, V b) { return _mm512_mul_ps(a, b); }
static inline V vadd(V a, V b) { return _mm512_add_ps(a, b); }
static inline float vhsum(V v) {
  // (not _mm512_reduce_add_ps: GCC 12's version trips -Wmaybe-uninitialized)
  __m256 h = _mm256_add_ps(_mm512_extractf32x8_ps(v, 0), _mm512_extractf32x8_ps(v, 1));
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(h), _mm256_extractf128_ps(h, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
  return _mm_cvtss_f32(s);
}
}  // namespace

#define MT_SUF avx512
#define MT_MR 14
#define MT_NR 32
#define MT_AVX_PACK 1
#define MT_UKERNEL_FMA_BCAST 1
#define MT_SK_S1 16
#define MT_SK_S2 12
#include "gemm_impl.inc"
#undef MT_SK_S1
#undef MT_SK_S2
#undef MT_AVX_PACK
#undef MT_SUF
#undef MT_MR
#undef MT_NR

double peak_fma_avx512(int64_t iters, float seed, double* flops_out) {
  const __m512 m = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-7f);
  __m512 a0 = _mm512_set1_ps(seed), a1 = _mm512_set1_ps(seed + 1), a2 = _mm512_set1_ps(seed + 2),
         a3 = _mm512_set1_ps(seed + 3), a4 = _mm512_set1_ps(seed + 4), a5 = _mm512_set1_ps(seed + 5),
         a6 = _mm512_set1_ps(seed + 6), a7 = _mm512_set1_ps(seed + 7), a8 = _mm512_set1_ps(seed + 8),
         a9 = _mm512_set1_ps(seed + 9), a10 = _mm512_set1_ps(seed + 10), a11 = _mm512_set1_ps(seed + 11);
  for (int64_t i = 0; i < iters; ++i) {
    a0 = _mm512_fmadd_ps(a0, m, c); a1 = _mm512_fmadd_ps(a1, m, c); a2 = _mm512_fmadd_ps(a2, m, c);
    a3 = _mm512_fmadd_ps(a3, m, c); a4 = _mm512_fmadd_ps(a4, m, c); a5 = _mm512_fmadd_ps(a5, m, c);
    a6 = _mm512_fmadd_ps(a6, m, c); a7 = _mm512_fmadd_ps(a7, m, c); a8 = _mm512_fmadd_ps(a8, m, c);
    a9 = _mm512_fmadd_ps(a9, m, c); a10 = _mm512_fmadd_ps(a10, m, c); a11 = _mm512_fmadd_ps(a11, m, c);
  }
  *flops_out = static_cast<double>(iters) * 12 * 16 * 2;
  __m512 s = _mm512_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)),
                           _mm512_add_ps(_mm512_add_ps(a4, a5), _mm512_add_ps(a6, a7)));
  s = _mm512_add_ps(s, _mm512_add_ps(_mm512_add_ps(a8, a9), _mm512_add_ps(a10, a11)));
  return vhsum(s);
}

// 256-bit FMAs with the 32 registers AVX-512VL gives (16 chains).
double peak_fma_avx512y(int64_t iters, float seed, double* flops_out) {
  const __m256 m = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
  __m256 a[16];
  for (int j = 0; j < 16; ++j) a[j] = _mm256_set1_ps(seed + j);
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < 16; ++j) a[j] = _mm256_fmadd_ps(a[j], m, c);
  }
  *flops_out = static_cast<double>(iters) * 16 * 8 * 2;
  __m256 s = a[0];
  for (int j = 1; j < 16; ++j) s = _mm256_add_ps(s, a[j]);
  float t[8];
  _mm256_storeu_ps(t, s);
  return t[0] + t[1] + t[2] + t[3] + t[4] + t[5] + t[6] + t[7];
}

}  // namespace mt
