// mixtune's GGUF files checked by llama.cpp itself (node-llama-cpp 3.21.1, prebuilt CPU binary,
// f32 KV cache): the same prompt tokens as mixtune's tokenizer, the same teacher-forced next-token
// logits as mixtune's forward pass, greedy text until the first near-tie; for stories260K from its
// llama2.c file and from its HF conversion, a random Qwen2 model with the Qwen2.5 tokenizer, and
// random Llama models with the Mistral v0.3 (SentencePiece-style tokenizer.json) and Llama 3
// (byte-level, llama3 rope scaling) tokenizers.
//
// node-llama-cpp is installed by `node scripts/install-llamacpp.mjs` (CI runs it before npm test).
// Outside CI a missing install skips these tests with that hint; in CI (CI=true) it is a failure.
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sharedDir } from '../src/util/paths.js';
import { nodeLlamaCppPath, openLlamaCpp, type LlamaCppModel, type LlamaCppPeer } from '../src/bench/llamacpp.js';
import { exportModelGguf } from '../src/io/gguf-model.js';
import { readGguf, ggufTensorBytes } from '../src/io/gguf.js';
import { loadModel, loadTokenizer } from '../src/io/load.js';
import { saveHfModel } from '../src/io/hf-model.js';
import type { LlamaConfig } from '../src/model/config.js';
import type { LlamaModel } from '../src/model/llama.js';
import { nativeKernels } from '../src/tensor/native.js';
import type { Tokenizer } from '../src/tokenizer.js';
import { randomWeights, runCli } from './util.js';

const where = nodeLlamaCppPath();
const inCi = process.env.CI === 'true' || process.env.CI === '1';
const missing = 'missing' in where ? where.missing : null;
if (missing && inCi) {
  test('llama.cpp (node-llama-cpp) is installed for CI', () => assert.fail(`${missing}; .ci/run must run scripts/install-llamacpp.mjs before npm test`));
}
const skip = missing ? `${missing} — skipped outside CI` : false;

const fx = join(sharedDir(), 'fixtures');
const storiesBin = join(fx, 'stories260K', 'stories260K.bin');
const storiesTok = join(fx, 'stories260K', 'tok512.bin');
const tmp = mkdtempSync(join(tmpdir(), 'mixtune-gguf-cpp-'));

/** f32 agreement bound: max |Δ logit| / max |logit| over all positions and tokens (logits centred on their max). */
const F32_TOL = 1e-4;
/**
 * f16 / q8_0, same measure against mixtune's f32 model: the file's weights are rounded, and llama.cpp
 * also rounds the activations to f16 / q8_0 inside its matmuls (measured: f16 ≤ 1.0e-3, q8_0 ≤ 2.7e-2).
 */
const F16_TOL = 5e-3;
const Q8_TOL = 5e-2;
/** A greedy step is a near-tie when mixtune's top-2 logit gap is below this. */
const NEAR_TIE = 1e-3;

let peer: LlamaCppPeer;
before(async () => {
  if (!skip) peer = await openLlamaCpp();
});
after(async () => {
  if (peer) await peer.dispose();
  rmSync(tmp, { recursive: true, force: true });
});

function vocabTexts(name: string): string[] {
  const raw = readFileSync(join(fx, 'llama.cpp', `ggml-vocab-${name}.gguf.inp`), 'utf8');
  const parts = raw.split('\n__ggml_vocab_test__\n');
  parts.pop(); // after the last separator
  return parts;
}

function goldenIds(name: string): number[][] {
  const lines = readFileSync(join(fx, 'llama.cpp', `ggml-vocab-${name}.gguf.out`), 'utf8').split('\n');
  return lines.slice(0, vocabTexts(name).length).map((l) => l.trim().split(/\s+/).filter(Boolean).map(Number));
}

