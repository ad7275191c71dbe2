// bf16 causal attention leaf kernels on AVX512-BF16: the products are VDPBF16PS (16 fp32 lanes +=
// two bf16 products each), the softmax is the fp32 AVX-512 code of the fp32 kernels
// (attention_vec_avx512.inc), and the fp32 -> bf16 word conversions use the integer
// VCVTNE(2)PS2BF16 (a 16x16 word transpose of bf16_avx512.inc for the Q^T / dO^T tiles).
#pragma GCC target("avx512f,avx512vl,avx512dq,avx512bw,avx512bf16,fma")
// GCC 12 reports false "may be used uninitialized" inside avx512fintrin.h (_mm512_undefined_*).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <cstddef>
#include <cstdint>
#include <math.h>

#include "attention.h"

namespace mt {
namespace {

#include "attention_vec_avx512.inc"
#include "attention_common.inc"
#include "bf16_avx512.inc"

typedef __m512i VW;
inline VW wload(const uint32_t* p) { return _mm512_loadu_si512(p); }
inline VW wset1(uint32_t w) { return _mm512_set1_epi32(static_cast<int>(w)); }
inline V vdot2(V acc, VW a, VW b) { return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b); }

inline void wstore(uint32_t* p, VW w) { _mm512_storeu_si512(p, w); }

// VCVTNE2PS2BF16 rounds to nearest even like bf16_from_f32; it treats denormals as zero, which
// VDPBF16PS would do to them anyway.
// word c = (lo[c], hi[c]).
inline VW pack2(V lo, V hi) {
  const __m512i x = (__m512i)_mm512_cvtne2ps_pbh(hi, lo);  // bf16 lo[0..15], hi[0..15]
  const __m512i idx = _mm512_set_epi16(31, 15, 30, 14, 29, 13, 28, 12, 27, 11, 26, 10, 25, 9, 24, 8, 23, 7, 22, 6, 21, 5, 20,
                                       4, 19, 3, 18, 2, 17, 1, 16, 0);
  return _mm512_permutexvar_epi16(idx, x);
}
// 8 words (x[2c], x[2c+1]).
inline void store_half(uint32_t* p, V x) { _mm256_storeu_si256(reinterpret_cast<__m256i*>(p), (__m256i)_mm512_cvtneps_pbh(x)); }

// The first `avail` floats of p (times mul) as 16 words, zero beyond; never reads past p[avail-1].
inline __m512i words32(const float* p, int64_t avail, const __m512 mul) {
  const __m512 lo = _mm512_mul_ps(_mm512_maskz_loadu_ps(mask16(avail), p), mul);
  const __m512 hi = _mm512_mul_ps(_mm512_maskz_loadu_ps(mask16(avail - 16), p + 16), mul);
  return (__m512i)_mm512_cvtne2ps_pbh(hi, lo);
}

// dst[i*ldd + d] = mul * src[d*BQ + i] for i < nrows, d < D: 16x16 blocks through registers (the
// scalar transpose_out of attention_common.inc costs as much as a key tile's softmax).
void store_t(const float* src, int64_t nrows, int64_t D, float mul, float* dst, ptrdiff_t ldd) {
  const __m512 m = _mm512_set1_ps(mul);
  for (int64_t i0 = 0; i0 < nrows; i0 += 16) {
    const int64_t ni = nrows - i0 < 16 ? nrows - i0 : 16;
    for (int64_t d0 = 0; d0 < D; d0 += 16) {
      const int64_t nd = D - d0 < 16 ? D - d0 : 16;
      __m512i r[16];
      for (int x = 0; x < 16; ++x)
        r[x] = x < nd ? _mm512_castps_si512(_mm512_mul_ps(_mm512_loadu_ps(src + (d0 + x) * BQ + i0), m)) : _mm512_setzero_si512();
      transpose16(r);
      for (int64_t ii = 0; ii < ni; ++ii) _mm512_mask_storeu_epi32(dst + (i0 + ii) * ldd + d0, mask16(nd), r[ii]);
    }
  }
}

void words_t(const float* src, ptrdiff_t lds, int64_t nrows, int64_t nl, int64_t D, float mul, uint32_t* dst) {
  const __m512 m = _mm512_set1_ps(mul);
  const int64_t Dw = (D + 1) / 2;
  for (int64_t i0 = 0; i0 < nl; i0 += 16) {
    for (int64_t c0 = 0; c0 < D; c0 += 32) {
      __m512i r[16];
      for (int l = 0; l < 16; ++l)
        r[l] = i0 + l < nrows ? words32(src + (i0 + l) * lds + c0, D - c0, m) : _mm512_setzero_si512();
      transpose16(r);
      const int64_t nt = Dw - c0 / 2 < 16 ? Dw - c0 / 2 : 16;
      for (int64_t t = 0; t < nt; ++t) _mm512_storeu_si512(dst + (c0 / 2 + t) * BQ + i0, r[t]);
    }
  }
}

void pairs(const float* lo, const float* hi, float mul, int64_t n, int64_t nw, uint32_t* dst) {
  const __m512 m = _mm512_set1_ps(mul);
  for (int64_t c = 0; c < nw; c += 16) {
    const __mmask16 ld = mask16(n - c);
    const __m512 l = lo ? _mm512_mul_ps(_mm512_maskz_loadu_ps(ld, lo + c), m) : _mm512_setzero_ps();
    const __m512 h = hi ? _mm512_mul_ps(_mm512_maskz_loadu_ps(ld, hi + c), m) : _mm512_setzero_ps();
    _mm512_mask_storeu_epi32(dst + c, mask16(nw - c), pack2(l, h));
  }
}

void words(const float* src, float mul, int64_t n, int64_t nw, uint32_t* dst) {
  const __m512 m = _mm512_set1_ps(mul);
  for (int64_t c = 0; c < nw; c += 16) _mm512_mask_storeu_epi32(dst + c, mask16(nw - c), words32(src + 2 * c, n - 2 * c, m));
}

}  // namespace

#define ATTNB_FN(name) name##_avx512bf16
#include "attention_bf16_impl.inc"
#undef ATTNB_FN

}  // namespace mt
