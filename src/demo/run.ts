// `mixtune demo`: synthesize multi-constraint data, fine-tune the embedded stories260K model with
// each recipe (same data, same optimizer steps over the same examples, same seed), evaluate the
// base model and every fine-tuned model with the IFEval checker on a held-out split of unseen
// constraint combinations, print a table, and write results.json, metrics.jsonl per recipe and
// loss.svg.
import { Bf16Weights, type Bf16Op } from '../tensor/bf16-weights.js';
import { requireBf16 } from '../tensor/bf16.js';
import { rmSync } from 'node:fs';
import { isEmbeddedModelName } from '../io/model-ref.js';
import { join, resolve } from 'node:path';
import { nativeKernels } from '../tensor/native.js';
import { loadModel, loadTokenizer } from '../io/load.js';
import { ChatTemplate } from '../io/chat.js';
import { saveHfModel } from '../io/hf-model.js';
import { tokenizerFilesWriter } from '../io/tokenizer-json.js';
import { validateTrainConfig, type TrainConfig } from '../train/config.js';
import { prepareRows } from '../train/prepare.js';
import { Trainer, evaluateLoss } from '../train/trainer.js';
import { trainableParams } from '../model/lora.js';
import { encoderFor, trainerOptionsOf } from '../train/setup.js';
import { synthesizeConstraints, type SynthRecord } from '../synth/constraints.js';
import { defaultIfevalNlp } from '../eval/ifeval/run.js';
import { evaluateModel, METRIC_KEYS, type DemoMetrics, type EvalOutcome } from './eval.js';
import { summarize, type IfevalResult } from '../eval/ifeval/score.js';
import { lossAccuracySvg } from '../util/plot-svg.js';
import { ensureWritableDir, writeJsonAtomic, writeJsonlAtomic, writeTextAtomic } from '../util/fs.js';
import { checkModelAndTokenizer, modelPathOf } from '../io/load.js';
import { MixtuneError } from '../util/errors.js';
import type { Tokenizer } from '../tokenizer.js';
import type { CheckContext } from '../eval/ifeval/checks.js';

export const DEMO_RECIPES = ['sft', 'miso-para', 'miso-augment-only', 'miso-succ'] as const;
export type DemoRecipe = (typeof DEMO_RECIPES)[number];

export interface DemoOptions {
  out: string;
  recipes: string[];
  steps: number;
  seed: number;
  nTrain: number;
  nTest: number;
  maxNewTokens: number;
  /** Examples per optimizer step (one example per row, no packing). */
  batch: number;
  lr: number;
  /** The model to fine-tune (default: the embedded stories260K) and its tokenizer (default: the model's own). */
  model?: string;
  tokenizer?: string;
  /** training.precision of the fine-tuning runs (default fp32); evaluation is fp32 either way. */
  precision?: 'fp32' | 'bf16';
  /** training.bf16_ops of the fine-tuning runs (with precision bf16; default all products). */
  bf16Ops?: Bf16Op[];
  progress?: boolean;
  log?: (line: string) => void;
}

export const DEMO_DEFAULTS = { out: './mixtune-demo', recipes: 'sft,miso-para', steps: 150, seed: 0, nTrain: 2400, nTest: 120, maxNewTokens: 160, batch: 16, lr: 3e-3 } as const;

export interface RecipeRun {
  recipe: string;
  steps: number;
  examples_per_step: number;
  /** Response tokens that carried loss, summed over steps (the token budget both recipes share). */
  trained_tokens: number;
  /** All tokens processed (inputs included): MISO groups have several inputs per example. */
  processed_tokens: number;
  first_loss: number;
  final_loss: number;
  /** Mean loss per response token on the held-out test records with the full prompt (teacher forcing), or null. */
  test_loss: number | null;
  train_seconds: number;
  eval_seconds: number;
  rows: number;
  dropped: number;
  truncated: number;
}

export interface DemoResults {
  recipes: Record<string, DemoMetrics>;
  /** Instruction-level strict accuracy per instruction id (full prompts). */
  per_instruction_strict: Record<string, Record<string, number>>;
  runs: Record<string, RecipeRun>;
  base_eval_seconds: number;
  /** The base model's teacher-forced loss per response token on the test records (compare runs[r].test_loss). */
  base_test_loss: number | null;
  config: Record<string, unknown>;
  data: { train: number; test: number; test_constraints_per_prompt: Record<string, number>; dropped_by_verification: number };
  seconds: number;
}

