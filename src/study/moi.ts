// `mixtune study moi`: a small-scale reproduction of the Mixture-of-Instructions comparison.
// Four synthetic domains (src/study/moi-data.ts) are written as JSONL, and every configuration
// is an ordinary train config built in code and run through the library (validateTrainConfig ->
// prepareRows with the recipe -> Trainer), from the same model, with the same seed, steps and rows
// per step. Every fine-tuned model answers every domain's held-out test set greedily under the
// single default system prompt "You are a helpful assistant.", and each answer is checked
// (exact sentence / executed python / exact number / schema-valid JSON tool call).
//
// Configurations (how the paper's settings map onto the recipe options):
//   sequential    recipe sft; the four domains one after another (rows of one domain at a time, in
//                 domain order, each domain a quarter of the step budget); default system prompt.
//   packed        recipe moi, mix concat (datasets concatenated, consecutive examples chunked),
//                 mask full (a packed row attends across its examples); default system prompt.
//   balanced      recipe moi, mix balanced, mask full; default system prompt.
//   moi           recipe moi, mix balanced, per-domain system prompts, mask chunk.
//   moi-full      as moi with mask full       (mask ablation: cross-attention over the whole row).
//   moi-isolated  as moi with mask isolated   (mask ablation: every instruction its own group).
// The moi recipe shuffles the instruction order inside each balanced chunk (seeded), so no domain
// always opens a sequence — this study found that a fixed order left tool calls at 0%.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { nativeKernels } from '../tensor/native.js';
import { loadModel, loadTokenizer } from '../io/load.js';
import { ChatTemplate, type ChatMessage } from '../io/chat.js';
import { trainableParams } from '../model/lora.js';
import { validateTrainConfig, type TrainConfig } from '../train/config.js';
import { prepareRows, type Prepared } from '../train/prepare.js';
import { Trainer } from '../train/trainer.js';
import { encoderFor, trainerOptionsOf } from '../train/setup.js';
import { demoModelPaths, preflightDemo } from '../demo/run.js';
import { generateAnswer, startProgress } from '../eval/common.js';
import { extractCode, probeIsolation, runPool, runPython } from '../eval/code.js';
import { DEFAULT_SYSTEM_PROMPT } from '../data/recipes/prompts.js';
import type { Row } from '../data/pack.js';
import { Rng } from '../util/rng.js';
import { writeJsonAtomic, writeJsonlAtomic, writeTextAtomic } from '../util/fs.js';
import { MixtuneError } from '../util/errors.js';
import type { Tokenizer } from '../tokenizer.js';
import type { LlamaModel } from '../model/llama.js';
import {
  MOI_DOMAINS, STUDY_HELDOUT_SYSTEM_PROMPTS, STUDY_SYSTEM_PROMPTS, checkChat, checkMath, checkTool, codeTestProgram, itemRecord, makeMoiData,
  type CodeCheck, type MoiDomain, type MoiItem,
} from './moi-data.js';
import { curvePanelsSvg, lossAccuracySvg } from '../util/plot-svg.js';
import { readRunResult, runKey, writeRunResult } from './runs.js';
import { mean, meanCurve, pct, r4, std } from './stats.js';
import { readSafetensors, writeSafetensors, type TensorToWrite } from '../io/safetensors.js';
import { listCheckpoints } from '../train/checkpoint.js';

export interface MoiConfigSpec {
  description: string;
  kind: 'sequential' | 'moi';
  mix?: 'balanced' | 'concat';
  mask?: 'chunk' | 'isolated' | 'full';
  /** Train with per-domain system prompts (else every example has the default prompt). */
  domainPrompts: boolean;
  /** Instructions per chunk (recipe.n_mix; default: one per domain, 4). */
  nMix?: number;
  /** Rows this many times longer than --max-len, with as many times fewer rows per step (same tokens per step). */
  rowScale?: number;
}

export const MOI_STUDY_CONFIGS: Record<string, MoiConfigSpec> = {
  sequential: { description: 'SFT, domains one after another', kind: 'sequential', domainPrompts: false },
  packed: { description: 'moi recipe, mix concat, mask full, default prompt', kind: 'moi', mix: 'concat', mask: 'full', domainPrompts: false },
  balanced: { description: 'moi recipe, mix balanced, mask full, default prompt', kind: 'moi', mix: 'balanced', mask: 'full', domainPrompts: false },
  moi: { description: 'balanced + domain prompts + chunk mask', kind: 'moi', mix: 'balanced', mask: 'chunk', domainPrompts: true },
  'moi-isolated': { description: 'as moi, mask isolated', kind: 'moi', mix: 'balanced', mask: 'isolated', domainPrompts: true },
  'moi-full': { description: 'as moi, mask full', kind: 'moi', mix: 'balanced', mask: 'full', domainPrompts: true },
  'moi-nmix2': { description: 'as moi, n_mix 2 (2 instructions per chunk)', kind: 'moi', mix: 'balanced', mask: 'chunk', domainPrompts: true, nMix: 2 },
  'moi-nmix8': { description: 'as moi, n_mix 8 (8 instructions per chunk; rows 2x longer, half as many per step)', kind: 'moi', mix: 'balanced', mask: 'chunk', domainPrompts: true, nMix: 8, rowScale: 2 },
};

