// llama2.c checkpoints: the legacy (v0) .bin format and the v1 "ak42" format (fp32), read into
// mixtune's HF tensor names and HF rotate-half RoPE layout; legacy writer for the way back.
//
// Legacy: 7 little-endian int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
// seq_len; vocab_size < 0 = separate classifier), then fp32: token_embedding[vocab][dim],
// rms_att[L][dim], wq[L][dim][dim], wk[L][kv][dim], wv[L][kv][dim], wo[L][dim][dim],
// rms_ffn[L][dim], w1[L][hidden][dim], w2[L][dim][hidden], w3[L][hidden][dim], rms_final[dim],
// freq_cis_real[seq][hs/2], freq_cis_imag[seq][hs/2], wcls[vocab][dim] (only if vocab_size < 0).
// v1: uint32 magic 0x616b3432, int32 version = 1, the same 7 int32 (vocab_size > 0), uint8
// shared_classifier, zero padding to 256 bytes, then fp32: rms_att[L], rms_ffn[L], rms_final,
// token_embedding, wq[L], wk[L], wv[L], wo[L], w1[L], w2[L], w3[L], wcls (if not shared).
//
// llama2.c applies RoPE to interleaved pairs (2j, 2j+1) of each head; mixtune (like HF) pairs
// j with j + headDim/2. The rows of wq/wk are permuted on load (and back on save).
import { closeSync, fstatSync, openSync, readSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { type LlamaConfig, parameterShapes, validateConfig } from '../model/config.js';
import { MixtuneError } from '../util/errors.js';

const V1_MAGIC = 0x616b3432; // "ak42" read as a little-endian uint32
const V1_HEADER_BYTES = 256;
const LEGACY_HEADER_BYTES = 28;
const MAX_TENSOR_ELEMENTS = 2 ** 31 - 1;

function fsError(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  const text: Record<string, string> = { ENOENT: 'no such file', EACCES: 'permission denied', EISDIR: 'is a directory', ENOTDIR: 'a parent is not a directory' };
  return code ? `${text[code] ?? 'I/O error'} (${code})` : (e as Error).message;
}

export interface Llama2cModel {
  config: LlamaConfig;
  weights: Map<string, Float32Array>;
}

/**
 * HF `permute` (convert_llama_weights_to_hf.py): rows of a q/k projection [nHeads*headDim, inDim]
 * from llama2.c/Meta interleaved RoPE pairs to rotate-half: for each head h and j < headDim/2,
 * new row (h, j) = old row (h, 2j), new row (h, j + headDim/2) = old row (h, 2j + 1).
 */
export function interleavedToRotateHalf(rows: Float32Array, nHeads: number, headDim: number, inDim: number): Float32Array {
  return permuteRows(rows, nHeads, headDim, inDim, true);
}

/** Inverse of interleavedToRotateHalf (rotate-half rows back to interleaved pairs). */
export function rotateHalfToInterleaved(rows: Float32Array, nHeads: number, headDim: number, inDim: number): Float32Array {
  return permuteRows(rows, nHeads, headDim, inDim, false);
}

function permuteRows(rows: Float32Array, nHeads: number, headDim: number, inDim: number, toHalf: boolean): Float32Array {
  if (headDim % 2 !== 0 || rows.length !== nHeads * headDim * inDim) {
    throw new RangeError(`permute: ${rows.length} elements is not [${nHeads}*${headDim}, ${inDim}] with even headDim`);
  }
  const out = new Float32Array(rows.length);
  const half = headDim / 2;
  for (let h = 0; h < nHeads; h++) {
    for (let j = 0; j < half; j++) {
      for (let t = 0; t < 2; t++) {
        const half_ = (h * headDim + t * half + j) * inDim; // row (h, j + t*half) in rotate-half layout
        const inter = (h * headDim + 2 * j + t) * inDim; // row (h, 2j + t) in interleaved layout
        if (toHalf) out.set(rows.subarray(inter, inter + inDim), half_);
        else out.set(rows.subarray(half_, half_ + inDim), inter);
      }
    }
  }
  return out;
}

/**
 * The freq_cis tables of a legacy file ([seqLen][headDim/2] cos, then sin), computed in float32
 * steps like llama2.c's model.py precompute_freqs_cis (torch float32). Bit-exactness with torch's
 * vectorized powf/cosf/sinf is not guaranteed (run.c ignores these tables).
 */
export function llama2cFreqCis(headDim: number, seqLen: number, theta = 10000): { cos: Float32Array; sin: Float32Array } {
  const half = headDim / 2;
  const freqs = new Float32Array(half);
  for (let j = 0; j < half; j++) freqs[j] = Math.fround(1 / Math.fround(Math.pow(theta, Math.fround((2 * j) / headDim))));
  const cos = new Float32Array(seqLen * half);
  const sin = new Float32Array(seqLen * half);
  for (let t = 0; t < seqLen; t++) {
    for (let j = 0; j < half; j++) {
      const a = Math.fround(t * freqs[j]!);
      cos[t * half + j] = Math.cos(a);
      sin[t * half + j] = Math.sin(a);
    }
  }
  return { cos, sin };
}

interface Header {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocab: number; // > 0
  seqLen: number;
  shared: boolean;
}

/** One contiguous fp32 block of the file: a stacked llama2.c tensor, split per layer into HF names. */
interface Block {
  src: string; // llama2.c name, for messages
  names: string[] | null; // HF name per layer (or one name); null = skipped (freq_cis)
  perName: number; // elements per name (per layer)
  total: bigint; // exact element count of the block (header values may be absurd)
  rope?: 'q' | 'k';
}

/** Per-layer names; none for absurd layer counts (the size check rejects those before any use). */
function layerNames(L: number, suffix: string): string[] {
  return L > 1e6 ? [] : Array.from({ length: L }, (_, i) => `model.layers.${i}.${suffix}`);
}

function block(src: string, names: string[] | null, count: number, shape: number[], rope?: 'q' | 'k'): Block {
  const perName = shape.reduce((a, b) => a * b, 1);
  const total = shape.reduce((a, b) => a * BigInt(b), BigInt(count));
  return rope ? { src, names, perName, total, rope } : { src, names, perName, total };
}

function blocks(h: Header, version: 0 | 1): Block[] {
  const { dim, hiddenDim: hid, nLayers: L, vocab } = h;
  const hd = dim / h.nHeads;
  const kv = h.nKvHeads * hd;
  const per = (src: string, suffix: string, shape: number[], rope?: 'q' | 'k'): Block => block(src, layerNames(L, suffix), L, shape, rope);
  const emb = block('token_embedding_table', ['model.embed_tokens.weight'], 1, [vocab, dim]);
  const rmsAtt = per('rms_att_weight', 'input_layernorm.weight', [dim]);
  const rmsFfn = per('rms_ffn_weight', 'post_attention_layernorm.weight', [dim]);
  const rmsFinal = block('rms_final_weight', ['model.norm.weight'], 1, [dim]);
  const mats = [
    per('wq', 'self_attn.q_proj.weight', [dim, dim], 'q'),
    per('wk', 'self_attn.k_proj.weight', [kv, dim], 'k'),
    per('wv', 'self_attn.v_proj.weight', [kv, dim]),
    per('wo', 'self_attn.o_proj.weight', [dim, dim]),
  ];
  const ffn = [
    per('w1', 'mlp.gate_proj.weight', [hid, dim]),
    per('w2', 'mlp.down_proj.weight', [dim, hid]),
    per('w3', 'mlp.up_proj.weight', [hid, dim]),
  ];
  const cls = h.shared ? [] : [block('wcls', ['lm_head.weight'], 1, [vocab, dim])];
  if (version === 1) return [rmsAtt, rmsFfn, rmsFinal, emb, ...mats, ...ffn, ...cls];
  const freq = (src: string): Block => block(src, null, 1, [h.seqLen, hd / 2]);
  return [emb, rmsAtt, ...mats, rmsFfn, ...ffn, rmsFinal, freq('freq_cis_real'), freq('freq_cis_imag'), ...cls];
}

function checkHeader(h: Header, fail: (what: string) => never): void {
  const fields: [string, number][] = [
    ['dim', h.dim], ['hidden_dim', h.hiddenDim], ['n_layers', h.nLayers], ['n_heads', h.nHeads],
    ['n_kv_heads', h.nKvHeads], ['vocab_size', h.vocab], ['seq_len', h.seqLen],
  ];
  for (const [k, v] of fields) if (v <= 0) fail(`header field ${k} is ${v}, must be positive`);
  if (h.dim % h.nHeads !== 0) fail(`n_heads (${h.nHeads}) does not divide dim (${h.dim})`);
  if (h.nHeads % h.nKvHeads !== 0) fail(`n_kv_heads (${h.nKvHeads}) does not divide n_heads (${h.nHeads})`);
  if ((h.dim / h.nHeads) % 2 !== 0) fail(`head size dim/n_heads = ${h.dim / h.nHeads} is odd (RoPE needs an even head size)`);
}

/**
 * Reads a llama2.c checkpoint (legacy v0 or v1 fp32) into HF-named fp32 tensors. `configOnly`:
 * check the header and the file size, return the config and no weights.
 */
export function loadLlama2c(path: string, opts: { configOnly?: boolean } = {}): Llama2cModel {
  const fail = (what: string): never => {
    throw new MixtuneError(`${path}: invalid llama2.c checkpoint: ${what}`);
  };
  let fd: number;
  let size: number;
  try {
    fd = openSync(path, 'r');
    const st = fstatSync(fd);
    if (!st.isFile()) {
      closeSync(fd);
      throw Object.assign(new Error('not a regular file'), { code: 'EISDIR' });
    }
    size = st.size;
  } catch (e) {
    throw new MixtuneError(`${path}: cannot read llama2.c checkpoint: ${fsError(e)}`);
  }
  try {
    const readAt = (dst: Uint8Array, pos: number): void => {
      let done = 0;
      while (done < dst.length) {
        const n = readSync(fd, dst, done, Math.min(dst.length - done, 1 << 30), pos + done);
        if (n <= 0) fail(`unexpected end of file at byte ${pos + done}`);
        done += n;
      }
    };
    if (size < 4) fail(`file is ${size} bytes, shorter than the ${LEGACY_HEADER_BYTES}-byte header`);
    const head = new Uint8Array(Math.min(size, V1_HEADER_BYTES));
    readAt(head, 0);
    const dv = new DataView(head.buffer);
    const version: 0 | 1 = dv.getUint32(0, true) === V1_MAGIC ? 1 : 0;
    let h: Header;
    let dataStart: number;
    const ints = (off: number): number[] => Array.from({ length: 7 }, (_, i) => dv.getInt32(off + 4 * i, true));
    if (version === 1) {
      if (size < V1_HEADER_BYTES) fail(`file is ${size} bytes, shorter than the ${V1_HEADER_BYTES}-byte v1 header`);
      const v = dv.getInt32(4, true);
      if (v !== 1) fail(`unsupported llama2.c format version ${v}${v === 2 ? ' (Q8_0 quantized)' : ''}; only legacy (v0) and v1 fp32 files are supported`);
      const [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocab, seqLen] = ints(8) as [number, number, number, number, number, number, number];
      const sharedByte = dv.getUint8(36);
      if (sharedByte > 1) fail(`shared_classifier flag is ${sharedByte}, must be 0 or 1`);
      h = { dim, hiddenDim, nLayers, nHeads, nKvHeads, vocab, seqLen, shared: sharedByte === 1 };
      dataStart = V1_HEADER_BYTES;
    } else {
      if (size < LEGACY_HEADER_BYTES) fail(`file is ${size} bytes, shorter than the ${LEGACY_HEADER_BYTES}-byte header`);
      const [dim, hiddenDim, nLayers, nHeads, nKvHeads, vocab, seqLen] = ints(0) as [number, number, number, number, number, number, number];
      h = { dim, hiddenDim, nLayers, nHeads, nKvHeads, vocab: Math.abs(vocab), seqLen, shared: vocab > 0 };
      dataStart = LEGACY_HEADER_BYTES;
    }
    checkHeader(h, fail);
    const plan = blocks(h, version);
    let expected = BigInt(dataStart);
    for (const b of plan) expected += 4n * b.total;
    if (expected !== BigInt(size)) {
      const hdr = `dim=${h.dim} hidden_dim=${h.hiddenDim} n_layers=${h.nLayers} n_heads=${h.nHeads} n_kv_heads=${h.nKvHeads} vocab_size=${h.vocab}${h.shared ? '' : ' (unshared classifier)'} seq_len=${h.seqLen}`;
      fail(`${version === 1 ? 'v1' : 'legacy'} header (${hdr}) implies ${expected} bytes, but the file has ${size} bytes${expected > BigInt(size) ? ' (truncated or wrong header?)' : ' (trailing data or wrong header?)'}`);
    }
    for (const b of plan) if (b.perName > MAX_TENSOR_ELEMENTS) fail(`tensor ${b.src} has ${b.perName} elements, too large`);

    const config: LlamaConfig = {
      vocabSize: h.vocab, dim: h.dim, hiddenDim: h.hiddenDim, nLayers: h.nLayers, nHeads: h.nHeads,
      nKvHeads: h.nKvHeads, headDim: h.dim / h.nHeads, maxSeqLen: h.seqLen, normEps: 1e-5,
      ropeTheta: 10000, tiedEmbeddings: h.shared, qkvBias: false,
    };
    validateConfig(config, path);
    const weights = new Map<string, Float32Array>();
    if (opts.configOnly) return { config, weights };
    let pos = dataStart;
    for (const b of plan) {
      if (!b.names) {
        pos += 4 * b.perName;
        continue;
      }
      for (const name of b.names) {
        let a: Float32Array = new Float32Array(b.perName);
        readAt(new Uint8Array(a.buffer), pos);
        for (let i = 0; i < a.length; i++) {
          if (!Number.isFinite(a[i]!)) {
            fail(`tensor ${name} (llama2.c ${b.src}) has a non-finite value (${a[i]}) at element ${i} (byte offset ${pos + 4 * i})`);
          }
        }
        if (b.rope) a = interleavedToRotateHalf(a, b.rope === 'q' ? h.nHeads : h.nKvHeads, config.headDim, h.dim);
        weights.set(name, a);
        pos += 4 * b.perName;
      }
    }
    return { config, weights };
  } catch (e) {
    if (e instanceof MixtuneError) throw e;
    if (e instanceof RangeError) throw new MixtuneError(`${path}: cannot load llama2.c checkpoint: out of memory (${e.message})`);
    throw new MixtuneError(`${path}: cannot read llama2.c checkpoint: ${fsError(e)}`);
  } finally {
    closeSync(fd);
  }
}

/**
 * Writes a legacy (v0) llama2.c checkpoint: q/k rows back to interleaved pairs, freq_cis tables
 * from llama2cFreqCis, separate classifier (negative vocab_size) when not tied. Atomic (tmp + rename).
 * The format fixes normEps = 1e-5, ropeTheta = 10000, headDim = dim/nHeads and no qkv bias.
 */
export function saveLlama2c(path: string, config: LlamaConfig, weights: Map<string, Float32Array>): void {
  const fail = (what: string): never => {
    throw new MixtuneError(`${path}: cannot save as llama2.c checkpoint: ${what}`);
  };
  validateConfig(config, path);
  if (config.qkvBias) fail('the format has no q/k/v biases');
  if (config.headDim * config.nHeads !== config.dim) fail(`headDim (${config.headDim}) must equal dim/nHeads (${config.dim}/${config.nHeads})`);
  if (config.normEps !== 1e-5) fail(`normEps is ${config.normEps}; llama2.c uses 1e-5`);
  if (config.ropeTheta !== 10000) fail(`ropeTheta is ${config.ropeTheta}; llama2.c uses 10000`);
  for (const [k, v] of [['vocabSize', config.vocabSize], ['dim', config.dim], ['hiddenDim', config.hiddenDim], ['nLayers', config.nLayers], ['maxSeqLen', config.maxSeqLen]] as const) {
    if (v > 0x7fffffff) fail(`${k} (${v}) does not fit in int32`);
  }
  const shapes = parameterShapes(config);
  for (const [name, shape] of shapes) {
    const w = weights.get(name);
    const n = shape.reduce((x, y) => x * y, 1);
    if (!w) fail(`missing tensor ${name}`);
    else if (w.length !== n) fail(`tensor ${name} has ${w.length} elements, expected ${n} ([${shape.join(', ')}])`);
  }
  for (const name of weights.keys()) if (!shapes.has(name)) fail(`unexpected tensor ${name}`);

  const header = Buffer.alloc(LEGACY_HEADER_BYTES);
  const vals = [config.dim, config.hiddenDim, config.nLayers, config.nHeads, config.nKvHeads,
    config.tiedEmbeddings ? config.vocabSize : -config.vocabSize, config.maxSeqLen];
  vals.forEach((v, i) => header.writeInt32LE(v, 4 * i));
  const h: Header = {
    dim: config.dim, hiddenDim: config.hiddenDim, nLayers: config.nLayers, nHeads: config.nHeads,
    nKvHeads: config.nKvHeads, vocab: config.vocabSize, seqLen: config.maxSeqLen, shared: config.tiedEmbeddings,
  };
  const freq = llama2cFreqCis(config.headDim, config.maxSeqLen);
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  let fd: number;
  try {
    fd = openSync(tmp, 'wx');
  } catch (e) {
    throw new MixtuneError(`${path}: cannot write llama2.c checkpoint: ${fsError(e)}`);
  }
  let ok = false;
  try {
    const write = (a: Uint8Array): void => {
      let done = 0;
      while (done < a.length) done += writeSync(fd, a, done, Math.min(a.length - done, 1 << 30));
    };
    const f32 = (a: Float32Array): Uint8Array => new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
    write(header);
    for (const b of blocks(h, 0)) {
      if (!b.names) {
        write(f32(b.src === 'freq_cis_real' ? freq.cos : freq.sin));
        continue;
      }
      for (const name of b.names) {
        let a: Float32Array = weights.get(name)!;
        if (b.rope) a = rotateHalfToInterleaved(a, b.rope === 'q' ? config.nHeads : config.nKvHeads, config.headDim, config.dim);
        write(f32(a));
      }
    }
    closeSync(fd);
    renameSync(tmp, path);
    ok = true;
  } catch (e) {
    if (e instanceof MixtuneError) throw e;
    throw new MixtuneError(`${path}: cannot write llama2.c checkpoint: ${fsError(e)}`);
  } finally {
    if (!ok) {
      try {
        closeSync(fd);
      } catch {
        /* already closed */
      }
      try {
        unlinkSync(tmp);
      } catch {
        /* not created */
      }
    }
  }
}
