// The Llama-family decoder (Llama, Mistral, Qwen2): RMSNorm, rotate-half RoPE, SwiGLU MLP,
// grouped-query attention, optional q/k/v bias, tied or untied output head.
//
// Two forward paths share the kernels:
// - `forward` (training / scoring): whole rows at once, records a tape so `backward` can fill the
//   parameter gradients.
// - `step` (inference): a few new tokens against a KV cache, no tape, logits of the last token.
import type { Kernels } from '../tensor/kernels.js';
import { Tape, Tensor } from '../tensor/tensor.js';
import type { Bf16Weights } from '../tensor/bf16-weights.js';
import { f32ToBf16 } from '../tensor/bf16.js';
import { Workspace } from '../tensor/workspace.js';
import * as op from '../tensor/ops.js';
import { Rng } from '../util/rng.js';
import { MixtuneError } from '../util/errors.js';
import { type LlamaConfig, type RopeScaling, parameterShapes, validateConfig } from './config.js';

export const IGNORE_INDEX = -100;

export interface ForwardOptions {
  /** Per-token RoPE positions [B*T]; default 0..T-1 in every row. */
  positions?: Int32Array;
  /** Packed groups / MISO parts (docs/design.md §2); absent = every row is one causal sequence. */
  layout?: op.AttentionLayout;
  /** Record a tape for `backward()` (default true). */
  grad?: boolean;
  /**
   * Activation (gradient) checkpointing: keep only each layer's input and recompute the layer's
   * activations during backward (~one extra forward per step; activation memory ~ 1 layer instead
   * of all). Gradients are identical.
   */
  checkpointing?: boolean;
  /**
   * The gradient is that of (sum of token losses) × lossScale. Default 1/count, i.e. the mean
   * token loss of this batch; gradient accumulation passes 1 / (labelled tokens in the whole step).
   */
  lossScale?: number;
}

export interface ForwardResult {
  /** Mean token loss over labelled tokens (NaN when there are none). */
  loss: number;
  lossSum: number;
  tokens: number;
}

/**
 * An extra path added to one linear layer's output (LoRA; src/model/lora.ts). Keyed in
 * `LlamaModel.adapters` by the layer's weight name, e.g. `model.layers.0.self_attn.q_proj.weight`.
 */
export interface LinearAdapter {
  /** Training/scoring: returns y + adapter(x), recorded on ctx.tape (x [rows, in], y [rows, out]). */
  forward(ctx: op.OpContext, x: Tensor, y: Tensor): Tensor;
  /** Inference: out[rows, out] += adapter(x) (no dropout). */
  addInto(kernels: Kernels, x: Float32Array, rows: number, out: Float32Array): void;
}

export class LlamaModel {
  readonly params = new Map<string, Tensor>();
  /** LoRA hook: adapters by linear weight name (empty = plain model). */
  readonly adapters = new Map<string, LinearAdapter>();
  /** training.precision bf16: packed bf16 copies of the weights for training forwards (null: fp32). */
  bf16: Bf16Weights | null = null;
  /** The generator of random ops inside the layers (LoRA dropout), replayed by activation checkpointing. */
  randomness: { get(): number[]; set(state: number[]): void } | null = null;
  readonly invFreq: Float32Array;
  private tape: Tape | null = null;
  /** Activation / gradient buffers of training forwards, reused from step to step. */
  readonly workspace = new Workspace();

  constructor(
    readonly config: LlamaConfig,
    public kernels: Kernels,
    /** fp32 values, or bf16 bits (a frozen matrix, `storeMatricesInBf16`). */
    weights?: Map<string, Float32Array | Uint16Array>,
    /** Where the weights came from (a path), for error messages. */
    readonly source = 'model',
  ) {
    validateConfig(config, source);
    for (const [name, shape] of parameterShapes(config)) {
      const data = weights?.get(name);
      const n = shape.reduce((a, b) => a * b, 1);
      if (weights && !data) throw new MixtuneError(`${source}: missing tensor ${name}`);
      if (data && data.length !== n) throw new MixtuneError(`${source}: tensor ${name} has ${data.length} values, expected ${n} [${shape}]`);
      this.params.set(name, new Tensor(data ?? new Float32Array(n), shape, !(data instanceof Uint16Array)));
    }
    this.invFreq = ropeInvFreq(config.headDim, config.ropeTheta, config.ropeScaling);
  }

