// `mixtune study miso`: a small-scale reproduction of the Mixture-of-Contexts (MISO) comparison.
// For every seed the synthetic constraint data of `mixtune demo` is generated (train: 1-3
// constraints per prompt; held-out test: unseen combinations of 2-4), the base model is evaluated,
// and each configuration fine-tunes a fresh copy of stories260K through the library (train config
// -> prepareRows with the recipe -> Trainer) with the same seed, the same optimizer steps and the
// same rows per step (one source example per row, in the same seeded order), then answers the
// test prompts greedily as an ordinary LLM and is scored with the IFEval checker.
//
// Configurations (the paper's names -> recipe blocks):
//   sft                 recipe sft: the full instruction -> response.
//   miso-para           recipe miso-para, uniform weighting: inputs = full instruction, one
//                       instruction per single constraint, bare instruction; one output.
//   miso-para-fid       recipe miso-para, weighting fid (the paper's MISO-fid-para).
//   miso-para-wo-full   recipe miso-para, include_full false (ablation "w/o full").
//   miso-para-wo-bare   recipe miso-para, include_bare false (not in the paper: does the input
//                       without any constraint, paired with a constrained response, hurt?).
//   miso-augment-only   recipe miso-augment-only: the same inputs, each as its own SFT example
//                       ("no MISO": augmented data as plain SFT). Same rows per step, so it sees
//                       fewer source examples per step than the others but trains as many output
//                       tokens per step.
//   miso-succ           recipe miso-succ: the prompt split into k successive chunks.
// The statistics are over seeds: mean ± sample std, and the paired difference to sft (each seed's
// configuration minus the same seed's sft), which removes the between-seed variance of the data.
import { join, resolve } from 'node:path';
import { defaultIfevalNlp } from '../eval/ifeval/run.js';
import type { IfevalResult } from '../eval/ifeval/score.js';
import { METRIC_KEYS, type DemoMetrics } from '../demo/eval.js';
import {
  demoModelPaths, preflightDemo, evaluateBase, perInstructionStrict, trainAndEvaluate, writeDemoData, type DemoData, type RecipeRun,
} from '../demo/run.js';
import { writeJsonAtomic, writeTextAtomic } from '../util/fs.js';
import { MixtuneError } from '../util/errors.js';
import { lossAccuracySvg } from '../util/plot-svg.js';
import { mean, meanCurve, pct, r4, std } from './stats.js';
import { readRunResult, runKey, writeRunResult } from './runs.js';

export interface MisoConfigSpec {
  description: string;
  /** The train config's `recipe` block. */
  recipe: Record<string, unknown> & { name: string };
}

export const MISO_STUDY_CONFIGS: Record<string, MisoConfigSpec> = {
  sft: { description: 'SFT on the full instruction', recipe: { name: 'sft' } },
  'miso-para': { description: 'MISO: full + single-constraint + bare inputs, uniform weighting', recipe: { name: 'miso-para', weighting: 'uniform' } },
  'miso-para-fid': { description: 'miso-para with fid weighting', recipe: { name: 'miso-para', weighting: 'fid' } },
  'miso-para-wo-full': { description: 'miso-para without the full-instruction input', recipe: { name: 'miso-para', include_full: false } },
  'miso-para-wo-bare': { description: 'miso-para without the bare-instruction input (extra ablation)', recipe: { name: 'miso-para', include_bare: false } },
  'miso-augment-only': { description: 'the miso-para inputs as separate SFT examples (no MISO)', recipe: { name: 'miso-augment-only' } },
  'miso-succ': { description: 'MISO over k successive chunks of the prompt', recipe: { name: 'miso-succ' } },
};

export interface MisoStudyOptions {
  out: string;
  steps: number;
  seeds: number;
  nTrain: number;
  nTest: number;
  configs: string[];
  /** Rows (= source examples, one per row) per optimizer step. */
  batch: number;
  lr: number;
  maxNewTokens: number;
  /** Fixed data seed for every training seed (default: seed s trains and tests on data of seed s). */
  dataSeed?: number;
  model?: string;
  tokenizer?: string;
  progress?: boolean;
  /** Retrain runs whose result.json from an earlier, identical invocation exists (default: reuse them). */
  fresh?: boolean;
  /**
   * The same budget in seconds (0: off): each --budget-configs configuration also trains for
   * round(S / its measured seconds per step) steps (the rate of its step-budget run, same seed).
   */
  budgetSeconds: number;
  budgetConfigs: string[];
  log?: (line: string) => void;
}

