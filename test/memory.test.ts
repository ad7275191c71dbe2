// Memory preflight (src/train/memory.ts): the estimate tracks the measured peak RSS of real
// training steps, and a run that cannot fit is refused in the first second with the estimate, the
// limit and the fixes — before any data preparation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { packageRoot, sharedDir } from '../src/util/paths.js';
import { estimateTrainMemory, loraParameterCount, parameterCount } from '../src/train/memory.js';
import type { LlamaConfig } from '../src/model/config.js';

const bin = join(packageRoot(), 'bin', 'mixtune.js');

test('memory: the training estimate is within -10% / +15% of the measured peak RSS (bench train, steady state)', () => {
  const r = spawnSync(process.execPath, [bin, 'bench', 'train', 'vocab=32000', 'dim=256', 'layers=4', 'heads=4', 'kv_heads=2', 'ffn=688', 'seq=256', 'batch=2', 'steps=4', 'peer=0'], { encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  const d = JSON.parse(r.stdout) as { peak_rss_mb: number; estimated_peak_mb: number };
  const ratio = d.estimated_peak_mb / d.peak_rss_mb;
  assert.ok(ratio > 0.9 && ratio < 1.15, `estimate ${d.estimated_peak_mb} MB vs measured ${d.peak_rss_mb} MB (ratio ${ratio.toFixed(3)})`);
});

test('memory: training.bf16_ops counts only the bf16 packs it makes (trunk forward / input gradient, the LM head\'s two)', () => {
  const c: LlamaConfig = { vocabSize: 32000, dim: 1024, hiddenDim: 2816, nLayers: 8, nHeads: 16, nKvHeads: 4, headDim: 64, maxSeqLen: 1024, normEps: 1e-5, ropeTheta: 1e4, tiedEmbeddings: true, qkvBias: false };
  const w = (o: Omit<Parameters<typeof estimateTrainMemory>[1], 'tokensPerMicroBatch'>) => estimateTrainMemory(c, { tokensPerMicroBatch: 512, ...o }).weights;
  const fp32 = w({});
  const head = c.vocabSize * c.dim;
  const trunk = parameterCount(c) - head - c.dim * (2 * c.nLayers + 1); // every matrix but the (tied) head
  assert.equal(w({ precisionBf16: true }), fp32 + 2 * 2 * (trunk + head), 'default: two bf16 copies of every matrix');
  assert.equal(w({ precisionBf16: true, bf16Ops: ['linear_forward', 'linear_input_grad', 'linear_weight_grad', 'attention', 'lm_head'] }), w({ precisionBf16: true }));
  assert.equal(w({ precisionBf16: true, bf16Ops: ['linear_weight_grad', 'attention'] }), fp32, 'no packs');
  assert.equal(w({ precisionBf16: true, bf16Ops: ['lm_head'] }), fp32 + 2 * 2 * head);
  assert.equal(w({ precisionBf16: true, bf16Ops: ['linear_input_grad', 'lm_head'] }), fp32 + 2 * (trunk + 2 * head));
});

test('memory: LoRA needs no gradients or optimizer state for the frozen base', () => {
  const c: LlamaConfig = { vocabSize: 32000, dim: 1024, hiddenDim: 2816, nLayers: 8, nHeads: 16, nKvHeads: 4, headDim: 64, maxSeqLen: 1024, normEps: 1e-5, ropeTheta: 1e4, tiedEmbeddings: false, qkvBias: false };
  const full = estimateTrainMemory(c, { tokensPerMicroBatch: 512 });
  const lora = estimateTrainMemory(c, { tokensPerMicroBatch: 512, lora: { rank: 16, targets: ['q', 'v'] } });
  assert.equal(full.gradients, parameterCount(c) * 4);
  assert.equal(full.optimizer, 2 * parameterCount(c) * 4);
  assert.equal(lora.gradients, loraParameterCount(c, 16, ['q', 'v']) * 4);
  assert.equal(loraParameterCount(c, 16, ['q', 'v']), 8 * 16 * ((1024 + 1024) + (256 + 1024)));
  assert.ok(lora.total < full.total * 0.5);
});

/** An HF folder with the config of a 0.5B-class model (no weights: the preflight must refuse before loading). */
function bigModelFolder(dir: string): string {
  const m = join(dir, 'big-model');
  mkdirSync(m);
  writeFileSync(join(m, 'config.json'), JSON.stringify({
    architectures: ['MistralForCausalLM'], model_type: 'mistral', vocab_size: 32768, hidden_size: 2048, intermediate_size: 8192,
    num_hidden_layers: 16, num_attention_heads: 16, num_key_value_heads: 8, max_position_embeddings: 4096, rms_norm_eps: 1e-5, rope_theta: 10000,
  }));
  const tok = join(sharedDir(), 'fixtures', 'mistral-v0.3');
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(tok, f), join(m, f));
  return m;
}

test('memory: a run that cannot fit under ulimit -v is refused at once, before data preparation; --dry-run prints the estimate', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mixtune-mem-'));
  const model = bigModelFolder(dir);
  const data = join(dir, 'data.jsonl');
  writeFileSync(data, '{"prompt": "2+2?", "completion": "4"}\n');
  const cfg = join(dir, 'train.yaml');
  writeFileSync(cfg, `model: ${model}\noutput_dir: ${join(dir, 'out')}\ndata:\n  datasets: [{path: ${data}}]\n  max_len: 1024\ntraining:\n  micro_batch_size: 4\n`);
  const run = (...args: string[]) => spawnSync('sh', ['-c', `ulimit -v 4000000 && exec "${process.execPath}" "${bin}" train --config "${cfg}" --no-progress ${args.join(' ')}`], { encoding: 'utf8' });
  const t0 = Date.now();
  const r = run();
  assert.equal(r.status, 1, r.stderr);
  assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
  assert.match(r.stderr, /^mixtune: train: estimated peak memory [\d.]+ GiB \(weights [\d.]+ GiB, gradients .*\) exceeds the [\d.]+ (GiB|MiB) available \(ulimit -v\); try LoRA .*--force/);
  assert.ok(Date.now() - t0 < 10_000, 'the refusal took too long');
  const dry = run('--dry-run');
  assert.equal(dry.status, 0, dry.stderr);
  assert.match(dry.stdout, /^estimated peak memory [\d.]+ GiB .*\navailable: [\d.]+ (GiB|MiB) \(ulimit -v\)/);
  // --force gets past the preflight (and then fails on the missing weights, not on memory)
  const forced = run('--force');
  assert.equal(forced.status, 1);
  assert.doesNotMatch(forced.stderr, /exceeds/);
});

