// AdamW over a model's trainable parameters (decoupled weight decay, bias correction), with the
// update itself done by the fused `adamw` kernel. Norm weights and biases get no weight decay.
import type { Kernels } from '../tensor/kernels.js';
import type { Tensor } from '../tensor/tensor.js';

export interface AdamWOptions {
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /** Which parameters are exempt from weight decay (default: norms and biases). */
  noDecay?: (name: string) => boolean;
}

export const defaultNoDecay = (name: string): boolean => name.endsWith('.bias') || /norm\.weight$/.test(name);

interface Slot {
  name: string;
  param: Tensor;
  m: Float32Array;
  v: Float32Array;
  decay: boolean;
}

export class AdamW {
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  /** Number of updates done so far. */
  stepCount = 0;
  readonly slots: Slot[] = [];

  constructor(
    params: Map<string, Tensor>,
    private readonly kernels: Kernels,
    opts: AdamWOptions = {},
  ) {
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.999;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0;
    const noDecay = opts.noDecay ?? defaultNoDecay;
    for (const [name, param] of params) {
      if (!param.requiresGrad) continue;
      this.slots.push({ name, param, m: new Float32Array(param.size), v: new Float32Array(param.size), decay: !noDecay(name) });
    }
  }

  /** Applies one update with learning rate lr to every parameter that has a gradient. */
  step(lr: number): void {
    this.stepCount++;
    for (const s of this.slots) {
      if (!s.param.grad) continue;
      this.kernels.adamw(
        s.param.data, s.param.grad, s.m, s.v, s.param.size,
        lr, this.beta1, this.beta2, this.eps, s.decay ? this.weightDecay : 0, this.stepCount,
      );
    }
  }
}

/** Global L2 norm of all gradients; if maxNorm > 0 and the norm exceeds it, scales them down. */
export function clipGradNorm(params: Iterable<Tensor>, maxNorm: number): number {
  let sq = 0;
  const list = [...params];
  for (const p of list) {
    const g = p.grad;
    if (!g) continue;
    let s = 0;
    for (let i = 0; i < g.length; i++) s += g[i]! * g[i]!;
    sq += s;
  }
  const norm = Math.sqrt(sq);
  if (maxNorm > 0 && norm > maxNorm) {
    const f = maxNorm / (norm + 1e-6);
    for (const p of list) {
      const g = p.grad;
      if (g) for (let i = 0; i < g.length; i++) g[i]! *= f;
    }
  }
  return norm;
}
