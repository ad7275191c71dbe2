// gemm leaf kernels, portable build: plain C++ (fixed-size lane arrays the compiler vectorizes for
// the baseline target, e.g. SSE2 on x86-64 or NEON on arm64).
#include <cstddef>
#include <cstdint>

#include "gemm.h"

namespace mt {

namespace {
constexpr int VL = 4;
struct V {
  float v[VL];
};
static inline V vzero() { V r; for (int i = 0; i < VL; ++i) r.v[i] = 0.0f; return r; }
static inline V vloadu(const float* p) { V r; for (int i = 0; i < VL; ++i) r.v[i] = p[i]; return r; }
static inline V vload(const float* p) { return vloadu(p); }
static inline void vstoreu(float* p, V a) { for (int i = 0; i < VL; ++i) p[i] = a.v[i]; }
static inline void vstore(float* p, V a) { vstoreu(p, a); }
static inline V vbcast(float x) { V r; for (int i = 0; i < VL; ++i) r.v[i] = x; return r; }
static inline V vfma(V a, V b, V c) { V r; for (int i = 0; i < VL; ++i) r.v[i] = a.v[i] * b.v[i] + c.v[i]; return r; }
static inline V vmul(V a, V b) { V r; for (int i = 0; i < VL; ++i) r.v[i] = a.v[i] * b.v[i]; return r; }
static inline V vadd(V a, V b) { V r; for (int i = 0; i < VL; ++i) r.v[i] = a.v[i] + b.v[i]; return r; }
static inline float vhsum(V a) { return (a.v[0] + a.v[1]) + (a.v[2] + a.v[3]); }
}  // namespace

#define MT_SUF portable
#define MT_MR 4
#define MT_NR 8
#define MT_SK_S1 8
#define MT_SK_S2 4
#include "gemm_impl.inc"
#undef MT_SK_S1
#undef MT_SK_S2
#undef MT_SUF
#undef MT_MR
#undef MT_NR

double peak_fma_portable(int64_t iters, float seed, double* flops_out) {
  float a[8][VL];
  for (int j = 0; j < 8; ++j)
    for (int l = 0; l < VL; ++l) a[j][l] = seed + j + l;
  const float m = 0.9999999f, c = 1e-7f;
  for (int64_t i = 0; i < iters; ++i)
    for (int j = 0; j < 8; ++j)
      for (int l = 0; l < VL; ++l) a[j][l] = a[j][l] * m + c;
  *flops_out = static_cast<double>(iters) * 8 * VL * 2;
  double s = 0;
  for (int j = 0; j < 8; ++j)
    for (int l = 0; l < VL; ++l) s += a[j][l];
  return s;
}

}  // namespace mt
