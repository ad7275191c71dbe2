// The Rows view: the training rows of a train.yaml as `mixtune prepare --show` sees them (same
// code: loadTrainConfig -> prepareRows), under the config's own recipe or another one applied to
// the same data, and the attention pattern of a row as the kernels compute it (docs/design.md §2):
// for every query, the key ranges it may see and how they are combined.
import { statSync } from 'node:fs';
import { checkModelAndTokenizer, modelConfigOf } from '../io/load.js';
import { loadTrainConfig } from '../train/config.js';
import { prepareRows, type PrepareStats } from '../train/prepare.js';
import { checkContextLength, encoderFor } from '../train/setup.js';
import { lossMarks, tokenText } from '../data/row-text.js';
import type { Row } from '../data/pack.js';
import type { Tokenizer } from '../tokenizer.js';

/** The same data under other recipes, as `--set` overrides of the config. */
export const ROW_VARIANTS: Record<string, { label: string; sets: string[] }> = {
  config: { label: 'as configured', sets: [] },
  causal: { label: 'causal (SFT, one example per row)', sets: ['recipe={name: sft}', 'data.pack=false'] },
  packed: { label: 'packed (SFT, several examples per row)', sets: ['recipe={name: sft}', 'data.pack=true'] },
  moi: { label: 'MoI chunks (balanced mix, packed)', sets: ['recipe={name: moi}', 'data.pack=true'] },
  'miso-para': { label: 'MISO para (inputs from position 0)', sets: ['recipe={name: miso-para}', 'data.pack=false'] },
  'miso-succ': { label: 'MISO succ (successive positions)', sets: ['recipe={name: miso-succ}', 'data.pack=false'] },
};

export interface RowSummary {
  index: number;
  length: number;
  groups: number;
  lossTokens: number;
  /** "causal" or "MISO n=3 uniform" per group, deduplicated. */
  kinds: string[];
}

export interface RowDetail {
  index: number;
  length: number;
  tokens: number[];
  /** Each token's text as prepare --show prints it. */
  text: string[];
  positions: number[];
  group: number[];
  part: number[];
  /** Token t carries a loss (predicted by position t-1). */
  loss: boolean[];
  groups: { nInputs: number; weighting: string }[];
  /** Per query t: the key ranges [start, end) it attends to, flattened [s0, e0, s1, e1, ...]. */
  keys: number[][];
  /** Per query t: "causal", "input i" or the output's combine rule ("uniform" / "fid" / "vanilla" over n inputs). */
  rule: string[];
}

export interface PreparedView {
  variant: string;
  recipe: string;
  /** What the view changed beyond the recipe (max_len lowered to the context), or null. */
  note: string | null;
  stats: PrepareStats;
  maxLen: number;
  train: RowSummary[];
  eval: RowSummary[];
}

/**
 * The keys each query of a row attends to: n = 1 groups are causal over their own tokens; an input
 * part of a MISO group sees its own part causally; an output token sees every input part whole and
 * the output part up to itself, combined by the group's weighting. Never across groups.
 */
export function attentionOf(row: Row): { keys: number[][]; rule: string[] } {
  const T = row.length;
  const keys: number[][] = [];
  const rule: string[] = [];
  // [start, end) of every (group, part) span
  const spans = new Map<string, [number, number]>();
  const groupStart = new Map<number, number>();
  for (let t = 0; t < T; t++) {
    const g = row.group[t]!;
    if (!groupStart.has(g)) groupStart.set(g, t);
    const key = `${g}:${row.part[t]}`;
    const s = spans.get(key);
    if (s) s[1] = t + 1;
    else spans.set(key, [t, t + 1]);
  }
  for (let t = 0; t < T; t++) {
    const g = row.group[t]!;
    const info = row.groups[g]!;
    const p = row.part[t]!;
    if (info.nInputs <= 1) {
      keys.push([groupStart.get(g)!, t + 1]);
      rule.push('causal');
    } else if (p >= 0) {
      keys.push([spans.get(`${g}:${p}`)![0], t + 1]);
      rule.push(`input ${p}`);
    } else {
      const k: number[] = [];
      for (let i = 0; i < info.nInputs; i++) {
        const s = spans.get(`${g}:${i}`);
        if (s) k.push(s[0], s[1]);
      }
      k.push(spans.get(`${g}:-1`)![0], t + 1);
      keys.push(k);
      rule.push(`${info.weighting} over ${info.nInputs} inputs`);
    }
  }
  return { keys, rule };
}

function summary(row: Row, index: number): RowSummary {
  const kinds = new Set(row.groups.map((g) => (g.nInputs > 1 ? `MISO n=${g.nInputs} ${g.weighting}` : 'causal')));
  return { index, length: row.length, groups: row.groups.length, lossTokens: lossMarks(row).filter(Boolean).length, kinds: [...kinds] };
}

export function rowDetail(row: Row, index: number, tok: Tokenizer): RowDetail {
  const { keys, rule } = attentionOf(row);
  return {
    index, length: row.length, tokens: [...row.tokens],
    text: [...row.tokens].map((id, t) => tokenText(tok, id, t > 0 && row.group[t - 1] === row.group[t] && row.part[t - 1] === row.part[t] ? row.tokens[t - 1] : undefined)),
    positions: [...row.positions], group: [...row.group], part: [...row.part], loss: lossMarks(row), groups: row.groups.map((g) => ({ ...g })), keys, rule,
  };
}

interface Entry {
  mtime: number;
  tok: Tokenizer;
  train: Row[];
  eval: Row[];
  view: PreparedView;
}

/** Prepares configs on demand (one variant at a time, cached until the config file changes). */
export class RowsCache {
  private readonly cache = new Map<string, Entry>();

  constructor(readonly configs: readonly string[]) {}

  get(configIndex: number, variant: string): Entry {
    const path = this.configs[configIndex]!;
    const mtime = statSync(path).mtimeMs;
    const key = `${configIndex}:${variant}`;
    const hit = this.cache.get(key);
    if (hit && hit.mtime === mtime) return hit;
    let cfg = loadTrainConfig(path, ROW_VARIANTS[variant]!.sets);
    // a MISO config's max_len may exceed the context (MISO inputs restart at position 0); the
    // same data as causal rows must fit the context: max_len lowered to it, said in the view
    const context = modelConfigOf(cfg.model).maxSeqLen;
    let note: string | null = null;
    if (variant !== 'config' && !cfg.recipe.name.startsWith('miso') && cfg.data.max_len > context) {
      note = `data.max_len lowered from ${cfg.data.max_len} to the model's context (${context}) for this recipe`;
      cfg = loadTrainConfig(path, [...ROW_VARIANTS[variant]!.sets, `data.max_len=${context}`]);
    }
    const tok = checkModelAndTokenizer(cfg.model, cfg.tokenizer);
    checkContextLength(cfg);
    const prep = prepareRows(cfg, encoderFor(tok, cfg).encode);
    const entry: Entry = {
      mtime, tok, train: prep.train, eval: prep.eval,
      view: { variant, recipe: prep.stats.recipe, note, stats: prep.stats, maxLen: cfg.data.max_len, train: prep.train.map(summary), eval: prep.eval.map(summary) },
    };
    // a few variants of a few configs: keep the last 8
    if (this.cache.size >= 8) this.cache.delete(this.cache.keys().next().value!);
    this.cache.set(key, entry);
    return entry;
  }
}
