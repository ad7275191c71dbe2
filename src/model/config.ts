import { MixtuneError } from '../util/errors.js';
// Architecture hyper-parameters of a Llama-family decoder (Llama, Mistral, Qwen2).
export interface LlamaConfig {
  vocabSize: number;
  dim: number; // hidden size
  hiddenDim: number; // MLP intermediate size
  nLayers: number;
  nHeads: number;
  nKvHeads: number; // grouped-query attention: nHeads % nKvHeads === 0
  headDim: number; // usually dim / nHeads
  maxSeqLen: number;
  normEps: number; // RMSNorm epsilon
  ropeTheta: number;
  tiedEmbeddings: boolean; // lm_head shares model.embed_tokens.weight
  qkvBias: boolean; // Qwen2: q/k/v projections have biases
  ropeScaling?: RopeScaling;
}

/** RoPE frequency scaling (transformers' rope_scaling), applied to the inverse frequencies. */
export type RopeScaling =
  | { type: 'linear'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPositionEmbeddings: number };

/**
 * Parameter names and shapes follow Hugging Face `transformers` exactly (row-major [out, in]
 * for linear weights, q/k rows in the rotate-half RoPE layout):
 *   model.embed_tokens.weight [vocab, dim]
 *   model.layers.{i}.input_layernorm.weight [dim]
 *   model.layers.{i}.self_attn.q_proj.weight [nHeads*headDim, dim] (+ .bias when qkvBias)
 *   model.layers.{i}.self_attn.k_proj.weight [nKvHeads*headDim, dim] (+ .bias)
 *   model.layers.{i}.self_attn.v_proj.weight [nKvHeads*headDim, dim] (+ .bias)
 *   model.layers.{i}.self_attn.o_proj.weight [dim, nHeads*headDim]
 *   model.layers.{i}.post_attention_layernorm.weight [dim]
 *   model.layers.{i}.mlp.gate_proj.weight [hiddenDim, dim]   (llama2.c w1)
 *   model.layers.{i}.mlp.up_proj.weight [hiddenDim, dim]     (llama2.c w3)
 *   model.layers.{i}.mlp.down_proj.weight [dim, hiddenDim]   (llama2.c w2)
 *   model.norm.weight [dim]
 *   lm_head.weight [vocab, dim] (absent when tiedEmbeddings)
 */
export function parameterShapes(c: LlamaConfig): Map<string, number[]> {
  const m = new Map<string, number[]>();
  const q = c.nHeads * c.headDim;
  const kv = c.nKvHeads * c.headDim;
  m.set('model.embed_tokens.weight', [c.vocabSize, c.dim]);
  for (let i = 0; i < c.nLayers; i++) {
    const p = `model.layers.${i}.`;
    m.set(p + 'input_layernorm.weight', [c.dim]);
    m.set(p + 'self_attn.q_proj.weight', [q, c.dim]);
    m.set(p + 'self_attn.k_proj.weight', [kv, c.dim]);
    m.set(p + 'self_attn.v_proj.weight', [kv, c.dim]);
    if (c.qkvBias) {
      m.set(p + 'self_attn.q_proj.bias', [q]);
      m.set(p + 'self_attn.k_proj.bias', [kv]);
      m.set(p + 'self_attn.v_proj.bias', [kv]);
    }
    m.set(p + 'self_attn.o_proj.weight', [c.dim, q]);
    m.set(p + 'post_attention_layernorm.weight', [c.dim]);
    m.set(p + 'mlp.gate_proj.weight', [c.hiddenDim, c.dim]);
    m.set(p + 'mlp.up_proj.weight', [c.hiddenDim, c.dim]);
    m.set(p + 'mlp.down_proj.weight', [c.dim, c.hiddenDim]);
  }
  m.set('model.norm.weight', [c.dim]);
  if (!c.tiedEmbeddings) m.set('lm_head.weight', [c.vocabSize, c.dim]);
  return m;
}

export function validateConfig(c: LlamaConfig, source: string): void {
  const bad = (what: string): never => {
    throw new MixtuneError(`${source}: invalid model config: ${what}`);
  };
  for (const k of ['vocabSize', 'dim', 'hiddenDim', 'nLayers', 'nHeads', 'nKvHeads', 'headDim', 'maxSeqLen'] as const) {
    const v = c[k];
    if (!Number.isInteger(v) || v <= 0) bad(`${k} must be a positive integer, got ${v}`);
  }
  if (c.nHeads % c.nKvHeads !== 0) bad(`nHeads (${c.nHeads}) must be a multiple of nKvHeads (${c.nKvHeads})`);
  if (c.headDim % 2 !== 0) bad(`headDim (${c.headDim}) must be even for RoPE`);
  if (!(c.normEps > 0)) bad(`normEps must be > 0`);
  if (!(c.ropeTheta > 0)) bad(`ropeTheta must be > 0`);
}
