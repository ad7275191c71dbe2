import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LlamaModel, IGNORE_INDEX } from '../src/model/llama.js';
import type { LlamaConfig } from '../src/model/config.js';
import { nativeKernels } from '../src/tensor/native.js';
import { referenceKernels } from '../src/tensor/reference.js';
import { AdamW, clipGradNorm } from '../src/train/adamw.js';
import { Rng } from '../src/util/rng.js';
import { assertClose } from './util.js';

function tinyConfig(over: Partial<LlamaConfig> = {}): LlamaConfig {
  return {
    vocabSize: 37, dim: 24, hiddenDim: 40, nLayers: 2, nHeads: 4, nKvHeads: 2, headDim: 6,
    maxSeqLen: 64, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: false, qkvBias: false, ...over,
  };
}

function batchOf(rng: Rng, B: number, T: number, V: number): { inputs: Int32Array; targets: Int32Array } {
  const inputs = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    const row = Array.from({ length: T + 1 }, () => rng.int(V));
    for (let t = 0; t < T; t++) {
      inputs[b * T + t] = row[t]!;
      targets[b * T + t] = row[t + 1]!;
    }
  }
  return { inputs, targets };
}

function gradsOf(model: LlamaModel): Map<string, Float32Array> {
  const m = new Map<string, Float32Array>();
  for (const [n, t] of model.params) m.set(n, t.grad ? t.grad.slice() : new Float32Array(t.size));
  return m;
}

for (const variant of [
  { name: 'GQA, untied head', over: {} },
  { name: 'MHA, tied head, qkv bias', over: { nKvHeads: 4, tiedEmbeddings: true, qkvBias: true } },
]) {
  test(`model: native and reference backends agree on loss and every gradient (${variant.name})`, () => {
    const cfg = tinyConfig(variant.over);
    const rng = new Rng(1);
    const nat = LlamaModel.random(cfg, nativeKernels(), 7, 0.2);
    if (cfg.qkvBias) for (const [n, t] of nat.params) if (n.endsWith('.bias')) for (let i = 0; i < t.size; i++) t.data[i] = rng.normal() * 0.1;
    const ref = new LlamaModel(cfg, referenceKernels, new Map([...nat.params].map(([n, t]) => [n, t.data.slice()])));
    const { inputs, targets } = batchOf(rng, 2, 9, cfg.vocabSize);
    targets[3] = IGNORE_INDEX;
    const a = nat.forward(inputs, targets, 2);
    nat.backward();
    const b = ref.forward(inputs, targets, 2);
    ref.backward();
    assert.ok(Math.abs(a.loss - b.loss) < 1e-4 * Math.abs(b.loss), `loss ${a.loss} vs ${b.loss}`);
    assert.equal(a.tokens, 17);
    const ga = gradsOf(nat);
    const gb = gradsOf(ref);
    for (const [n, g] of gb) {
      let nz = 0;
      for (const x of g) if (x !== 0) nz++;
      assert.ok(nz > 0, `reference gradient of ${n} is all zero`);
      assertClose(ga.get(n)!, g, 2e-3, 2e-5, n);
    }
  });
}

