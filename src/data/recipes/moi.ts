// MoI, Mixture-of-Instructions (docs/design.md §3): per-domain system-prompt pools, chunks of nMix
// instructions mixed over domains (balanced round-robin, proportional, or concatenated), and the
// chunk attention mask (one n = 1 group per chunk; "isolated" and "full" are the ablations).
import type { Example } from '../readers.js';
import { causalGroup, IGNORE, type Group, type Row } from '../pack.js';
import { Rng } from '../../util/rng.js';
import { MixtuneError } from '../../util/errors.js';
import { hasTargets, sftGroup } from './groups.js';
import { systemPromptPool } from './prompts.js';
import type { MoiOptions, RecipeContext, RecipeResult } from './types.js';

/**
 * Gives every example without a system prompt one drawn (seeded) from its domain's pool.
 * Examples keep their own prompt (from the data or the dataset's `system`); domains without a
 * pool keep none. Returns new example objects.
 */
export function assignSystemPrompts(examples: Example[], rng: Rng, overrides?: Record<string, string[]>): { examples: Example[]; assigned: number; withoutPool: string[] } {
  let assigned = 0;
  const withoutPool = new Set<string>();
  const out = examples.map((ex) => {
    if (ex.system !== undefined) return ex;
    const pool = systemPromptPool(ex.domain, overrides);
    if (!pool) {
      withoutPool.add(ex.domain);
      return ex;
    }
    assigned++;
    return { ...ex, system: pool[rng.int(pool.length)]! };
  });
  return { examples: out, assigned, withoutPool: [...withoutPool] };
}

/** Cycles through a list of indices in passes; each pass is a fresh seeded shuffle, so no index repeats within a pass. */
export class PassCycler {
  private order: number[] = [];
  private pos = 0;
  passes = 0;
  constructor(private readonly items: readonly number[], private readonly rng: Rng) {
    if (items.length === 0) throw new Error('PassCycler: empty list');
  }
  next(): number {
    if (this.pos >= this.order.length) {
      this.order = this.rng.shuffle([...this.items]);
      this.pos = 0;
      this.passes++;
    }
    return this.order[this.pos++]!;
  }
}

/** Domains in order of first appearance, with their example indices. */
export function domainsOf(examples: readonly Example[]): Map<string, number[]> {
  const m = new Map<string, number[]>();
  examples.forEach((ex, i) => {
    const l = m.get(ex.domain);
    if (l) l.push(i);
    else m.set(ex.domain, [i]);
  });
  return m;
}

/**
 * Chunks of example indices.
 * - balanced: slots go round-robin over the domains (domain order of first appearance), nMix
 *   consecutive slots per chunk (one instruction per domain when nMix = number of domains), then
 *   the order inside each chunk is shuffled; each domain is cycled in reshuffled passes until the
 *   largest domain has been used once, so every domain gets as many slots as the largest one.
 * - proportional: each domain d gets round(N · share_d) slots, N = number of examples and share_d
 *   proportional to the sum of its examples' weights (the dataset `weight`); the slots (domains
 *   cycled in reshuffled passes when a weight > 1 asks for more than their size) are shuffled
 *   together and cut into chunks of nMix.
 * - concat: the examples in their order (datasets concatenated), chunks of nMix consecutive ones.
 */
