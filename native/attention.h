// Causal grouped-query attention: plain declarations shared by the glue (attention.cpp) and the
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

}  // namespace mt
