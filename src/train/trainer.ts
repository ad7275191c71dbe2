// The training loop: shuffled epochs over packed rows, micro-batches accumulated into one
// optimizer step with the loss normalized per token over the whole step, global-norm clipping,
// AdamW, LR schedule, periodic eval and checkpoints, metrics.jsonl, progress and a summary.
import { appendFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createHash } from 'node:crypto';
import { MovingRate, startProgress } from '../util/progress.js';
import type { LlamaModel } from '../model/llama.js';
import type { Tensor } from '../tensor/tensor.js';
import type { Row } from '../data/pack.js';
import { AdamW, clipGradNorm } from './adamw.js';
import { makeMicroBatch, type MicroBatch } from './batch.js';
import { learningRate, type ScheduleKind } from './schedule.js';
import { loadCheckpoint, saveCheckpoint, type TrainerState, WEIGHTS_FILE } from './checkpoint.js';
import { Rng } from '../util/rng.js';
import { MixtuneError } from '../util/errors.js';

export interface TrainerOptions {
  outputDir: string;
  seed: number;
  totalSteps: number;
  microBatchSize: number;
  gradAccum: number;
  lr: number;
  warmupSteps: number;
  schedule: ScheduleKind;
  minLrRatio: number;
  weightDecay: number;
  beta1: number;
  beta2: number;
  eps: number;
  maxGradNorm: number;
  logEvery: number;
  evalEvery: number;
  saveEvery: number;
  keepLast: number;
  padId: number;
  /** Checkpoint weights file name and extra files (config.json, tokenizer...) written into each checkpoint. */
  weightsFile?: string;
  checkpointExtras?: (dir: string) => void;
  /** Activation checkpointing (training.gradient_checkpointing): recompute layers in backward. */
  checkpointing?: boolean;
  /** Shuffle the rows every epoch (default true); false trains them in the given order. */
  shuffle?: boolean;
  /** More state to checkpoint and restore exactly (e.g. the LoRA dropout RNG). */
  extraState?: { save(): unknown; restore(state: unknown): void };
  /** Stop (with a checkpoint) after this optimizer step, as if the job's time ran out. */
  stopAfter?: number;
  /** Asked after every step; true = stop now with a checkpoint (Ctrl-C). Only runAsync lets it change mid-run. */
  shouldStop?: () => boolean;
  /** Show a progress bar (default: when stderr is a TTY). */
  progress?: boolean;
  log?: (line: string) => void;
}

export interface StepMetrics {
  step: number;
  loss: number;
  lr: number;
  grad_norm: number;
  tokens: number;
  /** Labelled tokens of this step (the tokens the loss is averaged over). */
  target_tokens: number;
  tokens_per_s: number;
  elapsed: number;
}

export interface TrainResult {
  steps: number;
  tokens: number;
  /** Labelled (loss-carrying) tokens trained on over the whole run, resumed steps included. */
  targetTokens: number;
  seconds: number;
  finalLoss: number;
  evalLoss: number | null;
  losses: number[];
  peakRssMb: number;
  resumedFrom: string | null;
  /** The checkpoint written when the run stopped early (stop_after or shouldStop), else null. */
  stoppedAt: string | null;
  /** True when shouldStop ended the run. */
  interrupted: boolean;
}

export class Trainer {
  readonly opt: AdamW;
  private readonly rng: Rng;
  private state: TrainerState;
  private readonly fingerprint: string;

  constructor(
    readonly model: LlamaModel,
    readonly trainable: Map<string, Tensor>,
    readonly rows: Row[],
    readonly evalRows: Row[],
    readonly o: TrainerOptions,
  ) {
    if (rows.length === 0) throw new MixtuneError('no training rows: every example was dropped or the datasets are empty');
    this.opt = new AdamW(trainable, model.kernels, { beta1: o.beta1, beta2: o.beta2, eps: o.eps, weightDecay: o.weightDecay });
    this.rng = new Rng(o.seed);
    this.fingerprint = fingerprintRows(rows);
    this.state = {
      step: 0, epoch: 0, cursor: 0, optimizerSteps: 0, rng: this.rng.getState(),
      dataFingerprint: this.fingerprint, tokensSeen: 0, targetTokensSeen: 0, elapsedSeconds: 0,
    };
  }

  private log(line: string): void {
    (this.o.log ?? ((s: string) => process.stderr.write(s + '\n')))(line);
  }

  private nextMicroBatches(): MicroBatch[] {
    return drawMicroBatches(this.rows.length, this.o, this.state).map((idx) => makeMicroBatch(idx.map((i) => this.rows[i]!), this.o.padId));
  }

