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
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
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
  MOI_DOMAINS, STUDY_SYSTEM_PROMPTS, checkChat, checkMath, checkTool, codeTestProgram, itemRecord, makeMoiData,
  type CodeCheck, type MoiDomain, type MoiItem,
} from './moi-data.js';
import { lossAccuracySvg } from '../util/plot-svg.js';
import { readRunResult, runKey, writeRunResult } from './runs.js';
import { mean, meanCurve, pct, r4, std } from './stats.js';

export interface MoiConfigSpec {
  description: string;
  kind: 'sequential' | 'moi';
  mix?: 'balanced' | 'concat';
  mask?: 'chunk' | 'isolated' | 'full';
  /** Train with per-domain system prompts (else every example has the default prompt). */
  domainPrompts: boolean;
}

export const MOI_STUDY_CONFIGS: Record<string, MoiConfigSpec> = {
  sequential: { description: 'SFT, domains one after another', kind: 'sequential', domainPrompts: false },
  packed: { description: 'moi recipe, mix concat, mask full, default prompt', kind: 'moi', mix: 'concat', mask: 'full', domainPrompts: false },
  balanced: { description: 'moi recipe, mix balanced, mask full, default prompt', kind: 'moi', mix: 'balanced', mask: 'full', domainPrompts: false },
  moi: { description: 'balanced + domain prompts + chunk mask', kind: 'moi', mix: 'balanced', mask: 'chunk', domainPrompts: true },
  'moi-isolated': { description: 'as moi, mask isolated', kind: 'moi', mix: 'balanced', mask: 'isolated', domainPrompts: true },
  'moi-full': { description: 'as moi, mask full', kind: 'moi', mix: 'balanced', mask: 'full', domainPrompts: true },
};

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
  log?: (line: string) => void;
}

