import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sharedDir } from '../src/util/paths.js';
import { runCli as run, assertOneLineError } from './util.js';
import { hasBf16 } from '../src/tensor/bf16.js';

const dir = join(sharedDir(), 'fixtures', 'stories260K');
const model = join(dir, 'stories260K.bin');
const tok = join(dir, 'tok512.bin');

test('cli: generate greedy matches llama2.c output for the empty prompt', () => {
  const r = run('generate', '--model', model, '--tokenizer', tok, '--temperature', '0', '--max-new-tokens', '200', '--no-stop');
  assert.equal(r.code, 0, r.stderr);
  assert.equal(r.stdout, readFileSync(join(dir, 'expected_greedy_200.txt'), 'utf8') + '\n');
});

test('cli: --echo prints the prompt first, then the continuation', () => {
  const plain = run('generate', '--model', model, '--tokenizer', tok, '--prompt', 'Once upon a time', '--temperature', '0', '--max-new-tokens', '20');
  const echo = run('generate', '--model', model, '--tokenizer', tok, '--prompt', 'Once upon a time', '--temperature', '0', '--max-new-tokens', '20', '--echo');
  assert.equal(plain.code, 0, plain.stderr);
  assert.equal(echo.stdout, 'Once upon a time' + plain.stdout);
  assert.ok(plain.stdout.length > 20);
});

test('cli: unknown flag, missing file, truncated checkpoint, corrupt tokenizer give one-line errors', () => {
  assertOneLineError(run('generate', '--model', model, '--tokenizer', tok, '--bogus'), ['--bogus']);
  assertOneLineError(run('generate', '--model', '/nonexistent/m.bin', '--tokenizer', tok), ['/nonexistent/m.bin']);
  assertOneLineError(run('generate', '--model', model, '--tokenizer', tok, '--temperature', 'hot'), ['--temperature']);
  const tmp = mkdtempSync(join(tmpdir(), 'mixtune-cli-'));
  const cut = join(tmp, 'cut.bin');
  writeFileSync(cut, readFileSync(model).subarray(0, 5000));
  assertOneLineError(run('generate', '--model', cut, '--tokenizer', tok), [cut]);
  const badTok = join(tmp, 'tok.bin');
  const t = Buffer.from(readFileSync(tok));
  t.writeInt32LE(-5, 4 + 4); // first record's length
  writeFileSync(badTok, t);
  assertOneLineError(run('generate', '--model', model, '--tokenizer', badTok), [badTok]);
  assertOneLineError(run('bench', 'nosuchbench'), ['nosuchbench']);
  assertOneLineError(run('bench', 'train', 'dim=abc'), ['dim']);
  assertOneLineError(run('frobnicate'), ['frobnicate']);
});

test('cli: bench train reports ratio_to_peak (wall and CPU) and, with verbose=cpu, the step by phase and op kind', () => {
  const r = run('bench', 'train', 'vocab=300', 'dim=64', 'layers=2', 'heads=4', 'kv_heads=2', 'ffn=128', 'seq=32', 'batch=2', 'steps=3', 'peer=0', 'verbose=cpu');
  assert.equal(r.code, 0, r.stderr);
  const d = JSON.parse(r.stdout) as { ratio_to_peak: number; ratio_to_peak_cpu: number; profile_clock: string; profile_s: Record<string, number>; gemm_shapes: Record<string, { s: number; gflops: number }> };
  assert.ok(d.ratio_to_peak > 0 && d.ratio_to_peak_cpu > 0);
  assert.equal(d.profile_clock, 'cpu');
  for (const key of ['forward.total', 'forward.gemm', 'forward.attention', 'forward.rmsnorm', 'forward.cross_entropy', 'backward.total', 'backward.gemm', 'backward.attention', 'optimizer.adamw']) {
    assert.ok(key in d.profile_s, `${key} in ${JSON.stringify(d.profile_s)}`);
  }
  assert.ok('nt 64x128x64' in d.gemm_shapes, JSON.stringify(d.gemm_shapes));
  assertOneLineError(run('bench', 'train', 'verbose=2'), ['verbose']);
});

