// The GGUF writer, encodings and export, checked with mixtune's own reader (no llama.cpp here; see
// gguf-llamacpp.test.ts for llama.cpp itself).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { sharedDir } from '../src/util/paths.js';
import { GgmlType, GGUF_MAGIC, ggufTensorBytes, parseGguf, readGguf, writeGguf, type GgufKv } from '../src/io/gguf.js';
import { decodeF16, decodeQ8_0, encodeF16, encodeQ8_0, f16BitsToF32, f32ToF16Bits } from '../src/io/gguf-quant.js';
import { ggufTensorName, ggufTensors, llama3RopeFreqs } from '../src/io/gguf-export.js';
import { exportModelGguf } from '../src/io/gguf-model.js';
import { TokenType, ggufVocabFromTokenizer } from '../src/io/gguf-vocab.js';
import { Llama2cTokenizer } from '../src/io/llama2c-tokenizer.js';
import { HfTokenizer } from '../src/io/hf-tokenizer.js';
import { loadLlama2c } from '../src/io/llama2c.js';
import { PLAIN_CHAT_TEMPLATE } from '../src/io/chat.js';
import type { LlamaConfig } from '../src/model/config.js';
import { ropeInvFreq } from '../src/model/llama.js';
import { Rng } from '../src/util/rng.js';
import { MixtuneError } from '../src/util/errors.js';
import { runCli, assertOneLineError } from './util.js';

const fx = join(sharedDir(), 'fixtures');
const storiesBin = join(fx, 'stories260K', 'stories260K.bin');
const storiesTok = join(fx, 'stories260K', 'tok512.bin');
const tmp = mkdtempSync(join(tmpdir(), 'mixtune-gguf-'));
test.after(() => rmSync(tmp, { recursive: true, force: true }));

test('writer + reader: header, every metadata type, arrays, tensor infos (dims reversed), alignment and data', () => {
  const path = join(tmp, 'kv.gguf');
  const md: GgufKv[] = [
    { key: 'general.alignment', kind: 'u32', value: 32 },
    { key: 'a.u8', kind: 'u8', value: 255 },
    { key: 'a.i8', kind: 'i8', value: -128 },
    { key: 'a.u16', kind: 'u16', value: 65535 },
    { key: 'a.i16', kind: 'i16', value: -32768 },
    { key: 'a.i32', kind: 'i32', value: -7 },
    { key: 'a.f32', kind: 'f32', value: 1e-5 },
    { key: 'a.f64', kind: 'f64', value: Math.PI },
    { key: 'a.u64', kind: 'u64', value: 2n ** 40n },
    { key: 'a.i64', kind: 'i64', value: -(2n ** 40n) },
    { key: 'a.bool', kind: 'bool', value: true },
    { key: 'a.str', kind: 'string', value: 'héllo ▁' },
    { key: 'a.bytes', kind: 'string', value: Uint8Array.of(0xff, 0x00, 0x41) },
    { key: 'a.strs', kind: 'string', value: ['x', '', 'yz'], array: true },
    { key: 'a.f32s', kind: 'f32', value: Float32Array.of(0.5, -2), array: true },
    { key: 'a.i32s', kind: 'i32', value: Int32Array.of(1, 6, 3), array: true },
  ];
  const m = Float32Array.from({ length: 6 }, (_, i) => i + 0.25); // [2, 3]
  const v = Float32Array.of(7, 8, 9); // [3]
  writeGguf(path, md, [
    { name: 'm', shape: [2, 3], type: GgmlType.F32, encode: () => new Uint8Array(m.buffer.slice(0)) },
    { name: 'v', shape: [3], type: GgmlType.F32, encode: () => new Uint8Array(v.buffer.slice(0)) },
  ]);
  const bytes = readFileSync(path);
  assert.equal(bytes.readUInt32LE(0), GGUF_MAGIC);
  assert.equal(bytes.subarray(0, 4).toString('latin1'), 'GGUF');
  assert.equal(bytes.readUInt32LE(4), 3);
  const f = readGguf(path);
  assert.equal(f.version, 3);
  assert.equal(f.metadata.get('a.u8'), 255);
  assert.equal(f.metadata.get('a.i8'), -128);
  assert.equal(f.metadata.get('a.u16'), 65535);
  assert.equal(f.metadata.get('a.i16'), -32768);
  assert.equal(f.metadata.get('a.i32'), -7);
  assert.equal(f.metadata.get('a.f32'), Math.fround(1e-5));
  assert.equal(f.metadata.get('a.f64'), Math.PI);
  assert.equal(f.metadata.get('a.u64'), 2n ** 40n);
  assert.equal(f.metadata.get('a.i64'), -(2n ** 40n));
  assert.equal(f.metadata.get('a.bool'), true);
  assert.equal(f.metadata.get('a.str'), 'héllo ▁');
  assert.deepEqual(f.metadata.get('a.strs'), ['x', '', 'yz']);
  assert.deepEqual(f.metadata.get('a.f32s'), [0.5, -2]);
  assert.deepEqual(f.metadata.get('a.i32s'), [1, 6, 3]);
  assert.equal(f.kinds.get('a.i32s'), 'array:i32');
  assert.equal(f.kinds.get('general.alignment'), 'u32');
  assert.deepEqual(f.tensors.map((t) => [t.name, t.ne, t.shape, t.type, t.offset]), [
    ['m', [3, 2], [2, 3], GgmlType.F32, 0],
    ['v', [3], [3], GgmlType.F32, 32], // 24 bytes, padded to 32
  ]);
  assert.equal(f.dataOffset % 32, 0);
  assert.deepEqual(new Float32Array(Uint8Array.from(ggufTensorBytes(f, 'm')).buffer), m);
  assert.deepEqual(new Float32Array(Uint8Array.from(ggufTensorBytes(f, 'v')).buffer), v);
  assert.equal(bytes.length, f.dataOffset + 64, 'the data section ends aligned');
  // raw bytes of a string survive
  const raw = bytes.indexOf(Buffer.from('a.bytes'));
  assert.deepEqual([...bytes.subarray(raw + 7 + 4 + 8, raw + 7 + 4 + 8 + 3)], [0xff, 0x00, 0x41]);
});