export const MISO_STUDY_DEFAULTS: Omit<MisoStudyOptions, 'out'> = {
  steps: 150, seeds: 3, nTrain: 2400, nTest: 300, configs: Object.keys(MISO_STUDY_CONFIGS), batch: 16, lr: 3e-3, maxNewTokens: 160,
  budgetSeconds: 0, budgetConfigs: ['sft', 'miso-para', 'miso-succ'],
};

/** What a point of accuracy cost: the gain over the base model and the training spent on it. */
export interface MisoCost {
  steps: number;
  /** Measured training wall-clock (mean over seeds; machine-load dependent). */
  train_seconds: number;
  processed_tokens: number;
  /** inst strict minus the base model's on the same data seed, in points (mean ± std over seeds). */
  gain_inst_strict: Stat;
  /** Training seconds and millions of processed tokens per point of inst-strict gain (null when the gain is ≤ 0). */
  seconds_per_point: number | null;
  mtokens_per_point: number | null;
}

export function costOf(runs: MisoRunResult[], base: MisoRunResult[]): MisoCost {
  const byData = new Map(base.map((b) => [b.data_seed, b]));
  const gains = runs.filter((r) => byData.has(r.data_seed)).map((r) => (r.inst_strict - byData.get(r.data_seed)!.inst_strict) * 100);
  const g = mean(gains);
  const secs = mean(runs.map((r) => r.run.train_seconds));
  const toks = mean(runs.map((r) => r.run.processed_tokens));
  return {
    steps: Math.round(mean(runs.map((r) => r.run.steps))), train_seconds: Math.round(secs * 10) / 10, processed_tokens: Math.round(toks),
    gain_inst_strict: { mean: Math.round(g * 100) / 100, std: Math.round(std(gains) * 100) / 100 },
    seconds_per_point: g > 0 ? Math.round((secs / g) * 100) / 100 : null,
    mtokens_per_point: g > 0 ? Math.round((toks / 1e6 / g) * 1e4) / 1e4 : null,
  };
}

/** Cost per point (markdown): the step budget and, with --budget-seconds, the time budget. */
export function misoCostTable(res: MisoStudyResults): string {
  const head = ['config', 'budget', 'steps', 'train s (measured)', 'processed tokens', 'inst strict', 'gain over base (points)', 's per point', 'M tokens per point'];
  const lines = [`| ${head.join(' | ')} |`, `|---|---|${head.slice(2).map(() => '---:').join('|')}|`];
  const row = (name: string, budget: string, c: MisoCost, acc: Stat, n: number): void => {
    lines.push(`| ${name} | ${budget} | ${c.steps} | ${c.train_seconds} | ${(c.processed_tokens / 1e6).toFixed(2)}M | ${pct(acc.mean, n > 1 ? acc.std : undefined)} | ` +
      `${c.gain_inst_strict.mean.toFixed(1)}${n > 1 ? ` ± ${c.gain_inst_strict.std.toFixed(1)}` : ''} | ${c.seconds_per_point ?? '-'} | ${c.mtokens_per_point?.toFixed(3) ?? '-'} |`);
  };
  for (const [name, c] of Object.entries(res.configs)) {
    if (!c.cost) continue;
    row(name, `${String(res.settings.steps)} steps`, c.cost, c.metrics.inst_strict, c.runs.length);
    if (c.time_budget) row(name, `${c.time_budget.seconds} s`, c.time_budget.cost, c.time_budget.metrics.inst_strict, c.time_budget.runs.length);
  }
  return lines.join('\n');
}

/** Accuracy split by the number of constraints of the test prompt. */
export interface PerK {
  prompt_strict: number;
  inst_strict: number;
  prompts: number;
}

export interface MisoRunResult extends DemoMetrics {
  seed: number;
  data_seed: number;
  per_k: Record<string, PerK>;
  per_instruction_strict: Record<string, number>;
  run: RecipeRun;
  losses: number[];
}

type Stat = { mean: number; std: number };

