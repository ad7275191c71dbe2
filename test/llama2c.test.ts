import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadLlama2c, saveLlama2c, interleavedToRotateHalf, rotateHalfToInterleaved, llama2cFreqCis } from '../src/io/llama2c.js';
import { type LlamaConfig, parameterShapes } from '../src/model/config.js';
import { sharedDir } from '../src/util/paths.js';
import { Rng } from '../src/util/rng.js';
import { randArray, expectError } from './util.js';

const FIX = join(sharedDir(), 'fixtures');
const STORIES = join(FIX, 'stories260K', 'stories260K.bin');
const tmp = mkdtempSync(join(tmpdir(), 'mixtune-llama2c-'));
process.on('exit', () => rmSync(tmp, { recursive: true, force: true }));

/** Float view (copy) of a file region. */
function floatsAt(buf: Buffer, byteOff: number, n: number): Float32Array {
  return new Float32Array(buf.buffer.slice(buf.byteOffset + byteOff, buf.byteOffset + byteOff + 4 * n));
}

/** Bitwise equality of two float arrays, reporting the first difference (assert.deepEqual's diff of big arrays is too slow). */
function sameFloats(a: Float32Array | undefined, b: Float32Array | undefined, what = 'array'): void {
  assert.ok(a && b, `${what}: missing`);
  assert.equal(a.length, b.length, `${what}: length ${a.length} vs ${b.length}`);
  const x = new Uint32Array(a.buffer, a.byteOffset, a.length);
  const y = new Uint32Array(b.buffer, b.byteOffset, b.length);
  for (let i = 0; i < x.length; i++) if (x[i] !== y[i]) assert.fail(`${what}[${i}]: ${a[i]} vs ${b[i]}`);
}


test('stories260K: header, config, tensor shapes', () => {
  const { config, weights } = loadLlama2c(STORIES);
  assert.deepEqual(
    [config.dim, config.hiddenDim, config.nLayers, config.nHeads, config.nKvHeads, config.vocabSize, config.maxSeqLen],
    [64, 172, 5, 8, 4, 512, 512],
  );
  assert.equal(config.tiedEmbeddings, true);
  assert.equal(config.headDim, 8);
  assert.equal(config.normEps, 1e-5);
  assert.equal(config.ropeTheta, 10000);
  assert.equal(config.qkvBias, false);
  const shapes = parameterShapes(config);
  assert.deepEqual([...weights.keys()].sort(), [...shapes.keys()].sort());
  let total = 0;
  for (const [name, shape] of shapes) {
    const n = shape.reduce((a, b) => a * b, 1);
    assert.equal(weights.get(name)!.length, n, name);
    total += n;
  }
  // 264128 floats in the file = weights + 2 freq_cis tables of 512*4
  assert.equal(total + 2 * 512 * 4, 264128);
});

