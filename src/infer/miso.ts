// MISO inference (docs/design.md §2): several inputs, one output.
//
// - `misoScore`: log-probabilities of an output given a group of inputs, from ONE layout-aware
//   forward of the group [input_0; ...; input_{n-1}; output] (the training definition).
// - `misoGenerate`: decoding with one KV cache per input. Every input is prefilled on its own (with
//   its own positions); the output tokens are appended to every input's cache and each output query
//   mixes its per-input attention results by the weighting (LlamaModel.stepMiso).
//
// The two are independent implementations of the same rule, which the tests compare. With one input
// both are ordinary causal LM scoring / generation.
import type { KvCache, LlamaModel } from '../model/llama.js';
import type { AttentionLayout, Weighting } from '../tensor/ops.js';
import { MixtuneError } from '../util/errors.js';
import { type DecodeSteps, type GenerateOptions, type GenerateResult, drive, tokenPicker } from './generate.js';
import { checkFiniteLogits } from './sample.js';

import { MISO_POSITIONS, misoPositions, type MisoPositions } from '../data/recipes/groups.js';
export { MISO_POSITIONS, misoPositions, type MisoPositions };
export const MISO_WEIGHTINGS: readonly Weighting[] = ['uniform', 'fid', 'vanilla'];

export interface MisoOptions {
  /** para (default): every input from 0, the output from max_i len(input_i); succ: successive positions. */
  positions?: MisoPositions;
  /** uniform (default) | fid | vanilla. */
  weighting?: Weighting;
}

export interface MisoScore {
  /** logprobs[j-1] = log p(output[j] | inputs, output[<j]) for j = 1..len(output)-1 (natural log). */
  logprobs: number[];
  /** Sum of logprobs. */
  total: number;
}

function checkGroup(model: LlamaModel, inputs: readonly (readonly number[])[], output: readonly number[] | null, o: MisoOptions, fn: string): void {
  if (inputs.length === 0) throw new MixtuneError(`${fn}: no inputs (a MISO group needs at least one input)`);
  const V = model.config.vocabSize;
  const checkIds = (ids: readonly number[], what: string): void => {
    ids.forEach((id, t) => {
      if (!Number.isInteger(id) || id < 0 || id >= V) throw new MixtuneError(`${fn}: ${what} token ${t} has id ${id}, outside the vocabulary [0, ${V})`);
    });
  };
  inputs.forEach((inp, i) => {
    if (inp.length === 0) throw new MixtuneError(`${fn}: input ${i} is empty`);
    checkIds(inp, `input ${i}`);
  });
  if (output) {
    if (output.length === 0) throw new MixtuneError(`${fn}: the output is empty`);
    checkIds(output, 'output');
  }
  if (o.positions !== undefined && !MISO_POSITIONS.includes(o.positions)) throw new MixtuneError(`${fn}: positions must be para or succ, not ${String(o.positions)}`);
  if (o.weighting !== undefined && !MISO_WEIGHTINGS.includes(o.weighting)) throw new MixtuneError(`${fn}: weighting must be uniform, fid or vanilla, not ${String(o.weighting)}`);
}

/**
 * Log-probabilities of `output` under the MISO group (inputs, output): one layout-aware forward of
 * [input_0; ...; input_{n-1}; output] with parts 0..n-1 then -1 and the positions of `o.positions`.
 * output[0] is given (the assistant header's first token, or the first output token), so there are
 * len(output)-1 log-probs, each predicted by the output-part query before it.
 */
export function misoScore(model: LlamaModel, inputs: readonly (readonly number[])[], output: readonly number[], o: MisoOptions = {}): MisoScore {
  checkGroup(model, inputs, output, o, 'score');
  const n = inputs.length;
  const lens = inputs.map((x) => x.length);
  const { inputStarts, outputStart } = misoPositions(lens, o.positions ?? 'para');
  const last = outputStart + output.length - 1;
  if (last >= model.config.maxSeqLen) {
    throw new MixtuneError(`score: the group needs positions up to ${last}, beyond the model's context of ${model.config.maxSeqLen} tokens`);
  }
  const nIn = lens.reduce((a, b) => a + b, 0);
  const T = nIn + output.length;
  const tokens = new Int32Array(T);
  const pos = new Int32Array(T);
  const part = new Int32Array(T);
  let t = 0;
  inputs.forEach((inp, i) => {
    for (let j = 0; j < inp.length; j++, t++) {
      tokens[t] = inp[j]!;
      pos[t] = inputStarts[i]! + j;
      part[t] = i;
    }
  });
  for (let j = 0; j < output.length; j++, t++) {
    tokens[t] = output[j]!;
    pos[t] = outputStart + j;
    part[t] = -1;
  }
  const layout: AttentionLayout = { group: new Int32Array(T), part, nInputs: Int32Array.of(n), weighting: [o.weighting ?? 'uniform'] };
  const logits = model.logits(tokens, 1, pos, layout);
  checkFiniteLogits(logits.subarray(nIn * model.config.vocabSize), model.source, 'for the output');
  const V = model.config.vocabSize;
  const logprobs: number[] = [];
  for (let j = 1; j < output.length; j++) logprobs.push(logProb(logits.subarray((nIn + j - 1) * V, (nIn + j) * V), output[j]!));
  return { logprobs, total: logprobs.reduce((a, b) => a + b, 0) };
}

