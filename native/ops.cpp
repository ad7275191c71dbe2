// Node-API glue of the "ops" kernel family: argument validation, work splitting with
// parallel_for, and dispatch to the leaf kernels of the current ISA (ops_{avx512,avx2,portable}.cpp).
//
// Exports (argument order = the Kernels interface in src/tensor/kernels.ts):
//   embeddingForward(ids, table, dim, out)
//   embeddingBackward(ids, dOut, dim, dTable)
//   rmsnormForward(x, w, rows, dim, eps, out, rstd)
//   rmsnormBackward(x, w, rstd, dOut, rows, dim, dX, dW)
//   rope(x, pos, T, nHeads, headDim, invFreq, sign)
//   add(a, b, n, out)
//   swigluForward(gate, up, n, out)
//   swigluBackward(gate, up, dOut, n, dGate, dUp)
//   crossEntropy(logits, targets, N, V, ignoreIndex, losses, dLogits|null, gradScale)
//   adamw(p, g, m, v, n, lr, beta1, beta2, eps, weightDecay, step)
//   _opsExp(x, y)  -- test hook: y = the current ISA's vectorized exp(x)
// Every size is checked against the typed-array lengths and every id/target against its range,
// so a bad call throws a TypeError and never touches memory out of bounds.
//
// Threading: work below ~16K elements runs inline on the calling thread (decode of a tiny model
// must not pay for waking the pool). Reductions that cross rows (dW of RMSNorm, the embedding
// scatter-add) are split by a fixed partition that depends only on the shapes, never on the
// thread count or scheduling, so results are deterministic.
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "cpu.h"
#include "napi_util.h"
#include "ops.h"
#include "threadpool.h"

