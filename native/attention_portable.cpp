// attention leaf kernels, portable build: plain C++ on a 4-float "vector" struct (compilers
// lower it to whatever the baseline target has); exp is the libm expf.
#include <cstdint>
#include <cstddef>
#include <math.h>

#include "attention.h"

namespace mt {
namespace {

struct V {
  float x[4];
};
constexpr int W = 4;
constexpr int NVB = 2;
constexpr int RB = 4;

inline V vzero() { V r; for (int i = 0; i < 4; ++i) r.x[i] = 0.0f; return r; }
inline V vset1(float a) { V r; for (int i = 0; i < 4; ++i) r.x[i] = a; return r; }
inline V vload(const float* p) { V r; for (int i = 0; i < 4; ++i) r.x[i] = p[i]; return r; }
inline void vstore(float* p, V a) { for (int i = 0; i < 4; ++i) p[i] = a.x[i]; }
inline V vadd(V a, V b) { V r; for (int i = 0; i < 4; ++i) r.x[i] = a.x[i] + b.x[i]; return r; }
inline V vsub(V a, V b) { V r; for (int i = 0; i < 4; ++i) r.x[i] = a.x[i] - b.x[i]; return r; }
inline V vmul(V a, V b) { V r; for (int i = 0; i < 4; ++i) r.x[i] = a.x[i] * b.x[i]; return r; }
inline V vfma(V a, V b, V c) { V r; for (int i = 0; i < 4; ++i) r.x[i] = a.x[i] * b.x[i] + c.x[i]; return r; }
inline V vmax(V a, V b) { V r; for (int i = 0; i < 4; ++i) r.x[i] = a.x[i] > b.x[i] ? a.x[i] : b.x[i]; return r; }
inline V vloadn(const float* p, int64_t n) { V r; for (int i = 0; i < 4; ++i) r.x[i] = i < n ? p[i] : 0.0f; return r; }
inline float vhsum(V a) { return (a.x[0] + a.x[1]) + (a.x[2] + a.x[3]); }
inline V vexp(V a) { V r; for (int i = 0; i < 4; ++i) r.x[i] = expf(a.x[i]); return r; }

}  // namespace

#define ATTN_FN(name) name##_portable
#include "attention_impl.inc"
#include "attention_layout_impl.inc"
#undef ATTN_FN

}  // namespace mt
