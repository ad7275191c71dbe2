// fp32 GEMM: Node-API glue, argument validation, blocking, threading and ISA dispatch.
// The leaf kernels (packing, register-blocked microkernel, GEMV) live in gemm_{avx512,avx2,portable}.cpp.
//
// addon.gemm(transA, transB, M, N, K, alpha, A, B, beta, C):
//   C[M,N] = alpha * op(A) * op(B) + beta * C, row-major dense; A is M×K (or K×M when transA),
//   B is K×N (or N×K when transB). beta = 0 overwrites C without reading it.
// addon.gemmBlocking([kc, mc, nc[, tilesPerThread[, skinny]]]) -> { kc, mc, nc, tilesPerThread, skinny, mr, nr, isa }: reads
//   (and optionally sets, for tuning and tests) the cache-blocking parameters and whether skinny products take their own path.
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>

#include "cpu.h"
#include "gemm.h"
#include "napi_util.h"
#include "threadpool.h"

namespace mt {

namespace {

typedef void (*PackAFn)(const float*, int64_t, bool, int64_t, int64_t, int64_t, int64_t, float*);
typedef void (*PackBFn)(const float*, int64_t, bool, int64_t, int64_t, int64_t, int64_t, float*);
typedef void (*MacroFn)(int64_t, int64_t, int64_t, const float*, const float*, float*, int64_t, float, float);
typedef void (*GemvFn)(const float*, int64_t, const float*, int64_t, int64_t, int64_t, float, float, float*);
typedef void (*SkinnyFn)(int64_t, const float*, int64_t, int64_t, int64_t, const float*, int64_t, int64_t, float*, int64_t,
                         bool, float, float);

struct Impl {
  int mr, nr, vl;
  // Which skinny products take gemm_skinny (bench gemm skinny=compare against the packed path,
  // 2026-12-04): C rows of up to `sk_row_vectors` vectors; C with M <= kSkinnySmall rows (`sk_m_small`).
  // AVX2 lost to the packed path with two row vectors (0.75-0.85x) and tied on short-wide C; the
  // portable kernel only wins on tall C with op(A) transposed (2x), like every ISA.
  int sk_row_vectors;
  bool sk_m_small;
  PackAFn pack_a;
  PackBFn pack_b;
  MacroFn macro;
  GemvFn dot, axpy;
  SkinnyFn skinny;
};

const Impl kImpls[3] = {
    {kGemmMrPortable, kGemmNrPortable, 4, 0, false, gemm_pack_a_portable, gemm_pack_b_portable, gemm_macro_portable,
     gemv_dot_portable, gemv_axpy_portable, gemm_skinny_portable},
    {kGemmMrAvx2, kGemmNrAvx2, 8, 1, false, gemm_pack_a_avx2, gemm_pack_b_avx2, gemm_macro_avx2, gemv_dot_avx2, gemv_axpy_avx2,
     gemm_skinny_avx2},
    {kGemmMrAvx512, kGemmNrAvx512, 16, 2, true, gemm_pack_a_avx512, gemm_pack_b_avx512, gemm_macro_avx512, gemv_dot_avx512,
     gemv_axpy_avx512, gemm_skinny_avx512},
};

// Cache blocking (Zen 4: 32 KiB L1d, 1 MiB L2 per core). Ordering inside a tile: for each KC slice,
// the packed B block (KC x NC) stays in L2 while one MR x KC micro-panel of A sits in L1 and is
// swept across all NR-column micro-panels of B.
std::atomic<bool> g_skinny{true};  // gemmBlocking's `skinny` switch (tests compare both paths)
std::atomic<int64_t> g_kc{256}, g_mc{336}, g_nc{512}, g_tiles_per_thread{2};

// Per-thread, 64-byte aligned, grow-only packing buffers (no per-call allocation in steady state).
struct AlignedBuf {
  float* p = nullptr;
  size_t cap = 0;
  float* get(size_t n, const char* what = "GEMM packing buffers") {
    if (n > cap) {
      std::free(p);
      p = nullptr;
      cap = 0;
      if (n > (SIZE_MAX - 4095) / sizeof(float)) throw OutOfMemory(what, SIZE_MAX);
      size_t bytes = ((n * sizeof(float) + 4095) / 4096) * 4096;
      p = static_cast<float*>(std::aligned_alloc(64, bytes));
      if (!p) throw OutOfMemory(what, bytes);
      cap = bytes / sizeof(float);
    }
    return p;
  }
  ~AlignedBuf() { std::free(p); }
};
thread_local AlignedBuf tl_pa, tl_pb, tl_small;

inline int64_t cdiv(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up(int64_t a, int64_t b) { return cdiv(a, b) * b; }

void scale_c(int64_t M, int64_t N, float beta, float* C) {
  const int64_t n = M * N;
  if (beta == 1.0f) return;
  if (beta == 0.0f) {
    std::memset(C, 0, static_cast<size_t>(n) * sizeof(float));
  } else {
    for (int64_t i = 0; i < n; ++i) C[i] *= beta;
  }
}

// y (n values) = alpha * Mat * x + beta * y, Mat given in dot form (n×K, rows contiguous) or
// axpy form (K×n). Memory bound: threads split n when the matrix is large enough.
void gemv(const Impl& im, bool dot_form, const float* W, int64_t ldw, const float* x, int64_t K, int64_t n,
          float alpha, float beta, float* y) {
  const int threads = num_threads();
  const int64_t work = n * K;
  GemvFn fn = dot_form ? im.dot : im.axpy;
  if (threads <= 1 || work < (int64_t(1) << 16) || n < 2) {
    fn(W, ldw, x, K, 0, n, alpha, beta, y);
    return;
  }
  if (dot_form || K < 4 * int64_t(threads)) {
    // Rows of W (dot form) or column chunks (axpy form with few rows) are independent.
    int64_t grain = cdiv(n, int64_t(threads) * 4);
    grain = dot_form ? round_up(grain, 4) : round_up(grain, 64);
    parallel_for(n, grain, [&](int64_t b, int64_t e, int) { fn(W, ldw, x, K, b, e, alpha, beta, y); });
    return;
  }
  // Axpy form: split K so that every thread streams a contiguous block of rows of W, into a
  // private partial y; then y = alpha * sum of partials + beta * y.
  const int64_t parts = threads;
  thread_local AlignedBuf tl_partial;
  float* partial = tl_partial.get(static_cast<size_t>(parts * n));
  const int64_t kper = cdiv(K, parts);
  parallel_for(parts, 1, [&](int64_t b, int64_t e, int) {
    for (int64_t p = b; p < e; ++p) {
      const int64_t k0 = p * kper, k1 = std::min(K, k0 + kper);
      float* yp = partial + p * n;
      if (k1 > k0) fn(W + k0 * ldw, ldw, x + k0, k1 - k0, 0, n, 1.0f, 0.0f, yp);
      else std::memset(yp, 0, static_cast<size_t>(n) * sizeof(float));
    }
  });
  for (int64_t i = 0; i < n; ++i) {
    float s = 0.0f;
    for (int64_t p = 0; p < parts; ++p) s += partial[p * n + i];
    y[i] = beta == 0.0f ? alpha * s : alpha * s + beta * y[i];
  }
}

// Skinny products: C has at most 2 vectors of columns (N) or kSkinnySmall rows (M), the other
// side and K are large (LoRA: x A^T, dY B, dY^T t, dt^T x with rank r). The small operand is packed
// k-major once; the big one is streamed unpacked by gemm_skinny, in blocks split over threads.
constexpr int64_t kSkinnySmall = 32, kSkinnyBig = 64, kSkinnyK = 16;

bool gemm_skinny(const Impl& im, bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A,
                 const float* B, float beta, float* C, bool parallel) {
  const int64_t vl = im.vl, lda = ta ? M : K, ldb = tb ? K : N;
  if (K < kSkinnyK) return false;
  if (N <= im.sk_row_vectors * vl && M >= kSkinnyBig && !ta) {
    // Rows of A are scalars, packed op(B) [K][np] the vectors: C row blocks.
    const int64_t np = N <= vl ? vl : 2 * vl;
    float* bp = tl_small.get(static_cast<size_t>(K * np), "the skinny GEMM buffer");
    for (int64_t k = 0; k < K; ++k)
      for (int64_t j = 0; j < np; ++j) bp[k * np + j] = j < N ? (tb ? B[j * ldb + k] : B[k * ldb + j]) : 0.0f;
    const int64_t rows = 48;
    auto run = [&](int64_t b, int64_t e, int) {
      for (int64_t blk = b; blk < e; ++blk) {
        const int64_t i0 = blk * rows, ns = std::min(rows, M - i0);
        im.skinny(K, A + i0 * lda, lda, 1, ns, bp, np, N, C + i0 * N, N, true, alpha, beta);
      }
    };
    const int64_t blocks = (M + rows - 1) / rows;
    if (parallel) parallel_for(blocks, 1, run);
    else run(0, blocks, 0);
    return true;
  }
  const bool n_small = N <= kSkinnySmall && M >= kSkinnyBig && ta;   // vectors: VL rows of C (columns of A)
  const bool m_small = im.sk_m_small && M <= kSkinnySmall && N >= kSkinnyBig && !tb;  // vectors: VL columns of C (rows of B)
  if (!n_small && !m_small) return false;
  // Scalars: the small operand packed [K][ns]; vectors: VL consecutive elements of the big one
  // (a padded copy for the last partial block).
  const int64_t ns = n_small ? N : M, big = n_small ? M : N;
  float* sp = tl_small.get(static_cast<size_t>(K * ns + K * vl), "the skinny GEMM buffer");
  for (int64_t k = 0; k < K; ++k)
    for (int64_t s = 0; s < ns; ++s)
      sp[k * ns + s] = n_small ? (tb ? B[s * ldb + k] : B[k * ldb + s]) : (ta ? A[k * lda + s] : A[s * lda + k]);
  const float* X = n_small ? A : B;
  const int64_t xs = n_small ? lda : ldb;
  const int64_t blocks = (big + vl - 1) / vl, full = big / vl;
  float* tail = sp + K * ns;
  if (full < blocks) {
    for (int64_t k = 0; k < K; ++k)
      for (int64_t l = 0; l < vl; ++l) tail[k * vl + l] = full * vl + l < big ? X[k * xs + full * vl + l] : 0.0f;
  }
  auto run = [&](int64_t b, int64_t e, int) {
    for (int64_t blk = b; blk < e; ++blk) {
      const int64_t j0 = blk * vl, nx = std::min(vl, big - j0);
      const float* xb = blk < full ? X + j0 : tail;
      const int64_t xsb = blk < full ? xs : vl;
      // n_small: C(i = j0 + lane, s) at C[i*N + s] (transposed); m_small: C(s, j0 + lane) rows.
      if (n_small) im.skinny(K, sp, 1, ns, ns, xb, xsb, nx, C + j0 * N, N, false, alpha, beta);
      else im.skinny(K, sp, 1, ns, ns, xb, xsb, nx, C + j0, N, true, alpha, beta);
    }
  };
  if (parallel) parallel_for(blocks, 4, run);
  else run(0, blocks, 0);
  return true;
}

void gemm_compute(bool ta, bool tb, int64_t M, int64_t N, int64_t K, float alpha, const float* A, const float* B,
                  float beta, float* C) {
  if (M == 0 || N == 0) return;
  if (K == 0 || alpha == 0.0f) {
    scale_c(M, N, beta, C);
    return;
  }
  const Impl& im = kImpls[static_cast<int>(current_isa())];
  if (M == 1) {
    // C[1,N] = alpha * a[K] · op(B) + beta C; A is a contiguous K-vector either way.
    if (tb) gemv(im, true, B, K, A, K, N, alpha, beta, C);
    else gemv(im, false, B, N, A, K, N, alpha, beta, C);
    return;
  }
  if (N == 1) {
    // C[M,1] = alpha * op(A) · b[K] + beta C; B is a contiguous K-vector either way.
    if (!ta) gemv(im, true, A, K, B, K, M, alpha, beta, C);
    else gemv(im, false, A, M, B, K, M, alpha, beta, C);
    return;
  }

  const int threads = num_threads();
  const double flops = 2.0 * double(M) * double(N) * double(K);
  const bool parallel = threads > 1 && flops >= 3.0e6;
  if (g_skinny.load() && gemm_skinny(im, ta, tb, M, N, K, alpha, A, B, beta, C, parallel)) return;

  const int64_t lda = ta ? M : K, ldb = tb ? K : N, ldc = N;
  const int64_t mr = im.mr, nr = im.nr;
  const int64_t kcmax = g_kc.load(), mcb = std::max<int64_t>(mr, g_mc.load() / mr * mr),
                ncmax = std::max<int64_t>(nr, g_nc.load() / nr * nr);

  // Tile grid over C. A tile is independent work for one thread: for each KC slice it packs its
  // B block (KC x tile width, L2 resident) once, then packs and multiplies A in MC-row sub-blocks.
  // Tile width is at most NC; the height is free. Every extra tile row re-packs B, every extra
  // tile column re-packs A, so to get enough tiles for load balance (other processes share the
  // cores: dynamic scheduling wants several tiles per thread; 2 per thread measured best, as
  // every extra tile re-packs a panel) split the cheaper dimension.
  int64_t nt = cdiv(N, ncmax), mt = 1;
  if (parallel) {
    const int64_t want = g_tiles_per_thread.load() * int64_t(threads);
    // One tile row per thread first (when each gets enough rows), and tiles handed out row-fastest:
    // threads working at once then share a B block and write different rows of C, although every
    // tile row packs B again (bench train, 2026-12-04: reference step 1534-1538 -> 1555-1562
    // tokens/s; 0.5B full step 0.576 of the peak). (Two separate single-threaded products ran ~10% faster than one
    // product on 2 threads split by columns; the cause is not known.)
    if (cdiv(M, threads) >= 8 * mr) mt = threads;
    const double ca = ta ? 2.0 : 1.0;  // relative packing cost per element of A (copy pack is slower)
    while (mt * nt < want || (mt * nt) % threads != 0) {
      const bool can_row = cdiv(M, mt + 1) >= 2 * mr;
      const bool can_col = cdiv(N, nt + 1) >= nr;
      const bool prefer_row = double(M) / double(mt) * ca >= double(N) / double(nt);
      if (can_row && (prefer_row || !can_col)) ++mt;
      else if (can_col) ++nt;
      else break;
    }
  }
  const int64_t mct = round_up(cdiv(M, mt), mr), nct = round_up(cdiv(N, nt), nr);
  mt = cdiv(M, mct);
  nt = cdiv(N, nct);
  const int64_t nk = cdiv(K, kcmax), kc = cdiv(K, nk);
  const int64_t mcs = std::min(mcb, mct);

  auto tile = [&](int64_t t0, int64_t t1, int) {
    // (+64 floats: the transposing A pack may spill a few floats past the last panel)
    float* pa = tl_pa.get(static_cast<size_t>(mcs * kc + 64));
    float* pb = tl_pb.get(static_cast<size_t>(nct * kc + 64));
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t ti = t % mt, tj = t / mt;  // row-fastest (see above)
      const int64_t i0 = ti * mct, j0 = tj * nct;
      const int64_t mtile = std::min(mct, M - i0), nc = std::min(nct, N - j0);
      for (int64_t p0 = 0; p0 < K; p0 += kc) {
        const int64_t kk = std::min(kc, K - p0);
        const float b0 = p0 == 0 ? beta : 1.0f;
        im.pack_b(B, ldb, tb, p0, kk, j0, nc, pb);
        for (int64_t ii = 0; ii < mtile; ii += mcs) {
          const int64_t mc = std::min(mcs, mtile - ii);
          im.pack_a(A, lda, ta, i0 + ii, mc, p0, kk, pa);
          im.macro(mc, nc, kk, pa, pb, C + (i0 + ii) * ldc + j0, ldc, alpha, b0);
        }
      }
    }
  };
  if (parallel && mt * nt > 1) parallel_for(mt * nt, 1, tile);
  else tile(0, mt * nt, 0);
}

int64_t checked_product(const Napi::CallbackInfo& info, int64_t a, int64_t b, const char* what) {
  if (static_cast<double>(a) * static_cast<double>(b) > 4.0e15) throw arg_error(info.Env(), "gemm", std::string(what) + " is too large");
  return a * b;
}

Napi::Value Gemm(const Napi::CallbackInfo& info) {
  const char* fn = "gemm";
  if (info.Length() != 10) throw arg_error(info.Env(), fn, "expected 10 arguments (transA, transB, M, N, K, alpha, A, B, beta, C)");
  const bool ta = bool_arg(info, 0, fn, "transA");
  const bool tb = bool_arg(info, 1, fn, "transB");
  const int64_t M = int_arg(info, 2, fn, "M");
  const int64_t N = int_arg(info, 3, fn, "N");
  const int64_t K = int_arg(info, 4, fn, "K");
  const double alpha = num_arg(info, 5, fn, "alpha");
  const double beta = num_arg(info, 8, fn, "beta");
  const float* A = f32_arg(info, 6, checked_product(info, M, K, "M*K"), fn, "A");
  const float* B = f32_arg(info, 7, checked_product(info, K, N, "K*N"), fn, "B");
  float* C = f32_arg(info, 9, checked_product(info, M, N, "M*N"), fn, "C");
  gemm_compute(ta, tb, M, N, K, static_cast<float>(alpha), A, B, static_cast<float>(beta), C);
  return info.Env().Undefined();
}

Napi::Value GemmBlocking(const Napi::CallbackInfo& info) {
  const char* fn = "gemmBlocking";
  if (info.Length() >= 3) {
    const int64_t kc = int_arg(info, 0, fn, "kc", 1), mc = int_arg(info, 1, fn, "mc", 1), nc = int_arg(info, 2, fn, "nc", 1);
    if (kc > 8192 || mc > 8192 || nc > 16384) throw arg_error(info.Env(), fn, "block sizes too large");
    g_kc = kc;
    g_mc = mc;
    g_nc = nc;
    if (info.Length() >= 4) {
      const int64_t tpt = int_arg(info, 3, fn, "tilesPerThread", 1);
      if (tpt > 64) throw arg_error(info.Env(), fn, "tilesPerThread too large");
      g_tiles_per_thread = tpt;
    }
    if (info.Length() >= 5) g_skinny = bool_arg(info, 4, fn, "skinny");
  }
  const Impl& im = kImpls[static_cast<int>(current_isa())];
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("kc", Napi::Number::New(info.Env(), double(g_kc.load())));
  o.Set("mc", Napi::Number::New(info.Env(), double(g_mc.load())));
  o.Set("nc", Napi::Number::New(info.Env(), double(g_nc.load())));
  o.Set("tilesPerThread", Napi::Number::New(info.Env(), double(g_tiles_per_thread.load())));
  o.Set("skinny", Napi::Boolean::New(info.Env(), g_skinny.load()));
  o.Set("mr", Napi::Number::New(info.Env(), im.mr));
  o.Set("nr", Napi::Number::New(info.Env(), im.nr));
  o.Set("isa", Napi::String::New(info.Env(), isa_name(current_isa())));
  return o;
}

}  // namespace

// Test hook: every pool worker grows a thread-local buffer of `floats` floats the way the GEMM
// packing buffers grow, so tests can see an allocation failure on a pool thread become a JS error
// (and the pool stay usable). Returns the number of workers that allocated.
Napi::Value AllocProbe(const Napi::CallbackInfo& info) {
  const int64_t floats = int_arg(info, 0, "_allocProbe", "floats", 1);
  std::atomic<int> done{0};
  const int threads = num_threads();
  parallel_for(threads, 1, [&](int64_t b, int64_t e, int) {
    thread_local AlignedBuf probe;
    for (int64_t t = b; t < e; ++t) {
      probe.get(static_cast<size_t>(floats), "the allocation probe");
      done.fetch_add(1);
    }
  });
  return Napi::Number::New(info.Env(), done.load());
}

void register_gemm(Napi::Env env, Napi::Object exports) {
  // Start the thread pool at load time, so that its workers are parked before the first
  // parallel_for. A bad MIXTUNE_THREADS must not abort the load: the error is reported by the
  // first native call instead (the pool is created lazily then, see threadpool.cpp).
  try {
    (void)num_threads();
  } catch (const std::exception&) {
  }
  export_fn<Gemm>(env, exports, "gemm");
  export_fn<AllocProbe>(env, exports, "_allocProbe");
  export_fn<GemmBlocking>(env, exports, "gemmBlocking");
}

}  // namespace mt
