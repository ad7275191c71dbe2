// LoRA (Hu et al. 2021), PEFT-compatible: for each targeted linear layer W [out, in],
//   y = x Wᵀ (+ b) + scale · dropout(x) Aᵀ Bᵀ,   A [r, in], B [out, r], scale = alpha / r.
// The base model is frozen (requiresGrad = false); only A and B get gradients and optimizer state.
// A is initialized like PEFT's default (kaiming-uniform with a = √5: U(−1/√in, 1/√in)) or
// normal(0, 1/r) ('gaussian'), B = 0, so a fresh adapter leaves the model's output unchanged.
//
// Names follow PEFT's saved adapters (adapter_model.safetensors):
//   base_model.model.model.layers.{i}.self_attn.q_proj.lora_A.weight  [r, in]
//   base_model.model.model.layers.{i}.self_attn.q_proj.lora_B.weight  [out, r]
//
// Dropout is active only when the adapters are in training mode (`setLoraTraining`, default on)
// AND the forward records a tape (model.forward with grad): scoring/eval forwards
// (grad: false), model.logits and KV-cache generation never drop. Masks come from a seeded Rng,
// so a run is deterministic given the seed and the sequence of forward calls.
import type { Kernels } from '../tensor/kernels.js';
import { Tensor } from '../tensor/tensor.js';
import * as op from '../tensor/ops.js';
import { Rng } from '../util/rng.js';
import { MixtuneError } from '../util/errors.js';
import type { LinearAdapter, LlamaModel } from './llama.js';

export type LoraTarget = 'q' | 'k' | 'v' | 'o' | 'gate' | 'up' | 'down';

/** LoRA target -> the transformers module name inside a decoder layer. */
export const LORA_MODULES: Record<LoraTarget, string> = {
  q: 'self_attn.q_proj', k: 'self_attn.k_proj', v: 'self_attn.v_proj', o: 'self_attn.o_proj',
  gate: 'mlp.gate_proj', up: 'mlp.up_proj', down: 'mlp.down_proj',
};

export interface LoraOptions {
  rank: number;
  alpha: number;
  /** Dropout probability on the adapter input, in [0, 1) (default 0). */
  dropout?: number;
  targets: LoraTarget[];
  /** Seed of the A initialization and of the dropout masks (default 0). */
  seed?: number;
  /** A's initialization: PEFT's default kaiming-uniform, or normal(0, 1/r) (default 'kaiming'). */
  init?: 'kaiming' | 'gaussian';
}

/** Shared by every adapter of one model. */
interface LoraState {
  rank: number;
  alpha: number;
  dropout: number;
  targets: LoraTarget[];
  training: boolean;
  rng: Rng;
  /** Base parameters' requiresGrad before applyLora (restored by mergeLora/removeLora). */
  frozen: Map<string, boolean>;
}

/** One layer's adapter; `name` is the PEFT prefix, e.g. base_model.model.model.layers.0.self_attn.q_proj. */
export class LoraAdapter implements LinearAdapter {
  constructor(
    readonly name: string,
    readonly A: Tensor,
    readonly B: Tensor,
    readonly scale: number,
    private readonly state: LoraState,
  ) {}

  get rank(): number {
    return this.A.shape[0]!;
  }

  forward(ctx: op.OpContext, x: Tensor, y: Tensor): Tensor {
    const p = this.state.dropout;
    const xd = p > 0 && this.state.training && ctx.tape !== null ? dropout(ctx, x, p, this.state.rng) : x;
    const t = op.linear(ctx, xd, this.A); // [rows, r]
    // y += scale · t Bᵀ in place: no [rows, out] temporaries (and no gradients of that size) per
    // adapter. The base linear's own backward needs only y's gradient, never y itself.
    const B = this.B;
    const s = this.scale;
    const r = this.rank;
    const outF = B.shape[0]!;
    const rows = t.size / r;
    ctx.k.gemm(false, true, rows, outF, r, s, t.data, B.data, 1, y.data);
    if (ctx.tape && (t.requiresGrad || B.requiresGrad)) {
      y.requiresGrad = true;
      ctx.tape.record(() => {
        const g = y.grad;
        if (!g) return;
        if (B.requiresGrad) ctx.k.gemm(true, false, outF, r, rows, s, g, t.data, 1, B.gradBuffer());
        if (t.requiresGrad) ctx.k.gemm(false, false, rows, r, outF, s, g, B.data, 1, t.gradBuffer());
      });
    }
    return y;
  }