  resume(dir: string): void {
    const st = loadCheckpoint(dir, this.trainable, this.opt, this.o.weightsFile ?? WEIGHTS_FILE);
    if (st.dataFingerprint !== this.fingerprint) {
      throw new MixtuneError(`${dir}: the checkpoint was trained on different prepared data (fingerprint mismatch); resume with the same config and data`);
    }
    this.model.bf16?.invalidate();
    this.state = st;
    this.rng.setState(st.rng);
    if (st.extra !== undefined) this.o.extraState?.restore(st.extra);
    // Drop metric lines past the checkpoint: they will be produced again.
    const metrics = join(this.o.outputDir, 'metrics.jsonl');
    if (existsSync(metrics)) {
      const kept = readFileSync(metrics, 'utf8').split('\n').filter((l) => {
        if (!l.trim()) return false;
        try {
          return (JSON.parse(l) as { step: number }).step <= st.step;
        } catch {
          return false;
        }
      });
      writeFileSync(metrics, kept.map((l) => l + '\n').join(''));
    }
  }

  /** Mean token loss over rows, no gradients. */
  evaluate(rows: Row[] = this.evalRows): number | null {
    return evaluateLoss(this.model, rows, this.o.microBatchSize, this.o.padId);
  }

  /** Trains to the end (or stop_after) in one synchronous call. */
  run(resumeFrom?: string): TrainResult {
    const it = this.loop(resumeFrom);
    for (;;) {
      const r = it.next();
      if (r.done) return r.value;
    }
  }

  /**
   * The same run, yielding to the event loop after every step, so that signal handlers (Ctrl-C)
   * and timers run while training: `shouldStop` can then end the run cleanly with a checkpoint.
   */
  async runAsync(resumeFrom?: string): Promise<TrainResult> {
    const it = this.loop(resumeFrom);
    for (;;) {
      const r = it.next();
      if (r.done) return r.value;
      await new Promise<void>((res) => setImmediate(res));
    }
  }

  private *loop(resumeFrom?: string): Generator<number, TrainResult, void> {
    const o = this.o;
    mkdirSync(o.outputDir, { recursive: true });
    if (resumeFrom) {
      this.resume(resumeFrom);
      this.log(`resumed from ${resumeFrom} at step ${this.state.step}`);
    }
    const metricsPath = join(o.outputDir, 'metrics.jsonl');
    const showBar = o.progress ?? Boolean(process.stderr.isTTY);
    const bar = showBar ? startProgress('train', o.totalSteps, this.state.step, { bar: true }) : null;
    const rate = new MovingRate(10);
    const startWall = performance.now();
    const elapsedBefore = this.state.elapsedSeconds;
    const losses: number[] = [];
    let lastEval: number | null = null;
    let loss = Number.NaN;
    let stoppedAt: string | null = null;
    let interrupted = false;
    while (this.state.step < o.totalSteps) {
      const t0 = performance.now();
      const step = this.state.step + 1;
      const lr = learningRate(step, { lr: o.lr, totalSteps: o.totalSteps, warmupSteps: o.warmupSteps, kind: o.schedule, minLrRatio: o.minLrRatio });
      const mbs = this.nextMicroBatches();
      const stepTargets = mbs.reduce((s, m) => s + m.targetTokens, 0);
      const stepTokens = mbs.reduce((s, m) => s + m.realTokens, 0);
      for (const t of this.trainable.values()) t.zeroGrad();
      let lossSum = 0;
      for (const mb of mbs) {
        // Normalize by the labelled tokens of the whole optimizer step (accumulation-correct).
        const r = this.model.forward(mb.inputs, mb.targets, mb.batch, {
          positions: mb.positions, ...(mb.layout ? { layout: mb.layout } : {}), lossScale: stepTargets > 0 ? 1 / stepTargets : 0,
          ...(o.checkpointing ? { checkpointing: true } : {}),
        });
        lossSum += r.lossSum;
        this.model.backward();
      }
      loss = stepTargets > 0 ? lossSum / stepTargets : Number.NaN;
      if (!Number.isFinite(loss)) throw new MixtuneError(`step ${step}: the loss is ${loss}; stopping (lower the learning rate?)`);
      const gradNorm = clipGradNorm(this.trainable.values(), o.maxGradNorm);
      this.opt.step(lr);
      this.model.bf16?.invalidate(); // bf16 copies are packed again from the new fp32 weights
      this.state.step = step;
      this.state.optimizerSteps = this.opt.stepCount;
      this.state.tokensSeen += stepTokens;
      this.state.targetTokensSeen = (this.state.targetTokensSeen ?? 0) + stepTargets;
      losses.push(loss);
      const secs = (performance.now() - t0) / 1000;
      const elapsed = elapsedBefore + (performance.now() - startWall) / 1000;
      this.state.elapsedSeconds = elapsed;
      const m: StepMetrics = { step, loss: round(loss, 6), lr, grad_norm: round(gradNorm, 6), tokens: stepTokens, target_tokens: stepTargets, tokens_per_s: round(stepTokens / secs, 1), elapsed: round(elapsed, 3) };
      if (step % o.logEvery === 0 || step === o.totalSteps) {
        appendFileSync(metricsPath, JSON.stringify(m) + '\n');
        if (!bar) this.log(`step ${step}/${o.totalSteps} loss ${m.loss.toFixed(4)} lr ${lr.toExponential(2)} grad_norm ${m.grad_norm.toFixed(3)} ${m.tokens_per_s} tok/s`);
      }
      // the bar shows tok/s averaged over the last 10 steps (one step's figure jumps around)
      bar?.tick(`loss ${loss.toFixed(4)} | lr ${lr.toExponential(1)} | ${Math.round(rate.add(stepTokens, secs))} tok/s`, step);
      if (o.evalEvery > 0 && (step % o.evalEvery === 0 || step === o.totalSteps) && this.evalRows.length) {
        lastEval = this.evaluate();
        appendFileSync(metricsPath, JSON.stringify({ step, eval_loss: lastEval === null ? null : round(lastEval, 6) }) + '\n');
        if (!bar) this.log(`step ${step} eval_loss ${lastEval?.toFixed(4)}`);
      }
      interrupted = step < o.totalSteps && o.shouldStop?.() === true;
      const stopping = interrupted || (o.stopAfter !== undefined && step >= o.stopAfter && step < o.totalSteps);
      if ((o.saveEvery > 0 && step % o.saveEvery === 0 && step < o.totalSteps) || stopping) {
        const dir = this.checkpoint();
        if (stopping) stoppedAt = dir;
      }
      if (stopping) break;
      yield step;
      if (step < o.totalSteps && o.shouldStop?.() === true) {
        // the signal arrived while we yielded: stop here, with a checkpoint
        interrupted = true;
        stoppedAt = this.checkpoint();
        break;
      }
    }
    bar?.stop();
    // The step buffers are not needed after training (export, evaluation and generation allocate their own).
    this.model.workspace.clear();
    if (this.evalRows.length && lastEval === null) lastEval = this.evaluate();
    return {
      steps: this.state.step,
      tokens: this.state.tokensSeen,
      targetTokens: this.state.targetTokensSeen ?? 0,
      seconds: this.state.elapsedSeconds,
      finalLoss: loss,
      evalLoss: lastEval,
      losses,
      peakRssMb: Math.round(process.resourceUsage().maxRSS / 1024),
      resumedFrom: resumeFrom ?? null,
      stoppedAt,
      interrupted,
    };
  }

