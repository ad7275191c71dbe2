// `mixtune bench generate`: decode tokens/s with the KV cache, greedy, for the real stories260K
// checkpoint and for the reference training config (random weights).
import { join } from 'node:path';
import { LlamaModel } from '../model/llama.js';
import { nativeKernels } from '../tensor/native.js';
import { loadLlama2c } from '../io/llama2c.js';
import { generate } from '../infer/generate.js';
import { currentIsa, numThreads } from '../native.js';
import { sharedDir } from '../util/paths.js';
import { intParams } from './params.js';
import { TRAIN_DEFAULTS, round } from './train.js';

function decodeRate(model: LlamaModel, newTokens: number): Record<string, number> {
  const n = Math.min(newTokens, model.config.maxSeqLen - 1);
  generate(model, [1], { maxNewTokens: 8 }); // warm-up
  const t0 = performance.now();
  const r = generate(model, [1], { maxNewTokens: n });
  const s = (performance.now() - t0) / 1000;
  return { tokens: r.tokens.length, seconds: round(s, 4), tokens_per_s: round(r.tokens.length / s, 1) };
}

export function benchGenerate(params: Record<string, string>): Record<string, unknown> {
  const p = intParams('generate', params, { tokens: 256, ...TRAIN_DEFAULTS });
  const k = nativeKernels();
  const { config, weights } = loadLlama2c(join(sharedDir(), 'fixtures', 'stories260K', 'stories260K.bin'));
  const stories = new LlamaModel(config, k, weights);
  const ref = LlamaModel.random(
    {
      vocabSize: p.vocab, dim: p.dim, hiddenDim: p.ffn, nLayers: p.layers, nHeads: p.heads, nKvHeads: p.kv_heads,
      headDim: p.dim / p.heads, maxSeqLen: p.seq, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: false, qkvBias: false,
    },
    k, 0,
  );
  return {
    bench: 'generate',
    isa: currentIsa(),
    threads: numThreads(),
    stories260K: decodeRate(stories, p.tokens),
    reference: { params: ref.numParams(), ...decodeRate(ref, p.tokens) },
  };
}