test('model: training steps on reused (NaN-poisoned) workspace buffers with the lazy zeroGrad equal steps on fresh buffers and zero-filled gradients, bit for bit; forward without backward does not leak', () => {
  for (const over of [{}, { nKvHeads: 4, tiedEmbeddings: true, qkvBias: true }]) {
    const cfg = tinyConfig(over);
    const rng = new Rng(3);
    const batches = [0, 1, 2].map(() => batchOf(rng, 2, 9, cfg.vocabSize));
    const run = (reuse: boolean): { losses: number[]; grads: Map<string, Float32Array>[] } => {
      const m = LlamaModel.random(cfg, nativeKernels(), 5, 0.2);
      const opt = new AdamW(m.params, m.kernels, { weightDecay: 0.1 });
      const losses: number[] = [];
      const grads: Map<string, Float32Array>[] = [];
      for (const { inputs, targets } of [...batches, ...batches]) {
        // reuse: poisoned buffers and the lazy zeroGrad (weight gradients overwritten, not
        // zero-filled); else fresh buffers and gradients filled with zeros by hand.
        if (reuse) {
          m.workspace.poisonFree(NaN);
          m.zeroGrad();
        } else {
          m.workspace.clear();
          for (const t of m.params.values()) t.grad?.fill(0);
        }
        losses.push(m.forward(inputs, targets, 2).loss);
        m.backward();
        grads.push(gradsOf(m));
        opt.step(1e-2);
      }
      if (reuse) {
        const held = m.workspace.floats;
        for (let i = 0; i < 3; i++) m.forward(batches[0]!.inputs, batches[0]!.targets, 2);
        m.backward();
        assert.equal(m.workspace.floats, held, 'forwards without backward reuse the same buffers');
      }
      return { losses, grads };
    };
    const a = run(true);
    const b = run(false);
    assert.deepEqual(a.losses, b.losses);
    a.grads.forEach((g, i) => {
      for (const [n, x] of g) assert.deepEqual(x, b.grads[i]!.get(n), `step ${i} ${n}`);
    });
  }
});

test('model: gradient matches finite differences of the loss (reference kernels)', () => {
  const cfg = tinyConfig({ qkvBias: true });
  const model = LlamaModel.random(cfg, referenceKernels, 3, 0.3);
  const rng = new Rng(5);
  const { inputs, targets } = batchOf(rng, 1, 7, cfg.vocabSize);
  model.forward(inputs, targets, 1);
  model.backward();
  const lossAt = (): number => model.forward(inputs, targets, 1, { grad: false }).loss;
  for (const name of ['model.layers.0.self_attn.q_proj.weight', 'model.layers.1.self_attn.k_proj.bias', 'model.layers.0.mlp.down_proj.weight',
    'model.layers.1.input_layernorm.weight', 'model.embed_tokens.weight', 'lm_head.weight']) {
    const p = model.param(name);
    const g = p.grad!;
    // probe the largest-gradient coordinates: fp32 finite differences are meaningful there
    const order = Array.from(g.keys()).sort((x, y) => Math.abs(g[y]!) - Math.abs(g[x]!)).slice(0, 3);
    for (const i of order) {
      const old = p.data[i]!;
      const eps = 1e-3; // small: the largest-gradient coordinates are also the most curved
      p.data[i] = old + eps;
      const lp = lossAt();
      p.data[i] = old - eps;
      const lm = lossAt();
      p.data[i] = old;
      const fd = (lp - lm) / (2 * eps);
      assert.ok(Math.abs(fd - g[i]!) <= 2e-3 + 3e-2 * Math.abs(fd), `${name}[${i}]: analytic ${g[i]} vs finite difference ${fd}`);
    }
  }
});

test('model: a tiny random model memorizes a few sequences (loss < 0.05)', () => {
  const cfg = tinyConfig({ vocabSize: 32, dim: 32, hiddenDim: 64, nHeads: 4, nKvHeads: 2, headDim: 8, nLayers: 2 });
  const model = LlamaModel.random(cfg, nativeKernels(), 11);
  const opt = new AdamW(model.params, nativeKernels(), { weightDecay: 0 });
  const rng = new Rng(9);
  const { inputs, targets } = batchOf(rng, 4, 16, cfg.vocabSize);
  let loss = Infinity;
  const first = model.forward(inputs, targets, 4, { grad: false }).loss;
  for (let step = 0; step < 400 && loss >= 0.05; step++) {
    model.zeroGrad();
    loss = model.forward(inputs, targets, 4).loss;
    model.backward();
    clipGradNorm(model.params.values(), 1.0);
    opt.step(1e-2);
  }
  const final = model.forward(inputs, targets, 4, { grad: false }).loss;
  assert.ok(first > 3, `initial loss ${first} should be near ln(32)`);
  assert.ok(final < 0.05, `final loss ${final} after training`);
});

