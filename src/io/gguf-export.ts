// A mixtune model (Llama / Mistral / Qwen2) + its tokenizer as a GGUF v3 file that llama.cpp loads.
//
// Architectures: `llama` (Llama, Mistral: no q/k/v bias) and `qwen2` (q/k/v bias). Tensor names
// are llama.cpp's (token_embd, blk.N.attn_norm / attn_q / attn_k / attn_v / attn_output /
// ffn_norm / ffn_gate / ffn_up / ffn_down, output_norm, output; output is left out when the
// embeddings are tied, and llama.cpp then reuses token_embd).
//
// RoPE layout: mixtune keeps q/k rows in HF's rotate-half layout (pairs j, j + headDim/2).
// llama.cpp's `llama` architecture rotates interleaved pairs (2j, 2j+1), as Meta's and llama2.c's
// weights do, so (like llama.cpp's convert_hf_to_gguf.py) q/k rows are permuted back to the
// interleaved order. Its `qwen2` architecture uses NEOX (rotate-half) RoPE: no permutation.
//
// dtypes: f32 keeps every tensor in float32. f16 and q8_0 store the 2-D weights as F16 / Q8_0 and
// keep the 1-D norms and biases in F32 (as llama.cpp's converter does); a q8_0 tensor whose rows do
// not hold a multiple of 32 values falls back to F16.
import type { LlamaConfig } from '../model/config.js';
import { parameterShapes } from '../model/config.js';
import { MixtuneError } from '../util/errors.js';
import { GgmlType, type GgufKv, type GgufTensorToWrite, GGUF_DEFAULT_ALIGNMENT, Q8_0_BLOCK, writeGguf } from './gguf.js';
import { encodeF16, encodeF32, encodeQ8_0 } from './gguf-quant.js';
import { rotateHalfToInterleaved } from './llama2c.js';
import { type GgufVocab, vocabMetadata } from './gguf-vocab.js';

export type GgufDtype = 'f32' | 'f16' | 'q8_0';
export const GGUF_DTYPES: readonly GgufDtype[] = ['f32', 'f16', 'q8_0'];

/** llama.cpp's general.file_type (LLAMA_FTYPE_*) per dtype. */
const FILE_TYPE: Record<GgufDtype, number> = { f32: 0, f16: 1, q8_0: 7 };

export type GgufArch = 'llama' | 'qwen2';

export function ggufArch(config: LlamaConfig): GgufArch {
  return config.qkvBias ? 'qwen2' : 'llama';
}

/** llama.cpp name of a mixtune (HF) parameter. */
export function ggufTensorName(hfName: string): string {
  const fixed: Record<string, string> = {
    'model.embed_tokens.weight': 'token_embd.weight',
    'model.norm.weight': 'output_norm.weight',
    'lm_head.weight': 'output.weight',
  };
  if (fixed[hfName]) return fixed[hfName]!;
  const m = /^model\.layers\.(\d+)\.(.+)$/.exec(hfName);
  const per: Record<string, string> = {
    'input_layernorm.weight': 'attn_norm.weight',
    'self_attn.q_proj.weight': 'attn_q.weight',
    'self_attn.k_proj.weight': 'attn_k.weight',
    'self_attn.v_proj.weight': 'attn_v.weight',
    'self_attn.q_proj.bias': 'attn_q.bias',
    'self_attn.k_proj.bias': 'attn_k.bias',
    'self_attn.v_proj.bias': 'attn_v.bias',
    'self_attn.o_proj.weight': 'attn_output.weight',
    'post_attention_layernorm.weight': 'ffn_norm.weight',
    'mlp.gate_proj.weight': 'ffn_gate.weight',
    'mlp.up_proj.weight': 'ffn_up.weight',
    'mlp.down_proj.weight': 'ffn_down.weight',
  };
  if (m && per[m[2]!]) return `blk.${m[1]}.${per[m[2]!]}`;
  throw new MixtuneError(`GGUF export: no llama.cpp name for tensor ${hfName}`);
}

/** The tensor type a parameter of `shape` gets at `dtype`. */
export function ggufTensorType(shape: readonly number[], dtype: GgufDtype): number {
  if (dtype === 'f32' || shape.length < 2) return GgmlType.F32;
  if (dtype === 'q8_0' && shape[shape.length - 1]! % Q8_0_BLOCK === 0) return GgmlType.Q8_0;
  return GgmlType.F16;
}

function encode(data: Float32Array, type: number): Uint8Array {
  if (type === GgmlType.F32) return encodeF32(data);
  if (type === GgmlType.F16) return encodeF16(data);
  return encodeQ8_0(data);
}

/** llama3 rope scaling as llama.cpp's rope_freqs.weight: per frequency, the factor its inverse frequency is divided by. */
export function llama3RopeFreqs(config: LlamaConfig): Float32Array {
  const s = config.ropeScaling;
  if (s?.type !== 'llama3') throw new Error('llama3RopeFreqs: not a llama3-scaled config');
  const half = config.headDim / 2;
  const out = new Float32Array(half);
  const lowWavelen = s.originalMaxPositionEmbeddings / s.lowFreqFactor;
  const highWavelen = s.originalMaxPositionEmbeddings / s.highFreqFactor;
  for (let j = 0; j < half; j++) {
    const f = 1 / Math.fround(Math.pow(config.ropeTheta, Math.fround((2 * j) / config.headDim)));
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < highWavelen) out[j] = 1;
    else if (wavelen > lowWavelen) out[j] = s.factor;
    else {
      const smooth = (s.originalMaxPositionEmbeddings / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
      out[j] = 1 / ((1 - smooth) / s.factor + smooth);
    }
  }
  return out;
}

