import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { LlamaModel } from '../src/model/llama.js';
import type { LlamaConfig } from '../src/model/config.js';
import { nativeKernels } from '../src/tensor/native.js';
import { loadLlama2c } from '../src/io/llama2c.js';
import { Llama2cTokenizer } from '../src/io/llama2c-tokenizer.js';
import { generate } from '../src/infer/generate.js';
import { MisoDecoder, logProb, misoGenerate, misoScore, type MisoPositions } from '../src/infer/miso.js';
import type { Weighting } from '../src/tensor/ops.js';
import { MixtuneError } from '../src/util/errors.js';
import { applyLora } from '../src/model/lora.js';
import { packageRoot, sharedDir } from '../src/util/paths.js';
import { Rng } from '../src/util/rng.js';
import { assertClose } from './util.js';

const dir = join(sharedDir(), 'fixtures', 'stories260K');
const modelPath = join(dir, 'stories260K.bin');
const tokPath = join(dir, 'tok512.bin');

let storiesCache: { model: LlamaModel; tok: Llama2cTokenizer } | null = null;
function stories(): { model: LlamaModel; tok: Llama2cTokenizer } {
  if (!storiesCache) {
    const { config, weights } = loadLlama2c(modelPath);
    storiesCache = { model: new LlamaModel(config, nativeKernels(), weights), tok: Llama2cTokenizer.load(tokPath, config.vocabSize) };
  }
  return storiesCache;
}

/** A random tiny GQA model with qkv bias and an untied head (large std: non-trivial attention). */
function tiny(): LlamaModel {
  const cfg: LlamaConfig = {
    vocabSize: 41, dim: 32, hiddenDim: 48, nLayers: 2, nHeads: 4, nKvHeads: 2, headDim: 8,
    maxSeqLen: 96, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: false, qkvBias: true,
  };
  const m = LlamaModel.random(cfg, nativeKernels(), 5, 0.25);
  // random qkv biases too
  const rng = new Rng(9);
  for (const [name, t] of m.params) if (name.endsWith('.bias')) for (let i = 0; i < t.size; i++) t.data[i] = rng.normal() * 0.2;
  return m;
}

function ids(rng: Rng, n: number, V: number): number[] {
  return Array.from({ length: n }, () => 1 + rng.int(V - 1));
}

/** Log-probs of output[1..] through the per-input KV caches (teacher forcing), the first `chunk` output tokens fed at once. */
function cachedScore(model: LlamaModel, inputs: number[][], output: number[], positions: MisoPositions, weighting: Weighting, chunk: number): number[] {
  const dec = new MisoDecoder(model, inputs, output.length, { positions, weighting });
  const lp: number[] = [];
  let logits = dec.feed(output.slice(0, chunk));
  for (let j = chunk; ; j++) {
    if (j >= output.length) break;
    lp.push(logProb(logits, output[j]!));
    if (j + 1 >= output.length) break;
    logits = dec.feed([output[j]!]);
  }
  return lp;
}

test('miso score: one input equals the causal log-probs of [input ; output] (stories260K and tiny GQA)', () => {
  const rng = new Rng(1);
  for (const model of [stories().model, tiny()]) {
    const V = model.config.vocabSize;
    const input = ids(rng, 9, V);
    const output = ids(rng, 7, V);
    const seq = [...input, ...output];
    const logits = model.logits(Int32Array.from(seq));
    const expected: number[] = [];
    for (let j = 1; j < output.length; j++) {
      const t = input.length + j - 1;
      expected.push(logProb(logits.subarray(t * V, (t + 1) * V), output[j]!));
    }
    for (const positions of ['para', 'succ'] as const) {
      for (const weighting of ['uniform', 'fid', 'vanilla'] as const) {
        const s = misoScore(model, [input], output, { positions, weighting });
        assert.equal(s.logprobs.length, output.length - 1);
        assertClose(s.logprobs, expected, 1e-4, 1e-4, `${positions}/${weighting} logprobs`);
        assert.ok(Math.abs(s.total - expected.reduce((a, b) => a + b, 0)) < 1e-3);
      }
    }
  }
});