/** The configurations a study runs by default (the n_mix variants only on request: --n-mix or --configs). */
export const MOI_DEFAULT_CONFIGS = ['sequential', 'packed', 'balanced', 'moi', 'moi-isolated', 'moi-full'];

/** `--n-mix 2,4,8`: the configuration of each chunk size (4, one instruction per domain, is `moi`). */
export function nMixConfigs(sizes: readonly number[]): string[] {
  return sizes.map((n) => {
    if (n === 4) return 'moi';
    const name = `moi-nmix${n}`;
    if (!MOI_STUDY_CONFIGS[name]) throw new MixtuneError(`--n-mix: no configuration for n_mix ${n} (known: 2, 4, 8)`);
    return name;
  });
}

export interface MoiStudyOptions {
  out: string;
  steps: number;
  seeds: number;
  nTrain: number;
  nTest: number;
  configs: string[];
  /** Rows (of maxLen tokens) per optimizer step. */
  batch: number;
  maxLen: number;
  lr: number;
  dataSeed: number;
  model?: string;
  tokenizer?: string;
  maxNewTokens: number;
  /** Python programs in flight for the code checks. */
  jobs: number;
  progress?: boolean;
  /** Retrain runs whose result.json from an earlier, identical invocation exists (default: reuse them). */
  fresh?: boolean;
  /** Also evaluate every run under the first K held-out system prompts of each domain (0: off). */
  evalPrompts: number;
  /** Learning curves: evaluate the checkpoint every N steps (0: off) of the --curve-configs runs. */
  curveEvery: number;
  curveConfigs: string[];
  log?: (line: string) => void;
}

export const MOI_STUDY_DEFAULTS: Omit<MoiStudyOptions, 'out'> = {
  steps: 400, seeds: 1, nTrain: 256, nTest: 50, configs: MOI_DEFAULT_CONFIGS,
  batch: 2, maxLen: 1024, lr: 3e-3, dataSeed: 1234, maxNewTokens: 48, jobs: 2,
  evalPrompts: 5, curveEvery: 0, curveConfigs: ['packed', 'balanced', 'moi'],
};

/** The held-out system prompts of evaluation k (one per domain). */
export function heldoutPrompt(k: number): Record<MoiDomain, string> {
  return Object.fromEntries(MOI_DOMAINS.map((d) => [d, STUDY_HELDOUT_SYSTEM_PROMPTS[d][k]!])) as Record<MoiDomain, string>;
}
export const MAX_EVAL_PROMPTS = Math.min(...MOI_DOMAINS.map((d) => STUDY_HELDOUT_SYSTEM_PROMPTS[d].length));

export interface CurvePoint { step: number; domains: DomainScores; avg: number }

export type DomainScores = Record<MoiDomain, number>;

export interface MoiRunResult {
  seed: number;
  domains: DomainScores;
  avg: number;
  losses: number[];
  eval_loss: number | null;
  /** Tool answers that parse and match the schema (whatever their values). */
  tool_valid: number;
  tokens: number;
  trained_tokens_per_epoch: number;
  rows: number;
  packing_efficiency: number;
  train_seconds: number;
  eval_seconds: number;
  /** Accuracies per domain under held-out prompt k (--eval-prompts; evaluated on the final weights). */
  prompt_domains?: DomainScores[];
  /** Test accuracy of the checkpoints every --curve-every steps, and of the final weights. */
  curve?: CurvePoint[];
}

export interface PromptSensitivity {
  /** Held-out prompt k: one system prompt per domain. */
  prompts: Record<MoiDomain, string>[];
  /** Accuracy under prompt k, averaged over domains and seeds. */
  avg_per_prompt: number[];
  /** Mean and sample std of avg_per_prompt (the spread across prompts). */
  mean: number;
  std: number;
  /** Per domain: mean over prompts and seeds. */
  domains: DomainScores;
  /** Std over seeds of each seed's mean over prompts and domains. */
  std_seeds: number;
}

export interface MoiCurve {
  steps: number[];
  /** Mean over seeds at each step. */
  domains: Record<MoiDomain, number[]>;
  avg: number[];
  /** Std over seeds of avg (when seeds > 1). */
  std_avg: number[];
}

export interface MoiConfigResult {
  description: string;
  domains: DomainScores;
  avg: number;
  /** Mean training-loss curve over seeds. */
  losses: number[];
  eval_loss: number | null;
  tool_valid: number;
  /** Standard deviations over seeds (only when seeds > 1). */
  std?: { domains: DomainScores; avg: number };
  prompt_sensitivity?: PromptSensitivity;
  curve?: MoiCurve;
  runs: MoiRunResult[];
}

export interface MoiStudyResults {
  configs: Record<string, MoiConfigResult>;
  settings: Record<string, unknown>;
}


/** Writes the study's data files; returns their paths and the items. */
export function writeMoiData(dir: string, o: { seed: number; nTrain: number; nTest: number }): { files: Record<MoiDomain, { train: string; test: string }>; data: ReturnType<typeof makeMoiData> } {
  const data = makeMoiData(o);
  mkdirSync(dir, { recursive: true });
  const files = {} as Record<MoiDomain, { train: string; test: string }>;
  for (const d of MOI_DOMAINS) {
    const train = join(dir, `${d}-train.jsonl`);
    const test = join(dir, `${d}-test.jsonl`);
    writeFileSync(train, data[d].train.map((it) => JSON.stringify(itemRecord(it))).join('\n') + '\n');
    writeFileSync(test, data[d].test.map((it) => JSON.stringify(itemRecord(it))).join('\n') + '\n');
    files[d] = { train, test };
  }
  return { files, data };
}