const PROSE = [
  'Once upon a time, there was a little girl named Lily. She loved to play outside in the park.',
  'The cat sat on the mat.\nThen it slept!  Two spaces, tabs\tand numbers 12345 or 3.14159.',
  ' leading space, trailing space ',
  'Unicode: café, naïve, 東京, emoji 🙂 and a long word: antidisestablishmentarianism.',
  "it's don't we'll I'm you're they've HELLO World",
];

interface Measured {
  positions: number;
  maxDiff: number;
  maxLogit: number;
  rel: number;
}

/**
 * mixtune's logits (centred on their max) vs llama.cpp's along `tokens` (teacher-forced), at every
 * position or at `count` positions spread evenly (the last one included).
 */
async function compareLogits(cpp: LlamaCppModel, model: LlamaModel, tokens: number[], count = tokens.length): Promise<Measured> {
  const V = model.config.vocabSize;
  const ours = model.logits(Int32Array.from(tokens));
  const n = Math.min(count, tokens.length);
  const at = Array.from({ length: n }, (_, j) => Math.round(((j + 1) * tokens.length) / n) - 1);
  const theirs = await cpp.centeredLogits(tokens, { at });
  assert.equal(theirs.length, at.length);
  let maxDiff = 0;
  let maxLogit = 0;
  for (let j = 0; j < at.length; j++) {
    const i = at[j]!;
    const row = ours.subarray(i * V, (i + 1) * V);
    const t = theirs[j]!;
    assert.equal(t.length, V, 'llama.cpp vocabulary size');
    let mx = -Infinity;
    for (let v = 0; v < V; v++) mx = Math.max(mx, row[v]!);
    for (let v = 0; v < V; v++) {
      const m = row[v]! - mx;
      maxLogit = Math.max(maxLogit, Math.abs(m));
      // float32 probabilities underflow below exp(-87): there only the order of magnitude is kept
      if (m < -80) {
        assert.ok(t[v]! < -70, `position ${i} token ${v}: mixtune ${m}, llama.cpp ${t[v]}`);
        continue;
      }
      maxDiff = Math.max(maxDiff, Math.abs(t[v]! - m));
    }
  }
  return { positions: at.length, maxDiff, maxLogit, rel: maxDiff / maxLogit };
}

/**
 * llama.cpp's tokens equal mixtune's for every text. One known exception (`metaspaceFirst`): HF's
 * Metaspace pre-tokenizer with prepend_scheme "first" (Mistral v0.3's tokenizer.json) adds no "▁"
 * before a text that already starts with a space, while llama.cpp (like SentencePiece) always does;
 * for such a text llama.cpp's tokens are mixtune's tokens of " " + text.
 */
function checkTokens(cpp: LlamaCppModel, tok: Tokenizer, texts: string[], golden?: number[][], metaspaceFirst = false): number {
  let n = 0;
  texts.forEach((text, i) => {
    const ours = tok.encode(text);
    const theirs = cpp.tokenize(text);
    if (metaspaceFirst && text.startsWith(' ')) {
      assert.deepEqual(theirs, tok.encode(' ' + text), `text ${i} ${JSON.stringify(text.slice(0, 60))} (leading space)`);
      n += ours.length;
      return;
    }
    assert.deepEqual(theirs, ours, `text ${i} ${JSON.stringify(text.slice(0, 60))}`);
    if (golden) assert.deepEqual(ours, golden[i], `golden ids of text ${i}`);
    n += ours.length;
  });
  return n;
}

/** A sequence to teacher-force: BOS (when the tokenizer adds one) + the prose. */
function sequence(tok: Tokenizer & { addBos?: boolean }, maxLen: number): number[] {
  const ids = tok.encode(PROSE.join(' '), { bos: tok.addBos !== false && tok.bosId >= 0 });
  return ids.slice(0, maxLen);
}

async function withGguf<T>(path: string, fn: (m: LlamaCppModel) => Promise<T>, contextSize = 256): Promise<T> {
  const m = await peer.load(path, { contextSize });
  try {
    return await fn(m);
  } finally {
    await m.dispose();
  }
}