export function parseRecipes(list: string): DemoRecipe[] {
  const names = list.split(',').map((s) => s.trim()).filter((s) => s !== '');
  if (names.length === 0) throw new MixtuneError('demo: --recipes: give at least one recipe');
  for (const n of names) {
    if (!(DEMO_RECIPES as readonly string[]).includes(n)) throw new MixtuneError(`demo: --recipes: unknown recipe '${n}' (choose from ${DEMO_RECIPES.join(', ')})`);
    if (n === 'base') throw new MixtuneError("demo: --recipes: 'base' is always evaluated");
  }
  if (new Set(names).size !== names.length) throw new MixtuneError('demo: --recipes: a recipe is listed twice');
  return names as DemoRecipe[];
}

function stopIdsOf(tok: Tokenizer): number[] {
  return [tok.eosId, tok.bosId].filter((x) => x >= 0);
}

function trainConfig(o: Pick<DemoOptions, 'steps' | 'batch' | 'lr' | 'precision' | 'bf16Ops'>, job: RecipeJob, modelPath: string, tokPath: string | undefined, trainFile: string, testFile?: string): TrainConfig {
  return validateTrainConfig({
    model: modelPath, ...(tokPath ? { tokenizer: tokPath } : {}), output_dir: job.outDir, seed: job.seed,
    data: {
      datasets: [{ path: trainFile, format: 'constraints' }],
      // eval rows are always plain SFT rows (full prompt -> response), whatever the recipe
      ...(testFile ? { eval_datasets: [{ path: testFile, format: 'constraints' }] } : {}),
      // one example per row: every optimizer step trains the same examples under every recipe
      pack: false, max_len: 1536, overflow: 'drop', template: 'plain',
    },
    recipe: job.recipe,
    training: {
      max_steps: o.steps, micro_batch_size: o.batch, grad_accum: 1, lr: o.lr, warmup_ratio: 0.05, schedule: 'cosine',
      min_lr_ratio: 0.1, max_grad_norm: 1, weight_decay: 0, log_every: 1, eval_every: 0, save_every: 0, keep_last: 1,
      precision: o.precision ?? 'fp32', ...(o.bf16Ops ? { bf16_ops: o.bf16Ops } : {}),
    },
  }, `mixtune ${job.label}`, process.cwd());
}

function fmt(x: number): string {
  return (100 * x).toFixed(1).padStart(6);
}

export function formatTable(results: Record<string, DemoMetrics>): string {
  const head = ['recipe', 'prompt strict', 'inst strict', 'prompt loose', 'inst loose', 'flat inst strict'];
  const lines = [head.map((h, i) => (i === 0 ? h.padEnd(18) : h.padStart(18))).join('')];
  for (const [name, m] of Object.entries(results)) {
    lines.push(name.padEnd(18) + METRIC_KEYS.map((k) => fmt(m[k]).padStart(18)).join(''));
  }
  return lines.join('\n') + '\n(accuracy in %, IFEval checker on the held-out test split)';
}

export interface DemoData {
  trainFile: string;
  testFile: string;
  evalRecords: SynthRecord[];
  train: number;
  test: number;
  /** Test prompts per number of constraints. */
  perK: Record<string, number>;
  dropped: number;
}

/** Synthesizes the train / held-out test split for a seed and writes DIR/train.jsonl, DIR/test.jsonl. */
export function writeDemoData(dir: string, o: { seed: number; nTrain: number; nTest: number; nlp: CheckContext }): DemoData {
  const train = synthesizeConstraints({ n: o.nTrain, seed: o.seed, split: 'train', nlp: o.nlp });
  const test = synthesizeConstraints({ n: o.nTest, seed: o.seed, split: 'test', nlp: o.nlp });
  const trainFile = join(dir, 'train.jsonl');
  writeJsonlAtomic(trainFile, train.records);
  const testFile = join(dir, 'test.jsonl');
  writeJsonlAtomic(testFile, test.records);
  const perK: Record<string, number> = {};
  for (const r of test.records) perK[String(r.instruction_id_list.length)] = (perK[String(r.instruction_id_list.length)] ?? 0) + 1;
  return { trainFile, testFile, evalRecords: test.records, train: train.records.length, test: test.records.length, perK, dropped: train.dropped + test.dropped };
}

