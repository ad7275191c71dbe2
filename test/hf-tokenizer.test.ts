import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Template } from '@huggingface/jinja';
import { HfTokenizer } from '../src/io/hf-tokenizer.js';
import { MixtuneError } from '../src/util/errors.js';
import { sharedDir } from '../src/util/paths.js';

const F = join(sharedDir(), 'fixtures');
const MISTRAL = join(F, 'mistral-v0.3');
const LLAMA2 = join(F, 'llama2-tokenizer');
const QWEN = join(F, 'qwen2.5');

let mistralTok: HfTokenizer | undefined;
const mistral = (): HfTokenizer => (mistralTok ??= HfTokenizer.load(MISTRAL));
let qwenTok: HfTokenizer | undefined;
const qwen = (): HfTokenizer => (qwenTok ??= HfTokenizer.load(QWEN));

/** llama.cpp golden pairs: texts separated by "\n__ggml_vocab_test__\n", one line of ids per text. */
function goldenPairs(name: string): [string, number[]][] {
  const inp = readFileSync(join(F, 'llama.cpp', `ggml-vocab-${name}.gguf.inp`), 'utf8').split('\n__ggml_vocab_test__\n');
  inp.pop();
  const out = readFileSync(join(F, 'llama.cpp', `ggml-vocab-${name}.gguf.out`), 'utf8').split('\n');
  out.pop();
  assert.equal(inp.length, out.length);
  return inp.map((t, i) => [t, out[i]!.trim() === '' ? [] : out[i]!.trim().split(/\s+/).map(Number)]);
}

function agreement(tok: HfTokenizer, pairs: [string, number[]][]): { ok: number; bad: string[] } {
  let ok = 0;
  const bad: string[] = [];
  for (const [t, ids] of pairs) {
    if (JSON.stringify(tok.encode(t)) === JSON.stringify(ids)) ok++;
    else bad.push(t);
  }
  return { ok, bad };
}

test('Mistral v0.3: special tokens from tokenizer_config.json / generation_config.json', () => {
  const tok = mistral();
  assert.equal(tok.vocabSize, 32768);
  assert.equal(tok.bosId, 1);
  assert.equal(tok.eosId, 2);
  assert.equal(tok.unkId, 0);
  assert.equal(tok.padTokenId, -1);
  assert.equal(tok.padId, 2, "no pad token: batches pad with EOS");
  assert.equal(tok.bosToken, '<s>');
  assert.equal(tok.eosToken, '</s>');
  assert.equal(tok.addBos, true);
  assert.equal(tok.addEos, false);
  assert.deepEqual(tok.stopIds, [2]);
  assert.equal(tok.tokenToId('[INST]'), 3);
  assert.equal(tok.idToToken(4), '[/INST]');
  assert.equal(tok.idToToken(1183), '▁The');
  assert.equal(tok.idToToken(-1), undefined);
  assert.equal(tok.idToToken(40000), undefined);
  assert.ok(tok.isSpecial(1) && !tok.isSpecial(1183));
});

test('Mistral v0.3: BOS is added exactly once, only on request; specials in text are literal for encode', () => {
  const tok = mistral();
  const plain = tok.encode('Hello world', { bos: false });
  assert.deepEqual(plain, [23325, 2294]);
  assert.deepEqual(tok.encode('Hello world'), plain);
  assert.deepEqual(tok.encode('Hello world', { bos: true }), [1, 23325, 2294]); // the post-processor would add one more
  assert.deepEqual(tok.encode('Hello world', { bos: true, eos: true }), [1, 23325, 2294, 2]);
  const lit = tok.encode('<s>[INST] hi[/INST]');
  assert.ok(!lit.includes(1) && !lit.includes(3) && !lit.includes(4), `literal encode parsed specials: ${lit}`);
  assert.equal(tok.decode(lit), '<s>[INST] hi[/INST]');
  const sp = tok.encodeWithSpecials('<s>[INST] hi[/INST]');
  assert.deepEqual(sp.slice(0, 2), [1, 3]);
  assert.equal(sp.at(-1), 4);
  assert.equal(sp.filter((x) => x === 1).length, 1);
  assert.deepEqual(tok.encodeWithSpecials('[INST]'), [3]);
  assert.deepEqual(tok.encodeWithSpecials('hi', { bos: true }), [1, ...tok.encodeWithSpecials('hi')]);
});

