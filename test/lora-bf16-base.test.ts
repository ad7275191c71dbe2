// lora.base_dtype: bf16 — the frozen base matrices of a LoRA run stored (and multiplied) as bf16:
// half the weight memory, forward/backward within bf16 tolerance of the same base in fp32, an
// HF folder read straight into bf16, a training run that follows the fp32 base, exact resume, an
// fp32 merged export, and one-line errors where it cannot run.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nativeKernels } from '../src/tensor/native.js';
import { loadModel, modelConfigOf } from '../src/io/load.js';
import { saveHfModel } from '../src/io/hf-model.js';
import { readSafetensors } from '../src/io/safetensors.js';
import { applyLora, trainableParams } from '../src/model/lora.js';
import { LlamaModel } from '../src/model/llama.js';
import { estimateTrainMemory } from '../src/train/memory.js';
import { f32ToBf16, hasBf16 } from '../src/tensor/bf16.js';
import { dequantizeBf16 } from '../src/tensor/tensor.js';
import { packageRoot } from '../src/util/paths.js';
import { Rng } from '../src/util/rng.js';
import { assertOneLineError, runCli } from './util.js';

const skip = hasBf16() ? false : 'this CPU has no AVX512-BF16 / AMX-BF16';
const ALL = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] as const;

function relErr(a: Float32Array, b: Float32Array): number {
  let num = 0;
  let den = 0;
  for (let i = 0; i < a.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += a[i]! ** 2;
  }
  return Math.sqrt(num / den);
}

test('bf16 base: the matrices keep only bf16 bits; loss and LoRA gradients within bf16 tolerance of the same base in fp32', { skip }, () => {
  const rng = new Rng(3);
  const T = 256;
  const ids = Int32Array.from({ length: 2 * T }, () => rng.int(512));
  const tg = Int32Array.from({ length: 2 * T }, () => rng.int(512));
  const withLora = (m: LlamaModel) => {
    applyLora(m, { rank: 4, alpha: 8, targets: [...ALL], seed: 1 });
    // non-zero B so the adapters take part in the output and in every gradient
    const r = new Rng(9);
    for (const [name, t] of trainableParams(m)) if (name.endsWith('lora_B.weight')) for (let i = 0; i < t.size; i++) t.data[i] = (r.float() - 0.5) * 0.1;
    return m;
  };
  const run = (m: LlamaModel) => {
    for (const t of trainableParams(m).values()) t.zeroGrad();
    const r = m.forward(ids, tg, 2);
    m.backward();
    return { loss: r.loss, grads: new Map([...trainableParams(m)].map(([n, t]) => [n, Float32Array.from(t.grad!)])) };
  };
  // reference: the same bf16-rounded base held in fp32, fp32 GEMMs
  const ref = loadModel('stories260K', nativeKernels()).model;
  for (const t of ref.params.values()) if (t.shape.length === 2) t.data = dequantizeBf16(f32ToBf16(t.data));
  const want = run(withLora(ref));

  const m = loadModel('stories260K', nativeKernels(), { bf16Matrices: true }).model;
  const fp32Bytes = ref.parameterBytes();
  for (const [name, t] of m.params) {
    assert.equal(t.bf16 !== null, t.shape.length === 2, `${name} is stored in bf16 exactly when it is a matrix`);
    if (t.bf16) assert.deepEqual(t.data, ref.param(name).data, `${name}: the bits are the rounded fp32 weight`);
  }
  let matrices = 0;
  for (const t of m.params.values()) if (t.shape.length === 2) matrices += t.size;
  assert.equal(m.parameterBytes(), fp32Bytes - 2 * matrices, 'the matrices take 2 bytes per value');
  const got = run(withLora(m));
  assert.notEqual(got.loss, want.loss, 'the base GEMMs ran in bf16');
  assert.ok(Math.abs(got.loss - want.loss) < 5e-3 * want.loss, `loss ${got.loss} vs ${want.loss}`);
  for (const [name, g] of want.grads) {
    const e = relErr(g, got.grads.get(name)!);
    assert.ok(e < 0.03, `${name}: relative gradient error ${e.toFixed(4)}`);
  }
  assert.ok(m.params.get('model.layers.0.self_attn.q_proj.weight')!.bf16, 'training did not widen the base');
  assert.throws(() => {
    m.param('model.layers.0.mlp.up_proj.weight').requiresGrad = true;
    m.forward(ids, tg, 2);
  }, /bf16-stored weight cannot be trained/);
});

test('bf16 base: an HF folder is read straight into bf16 (BF16 bits copied, F32 rounded like the kernel)', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'mixtune-bf16base-'));
  const src = loadModel('stories260K', nativeKernels()).model;
  for (const dtype of ['F32', 'BF16'] as const) {
    const out = join(dir, dtype);
    saveHfModel(out, src, { dtype });
    const m = loadModel(out, nativeKernels(), { bf16Matrices: true }).model;
    const sf = readSafetensors(join(out, 'model.safetensors'));
    for (const [name, t] of m.params) {
      if (t.shape.length !== 2) {
        assert.equal(t.bf16, null, `${name} stays fp32`);
        continue;
      }
      assert.deepEqual(t.bf16, f32ToBf16(sf.read(name)), `${dtype} ${name}`);
      assert.equal(t.requiresGrad, false);
    }
  }
});