/** The train config of one configuration (train.yaml equivalent), validated by the library. */
export function moiTrainConfig(
  name: string, o: MoiStudyOptions, files: Record<MoiDomain, { train: string; test: string }>, seed: number, outDir: string, domains: readonly MoiDomain[] = MOI_DOMAINS,
): TrainConfig {
  const spec = MOI_STUDY_CONFIGS[name];
  if (!spec) throw new MixtuneError(`study moi: unknown configuration ${name} (known: ${Object.keys(MOI_STUDY_CONFIGS).join(', ')})`);
  const scale = spec.rowScale ?? 1;
  const raw = {
    model: o.model ?? 'stories260K',
    tokenizer: o.tokenizer,
    output_dir: outDir,
    seed,
    data: {
      datasets: domains.map((d) => ({ path: files[d].train, domain: d, ...(spec.domainPrompts ? {} : { system: DEFAULT_SYSTEM_PROMPT }) })),
      eval_datasets: domains.map((d) => ({ path: files[d].test, domain: d, system: DEFAULT_SYSTEM_PROMPT })),
      max_len: o.maxLen * scale,
      overflow: 'truncate',
      train_on: 'assistant',
      pack: true,
    },
    recipe: spec.kind === 'sequential'
      ? { name: 'sft' }
      : { name: 'moi', mix: spec.mix, mask: spec.mask, ...(spec.nMix !== undefined ? { n_mix: spec.nMix } : {}), eval_system: DEFAULT_SYSTEM_PROMPT, ...(spec.domainPrompts ? { system_prompts: STUDY_SYSTEM_PROMPTS } : {}) },
    training: {
      max_steps: o.steps, micro_batch_size: Math.max(1, Math.round(o.batch / scale)), grad_accum: 1, lr: o.lr, warmup_ratio: 0.05, schedule: 'cosine',
      max_grad_norm: 1, weight_decay: 0, min_lr_ratio: 0, eval_every: 0, save_every: 0, keep_last: 1, log_every: 1,
    },
  };
  if (raw.tokenizer === undefined) delete (raw as { tokenizer?: string }).tokenizer;
  return validateTrainConfig(raw, `study moi ${name}`);
}

/**
 * Sequential SFT rows: each domain's rows (packed within the domain) fill an equal share of the
 * step budget, in domain order, cycling that domain's rows in seeded reshuffled passes when the
 * share is larger than the domain. Exactly steps × batch rows, consumed in this order.
 */
export function sequentialRows(perDomain: Row[][], totalRows: number, seed: number): Row[] {
  const rng = new Rng((seed ^ 0x5e9) >>> 0);
  const out: Row[] = [];
  const n = perDomain.length;
  perDomain.forEach((rows, d) => {
    const share = Math.floor((totalRows * (d + 1)) / n) - Math.floor((totalRows * d) / n);
    let order: number[] = [];
    for (let k = 0; k < share; k++) {
      if (order.length === 0) order = rng.shuffle(rows.map((_, i) => i));
      out.push(rows[order.shift()!]!);
    }
  });
  return out;
}

interface EvalOutcome {
  domains: DomainScores;
  toolValid: number;
  responses: { domain: MoiDomain; key: string; prompt: string; response: string; correct: boolean }[];
}

/** Greedy answers to every test item under the default system prompt, checked per domain. */
export async function evaluateMoi(
  model: LlamaModel, tok: Tokenizer, template: ChatTemplate, tests: Record<MoiDomain, MoiItem[]>,
  o: { maxNewTokens: number; jobs: number; extraStopIds: number[]; progress?: boolean; label?: string; system?: Record<MoiDomain, string> },
): Promise<EvalOutcome> {
  const items = MOI_DOMAINS.flatMap((d) => tests[d]);
  const bar = startProgress(o.label ?? 'eval', items.length, 0, { ...(o.progress === false ? { bar: false, quiet: true } : {}) });
  const texts: string[] = [];
  for (const it of items) {
    const messages: ChatMessage[] = [{ role: 'system', content: o.system?.[it.domain] ?? DEFAULT_SYSTEM_PROMPT }, { role: 'user', content: it.prompt }];
    texts.push(generateAnswer(model, tok, template, messages, { maxNewTokens: o.maxNewTokens, extraStopIds: o.extraStopIds }).text);
    bar.tick(it.domain);
  }
  bar.stop();
  let toolValid = 0;
  let nTool = 0;
  const correct = await runPool(items, o.jobs, async (it, i) => {
    const text = texts[i]!;
    switch (it.check.kind) {
      case 'chat':
        return checkChat(text, it.check);
      case 'math':
        return checkMath(text, it.check);
      case 'tool': {
        const v = checkTool(text, it.check);
        nTool++;
        if (v.valid) toolValid++;
        return v.correct;
      }
      case 'code': {
        const c = it.check as CodeCheck;
        const r = await runPython(codeTestProgram(extractCode(text, c.entry), c), { timeoutS: 5, memoryMB: 512, ...(unsafeSandbox() ? { unsafeNoSandbox: true } : {}) });
        return r.passed;
      }
    }
  });
  const domains = {} as DomainScores;
  for (const d of MOI_DOMAINS) {
    const idx = items.map((it, i) => (it.domain === d ? i : -1)).filter((i) => i >= 0);
    domains[d] = idx.length ? idx.filter((i) => correct[i]).length / idx.length : 0;
  }
  return {
    domains, toolValid: nTool ? toolValid / nTool : 0,
    responses: items.map((it, i) => ({ domain: it.domain, key: it.key, prompt: it.prompt, response: texts[i]!, correct: correct[i]! })),
  };
}