test('Mistral v0.3: mistral-common sample gives exactly the v3 token ids', () => {
  const tok = mistral();
  const dir = join(MISTRAL, 'mistral-common-samples');
  const sample = JSON.parse(readFileSync(join(dir, 'sample.json'), 'utf8')) as { messages: unknown[] };
  const expected = (JSON.parse(readFileSync(join(dir, 'tokens_v3.json'), 'utf8')) as { tokens: number[] }).tokens;
  const pieces = readFileSync(join(dir, 'text_v3.txt'), 'utf8');
  const cfg = JSON.parse(readFileSync(join(MISTRAL, 'tokenizer_config.json'), 'utf8')) as { chat_template: string };
  const text = new Template(cfg.chat_template).render({ messages: sample.messages, bos_token: '<s>', eos_token: '</s>', add_generation_prompt: true });
  const ids = tok.encodeWithSpecials(text);
  // 1 sample (a 7-message conversation) of 98 ids: all 98 match.
  assert.equal(expected.length, 98);
  assert.deepEqual(ids, expected);
  assert.equal(ids.map((i) => tok.idToToken(i)).join(''), pieces);
  assert.equal(tok.decode(ids, { special: true }), text);
});

test('llama.cpp ggml-vocab-llama-spm golden pairs with the Llama 2 tokenizer.json: 46/46', () => {
  const tok = HfTokenizer.load(LLAMA2);
  const pairs = goldenPairs('llama-spm');
  const { ok, bad } = agreement(tok, pairs);
  assert.deepEqual(bad, []);
  assert.equal(ok, 46);
  for (const [t] of pairs) assert.equal(tok.decode(tok.encode(t)), t);
});

test('llama.cpp ggml-vocab-qwen2 golden pairs with Qwen2.5 (tokenizer.json built from vocab.json + merges.txt): 46/46', () => {
  const tok = qwen();
  assert.match(tok.source, /vocab\.json \+ merges\.txt/);
  const pairs = goldenPairs('qwen2');
  const { ok, bad } = agreement(tok, pairs);
  assert.deepEqual(bad, []);
  assert.equal(ok, 46);
  for (const [t] of pairs) assert.equal(tok.decode(tok.encode(t)), t);
});

test('Qwen2.5: no BOS, <|im_end|> EOS, pad <|endoftext|>, specials parsed only by encodeWithSpecials', () => {
  const tok = qwen();
  assert.equal(tok.vocabSize, 151665);
  assert.equal(tok.bosId, -1);
  assert.equal(tok.addBos, false);
  assert.equal(tok.eosId, 151645);
  assert.equal(tok.padId, 151643);
  assert.deepEqual(tok.stopIds, [151645]);
  assert.deepEqual(tok.encode('hi', { bos: true }), tok.encode('hi'));
  const ids = tok.encodeWithSpecials('<|im_start|>user\nhi<|im_end|>\n');
  assert.equal(ids[0], 151644);
  assert.equal(ids.filter((x) => x === 151645).length, 1);
  assert.equal(tok.decode(ids), 'user\nhi\n');
  assert.equal(tok.decode(ids, { special: true }), '<|im_start|>user\nhi<|im_end|>\n');
  assert.ok(!tok.encode('<|im_start|>').includes(151644));
  // non-special added tokens still match in literal encode (as HF with split_special_tokens=True)
  assert.deepEqual(tok.encode('<tool_call>'), [151657]);
});

test('llama_encoded.json (swift-transformers golden) with the Llama 2 tokenizer.json', () => {
  const tok = HfTokenizer.load(LLAMA2);
  const g = JSON.parse(readFileSync(join(LLAMA2, 'llama_encoded.json'), 'utf8')) as { text: string; bpe_tokens: string[]; token_ids: number[]; decoded_text: string };
  const ids = tok.encode(g.text, { bos: true });
  assert.deepEqual(ids, g.token_ids);
  assert.deepEqual(ids.slice(1).map((i) => tok.idToToken(i)), g.bpe_tokens);
  assert.equal(tok.decode(ids), g.text);
  assert.equal(tok.decode(ids, { special: true }), g.decoded_text); // HF: "<s> Fatouville..."
});

