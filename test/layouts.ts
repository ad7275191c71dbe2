// Attention layouts for tests: rows of causal groups and MISO groups (docs/design.md §2), in the
// form the layout kernels take (group / part per token, nInputs / weighting per group).
import assert from 'node:assert/strict';
import type { Rng } from '../src/util/rng.js';

export type W = 'uniform' | 'fid' | 'vanilla';
export const WCODE: Record<W, number> = { uniform: 0, fid: 1, vanilla: 2 };
/** A group: one causal part of `len` tokens (n = 1), or MISO inputs + output. */
export type Spec = { len: number } | { inputs: number[]; out: number; w: W };
export const specLen = (s: Spec): number => ('len' in s ? s.len : s.inputs.reduce((a, x) => a + x, 0) + s.out);

export interface Layout {
  B: number; T: number;
  group: Int32Array; part: Int32Array; nInputs: Int32Array; weighting: Int32Array; maxInputs: number;
  /** Per row: [start, spec] of each real group. */
  spans: Array<Array<[number, Spec]>>;
}

/** Rows of groups, each row padded to T with its own n = 1 padding group. */
export function buildLayout(rows: Spec[][], T: number): Layout {
  const B = rows.length;
  const group = new Int32Array(B * T);
  const part = new Int32Array(B * T);
  const nInputs: number[] = [];
  const weighting: number[] = [];
  const spans: Layout['spans'] = [];
  rows.forEach((row, b) => {
    let t = 0;
    const sp: Array<[number, Spec]> = [];
    for (const s of row) {
      const g = nInputs.length;
      sp.push([t, s]);
      if ('len' in s) {
        // n = 1 groups may use 0 or -1: first half 0, second half -1.
        for (let x = 0; x < s.len; x++, t++) {
          group[b * T + t] = g;
          part[b * T + t] = x < s.len / 2 ? 0 : -1;
        }
        nInputs.push(1);
        weighting.push(0);
      } else {
        s.inputs.forEach((len, i) => {
          for (let x = 0; x < len; x++, t++) {
            group[b * T + t] = g;
            part[b * T + t] = i;
          }
        });
        for (let x = 0; x < s.out; x++, t++) {
          group[b * T + t] = g;
          part[b * T + t] = -1;
        }
        nInputs.push(s.inputs.length);
        weighting.push(WCODE[s.w]);
      }
    }
    assert.ok(t <= T, 'row too long');
    if (t < T) {
      const g = nInputs.length;
      for (; t < T; t++) group[b * T + t] = g;
      nInputs.push(1);
      weighting.push(0);
    }
    spans.push(sp);
  });
  return {
    B, T, group, part, nInputs: Int32Array.from(nInputs), weighting: Int32Array.from(weighting),
    maxInputs: Math.max(...nInputs), spans,
  };
}

export function randomRow(rng: Rng, T: number, maxN: number): Spec[] {
  const row: Spec[] = [];
  let t = 0;
  const ws: W[] = ['uniform', 'fid', 'vanilla'];
  while (t < T) {
    const room = T - t;
    let s: Spec;
    if (rng.int(3) === 0 || room < maxN + 2) s = { len: 1 + rng.int(Math.min(room, 70)) };
    else {
      const n = 2 + rng.int(maxN - 1);
      const inputs = Array.from({ length: n }, () => 1 + rng.int(Math.max(1, Math.floor((room - 1) / (n + 1)))));
      const used = inputs.reduce((a, x) => a + x, 0);
      s = { inputs, out: Math.min(room - used, rng.int(60)), w: ws[rng.int(3)]! };
    }
    t += specLen(s);
    row.push(s);
  }
  return row;
}

