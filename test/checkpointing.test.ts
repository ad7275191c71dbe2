// Activation checkpointing (training.gradient_checkpointing): the same gradients as keeping every
// activation — causal, packed and MISO rows, with LoRA dropout replayed — and less peak memory.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { nativeKernels } from '../src/tensor/native.js';
import { loadModel } from '../src/io/load.js';
import { applyLora, trainableParams } from '../src/model/lora.js';
import type { LlamaModel } from '../src/model/llama.js';
import { packageRoot } from '../src/util/paths.js';
import { Rng } from '../src/util/rng.js';
import { buildLayout } from './layouts.js';

const W_NAME = ['uniform', 'fid', 'vanilla'] as const;

function grads(model: LlamaModel, checkpointing: boolean, layoutRows: boolean): { loss: number; grads: Map<string, Float32Array> } {
  const rng = new Rng(4);
  const B = 2;
  const T = 96;
  const L = buildLayout([[{ inputs: [20, 14, 18], out: 30, w: 'uniform' }, { len: 14 }], [{ len: 40 }, { inputs: [9, 9], out: 38, w: 'fid' }]], T);
  const tokens = Int32Array.from({ length: B * T }, () => rng.int(model.config.vocabSize));
  const targets = Int32Array.from({ length: B * T }, () => (rng.int(3) === 0 ? -100 : rng.int(model.config.vocabSize)));
  const layout = layoutRows ? { layout: { group: L.group, part: L.part, nInputs: L.nInputs, weighting: Array.from(L.weighting, (w) => W_NAME[w]!) } } : {};
  const trainable = trainableParams(model);
  for (const t of trainable.values()) t.zeroGrad();
  const r = model.forward(tokens, targets, B, { ...layout, checkpointing });
  model.backward();
  return { loss: r.loss, grads: new Map([...trainable].map(([n, t]) => [n, Float32Array.from(t.grad!)])) };
}

function assertSameGrads(a: ReturnType<typeof grads>, b: ReturnType<typeof grads>, what: string): void {
  assert.equal(a.loss, b.loss, `${what}: loss`);
  assert.equal(a.grads.size, b.grads.size);
  for (const [name, g] of a.grads) assert.deepEqual(g, b.grads.get(name), `${what}: ${name}`);
}

test('checkpointing: identical loss and gradients (full fine-tuning; causal and MISO/packed rows)', () => {
  const { model } = loadModel('stories260K', nativeKernels());
  for (const rows of [false, true]) assertSameGrads(grads(model, false, rows), grads(model, true, rows), rows ? 'layout rows' : 'causal rows');
});

test('checkpointing: identical gradients with LoRA dropout (the recomputed layer replays the masks)', () => {
  const load = (): LlamaModel => {
    const { model } = loadModel('stories260K', nativeKernels());
    applyLora(model, { rank: 4, alpha: 8, dropout: 0.2, targets: ['q', 'v', 'up', 'down'], seed: 3 });
    for (const t of trainableParams(model).values()) for (let i = 0; i < t.size; i++) t.data[i] = Math.sin(i * 0.37) * 0.05;
    return model;
  };
  assertSameGrads(grads(load(), false, true), grads(load(), true, true), 'LoRA dropout');
});

test('checkpointing: bench train peak RSS falls well below keeping every activation; the estimate follows', () => {
  const bin = join(packageRoot(), 'bin', 'mixtune.js');
  const run = (ck: string) => {
    const r = spawnSync(process.execPath, [bin, 'bench', 'train', 'vocab=2048', 'dim=256', 'layers=8', 'heads=4', 'kv_heads=4', 'ffn=688', 'seq=512', 'batch=4', 'steps=2', 'peer=0', `checkpointing=${ck}`], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout) as { peak_rss_mb: number; estimated_peak_mb: number; loss: number };
  };
  const full = run('0');
  const ck = run('1');
  assert.equal(ck.loss, full.loss, 'the same training step');
  assert.ok(ck.peak_rss_mb < 0.75 * full.peak_rss_mb, `peak RSS ${ck.peak_rss_mb} MB with checkpointing vs ${full.peak_rss_mb} MB without`);
  const rel = ck.estimated_peak_mb / ck.peak_rss_mb - 1;
  assert.ok(rel > -0.1 && rel < 0.2, `estimate ${ck.estimated_peak_mb} MB vs peak ${ck.peak_rss_mb} MB`);
});
