// From a train config to packed rows: read every dataset, attach system prompts, split off an
// eval set, encode each example (chat template + loss mask, injected by the caller), build the
// recipe's groups (src/data/recipes) and pack them. Everything dropped, truncated or skipped is
// counted. Prepared rows can be saved (`mixtune prepare --out`) and trained on later.
import { readFileSync, writeSync } from 'node:fs';
import type { TrainConfig, DatasetConfig, RecipeConfig } from './config.js';
import { readDataset, type Example, type ReadResult } from '../data/readers.js';
import { packGroups, type PackStats, type Row, type Weighting } from '../data/pack.js';
import { buildGroups, evalGroups, mergeRowGroups, type RecipeOptions, type RecipeResult } from '../data/recipes/index.js';
import { Rng } from '../util/rng.js';
import { MixtuneError } from '../util/errors.js';
import { writeFileAtomic } from '../util/fs.js';

export type { EncodedExample, ExampleEncoder } from '../data/recipes/types.js';
import type { ExampleEncoder } from '../data/recipes/types.js';

export interface PrepareStats {
  recipe: string;
  examples: Record<string, number>; // per domain
  skippedBad: number;
  skipReasons: string[];
  evalExamples: number;
  noTargets: number;
  /** Recipe counters (MISO inputs per example, MoI chunks and draws per domain, ...). */
  recipeInfo: RecipeResult['info'];
  train: PackStats;
  eval: PackStats | null;
  /** Things the user must hear about that are not errors (data lost to max_len, a MISO recipe that augmented nothing): printed by train and prepare. */
  warnings: string[];
}

export interface Prepared {
  train: Row[];
  eval: Row[];
  stats: PrepareStats;
}

/** The recipe block of train.yaml (snake_case) as library options (camelCase). */
export function recipeFromConfig(r: RecipeConfig): RecipeOptions {
  switch (r.name) {
    case 'sft':
      return { name: 'sft' };
    case 'moi':
      return {
        name: 'moi', mix: r.mix, mask: r.mask, evalSystem: r.eval_system,
        ...(r.n_mix !== undefined ? { nMix: r.n_mix } : {}),
        ...(r.system_prompts ? { systemPrompts: r.system_prompts } : {}),
      };
    case 'miso-para':
    case 'miso-augment-only':
      return {
        name: r.name, includeFull: r.include_full, includeBare: r.include_bare,
        ...(r.max_inputs !== undefined ? { maxInputs: r.max_inputs } : {}),
        ...('weighting' in r ? { weighting: r.weighting } : {}),
      };
    case 'miso-succ':
      return { name: 'miso-succ', kProbs: r.k_probs, weighting: r.weighting };
  }
}

/** What one dataset gave: examples per record format, how many carry constraints, how many records were skipped. */
interface DatasetRead {
  path: string;
  examples: number;
  withConstraints: number;
  formats: ReadResult['formats'];
  skipped: number;
}

function readAll(list: DatasetConfig[], skipBad: boolean, rng: Rng): { examples: Example[]; weights: number[]; skipped: number; reasons: string[]; datasets: DatasetRead[] } {
  const examples: Example[] = [];
  const weights: number[] = [];
  let skipped = 0;
  const reasons: string[] = [];
  const datasets: DatasetRead[] = [];
  for (const d of list) {
    const r = readDataset(d.path, {
      format: d.format, domain: d.domain, skipBad,
      ...(d.columns ? { columns: d.columns } : {}),
      ...(d.limit !== undefined ? { limit: d.limit } : {}),
    });
    skipped += r.skipped;
    reasons.push(...r.skipReasons);
    datasets.push({ path: d.path, examples: r.examples.length, withConstraints: r.examples.filter((e) => e.constraints?.length).length, formats: r.formats, skipped: r.skipped });
    for (const ex of r.examples) {
      if (ex.system === undefined && d.system !== undefined) {
        ex.system = typeof d.system === 'string' ? d.system : d.system[rng.int(d.system.length)]!;
      }
      examples.push(ex);
      weights.push(d.weight);
    }
  }
  return { examples, weights, skipped, reasons: reasons.slice(0, 5), datasets };
}

/**
 * Warnings about the recipe's result: a MISO-para / augment-only run whose data gave no MISO group
 * is plain SFT under a MISO name; say so and why, per training dataset (records of which format,
 * how many with constraints).
 */
function recipeWarnings(recipe: RecipeOptions, info: RecipeResult['info'], trainExamples: number, datasets: DatasetRead[]): string[] {
  if ((recipe.name !== 'miso-para' && recipe.name !== 'miso-augment-only') || info.augmented_examples !== 0 || trainExamples === 0) return [];
  const withConstraints = datasets.reduce((a, d) => a + d.withConstraints, 0);
  const why = withConstraints === 0
    ? 'none carries constraints (a base instruction and a constraint list)'
    : `${withConstraints} carry constraints but none gives 2 distinct inputs with include_full/include_bare/max_inputs as set`;
  const per = datasets.map((d) => {
    const formats = Object.entries(d.formats).map(([f, n]) => (Object.keys(d.formats).length > 1 ? `${f} ${n}` : f)).join(', ') || 'none';
    return `${d.path}: ${d.examples} examples (format ${formats}), ${d.withConstraints} with constraints${d.skipped ? `, ${d.skipped} records skipped as bad` : ''}`;
  });
  return [
    `${recipe.name} made no MISO group: of the ${trainExamples} training examples ${why}, so all were trained as plain SFT (augmented_examples=0). ` +
    `${per.join('; ')}. ${recipe.name} needs multi-constraint records: formats constraints, ifeval, crab, or FollowBench levels that add whole constraint sentences and have a response`,
  ];
}