export function mixChunks(examples: readonly Example[], mix: MoiOptions['mix'], nMix: number, rng: Rng, weights?: readonly number[]): number[][] {
  if (!Number.isInteger(nMix) || nMix < 1) throw new MixtuneError(`moi: n_mix must be a positive integer, got ${nMix}`);
  const domains = [...domainsOf(examples).entries()];
  let slots: number[];
  if (mix === 'concat') slots = examples.map((_, i) => i);
  else if (mix === 'proportional') {
    const mass = domains.map(([, idx]) => idx.reduce((s, i) => s + (weights?.[i] ?? 1), 0));
    const total = mass.reduce((a, b) => a + b, 0);
    const N = examples.length;
    // Largest-remainder rounding so the quotas sum to N.
    const exact = mass.map((m) => (N * m) / total);
    const quota = exact.map(Math.floor);
    const order = exact.map((e, d) => [e - Math.floor(e), d] as const).sort((a, b) => b[0] - a[0] || a[1] - b[1]);
    for (let r = N - quota.reduce((a, b) => a + b, 0), j = 0; r > 0; r--, j++) quota[order[j % order.length]![1]]!++;
    slots = [];
    domains.forEach(([, idx], d) => {
      const cyc = new PassCycler(idx, rng);
      for (let q = 0; q < quota[d]!; q++) slots.push(cyc.next());
    });
    rng.shuffle(slots);
  } else {
    const cyclers = domains.map(([, idx]) => new PassCycler(idx, rng));
    const largest = Math.max(...domains.map(([, idx]) => idx.length));
    slots = [];
    for (let r = 0; r < largest; r++) for (const c of cyclers) slots.push(c.next());
  }
  const chunks: number[][] = [];
  for (let i = 0; i < slots.length; i += nMix) chunks.push(slots.slice(i, i + nMix));
  // Round-robin fills every chunk in the same domain order; without a shuffle one domain would
  // never open a sequence (the MoI study measured tool calls at 0% because of it).
  if (mix === 'balanced') for (const c of chunks) rng.shuffle(c);
  return chunks;
}

export function buildMoi(examples: Example[], o: MoiOptions, ctx: RecipeContext): RecipeResult {
  const rng = new Rng((ctx.seed ^ 0x3017) >>> 0);
  const sys = assignSystemPrompts(examples, rng, o.systemPrompts);
  const exs = sys.examples;
  const nDomains = domainsOf(exs).size;
  const nMix = o.nMix ?? nDomains;
  const mask = o.mask ?? 'chunk';
  const chunks = mixChunks(exs, o.mix ?? 'balanced', nMix, rng, ctx.weights);
  // Encode every example once (chunks may reuse an example).
  const cache = new Map<number, { ids: number[]; labels: number[] }>();
  const enc = (i: number): { ids: number[]; labels: number[] } => {
    let e = cache.get(i);
    if (!e) {
      const r = ctx.encode(exs[i]!);
      e = { ids: r.ids, labels: r.labels };
      cache.set(i, e);
    }
    return e;
  };
  const groups: Group[] = [];
  let noTargets = 0;
  const draws: Record<string, number> = {};
  chunks.forEach((chunk, c) => {
    for (const i of chunk) draws[exs[i]!.domain] = (draws[exs[i]!.domain] ?? 0) + 1;
    if (mask === 'isolated') {
      for (const i of chunk) {
        const g = sftGroup(enc(i), exs[i]!.id);
        if (hasTargets(g)) groups.push(g);
        else noTargets++;
      }
      return;
    }
    // One causal group per chunk: the instructions' renderings one after the other; positions run
    // through the chunk; each instruction's labels come from its own rendering.
    const ids: number[] = [];
    const labels: number[] = [];
    const starts: number[] = [];
    for (const i of chunk) {
      const e = enc(i);
      starts.push(ids.length);
      ids.push(...e.ids);
      labels.push(...e.labels);
    }
    const g = causalGroup(ids, labels, `chunk ${c} (${chunk.map((i) => exs[i]!.id).join(', ')})`);
    for (const s of starts) if (s > 0) g.targets[s - 1] = IGNORE; // an instruction's end never predicts the next one's start
    if (hasTargets(g)) groups.push(g);
    else noTargets++;
  });
  return {
    groups, noTargets, mergeRows: mask === 'full',
    info: {
      recipe: 'moi', mix: o.mix ?? 'balanced', mask, n_mix: nMix, domains: nDomains, chunks: chunks.length,
      system_prompts_assigned: sys.assigned, ...(sys.withoutPool.length ? { domains_without_pool: sys.withoutPool.join(',') } : {}),
      instructions_per_domain: draws,
    },
  };
}

/**
 * MoI mask "full": the packed row becomes one causal group (chunks see each other); positions
 * continue through the row. Targets are kept: each chunk's last token already predicts nothing.
 */
export function mergeRowGroups(row: Row): Row {
  const n = row.length;
  const positions = new Int32Array(n);
  for (let t = 0; t < n; t++) positions[t] = t;
  const targets = Int32Array.from(row.targets);
  if (n > 0) targets[n - 1] = IGNORE;
  return { ...row, targets, positions, group: new Int32Array(n), part: new Int32Array(n), groups: [{ nInputs: 1, weighting: 'uniform' }] };
}
