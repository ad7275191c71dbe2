// bf16 GEMM on AMX-BF16 tiles (TDPBF16PS), for CPUs that have them (Intel Sapphire Rapids and
// later). UNTESTED ON THE DEVELOPMENT MACHINE: it was written and compiled on an AMD Zen 5 without
// AMX, so it has never run. It is kept small on purpose: the packed op(B) panels are the shared
// layout (gemm_bf16_pack_b_avx512bf16), A is packed into row-major 16x32 bf16 tiles, and one
// macro kernel computes 32x32 blocks of C with 4 accumulator tiles (2 A tiles x 2 B tiles per 32 k),
// through a scratch block so that edges and alpha/beta are handled in plain code. The test suite
// runs it against the reference on a CPU that has AMX-BF16; everywhere else it checks this file's
// layouts, strides and edges under a software emulation of the tile instructions
// (test/native/amx-emu.cpp) -- which cannot show how real hardware rounds or performs.
#pragma GCC target("avx512f,avx512vl,avx512dq,avx512bw,avx512bf16,amx-tile,amx-bf16")
// GCC 12 reports false "may be used uninitialized" inside avx512fintrin.h (_mm512_undefined_*).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>
#include <cstddef>
#include <cstdint>
#include <cstring>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "gemm_bf16.h"

namespace mt {

#include "bf16_scalar.inc"

namespace {

constexpr int MR = kBf16MrAmx;  // 32 rows of C per block = 2 A tiles
constexpr int NR = kBf16Nr;     // 32 columns = 2 B tiles
static_assert(MR == 32 && NR == 32, "the AMX kernel computes 32x32 blocks");

struct alignas(64) TileConfig {
  uint8_t palette_id;
  uint8_t start_row;
  uint8_t reserved[14];
  uint16_t colsb[16];
  uint8_t rows[16];
};
static_assert(sizeof(TileConfig) == 64, "tile configuration is 64 bytes");

static inline __mmask16 mask16(int64_t n) {
  return n >= 16 ? static_cast<__mmask16>(0xFFFF) : n <= 0 ? static_cast<__mmask16>(0) : static_cast<__mmask16>((1u << n) - 1u);
}

// bf16(x) in the low 16 bits of each 32-bit lane (round to nearest even, NaN -> 0x7FC0).
static inline __m512i rne_lo(__m512 x) {
  const __m512i u = _mm512_castps_si512(x);
  const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
  __m512i r = _mm512_add_epi32(u, _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7FFF)));
  r = _mm512_mask_mov_epi32(r, _mm512_cmp_ps_mask(x, x, _CMP_UNORD_Q), _mm512_set1_epi32(0x7FC00000));
  return _mm512_srli_epi32(r, 16);
}

}  // namespace

bool amx_request_permission() {
#if defined(__linux__) && defined(SYS_arch_prctl)
  // ARCH_REQ_XCOMP_PERM (0x1023) for XFEATURE_XTILEDATA (18): per process, Linux >= 5.16.
  return syscall(SYS_arch_prctl, 0x1023, 18) == 0;
#else
  return false;
#endif
}

