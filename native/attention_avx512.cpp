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

#include "attention_vec_avx512.inc"

constexpr int NVB = 4;
constexpr int RB = 6;

}  // namespace

#define ATTN_FN(name) name##_avx512
#include "attention_impl.inc"
#include "attention_layout_impl.inc"
#undef ATTN_FN

}  // namespace mt
