// attention leaf kernels, AVX-512 build (16 floats per vector, 6 x 4-vector register tiles).
#pragma GCC target("avx512f,avx512vl,avx512dq,avx512bw,fma")
// GCC 12 reports false "may be used uninitialized" inside avx512fintrin.h (_mm512_undefined_*).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <cstdint>
#include <cstddef>
#include <math.h>

#include "attention.h"

namespace mt {
namespace {

typedef __m512 V;
constexpr int W = 16;
constexpr int NVB = 4;
constexpr int RB = 6;

inline V vzero() { return _mm512_setzero_ps(); }
inline V vset1(float x) { return _mm512_set1_ps(x); }
inline V vload(const float* p) { return _mm512_loadu_ps(p); }
inline void vstore(float* p, V x) { _mm512_storeu_ps(p, x); }
inline V vadd(V a, V b) { return _mm512_add_ps(a, b); }
inline V vsub(V a, V b) { return _mm512_sub_ps(a, b); }
inline V vmul(V a, V b) { return _mm512_mul_ps(a, b); }
inline V vfma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
inline V vmax(V a, V b) { return _mm512_max_ps(a, b); }
// First n (< W) floats of p, zeros elsewhere; never touches memory past p[n-1].
inline V vloadn(const float* p, int64_t n) { return _mm512_maskz_loadu_ps(static_cast<__mmask16>((1u << n) - 1u), p); }
inline float vhsum(V a) { return _mm512_reduce_add_ps(a); }

// exp(x): x = n ln2 + r, |r| <= ln2/2 (Cody-Waite split of ln2), e^r by the Cephes degree-7
// polynomial (relative error ~1e-7), 2^n through the exponent bits. Inputs below -87 (including
// -inf) give exactly 0; inputs above 88 are clamped (never reached here: scores are <= max).
inline V vexp(V x) {
  const __mmask16 tiny = _mm512_cmp_ps_mask(x, _mm512_set1_ps(-87.0f), _CMP_LT_OQ);
  x = _mm512_min_ps(_mm512_max_ps(x, _mm512_set1_ps(-87.0f)), _mm512_set1_ps(88.0f));
  V n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  V r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
  V y = _mm512_set1_ps(1.9875691500e-4f);
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.3981999507e-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073e-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894e-2f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459e-1f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201e-1f));
  y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  __m512i e = _mm512_slli_epi32(_mm512_add_epi32(_mm512_cvtps_epi32(n), _mm512_set1_epi32(127)), 23);
  y = _mm512_mul_ps(y, _mm512_castsi512_ps(e));
  return _mm512_mask_blend_ps(tiny, y, _mm512_setzero_ps());
}

}  // namespace

#define ATTN_FN(name) name##_avx512
#include "attention_impl.inc"
#include "attention_layout_impl.inc"
#undef ATTN_FN

}  // namespace mt
