import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { HfTokenizer } from '../src/io/hf-tokenizer.js';
import { Llama2cTokenizer } from '../src/io/llama2c-tokenizer.js';
import { llama2cToTokenizerJson, tokenizerConfigJson, writeLlama2cTokenizerFiles } from '../src/io/tokenizer-json.js';
import { writeJsonAtomic } from '../src/util/fs.js';
import { PLAIN_CHAT_TEMPLATE } from '../src/io/chat.js';
import { MixtuneError } from '../src/util/errors.js';
import { sharedDir } from '../src/util/paths.js';
import { Rng } from '../src/util/rng.js';

const F = join(sharedDir(), 'fixtures');

/** All llama.cpp SPM golden inputs, the stories expected text, the swift-transformers text, random strings. */
function texts(): string[] {
  const inp = readFileSync(join(F, 'llama.cpp', 'ggml-vocab-llama-spm.gguf.inp'), 'utf8').split('\n__ggml_vocab_test__\n');
  inp.pop();
  const out = [...inp, readFileSync(join(F, 'stories260K', 'expected_greedy_200.txt'), 'utf8')];
  out.push((JSON.parse(readFileSync(join(F, 'llama2-tokenizer', 'llama_encoded.json'), 'utf8')) as { text: string }).text);
  const rng = new Rng(1234);
  const alphabet = [...'abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ  .,!?\n\t0123456789\'"-', 'é', 'ü', 'ß', '中', '文', '😀', 'ñ', 'ж', '\u00a0', '  ', '\ufeff', '<s>', '</s>'];
  for (let i = 0; i < 300; i++) {
    let s = '';
    const n = Math.floor(rng.float() * 60);
    for (let j = 0; j < n; j++) s += alphabet[Math.floor(rng.float() * alphabet.length)];
    out.push(s);
  }
  // word salad from real prose (exercises long merge chains)
  const words = [readFileSync(join(F, 'mistral-v0.3', 'README.md'), 'utf8'), readFileSync(join(F, 'SOURCES.md'), 'utf8')].join(' ').split(/\s+/);
  for (let i = 0; i < 200; i++) {
    let s = '';
    const n = 1 + Math.floor(rng.float() * 30);
    for (let j = 0; j < n; j++) s += (rng.float() < 0.2 ? '' : ' ') + words[Math.floor(rng.float() * words.length)];
    out.push(s);
  }
  return out;
}

function agreement(lt: Llama2cTokenizer, ht: HfTokenizer, all: string[]): string[] {
  const bad: string[] = [];
  for (const t of all) {
    if (JSON.stringify(lt.encode(t, { bos: true })) !== JSON.stringify(ht.encode(t, { bos: true }))) bad.push(t);
  }
  return bad;
}

test('stories260K tok512.bin -> tokenizer.json encodes exactly like llama2.c (100%)', () => {
  const lt = Llama2cTokenizer.load(join(F, 'stories260K', 'tok512.bin'));
  const tj = llama2cToTokenizerJson(lt) as { model: { vocab: Record<string, number>; merges: string[] }; added_tokens: { id: number; content: string }[] };
  assert.equal(Object.keys(tj.model.vocab).length, 512);
  assert.equal(tj.model.merges.length, 165);
  assert.deepEqual(tj.added_tokens.map((t) => [t.id, t.content]), [[0, '<unk>'], [1, '<s>'], [2, '</s>']]);
  const ht = HfTokenizer.fromJson({ tokenizerJson: tj as unknown as Record<string, unknown>, config: tokenizerConfigJson() });
  assert.equal(ht.bosId, 1);
  assert.equal(ht.eosId, 2);
  assert.equal(ht.vocabSize, 512);
  const all = texts();
  assert.equal(all.length, 548);
  assert.deepEqual(agreement(lt, ht, all), []); // 548/548
  // decoding: same bytes as llama2.c for ordinary text (llama2.c drops the space after BOS)
  for (const t of all.slice(0, 100)) {
    const ids = lt.encode(t, { bos: true });
    assert.deepEqual(Buffer.from(ht.decodeBytes(ids)), Buffer.from(lt.decodeBytes(ids)), JSON.stringify(t));
  }
});