function rowsStats(rows: Row[], maxLen: number): { rows: number; efficiency: number; trained: number } {
  let tokens = 0;
  let trained = 0;
  for (const r of rows) {
    tokens += r.length;
    for (const t of r.targets) if (t !== -100) trained++;
  }
  return { rows: rows.length, efficiency: rows.length ? tokens / (rows.length * maxLen) : 0, trained };
}

interface RunExtras {
  key: string;
  /** Held-out prompt evaluations, each with the prompts it used (a rerun with another K reuses them). */
  prompts: { system: Record<MoiDomain, string>; domains: DomainScores }[];
  curve?: { every: number; points: CurvePoint[] };
}

const EXTRAS_FILE = 'extra-evals.json';
const FINAL_WEIGHTS = 'final.safetensors';

function readExtras(dir: string, key: string): RunExtras {
  try {
    const r = JSON.parse(readFileSync(join(dir, EXTRAS_FILE), 'utf8')) as RunExtras;
    if (r.key === key && Array.isArray(r.prompts)) return r;
  } catch {
    // missing or torn: evaluated again
  }
  return { key, prompts: [] };
}

function loadWeights(file: string, trainable: Map<string, { readonly shape: readonly number[]; readonly data: Float32Array }>): void {
  const w = readSafetensors(file);
  for (const [name, t] of trainable) {
    const info = w.tensors.get(name);
    if (!info || info.shape.join(',') !== t.shape.join(',')) throw new MixtuneError(`${file}: tensor ${name} missing or of another shape`);
    t.data.set(w.read(name));
  }
}

/** What a run still lacks of the extra evaluations asked for. */
function missingExtras(ex: RunExtras, wantPrompts: Record<MoiDomain, string>[], curveEvery: number): { prompts: Record<MoiDomain, string>[]; curve: boolean } {
  const have = new Set(ex.prompts.map((p) => JSON.stringify(p.system)));
  return { prompts: wantPrompts.filter((p) => !have.has(JSON.stringify(p))), curve: curveEvery > 0 && ex.curve?.every !== curveEvery };
}

/** The run result with its extra evaluations (the asked-for prompts in order, the curve). */
function withExtras(res: MoiRunResult, ex: RunExtras, wantPrompts: Record<MoiDomain, string>[], curveEvery: number): MoiRunResult {
  const out: MoiRunResult = { ...res };
  delete out.prompt_domains;
  delete out.curve;
  if (wantPrompts.length) {
    out.prompt_domains = wantPrompts.map((p) => ex.prompts.find((e) => JSON.stringify(e.system) === JSON.stringify(p))!.domains);
  }
  if (curveEvery > 0 && ex.curve) out.curve = [...ex.curve.points, { step: res.losses.length, domains: res.domains, avg: res.avg }];
  return out;
}

/**
 * The held-out prompt evaluations (on the weights the model holds: the final ones) and the learning
 * curve (each checkpoint-N of the run folder, loaded in turn: do this last) a run lacks; saved in
 * DIR/extra-evals.json after each evaluation.
 */
async function runExtras(
  name: string, seed: number, runDir: string, ex: RunExtras, miss: { prompts: Record<MoiDomain, string>[]; curve: boolean }, curveEvery: number,
  model: LlamaModel, tok: Tokenizer, template: ChatTemplate, tests: Record<MoiDomain, MoiItem[]>, extraStopIds: number[], o: MoiStudyOptions,
): Promise<void> {
  const log = o.log ?? ((s: string) => void process.stderr.write(s + '\n'));
  const common = { maxNewTokens: o.maxNewTokens, jobs: o.jobs, extraStopIds, ...(o.progress === false ? { progress: false } : {}) };
  for (const system of miss.prompts) {
    const k = ex.prompts.length;
    const ev = await evaluateMoi(model, tok, template, tests, { ...common, system, label: `eval ${name} held-out prompt` });
    ex.prompts.push({ system, domains: ev.domains });
    writeJsonlAtomic(join(runDir, `responses-prompt-${k}.jsonl`), ev.responses);
    writeJsonAtomic(join(runDir, EXTRAS_FILE), ex);
    log(`${name} seed ${seed}: held-out prompts (${system.chat} / ...): avg ${(mean(MOI_DOMAINS.map((d) => ev.domains[d])) * 100).toFixed(1)}%`);
  }
  if (miss.curve) {
    const trainable = trainableParams(model);
    const cps = listCheckpoints(runDir).filter((c) => c.step % curveEvery === 0);
    const points: CurvePoint[] = [];
    for (const c of cps) {
      loadWeights(join(c.path, 'model.safetensors'), trainable);
      model.bf16?.invalidate();
      const ev = await evaluateMoi(model, tok, template, tests, { ...common, label: `eval ${name} step ${c.step}` });
      points.push({ step: c.step, domains: ev.domains, avg: r4(mean(MOI_DOMAINS.map((d) => ev.domains[d]))) });
      log(`${name} seed ${seed}: step ${c.step}: ${MOI_DOMAINS.map((d) => `${d} ${(ev.domains[d] * 100).toFixed(1)}%`).join(', ')}`);
    }
    ex.curve = { every: curveEvery, points };
    writeJsonAtomic(join(runDir, EXTRAS_FILE), ex);
  }
}

