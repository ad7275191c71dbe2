// Group builders shared by the recipes: the prompt/output split of an encoded conversation and the
// MISO group layout of docs/design.md §2 (parts, positions, targets).
import { IGNORE, causalGroup, type Group, type Weighting } from '../pack.js';
import { MixtuneError } from '../../util/errors.js';
import type { EncodedExample } from './types.js';

export interface PromptOutput {
  /** Everything before the output part: system prompt, earlier turns, the last user turn. */
  prompt: number[];
  /** The output part: the assistant header (no loss), the trained content and its end-of-turn token. */
  output: number[];
  /** Labels aligned with output (IGNORE where no loss). */
  outputLabels: number[];
}

/**
 * Splits an encoded conversation at its LAST assistant turn: prompt = ids[0 : header], output =
 * ids[header : end] (tokens after the end-of-turn token, such as Qwen's "\n", carry no loss and
 * are dropped). The header is the chat template's generation prompt, so the output part starts
 * with it and its first token, not a content token, is the one no query predicts.
 *
 * Templates with an empty generation prompt (Mistral: "[/INST]" ends the user turn and the
 * content follows directly) would leave the first content token unpredicted; there the output
 * part starts one token earlier, with the prompt's last token ("[/INST]"), which is the same for
 * every input variant (the MISO recipes verify that the output parts are identical).
 */
export function splitLastTurn(enc: EncodedExample, where: string, recipe: string): PromptOutput {
  const spans = enc.spans;
  if (!spans) throw new MixtuneError(`${where}: recipe ${recipe} needs the assistant spans of the encoding (use chatEncoder)`);
  const s = spans[spans.length - 1];
  if (!s) throw new MixtuneError(`${where}: recipe ${recipe}: the conversation has no assistant turn`);
  let cut = s.header;
  if (s.header === s.start && cut > 1) cut--; // empty generation prompt: borrow the prompt's last token
  return {
    prompt: enc.ids.slice(0, cut),
    output: enc.ids.slice(cut, s.end),
    outputLabels: enc.labels.slice(cut, s.end).map((l, j) => (j === 0 ? IGNORE : l)),
  };
}

export type MisoPositions = 'para' | 'succ';
export const MISO_POSITIONS: readonly MisoPositions[] = ['para', 'succ'];

/**
 * RoPE positions of a MISO group, the one rule for training rows and for decoding: where each
 * input starts, and where the output starts. para: every input from 0, the output from
 * max_i len(input_i); succ: input i starts where input i-1 ended, the output after the last input
 * (the positions of the unsplit sequence). Positions inside a part are consecutive.
 */
export function misoPositions(inputLengths: readonly number[], mode: MisoPositions = 'para'): { inputStarts: number[]; outputStart: number } {
  if (mode === 'para') return { inputStarts: inputLengths.map(() => 0), outputStart: Math.max(0, ...inputLengths) };
  const inputStarts: number[] = [];
  let p = 0;
  for (const L of inputLengths) {
    inputStarts.push(p);
    p += L;
  }
  return { inputStarts, outputStart: p };
}

/**
 * A group of n >= 2 input parts and one output part (docs/design.md §2):
 * tokens = [input_0; ...; input_{n-1}; output], parts = [0.., 1.., ..., -1..]; input positions
 * predict nothing; output position j predicts output[j+1] when its label is trained; the last
 * output position predicts nothing. Positions: "para" = every input starts at 0 and the output at
 * max_i len(input_i); "succ" = the inputs are successive chunks of one prompt (chunk k starts
 * where chunk k-1 ended) and the output continues after the last chunk.
 * With one input it is the ordinary causal group of [input; output] with the output's labels.
 */
export function misoGroup(
  inputs: number[][],
  output: number[],
  outputLabels: number[],
  o: { positions: MisoPositions; weighting?: Weighting; source: string },
): Group {
  if (inputs.length === 0) throw new MixtuneError(`${o.source}: a MISO group needs at least one input`);
  if (output.length === 0) throw new MixtuneError(`${o.source}: a MISO group needs a non-empty output`);
  if (outputLabels.length !== output.length) throw new Error('misoGroup: outputLabels and output differ in length');
  if (inputs.length === 1) {
    const ids = [...inputs[0]!, ...output];
    const labels = [...new Array<number>(inputs[0]!.length).fill(IGNORE), ...outputLabels];
    labels[inputs[0]!.length] = IGNORE;
    return causalGroup(ids, labels, o.source);
  }
  const tokens: number[] = [];
  const targets: number[] = [];
  const positions: number[] = [];
  const parts: number[] = [];
  const { inputStarts, outputStart: outStart } = misoPositions(inputs.map((x) => x.length), o.positions);
  inputs.forEach((inp, i) => {
    if (inp.length === 0) throw new MixtuneError(`${o.source}: MISO input ${i} is empty`);
    for (let t = 0; t < inp.length; t++) {
      tokens.push(inp[t]!);
      targets.push(IGNORE);
      positions.push(inputStarts[i]! + t);
      parts.push(i);
    }
  });
  for (let j = 0; j < output.length; j++) {
    tokens.push(output[j]!);
    targets.push(j + 1 < output.length ? outputLabels[j + 1]! : IGNORE);
    positions.push(outStart + j);
    parts.push(-1);
  }
  return { tokens, targets, positions, parts, nInputs: inputs.length, weighting: o.weighting ?? 'uniform', source: o.source };
}

/** The ordinary SFT group of an encoding (every trained label of the conversation). */
export function sftGroup(enc: EncodedExample, source: string): Group {
  return causalGroup(enc.ids, enc.labels, source);
}

export function hasTargets(g: Group): boolean {
  return g.targets.some((t) => t !== IGNORE);
}

export function sameTokens(a: readonly number[], b: readonly number[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}