// A layout: per 32-row block, for each 32-k chunk c: 32 rows x 32 bf16, row-major
// (dst[block*32*kcp + c*1024 + r*32 + q] = bf16(op(A)(i0 + block*32 + r, p0 + 32c + q))); rows 0-15
// of a chunk are one A tile, rows 16-31 the next. kcp is a multiple of 32.
void gemm_bf16_pack_a_amx(const void* A, bool a_f32, int64_t lda, bool transA, int64_t i0, int64_t mc, int64_t p0,
                          int64_t kc, int64_t kcp, uint16_t* dst) {
  const int64_t nch = kcp / 32;
  for (int64_t ip = 0; ip < mc; ip += MR) {
    uint16_t* d = dst + (ip / MR) * MR * kcp;
    for (int64_t c = 0; c < nch; ++c) {
      const int64_t k0 = 32 * c;
      for (int r = 0; r < MR; ++r) {
        uint16_t* o = d + c * 1024 + r * 32;
        const int64_t i = ip + r;
        if (i >= mc || k0 >= kc) {
          std::memset(o, 0, 64);
          continue;
        }
        const int64_t avail = kc - k0;
        if (!transA && a_f32) {
          const float* s = static_cast<const float*>(A) + (i0 + i) * lda + p0 + k0;
          const __mmask16 m0 = mask16(avail), m1 = mask16(avail - 16);
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(o), _mm512_cvtepi32_epi16(rne_lo(_mm512_maskz_loadu_ps(m0, s))));
          _mm256_storeu_si256(reinterpret_cast<__m256i*>(o + 16),
                              _mm512_cvtepi32_epi16(rne_lo(_mm512_maskz_loadu_ps(m1, s + 16))));
        } else {
          for (int q = 0; q < 32; ++q) o[q] = q < avail ? bf16_elem(A, a_f32, lda, transA, i0 + i, p0 + k0 + q) : 0;
        }
      }
    }
  }
}

void gemm_bf16_macro_amx(int64_t mc, int64_t nc, int64_t kcp, const uint16_t* pa, const uint16_t* pb,
                         int64_t pb_stride, float* C, int64_t ldc, float alpha, float beta) {
  TileConfig cfg;
  std::memset(&cfg, 0, sizeof cfg);
  cfg.palette_id = 1;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;  // C: 16 fp32; A: 32 bf16; B: 16 bf16 pairs
  }
  _tile_loadconfig(&cfg);
  alignas(64) float tmp[MR * NR];
  const int64_t nch = kcp / 32;
  for (int64_t ip = 0; ip < mc; ip += MR) {
    const int64_t rows = mc - ip < MR ? mc - ip : MR;
    const uint16_t* a = pa + (ip / MR) * MR * kcp;
    for (int64_t jp = 0; jp < nc; jp += NR) {
      const int64_t cols = nc - jp < NR ? nc - jp : NR;
      const uint16_t* b = pb + (jp / NR) * pb_stride;
      _tile_zero(0);
      _tile_zero(1);
      _tile_zero(2);
      _tile_zero(3);
      for (int64_t c = 0; c < nch; ++c) {
        const uint16_t* ac = a + c * 1024;           // 32 rows x 64 bytes
        const uint16_t* bc = b + c * 16 * 2 * NR;    // 16 k pairs, a k pair row is 2*NR bf16 = 128 bytes
        _tile_loadd(4, ac, 64);
        _tile_loadd(5, ac + 16 * 32, 64);
        _tile_loadd(6, bc, 2 * NR * 2);
        _tile_loadd(7, bc + 32, 2 * NR * 2);
        _tile_dpbf16ps(0, 4, 6);  // C rows 0-15, columns 0-15
        _tile_dpbf16ps(1, 4, 7);  // rows 0-15, columns 16-31
        _tile_dpbf16ps(2, 5, 6);  // rows 16-31, columns 0-15
        _tile_dpbf16ps(3, 5, 7);  // rows 16-31, columns 16-31
      }
      _tile_stored(0, tmp, NR * 4);
      _tile_stored(1, tmp + 16, NR * 4);
      _tile_stored(2, tmp + 16 * NR, NR * 4);
      _tile_stored(3, tmp + 16 * NR + 16, NR * 4);
      float* cblk = C + ip * ldc + jp;
      for (int64_t r = 0; r < rows; ++r)
        for (int64_t q = 0; q < cols; ++q) {
          float* cc = cblk + r * ldc + q;
          *cc = beta == 0.0f ? alpha * tmp[r * NR + q] : alpha * tmp[r * NR + q] + beta * *cc;
        }
    }
  }
  _tile_release();
}

}  // namespace mt
