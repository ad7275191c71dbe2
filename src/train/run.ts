// A whole training run from a validated config — what `mixtune train` does: check every path,
// load the model and tokenizer, prepare packed rows, train (optionally with LoRA) with
// checkpoints, export the final model as an HF folder, and write summary.json.
import { join } from 'node:path';
import { nativeKernels } from '../tensor/native.js';
import { loadModel, loadTokenizer, modelPathOf } from '../io/load.js';
import { saveHfModel } from '../io/hf-model.js';
import { configToHf } from '../io/hf-config.js';
import { tokenizerFilesWriter } from '../io/tokenizer-json.js';
import { saveLoraAdapter } from '../io/lora-adapter.js';
import { applyLora, loraRngState, mergeLora, setLoraRngState, trainableParams } from '../model/lora.js';
import type { LlamaModel } from '../model/llama.js';
import type { TrainConfig } from './config.js';
import { loadPrepared, prepareRows, type PrepareStats } from './prepare.js';
import { Trainer } from './trainer.js';
import { resolveResume, ADAPTER_FILE, WEIGHTS_FILE } from './checkpoint.js';
import { claimRunDir, lockRunDir, removeStaleTemporaries, writeRunRecord, type RunRecord } from './run-dir.js';
import { MixtuneError } from '../util/errors.js';
import { rmSync, statSync } from 'node:fs';
import { checkContextLength, encoderFor, preflightTrain, resolveLearningRate, totalStepsOf, trainerOptionsOf, trainMemoryEstimate } from './setup.js';
import { checkMemory, describeEstimate, formatBytes, TRAIN_MEMORY_FIXES } from './memory.js';
import { writeJsonAtomic } from '../util/fs.js';
import { fsdpProblem, trainWithTorch, type TorchEngineOptions } from '../torch/engine.js';
import { findTorchPython } from '../torch/python.js';
import { readSafetensors } from '../io/safetensors.js';
import { Bf16Weights } from '../tensor/bf16-weights.js';
import type { TrainResult } from './trainer.js';
import type { Tensor } from '../tensor/tensor.js';

export interface TrainRunOptions {
  /** Continue from the newest complete checkpoint in output_dir ('latest') or from this folder. */
  resume?: string;
  /** Rows saved by `mixtune prepare --out` (overrides data.prepared). */
  prepared?: string;
  /** Stop with a checkpoint after this optimizer step. */
  stopAfter?: number;
  /** Train even when the memory estimate exceeds what is available. */
  force?: boolean;
  /** Replace a previous run in output_dir (finished or not). */
  overwrite?: boolean;
  /** native (default): this process's kernels; torch: python/mixtune_torch (torchrun for several processes). */
  engine?: 'native' | 'torch';
  torch?: TorchEngineOptions;
  /** How to resume, for messages ("mixtune train --config x.yaml"). */
  command?: string;
  progress?: boolean;
  log?: (line: string) => void;
}

export interface TrainSummary {
  steps: number;
  total_steps: number;
  tokens: number;
  seconds: number;
  tokens_per_s: number;
  final_loss: number;
  eval_loss: number | null;
  peak_rss_mb: number;
  /** The peak learning rate used (the config's, or the default for what was trained). */
  lr: number;
  wall_seconds: number;
  data: Record<string, unknown>;
  resumed_from: string | null;
  /** The exported HF folder (final/), or null when the run stopped early. */
  exported: string | null;
  /** The run was stopped by Ctrl-C / SIGTERM (a checkpoint was written; resume with --resume). */
  interrupted: boolean;
}

/** One line describing the prepared data. */
export function describePrepared(s: PrepareStats, maxLen: number): string {
  return `data: recipe ${s.recipe}; ${Object.entries(s.examples).map(([d, n]) => `${d}=${n}`).join(' ')} examples, ${s.evalExamples} eval; ` +
    `${s.train.rows} rows of <= ${maxLen} tokens (packing efficiency ${(s.train.efficiency * 100).toFixed(1)}%), ` +
    `${s.train.targetTokens} trained tokens; truncated ${s.train.truncated}, dropped ${s.train.dropped}, skipped ${s.skippedBad}, no-target ${s.noTargets}`;
}

