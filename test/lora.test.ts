import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { LlamaModel } from '../src/model/llama.js';
import type { LlamaConfig } from '../src/model/config.js';
import {
  applyLora, mergeLora, setLoraTraining, trainableParams, zeroLoraGrad, hasLora, removeLora,
  type LoraTarget,
} from '../src/model/lora.js';
import { saveHfModel } from '../src/io/hf-model.js';
import { loadLoraAdapter, saveLoraAdapter } from '../src/io/lora-adapter.js';
import { loadModel } from '../src/io/load.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { nativeKernels } from '../src/tensor/native.js';
import { referenceKernels } from '../src/tensor/reference.js';
import { AdamW } from '../src/train/adamw.js';
import { dropout } from '../src/model/lora.js';
import { Tape, Tensor } from '../src/tensor/tensor.js';
import { MixtuneError } from '../src/util/errors.js';
import { Rng } from '../src/util/rng.js';
import { assertClose } from './util.js';

const K = nativeKernels();
const ALL: LoraTarget[] = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'];

function cfg(over: Partial<LlamaConfig> = {}): LlamaConfig {
  return {
    vocabSize: 41, dim: 24, hiddenDim: 40, nLayers: 2, nHeads: 4, nKvHeads: 2, headDim: 6,
    maxSeqLen: 64, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: false, qkvBias: true, ...over,
  };
}

function base(seed = 1, kernels = K, over: Partial<LlamaConfig> = {}): LlamaModel {
  const m = LlamaModel.random(cfg(over), kernels, seed, 0.2);
  const rng = new Rng(seed + 50);
  for (const [n, t] of m.params) if (n.endsWith('.bias')) for (let i = 0; i < t.size; i++) t.data[i] = rng.normal() * 0.1;
  return m;
}

function copyOf(m: LlamaModel, kernels = m.kernels): LlamaModel {
  return new LlamaModel(m.config, kernels, new Map([...m.params].map(([n, t]) => [n, t.data.slice()])));
}

/** A small learnable task: predict (token * 3 + 1) mod V. */
function batch(rng: Rng, B: number, T: number, V: number): { inputs: Int32Array; targets: Int32Array } {
  const inputs = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  for (let i = 0; i < B * T; i++) {
    inputs[i] = rng.int(V);
    targets[i] = (inputs[i]! * 3 + 1) % V;
  }
  return { inputs, targets };
}

test('lora: PEFT names and shapes; B = 0 init leaves logits (forward and KV cache) bitwise unchanged', () => {
  const m = base();
  const ids = Int32Array.from([1, 5, 9, 33, 2, 7]);
  const before = m.logits(ids);
  const stepBefore = m.step(ids, m.newCache());
  const ads = applyLora(m, { rank: 4, alpha: 8, dropout: 0.1, targets: ['q', 'v', 'down'], seed: 3 });
  assert.equal(ads.size, 6);
  const tp = trainableParams(m);
  assert.deepEqual([...tp.keys()].slice(0, 4), [
    'base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight',
    'base_model.model.model.layers.0.self_attn.q_proj.lora_B.weight',
    'base_model.model.model.layers.0.self_attn.v_proj.lora_A.weight',
    'base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight',
  ]);
  assert.deepEqual(tp.get('base_model.model.model.layers.1.mlp.down_proj.lora_A.weight')!.shape, [4, 40]);
  assert.deepEqual(tp.get('base_model.model.model.layers.1.mlp.down_proj.lora_B.weight')!.shape, [24, 4]);
  assert.deepEqual(tp.get('base_model.model.model.layers.0.self_attn.v_proj.lora_B.weight')!.shape, [12, 4]);
  const A = tp.get('base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight')!;
  assert.ok(A.data.some((x) => x !== 0) && A.data.every((x) => Math.abs(x) <= 1 / Math.sqrt(24)), 'kaiming-uniform A');
  for (const t of m.params.values()) assert.equal(t.requiresGrad, false);
  assert.deepEqual(m.logits(ids), before);
  assert.deepEqual(m.step(ids, m.newCache()), stepBefore);
  assert.ok(hasLora(m));
});