test('writer: refuses an existing file without overwrite, bad values, duplicate keys; leaves no temporary file', () => {
  const path = join(tmp, 'x.gguf');
  writeFileSync(path, 'old');
  assert.throws(() => writeGguf(path, [], []), (e: unknown) => e instanceof MixtuneError && /exists.*--overwrite/.test(e.message));
  assert.equal(readFileSync(path, 'utf8'), 'old');
  assert.throws(() => writeGguf(path, [{ key: 'k', kind: 'u32', value: -1 }], [], { overwrite: true }), /not a valid u32/);
  assert.throws(() => writeGguf(path, [{ key: 'k', kind: 'u8', value: 1 }, { key: 'k', kind: 'u8', value: 2 }], [], { overwrite: true }), /given twice/);
  const bad = { name: 't', shape: [4], type: GgmlType.F32, encode: () => new Uint8Array(8) };
  assert.throws(() => writeGguf(path, [], [bad], { overwrite: true }), /encoded 8 bytes, expected 16/);
  assert.equal(readFileSync(path, 'utf8'), 'old', 'a failed write keeps the old file');
  assert.deepEqual(readdirSync(tmp).filter((n) => n.includes('.tmp-')), []);
  assert.throws(() => writeGguf(join(tmp, 'no', 'such', 'dir.gguf'), [], []), /parent folder .* does not exist/);
  assert.throws(() => parseGguf(Buffer.from('GGUX0000'), 'f'), /bad magic/);
});