namespace mt {

namespace {

constexpr int64_t kGrain = 16384;  // elements of work per parallel chunk (and inline threshold)

struct OpsLeaf {
  decltype(&ops_portable::embed_fwd) embed_fwd;
  decltype(&ops_portable::embed_bwd) embed_bwd;
  decltype(&ops_portable::rmsnorm_fwd) rmsnorm_fwd;
  decltype(&ops_portable::rmsnorm_bwd) rmsnorm_bwd;
  decltype(&ops_portable::rope) rope;
  decltype(&ops_portable::add) add;
  decltype(&ops_portable::swiglu_fwd) swiglu_fwd;
  decltype(&ops_portable::swiglu_bwd) swiglu_bwd;
  decltype(&ops_portable::cross_entropy) cross_entropy;
  decltype(&ops_portable::adamw) adamw;
  decltype(&ops_portable::exp_vec) exp_vec;
};

#define MT_OPS_TABLE(NS)                                                                              \
  OpsLeaf {                                                                                           \
    NS::embed_fwd, NS::embed_bwd, NS::rmsnorm_fwd, NS::rmsnorm_bwd, NS::rope, NS::add, NS::swiglu_fwd, \
        NS::swiglu_bwd, NS::cross_entropy, NS::adamw, NS::exp_vec                                     \
  }

const OpsLeaf kAvx512 = MT_OPS_TABLE(ops_avx512);
const OpsLeaf kAvx2 = MT_OPS_TABLE(ops_avx2);
const OpsLeaf kPortable = MT_OPS_TABLE(ops_portable);

const OpsLeaf& leaf() {
  switch (current_isa()) {
    case Isa::avx512: return kAvx512;
    case Isa::avx2: return kAvx2;
    default: return kPortable;
  }
}

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
int64_t max64(int64_t a, int64_t b) { return a > b ? a : b; }
int64_t min64(int64_t a, int64_t b) { return a < b ? a : b; }

// a * b, throwing when the product cannot be a valid array length.
int64_t checked_mul(const Napi::Env& env, const char* fn, int64_t a, int64_t b) {
  int64_t r;
  if (__builtin_mul_overflow(a, b, &r) || r > (int64_t{1} << 53)) throw arg_error(env, fn, "sizes are too large");
  return r;
}

// Element count of the typed array at i (its type was already checked by f32_arg / i32_arg).
int64_t length_of(const Napi::CallbackInfo& info, size_t i) {
  return static_cast<int64_t>(info[i].As<Napi::TypedArray>().ElementLength());
}

// Byte range [begin, end) of the typed array at i.
void byte_range(const Napi::CallbackInfo& info, size_t i, uintptr_t* b, uintptr_t* e) {
  Napi::TypedArray ta = info[i].As<Napi::TypedArray>();
  *b = reinterpret_cast<uintptr_t>(static_cast<uint8_t*>(ta.ArrayBuffer().Data()) + ta.ByteOffset());
  *e = *b + ta.ByteLength();
}

void check_ids(const Napi::Env& env, const char* fn, const int32_t* ids, int64_t n, int64_t vocab) {
  for (int64_t t = 0; t < n; ++t) {
    if (ids[t] < 0 || ids[t] >= vocab)
      throw arg_error(env, fn, "ids[" + std::to_string(t) + "] = " + std::to_string(ids[t]) + " is outside [0, " +
                                   std::to_string(vocab) + ")");
  }
}

// ---------------------------------------------------------------------------------------------

Napi::Value EmbeddingForward(const Napi::CallbackInfo& info) {
  const char* fn = "embeddingForward";
  Napi::Env env = info.Env();
  const int32_t* ids = i32_arg(info, 0, 0, fn, "ids");
  const float* table = f32_arg(info, 1, 0, fn, "table");
  const int64_t dim = int_arg(info, 2, fn, "dim", 1);
  const int64_t T = length_of(info, 0);
  const int64_t tlen = length_of(info, 1);
  if (tlen % dim != 0) throw arg_error(env, fn, "table length " + std::to_string(tlen) + " is not a multiple of dim " + std::to_string(dim));
  float* out = f32_arg(info, 3, checked_mul(env, fn, T, dim), fn, "out");
  check_ids(env, fn, ids, T, tlen / dim);
  const OpsLeaf& L = leaf();
  parallel_for(T, max64(1, kGrain / dim), [&](int64_t t0, int64_t t1, int) { L.embed_fwd(ids, table, dim, out, t0, t1); });
  return env.Undefined();
}

Napi::Value EmbeddingBackward(const Napi::CallbackInfo& info) {
  const char* fn = "embeddingBackward";
  Napi::Env env = info.Env();
  const int32_t* ids = i32_arg(info, 0, 0, fn, "ids");
  const int64_t T = length_of(info, 0);
  const int64_t dim = int_arg(info, 2, fn, "dim", 1);
  const float* dout = f32_arg(info, 1, checked_mul(env, fn, T, dim), fn, "dOut");
  float* dtable = f32_arg(info, 3, 0, fn, "dTable");
  const int64_t tlen = length_of(info, 3);
  if (tlen % dim != 0) throw arg_error(env, fn, "dTable length " + std::to_string(tlen) + " is not a multiple of dim " + std::to_string(dim));
  check_ids(env, fn, ids, T, tlen / dim);
  // Scatter-add without races: threads own disjoint column ranges; within a column the tokens
  // are added in order, so the result is deterministic.
  const OpsLeaf& L = leaf();
  const int64_t cgrain = ceil_div(max64(16, ceil_div(kGrain, max64(T, 1))), 16) * 16;
  parallel_for(dim, cgrain, [&](int64_t c0, int64_t c1, int) { L.embed_bwd(ids, dout, T, dim, dtable, c0, c1); });
  return env.Undefined();
}

Napi::Value RmsnormForward(const Napi::CallbackInfo& info) {
  const char* fn = "rmsnormForward";
  Napi::Env env = info.Env();
  const int64_t rows = int_arg(info, 2, fn, "rows", 0);
  const int64_t dim = int_arg(info, 3, fn, "dim", 1);
  const int64_t n = checked_mul(env, fn, rows, dim);
  const float* x = f32_arg(info, 0, n, fn, "x");
  const float* w = f32_arg(info, 1, dim, fn, "w");
  const double eps = num_arg(info, 4, fn, "eps");
  if (!(eps >= 0)) throw arg_error(env, fn, "eps must be >= 0");
  float* out = f32_arg(info, 5, n, fn, "out");
  float* rstd = f32_arg(info, 6, rows, fn, "rstd");
  const OpsLeaf& L = leaf();
  parallel_for(rows, max64(1, kGrain / dim), [&](int64_t r0, int64_t r1, int) { L.rmsnorm_fwd(x, w, dim, eps, out, rstd, r0, r1); });
  return env.Undefined();
}

Napi::Value RmsnormBackward(const Napi::CallbackInfo& info) {
  const char* fn = "rmsnormBackward";
  Napi::Env env = info.Env();
  const int64_t rows = int_arg(info, 4, fn, "rows", 0);
  const int64_t dim = int_arg(info, 5, fn, "dim", 1);
  const int64_t n = checked_mul(env, fn, rows, dim);
  const float* x = f32_arg(info, 0, n, fn, "x");
  const float* w = f32_arg(info, 1, dim, fn, "w");
  const float* rstd = f32_arg(info, 2, rows, fn, "rstd");
  const float* dout = f32_arg(info, 3, n, fn, "dOut");
  float* dx = f32_arg(info, 6, n, fn, "dX");
  float* dw = f32_arg(info, 7, dim, fn, "dW");
  const OpsLeaf& L = leaf();
  // Fixed row blocks (a function of the shape only): each block sums its dW contribution into
  // its own scratch row, then the blocks are added to dW in block order.
  const int64_t blk = max64(ceil_div(kGrain, dim), ceil_div(rows, 64));
  if (rows <= blk) {
    L.rmsnorm_bwd(x, w, rstd, dout, dim, dx, dw, 0, rows);
    return env.Undefined();
  }
  const int64_t nb = ceil_div(rows, blk);
  std::vector<float> part(static_cast<size_t>(nb * dim), 0.0f);
  float* pp = part.data();
  parallel_for(nb, 1, [&](int64_t b0, int64_t b1, int) {
    for (int64_t b = b0; b < b1; ++b) L.rmsnorm_bwd(x, w, rstd, dout, dim, dx, pp + b * dim, b * blk, min64(rows, (b + 1) * blk));
  });
  parallel_for(dim, max64(256, ceil_div(kGrain, nb)), [&](int64_t c0, int64_t c1, int) {
    for (int64_t b = 0; b < nb; ++b) {
      const float* src = pp + b * dim;
      for (int64_t c = c0; c < c1; ++c) dw[c] += src[c];
    }
  });
  return env.Undefined();
}

Napi::Value Rope(const Napi::CallbackInfo& info) {
  const char* fn = "rope";
  Napi::Env env = info.Env();
  const int64_t T = int_arg(info, 2, fn, "T", 0);
  const int64_t nh = int_arg(info, 3, fn, "nHeads", 0);
  const int64_t hd = int_arg(info, 4, fn, "headDim", 2);
  if (hd % 2 != 0) throw arg_error(env, fn, "headDim must be even");
  const int64_t stride = checked_mul(env, fn, nh, hd);
  float* x = f32_arg(info, 0, checked_mul(env, fn, T, stride), fn, "x");
  const int32_t* pos = i32_arg(info, 1, T, fn, "pos");
  const float* inv = f32_arg(info, 5, hd / 2, fn, "invFreq");
  const double sign = num_arg(info, 6, fn, "sign");
  if (sign != 1.0 && sign != -1.0) throw arg_error(env, fn, "sign must be 1 or -1");
  const OpsLeaf& L = leaf();
  const float s = static_cast<float>(sign);
  parallel_for(T, max64(1, kGrain / max64(stride, 1)), [&](int64_t t0, int64_t t1, int) { L.rope(x, pos, nh, hd, inv, s, t0, t1); });
  return env.Undefined();
}

// Elementwise sum; out may be a or b itself (in-place accumulation) but must not partially overlap them.
Napi::Value Add(const Napi::CallbackInfo& info) {
  const char* fn = "add";
  Napi::Env env = info.Env();
  const int64_t n = int_arg(info, 2, fn, "n", 0);
  const float* a = f32_arg(info, 0, n, fn, "a");
  const float* b = f32_arg(info, 1, n, fn, "b");
  float* out = f32_arg(info, 3, n, fn, "out");
  const OpsLeaf& L = leaf();
  parallel_for(n, kGrain * 4, [&](int64_t i0, int64_t i1, int) { L.add(a, b, out, i0, i1); });
  return env.Undefined();
}

Napi::Value SwigluForward(const Napi::CallbackInfo& info) {
  const char* fn = "swigluForward";
  Napi::Env env = info.Env();
  const int64_t n = int_arg(info, 2, fn, "n", 0);
  const float* g = f32_arg(info, 0, n, fn, "gate");
  const float* u = f32_arg(info, 1, n, fn, "up");
  float* out = f32_arg(info, 3, n, fn, "out");
  const OpsLeaf& L = leaf();
  parallel_for(n, kGrain, [&](int64_t i0, int64_t i1, int) { L.swiglu_fwd(g, u, out, i0, i1); });
  return env.Undefined();
}

Napi::Value SwigluBackward(const Napi::CallbackInfo& info) {
  const char* fn = "swigluBackward";
  Napi::Env env = info.Env();
  const int64_t n = int_arg(info, 3, fn, "n", 0);
  const float* g = f32_arg(info, 0, n, fn, "gate");
  const float* u = f32_arg(info, 1, n, fn, "up");
  const float* d = f32_arg(info, 2, n, fn, "dOut");
  float* dg = f32_arg(info, 4, n, fn, "dGate");
  float* du = f32_arg(info, 5, n, fn, "dUp");
  const OpsLeaf& L = leaf();
  parallel_for(n, kGrain, [&](int64_t i0, int64_t i1, int) { L.swiglu_bwd(g, u, d, dg, du, i0, i1); });
  return env.Undefined();
}

Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  const char* fn = "crossEntropy";
  Napi::Env env = info.Env();
  const int64_t N = int_arg(info, 2, fn, "N", 0);
  const int64_t V = int_arg(info, 3, fn, "V", 1);
  const int64_t nv = checked_mul(env, fn, N, V);
  const float* logits = f32_arg(info, 0, nv, fn, "logits");
  const int32_t* targets = i32_arg(info, 1, N, fn, "targets");
  const double ign = num_arg(info, 4, fn, "ignoreIndex");
  if (ign != std::floor(ign) || std::fabs(ign) > 9.0e15) throw arg_error(env, fn, "ignoreIndex must be an integer");
  const int64_t ignore = static_cast<int64_t>(ign);
  float* losses = f32_arg(info, 5, N, fn, "losses");
  float* dl = f32_opt(info, 6, nv, fn, "dLogits");
  const double gs = num_arg(info, 7, fn, "gradScale");
  if (dl && dl != logits) {
    uintptr_t a0, a1, b0, b1;
    byte_range(info, 0, &a0, &a1);
    byte_range(info, 6, &b0, &b1);
    if (a0 < b1 && b0 < a1) throw arg_error(env, fn, "dLogits must be either the logits array itself or not overlap it");
  }
  for (int64_t r = 0; r < N; ++r) {
    const int64_t t = targets[r];
    if (t != ignore && (t < 0 || t >= V))
      throw arg_error(env, fn, "targets[" + std::to_string(r) + "] = " + std::to_string(t) + " is outside [0, " + std::to_string(V) + ")");
  }
  const OpsLeaf& L = leaf();
  const float gsf = static_cast<float>(gs);
  parallel_for(N, max64(1, kGrain / V), [&](int64_t r0, int64_t r1, int) { L.cross_entropy(logits, targets, V, ignore, losses, dl, gsf, r0, r1); });
  return env.Undefined();
}

Napi::Value Adamw(const Napi::CallbackInfo& info) {
  const char* fn = "adamw";
  Napi::Env env = info.Env();
  const int64_t n = int_arg(info, 4, fn, "n", 0);
  float* p = f32_arg(info, 0, n, fn, "p");
  const float* g = f32_arg(info, 1, n, fn, "g");
  float* m = f32_arg(info, 2, n, fn, "m");
  float* v = f32_arg(info, 3, n, fn, "v");
  const double lr = num_arg(info, 5, fn, "lr");
  const double b1 = num_arg(info, 6, fn, "beta1");
  const double b2 = num_arg(info, 7, fn, "beta2");
  const double eps = num_arg(info, 8, fn, "eps");
  const double wd = num_arg(info, 9, fn, "weightDecay");
  const int64_t step = int_arg(info, 10, fn, "step", 1);
  if (!(b1 >= 0 && b1 < 1) || !(b2 >= 0 && b2 < 1)) throw arg_error(env, fn, "beta1 and beta2 must be in [0, 1)");
  // Coefficients are formed in fp64 from the JS numbers, then rounded once to fp32.
  const float c[9] = {
      static_cast<float>(b1), static_cast<float>(1.0 - b1), static_cast<float>(b2), static_cast<float>(1.0 - b2),
      static_cast<float>(1.0 / (1.0 - std::pow(b1, static_cast<double>(step)))),
      static_cast<float>(1.0 / (1.0 - std::pow(b2, static_cast<double>(step)))),
      static_cast<float>(eps), static_cast<float>(lr), static_cast<float>(lr * wd),
  };
  const OpsLeaf& L = leaf();
  parallel_for(n, kGrain, [&](int64_t i0, int64_t i1, int) { L.adamw(p, g, m, v, c, i0, i1); });
  return env.Undefined();
}

Napi::Value OpsExp(const Napi::CallbackInfo& info) {
  const char* fn = "_opsExp";
  const float* x = f32_arg(info, 0, 0, fn, "x");
  const int64_t n = length_of(info, 0);
  float* y = f32_arg(info, 1, n, fn, "y");
  leaf().exp_vec(x, y, n);
  return info.Env().Undefined();
}

}  // namespace

void register_ops(Napi::Env env, Napi::Object exports) {
  export_fn<EmbeddingForward>(env, exports, "embeddingForward");
  export_fn<EmbeddingBackward>(env, exports, "embeddingBackward");
  export_fn<RmsnormForward>(env, exports, "rmsnormForward");
  export_fn<RmsnormBackward>(env, exports, "rmsnormBackward");
  export_fn<Rope>(env, exports, "rope");
  export_fn<Add>(env, exports, "add");
  export_fn<SwigluForward>(env, exports, "swigluForward");
  export_fn<SwigluBackward>(env, exports, "swigluBackward");
  export_fn<CrossEntropy>(env, exports, "crossEntropy");
  export_fn<Adamw>(env, exports, "adamw");
  export_fn<OpsExp>(env, exports, "_opsExp");
}

}  // namespace mt
