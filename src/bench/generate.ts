// `mixtune bench generate`: decode tokens/s with the KV cache, greedy, for the real stories260K
// checkpoint and for the reference training config (random weights). `peer=llamacpp` also runs
// llama.cpp on the f32 GGUF of both models (generate-llamacpp.ts) and reports ratio_vs_llamacpp.
import { join } from 'node:path';
import { LlamaModel } from '../model/llama.js';
import { nativeKernels } from '../tensor/native.js';
import { loadLlama2c } from '../io/llama2c.js';
import { generate } from '../infer/generate.js';
import { currentIsa, numThreads } from '../native.js';
import { sharedDir } from '../util/paths.js';
import { intParams } from './params.js';
import { TRAIN_DEFAULTS, round } from './train.js';
import { MixtuneError } from '../util/errors.js';
import { Llama2cTokenizer } from '../io/llama2c-tokenizer.js';
import { ggufVocabFromTokenizer } from '../io/gguf-vocab.js';
import { compareDecode, placeholderVocab, withLlamaCpp } from './generate-llamacpp.js';

function decodeRate(model: LlamaModel, newTokens: number): { tokens: number; seconds: number; tokens_per_s: number } {
  const n = Math.min(newTokens, model.config.maxSeqLen - 1);
  generate(model, [1], { maxNewTokens: 8 }); // warm-up
  const t0 = performance.now();
  const r = generate(model, [1], { maxNewTokens: n });
  const s = (performance.now() - t0) / 1000;
  return { tokens: r.tokens.length, seconds: round(s, 4), tokens_per_s: round(r.tokens.length / s, 1) };
}

export function benchGenerate(params: Record<string, string>): Record<string, unknown> | Promise<Record<string, unknown>> {
  const p = intParams('generate', params, { tokens: 256, repeats: 3, ...TRAIN_DEFAULTS }, ['peer']);
  const peer = params.peer ?? '0';
  if (!['0', 'llamacpp'].includes(peer)) throw new MixtuneError(`bench generate: peer must be 0 or llamacpp, got '${peer}'`);
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
  if (peer === 'llamacpp') {
    const tok = Llama2cTokenizer.load(join(sharedDir(), 'fixtures', 'stories260K', 'tok512.bin'), config.vocabSize);
    return withLlamaCpp(async (cpp) => {
      const s = await compareDecode(cpp, stories, ggufVocabFromTokenizer(tok, config.vocabSize), p.tokens, decodeRate, p.repeats);
      const r = await compareDecode(cpp, ref, placeholderVocab(ref.config.vocabSize), p.tokens, decodeRate, p.repeats);
      return {
        bench: 'generate',
        peer: `llama.cpp via node-llama-cpp ${cpp.version} (f32 GGUF, f32 KV cache)`,
        isa: currentIsa(),
        tokens: p.tokens,
        repeats: p.repeats,
        stories260K: s,
        reference: { params: ref.numParams(), ...r },
        ratio_vs_llamacpp: { stories260K: s.ratio_vs_llamacpp, reference: r.ratio_vs_llamacpp },
      };
    });
  }
  return {
    bench: 'generate',
    isa: currentIsa(),
    threads: numThreads(),
    stories260K: decodeRate(stories, p.tokens),
    reference: { params: ref.numParams(), ...decodeRate(ref, p.tokens) },
  };
}