  /** A randomly initialized model (normal(0, std) weights, unit norms, zero biases). */
  /** bf16Matrices: every matrix frozen and stored as bf16 right after it is drawn (see storeFrozenMatricesInBf16). */
  static random(config: LlamaConfig, kernels: Kernels, seed = 0, std = 0.02, o: { bf16Matrices?: boolean } = {}): LlamaModel {
    // Without weights the constructor allocates zeros; with bf16Matrices each matrix is drawn
    // into one fp32 scratch and kept as bf16 only.
    const weights = new Map<string, Float32Array | Uint16Array>();
    const rng = new Rng(seed);
    let scratch = new Float32Array(0);
    for (const [name, shape] of parameterShapes(config)) {
      const n = shape.reduce((a, b) => a * b, 1);
      const bf16 = o.bf16Matrices === true && shape.length === 2;
      if (bf16 && scratch.length < n) scratch = new Float32Array(n);
      const d = bf16 ? scratch.subarray(0, n) : new Float32Array(n);
      if (name.endsWith('norm.weight')) d.fill(1);
      else if (name.endsWith('.bias')) d.fill(0);
      else for (let i = 0; i < n; i++) d[i] = rng.normal() * std;
      weights.set(name, bf16 ? f32ToBf16(d) : d);
    }
    return new LlamaModel(config, kernels, weights);
  }

  /**
   * lora.base_dtype bf16: keeps every frozen matrix (embedding, projections, head) only as bf16
   * bits, half the memory of fp32; norms and biases stay fp32. Matrices that require a gradient
   * are left alone. Returns how many tensors were converted.
   */
  storeFrozenMatricesInBf16(): number {
    let n = 0;
    for (const t of this.params.values()) {
      if (t.shape.length !== 2 || t.requiresGrad || t.bf16) continue;
      t.storeBf16(f32ToBf16(t.data));
      n++;
    }
    return n;
  }

  /** Bytes the parameters occupy (fp32 or bf16 storage). */
  parameterBytes(): number {
    let b = 0;
    for (const t of this.params.values()) b += t.size * (t.bf16 ? 2 : 4);
    return b;
  }

  param(name: string): Tensor {
    const t = this.params.get(name);
    if (!t) throw new Error(`no parameter ${name}`);
    return t;
  }

  numParams(): number {
    let n = 0;
    for (const t of this.params.values()) n += t.size;
    return n;
  }

  private head(): Tensor {
    return this.config.tiedEmbeddings ? this.param('model.embed_tokens.weight') : this.param('lm_head.weight');
  }

  /**
   * Teacher-forced forward over B rows of T tokens: inputs [B*T], targets [B*T] (IGNORE_INDEX =
   * no loss). Returns the loss; with grad (default) a following `backward()` adds the parameter
   * gradients into each parameter's `.grad`.
   */
  forward(inputs: Int32Array, targets: Int32Array, batch: number, opts: ForwardOptions = {}): ForwardResult {
    const N = inputs.length;
    const T = N / batch;
    if (!Number.isInteger(T) || T < 1) throw new Error(`forward: ${N} tokens do not split into ${batch} rows`);
    if (targets.length !== N) throw new Error(`forward: ${targets.length} targets for ${N} inputs`);
    const positions = opts.positions ?? defaultPositions(batch, T);
    const tape = opts.grad === false ? null : new Tape();
    // A forward whose backward never ran leaves its buffers out: they are dead now.
    if (this.tape) this.dropTape();
    // bf16 applies to training forwards; evaluation, scoring and generation stay fp32
    const ctx: op.OpContext = { k: this.kernels, tape, ws: tape ? this.workspace : null, bf16: tape ? this.bf16 : null };

    const logits = this.trunkLogits(ctx, inputs, positions, batch, T, opts.layout, opts.checkpointing === true);
    let count = 0;
    for (let i = 0; i < N; i++) if (targets[i] !== IGNORE_INDEX) count++;
    const scale = opts.lossScale ?? (count > 0 ? 1 / count : 0);
    const { sum } = op.crossEntropy(ctx, logits, targets, IGNORE_INDEX, scale);
    this.tape = tape;
    return { loss: count > 0 ? sum / count : Number.NaN, lossSum: sum, tokens: count };
  }

