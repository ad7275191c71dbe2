// Next-token selection: greedy argmax, or temperature + top-k + top-p (nucleus) sampling.
import type { Rng } from '../util/rng.js';
import { MixtuneError } from '../util/errors.js';

export interface SamplingOptions {
  /** 0 = greedy (argmax). */
  temperature: number;
  /** Keep the k most likely tokens (0 = off). */
  topK: number;
  /** Keep the smallest set of tokens whose probability mass reaches p (1 = off). */
  topP: number;
}

/** Index of the largest value; the first one on ties (as llama2.c). */
export function argmax(x: ArrayLike<number>): number {
  let best = 0;
  let bv = x[0]!;
  for (let i = 1; i < x.length; i++) {
    if (x[i]! > bv) {
      bv = x[i]!;
      best = i;
    }
  }
  return best;
}

export function sampleToken(logits: Float32Array, opts: SamplingOptions, rng: Rng): number {
  if (opts.temperature <= 0) return argmax(logits);
  const V = logits.length;
  let max = -Infinity;
  for (let i = 0; i < V; i++) if (logits[i]! > max) max = logits[i]!;
  const probs = new Float64Array(V);
  let sum = 0;
  for (let i = 0; i < V; i++) {
    const p = Math.exp((logits[i]! - max) / opts.temperature);
    probs[i] = p;
    sum += p;
  }
  for (let i = 0; i < V; i++) probs[i]! /= sum;

  const useTopK = opts.topK > 0 && opts.topK < V;
  const useTopP = opts.topP > 0 && opts.topP < 1;
  if (!useTopK && !useTopP) return sampleFrom(probs, rng.float());

  // Candidates sorted by probability (descending, ties by index for determinism).
  let idx = Array.from({ length: V }, (_, i) => i);
  idx.sort((a, b) => probs[b]! - probs[a]! || a - b);
  if (useTopK) idx = idx.slice(0, opts.topK);
  if (useTopP) {
    let mass = 0;
    let cut = idx.length;
    for (let i = 0; i < idx.length; i++) {
      mass += probs[idx[i]!]!;
      if (mass >= opts.topP) {
        cut = i + 1;
        break;
      }
    }
    idx = idx.slice(0, cut);
  }
  let total = 0;
  for (const i of idx) total += probs[i]!;
  const r = rng.float() * total;
  let acc = 0;
  for (const i of idx) {
    acc += probs[i]!;
    if (r < acc) return i;
  }
  return idx[idx.length - 1]!;
}

function sampleFrom(probs: Float64Array, r: number): number {
  let acc = 0;
  for (let i = 0; i < probs.length; i++) {
    acc += probs[i]!;
    if (r < acc) return i;
  }
  return probs.length - 1;
}

/**
 * Non-finite logits (NaN / Inf weights, an overflow) would make argmax pick token 0 and sampling
 * misbehave silently: they are an error naming the model.
 */
export function checkFiniteLogits(logits: ArrayLike<number>, source: string, where: string): void {
  for (let i = 0; i < logits.length; i++) {
    if (!Number.isFinite(logits[i]!)) {
      throw new MixtuneError(`${source}: the model computes non-finite logits (${logits[i]}) ${where}; its weights contain NaN or Inf values, or overflow`);
    }
  }
}
