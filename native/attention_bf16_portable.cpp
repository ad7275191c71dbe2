// bf16 causal attention leaf kernels, portable build: plain C++ with the arithmetic of VDPBF16PS
// (bf16 denormals as zero, exact products, the odd product added first, fp32 sums flushed to zero
// below the normal range). Never chosen automatically (a CPU without AVX512-BF16 gets an error,
// not this slow path): tests select it (setBf16Isa('portable')) to check the shared kernel body on
// any CPU.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <math.h>

#include "attention.h"

namespace mt {

#include "bf16_scalar.inc"

namespace {

#include "attention_common.inc"

struct V {
  float x[16];
};
constexpr int W = 16;

inline V vzero() { V r; for (int i = 0; i < W; ++i) r.x[i] = 0.0f; return r; }
inline V vload(const float* p) { V r; for (int i = 0; i < W; ++i) r.x[i] = p[i]; return r; }
inline void vstore(float* p, V a) { for (int i = 0; i < W; ++i) p[i] = a.x[i]; }
inline V vadd(V a, V b) { V r; for (int i = 0; i < W; ++i) r.x[i] = a.x[i] + b.x[i]; return r; }
inline V vsub(V a, V b) { V r; for (int i = 0; i < W; ++i) r.x[i] = a.x[i] - b.x[i]; return r; }
inline V vmul(V a, V b) { V r; for (int i = 0; i < W; ++i) r.x[i] = a.x[i] * b.x[i]; return r; }
inline V vfma(V a, V b, V c) { V r; for (int i = 0; i < W; ++i) r.x[i] = a.x[i] * b.x[i] + c.x[i]; return r; }
inline V vmax(V a, V b) { V r; for (int i = 0; i < W; ++i) r.x[i] = a.x[i] > b.x[i] ? a.x[i] : b.x[i]; return r; }
inline V vexp(V a) { V r; for (int i = 0; i < W; ++i) r.x[i] = expf(a.x[i]); return r; }

struct VW {
  uint32_t x[16];
};
inline VW wload(const uint32_t* p) { VW r; for (int i = 0; i < W; ++i) r.x[i] = p[i]; return r; }
inline VW wset1(uint32_t w) { VW r; for (int i = 0; i < W; ++i) r.x[i] = w; return r; }
inline float ftz(float x) { return (x < 1.17549435e-38f && x > -1.17549435e-38f) ? 0.0f * x : x; }
inline V vdot2(V acc, VW a, VW b) {
  for (int i = 0; i < W; ++i) {
    const uint32_t u = a.x[i], w = b.x[i];
    float s = ftz(acc.x[i] + f32_from_bf16_daz(static_cast<uint16_t>(u >> 16)) * f32_from_bf16_daz(static_cast<uint16_t>(w >> 16)));
    s = ftz(s + f32_from_bf16_daz(static_cast<uint16_t>(u)) * f32_from_bf16_daz(static_cast<uint16_t>(w)));
    acc.x[i] = s;
  }
  return acc;
}

inline uint32_t word(float lo, float hi) {
  return static_cast<uint32_t>(bf16_from_f32(lo)) | static_cast<uint32_t>(bf16_from_f32(hi)) << 16;
}

inline void wstore(uint32_t* p, VW w) { for (int i = 0; i < W; ++i) p[i] = w.x[i]; }
inline VW pack2(V lo, V hi) { VW r; for (int i = 0; i < W; ++i) r.x[i] = word(lo.x[i], hi.x[i]); return r; }
inline void store_half(uint32_t* p, V x) { for (int i = 0; i < W / 2; ++i) p[i] = word(x.x[2 * i], x.x[2 * i + 1]); }

void store_t(const float* src, int64_t nrows, int64_t D, float mul, float* dst, ptrdiff_t ldd) {
  transpose_out(src, nrows, D, mul, dst, ldd);
}

void words_t(const float* src, ptrdiff_t lds, int64_t nrows, int64_t nl, int64_t D, float mul, uint32_t* dst) {
  const int64_t Dw = (D + 1) / 2;
  for (int64_t dp = 0; dp < Dw; ++dp)
    for (int64_t i = 0; i < nl; ++i) {
      const float* r = src + i * lds;
      const bool in = i < nrows;
      dst[dp * BQ + i] = word(in ? mul * r[2 * dp] : 0.0f, in && 2 * dp + 1 < D ? mul * r[2 * dp + 1] : 0.0f);
    }
}

void pairs(const float* lo, const float* hi, float mul, int64_t n, int64_t nw, uint32_t* dst) {
  for (int64_t c = 0; c < nw; ++c)
    dst[c] = c < n ? word(lo ? mul * lo[c] : 0.0f, hi ? mul * hi[c] : 0.0f) : 0u;
}

void words(const float* src, float mul, int64_t n, int64_t nw, uint32_t* dst) {
  for (int64_t c = 0; c < nw; ++c)
    dst[c] = word(2 * c < n ? mul * src[2 * c] : 0.0f, 2 * c + 1 < n ? mul * src[2 * c + 1] : 0.0f);
}

}  // namespace

#define ATTNB_FN(name) name##_portable
#include "attention_bf16_impl.inc"
#undef ATTNB_FN

}  // namespace mt
