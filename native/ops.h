// Leaf kernels of the "ops" family (embedding, RMSNorm, RoPE, SwiGLU, cross-entropy, AdamW).
// Plain declarations only: this header is included by the ISA translation units
// (ops_avx512.cpp, ops_avx2.cpp, ops_portable.cpp), which must not see any inline code.
// Every function works on a [begin, end) range of rows / elements; the generic TU (ops.cpp)
// validates the arguments, splits the work with parallel_for and dispatches on current_isa().
#pragma once
#include <cstddef>
#include <cstdint>

#define MT_OPS_LEAF_DECLS                                                                                        \
  /* out[t, :] = table[ids[t], :] for t in [t0, t1). */                                                          \
  void embed_fwd(const int32_t* ids, const float* table, int64_t dim, float* out, int64_t t0, int64_t t1);       \
  /* dtable[ids[t], c] += dout[t, c] for all t in [0, T) and columns c in [c0, c1). */                           \
  void embed_bwd(const int32_t* ids, const float* dout, int64_t T, int64_t dim, float* dtable, int64_t c0,       \
                 int64_t c1);                                                                                    \
  void rmsnorm_fwd(const float* x, const float* w, int64_t dim, double eps, float* out, float* rstd, int64_t r0, \
                   int64_t r1);                                                                                  \
  /* dx rows [r0, r1) written; dw[c] += sum over those rows (dw is per-block scratch or dW). */                  \
  void rmsnorm_bwd(const float* x, const float* w, const float* rstd, const float* dout, int64_t dim, float* dx, \
                   float* dw, int64_t r0, int64_t r1);                                                           \
  void rope(float* x, const int32_t* pos, int64_t n_heads, int64_t head_dim, const float* inv_freq, float sign,  \
            int64_t t0, int64_t t1);                                                                             \
  /* out[i] = a[i] + b[i] for i in [i0, i1); out may alias a or b. */                                           \
  void add(const float* a, const float* b, float* out, int64_t i0, int64_t i1);                                \
  void swiglu_fwd(const float* g, const float* u, float* out, int64_t i0, int64_t i1);                          \
  void swiglu_bwd(const float* g, const float* u, const float* dout, float* dg, float* du, int64_t i0,          \
                  int64_t i1);                                                                                   \
  /* Rows [r0, r1) of the fused softmax + cross-entropy; dl may be null or equal to logits. */                   \
  void cross_entropy(const float* logits, const int32_t* targets, int64_t V, int64_t ignore_index,              \
                     float* losses, float* dl, float grad_scale, int64_t r0, int64_t r1);                        \
  /* c = {beta1, 1-beta1, beta2, 1-beta2, 1/(1-beta1^t), 1/(1-beta2^t), eps, lr, lr*wd} */                     \
  void adamw(float* p, const float* g, float* m, float* v, const float* c, int64_t i0, int64_t i1);             \
  /* y = exp(x) with this build's vectorized exp (exposed for the accuracy test). */                             \
  void exp_vec(const float* x, float* y, int64_t n);

namespace mt {
namespace ops_avx512 {
MT_OPS_LEAF_DECLS
}
namespace ops_avx2 {
MT_OPS_LEAF_DECLS
}
namespace ops_portable {
MT_OPS_LEAF_DECLS
}
}  // namespace mt