/** Instruction-level strict accuracy per instruction id. */
export function perInstructionStrict(strict: IfevalResult[]): Record<string, number> {
  return Object.fromEntries(Object.entries(summarize(strict).per_instruction).map(([k, a]) => [k, Math.round(a.accuracy * 1000) / 1000]));
}

/** Evaluates the model as it is (no fine-tuning); writes OUTDIR/responses.jsonl. */
export function evaluateBase(
  o: Pick<DemoOptions, 'maxNewTokens' | 'progress' | 'batch'>,
  ctx: { modelPath: string; tokPath: string | undefined; testFile?: string; evalRecords: readonly SynthRecord[]; nlp: CheckContext; outDir: string },
): EvalOutcome & { testLoss: number | null } {
  const base = loadModel(ctx.modelPath, nativeKernels()).model;
  const tok = loadTokenizer(ctx.tokPath, ctx.modelPath, base.config.vocabSize);
  const template = ChatTemplate.forTokenizer(tok, { plain: true });
  let testLoss: number | null = null;
  if (ctx.testFile) {
    // the same eval rows the fine-tuned runs are scored on (the sft recipe builds them)
    const cfg = trainConfig({ steps: 1, batch: o.batch, lr: 1e-3 }, { label: 'base', recipe: { name: 'sft' }, outDir: ctx.outDir, seed: 0 }, ctx.modelPath, ctx.tokPath, ctx.testFile, ctx.testFile);
    const prep = prepareRows(cfg, encoderFor(tok, cfg).encode);
    testLoss = evaluateLoss(base, prep.eval, o.batch, tok.padId);
  }
  const ev = evaluateModel(base, tok, template, ctx.evalRecords, ctx.nlp, {
    maxNewTokens: o.maxNewTokens, stopIds: stopIdsOf(tok), label: 'eval base', ...(o.progress !== undefined ? { progress: o.progress } : {}),
  });
  writeJsonlAtomic(join(ctx.outDir, 'responses.jsonl'), ctx.evalRecords.map((r, i) => ({ prompt: r.prompt, response: ev.responses[i], follow: ev.strict[i]!.follow_instruction_list })));
  return { ...ev, testLoss };
}

/**
 * The model to fine-tune and its tokenizer: by default the embedded stories260K (with its own
 * tok512.bin); a user's model (llama2.c file or HF folder) finds its own tokenizer unless one is given.
 */
export function demoModelPaths(model?: string, tokenizer?: string): { modelPath: string; tokPath: string | undefined } {
  const m = model ?? 'stories260K';
  return { modelPath: isEmbeddedModelName(m) ? m : resolve(m), tokPath: tokenizer ? resolve(tokenizer) : undefined };
}

/**
 * Fail fast for the demo and the studies: the model and its tokenizer can be found and read, and
 * the output folder is writable — checked before any data is synthesized.
 */
export function preflightDemo(modelPath: string, tokPath: string | undefined, out: string): void {
  checkModelAndTokenizer(modelPath, tokPath);
  ensureWritableDir(out, '--out');
}

/** One training run of the demo or a study: which recipe block, where, with which seed. */
export interface RecipeJob {
  /** Name in logs and results ("sft", "miso-para-fid", ...). */
  label: string;
  /** The train config's `recipe` block (validated with the rest of the config). */
  recipe: Record<string, unknown> & { name: string };
  outDir: string;
  seed: number;
}

export interface RecipeJobContext {
  modelPath: string;
  /** undefined: the tokenizer inside the model folder (HF) or tokenizer.bin beside it. */
  tokPath: string | undefined;
  trainFile: string;
  /** The held-out records as a file: adds the teacher-forced test loss (full prompt -> response). */
  testFile?: string;
  evalRecords: readonly SynthRecord[];
  nlp: CheckContext;
  log: (line: string) => void;
  /** Write OUTDIR/final, the fine-tuned model as an HF folder (default true). */
  saveModel?: boolean;
}