  /** Adds d(loss)/d(param) into every trainable parameter's `.grad` (after `forward`). */
  backward(): void {
    if (!this.tape) throw new Error('backward() needs a preceding forward() with grad enabled');
    this.tape.backward();
    this.dropTape();
  }

  private dropTape(): void {
    this.tape?.clear();
    this.tape = null;
    this.workspace.giveAll();
  }

  zeroGrad(): void {
    for (const t of this.params.values()) t.zeroGrad();
  }

  /**
   * Logits [B*T, vocab] of a full forward without a tape (the no-KV-cache reference path); with a
   * layout, the layout-aware forward (packed groups / MISO, e.g. `mixtune score`).
   */
  logits(inputs: Int32Array, batch = 1, positions?: Int32Array, layout?: op.AttentionLayout): Float32Array {
    const T = inputs.length / batch;
    const ctx: op.OpContext = { k: this.kernels, tape: null };
    return this.trunkLogits(ctx, inputs, positions ?? defaultPositions(batch, T), batch, T, layout).data;
  }

  /** A linear layer `name` (without .weight) of the trunk, plus its adapter if any (LoRA hook). */
  private linear(ctx: op.OpContext, x: Tensor, name: string): Tensor {
    const y = op.linear(ctx, x, this.param(name + '.weight'), this.params.get(name + '.bias'));
    const ad = this.adapters.get(name + '.weight');
    return ad ? ad.forward(ctx, x, y) : y;
  }

  private trunkLogits(ctx: op.OpContext, inputs: Int32Array, positions: Int32Array, batch: number, T: number, layout?: op.AttentionLayout, checkpointing = false): Tensor {
    const c = this.config;
    checkTokenIds(inputs, c.vocabSize);
    let x = op.embedding(ctx, inputs, this.param('model.embed_tokens.weight'));
    const shape: op.AttentionShape = { batch, seq: T, nHeads: c.nHeads, nKvHeads: c.nKvHeads, headDim: c.headDim };
    for (let l = 0; l < c.nLayers; l++) {
      x = checkpointing && ctx.tape ? this.checkpointedLayer(ctx, x, l, positions, shape, layout) : this.layer(ctx, x, l, positions, shape, layout);
    }
    const xf = op.rmsnorm(ctx, x, this.param('model.norm.weight'), c.normEps);
    return op.linear(ctx, xf, this.head(), null, 'lm_head');
  }

  /** One decoder layer: x + attn(norm x), then + mlp(norm x). */
  private layer(ctx: op.OpContext, x: Tensor, l: number, positions: Int32Array, shape: op.AttentionShape, layout?: op.AttentionLayout): Tensor {
    const c = this.config;
    const p = `model.layers.${l}.`;
    const h = op.rmsnorm(ctx, x, this.param(p + 'input_layernorm.weight'), c.normEps);
    const q = this.linear(ctx, h, p + 'self_attn.q_proj');
    const k = this.linear(ctx, h, p + 'self_attn.k_proj');
    const v = this.linear(ctx, h, p + 'self_attn.v_proj');
    op.ropeInPlace(ctx, q, positions, c.nHeads, c.headDim, this.invFreq);
    op.ropeInPlace(ctx, k, positions, c.nKvHeads, c.headDim, this.invFreq);
    const a = op.attention(ctx, q, k, v, shape, layout);
    x = op.add(ctx, x, this.linear(ctx, a, p + 'self_attn.o_proj'));
    const h2 = op.rmsnorm(ctx, x, this.param(p + 'post_attention_layernorm.weight'), c.normEps);
    const g = this.linear(ctx, h2, p + 'mlp.gate_proj');
    const u = this.linear(ctx, h2, p + 'mlp.up_proj');
    return op.add(ctx, x, this.linear(ctx, op.swiglu(ctx, g, u), p + 'mlp.down_proj'));
  }

