// ops leaf kernels, portable build: plain C++ (no intrinsics). The "vector" is a struct of 8
// floats whose fixed-size loops the compiler turns into whatever SIMD the baseline target has
// (SSE2 on x86-64, NEON on arm64); 8 lanes also give the reductions 8 partial sums. exp is
// libm's expf. The kernel bodies are in ops_impl.inc.
#include <math.h>

#include <cstddef>
#include <cstdint>

#include "ops.h"

#define MT_OPS_NS ops_portable
#define MT_OPS_HAVE_VEXP 1

namespace mt {
namespace ops_portable {
namespace {

enum { W = 8 };
struct vf {
  float v[W];
};

#define MT_LANES(expr) \
  vf r;                \
  for (int k = 0; k < W; ++k) r.v[k] = (expr); \
  return r

inline vf vzero() { MT_LANES(0.0f); }
inline vf vset1(float a) { MT_LANES(a); }
inline vf vload(const float* p) { MT_LANES(p[k]); }
inline vf vload_part(const float* p, int64_t n, float fill) { MT_LANES(k < n ? p[k] : fill); }
inline void vstore(float* p, vf a) {
  for (int k = 0; k < W; ++k) p[k] = a.v[k];
}
inline void vstore_part(float* p, vf a, int64_t n) {
  for (int k = 0; k < n; ++k) p[k] = a.v[k];
}
inline vf vadd(vf a, vf b) { MT_LANES(a.v[k] + b.v[k]); }
inline vf vsub(vf a, vf b) { MT_LANES(a.v[k] - b.v[k]); }
inline vf vmul(vf a, vf b) { MT_LANES(a.v[k] * b.v[k]); }
inline vf vdiv(vf a, vf b) { MT_LANES(a.v[k] / b.v[k]); }
inline vf vfma(vf a, vf b, vf c) { MT_LANES(a.v[k] * b.v[k] + c.v[k]); }
inline vf vfnma(vf a, vf b, vf c) { MT_LANES(c.v[k] - a.v[k] * b.v[k]); }
// Same NaN behaviour as the x86 instructions: the second operand when unordered.
inline vf vmax(vf a, vf b) { MT_LANES(a.v[k] > b.v[k] ? a.v[k] : b.v[k]); }
inline vf vmin(vf a, vf b) { MT_LANES(a.v[k] < b.v[k] ? a.v[k] : b.v[k]); }
inline vf vsqrt(vf a) { MT_LANES(sqrtf(a.v[k])); }
inline vf vexp(vf a) { MT_LANES(expf(a.v[k])); }
inline float hsum(vf a) {
  float s[4];
  for (int k = 0; k < 4; ++k) s[k] = a.v[k] + a.v[k + 4];
  return (s[0] + s[2]) + (s[1] + s[3]);
}
inline float hmax(vf a) {
  float m = a.v[0];
  for (int k = 1; k < W; ++k) m = m > a.v[k] ? m : a.v[k];
  return m;
}

#undef MT_LANES

}  // namespace
}  // namespace ops_portable
}  // namespace mt

#include "ops_impl.inc"