  checkpoint(): string {
    this.state.rng = this.rng.getState();
    if (this.o.extraState) this.state.extra = this.o.extraState.save();
    return saveCheckpoint(this.o.outputDir, this.state, this.trainable, this.opt, this.o.keepLast, {
      ...(this.o.weightsFile ? { weightsFile: this.o.weightsFile } : {}),
      ...(this.o.checkpointExtras ? { extraFiles: this.o.checkpointExtras } : {}),
    });
  }

  get currentState(): Readonly<TrainerState> {
    return this.state;
  }
}

/** Row order of an epoch: a seeded shuffle, the same whenever the epoch is replayed. */
export function epochOrder(nRows: number, seed: number, epoch: number, shuffle = true): number[] {
  const order = Array.from({ length: nRows }, (_, i) => i);
  if (!shuffle) return order;
  return new Rng((seed * 1000003 + epoch * 7919) >>> 0).shuffle(order);
}

/**
 * The row indices of the next optimizer step's micro-batches (gradAccum lists of microBatchSize
 * rows), drawn from shuffled epochs; advances `pos`. Every engine draws its steps with this.
 */
export function drawMicroBatches(
  nRows: number, o: { seed: number; shuffle?: boolean; microBatchSize: number; gradAccum: number }, pos: { epoch: number; cursor: number },
): number[][] {
  const out: number[][] = [];
  let order = epochOrder(nRows, o.seed, pos.epoch, o.shuffle !== false);
  for (let a = 0; a < o.gradAccum; a++) {
    const picked: number[] = [];
    while (picked.length < o.microBatchSize) {
      if (pos.cursor >= order.length) {
        pos.epoch++;
        pos.cursor = 0;
        order = epochOrder(nRows, o.seed, pos.epoch, o.shuffle !== false);
      }
      picked.push(order[pos.cursor++]!);
    }
    out.push(picked);
  }
  return out;
}

export function fingerprintRows(rows: Row[]): string {
  const h = createHash('sha256');
  h.update(String(rows.length));
  for (const r of rows) {
    h.update(Buffer.from(r.tokens.buffer, r.tokens.byteOffset, r.tokens.byteLength));
    h.update(Buffer.from(r.targets.buffer, r.targets.byteOffset, r.targets.byteLength));
  }
  return h.digest('hex').slice(0, 16);
}

function round(x: number, d: number): number {
  const f = 10 ** d;
  return Math.round(x * f) / f;
}


/** Mean loss per labelled token over rows (forward only, `microBatchSize` rows at a time); null without labels. */
export function evaluateLoss(model: LlamaModel, rows: readonly Row[], microBatchSize: number, padId: number): number | null {
  let sum = 0;
  let count = 0;
  for (let i = 0; i < rows.length; i += microBatchSize) {
    const mb = makeMicroBatch(rows.slice(i, i + microBatchSize), padId);
    const r = model.forward(mb.inputs, mb.targets, mb.batch, { positions: mb.positions, ...(mb.layout ? { layout: mb.layout } : {}), grad: false });
    sum += r.lossSum;
    count += r.tokens;
  }
  return count > 0 ? sum / count : null;
}