export function prepareRows(cfg: TrainConfig, encode: ExampleEncoder): Prepared {
  const rng = new Rng(cfg.seed ^ 0x5eed);
  const read = readAll(cfg.data.datasets, cfg.data.skip_bad, rng);
  let trainEx = read.examples;
  let trainW = read.weights;
  let evalEx: Example[] = [];
  let skipped = read.skipped;
  const reasons = [...read.reasons];
  if (cfg.data.eval_datasets?.length) {
    const ev = readAll(cfg.data.eval_datasets, cfg.data.skip_bad, rng);
    evalEx = ev.examples;
    skipped += ev.skipped;
    reasons.push(...ev.reasons);
  } else if (cfg.data.eval_split > 0) {
    const order = rng.shuffle(trainEx.map((_, i) => i));
    const nEval = Math.max(1, Math.round(trainEx.length * cfg.data.eval_split));
    const evalSet = new Set(order.slice(0, nEval));
    evalEx = trainEx.filter((_, i) => evalSet.has(i));
    trainW = trainW.filter((_, i) => !evalSet.has(i));
    trainEx = trainEx.filter((_, i) => !evalSet.has(i));
  }
  const perDomain: Record<string, number> = {};
  for (const ex of trainEx) perDomain[ex.domain] = (perDomain[ex.domain] ?? 0) + 1;

  const recipe = recipeFromConfig(cfg.recipe);
  const seed = (cfg.seed * 2654435761 + 0x7ec1) >>> 0;
  const built = buildGroups(recipe, trainEx, { encode, seed, weights: trainW });
  const builtEval = evalEx.length ? evalGroups(recipe, evalEx, { encode, seed }) : null;
  const pack = { overflow: cfg.data.overflow, pack: cfg.data.pack };
  const train = packGroups(built.groups, cfg.data.max_len, pack);
  const evalPacked = builtEval ? packGroups(builtEval.groups, cfg.data.max_len, pack) : null;
  const noTargets = built.noTargets + (builtEval?.noTargets ?? 0);
  const warnings = recipeWarnings(recipe, built.info, trainEx.length, read.datasets);
  if (train.rows.length === 0) {
    throw new MixtuneError(`no training data left: ${trainEx.length} examples, ${train.stats.dropped} dropped (max_len ${cfg.data.max_len}), ${noTargets} without trained tokens` +
      (train.stats.dropped > 0 ? `; ${overflowFix(cfg, train.stats)}` : ''));
  }
  warnings.push(...[dataLossWarning('train', cfg, train.stats), evalPacked ? dataLossWarning('eval', cfg, evalPacked.stats) : null].filter((w): w is string => w !== null));
  return {
    train: built.mergeRows ? train.rows.map(mergeRowGroups) : train.rows,
    eval: evalPacked?.rows ?? [],
    stats: {
      recipe: recipe.name, examples: perDomain, skippedBad: skipped, skipReasons: reasons.slice(0, 5), evalExamples: evalEx.length, noTargets,
      recipeInfo: built.info, train: train.stats, eval: evalPacked?.stats ?? null, warnings,
    },
  };
}

/** Share of groups or loss tokens lost to max_len above which a run warns. */
export const DATA_LOSS_WARN_SHARE = 0.01;

/** How to keep groups that do not fit max_len, for this recipe. */
function overflowFix(cfg: TrainConfig, s: PackStats): string {
  const r = cfg.recipe.name;
  const smaller = r === 'moi' ? ', lower recipe.n_mix (fewer instructions per chunk)' : r === 'miso-para' || r === 'miso-augment-only' ? ', lower recipe.max_inputs (fewer inputs per group)' : '';
  return `raise data.max_len (${s.longestGroup} keeps every group)${smaller}`;
}

/** A warning when more than a small share of the groups or of their loss tokens was cut or dropped. */
export function dataLossWarning(split: string, cfg: TrainConfig, s: PackStats): string | null {
  const inputGroups = s.groups + s.dropped;
  const lostShare = s.lostTargetTokens / Math.max(1, s.targetTokens + s.lostTargetTokens);
  const groupShare = (s.truncated + s.dropped) / Math.max(1, inputGroups);
  if (groupShare <= DATA_LOSS_WARN_SHARE && lostShare <= DATA_LOSS_WARN_SHARE) return null;
  const what = [s.truncated ? `${s.truncated} truncated` : '', s.dropped ? `${s.dropped} dropped` : ''].filter(Boolean).join(' and ');
  const cut = cfg.data.overflow === 'truncate' && s.truncated > 0 ? ', or data.overflow: drop to skip them instead of training cut-off answers' : '';
  return `${split}: ${what} of ${inputGroups} groups at max_len ${cfg.data.max_len} (longest ${s.longestGroup} tokens), ` +
    `losing ${(100 * lostShare).toFixed(1)}% of the loss tokens; ${overflowFix(cfg, s)}${cut}`;
}