// ---------------------------------------------------------------------------------------------
// stories260K

const storiesGguf = (dtype: string, from: 'bin' | 'hf'): string => join(tmp, `stories-${from}-${dtype}.gguf`);
let storiesHf = '';

test('stories260K: export from the llama2.c file and from its HF conversion (f32, f16, q8_0); identical tensors', { skip }, () => {
  storiesHf = join(tmp, 'stories-hf');
  const r = runCli('convert', '--from', storiesBin, '--tokenizer', storiesTok, '--to', storiesHf);
  assert.equal(r.code, 0, r.stderr);
  for (const dtype of ['f32', 'f16', 'q8_0'] as const) {
    exportModelGguf({ model: storiesBin, tokenizer: storiesTok, out: storiesGguf(dtype, 'bin'), dtype });
    exportModelGguf({ model: storiesHf, out: storiesGguf(dtype, 'hf'), dtype });
    const a = readGguf(storiesGguf(dtype, 'bin'));
    const b = readGguf(storiesGguf(dtype, 'hf'));
    assert.deepEqual(b.tensors, a.tensors, `${dtype}: tensor infos`);
    for (const t of a.tensors) assert.ok(Buffer.from(ggufTensorBytes(a, t.name)).equals(ggufTensorBytes(b, t.name)), `${dtype}: ${t.name} bytes`);
  }
});

for (const from of ['bin', 'hf'] as const) {
  test(`stories260K (${from === 'bin' ? 'llama2.c file' : 'HF folder'}) f32: llama.cpp tokens and teacher-forced logits equal mixtune's`, { skip }, async (t) => {
    const src = from === 'bin' ? storiesBin : storiesHf;
    const model = loadModel(src, nativeKernels()).model;
    const tok = loadTokenizer(from === 'bin' ? storiesTok : undefined, src, model.config.vocabSize);
    await withGguf(storiesGguf('f32', from), async (cpp) => {
      assert.equal(cpp.addsBos, true);
      assert.equal(cpp.bosId, 1);
      const n = checkTokens(cpp, tok, [...PROSE, ...vocabTexts('llama-spm')]);
      const m = await compareLogits(cpp, model, sequence(tok, 200));
      t.diagnostic(`${n} tokens identical; logits over ${m.positions} positions: max |diff| ${m.maxDiff.toExponential(2)}, max |logit| ${m.maxLogit.toFixed(2)}, rel ${m.rel.toExponential(2)} (bound ${F32_TOL})`);
      assert.ok(m.rel < F32_TOL, `relative logit difference ${m.rel}`);
    });
  });
}

test('stories260K f16 and q8_0: teacher-forced logits within the stated tolerance', { skip }, async (t) => {
  const model = loadModel(storiesBin, nativeKernels()).model;
  const tok = loadTokenizer(storiesTok, storiesBin, model.config.vocabSize);
  for (const [dtype, tol] of [['f16', F16_TOL], ['q8_0', Q8_TOL]] as const) {
    await withGguf(storiesGguf(dtype, 'bin'), async (cpp) => {
      const m = await compareLogits(cpp, model, sequence(tok, 200));
      t.diagnostic(`${dtype}: max |diff| ${m.maxDiff.toExponential(2)}, rel ${m.rel.toExponential(2)} (bound ${tol})`);
      assert.ok(m.rel < tol, `${dtype}: relative logit difference ${m.rel}`);
    });
  }
});