export interface RecipeJobResult {
  metrics: DemoMetrics;
  strict: IfevalResult[];
  flat: boolean[];
  run: RecipeRun;
  losses: number[];
}

/**
 * Fine-tunes a fresh copy of the model with one recipe on the synthetic training file (one example
 * per row, `steps` optimizer steps of `batch` rows, cosine schedule) and evaluates it on the
 * held-out records with the IFEval checker. Every recipe gets the same rows per step and the same
 * seeded row order, so recipes differ only in how each example is laid out.
 */
export function trainAndEvaluate(job: RecipeJob, o: Pick<DemoOptions, 'steps' | 'batch' | 'lr' | 'maxNewTokens' | 'progress' | 'precision' | 'bf16Ops'>, ctx: RecipeJobContext): RecipeJobResult {
  const cfg = trainConfig(o, job, ctx.modelPath, ctx.tokPath, ctx.trainFile, ctx.testFile);
  const model = loadModel(ctx.modelPath, nativeKernels()).model;
  if (cfg.training.precision === 'bf16') model.bf16 = new Bf16Weights(cfg.training.bf16_ops);
  const tok = loadTokenizer(ctx.tokPath, ctx.modelPath, model.config.vocabSize);
  const { template, encode } = encoderFor(tok, cfg);
  const prep = prepareRows(cfg, encode);
  const outDir = cfg.output_dir;
  rmSync(join(outDir, 'metrics.jsonl'), { force: true });
  const totalSteps = o.steps;
  const trainer = new Trainer(model, trainableParams(model), prep.train, prep.eval, trainerOptionsOf(cfg, {
    totalSteps, padId: tok.padId,
    ...(o.progress !== undefined ? { progress: o.progress } : {}),
    log: (s) => {
      // without a progress bar, log every 10th step only
      const m = /^step (\d+)\//.exec(s);
      if (!m || Number(m[1]) % 10 === 0 || Number(m[1]) === totalSteps) ctx.log(`${job.label}: ${s}`);
    },
  }));
  ctx.log(`${job.label}: ${prep.train.length} rows (one example each), ${totalSteps} steps x ${o.batch} rows, lr ${o.lr}`);
  const r = trainer.run();
  const ev = evaluateModel(model, tok, template, ctx.evalRecords, ctx.nlp, {
    maxNewTokens: o.maxNewTokens, stopIds: stopIdsOf(tok), label: `eval ${job.label}`, ...(o.progress !== undefined ? { progress: o.progress } : {}),
  });
  writeJsonlAtomic(join(outDir, 'responses.jsonl'), ctx.evalRecords.map((rec, i) => ({ prompt: rec.prompt, response: ev.responses[i], follow: ev.strict[i]!.follow_instruction_list })));
  if (ctx.saveModel !== false) {
    saveHfModel(join(outDir, 'final'), model, {
      overwrite: true,
      beforeCommit: tokenizerFilesWriter(tok, { tokenizerDir: ctx.tokPath, modelDir: modelPathOf(ctx.modelPath), modelMaxLength: model.config.maxSeqLen }),
    });
  }
  const run: RecipeRun = {
    recipe: job.label, steps: r.steps, examples_per_step: o.batch, trained_tokens: r.targetTokens, processed_tokens: r.tokens,
    first_loss: r.losses[0] ?? Number.NaN, final_loss: r.finalLoss, test_loss: r.evalLoss,
    train_seconds: round1(r.seconds), eval_seconds: round1(ev.seconds), rows: prep.train.length,
    dropped: prep.stats.train.dropped, truncated: prep.stats.train.truncated,
  };
  ctx.log(`${job.label}: loss ${run.first_loss.toFixed(3)} -> ${r.finalLoss.toFixed(3)}${r.evalLoss !== null ? `, test loss ${r.evalLoss.toFixed(3)}` : ''} in ${r.seconds.toFixed(1)}s; ` +
    `prompt strict ${(100 * ev.metrics.prompt_strict).toFixed(1)}%, inst strict ${(100 * ev.metrics.inst_strict).toFixed(1)}% (eval ${ev.seconds.toFixed(1)}s)`);
  return { metrics: ev.metrics, strict: ev.strict, flat: ev.flat, run, losses: r.losses };
}