test('f16: exact round trip of halves, round to nearest even, subnormals, overflow, inf/NaN', () => {
  for (let h = 0; h < 0x10000; h++) {
    const x = f16BitsToF32(h);
    if (Number.isNaN(x)) assert.ok(Number.isNaN(f16BitsToF32(f32ToF16Bits(x))));
    else assert.equal(f32ToF16Bits(x), h, `half 0x${h.toString(16)}`);
  }
  assert.equal(f32ToF16Bits(1 + 2 ** -11), 0x3c00, 'tie to even (down)');
  assert.equal(f32ToF16Bits(1 + 3 * 2 ** -11), 0x3c02, 'tie to even (up)');
  assert.equal(f32ToF16Bits(65520), 0x7c00, 'rounds to inf');
  assert.equal(f32ToF16Bits(65519), 0x7bff);
  assert.equal(f32ToF16Bits(2 ** -25), 0x0000, 'half of the smallest subnormal: tie to even (zero)');
  assert.equal(f32ToF16Bits(Math.fround(2 ** -25 * 1.0001)), 0x0001);
  assert.equal(f32ToF16Bits(-0), 0x8000);
  assert.equal(f32ToF16Bits(1e-10), 0);
  // random values: the nearest half (error at most half an ulp)
  const rng = new Rng(5);
  const x = Float32Array.from({ length: 4096 }, () => (rng.float() * 2 - 1) * 2 ** (rng.int(35) - 20)); // |x| < 2^15
  const y = decodeF16(encodeF16(x));
  for (let i = 0; i < x.length; i++) {
    const a = Math.abs(x[i]!);
    const ulp = a < 2 ** -14 ? 2 ** -24 : 2 ** (Math.floor(Math.log2(a)) - 10);
    assert.ok(Math.abs(y[i]! - x[i]!) <= ulp / 2, `${x[i]} -> ${y[i]}`);
  }
});

test('q8_0: block layout (f16 scale max|x|/127, int8 round half away from zero) and round-trip error bound', () => {
  const x = new Float32Array(64);
  for (let j = 0; j < 32; j++) x[j] = (j - 16) / 4; // amax 4 -> d = 4/127
  x[40] = 0.5; // second block: amax 0.5, others 0
  const q = encodeQ8_0(x);
  assert.equal(q.length, 68);
  const dv = new DataView(q.buffer);
  assert.equal(dv.getUint16(0, true), f32ToF16Bits(Math.fround(4 / 127)));
  assert.equal(dv.getInt8(2), -127); // -4 / d
  assert.equal(dv.getInt8(2 + 16), 0);
  assert.equal(dv.getInt8(2 + 18), Math.round(0.5 / Math.fround(4 / 127))); // 15.875 -> 16
  assert.equal(dv.getInt8(34 + 2 + 8), 127);
  assert.equal(encodeQ8_0(new Float32Array(32)).every((b) => b === 0), true, 'an all-zero block: d = 0, q = 0');
  // round-trip error: |x - d16 q| <= d/2 + |d - d16| * 127 per block
  const rng = new Rng(3);
  const big = Float32Array.from({ length: 32 * 500 }, (_, i) => (rng.normal() * 2 ** ((i >> 5) % 20 - 10)));
  const back = decodeQ8_0(encodeQ8_0(big));
  for (let b = 0; b < 500; b++) {
    let amax = 0;
    for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(big[b * 32 + j]!));
    const d = Math.fround(amax / 127);
    const d16 = f16BitsToF32(f32ToF16Bits(d));
    const bound = d / 2 + Math.abs(d - d16) * 127 + 1e-12;
    for (let j = 0; j < 32; j++) assert.ok(Math.abs(back[b * 32 + j]! - big[b * 32 + j]!) <= bound, `block ${b}`);
    if (d >= 2 ** -14) assert.ok(bound <= amax * (0.5 / 127 + 2 ** -11) * 1.0001, 'the bound is ~0.56 of a quantization step');
  }
  assert.throws(() => encodeQ8_0(new Float32Array(33)), /multiple of 32/);
});

