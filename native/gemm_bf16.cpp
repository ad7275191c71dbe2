// bf16 GEMM (bf16 operands, fp32 accumulation) and fp32 <-> bf16 conversion: Node-API glue,
// argument validation, capability checks, blocking, threading and dispatch. Layouts and semantics
// are in gemm_bf16.h; the leaf kernels are in gemm_bf16_{avx512,amx,portable}.cpp.
//
// Implementations ("bf16 ISA"), chosen at load time like the fp32 ISA (cpu.cpp):
//   amx         AMX-BF16 tiles (TDPBF16PS) -- untested on the development machine (no AMX there)
//   avx512bf16  AVX512-BF16 (VDPBF16PS)
//   portable    plain C++: never chosen automatically; only setBf16Isa('portable') or
//               MIXTUNE_BF16=portable select it (tests, and results defined on any CPU)
//   none        no bf16 matmul: gemmBf16 / gemmBf16Packed throw an error naming the missing
//               instructions (a CPU without them never silently gets a slow path)
// MIXTUNE_BF16=amx|avx512bf16|portable|none overrides the choice (one the CPU cannot run gives
// 'none' with a reason). amx and avx512bf16 also need the fp32 kernels at ISA avx512: MIXTUNE_ISA /
// setIsa below it disable them (with that reason).
//
// Exports (argument order):
//   bf16Info() -> { avx512bf16, amxBf16, best, current, available, reason }
//   setBf16Isa('auto'|'amx'|'avx512bf16'|'portable'|'none')
//   f32ToBf16(src: Float32Array, dst: Uint16Array)   converts src.length values (any CPU)
//   bf16ToF32(src: Uint16Array, dst: Float32Array)   converts src.length values (any CPU)
//   gemmBf16(transA, transB, M, N, K, alpha, A, B, beta, C): as addon.gemm, A and B each a
//     Float32Array (rounded to bf16 while packing) or a Uint16Array of bf16; C Float32Array.
//   gemmBf16PackedSize(K, N) -> number of bf16 of a prepacked op(B) (K x N)
//   gemmBf16PackB(transB, K, N, B, dst): packs op(B) (B as in gemmBf16) into dst (Uint16Array of
//     at least gemmBf16PackedSize(K, N)); works on any CPU (the layout is the same for every path)
//   gemmBf16Packed(transA, M, N, K, alpha, A, packedB, beta, C): gemmBf16 with a prepacked op(B)
//   gemmBf16Blocking([kc, mc, nc[, tilesPerThread]]) -> { kc, mc, nc, tilesPerThread, mr, nr, kalign, isa }
//   measureBf16Peak(seconds) -> { gflops, threads }: VDPBF16PS peak (4 FLOPs per lane per instruction)
//   bf16AlignOffset(u16) -> elements to skip for a 64-byte aligned view (packed B buffers)
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>
#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "cpu.h"
#include "gemm_bf16.h"
#include "napi_util.h"
#include "threadpool.h"

