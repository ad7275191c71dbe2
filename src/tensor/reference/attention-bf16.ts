// Reference (test-oracle) twin of the bf16 causal attention (native/attention_bf16_impl.inc,
// src/tensor/bf16.ts attentionForwardBf16 / attentionBackwardBf16): plain loops, sums in fp64,
// every bf16 rounding at the same place as the kernel. Small shapes only. Optional lo: query i sees
// keys [lo[i], qOffset + i] (rows packed with several samples) instead of [0, qOffset + i].
//
// Forward, per query row i (position qOffset + i), keys in tiles of ATTN_BK = 64 from key 0 (the
// kernel's online softmax, followed exactly because the probabilities are rounded relative to the
// running max of their tile):
//   s_j = Σ_d bf(scale·q_d) bf(k_jd);  per tile: m' = max(m, s_j), l = l e^{m-m'} + Σ e^{s_j-m'},
//   O = O e^{m-m'} + Σ bf(e^{s_j-m'}) bf(v_j);  out = O / l, lse = m + log l.
// Backward (flash-attention-2 with bf16 products): P_ij = e^{s_ij - lse_i}, dP_ij = Σ_d bf(dO_id) bf(v_jd),
// Delta_i = dO_i·O_i, dS_ij = P_ij (dP_ij - Delta_i);  dV_j = Σ_i bf(P_ij) bf(dO_i),
// dK_j = Σ_i bf(dS_ij) bf(scale·q_i),  dQ_i = scale Σ_j bf(dS_ij) bf(k_j).
// bf(x): x rounded to bf16 (nearest even), denormals as zero (the VDPBF16PS operand semantics).
import type { Kernels } from '../kernels.js';
import { bf16BitsToF32, f32ToBf16Bits } from './bf16.js';

const BK = 64;

function bf(x: number): number {
  const h = f32ToBf16Bits(Math.fround(x));
  return (h & 0x7f80) === 0 ? 0 : bf16BitsToF32(h);
}

function bfArray(a: Float32Array, mul = 1): Float64Array {
  const f = Math.fround(mul);
  return Float64Array.from(a, (x) => bf(Math.fround(f * x)));
}

type Fwd = (...a: [...Parameters<Kernels['attentionForward']>, lo?: Int32Array | null]) => void;
type Bwd = (...a: [...Parameters<Kernels['attentionBackward']>, lo?: Int32Array | null]) => void;

/** lo (optional, [B*Tq]): query i sees keys [lo[i], qOffset + i] (packed rows); absent = causal. */
export const refAttentionBf16Forward: Fwd = (q, k, v, out, lse, B, Tq, Tk, nHeads, nKvHeads, D, scale, qOffset, lo) => {
  const qw = nHeads * D, kw = nKvHeads * D, group = nHeads / nKvHeads;
  const qb = bfArray(q.subarray(0, B * Tq * qw), scale), kb = bfArray(k.subarray(0, B * Tk * kw)), vb = bfArray(v.subarray(0, B * Tk * kw));
  const o = new Float64Array(D);
  const s = new Float64Array(BK);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < nHeads; h++) {
      const kh = Math.floor(h / group);
      for (let i = 0; i < Tq; i++) {
        const qi = (b * Tq + i) * qw + h * D;
        const last = qOffset + i;
        const first = lo ? lo[b * Tq + i]! : 0;
        let m = -Infinity, l = 0;
        o.fill(0);
        for (let j0 = Math.floor(first / BK) * BK; j0 <= last; j0 += BK) {
          const ja = Math.max(j0, first);
          const j1 = Math.min(j0 + BK, last + 1);
          if (ja >= j1) continue;  // no visible key in this tile
          let mx = m;
          for (let j = ja; j < j1; j++) {
            const kj = (b * Tk + j) * kw + kh * D;
            let dotv = 0;
            for (let d = 0; d < D; d++) dotv += qb[qi + d]! * kb[kj + d]!;
            s[j - ja] = dotv;
            if (dotv > mx) mx = dotv;
          }
          const alpha = Math.exp(m - mx);  // 0 on the first tile (m = -inf)
          l *= alpha;
          for (let d = 0; d < D; d++) o[d]! *= alpha;
          for (let j = ja; j < j1; j++) {
            const e = Math.exp(s[j - ja]! - mx);
            l += e;
            const p = bf(e);
            const vj = (b * Tk + j) * kw + kh * D;
            for (let d = 0; d < D; d++) o[d] += p * vb[vj + d]!;
          }
          m = mx;
        }
        for (let d = 0; d < D; d++) out[qi + d] = o[d]! / l;
        lse[(b * nHeads + h) * Tq + i] = m + Math.log(l);
      }
    }
  }
};

export const refAttentionBf16Backward: Bwd = (q, k, v, out, lse, dOut, dq, dk, dv, B, T, nHeads, nKvHeads, D, scale, lo) => {
  const qw = nHeads * D, kw = nKvHeads * D, group = nHeads / nKvHeads;
  const qs = bfArray(q.subarray(0, B * T * qw), scale), kb = bfArray(k.subarray(0, B * T * kw)), vb = bfArray(v.subarray(0, B * T * kw));
  const gb = bfArray(dOut.subarray(0, B * T * qw));
  const gq = new Float64Array(B * T * qw), gk = new Float64Array(B * T * kw), gv = new Float64Array(B * T * kw);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < nHeads; h++) {
      const kh = Math.floor(h / group);
      for (let i = 0; i < T; i++) {
        const qi = (b * T + i) * qw + h * D;
        let delta = 0;
        for (let d = 0; d < D; d++) delta += dOut[qi + d]! * out[qi + d]!;
        const L = lse[(b * nHeads + h) * T + i]!;
        for (let j = lo ? lo[b * T + i]! : 0; j <= i; j++) {
          const kj = (b * T + j) * kw + kh * D;
          let sv = 0, dp = 0;
          for (let d = 0; d < D; d++) {
            sv += qs[qi + d]! * kb[kj + d]!;
            dp += gb[qi + d]! * vb[kj + d]!;
          }
          const p = Math.exp(sv - L);
          const ds = bf(p * (dp - delta));
          const pb = bf(p);
          for (let d = 0; d < D; d++) {
            gv[kj + d] += pb * gb[qi + d]!;
            gk[kj + d] += ds * qs[qi + d]!;
            gq[qi + d] += ds * kb[kj + d]!;
          }
        }
      }
    }
  }
  const f = Math.fround(scale);
  for (let x = 0; x < gq.length; x++) dq[x] = f * gq[x]!;
  for (let x = 0; x < gk.length; x++) {
    dk[x] = gk[x]!;
    dv[x] = gv[x]!;
  }
};