export interface MisoConfigResult {
  description: string;
  recipe: Record<string, unknown>;
  /** Mean and sample std over seeds of each metric. */
  metrics: Record<keyof DemoMetrics, Stat>;
  /** Per seed: this configuration minus sft on the same seed (absent for sft and base). */
  paired_vs_sft?: Record<keyof DemoMetrics, Stat>;
  per_k_inst_strict: Record<string, Stat>;
  per_instruction_strict: Record<string, number>;
  /** Teacher-forced loss per response token on the held-out records, full prompt (mean ± std over seeds). */
  test_loss: Stat | null;
  /** Mean training-loss curve over seeds (empty for base). */
  losses: number[];
  trained_tokens: number;
  processed_tokens: number;
  train_seconds: number;
  /** Cost per point at the step budget (absent for base). */
  cost?: MisoCost;
  /** --budget-seconds: the same configuration trained for the steps that fit S seconds. */
  time_budget?: { seconds: number; metrics: Record<keyof DemoMetrics, Stat>; cost: MisoCost; runs: MisoRunResult[] };
  runs: MisoRunResult[];
}

export interface MisoStudyResults {
  configs: Record<string, MisoConfigResult>;
  settings: Record<string, unknown>;
}

export function perK(strict: readonly IfevalResult[]): Record<string, PerK> {
  const acc: Record<string, { p: number; n: number; f: number; i: number }> = {};
  for (const r of strict) {
    const k = String(r.instruction_id_list.length);
    const a = (acc[k] ??= { p: 0, n: 0, f: 0, i: 0 });
    a.n++;
    if (r.follow_all_instructions) a.p++;
    a.i += r.follow_instruction_list.length;
    a.f += r.follow_instruction_list.filter((x) => x).length;
  }
  return Object.fromEntries(Object.entries(acc).sort(([a], [b]) => Number(a) - Number(b))
    .map(([k, a]) => [k, { prompt_strict: r4(a.n ? a.p / a.n : 0), inst_strict: r4(a.i ? a.f / a.i : 0), prompts: a.n }]));
}

const stat = (v: readonly number[]): Stat => ({ mean: r4(mean(v)), std: r4(std(v)) });

/** Aggregates one configuration's runs (one per seed); `sft` pairs runs by seed. */
export function aggregateMiso(description: string, recipe: Record<string, unknown>, runs: MisoRunResult[], sft?: MisoRunResult[]): MisoConfigResult {
  const metrics = Object.fromEntries(METRIC_KEYS.map((k) => [k, stat(runs.map((r) => r[k]))])) as Record<keyof DemoMetrics, Stat>;
  let paired: Record<keyof DemoMetrics, Stat> | undefined;
  if (sft) {
    const bySeed = new Map(sft.map((r) => [r.seed, r]));
    const pairs = runs.filter((r) => bySeed.has(r.seed));
    if (pairs.length) paired = Object.fromEntries(METRIC_KEYS.map((k) => [k, stat(pairs.map((r) => r[k] - bySeed.get(r.seed)![k]))])) as Record<keyof DemoMetrics, Stat>;
  }
  const ks = [...new Set(runs.flatMap((r) => Object.keys(r.per_k)))].sort((a, b) => Number(a) - Number(b));
  const ids = [...new Set(runs.flatMap((r) => Object.keys(r.per_instruction_strict)))].sort();
  return {
    description, recipe, metrics, ...(paired ? { paired_vs_sft: paired } : {}),
    per_k_inst_strict: Object.fromEntries(ks.map((k) => [k, stat(runs.filter((r) => r.per_k[k]).map((r) => r.per_k[k]!.inst_strict))])),
    per_instruction_strict: Object.fromEntries(ids.map((id) => [id, r4(mean(runs.filter((r) => id in r.per_instruction_strict).map((r) => r.per_instruction_strict[id]!)))])),
    test_loss: runs.every((r) => typeof r.run.test_loss === 'number') ? stat(runs.map((r) => r.run.test_loss!)) : null,
    losses: meanCurve(runs.map((r) => r.losses)).map(r4),
    trained_tokens: Math.round(mean(runs.map((r) => r.run.trained_tokens))),
    processed_tokens: Math.round(mean(runs.map((r) => r.run.processed_tokens))),
    train_seconds: Math.round(mean(runs.map((r) => r.run.train_seconds)) * 10) / 10,
    runs,
  };
}