test('cli: bench train precision=bf16 times fp32 steps in the same run (ratio_vs_fp32, wall and CPU); compare=0 skips them', { skip: !hasBf16() && 'no bf16 instructions' }, () => {
  const small = ['vocab=300', 'dim=64', 'layers=2', 'heads=4', 'kv_heads=2', 'ffn=128', 'seq=32', 'batch=2', 'peer=0', 'precision=bf16'];
  const r = run('bench', 'train', ...small, 'steps=3');
  assert.equal(r.code, 0, r.stderr);
  const d = JSON.parse(r.stdout) as Record<string, unknown> & { fp32: { step_s: number; tokens_per_s: number; cpu_s_per_step: number; loss: number } };
  assert.equal(d.precision, 'bf16');
  assert.ok(d.fp32.step_s > 0 && d.fp32.tokens_per_s > 0 && d.fp32.cpu_s_per_step > 0 && Number.isFinite(d.fp32.loss), JSON.stringify(d.fp32));
  for (const key of ['ratio_vs_fp32', 'ratio_vs_fp32_cpu', 'ratio_vs_fp32_paired']) assert.ok((d[key] as number) > 0, `${key}: ${JSON.stringify(d)}`);
  assert.ok(Math.abs((d.ratio_vs_fp32 as number) - (d.tokens_per_s as number) / d.fp32.tokens_per_s) < 0.02 * (d.ratio_vs_fp32 as number));
  const one = JSON.parse(run('bench', 'train', ...small, 'steps=1').stdout) as Record<string, unknown>;
  assert.ok((one.ratio_vs_fp32 as number) > 0, 'steps=1: the only steps are used');
  const off = run('bench', 'train', ...small, 'steps=2', 'compare=0');
  assert.equal(off.code, 0, off.stderr);
  assert.ok(!('ratio_vs_fp32' in JSON.parse(off.stdout)));
  assertOneLineError(run('bench', 'train', ...small, 'compare=2'), ['compare']);
  assertOneLineError(run('bench', 'train', 'vocab=300', 'dim=64', 'layers=2', 'heads=4', 'kv_heads=2', 'ffn=128', 'seq=32', 'batch=2', 'peer=0', 'compare=1'), ['compare', 'precision=bf16']);
  // bf16_ops is reported; with the weight gradients alone no weight is packed (no larger an estimate)
  const w = JSON.parse(run('bench', 'train', ...small, 'steps=1', 'bf16_ops=linear_weight_grad').stdout) as Record<string, unknown>;
  assert.deepEqual(w.bf16_ops, ['linear_weight_grad']);
  assert.ok((w.estimated_peak_mb as number) <= (one.estimated_peak_mb as number));
});

test('cli: bench train recipe=sft precision=bf16 times the packed and causal rows in bf16 (losses close to fp32)', { skip: !hasBf16() && 'no bf16 instructions' }, () => {
  const small = ['recipe=sft', 'vocab=300', 'dim=64', 'layers=2', 'heads=4', 'kv_heads=2', 'ffn=128', 'seq=64', 'batch=2', 'steps=2', 'input_len=8', 'output_len=16'];
  const bf = run('bench', 'train', ...small, 'precision=bf16');
  assert.equal(bf.code, 0, bf.stderr);
  const f32 = run('bench', 'train', ...small);
  const d = JSON.parse(bf.stdout) as { precision: string; step_s: Record<string, number>; loss: Record<string, number> };
  const e = JSON.parse(f32.stdout) as typeof d;
  assert.equal(d.precision, 'bf16');
  assert.equal(e.precision, 'fp32');
  for (const name of ['packed', 'causal']) {
    assert.ok(d.step_s[name]! > 0, JSON.stringify(d));
    assert.ok(Math.abs(d.loss[name]! - e.loss[name]!) < 0.05 * e.loss[name]!, `${name}: bf16 ${d.loss[name]} vs fp32 ${e.loss[name]}`);
  }
  assertOneLineError(run('bench', 'train', ...small, 'precision=fp16'), ['precision']);
});

test('cli: bench attention precision=bf16 times the bf16 attention beside the fp32 kernel (causal and packed rows); MISO is refused', { skip: !hasBf16() && 'no bf16 instructions' }, () => {
  const small = ['b=1', 't=96', 'heads=2', 'kv_heads=1', 'd=16', 'reps=1', 'decode_t=64'];
  const keys = ['bf16_forward_ms', 'bf16_backward_ms', 'bf16_forward_gflops', 'bf16_backward_gflops', 'bf16_forward_speedup', 'bf16_backward_speedup'];
  for (const extra of [[], ['layout=packed', 'groups=3'], ['layout=causal']]) {
    const r = run('bench', 'attention', ...small, ...extra, 'precision=bf16');
    assert.equal(r.code, 0, r.stderr);
    const d = JSON.parse(r.stdout) as Record<string, unknown>;
    assert.equal(d.precision, 'bf16');
    for (const key of keys) assert.ok((d[key] as number) > 0, `${extra.join(' ')} ${key}: ${r.stdout}`);
  }
  const f32 = JSON.parse(run('bench', 'attention', ...small).stdout) as Record<string, unknown>;
  assert.ok(!('bf16_forward_ms' in f32) && (f32.forward_ms as number) > 0);
  assertOneLineError(run('bench', 'attention', ...small, 'layout=miso', 'precision=bf16'), ['precision=bf16', 'MISO']);
  assertOneLineError(run('bench', 'attention', ...small, 'precision=fp16'), ['precision']);
});