  /**
   * The layer run without recording its activations; its backward recomputes them from the saved
   * input with a private tape and backpropagates through it. Randomness inside the layer (LoRA
   * dropout) is replayed: the generator state before the layer is restored for the recomputation.
   */
  private checkpointedLayer(ctx: op.OpContext, x: Tensor, l: number, positions: Int32Array, shape: op.AttentionShape, layout?: op.AttentionLayout): Tensor {
    const rngBefore = this.randomness?.get();
    const ws = ctx.ws ?? null;
    const before = ws?.mark();
    // dropout must run as in training although nothing is recorded: a tape that is dropped at once
    const y = this.layer({ k: ctx.k, tape: new Tape(), bf16: ctx.bf16 ?? null, ws }, x, l, positions, shape, layout);
    if (ws) ws.releaseSince(before!, [y.data]); // only the output stays
    const out = new Tensor(y.data, y.shape, true);
    ctx.tape!.record(() => {
      if (!out.grad) return;
      const rngAfter = this.randomness?.get();
      if (rngBefore !== undefined) this.randomness!.set(rngBefore);
      const local = new Tape();
      const mark = ws?.mark();
      const yr = this.layer({ k: ctx.k, tape: local, bf16: ctx.bf16 ?? null, ws }, x, l, positions, shape, layout);
      if (rngAfter !== undefined) this.randomness!.set(rngAfter);
      yr.grad = out.grad;
      local.backward();
      if (ws) ws.releaseSince(mark!, [x.grad]); // the recomputed activations are dead; x's gradient is not
    });
    return out;
  }

  // ---- inference with a KV cache ----

  newCache(maxLen = this.config.maxSeqLen): KvCache {
    const c = this.config;
    const kvDim = c.nKvHeads * c.headDim;
    return {
      maxLen,
      length: 0,
      k: Array.from({ length: c.nLayers }, () => new Float32Array(maxLen * kvDim)),
      v: Array.from({ length: c.nLayers }, () => new Float32Array(maxLen * kvDim)),
    };
  }

  /**
   * Runs `tokens` (positions cache.length, cache.length+1, ...) through the model, appends their
   * keys/values to the cache, and returns the logits of the last token [vocab].
   */
  step(tokens: Int32Array, cache: KvCache): Float32Array {
    const c = this.config;
    const k = this.kernels;
    const n = tokens.length;
    const start = cache.length;
    if (n === 0) throw new Error('step: no tokens');
    if (start + n > cache.maxLen) throw new MixtuneError(`context length exceeded: ${start + n} > ${cache.maxLen} tokens`);
    checkTokenIds(tokens, c.vocabSize);
    const dim = c.dim;
    const qDim = c.nHeads * c.headDim;
    const kvDim = c.nKvHeads * c.headDim;
    const pos = new Int32Array(n);
    for (let i = 0; i < n; i++) pos[i] = start + i;
    const Tk = start + n;

    const x = new Float32Array(n * dim);
    const h = new Float32Array(n * dim);
    const rstd = new Float32Array(n);
    const q = new Float32Array(n * qDim);
    const att = new Float32Array(n * qDim);
    const lse = new Float32Array(c.nHeads * n);
    const g = new Float32Array(n * c.hiddenDim);
    const u = new Float32Array(n * c.hiddenDim);
    k.embeddingForward(tokens, this.param('model.embed_tokens.weight').data, dim, x);
    const scale = 1 / Math.sqrt(c.headDim);
    for (let l = 0; l < c.nLayers; l++) {
      const p = `model.layers.${l}.`;
      k.rmsnormForward(x, this.param(p + 'input_layernorm.weight').data, n, dim, c.normEps, h, rstd);
      const kc = cache.k[l]!.subarray(start * kvDim, Tk * kvDim);
      const vc = cache.v[l]!.subarray(start * kvDim, Tk * kvDim);
      this.project(h, n, p + 'self_attn.q_proj', q);
      this.project(h, n, p + 'self_attn.k_proj', kc);
      this.project(h, n, p + 'self_attn.v_proj', vc);
      k.rope(q, pos, n, c.nHeads, c.headDim, this.invFreq, 1);
      k.rope(kc, pos, n, c.nKvHeads, c.headDim, this.invFreq, 1);
      k.attentionForward(
        q, cache.k[l]!.subarray(0, Tk * kvDim), cache.v[l]!.subarray(0, Tk * kvDim), att, lse,
        1, n, Tk, c.nHeads, c.nKvHeads, c.headDim, scale, start,
      );
      this.outputAndMlp(p, n, att, x, h, rstd, g, u);
    }
    cache.length = Tk;
    return this.lastTokenLogits(x, n);
  }