test('memory: generate, serve and eval refuse a model that cannot fit under ulimit -v at once, with the fixes of each command', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mixtune-mem-'));
  const model = bigModelFolder(dir);
  const data = join(dir, 'gsm8k.jsonl');
  writeFileSync(data, '{"question": "2+2?", "answer": "#### 4"}\n');
  const run = (args: string) => spawnSync('sh', ['-c', `ulimit -v 4000000 && exec "${process.execPath}" "${bin}" ${args}`], { encoding: 'utf8', timeout: 60_000 });
  const cases: [string, RegExp][] = [
    [`generate --model "${model}" --prompt hi`, /^mixtune: generate: estimated peak memory [\d.]+ GiB \(weights [\d.]+ GiB, .*kv cache .*\) exceeds the [\d.]+ (GiB|MiB) available \(ulimit -v\); lower --max-new-tokens.*--force/],
    [`serve --model "${model}" --port 0`, /^mixtune: serve: estimated peak memory [\d.]+ GiB \(weights [\d.]+ GiB, .*kv cache .*\) exceeds the [\d.]+ (GiB|MiB) available \(ulimit -v\); lower --context .*--max-inputs .*--force/],
    [`eval gsm8k --model "${model}" --data "${data}" --out "${join(dir, 'ev')}"`, /^mixtune: eval gsm8k: estimated peak memory [\d.]+ GiB .*exceeds .*--force/],
  ];
  for (const [args, want] of cases) {
    const t0 = Date.now();
    const r = run(args);
    assert.equal(r.status, 1, `${args}\n${r.stderr}`);
    assert.equal(r.signal, null);
    assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
    assert.match(r.stderr, want);
    assert.ok(Date.now() - t0 < 10_000, `${args}: the refusal took too long`);
  }
  // serve --force gets past the preflight (and then fails on the missing weights, not on memory)
  const forced = run(`serve --model "${model}" --port 0 --force`);
  assert.equal(forced.status, 1);
  assert.doesNotMatch(forced.stderr, /exceeds/);
  rmSync(dir, { recursive: true, force: true });
});
