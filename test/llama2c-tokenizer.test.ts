import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Llama2cTokenizer } from '../src/io/llama2c-tokenizer.js';
import { sharedDir } from '../src/util/paths.js';
import { MixtuneError } from '../src/util/errors.js';
import { Rng } from '../src/util/rng.js';
import { expectError } from './util.js';

const FIX = join(sharedDir(), 'fixtures');
const TOK512 = join(FIX, 'stories260K', 'tok512.bin');
const LLAMA2 = join(FIX, 'llama2-tokenizer', 'tokenizer.bin');
const tmp = mkdtempSync(join(tmpdir(), 'mixtune-l2ctok-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

const tok512 = Llama2cTokenizer.load(TOK512, 512);
const llama2 = Llama2cTokenizer.load(LLAMA2, 32000);
const str = (b: Uint8Array): string => Buffer.from(b).toString('latin1');


/** The plain O(n^2) merge loop of llama2.c run.c, used only to check the heap version agrees. */
const naiveMaps = new WeakMap<Llama2cTokenizer, Map<string, number>>();
function naiveEncode(t: Llama2cTokenizer, text: string): number[] {
  const key = (id: number): string => str(t.pieces[id]!);
  let lookup = naiveMaps.get(t);
  if (!lookup) {
    const m = new Map<string, number>();
    t.pieces.forEach((p, i) => {
      if (!m.has(str(p))) m.set(str(p), i);
    });
    naiveMaps.set(t, (lookup = m));
  }
  const toks: number[] = text.length > 0 ? [lookup.get(' ')!] : [];
  for (const ch of text) {
    const b = Buffer.from(ch, 'utf8');
    const id = lookup.get(b.toString('latin1'));
    if (id !== undefined) toks.push(id);
    else for (const x of b) toks.push(x + 3);
  }
  for (;;) {
    let best = Math.fround(-1e10);
    let bestId = -1;
    let bestIdx = -1;
    for (let i = 0; i + 1 < toks.length; i++) {
      const id = lookup.get(key(toks[i]!) + key(toks[i + 1]!));
      if (id !== undefined && t.scores[id]! > best) {
        best = t.scores[id]!;
        bestId = id;
        bestIdx = i;
      }
    }
    if (bestIdx < 0) break;
    toks.splice(bestIdx, 2, bestId);
  }
  return toks;
}

test('tok512.bin: pieces and header', () => {
  assert.equal(tok512.vocabSize, 512);
  assert.equal(tok512.maxTokenLength, 7);
  assert.equal(tok512.bosId, 1);
  assert.equal(tok512.eosId, 2);
  assert.equal(str(tok512.pieces[1]!), '\n<s>\n');
  assert.equal(str(tok512.pieces[2]!), '\n</s>\n');
  for (let b = 0; b < 256; b++) assert.equal(str(tok512.pieces[b + 3]!), `<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
  // without an expected size, records are read to EOF
  assert.equal(Llama2cTokenizer.load(TOK512).vocabSize, 512);
  assert.equal(llama2.vocabSize, 32000);
  assert.equal(llama2.pieceId(' '), 29871);
});

test('tok512: encode "Once upon a time" and round trips', () => {
  // Regression value; the algorithm itself is validated against the SentencePiece goldens below.
  assert.deepEqual(tok512.encode('Once upon a time', { bos: true }), [1, 403, 407, 261, 378]);
  assert.equal(tok512.decode([1, 403, 407, 261, 378]), 'Once upon a time');
  assert.deepEqual(tok512.encode('', { bos: true, eos: true }), [1, 2]);
  assert.deepEqual(tok512.encode(''), []);
  for (const text of ['Once upon a time, there was a little girl named Lily.', 'héllo 😀', '  two  spaces\nnew\tline ', 'x', 'Ünïcödé ✓ 漢字 🦙🦙']) {
    const ids = tok512.encode(text, { bos: true, eos: true });
    assert.equal(ids[0], 1);
    assert.equal(ids[ids.length - 1], 2);
    assert.equal(tok512.decode(ids), text, JSON.stringify(text));
    assert.deepEqual(ids.slice(1, -1), naiveEncode(tok512, text));
  }
  // byte fallback: 😀 = F0 9F 98 80 is not a piece of the 512 vocab -> ids byte+3 (no merges among byte tokens)
  const ids = tok512.encode('😀');
  assert.deepEqual(ids.slice(-4), [0xf0 + 3, 0x9f + 3, 0x98 + 3, 0x80 + 3]);
  // without BOS the dummy-prefix space stays in the decoded text
  assert.equal(tok512.decode(tok512.encode('hi')), ' hi');
});

test('decoding: space after BOS dropped, raw byte pieces, special tokens', () => {
  const once = tok512.encode('Once')[0]!; // " Once" merged with the dummy prefix
  assert.equal(str(tok512.pieces[once]!)[0], ' ');
  assert.equal(str(tok512.decodePiece(1, once)), str(tok512.pieces[once]!).slice(1));
  assert.equal(str(tok512.decodePiece(-1, once)), str(tok512.pieces[once]!));
  assert.equal(str(tok512.decodePiece(5, once)), str(tok512.pieces[once]!));
  assert.deepEqual([...tok512.decodePiece(1, 0x41 + 3)], [0x41]);
  assert.deepEqual([...tok512.decodePiece(-1, 0xff + 3)], [0xff]);
  assert.equal(str(tok512.decodePiece(-1, 1)), '\n<s>\n'); // llama2.c decode has no special-token rule
  assert.equal(tok512.decode([1, once]), 'Once');
  assert.equal(tok512.decode([once]), ' Once');
  assert.equal(tok512.decode([once], { prev: 1 }), 'Once');
  assert.equal(tok512.decode([1, once, 2]), 'Once');
  assert.equal(tok512.decode([1, once, 2], { special: true }), '\n<s>\nOnce\n</s>\n');
  // a multi-byte character split over byte tokens decodes to the character
  assert.equal(tok512.decode([1, ...tok512.encode('é').slice(1)]), 'é');
  assert.throws(() => tok512.decode([512]), MixtuneError);
  assert.throws(() => tok512.decode([-1]), MixtuneError);
});

test('Llama 2 tokenizer.bin: SentencePiece golden ids (swift-transformers llama_encoded.json)', () => {
  const g = JSON.parse(readFileSync(join(FIX, 'llama2-tokenizer', 'llama_encoded.json'), 'utf8')) as { text: string; token_ids: number[] };
  assert.equal(g.token_ids[0], 1); // golden includes BOS
  const ids = llama2.encode(g.text, { bos: true });
  assert.deepEqual(ids, g.token_ids);
  assert.equal(llama2.decode(ids), g.text);
  assert.deepEqual(naiveEncode(llama2, g.text), ids.slice(1));
});

test('Llama 2 tokenizer.bin: llama.cpp ggml-vocab-llama-spm golden pairs', () => {
  // .inp: texts separated by "\n__ggml_vocab_test__\n" (the file ends with the separator);
  // .out: one line of space-separated ids per text, no BOS (llama.cpp adds the SPM space prefix).
  const inp = readFileSync(join(FIX, 'llama.cpp', 'ggml-vocab-llama-spm.gguf.inp'), 'utf8');
  const out = readFileSync(join(FIX, 'llama.cpp', 'ggml-vocab-llama-spm.gguf.out'), 'utf8').split('\n');
  const texts = inp.split('\n__ggml_vocab_test__\n');
  assert.equal(texts.pop(), '');
  assert.equal(texts.length, 46);
  const mismatches: string[] = [];
  let agree = 0;
  texts.forEach((text, i) => {
    const line = out[i]!.trim();
    const expected = line === '' ? [] : line.split(/\s+/).map(Number);
    const got = llama2.encode(text);
    if (JSON.stringify(got) === JSON.stringify(expected)) agree++;
    else mismatches.push(`${JSON.stringify(text)}: expected ${expected.join(' ')}, got ${got.join(' ')}`);
    if (text.length > 0) assert.equal(llama2.decode(got, { prev: 1 }), text);
  });
  assert.equal(agree, 46, mismatches.join('\n'));
});

test('heap merge == llama2.c O(n^2) merge loop on random texts', () => {
  const rng = new Rng(11);
  const alphabet = ['a', 'b', 'e', 'n', 't', ' ', ' ', 'th', 'é', '\n', '😀', '<', '0', 'x', '>', 'A'];
  for (let trial = 0; trial < 60; trial++) {
    let s = '';
    const n = 1 + rng.int(60);
    for (let i = 0; i < n; i++) s += alphabet[rng.int(alphabet.length)];
    for (const t of [tok512, llama2]) assert.deepEqual(t.encode(s), naiveEncode(t, s), JSON.stringify(s));
  }
  // a long text stays fast with the heap (the naive loop would be quadratic)
  const long = 'Once upon a time, there was a little girl named Lily. She loved to play outside. '.repeat(300);
  const ids = llama2.encode(long, { bos: true });
  assert.equal(llama2.decode(ids), long);
});

test('bad tokenizer files -> MixtuneError naming the file and record', () => {
  const orig = readFileSync(TOK512);
  const p = join(tmp, 'tok.bin');
  const missing = join(tmp, 'missing-tok.bin');
  expectError(() => Llama2cTokenizer.load(missing), missing, /ENOENT/);
  expectError(() => Llama2cTokenizer.load(tmp), tmp);
  // record 0 starts at 4: score 4 bytes, len 4 bytes, piece "<unk>" (5 bytes)
  const cases: [number, RegExp][] = [
    [0, /shorter than the 4-byte header/],
    [2, /shorter than the 4-byte header/],
    [4, /file ends after 0 records, but the model's vocab_size is 512/],
    [7, /record 0 \(byte offset 4\): truncated record header/],
    [14, /record 0 \(byte offset 4\): piece length 5 runs past the end/],
    [orig.length - 1, /record 511 .*runs past the end/],
    [orig.length - 3, /record 511/],
  ];
  for (const [cut, re] of cases) {
    writeFileSync(p, orig.subarray(0, cut));
    expectError(() => Llama2cTokenizer.load(p, 512), p, re);
  }
  writeFileSync(p, orig.subarray(0, orig.length - 1));
  expectError(() => Llama2cTokenizer.load(p), p, /record 511/);
  expectError(() => Llama2cTokenizer.load(TOK512, 513), TOK512, /file ends after 512 records, but the model's vocab_size is 513/);
  expectError(() => Llama2cTokenizer.load(TOK512, 100), TOK512, /unexpected bytes after the 100 records/);
  expectError(() => Llama2cTokenizer.load(LLAMA2, 512), LLAMA2, /wrong tokenizer/);
  const patch = (off: number, write: (b: Buffer) => void, re: RegExp): void => {
    const b = Buffer.from(orig);
    write(b);
    writeFileSync(p, b);
    expectError(() => Llama2cTokenizer.load(p, 512), p, re);
    expectError(() => Llama2cTokenizer.load(p), p, re);
    void off;
  };
  patch(0, (b) => b.writeInt32LE(0, 0), /max_token_length is 0/);
  patch(0, (b) => b.writeInt32LE(-7, 0), /max_token_length is -7/);
  patch(0, (b) => b.writeInt32LE(0x7fffffff, 0), /max_token_length is 2147483647/);
  patch(0, (b) => b.writeInt32LE(-1, 8), /record 0 \(byte offset 4\): piece length -1/);
  patch(0, (b) => b.writeInt32LE(0x7fffffff, 8), /record 0 \(byte offset 4\): piece length 2147483647/);
  patch(0, (b) => b.writeInt32LE(100000, 8), /record 0 .*piece length 100000/);
  patch(0, (b) => b.writeInt32LE(10000, 8), /record 0 .*10000 runs past the end/);
  patch(0, (b) => b.writeFloatLE(NaN, 4), /record 0 \(byte offset 4\): score is NaN/);
  // record 1 starts at 4 + 8 + 5 = 17
  patch(0, (b) => b.writeFloatLE(NaN, 17), /record 1 \(byte offset 17\): score is NaN/);
  expectError(() => Llama2cTokenizer.fromBuffer(orig, 'x/tok.bin', 0), 'tok.bin', /positive integer/);
});