test('bf16 base: the memory estimate counts the matrices at 2 bytes', () => {
  const c = modelConfigOf('stories260K');
  const o = { tokensPerMicroBatch: 512, lora: { rank: 8, targets: [...ALL] } };
  const f32 = estimateTrainMemory(c, o);
  const bf16 = estimateTrainMemory(c, { ...o, baseBf16: true });
  let matrices = 0;
  const m = LlamaModel.random(c, nativeKernels(), 0);
  for (const t of m.params.values()) if (t.shape.length === 2) matrices += t.size;
  // minus half the matrices, plus the one bf16 packing buffer of the largest matrix
  assert.ok(bf16.weights < f32.weights - 2 * matrices + 2 * 512 * 64 + 1 && bf16.weights > f32.weights - 2 * matrices, `${bf16.weights} vs ${f32.weights}`);
  assert.deepEqual(estimateTrainMemory(c, { tokensPerMicroBatch: 512, baseBf16: true }), estimateTrainMemory(c, { tokensPerMicroBatch: 512 }), 'only with LoRA');
});

test('bf16 base training run: follows the fp32 base within 2% after warm-up; resume is exact; final/ is the fp32 merge', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'mixtune-bf16base-'));
  const cfg = join(dir, 'train.yaml');
  writeFileSync(cfg, `model: stories260K
output_dir: ${join(dir, 'unused')}
data:
  datasets: [{path: ${join(packageRoot(), 'examples', 'data', 'gsm8k-train-200.jsonl')}, columns: {prompt: question, completion: answer}}]
  max_len: 512
  overflow: drop
training: {max_steps: 12, micro_batch_size: 4, grad_accum: 1, lr: 0.01, warmup_steps: 2, save_every: 6}
lora: {rank: 8, alpha: 16, targets: [q, k, v, o, gate, up, down]}
`);
  const losses = (out: string) => readFileSync(join(out, 'metrics.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l) as { loss?: number }).filter((m) => m.loss !== undefined).map((m) => m.loss!);
  const train = (out: string, ...args: string[]) => {
    const r = runCli('train', '--config', cfg, '--output-dir', join(dir, out), '--no-progress', ...args);
    assert.equal(r.code, 0, r.stderr);
    return losses(join(dir, out));
  };
  const f32 = train('f32');
  const bf16 = train('bf16', '--set', 'lora.base_dtype=bf16');
  assert.ok(bf16[bf16.length - 1]! < bf16[0]! - 0.1, `it learns: ${bf16[0]} -> ${bf16[bf16.length - 1]}`);
  bf16.forEach((l, i) => {
    if (i >= 2) assert.ok(Math.abs(l - f32[i]!) <= 0.02 * f32[i]!, `step ${i + 1}: bf16 base ${l} vs fp32 base ${f32[i]}`);
  });
  train('bf16-resumed', '--set', 'lora.base_dtype=bf16', '--stop-after', '6');
  assert.deepEqual(train('bf16-resumed', '--set', 'lora.base_dtype=bf16', '--resume'), bf16, 'resumed losses equal the uninterrupted run');

  // final/ = the bf16 base (exactly) + scale * B * A, in fp32
  const fin = readSafetensors(join(dir, 'bf16', 'final', 'model.safetensors'));
  const ad = readSafetensors(join(dir, 'bf16', 'adapter', 'adapter_model.safetensors'));
  const base = loadModel('stories260K', nativeKernels()).model;
  const name = 'model.layers.1.mlp.down_proj.weight';
  const [outF, inF] = base.param(name).shape as [number, number];
  const A = ad.read('base_model.model.model.layers.1.mlp.down_proj.lora_A.weight');
  const B = ad.read('base_model.model.model.layers.1.mlp.down_proj.lora_B.weight');
  const want = dequantizeBf16(f32ToBf16(base.param(name).data));
  for (let o = 0; o < outF; o++) for (let i = 0; i < inF; i++) {
    let s = 0;
    for (let r = 0; r < 8; r++) s += B[o * 8 + r]! * A[r * inF + i]!;
    want[o * inF + i]! += 2 * s;
  }
  const got = fin.read(name);
  let maxDiff = 0;
  let delta = 0;
  for (let i = 0; i < got.length; i++) {
    maxDiff = Math.max(maxDiff, Math.abs(got[i]! - want[i]!));
    delta = Math.max(delta, Math.abs(got[i]! - base.param(name).data[i]!));
  }
  assert.ok(maxDiff < 1e-6, `merged weight differs by ${maxDiff}`);
  assert.ok(delta > 1e-4, 'the adapter changed the exported weight');
  const g = runCli('generate', '--model', join(dir, 'bf16', 'final'), '--prompt', 'Once upon a time', '--max-new-tokens', '8', '--temperature', '0');
  assert.equal(g.code, 0, g.stderr);
});

test('bf16 base: one-line errors without bf16 instructions, on the torch engine, and without LoRA in bench', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mixtune-bf16base-'));
  const cfg = join(dir, 'train.yaml');
  writeFileSync(cfg, `model: stories260K\noutput_dir: ${join(dir, 'out')}\ndata:\n  datasets: [{path: ${join(packageRoot(), 'examples', 'data', 'gsm8k-train-200.jsonl')}, columns: {prompt: question, completion: answer}}]\nlora: {rank: 4, base_dtype: bf16}\n`);
  assertOneLineError(runCli('train', '--config', cfg, '--engine', 'torch'), ['lora.base_dtype: bf16', 'native engine']);
  assertOneLineError(runCli('bench', 'train', 'base_dtype=bf16', 'steps=1', 'peer=0'), ['base_dtype=bf16', 'lora=R']);
  const prev = process.env.MIXTUNE_BF16;
  process.env.MIXTUNE_BF16 = 'none'; // what a CPU without AVX512-BF16 / AMX-BF16 reports
  try {
    assertOneLineError(runCli('train', '--config', cfg), ['lora.base_dtype: bf16', /BF16/]);
  } finally {
    if (prev === undefined) delete process.env.MIXTUNE_BF16;
    else process.env.MIXTUNE_BF16 = prev;
  }
});
