// Hugging Face config.json <-> LlamaConfig for LlamaForCausalLM, MistralForCausalLM and
// Qwen2ForCausalLM. Options mixtune does not implement are refused by name, never ignored.
import { MixtuneError } from '../util/errors.js';
import type { LlamaConfig, RopeScaling } from '../model/config.js';

const ARCHITECTURES: Record<string, string> = {
  LlamaForCausalLM: 'llama',
  MistralForCausalLM: 'mistral',
  Qwen2ForCausalLM: 'qwen2',
};

type Json = Record<string, unknown>;

export function configFromHf(raw: unknown, source: string): LlamaConfig {
  const fail = (what: string): never => {
    throw new MixtuneError(`${source}: ${what}`);
  };
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('config.json is not a JSON object');
  const j = raw as Json;
  const archs = j.architectures;
  const arch = Array.isArray(archs) && typeof archs[0] === 'string' ? archs[0] : undefined;
  if (arch && !(arch in ARCHITECTURES)) fail(`unsupported architecture ${arch} (supported: ${Object.keys(ARCHITECTURES).join(', ')})`);
  const modelType = typeof j.model_type === 'string' ? j.model_type : arch ? ARCHITECTURES[arch] : undefined;
  if (!modelType || !['llama', 'mistral', 'qwen2'].includes(modelType)) fail(`unsupported model_type ${JSON.stringify(j.model_type)}`);

  const int = (key: string, dflt?: number): number => {
    const v = j[key] ?? dflt;
    if (typeof v !== 'number' || !Number.isInteger(v) || v <= 0) fail(`${key} must be a positive integer, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const num = (key: string, dflt: number): number => {
    const v = j[key] ?? dflt;
    if (typeof v !== 'number' || !(v > 0)) fail(`${key} must be a positive number, got ${JSON.stringify(v)}`);
    return v as number;
  };
  const bool = (key: string, dflt: boolean): boolean => {
    const v = j[key] ?? dflt;
    if (typeof v !== 'boolean') fail(`${key} must be true or false, got ${JSON.stringify(v)}`);
    return v as boolean;
  };

  const dim = int('hidden_size');
  const nHeads = int('num_attention_heads');
  const nKvHeads = int('num_key_value_heads', nHeads);
  const headDim = j.head_dim === undefined || j.head_dim === null ? dim / nHeads : int('head_dim');
  if (!Number.isInteger(headDim)) fail(`hidden_size ${dim} is not divisible by num_attention_heads ${nHeads}`);
  const act = j.hidden_act ?? 'silu';
  if (act !== 'silu') fail(`hidden_act ${JSON.stringify(act)} is not supported (only silu)`);
  if (j.mlp_bias === true) fail('mlp_bias: true is not supported');
  if (modelType !== 'qwen2' && j.attention_bias === true) {
    // Llama's attention_bias also adds a bias to o_proj; mixtune implements Qwen2-style q/k/v bias only.
    fail('attention_bias: true is not supported for Llama/Mistral (only Qwen2 q/k/v biases)');
  }
  // Mistral v0.1 attends over a 4096-token sliding window. mixtune's attention is full causal, so the
  // usable context is capped at the window, where both are the same.
  let window = Infinity;
  if (modelType === 'mistral' && j.sliding_window !== undefined && j.sliding_window !== null) window = int('sliding_window');
  if (modelType === 'qwen2' && j.use_sliding_window === true) fail('use_sliding_window: true is not supported');
  const ropeScaling = parseRopeScaling(j.rope_scaling, fail);
  return {
    vocabSize: int('vocab_size'),
    dim,
    hiddenDim: int('intermediate_size'),
    nLayers: int('num_hidden_layers'),
    nHeads,
    nKvHeads,
    headDim,
    maxSeqLen: Math.min(int('max_position_embeddings', 2048), window),
    normEps: num('rms_norm_eps', 1e-6),
    ropeTheta: num('rope_theta', 10000),
    tiedEmbeddings: bool('tie_word_embeddings', false),
    qkvBias: modelType === 'qwen2',
    ...(ropeScaling ? { ropeScaling } : {}),
  };
}

function parseRopeScaling(v: unknown, fail: (what: string) => never): RopeScaling | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== 'object' || Array.isArray(v)) fail('rope_scaling must be an object or null');
  const r = v as Json;
  const type = r.rope_type ?? r.type;
  const num = (k: string): number => {
    const x = r[k];
    if (typeof x !== 'number' || !(x > 0)) fail(`rope_scaling.${k} must be a positive number`);
    return x as number;
  };
  if (type === 'default') return undefined;
  if (type === 'linear') return { type: 'linear', factor: num('factor') };
  if (type === 'llama3') {
    return {
      type: 'llama3',
      factor: num('factor'),
      lowFreqFactor: num('low_freq_factor'),
      highFreqFactor: num('high_freq_factor'),
      originalMaxPositionEmbeddings: num('original_max_position_embeddings'),
    };
  }
  return fail(`rope_scaling type ${JSON.stringify(type)} is not implemented (supported: linear, llama3)`);
}

/** config.json for a LlamaConfig, in the form transformers writes it. */
export function configToHf(c: LlamaConfig, arch: 'llama' | 'mistral' | 'qwen2' = c.qkvBias ? 'qwen2' : 'llama', extra: Json = {}): Json {
  const archName = { llama: 'LlamaForCausalLM', mistral: 'MistralForCausalLM', qwen2: 'Qwen2ForCausalLM' }[arch];
  const out: Json = {
    architectures: [archName],
    model_type: arch,
    vocab_size: c.vocabSize,
    hidden_size: c.dim,
    intermediate_size: c.hiddenDim,
    num_hidden_layers: c.nLayers,
    num_attention_heads: c.nHeads,
    num_key_value_heads: c.nKvHeads,
    head_dim: c.headDim,
    hidden_act: 'silu',
    max_position_embeddings: c.maxSeqLen,
    rms_norm_eps: c.normEps,
    rope_theta: c.ropeTheta,
    tie_word_embeddings: c.tiedEmbeddings,
    torch_dtype: 'float32',
    ...extra,
  };
  if (arch === 'llama') {
    out.attention_bias = false;
    out.mlp_bias = false;
  }
  if (c.ropeScaling) {
    const s = c.ropeScaling;
    out.rope_scaling =
      s.type === 'linear'
        ? { rope_type: 'linear', factor: s.factor }
        : {
            rope_type: 'llama3', factor: s.factor, low_freq_factor: s.lowFreqFactor, high_freq_factor: s.highFreqFactor,
            original_max_position_embeddings: s.originalMaxPositionEmbeddings,
          };
  }
  return out;
}
