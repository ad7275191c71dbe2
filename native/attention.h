// Causal and layout-aware (packed groups, MISO) grouped-query attention: plain declarations shared by the glue (attention.cpp) and the
// three leaf builds (attention_avx512.cpp, attention_avx2.cpp, attention_portable.cpp, all of
// which include attention_impl.inc). No inline functions here: leaf TUs are compiled for
// different ISAs and must not share COMDAT code with the generic build.
#pragma once
#include <cstddef>
#include <cstdint>

namespace mt {

// Tile sizes (queries per task tile, keys per inner tile). Both multiples of every vector width.
enum { ATTN_BQ = 64, ATTN_BK = 64 };

struct AttnFwdParams {
  const float* q;    // [B, Tq, H*D]
  const float* k;    // [B, Tk, Hkv*D]
  const float* v;    // [B, Tk, Hkv*D]
  float* out;        // [B, Tq, H*D]
  float* lse;        // [B, H, Tq]
  int64_t B, Tq, Tk, H, Hkv, D;
  float scale;
  int64_t q_offset;  // query i has absolute position q_offset + i; q_offset + Tq <= Tk
};

struct AttnBwdParams {
  const float* q;    // [B, T, H*D]
  const float* k;    // [B, T, Hkv*D]
  const float* v;
  const float* out;  // [B, T, H*D]
  const float* lse;  // [B, H, T]
  const float* dout; // [B, T, H*D]
  float* dq;         // [B, T, H*D]   written
  float* dk;         // [B, T, Hkv*D] written
  float* dv;         // [B, T, Hkv*D] written
  int64_t B, T, H, Hkv, D;
  float scale;
};

// Workspace sizes in floats (per worker). Dp = D rounded up to a multiple of 16.
int64_t attention_fwd_ws_floats(int64_t D);
int64_t attention_bwd_ws_floats(int64_t D, int64_t T);

// Forward of one query tile: batch b, query head h, queries [q0, q0 + nq), nq <= ATTN_BQ.
// ws: attention_fwd_ws_floats(D) floats, 64-byte aligned.
void attention_fwd_tile_avx512(const AttnFwdParams& p, int64_t b, int64_t h, int64_t q0, int64_t nq, float* ws);
void attention_fwd_tile_avx2(const AttnFwdParams& p, int64_t b, int64_t h, int64_t q0, int64_t nq, float* ws);
void attention_fwd_tile_portable(const AttnFwdParams& p, int64_t b, int64_t h, int64_t q0, int64_t nq, float* ws);

// Backward, fused: one (batch, kv head), all query heads of the group, all query/key tiles.
// Writes dq for the group's query heads and dk/dv of the kv head (tasks never share outputs).
// ws: attention_bwd_ws_floats(D, T) floats, 64-byte aligned.
void attention_bwd_group_avx512(const AttnBwdParams& p, int64_t b, int64_t kvh, float* ws);
void attention_bwd_group_avx2(const AttnBwdParams& p, int64_t b, int64_t kvh, float* ws);
void attention_bwd_group_portable(const AttnBwdParams& p, int64_t b, int64_t kvh, float* ws);
// Backward, split (more parallelism, S and dP computed twice): dk/dv rows [j0, j0+nk) of one
// (batch, kv head), nk <= ATTN_BK; and dq rows [q0, q0+nq) of one (batch, head), nq <= ATTN_BQ.
// ws: attention_bwd_ws_floats(D, ATTN_BK) floats, 64-byte aligned.
void attention_bwd_dkdv_avx512(const AttnBwdParams& p, int64_t b, int64_t kvh, int64_t j0, int64_t nk, float* ws);
void attention_bwd_dkdv_avx2(const AttnBwdParams& p, int64_t b, int64_t kvh, int64_t j0, int64_t nk, float* ws);
void attention_bwd_dkdv_portable(const AttnBwdParams& p, int64_t b, int64_t kvh, int64_t j0, int64_t nk, float* ws);
void attention_bwd_dq_avx512(const AttnBwdParams& p, int64_t b, int64_t h, int64_t q0, int64_t nq, float* ws);
void attention_bwd_dq_avx2(const AttnBwdParams& p, int64_t b, int64_t h, int64_t q0, int64_t nq, float* ws);
void attention_bwd_dq_portable(const AttnBwdParams& p, int64_t b, int64_t h, int64_t q0, int64_t nq, float* ws);

// Vectorized exp over n floats (exposed for tests of the polynomial; out may alias x).
void attention_exp_avx512(const float* x, float* out, int64_t n);
void attention_exp_avx2(const float* x, float* out, int64_t n);
void attention_exp_portable(const float* x, float* out, int64_t n);

// ---------------------------------------------------------------------------------------------
// Layout-aware attention (docs/design.md §2). The glue (attention.cpp) validates the layout and plans
// it into per-token arrays and a list of query tiles; the leaf kernels only follow that plan.
//
// Query tiles (at most ATTN_BQ consecutive queries of one row) are of two kinds:
//  kind 0 "single": every lane runs ONE online softmax over the keys [lo[t], t] of its own row,
//    with the logit bias kbias[j] added to key j (log n on the output keys of fid groups, else 0).
//    Covers n = 1 groups, input-part queries (lo = start of the part), fid and vanilla output
//    queries (lo = group start). Lanes may belong to different groups (packed rows).
//  kind 1 "uniform": every lane is an output query of the same uniform group with n >= 2 inputs.
//    Key parts are processed separately (input i: all its keys; output: causal) and combined as
//    O = (1/n) sum_i (U_i + U_o) / (S_i + S_o).
struct AttnLayoutTile {
  int32_t b, q0, nq;  // row, first query (row-relative), number of queries (<= ATTN_BQ)
  int32_t kind;       // 0 single, 1 uniform
  int32_t klo, khi;   // keys [klo, khi) hold every key some lane may see (khi = q0 + nq)
  int32_t parts;      // kind 1: offset in pstart of the group's n + 2 boundaries
  int32_t n;          // kind 1: number of inputs
};

struct AttnLayoutParams {
  const float* q;     // [B, T, H*D]
  const float* k;     // [B, T, Hkv*D]
  const float* v;
  float* out;         // [B, T, H*D]        forward: written; backward: read
  float* stats;       // [B, H, T, M]       forward: written; backward: read
  const float* dout;  // [B, T, H*D]        backward
  float* dq;          // [B, T, H*D]        backward: written
  float* dk;          // [B, T, Hkv*D]      backward: written
  float* dv;
  float* uL;          // [B, H, T, M + 1]   backward: effective log-normalizer per key slot (uniform tiles)
  float* uD;          // [B, H, T, M + 1]   backward: effective Delta per key slot (uniform tiles)
  const int32_t* lo;     // [B*T] first visible key (row-relative) of a kind-0 query
  const float* kbias;    // [B*T] logit bias of each key
  const int32_t* pstart; // per uniform group: start of input 0..n-1, output start, group end
  const AttnLayoutTile* tiles;
  int64_t B, T, H, Hkv, D, M;  // M = maxInputs (stats slots per query)
  float scale;
};

int64_t attention_layout_fwd_ws_floats(int64_t D);
int64_t attention_layout_bwd_ws_floats(int64_t D, int64_t M, int64_t Tk);

// Forward of one tile for query head h. ws: attention_layout_fwd_ws_floats(D) floats, aligned.
void attention_layout_fwd_tile_avx512(const AttnLayoutParams& p, int64_t tile, int64_t h, float* ws);
void attention_layout_fwd_tile_avx2(const AttnLayoutParams& p, int64_t tile, int64_t h, float* ws);
void attention_layout_fwd_tile_portable(const AttnLayoutParams& p, int64_t tile, int64_t h, float* ws);
// Backward pre-pass of a kind-1 tile: Delta_i = dO . A_i per input, written with the effective
// (L, Delta) of every key slot to uL/uD. ws: attention_layout_bwd_ws_floats(D, M, 0).
void attention_layout_delta_avx512(const AttnLayoutParams& p, int64_t tile, int64_t h, float* ws);
void attention_layout_delta_avx2(const AttnLayoutParams& p, int64_t tile, int64_t h, float* ws);
void attention_layout_delta_portable(const AttnLayoutParams& p, int64_t tile, int64_t h, float* ws);
// Backward, fused: tiles [t0, t1) (all of row b), every query head of kv head kvh; writes their
// dq rows and the dk/dv rows [0, T) of row b, kv head kvh. ws: attention_layout_bwd_ws_floats(D, M, T).
void attention_layout_bwd_group_avx512(const AttnLayoutParams& p, int64_t b, int64_t kvh, int64_t t0, int64_t t1, float* ws);
void attention_layout_bwd_group_avx2(const AttnLayoutParams& p, int64_t b, int64_t kvh, int64_t t0, int64_t t1, float* ws);
void attention_layout_bwd_group_portable(const AttnLayoutParams& p, int64_t b, int64_t kvh, int64_t t0, int64_t t1, float* ws);
// Backward, split: dk/dv rows [j0, j0 + nk) (nk <= ATTN_BK) of row b, kv head kvh from tiles
// [t0, t1) (the tiles of row b); and dq of one tile for query head h.
// ws: attention_layout_bwd_ws_floats(D, M, ATTN_BK).
void attention_layout_bwd_dkdv_avx512(const AttnLayoutParams& p, int64_t b, int64_t kvh, int64_t j0, int64_t nk, int64_t t0, int64_t t1, float* ws);
void attention_layout_bwd_dkdv_avx2(const AttnLayoutParams& p, int64_t b, int64_t kvh, int64_t j0, int64_t nk, int64_t t0, int64_t t1, float* ws);
void attention_layout_bwd_dkdv_portable(const AttnLayoutParams& p, int64_t b, int64_t kvh, int64_t j0, int64_t nk, int64_t t0, int64_t t1, float* ws);
void attention_layout_bwd_dq_avx512(const AttnLayoutParams& p, int64_t tile, int64_t h, float* ws);
void attention_layout_bwd_dq_avx2(const AttnLayoutParams& p, int64_t tile, int64_t h, float* ws);
void attention_layout_bwd_dq_portable(const AttnLayoutParams& p, int64_t tile, int64_t h, float* ws);

// ---------------------------------------------------------------------------------------------
// bf16 causal attention (training.precision bf16; attention.cpp: attentionForwardBf16 /
// attentionBackwardBf16). Same tiles, online softmax and task split as the fp32 kernels; the five
// products (S = QK^T, PV, dP = dO V^T, dV, dK, dQ) take bf16 operands with fp32 accumulation
// (VDPBF16PS), the softmax, lse, Delta and every accumulator stay fp32. A "word" is two bf16 (the
// lower half first). Leaf builds: attention_bf16_avx512.cpp (AVX512-BF16) and
// attention_bf16_portable.cpp (plain C++, the same arithmetic: tests, any CPU), both from
// attention_bf16_impl.inc.
//
// K and V converted to bf16 words, for one (batch, kv head) block of T key rows (T = Tk forward):
struct AttnBf16KV {
  const uint32_t* kr;  // [T][De/2]: key row j as words over d (De = D rounded up to even)
  const uint32_t* vr;  // the same for V (backward)
  const uint32_t* kk;  // [Tp/2][D]: word (k_{2t}[d], k_{2t+1}[d]) (Tp = T rounded up to even; backward)
  const uint32_t* vk;  // the same for V (forward)
};

// Workspace sizes in floats (per worker).
int64_t attention_bf16_fwd_ws_floats(int64_t D);
int64_t attention_bf16_bwd_ws_floats(int64_t D, int64_t T);

// convert: one (batch, kv head) block of K or V: rows j < T at src + j*ld (D floats each) into
// `rows` ([T][De/2], may be null) and `pairs` ([Tp/2][D], may be null); rows j >= tvis count as zero.
// The tile functions mirror the fp32 ones above (same arguments plus the converted K/V block of
// their (batch, kv head)). lo: null (causal rows) or, per query ([B][Tq]), the first key it sees
// (packed rows of several samples: query i sees keys [lo[i], qOffset + i]).
#define MT_ATTN_BF16_DECLARE(SUF)                                                                                      \
  void attention_bf16_convert_##SUF(const float* src, int64_t ld, int64_t T, int64_t tvis, int64_t D, uint32_t* rows,    \
                                    uint32_t* pairs);                                                                    \
  void attention_bf16_fwd_tile_##SUF(const AttnFwdParams& p, const AttnBf16KV& kv, const int32_t* lo, int64_t b, int64_t h, \
                                     int64_t q0, int64_t nq, float* ws);                                                 \
  void attention_bf16_bwd_group_##SUF(const AttnBwdParams& p, const AttnBf16KV& kv, const int32_t* lo, int64_t b,         \
                                      int64_t kvh, float* ws);                                                           \
  void attention_bf16_bwd_dkdv_##SUF(const AttnBwdParams& p, const AttnBf16KV& kv, const int32_t* lo, int64_t b,          \
                                     int64_t kvh, int64_t j0, int64_t nk, float* ws);                                    \
  void attention_bf16_bwd_dq_##SUF(const AttnBwdParams& p, const AttnBf16KV& kv, const int32_t* lo, int64_t b, int64_t h,  \
                                   int64_t q0, int64_t nq, float* ws);

MT_ATTN_BF16_DECLARE(avx512bf16)
MT_ATTN_BF16_DECLARE(portable)

}  // namespace mt
