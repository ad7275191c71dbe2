import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { configFromHf, configToHf } from '../src/io/hf-config.js';
import { ropeInvFreq } from '../src/model/llama.js';
import { sharedDir } from '../src/util/paths.js';
import { MixtuneError } from '../src/util/errors.js';

const mistral = JSON.parse(readFileSync(join(sharedDir(), 'fixtures', 'mistral-v0.3', 'config.json'), 'utf8')) as Record<string, unknown>;

test('hf config: the real Mistral v0.3 config.json', () => {
  const c = configFromHf(mistral, 'config.json');
  assert.equal(c.vocabSize, 32768);
  assert.equal(c.dim, 4096);
  assert.equal(c.hiddenDim, 14336);
  assert.equal(c.nLayers, 32);
  assert.equal(c.nHeads, 32);
  assert.equal(c.nKvHeads, 8);
  assert.equal(c.headDim, 128);
  assert.equal(c.ropeTheta, 1000000);
  assert.equal(c.normEps, 1e-5);
  assert.equal(c.tiedEmbeddings, false);
  assert.equal(c.qkvBias, false);
  assert.equal(c.maxSeqLen, 32768);
  assert.equal(configFromHf({ ...mistral, sliding_window: 4096 }, 'v0.1').maxSeqLen, 4096);
  const back = configFromHf(configToHf(c, 'mistral'), 'round trip');
  assert.deepEqual(back, c);
});

test('hf config: Qwen2 has q/k/v biases; unsupported options are refused by name', () => {
  const qwen = { architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', vocab_size: 100, hidden_size: 64, intermediate_size: 128, num_hidden_layers: 2,
    num_attention_heads: 4, num_key_value_heads: 2, max_position_embeddings: 128, rms_norm_eps: 1e-6, rope_theta: 1e6, tie_word_embeddings: true };
  const c = configFromHf(qwen, 'q.json');
  assert.equal(c.qkvBias, true);
  assert.equal(c.tiedEmbeddings, true);
  const bad = (over: Record<string, unknown>, re: RegExp): void => {
    assert.throws(() => configFromHf({ ...qwen, ...over }, 'q.json'), (e: unknown) => e instanceof MixtuneError && re.test(e.message) && e.message.startsWith('q.json: '));
  };
  bad({ rope_scaling: { type: 'yarn', factor: 4 } }, /rope_scaling type "yarn" is not implemented/);
  bad({ architectures: ['GPT2LMHeadModel'] }, /unsupported architecture GPT2LMHeadModel/);
  bad({ hidden_act: 'gelu' }, /hidden_act/);
  bad({ num_attention_heads: 0 }, /num_attention_heads/);
  bad({ hidden_size: 'big' }, /hidden_size/);
  bad({ use_sliding_window: true }, /use_sliding_window/);
});

test('rope scaling: linear divides every frequency, llama3 keeps high and divides low frequencies', () => {
  const base = ropeInvFreq(128, 500000);
  const lin = ropeInvFreq(128, 500000, { type: 'linear', factor: 4 });
  for (let j = 0; j < 64; j++) assert.ok(Math.abs(lin[j]! - base[j]! / 4) <= 1e-7 * base[j]!);
  const l3 = ropeInvFreq(128, 500000, { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 8192 });
  assert.equal(l3[0], base[0]); // highest frequency untouched
  assert.ok(Math.abs(l3[63]! - base[63]! / 8) <= 1e-6 * base[63]!); // lowest divided by factor
  for (let j = 1; j < 64; j++) assert.ok(l3[j]! <= base[j]! && l3[j]! >= base[j]! / 8 * (1 - 1e-6));
});