test('lora: training updates only the adapters; base weights and grads untouched; loss decreases; optimizer state only for adapters', () => {
  const m = base(2);
  const frozen = new Map([...m.params].map(([n, t]) => [n, t.data.slice()]));
  applyLora(m, { rank: 4, alpha: 16, dropout: 0.05, targets: ALL, seed: 1 });
  const params = trainableParams(m);
  const opt = new AdamW(params, K, { weightDecay: 0.01 });
  assert.equal(opt.slots.length, 2 * 7 * 2);
  for (const s of opt.slots) assert.match(s.name, /\.lora_[AB]\.weight$/);
  // Passing every tensor (base included) must not give base parameters optimizer state either.
  const everything = new Map([...m.params, ...params]);
  assert.equal(new AdamW(everything, K).slots.length, opt.slots.length);
  const initial = new Map([...params].map(([n, t]) => [n, t.data.slice()]));
  const rng = new Rng(4);
  const evalSet = batch(new Rng(99), 4, 16, 41);
  const evalLoss = (): number => m.forward(evalSet.inputs, evalSet.targets, 4, { grad: false }).loss;
  const l0 = evalLoss();
  for (let step = 0; step < 40; step++) {
    zeroLoraGrad(m);
    const { inputs, targets } = batch(rng, 4, 16, 41);
    m.forward(inputs, targets, 4);
    m.backward();
    opt.step(3e-2);
  }
  const l1 = evalLoss();
  assert.ok(l1 < l0 - 0.2, `loss should decrease: ${l0} -> ${l1}`);
  for (const [n, t] of m.params) {
    assert.deepEqual(t.data, frozen.get(n), `base ${n} changed`);
    assert.equal(t.grad, null, `base ${n} has a gradient`);
  }
  for (const [n, t] of params) assert.notDeepEqual(t.data, initial.get(n), `adapter ${n} did not change`);
});

function trainedLora(seed: number, kernels = K): LlamaModel {
  const m = base(seed, kernels);
  applyLora(m, { rank: 3, alpha: 6, dropout: 0.1, targets: ALL, seed });
  // non-trivial adapters without a training loop: random B
  const rng = new Rng(seed + 7);
  for (const t of trainableParams(m).values()) for (let i = 0; i < t.size; i++) t.data[i] = rng.normal() * 0.3;
  return m;
}

