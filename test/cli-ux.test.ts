// Issue 12, the rest of "a user's first hour": bad data skipped as documented, non-finite logits
// and empty evaluations are errors, tokenizer and generation files found and carried, help texts
// as users write them, progress lines that fit 80 columns.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Command } from 'commander';
import { readDataset } from '../src/data/readers.js';
import { loadTokenizer } from '../src/io/load.js';
import { HfTokenizer } from '../src/io/hf-tokenizer.js';
import { buildProgram } from '../src/cli/main.js';
import { formatProgressLine, MovingRate } from '../src/util/progress.js';
import { readSafetensors, writeSafetensors, type TensorToWrite } from '../src/io/safetensors.js';
import { packageRoot, sharedDir } from '../src/util/paths.js';
import { MixtuneError } from '../src/util/errors.js';
import { runCli as run, assertOneLineError } from './util.js';

const tmp = mkdtempSync(join(tmpdir(), 'mixtune-ux-'));
const GSM = join(packageRoot(), 'examples', 'data', 'gsm8k-train-200.jsonl');

test('--skip-bad skips a malformed JSON line (counted); without it the line is a one-line error', () => {
  const p = join(tmp, 'mal.jsonl');
  writeFileSync(p, '{"prompt": "a", "completion": "b"}\n{"prompt": "c", "comp\n{"prompt": "d", "completion": "e"}\n');
  assert.throws(() => readDataset(p), (e: unknown) => e instanceof MixtuneError && /mal\.jsonl:2: malformed JSON \(.*\) \(use --skip-bad to skip bad records\)/.test(e.message));
  const r = readDataset(p, { skipBad: true });
  assert.equal(r.examples.length, 2);
  assert.equal(r.skipped, 1);
  assert.match(r.skipReasons[0]!, /mal\.jsonl:2: malformed JSON/);
});

test('a model with a NaN weight: generate and score fail naming the model (no silent empty output)', () => {
  const dir = join(tmp, 'nan-model');
  assert.equal(run('convert', '--from', 'stories260K', '--to', dir).code, 0);
  const sf = readSafetensors(join(dir, 'model.safetensors'));
  const tensors = new Map<string, TensorToWrite>();
  for (const [name, info] of sf.tensors) tensors.set(name, { shape: info.shape, data: sf.read(name) });
  tensors.get('model.norm.weight')!.data[3] = Number.NaN;
  writeSafetensors(join(dir, 'model.safetensors'), tensors, { metadata: { format: 'pt' } });
  assertOneLineError(run('generate', '--model', dir, '--prompt', 'Once', '--max-new-tokens', '5'), [/nan-model: the model computes non-finite logits \(NaN\) at generated token 1/]);
  assertOneLineError(run('score', '--model', dir, '--input', 'Once upon', '--output', ' a time'), [/nan-model: the model computes non-finite logits/]);
});

test('eval with responses that match no item is an error, not "0/N scored"', () => {
  const input = join(sharedDir(), 'data', 'ifeval', 'input_data.jsonl');
  const resp = join(tmp, 'other.jsonl');
  writeFileSync(resp, '{"prompt": "something else entirely", "response": "hi"}\n');
  assertOneLineError(run('eval', 'ifeval', '--input', input, '--responses', resp, '--out', join(tmp, 'ife')), [/other\.jsonl: no response matches any of the \d+ prompts/]);
  const g = join(tmp, 'g.jsonl');
  writeFileSync(g, '{"id": "nope-1", "response": "42"}\n');
  assertOneLineError(run('eval', 'gsm8k', '--data', join(packageRoot(), 'examples', 'data', 'gsm8k-test-50.jsonl'), '--responses', g, '--out', join(tmp, 'gsm')), [/g\.jsonl: no response matches any of the 50 gsm8k items/]);
});

test('an HF folder whose tokenizer is vocab.json + merges.txt (no tokenizer.json) loads like the tokenizer.json one', () => {
  const q = join(sharedDir(), 'fixtures', 'qwen2.5');
  const dir = join(tmp, 'qwen-model');
  mkdirSync(dir);
  for (const f of ['vocab.json', 'merges.txt', 'tokenizer_config.json']) copyFileSync(join(q, f), join(dir, f));
  const tok = loadTokenizer(undefined, dir, 151936);
  const ref = HfTokenizer.load(q);
  const text = 'Hello, world! 你好 12345';
  assert.deepEqual(tok.encode(text), ref.encode(text));
  assert.ok(tok.encode(text).length > 3);
});

test('final/ keeps the source model\'s generation_config.json', () => {
  const src = join(tmp, 'gen-src');
  assert.equal(run('convert', '--from', 'stories260K', '--to', src).code, 0);
  const cfg = join(tmp, 'gen.yaml');
  writeFileSync(cfg, `model: ${src}\noutput_dir: ${join(tmp, 'gen-out')}\ndata:\n  datasets: [{path: ${GSM}, columns: {prompt: question, completion: answer}, limit: 8}]\n  overflow: drop\ntraining: {max_steps: 1}\n`);
  const r = run('train', '--config', cfg, '--no-progress');
  assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(JSON.parse(readFileSync(join(tmp, 'gen-out', 'final', 'generation_config.json'), 'utf8')), JSON.parse(readFileSync(join(src, 'generation_config.json'), 'utf8')));
});

