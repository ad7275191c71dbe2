// Reference (test-oracle) causal grouped-query attention: plain loops in fp64, one query row at a
// time with the row's probabilities materialized (O(Tk) memory per row). Obviously correct,
// O(B·H·Tq·Tk·D): use only for small shapes. Semantics: src/tensor/kernels.ts.
import type { Kernels } from '../kernels.js';

function checkShapes(
  fn: string, B: number, Tq: number, Tk: number, nHeads: number, nKvHeads: number, headDim: number, qOffset: number,
): void {
  for (const [name, v] of [['B', B], ['Tq', Tq], ['Tk', Tk], ['nHeads', nHeads], ['nKvHeads', nKvHeads], ['headDim', headDim]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new TypeError(`${fn}: ${name} must be an integer >= 1`);
  }
  if (nHeads % nKvHeads !== 0) throw new TypeError(`${fn}: nHeads must be a multiple of nKvHeads`);
  if (!Number.isInteger(qOffset) || qOffset < 0 || qOffset + Tq > Tk) throw new TypeError(`${fn}: need 0 <= qOffset and qOffset + Tq <= Tk`);
}

function need(fn: string, name: string, a: Float32Array, n: number): void {
  if (a.length < n) throw new TypeError(`${fn}: ${name} is too short: need ${n}, got ${a.length}`);
}

export const refAttentionForward: Kernels['attentionForward'] = (
  q, k, v, out, lse, B, Tq, Tk, nHeads, nKvHeads, D, scale, qOffset,
) => {
  checkShapes('attentionForward', B, Tq, Tk, nHeads, nKvHeads, D, qOffset);
  const qw = nHeads * D;
  const kw = nKvHeads * D;
  need('attentionForward', 'q', q, B * Tq * qw);
  need('attentionForward', 'k', k, B * Tk * kw);
  need('attentionForward', 'v', v, B * Tk * kw);
  need('attentionForward', 'out', out, B * Tq * qw);
  need('attentionForward', 'lse', lse, B * nHeads * Tq);
  const group = nHeads / nKvHeads;
  const s = new Float64Array(Tk);
  const o = new Float64Array(D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < nHeads; h++) {
      const kh = Math.floor(h / group);
      for (let i = 0; i < Tq; i++) {
        const qi = (b * Tq + i) * qw + h * D;
        const last = qOffset + i; // keys 0..last are visible
        let max = -Infinity;
        for (let j = 0; j <= last; j++) {
          const kj = (b * Tk + j) * kw + kh * D;
          let dotv = 0;
          for (let d = 0; d < D; d++) dotv += q[qi + d]! * k[kj + d]!;
          s[j] = scale * dotv;
          if (s[j]! > max) max = s[j]!;
        }
        let sum = 0;
        for (let j = 0; j <= last; j++) {
          s[j] = Math.exp(s[j]! - max);
          sum += s[j]!;
        }
        o.fill(0);
        for (let j = 0; j <= last; j++) {
          const vj = (b * Tk + j) * kw + kh * D;
          const pj = s[j]! / sum;
          for (let d = 0; d < D; d++) o[d] += pj * v[vj + d]!;
        }
        for (let d = 0; d < D; d++) out[qi + d] = o[d]!;
        lse[(b * nHeads + h) * Tq + i] = max + Math.log(sum);
      }
    }
  }
};

export const refAttentionBackward: Kernels['attentionBackward'] = (
  q, k, v, out, lse, dOut, dq, dk, dv, B, T, nHeads, nKvHeads, D, scale,
) => {
  checkShapes('attentionBackward', B, T, T, nHeads, nKvHeads, D, 0);
  const qw = nHeads * D;
  const kw = nKvHeads * D;
  for (const [name, a, n] of [
    ['q', q, B * T * qw], ['k', k, B * T * kw], ['v', v, B * T * kw], ['out', out, B * T * qw],
    ['lse', lse, B * nHeads * T], ['dOut', dOut, B * T * qw], ['dq', dq, B * T * qw], ['dk', dk, B * T * kw], ['dv', dv, B * T * kw],
  ] as const) need('attentionBackward', name, a, n);
  const group = nHeads / nKvHeads;
  // Accumulate in fp64, write at the end.
  const gq = new Float64Array(B * T * qw);
  const gk = new Float64Array(B * T * kw);
  const gv = new Float64Array(B * T * kw);
  const p = new Float64Array(T);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < nHeads; h++) {
      const kh = Math.floor(h / group);
      for (let i = 0; i < T; i++) {
        const qi = (b * T + i) * qw + h * D;
        const L = lse[(b * nHeads + h) * T + i]!;
        // Di = dO_i · O_i
        let di = 0;
        for (let d = 0; d < D; d++) di += dOut[qi + d]! * out[qi + d]!;
        for (let j = 0; j <= i; j++) {
          const kj = (b * T + j) * kw + kh * D;
          let dotv = 0;
          for (let d = 0; d < D; d++) dotv += q[qi + d]! * k[kj + d]!;
          p[j] = Math.exp(scale * dotv - L);
        }
        for (let j = 0; j <= i; j++) {
          const kj = (b * T + j) * kw + kh * D;
          let dp = 0;
          for (let d = 0; d < D; d++) dp += dOut[qi + d]! * v[kj + d]!;
          const ds = p[j]! * (dp - di); // gradient w.r.t. the scaled score
          for (let d = 0; d < D; d++) {
            gv[kj + d] += p[j]! * dOut[qi + d]!;
            gq[qi + d] += scale * ds * k[kj + d]!;
            gk[kj + d] += scale * ds * q[qi + d]!;
          }
        }
      }
    }
  }
  for (let x = 0; x < gq.length; x++) dq[x] = gq[x]!;
  for (let x = 0; x < gk.length; x++) {
    dk[x] = gk[x]!;
    dv[x] = gv[x]!;
  }
};
