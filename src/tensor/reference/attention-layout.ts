// Reference (test-oracle) layout-aware attention (docs/design.md §2): plain fp64 loops, one query at
// a time with its visible keys listed explicitly. O(B·H·T·T·D): small shapes only.
// Semantics and the stats layout: src/tensor/kernels.ts (attentionLayoutForward).
import type { Kernels } from '../kernels.js';

/** Weighting codes (src/tensor/ops.ts WEIGHTING_CODE). */
export const W_UNIFORM = 0;
export const W_FID = 1;
export const W_VANILLA = 2;

/** Per query token: which keys it sees and how they are combined. */
interface QueryPlan {
  /** 'single': one softmax over keys [lo, t] with bias (log n on the output keys of fid groups). */
  kind: 'single' | 'uniform';
  lo: number;
  /** fid output queries: first output key (keys >= oStart get +log n); -1 = no bias. */
  biasFrom: number;
  bias: number;
  /** uniform output queries: [start, end) of each input part and the output start. */
  inputs: Array<[number, number]>;
  oStart: number;
}

/**
 * Checks a layout (throws TypeError naming the problem) and returns the per-token plans, row
 * relative (index b*T + t). The native glue applies exactly the same rules.
 */
export function planLayout(
  fn: string, B: number, T: number, group: Int32Array, part: Int32Array, nInputs: Int32Array, weighting: Int32Array, maxInputs: number,
): QueryPlan[] {
  if (!(group instanceof Int32Array) || !(part instanceof Int32Array) || !(nInputs instanceof Int32Array) || !(weighting instanceof Int32Array)) {
    throw new TypeError(`${fn}: group, part, nInputs and weighting must be Int32Arrays`);
  }
  if (!Number.isInteger(maxInputs) || maxInputs < 1) throw new TypeError(`${fn}: maxInputs must be an integer >= 1`);
  if (group.length < B * T) throw new TypeError(`${fn}: group is too short: need ${B * T}, got ${group.length}`);
  if (part.length < B * T) throw new TypeError(`${fn}: part is too short: need ${B * T}, got ${part.length}`);
  const G = nInputs.length;
  if (weighting.length < G) throw new TypeError(`${fn}: weighting is too short: need ${G}, got ${weighting.length}`);
  for (let g = 0; g < G; g++) {
    if (nInputs[g]! < 1 || nInputs[g]! > maxInputs) throw new TypeError(`${fn}: nInputs[${g}] = ${nInputs[g]} must be in [1, maxInputs = ${maxInputs}]`);
    if (weighting[g]! < 0 || weighting[g]! > 2) throw new TypeError(`${fn}: weighting[${g}] = ${weighting[g]} must be 0 (uniform), 1 (fid) or 2 (vanilla)`);
  }
  const seen = new Uint8Array(G);
  const plans: QueryPlan[] = new Array(B * T);
  for (let b = 0; b < B; b++) {
    let s = 0;
    while (s < T) {
      const g = group[b * T + s]!;
      if (!(g >= 0 && g < G)) throw new TypeError(`${fn}: group[${b * T + s}] = ${g} is not a group id in [0, ${G})`);
      if (seen[g]) throw new TypeError(`${fn}: the tokens of group ${g} are not contiguous in one row`);
      seen[g] = 1;
      let e = s;
      while (e < T && group[b * T + e] === g) e++;
      const n = nInputs[g]!;
      if (n === 1) {
        for (let t = s; t < e; t++) {
          const p = part[b * T + t]!;
          if (p !== 0 && p !== -1) throw new TypeError(`${fn}: part[${b * T + t}] = ${p}: a group with one input has parts 0 or -1 only`);
          plans[b * T + t] = { kind: 'single', lo: s, biasFrom: -1, bias: 0, inputs: [], oStart: -1 };
        }
      } else {
        // Parts 0, 1, ..., n-1 (each non-empty, in order), then optionally the output part -1.
        const inputs: Array<[number, number]> = [];
        let oStart = e;
        let cur = -2;
        for (let t = s; t < e; t++) {
          const p = part[b * T + t]!;
          if (p === cur) continue;
          const ok = cur === -2 ? p === 0 : cur >= 0 && (p === cur + 1 ? p < n : p === -1 && cur === n - 1);
          if (!ok) {
            throw new TypeError(`${fn}: part[${b * T + t}] = ${p} after ${cur === -2 ? 'the group start' : cur}: group ${g} (nInputs ${n}) must hold input parts 0..${n - 1} in order, then the output part -1`);
          }
          if (cur >= 0) inputs[cur]![1] = t;
          if (p >= 0) inputs.push([t, e]);
          else oStart = t;
          cur = p;
        }
        if (cur !== -1 && cur !== n - 1) throw new TypeError(`${fn}: group ${g} ends before its input part ${cur + 1} (nInputs ${n})`);
        if (cur === n - 1) inputs[cur]![1] = e;
        const w = weighting[g]!;
        for (let t = s; t < e; t++) {
          const p = part[b * T + t]!;
          if (p >= 0) plans[b * T + t] = { kind: 'single', lo: inputs[p]![0], biasFrom: -1, bias: 0, inputs: [], oStart: -1 };
          else if (w === W_UNIFORM) plans[b * T + t] = { kind: 'uniform', lo: s, biasFrom: -1, bias: 0, inputs, oStart };
          else plans[b * T + t] = { kind: 'single', lo: s, biasFrom: w === W_FID ? oStart : -1, bias: w === W_FID ? Math.log(n) : 0, inputs: [], oStart };
        }
      }
      s = e;
    }
  }
  return plans;
}

