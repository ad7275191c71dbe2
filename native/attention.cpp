// Causal grouped-query attention (flash-attention style, online softmax, no T x T buffer):
// Node-API glue, argument validation, threading and ISA dispatch. The leaf kernels live in
// attention_impl.inc, compiled three times (attention_avx512.cpp / _avx2.cpp / _portable.cpp).
//
// JS API (argument order = src/tensor/kernels.ts):
//   attentionForward(q, k, v, out, lse, B, Tq, Tk, nHeads, nKvHeads, headDim, scale, qOffset)
//   attentionBackward(q, k, v, out, lse, dOut, dq, dk, dv, B, T, nHeads, nKvHeads, headDim, scale)
//   _attentionExp(x, out)  (test hook: the vectorized exp of the current ISA, out[i] = exp(x[i]))
// Validation (TypeError otherwise): all sizes are integers >= 1, nHeads % nKvHeads == 0,
// Tq <= Tk, qOffset >= 0 and qOffset + Tq <= Tk (qOffset = Tk - Tq is the usual KV-cache call;
// a smaller qOffset just leaves the keys after qOffset + Tq - 1 unread, so k/v may be a
// preallocated cache of capacity Tk), scale finite, every array at least as long as its shape.
// Outputs must not alias inputs.
//
// Threading: forward tasks are (batch, head, query tile), heaviest (latest) query tiles first,
// handed out dynamically. Backward, fused (when B*nKvHeads keeps every thread busy): one task per
// (batch, kv head) owns the dq rows of its query heads and the dk/dv rows of its kv head; split
// (otherwise): dk/dv tasks per (batch, kv head, key tile) and dq tasks per (batch, head, query
// tile), recomputing the scores. Either way no output is shared between tasks, so nothing races
// and the results do not depend on scheduling.
// Small calls (decoding a tiny model) run inline on the calling thread.
#include "attention.h"

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "cpu.h"
#include "napi_util.h"
#include "threadpool.h"