  addInto(k: Kernels, x: Float32Array, rows: number, out: Float32Array): void {
    const r = this.rank;
    const [outF] = this.B.shape as [number, number];
    const inF = this.A.shape[1]!;
    const t = new Float32Array(rows * r);
    k.gemm(false, true, rows, r, inF, 1, x, this.A.data, 0, t);
    k.gemm(false, true, rows, outF, r, this.scale, t, this.B.data, 1, out);
  }
}

// ---- small differentiable ops (composed with src/tensor/ops.ts) ----

/** Inverted dropout: out = x · mask / (1 − p), mask ~ Bernoulli(1 − p) from rng. */
export function dropout(ctx: op.OpContext, x: Tensor, p: number, rng: Rng): Tensor {
  const keep = 1 / (1 - p);
  const mask = new Float32Array(x.size);
  for (let i = 0; i < mask.length; i++) mask[i] = rng.float() >= p ? keep : 0;
  const out = Tensor.zeros(x.shape);
  for (let i = 0; i < mask.length; i++) out.data[i] = x.data[i]! * mask[i]!;
  if (ctx.tape && x.requiresGrad) {
    out.requiresGrad = true;
    ctx.tape.record(() => {
      const g = out.grad;
      if (!g) return;
      const dx = x.gradBuffer();
      for (let i = 0; i < g.length; i++) dx[i]! += g[i]! * mask[i]!;
    });
  }
  return out;
}


// ---- applying, inspecting, merging ----

const states = new WeakMap<LlamaModel, LoraState>();

function pefName(layerWeight: string): string {
  // model.layers.0.self_attn.q_proj.weight -> base_model.model.model.layers.0.self_attn.q_proj
  return 'base_model.model.' + layerWeight.slice(0, -'.weight'.length);
}

/**
 * Adds LoRA adapters to every targeted linear layer and freezes all base parameters. Throws
 * MixtuneError on bad options or when the model already has adapters.
 */
export function applyLora(model: LlamaModel, o: LoraOptions): Map<string, LoraAdapter> {
  const bad = (what: string): never => {
    throw new MixtuneError(`LoRA: ${what}`);
  };
  if (model.adapters.size > 0 || states.has(model)) bad('the model already has adapters (merge or remove them first)');
  if (!Number.isInteger(o.rank) || o.rank < 1) bad(`rank must be a positive integer, got ${o.rank}`);
  if (!(o.alpha > 0) || !Number.isFinite(o.alpha)) bad(`alpha must be a positive number, got ${o.alpha}`);
  const p = o.dropout ?? 0;
  if (!(p >= 0 && p < 1)) bad(`dropout must be in [0, 1), got ${p}`);
  if (!Array.isArray(o.targets) || o.targets.length === 0) bad('targets must name at least one of q, k, v, o, gate, up, down');
  for (const t of o.targets) if (!(t in LORA_MODULES)) bad(`unknown target module ${JSON.stringify(t)} (use q, k, v, o, gate, up, down)`);
  const init = o.init ?? 'kaiming';
  if (init !== 'kaiming' && init !== 'gaussian') bad(`init must be kaiming or gaussian, got ${JSON.stringify(init)}`);

  const frozen = new Map<string, boolean>();
  for (const [name, t] of model.params) {
    frozen.set(name, t.requiresGrad);
    t.requiresGrad = false;
    t.grad = null;
  }
  const state: LoraState = {
    rank: o.rank, alpha: o.alpha, dropout: p, targets: [...new Set(o.targets)], training: true, rng: new Rng((o.seed ?? 0) ^ 0x10ca),
    frozen,
  };
  states.set(model, state);
  // activation checkpointing replays the dropout masks of a recomputed layer from this generator
  model.randomness = { get: () => state.rng.getState(), set: (st) => state.rng.setState(st) };
  const initRng = new Rng(o.seed ?? 0);
  const scale = o.alpha / o.rank;
  const out = new Map<string, LoraAdapter>();
  for (let l = 0; l < model.config.nLayers; l++) {
    for (const t of LORA_MODULES_ORDER) {
      if (!state.targets.includes(t)) continue;
      const wName = `model.layers.${l}.${LORA_MODULES[t]}.weight`;
      const [outF, inF] = model.param(wName).shape as [number, number];
      const A = Tensor.zeros([o.rank, inF], true);
      if (init === 'kaiming') {
        const bound = 1 / Math.sqrt(inF);
        for (let i = 0; i < A.size; i++) A.data[i] = (initRng.float() * 2 - 1) * bound;
      } else {
        for (let i = 0; i < A.size; i++) A.data[i] = initRng.normal() / o.rank;
      }
      const B = Tensor.zeros([outF, o.rank], true);
      const ad = new LoraAdapter(pefName(wName), A, B, scale, state);
      model.adapters.set(wName, ad);
      out.set(wName, ad);
    }
  }
  return out;
}

