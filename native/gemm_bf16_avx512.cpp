// bf16 GEMM leaf kernels on AVX512-BF16 (VDPBF16PS: 16 fp32 lanes += two bf16 products each, twice
// the FLOPs of a VFMADD231PS), and the fp32 <-> bf16 conversions on AVX-512 F+BW.
// Microkernel 14 x 32: 28 zmm accumulators, 2 zmm of B words per k pair, A words broadcast from
// memory. Packing converts fp32 operands on the fly (integer round-to-nearest-even, the same bits
// as f32_to_bf16) and interleaves k pairs with shifts (k-strided sources) or 16x16 word transposes
// (k-contiguous sources).
#pragma GCC target("avx512f,avx512vl,avx512dq,avx512bw,avx512bf16,fma")
// GCC 12 reports false "may be used uninitialized" inside avx512fintrin.h (_mm512_undefined_*).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "gemm_bf16.h"



namespace mt {

#include "bf16_scalar.inc"

namespace {

constexpr int MR = kBf16MrAvx512;
constexpr int NR = kBf16Nr;
static_assert(MR <= 16, "A micro-panels are built from one 16x16 word transpose");

#include "bf16_avx512.inc"

// k-contiguous pack of up to 16 rows (row l at src + l*ld elements, l < nrows; k offset already
// applied) over kc values into dst[kk*dst_stride + l] (words), kk < kcp/2, for l < width (masked
// store of `width` words). Rows past nrows are zero.
static void pack_rows_kcontig(const void* src, bool f32, int64_t ld, int64_t nrows, int64_t kc, int64_t kcp,
                              uint32_t* dst, int64_t dst_stride, int width) {
  const int64_t nkk = kcp / 2;
  const size_t esz = f32 ? 4 : 2;
  const char* base = static_cast<const char*>(src);
  const __mmask16 sm = mask16(width);
  for (int64_t kb = 0; kb < nkk; kb += 16) {
    const int64_t k0 = 2 * kb;
    __m512i r[16];
    for (int l = 0; l < 16; ++l)
      r[l] = (l < nrows && k0 < kc) ? words_row(base + (static_cast<size_t>(l * ld + k0)) * esz, f32, kc - k0)
                                    : _mm512_setzero_si512();
    transpose16(r);
    const int64_t tn = nkk - kb < 16 ? nkk - kb : 16;
    for (int64_t t = 0; t < tn; ++t) _mm512_mask_storeu_epi32(dst + (kb + t) * dst_stride, sm, r[t]);
  }
}

// k-strided pack of ceil(cols / width) panels: word (kk, c) of panel q = op(k = 2kk, 2kk+1;
// column q*width + c) for q*width + c < cols, where element (k, col) is at src + k*ld + col; it goes
// to dst[q*panel_words + kk*width + c], kk < kcp/2; k >= kc and columns >= cols are zero. The k
// pairs are the outer loop, so the source is read along its rows (two rows at a time) once.
static void pack_kstrided(const void* src, bool f32, int64_t ld, int64_t cols, int64_t kc, int64_t kcp, uint32_t* dst,
                          int64_t panel_words, int width) {
  const int64_t nkk = kcp / 2;
  const int64_t panels = (cols + width - 1) / width;
  const size_t esz = f32 ? 4 : 2;
  const char* base = static_cast<const char*>(src);
  for (int64_t kk = 0; kk < nkk; ++kk) {
    const int64_t k = 2 * kk;
    const char* r0 = k < kc ? base + static_cast<size_t>(k * ld) * esz : nullptr;
    const char* r1 = k + 1 < kc ? base + static_cast<size_t>((k + 1) * ld) * esz : nullptr;
    for (int64_t q = 0; q < panels; ++q) {
      uint32_t* d = dst + q * panel_words + kk * width;
      for (int g = 0; g < width; g += 16) {
        const int gw = width - g < 16 ? width - g : 16;
        const int64_t c0 = q * width + g;
        __m512i w = _mm512_setzero_si512();
        if (r0 && c0 < cols)
          w = words_interleave(r0 + static_cast<size_t>(c0) * esz, r1 ? r1 + static_cast<size_t>(c0) * esz : nullptr, f32,
                               cols - c0 < gw ? cols - c0 : gw);
        _mm512_mask_storeu_epi32(d + g, mask16(gw), w);
      }
    }
  }
}

}  // namespace

void gemm_bf16_pack_a_avx512bf16(const void* A, bool a_f32, int64_t lda, bool transA, int64_t i0, int64_t mc,
                                 int64_t p0, int64_t kc, int64_t kcp, uint16_t* dst) {
  const size_t esz = a_f32 ? 4 : 2;
  const char* a = static_cast<const char*>(A);
  if (transA) {
    // op(A)(i, k) = A[k*lda + i]: element (k, i) at A + (p0 + k)*lda + i0 + i
    pack_kstrided(a + static_cast<size_t>(p0 * lda + i0) * esz, a_f32, lda, mc, kc, kcp, reinterpret_cast<uint32_t*>(dst),
                  MR * kcp / 2, MR);
    return;
  }
  for (int64_t ip = 0; ip < mc; ip += MR) {
    const int64_t rows = mc - ip < MR ? mc - ip : MR;
    uint32_t* d = reinterpret_cast<uint32_t*>(dst + (ip / MR) * MR * kcp);
    // op(A)(i, k) = A[i*lda + k]: rows contiguous in k
    pack_rows_kcontig(a + static_cast<size_t>((i0 + ip) * lda + p0) * esz, a_f32, lda, rows, kc, kcp, d, MR, MR);
  }
}

void gemm_bf16_pack_b_avx512bf16(const void* B, bool b_f32, int64_t ldb, bool transB, int64_t p0, int64_t kc,
                                 int64_t kcp, int64_t j0, int64_t nc, uint16_t* dst, int64_t pstride) {
  const size_t esz = b_f32 ? 4 : 2;
  const char* b = static_cast<const char*>(B);
  if (!transB) {
    // op(B)(k, j) = B[k*ldb + j]
    pack_kstrided(b + static_cast<size_t>(p0 * ldb + j0) * esz, b_f32, ldb, nc, kc, kcp, reinterpret_cast<uint32_t*>(dst),
                  pstride / 2, NR);
    return;
  }
  for (int64_t jp = 0; jp < nc; jp += NR) {
    const int64_t cols = nc - jp < NR ? nc - jp : NR;
    uint32_t* d = reinterpret_cast<uint32_t*>(dst + (jp / NR) * pstride);
    // op(B)(k, j) = B[j*ldb + k]: rows of B contiguous in k, 16 columns per transpose
    for (int g = 0; g < NR; g += 16)
      pack_rows_kcontig(b + static_cast<size_t>((j0 + jp + g) * ldb + p0) * esz, b_f32, ldb, cols - g, kc, kcp, d + g, NR, 16);
  }
}

namespace {

// Full MR x NR tile over nkk k pairs: C = alpha * acc + beta * C (beta == 0: C is not read).
// The A word (k pair) of row r is broadcast into a register once and used by both dot products:
// on Zen 5 this measured ~15% faster than embedded {1to16} broadcasts in each instruction (which
// the fp32 kernel uses), i.e. half the load-port traffic wins over the saved broadcast uops.
static inline void ukernel(int64_t nkk, const uint16_t* __restrict pa, const uint16_t* __restrict pb, float* __restrict C,
                           int64_t ldc, float alpha, float beta) {
  __m512 acc[MR][2];
#pragma GCC unroll 32
  for (int r = 0; r < MR; ++r) acc[r][0] = acc[r][1] = _mm512_setzero_ps();
#pragma GCC unroll 32
  for (int r = 0; r < MR; ++r) {
    __builtin_prefetch(C + r * ldc, 1, 3);
    __builtin_prefetch(C + r * ldc + NR - 1, 1, 3);
  }
  const float* a = reinterpret_cast<const float*>(pa);  // one 32-bit word (a k pair) per row
  for (int64_t kk = 0; kk < nkk; ++kk) {
    const __m512 b0 = _mm512_loadu_ps(pb), b1 = _mm512_loadu_ps(pb + 32);
    // The B panel comes from memory on the first A micro-panel of a sweep (a prepacked B is not
    // L2 resident): prefetching 8 k pairs (1 KiB) ahead measured ~5% faster on Zen 5.
    __builtin_prefetch(pb + 8 * 2 * NR, 0, 3);
    __builtin_prefetch(pb + 8 * 2 * NR + 32, 0, 3);
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r) {
      const __m512bh av = (__m512bh)_mm512_set1_ps(a[r]);
      acc[r][0] = _mm512_dpbf16_ps(acc[r][0], av, (__m512bh)b0);
      acc[r][1] = _mm512_dpbf16_ps(acc[r][1], av, (__m512bh)b1);
    }
    a += MR;
    pb += 2 * NR;
  }
  const __m512 va = _mm512_set1_ps(alpha);
  if (beta == 0.0f) {
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < 2; ++v) _mm512_storeu_ps(C + r * ldc + 16 * v, _mm512_mul_ps(va, acc[r][v]));
  } else if (beta == 1.0f) {
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < 2; ++v) {
        float* c = C + r * ldc + 16 * v;
        _mm512_storeu_ps(c, _mm512_fmadd_ps(va, acc[r][v], _mm512_loadu_ps(c)));
      }
  } else {
    const __m512 vb = _mm512_set1_ps(beta);
#pragma GCC unroll 32
    for (int r = 0; r < MR; ++r)
      for (int v = 0; v < 2; ++v) {
        float* c = C + r * ldc + 16 * v;
        _mm512_storeu_ps(c, _mm512_fmadd_ps(va, acc[r][v], _mm512_mul_ps(vb, _mm512_loadu_ps(c))));
      }
  }
}

}  // namespace