/** The GGUF tensors of a model (lazy: each is permuted / encoded when written). */
export function ggufTensors(config: LlamaConfig, weights: ReadonlyMap<string, Float32Array>, dtype: GgufDtype): GgufTensorToWrite[] {
  const arch = ggufArch(config);
  const out: GgufTensorToWrite[] = [];
  const shapes = parameterShapes(config);
  for (const [name, shape] of shapes) {
    const data = weights.get(name);
    const n = shape.reduce((a, b) => a * b, 1);
    if (!data) throw new MixtuneError(`GGUF export: missing tensor ${name}`);
    if (data.length !== n) throw new MixtuneError(`GGUF export: tensor ${name} has ${data.length} values, expected ${n} [${shape.join(', ')}]`);
    const type = ggufTensorType(shape, dtype);
    const rope = arch === 'llama' && /self_attn\.(q|k)_proj\.weight$/.exec(name);
    const heads = rope ? (rope[1] === 'q' ? config.nHeads : config.nKvHeads) : 0;
    out.push({
      name: ggufTensorName(name),
      shape,
      type,
      encode: () => encode(rope ? rotateHalfToInterleaved(data, heads, config.headDim, config.dim) : data, type),
    });
    if (name === 'model.embed_tokens.weight' && config.ropeScaling?.type === 'llama3') {
      if (arch !== 'llama') throw new MixtuneError('GGUF export: llama3 rope scaling is only supported for the llama architecture');
      const freqs = llama3RopeFreqs(config);
      out.push({ name: 'rope_freqs.weight', shape: [freqs.length], type: GgmlType.F32, encode: () => encodeF32(freqs) });
    }
  }
  for (const name of weights.keys()) if (!shapes.has(name)) throw new MixtuneError(`GGUF export: unexpected tensor ${name}`);
  return out;
}

/** general.* and <arch>.* metadata of a model. */
export function ggufModelMetadata(config: LlamaConfig, dtype: GgufDtype, name: string): GgufKv[] {
  const arch = ggufArch(config);
  const kv: GgufKv[] = [
    { key: 'general.architecture', kind: 'string', value: arch },
    { key: 'general.type', kind: 'string', value: 'model' },
    { key: 'general.name', kind: 'string', value: name },
    { key: 'general.file_type', kind: 'u32', value: FILE_TYPE[dtype] },
    { key: 'general.quantization_version', kind: 'u32', value: 2 },
    { key: 'general.alignment', kind: 'u32', value: GGUF_DEFAULT_ALIGNMENT },
  ];
  const a = (key: string, kind: 'u32' | 'f32' | 'string', value: number | string): void => {
    kv.push({ key: `${arch}.${key}`, kind, value });
  };
  a('vocab_size', 'u32', config.vocabSize);
  a('context_length', 'u32', config.maxSeqLen);
  a('embedding_length', 'u32', config.dim);
  a('block_count', 'u32', config.nLayers);
  a('feed_forward_length', 'u32', config.hiddenDim);
  a('attention.head_count', 'u32', config.nHeads);
  a('attention.head_count_kv', 'u32', config.nKvHeads);
  a('attention.key_length', 'u32', config.headDim);
  a('attention.value_length', 'u32', config.headDim);
  a('attention.layer_norm_rms_epsilon', 'f32', config.normEps);
  a('rope.dimension_count', 'u32', config.headDim);
  a('rope.freq_base', 'f32', config.ropeTheta);
  if (config.ropeScaling?.type === 'linear') {
    a('rope.scaling.type', 'string', 'linear');
    a('rope.scaling.factor', 'f32', config.ropeScaling.factor);
  }
  return kv;
}

export interface ExportGgufOptions {
  dtype?: GgufDtype;
  /** general.name (default "mixtune model"). */
  name?: string;
  overwrite?: boolean;
}

/** Writes `config` + fp32 `weights` (HF names, mixtune layout) + `vocab` as a GGUF v3 file, atomically. */
export function exportGguf(path: string, src: { config: LlamaConfig; weights: ReadonlyMap<string, Float32Array> }, vocab: GgufVocab, opts: ExportGgufOptions = {}): void {
  const dtype = opts.dtype ?? 'f32';
  if (!GGUF_DTYPES.includes(dtype)) throw new MixtuneError(`GGUF export: dtype must be ${GGUF_DTYPES.join(', ')}, got ${dtype}`);
  if (vocab.tokens.length !== src.config.vocabSize) {
    throw new MixtuneError(`GGUF export: the vocabulary has ${vocab.tokens.length} tokens but the model ${src.config.vocabSize} embedding rows`);
  }
  const tensors = ggufTensors(src.config, src.weights, dtype);
  const metadata = [...ggufModelMetadata(src.config, dtype, opts.name ?? 'mixtune model'), ...vocabMetadata(vocab)];
  writeGguf(path, metadata, tensors, { overwrite: opts.overwrite ?? false });
}