test('stories260K: tensors are the file contents, q/k rows permuted to rotate-half', () => {
  const buf = readFileSync(STORIES);
  const { config, weights } = loadLlama2c(STORIES);
  const { dim, vocabSize: V, nLayers: L, hiddenDim: H } = config;
  const kv = config.nKvHeads * config.headDim;
  let off = 28;
  const emb = floatsAt(buf, off, V * dim);
  sameFloats(weights.get('model.embed_tokens.weight'), emb);
  off += 4 * V * dim;
  sameFloats(weights.get('model.layers.1.input_layernorm.weight'), floatsAt(buf, off + 4 * dim, dim));
  off += 4 * L * dim;
  const wq2 = floatsAt(buf, off + 4 * 2 * dim * dim, dim * dim);
  off += 4 * L * dim * dim;
  const wk3 = floatsAt(buf, off + 4 * 3 * kv * dim, kv * dim);
  off += 4 * L * kv * dim;
  const wv0 = floatsAt(buf, off, kv * dim);
  off += 4 * L * kv * dim + 4 * L * dim * dim + 4 * L * dim + 4 * L * H * dim;
  const w2l4 = floatsAt(buf, off + 4 * 4 * dim * H, dim * H);
  sameFloats(weights.get('model.layers.0.self_attn.v_proj.weight'), wv0);
  sameFloats(weights.get('model.layers.4.mlp.down_proj.weight'), w2l4);
  const q = weights.get('model.layers.2.self_attn.q_proj.weight')!;
  const k = weights.get('model.layers.3.self_attn.k_proj.weight')!;
  assert.throws(() => sameFloats(q, wq2));
  sameFloats(q, interleavedToRotateHalf(wq2, config.nHeads, config.headDim, dim));
  sameFloats(rotateHalfToInterleaved(q, config.nHeads, config.headDim, dim), wq2);
  sameFloats(rotateHalfToInterleaved(k, config.nKvHeads, config.headDim, dim), wk3);
  // spot check of the row mapping: head 1, j = 2 of 4 -> old row 1*8 + 4; j + hd/2 -> old row 1*8 + 5
  const hd = config.headDim;
  sameFloats(q.subarray((1 * hd + 2) * dim, (1 * hd + 3) * dim), wq2.subarray((1 * hd + 4) * dim, (1 * hd + 5) * dim));
  sameFloats(q.subarray((1 * hd + 2 + hd / 2) * dim, (1 * hd + 3 + hd / 2) * dim), wq2.subarray((1 * hd + 5) * dim, (1 * hd + 6) * dim));
});

test('interleavedToRotateHalf: explicit mapping and round trip', () => {
  // 2 heads, headDim 4, inDim 1: interleaved rows 0..7 -> [0,2,1,3, 4,6,5,7]
  const rows = Float32Array.from([0, 1, 2, 3, 4, 5, 6, 7]);
  assert.deepEqual([...interleavedToRotateHalf(rows, 2, 4, 1)], [0, 2, 1, 3, 4, 6, 5, 7]);
  // headDim 6: [0,2,4,1,3,5]
  assert.deepEqual([...interleavedToRotateHalf(Float32Array.from([0, 1, 2, 3, 4, 5]), 1, 6, 1)], [0, 2, 4, 1, 3, 5]);
  const rng = new Rng(7);
  for (const [h, hd, d] of [[1, 2, 1], [3, 8, 5], [4, 16, 3]] as const) {
    const a = randArray(rng, h * hd * d);
    const b = interleavedToRotateHalf(a, h, hd, d);
    sameFloats(rotateHalfToInterleaved(b, h, hd, d), a);
    sameFloats(interleavedToRotateHalf(rotateHalfToInterleaved(a, h, hd, d), h, hd, d), a);
  }
  assert.throws(() => interleavedToRotateHalf(new Float32Array(10), 2, 4, 1), RangeError);
});

test('stories260K: save reproduces the file (byte-exact except freq_cis within 1 ulp)', () => {
  const orig = readFileSync(STORIES);
  const { config, weights } = loadLlama2c(STORIES);
  const out = join(tmp, 'resaved.bin');
  saveLlama2c(out, config, weights);
  const re = readFileSync(out);
  assert.equal(re.length, orig.length);
  const freqBytes = 2 * 4 * config.maxSeqLen * (config.headDim / 2);
  const freqStart = orig.length - freqBytes; // tied: freq_cis are the last two tables
  assert.ok(orig.subarray(0, freqStart).equals(re.subarray(0, freqStart)), 'all bytes before freq_cis identical');
  // freq_cis: recomputed in float32 steps; torch's cosf/sinf are not always correctly rounded.
  const a = floatsAt(orig, freqStart, freqBytes / 4);
  const b = floatsAt(re, freqStart, freqBytes / 4);
  let differ = 0;
  for (let i = 0; i < a.length; i++) {
    if (a[i] !== b[i]) {
      differ++;
      assert.ok(Math.abs(a[i]! - b[i]!) <= 6e-8, `freq_cis[${i}] ${a[i]} vs ${b[i]}`);
    }
  }
  assert.equal(differ, 199, 'known number of 1-ulp differences from torch float32 cos/sin');
  const again = loadLlama2c(out);
  assert.deepEqual(again.config, config);
  for (const [n, w] of weights) sameFloats(again.weights.get(n), w, n);
  // the table function itself
  const fc = llama2cFreqCis(8, 3);
  assert.equal(fc.cos[0], 1);
  assert.equal(fc.sin[4], Math.fround(Math.sin(1)));
});

