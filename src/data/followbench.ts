// FollowBench (YJiangcm/FollowBench) records: {example_id, category, source, level, instruction,
// target, answer?}. Records with the same example_id form a chain: level k is meant to add one
// constraint to level k−1 (level 0 = the bare instruction; example_constraints starts at level 1,
// and a level whose instruction is empty — content_constraints' level-0 placeholders — is absent).
//
// FollowBench does not list the added constraints. This reader derives them: a step k−1 → k is
// *separable* when level k's text is level k−1's text with one span inserted (anywhere, often
// just before a trailing data block) and that span is whole sentences (starts after a sentence
// end or a line break, ends with sentence punctuation or before a line break). The span is the
// step's constraint. Steps that paraphrase the instruction are not separable. For the example
// at level t, the constraint list is the run of separable steps ending at t, and `base` is the
// instruction at the start of that run — level 0 when every step is separable, otherwise the
// last paraphrased level (whose earlier constraints are then already inside `base`). With no
// separable step the example carries no base/constraints (an ordinary instruction).
//
// Responses: FollowBench is an evaluation set. `answer` (example_constraints) or else `target`
// is the gold output where the data has one (rule-checked categories: content/situation/mixed/
// example); format and style chains have none. An example without a response is a bad record
// unless allowNoResponse is set, which yields prompt-only examples (messages = [user]); its
// message says which levels of the chain have one, or that the whole file has none (then
// skipping bad records would leave nothing to train on, so the hint is not --skip-bad).
import { BadRecord } from './bad-record.js';

export interface FollowBenchOptions {
  /** 'highest' (default): one example per chain, at its highest level; 'all': one per level. */
  levels?: 'highest' | 'all';
  allowNoResponse?: boolean;
  domain: string;
}

export interface FollowBenchExample {
  id: string;
  domain: string;
  messages: { role: 'user' | 'assistant'; content: string }[];
  base?: string;
  constraints?: string[];
}

/** One unit of work for the reader: building it either gives an example or throws BadRecord. */
export interface FollowBenchItem {
  where: string;
  build: () => FollowBenchExample;
}

