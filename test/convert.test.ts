import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sharedDir } from '../src/util/paths.js';
import { runCli as run, assertOneLineError } from './util.js';
import { loadHfModel } from '../src/io/hf-model.js';
import { loadLlama2c } from '../src/io/llama2c.js';

const fx = join(sharedDir(), 'fixtures', 'stories260K');
const model = join(fx, 'stories260K.bin');
const tok = join(fx, 'tok512.bin');
const expected = readFileSync(join(fx, 'expected_greedy_200.txt'), 'utf8') + '\n';

const tmp = mkdtempSync(join(tmpdir(), 'mixtune-convert-'));
after(() => rmSync(tmp, { recursive: true, force: true }));

test('convert: stories260K -> HF folder; greedy 200 tokens from the folder equal the .bin output', () => {
  const dir = join(tmp, 'stories');
  const r = run('convert', '--from', model, '--tokenizer', tok, '--to', dir);
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(readdirSync(dir).sort(), ['config.json', 'generation_config.json', 'model.safetensors', 'tokenizer.bin', 'tokenizer.json', 'tokenizer_config.json']);
  const cfg = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8'));
  assert.deepEqual(cfg.architectures, ['LlamaForCausalLM']);
  assert.equal(cfg.model_type, 'llama');
  assert.equal(cfg.tie_word_embeddings, true);
  assert.equal(cfg.rms_norm_eps, 1e-5);
  assert.equal(cfg.rope_theta, 10000);
  assert.equal(cfg.max_position_embeddings, 512);
  assert.equal(cfg.bos_token_id, 1);
  assert.equal(cfg.eos_token_id, 2);
  assert.deepEqual(JSON.parse(readFileSync(join(dir, 'generation_config.json'), 'utf8')), { bos_token_id: 1, eos_token_id: [2, 1], do_sample: false });
  // F32 weights are the .bin's weights exactly (q/k already in the rotate-half layout)
  const hf = loadHfModel(dir);
  const l2c = loadLlama2c(model);
  for (const [n, w] of l2c.weights) assert.deepEqual(hf.weights.get(n), w, n);

  // via the folder's own tokenizer (tokenizer.json, through @huggingface/tokenizers)
  const a = run('generate', '--model', dir, '--temperature', '0', '--max-new-tokens', '200', '--no-stop');
  assert.equal(a.code, 0, a.stderr);
  assert.equal(a.stdout, expected);
  // and with an explicit --tokenizer
  const b = run('generate', '--model', dir, '--tokenizer', tok, '--temperature', '0', '--max-new-tokens', '200', '--no-stop');
  assert.equal(b.stdout, expected);
  const c = run('generate', '--model', model, '--tokenizer', tok, '--temperature', '0', '--max-new-tokens', '200', '--no-stop');
  assert.equal(c.stdout, a.stdout);
  // a prompt goes through tokenizer.json's encoding: the same continuation as the .bin path
  const p1 = run('generate', '--model', dir, '--prompt', 'Lily wanted a big red ball', '--temperature', '0', '--max-new-tokens', '40', '--echo');
  const p2 = run('generate', '--model', model, '--tokenizer', tok, '--prompt', 'Lily wanted a big red ball', '--temperature', '0', '--max-new-tokens', '40', '--echo');
  assert.equal(p1.code, 0, p1.stderr);
  assert.equal(p1.stdout, p2.stdout);
  assert.ok(p1.stdout.startsWith('Lily wanted a big red ball'));
});

test('convert: --dtype bf16 writes BF16 tensors that still generate sensible text', () => {
  const dir = join(tmp, 'bf16');
  const r = run('convert', '--from', model, '--tokenizer', tok, '--to', dir, '--dtype', 'bf16');
  assert.equal(r.code, 0, r.stderr);
  const header = readFileSync(join(dir, 'model.safetensors'));
  const json = JSON.parse(header.subarray(8, 8 + Number(header.readBigUInt64LE(0))).toString('utf8'));
  for (const [k, v] of Object.entries(json)) if (k !== '__metadata__') assert.equal((v as { dtype: string }).dtype, 'BF16', k);
  assert.equal(JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')).torch_dtype, 'bfloat16');
  const g = run('generate', '--model', dir, '--temperature', '0', '--max-new-tokens', '30', '--no-stop');
  assert.equal(g.code, 0, g.stderr);
  assert.ok(g.stdout.length > 40);
});

test('convert: refuses a non-empty output folder unless --overwrite; one-line errors', () => {
  const dir = join(tmp, 'busy');
  mkdirSync(dir);
  writeFileSync(join(dir, 'keep.txt'), 'x');
  assertOneLineError(run('convert', '--from', model, '--tokenizer', tok, '--to', dir), [dir, 'not empty', '--overwrite']);
  assert.deepEqual(readdirSync(dir), ['keep.txt']);
  const ok = run('convert', '--from', model, '--tokenizer', tok, '--to', dir, '--overwrite');
  assert.equal(ok.code, 0, ok.stderr);
  assert.ok(!existsSync(join(dir, 'keep.txt')));
  assert.ok(existsSync(join(dir, 'model.safetensors')));
  assertOneLineError(run('convert', '--from', join(tmp, 'nope.bin'), '--tokenizer', tok, '--to', join(tmp, 'x1')), [join(tmp, 'nope.bin')]);
  assertOneLineError(run('convert', '--from', model, '--tokenizer', join(tmp, 'nope.tok'), '--to', join(tmp, 'x2')), [join(tmp, 'nope.tok')]);
  assertOneLineError(run('convert', '--from', model, '--tokenizer', tok, '--to', join(tmp, 'x3'), '--dtype', 'f8'), ['--dtype']);
  assertOneLineError(run('convert', '--from', model, '--tokenizer', tok), ['--to']);
  assert.ok(!existsSync(join(tmp, 'x1')) && !existsSync(join(tmp, 'x2')) && !existsSync(join(tmp, 'x3')));
  assert.deepEqual(readdirSync(tmp).filter((n) => n.includes('.tmp-')), []);
  // generate on a folder that is not a model
  assertOneLineError(run('generate', '--model', tmp, '--tokenizer', tok), [join(tmp, 'config.json')]);
});