namespace mt {

namespace {

enum class Bf16Isa { none = 0, portable = 1, avx512bf16 = 2, amx = 3 };

const char* bf16_isa_name(Bf16Isa i) {
  switch (i) {
    case Bf16Isa::amx: return "amx";
    case Bf16Isa::avx512bf16: return "avx512bf16";
    case Bf16Isa::portable: return "portable";
    default: return "none";
  }
}

bool parse_bf16_isa(const std::string& s, Bf16Isa* out) {
  if (s == "amx") *out = Bf16Isa::amx;
  else if (s == "avx512bf16") *out = Bf16Isa::avx512bf16;
  else if (s == "portable") *out = Bf16Isa::portable;
  else if (s == "none") *out = Bf16Isa::none;
  else return false;
  return true;
}

struct Bf16Cpu {
  bool avx512bf16 = false;  // AVX-512 F/VL/DQ/BW + AVX512_BF16, usable by the OS
  bool amx = false;         // AMX-TILE + AMX-BF16, and Linux granted the tile data permission
};

Bf16Cpu detect_bf16() {
  Bf16Cpu c;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
                      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
                      __builtin_cpu_supports("fma");  // also checks that the OS saves the zmm state
  unsigned a = 0, b = 0, cx = 0, d = 0;
  if (avx512 && __get_cpuid_count(7, 1, &a, &b, &cx, &d)) c.avx512bf16 = (a >> 5) & 1u;
  if (c.avx512bf16 && __get_cpuid_count(7, 0, &a, &b, &cx, &d)) {
    const bool amx_bf16 = (d >> 22) & 1u, amx_tile = (d >> 24) & 1u;
    c.amx = amx_bf16 && amx_tile && amx_request_permission();
  }
#endif
  return c;
}

const Bf16Cpu g_cpu = detect_bf16();

bool cpu_can_run(Bf16Isa i) {
  switch (i) {
    case Bf16Isa::amx: return g_cpu.amx;
    case Bf16Isa::avx512bf16: return g_cpu.avx512bf16;
    default: return true;
  }
}

Bf16Isa best_bf16() { return g_cpu.amx ? Bf16Isa::amx : g_cpu.avx512bf16 ? Bf16Isa::avx512bf16 : Bf16Isa::none; }

const char* kNoBf16Cpu =
    "this CPU has neither AVX512-BF16 (VDPBF16PS) nor AMX-BF16 (TDPBF16PS) instructions; use fp32 precision";

struct Bf16State {
  Bf16Isa isa;
  std::string reason;  // why isa is none
};

Bf16State initial_state() {
  const char* env = std::getenv("MIXTUNE_BF16");
  if (env && *env) {
    Bf16Isa want;
    if (!parse_bf16_isa(env, &want))
      return {Bf16Isa::none, std::string("MIXTUNE_BF16='") + env + "' is not one of amx, avx512bf16, portable, none"};
    if (want == Bf16Isa::none) return {Bf16Isa::none, "disabled by MIXTUNE_BF16=none"};
    if (!cpu_can_run(want))
      return {Bf16Isa::none, std::string("MIXTUNE_BF16=") + env + " asks for " +
                                 (want == Bf16Isa::amx ? "AMX-BF16" : "AVX512-BF16 (VDPBF16PS)") + ", which this CPU lacks"};
    return {want, ""};
  }
  const Bf16Isa b = best_bf16();
  return {b, b == Bf16Isa::none ? kNoBf16Cpu : ""};
}

std::atomic<int> g_isa{-1};
std::string g_reason;  // written only from the JS thread (load, setBf16Isa)

Bf16Isa configured() {
  int v = g_isa.load();
  if (v < 0) {
    Bf16State s = initial_state();
    g_reason = s.reason;
    g_isa.store(static_cast<int>(s.isa));
    v = static_cast<int>(s.isa);
  }
  return static_cast<Bf16Isa>(v);
}

// The implementation a call uses now, or none with *why set.
Bf16Isa effective(std::string* why) {
  const Bf16Isa cur = configured();
  if (cur == Bf16Isa::none) {
    *why = g_reason;
    return cur;
  }
  if ((cur == Bf16Isa::amx || cur == Bf16Isa::avx512bf16) && current_isa() != Isa::avx512) {
    *why = std::string("the kernels are limited to ISA '") + isa_name(current_isa()) +
           "' (MIXTUNE_ISA / setIsa), which excludes AVX512-BF16 and AMX-BF16";
    return Bf16Isa::none;
  }
  return cur;
}

typedef void (*PackAFn)(const void*, bool, int64_t, bool, int64_t, int64_t, int64_t, int64_t, int64_t, uint16_t*);
typedef void (*PackBFn)(const void*, bool, int64_t, bool, int64_t, int64_t, int64_t, int64_t, int64_t, uint16_t*, int64_t);
typedef void (*MacroFn)(int64_t, int64_t, int64_t, const uint16_t*, const uint16_t*, int64_t, float*, int64_t, float, float);

struct Impl {
  int mr, kalign;
  PackAFn pack_a;
  PackBFn pack_b;
  MacroFn macro;
};

const Impl kPortable = {kBf16MrPortable, 2, gemm_bf16_pack_a_portable, gemm_bf16_pack_b_portable, gemm_bf16_macro_portable};
const Impl kAvx512 = {kBf16MrAvx512, 2, gemm_bf16_pack_a_avx512bf16, gemm_bf16_pack_b_avx512bf16, gemm_bf16_macro_avx512bf16};
const Impl kAmx = {kBf16MrAmx, 32, gemm_bf16_pack_a_amx, gemm_bf16_pack_b_avx512bf16, gemm_bf16_macro_amx};

const Impl& impl_of(Bf16Isa i) { return i == Bf16Isa::amx ? kAmx : i == Bf16Isa::avx512bf16 ? kAvx512 : kPortable; }

// Packing op(B) for gemmBf16PackB: any CPU (the layout does not depend on the implementation).
PackBFn pack_b_any() {
  return g_cpu.avx512bf16 && current_isa() == Isa::avx512 ? gemm_bf16_pack_b_avx512bf16 : gemm_bf16_pack_b_portable;
}

// Cache blocking, in bf16 elements (the same bytes as the fp32 GEMM's kc=256: an A micro-panel
// 14 x 512 bf16 in L1, a 512 x 512 bf16 B block in L2). kc is kept a multiple of 32.
std::atomic<int64_t> g_kc{512}, g_mc{336}, g_nc{512}, g_tiles_per_thread{2};

struct AlignedU16 {
  uint16_t* p = nullptr;
  size_t cap = 0;
  uint16_t* get(size_t n) {
    if (n > cap) {
      std::free(p);
      p = nullptr;
      cap = 0;
      if (n > (SIZE_MAX - 4095) / 2) throw OutOfMemory("bf16 GEMM packing buffers", SIZE_MAX);
      const size_t bytes = ((n * 2 + 4095) / 4096) * 4096;
      p = static_cast<uint16_t*>(std::aligned_alloc(64, bytes));
      if (!p) throw OutOfMemory("bf16 GEMM packing buffers", bytes);
      cap = bytes / 2;
    }
    return p;
  }
  ~AlignedU16() { std::free(p); }
};
thread_local AlignedU16 tl_pa, tl_pb;

inline int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up(int64_t a, int64_t b) { return cdiv(a, b) * b; }

void scale_c(int64_t M, int64_t N, float beta, float* C) {
  if (beta == 1.0f) return;
  const int64_t n = M * N;
  if (beta == 0.0f) std::memset(C, 0, static_cast<size_t>(n) * sizeof(float));
  else
    for (int64_t i = 0; i < n; ++i) C[i] *= beta;
}

int64_t packed_kp(int64_t K) { return round_up(std::max<int64_t>(K, 1), kBf16PrepackKAlign); }
int64_t packed_size(int64_t K, int64_t N) { return round_up(N, kBf16Nr) * packed_kp(K); }

// Packs all of op(B) (K x N) into the prepacked layout (dst: packed_size(K, N) bf16), threaded
// over the 32-column panels when op(B) = B^T (each panel reads 32 contiguous rows of B), and over
// ranges of k (k pairs) when op(B) = B (each range reads whole rows of B: a panel-wise split read
// 128-byte strips of every row, which measured ~2x slower on an activation not in cache).
void pack_b_full(PackBFn pack, const void* B, bool b_f32, bool tb, int64_t K, int64_t N, uint16_t* dst) {
  const int64_t kp = packed_kp(K), ldb = tb ? K : N, panels = cdiv(N, kBf16Nr);
  const bool par = num_threads() > 1 && K * N >= (int64_t(1) << 16);
  if (!tb && K > 0) {
    const int64_t pairs = kp / 2;
    auto work = [&](int64_t b, int64_t e, int) {
      const int64_t k0 = 2 * b, k1 = 2 * e;
      pack(B, b_f32, ldb, false, k0, std::max<int64_t>(0, std::min(K, k1) - k0), k1 - k0, 0, N, dst + k0 * kBf16Nr, kBf16Nr * kp);
    };
    if (par) parallel_for(pairs, std::max<int64_t>(8, pairs / (4 * num_threads())), work);
    else work(0, pairs, 0);
    return;
  }
  auto work = [&](int64_t b, int64_t e, int) {
    const int64_t j0 = b * kBf16Nr, nc = std::min(N, e * kBf16Nr) - j0;
    uint16_t* d = dst + j0 * kp;
    if (K == 0) std::memset(d, 0, static_cast<size_t>((e - b) * kBf16Nr * kp) * 2);
    else pack(B, b_f32, ldb, tb, 0, K, kp, j0, nc, d, kBf16Nr * kp);
  };
  if (par) parallel_for(panels, std::max<int64_t>(1, panels / (8 * num_threads())), work);
  else work(0, panels, 0);
}

// Largest op(B) that gemmBf16 packs whole before multiplying (a grow-only buffer of the calling
// thread); beyond it, B is packed per tile and k slice.
constexpr int64_t kFullPackMaxBytes = int64_t(64) << 20;
thread_local AlignedU16 tl_full_b;

// C = alpha * bf16(op(A)) . bf16(op(B)) + beta * C. B is either a source matrix (B, b_f32, tb) or,
// when packed != nullptr, a prepacked op(B) with k extent packed_kp(K).
void gemm_bf16_compute(const Impl& im, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const void* A,
                       bool a_f32, const void* B, bool b_f32, const uint16_t* packed, float beta, float* C) {
  if (M == 0 || N == 0) return;
  if (K == 0 || alpha == 0.0f) {
    scale_c(M, N, beta, C);
    return;
  }
  const int64_t lda = ta ? M : K, ldb = tb ? K : N, ldc = N;
  const int64_t mr = im.mr, nr = kBf16Nr, kalign = im.kalign;
  // With more than one A block to multiply, pack op(B) whole once (each element converted once)
  // and take the prepacked path: every A block is then packed once per k slice too.
  bool whole = false;
  if (!packed && M > 2 * mr && packed_size(K, N) * 2 <= kFullPackMaxBytes) {
    uint16_t* full = tl_full_b.get(static_cast<size_t>(packed_size(K, N)));
    pack_b_full(im.pack_b, B, b_f32, tb, K, N, full);
    packed = full;
    whole = true;
  }
  // An op(B) packed whole here (the training step's weight gradient dW = dY^T X: M = out, N = in,
  // K = tokens, usually K >> M) takes twice the k slice and half the tiles per thread (at least
  // one): each thread then streams the (L2-sized or larger) packed B past one A block of twice the
  // rows, and C is read back half as often. Measured on Zen 5 (2 threads, K = 2048, M x N =
  // 512x512, 1408x512, 512x1408, 8192x512): +5 to +20% over the prepacked blocking.
  const int64_t kcmax = std::max<int64_t>(32, g_kc.load() * (whole ? 2 : 1) / 32 * 32);
  const int64_t mcb = std::max<int64_t>(mr, g_mc.load() / mr * mr), ncmax = std::max<int64_t>(nr, g_nc.load() / nr * nr);
  const int threads = num_threads();
  const double flops = 2.0 * double(M) * double(N) * double(K);
  const bool parallel = threads > 1 && flops >= 3.0e6;

  // Tile grid over C, as in the fp32 GEMM (gemm.cpp): independent tiles, one per parallel_for
  // item, each packing its own B block per k slice (unless B is prepacked) and its A sub-blocks.
  // A prepacked B needs no L2-sized B blocks: tiles span all of N (split only for parallelism),
  // so each A block is packed once per k slice and the B panels stream past it.
  int64_t nt = packed ? 1 : cdiv(N, ncmax), mt = 1;
  if (parallel) {
    const int64_t tpt = whole ? std::max<int64_t>(1, g_tiles_per_thread.load() / 2) : g_tiles_per_thread.load();
    const int64_t want = tpt * int64_t(threads);
    const double ca = ta ? 2.0 : 1.0;
    while (mt * nt < want || (mt * nt) % threads != 0) {
      const bool can_row = cdiv(M, mt + 1) >= 2 * mr;
      const bool can_col = cdiv(N, nt + 1) >= nr;
      // A prepacked B costs nothing to "re-pack": prefer more tile rows then.
      const bool prefer_row = packed != nullptr || double(M) / double(mt) * ca >= double(N) / double(nt);
      if (can_row && (prefer_row || !can_col)) ++mt;
      else if (can_col) ++nt;
      else break;
    }
  }
  const int64_t mct = round_up(cdiv(M, mt), mr), nct = round_up(cdiv(N, nt), nr);
  mt = cdiv(M, mct);
  nt = cdiv(N, nct);
  const int64_t nk = cdiv(K, kcmax), kc = round_up(cdiv(K, nk), 32);
  const int64_t mcs = std::min(mcb, mct);
  const int64_t kp_packed = packed_kp(K);

  auto tile = [&](int64_t t0, int64_t t1, int) {
    uint16_t* pa = tl_pa.get(static_cast<size_t>(mcs * kc + 64));
    uint16_t* pbuf = packed ? nullptr : tl_pb.get(static_cast<size_t>(nct * kc + 64));
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t ti = t / nt, tj = t % nt;
      const int64_t i0 = ti * mct, j0 = tj * nct;
      const int64_t mtile = std::min(mct, M - i0), nc = std::min(nct, N - j0);
      for (int64_t p0 = 0; p0 < K; p0 += kc) {
        const int64_t kk = std::min(kc, K - p0);
        const int64_t kcp = round_up(kk, kalign);
        const float b0 = p0 == 0 ? beta : 1.0f;
        const uint16_t* pb;
        int64_t pb_stride;
        if (packed) {
          pb = packed + (j0 / nr) * nr * kp_packed + p0 * nr;
          pb_stride = nr * kp_packed;
        } else {
          im.pack_b(B, b_f32, ldb, tb, p0, kk, kcp, j0, nc, pbuf, nr * kcp);
          pb = pbuf;
          pb_stride = nr * kcp;
        }
        // equal A sub-blocks (no short last block): ceil(mtile / mcs) of them
        const int64_t sub = round_up(cdiv(mtile, cdiv(mtile, mcs)), mr);
        for (int64_t ii = 0; ii < mtile; ii += sub) {
          const int64_t mc = std::min(sub, mtile - ii);
          im.pack_a(A, a_f32, lda, ta, i0 + ii, mc, p0, kk, kcp, pa);
          im.macro(mc, nc, kcp, pa, pb, pb_stride, C + (i0 + ii) * ldc + j0, ldc, alpha, b0);
        }
      }
    }
  };
  if (parallel && mt * nt > 1) parallel_for(mt * nt, 1, tile);
  else tile(0, mt * nt, 0);
}

// ---- Node-API glue ----

int64_t checked_product(const Napi::CallbackInfo& info, const char* fn, int64_t a, int64_t b, const char* what) {
  if (static_cast<double>(a) * static_cast<double>(b) > 4.0e15) throw arg_error(info.Env(), fn, std::string(what) + " is too large");
  return a * b;
}

inline uint16_t* u16_arg(const Napi::CallbackInfo& info, size_t i, int64_t min_len, const char* fn, const char* name) {
  return typed_arg<uint16_t, napi_uint16_array>(info, i, min_len, fn, name);
}

// An operand that is a Float32Array (fp32, rounded while packing) or a Uint16Array (bf16).
const void* operand_arg(const Napi::CallbackInfo& info, size_t i, int64_t min_len, const char* fn, const char* name, bool* is_f32) {
  if (info.Length() > i && info[i].IsTypedArray() && info[i].As<Napi::TypedArray>().TypedArrayType() == napi_uint16_array) {
    *is_f32 = false;
    return u16_arg(info, i, min_len, fn, name);
  }
  if (info.Length() > i && info[i].IsTypedArray() && info[i].As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
    throw arg_error(info.Env(), fn, std::string(name) + " must be a Float32Array (fp32) or a Uint16Array (bf16)");
  *is_f32 = true;
  return f32_arg(info, i, min_len, fn, name);
}

const Impl& require_bf16(const Napi::CallbackInfo& info, const char* fn) {
  std::string why;
  const Bf16Isa i = effective(&why);
  if (i == Bf16Isa::none) {
    Napi::Error e = Napi::Error::New(info.Env(), std::string(fn) + ": bf16 matmuls are unavailable: " + why);
    e.Set("code", Napi::String::New(info.Env(), "ENOBF16"));
    throw e;
  }
  return impl_of(i);
}

Napi::Value GemmBf16(const Napi::CallbackInfo& info) {
  const char* fn = "gemmBf16";
  if (info.Length() != 10) throw arg_error(info.Env(), fn, "expected 10 arguments (transA, transB, M, N, K, alpha, A, B, beta, C)");
  const bool ta = bool_arg(info, 0, fn, "transA");
  const bool tb = bool_arg(info, 1, fn, "transB");
  const int64_t M = int_arg(info, 2, fn, "M"), N = int_arg(info, 3, fn, "N"), K = int_arg(info, 4, fn, "K");
  const double alpha = num_arg(info, 5, fn, "alpha"), beta = num_arg(info, 8, fn, "beta");
  bool af = true, bf = true;
  const void* A = operand_arg(info, 6, checked_product(info, fn, M, K, "M*K"), fn, "A", &af);
  const void* B = operand_arg(info, 7, checked_product(info, fn, K, N, "K*N"), fn, "B", &bf);
  float* C = f32_arg(info, 9, checked_product(info, fn, M, N, "M*N"), fn, "C");
  const Impl& im = require_bf16(info, fn);
  gemm_bf16_compute(im, ta, tb, M, N, K, static_cast<float>(alpha), A, af, B, bf, nullptr, static_cast<float>(beta), C);
  return info.Env().Undefined();
}

Napi::Value GemmBf16PackedSize(const Napi::CallbackInfo& info) {
  const char* fn = "gemmBf16PackedSize";
  const int64_t K = int_arg(info, 0, fn, "K"), N = int_arg(info, 1, fn, "N");
  checked_product(info, fn, K + 32, N + 32, "K*N");
  return Napi::Number::New(info.Env(), static_cast<double>(packed_size(K, N)));
}

Napi::Value GemmBf16PackB(const Napi::CallbackInfo& info) {
  const char* fn = "gemmBf16PackB";
  if (info.Length() != 5) throw arg_error(info.Env(), fn, "expected 5 arguments (transB, K, N, B, dst)");
  const bool tb = bool_arg(info, 0, fn, "transB");
  const int64_t K = int_arg(info, 1, fn, "K"), N = int_arg(info, 2, fn, "N");
  checked_product(info, fn, K + 32, N + 32, "K*N");
  bool bf = true;
  const void* B = operand_arg(info, 3, K * N, fn, "B", &bf);
  uint16_t* dst = u16_arg(info, 4, packed_size(K, N), fn, "dst");
  pack_b_full(pack_b_any(), B, bf, tb, K, N, dst);
  return info.Env().Undefined();
}

Napi::Value GemmBf16Packed(const Napi::CallbackInfo& info) {
  const char* fn = "gemmBf16Packed";
  if (info.Length() != 9) throw arg_error(info.Env(), fn, "expected 9 arguments (transA, M, N, K, alpha, A, packedB, beta, C)");
  const bool ta = bool_arg(info, 0, fn, "transA");
  const int64_t M = int_arg(info, 1, fn, "M"), N = int_arg(info, 2, fn, "N"), K = int_arg(info, 3, fn, "K");
  const double alpha = num_arg(info, 4, fn, "alpha"), beta = num_arg(info, 7, fn, "beta");
  checked_product(info, fn, K + 32, N + 32, "K*N");
  bool af = true;
  const void* A = operand_arg(info, 5, checked_product(info, fn, M, K, "M*K"), fn, "A", &af);
  const uint16_t* P = u16_arg(info, 6, packed_size(K, N), fn, "packedB");
  float* C = f32_arg(info, 8, checked_product(info, fn, M, N, "M*N"), fn, "C");
  const Impl& im = require_bf16(info, fn);
  gemm_bf16_compute(im, ta, false, M, N, K, static_cast<float>(alpha), A, af, nullptr, true, P, static_cast<float>(beta), C);
  return info.Env().Undefined();
}

template <bool kToBf16>
Napi::Value Convert(const Napi::CallbackInfo& info) {
  const char* fn = kToBf16 ? "f32ToBf16" : "bf16ToF32";
  if (info.Length() != 2 || !info[0].IsTypedArray()) throw arg_error(info.Env(), fn, "expected 2 arguments (src, dst)");
  const int64_t n = static_cast<int64_t>(info[0].As<Napi::TypedArray>().ElementLength());
  const bool vec = g_cpu.avx512bf16 && current_isa() == Isa::avx512;
  auto run = [&](auto* src, auto* dst, auto vfn, auto sfn) {
    auto work = [&](int64_t b, int64_t e, int) { (vec ? vfn : sfn)(src + b, dst + b, e - b); };
    if (num_threads() > 1 && n >= (int64_t(1) << 18)) parallel_for(n, int64_t(1) << 16, work);
    else work(0, n, 0);
  };
  if (kToBf16) {
    const float* src = f32_arg(info, 0, 0, fn, "src");
    uint16_t* dst = u16_arg(info, 1, n, fn, "dst");
    run(src, dst, f32_to_bf16_avx512, f32_to_bf16_portable);
  } else {
    const uint16_t* src = u16_arg(info, 0, 0, fn, "src");
    float* dst = f32_arg(info, 1, n, fn, "dst");
    run(src, dst, bf16_to_f32_avx512, bf16_to_f32_portable);
  }
  return info.Env().Undefined();
}

Napi::Value Bf16Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string why;
  const Bf16Isa eff = effective(&why);
  Napi::Object o = Napi::Object::New(env);
  o.Set("avx512bf16", Napi::Boolean::New(env, g_cpu.avx512bf16));
  o.Set("amxBf16", Napi::Boolean::New(env, g_cpu.amx));
  o.Set("best", Napi::String::New(env, bf16_isa_name(best_bf16())));
  o.Set("current", Napi::String::New(env, bf16_isa_name(eff)));
  o.Set("available", Napi::Boolean::New(env, eff != Bf16Isa::none));
  o.Set("reason", Napi::String::New(env, eff == Bf16Isa::none ? why : std::string()));
  return o;
}

Napi::Value SetBf16Isa(const Napi::CallbackInfo& info) {
  const char* fn = "setBf16Isa";
  if (info.Length() < 1 || !info[0].IsString()) throw arg_error(info.Env(), fn, "expected 'auto' | 'amx' | 'avx512bf16' | 'portable' | 'none'");
  const std::string s = info[0].As<Napi::String>().Utf8Value();
  (void)configured();
  if (s == "auto") {
    const Bf16Isa b = best_bf16();
    g_reason = b == Bf16Isa::none ? kNoBf16Cpu : "";
    g_isa.store(static_cast<int>(b));
    return info.Env().Undefined();
  }
  Bf16Isa want;
  if (!parse_bf16_isa(s, &want)) throw arg_error(info.Env(), fn, "unknown bf16 implementation '" + s + "'");
  if (!cpu_can_run(want)) throw arg_error(info.Env(), fn, "this CPU cannot run " + s);
  g_reason = want == Bf16Isa::none ? "disabled by setBf16Isa('none')" : "";
  g_isa.store(static_cast<int>(want));
  return info.Env().Undefined();
}

Napi::Value GemmBf16Blocking(const Napi::CallbackInfo& info) {
  const char* fn = "gemmBf16Blocking";
  if (info.Length() >= 3) {
    const int64_t kc = int_arg(info, 0, fn, "kc", 1), mc = int_arg(info, 1, fn, "mc", 1), nc = int_arg(info, 2, fn, "nc", 1);
    if (kc > 16384 || mc > 8192 || nc > 16384) throw arg_error(info.Env(), fn, "block sizes too large");
    g_kc = kc;
    g_mc = mc;
    g_nc = nc;
    if (info.Length() >= 4) {
      const int64_t tpt = int_arg(info, 3, fn, "tilesPerThread", 1);
      if (tpt > 64) throw arg_error(info.Env(), fn, "tilesPerThread too large");
      g_tiles_per_thread = tpt;
    }
  }
  std::string why;
  const Bf16Isa eff = effective(&why);
  const Impl& im = impl_of(eff);
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("kc", Napi::Number::New(info.Env(), double(g_kc.load())));
  o.Set("mc", Napi::Number::New(info.Env(), double(g_mc.load())));
  o.Set("nc", Napi::Number::New(info.Env(), double(g_nc.load())));
  o.Set("tilesPerThread", Napi::Number::New(info.Env(), double(g_tiles_per_thread.load())));
  o.Set("mr", Napi::Number::New(info.Env(), im.mr));
  o.Set("nr", Napi::Number::New(info.Env(), int(kBf16Nr)));
  o.Set("kalign", Napi::Number::New(info.Env(), im.kalign));
  o.Set("isa", Napi::String::New(info.Env(), bf16_isa_name(eff)));
  return o;
}

// Elements to skip from the start of a Uint16Array so that the view starts on a 64-byte boundary
// (typed-array backing stores do not move, so the answer holds for the array's lifetime).
Napi::Value Bf16AlignOffset(const Napi::CallbackInfo& info) {
  const uint16_t* p = u16_arg(info, 0, 0, "bf16AlignOffset", "array");
  const uintptr_t a = reinterpret_cast<uintptr_t>(p);
  return Napi::Number::New(info.Env(), static_cast<double>(((64 - a % 64) % 64) / 2));
}

volatile double g_sink = 0;

Napi::Value MeasureBf16Peak(const Napi::CallbackInfo& info) {
  const char* fn = "measureBf16Peak";
  double seconds = 1.0;
  if (info.Length() >= 1 && !info[0].IsUndefined()) seconds = num_arg(info, 0, fn, "seconds");
  if (!(seconds > 0.0 && seconds <= 600.0)) throw arg_error(info.Env(), fn, "seconds must be in (0, 600]");
  if (!g_cpu.avx512bf16) throw Napi::Error::New(info.Env(), std::string(fn) + ": " + kNoBf16Cpu);
  typedef std::chrono::steady_clock clk;
  const int threads = num_threads();
  std::vector<double> flops(static_cast<size_t>(threads), 0.0), sinks(static_cast<size_t>(threads), 0.0);
  {
    double f = 0;
    g_sink = g_sink + peak_dpbf16_avx512(200000, 1.0f, &f);
  }
  const auto start = clk::now();
  const auto deadline = start + std::chrono::duration_cast<clk::duration>(std::chrono::duration<double>(seconds));
  parallel_for(threads, 1, [&](int64_t b, int64_t e, int) {
    for (int64_t t = b; t < e; ++t) {
      double total = 0, s = 0;
      do {
        double f = 0;
        s += peak_dpbf16_avx512(100000, 1.0f + static_cast<float>(t), &f);
        total += f;
      } while (clk::now() < deadline);
      flops[static_cast<size_t>(t)] = total;
      sinks[static_cast<size_t>(t)] = s;
    }
  });
  const double wall = std::chrono::duration<double>(clk::now() - start).count();
  double total = 0, s = 0;
  for (int t = 0; t < threads; ++t) {
    total += flops[static_cast<size_t>(t)];
    s += sinks[static_cast<size_t>(t)];
  }
  g_sink = g_sink + s;
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("gflops", Napi::Number::New(info.Env(), total / wall / 1e9));
  o.Set("threads", Napi::Number::New(info.Env(), threads));
  return o;
}

}  // namespace