test('miso score: the layout forward agrees with the per-input KV-cache decoding (n = 1..4, all weightings, para/succ)', () => {
  const rng = new Rng(2);
  for (const [name, model] of [['stories260K', stories().model], ['tiny GQA', tiny()]] as const) {
    const V = model.config.vocabSize;
    for (let n = 1; n <= 4; n++) {
      const inputs = Array.from({ length: n }, () => ids(rng, 2 + rng.int(9), V));
      const output = ids(rng, 6, V);
      for (const positions of ['para', 'succ'] as const) {
        for (const weighting of ['uniform', 'fid', 'vanilla'] as const) {
          const s = misoScore(model, inputs, output, { positions, weighting });
          for (const chunk of [1, 3]) {
            const c = cachedScore(model, inputs, output, positions, weighting, chunk);
            assertClose(c, s.logprobs.slice(chunk - 1), 1e-4, 1e-4, `${name} n=${n} ${positions}/${weighting} chunk=${chunk}`);
          }
        }
      }
    }
  }
});

test('miso score: LoRA adapters act the same in the layout forward and in stepMiso', () => {
  const model = tiny();
  const rng = new Rng(8);
  const inputs = [ids(rng, 5, 41), ids(rng, 7, 41), ids(rng, 3, 41)];
  const output = ids(rng, 6, 41);
  const base = misoScore(model, inputs, output, { weighting: 'fid' }).logprobs;
  const adapters = applyLora(model, { rank: 2, alpha: 4, targets: ['q', 'k', 'v', 'o', 'gate', 'up', 'down'], seed: 1 });
  for (const a of adapters.values()) for (let i = 0; i < a.B.size; i++) a.B.data[i] = rng.normal() * 0.3;
  const s = misoScore(model, inputs, output, { weighting: 'fid' }).logprobs;
  assert.ok(Math.abs(s[2]! - base[2]!) > 1e-3, 'the adapters change the scores');
  for (const weighting of ['uniform', 'fid', 'vanilla'] as const) {
    const ls = misoScore(model, inputs, output, { weighting }).logprobs;
    assertClose(cachedScore(model, inputs, output, 'para', weighting, 2), ls.slice(1), 1e-4, 1e-4, weighting);
  }
});

test('miso score: the weightings really differ for n >= 2 (the test above can fail)', () => {
  const { model } = stories();
  const rng = new Rng(3);
  const inputs = [ids(rng, 5, 512), ids(rng, 8, 512), ids(rng, 3, 512)];
  const output = ids(rng, 6, 512);
  const u = misoScore(model, inputs, output, { weighting: 'uniform' }).total;
  const f = misoScore(model, inputs, output, { weighting: 'fid' }).total;
  const v = misoScore(model, inputs, output, { weighting: 'vanilla' }).total;
  const s = misoScore(model, inputs, output, { weighting: 'uniform', positions: 'succ' }).total;
  assert.ok(Math.abs(u - f) > 1e-3 && Math.abs(u - v) > 1e-3 && Math.abs(f - v) > 1e-3 && Math.abs(u - s) > 1e-3, `${u} ${f} ${v} ${s}`);
});

test('miso score: n identical inputs (para) give the log-probs of one input, uniform and fid', () => {
  const rng = new Rng(4);
  for (const model of [stories().model, tiny()]) {
    const V = model.config.vocabSize;
    const input = ids(rng, 7, V);
    const output = ids(rng, 6, V);
    const one = misoScore(model, [input], output).logprobs;
    for (const weighting of ['uniform', 'fid'] as const) {
      for (const n of [2, 3]) {
        const many = misoScore(model, Array.from({ length: n }, () => input), output, { weighting }).logprobs;
        assertClose(many, one, 1e-4, 1e-4, `${weighting} n=${n}`);
      }
    }
  }
});

test('miso generate: one input equals generate() (greedy and sampled)', () => {
  const { model, tok } = stories();
  const prompt = tok.encode('Lily and Tom went to the park', { bos: true });
  const a = generate(model, prompt, { maxNewTokens: 60, temperature: 0 });
  const b = misoGenerate(model, [prompt], { maxNewTokens: 60, temperature: 0 });
  assert.deepEqual(b.tokens, a.tokens);
  assert.equal(b.stoppedBy, a.stoppedBy);
  const s1 = generate(model, prompt, { maxNewTokens: 40, temperature: 0.9, topP: 0.9, seed: 7, stopIds: [tok.eosId, tok.bosId] });
  const s2 = misoGenerate(model, [prompt], { maxNewTokens: 40, temperature: 0.9, topP: 0.9, seed: 7, stopIds: [tok.eosId, tok.bosId] });
  assert.deepEqual(s2, s1);
  // an output prefix is the tail of the prompt, and every weighting is plain attention for n = 1
  for (const weighting of ['uniform', 'fid', 'vanilla'] as const) {
    const c = misoGenerate(model, [prompt.slice(0, 4)], { maxNewTokens: 60, temperature: 0, outputPrefix: prompt.slice(4), weighting });
    assert.deepEqual(c.tokens, a.tokens, weighting);
  }
});