function checkDims(fn: string, B: number, T: number, nHeads: number, nKvHeads: number, D: number, scale: number): void {
  for (const [name, v] of [['B', B], ['T', T], ['nHeads', nHeads], ['nKvHeads', nKvHeads], ['headDim', D]] as const) {
    if (!Number.isInteger(v) || v < 1) throw new TypeError(`${fn}: ${name} must be an integer >= 1`);
  }
  if (nHeads % nKvHeads !== 0) throw new TypeError(`${fn}: nHeads must be a multiple of nKvHeads`);
  if (!Number.isFinite(scale)) throw new TypeError(`${fn}: scale must be finite`);
}

function need(fn: string, name: string, a: Float32Array, n: number): void {
  if (!(a instanceof Float32Array)) throw new TypeError(`${fn}: ${name} must be a Float32Array`);
  if (a.length < n) throw new TypeError(`${fn}: ${name} is too short: need ${n}, got ${a.length}`);
}

/** The key lists (with logit biases) of one query: one list for 'single', one per input for 'uniform'. */
function keySets(plan: QueryPlan, t: number): Array<{ keys: number[]; bias: number[] }> {
  const range = (a: number, b: number): number[] => Array.from({ length: b - a }, (_, i) => a + i);
  if (plan.kind === 'single') {
    const keys = range(plan.lo, t + 1);
    return [{ keys, bias: keys.map((j) => (plan.biasFrom >= 0 && j >= plan.biasFrom ? plan.bias : 0)) }];
  }
  return plan.inputs.map(([a, b]) => {
    const keys = [...range(a, b), ...range(plan.oStart, t + 1)];
    return { keys, bias: keys.map(() => 0) };
  });
}

export const refAttentionLayoutForward: Kernels['attentionLayoutForward'] = (
  q, k, v, out, stats, B, T, nHeads, nKvHeads, D, scale, group, part, nInputs, weighting, maxInputs,
) => {
  const fn = 'attentionLayoutForward';
  checkDims(fn, B, T, nHeads, nKvHeads, D, scale);
  const plans = planLayout(fn, B, T, group, part, nInputs, weighting, maxInputs);
  const qw = nHeads * D;
  const kw = nKvHeads * D;
  need(fn, 'q', q, B * T * qw);
  need(fn, 'k', k, B * T * kw);
  need(fn, 'v', v, B * T * kw);
  need(fn, 'out', out, B * T * qw);
  need(fn, 'stats', stats, B * nHeads * T * maxInputs);
  const rep = nHeads / nKvHeads;
  const o = new Float64Array(D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < nHeads; h++) {
      const kh = Math.floor(h / rep);
      for (let t = 0; t < T; t++) {
        const qi = (b * T + t) * qw + h * D;
        const st = ((b * nHeads + h) * T + t) * maxInputs;
        for (let x = 0; x < maxInputs; x++) stats[st + x] = 0;
        const sets = keySets(plans[b * T + t]!, t);
        o.fill(0);
        sets.forEach(({ keys, bias }, si) => {
          const s = keys.map((j, x) => {
            const kj = (b * T + j) * kw + kh * D;
            let d = 0;
            for (let c = 0; c < D; c++) d += q[qi + c]! * k[kj + c]!;
            return scale * d + bias[x]!;
          });
          const max = Math.max(...s);
          const e = s.map((x) => Math.exp(x - max));
          const sum = e.reduce((a, x) => a + x, 0);
          keys.forEach((j, x) => {
            const vj = (b * T + j) * kw + kh * D;
            const pj = e[x]! / sum / sets.length;
            for (let c = 0; c < D; c++) o[c] += pj * v[vj + c]!;
          });
          stats[st + si] = max + Math.log(sum);
        });
        for (let c = 0; c < D; c++) out[qi + c] = o[c]!;
      }
    }
  }
};