test('Llama 2 tokenizer.bin (32000) -> tokenizer.json: same merges as Meta/HF and exact agreement', () => {
  const lt = Llama2cTokenizer.load(join(F, 'llama2-tokenizer', 'tokenizer.bin'));
  const tj = llama2cToTokenizerJson(lt) as { model: { vocab: Record<string, number>; merges: string[] } };
  const ref = JSON.parse(readFileSync(join(F, 'llama2-tokenizer', 'tokenizer.json'), 'utf8')) as { model: { vocab: Record<string, number>; merges: string[] } };
  // The derived merges are exactly HF's 61249, up to the 4 pieces where the fixture has a plain
  // space instead of NBSP (see SOURCES.md): 3 merges differ only by that character.
  assert.equal(tj.model.merges.length, 61249);
  const refSet = new Set(ref.model.merges);
  const onlyOurs = tj.model.merges.filter((m) => !refSet.has(m));
  assert.equal(onlyOurs.length, 3);
  for (const m of onlyOurs) assert.ok(m.includes('\u00a0'), JSON.stringify(m));
  const ht = HfTokenizer.fromJson({ tokenizerJson: tj as unknown as Record<string, unknown>, config: tokenizerConfigJson() });
  const all = texts();
  assert.deepEqual(agreement(lt, ht, all), []); // 548/548
});

test('writeLlama2cTokenizerFiles: a folder HfTokenizer.load reads back, with the plain chat template', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mixtune-tokjson-'));
  try {
    const lt = Llama2cTokenizer.load(join(F, 'stories260K', 'tok512.bin'));
    writeLlama2cTokenizerFiles(join(dir, 'hf'), lt, { chatTemplate: PLAIN_CHAT_TEMPLATE, modelMaxLength: 512 });
    assert.deepEqual(readdirSync(join(dir, 'hf')).sort(), ['tokenizer.json', 'tokenizer_config.json']);
    const ht = HfTokenizer.load(join(dir, 'hf'));
    assert.equal(ht.bosId, 1);
    assert.equal(ht.eosId, 2);
    assert.equal(ht.unkId, 0);
    assert.equal(ht.addBos, true);
    assert.equal(ht.chatTemplate, PLAIN_CHAT_TEMPLATE);
    assert.equal(ht.config.model_max_length, 512);
    const story = readFileSync(join(F, 'stories260K', 'expected_greedy_200.txt'), 'utf8');
    assert.deepEqual(ht.encode(story, { bos: true }), lt.encode(story, { bos: true }));
    assert.equal(ht.decode(ht.encode(story, { bos: true })), story);
    // "<s>" in text is parsed by encodeWithSpecials only
    assert.deepEqual(ht.encodeWithSpecials('<s>Once'), [1, ...lt.encode('Once')]);
    assert.deepEqual(ht.encode('<s>'), lt.encode('<s>'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('writeJsonAtomic: whole file or nothing, no temp files left, errors name the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mixtune-atomic-'));
  try {
    const p = join(dir, 'sub', 'x.json');
    writeJsonAtomic(p, { a: [1, 2], b: 'é' });
    assert.deepEqual(JSON.parse(readFileSync(p, 'utf8')), { a: [1, 2], b: 'é' });
    writeJsonAtomic(p, { a: 3 });
    assert.deepEqual(JSON.parse(readFileSync(p, 'utf8')), { a: 3 });
    assert.deepEqual(readdirSync(join(dir, 'sub')), ['x.json']);
    writeFileSync(join(dir, 'file'), 'not a dir');
    const bad = join(dir, 'file', 'y.json');
    assert.throws(() => writeJsonAtomic(bad, {}), (e: unknown) => e instanceof MixtuneError && e.message.includes(bad));
    assert.ok(!existsSync(bad));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