void gemm_bf16_macro_avx512bf16(int64_t mc, int64_t nc, int64_t kcp, const uint16_t* pa, const uint16_t* pb,
                                int64_t pb_stride, float* C, int64_t ldc, float alpha, float beta) {
  alignas(64) float tmp[MR * NR];
  const int64_t nkk = kcp / 2;
  // B panels outer, A micro-panels inner: one B panel (kcp x 32 bf16) stays in L1 while the A block
  // (L2 resident) is swept past it, so a prepacked B streams from memory once per A block.
  for (int64_t jp = 0; jp < nc; jp += NR) {
    const int64_t cols = nc - jp < NR ? nc - jp : NR;
    const uint16_t* b = pb + (jp / NR) * pb_stride;
    for (int64_t ip = 0; ip < mc; ip += MR) {
      const int64_t rows = mc - ip < MR ? mc - ip : MR;
      const uint16_t* a = pa + (ip / MR) * MR * kcp;
      float* c = C + ip * ldc + jp;
      if (rows == MR && cols == NR) {
        ukernel(nkk, a, b, c, ldc, alpha, beta);
      } else {
        ukernel(nkk, a, b, tmp, NR, 1.0f, 0.0f);
        for (int64_t r = 0; r < rows; ++r)
          for (int64_t q = 0; q < cols; ++q) {
            float* cc = c + r * ldc + q;
            *cc = beta == 0.0f ? alpha * tmp[r * NR + q] : alpha * tmp[r * NR + q] + beta * *cc;
          }
      }
    }
  }
}