test('miso generate: greedy tokens are the argmax of the layout forward (n = 3, all weightings, para/succ)', () => {
  const rng = new Rng(6);
  for (const model of [stories().model, tiny()]) {
    const V = model.config.vocabSize;
    const inputs = [ids(rng, 6, V), ids(rng, 4, V), ids(rng, 9, V)];
    const prefix = ids(rng, 2, V);
    for (const weighting of ['uniform', 'fid', 'vanilla'] as const) {
      for (const positions of ['para', 'succ'] as const) {
        const r = misoGenerate(model, inputs, { maxNewTokens: 8, temperature: 0, outputPrefix: prefix, weighting, positions });
        assert.equal(r.tokens.length, 8);
        // the generated tokens are the argmax of the layout forward's logits (independent path)
        const out = [...prefix, ...r.tokens];
        const group = [...inputs.flat(), ...out];
        const L = inputs.flat().length;
        const lens = inputs.map((x) => x.length);
        const pos = positions === 'para'
          ? [...inputs.flatMap((x) => x.map((_, j) => j)), ...out.map((_, j) => Math.max(...lens) + j)]
          : group.map((_, j) => j);
        const part = [...inputs.flatMap((x, i) => x.map(() => i)), ...out.map(() => -1)];
        const logits = model.logits(Int32Array.from(group), 1, Int32Array.from(pos),
          { group: new Int32Array(group.length), part: Int32Array.from(part), nInputs: Int32Array.of(inputs.length), weighting: [weighting] });
        for (let j = 0; j < r.tokens.length; j++) {
          const row = logits.subarray((L + prefix.length - 1 + j) * V, (L + prefix.length + j) * V);
          const best = Math.max(...row);
          assert.ok(row[r.tokens[j]!]! >= best - 1e-4, `${weighting}/${positions} token ${j}`);
        }
        // and the whole sequence scores as the cached decoder does
        const s = misoScore(model, inputs, out, { weighting, positions }).logprobs;
        const c = cachedScore(model, inputs, out, positions, weighting, prefix.length);
        assertClose(c, s.slice(prefix.length - 1), 1e-4, 1e-4, `${weighting}/${positions}`);
      }
    }
  }
});

