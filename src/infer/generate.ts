// Autoregressive generation with a KV cache (or, for testing, full recomputation each step).
//
// `generateSteps` is the decoding loop as a generator: it yields each new token id as soon as it is
// chosen and computes the next one only when asked, so a caller that must stay responsive (the HTTP
// server: streaming, cancellation) drives it one token at a time; `generate` drives it to the end.
import type { LlamaModel } from '../model/llama.js';
import { Rng } from '../util/rng.js';
import { type SamplingOptions, argmax, checkFiniteLogits, sampleToken } from './sample.js';

export interface GenerateOptions extends Partial<SamplingOptions> {
  maxNewTokens: number;
  seed?: number;
  /** Generation stops after producing one of these ids (the stop id is returned too). */
  stopIds?: readonly number[];
  /** false: recompute the whole sequence every step (slow; the test oracle for the cache). */
  useCache?: boolean;
  /** Called with each new token id as soon as it is chosen. */
  onToken?: (id: number) => void;
}

export interface GenerateResult {
  tokens: number[];
  stoppedBy: 'stop' | 'length' | 'context';
}

/** Decoding steps: yields every new token id; returns the result when generation ends. */
export type DecodeSteps = Generator<number, GenerateResult, void>;

export function generate(model: LlamaModel, prompt: readonly number[], opts: GenerateOptions): GenerateResult {
  return drive(generateSteps(model, prompt, opts), opts.onToken);
}

/** Runs decoding steps to the end, calling onToken with every token. */
export function drive(steps: DecodeSteps, onToken?: (id: number) => void): GenerateResult {
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    onToken?.(r.value);
  }
}

/** A token picker: greedy (temperature 0) or sampled with the options' temperature / top-k / top-p. */
export function tokenPicker(model: LlamaModel, opts: Partial<SamplingOptions> & { seed?: number }): (logits: Float32Array, index: number) => number {
  const sampling: SamplingOptions = { temperature: opts.temperature ?? 0, topK: opts.topK ?? 0, topP: opts.topP ?? 1 };
  const rng = new Rng(opts.seed ?? 0);
  return (logits, index) => {
    checkFiniteLogits(logits, model.source, `at generated token ${index + 1}`);
    return sampling.temperature <= 0 ? argmax(logits) : sampleToken(logits, sampling, rng);
  };
}

export function* generateSteps(model: LlamaModel, prompt: readonly number[], opts: Omit<GenerateOptions, 'onToken'>): DecodeSteps {
  if (prompt.length === 0) throw new Error('generate: the prompt must hold at least one token (e.g. BOS)');
  const pick = tokenPicker(model, opts);
  const stop = new Set(opts.stopIds ?? []);
  const maxLen = model.config.maxSeqLen;
  const out: number[] = [];
  const seq = [...prompt];
  if (seq.length >= maxLen) return { tokens: out, stoppedBy: 'context' };

  // The cache holds what this call can reach, not the model's whole context (128k for Llama 3).
  const cache = opts.useCache === false ? null : model.newCache(Math.min(maxLen, seq.length + Math.max(0, opts.maxNewTokens)));
  let logits = cache ? model.step(Int32Array.from(seq), cache) : lastLogits(model, seq);
  for (let i = 0; i < opts.maxNewTokens; i++) {
    const next = pick(logits, out.length);
    out.push(next);
    seq.push(next);
    yield next;
    if (stop.has(next)) return { tokens: out, stoppedBy: 'stop' };
    if (i + 1 === opts.maxNewTokens) break;
    if (seq.length >= maxLen) return { tokens: out, stoppedBy: 'context' };
    logits = cache ? model.step(Int32Array.of(next), cache) : lastLogits(model, seq);
  }
  return { tokens: out, stoppedBy: 'length' };
}

function lastLogits(model: LlamaModel, seq: number[]): Float32Array {
  const V = model.config.vocabSize;
  const all = model.logits(Int32Array.from(seq));
  return all.slice((seq.length - 1) * V, seq.length * V);
}