  /**
   * MISO decoding (docs/design.md §2) with one KV cache per input: caches[i] holds input i's keys
   * (prefilled, with their own positions) followed by the output keys so far. Runs `tokens` (the
   * next output tokens, RoPE positions `positions`) through the model, appends their keys/values to
   * EVERY cache, and returns the logits of the last token [vocab]. Each query attends per input i to
   * [input_i keys ; output keys up to itself] and the results A_i are mixed by `weighting`:
   * uniform O = (1/n) Σ_i A_i; fid O = Σ_i Z_i A_i / Σ_i Z_i (Z_i = that softmax's sum of
   * exponentials, i.e. exp(lse_i)); vanilla = one softmax over every input's keys and the output
   * keys counted once (needs `inputLengths`: how many keys of each cache belong to its input).
   * With one cache this is `step` with explicit positions, so it also prefills one input
   * (caches = [cache_i], positions of input i). Uses the same projections (and LoRA adapters) as `step`.
   */
  stepMiso(
    tokens: Int32Array, positions: Int32Array, caches: readonly KvCache[],
    opts: { weighting?: op.Weighting; inputLengths?: readonly number[] } = {},
  ): Float32Array {
    const c = this.config;
    const k = this.kernels;
    const n = tokens.length;
    const nIn = caches.length;
    const weighting = opts.weighting ?? 'uniform';
    if (n === 0) throw new Error('stepMiso: no tokens');
    if (nIn === 0) throw new Error('stepMiso: no caches');
    if (positions.length !== n) throw new Error(`stepMiso: ${positions.length} positions for ${n} tokens`);
    if (!(weighting in op.WEIGHTING_CODE)) throw new Error(`stepMiso: unknown weighting ${String(weighting)}`);
    for (const cache of caches) {
      if (cache.length + n > cache.maxLen) throw new MixtuneError(`context length exceeded: ${cache.length + n} > ${cache.maxLen} tokens`);
    }
    const vanilla = weighting === 'vanilla' && nIn > 1;
    const inLens = opts.inputLengths ?? [];
    if (vanilla) {
      if (inLens.length !== nIn) throw new Error('stepMiso: vanilla weighting needs inputLengths for every cache');
      const nOut = caches[0]!.length - inLens[0]!;
      caches.forEach((cache, i) => {
        const L = inLens[i]!;
        if (!(L >= 1 && L <= cache.length) || cache.length - L !== nOut) throw new Error(`stepMiso: cache ${i} holds ${cache.length} keys, inconsistent with input length ${L} and ${nOut} output keys`);
      });
    }
    checkTokenIds(tokens, c.vocabSize);
    const dim = c.dim;
    const H = c.nHeads;
    const D = c.headDim;
    const qDim = H * D;
    const kvDim = c.nKvHeads * D;

    const x = new Float32Array(n * dim);
    const h = new Float32Array(n * dim);
    const rstd = new Float32Array(n);
    const q = new Float32Array(n * qDim);
    const kNew = new Float32Array(n * kvDim);
    const vNew = new Float32Array(n * kvDim);
    const att = new Float32Array(n * qDim);
    // Per part p: its attention result A_p [n, qDim] and log-sum-exp [H, n] (lse row h*n + t).
    const nParts = vanilla ? nIn + 1 : nIn;
    const parts = nIn === 1 && !vanilla ? [att] : Array.from({ length: nParts }, () => new Float32Array(n * qDim));
    const lses = Array.from({ length: nParts }, () => new Float32Array(H * n));
    const lse1 = new Float32Array(H);
    const w = new Float64Array(nParts);
    const g = new Float32Array(n * c.hiddenDim);
    const u = new Float32Array(n * c.hiddenDim);
    k.embeddingForward(tokens, this.param('model.embed_tokens.weight').data, dim, x);
    const scale = 1 / Math.sqrt(D);
    for (let l = 0; l < c.nLayers; l++) {
      const p = `model.layers.${l}.`;
      k.rmsnormForward(x, this.param(p + 'input_layernorm.weight').data, n, dim, c.normEps, h, rstd);
      this.project(h, n, p + 'self_attn.q_proj', q);
      this.project(h, n, p + 'self_attn.k_proj', kNew);
      this.project(h, n, p + 'self_attn.v_proj', vNew);
      k.rope(q, positions, n, H, D, this.invFreq, 1);
      k.rope(kNew, positions, n, c.nKvHeads, D, this.invFreq, 1);
      for (const cache of caches) {
        cache.k[l]!.set(kNew, cache.length * kvDim);
        cache.v[l]!.set(vNew, cache.length * kvDim);
      }
      if (!vanilla) {
        // A_i: causal attention over [input_i ; output] of cache i.
        caches.forEach((cache, i) => {
          const Tk = cache.length + n;
          k.attentionForward(q, cache.k[l]!.subarray(0, Tk * kvDim), cache.v[l]!.subarray(0, Tk * kvDim), parts[i]!, lses[i]!,
            1, n, Tk, H, c.nKvHeads, D, scale, cache.length);
        });
      } else {
        // Per-part states: every input's keys (all visible to the output queries) and the output keys once.
        caches.forEach((cache, i) => {
          const L = inLens[i]!;
          const kIn = cache.k[l]!.subarray(0, L * kvDim);
          const vIn = cache.v[l]!.subarray(0, L * kvDim);
          for (let t = 0; t < n; t++) {
            k.attentionForward(q.subarray(t * qDim, (t + 1) * qDim), kIn, vIn, parts[i]!.subarray(t * qDim, (t + 1) * qDim), lse1,
              1, 1, L, H, c.nKvHeads, D, scale, L - 1);
            for (let hh = 0; hh < H; hh++) lses[i]![hh * n + t] = lse1[hh]!;
          }
        });
        const c0 = caches[0]!;
        const L0 = inLens[0]!;
        const To = c0.length + n - L0;
        k.attentionForward(q, c0.k[l]!.subarray(L0 * kvDim, (L0 + To) * kvDim), c0.v[l]!.subarray(L0 * kvDim, (L0 + To) * kvDim),
          parts[nIn]!, lses[nIn]!, 1, n, To, H, c.nKvHeads, D, scale, To - n);
      }
      if (parts[0] !== att) {
        // Mix: uniform weights 1/n; fid and vanilla weights proportional to exp(lse_p).
        for (let t = 0; t < n; t++) {
          for (let hh = 0; hh < H; hh++) {
            if (weighting === 'uniform') w.fill(1 / nParts);
            else {
              let m = -Infinity;
              for (let i = 0; i < nParts; i++) m = Math.max(m, lses[i]![hh * n + t]!);
              let s = 0;
              for (let i = 0; i < nParts; i++) s += w[i] = Math.exp(lses[i]![hh * n + t]! - m);
              for (let i = 0; i < nParts; i++) w[i]! /= s;
            }
            const o = t * qDim + hh * D;
            for (let d = 0; d < D; d++) {
              let acc = 0;
              for (let i = 0; i < nParts; i++) acc += w[i]! * parts[i]![o + d]!;
              att[o + d] = acc;
            }
          }
        }
      }
      this.outputAndMlp(p, n, att, x, h, rstd, g, u);
    }
    for (const cache of caches) cache.length += n;
    return this.lastTokenLogits(x, n);
  }