test('miso generate: context limit and bad groups', () => {
  const model = tiny();
  const maxLen = model.config.maxSeqLen;
  // para: the output starts after the longest input; the sequence never exceeds maxLen
  const long = Array.from({ length: maxLen - 5 }, (_, i) => 1 + (i % 30));
  const r = misoGenerate(model, [long, [1, 2, 3]], { maxNewTokens: 50, temperature: 0, outputPrefix: [4, 5] });
  assert.equal(r.stoppedBy, 'context');
  assert.equal(r.tokens.length, 3);
  assert.throws(() => misoGenerate(model, [], { maxNewTokens: 5 }), MixtuneError);
  assert.throws(() => misoGenerate(model, [[1, 2], [3]], { maxNewTokens: 5 }), /output part needs a start/);
  assert.throws(() => misoGenerate(model, [[1, 2], []], { maxNewTokens: 5, outputPrefix: [1] }), /input 1 is empty/);
  assert.throws(() => misoScore(model, [[1, 2]], []), /output is empty/);
  assert.throws(() => misoScore(model, [[1, 99]], [1, 2]), /input 0 token 1 has id 99/);
  assert.throws(() => misoScore(model, [], [1, 2]), /no inputs/);
  assert.throws(() => misoScore(model, [long], Array.from({ length: 10 }, () => 1)), /beyond the model's context/);
  assert.deepEqual(misoScore(model, [[1, 2]], [3]), { logprobs: [], total: 0 });
});

// ---- CLI ----

const bin = join(packageRoot(), 'bin', 'mixtune.js');
function run(...args: string[]): { code: number; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [bin, ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}
function assertOneLineError(r: { code: number; stderr: string }, mentions: string[]): void {
  assert.notEqual(r.code, 0);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `expected one line, got:\n${r.stderr}`);
  assert.match(lines[0]!, /^mixtune: /);
  for (const m of mentions) assert.ok(lines[0]!.includes(m), `'${lines[0]}' should mention '${m}'`);
}

test('cli: generate --input TEXT (once) equals --prompt TEXT; several inputs need a start', () => {
  const common = ['--model', modelPath, '--tokenizer', tokPath, '--temperature', '0', '--max-new-tokens', '40'];
  const a = run('generate', ...common, '--prompt', 'Tom had a red ball');
  const b = run('generate', ...common, '--input', 'Tom had a red ball');
  assert.equal(a.code, 0, a.stderr);
  assert.equal(b.code, 0, b.stderr);
  assert.equal(b.stdout, a.stdout);
  assert.ok(a.stdout.trim().length > 10);
  const c = run('generate', ...common, '--input', 'Tom had a red ball', '--input', 'Lily liked cats', '--prompt', 'Once upon a time', '--weighting', 'fid');
  assert.equal(c.code, 0, c.stderr);
  // the library gives the same continuation
  const { model, tok } = stories();
  const r = misoGenerate(model, [tok.encode('Tom had a red ball', { bos: true }), tok.encode('Lily liked cats', { bos: true })], {
    maxNewTokens: 40, temperature: 0, weighting: 'fid', outputPrefix: tok.encode('Once upon a time'), stopIds: [tok.eosId, tok.bosId],
  });
  assert.equal(c.stdout, tok.decode(r.tokens.filter((t) => t !== tok.eosId && t !== tok.bosId)) + '\n');
  // --chat: the input is the user turn without the header, the header starts the output; one input = --chat --prompt
  const ca = run('generate', ...common, '--chat', '--prompt', 'Tom had a red ball');
  const cb = run('generate', ...common, '--chat', '--input', 'Tom had a red ball');
  assert.equal(cb.code, 0, cb.stderr);
  assert.equal(cb.stdout, ca.stdout);
  assertOneLineError(run('generate', ...common, '--input', 'a', '--input', 'b'), ['--prompt']);
  assertOneLineError(run('generate', ...common, '--input', 'a', '--weighting', 'mean'), ['--weighting']);
});

test('cli: score --json with ids equals misoScore; text inputs; errors name the flag', () => {
  const { model, tok } = stories();
  const r = run('score', '--model', modelPath, '--input-ids', '1,400,300', '--input-ids', '1,22,33,44', '--output-ids', '5,6,7,8',
    '--weighting', 'fid', '--positions', 'succ', '--json');
  assert.equal(r.code, 0, r.stderr);
  const j = JSON.parse(r.stdout) as { logprobs: number[]; total: number };
  const s = misoScore(model, [[1, 400, 300], [1, 22, 33, 44]], [5, 6, 7, 8], { weighting: 'fid', positions: 'succ' });
  assertClose(j.logprobs, s.logprobs, 1e-6, 1e-6);
  assert.ok(Math.abs(j.total - s.total) < 1e-6);

  const t = run('score', '--model', modelPath, '--tokenizer', tokPath, '--input', 'Tom had a ball.', '--input', 'Lily had a cat.', '--output', 'They played all day.', '--json');
  assert.equal(t.code, 0, t.stderr);
  const tj = JSON.parse(t.stdout) as { logprobs: number[]; total: number };
  const ts = misoScore(model, [tok.encode('Tom had a ball.', { bos: true }), tok.encode('Lily had a cat.', { bos: true })], tok.encode('They played all day.'));
  assertClose(tj.logprobs, ts.logprobs, 1e-6, 1e-6);
  const table = run('score', '--model', modelPath, '--tokenizer', tokPath, '--input', 'Tom had a ball.', '--output', 'They played all day.');
  assert.equal(table.code, 0, table.stderr);
  assert.match(table.stdout, /total/);

  const m = ['score', '--model', modelPath];
  assertOneLineError(run(...m, '--output-ids', '1,2'), ['--input']);
  assertOneLineError(run(...m, '--input-ids', '1,2', '--output-ids', ''), ['--output-ids']);
  assertOneLineError(run(...m, '--input-ids', '1,x', '--output-ids', '1,2'), ['--input-ids', '1,x']);
  assertOneLineError(run(...m, '--input-ids', '1,2', '--output-ids', '1,512'), ['--output-ids', '512']);
  assertOneLineError(run(...m, '--input-ids', '1,2', '--output-ids', '1,2', '--positions', 'diag'), ['--positions']);
  assertOneLineError(run(...m, '--input-ids', '1,2'), ['--output']);
});