int bf16_attention_leaf(std::string* why) {
  const Bf16Isa i = effective(why);
  if (i == Bf16Isa::none) return 0;
  if (i == Bf16Isa::portable) return 1;
  if (!g_cpu.avx512bf16) {
    *why = "this CPU has AMX-BF16 but not AVX512-BF16, which the bf16 attention kernels use";
    return 0;
  }
  return 2;
}

void register_gemm_bf16(Napi::Env env, Napi::Object exports) {
  (void)configured();
  export_fn<Bf16Info>(env, exports, "bf16Info");
  export_fn<SetBf16Isa>(env, exports, "setBf16Isa");
  export_fn<Convert<true>>(env, exports, "f32ToBf16");
  export_fn<Convert<false>>(env, exports, "bf16ToF32");
  export_fn<GemmBf16>(env, exports, "gemmBf16");
  export_fn<GemmBf16PackedSize>(env, exports, "gemmBf16PackedSize");
  export_fn<GemmBf16PackB>(env, exports, "gemmBf16PackB");
  export_fn<GemmBf16Packed>(env, exports, "gemmBf16Packed");
  export_fn<GemmBf16Blocking>(env, exports, "gemmBf16Blocking");
  export_fn<MeasureBf16Peak>(env, exports, "measureBf16Peak");
  export_fn<Bf16AlignOffset>(env, exports, "bf16AlignOffset");
}

}  // namespace mt