const LORA_MODULES_ORDER: LoraTarget[] = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'];

/** The LoRA settings of a model with adapters (null without): what an adapter folder records. */
export function loraSettings(model: LlamaModel): { rank: number; alpha: number; dropout: number; targets: LoraTarget[] } | null {
  const s = states.get(model);
  if (!s || loraAdapters(model).length === 0) return null;
  return { rank: s.rank, alpha: s.alpha, dropout: s.dropout, targets: [...s.targets] };
}

function loraAdapters(model: LlamaModel): LoraAdapter[] {
  return [...model.adapters.values()].filter((a): a is LoraAdapter => a instanceof LoraAdapter);
}

/** The dropout RNG state (saved in checkpoints so a resumed run draws the same masks); null without LoRA. */
export function loraRngState(model: LlamaModel): number[] | null {
  return states.get(model)?.rng.getState() ?? null;
}

export function setLoraRngState(model: LlamaModel, rngState: number[]): void {
  const st = states.get(model);
  if (!st) throw new Error('setLoraRngState: the model has no LoRA adapters');
  st.rng.setState(rngState);
}

export function hasLora(model: LlamaModel): boolean {
  return loraAdapters(model).length > 0;
}

/** Dropout on (true, the default after applyLora) or off (eval). */
export function setLoraTraining(model: LlamaModel, training: boolean): void {
  const s = states.get(model);
  if (s) s.training = training;
}

/**
 * The tensors an optimizer should update: with LoRA, only the adapters (PEFT names
 * `...q_proj.lora_A.weight` / `.lora_B.weight`); without, every parameter that requires a gradient.
 */
export function trainableParams(model: LlamaModel): Map<string, Tensor> {
  const m = new Map<string, Tensor>();
  const ads = loraAdapters(model);
  if (ads.length > 0) {
    for (const a of ads) {
      m.set(`${a.name}.lora_A.weight`, a.A);
      m.set(`${a.name}.lora_B.weight`, a.B);
    }
    return m;
  }
  for (const [n, t] of model.params) if (t.requiresGrad) m.set(n, t);
  return m;
}

/** Zeroes the adapters' gradients (model.zeroGrad covers only base parameters). */
export function zeroLoraGrad(model: LlamaModel): void {
  for (const a of loraAdapters(model)) {
    a.A.zeroGrad();
    a.B.zeroGrad();
  }
}

/**
 * Folds every adapter into its base weight, W += scale · B · A (the kernels' gemm), removes the
 * adapters and restores the base parameters' requiresGrad. The model is then a plain model
 * (saveHfModel exports a plain HF folder).
 */
export function mergeLora(model: LlamaModel): void {
  for (const [wName, a] of model.adapters) {
    if (!(a instanceof LoraAdapter)) continue;
    const W = model.param(wName);
    const [outF, inF] = W.shape as [number, number];
    W.toFp32(); // a bf16-stored base: the merged weight is fp32 (rounding it would erase small updates)
    model.kernels.gemm(false, false, outF, inF, a.rank, a.scale, a.B.data, a.A.data, 1, W.data);
  }
  removeLora(model);
}

/** Drops the adapters without merging and unfreezes the base parameters. */
export function removeLora(model: LlamaModel): void {
  for (const [wName, a] of [...model.adapters]) if (a instanceof LoraAdapter) model.adapters.delete(wName);
  const s = states.get(model);
  if (s) for (const [name, was] of s.frozen) model.param(name).requiresGrad = was;
  states.delete(model);
  model.randomness = null;
}