namespace mt {

int64_t attention_fwd_ws_floats(int64_t D) { return 2 * D * ATTN_BQ + ATTN_BK * ATTN_BQ + 3 * ATTN_BQ; }
int64_t attention_bwd_ws_floats(int64_t D, int64_t T) {
  const int64_t Dp = (D + 15) / 16 * 16;
  return 3 * D * ATTN_BQ + 2 * ATTN_BQ * Dp + 2 * ATTN_BK * ATTN_BQ + 2 * ATTN_BQ + 2 * T * Dp;
}

namespace {

constexpr int64_t kMaxDim = int64_t(1) << 31;
// Below this many multiply-adds a call runs on the calling thread (waking workers costs more).
constexpr double kInlineFma = 1.5e5;

int64_t mul_checked(const Napi::Env& env, const char* fn, std::initializer_list<int64_t> xs) {
  int64_t r = 1;
  for (int64_t x : xs) {
    if (x != 0 && r > (int64_t(1) << 53) / x) throw arg_error(env, fn, "sizes are too large");
    r *= x;
  }
  return r;
}

int64_t dim_arg(const Napi::CallbackInfo& info, size_t i, const char* fn, const char* name) {
  int64_t v = int_arg(info, i, fn, name, 1);
  if (v >= kMaxDim) throw arg_error(info.Env(), fn, std::string(name) + " is too large");
  return v;
}

// Per-thread workspace for `workers` slices of `per` floats, each 64-byte aligned.
float* workspace(int workers, int64_t per, int64_t* stride) {
  thread_local std::vector<float> buf;
  const int64_t s = (per + 15) / 16 * 16;
  const size_t need = static_cast<size_t>(s * workers + 16);
  if (buf.size() < need) buf.assign(need, 0.0f);
  uintptr_t base = reinterpret_cast<uintptr_t>(buf.data());
  base = (base + 63) & ~uintptr_t(63);
  *stride = s;
  return reinterpret_cast<float*>(base);
}

typedef void (*FwdTileFn)(const AttnFwdParams&, int64_t, int64_t, int64_t, int64_t, float*);
typedef void (*BwdGroupFn)(const AttnBwdParams&, int64_t, int64_t, float*);
typedef void (*BwdTileFn)(const AttnBwdParams&, int64_t, int64_t, int64_t, int64_t, float*);
typedef void (*ExpFn)(const float*, float*, int64_t);

FwdTileFn fwd_fn() {
  switch (current_isa()) {
    case Isa::avx512: return attention_fwd_tile_avx512;
    case Isa::avx2: return attention_fwd_tile_avx2;
    default: return attention_fwd_tile_portable;
  }
}
BwdGroupFn bwd_fn() {
  switch (current_isa()) {
    case Isa::avx512: return attention_bwd_group_avx512;
    case Isa::avx2: return attention_bwd_group_avx2;
    default: return attention_bwd_group_portable;
  }
}
BwdTileFn bwd_dkdv_fn() {
  switch (current_isa()) {
    case Isa::avx512: return attention_bwd_dkdv_avx512;
    case Isa::avx2: return attention_bwd_dkdv_avx2;
    default: return attention_bwd_dkdv_portable;
  }
}
BwdTileFn bwd_dq_fn() {
  switch (current_isa()) {
    case Isa::avx512: return attention_bwd_dq_avx512;
    case Isa::avx2: return attention_bwd_dq_avx2;
    default: return attention_bwd_dq_portable;
  }
}
ExpFn exp_fn() {
  switch (current_isa()) {
    case Isa::avx512: return attention_exp_avx512;
    case Isa::avx2: return attention_exp_avx2;
    default: return attention_exp_portable;
  }
}

void check_heads(const Napi::Env& env, const char* fn, int64_t H, int64_t Hkv) {
  if (H % Hkv != 0)
    throw arg_error(env, fn, "nHeads (" + std::to_string(H) + ") must be a multiple of nKvHeads (" + std::to_string(Hkv) + ")");
}

float scale_arg(const Napi::CallbackInfo& info, size_t i, const char* fn) {
  double s = num_arg(info, i, fn, "scale");
  if (!std::isfinite(s) || !std::isfinite(static_cast<float>(s))) throw arg_error(info.Env(), fn, "scale must be finite");
  return static_cast<float>(s);
}

Napi::Value AttentionForward(const Napi::CallbackInfo& info) {
  const char* fn = "attentionForward";
  Napi::Env env = info.Env();
  AttnFwdParams p;
  p.B = dim_arg(info, 5, fn, "B");
  p.Tq = dim_arg(info, 6, fn, "Tq");
  p.Tk = dim_arg(info, 7, fn, "Tk");
  p.H = dim_arg(info, 8, fn, "nHeads");
  p.Hkv = dim_arg(info, 9, fn, "nKvHeads");
  p.D = dim_arg(info, 10, fn, "headDim");
  p.scale = scale_arg(info, 11, fn);
  p.q_offset = int_arg(info, 12, fn, "qOffset", 0);
  check_heads(env, fn, p.H, p.Hkv);
  if (p.Tq > p.Tk) throw arg_error(env, fn, "Tq (" + std::to_string(p.Tq) + ") must be <= Tk (" + std::to_string(p.Tk) + ")");
  if (p.q_offset > p.Tk - p.Tq)
    throw arg_error(env, fn, "qOffset + Tq must be <= Tk (qOffset " + std::to_string(p.q_offset) + ", Tq " +
                                 std::to_string(p.Tq) + ", Tk " + std::to_string(p.Tk) + ")");
  const int64_t nq = mul_checked(env, fn, {p.B, p.Tq, p.H, p.D});
  const int64_t nk = mul_checked(env, fn, {p.B, p.Tk, p.Hkv, p.D});
  const int64_t nl = mul_checked(env, fn, {p.B, p.H, p.Tq});
  p.q = f32_arg(info, 0, nq, fn, "q");
  p.k = f32_arg(info, 1, nk, fn, "k");
  p.v = f32_arg(info, 2, nk, fn, "v");
  p.out = f32_arg(info, 3, nq, fn, "out");
  p.lse = f32_arg(info, 4, nl, fn, "lse");

  const FwdTileFn tile = fwd_fn();
  const int64_t nqt = (p.Tq + ATTN_BQ - 1) / ATTN_BQ;
  const int64_t nbh = p.B * p.H;
  const int64_t ntasks = nbh * nqt;
  // Multiply-adds: QK^T and PV over the visible keys.
  const double work = 2.0 * static_cast<double>(nbh) * static_cast<double>(p.Tq) *
                      (static_cast<double>(p.q_offset) + 0.5 * static_cast<double>(p.Tq)) * static_cast<double>(p.D);
  const int workers = work < kInlineFma ? 1 : num_threads();
  int64_t stride = 0;
  float* ws = workspace(workers, attention_fwd_ws_floats(p.D), &stride);
  auto run = [&](int64_t begin, int64_t end, int worker) {
    float* w = ws + static_cast<int64_t>(worker) * stride;
    for (int64_t t = begin; t < end; ++t) {
      const int64_t qt = nqt - 1 - t / nbh;  // latest (heaviest) query tiles first
      const int64_t bh = t % nbh;
      const int64_t q0 = qt * ATTN_BQ;
      const int64_t n = p.Tq - q0 < int64_t(ATTN_BQ) ? p.Tq - q0 : int64_t(ATTN_BQ);
      tile(p, bh / p.H, bh % p.H, q0, n, w);
    }
  };
  if (workers == 1) run(0, ntasks, 0);
  else parallel_for(ntasks, 1, run);
  return env.Undefined();
}

Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  const char* fn = "attentionBackward";
  Napi::Env env = info.Env();
  AttnBwdParams p;
  p.B = dim_arg(info, 9, fn, "B");
  p.T = dim_arg(info, 10, fn, "T");
  p.H = dim_arg(info, 11, fn, "nHeads");
  p.Hkv = dim_arg(info, 12, fn, "nKvHeads");
  p.D = dim_arg(info, 13, fn, "headDim");
  p.scale = scale_arg(info, 14, fn);
  check_heads(env, fn, p.H, p.Hkv);
  const int64_t nq = mul_checked(env, fn, {p.B, p.T, p.H, p.D});
  const int64_t nk = mul_checked(env, fn, {p.B, p.T, p.Hkv, p.D});
  const int64_t nl = mul_checked(env, fn, {p.B, p.H, p.T});
  mul_checked(env, fn, {p.T, (p.D + 15) / 16 * 16, 2});
  p.q = f32_arg(info, 0, nq, fn, "q");
  p.k = f32_arg(info, 1, nk, fn, "k");
  p.v = f32_arg(info, 2, nk, fn, "v");
  p.out = f32_arg(info, 3, nq, fn, "out");
  p.lse = f32_arg(info, 4, nl, fn, "lse");
  p.dout = f32_arg(info, 5, nq, fn, "dOut");
  p.dq = f32_arg(info, 6, nq, fn, "dq");
  p.dk = f32_arg(info, 7, nk, fn, "dk");
  p.dv = f32_arg(info, 8, nk, fn, "dv");

