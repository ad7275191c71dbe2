// Causal grouped-query attention (flash-attention style, online softmax, no T x T buffer):
// Node-API glue, argument validation, threading and ISA dispatch. The leaf kernels live in
// attention_impl.inc, compiled three times (attention_avx512.cpp / _avx2.cpp / _portable.cpp).
//
// JS API (argument order = src/tensor/kernels.ts):
//   attentionForward(q, k, v, out, lse, B, Tq, Tk, nHeads, nKvHeads, headDim, scale, qOffset)
//   attentionBackward(q, k, v, out, lse, dOut, dq, dk, dv, B, T, nHeads, nKvHeads, headDim, scale)
//   _attentionExp(x, out)  (test hook: the vectorized exp of the current ISA, out[i] = exp(x[i]))
//   attentionForwardBf16(<attentionForward's arguments>[, lo]), attentionBackwardBf16(<attentionBackward's>[, lo]):
//     bf16 products (attention.h); lo: Int32Array [B*Tq], query i sees keys [lo[i], qOffset + i]
//     (rows packed with several samples), absent / null = causal. ENOBF16 error without bf16.
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

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "cpu.h"
#include "gemm_bf16.h"
#include "napi_util.h"
#include "threadpool.h"

namespace mt {

int64_t attention_fwd_ws_floats(int64_t D) { return 2 * D * ATTN_BQ + ATTN_BK * ATTN_BQ + 3 * ATTN_BQ; }
int64_t attention_bwd_ws_floats(int64_t D, int64_t T) {
  const int64_t Dp = (D + 15) / 16 * 16;
  return 3 * D * ATTN_BQ + 2 * ATTN_BQ * Dp + 2 * ATTN_BK * ATTN_BQ + 2 * ATTN_BQ + 2 * T * Dp;
}

int64_t attention_bf16_fwd_ws_floats(int64_t D) {
  const int64_t Dw = (D + 1) / 2;
  return Dw * ATTN_BQ + D * ATTN_BQ + ATTN_BK * ATTN_BQ + (ATTN_BK / 2) * ATTN_BQ + 3 * ATTN_BQ;
}
int64_t attention_bf16_bwd_ws_floats(int64_t D, int64_t T) {
  const int64_t Dw = (D + 1) / 2, Dp = (D + 15) / 16 * 16;
  return 2 * Dw * ATTN_BQ + ATTN_BQ * Dp + D * ATTN_BQ + 2 * ATTN_BK * ATTN_BQ + ATTN_BK * ATTN_BQ + (ATTN_BK / 2) * ATTN_BQ +
         2 * ATTN_BQ + 2 * T * Dp;
}

int64_t attention_layout_fwd_ws_floats(int64_t D) { return 4 * D * ATTN_BQ + ATTN_BK * ATTN_BQ + 6 * ATTN_BQ; }
int64_t attention_layout_bwd_ws_floats(int64_t D, int64_t M, int64_t Tk) {
  const int64_t Dp = (D + 15) / 16 * 16;
  return 3 * D * ATTN_BQ + 2 * ATTN_BQ * Dp + 2 * ATTN_BK * ATTN_BQ + 2 * (M + 1) * ATTN_BQ + 2 * Tk * Dp;
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
  if (buf.size() < need) {
    try {
      buf.assign(need, 0.0f);
    } catch (const std::bad_alloc&) {
      buf = std::vector<float>();
      throw OutOfMemory("the attention workspace", need * sizeof(float));
    } catch (const std::length_error&) {
      throw OutOfMemory("the attention workspace", SIZE_MAX);
    }
  }
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

AttnFwdParams fwd_args(const Napi::CallbackInfo& info, const char* fn) {
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
  return p;
}

// Runs tile(b, h, q0, nq, ws) for every (batch, head, query tile), heaviest (latest) tiles first.
template <class Tile>
void run_fwd(const AttnFwdParams& p, int64_t ws_floats, const Tile& tile) {
  const int64_t nqt = (p.Tq + ATTN_BQ - 1) / ATTN_BQ;
  const int64_t nbh = p.B * p.H;
  const int64_t ntasks = nbh * nqt;
  // Multiply-adds: QK^T and PV over the visible keys.
  const double work = 2.0 * static_cast<double>(nbh) * static_cast<double>(p.Tq) *
                      (static_cast<double>(p.q_offset) + 0.5 * static_cast<double>(p.Tq)) * static_cast<double>(p.D);
  const int workers = work < kInlineFma ? 1 : num_threads();
  int64_t stride = 0;
  float* ws = workspace(workers, ws_floats, &stride);
  auto run = [&](int64_t begin, int64_t end, int worker) {
    float* w = ws + static_cast<int64_t>(worker) * stride;
    for (int64_t t = begin; t < end; ++t) {
      const int64_t qt = nqt - 1 - t / nbh;  // latest (heaviest) query tiles first
      const int64_t bh = t % nbh;
      const int64_t q0 = qt * ATTN_BQ;
      const int64_t n = p.Tq - q0 < int64_t(ATTN_BQ) ? p.Tq - q0 : int64_t(ATTN_BQ);
      tile(bh / p.H, bh % p.H, q0, n, w);
    }
  };
  if (workers == 1) run(0, ntasks, 0);
  else parallel_for(ntasks, 1, run, workers);
}

Napi::Value AttentionForward(const Napi::CallbackInfo& info) {
  const AttnFwdParams p = fwd_args(info, "attentionForward");
  const FwdTileFn tile = fwd_fn();
  run_fwd(p, attention_fwd_ws_floats(p.D), [&](int64_t b, int64_t h, int64_t q0, int64_t n, float* w) { tile(p, b, h, q0, n, w); });
  return info.Env().Undefined();
}

AttnBwdParams bwd_args(const Napi::CallbackInfo& info, const char* fn) {
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
  return p;
}

// Backward task split: fused (one task per (batch, kv head), least work) when that keeps every
// thread busy; otherwise dk/dv tasks per key tile and dq tasks per query tile.
// group(b, kvh, ws), dkdv(b, kvh, j0, nk, ws), dq(b, h, q0, nq, ws); ws_floats(fused) per worker.
int bwd_workers(const AttnBwdParams& p) {
  const double work = 2.5 * static_cast<double>(p.B * p.H) * static_cast<double>(p.T) * static_cast<double>(p.T) *
                      static_cast<double>(p.D);
  return work < kInlineFma ? 1 : num_threads();
}
bool bwd_fused(const AttnBwdParams& p) {
  const int64_t ngroups = p.B * p.Hkv;
  const int workers = bwd_workers(p);
  return workers == 1 || ngroups % workers == 0 || ngroups >= 4 * static_cast<int64_t>(workers);
}

template <class WsFloats, class Group, class Dkdv, class Dq>
void run_bwd(const AttnBwdParams& p, const WsFloats& ws_floats, const Group& group, const Dkdv& dkdv, const Dq& dq) {
  const int64_t ngroups = p.B * p.Hkv;
  const int workers = bwd_workers(p);
  const bool fused = bwd_fused(p);
  const int64_t nt = (p.T + ATTN_BQ - 1) / ATTN_BQ;  // tiles (ATTN_BQ == ATTN_BK)
  int64_t stride = 0;
  float* ws = workspace(workers, ws_floats(fused), &stride);
  if (fused) {
    auto run = [&](int64_t begin, int64_t end, int worker) {
      float* w = ws + static_cast<int64_t>(worker) * stride;
      for (int64_t t = begin; t < end; ++t) group(t / p.Hkv, t % p.Hkv, w);
    };
    if (workers == 1) run(0, ngroups, 0);
    else parallel_for(ngroups, 1, run, workers);
    return;
  }
  const int64_t nkv_tasks = ngroups * nt;  // (key tile ascending = heaviest first, batch, kv head)
  const int64_t nq_tasks = p.B * p.H * nt;  // (query tile descending = heaviest first, batch, head)
  auto run = [&](int64_t begin, int64_t end, int worker) {
    float* w = ws + static_cast<int64_t>(worker) * stride;
    for (int64_t t = begin; t < end; ++t) {
      if (t < nkv_tasks) {
        const int64_t kt = t / ngroups, bk = t % ngroups;
        const int64_t j0 = kt * ATTN_BK;
        dkdv(bk / p.Hkv, bk % p.Hkv, j0, p.T - j0 < int64_t(ATTN_BK) ? p.T - j0 : int64_t(ATTN_BK), w);
      } else {
        const int64_t u = t - nkv_tasks;
        const int64_t qt = nt - 1 - u / (p.B * p.H), bh = u % (p.B * p.H);
        const int64_t q0 = qt * ATTN_BQ;
        dq(bh / p.H, bh % p.H, q0, p.T - q0 < int64_t(ATTN_BQ) ? p.T - q0 : int64_t(ATTN_BQ), w);
      }
    }
  };
  parallel_for(nkv_tasks + nq_tasks, 1, run, workers);
}

Napi::Value AttentionBackward(const Napi::CallbackInfo& info) {
  const AttnBwdParams p = bwd_args(info, "attentionBackward");
  const BwdGroupFn group = bwd_fn();
  const BwdTileFn dkdv = bwd_dkdv_fn();
  const BwdTileFn dq = bwd_dq_fn();
  run_bwd(
      p, [&](bool fused) { return attention_bwd_ws_floats(p.D, fused ? p.T : int64_t(ATTN_BK)); },
      [&](int64_t b, int64_t kvh, float* w) { group(p, b, kvh, w); },
      [&](int64_t b, int64_t kvh, int64_t j0, int64_t nk, float* w) { dkdv(p, b, kvh, j0, nk, w); },
      [&](int64_t b, int64_t h, int64_t q0, int64_t nq, float* w) { dq(p, b, h, q0, nq, w); });
  return info.Env().Undefined();
}

// ---------------------------------------------------------------------------------------------
// bf16 causal attention (attention.h): the same argument checks and task split; K and V are
// converted to their bf16 layouts first (one task per (batch, kv head) block).

struct Bf16Leaf {
  decltype(&attention_bf16_convert_portable) convert;
  decltype(&attention_bf16_fwd_tile_portable) fwd;
  decltype(&attention_bf16_bwd_group_portable) group;
  decltype(&attention_bf16_bwd_dkdv_portable) dkdv;
  decltype(&attention_bf16_bwd_dq_portable) dq;
};
const Bf16Leaf kBf16Avx512 = {attention_bf16_convert_avx512bf16, attention_bf16_fwd_tile_avx512bf16, attention_bf16_bwd_group_avx512bf16,
                              attention_bf16_bwd_dkdv_avx512bf16, attention_bf16_bwd_dq_avx512bf16};
const Bf16Leaf kBf16Portable = {attention_bf16_convert_portable, attention_bf16_fwd_tile_portable, attention_bf16_bwd_group_portable,
                                attention_bf16_bwd_dkdv_portable, attention_bf16_bwd_dq_portable};

const Bf16Leaf& bf16_leaf(const Napi::CallbackInfo& info, const char* fn) {
  std::string why;
  const int leaf = bf16_attention_leaf(&why);
  if (leaf == 0) {
    Napi::Error e = Napi::Error::New(info.Env(), std::string(fn) + ": bf16 attention is unavailable: " + why);
    e.Set("code", Napi::String::New(info.Env(), "ENOBF16"));
    throw e;
  }
  return leaf == 2 ? kBf16Avx512 : kBf16Portable;
}

// Words of one (batch, kv head) block's converted K/V (attention.h: AttnBf16KV).
int64_t rows_words(int64_t T, int64_t D) { return T * ((D + 1) / 2); }
int64_t pairs_words(int64_t T, int64_t D) { return (T + 1) / 2 * D; }

// K/V of one block converted into `dst` (kr, kk, vr, vk in that order, each only if wanted).
AttnBf16KV convert_block(const Bf16Leaf& leaf, const float* kb, const float* vb, int64_t ld, int64_t T, int64_t tvis, int64_t D,
                         bool k_rows, bool k_pairs, bool v_rows, bool v_pairs, uint32_t* dst) {
  uint32_t* kr = k_rows ? dst : nullptr;
  if (k_rows) dst += rows_words(T, D);
  uint32_t* kk = k_pairs ? dst : nullptr;
  if (k_pairs) dst += pairs_words(T, D);
  uint32_t* vr = v_rows ? dst : nullptr;
  if (v_rows) dst += rows_words(T, D);
  uint32_t* vk = v_pairs ? dst : nullptr;
  leaf.convert(kb, ld, T, tvis, D, kr, kk);
  leaf.convert(vb, ld, T, tvis, D, vr, vk);
  return {kr, vr, kk, vk};
}

int64_t block_words(int64_t T, int64_t D, bool k_rows, bool k_pairs, bool v_rows, bool v_pairs) {
  return (k_rows + v_rows) * rows_words(T, D) + (k_pairs + v_pairs) * pairs_words(T, D);
}

// Every (batch, kv head) block of K and V converted (threaded) into one buffer reused across calls;
// block bg starts at bg * block_words.
const uint32_t* convert_all(const Bf16Leaf& leaf, const float* k, const float* v, int64_t B, int64_t T, int64_t tvis, int64_t Hkv,
                            int64_t D, bool k_rows, bool k_pairs, bool v_rows, bool v_pairs) {
  static std::vector<uint32_t> buf;  // the JS thread runs one call at a time
  const int64_t per = block_words(T, D, k_rows, k_pairs, v_rows, v_pairs);
  const int64_t words = per * B * Hkv;
  if (static_cast<int64_t>(buf.size()) < words) {
    try {
      buf.assign(static_cast<size_t>(words), 0u);
    } catch (const std::bad_alloc&) {
      buf = std::vector<uint32_t>();
      throw OutOfMemory("the bf16 attention K/V copies", static_cast<size_t>(words) * 4);
    }
  }
  uint32_t* base = buf.data();
  const int64_t ld = Hkv * D;
  auto run = [&](int64_t begin, int64_t end, int) {
    for (int64_t bg = begin; bg < end; ++bg) {
      const int64_t off = (bg / Hkv) * T * ld + (bg % Hkv) * D;
      convert_block(leaf, k + off, v + off, ld, T, tvis, D, k_rows, k_pairs, v_rows, v_pairs, base + bg * per);
    }
  };
  if (static_cast<double>(B * T * ld) < kInlineFma) run(0, B * Hkv, 0);
  else parallel_for(B * Hkv, 1, run, num_threads());
  return base;
}

// The block views of convert_all's buffer (the same order as convert_block).
AttnBf16KV block_at(const uint32_t* base, int64_t bg, int64_t T, int64_t D, bool k_rows, bool k_pairs, bool v_rows, bool v_pairs) {
  const uint32_t* p = base + bg * block_words(T, D, k_rows, k_pairs, v_rows, v_pairs);
  AttnBf16KV kv = {nullptr, nullptr, nullptr, nullptr};
  if (k_rows) { kv.kr = p; p += rows_words(T, D); }
  if (k_pairs) { kv.kk = p; p += pairs_words(T, D); }
  if (v_rows) { kv.vr = p; p += rows_words(T, D); }
  if (v_pairs) kv.vk = p;
  return kv;
}

// Optional per-query first visible key (packed rows): argument i, B*Tq entries, lo[b*Tq + i] in
// [0, qOffset + i]; null / undefined / absent = causal rows.
const int32_t* lo_arg(const Napi::CallbackInfo& info, size_t i, int64_t B, int64_t Tq, int64_t q_offset, const char* fn) {
  if (info.Length() <= i || info[i].IsUndefined() || info[i].IsNull()) return nullptr;
  const int32_t* lo = i32_arg(info, i, B * Tq, fn, "lo");
  for (int64_t b = 0; b < B; ++b)
    for (int64_t t = 0; t < Tq; ++t) {
      const int32_t v = lo[b * Tq + t];
      if (v < 0 || v > q_offset + t)
        throw arg_error(info.Env(), fn, "lo[" + std::to_string(b * Tq + t) + "] = " + std::to_string(v) + " is outside [0, " +
                                            std::to_string(q_offset + t) + "] (a query sees keys lo..itself)");
    }
  return lo;
}

Napi::Value AttentionForwardBf16(const Napi::CallbackInfo& info) {
  const char* fn = "attentionForwardBf16";
  const AttnFwdParams p = fwd_args(info, fn);
  const int32_t* lo = lo_arg(info, 13, p.B, p.Tq, p.q_offset, fn);
  const Bf16Leaf& leaf = bf16_leaf(info, fn);
  // Forward tasks are (batch, head, query tile): K rows and V key pairs converted once up front.
  const uint32_t* base = convert_all(leaf, p.k, p.v, p.B, p.Tk, p.q_offset + p.Tq, p.Hkv, p.D, true, false, false, true);
  run_fwd(p, attention_bf16_fwd_ws_floats(p.D), [&](int64_t b, int64_t h, int64_t q0, int64_t n, float* w) {
    const AttnBf16KV kv = block_at(base, b * p.Hkv + h / (p.H / p.Hkv), p.Tk, p.D, true, false, false, true);
    leaf.fwd(p, kv, lo, b, h, q0, n, w);
  });
  return info.Env().Undefined();
}

Napi::Value AttentionBackwardBf16(const Napi::CallbackInfo& info) {
  const char* fn = "attentionBackwardBf16";
  const AttnBwdParams p = bwd_args(info, fn);
  const int32_t* lo = lo_arg(info, 15, p.B, p.T, 0, fn);
  const Bf16Leaf& leaf = bf16_leaf(info, fn);
  const int64_t ld = p.Hkv * p.D;
  // Fused tasks own a (batch, kv head) block: each converts its block into its workspace (it stays
  // in cache for the products). Split tasks share blocks: converted once up front.
  const int64_t per = block_words(p.T, p.D, true, true, true, false);
  const uint32_t* base = bwd_fused(p) ? nullptr : convert_all(leaf, p.k, p.v, p.B, p.T, p.T, p.Hkv, p.D, true, true, true, false);
  run_bwd(
      p, [&](bool fused) { return fused ? attention_bf16_bwd_ws_floats(p.D, p.T) + per : attention_bf16_bwd_ws_floats(p.D, ATTN_BK); },
      [&](int64_t b, int64_t kvh, float* w) {
        const int64_t off = b * p.T * ld + kvh * p.D;
        uint32_t* scratch = reinterpret_cast<uint32_t*>(w + attention_bf16_bwd_ws_floats(p.D, p.T));
        const AttnBf16KV kv = convert_block(leaf, p.k + off, p.v + off, ld, p.T, p.T, p.D, true, true, true, false, scratch);
        leaf.group(p, kv, lo, b, kvh, w);
      },
      [&](int64_t b, int64_t kvh, int64_t j0, int64_t nk, float* w) {
        leaf.dkdv(p, block_at(base, b * p.Hkv + kvh, p.T, p.D, true, true, true, false), lo, b, kvh, j0, nk, w);
      },
      [&](int64_t b, int64_t h, int64_t q0, int64_t nq, float* w) {
        leaf.dq(p, block_at(base, b * p.Hkv + h / (p.H / p.Hkv), p.T, p.D, true, true, true, false), lo, b, h, q0, nq, w);
      });
  return info.Env().Undefined();
}

// ---------------------------------------------------------------------------------------------
// Layout-aware attention.

typedef void (*LFwdFn)(const AttnLayoutParams&, int64_t, int64_t, float*);
typedef void (*LGroupFn)(const AttnLayoutParams&, int64_t, int64_t, int64_t, int64_t, float*);
typedef void (*LDkdvFn)(const AttnLayoutParams&, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t, float*);

LFwdFn lfwd_fn() {
  switch (current_isa()) {
    case Isa::avx512: return attention_layout_fwd_tile_avx512;
    case Isa::avx2: return attention_layout_fwd_tile_avx2;
    default: return attention_layout_fwd_tile_portable;
  }
}
LFwdFn ldelta_fn() {
  switch (current_isa()) {
    case Isa::avx512: return attention_layout_delta_avx512;
    case Isa::avx2: return attention_layout_delta_avx2;
    default: return attention_layout_delta_portable;
  }
}
LGroupFn lgroup_fn() {
  switch (current_isa()) {
    case Isa::avx512: return attention_layout_bwd_group_avx512;
    case Isa::avx2: return attention_layout_bwd_group_avx2;
    default: return attention_layout_bwd_group_portable;
  }
}
LDkdvFn ldkdv_fn() {
  switch (current_isa()) {
    case Isa::avx512: return attention_layout_bwd_dkdv_avx512;
    case Isa::avx2: return attention_layout_bwd_dkdv_avx2;
    default: return attention_layout_bwd_dkdv_portable;
  }
}
LFwdFn ldq_fn() {
  switch (current_isa()) {
    case Isa::avx512: return attention_layout_bwd_dq_avx512;
    case Isa::avx2: return attention_layout_bwd_dq_avx2;
    default: return attention_layout_bwd_dq_portable;
  }
}

// The validated layout, planned for the leaf kernels (see attention.h).
struct LayoutPlan {
  std::vector<int32_t> lo;
  std::vector<float> kbias;
  std::vector<int32_t> pstart;
  std::vector<AttnLayoutTile> tiles;
  std::vector<int64_t> row_tiles;  // tiles of row b: [row_tiles[b], row_tiles[b+1])
  std::vector<int64_t> uniform;    // indices of kind-1 tiles
  double pairs = 0;                // sum over tiles of nq * (khi - klo): (query, key) pairs scanned
};

void add_tiles(LayoutPlan& pl, int64_t b, int64_t T, int64_t a, int64_t e, int32_t kind, int32_t klo, int32_t parts, int32_t n) {
  for (int64_t q0 = a; q0 < e; q0 += ATTN_BQ) {
    AttnLayoutTile t;
    t.b = static_cast<int32_t>(b);
    t.q0 = static_cast<int32_t>(q0);
    t.nq = static_cast<int32_t>(e - q0 < int64_t(ATTN_BQ) ? e - q0 : int64_t(ATTN_BQ));
    t.kind = kind;
    t.khi = t.q0 + t.nq;
    t.klo = klo;
    if (kind == 0)
      for (int64_t i = 0; i < t.nq; ++i) t.klo = i == 0 || pl.lo[b * T + q0 + i] < t.klo ? pl.lo[b * T + q0 + i] : t.klo;
    t.parts = parts;
    t.n = n;
    if (kind == 1) pl.uniform.push_back(static_cast<int64_t>(pl.tiles.size()));
    pl.pairs += static_cast<double>(t.nq) * static_cast<double>(t.khi - t.klo);
    pl.tiles.push_back(t);
  }
}

// Validates the layout (TypeError naming the first problem) and plans it. Rules (docs/design.md §2):
// group ids in [0, G) with G = nInputs.length, each group's tokens one contiguous run inside one
// row; nInputs[g] in [1, maxInputs]; weighting[g] in {0, 1, 2}; an n = 1 group has parts 0 or -1
// (one causal part); an n >= 2 group holds input parts 0, 1, ..., n-1 (each non-empty, in order)
// and then optionally the output part -1.
void plan_layout(const Napi::Env& env, const char* fn, int64_t B, int64_t T, const int32_t* group, const int32_t* part,
                 const int32_t* nin, const int32_t* wt, int64_t G, int64_t M, LayoutPlan& pl) {
  auto err = [&](const std::string& what) { return arg_error(env, fn, what); };
  for (int64_t g = 0; g < G; ++g) {
    if (nin[g] < 1 || nin[g] > M)
      throw err("nInputs[" + std::to_string(g) + "] = " + std::to_string(nin[g]) + " must be in [1, maxInputs = " + std::to_string(M) + "]");
    if (wt[g] < 0 || wt[g] > 2)
      throw err("weighting[" + std::to_string(g) + "] = " + std::to_string(wt[g]) + " must be 0 (uniform), 1 (fid) or 2 (vanilla)");
  }
  std::vector<uint8_t> seen(static_cast<size_t>(G), 0);
  pl.lo.assign(static_cast<size_t>(B * T), 0);
  pl.kbias.assign(static_cast<size_t>(B * T), 0.0f);
  pl.row_tiles.push_back(0);
  struct URun { int64_t ostart, end; int32_t parts, n, gstart; };
  std::vector<URun> uruns;
  for (int64_t b = 0; b < B; ++b) {
    uruns.clear();
    const int32_t* gr = group + b * T;
    const int32_t* pr = part + b * T;
    int32_t* lo = pl.lo.data() + b * T;
    float* kb = pl.kbias.data() + b * T;
    for (int64_t s = 0; s < T;) {
      const int32_t g = gr[s];
      if (g < 0 || g >= G)
        throw err("group[" + std::to_string(b * T + s) + "] = " + std::to_string(g) + " is not a group id in [0, " + std::to_string(G) + ")");
      if (seen[g]) throw err("the tokens of group " + std::to_string(g) + " are not contiguous in one row");
      seen[g] = 1;
      int64_t e = s;
      while (e < T && gr[e] == g) ++e;
      const int32_t n = nin[g];
      if (n == 1) {
        for (int64_t t = s; t < e; ++t) {
          if (pr[t] != 0 && pr[t] != -1)
            throw err("part[" + std::to_string(b * T + t) + "] = " + std::to_string(pr[t]) + ": a group with one input has parts 0 or -1 only");
          lo[t] = static_cast<int32_t>(s);
        }
        s = e;
        continue;
      }
      const int32_t parts = static_cast<int32_t>(pl.pstart.size());
      int32_t cur = -2;
      int64_t ostart = e, istart = s;
      for (int64_t t = s; t < e; ++t) {
        const int32_t p = pr[t];
        if (p != cur) {
          const bool ok = cur == -2 ? p == 0 : cur >= 0 && (p == cur + 1 ? p < n : p == -1 && cur == n - 1);
          if (!ok)
            throw err("part[" + std::to_string(b * T + t) + "] = " + std::to_string(p) + " after " +
                      (cur == -2 ? std::string("the group start") : std::to_string(cur)) + ": group " + std::to_string(g) +
                      " (nInputs " + std::to_string(n) + ") must hold input parts 0.." + std::to_string(n - 1) +
                      " in order, then the output part -1");
          if (p >= 0) {
            pl.pstart.push_back(static_cast<int32_t>(t));
            istart = t;
          } else {
            ostart = t;
          }
          cur = p;
        }
        lo[t] = static_cast<int32_t>(p >= 0 ? istart : s);
      }
      if (cur != -1 && cur != n - 1)
        throw err("group " + std::to_string(g) + " ends before its input part " + std::to_string(cur + 1) + " (nInputs " + std::to_string(n) + ")");
      pl.pstart.push_back(static_cast<int32_t>(ostart));
      pl.pstart.push_back(static_cast<int32_t>(e));
      if (wt[g] == 1) {
        const float bias = logf(static_cast<float>(n));
        for (int64_t t = ostart; t < e; ++t) kb[t] = bias;
      }
      if (wt[g] == 0 && ostart < e) uruns.push_back({ostart, e, parts, n, static_cast<int32_t>(s)});
      s = e;
    }
    int64_t q = 0;
    for (const URun& u : uruns) {
      add_tiles(pl, b, T, q, u.ostart, 0, 0, 0, 0);
      add_tiles(pl, b, T, u.ostart, u.end, 1, u.gstart, u.parts, u.n);
      q = u.end;
    }
    add_tiles(pl, b, T, q, T, 0, 0, 0, 0);
    pl.row_tiles.push_back(static_cast<int64_t>(pl.tiles.size()));
  }
}

// Reads and checks the shared arguments of attentionLayoutForward/Backward; `first` is the index
// of B, `layout` the index of group.
void layout_args(const Napi::CallbackInfo& info, const char* fn, size_t first, size_t layout, AttnLayoutParams& p, LayoutPlan& pl) {
  Napi::Env env = info.Env();
  p.B = dim_arg(info, first, fn, "B");
  p.T = dim_arg(info, first + 1, fn, "T");
  p.H = dim_arg(info, first + 2, fn, "nHeads");
  p.Hkv = dim_arg(info, first + 3, fn, "nKvHeads");
  p.D = dim_arg(info, first + 4, fn, "headDim");
  p.scale = scale_arg(info, first + 5, fn);
  p.M = dim_arg(info, layout + 4, fn, "maxInputs");
  check_heads(env, fn, p.H, p.Hkv);
  const int64_t nq = mul_checked(env, fn, {p.B, p.T, p.H, p.D});
  const int64_t nk = mul_checked(env, fn, {p.B, p.T, p.Hkv, p.D});
  const int64_t ns = mul_checked(env, fn, {p.B, p.H, p.T, p.M + 1});
  (void)ns;
  mul_checked(env, fn, {p.T, (p.D + 15) / 16 * 16, 2});
  p.q = f32_arg(info, 0, nq, fn, "q");
  p.k = f32_arg(info, 1, nk, fn, "k");
  p.v = f32_arg(info, 2, nk, fn, "v");
  p.out = f32_arg(info, 3, nq, fn, "out");
  p.stats = f32_arg(info, 4, p.B * p.H * p.T * p.M, fn, "stats");
  const int32_t* group = i32_arg(info, layout, p.B * p.T, fn, "group");
  const int32_t* part = i32_arg(info, layout + 1, p.B * p.T, fn, "part");
  if (info.Length() <= layout + 2 || !info[layout + 2].IsTypedArray()) throw arg_error(env, fn, "nInputs must be a typed array");
  const int64_t G = static_cast<int64_t>(info[layout + 2].As<Napi::TypedArray>().ElementLength());
  const int32_t* nin = i32_arg(info, layout + 2, G, fn, "nInputs");
  const int32_t* wt = i32_arg(info, layout + 3, G, fn, "weighting");
  plan_layout(env, fn, p.B, p.T, group, part, nin, wt, G, p.M, pl);
  p.lo = pl.lo.data();
  p.kbias = pl.kbias.data();
  p.pstart = pl.pstart.data();
  p.tiles = pl.tiles.data();
  p.dout = nullptr;
  p.dq = p.dk = p.dv = p.uL = p.uD = nullptr;
}

Napi::Value AttentionLayoutForward(const Napi::CallbackInfo& info) {
  const char* fn = "attentionLayoutForward";
  AttnLayoutParams p;
  LayoutPlan pl;
  layout_args(info, fn, 5, 11, p, pl);
  const LFwdFn tile = lfwd_fn();
  const int64_t ntiles = static_cast<int64_t>(pl.tiles.size());
  // Heaviest tiles first (dynamic scheduling), then query heads.
  std::vector<int64_t> order(static_cast<size_t>(ntiles));
  for (int64_t i = 0; i < ntiles; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) {
    const AttnLayoutTile &x = pl.tiles[a], &y = pl.tiles[b];
    return static_cast<int64_t>(x.nq) * (x.khi - x.klo) > static_cast<int64_t>(y.nq) * (y.khi - y.klo);
  });
  const double work = 2.0 * pl.pairs * static_cast<double>(p.H) * static_cast<double>(p.D);
  const int workers = work < kInlineFma ? 1 : num_threads();
  int64_t stride = 0;
  float* ws = workspace(workers, attention_layout_fwd_ws_floats(p.D), &stride);
  const int64_t H = p.H;
  auto run = [&](int64_t begin, int64_t end, int worker) {
    float* w = ws + static_cast<int64_t>(worker) * stride;
    for (int64_t t = begin; t < end; ++t) tile(p, order[t / H], t % H, w);
  };
  if (workers == 1) run(0, ntiles * H, 0);
  else parallel_for(ntiles * H, 1, run, workers);
  return info.Env().Undefined();
}

Napi::Value AttentionLayoutBackward(const Napi::CallbackInfo& info) {
  const char* fn = "attentionLayoutBackward";
  Napi::Env env = info.Env();
  AttnLayoutParams p;
  LayoutPlan pl;
  layout_args(info, fn, 9, 15, p, pl);
  const int64_t nq = p.B * p.T * p.H * p.D;
  const int64_t nk = p.B * p.T * p.Hkv * p.D;
  p.dout = f32_arg(info, 5, nq, fn, "dOut");
  p.dq = f32_arg(info, 6, nq, fn, "dq");
  p.dk = f32_arg(info, 7, nk, fn, "dk");
  p.dv = f32_arg(info, 8, nk, fn, "dv");
  const double work = 2.5 * 2.0 * pl.pairs * static_cast<double>(p.H) * static_cast<double>(p.D);
  const int threads = num_threads();
  const int workers = work < kInlineFma ? 1 : threads;
  const int64_t H = p.H;

  const int64_t ngroups = p.B * p.Hkv;
  const bool fused = workers == 1 || ngroups % workers == 0 || ngroups >= 4 * static_cast<int64_t>(workers);
  // Split mode: the dk/dv tasks need the effective (L, Delta) per key slot of the uniform output
  // queries before they start (fused mode computes them per tile, see lbwd_uniform_cached).
  std::vector<float> uLD;
  if (!fused && !pl.uniform.empty()) {
    const size_t per = static_cast<size_t>(p.B * p.H * p.T * (p.M + 1));
    uLD.assign(2 * per, 0.0f);
    p.uL = uLD.data();
    p.uD = uLD.data() + per;
    const LFwdFn delta = ldelta_fn();
    const int64_t nt = static_cast<int64_t>(pl.uniform.size()) * H;
    int64_t stride = 0;
    float* ws = workspace(workers, attention_layout_bwd_ws_floats(p.D, p.M, 0), &stride);
    auto run = [&](int64_t begin, int64_t end, int worker) {
      float* w = ws + static_cast<int64_t>(worker) * stride;
      for (int64_t t = begin; t < end; ++t) delta(p, pl.uniform[t / H], t % H, w);
    };
    if (workers == 1) run(0, nt, 0);
    else parallel_for(nt, 1, run, workers);
  }

  int64_t stride = 0;
  if (fused) {
    // Kind-1 tiles run the cached two-pass path: room for P and dP of up to T keys.
    float* ws = workspace(workers, attention_layout_bwd_ws_floats(p.D, p.M, p.T) + (pl.uniform.empty() ? 0 : 2 * p.T * ATTN_BQ), &stride);
    const LGroupFn group = lgroup_fn();
    auto run = [&](int64_t begin, int64_t end, int worker) {
      float* w = ws + static_cast<int64_t>(worker) * stride;
      for (int64_t t = begin; t < end; ++t) {
        const int64_t b = t / p.Hkv;
        group(p, b, t % p.Hkv, pl.row_tiles[b], pl.row_tiles[b + 1], w);
      }
    };
    if (workers == 1) run(0, ngroups, 0);
    else parallel_for(ngroups, 1, run, workers);
  } else {
    float* ws = workspace(workers, attention_layout_bwd_ws_floats(p.D, p.M, ATTN_BK), &stride);
    const LDkdvFn dkdv = ldkdv_fn();
    const LFwdFn dq = ldq_fn();
    const int64_t nkt = (p.T + ATTN_BK - 1) / ATTN_BK;
    const int64_t nkv_tasks = ngroups * nkt;
    const int64_t ntiles = static_cast<int64_t>(pl.tiles.size());
    auto run = [&](int64_t begin, int64_t end, int worker) {
      float* w = ws + static_cast<int64_t>(worker) * stride;
      for (int64_t t = begin; t < end; ++t) {
        if (t < nkv_tasks) {
          const int64_t kt = t / ngroups, bk = t % ngroups;
          const int64_t b = bk / p.Hkv;
          const int64_t j0 = kt * ATTN_BK;
          dkdv(p, b, bk % p.Hkv, j0, p.T - j0 < int64_t(ATTN_BK) ? p.T - j0 : int64_t(ATTN_BK), pl.row_tiles[b], pl.row_tiles[b + 1], w);
        } else {
          const int64_t u = t - nkv_tasks;
          dq(p, ntiles - 1 - u / H, u % H, w);
        }
      }
    };
    parallel_for(nkv_tasks + ntiles * H, 1, run, workers);
  }
  (void)env;
  return info.Env().Undefined();
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
  export_fn<AttentionForward>(env, exports, "attentionForward");
  export_fn<AttentionBackward>(env, exports, "attentionBackward");
  export_fn<AttentionForwardBf16>(env, exports, "attentionForwardBf16");
  export_fn<AttentionBackwardBf16>(env, exports, "attentionBackwardBf16");
  export_fn<AttentionLayoutForward>(env, exports, "attentionLayoutForward");
  export_fn<AttentionLayoutBackward>(env, exports, "attentionLayoutBackward");
  export_fn<AttentionExp>(env, exports, "_attentionExp");
}

}  // namespace mt