// ---- prepared-rows files ------------------------------------------------------------------------
// JSON lines: a header {"mixtune_prepared": 1, "max_len", "recipe", "stats", "train_rows",
// "eval_rows"} and then one line per row {"split": "train" | "eval", "tokens", "targets",
// "positions", "group", "part", "groups": [{"nInputs", "weighting"}]}. Written atomically.

export const PREPARED_VERSION = 1;

interface PreparedHeader {
  mixtune_prepared: number;
  max_len: number;
  recipe: string;
  train_rows: number;
  eval_rows: number;
  stats: PrepareStats;
}

export function savePrepared(path: string, p: Prepared, maxLen: number): void {
  writeFileAtomic(path, (fd) => {
    const header: PreparedHeader = { mixtune_prepared: PREPARED_VERSION, max_len: maxLen, recipe: p.stats.recipe, train_rows: p.train.length, eval_rows: p.eval.length, stats: p.stats };
    writeSync(fd, JSON.stringify(header) + '\n');
    for (const [split, rows] of [['train', p.train], ['eval', p.eval]] as const) {
      for (const r of rows) {
        writeSync(fd, JSON.stringify({
          split, tokens: [...r.tokens], targets: [...r.targets], positions: [...r.positions], group: [...r.group], part: [...r.part], groups: r.groups,
        }) + '\n');
      }
    }
  }, 'the prepared rows');
}

const WEIGHTINGS = new Set<Weighting>(['uniform', 'fid', 'vanilla']);

/** Reads a file written by savePrepared; every problem names the file and line. */
export function loadPrepared(path: string): Prepared & { maxLen: number } {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new MixtuneError(`${path}: cannot read the prepared rows (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const lines = text.split('\n').filter((l) => l.trim() !== '');
  const parse = (i: number): Record<string, unknown> => {
    try {
      const v = JSON.parse(lines[i]!) as unknown;
      if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new Error('not an object');
      return v as Record<string, unknown>;
    } catch (e) {
      throw new MixtuneError(`${path}:${i + 1}: malformed prepared-rows line (${(e as Error).message})`);
    }
  };
  if (lines.length === 0) throw new MixtuneError(`${path}: empty prepared-rows file`);
  const h = parse(0) as unknown as PreparedHeader;
  if (h.mixtune_prepared !== PREPARED_VERSION) throw new MixtuneError(`${path}:1: not a mixtune prepared-rows file (version ${PREPARED_VERSION}); write it with mixtune prepare --out`);
  const train: Row[] = [];
  const evalRows: Row[] = [];
  for (let i = 1; i < lines.length; i++) {
    const o = parse(i);
    const where = `${path}:${i + 1}`;
    const arr = (k: string): Int32Array => {
      const v = o[k];
      if (!Array.isArray(v) || !v.every((x) => Number.isInteger(x))) throw new MixtuneError(`${where}: field ${k} must be a list of integers`);
      return Int32Array.from(v as number[]);
    };
    const tokens = arr('tokens');
    const row: Row = { tokens, targets: arr('targets'), positions: arr('positions'), group: arr('group'), part: arr('part'), groups: [], length: tokens.length };
    for (const k of ['targets', 'positions', 'group', 'part'] as const) {
      if (row[k].length !== tokens.length) throw new MixtuneError(`${where}: field ${k} has ${row[k].length} entries for ${tokens.length} tokens`);
    }
    const gs = o.groups;
    if (!Array.isArray(gs)) throw new MixtuneError(`${where}: field groups must be a list`);
    row.groups = gs.map((g, gi) => {
      const n = (g as { nInputs?: unknown }).nInputs;
      const w = (g as { weighting?: unknown }).weighting;
      if (!Number.isInteger(n) || (n as number) < 1 || !WEIGHTINGS.has(w as Weighting)) throw new MixtuneError(`${where}: field groups[${gi}] must be {nInputs >= 1, weighting: uniform|fid|vanilla}`);
      return { nInputs: n as number, weighting: w as Weighting };
    });
    for (const g of row.group) if (g < 0 || g >= row.groups.length) throw new MixtuneError(`${where}: field group refers to group ${g} of ${row.groups.length}`);
    if (o.split === 'train') train.push(row);
    else if (o.split === 'eval') evalRows.push(row);
    else throw new MixtuneError(`${where}: field split must be "train" or "eval"`);
  }
  if (train.length !== h.train_rows || evalRows.length !== h.eval_rows) {
    throw new MixtuneError(`${path}: holds ${train.length} train and ${evalRows.length} eval rows, the header says ${h.train_rows} and ${h.eval_rows} (truncated file?)`);
  }
  return { train, eval: evalRows, stats: { ...h.stats, warnings: h.stats.warnings ?? [] }, maxLen: h.max_len };
}
