// `mixtune train --engine torch`: the same run on PyTorch (python/mixtune_torch), in one process or
// under torchrun (DDP on CPUs with gloo, on GPUs with NCCL, on one or several machines; or, with
// --fsdp, the model sharded across the GPUs — python/mixtune_torch/fsdp.py, untested until run on GPUs).
//
// mixtune keeps deciding WHAT is trained — the prepared rows, which rows go into which micro-batch of
// which step (drawMicroBatches, as the native trainer), the learning rate of every step — and writes
// it into a work folder; Python does the arithmetic and reports each step on stdout. Metrics,
// progress, checkpoints (the native format: either engine resumes the other's), summary.json and
// final/ are the native engine's, written by the same code.
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { saveHfModel } from '../io/hf-model.js';
import { writeSafetensors } from '../io/safetensors.js';
import type { Tensor } from '../tensor/tensor.js';
import type { LlamaModel } from '../model/llama.js';
import type { Row } from '../data/pack.js';
import { savePrepared, type Prepared } from '../train/prepare.js';
import { drawMicroBatches, fingerprintRows, type TrainResult, type TrainerOptions } from '../train/trainer.js';
import { learningRate } from '../train/schedule.js';
import { MovingRate, startProgress } from '../util/progress.js';
import { MixtuneError } from '../util/errors.js';
import { findTorchPython, torchEnginePath, type TorchPython } from './python.js';

export interface TorchEngineOptions {
  /** Processes per machine (torchrun --nproc_per_node). */
  nproc: number;
  /** Machines (torchrun --nnodes); with more than one, nodeRank / masterAddr / masterPort say where this one is. */
  nnodes?: number;
  nodeRank?: number;
  masterAddr?: string;
  masterPort?: number;
  /** The Python that has torch (default: see findTorchPython). */
  python?: string;
  /** Train on the CPU even when CUDA is available. */
  cpu?: boolean;
  /** Shard the model across the processes (FSDP; CUDA and PyTorch >= 2.0; untested until run on GPUs). */
  fsdp?: boolean;
  /** The Python found by a preflight (findTorchPython), to skip a second probe. */
  found?: TorchPython;
}

interface Event {
  event: 'step' | 'eval' | 'checkpoint' | 'done';
  [k: string]: unknown;
}

const round = (x: number, d: number): number => Math.round(x * 10 ** d) / 10 ** d;

/**
 * Why `--fsdp` cannot run with this Python / these options (one line), or null. The same check as
 * python/mixtune_torch/fsdp.py `missing` (which repeats it on every machine of the job).
 */
export function fsdpProblem(py: TorchPython, o: { cpu?: boolean; world: number; lora: boolean }): string | null {
  if (o.lora) return '--fsdp shards full fine-tuning; LoRA adapters are small, train them without --fsdp (every process holds the model, DDP)';
  const needs: string[] = [];
  if (o.cpu) needs.push('CUDA GPUs (--cpu was given)');
  else if (!py.cuda) needs.push('CUDA GPUs (this PyTorch sees none)');
  const v = /^(\d+)\.(\d+)/.exec(py.torchVersion);
  if (!v || Number(v[1]) < 2) needs.push(`PyTorch >= 2.0 (this is ${py.torchVersion})`);
  if (o.world < 2) needs.push('2 or more processes to shard over (--nproc, --nnodes)');
  return needs.length > 0 ? `--fsdp needs ${needs.join(', ')}; without --fsdp the torch engine trains with DDP on CPUs or GPUs` : null;
}

/**
 * Trains `prep.train` with the options the native trainer would use (gradAccum already counts every
 * process's micro-batches). Resolves when the Python side has finished, stopped or failed.
 */