test('cli: bench train lora=R compare=1 times full fine-tuning steps of the same model in the same run (ratio_vs_full)', () => {
  const small = ['vocab=300', 'dim=64', 'layers=2', 'heads=4', 'kv_heads=2', 'ffn=128', 'seq=32', 'batch=2', 'peer=0', 'lora=4'];
  const r = run('bench', 'train', ...small, 'steps=3', 'compare=1');
  assert.equal(r.code, 0, r.stderr);
  const d = JSON.parse(r.stdout) as Record<string, unknown> & { full: { step_s: number; tokens_per_s: number; cpu_s_per_step: number; loss: number; trainable_params: number } };
  assert.ok(d.full.step_s > 0 && d.full.tokens_per_s > 0 && d.full.cpu_s_per_step > 0 && Number.isFinite(d.full.loss), JSON.stringify(d.full));
  for (const key of ['ratio_vs_full', 'ratio_vs_full_cpu', 'ratio_vs_full_paired']) assert.ok((d[key] as number) > 0, `${key}: ${JSON.stringify(d)}`);
  assert.ok(Math.abs((d.ratio_vs_full as number) - (d.tokens_per_s as number) / d.full.tokens_per_s) < 0.02 * (d.ratio_vs_full as number));
  assert.ok(!('fp32' in d) && !('ratio_vs_fp32' in d));
  // the benchmarked steps train the adapters, the reference steps every base weight
  const alone = JSON.parse(run('bench', 'train', ...small, 'steps=2').stdout) as { params: number; trainable_params: number };
  assert.equal(d.trainable_params, alone.trainable_params);
  assert.ok(alone.trainable_params < alone.params / 4, JSON.stringify(alone));
  assert.equal(d.full.trainable_params, alone.params);
  // and they do train it: the last LoRA step runs on a base that two full steps changed
  const loraAlone = JSON.parse(run('bench', 'train', ...small, 'steps=3').stdout) as { loss: number };
  assert.notEqual(d.loss, loraAlone.loss, 'full fine-tuning steps changed the base weights');
});

test('cli: bench train lora=R base_dtype=bf16 compare=1 times full fine-tuning of a separate fp32 model of the same seed', { skip: !hasBf16() && 'no bf16 instructions' }, () => {
  const small = ['vocab=300', 'dim=64', 'layers=2', 'heads=4', 'kv_heads=2', 'ffn=128', 'seq=32', 'batch=2', 'peer=0', 'lora=4'];
  const r = run('bench', 'train', ...small, 'steps=3', 'compare=1', 'base_dtype=bf16');
  assert.equal(r.code, 0, r.stderr);
  const d = JSON.parse(r.stdout) as Record<string, unknown> & { cfg: { base_dtype: string }; full: { tokens_per_s: number; loss: number; trainable_params: number; base_dtype: string } };
  assert.equal(d.cfg.base_dtype, 'bf16');
  assert.equal(d.full.base_dtype, 'f32');
  assert.equal(d.full.trainable_params, d.params);
  for (const key of ['ratio_vs_full', 'ratio_vs_full_cpu', 'ratio_vs_full_paired']) assert.ok((d[key] as number) > 0, `${key}: ${JSON.stringify(d)}`);
  // the full steps train their own model: the LoRA losses are those of the LoRA run alone
  const loraAlone = JSON.parse(run('bench', 'train', ...small, 'steps=3', 'base_dtype=bf16').stdout) as { loss: number };
  assert.equal(d.loss, loraAlone.loss);
  // and the fp32 reference starts from the same weights: its first loss is the bf16 base's within rounding
  const fullAlone = JSON.parse(run('bench', 'train', ...small.filter((a) => a !== 'lora=4'), 'steps=3').stdout) as { loss: number };
  assert.equal(d.full.loss, fullAlone.loss);
  // the memory estimate counts both models
  const est = (args: string[]): number => (JSON.parse(run('bench', 'train', ...args, 'steps=1').stdout) as { estimated_peak_mb: number }).estimated_peak_mb;
  assert.ok((d.estimated_peak_mb as number) > est([...small, 'base_dtype=bf16']), JSON.stringify(d));
});