test('decodeBytes is stream-safe: token-by-token with prev equals the whole', () => {
  for (const tok of [mistral(), qwen()]) {
    for (const text of ['Hello world', ' leading space', 'Ünïcödé 中文 😀 emoji', 'a\n\tb  c']) {
      const ids = tok.encode(text, { bos: true });
      const whole = Buffer.from(tok.decodeBytes(ids));
      const parts: Buffer[] = [];
      for (let i = 0; i < ids.length; i++) parts.push(Buffer.from(tok.decodeBytes([ids[i]!], { prev: i > 0 ? ids[i - 1]! : undefined })));
      assert.deepEqual(Buffer.concat(parts), whole);
      assert.equal(whole.toString('utf8'), text.startsWith(' ') && tok === mistral() ? text.slice(1) : text);
    }
  }
  // SentencePiece: a leading space is dropped at the start and after BOS, kept elsewhere.
  const tok = mistral();
  const the = tok.tokenToId('▁The')!;
  assert.equal(tok.decode([the]), 'The');
  assert.equal(tok.decode([the], { prev: 1 }), 'The');
  assert.equal(tok.decode([the], { prev: 4 }), ' The');
  assert.throws(() => tok.decode([99999]), MixtuneError);
});

test('generation_config eos_token_id (int or list) joins the stop ids; bad values are errors', () => {
  const tokenizerJson = JSON.parse(readFileSync(join(MISTRAL, 'tokenizer.json'), 'utf8')) as Record<string, unknown>;
  const config = JSON.parse(readFileSync(join(MISTRAL, 'tokenizer_config.json'), 'utf8')) as Record<string, unknown>;
  const t = HfTokenizer.fromJson({ tokenizerJson, config: { ...config, pad_token: { content: '</s>' } }, generationConfig: { eos_token_id: [2, 4] } });
  assert.deepEqual(t.stopIds, [2, 4]);
  assert.equal(t.padId, 2);
  const t2 = HfTokenizer.fromJson({ tokenizerJson, config: { ...config, eos_token: null }, generationConfig: { eos_token_id: 4 } });
  assert.equal(t2.eosId, 4);
  assert.deepEqual(t2.stopIds, [4]);
  assert.throws(() => HfTokenizer.fromJson({ tokenizerJson, config, generationConfig: { eos_token_id: [2, 'x'] } }), /eos_token_id/);
  assert.throws(() => HfTokenizer.fromJson({ tokenizerJson, config: { ...config, bos_token: '<nope>' } }), /bos_token "<nope>" is not a token/);
  assert.throws(() => HfTokenizer.fromJson({ tokenizerJson, config: { ...config, eos_token: 42 } }), /eos_token/);
});

test('missing or corrupt files are MixtuneErrors naming the file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mixtune-hftok-'));
  try {
    assert.throws(() => HfTokenizer.load(join(dir, 'nope')), (e: unknown) => e instanceof MixtuneError && /nope.tokenizer\.json.*no such file/.test(e.message));
    writeFileSync(join(dir, 'tokenizer.json'), '{"model": {');
    assert.throws(() => HfTokenizer.load(dir), (e: unknown) => e instanceof MixtuneError && e.message.includes(join(dir, 'tokenizer.json')) && /not valid JSON/.test(e.message));
    writeFileSync(join(dir, 'tokenizer.json'), '{"version": "1.0"}');
    assert.throws(() => HfTokenizer.load(dir), (e: unknown) => e instanceof MixtuneError && /no "model"/.test(e.message));
    writeFileSync(join(dir, 'tokenizer.json'), '{"model": {"type": "Nope"}, "added_tokens": []}');
    assert.throws(() => HfTokenizer.load(dir), (e: unknown) => e instanceof MixtuneError && /unsupported or corrupt/.test(e.message));
    writeFileSync(join(dir, 'tokenizer.json'), readFileSync(join(MISTRAL, 'tokenizer.json')));
    writeFileSync(join(dir, 'tokenizer_config.json'), '[1, 2]');
    assert.throws(() => HfTokenizer.load(dir), (e: unknown) => e instanceof MixtuneError && e.message.includes('tokenizer_config.json'));
    rmSync(join(dir, 'tokenizer_config.json'));
    const bare = HfTokenizer.load(dir); // no tokenizer_config.json: no BOS/EOS known
    assert.equal(bare.bosId, -1);
    assert.deepEqual(bare.encode('Hello world', { bos: true }), [23325, 2294]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