/**
 * The whole run. Owns output_dir while it runs (lock; see run-dir.ts); Ctrl-C / SIGTERM stop it
 * after the current step with a checkpoint (a second one aborts at once); the final state is kept
 * as a checkpoint until final/ is written, so a failed export loses nothing.
 */
export async function trainFromConfig(cfg: TrainConfig, o: TrainRunOptions = {}): Promise<TrainSummary> {
  const log = o.log ?? ((s: string) => void process.stderr.write(s + '\n'));
  const t0 = performance.now();
  if (o.engine === 'torch') {
    if (cfg.lora?.base_dtype === 'bf16') throw new MixtuneError('lora.base_dtype: bf16 runs on the native engine only (the torch engine keeps the base in fp32; on CUDA it autocasts to bf16)');
    if (cfg.training.bf16_ops) throw new MixtuneError('training.bf16_ops: the native engine only (the torch engine autocasts every product to bf16 on CUDA)');
    o = { ...o, torch: { nproc: 1, ...o.torch, found: findTorchPython(o.torch?.python) } };
    // the torch engine's bf16 is CUDA autocast: on CPUs it would train fp32 without saying so
    if (cfg.training.precision === 'bf16' && (o.torch?.cpu || !o.torch?.found?.cuda)) {
      throw new MixtuneError(`training.precision: bf16 with --engine torch needs CUDA GPUs (${o.torch?.cpu ? '--cpu was given' : 'this PyTorch sees none'}), where it autocasts to bf16; on CPUs the native engine trains in bf16`);
    }
    // Rank r of N trains micro-batches r, r+N, ...: N processes with grad_accum g = one with N*g.
    const world = (o.torch?.nproc ?? 1) * (o.torch?.nnodes ?? 1);
    if (o.torch?.fsdp) {
      const why = fsdpProblem(o.torch.found!, { ...(o.torch.cpu ? { cpu: true } : {}), world, lora: Boolean(cfg.lora) });
      if (why) throw new MixtuneError(why);
    }
    if (world > 1) cfg = { ...cfg, training: { ...cfg.training, grad_accum: cfg.training.grad_accum * world } };
  }
  const preparedFile = o.prepared ?? cfg.data.prepared;
  preflightTrain(cfg, { prepared: preparedFile, ...(o.engine === 'torch' ? { engine: 'torch' as const } : {}) });
  const lrLine = resolveLearningRate(cfg);
  const mem = trainMemoryEstimate(cfg);
  const budget = checkMemory(mem, 'train', { ...(o.force ? { force: true } : {}), fixes: TRAIN_MEMORY_FIXES });
  const memLine = `memory: ${describeEstimate(mem)}${budget ? `; ${formatBytes(budget.bytes)} available (${budget.limitedBy})` : ''}`;
  const release = lockRunDir(cfg.output_dir);
  try {
    const record = claimRunDir(cfg.output_dir, cfg, { resume: o.resume !== undefined, overwrite: o.overwrite === true });
    const cleaned = removeStaleTemporaries(cfg.output_dir);
    if (cleaned > 0) log(`removed ${cleaned} unfinished checkpoint / export folder(s) left by a killed run`);
    return await trainLocked(cfg, o, { log, t0, preparedFile, lrLine, memLine, record });
  } finally {
    release();
  }
}

