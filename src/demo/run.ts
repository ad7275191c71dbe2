// `mixtune demo`: synthesize multi-constraint data, fine-tune the embedded stories260K model with
// each recipe (same data, same optimizer steps over the same examples, same seed), evaluate the
// base model and every fine-tuned model with the IFEval checker on a held-out split of unseen
// constraint combinations, print a table, and write results.json, metrics.jsonl per recipe and
// loss.svg.
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { nativeKernels } from '../tensor/native.js';
import { loadModel, loadTokenizer } from '../io/load.js';
import { ChatTemplate, PLAIN_CHAT_TEMPLATE } from '../io/chat.js';
import { saveHfModel } from '../io/hf-model.js';
import { writeLlama2cTokenizerFiles } from '../io/tokenizer-json.js';
import { Llama2cTokenizer } from '../io/llama2c-tokenizer.js';
import { validateTrainConfig, type TrainConfig } from '../train/config.js';
import { prepareRows } from '../train/prepare.js';
import { Trainer } from '../train/trainer.js';
import { warmupStepsOf } from '../train/schedule.js';
import { trainableParams } from '../model/lora.js';
import { chatEncoder, templateFor } from '../cli/train.js';
import { synthesizeConstraints, type SynthRecord } from '../synth/constraints.js';
import { writeJsonlAtomic } from '../cli/synth.js';
import { defaultIfevalNlp } from '../eval/ifeval/run.js';
import { evaluateModel, METRIC_KEYS, type DemoMetrics } from './eval.js';
import { summarize, type IfevalResult } from '../eval/ifeval/score.js';
import { writeLossAndAccuracySvg, type Series } from '../util/plot-svg.js';
import { sharedDir } from '../util/paths.js';
import { writeJsonAtomic } from '../util/fs.js';
import { MixtuneError } from '../util/errors.js';
import type { Tokenizer } from '../tokenizer.js';

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
  /** llama2.c checkpoint (default: ../shared/fixtures/stories260K/stories260K.bin) and tokenizer. */
  model?: string;
  tokenizer?: string;
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