/** The results table (markdown): mean ± std over seeds, paired difference to sft. */
export function misoTable(res: MisoStudyResults): string {
  const head = ['config', 'prompt strict', 'inst strict', 'prompt loose', 'inst loose', 'flat inst strict', 'Δ inst strict vs sft (paired)', 'test loss', 'trained / processed tokens', 'train s'];
  const lines = [`| ${head.join(' | ')} |`, `|---|${head.slice(1).map(() => '---:').join('|')}|`];
  for (const [name, c] of Object.entries(res.configs)) {
    const sd = (s: Stat): number | undefined => (c.runs.length > 1 ? s.std : undefined);
    const cells = METRIC_KEYS.map((k) => pct(c.metrics[k].mean, sd(c.metrics[k])));
    const d = c.paired_vs_sft?.inst_strict;
    const delta = d ? `${d.mean >= 0 ? '+' : ''}${pct(d.mean, c.runs.length > 1 ? d.std : undefined)}` : '-';
    const tokens = name === 'base' ? '-' : `${(c.trained_tokens / 1000).toFixed(0)}k / ${(c.processed_tokens / 1000).toFixed(0)}k`;
    const loss = c.test_loss ? `${c.test_loss.mean.toFixed(3)}${c.runs.length > 1 ? ` ± ${c.test_loss.std.toFixed(3)}` : ''}` : '-';
    lines.push(`| ${name} | ${cells.join(' | ')} | ${delta} | ${loss} | ${tokens} | ${name === 'base' ? '-' : c.train_seconds} |`);
  }
  return lines.join('\n');
}

/** Instruction-level strict accuracy by constraints per test prompt (markdown). */
export function misoPerKTable(res: MisoStudyResults): string {
  const ks = [...new Set(Object.values(res.configs).flatMap((c) => Object.keys(c.per_k_inst_strict)))].sort((a, b) => Number(a) - Number(b));
  const lines = [`| config | ${ks.map((k) => `${k} constraints`).join(' | ')} |`, `|---|${ks.map(() => '---:').join('|')}|`];
  for (const [name, c] of Object.entries(res.configs)) {
    lines.push(`| ${name} | ${ks.map((k) => (c.per_k_inst_strict[k] ? pct(c.per_k_inst_strict[k]!.mean, c.runs.length > 1 ? c.per_k_inst_strict[k]!.std : undefined) : '-')).join(' | ')} |`);
  }
  return lines.join('\n');
}

export function misoPlot(res: MisoStudyResults): string {
  const names = Object.keys(res.configs);
  const groups = ['prompt strict', 'inst strict', 'prompt loose', 'inst loose', 'flat inst strict'];
  const trained = names.filter((n) => res.configs[n]!.losses.length > 0);
  const steps = Math.max(0, ...trained.map((n) => res.configs[n]!.losses.length));
  return lossAccuracySvg({
    title: `MISO study: stories260K, ${steps} steps, ${String(res.settings.seeds)} seed(s) (IFEval checker, held-out constraint combinations)`,
    // base has no curve: keep colours aligned with the bars by giving it an empty one
    losses: names.map((n) => ({ name: n, values: res.configs[n]!.losses })),
    smooth: Math.max(1, Math.round(steps / 15)),
    logY: true,
    groups,
    bars: names.map((n) => {
      const c = res.configs[n]!;
      return { name: n, values: METRIC_KEYS.map((k) => c.metrics[k].mean), ...(c.runs.length > 1 ? { err: METRIC_KEYS.map((k) => c.metrics[k].std) } : {}) };
    }),
    barTitle: 'test accuracy (mean ± std over seeds)',
  });
}

function checkConfigs(configs: readonly string[]): void {
  if (configs.length === 0) throw new MixtuneError('--configs: no configuration given');
  for (const c of configs) if (!MISO_STUDY_CONFIGS[c]) throw new MixtuneError(`--configs: unknown configuration '${c}' (known: ${Object.keys(MISO_STUDY_CONFIGS).join(', ')})`);
  if (new Set(configs).size !== configs.length) throw new MixtuneError('--configs: a configuration is listed twice');
}

