import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { LlamaModel } from '../src/model/llama.js';
import { nativeKernels } from '../src/tensor/native.js';
import { loadLlama2c } from '../src/io/llama2c.js';
import { Llama2cTokenizer } from '../src/io/llama2c-tokenizer.js';
import { generate } from '../src/infer/generate.js';
import { argmax, sampleToken } from '../src/infer/sample.js';
import { sharedDir } from '../src/util/paths.js';
import { Rng } from '../src/util/rng.js';

const dir = join(sharedDir(), 'fixtures', 'stories260K');

function stories(): { model: LlamaModel; tok: Llama2cTokenizer } {
  const { config, weights } = loadLlama2c(join(dir, 'stories260K.bin'));
  const model = new LlamaModel(config, nativeKernels(), weights);
  const tok = Llama2cTokenizer.load(join(dir, 'tok512.bin'), config.vocabSize);
  return { model, tok };
}

function text(tok: Llama2cTokenizer, prev: number, ids: number[]): string {
  const bytes: number[] = [];
  for (const id of ids) {
    bytes.push(...tok.decodePiece(prev, id));
    prev = id;
  }
  return new TextDecoder().decode(Uint8Array.from(bytes));
}

test('generate: greedy from BOS for 200 steps reproduces llama2.c exactly (stories260K)', () => {
  const { model, tok } = stories();
  const expected = readFileSync(join(dir, 'expected_greedy_200.txt'), 'utf8');
  const r = generate(model, [tok.bosId], { maxNewTokens: 200, temperature: 0 });
  assert.equal(r.tokens.length, 200);
  assert.equal(text(tok, tok.bosId, r.tokens), expected);
});

test('generate: greedy tokens are identical with and without the KV cache', () => {
  const { model, tok } = stories();
  const prompt = tok.encode('Lily and Tom went to the park', { bos: true });
  const a = generate(model, prompt, { maxNewTokens: 60, temperature: 0, useCache: true });
  const b = generate(model, prompt, { maxNewTokens: 60, temperature: 0, useCache: false });
  assert.deepEqual(a.tokens, b.tokens);
  // and the cache path's logits equal the full-recompute logits for the last position
  const seq = [...prompt, ...a.tokens.slice(0, 10)];
  const full = model.logits(Int32Array.from(seq));
  const V = model.config.vocabSize;
  const cache = model.newCache();
  model.step(Int32Array.from(seq.slice(0, 5)), cache);
  let last: Float32Array = new Float32Array();
  for (let i = 5; i < seq.length; i++) last = model.step(Int32Array.of(seq[i]!), cache);
  const ref = full.subarray((seq.length - 1) * V);
  for (let i = 0; i < V; i++) assert.ok(Math.abs(last[i]! - ref[i]!) < 1e-4, `logit ${i}: ${last[i]} vs ${ref[i]}`);
});

test('generate: sampling is deterministic per seed; top-k=1 and tiny top-p are greedy', () => {
  const { model, tok } = stories();
  const prompt = tok.encode('Once upon a time', { bos: true });
  const s1 = generate(model, prompt, { maxNewTokens: 30, temperature: 1, topP: 0.9, seed: 42 });
  const s2 = generate(model, prompt, { maxNewTokens: 30, temperature: 1, topP: 0.9, seed: 42 });
  const s3 = generate(model, prompt, { maxNewTokens: 30, temperature: 1.5, seed: 7 });
  assert.deepEqual(s1.tokens, s2.tokens);
  assert.notDeepEqual(s1.tokens, s3.tokens);
  const greedy = generate(model, prompt, { maxNewTokens: 30, temperature: 0 });
  assert.deepEqual(generate(model, prompt, { maxNewTokens: 30, temperature: 0.8, topK: 1, seed: 3 }).tokens, greedy.tokens);
  assert.deepEqual(generate(model, prompt, { maxNewTokens: 30, temperature: 0.8, topP: 1e-9, seed: 3 }).tokens, greedy.tokens);
});

test('generate: stops at a stop id and at the context length', () => {
  const { model, tok } = stories();
  const greedy = generate(model, [tok.bosId], { maxNewTokens: 20, temperature: 0 });
  const stopAt = greedy.tokens[5]!;
  const r = generate(model, [tok.bosId], { maxNewTokens: 20, temperature: 0, stopIds: [stopAt] });
  assert.equal(r.stoppedBy, 'stop');
  assert.equal(r.tokens[r.tokens.length - 1], stopAt);
  assert.ok(r.tokens.length <= 6);
  const long = Array.from({ length: model.config.maxSeqLen - 3 }, () => tok.bosId);
  const c = generate(model, long, { maxNewTokens: 50, temperature: 0 });
  assert.equal(c.stoppedBy, 'context');
  assert.equal(c.tokens.length, 3);
});

test('sample: temperature sampling follows the distribution; top-k restricts support', () => {
  const logits = Float32Array.from([Math.log(0.5), Math.log(0.3), Math.log(0.2)]);
  const rng = new Rng(1);
  const counts = [0, 0, 0];
  for (let i = 0; i < 20000; i++) counts[sampleToken(logits, { temperature: 1, topK: 0, topP: 1 }, rng)]!++;
  assert.ok(Math.abs(counts[0]! / 20000 - 0.5) < 0.02 && Math.abs(counts[2]! / 20000 - 0.2) < 0.02, `counts ${counts}`);
  const c2 = [0, 0, 0];
  for (let i = 0; i < 5000; i++) c2[sampleToken(logits, { temperature: 1, topK: 2, topP: 1 }, rng)]!++;
  assert.equal(c2[2], 0);
  const c3 = [0, 0, 0];
  for (let i = 0; i < 5000; i++) c3[sampleToken(logits, { temperature: 1, topK: 0, topP: 0.75 }, rng)]!++;
  assert.equal(c3[2], 0);
  assert.ok(c3[1]! > 0);
  assert.equal(argmax([1, 3, 3, 2]), 1);
});
