// Micro-batches: B packed rows padded to a common length. Padding tokens form their own group
// (so they attend to nothing real), predict nothing, and sit at position 0.
import { IGNORE, type Row } from '../data/pack.js';
import type { AttentionLayout, Weighting } from '../tensor/ops.js';

export interface MicroBatch {
  batch: number;
  seq: number;
  inputs: Int32Array;
  targets: Int32Array;
  positions: Int32Array;
  /**
   * Absent when every row holds a single ordinary (n = 1) group: plain causal attention is then
   * exact (trailing padding is never attended to by real tokens and predicts nothing).
   */
  layout?: AttentionLayout;
  /** Tokens with a target (the loss denominator share of this micro-batch). */
  targetTokens: number;
  /** Real (non-padding) tokens. */
  realTokens: number;
}

export function makeMicroBatch(rows: Row[], padId = 0): MicroBatch {
  const B = rows.length;
  const T = Math.max(...rows.map((r) => r.length));
  const inputs = new Int32Array(B * T).fill(padId);
  const targets = new Int32Array(B * T).fill(IGNORE);
  const positions = new Int32Array(B * T);
  const group = new Int32Array(B * T);
  const part = new Int32Array(B * T);
  const nInputs: number[] = [];
  const weighting: Weighting[] = [];
  let targetTokens = 0;
  let realTokens = 0;
  rows.forEach((r, b) => {
    const o = b * T;
    const base = nInputs.length;
    inputs.set(r.tokens, o);
    targets.set(r.targets, o);
    positions.set(r.positions, o);
    part.set(r.part, o);
    for (let t = 0; t < r.length; t++) group[o + t] = base + r.group[t]!;
    for (const g of r.groups) {
      nInputs.push(g.nInputs);
      weighting.push(g.weighting);
    }
    if (r.length < T) {
      group.fill(nInputs.length, o + r.length, o + T);
      nInputs.push(1);
      weighting.push('uniform');
    }
    for (const t of r.targets) if (t !== IGNORE) targetTokens++;
    realTokens += r.length;
  });
  const plain = rows.every((r) => r.groups.length === 1 && r.groups[0]!.nInputs === 1);
  return {
    batch: B, seq: T, inputs, targets, positions,
    ...(plain ? {} : { layout: { group, part, nInputs: Int32Array.from(nInputs), weighting } }),
    targetTokens, realTokens,
  };
}