/** Runs the whole study; writes OUT/results.json, OUT/table.md and OUT/miso.svg. */
export async function runMisoStudy(opts: Partial<MisoStudyOptions> & { out: string }): Promise<MisoStudyResults> {
  const o: MisoStudyOptions = { ...MISO_STUDY_DEFAULTS, ...opts, out: resolve(opts.out) };
  checkConfigs(o.configs);
  if (!(o.budgetSeconds >= 0)) throw new MixtuneError(`--budget-seconds: a number of seconds ≥ 0, got ${o.budgetSeconds}`);
  for (const c of o.budgetConfigs) if (!MISO_STUDY_CONFIGS[c]) throw new MixtuneError(`--budget-configs: unknown configuration '${c}'`);
  const log = o.log ?? ((s: string) => void process.stderr.write(s + '\n'));
  const t0 = performance.now();
  const { modelPath, tokPath } = demoModelPaths(o.model, o.tokenizer);
  preflightDemo(modelPath, tokPath, o.out);
  const nlp = defaultIfevalNlp();
  log(`study miso: ${o.configs.length} configs × ${o.seeds} seed(s), ${o.steps} steps × ${o.batch} examples, lr ${o.lr}; ` +
    `${o.nTrain} train / ${o.nTest} test examples per data seed (${o.dataSeed === undefined ? 'data seed = training seed' : `data seed ${o.dataSeed}`})`);

  // the base model's key carries the training settings too: conservative (it is re-evaluated when
  // they change), and cheap
  const keyOf = (what: string, seed: number, dataSeed: number, recipe: unknown): string => runKey({
    study: 'miso', what, seed, dataSeed, recipe, steps: o.steps, batch: o.batch, lr: o.lr, nTrain: o.nTrain, nTest: o.nTest, maxNewTokens: o.maxNewTokens, model: modelPath, tokenizer: tokPath,
  });
  const reuse = (dir: string, key: string): MisoRunResult | null => (o.fresh ? null : readRunResult<MisoRunResult>(dir, key));

  const dataCache = new Map<number, DemoData>();
  const baseRuns: MisoRunResult[] = [];
  const runs: Record<string, MisoRunResult[]> = {};
  const budgetRuns: Record<string, MisoRunResult[]> = {};
  let reused = 0;
  for (let seed = 0; seed < o.seeds; seed++) {
    const dataSeed = o.dataSeed ?? seed;
    let data = dataCache.get(dataSeed);
    if (!data) {
      data = writeDemoData(join(o.out, 'data', `seed-${dataSeed}`), { seed: dataSeed, nTrain: o.nTrain, nTest: o.nTest, nlp });
      dataCache.set(dataSeed, data);
      log(`data seed ${dataSeed}: ${data.train} train, ${data.test} test examples (test prompts by constraint count: ${JSON.stringify(data.perK)}); ${data.dropped} dropped by verification`);
      const dir = join(o.out, 'runs', `base-d${dataSeed}`);
      const key = keyOf('base', 0, dataSeed, null);
      let base = reuse(dir, key);
      if (base) reused++;
      else {
        const ev = evaluateBase(o, { modelPath, tokPath, testFile: data.testFile, evalRecords: data.evalRecords, nlp, outDir: dir });
        base = {
          ...ev.metrics, seed, data_seed: dataSeed, per_k: perK(ev.strict), per_instruction_strict: perInstructionStrict(ev.strict), losses: [],
          run: { recipe: 'base', steps: 0, examples_per_step: 0, trained_tokens: 0, processed_tokens: 0, first_loss: Number.NaN, final_loss: Number.NaN, test_loss: ev.testLoss, train_seconds: 0, eval_seconds: Math.round(ev.seconds * 10) / 10, rows: 0, dropped: 0, truncated: 0 },
        };
        writeRunResult(dir, key, base);
      }
      baseRuns.push(base);
      log(`base (data seed ${dataSeed}): inst strict ${pct(base.inst_strict)}%`);
    }
    for (const name of o.configs) {
      const spec = MISO_STUDY_CONFIGS[name]!;
      const dir = join(o.out, 'runs', `${name}-s${seed}`);
      const key = keyOf(name, seed, dataSeed, spec.recipe);
      let res = reuse(dir, key);
      if (res) {
        reused++;
        log(`${name} s${seed}: reusing ${join(dir, 'result.json')} (inst strict ${pct(res.inst_strict)}%)`);
      } else {
        const r = trainAndEvaluate(
          { label: `${name} s${seed}`, recipe: spec.recipe, outDir: dir, seed },
          o,
          { modelPath, tokPath, trainFile: data.trainFile, testFile: data.testFile, evalRecords: data.evalRecords, nlp, log, saveModel: false },
        );
        res = { ...r.metrics, seed, data_seed: dataSeed, per_k: perK(r.strict), per_instruction_strict: perInstructionStrict(r.strict), run: r.run, losses: r.losses.map(r4) };
        writeRunResult(dir, key, res);
      }
      (runs[name] ??= []).push(res);
      if (o.budgetSeconds > 0 && o.budgetConfigs.includes(name)) {
        // the same wall-clock budget: as many steps as this recipe ran in S seconds at its measured rate
        // (train_seconds is stored to 0.1 s: a run that rounds to 0 counts as 0.05 s)
        const perStep = Math.max(0.05, res.run.train_seconds) / Math.max(1, res.run.steps);
        const steps = Math.max(1, Math.round(o.budgetSeconds / perStep));
        const bdir = join(o.out, 'runs', `${name}-${o.budgetSeconds}s-s${seed}`);
        const bkey = runKey({ ...(JSON.parse(keyOf(name, seed, dataSeed, spec.recipe)) as object), steps, budgetSeconds: o.budgetSeconds });
        let b = reuse(bdir, bkey);
        if (b) {
          reused++;
          log(`${name} ${o.budgetSeconds}s s${seed}: reusing ${join(bdir, 'result.json')} (${steps} steps, inst strict ${pct(b.inst_strict)}%)`);
        } else {
          log(`${name} ${o.budgetSeconds}s s${seed}: ${perStep.toFixed(3)} s/step measured -> ${steps} steps`);
          const r = trainAndEvaluate(
            { label: `${name} ${o.budgetSeconds}s s${seed}`, recipe: spec.recipe, outDir: bdir, seed },
            { ...o, steps },
            { modelPath, tokPath, trainFile: data.trainFile, testFile: data.testFile, evalRecords: data.evalRecords, nlp, log, saveModel: false },
          );
          b = { ...r.metrics, seed, data_seed: dataSeed, per_k: perK(r.strict), per_instruction_strict: perInstructionStrict(r.strict), run: r.run, losses: r.losses.map(r4) };
          writeRunResult(bdir, bkey, b);
        }
        (budgetRuns[name] ??= []).push(b);
      }
    }
  }
  if (reused) log(`study miso: reused ${reused} run(s) of an earlier identical invocation (--fresh retrains them)`);

  const configs: Record<string, MisoConfigResult> = { base: aggregateMiso('the model before fine-tuning', {}, baseRuns) };
  for (const name of o.configs) {
    const c = aggregateMiso(MISO_STUDY_CONFIGS[name]!.description, MISO_STUDY_CONFIGS[name]!.recipe, runs[name]!, name === 'sft' ? undefined : runs.sft);
    c.cost = costOf(runs[name]!, baseRuns);
    const br = budgetRuns[name];
    if (br) c.time_budget = { seconds: o.budgetSeconds, metrics: Object.fromEntries(METRIC_KEYS.map((k) => [k, stat(br.map((r) => r[k]))])) as Record<keyof DemoMetrics, Stat>, cost: costOf(br, baseRuns), runs: br };
    // keep `runs` last in the JSON
    const { runs: rs, ...rest } = c;
    configs[name] = { ...rest, runs: rs };
  }
  const results: MisoStudyResults = {
    configs,
    settings: {
      model: o.model ?? 'stories260K (embedded, full fine-tuning)',
      steps: o.steps, examples_per_step: o.batch, lr: o.lr, schedule: 'cosine, 5% warmup, min 10%', seeds: o.seeds,
      data_seed: o.dataSeed ?? 'training seed', n_train: o.nTrain, n_test: o.nTest, max_new_tokens: o.maxNewTokens, pack: false,
      configs: Object.fromEntries(o.configs.map((n) => [n, MISO_STUDY_CONFIGS[n]!.recipe])),
      budget_seconds: o.budgetSeconds, ...(o.budgetSeconds > 0 ? { budget_configs: o.budgetConfigs.filter((c) => o.configs.includes(c)) } : {}),
      seconds: Math.round((performance.now() - t0) / 100) / 10,
    },
  };
  writeJsonAtomic(join(o.out, 'results.json'), results);
  writeTextAtomic(join(o.out, 'miso.svg'), misoPlot(results));
  writeTextAtomic(join(o.out, 'table.md'), `${misoTable(results)}\n\nInstruction-level strict accuracy by constraints per test prompt:\n\n${misoPerKTable(results)}\n\nCost per point of inst-strict accuracy over the base model:\n\n${misoCostTable(results)}\n`);
  return results;
}
