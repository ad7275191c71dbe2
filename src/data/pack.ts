// Groups (one training sample each: SFT example, MoI chunk, MISO sample) and their packing into
// rows of at most maxLen tokens. Inside a row, every token carries its group index, so the
// attention kernel never lets a group see another one: packing is contamination-free.
import { MixtuneError } from '../util/errors.js';
import type { Weighting } from '../tensor/ops.js';

export type { Weighting };
export const IGNORE = -100;

export interface Group {
  /** Token ids: input parts first (in order), then the output part. */
  tokens: number[];
  /** What each position predicts (the next token of its part's stream), or IGNORE. */
  targets: number[];
  /** RoPE position ids. */
  positions: number[];
  /** Part of each token: 0..nInputs-1 = input part, -1 = output part. Absent: one part (n = 1). */
  parts?: number[];
  /** Number of input parts (1 for ordinary causal samples). */
  nInputs: number;
  weighting?: Weighting;
  /** Where it came from (file:line), for messages. */
  source: string;
}

export type Overflow = 'truncate' | 'drop' | 'error';

export interface Row {
  tokens: Int32Array;
  targets: Int32Array;
  positions: Int32Array;
  /** Group index (into `groups`) per token. */
  group: Int32Array;
  /** Part per token (see Group.parts). */
  part: Int32Array;
  groups: { nInputs: number; weighting: Weighting }[];
  /** Real tokens (the arrays are exactly this long: padding happens at batching). */
  length: number;
}

export interface PackStats {
  groups: number;
  rows: number;
  tokens: number;
  capacity: number;
  /** Real tokens / (rows × maxLen). */
  efficiency: number;
  truncated: number;
  dropped: number;
  /** Tokens that carry a loss. */
  targetTokens: number;
  /** Loss-carrying tokens of the input groups that truncation or dropping removed. */
  lostTargetTokens: number;
  /** The longest input group in tokens (what max_len must reach to keep everything). */
  longestGroup: number;
}

/** Applies the overflow policy to one group; returns null when it is dropped. */
export function fitGroup(g: Group, maxLen: number, overflow: Overflow): Group | null {
  if (g.tokens.length <= maxLen) return g;
  if (overflow === 'error') throw new MixtuneError(`${g.source}: ${g.tokens.length} tokens exceed max_len ${maxLen} (overflow: error)`);
  if (overflow === 'drop') return null;
  // truncate: keep the first maxLen tokens; the cut position predicts nothing.
  const cut: Group = {
    ...g,
    tokens: g.tokens.slice(0, maxLen),
    targets: g.targets.slice(0, maxLen),
    positions: g.positions.slice(0, maxLen),
    ...(g.parts ? { parts: g.parts.slice(0, maxLen) } : {}),
  };
  cut.targets[maxLen - 1] = IGNORE;
  if (!cut.targets.some((t) => t !== IGNORE)) return null; // nothing left to learn from
  return cut;
}

/**
 * Best-fit-decreasing bin packing: groups sorted by length (longest first, ties in input order)
 * each go to the open row with the least room that still fits them. With pack = false, one
 * group per row. Deterministic for a given input order.
 */
export function packGroups(input: Group[], maxLen: number, opts: { overflow?: Overflow; pack?: boolean } = {}): { rows: Row[]; stats: PackStats } {
  const overflow = opts.overflow ?? 'truncate';
  let truncated = 0;
  let dropped = 0;
  let lostTargetTokens = 0;
  let longestGroup = 0;
  const countTargets = (t: readonly number[]): number => t.reduce((n, x) => n + (x !== IGNORE ? 1 : 0), 0);
  const groups: Group[] = [];
  for (const g of input) {
    longestGroup = Math.max(longestGroup, g.tokens.length);
    const f = fitGroup(g, maxLen, overflow);
    if (!f) {
      dropped++;
      lostTargetTokens += countTargets(g.targets);
    } else {
      if (f !== g) {
        truncated++;
        lostTargetTokens += countTargets(g.targets) - countTargets(f.targets);
      }
      groups.push(f);
    }
  }
  let bins: Group[][];
  if (opts.pack === false) bins = groups.map((g) => [g]);
  else {
    const order = groups.map((g, i) => i).sort((a, b) => groups[b]!.tokens.length - groups[a]!.tokens.length || a - b);
    // buckets[r] = indices of open bins with exactly r free tokens (each bucket is a stack).
    const buckets: number[][] = Array.from({ length: maxLen + 1 }, () => []);
    const free: number[] = [];
    bins = [];
    for (const gi of order) {
      const len = groups[gi]!.tokens.length;
      let chosen = -1;
      for (let r = len; r <= maxLen; r++) {
        const b = buckets[r]!;
        if (b.length) {
          chosen = b.shift()!;
          break;
        }
      }
      if (chosen < 0) {
        chosen = bins.length;
        bins.push([]);
        free.push(maxLen);
      }
      bins[chosen]!.push(groups[gi]!);
      free[chosen]! -= len;
      if (free[chosen]! > 0) buckets[free[chosen]!]!.push(chosen);
    }
  }
  const rows = bins.map(buildRow);
  const tokens = rows.reduce((s, r) => s + r.length, 0);
  let targetTokens = 0;
  for (const r of rows) for (const t of r.targets) if (t !== IGNORE) targetTokens++;
  const capacity = rows.length * maxLen;
  return {
    rows,
    stats: { groups: groups.length, rows: rows.length, tokens, capacity, efficiency: capacity ? tokens / capacity : 0, truncated, dropped, targetTokens, lostTargetTokens, longestGroup },
  };
}

export function buildRow(groups: Group[]): Row {
  const n = groups.reduce((s, g) => s + g.tokens.length, 0);
  const row: Row = {
    tokens: new Int32Array(n),
    targets: new Int32Array(n),
    positions: new Int32Array(n),
    group: new Int32Array(n),
    part: new Int32Array(n),
    groups: groups.map((g) => ({ nInputs: g.nInputs, weighting: g.weighting ?? 'uniform' })),
    length: n,
  };
  let o = 0;
  groups.forEach((g, gi) => {
    row.tokens.set(g.tokens, o);
    row.targets.set(g.targets, o);
    row.positions.set(g.positions, o);
    row.group.fill(gi, o, o + g.tokens.length);
    if (g.parts) row.part.set(g.parts, o);
    o += g.tokens.length;
  });
  return row;
}

/** One SFT group from a tokenized conversation: labels aligned with ids (IGNORE = not trained). */
export function causalGroup(ids: number[], labels: number[], source: string): Group {
  const targets = new Array<number>(ids.length);
  for (let t = 0; t + 1 < ids.length; t++) targets[t] = labels[t + 1]!;
  targets[ids.length - 1] = IGNORE;
  return { tokens: ids, targets, positions: ids.map((_, i) => i), nInputs: 1, source };
}