function tinyConfig(tied: boolean): LlamaConfig {
  return {
    vocabSize: 11, dim: 12, hiddenDim: 7, nLayers: 2, nHeads: 3, nKvHeads: 1, headDim: 4, maxSeqLen: 6,
    normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: tied, qkvBias: false,
  };
}
function randomWeights(c: LlamaConfig, seed: number): Map<string, Float32Array> {
  const rng = new Rng(seed);
  const w = new Map<string, Float32Array>();
  for (const [n, s] of parameterShapes(c)) w.set(n, randArray(rng, s.reduce((a, b) => a * b, 1)));
  return w;
}

test('untied classifier and GQA: save/load round trip, negative vocab_size in header', () => {
  for (const tied of [false, true]) {
    const c = tinyConfig(tied);
    const w = randomWeights(c, tied ? 1 : 2);
    const p = join(tmp, `tiny-${tied}.bin`);
    saveLlama2c(p, c, w);
    const buf = readFileSync(p);
    assert.equal(buf.readInt32LE(20), tied ? 11 : -11);
    const hd = c.headDim;
    const expectedFloats = 11 * 12 + 2 * (12 + 12 * 12 + 2 * 4 * 12 + 12 * 12 + 12 + 3 * 7 * 12) + 12 + 2 * 6 * (hd / 2) + (tied ? 0 : 11 * 12);
    assert.equal(buf.length, 28 + 4 * expectedFloats);
    const r = loadLlama2c(p);
    assert.deepEqual(r.config, c);
    assert.deepEqual([...r.weights.keys()].sort(), [...w.keys()].sort());
    for (const [n, a] of w) sameFloats(r.weights.get(n), a, n);
  }
});

