// Learning-rate schedules: linear warmup (by steps or a ratio of the total) then cosine, linear
// or constant decay towards lr × minLrRatio. Every step gets a learning rate that moves the
// weights: warmup step s of W runs at lr·s/W (never 0), and the decay counts its progress from 0
// as HF's schedulers do — the first step after warmup runs at the peak, and the last of D decay
// steps at progress (D−1)/D, just above the floor (never lr 0 for a 1-step run).
export type ScheduleKind = 'cosine' | 'linear' | 'constant';

export interface ScheduleOptions {
  lr: number;
  totalSteps: number;
  warmupSteps: number;
  kind: ScheduleKind;
  minLrRatio: number;
}

/** Learning rate for optimizer step `step` (1-based). */
export function learningRate(step: number, o: ScheduleOptions): number {
  if (o.warmupSteps > 0 && step <= o.warmupSteps) return (o.lr * step) / o.warmupSteps;
  if (o.kind === 'constant') return o.lr;
  const decaySteps = Math.max(1, o.totalSteps - o.warmupSteps);
  const progress = Math.min(1, Math.max(0, (step - 1 - o.warmupSteps) / decaySteps));
  const minLr = o.lr * o.minLrRatio;
  const f = o.kind === 'cosine' ? 0.5 * (1 + Math.cos(Math.PI * progress)) : 1 - progress;
  return minLr + (o.lr - minLr) * f;
}

export function warmupStepsOf(totalSteps: number, warmup: { steps?: number; ratio?: number }): number {
  if (warmup.steps !== undefined) return Math.min(totalSteps, warmup.steps);
  return Math.min(totalSteps, Math.round(totalSteps * (warmup.ratio ?? 0)));
}