/** mixtune's greedy tokens after `prompt`, with the top-2 gap of each step. */
function greedyWithGaps(model: LlamaModel, prompt: number[], n: number): { tokens: number[]; gaps: number[] } {
  const cache = model.newCache();
  let logits = model.step(Int32Array.from(prompt), cache);
  const tokens: number[] = [];
  const gaps: number[] = [];
  for (let i = 0; i < n; i++) {
    let a = -1;
    for (let v = 0; v < logits.length; v++) if (a < 0 || logits[v]! > logits[a]!) a = v;
    let second = -Infinity;
    for (let v = 0; v < logits.length; v++) if (v !== a) second = Math.max(second, logits[v]!);
    tokens.push(a);
    gaps.push(logits[a]! - second);
    if (i + 1 < n) logits = model.step(Int32Array.of(a), cache);
  }
  return { tokens, gaps };
}

test('stories260K f32: greedy text of llama.cpp equals mixtune until the first near-tie', { skip }, async (t) => {
  const model = loadModel(storiesBin, nativeKernels()).model;
  const tok = loadTokenizer(storiesTok, storiesBin, model.config.vocabSize);
  const expected200 = readFileSync(join(fx, 'stories260K', 'expected_greedy_200.txt'), 'utf8');
  await withGguf(storiesGguf('f32', 'bin'), async (cpp) => {
    const prompts = ['', 'Once upon a time', 'The dog', 'Tom and Lily went to the park. They'];
    for (const text of prompts) {
      const prompt = text ? tok.encode(text, { bos: true }) : [tok.bosId];
      const n = 200;
      const ours = greedyWithGaps(model, prompt, n);
      const theirs = await cpp.greedy(prompt, n);
      const tie = ours.gaps.findIndex((g) => g < NEAR_TIE);
      const upto = tie < 0 ? n : tie + 1; // the near-tie step itself may go either way
      const agree = tie < 0 ? n : tie;
      assert.deepEqual(theirs.slice(0, agree), ours.tokens.slice(0, agree), `prompt ${JSON.stringify(text)}`);
      assert.equal(tok.decode(theirs.slice(0, agree)), tok.decode(ours.tokens.slice(0, agree)));
      const same = theirs.findIndex((x, i) => x !== ours.tokens[i]);
      t.diagnostic(`prompt ${JSON.stringify(text)}: ${tie < 0 ? `no near-tie in ${n} tokens, all equal` : `first near-tie at token ${tie} (gap ${ours.gaps[tie]!.toExponential(2)}); equal before it`}; texts part at ${same < 0 ? 'never' : same} (compared up to ${upto})`);
      if (text === '') {
        // run.c's golden 200 tokens from BOS alone (leading space dropped after BOS)
        const ourText = Buffer.from(tok.decodeBytes(theirs.slice(0, agree), { prev: tok.bosId })).toString('utf8');
        assert.ok(expected200.startsWith(ourText), 'llama2.c golden text');
      }
    }
  });
});

// ---------------------------------------------------------------------------------------------
// random HF models with real tokenizers

function fixtureFiles(dir: string, names: string[]): Record<string, Uint8Array> {
  return Object.fromEntries(names.map((n) => [n, readFileSync(join(fx, dir, n))]));
}

interface RandomCase {
  name: string;
  arch: 'llama' | 'qwen2';
  config: LlamaConfig;
  files: Record<string, Uint8Array>;
  vocabTests?: string;
  /** The tokenizer.json uses Metaspace(prepend_scheme: first) (see checkTokens). */
  metaspaceFirst?: boolean;
  /** Positions compared per dtype (node-llama-cpp hands over all probabilities of a position: ~0.25 s at 150k tokens). */
  positions: Partial<Record<'f32' | 'f16' | 'q8_0', number>>;
}