test('lora: merged weights give the adapter model\'s logits; merged export -> load gives the same logits', () => {
  const m = trainedLora(5);
  const plain = copyOf(m);
  const ids = Int32Array.from([3, 14, 15, 9, 26, 5, 35, 8]);
  const withAdapters = m.logits(ids);
  const cached = m.step(ids, m.newCache());
  assertClose(cached, withAdapters.subarray(7 * 41), 1e-4, 1e-5, 'KV-cache path with adapters');
  assert.ok(Math.max(...withAdapters.map((x, i) => Math.abs(x - plain.logits(ids)[i]!))) > 1e-2, 'adapters change the output');
  // eval mode (dropout off): a forward with a tape equals logits()
  setLoraTraining(m, false);
  const targets = Int32Array.from([14, 15, 9, 26, 5, 35, 8, 1]);
  const fEval = m.forward(ids, targets, 1).loss;
  assert.equal(fEval, m.forward(ids, targets, 1, { grad: false }).loss);
  mergeLora(m);
  assert.equal(m.adapters.size, 0);
  assert.ok(!hasLora(m));
  for (const t of m.params.values()) assert.equal(t.requiresGrad, true, 'base unfrozen after merge');
  const merged = m.logits(ids);
  assertClose(merged, withAdapters, 1e-4, 1e-5, 'merged vs adapter logits');
  const dir = mkdtempSync(join(tmpdir(), 'mixtune-lora-'));
  try {
    saveHfModel(join(dir, 'out'), m);
    const loaded = loadModel(join(dir, 'out'), K).model;
    assert.deepEqual(loaded.logits(ids), merged);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('lora: saving a model with unmerged adapters is refused', () => {
  const m = trainedLora(6);
  const dir = mkdtempSync(join(tmpdir(), 'mixtune-lora-'));
  try {
    assert.throws(() => saveHfModel(join(dir, 'x'), m), /mergeLora/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('lora: adapter gradients match finite differences (reference kernels)', () => {
  const m = base(8, referenceKernels);
  applyLora(m, { rank: 2, alpha: 3, targets: ['q', 'k', 'o', 'up', 'down'], seed: 2 });
  const rng = new Rng(9);
  for (const t of trainableParams(m).values()) for (let i = 0; i < t.size; i++) t.data[i] = rng.normal() * 0.3;
  const { inputs, targets } = batch(rng, 1, 7, 41);
  m.forward(inputs, targets, 1);
  m.backward();
  const lossAt = (): number => m.forward(inputs, targets, 1, { grad: false }).loss;
  for (const [name, p] of trainableParams(m)) {
    const g = p.grad!;
    assert.ok(g, `${name} has no gradient`);
    const order = Array.from(g.keys()).sort((x, y) => Math.abs(g[y]!) - Math.abs(g[x]!)).slice(0, 2);
    for (const i of order) {
      const old = p.data[i]!;
      const eps = 1e-2;
      p.data[i] = old + eps;
      const fp = lossAt();
      p.data[i] = old - eps;
      const fm = lossAt();
      p.data[i] = old;
      const fd = (fp - fm) / (2 * eps);
      assert.ok(Math.abs(fd - g[i]!) <= 2e-3 + 3e-2 * Math.abs(fd), `${name}[${i}]: analytic ${g[i]} vs finite difference ${fd}`);
    }
  }
  for (const t of m.params.values()) assert.equal(t.grad, null);
});

test('lora: dropout is deterministic given the seed and only active in training forwards', () => {
  const run = (seed: number): number[] => {
    const plain = base(10);
    applyLora(plain, { rank: 3, alpha: 6, dropout: 0.3, targets: ALL, seed });
    const rng = new Rng(77); // the same adapter values for every seed: only the dropout stream differs
    for (const t of trainableParams(plain).values()) for (let i = 0; i < t.size; i++) t.data[i] = rng.normal() * 0.3;
    const { inputs, targets } = batch(new Rng(1), 2, 8, 41);
    const out: number[] = [];
    for (let i = 0; i < 3; i++) out.push(plain.forward(inputs, targets, 2).loss);
    out.push(plain.forward(inputs, targets, 2, { grad: false }).loss);
    setLoraTraining(plain, false);
    out.push(plain.forward(inputs, targets, 2).loss);
    return out;
  };
  const a = run(1);
  const b = run(1);
  const c = run(2);
  assert.deepEqual(a, b);
  assert.notEqual(a[0], a[1], 'a new mask each training forward');
  assert.notDeepEqual(a.slice(0, 3), c.slice(0, 3));
  assert.equal(a[3], a[4], 'no dropout without a tape or in eval mode');
  assert.equal(a[3], c[3]);
});

test('lora: PEFT adapter folder round trip (adapter_config.json + adapter_model.safetensors)', () => {
  const m = trainedLora(11);
  const ids = Int32Array.from([4, 8, 15, 16, 23]);
  setLoraTraining(m, false);
  const want = m.logits(ids);
  const dir = mkdtempSync(join(tmpdir(), 'mixtune-lora-'));
  try {
    const out = join(dir, 'adapter');
    saveLoraAdapter(out, m, { baseModel: 'tiny' });
    const cfgJson = JSON.parse(readFileSync(join(out, 'adapter_config.json'), 'utf8'));
    assert.equal(cfgJson.peft_type, 'LORA');
    assert.equal(cfgJson.r, 3);
    assert.equal(cfgJson.lora_alpha, 6);
    assert.deepEqual(cfgJson.target_modules, ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj']);
    const sf = readSafetensors(join(out, 'adapter_model.safetensors'));
    assert.ok(sf.tensors.has('base_model.model.model.layers.1.mlp.gate_proj.lora_B.weight'));
    assert.equal(sf.tensors.size, 2 * 7 * 2);
    assert.throws(() => saveLoraAdapter(out, m), /not empty/);
    const fresh = copyOf(m);
    loadLoraAdapter(out, fresh);
    assert.deepEqual(fresh.logits(ids), want);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('lora: bad options are MixtuneErrors', () => {
  const m = base();
  for (const o of [
    { rank: 0, alpha: 1, targets: ['q'] },
    { rank: 2, alpha: 0, targets: ['q'] },
    { rank: 2, alpha: 1, targets: [] },
    { rank: 2, alpha: 1, targets: ['qkv'] },
    { rank: 2, alpha: 1, dropout: 1, targets: ['q'] },
  ]) {
    assert.throws(() => applyLora(m, o as never), MixtuneError, JSON.stringify(o));
  }
  const ids = Int32Array.from([1, 2, 3]);
  const before = m.logits(ids);
  applyLora(m, { rank: 2, alpha: 1, targets: ['q'] });
  assert.throws(() => applyLora(m, { rank: 2, alpha: 1, targets: ['q'] }), /already/);
  for (const t of trainableParams(m).values()) t.data.fill(0.5);
  assert.notDeepEqual(m.logits(ids), before);
  removeLora(m); // drop without merging: the base model is back, unfrozen
  assert.deepEqual(m.logits(ids), before);
  for (const t of m.params.values()) assert.equal(t.requiresGrad, true);
  assert.equal(trainableParams(base()).size, base().params.size, 'without LoRA every parameter is trainable');
});

test('lora: the dropout op: forward and backward agree on the mask and the scale; a seed replays the mask', () => {
  const rng = new Rng(3);
  const n = 4000;
  const x = new Tensor(Float32Array.from({ length: n }, () => rng.normal()), [n], true);
  const w = Float32Array.from({ length: n }, () => rng.normal());
  const tape = new Tape();
  const ctx = { k: K, tape };
  const xd = dropout(ctx, x, 0.25, new Rng(8));
  xd.grad = w.slice();
  tape.backward();
  let dropped = 0;
  for (let i = 0; i < n; i++) {
    const m = xd.data[i]! / x.data[i]!; // 0 or 1/(1-p)
    if (xd.data[i] === 0) dropped++;
    else assert.ok(Math.abs(m - 1 / 0.75) < 1e-6);
    assert.ok(Math.abs(x.grad![i]! - w[i]! * (xd.data[i] === 0 ? 0 : 1 / 0.75)) < 1e-5, `dx[${i}]`);
  }
  assert.ok(Math.abs(dropped / n - 0.25) < 0.03, `dropped ${dropped / n}`);
  // same seed, same mask
  const again = dropout({ k: K, tape: null }, x, 0.25, new Rng(8));
  assert.deepEqual(again.data, xd.data);
});