  /**
   * The rest of a decoder layer after attention, in place on the residual stream x [n, dim]:
   * x += o_proj(att); x += down(silu(gate(norm x)) * up(norm x)) (LoRA adapters included).
   * h, rstd, g, u are scratch buffers.
   */
  private outputAndMlp(p: string, n: number, att: Float32Array, x: Float32Array, h: Float32Array, rstd: Float32Array, g: Float32Array, u: Float32Array): void {
    const c = this.config;
    const k = this.kernels;
    k.gemm(false, true, n, c.dim, c.nHeads * c.headDim, 1, att, this.param(p + 'self_attn.o_proj.weight').data, 1, x);
    this.adapters.get(p + 'self_attn.o_proj.weight')?.addInto(k, att, n, x);
    k.rmsnormForward(x, this.param(p + 'post_attention_layernorm.weight').data, n, c.dim, c.normEps, h, rstd);
    this.project(h, n, p + 'mlp.gate_proj', g);
    this.project(h, n, p + 'mlp.up_proj', u);
    k.swigluForward(g, u, g.length, g);
    k.gemm(false, true, n, c.dim, c.hiddenDim, 1, g, this.param(p + 'mlp.down_proj.weight').data, 1, x);
    this.adapters.get(p + 'mlp.down_proj.weight')?.addInto(k, g, n, x);
  }