test('export (stories260K .bin): llama metadata, llama.cpp tensor names/shapes/types, q/k rows back in llama2.c\'s interleaved order', () => {
  const out = join(tmp, 'stories.gguf');
  const r = exportModelGguf({ model: storiesBin, tokenizer: storiesTok, out });
  assert.equal(r.arch, 'llama');
  const f = readGguf(out);
  const md = f.metadata;
  const want: Record<string, unknown> = {
    'general.architecture': 'llama', 'general.name': 'stories260K', 'general.file_type': 0, 'general.alignment': 32,
    'llama.context_length': 512, 'llama.embedding_length': 64, 'llama.block_count': 5, 'llama.feed_forward_length': 172,
    'llama.attention.head_count': 8, 'llama.attention.head_count_kv': 4, 'llama.rope.dimension_count': 8,
    'llama.attention.layer_norm_rms_epsilon': Math.fround(1e-5), 'llama.rope.freq_base': 10000, 'llama.vocab_size': 512,
    'tokenizer.ggml.model': 'llama', 'tokenizer.ggml.pre': 'default', 'tokenizer.ggml.bos_token_id': 1, 'tokenizer.ggml.eos_token_id': 2,
    'tokenizer.ggml.unknown_token_id': 0, 'tokenizer.ggml.add_bos_token': true, 'tokenizer.ggml.add_eos_token': false,
    'tokenizer.ggml.add_space_prefix': true, 'tokenizer.chat_template': PLAIN_CHAT_TEMPLATE,
  };
  for (const [k, v] of Object.entries(want)) assert.equal(md.get(k), v, k);
  assert.equal(f.kinds.get('llama.block_count'), 'u32');
  assert.equal(f.kinds.get('llama.attention.layer_norm_rms_epsilon'), 'f32');
  const tokens = md.get('tokenizer.ggml.tokens') as string[];
  const types = md.get('tokenizer.ggml.token_type') as number[];
  const scores = md.get('tokenizer.ggml.scores') as number[];
  assert.equal(tokens.length, 512);
  assert.deepEqual(tokens.slice(0, 4), ['<unk>', '<s>', '</s>', '<0x00>']);
  assert.deepEqual(types.slice(0, 4), [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL, TokenType.BYTE]);
  assert.equal(types[258], TokenType.BYTE);
  assert.equal(tokens[258], '<0xFF>');
  assert.equal(types.filter((t) => t === TokenType.BYTE).length, 256);
  const tok = Llama2cTokenizer.load(storiesTok, 512);
  assert.deepEqual(scores, [...tok.scores]);
  const t259 = Buffer.from(tok.pieces[259]!).toString('utf8');
  assert.equal(tokens[259], t259.replaceAll(' ', '▁'));
  assert.ok(tokens.some((t) => t.startsWith('▁')));
  // tensors: names, ne = shape reversed, f32, tied (no output.weight)
  const names = f.tensors.map((t) => t.name);
  assert.equal(names.length, 1 + 5 * 9 + 1);
  assert.ok(!names.includes('output.weight'));
  const info = (n: string) => f.tensors.find((t) => t.name === n)!;
  assert.deepEqual(info('token_embd.weight').ne, [64, 512]);
  assert.deepEqual(info('blk.0.attn_k.weight').ne, [64, 32]);
  assert.deepEqual(info('blk.4.ffn_down.weight').ne, [172, 64]);
  assert.deepEqual(info('output_norm.weight').ne, [64]);
  assert.ok(f.tensors.every((t) => t.type === GgmlType.F32));
  // attn_q / attn_k hold llama2.c's own wq / wk bytes (interleaved RoPE pairs, llama.cpp's order);
  // legacy layout: 28-byte header, token_embedding, rms_att, wq[L], wk[L], ...
  const bin = readFileSync(storiesBin);
  const wq0 = 28 + 4 * (512 * 64 + 5 * 64);
  assert.ok(Buffer.from(ggufTensorBytes(f, 'blk.0.attn_q.weight')).equals(bin.subarray(wq0, wq0 + 4 * 64 * 64)));
  const wk3 = wq0 + 4 * 5 * 64 * 64 + 4 * 3 * 32 * 64;
  assert.ok(Buffer.from(ggufTensorBytes(f, 'blk.3.attn_k.weight')).equals(bin.subarray(wk3, wk3 + 4 * 32 * 64)));
  // every other tensor is mixtune's weight as it is
  const l2c = loadLlama2c(storiesBin);
  const emb = l2c.weights.get('model.embed_tokens.weight')!;
  assert.ok(Buffer.from(ggufTensorBytes(f, 'token_embd.weight')).equals(Buffer.from(emb.buffer, emb.byteOffset, emb.byteLength)));
});