  const int64_t ngroups = p.B * p.Hkv;
  const double work = 2.5 * static_cast<double>(p.B * p.H) * static_cast<double>(p.T) * static_cast<double>(p.T) *
                      static_cast<double>(p.D);
  const int threads = num_threads();
  const int workers = work < kInlineFma ? 1 : threads;
  // Fused (one task per (batch, kv head), least work) when that keeps every thread busy;
  // otherwise split into dk/dv tasks per key tile and dq tasks per query tile.
  const bool fused = workers == 1 || ngroups % workers == 0 || ngroups >= 4 * static_cast<int64_t>(workers);
  const int64_t nt = (p.T + ATTN_BQ - 1) / ATTN_BQ;  // tiles (ATTN_BQ == ATTN_BK)
  int64_t stride = 0;
  float* ws = workspace(workers, fused ? attention_bwd_ws_floats(p.D, p.T) : attention_bwd_ws_floats(p.D, ATTN_BK), &stride);
  if (fused) {
    const BwdGroupFn group = bwd_fn();
    auto run = [&](int64_t begin, int64_t end, int worker) {
      float* w = ws + static_cast<int64_t>(worker) * stride;
      for (int64_t t = begin; t < end; ++t) group(p, t / p.Hkv, t % p.Hkv, w);
    };
    if (workers == 1) run(0, ngroups, 0);
    else parallel_for(ngroups, 1, run);
  } else {
    const BwdTileFn dkdv = bwd_dkdv_fn();
    const BwdTileFn dq = bwd_dq_fn();
    const int64_t nkv_tasks = ngroups * nt;  // (key tile ascending = heaviest first, batch, kv head)
    const int64_t nq_tasks = p.B * p.H * nt;  // (query tile descending = heaviest first, batch, head)
    auto run = [&](int64_t begin, int64_t end, int worker) {
      float* w = ws + static_cast<int64_t>(worker) * stride;
      for (int64_t t = begin; t < end; ++t) {
        if (t < nkv_tasks) {
          const int64_t kt = t / ngroups, bk = t % ngroups;
          const int64_t j0 = kt * ATTN_BK;
          dkdv(p, bk / p.Hkv, bk % p.Hkv, j0, p.T - j0 < int64_t(ATTN_BK) ? p.T - j0 : int64_t(ATTN_BK), w);
        } else {
          const int64_t u = t - nkv_tasks;
          const int64_t qt = nt - 1 - u / (p.B * p.H), bh = u % (p.B * p.H);
          const int64_t q0 = qt * ATTN_BQ;
          dq(p, bh / p.H, bh % p.H, q0, p.T - q0 < int64_t(ATTN_BQ) ? p.T - q0 : int64_t(ATTN_BQ), w);
        }
      }
    };
    parallel_for(nkv_tasks + nq_tasks, 1, run);
  }
  return env.Undefined();
}

Napi::Value AttentionExp(const Napi::CallbackInfo& info) {
  const char* fn = "_attentionExp";
  if (info.Length() < 1 || !info[0].IsTypedArray()) throw arg_error(info.Env(), fn, "x must be a Float32Array");
  const int64_t n = static_cast<int64_t>(info[0].As<Napi::TypedArray>().ElementLength());
  const float* x = f32_arg(info, 0, n, fn, "x");
  float* out = f32_arg(info, 1, n, fn, "out");
  exp_fn()(x, out, n);
  return info.Env().Undefined();
}

}  // namespace

void register_attention(Napi::Env env, Napi::Object exports) {
  exports.Set("attentionForward", Napi::Function::New(env, AttentionForward, "attentionForward"));
  exports.Set("attentionBackward", Napi::Function::New(env, AttentionBackward, "attentionBackward"));
  exports.Set("_attentionExp", Napi::Function::New(env, AttentionExp, "_attentionExp"));
}

}  // namespace mt