  /** Logits [vocab] of the last of n rows of the residual stream x (final norm + head). */
  private lastTokenLogits(x: Float32Array, n: number): Float32Array {
    const c = this.config;
    const normed = new Float32Array(c.dim);
    const rstd = new Float32Array(1);
    this.kernels.rmsnormForward(x.subarray((n - 1) * c.dim, n * c.dim), this.param('model.norm.weight').data, 1, c.dim, c.normEps, normed, rstd);
    const logits = new Float32Array(c.vocabSize);
    this.kernels.gemm(false, true, 1, c.vocabSize, c.dim, 1, normed, this.head().data, 0, logits);
    return logits;
  }

  /** out = x · Wᵀ (+ bias) for the linear layer `name` (without the .weight suffix). */
  private project(x: Float32Array, rows: number, name: string, out: Float32Array): void {
    const W = this.param(name + '.weight');
    const [outF, inF] = W.shape as [number, number];
    this.kernels.gemm(false, true, rows, outF, inF, 1, x, W.data, 0, out);
    const b = this.params.get(name + '.bias');
    if (b) for (let r = 0; r < rows; r++) for (let j = 0; j < outF; j++) out[r * outF + j]! += b.data[j]!;
    this.adapters.get(name + '.weight')?.addInto(this.kernels, x, rows, out);
  }
}

export interface KvCache {
  maxLen: number;
  /** Tokens already in the cache. */
  length: number;
  /** Per layer [maxLen, nKvHeads*headDim], rotated keys. */
  k: Float32Array[];
  v: Float32Array[];
}

/**
 * invFreq[j] = theta^(-2j/headDim) in fp32, as llama2.c and transformers compute it, then
 * rope_scaling as transformers applies it (linear: divide by factor; llama3: divide the low
 * frequencies, keep the high ones, interpolate in between).
 */
export function ropeInvFreq(headDim: number, theta: number, scaling?: RopeScaling): Float32Array {
  const inv = new Float32Array(headDim / 2);
  for (let j = 0; j < headDim / 2; j++) inv[j] = 1 / Math.fround(Math.pow(theta, Math.fround((2 * j) / headDim)));
  if (scaling?.type === 'linear') for (let j = 0; j < inv.length; j++) inv[j] = inv[j]! / scaling.factor;
  if (scaling?.type === 'llama3') {
    const { factor, lowFreqFactor: lo, highFreqFactor: hi, originalMaxPositionEmbeddings: oldLen } = scaling;
    const lowWavelen = oldLen / lo;
    const highWavelen = oldLen / hi;
    for (let j = 0; j < inv.length; j++) {
      const f = inv[j]!;
      const wavelen = (2 * Math.PI) / f;
      if (wavelen < highWavelen) continue;
      if (wavelen > lowWavelen) inv[j] = f / factor;
      else {
        const smooth = (oldLen / wavelen - lo) / (hi - lo);
        inv[j] = (1 - smooth) * (f / factor) + smooth * f;
      }
    }
  }
  return inv;
}

function defaultPositions(batch: number, T: number): Int32Array {
  const pos = new Int32Array(batch * T);
  for (let b = 0; b < batch; b++) for (let t = 0; t < T; t++) pos[b * T + t] = t;
  return pos;
}

function checkTokenIds(ids: Int32Array, vocab: number): void {
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (id < 0 || id >= vocab) throw new MixtuneError(`token id ${id} at index ${i} is outside the vocabulary [0, ${vocab})`);
  }
}