/** One configuration with one seed: prepare, train, evaluate (and the extra evaluations asked for). */
async function runOne(name: string, seed: number, o: MoiStudyOptions, files: Record<MoiDomain, { train: string; test: string }>, tests: Record<MoiDomain, MoiItem[]>): Promise<MoiRunResult> {
  const log = o.log ?? ((s: string) => void process.stderr.write(s + '\n'));
  const runDir = join(o.out, 'runs', `${name}-s${seed}`);
  const key = runKey({
    study: 'moi', name, seed, spec: MOI_STUDY_CONFIGS[name], steps: o.steps, nTrain: o.nTrain, nTest: o.nTest, batch: o.batch, maxLen: o.maxLen, lr: o.lr,
    dataSeed: o.dataSeed, maxNewTokens: o.maxNewTokens, model: o.model ?? null, tokenizer: o.tokenizer ?? null,
  });
  const wantPrompts = Array.from({ length: o.evalPrompts }, (_, k) => heldoutPrompt(k));
  const curveEvery = o.curveEvery > 0 && o.curveConfigs.includes(name) && o.curveEvery < o.steps ? o.curveEvery : 0;
  const done = o.fresh ? null : readRunResult<MoiRunResult>(runDir, key);
  if (done) {
    const ex = readExtras(runDir, key);
    const miss = missingExtras(ex, wantPrompts, curveEvery);
    const canCurve = !miss.curve || listCheckpoints(runDir).some((c) => c.step === curveEvery);
    if (miss.prompts.length === 0 && !miss.curve) {
      log(`${name} seed ${seed}: reusing ${join(runDir, 'result.json')} (avg ${(done.avg * 100).toFixed(1)}%)`);
      return withExtras(done, ex, wantPrompts, curveEvery);
    }
    if (existsSync(join(runDir, FINAL_WEIGHTS)) && canCurve) {
      // evaluate the saved weights again, no retraining
      log(`${name} seed ${seed}: reusing ${join(runDir, 'result.json')}; evaluating its saved weights (${miss.prompts.length} held-out prompt(s)${miss.curve ? ', learning curve' : ''})`);
      const cfg = moiTrainConfig(name, o, files, seed, runDir);
      const { model, format } = loadModel(cfg.model, nativeKernels());
      const tok = loadTokenizer(cfg.tokenizer, cfg.model, model.config.vocabSize);
      const { template } = encoderFor(tok, cfg);
      loadWeights(join(runDir, FINAL_WEIGHTS), trainableParams(model));
      model.bf16?.invalidate();
      await runExtras(name, seed, runDir, ex, miss, curveEvery, model, tok, template, tests, format === 'llama2c' && tok.bosId >= 0 ? [tok.bosId] : [], o);
      return withExtras(done, ex, wantPrompts, curveEvery);
    }
    log(`${name} seed ${seed}: ${join(runDir, 'result.json')} has no saved weights${canCurve ? '' : ' / checkpoints'} for the extra evaluations: training again`);
  }
  rmSync(runDir, { recursive: true, force: true });
  mkdirSync(runDir, { recursive: true });
  const cfg = moiTrainConfig(name, o, files, seed, runDir);
  const { model, format } = loadModel(cfg.model, nativeKernels());
  const tok = loadTokenizer(cfg.tokenizer, cfg.model, model.config.vocabSize);
  const { template, encode } = encoderFor(tok, cfg);
  const spec = MOI_STUDY_CONFIGS[name]!;
  let prep: Prepared = prepareRows(cfg, encode);
  let rows = prep.train;
  let epochRows = rows;
  if (spec.kind === 'sequential') {
    const perDomain = MOI_DOMAINS.map((d) => prepareRows(moiTrainConfig(name, o, files, seed, runDir, [d]), encode).train);
    epochRows = perDomain.flat();
    rows = sequentialRows(perDomain, o.steps * o.batch, seed);
  }
  const st = rowsStats(epochRows, cfg.data.max_len);
  const trainer = new Trainer(model, trainableParams(model), rows, prep.eval, {
    ...trainerOptionsOf(cfg, {
      totalSteps: o.steps, padId: tok.padId,
      // Sequential SFT must see the rows in order: `rows` holds exactly steps × batch rows in the
      // wanted order, so one unshuffled epoch is the whole run.
      ...(spec.kind === 'sequential' ? { shuffle: false } : {}),
      // Without a bar the Trainer logs every step; keep every 50th.
      ...(o.progress === false ? { progress: false, log: () => {} } : { log: (s: string) => { const m = /^step (\d+)\//.exec(s); if (!m || Number(m[1]) % 50 === 0) log(`${name}: ${s}`); } }),
    }),
    // learning curves: a checkpoint every N steps (checkpoints do not change the training)
    ...(curveEvery > 0 ? { saveEvery: curveEvery, keepLast: Math.ceil(o.steps / curveEvery) + 1 } : {}),
  });
  prep = { ...prep, train: [] }; // let the packed rows of other layouts go
  const tr = trainer.run();
  // the final weights, so that later held-out prompt evaluations need no retraining
  const weights = new Map<string, TensorToWrite>();
  for (const [n, t] of trainableParams(model)) weights.set(n, { shape: t.shape, data: t.data });
  writeSafetensors(join(runDir, FINAL_WEIGHTS), weights, { metadata: { format: 'pt', step: String(o.steps) } });
  const t1 = performance.now();
  const extraStopIds = format === 'llama2c' && tok.bosId >= 0 ? [tok.bosId] : [];
  const ev = await evaluateMoi(model, tok, template, tests, {
    maxNewTokens: o.maxNewTokens, jobs: o.jobs, extraStopIds,
    ...(o.progress === false ? { progress: false } : {}), label: `eval ${name}`,
  });
  const evalSeconds = (performance.now() - t1) / 1000;
  writeJsonlAtomic(join(runDir, 'responses.jsonl'), ev.responses);
  const avg = mean(MOI_DOMAINS.map((d) => ev.domains[d]));
  const res: MoiRunResult = {
    seed, domains: ev.domains, avg: r4(avg), losses: tr.losses.map(r4), eval_loss: tr.evalLoss === null ? null : r4(tr.evalLoss),
    tool_valid: r4(ev.toolValid), tokens: tr.tokens, trained_tokens_per_epoch: st.trained, rows: st.rows,
    packing_efficiency: r4(st.efficiency), train_seconds: Math.round(tr.seconds * 10) / 10, eval_seconds: Math.round(evalSeconds * 10) / 10,
  };
  writeRunResult(runDir, key, res);
  log(`${name} seed ${seed}: ${MOI_DOMAINS.map((d) => `${d} ${(ev.domains[d] * 100).toFixed(1)}%`).join(', ')}, avg ${(avg * 100).toFixed(1)}%; ` +
    `final loss ${tr.finalLoss.toFixed(3)}, test loss ${tr.evalLoss?.toFixed(3)}; train ${res.train_seconds}s, eval ${res.eval_seconds}s`);
  const ex: RunExtras = { key, prompts: [] };
  await runExtras(name, seed, runDir, ex, missingExtras(ex, wantPrompts, curveEvery), curveEvery, model, tok, template, tests, extraStopIds, o);
  return withExtras(res, ex, wantPrompts, curveEvery);
}

/** MIXTUNE_UNSAFE_NO_SANDBOX=1: the code domain's checks run without bubblewrap (weak isolation). */
function unsafeSandbox(): boolean {
  return process.env.MIXTUNE_UNSAFE_NO_SANDBOX === '1';
}

/** Aggregates runs over seeds. */
export function aggregate(description: string, runs: MoiRunResult[], prompts: Record<MoiDomain, string>[] = []): MoiConfigResult {
  const domains = {} as DomainScores;
  const sd = {} as DomainScores;
  for (const d of MOI_DOMAINS) {
    domains[d] = r4(mean(runs.map((r) => r.domains[d])));
    sd[d] = r4(std(runs.map((r) => r.domains[d])));
  }
  const losses = meanCurve(runs.map((r) => r.losses)).map(r4);
  const evals = runs.map((r) => r.eval_loss).filter((x): x is number => x !== null);
  return {
    description, domains, avg: r4(mean(runs.map((r) => r.avg))), losses,
    eval_loss: evals.length ? r4(mean(evals)) : null, tool_valid: r4(mean(runs.map((r) => r.tool_valid))),
    ...(runs.length > 1 ? { std: { domains: sd, avg: r4(std(runs.map((r) => r.avg))) } } : {}),
    ...(prompts.length && runs.every((r) => r.prompt_domains?.length === prompts.length) ? { prompt_sensitivity: promptSensitivity(runs, prompts) } : {}),
    ...(runs.length && runs.every((r) => r.curve?.length) ? { curve: meanCurveOf(runs) } : {}),
    runs,
  };
}

/** Accuracy under each held-out prompt (over domains and seeds), its mean and spread across prompts. */
export function promptSensitivity(runs: MoiRunResult[], prompts: Record<MoiDomain, string>[]): PromptSensitivity {
  const avgOf = (r: MoiRunResult, k: number): number => mean(MOI_DOMAINS.map((d) => r.prompt_domains![k]![d]));
  const perPrompt = prompts.map((_, k) => mean(runs.map((r) => avgOf(r, k))));
  const domains = Object.fromEntries(MOI_DOMAINS.map((d) => [d, r4(mean(runs.flatMap((r) => r.prompt_domains!.map((p) => p[d]))))])) as DomainScores;
  return {
    prompts, avg_per_prompt: perPrompt.map(r4), mean: r4(mean(perPrompt)), std: r4(std(perPrompt)), domains,
    std_seeds: r4(std(runs.map((r) => mean(prompts.map((_, k) => avgOf(r, k)))))),
  };
}

/** The learning curve averaged over seeds (the steps all runs share). */
export function meanCurveOf(runs: MoiRunResult[]): MoiCurve {
  const steps = runs[0]!.curve!.map((p) => p.step).filter((s) => runs.every((r) => r.curve!.some((p) => p.step === s)));
  const at = (r: MoiRunResult, s: number): CurvePoint => r.curve!.find((p) => p.step === s)!;
  return {
    steps,
    domains: Object.fromEntries(MOI_DOMAINS.map((d) => [d, steps.map((s) => r4(mean(runs.map((r) => at(r, s).domains[d]))))])) as Record<MoiDomain, number[]>,
    avg: steps.map((s) => r4(mean(runs.map((r) => at(r, s).avg)))),
    std_avg: steps.map((s) => r4(std(runs.map((r) => at(r, s).avg)))),
  };
}

/** Held-out system prompts: accuracy under the default prompt vs under each held-out prompt (markdown). */
export function moiPromptTable(res: MoiStudyResults): string {
  const withPs = Object.entries(res.configs).filter(([, c]) => c.prompt_sensitivity);
  if (!withPs.length) return '';
  const k = withPs[0]![1].prompt_sensitivity!.prompts.length;
  const lines = [
    `| config | default prompt avg | held-out prompts: mean ± std across ${k} prompts | ${Array.from({ length: k }, (_, i) => `p${i + 1}`).join(' | ')} | ${MOI_DOMAINS.map((d) => `${d} (held-out)`).join(' | ')} | drop |`,
    `|---|---:|---:|${Array.from({ length: k }, () => '---:').join('|')}|${MOI_DOMAINS.map(() => '---:').join('|')}|---:|`,
  ];
  for (const [name, c] of withPs) {
    const p = c.prompt_sensitivity!;
    lines.push(`| ${name} | ${pct(c.avg, c.std?.avg)} | ${pct(p.mean, p.std)} | ${p.avg_per_prompt.map((x) => pct(x)).join(' | ')} | ${MOI_DOMAINS.map((d) => pct(p.domains[d])).join(' | ')} | ${((p.mean - c.avg) * 100).toFixed(1)} |`);
  }
  return lines.join('\n');
}

/** Learning curves: mean test accuracy (over seeds) at each evaluated step (markdown). */
export function moiCurveTable(res: MoiStudyResults): string {
  const withC = Object.entries(res.configs).filter(([, c]) => c.curve);
  if (!withC.length) return '';
  const lines = [`| config | step | ${MOI_DOMAINS.join(' | ')} | avg |`, `|---|---:|${MOI_DOMAINS.map(() => '---:').join('|')}|---:|`];
  for (const [name, c] of withC) {
    c.curve!.steps.forEach((s, i) => {
      lines.push(`| ${name} | ${s} | ${MOI_DOMAINS.map((d) => pct(c.curve!.domains[d][i]!)).join(' | ')} | ${pct(c.curve!.avg[i]!, res.settings.seeds as number > 1 ? c.curve!.std_avg[i] : undefined)} |`);
    });
  }
  return lines.join('\n');
}

/** The results table (markdown). */
export function moiTable(res: MoiStudyResults): string {
  const lines = [
    `| config | ${MOI_DOMAINS.join(' | ')} | avg | tool JSON valid | test loss |`,
    `|---|${MOI_DOMAINS.map(() => '---:').join('|')}|---:|---:|---:|`,
  ];
  for (const [name, c] of Object.entries(res.configs)) {
    lines.push(`| ${name} | ${MOI_DOMAINS.map((d) => pct(c.domains[d], c.std?.domains[d])).join(' | ')} | ${pct(c.avg, c.std?.avg)} | ${pct(c.tool_valid)} | ${c.eval_loss?.toFixed(3) ?? '-'} |`);
  }
  return lines.join('\n');
}

export function moiPlot(res: MoiStudyResults): string {
  const names = Object.keys(res.configs);
  const groups = [...MOI_DOMAINS, 'avg'];
  const steps = Math.max(0, ...names.map((n) => res.configs[n]!.losses.length));
  return lossAccuracySvg({
    title: `MoI study: stories260K, ${steps} steps, ${String(res.settings.seeds)} seed(s) (test: default system prompt)`,
    losses: names.map((n) => ({ name: n, values: res.configs[n]!.losses })),
    smooth: Math.max(1, Math.round(steps / 20)),
    logY: true,
    groups,
    bars: names.map((n) => {
      const c = res.configs[n]!;
      return {
        name: n,
        values: groups.map((g) => (g === 'avg' ? c.avg : c.domains[g as MoiDomain])),
        ...(c.std ? { err: groups.map((g) => (g === 'avg' ? c.std!.avg : c.std!.domains[g as MoiDomain])) } : {}),
      };
    }),
    barTitle: names.some((n) => res.configs[n]!.std) ? 'test accuracy per domain (mean ± std over seeds)' : 'test accuracy per domain',
  });
}

/** Learning curves: test accuracy vs step, one panel per domain and one for the average. */
export function moiCurvePlot(res: MoiStudyResults): string {
  const withC = Object.entries(res.configs).filter(([, c]) => c.curve);
  const groups = [...MOI_DOMAINS, 'avg'] as const;
  return curvePanelsSvg({
    title: `MoI study: test accuracy (default prompt) vs training step, mean over ${String(res.settings.seeds)} seed(s)`,
    xLabel: 'optimizer step', yLabel: 'accuracy %',
    panels: groups.map((g) => ({
      title: g,
      x: withC[0]?.[1].curve!.steps ?? [],
      series: withC.map(([name, c]) => ({
        name, values: g === 'avg' ? c.curve!.avg : c.curve!.domains[g],
        ...(g === 'avg' && (res.settings.seeds as number) > 1 ? { err: c.curve!.std_avg } : {}),
      })),
    })),
  });
}

/** Runs the whole study; writes OUT/results.json, OUT/moi.svg and OUT/table.md. */
export async function runMoiStudy(opts: Partial<MoiStudyOptions> & { out: string }): Promise<MoiStudyResults> {
  const o: MoiStudyOptions = { ...MOI_STUDY_DEFAULTS, ...opts, out: resolve(opts.out) };
  const log = o.log ?? ((s: string) => void process.stderr.write(s + '\n'));
  if (!Number.isInteger(o.evalPrompts) || o.evalPrompts < 0 || o.evalPrompts > MAX_EVAL_PROMPTS) throw new MixtuneError(`--eval-prompts: 0..${MAX_EVAL_PROMPTS} held-out prompts per domain, got ${o.evalPrompts}`);
  if (!Number.isInteger(o.curveEvery) || o.curveEvery < 0) throw new MixtuneError(`--curve-every: a step count ≥ 0, got ${o.curveEvery}`);
  for (const c of [...o.configs, ...o.curveConfigs]) if (!MOI_STUDY_CONFIGS[c]) throw new MixtuneError(`--configs: unknown configuration ${c} (known: ${Object.keys(MOI_STUDY_CONFIGS).join(', ')})`);
  if (o.configs.length === 0) throw new MixtuneError('--configs: no configuration given');
  probeIsolation(unsafeSandbox() ? { unsafeNoSandbox: true } : {}); // python3 and the sandbox must work for the code checks; fail before training
  const { modelPath, tokPath } = demoModelPaths(o.model, o.tokenizer);
  preflightDemo(modelPath, tokPath, o.out); // and the model, its tokenizer and --out, before any data
  const t0 = performance.now();
  const { files, data } = writeMoiData(join(o.out, 'data'), { seed: o.dataSeed, nTrain: o.nTrain, nTest: o.nTest });
  const counts = Object.fromEntries(MOI_DOMAINS.map((d) => [d, { train: data[d].train.length, test: data[d].test.length }]));
  log(`study moi: ${o.configs.length} configs × ${o.seeds} seed(s), ${o.steps} steps of ${o.batch} rows ≤ ${o.maxLen} tokens; data ${MOI_DOMAINS.map((d) => `${d} ${counts[d]!.train}/${counts[d]!.test}`).join(', ')} (train/test) in ${join(o.out, 'data')}`);
  const tests = Object.fromEntries(MOI_DOMAINS.map((d) => [d, data[d].test])) as Record<MoiDomain, MoiItem[]>;
  const runs: Record<string, MoiRunResult[]> = {};
  for (let s = 0; s < o.seeds; s++) {
    for (const name of o.configs) {
      (runs[name] ??= []).push(await runOne(name, s, o, files, tests));
    }
  }
  const results: MoiStudyResults = {
    configs: Object.fromEntries(o.configs.map((n) => [n, aggregate(MOI_STUDY_CONFIGS[n]!.description, runs[n]!, Array.from({ length: o.evalPrompts }, (_, k) => heldoutPrompt(k)))])),
    settings: {
      model: o.model ?? 'stories260K (embedded, full fine-tuning)',
      steps: o.steps, rows_per_step: o.batch, max_len: o.maxLen, lr: o.lr, schedule: 'cosine, 5% warmup', seeds: o.seeds,
      data_seed: o.dataSeed, n_train: o.nTrain, n_test: o.nTest, examples: counts, eval_system: DEFAULT_SYSTEM_PROMPT,
      max_new_tokens: o.maxNewTokens, domain_system_prompts: STUDY_SYSTEM_PROMPTS,
      eval_prompts: o.evalPrompts, heldout_system_prompts: Array.from({ length: o.evalPrompts }, (_, k) => heldoutPrompt(k)),
      curve_every: o.curveEvery, ...(o.curveEvery > 0 ? { curve_configs: o.curveConfigs.filter((c) => o.configs.includes(c)) } : {}),
      configs: Object.fromEntries(o.configs.map((n) => [n, MOI_STUDY_CONFIGS[n]!.description])),
      seconds: Math.round((performance.now() - t0) / 100) / 10,
    },
  };
  writeJsonAtomic(join(o.out, 'results.json'), results);
  writeTextAtomic(join(o.out, 'moi.svg'), moiPlot(results));
  const table = [moiTable(results), moiPromptTable(results), moiCurveTable(results)].filter((t) => t).join('\n\n');
  writeTextAtomic(join(o.out, 'table.md'), table + '\n');
  if (Object.values(results.configs).some((c) => c.curve)) writeTextAtomic(join(o.out, 'moi-curves.svg'), moiCurvePlot(results));
  return results;
}