test('export dtypes: f16 and q8_0 store 2-D weights as F16 / Q8_0 (Q8_0 rows not a multiple of 32 fall back to F16), norms stay F32', () => {
  for (const [dtype, ftype] of [['f16', 1], ['q8_0', 7]] as const) {
    const out = join(tmp, `stories-${dtype}.gguf`);
    exportModelGguf({ model: storiesBin, tokenizer: storiesTok, out, dtype });
    const f = readGguf(out);
    assert.equal(f.metadata.get('general.file_type'), ftype);
    const type = (n: string) => f.tensors.find((t) => t.name === n)!.type;
    assert.equal(type('blk.0.attn_norm.weight'), GgmlType.F32);
    assert.equal(type('output_norm.weight'), GgmlType.F32);
    assert.equal(type('blk.0.attn_q.weight'), dtype === 'f16' ? GgmlType.F16 : GgmlType.Q8_0);
    assert.equal(type('token_embd.weight'), dtype === 'f16' ? GgmlType.F16 : GgmlType.Q8_0);
    assert.equal(type('blk.0.ffn_down.weight'), GgmlType.F16, 'rows of 172 values cannot be Q8_0');
    assert.equal(type('blk.0.ffn_up.weight'), dtype === 'f16' ? GgmlType.F16 : GgmlType.Q8_0);
    const emb = loadLlama2c(storiesBin).weights.get('model.embed_tokens.weight')!;
    const back = dtype === 'f16' ? decodeF16(ggufTensorBytes(f, 'token_embd.weight')) : decodeQ8_0(ggufTensorBytes(f, 'token_embd.weight'));
    let err = 0;
    let amax = 0;
    for (let i = 0; i < emb.length; i++) {
      err = Math.max(err, Math.abs(back[i]! - emb[i]!));
      amax = Math.max(amax, Math.abs(emb[i]!));
    }
    assert.ok(err <= amax * (dtype === 'f16' ? 2 ** -11 : 0.6 / 127), `${dtype} round-trip error ${err}`);
  }
});

const qwenTok = (): HfTokenizer => HfTokenizer.load(join(fx, 'qwen2.5'));

test('vocab: Qwen2.5 as gpt2 / qwen2 with merges, control and user-defined added tokens, [PAD] up to the model vocabulary', () => {
  const tok = qwenTok();
  const v = ggufVocabFromTokenizer(tok, 151936);
  assert.equal(v.model, 'gpt2');
  assert.equal(v.pre, 'qwen2');
  assert.equal(v.tokens.length, 151936);
  assert.equal(v.scores, undefined);
  assert.equal(v.merges!.length, 151387);
  assert.equal(v.merges![0], 'Ġ Ġ');
  assert.equal(v.tokens[151643], '<|endoftext|>');
  assert.equal(v.types[151643], TokenType.CONTROL);
  assert.equal(v.types[151657], TokenType.USER_DEFINED, '<tool_call> is not special');
  assert.equal(v.types[151659], TokenType.CONTROL, '<|fim_prefix|> looks special');
  assert.equal(v.tokens[151665], '[PAD151665]');
  assert.equal(v.types[151935], TokenType.UNUSED);
  assert.equal(v.types[100], TokenType.NORMAL);
  assert.equal(v.bosId, -1);
  assert.equal(v.eosId, 151645);
  assert.equal(v.padId, 151643);
  assert.equal(v.addBos, false);
  assert.match(v.chatTemplate!, /<\|im_start\|>/);
  assert.throws(() => ggufVocabFromTokenizer(tok, 1000), /151665 tokens but the model only 1000/);
});

test('vocab: Llama 3 tokenizer.json -> gpt2 / llama-bpe; Mistral v0.3 tokenizer.json -> SPM with merge-rank scores and types', () => {
  const l3 = ggufVocabFromTokenizer(HfTokenizer.load(join(fx, 'llama3')), 128256);
  assert.equal(l3.model, 'gpt2');
  assert.equal(l3.pre, 'llama-bpe');
  assert.equal(l3.addBos, false, "this copy's post-processor is ByteLevel: no BOS is added (as mixtune's tokenizer says)");
  assert.equal(l3.bosId, 128000);
  assert.equal(l3.types[128000], TokenType.CONTROL);
  const mtok = HfTokenizer.load(join(fx, 'mistral-v0.3'));
  const m = ggufVocabFromTokenizer(mtok, 32768);
  assert.equal(m.model, 'llama');
  assert.equal(m.addSpacePrefix, true);
  assert.deepEqual([m.types[0], m.types[1], m.types[2], m.types[3]], [TokenType.UNKNOWN, TokenType.CONTROL, TokenType.CONTROL, TokenType.CONTROL]);
  const b = m.tokens.indexOf('<0x0A>');
  assert.equal(m.types[b], TokenType.BYTE);
  // the first merge makes the highest-scored multi-character piece
  const json = mtok.tokenizerJson as { model: { merges: string[]; vocab: Record<string, number> } };
  const first = json.model.merges[0]!.replace(' ', '');
  assert.equal(m.scores![json.model.vocab[first]!], 0);
  const tenth = json.model.merges[9]!.replace(' ', '');
  assert.ok(m.scores![json.model.vocab[tenth]!]! <= -9);
});