test('model: batch rows are independent (two rows == each row alone)', () => {
  const cfg = tinyConfig();
  const model = LlamaModel.random(cfg, nativeKernels(), 2, 0.2);
  const rng = new Rng(4);
  const { inputs } = batchOf(rng, 2, 6, cfg.vocabSize);
  const both = model.logits(inputs, 2);
  const V = cfg.vocabSize;
  for (let b = 0; b < 2; b++) {
    const alone = model.logits(inputs.subarray(b * 6, b * 6 + 6), 1);
    assertClose(both.subarray(b * 6 * V, (b + 1) * 6 * V), alone, 1e-5, 1e-6, `row ${b}`);
  }
});

test('model: explicit positions are honoured: shifting them all leaves the logits unchanged (RoPE is relative), a gap changes them', () => {
  const cfg = tinyConfig();
  const model = LlamaModel.random(cfg, nativeKernels(), 5, 0.3);
  const { inputs } = batchOf(new Rng(6), 1, 8, cfg.vocabSize);
  const base = model.logits(inputs, 1); // default positions 0..7
  const explicit = model.logits(inputs, 1, Int32Array.from({ length: 8 }, (_, t) => t));
  assertClose(explicit, base, 1e-6, 1e-7, 'positions 0..7 given explicitly');
  const shifted = model.logits(inputs, 1, Int32Array.from({ length: 8 }, (_, t) => t + 17));
  assertClose(shifted, base, 2e-4, 2e-5, 'positions 17..24');
  const gap = model.logits(inputs, 1, Int32Array.of(0, 1, 2, 3, 20, 21, 22, 23));
  let maxDiff = 0;
  for (let i = 4 * cfg.vocabSize; i < gap.length; i++) maxDiff = Math.max(maxDiff, Math.abs(gap[i]! - base[i]!));
  assert.ok(maxDiff > 1e-3, `a gap in the positions changed the logits by only ${maxDiff}`);
  assertClose(gap.subarray(0, 4 * cfg.vocabSize), base.subarray(0, 4 * cfg.vocabSize), 1e-6, 1e-7, 'tokens before the gap');
});

test('model: a packed row (layout) gives each example exactly the loss and gradients it has alone', () => {
  const cfg = tinyConfig();
  const rng = new Rng(8);
  const lens = [5, 9, 3];
  const seqs = lens.map((n) => batchOf(rng, 1, n, cfg.vocabSize));
  // one row: the three examples back to back, positions restarting, plus 2 padding tokens
  const T = lens.reduce((a, b) => a + b, 0) + 2;
  const inputs = new Int32Array(T);
  const targets = new Int32Array(T).fill(IGNORE_INDEX);
  const positions = new Int32Array(T);
  const group = new Int32Array(T);
  let o = 0;
  seqs.forEach((s, g) => {
    inputs.set(s.inputs, o);
    targets.set(s.targets, o);
    for (let t = 0; t < s.inputs.length; t++) {
      positions[o + t] = t;
      group[o + t] = g;
    }
    o += s.inputs.length;
  });
  group.fill(3, o);
  const layout = { group, part: new Int32Array(T), nInputs: Int32Array.of(1, 1, 1, 1), weighting: ['uniform', 'uniform', 'uniform', 'uniform'] as const };
  const packed = LlamaModel.random(cfg, nativeKernels(), 5, 0.2);
  const alone = new LlamaModel(cfg, nativeKernels(), new Map([...packed.params].map(([n, t]) => [n, t.data.slice()])));
  const total = lens.reduce((a, b) => a + b, 0);
  const r = packed.forward(inputs, targets, 1, { positions, layout: { ...layout, weighting: [...layout.weighting] }, lossScale: 1 / total });
  packed.backward();
  let sum = 0;
  for (const s of seqs) {
    sum += alone.forward(s.inputs, s.targets, 1, { lossScale: 1 / total }).lossSum;
    alone.backward();
  }
  assert.ok(Math.abs(r.lossSum - sum) < 1e-4 * sum, `${r.lossSum} vs ${sum}`);
  for (const [n, t] of packed.params) assertClose(t.grad!, alone.param(n).grad!, 2e-3, 2e-6, n);
});
