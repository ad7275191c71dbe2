// `mixtune bench generate peer=llamacpp`: mixtune's greedy decode speed against llama.cpp's
// (node-llama-cpp, prebuilt CPU binary) on the f32 GGUF export of the same model, in the same run:
// same prompt (BOS), same number of new tokens, each engine at 1 and 2 threads, best of the two;
// each rate is the best of `repeats` runs (the machine may be shared).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { LlamaModel } from '../model/llama.js';
import { numThreads, setNumThreads } from '../native.js';
import { exportGguf } from '../io/gguf-export.js';
import { type GgufVocab, TokenType } from '../io/gguf-vocab.js';
import type { GgufString } from '../io/gguf.js';
import { MixtuneError } from '../util/errors.js';
import { openLlamaCpp, type LlamaCppPeer } from './llamacpp.js';
import { round } from './train.js';

type Rate = { tokens: number; seconds: number; tokens_per_s: number };
const THREADS = [1, 2] as const;

/**
 * A SentencePiece-style vocabulary of `n` tokens for a model without a tokenizer (the random
 * reference config): <unk> <s> </s>, the 256 byte tokens, then placeholder pieces. Decoding speed
 * does not depend on it; llama.cpp only needs one token per embedding row.
 */
export function placeholderVocab(n: number): GgufVocab {
  if (n < 259) throw new MixtuneError(`placeholder vocabulary: need at least 259 tokens, got ${n}`);
  const tokens: GgufString[] = ['<unk>', '<s>', '</s>'];
  const types = new Int32Array(n).fill(TokenType.NORMAL);
  types[0] = TokenType.UNKNOWN;
  types[1] = TokenType.CONTROL;
  types[2] = TokenType.CONTROL;
  for (let b = 0; b < 256; b++) {
    tokens.push(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
    types[3 + b] = TokenType.BYTE;
  }
  for (let i = tokens.length; i < n; i++) tokens.push(`\u2581tok${i}`);
  return {
    model: 'llama', pre: 'default', tokens, scores: new Float32Array(n), types,
    bosId: 1, eosId: 2, unkId: 0, padId: -1, addBos: true, addEos: false, addSpacePrefix: true,
  };
}

export interface EngineRates {
  threads_1: Rate;
  threads_2: Rate;
  best_tokens_per_s: number;
}

export interface DecodeComparison {
  mixtune: EngineRates;
  llamacpp: EngineRates;
  ratio_vs_llamacpp: number;
}

/** mixtune vs llama.cpp decode speed of `model` (exported with `vocab` to a temporary f32 GGUF). */
export async function compareDecode(
  peer: LlamaCppPeer, model: LlamaModel, vocab: GgufVocab, newTokens: number,
  mixtuneRate: (m: LlamaModel, n: number) => Rate, repeats = 1,
): Promise<DecodeComparison> {
  const bestOf = async (run: () => Rate | Promise<Rate>): Promise<Rate> => {
    let best: Rate | null = null;
    for (let i = 0; i < repeats; i++) {
      const r = await run();
      if (!best || r.tokens_per_s > best.tokens_per_s) best = r;
    }
    return best!;
  };
  const n = Math.min(newTokens, model.config.maxSeqLen - 1);
  const ours: Record<string, Rate> = {};
  const before = numThreads();
  try {
    for (const t of THREADS) {
      setNumThreads(t);
      ours[`threads_${t}`] = await bestOf(() => mixtuneRate(model, n));
    }
  } finally {
    setNumThreads(before);
  }
  const dir = mkdtempSync(join(tmpdir(), 'mixtune-bench-gguf-'));
  const theirs: Record<string, Rate> = {};
  try {
    const path = join(dir, 'model.gguf');
    const weights = new Map<string, Float32Array>();
    for (const [name, t] of model.params) weights.set(name, t.data);
    exportGguf(path, { config: model.config, weights }, vocab, { dtype: 'f32', name: 'bench' });
    const cpp = await peer.load(path, { contextSize: model.config.maxSeqLen });
    try {
      for (const t of THREADS) theirs[`threads_${t}`] = await bestOf(() => cpp.decodeRate([vocab.bosId], n, t));
    } finally {
      await cpp.dispose();
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  for (const t of THREADS) {
    const a = ours[`threads_${t}`]!.tokens;
    const b = theirs[`threads_${t}`]!.tokens;
    if (a !== b) throw new MixtuneError(`bench generate: mixtune decoded ${a} tokens but llama.cpp ${b}`);
  }
  const best = (r: Record<string, Rate>): number => Math.max(...Object.values(r).map((x) => x.tokens_per_s));
  const mb = best(ours);
  const lb = best(theirs);
  return {
    mixtune: { threads_1: ours.threads_1!, threads_2: ours.threads_2!, best_tokens_per_s: mb },
    llamacpp: { threads_1: theirs.threads_1!, threads_2: theirs.threads_2!, best_tokens_per_s: lb },
    ratio_vs_llamacpp: round(mb / lb, 3),
  };
}

export async function withLlamaCpp<T>(fn: (peer: LlamaCppPeer) => Promise<T>): Promise<T> {
  let peer: LlamaCppPeer;
  try {
    peer = await openLlamaCpp();
  } catch (e) {
    throw new MixtuneError(`bench generate peer=llamacpp: ${(e as Error).message}`);
  }
  try {
    return await fn(peer);
  } finally {
    await peer.dispose();
  }
}