interface Level {
  where: string;
  level: number;
  instruction: string;
  rec: Record<string, unknown>;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function isFollowBenchRecord(rec: Record<string, unknown>): boolean {
  return 'example_id' in rec && 'level' in rec && 'instruction' in rec;
}

/** Groups a file's records into chains and returns the items to build, in file order. */
export function followBenchItems(records: Iterable<[unknown, string]>, opts: FollowBenchOptions): FollowBenchItem[] {
  // Each entry is a bad record's item or a chain key (placed at the chain's first record).
  const order: (FollowBenchItem | string)[] = [];
  const chains = new Map<string, Level[]>();
  for (const [rec, where] of records) {
    try {
      if (!isObject(rec)) throw new BadRecord('record is not a JSON object');
      const id = rec.example_id;
      if (!((typeof id === 'number' && Number.isFinite(id)) || (typeof id === 'string' && id.trim()))) throw new BadRecord('field example_id must be a number or a string');
      const level = typeof rec.level === 'string' && /^\d+$/.test(rec.level.trim()) ? Number(rec.level) : rec.level;
      if (typeof level !== 'number' || !Number.isInteger(level) || level < 0) throw new BadRecord('field level must be a non-negative integer');
      if (typeof rec.instruction !== 'string') throw new BadRecord('field instruction must be a string');
      const key = String(id);
      // content_constraints.json has level-0 placeholders with an empty instruction (chains that
      // start at level 1): such a level is absent, not an error.
      if (!rec.instruction.trim()) continue;
      const lv: Level = { where, level, instruction: rec.instruction, rec };
      const chain = chains.get(key);
      if (!chain) {
        chains.set(key, [lv]);
        order.push(key);
      } else if (chain.some((l) => l.level === level)) throw new BadRecord(`duplicate level ${level} for example_id ${key}`);
      else chain.push(lv);
    } catch (e) {
      if (!(e instanceof BadRecord)) throw e;
      order.push({ where, build: () => { throw e; } });
    }
  }
  const fileHasResponses = [...chains.values()].some((c) => c.some((l) => hasResponse(l.rec)));
  return order.flatMap((o) => (typeof o === 'string' ? chainItems(o, chains.get(o)!, { ...opts, fileHasResponses }) : [o]));
}

function chainItems(key: string, chain: Level[], opts: FollowBenchOptions & { fileHasResponses: boolean }): FollowBenchItem[] {
  const levels = [...chain].sort((a, b) => a.level - b.level);
  const top = levels[levels.length - 1]!;
  for (let i = 1; i < levels.length; i++) {
    if (levels[i]!.level !== levels[0]!.level + i) {
      const missing = levels[i - 1]!.level + 1;
      const err = new BadRecord(`FollowBench example_id ${key}: level ${missing} is missing (levels ${levels.map((l) => l.level).join(', ')})`);
      return [{ where: top.where, build: () => { throw err; } }];
    }
  }
  // steps[i] = the constraint level i adds to level i-1 (null: not separable); steps[0] unused.
  const steps: (string | null)[] = levels.map((l, i) => (i === 0 ? null : insertedSentences(levels[i - 1]!.instruction, l.instruction)));
  const build = (t: number): FollowBenchExample => {
    const l = levels[t]!;
    let s = t;
    while (s > 0 && steps[s] !== null) s--;
    const constraints = steps.slice(s + 1, t + 1) as string[];
    const response = responseOf(l.rec);
    if (response === undefined && !opts.allowNoResponse) {
      const what = `no response for FollowBench example_id ${key} level ${l.level}: fields answer/target are empty, and a training example needs one`;
      if (!opts.fileHasResponses) throw new BadRecord(what, 'no record of this file has a response: it is evaluation data and cannot be trained on');
      const withResponse = levels.filter((x) => hasResponse(x.rec)).map((x) => x.level);
      const which = withResponse.length === 0 ? 'no level of this chain has one'
        : withResponse.length === 1 ? `only level ${withResponse[0]} of this chain has one` : `only levels ${withResponse.join(', ')} of this chain have one`;
      throw new BadRecord(`${what} (${which})`);
    }
    const domain = typeof l.rec.domain === 'string' && l.rec.domain ? l.rec.domain : opts.domain;
    return {
      id: l.where,
      domain,
      messages: [{ role: 'user', content: l.instruction }, ...(response !== undefined ? [{ role: 'assistant' as const, content: response }] : [])],
      ...(constraints.length ? { base: levels[s]!.instruction.trim(), constraints } : {}),
    };
  };
  if (opts.levels === 'all') return levels.map((l, t) => ({ where: l.where, build: () => build(t) }));
  return [{ where: top.where, build: () => build(levels.length - 1) }];
}

function responseOf(rec: Record<string, unknown>): string | undefined {
  for (const f of ['answer', 'target'] as const) {
    const v = rec[f];
    if (v === undefined || v === null) continue;
    if (typeof v !== 'string') throw new BadRecord(`field ${f} must be a string, got ${typeof v}`);
    if (v.trim()) return v;
  }
  return undefined;
}

function hasResponse(rec: Record<string, unknown>): boolean {
  try {
    return responseOf(rec) !== undefined;
  } catch {
    return false; // a malformed answer/target: reported when its level is built
  }
}

const SENTENCE_END = /[.!?:]$|[.!?]["')\]]$/;

/**
 * If `next` is `prev` with one inserted span of whole sentences, that span (trimmed); else null.
 * Exported for tests.
 */
export function insertedSentences(prev: string, next: string): string | null {
  const x = prev.trim();
  const y = next.trim();
  if (y.length <= x.length) return null;
  let i = 0;
  while (i < x.length && x[i] === y[i]) i++;
  let j = 0;
  while (j < x.length - i && x[x.length - 1 - j] === y[y.length - 1 - j]) j++;
  if (i + j < x.length) return null; // not a pure insertion: a rewrite
  // The inserted span y[st, en) may slide while the characters at its ends agree; try every
  // position from the leftmost and take the first at sentence boundaries.
  let st = i;
  let en = y.length - j;
  while (st > 0 && y[st - 1] === y[en - 1]) {
    st--;
    en--;
  }
  for (;;) {
    if (atSentenceBoundaries(y, st, en)) return y.slice(st, en).trim();
    if (en < y.length && y[st] === y[en]) {
      st++;
      en++;
    } else return null;
  }
}

function atSentenceBoundaries(y: string, st: number, en: number): boolean {
  const mid = y.slice(st, en);
  const m = mid.trim();
  if (!m) return false;
  const before = y.slice(0, st);
  const after = y.slice(en);
  const spaceBefore = st === 0 || /\s/.test(y[st - 1]!) || /^\s/.test(mid);
  const spaceAfter = en === y.length || /\s/.test(y[en]!) || /\s$/.test(mid);
  if (!spaceBefore || !spaceAfter) return false;
  const b = before.trimEnd();
  const startOk = b === '' || SENTENCE_END.test(b) || /\n[ \t]*$/.test(before) || /^[ \t]*\n/.test(mid);
  const endOk = after.trim() === '' || SENTENCE_END.test(m) || /^[ \t]*\n/.test(after) || /\n[ \t]*$/.test(mid);
  return startOk && endOk;
}