function trainConfig(o: DemoOptions, recipe: DemoRecipe, modelPath: string, tokPath: string, trainFile: string): TrainConfig {
  return validateTrainConfig({
    model: modelPath, tokenizer: tokPath, output_dir: join(o.out, recipe), seed: o.seed,
    data: {
      datasets: [{ path: trainFile, format: 'constraints' }],
      // one example per row: every optimizer step trains the same examples under every recipe
      pack: false, max_len: 1536, overflow: 'drop', template: 'plain',
    },
    recipe: { name: recipe },
    training: {
      max_steps: o.steps, micro_batch_size: o.batch, grad_accum: 1, lr: o.lr, warmup_ratio: 0.05, schedule: 'cosine',
      min_lr_ratio: 0.1, max_grad_norm: 1, weight_decay: 0, log_every: 1,
    },
  }, 'mixtune demo', process.cwd());
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

function readLosses(path: string): Array<[number, number]> {
  if (!existsSync(path)) return [];
  const pts: Array<[number, number]> = [];
  for (const l of readFileSync(path, 'utf8').split('\n')) {
    if (!l.trim()) continue;
    const m = JSON.parse(l) as { step?: number; loss?: number };
    if (typeof m.step === 'number' && typeof m.loss === 'number') pts.push([m.step, m.loss]);
  }
  return pts;
}

export async function runDemo(o: DemoOptions): Promise<DemoResults> {
  const t0 = performance.now();
  const log = o.log ?? ((s: string) => void process.stderr.write(s + '\n'));
  const recipes = parseRecipes(o.recipes.join(','));
  const out = resolve(o.out);
  const modelPath = resolve(o.model ?? join(sharedDir(), 'fixtures', 'stories260K', 'stories260K.bin'));
  const tokPath = resolve(o.tokenizer ?? join(modelPath, '..', 'tok512.bin'));
  if (!existsSync(modelPath)) throw new MixtuneError(`${modelPath}: the demo model is missing (../shared/fixtures beside the checkout, or MIXTUNE_SHARED)`);

  // 1. data
  const nlp = defaultIfevalNlp();
  const train = synthesizeConstraints({ n: o.nTrain, seed: o.seed, split: 'train', nlp });
  const test = synthesizeConstraints({ n: o.nTest, seed: o.seed, split: 'test', nlp });
  const trainFile = join(out, 'data', 'train.jsonl');
  writeJsonlAtomic(trainFile, train.records);
  writeJsonlAtomic(join(out, 'data', 'test.jsonl'), test.records);
  const perK: Record<string, number> = {};
  for (const r of test.records) perK[String(r.instruction_id_list.length)] = (perK[String(r.instruction_id_list.length)] ?? 0) + 1;
  log(`data: ${train.records.length} train examples (1-3 constraints), ${test.records.length} test examples (unseen combinations of 2-4 constraints), ` +
    `all verified by the IFEval checker; ${train.dropped + test.dropped} dropped`);

  const kernels = nativeKernels();
  const genOpts = (label: string, tok: Tokenizer): { maxNewTokens: number; stopIds: number[]; label: string; progress?: boolean } => ({
    maxNewTokens: o.maxNewTokens, stopIds: stopIdsOf(tok), label, ...(o.progress !== undefined ? { progress: o.progress } : {}),
  });
  const evalRecords: SynthRecord[] = test.records;

  // 2. the base model
  const results: Record<string, DemoMetrics> = {};
  const perInstruction: Record<string, Record<string, number>> = {};
  const perInst = (strict: IfevalResult[]): Record<string, number> => Object.fromEntries(Object.entries(summarize(strict).per_instruction).map(([k, a]) => [k, Math.round(a.accuracy * 1000) / 1000]));
  const runs: Record<string, RecipeRun> = {};
  const base = loadModel(modelPath, kernels).model;
  const tok = loadTokenizer(tokPath, modelPath, base.config.vocabSize);
  const template = ChatTemplate.forTokenizer(tok, { plain: true });
  const baseEval = evaluateModel(base, tok, template, evalRecords, nlp, genOpts('eval base', tok));
  results.base = baseEval.metrics;
  perInstruction.base = perInst(baseEval.strict);
  writeJsonlAtomic(join(out, 'base', 'responses.jsonl'), evalRecords.map((r, i) => ({ prompt: r.prompt, response: baseEval.responses[i], follow: baseEval.strict[i]!.follow_instruction_list })));
  log(`base: prompt strict ${(100 * baseEval.metrics.prompt_strict).toFixed(1)}%, inst strict ${(100 * baseEval.metrics.inst_strict).toFixed(1)}% (${baseEval.seconds.toFixed(1)}s)`);

  // 3. each recipe: fresh model, same data / steps / seed
  for (const recipe of recipes) {
    const cfg = trainConfig(o, recipe, modelPath, tokPath, trainFile);
    const model = loadModel(modelPath, kernels).model;
    const rtok = loadTokenizer(tokPath, modelPath, model.config.vocabSize);
    const rtemplate = templateFor(rtok, cfg);
    const prep = prepareRows(cfg, chatEncoder(rtok, rtemplate, cfg.data.train_on));
    const outDir = cfg.output_dir;
    rmSync(join(outDir, 'metrics.jsonl'), { force: true });
    const totalSteps = o.steps;
    const trainer = new Trainer(model, trainableParams(model), prep.train, [], {
      outputDir: outDir, seed: cfg.seed, totalSteps,
      microBatchSize: cfg.training.micro_batch_size, gradAccum: cfg.training.grad_accum, lr: cfg.training.lr,
      warmupSteps: warmupStepsOf(totalSteps, { ratio: cfg.training.warmup_ratio ?? 0 }),
      schedule: cfg.training.schedule, minLrRatio: cfg.training.min_lr_ratio, weightDecay: cfg.training.weight_decay,
      beta1: cfg.training.beta1, beta2: cfg.training.beta2, eps: cfg.training.eps, maxGradNorm: cfg.training.max_grad_norm,
      logEvery: 1, evalEvery: 0, saveEvery: 0, keepLast: 1, padId: rtok.eosId >= 0 ? rtok.eosId : 0,
      ...(o.progress !== undefined ? { progress: o.progress } : {}),
      log: (s) => {
        // without a progress bar, log every 10th step only
        const m = /^step (\d+)\//.exec(s);
        if (!m || Number(m[1]) % 10 === 0 || Number(m[1]) === totalSteps) log(`${recipe}: ${s}`);
      },
    });
    log(`${recipe}: ${prep.train.length} rows (one example each), ${totalSteps} steps x ${o.batch} examples, lr ${o.lr}`);
    const r = trainer.run();
    const losses = readLosses(join(outDir, 'metrics.jsonl'));
    const trained = trainedTokens(prep.train, trainer);
    const ev = evaluateModel(model, rtok, rtemplate, evalRecords, nlp, genOpts(`eval ${recipe}`, rtok));
    results[recipe] = ev.metrics;
    perInstruction[recipe] = perInst(ev.strict);
    writeJsonlAtomic(join(outDir, 'responses.jsonl'), evalRecords.map((rec, i) => ({ prompt: rec.prompt, response: ev.responses[i], follow: ev.strict[i]!.follow_instruction_list })));
    saveHfModel(join(outDir, 'final'), model, {
      overwrite: true,
      beforeCommit: (d) => { if (rtok instanceof Llama2cTokenizer) writeLlama2cTokenizerFiles(d, rtok, { chatTemplate: PLAIN_CHAT_TEMPLATE, modelMaxLength: model.config.maxSeqLen }); },
    });
    runs[recipe] = {
      recipe, steps: r.steps, examples_per_step: o.batch, trained_tokens: trained, processed_tokens: r.tokens,
      first_loss: losses[0]?.[1] ?? Number.NaN, final_loss: r.finalLoss,
      train_seconds: round1(r.seconds), eval_seconds: round1(ev.seconds), rows: prep.train.length,
      dropped: prep.stats.train.dropped, truncated: prep.stats.train.truncated,
    };
    log(`${recipe}: loss ${runs[recipe].first_loss.toFixed(3)} -> ${r.finalLoss.toFixed(3)} in ${r.seconds.toFixed(1)}s; ` +
      `prompt strict ${(100 * ev.metrics.prompt_strict).toFixed(1)}%, inst strict ${(100 * ev.metrics.inst_strict).toFixed(1)}% (eval ${ev.seconds.toFixed(1)}s)`);
  }

  // 4. results, table and plot
  const res: DemoResults = {
    recipes: results, per_instruction_strict: perInstruction, runs, base_eval_seconds: round1(baseEval.seconds),
    config: { model: modelPath, steps: o.steps, seed: o.seed, n_train: o.nTrain, n_test: o.nTest, max_new_tokens: o.maxNewTokens, batch: o.batch, lr: o.lr, pack: false, schedule: 'cosine' },
    data: { train: train.records.length, test: test.records.length, test_constraints_per_prompt: perK, dropped_by_verification: train.dropped + test.dropped },
    seconds: round1((performance.now() - t0) / 1000),
  };
  writeJsonAtomic(join(out, 'results.json'), res);
  const series: Series[] = recipes.map((rc) => ({ name: rc, points: readLosses(join(out, rc, 'metrics.jsonl')) }));
  writeLossAndAccuracySvg(join(out, 'loss.svg'), {
    title: `mixtune demo: stories260K, ${o.steps} steps x ${o.batch} examples, seed ${o.seed}`,
    loss: series,
    accuracy: Object.fromEntries(Object.entries(results).map(([k, m]) => [k, { 'prompt strict': m.prompt_strict, 'inst strict': m.inst_strict, 'flat inst strict': m.flatten_inst_strict }])),
  });
  return res;
}

/** Label tokens of the rows the trainer consumed (steps x batch rows in the trainer's order). */
function trainedTokens(rows: readonly { targets: Int32Array }[], trainer: Trainer): number {
  // The trainer visits rows epoch by epoch in a seeded order; with one example per row every
  // recipe sees the same examples, so count labels over the visited rows.
  const st = trainer.currentState;
  const perEpoch = rows.reduce((s, r) => s + r.targets.filter((t) => t >= 0).length, 0);
  const full = st.epoch;
  let partial = 0;
  if (st.cursor > 0) {
    const order = (trainer as unknown as { epochOrder(e: number): number[] }).epochOrder(st.epoch);
    for (let i = 0; i < st.cursor; i++) partial += rows[order[i]!]!.targets.filter((t) => t >= 0).length;
  }
  return full * perEpoch + partial;
}

function round1(x: number): number {
  return Math.round(x * 10) / 10;
}