export async function runDemo(o: DemoOptions): Promise<DemoResults> {
  const t0 = performance.now();
  const log = o.log ?? ((s: string) => void process.stderr.write(s + '\n'));
  const recipes = parseRecipes(o.recipes.join(','));
  const out = resolve(o.out);
  const { modelPath, tokPath } = demoModelPaths(o.model, o.tokenizer);
  preflightDemo(modelPath, tokPath, out);
  if (o.precision === 'bf16') requireBf16('demo --precision bf16');
  if (o.bf16Ops && o.precision !== 'bf16') throw new MixtuneError('demo: --bf16-ops needs --precision bf16');

  // 1. data
  const nlp = defaultIfevalNlp();
  const data = writeDemoData(join(out, 'data'), { seed: o.seed, nTrain: o.nTrain, nTest: o.nTest, nlp });
  const { trainFile, testFile, evalRecords, perK } = data;
  log(`data: ${data.train} train examples (1-3 constraints), ${data.test} test examples (unseen combinations of 2-4 constraints), ` +
    `all verified by the IFEval checker; ${data.dropped} dropped`);

  // 2. the base model
  const results: Record<string, DemoMetrics> = {};
  const perInstruction: Record<string, Record<string, number>> = {};
  const runs: Record<string, RecipeRun> = {};
  const lossCurves: Record<string, number[]> = {};
  const baseEval = evaluateBase(o, { modelPath, tokPath, testFile, evalRecords, nlp, outDir: join(out, 'base') });
  results.base = baseEval.metrics;
  perInstruction.base = perInstructionStrict(baseEval.strict);
  log(`base: prompt strict ${(100 * baseEval.metrics.prompt_strict).toFixed(1)}%, inst strict ${(100 * baseEval.metrics.inst_strict).toFixed(1)}% (${baseEval.seconds.toFixed(1)}s)`);

  // 3. each recipe: fresh model, same data / steps / seed
  for (const recipe of recipes) {
    const r = trainAndEvaluate({ label: recipe, recipe: { name: recipe }, outDir: join(out, recipe), seed: o.seed }, o, { modelPath, tokPath, trainFile, testFile, evalRecords, nlp, log });
    results[recipe] = r.metrics;
    perInstruction[recipe] = perInstructionStrict(r.strict);
    runs[recipe] = r.run;
    lossCurves[recipe] = r.losses;
  }

  // 4. results, table and plot
  const res: DemoResults = {
    recipes: results, per_instruction_strict: perInstruction, runs, base_eval_seconds: round1(baseEval.seconds), base_test_loss: baseEval.testLoss,
    config: { model: modelPath, steps: o.steps, seed: o.seed, n_train: o.nTrain, n_test: o.nTest, max_new_tokens: o.maxNewTokens, batch: o.batch, lr: o.lr, pack: false, schedule: 'cosine', precision: o.precision ?? 'fp32', ...(o.bf16Ops ? { bf16_ops: o.bf16Ops } : {}) },
    data: { train: data.train, test: data.test, test_constraints_per_prompt: perK, dropped_by_verification: data.dropped },
    seconds: round1((performance.now() - t0) / 1000),
  };
  writeJsonAtomic(join(out, 'results.json'), res);
  const names = Object.keys(results);
  const metricLabels = ['prompt strict', 'inst strict', 'flat inst strict'] as const;
  const metricKeys = ['prompt_strict', 'inst_strict', 'flatten_inst_strict'] as const;
  writeTextAtomic(join(out, 'loss.svg'), lossAccuracySvg({
    title: `mixtune demo: stories260K, ${o.steps} steps x ${o.batch} examples, seed ${o.seed}`,
    // base has no curve; an empty one keeps the colours of curves and bars aligned
    losses: names.map((n) => ({ name: n, values: lossCurves[n] ?? [] })),
    smooth: Math.max(1, Math.round(o.steps / 30)),
    logY: true,
    groups: [...metricLabels],
    bars: names.map((n) => ({ name: n, values: metricKeys.map((k) => results[n]![k]) })),
    barTitle: 'held-out accuracy (IFEval checker)',
  }), 'plot');
  return res;
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}