export async function trainWithTorch(a: {
  model: LlamaModel;
  prep: Prepared;
  maxLen: number;
  o: TrainerOptions;
  torch: TorchEngineOptions;
  /** Files every checkpoint holds besides weights and state (config.json, tokenizer). */
  writeExtras: (dir: string) => void;
  /** What is trained (all parameters, or the LoRA adapters under PEFT names) and how it is stored. */
  trainable: Map<string, Tensor>;
  weightsFile: string;
  lora?: { alpha: number; dropout: number };
  /** The model's HF folder when it is one (read in place); else the weights are written for Python. */
  modelFolder?: string;
  resume?: string;
}): Promise<TrainResult> {
  const { o, prep } = a;
  const py = a.torch.found ?? findTorchPython(a.torch.python);
  const work = join(o.outputDir, 'torch-work');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(join(work, 'extras'), { recursive: true });
  a.writeExtras(join(work, 'extras'));
  // The base model: an HF folder is read where it is; a llama2.c checkpoint is written as one.
  const init = a.modelFolder ?? join(work, 'init');
  if (!a.modelFolder) {
    const base = new Map([...a.model.params].map(([n, t]) => [n, t.data] as [string, Float32Array]));
    saveHfModel(init, { config: a.model.config, weights: base }, { overwrite: true });
  }
  // LoRA: the adapters as mixtune initialized them (so both engines start from the same A)
  if (a.lora) writeSafetensors(join(work, a.weightsFile), new Map([...a.trainable].map(([n, t]) => [n, { shape: t.shape, data: t.data }])));
  savePrepared(join(work, 'rows.jsonl'), prep, a.maxLen);
  writePlan(join(work, 'plan.jsonl'), prep.train, o);
  const world = a.torch.nproc * (a.torch.nnodes ?? 1);
  writeFileSync(join(work, 'run.json'), JSON.stringify({
    rows: join(work, 'rows.jsonl'), plan: join(work, 'plan.jsonl'),
    init, adapters: a.lora ? join(work, a.weightsFile) : null, resume: a.resume ?? null, out: o.outputDir, extras: join(work, 'extras'),
    weights_file: a.weightsFile, lora: a.lora ?? null,
    options: {
      total_steps: o.totalSteps, micro_batch_size: o.microBatchSize, pad_id: o.padId, seed: o.seed,
      beta1: o.beta1, beta2: o.beta2, eps: o.eps, weight_decay: o.weightDecay, max_grad_norm: o.maxGradNorm,
      eval_every: o.evalEvery, save_every: o.saveEvery, keep_last: o.keepLast, stop_after: o.stopAfter ?? null, checkpointing: o.checkpointing === true,
      data_fingerprint: fingerprintRows(prep.train), rng: [0, 0, 0, 0], cpu: a.torch.cpu === true, fsdp: a.torch.fsdp === true,
      // CPU processes share the cores; CUDA processes use one thread each for the host side
      threads: Math.max(1, Math.floor(cpus().length / a.torch.nproc)),
    },
  }));
  if (a.resume) truncateMetrics(o.outputDir, Number(JSON.parse(readFileSync(join(a.resume, 'trainer_state.json'), 'utf8')).step));

  const args = a.torch.nproc === 1 && (a.torch.nnodes ?? 1) === 1
    ? ['-m', 'mixtune_torch.train', work]
    : ['-m', 'mixtune_torch.launch', `--nproc_per_node=${a.torch.nproc}`, // torchrun, see launch.py
      ...((a.torch.nnodes ?? 1) > 1
        ? [`--nnodes=${a.torch.nnodes}`, `--node_rank=${a.torch.nodeRank ?? 0}`, `--master_addr=${a.torch.masterAddr ?? '127.0.0.1'}`, `--master_port=${a.torch.masterPort ?? 29500}`]
        : ['--standalone']),
      '-m', 'mixtune_torch.train', work];
  const log = o.log ?? ((s: string) => void process.stderr.write(s + '\n'));
  log(`torch engine: ${py.python} (torch ${py.torchVersion}${py.cuda && !a.torch.cpu ? ', CUDA' : ', CPU'}), ${world} process${world > 1 ? 'es' : ''}${a.torch.fsdp ? ', FSDP (untested until run on GPUs)' : ''}`);
  const child = spawn(py.python, args, {
    env: { ...process.env, PYTHONPATH: [torchEnginePath(), process.env.PYTHONPATH].filter(Boolean).join(':'), PYTHONUNBUFFERED: '1' },
    stdio: ['ignore', 'pipe', 'pipe'], detached: true,
  });
  const stderrTail: string[] = [];
  createInterface({ input: child.stderr! }).on('line', (l) => {
    stderrTail.push(l);
    if (stderrTail.length > 30) stderrTail.shift();
  });
  // Ctrl-C / SIGTERM: Python finishes its step and writes a checkpoint (as the native trainer does).
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals): void => {
    signals++;
    if (signals === 1) log(`\n${sig}: stopping after this step with a checkpoint (press Ctrl-C again to abort at once)`);
    try {
      process.kill(-child.pid!, signals === 1 ? 'SIGTERM' : 'SIGKILL');
    } catch { /* already gone */ }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  const metrics = join(o.outputDir, 'metrics.jsonl');
  const showBar = o.progress ?? Boolean(process.stderr.isTTY);
  let done: Event | null = null;
  const losses: number[] = [];
  try {
    const startStep = a.resume ? Number(JSON.parse(readFileSync(join(a.resume, 'trainer_state.json'), 'utf8')).step) : 0;
    const bar = showBar ? startProgress('train', o.totalSteps, startStep, { bar: true }) : null;
    const rate = new MovingRate(10);
    const lines = createInterface({ input: child.stdout! });
    for await (const line of lines) {
      if (!line.startsWith('@mixtune ')) {
        log(line);
        continue;
      }
      const e = JSON.parse(line.slice(9)) as Event;
      if (e.event === 'step') {
        const step = e.step as number;
        const secs = e.seconds as number;
        const m = { step, loss: round(e.loss as number, 6), lr: e.lr as number, grad_norm: round(e.grad_norm as number, 6), tokens: e.tokens as number, target_tokens: e.target_tokens as number, tokens_per_s: round((e.tokens as number) / secs, 1), elapsed: round(e.elapsed as number, 3) };
        losses.push(e.loss as number);
        if (step % o.logEvery === 0 || step === o.totalSteps) {
          appendFileSync(metrics, JSON.stringify(m) + '\n');
          if (!bar) log(`step ${step}/${o.totalSteps} loss ${m.loss.toFixed(4)} lr ${m.lr.toExponential(2)} grad_norm ${m.grad_norm.toFixed(3)} ${m.tokens_per_s} tok/s`);
        }
        bar?.tick(`loss ${m.loss.toFixed(4)} | lr ${m.lr.toExponential(1)} | ${Math.round(rate.add(m.tokens, secs))} tok/s`, step);
      } else if (e.event === 'eval') {
        appendFileSync(metrics, JSON.stringify({ step: e.step, eval_loss: e.eval_loss === null ? null : round(e.eval_loss as number, 6) }) + '\n');
        if (!bar) log(`step ${e.step as number} eval_loss ${(e.eval_loss as number | null)?.toFixed(4)}`);
      } else if (e.event === 'done') done = e;
    }
    bar?.stop();
    const code = await new Promise<number | null>((r) => (child.exitCode !== null ? r(child.exitCode) : child.on('exit', (c) => r(c))));
    if (code !== 0 || !done) {
      const last = stderrTail.filter((l) => l.trim() && !/^\s+(File|\^|~)/.test(l)).slice(-1)[0] ?? '';
      throw new MixtuneError(`the torch engine failed (exit code ${code})${last ? `: ${last.trim()}` : ''}${signals > 0 ? ' (stopped by a signal)' : ''}`);
    }
  } finally {
    process.removeListener('SIGINT', onSignal);
    process.removeListener('SIGTERM', onSignal);
    if (child.exitCode === null) child.kill('SIGKILL');
    // everything in it is derived (rows, plan, a copy of the weights); kept for MIXTUNE_DEBUG=1
    if (!process.env.MIXTUNE_DEBUG) rmSync(work, { recursive: true, force: true });
  }
  const d = done as Event;
  const steps = d.steps as number;
  const stoppedAt = steps < o.totalSteps && existsSync(join(o.outputDir, `checkpoint-${steps}`)) ? join(o.outputDir, `checkpoint-${steps}`) : null;
  return {
    steps, tokens: d.tokens as number, targetTokens: d.target_tokens as number, seconds: d.seconds as number,
    finalLoss: d.final_loss as number, evalLoss: (d.eval_loss as number | null) ?? null, losses,
    peakRssMb: d.peak_rss_mb as number, resumedFrom: a.resume ?? null, stoppedAt, interrupted: d.interrupted === true,
  };
}