/** log softmax(logits)[id], in fp64. */
export function logProb(logits: ArrayLike<number>, id: number): number {
  let max = -Infinity;
  for (let i = 0; i < logits.length; i++) if (logits[i]! > max) max = logits[i]!;
  let sum = 0;
  for (let i = 0; i < logits.length; i++) sum += Math.exp(logits[i]! - max);
  return logits[id]! - max - Math.log(sum);
}

/** The per-input KV caches of a MISO group being decoded (see `MisoDecoder`). */
export class MisoDecoder {
  readonly caches: KvCache[];
  readonly inputLengths: number[];
  readonly outputStart: number;
  /** Output tokens fed so far. */
  outputLength = 0;
  /** Logits after the last feed: of the last input token when n = 1 and nothing was fed yet. */
  logits: Float32Array | null = null;

  /**
   * Prefills every input into its own cache (each with its own positions). `capacity`: how many
   * output tokens the caches must hold.
   */
  constructor(readonly model: LlamaModel, inputs: readonly (readonly number[])[], capacity: number, readonly opts: MisoOptions = {}) {
    checkGroup(model, inputs, null, opts, 'generate');
    this.inputLengths = inputs.map((x) => x.length);
    const { inputStarts, outputStart } = misoPositions(this.inputLengths, opts.positions ?? 'para');
    this.outputStart = outputStart;
    this.caches = inputs.map((inp, i) => {
      const cache = model.newCache(inp.length + capacity);
      const pos = Int32Array.from(inp, (_, j) => inputStarts[i]! + j);
      const logits = model.stepMiso(Int32Array.from(inp), pos, [cache]);
      if (inputs.length === 1) this.logits = logits;
      return cache;
    });
  }

  /** Position the next output token gets. */
  get nextPosition(): number {
    return this.outputStart + this.outputLength;
  }

  /** Appends output tokens to every cache; returns (and keeps) the logits of the last one. */
  feed(tokens: readonly number[]): Float32Array {
    const pos = Int32Array.from(tokens, (_, j) => this.nextPosition + j);
    this.logits = this.model.stepMiso(Int32Array.from(tokens), pos, this.caches, {
      weighting: this.opts.weighting ?? 'uniform',
      inputLengths: this.inputLengths,
    });
    this.outputLength += tokens.length;
    return this.logits;
  }
}

export interface MisoGenerateOptions extends GenerateOptions, MisoOptions {
  /**
   * The given start of the output part (e.g. the chat template's assistant header); the first new
   * token is predicted by its last token. May be empty only with one input (then generation
   * continues the input, exactly as `generate`).
   */
  outputPrefix?: readonly number[];
}

/**
 * MISO generation: one output decoded against several inputs with a KV cache per input. Returns the
 * new tokens (not the prefix). With one input and no prefix it equals `generate(model, input)`.
 * `useCache` is ignored (MISO decoding always uses the caches).
 */
export function misoGenerate(model: LlamaModel, inputs: readonly (readonly number[])[], opts: MisoGenerateOptions): GenerateResult {
  return drive(misoGenerateSteps(model, inputs, opts), opts.onToken);
}

/** `misoGenerate` as decoding steps (see generateSteps): yields every new token id. */
export function* misoGenerateSteps(model: LlamaModel, inputs: readonly (readonly number[])[], opts: Omit<MisoGenerateOptions, 'onToken'>): DecodeSteps {
  const prefix = opts.outputPrefix ?? [];
  checkGroup(model, inputs, null, opts, 'generate');
  if (prefix.length === 0 && inputs.length > 1) {
    throw new MixtuneError('generate: with several inputs the output part needs a start (e.g. the assistant header) to predict the first token from');
  }
  const V = model.config.vocabSize;
  prefix.forEach((id, t) => {
    if (!Number.isInteger(id) || id < 0 || id >= V) throw new MixtuneError(`generate: output prefix token ${t} has id ${id}, outside the vocabulary [0, ${V})`);
  });
  const pick = tokenPicker(model, opts);
  const stop = new Set(opts.stopIds ?? []);
  const maxLen = model.config.maxSeqLen;
  const out: number[] = [];
  const { outputStart } = misoPositions(inputs.map((x) => x.length), opts.positions ?? 'para');
  // As in generate: the sequence (last position + 1) never grows beyond the model's context.
  if (outputStart + prefix.length >= maxLen) return { tokens: out, stoppedBy: 'context' };

  // Output tokens ever fed: at most the prefix + maxNewTokens - 1, and never beyond the context.
  const dec = new MisoDecoder(model, inputs, Math.min(prefix.length + opts.maxNewTokens, maxLen), opts);
  let logits = prefix.length > 0 ? dec.feed(prefix) : dec.logits!;
  for (let i = 0; i < opts.maxNewTokens; i++) {
    const next = pick(logits, out.length);
    out.push(next);
    yield next;
    if (stop.has(next)) return { tokens: out, stoppedBy: 'stop' };
    if (i + 1 === opts.maxNewTokens) break;
    if (outputStart + prefix.length + out.length >= maxLen) return { tokens: out, stoppedBy: 'context' };
    logits = dec.feed([next]);
  }
  return { tokens: out, stoppedBy: 'length' };
}