/** Writes a v1 ("ak42") file from HF-named tensors, as llama2.c export.py version1_export would. */
function writeV1(path: string, c: LlamaConfig, w: Map<string, Float32Array>, opts: { version?: number; sharedByte?: number } = {}): void {
  const header = Buffer.alloc(256);
  header.writeUInt32LE(0x616b3432, 0);
  header.writeInt32LE(opts.version ?? 1, 4);
  [c.dim, c.hiddenDim, c.nLayers, c.nHeads, c.nKvHeads, c.vocabSize, c.maxSeqLen].forEach((v, i) => header.writeInt32LE(v, 8 + 4 * i));
  header.writeUInt8(opts.sharedByte ?? (c.tiedEmbeddings ? 1 : 0), 36);
  const parts: Buffer[] = [header];
  const add = (a: Float32Array): void => {
    parts.push(Buffer.from(a.buffer, a.byteOffset, a.byteLength));
  };
  const L = c.nLayers;
  const per = (s: string): void => {
    for (let i = 0; i < L; i++) {
      const n = `model.layers.${i}.${s}`;
      let a = w.get(n)!;
      if (s.includes('q_proj')) a = rotateHalfToInterleaved(a, c.nHeads, c.headDim, c.dim);
      if (s.includes('k_proj')) a = rotateHalfToInterleaved(a, c.nKvHeads, c.headDim, c.dim);
      add(a);
    }
  };
  per('input_layernorm.weight');
  per('post_attention_layernorm.weight');
  add(w.get('model.norm.weight')!);
  add(w.get('model.embed_tokens.weight')!);
  for (const s of ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj', 'self_attn.o_proj', 'mlp.gate_proj', 'mlp.down_proj', 'mlp.up_proj']) per(s + '.weight');
  if (!c.tiedEmbeddings) add(w.get('lm_head.weight')!);
  writeFileSync(path, Buffer.concat(parts));
}

test('v1 format: same tensors as the legacy file (stories260K and untied tiny model)', () => {
  const legacy = loadLlama2c(STORIES);
  const p = join(tmp, 'stories_v1.bin');
  writeV1(p, legacy.config, legacy.weights);
  assert.equal(readFileSync(p).length, 256 + 4 * (264128 - 2 * 512 * 4), 'same size as the real checkpoint_v1.bin (1040384)');
  assert.equal(readFileSync(p).length, 1040384);
  const v1 = loadLlama2c(p);
  assert.deepEqual(v1.config, legacy.config);
  for (const [n, a] of legacy.weights) sameFloats(v1.weights.get(n), a, n);

  const c = tinyConfig(false);
  const w = randomWeights(c, 3);
  const p2 = join(tmp, 'tiny_v1.bin');
  writeV1(p2, c, w);
  const r = loadLlama2c(p2);
  assert.deepEqual(r.config, c);
  for (const [n, a] of w) sameFloats(r.weights.get(n), a, n);

  const p3 = join(tmp, 'tiny_v2.bin');
  writeV1(p3, c, w, { version: 2 });
  expectError(() => loadLlama2c(p3), p3, /version 2/);
  writeV1(p3, c, w, { sharedByte: 7 });
  expectError(() => loadLlama2c(p3), p3, /shared_classifier/);
  writeV1(p3, c, w);
  const full = readFileSync(p3);
  for (const cut of [5, 100, 255, 256, full.length - 1]) {
    writeFileSync(p3, full.subarray(0, cut));
    expectError(() => loadLlama2c(p3), p3);
  }
});

test('missing, unreadable, truncated files -> MixtuneError naming the file', () => {
  const missing = join(tmp, 'does-not-exist.bin');
  expectError(() => loadLlama2c(missing), missing, /ENOENT/);
  expectError(() => loadLlama2c(tmp), tmp);
  const orig = readFileSync(STORIES);
  const p = join(tmp, 'truncated.bin');
  for (const cut of [0, 3, 4, 27, 28, 29, 1000, 4 * 7 + 4 * 512 * 64 + 2, orig.length - 4 * 2048, orig.length - 4, orig.length - 1]) {
    writeFileSync(p, orig.subarray(0, cut));
    const msg = expectError(() => loadLlama2c(p), p);
    if (cut >= 28) assert.match(msg, new RegExp(`implies ${orig.length} bytes, but the file has ${cut} bytes`));
    else assert.match(msg, /shorter than the 28-byte header/);
  }
  writeFileSync(p, Buffer.concat([orig, Buffer.alloc(4)]));
  expectError(() => loadLlama2c(p), p, /implies 1056540 bytes, but the file has 1056544 bytes/);
  writeFileSync(p, Buffer.concat([orig, Buffer.alloc(1)]));
  expectError(() => loadLlama2c(p), p, /trailing/);
});

test('corrupted headers -> MixtuneError', () => {
  const orig = readFileSync(STORIES);
  const p = join(tmp, 'badheader.bin');
  const cases: [number, number, RegExp][] = [
    [0, -64, /dim is -64/],
    [0, 0, /dim is 0/],
    [1, -1, /hidden_dim/],
    [2, 0, /n_layers is 0/],
    [3, 0, /n_heads is 0/],
    [3, 7, /n_heads \(7\) does not divide dim \(64\)/],
    [4, 3, /n_kv_heads \(3\) does not divide n_heads \(8\)/],
    [4, -4, /n_kv_heads is -4/],
    [3, 64, /head size .* odd/], // head size 1
    [5, 0, /vocab_size is 0/],
    [6, -512, /seq_len is -512/],
    [0, 0x40000000, /implies/],
    [1, 0x7fffffff, /implies \d+ bytes/],
    [2, 0x7fffffff, /implies/],
    [5, -0x80000000, /implies/],
    [6, 0x40000000, /implies/],
    [5, -512, /implies/], // claims an unshared classifier that is not there
  ];
  for (const [field, value, re] of cases) {
    const b = Buffer.from(orig);
    b.writeInt32LE(value, 4 * field);
    writeFileSync(p, b);
    expectError(() => loadLlama2c(p), p, re);
  }
});

test('NaN / Inf in a tensor -> MixtuneError naming the tensor', () => {
  const orig = readFileSync(STORIES);
  const p = join(tmp, 'nan.bin');
  const dim = 64;
  const V = 512;
  const L = 5;
  const kv = 32;
  // layer 2 of wk, element 5
  const wkStart = 28 + 4 * (V * dim + L * dim + L * dim * dim);
  const b = Buffer.from(orig);
  b.writeFloatLE(NaN, wkStart + 4 * (2 * kv * dim + 5));
  writeFileSync(p, b);
  expectError(() => loadLlama2c(p), p, /model\.layers\.2\.self_attn\.k_proj\.weight \(llama2\.c wk\).*NaN/);
  const b2 = Buffer.from(orig);
  b2.writeFloatLE(-Infinity, 28 + 4 * 17);
  writeFileSync(p, b2);
  expectError(() => loadLlama2c(p), p, /model\.embed_tokens\.weight .*\(-Infinity\) at element 17/);
  // non-finite values in the (unused) freq_cis tables are ignored
  const b3 = Buffer.from(orig);
  b3.writeFloatLE(NaN, orig.length - 8);
  writeFileSync(p, b3);
  assert.equal(loadLlama2c(p).config.dim, 64);
});

test('saveLlama2c rejects what the format cannot hold', () => {
  const c = tinyConfig(true);
  const w = randomWeights(c, 4);
  const p = join(tmp, 'reject.bin');
  expectError(() => saveLlama2c(p, { ...c, qkvBias: true }, w), p, /bias/);
  expectError(() => saveLlama2c(p, { ...c, normEps: 1e-6 }, w), p, /normEps/);
  expectError(() => saveLlama2c(p, { ...c, ropeTheta: 1e6 }, w), p, /ropeTheta/);
  const w2 = new Map(w);
  w2.delete('model.norm.weight');
  expectError(() => saveLlama2c(p, c, w2), p, /missing tensor model\.norm\.weight/);
  const w3 = new Map(w);
  w3.set('model.norm.weight', new Float32Array(3));
  expectError(() => saveLlama2c(p, c, w3), p, /model\.norm\.weight has 3 elements/);
  const w4 = new Map(w);
  w4.set('lm_head.weight', new Float32Array(11 * 12));
  expectError(() => saveLlama2c(p, c, w4), p, /unexpected tensor lm_head\.weight/);
  assert.equal(existsSync(p), false);
  const bad = join(tmp, 'no-such-dir', 'x.bin');
  expectError(() => saveLlama2c(bad, c, w), bad, /ENOENT/);
});

test('end to end: loaded weights with HF rotate-half RoPE reproduce llama2.c greedy output', async () => {
  // Plain fp64 forward pass written for this test only (the real model lives in src/model/).
  const { Llama2cTokenizer } = await import('../src/io/llama2c-tokenizer.js');
  const { config: c, weights } = loadLlama2c(STORIES);
  const tok = Llama2cTokenizer.load(join(FIX, 'stories260K', 'tok512.bin'), c.vocabSize);
  const W = (n: string): Float32Array => weights.get(n)!;
  const { dim: D, headDim: hd, nHeads: H, nKvHeads: KV, hiddenDim: HID } = c;
  const matvec = (w: Float32Array, x: ArrayLike<number>, rows: number, cols: number): Float64Array => {
    const o = new Float64Array(rows);
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let k = 0; k < cols; k++) s += w[r * cols + k]! * x[k]!;
      o[r] = s;
    }
    return o;
  };
  const rms = (x: Float64Array, w: Float32Array): Float64Array => {
    let s = 0;
    for (const v of x) s += v * v;
    const inv = 1 / Math.sqrt(s / x.length + c.normEps);
    return x.map((v, i) => v * inv * w[i]!);
  };
  const rope = (v: Float64Array, nh: number, pos: number): void => {
    for (let h = 0; h < nh; h++) {
      for (let j = 0; j < hd / 2; j++) {
        const f = pos / Math.pow(c.ropeTheta, (2 * j) / hd);
        const [a, b] = [v[h * hd + j]!, v[h * hd + j + hd / 2]!];
        v[h * hd + j] = a * Math.cos(f) - b * Math.sin(f);
        v[h * hd + j + hd / 2] = a * Math.sin(f) + b * Math.cos(f);
      }
    }
  };
  const kc: Float64Array[][] = Array.from({ length: c.nLayers }, () => []);
  const vc: Float64Array[][] = Array.from({ length: c.nLayers }, () => []);
  const forward = (t: number, pos: number): Float64Array => {
    let x = Float64Array.from(W('model.embed_tokens.weight').subarray(t * D, (t + 1) * D));
    for (let l = 0; l < c.nLayers; l++) {
      const p = `model.layers.${l}.`;
      const xb = rms(x, W(p + 'input_layernorm.weight'));
      const q = matvec(W(p + 'self_attn.q_proj.weight'), xb, H * hd, D);
      const k = matvec(W(p + 'self_attn.k_proj.weight'), xb, KV * hd, D);
      const v = matvec(W(p + 'self_attn.v_proj.weight'), xb, KV * hd, D);
      rope(q, H, pos);
      rope(k, KV, pos);
      kc[l]!.push(k);
      vc[l]!.push(v);
      const att = new Float64Array(H * hd);
      for (let h = 0; h < H; h++) {
        const g = Math.floor(h / (H / KV));
        const sc = kc[l]!.map((kk) => {
          let s = 0;
          for (let i = 0; i < hd; i++) s += q[h * hd + i]! * kk[g * hd + i]!;
          return s / Math.sqrt(hd);
        });
        const m = Math.max(...sc);
        const e = sc.map((s) => Math.exp(s - m));
        const z = e.reduce((a, b) => a + b);
        e.forEach((w, ti) => {
          for (let i = 0; i < hd; i++) att[h * hd + i]! += (w / z) * vc[l]![ti]![g * hd + i]!;
        });
      }
      const o = matvec(W(p + 'self_attn.o_proj.weight'), att, D, H * hd);
      x = x.map((val, i) => val + o[i]!);
      const xb2 = rms(x, W(p + 'post_attention_layernorm.weight'));
      const a = matvec(W(p + 'mlp.gate_proj.weight'), xb2, HID, D);
      const b = matvec(W(p + 'mlp.up_proj.weight'), xb2, HID, D);
      const hb = a.map((val, i) => (val / (1 + Math.exp(-val))) * b[i]!);
      const d = matvec(W(p + 'mlp.down_proj.weight'), hb, D, HID);
      x = x.map((val, i) => val + d[i]!);
    }
    return matvec(W('model.embed_tokens.weight'), rms(x, W('model.norm.weight')), c.vocabSize, D);
  };
  const ids = [1];
  for (let pos = 0; pos < 200; pos++) {
    const logits = forward(ids[ids.length - 1]!, pos);
    let best = 0;
    for (let i = 1; i < logits.length; i++) if (logits[i]! > logits[best]!) best = i;
    if (best === 1) break; // llama2.c stops at BOS
    ids.push(best);
  }
  assert.equal(tok.decode(ids), readFileSync(join(FIX, 'stories260K', 'expected_greedy_200.txt'), 'utf8'));
});