/** plan.jsonl: every step's learning rate and micro-batch rows, and the data position after it. */
function writePlan(path: string, rows: readonly Row[], o: TrainerOptions): void {
  const pos = { epoch: 0, cursor: 0 };
  const lines: string[] = [];
  for (let step = 1; step <= o.totalSteps; step++) {
    const lr = learningRate(step, { lr: o.lr, totalSteps: o.totalSteps, warmupSteps: o.warmupSteps, kind: o.schedule, minLrRatio: o.minLrRatio });
    const microBatches = drawMicroBatches(rows.length, o, pos);
    lines.push(JSON.stringify({ step, lr, micro_batches: microBatches, epoch: pos.epoch, cursor: pos.cursor }));
  }
  writeFileSync(path, lines.join('\n') + '\n');
}

/** On resume, metric lines past the checkpoint are produced again: drop them (as the native trainer). */
function truncateMetrics(outDir: string, step: number): void {
  const path = join(outDir, 'metrics.jsonl');
  if (!existsSync(path)) return;
  const kept = readFileSync(path, 'utf8').split('\n').filter((l) => {
    try {
      return l.trim() !== '' && (JSON.parse(l) as { step: number }).step <= step;
    } catch {
      return false;
    }
  });
  writeFileSync(path, kept.map((l) => l + '\n').join(''));
}