test('export: rope_freqs for llama3 rope scaling equal mixtune\'s scaled inverse frequencies', () => {
  const config: LlamaConfig = {
    vocabSize: 8, dim: 32, hiddenDim: 64, nLayers: 1, nHeads: 2, nKvHeads: 2, headDim: 16, maxSeqLen: 64, normEps: 1e-5,
    ropeTheta: 500000, tiedEmbeddings: true, qkvBias: false,
    ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPositionEmbeddings: 64 },
  };
  const base = ropeInvFreq(16, 500000);
  const scaled = ropeInvFreq(16, 500000, config.ropeScaling);
  const ff = llama3RopeFreqs(config);
  for (let j = 0; j < 8; j++) assert.ok(Math.abs(base[j]! / ff[j]! - scaled[j]!) <= 1e-6 * base[j]!, `freq ${j}`);
  assert.ok(ff.some((x) => x === 1) && ff.some((x) => x === 8) && ff.some((x) => x > 1 && x < 8));
  assert.equal(ggufTensorName('model.layers.3.self_attn.q_proj.bias'), 'blk.3.attn_q.bias');
  const weights = new Map<string, Float32Array>();
  assert.throws(() => ggufTensors(config, weights, 'f32'), /missing tensor model.embed_tokens.weight/);
});

test('CLI: mixtune export gguf writes the file (+ Modelfile); refuses an existing file, a bad dtype, a missing model', () => {
  const out = join(tmp, 'cli', 'm.gguf');
  const dir = join(tmp, 'cli');
  assertOneLineError(runCli('export', 'gguf', '--model', 'stories260K', '--out', out), [/parent folder .* does not exist/]);
  rmSync(dir, { recursive: true, force: true });
  require0(runCli('export', 'gguf', '--model', 'stories260K', '--out', join(tmp, 'cli-m.gguf'), '--dtype', 'q8_0', '--modelfile'));
  const f = readGguf(join(tmp, 'cli-m.gguf'));
  assert.equal(f.metadata.get('general.file_type'), 7);
  const mf = readFileSync(join(tmp, 'Modelfile'), 'utf8');
  assert.match(mf, /^FROM \.\/cli-m\.gguf$/m);
  assert.match(mf, /^PARAMETER stop "<\/s>"$/m);
  assert.match(mf, /### Assistant:/);
  const again = runCli('export', 'gguf', '--model', 'stories260K', '--out', join(tmp, 'cli-m.gguf'));
  assertOneLineError(again, [/exists \(pass --overwrite/]);
  require0(runCli('export', 'gguf', '--model', 'stories260K', '--out', join(tmp, 'cli-m.gguf'), '--overwrite'));
  assert.equal(readGguf(join(tmp, 'cli-m.gguf')).metadata.get('general.file_type'), 0);
  const bad = runCli('export', 'gguf', '--model', 'stories260K', '--out', join(tmp, 'x.gguf'), '--dtype', 'q4_0');
  assert.notEqual(bad.code, 0);
  assert.match(bad.stderr, /q4_0/);
  assertOneLineError(runCli('export', 'gguf', '--model', join(tmp, 'nope.bin'), '--out', join(tmp, 'y.gguf')), [/model not found/]);
  assert.ok(!existsSync(join(tmp, 'y.gguf')));
});

function require0(r: { code: number; stderr: string }): void {
  assert.equal(r.code, 0, r.stderr);
}