export const MOI_STUDY_DEFAULTS: Omit<MoiStudyOptions, 'out'> = {
  steps: 400, seeds: 1, nTrain: 256, nTest: 50, configs: Object.keys(MOI_STUDY_CONFIGS),
  batch: 2, maxLen: 1024, lr: 3e-3, dataSeed: 1234, maxNewTokens: 48, jobs: 2,
};

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
  const raw = {
    model: o.model ?? 'stories260K',
    tokenizer: o.tokenizer,
    output_dir: outDir,
    seed,
    data: {
      datasets: domains.map((d) => ({ path: files[d].train, domain: d, ...(spec.domainPrompts ? {} : { system: DEFAULT_SYSTEM_PROMPT }) })),
      eval_datasets: domains.map((d) => ({ path: files[d].test, domain: d, system: DEFAULT_SYSTEM_PROMPT })),
      max_len: o.maxLen,
      overflow: 'truncate',
      train_on: 'assistant',
      pack: true,
    },
    recipe: spec.kind === 'sequential'
      ? { name: 'sft' }
      : { name: 'moi', mix: spec.mix, mask: spec.mask, eval_system: DEFAULT_SYSTEM_PROMPT, ...(spec.domainPrompts ? { system_prompts: STUDY_SYSTEM_PROMPTS } : {}) },
    training: {
      max_steps: o.steps, micro_batch_size: o.batch, grad_accum: 1, lr: o.lr, warmup_ratio: 0.05, schedule: 'cosine',
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
  o: { maxNewTokens: number; jobs: number; extraStopIds: number[]; progress?: boolean; label?: string },
): Promise<EvalOutcome> {
  const items = MOI_DOMAINS.flatMap((d) => tests[d]);
  const bar = startProgress(o.label ?? 'eval', items.length, 0, { ...(o.progress === false ? { bar: false, quiet: true } : {}) });
  const texts: string[] = [];
  for (const it of items) {
    const messages: ChatMessage[] = [{ role: 'system', content: DEFAULT_SYSTEM_PROMPT }, { role: 'user', content: it.prompt }];
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

/** One configuration with one seed: prepare, train, evaluate. */
async function runOne(name: string, seed: number, o: MoiStudyOptions, files: Record<MoiDomain, { train: string; test: string }>, tests: Record<MoiDomain, MoiItem[]>): Promise<MoiRunResult> {
  const log = o.log ?? ((s: string) => void process.stderr.write(s + '\n'));
  const runDir = join(o.out, 'runs', `${name}-s${seed}`);
  const key = runKey({
    study: 'moi', name, seed, spec: MOI_STUDY_CONFIGS[name], steps: o.steps, nTrain: o.nTrain, nTest: o.nTest, batch: o.batch, maxLen: o.maxLen, lr: o.lr,
    dataSeed: o.dataSeed, maxNewTokens: o.maxNewTokens, model: o.model ?? null, tokenizer: o.tokenizer ?? null,
  });
  const done = o.fresh ? null : readRunResult<MoiRunResult>(runDir, key);
  if (done) {
    log(`${name} seed ${seed}: reusing ${join(runDir, 'result.json')} (avg ${(done.avg * 100).toFixed(1)}%)`);
    return done;
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
  const st = rowsStats(epochRows, o.maxLen);
  const trainer = new Trainer(model, trainableParams(model), rows, prep.eval, trainerOptionsOf(cfg, {
    totalSteps: o.steps, padId: tok.padId,
    // Sequential SFT must see the rows in order: `rows` holds exactly steps × batch rows in the
    // wanted order, so one unshuffled epoch is the whole run.
    ...(spec.kind === 'sequential' ? { shuffle: false } : {}),
    // Without a bar the Trainer logs every step; keep every 50th.
    ...(o.progress === false ? { progress: false, log: () => {} } : { log: (s: string) => { const m = /^step (\d+)\//.exec(s); if (!m || Number(m[1]) % 50 === 0) log(`${name}: ${s}`); } }),
  }));
  prep = { ...prep, train: [] }; // let the packed rows of other layouts go
  const tr = trainer.run();
  const t1 = performance.now();
  const ev = await evaluateMoi(model, tok, template, tests, {
    maxNewTokens: o.maxNewTokens, jobs: o.jobs, extraStopIds: format === 'llama2c' && tok.bosId >= 0 ? [tok.bosId] : [],
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
  return res;
}

/** MIXTUNE_UNSAFE_NO_SANDBOX=1: the code domain's checks run without bubblewrap (weak isolation). */
function unsafeSandbox(): boolean {
  return process.env.MIXTUNE_UNSAFE_NO_SANDBOX === '1';
}

/** Aggregates runs over seeds. */
export function aggregate(description: string, runs: MoiRunResult[]): MoiConfigResult {
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
    runs,
  };
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

/** Runs the whole study; writes OUT/results.json, OUT/moi.svg and OUT/table.md. */
export async function runMoiStudy(opts: Partial<MoiStudyOptions> & { out: string }): Promise<MoiStudyResults> {
  const o: MoiStudyOptions = { ...MOI_STUDY_DEFAULTS, ...opts, out: resolve(opts.out) };
  const log = o.log ?? ((s: string) => void process.stderr.write(s + '\n'));
  for (const c of o.configs) if (!MOI_STUDY_CONFIGS[c]) throw new MixtuneError(`--configs: unknown configuration ${c} (known: ${Object.keys(MOI_STUDY_CONFIGS).join(', ')})`);
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
    configs: Object.fromEntries(o.configs.map((n) => [n, aggregate(MOI_STUDY_CONFIGS[n]!.description, runs[n]!)])),
    settings: {
      model: o.model ?? 'stories260K (embedded, full fine-tuning)',
      steps: o.steps, rows_per_step: o.batch, max_len: o.maxLen, lr: o.lr, schedule: 'cosine, 5% warmup', seeds: o.seeds,
      data_seed: o.dataSeed, n_train: o.nTrain, n_test: o.nTest, examples: counts, eval_system: DEFAULT_SYSTEM_PROMPT,
      max_new_tokens: o.maxNewTokens, domain_system_prompts: STUDY_SYSTEM_PROMPTS,
      configs: Object.fromEntries(o.configs.map((n) => [n, MOI_STUDY_CONFIGS[n]!.description])),
      seconds: Math.round((performance.now() - t0) / 100) / 10,
    },
  };
  writeJsonAtomic(join(o.out, 'results.json'), results);
  writeTextAtomic(join(o.out, 'moi.svg'), moiPlot(results));
  const table = moiTable(results);
  writeTextAtomic(join(o.out, 'table.md'), table + '\n');
  return results;
}
