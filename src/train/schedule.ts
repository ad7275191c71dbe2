// Learning-rate schedules: linear warmup (by steps or a ratio of the total) then cosine, linear
// or constant, decaying to lr × minLrRatio at the last step.
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
  const progress = Math.min(1, Math.max(0, (step - o.warmupSteps) / decaySteps));
  const minLr = o.lr * o.minLrRatio;
  const f = o.kind === 'cosine' ? 0.5 * (1 + Math.cos(Math.PI * progress)) : 1 - progress;
  return minLr + (o.lr - minLr) * f;
}

export function warmupStepsOf(totalSteps: number, warmup: { steps?: number; ratio?: number }): number {
  if (warmup.steps !== undefined) return Math.min(totalSteps, warmup.steps);
  return Math.min(totalSteps, Math.round(totalSteps * (warmup.ratio ?? 0)));
}