async function trainLocked(
  cfg: TrainConfig, o: TrainRunOptions,
  ctx: { log: (s: string) => void; t0: number; preparedFile: string | undefined; lrLine: string; memLine: string; record: RunRecord },
): Promise<TrainSummary> {
  const { log, t0, preparedFile, lrLine, memLine } = ctx;

  const { model } = loadModel(cfg.model, nativeKernels(), { bf16Matrices: cfg.lora?.base_dtype === 'bf16' });
  if (cfg.training.precision === 'bf16') model.bf16 = new Bf16Weights(cfg.training.bf16_ops);
  const tok = loadTokenizer(cfg.tokenizer, cfg.model, model.config.vocabSize);
  if (cfg.lora) applyLora(model, { rank: cfg.lora.rank, alpha: cfg.lora.alpha, dropout: cfg.lora.dropout, targets: cfg.lora.targets, seed: cfg.seed });
  const trainable = trainableParams(model);

  const { template, encode } = encoderFor(tok, cfg);
  const prep = preparedFile ? loadPrepared(preparedFile) : prepareRows(cfg, encode);
  const s = prep.stats;
  if (preparedFile) log(`data: prepared rows from ${preparedFile} (recipe ${s.recipe})`);
  log(describePrepared(s, cfg.data.max_len));
  checkContextLength(cfg, prep.train);
  for (const w of s.warnings ?? []) log(`warning: ${w}`);

  const totalSteps = totalStepsOf(cfg, prep.train.length);
  const stop = { requested: false };
  const writeTok = tokenizerFilesWriter(tok, { tokenizerDir: cfg.tokenizer, modelDir: modelPathOf(cfg.model), modelMaxLength: cfg.data.max_len, chatTemplate: template.text });
  const isLora = Boolean(cfg.lora);
  const trainer = new Trainer(model, trainable, prep.train, prep.eval, trainerOptionsOf(cfg, {
    totalSteps, padId: tok.padId,
    weightsFile: isLora ? ADAPTER_FILE : WEIGHTS_FILE,
    checkpointExtras: (dir) => {
      // A full fine-tuning checkpoint is itself a loadable HF folder.
      if (!isLora) writeJsonAtomic(join(dir, 'config.json'), configToHf(model.config));
      writeTok(dir);
    },
    ...(isLora ? { extraState: { save: () => ({ loraRng: loraRngState(model) }), restore: (x: unknown) => {
      // a torch-engine checkpoint carries torch's generator instead: the dropout masks then differ
      const rng = (x as { loraRng?: number[] } | undefined)?.loraRng;
      if (rng) setLoraRngState(model, rng);
    } } } : {}),
    ...(o.stopAfter !== undefined ? { stopAfter: o.stopAfter } : {}),
    ...(o.progress === false ? { progress: false } : {}),
    shouldStop: () => stop.requested,
    log,
  }));
  const resume = o.resume === undefined ? undefined : resolveResume(cfg.output_dir, o.resume);
  const per = cfg.training.micro_batch_size * cfg.training.grad_accum;
  log(memLine);
  log(`training ${totalSteps} steps (${per} rows/step, ${isLora ? `LoRA r=${cfg.lora!.rank} on ${cfg.lora!.targets.join(',')}` : 'full fine-tuning'}, ${lrLine}), output ${cfg.output_dir}`);
  const resumeCmd = `${o.command ?? 'mixtune train --config <config>'} --resume`;
  writeRunRecord(cfg.output_dir, ctx.record);
  let r: TrainResult;
  if (o.engine === 'torch') {
    r = await trainWithTorch({
      model, prep, maxLen: cfg.data.max_len, o: trainer.o, torch: o.torch ?? { nproc: 1 }, writeExtras: trainer.o.checkpointExtras!,
      trainable, weightsFile: isLora ? ADAPTER_FILE : WEIGHTS_FILE, ...(cfg.lora ? { lora: { alpha: cfg.lora.alpha, dropout: cfg.lora.dropout } } : {}),
      ...(resume ? { resume } : {}),
      ...(statSync(modelPathOf(cfg.model)).isDirectory() ? { modelFolder: modelPathOf(cfg.model) } : {}),
    });
  } else {
    r = await withStopSignals(log, () => trainer.runAsync(resume), stop);
  }

  let exported: string | null = null;
  // several machines: the machine of rank 0 writes the checkpoints and final/; the others only compute
  const helperNode = o.engine === 'torch' && (o.torch?.nodeRank ?? 0) > 0;
  if (helperNode) log(`node ${o.torch!.nodeRank} finished its part; the checkpoints and final/ are on the machine with --node-rank 0`);
  if (r.steps >= totalSteps && !helperNode) {
    // Keep the final state as a checkpoint until final/ exists: a failed export (disk full) must
    // not lose the run. (torch: the final state is Python's last checkpoint, exported by the same code.)
    const kept = o.engine === 'torch' ? loadCheckpointWeights(trainable, join(cfg.output_dir, `checkpoint-${totalSteps}`), isLora ? ADAPTER_FILE : WEIGHTS_FILE) : trainer.checkpoint();
    try {
      exported = exportModel(model, cfg, writeTok, log);
    } catch (e) {
      throw new MixtuneError(`${(e as Error).message}; the trained state is kept in ${kept}: fix the problem, then ${resumeCmd} writes final/`);
    }
    rmSync(kept, { recursive: true, force: true }); // final/ holds it now
    writeRunRecord(cfg.output_dir, { ...ctx.record, finished: true });
  }
  const summary: TrainSummary = {
    steps: r.steps,
    total_steps: totalSteps,
    tokens: r.tokens,
    seconds: Math.round(r.seconds * 10) / 10,
    tokens_per_s: r.seconds > 0 ? Math.round(r.tokens / r.seconds) : 0,
    final_loss: r.finalLoss,
    eval_loss: r.evalLoss,
    peak_rss_mb: r.peakRssMb,
    lr: cfg.training.lr!,
    wall_seconds: Math.round((performance.now() - t0) / 100) / 10,
    data: {
      recipe: s.recipe, recipe_info: s.recipeInfo,
      examples: s.examples, eval_examples: s.evalExamples, rows: s.train.rows, packing_efficiency: s.train.efficiency,
      trained_tokens: s.train.targetTokens, truncated: s.train.truncated, dropped: s.train.dropped, skipped_bad: s.skippedBad,
      skip_reasons: s.skipReasons, without_targets: s.noTargets, warnings: s.warnings ?? [],
    },
    resumed_from: r.resumedFrom,
    exported,
    interrupted: r.interrupted,
  };
  writeJsonAtomic(join(cfg.output_dir, 'summary.json'), summary);
  log(`done: ${r.steps}/${totalSteps} steps, ${r.tokens} tokens in ${summary.seconds}s (${summary.tokens_per_s} tok/s), ` +
    `loss ${r.finalLoss.toFixed(4)}${r.evalLoss !== null ? `, eval loss ${r.evalLoss.toFixed(4)}` : ''}, peak RSS ${r.peakRssMb} MB` +
    (exported ? `; model saved to ${exported}` : r.steps < totalSteps ? `; stopped at step ${r.steps}${r.stoppedAt ? ` (checkpoint ${r.stoppedAt})` : ''}, continue with: ${resumeCmd}` : ''));
  return summary;
}

