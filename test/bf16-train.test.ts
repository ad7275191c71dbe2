// training.precision: bf16 — the linear layers' GEMMs on bf16 operands (fp32 master weights, AdamW,
// norms, attention, loss): gradients within bf16 tolerance of fp32, a training run whose loss
// follows fp32's, exact resume, and a clear error where the CPU has no bf16 instructions.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nativeKernels } from '../src/tensor/native.js';
import { loadModel } from '../src/io/load.js';
import { Bf16Weights } from '../src/tensor/bf16-weights.js';
import { hasBf16 } from '../src/tensor/bf16.js';
import { packageRoot } from '../src/util/paths.js';
import { Rng } from '../src/util/rng.js';
import { assertOneLineError, runCli } from './util.js';

const skip = hasBf16() ? false : 'this CPU has no AVX512-BF16 / AMX-BF16';

test('bf16 training forward/backward: loss and every gradient within bf16 tolerance of fp32; packs follow the weights', { skip }, () => {
  const { model } = loadModel('stories260K', nativeKernels());
  const rng = new Rng(2);
  const T = 256;
  const ids = Int32Array.from({ length: 2 * T }, () => rng.int(512));
  const tg = Int32Array.from({ length: 2 * T }, () => rng.int(512));
  const run = () => {
    model.zeroGrad();
    const r = model.forward(ids, tg, 2);
    model.backward();
    return { loss: r.loss, grads: new Map([...model.params].map(([n, t]) => [n, Float32Array.from(t.grad!)])) };
  };
  const fp32 = run();
  model.bf16 = new Bf16Weights();
  const bf16 = run();
  assert.notEqual(bf16.loss, fp32.loss, 'the bf16 path is used');
  assert.ok(Math.abs(bf16.loss - fp32.loss) < 1e-2 * fp32.loss, `loss ${bf16.loss} vs ${fp32.loss}`);
  for (const [name, g] of fp32.grads) {
    const h = bf16.grads.get(name)!;
    let num = 0;
    let den = 0;
    for (let i = 0; i < g.length; i++) {
      num += (g[i]! - h[i]!) ** 2;
      den += g[i]! ** 2;
    }
    assert.ok(Math.sqrt(num / den) < 0.03, `${name}: relative gradient error ${Math.sqrt(num / den).toFixed(4)}`);
  }
  // evaluation and generation stay fp32
  assert.equal(model.forward(ids, tg, 2, { grad: false }).loss, fp32.loss);
  // after a weight change, invalidate() repacks: the bf16 loss moves with the weights
  const w = model.params.get('model.layers.0.mlp.up_proj.weight')!;
  for (let i = 0; i < w.size; i++) w.data[i]! *= 1.5;
  const stale = run().loss;
  model.bf16.invalidate();
  const fresh = run().loss;
  model.bf16 = null;
  const ref = run().loss;
  assert.ok(Math.abs(fresh - ref) < 1e-2 * ref && Math.abs(stale - ref) > Math.abs(fresh - ref), `stale ${stale}, repacked ${fresh}, fp32 ${ref}`);
});

test('bf16 training run: the loss follows fp32 within 2% after warm-up; stop + resume is exact', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'mixtune-bf16-'));
  const cfg = join(dir, 'train.yaml');
  writeFileSync(cfg, `model: stories260K
output_dir: ${join(dir, 'unused')}
data:
  datasets: [{path: ${join(packageRoot(), 'examples', 'data', 'gsm8k-train-200.jsonl')}, columns: {prompt: question, completion: answer}}]
  max_len: 512
  overflow: drop
training: {max_steps: 12, micro_batch_size: 4, grad_accum: 1, lr: 0.002, warmup_steps: 2, save_every: 6}
`);
  const losses = (out: string) => readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { loss?: number }).filter((m) => m.loss !== undefined).map((m) => m.loss!);
  const train = (out: string, ...args: string[]) => {
    const r = runCli('train', '--config', cfg, '--output-dir', join(dir, out), '--no-progress', ...args);
    assert.equal(r.code, 0, r.stderr);
    return losses(join(dir, out));
  };
  const fp32 = train('fp32');
  const bf16 = train('bf16', '--set', 'training.precision=bf16');
  bf16.forEach((l, i) => {
    if (i >= 2) assert.ok(Math.abs(l - fp32[i]!) <= 0.02 * fp32[i]!, `step ${i + 1}: bf16 ${l} vs fp32 ${fp32[i]}`);
  });
  train('bf16-resumed', '--set', 'training.precision=bf16', '--stop-after', '6');
  assert.deepEqual(train('bf16-resumed', '--set', 'training.precision=bf16', '--resume'), bf16, 'resumed bf16 losses equal the uninterrupted run');
});

test('bf16 on a CPU without bf16 instructions: a one-line error before anything runs', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mixtune-bf16-'));
  const cfg = join(dir, 'train.yaml');
  writeFileSync(cfg, `model: stories260K\noutput_dir: ${join(dir, 'out')}\ndata:\n  datasets: [{path: ${join(packageRoot(), 'examples', 'data', 'gsm8k-train-200.jsonl')}, columns: {prompt: question, completion: answer}}]\ntraining: {precision: bf16}\n`);
  const prev = process.env.MIXTUNE_BF16;
  process.env.MIXTUNE_BF16 = 'none'; // what a CPU without AVX512-BF16 / AMX-BF16 reports
  try {
    assertOneLineError(runCli('train', '--config', cfg), ['training.precision: bf16', /BF16/]);
    assertOneLineError(runCli('bench', 'train', 'precision=bf16', 'steps=1', 'peer=0'), ['precision=bf16', /BF16/]);
  } finally {
    if (prev === undefined) delete process.env.MIXTUNE_BF16;
    else process.env.MIXTUNE_BF16 = prev;
  }
});
