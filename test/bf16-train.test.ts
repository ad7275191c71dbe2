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

/** stories260K and one random batch (2 rows of T tokens); run() = a forward + backward: its loss and every gradient. */
function fixedBatch(seed: number, T: number) {
  const { model } = loadModel('stories260K', nativeKernels());
  const rng = new Rng(seed);
  const ids = Int32Array.from({ length: 2 * T }, () => rng.int(512));
  const tg = Int32Array.from({ length: 2 * T }, () => rng.int(512));
  const run = () => {
    model.zeroGrad();
    const r = model.forward(ids, tg, 2);
    model.backward();
    return { loss: r.loss, grads: new Map([...model.params].map(([n, t]) => [n, Float32Array.from(t.grad!)])) };
  };
  return { model, run, ids, tg };
}

test('bf16 training forward/backward: loss and every gradient within bf16 tolerance of fp32; packs follow the weights', { skip }, () => {
  const { model, run, ids, tg } = fixedBatch(2, 256);
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

test('training.bf16_ops: a product takes bf16 operands only when named; all five = the default', { skip }, () => {
  const batch = fixedBatch(3, 128);
  const run = (bf16: Bf16Weights | null) => {
    batch.model.bf16 = bf16;
    const r = batch.run();
    batch.model.bf16 = null;
    return r;
  };
  const fp32 = run(null);
  const same = (a: Float32Array, b: Float32Array) => a.every((x, i) => x === b[i]);
  const grad = (r: ReturnType<typeof run>, n: string) => r.grads.get(n)!;
  const q0 = 'model.layers.0.self_attn.q_proj.weight', down4 = 'model.layers.4.mlp.down_proj.weight', up4 = 'model.layers.4.mlp.up_proj.weight';
  const embed = 'model.embed_tokens.weight', norm0 = 'model.layers.0.input_layernorm.weight';
  // weight gradients only: the forward and every input gradient stay fp32, so the loss, the
  // (tied) embedding's and the norms' gradients are fp32's bit for bit; the trunk's dW are not
  const dw = run(new Bf16Weights(['linear_weight_grad']));
  assert.equal(dw.loss, fp32.loss);
  assert.ok(same(grad(dw, embed), grad(fp32, embed)) && same(grad(dw, norm0), grad(fp32, norm0)), 'embedding and norm gradients are fp32');
  assert.ok(!same(grad(dw, q0), grad(fp32, q0)) && !same(grad(dw, down4), grad(fp32, down4)), 'trunk weight gradients are bf16');
  // input gradients only: the last layer's down_proj sees fp32 output gradients (the LM head's dX is
  // fp32), its own dW is fp32; everything below gets bf16 input gradients
  const dx = run(new Bf16Weights(['linear_input_grad']));
  assert.equal(dx.loss, fp32.loss);
  assert.ok(same(grad(dx, down4), grad(fp32, down4)), 'down_proj of the last layer: fp32 dY and dW');
  assert.ok(!same(grad(dx, up4), grad(fp32, up4)) && !same(grad(dx, q0), grad(fp32, q0)), 'below it: bf16 input gradients');
  // each forward-side product alone changes the loss
  for (const op of ['linear_forward', 'attention', 'lm_head'] as const) {
    const r = run(new Bf16Weights([op]));
    assert.notEqual(r.loss, fp32.loss, `${op} runs in bf16`);
    assert.ok(Math.abs(r.loss - fp32.loss) < 1e-2 * fp32.loss, `${op}: loss ${r.loss} vs ${fp32.loss}`);
  }
  // the LM head's products are named apart from the trunk's: leaving it out of the list changes the loss
  const all = run(new Bf16Weights());
  const noHead = run(new Bf16Weights(['linear_forward', 'linear_input_grad', 'linear_weight_grad', 'attention']));
  assert.notEqual(noHead.loss, all.loss);
  const five = run(new Bf16Weights(['lm_head', 'attention', 'linear_weight_grad', 'linear_input_grad', 'linear_forward']));
  assert.equal(five.loss, all.loss);
  for (const [n, g] of all.grads) assert.ok(same(five.grads.get(n)!, g), `${n}: all five ops = the default`);
});

test('training.bf16_ops: needs precision bf16, no repeats, known names (config, demo and bench)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mixtune-bf16-'));
  const cfg = join(dir, 'train.yaml');
  writeFileSync(cfg, `model: stories260K\noutput_dir: ${join(dir, 'out')}\ndata:\n  datasets: [{path: ${join(packageRoot(), 'examples', 'data', 'gsm8k-train-200.jsonl')}, columns: {prompt: question, completion: answer}}]\n`);
  assertOneLineError(runCli('train', '--config', cfg, '--set', 'training.bf16_ops=[lm_head]'), ['training.bf16_ops', 'precision: bf16']);
  assertOneLineError(runCli('train', '--config', cfg, '--set', 'training.precision=bf16', '--set', 'training.bf16_ops=[lm_head,lm_head]'), ['training.bf16_ops', 'twice']);
  assertOneLineError(runCli('train', '--config', cfg, '--set', 'training.precision=bf16', '--set', 'training.bf16_ops=[gemm]'), ['training.bf16_ops']);
  assertOneLineError(runCli('demo', '--out', join(dir, 'demo'), '--bf16-ops', 'lm_head'), ['--bf16-ops', '--precision bf16']);
  assertOneLineError(runCli('bench', 'train', 'steps=1', 'peer=0', 'bf16_ops=lm_head'), ['bf16_ops', 'precision=bf16']);
  if (skip === false) assertOneLineError(runCli('bench', 'train', 'steps=1', 'peer=0', 'precision=bf16', 'bf16_ops=lm_head,fwd'), ['bf16_ops', "'fwd'"]);
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
