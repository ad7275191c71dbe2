// Checkpoints: OUT/checkpoint-N/ holds the trainable weights (safetensors), the optimizer state
// and trainer_state.json. A checkpoint is written into a temporary folder and renamed into place,
// so a process killed mid-write leaves the previous checkpoints intact; only the last K are kept.
import { existsSync, mkdirSync, readdirSync, renameSync, rmSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Tensor } from '../tensor/tensor.js';
import type { AdamW } from './adamw.js';
import { readSafetensors, writeSafetensors, type TensorToWrite } from '../io/safetensors.js';
import { MixtuneError } from '../util/errors.js';
import { writeJsonAtomic } from '../util/fs.js';

export interface TrainerState {
  step: number;
  epoch: number;
  /** Index of the next row in this epoch's shuffled order. */
  cursor: number;
  optimizerSteps: number;
  rng: number[];
  /** Identifies the prepared data, so a resume on different data is refused. */
  dataFingerprint: string;
  tokensSeen: number;
  /** Labelled (loss-carrying) tokens trained on so far (absent in checkpoints written before it existed). */
  targetTokensSeen?: number;
  elapsedSeconds: number;
  /** Other state the run needs restored exactly (e.g. the LoRA dropout RNG). */
  extra?: unknown;
}

/** Full fine-tuning: the checkpoint's weights are a plain HF model.safetensors (config.json beside it). */
export const WEIGHTS_FILE = 'model.safetensors';
/** LoRA: only the adapters are trained and saved. */
export const ADAPTER_FILE = 'adapter_model.safetensors';
export const OPTIMIZER_FILE = 'optimizer.safetensors';
export const STATE_FILE = 'trainer_state.json';

/** Test hook: MIXTUNE_TEST_HANG_IN_CHECKPOINT=N blocks forever halfway through writing checkpoint N. */
function testHang(step: number): void {
  const at = process.env.MIXTUNE_TEST_HANG_IN_CHECKPOINT;
  if (at && Number(at) === step) {
    process.stderr.write(`checkpoint ${step}: test hook, hanging mid-write\n`);
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
  }
}

export function saveCheckpoint(
  outDir: string, state: TrainerState, trainable: Map<string, Tensor>, opt: AdamW, keepLast: number,
  opts: { weightsFile?: string; extraFiles?: (dir: string) => void } = {},
): string {
  const weightsFile = opts.weightsFile ?? WEIGHTS_FILE;
  mkdirSync(outDir, { recursive: true });
  const final = join(outDir, `checkpoint-${state.step}`);
  const tmp = join(outDir, `.checkpoint-${state.step}.tmp-${process.pid}`);
  rmSync(tmp, { recursive: true, force: true });
  try {
    mkdirSync(tmp);
    const weights = new Map<string, TensorToWrite>();
    for (const [name, t] of trainable) weights.set(name, { shape: t.shape, data: t.data });
    writeSafetensors(join(tmp, weightsFile), weights, { metadata: { format: 'pt', step: String(state.step) } });
    testHang(state.step);
    const moments = new Map<string, TensorToWrite>();
    for (const s of opt.slots) {
      moments.set(`${s.name}.exp_avg`, { shape: s.param.shape, data: s.m });
      moments.set(`${s.name}.exp_avg_sq`, { shape: s.param.shape, data: s.v });
    }
    writeSafetensors(join(tmp, OPTIMIZER_FILE), moments);
    opts.extraFiles?.(tmp);
    writeJsonAtomic(join(tmp, STATE_FILE), state);
    rmSync(final, { recursive: true, force: true });
    renameSync(tmp, final);
  } catch (e) {
    // a failed write (disk full) leaves no half checkpoint behind; the previous ones stay
    rmSync(tmp, { recursive: true, force: true });
    if (e instanceof MixtuneError) throw e;
    throw new MixtuneError(`${final}: cannot write the checkpoint: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  // Keep the newest keepLast checkpoints.
  const all = listCheckpoints(outDir);
  for (const old of all.slice(0, Math.max(0, all.length - keepLast))) rmSync(old.path, { recursive: true, force: true });
  return final;
}

export function listCheckpoints(outDir: string): { step: number; path: string }[] {
  if (!existsSync(outDir)) return [];
  return readdirSync(outDir)
    .map((name) => /^checkpoint-(\d+)$/.exec(name))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => ({ step: Number(m[1]), path: join(outDir, m[0]) }))
    .filter((c) => existsSync(join(c.path, STATE_FILE)))
    .sort((a, b) => a.step - b.step);
}

/** `--resume`: "latest" (or true) picks the newest complete checkpoint in outDir; else a path. */
export function resolveResume(outDir: string, resume: string): string {
  if (resume === 'latest' || resume === 'true') {
    const all = listCheckpoints(outDir);
    if (all.length === 0) throw new MixtuneError(`--resume: no checkpoint found in ${outDir}`);
    return all[all.length - 1]!.path;
  }
  if (!existsSync(resume) || !statSync(resume).isDirectory()) throw new MixtuneError(`--resume ${resume}: not a checkpoint folder`);
  return resume;
}

export function loadCheckpoint(dir: string, trainable: Map<string, Tensor>, opt: AdamW, weightsFile = WEIGHTS_FILE): TrainerState {
  const statePath = join(dir, STATE_FILE);
  if (!existsSync(statePath)) throw new MixtuneError(`${dir}: not a complete checkpoint (no ${STATE_FILE})`);
  let state: TrainerState;
  try {
    state = JSON.parse(readFileSync(statePath, 'utf8')) as TrainerState;
  } catch (e) {
    throw new MixtuneError(`${statePath}: corrupt trainer state (${(e as Error).message})`);
  }
  const w = readSafetensors(join(dir, weightsFile));
  for (const [name, t] of trainable) {
    const info = w.tensors.get(name);
    if (!info) throw new MixtuneError(`${join(dir, weightsFile)}: missing tensor ${name} (was it trained with the same model and LoRA settings?)`);
    if (info.shape.join(',') !== t.shape.join(',')) throw new MixtuneError(`${join(dir, weightsFile)}: tensor ${name} has shape [${info.shape}], expected [${t.shape}]`);
    t.data.set(w.read(name));
  }
  const o = readSafetensors(join(dir, OPTIMIZER_FILE));
  for (const s of opt.slots) {
    s.m.set(o.read(`${s.name}.exp_avg`));
    s.v.set(o.read(`${s.name}.exp_avg_sq`));
  }
  opt.stepCount = state.optimizerSteps;
  return state;
}