const CASES: RandomCase[] = [
  {
    name: 'Qwen2 (Qwen2.5 tokenizer, q/k/v bias, tied, vocab padded to 151936)',
    arch: 'qwen2',
    config: {
      vocabSize: 151936, dim: 64, hiddenDim: 160, nLayers: 2, nHeads: 4, nKvHeads: 2, headDim: 16, maxSeqLen: 512,
      normEps: 1e-6, ropeTheta: 1000000, tiedEmbeddings: true, qkvBias: true,
    },
    files: fixtureFiles('qwen2.5', ['vocab.json', 'merges.txt', 'tokenizer_config.json']),
    vocabTests: 'qwen2',
    positions: { f32: 16, f16: 6, q8_0: 6 },
  },
  {
    name: 'Llama/Mistral (Mistral v0.3 tokenizer.json, GQA, untied)',
    arch: 'llama',
    config: {
      vocabSize: 32768, dim: 48, hiddenDim: 96, nLayers: 2, nHeads: 6, nKvHeads: 2, headDim: 8, maxSeqLen: 512,
      normEps: 1e-5, ropeTheta: 1000000, tiedEmbeddings: false, qkvBias: false,
    },
    files: fixtureFiles('mistral-v0.3', ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json']),
    vocabTests: 'llama-spm',
    metaspaceFirst: true,
    positions: { f32: 160, f16: 160, q8_0: 160 },
  },
  {
    name: 'Llama 3 (byte-level tokenizer, llama3 rope scaling, head_dim != dim/heads)',
    arch: 'llama',
    config: {
      vocabSize: 128256, dim: 32, hiddenDim: 64, nLayers: 2, nHeads: 4, nKvHeads: 2, headDim: 16, maxSeqLen: 512,
      normEps: 1e-5, ropeTheta: 500000, tiedEmbeddings: true, qkvBias: false,
      ropeScaling: { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 },
    },
    files: fixtureFiles('llama3', ['tokenizer.json', 'tokenizer_config.json']),
    vocabTests: 'llama-bpe',
    positions: { f32: 16 },
  },
];

CASES.forEach((c, ci) => {
  test(`random ${c.name}: llama.cpp tokens and ${Object.keys(c.positions).join(' / ')} logits agree with mixtune`, { skip }, async (t) => {
    const dir = join(tmp, `random-${ci}`);
    saveHfModel(dir, { config: c.config, weights: randomWeights(c.config, 100 + ci) }, { arch: c.arch, tokenizerFiles: c.files });
    const model = loadModel(dir, nativeKernels()).model;
    const tok = loadTokenizer(undefined, dir, model.config.vocabSize) as Tokenizer & { addBos: boolean };
    for (const dtype of ['f32', 'f16', 'q8_0'] as const) {
      const positions = c.positions[dtype];
      if (positions === undefined) continue;
      const out = join(tmp, `random-${ci}-${dtype}.gguf`);
      const r = exportModelGguf({ model: dir, out, dtype, tokenizerInstance: tok });
      assert.equal(r.arch, c.arch);
      await withGguf(out, async (cpp) => {
        if (dtype === 'f32') {
          assert.equal(cpp.addsBos, tok.addBos, 'add_bos_token');
          const texts = [...PROSE, ...(c.vocabTests ? vocabTexts(c.vocabTests) : [])];
          const golden = c.vocabTests && c.vocabTests !== 'llama-spm' ? [...PROSE.map((p) => tok.encode(p)), ...goldenIds(c.vocabTests)] : undefined;
          const n = checkTokens(cpp, tok, texts, golden, c.metaspaceFirst);
          t.diagnostic(`${texts.length} texts, ${n} tokens identical${golden ? ` (and equal to llama.cpp's golden ggml-vocab-${c.vocabTests} ids)` : ''}`);
        }
        const m = await compareLogits(cpp, model, sequence(tok, 160), positions);
        const tol = dtype === 'f32' ? F32_TOL : dtype === 'f16' ? F16_TOL : Q8_TOL;
        t.diagnostic(`${dtype}: logits over ${m.positions} positions: max |diff| ${m.maxDiff.toExponential(2)}, max |logit| ${m.maxLogit.toFixed(2)}, rel ${m.rel.toExponential(2)} (bound ${tol})`);
        assert.ok(m.rel < tol, `${dtype}: relative logit difference ${m.rel}`);
      });
    }
  });
});