void f32_to_bf16_avx512(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i r = _mm512_srli_epi32(rne_hi(_mm512_loadu_ps(src + i)), 16);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(dst + i), _mm512_cvtepi32_epi16(r));
  }
  if (i < n) {
    const __mmask16 m = mask16(n - i);
    const __m512i r = _mm512_srli_epi32(rne_hi(_mm512_maskz_loadu_ps(m, src + i)), 16);
    _mm512_mask_cvtepi32_storeu_epi16(dst + i, m, r);
  }
}

void bf16_to_f32_avx512(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i h = _mm512_cvtepu16_epi32(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + i)));
    _mm512_storeu_ps(dst + i, _mm512_castsi512_ps(_mm512_slli_epi32(h, 16)));
  }
  if (i < n) {
    const __mmask16 m = mask16(n - i);
    const __m512i h = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, src + i));
    _mm512_mask_storeu_ps(dst + i, m, _mm512_castsi512_ps(_mm512_slli_epi32(h, 16)));
  }
}

double peak_dpbf16_avx512(int64_t iters, float seed, double* flops_out) {
  const __m512bh m = (__m512bh)_mm512_set1_epi32(0x3A833A83);  // bf16 ~1e-3 in both halves
  __m512 a[16];
  for (int j = 0; j < 16; ++j) a[j] = _mm512_set1_ps(seed + j);
  const __m512bh x = (__m512bh)_mm512_set1_epi32(0x3F803F80);  // 1.0, 1.0
  for (int64_t i = 0; i < iters; ++i) {
#pragma GCC unroll 16
    for (int j = 0; j < 16; ++j) a[j] = _mm512_dpbf16_ps(a[j], m, x);
  }
  *flops_out = static_cast<double>(iters) * 16 * 16 * 4;
  __m512 s = a[0];
  for (int j = 1; j < 16; ++j) s = _mm512_add_ps(s, a[j]);
  alignas(64) float t[16];
  _mm512_store_ps(t, s);
  double r = 0;
  for (int j = 0; j < 16; ++j) r += t[j];
  return r;
}

}  // namespace mt
