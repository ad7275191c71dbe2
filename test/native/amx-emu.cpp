// The AMX-BF16 path (native/gemm_bf16_amx.cpp) on a CPU without AMX: the tile intrinsics are
// replaced by a software emulation (tile configuration, loads / stores with strides, TDPBF16PS),
// so its packing layout, tile strides, edge handling and alpha/beta are checked against a scalar
// reference. Compiled and run by test/gemm-bf16.test.ts (needs AVX-512 for the shared B packing).
// Build: g++ -O1 -std=c++17 -Inative test/native/amx-emu.cpp native/gemm_bf16_avx512.cpp
#include <immintrin.h>
#include <cstdint>
#include <cstring>
#include <cstdio>
#include <cstdlib>
#include <cmath>
#include <vector>
struct EmuTile { int rows = 0, colsb = 0; uint8_t data[16][64]; };
static EmuTile g_t[8];
static bool g_cfg = false;
static void emu_loadconfig(const void* p) {
  const uint8_t* c = (const uint8_t*)p;
  if (c[0] != 1) { printf("bad palette\n"); exit(1); }
  for (int t = 0; t < 8; ++t) { uint16_t cb; memcpy(&cb, c + 16 + 2 * t, 2); g_t[t].colsb = cb; g_t[t].rows = c[48 + t]; }
  g_cfg = true;
}
static void emu_release() { g_cfg = false; }
static void emu_zero(int t) { memset(g_t[t].data, 0, sizeof g_t[t].data); }
static void emu_loadd(int t, const void* base, long stride) {
  if (!g_cfg) { printf("no config\n"); exit(1); }
  for (int r = 0; r < g_t[t].rows; ++r) memcpy(g_t[t].data[r], (const char*)base + r * stride, g_t[t].colsb);
}
static void emu_stored(int t, void* base, long stride) {
  for (int r = 0; r < g_t[t].rows; ++r) memcpy((char*)base + r * stride, g_t[t].data[r], g_t[t].colsb);
}
static float bf(uint16_t h) { uint32_t u = (uint32_t)h << 16; float f; memcpy(&f, &u, 4); return f; }
static void emu_dp(int c, int a, int b) {
  // C[m][n] += sum_k A[m][2k]*B[k][2n] + A[m][2k+1]*B[k][2n+1]
  EmuTile &C = g_t[c], &A = g_t[a], &B = g_t[b];
  const int K = A.colsb / 4;
  if (B.rows != K || C.colsb != B.colsb || C.rows != A.rows) { printf("shape mismatch\n"); exit(1); }
  for (int m = 0; m < C.rows; ++m)
    for (int n = 0; n < C.colsb / 4; ++n) {
      float acc; memcpy(&acc, &C.data[m][4 * n], 4);
      for (int k = 0; k < K; ++k) {
        uint16_t a0, a1, b0, b1;
        memcpy(&a0, &A.data[m][4 * k], 2); memcpy(&a1, &A.data[m][4 * k + 2], 2);
        memcpy(&b0, &B.data[k][4 * n], 2); memcpy(&b1, &B.data[k][4 * n + 2], 2);
        acc += bf(a0) * bf(b0) + bf(a1) * bf(b1);
      }
      memcpy(&C.data[m][4 * n], &acc, 4);
    }
}
#undef _tile_loadd
#undef _tile_stored
#undef _tile_zero
#undef _tile_dpbf16ps
#define _tile_loadconfig emu_loadconfig
#define _tile_release emu_release
#define _tile_loadd(t, b, s) emu_loadd(t, b, s)
#define _tile_stored(t, b, s) emu_stored(t, b, s)
#define _tile_zero(t) emu_zero(t)
#define _tile_dpbf16ps(c, a, b) emu_dp(c, a, b)
#include "gemm_bf16_amx.cpp"

namespace mt { void gemm_bf16_pack_b_avx512bf16(const void*, bool, int64_t, bool, int64_t, int64_t, int64_t, int64_t, int64_t, uint16_t*, int64_t); }
static uint16_t rne(float f) { uint32_t u; memcpy(&u, &f, 4); u += 0x7FFF + ((u >> 16) & 1); return u >> 16; }
int main() {
  srand(1);
  int fails = 0;
  for (int trial = 0; trial < 200; ++trial) {
    const int mc = 1 + rand() % 80, nc = 1 + rand() % 90, kc = 1 + rand() % 100;
    const bool ta = rand() & 1, tb = rand() & 1, af = rand() & 1;
    const int64_t kcp = (kc + 31) / 32 * 32;
    const int M = mc + 3, N = nc + 5, K = kc + 7, i0 = 2, j0 = 3, p0 = 4;
    std::vector<float> A(M * K), B(K * N), C(M * N), R(M * N);
    for (auto& x : A) x = (rand() / (float)RAND_MAX - 0.5f);
    for (auto& x : B) x = (rand() / (float)RAND_MAX - 0.5f);
    std::vector<uint16_t> A16(M * K); for (int i = 0; i < M * K; ++i) A16[i] = rne(A[i]);
    for (auto& x : C) x = rand() / (float)RAND_MAX;
    R = C;
    const int64_t lda = ta ? M : K, ldb = tb ? K : N;
    auto opA = [&](int i, int k) { return bf(A16[ta ? k * lda + i : i * lda + k]); };
    auto opB = [&](int k, int j) { return bf(rne(B[tb ? j * ldb + k : k * ldb + j])); };
    const float alpha = 0.75f, beta = trial % 3 == 0 ? 0.0f : 0.5f;
    for (int i = 0; i < mc; ++i) for (int j = 0; j < nc; ++j) {
      double s = 0; for (int k = 0; k < kc; ++k) s += (double)opA(i0 + i, p0 + k) * opB(p0 + k, j0 + j);
      R[i * N + j] = beta == 0 ? alpha * s : alpha * s + beta * R[i * N + j];
    }
    std::vector<uint16_t> pa((mc + 31) / 32 * 32 * kcp + 64, 0xFFFF), pb((nc + 31) / 32 * 32 * kcp + 64, 0xFFFF);
    mt::gemm_bf16_pack_a_amx(af ? (const void*)A.data() : (const void*)A16.data(), af, lda, ta, i0, mc, p0, kc, kcp, pa.data());
    mt::gemm_bf16_pack_b_avx512bf16(B.data(), true, ldb, tb, p0, kc, kcp, j0, nc, pb.data(), 32 * kcp);
    mt::gemm_bf16_macro_amx(mc, nc, kcp, pa.data(), pb.data(), 32 * kcp, C.data(), N, alpha, beta);
    double worst = 0;
    for (int i = 0; i < M; ++i) for (int j = 0; j < N; ++j) worst = std::fmax(worst, std::fabs(C[i * N + j] - R[i * N + j]));
    if (worst > 1e-4) { printf("FAIL trial %d mc=%d nc=%d kc=%d ta=%d tb=%d af=%d err=%g\n", trial, mc, nc, kc, ta, tb, af, worst); fails++; }
  }
  printf("%s\n", fails ? "failures" : "all AMX emulation trials ok");
  return fails ? 1 : 0;
}