test('--help of every command: required options marked, list defaults as users write them', () => {
  const walk = (c: Command): Command[] => [c, ...c.commands.flatMap(walk)];
  for (const c of walk(buildProgram())) {
    const help = c.helpInformation();
    assert.doesNotMatch(help, /\(default: \[/, `${c.name()}: a JSON array default`);
    for (const o of c.options) if (o.mandatory) assert.match(o.description, /\(required\)$/, `${c.name()} ${o.flags}`);
  }
  const bench = walk(buildProgram()).find((c) => c.name() === 'bench')!;
  let text = '';
  bench.configureOutput({ writeOut: (s) => (text += s) });
  bench.outputHelp();
  assert.match(text, /train +vocab=8192 dim=512/);
  assert.match(run('study', 'miso', '--help').stdout.replace(/\s+/g, ' '), /--model <path> model to fine-tune: stories260K \(the embedded model, default\), a llama2\.c \.bin or an HF model folder/);
});

test('progress lines fit 80 columns with realistic values; no empty field; tok/s is a moving average', () => {
  for (const info of ['', 'loss 1.2345 | lr 2.0e-4 | 12345 tok/s', 'x'.repeat(200)]) {
    const line = formatProgressLine('train', 1234, 15000, info, 3725, 79);
    assert.ok(line.length <= 79, `${line.length}: ${line}`);
    assert.doesNotMatch(line, /\|\s+\|/);
  }
  assert.match(formatProgressLine('eval sft', 480, 480, '', 0, 79), /^eval sft \[#+\] 480\/480 \| ETA 0s$/);
  assert.match(formatProgressLine('train', 10, 100, 'loss 2.0000 | lr 1.0e-3 | 900 tok/s', 65, 79), /\| loss 2\.0000 \| lr 1\.0e-3 \| 900 tok\/s \| ETA 1m05s$/);
  const m = new MovingRate(3);
  m.add(100, 1);
  m.add(100, 1);
  assert.equal(m.add(400, 1), 200); // (100 + 100 + 400) / 3 s
  assert.equal(m.add(400, 1), 300); // the first step left the window
});

test('prepare: no empty "()" after the recipe; the space token after BOS renders as a space; score prints response_total', () => {
  const cfg = join(tmp, 'sft.yaml');
  writeFileSync(cfg, `model: stories260K\ndata:\n  datasets: [{path: ${GSM}, columns: {prompt: question, completion: answer}, limit: 4}]\n`);
  const r = run('prepare', '--config', cfg, '--show', '1');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^recipe: sft\n/);
  assert.doesNotMatch(r.stdout, /<410>/);
  const s = run('score', '--model', 'stories260K', '--input', 'Tell me a story', '--output', 'Once upon a time', '--chat');
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stdout, /\nresponse_total -?\d+\.\d{4} over \d+ tokens \(without the \d+-token header\)\n$/);
  assert.ok(existsSync(cfg));
});

test('eval: --data works for ifeval too (--input stays an alias); --prompt-template wraps the question; unknown fields are named', () => {
  const input = join(sharedDir(), 'data', 'ifeval', 'input_data.jsonl');
  const responses = join(sharedDir(), 'data', 'ifeval', 'input_response_data_gpt4_20231107_145030.jsonl');
  const a = run('eval', 'ifeval', '--data', input, '--responses', responses, '--out', join(tmp, 'ife-data'), '--limit', '20');
  const b = run('eval', 'ifeval', '--input', input, '--responses', responses, '--out', join(tmp, 'ife-input'), '--limit', '20');
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  assert.deepEqual(JSON.parse(readFileSync(join(tmp, 'ife-data', 'summary.json'), 'utf8')).strict, JSON.parse(readFileSync(join(tmp, 'ife-input', 'summary.json'), 'utf8')).strict);
  const data = join(packageRoot(), 'examples', 'data', 'gsm8k-test-50.jsonl');
  const ok = run('eval', 'gsm8k', '--model', 'stories260K', '--data', data, '--limit', '2', '--max-new-tokens', '4', '--out', join(tmp, 'pt'), '--prompt-template', 'Q: {question}\nA:', '--no-progress');
  assert.equal(ok.code, 0, ok.stderr);
  assert.equal(JSON.parse(readFileSync(join(tmp, 'pt', 'run.json'), 'utf8')).prompt_template, 'Q: {question}\nA:');
  assertOneLineError(run('eval', 'gsm8k', '--model', 'stories260K', '--data', data, '--limit', '1', '--out', join(tmp, 'pt2'), '--prompt-template', '{questoin}', '--no-progress'),
    [/--prompt-template: .* has no field \{questoin\} \(fields: question, answer\)/]);
});