/** Copies a checkpoint's trained tensors (all weights, or the LoRA adapters) into the model; returns the folder. */
function loadCheckpointWeights(trainable: Map<string, Tensor>, dir: string, weightsFile: string): string {
  const w = readSafetensors(join(dir, weightsFile));
  for (const [name, p] of trainable) {
    if (!w.tensors.has(name)) throw new MixtuneError(`${join(dir, weightsFile)}: missing tensor ${name}`);
    p.data.set(w.read(name));
  }
  return dir;
}

/** final/ (an HF folder; LoRA adapters saved to adapter/ and merged first). */
function exportModel(model: LlamaModel, cfg: TrainConfig, writeTok: (dir: string) => void, log: (s: string) => void): string {
  const dir = join(cfg.output_dir, 'final');
  if (cfg.lora) {
    saveLoraAdapter(join(cfg.output_dir, 'adapter'), model, { baseModel: cfg.model, overwrite: true });
    mergeLora(model);
    log(`LoRA adapter saved to ${join(cfg.output_dir, 'adapter')}; merged into the exported model`);
  }
  saveHfModel(dir, model, { dtype: cfg.export.dtype === 'bf16' ? 'BF16' : 'F32', beforeCommit: writeTok, overwrite: true });
  return dir;
}

/**
 * Runs `train` with SIGINT / SIGTERM handlers: the first signal asks the trainer to stop after the
 * current step (it writes a checkpoint); a second one exits at once with code 130.
 */
async function withStopSignals<T>(log: (s: string) => void, train: () => Promise<T>, stop: { requested: boolean }): Promise<T> {
  const onSignal = (sig: NodeJS.Signals): void => {
    if (stop.requested) {
      process.stderr.write(`\nmixtune: ${sig} again: aborting without a checkpoint\n`);
      process.exit(130);
    }
    stop.requested = true;
    log(`\n${sig}: stopping after this step with a checkpoint (press Ctrl-C again to abort at once)`);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  try {
    return await train();
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
  }
}