export const refAttentionLayoutBackward: Kernels['attentionLayoutBackward'] = (
  q, k, v, out, stats, dOut, dq, dk, dv, B, T, nHeads, nKvHeads, D, scale, group, part, nInputs, weighting, maxInputs,
) => {
  const fn = 'attentionLayoutBackward';
  checkDims(fn, B, T, nHeads, nKvHeads, D, scale);
  const plans = planLayout(fn, B, T, group, part, nInputs, weighting, maxInputs);
  const qw = nHeads * D;
  const kw = nKvHeads * D;
  for (const [name, a, n] of [
    ['q', q, B * T * qw], ['k', k, B * T * kw], ['v', v, B * T * kw], ['out', out, B * T * qw],
    ['stats', stats, B * nHeads * T * maxInputs], ['dOut', dOut, B * T * qw], ['dq', dq, B * T * qw], ['dk', dk, B * T * kw], ['dv', dv, B * T * kw],
  ] as const) need(fn, name, a, n);
  const rep = nHeads / nKvHeads;
  const gq = new Float64Array(B * T * qw);
  const gk = new Float64Array(B * T * kw);
  const gv = new Float64Array(B * T * kw);
  const a = new Float64Array(D);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < nHeads; h++) {
      const kh = Math.floor(h / rep);
      for (let t = 0; t < T; t++) {
        const qi = (b * T + t) * qw + h * D;
        const st = ((b * nHeads + h) * T + t) * maxInputs;
        const sets = keySets(plans[b * T + t]!, t);
        const w = 1 / sets.length; // uniform: O = (1/n) sum_i A_i; single: O = A_0
        sets.forEach(({ keys, bias }, si) => {
          // A_i = sum_j P_ij v_j with P_ij = exp(s_ij + bias_j - log Z_i) from the saved stats.
          const L = stats[st + si]!;
          const p = keys.map((j, x) => {
            const kj = (b * T + j) * kw + kh * D;
            let d = 0;
            for (let c = 0; c < D; c++) d += q[qi + c]! * k[kj + c]!;
            return Math.exp(scale * d + bias[x]! - L);
          });
          a.fill(0);
          keys.forEach((j, x) => {
            const vj = (b * T + j) * kw + kh * D;
            for (let c = 0; c < D; c++) a[c] += p[x]! * v[vj + c]!;
          });
          // Single softmax: use the saved output (as the causal backward does); uniform: A_i.
          let di = 0;
          for (let c = 0; c < D; c++) di += dOut[qi + c]! * (sets.length === 1 ? out[qi + c]! : a[c]!);
          keys.forEach((j, x) => {
            const kj = (b * T + j) * kw + kh * D;
            let dp = 0;
            for (let c = 0; c < D; c++) dp += dOut[qi + c]! * v[kj + c]!;
            const pw = w * p[x]!;
            const ds = pw * (dp - di);
            for (let c = 0; c < D; c++) {
              gv[kj + c] += pw * dOut[qi + c]!;
              gq[qi + c] += scale * ds * k[kj + c]!;
              gk[kj + c] += scale * ds * q[qi + c]!;
            }
          });
        });
      }
    }
  }
  for (let x = 0; x < gq.length; x++) dq[x] = gq[x]!;
  for (let x = 0; x < gk.length; x++) {
    dk[x] = gk[x]!;
    dv[x] = gv[x]!;
  }
};
