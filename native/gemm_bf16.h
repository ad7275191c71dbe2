// bf16 GEMM (bf16 operands, fp32 accumulation) and fp32 <-> bf16 conversion: plain declarations
// only (included by the ISA-specific translation units, so no inline code here).
//
// Element formats. A bf16 value is the upper 16 bits of an fp32 (uint16_t here, Uint16Array in
// JS). fp32 -> bf16 rounds to nearest even and maps every NaN to the quiet NaN 0x7FC0, keeping
// denormals (bit-exact with PyTorch's `round_to_nearest_even`); bf16 -> fp32 is exact (shift).
//
// GEMM semantics: C = alpha * bf16(op(A)) . bf16(op(B)) + beta * C with fp32 accumulation, where
// an fp32 operand is rounded to bf16 by the packing routine and a bf16 operand is used as is.
// Like the hardware instructions (VDPBF16PS, TDPBF16PS treat denormal inputs as zero), every path
// treats bf16 denormals (|x| < 2^-126) as zero; the products of two bf16 values are exact in fp32.
//
// Packed layouts (the same design as gemm.h, with a "word" = two bf16 consecutive in k):
// - op(B) is packed into NR = 32-column panels. Panel p holds, for each k pair kk, NR words
//   dst[p*NR*kp + kk*2*NR + 2*c + e] = bf16(op(B)(2*kk + e, p*NR + c)), e = 0/1, where kp is the
//   padded k extent (a multiple of the implementation's k alignment; padding and columns past N
//   are zero). This layout is shared by every bf16 implementation (VDPBF16PS: two zmm per k pair;
//   AMX: a B tile is 16 rows of one panel half with a 128-byte row stride), so a weight can be
//   packed once per optimizer step (gemmBf16PackB) and used by any of them.
// - op(A) is packed per call, in an implementation-specific layout (VDPBF16PS / portable:
//   MR-row micro-panels of MR words per k pair; AMX: 32-row blocks of 16x32 row-major tiles).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace mt {

enum : int {
  kBf16Nr = 32,          // columns per packed op(B) panel (every implementation)
  kBf16PrepackKAlign = 32,  // k padding of a prepacked op(B) (the largest k alignment of any path)
  kBf16MrAvx512 = 14,
  kBf16MrAmx = 32,
  kBf16MrPortable = 8,
};

// Packs rows [i0, i0+mc) x k in [p0, p0+kc) of op(A) (op(A)(i,k) = transA ? A[k*lda+i] :
// A[i*lda+k]; A is fp32 when a_f32, else bf16) into the implementation's A layout, k padded with
// zeros to kcp (kcp >= kc, kcp a multiple of the k alignment), rows past mc zero.
// Packs k in [p0, p0+kc) x columns [j0, j0+nc) of op(B) (op(B)(k,j) = transB ? B[j*ldb+k] :
// B[k*ldb+j]) into ceil(nc/NR) panels starting pstride bf16 apart (pstride >= NR*kcp; NR*kcp for a
// packing buffer; NR*kp to fill the k rows [p0, p0+kcp) of a prepacked op(B) whose panels hold kp
// k values, from dst = prepacked + p0*NR), each panel NR*kcp bf16 in the layout above.
// Macro kernel: C[0:mc, 0:nc] (row stride ldc) = alpha * packA * packB + beta * C, where the
// packed B panels start pb_stride bf16 apart and hold kcp (padded) k values; beta == 0 never
// reads C.
#define MT_GEMM_BF16_DECLARE(SUF)                                                                      \
  void gemm_bf16_pack_a_##SUF(const void* A, bool a_f32, int64_t lda, bool transA, int64_t i0, int64_t mc, \
                              int64_t p0, int64_t kc, int64_t kcp, uint16_t* dst);                      \
  void gemm_bf16_pack_b_##SUF(const void* B, bool b_f32, int64_t ldb, bool transB, int64_t p0, int64_t kc, \
                              int64_t kcp, int64_t j0, int64_t nc, uint16_t* dst, int64_t pstride);    \
  void gemm_bf16_macro_##SUF(int64_t mc, int64_t nc, int64_t kcp, const uint16_t* pa, const uint16_t* pb,  \
                             int64_t pb_stride, float* C, int64_t ldc, float alpha, float beta);

MT_GEMM_BF16_DECLARE(avx512bf16)
MT_GEMM_BF16_DECLARE(portable)
// AMX-BF16 path: its own A packing and macro kernel; it uses gemm_bf16_pack_b_avx512bf16.
void gemm_bf16_pack_a_amx(const void* A, bool a_f32, int64_t lda, bool transA, int64_t i0, int64_t mc, int64_t p0,
                          int64_t kc, int64_t kcp, uint16_t* dst);
void gemm_bf16_macro_amx(int64_t mc, int64_t nc, int64_t kcp, const uint16_t* pa, const uint16_t* pb,
                         int64_t pb_stride, float* C, int64_t ldc, float alpha, float beta);
// Asks the Linux kernel for permission to use the AMX tile data state (once per process); false
// when refused or not Linux.
bool amx_request_permission();

// Conversions over [0, n): plain C++ and AVX-512 (F+BW) builds, identical results.
void f32_to_bf16_portable(const float* src, uint16_t* dst, int64_t n);
void bf16_to_f32_portable(const uint16_t* src, float* dst, int64_t n);
void f32_to_bf16_avx512(const float* src, uint16_t* dst, int64_t n);
void bf16_to_f32_avx512(const uint16_t* src, float* dst, int64_t n);

// BF16 dot-product peak (VDPBF16PS, zmm): like peak_fma_*; counts 4 FLOPs per fp32 lane per
// instruction (two multiplies and two adds).
double peak_dpbf16_avx512(int64_t iters, float seed, double* flops_out);

// Which bf16 attention leaf runs now (attention.cpp), following the bf16 GEMM's implementation:
// 2 = AVX512-BF16 (also when the GEMM uses AMX: every AMX-BF16 CPU has AVX512-BF16),
// 1 = portable, 0 = none (*why says why).
int bf16_attention_leaf(std::string* why);

}  // namespace mt
