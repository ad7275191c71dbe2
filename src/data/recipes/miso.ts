// MISO recipes (docs/design.md §3): miso-para (multi-constraint data: full / single-constraint / bare
// instruction as inputs, one output), miso-augment-only (the same augmented inputs as separate
// SFT groups: the "no MISO" ablation) and miso-succ (the prompt split into k successive chunks).
import { composeInstruction, type Example } from '../readers.js';
import type { Group } from '../pack.js';
import { Rng } from '../../util/rng.js';
import { MixtuneError } from '../../util/errors.js';
import { hasTargets, misoGroup, sameTokens, sftGroup, splitLastTurn } from './groups.js';
import type { EncodedExample, ExampleEncoder, MisoParaOptions, MisoSuccOptions, RecipeContext, RecipeResult } from './types.js';

export const DEFAULT_K_PROBS = [0.55, 0.15, 0.15, 0.15];

/** Index of the user message MISO varies: the last user turn before the last assistant turn. */
function lastUserIndex(ex: Example): number {
  let a = ex.messages.length - 1;
  while (a >= 0 && ex.messages[a]!.role !== 'assistant') a--;
  for (let i = a - 1; i >= 0; i--) if (ex.messages[i]!.role === 'user') return i;
  return -1;
}

/**
 * The instruction texts of the inputs, in order: the full instruction (the example's own last
 * user message), one per single constraint (composeInstruction(base, [c_k])), the bare instruction
 * (base). Identical texts are kept once (with one constraint the single one equals the full one).
 * maxInputs keeps the full and bare instructions and then the first constraints in their order
 * (deterministic: the data's order is the priority order).
 */
export function paraInstructions(ex: Example, o: Omit<MisoParaOptions, 'name'>): string[] {
  const u = lastUserIndex(ex);
  if (u < 0 || ex.base === undefined || !ex.constraints?.length) return [];
  const full = ex.messages[u]!.content;
  const includeFull = o.includeFull ?? true;
  const includeBare = o.includeBare ?? true;
  const fixed = (includeFull ? 1 : 0) + (includeBare ? 1 : 0);
  const room = o.maxInputs === undefined ? Infinity : Math.max(0, o.maxInputs - fixed);
  const singles = ex.constraints.slice(0, room).map((c) => composeInstruction(ex.base!, [c]));
  const list = [...(includeFull ? [full] : []), ...singles, ...(includeBare ? [composeInstruction(ex.base, [])] : [])];
  const seen = new Set<string>();
  const out = list.filter((t) => (seen.has(t.trim()) ? false : (seen.add(t.trim()), true)));
  return o.maxInputs !== undefined ? out.slice(0, o.maxInputs) : out;
}

/** The example with its last user turn (the one MISO varies) replaced by `text`. */
export function withInstruction(ex: Example, text: string): Example {
  const u = lastUserIndex(ex);
  if (u < 0) throw new MixtuneError(`${ex.id}: no user turn before the last assistant turn`);
  return { ...ex, messages: ex.messages.map((m, i) => (i === u ? { ...m, content: text } : m)) };
}

interface ParaSplit {
  inputs: number[][];
  output: number[];
  outputLabels: number[];
}

/**
 * Encodes each instruction variant and splits it at the last assistant turn; every variant must
 * yield the same output part (the response does not depend on the instruction's text).
 */
function encodeVariants(ex: Example, texts: string[], encode: ExampleEncoder, recipe: string, own: EncodedExample): ParaSplit {
  const full = ex.messages[lastUserIndex(ex)]!.content;
  let ref: ReturnType<typeof splitLastTurn> | null = null;
  const inputs: number[][] = [];
  texts.forEach((text, i) => {
    const enc = text === full ? own : encode(withInstruction(ex, text));
    const s = splitLastTurn(enc, ex.id, recipe);
    if (!ref) ref = s;
    else if (!sameTokens(s.output, ref.output) || !sameTokens(s.outputLabels, ref.outputLabels)) {
      throw new MixtuneError(`${ex.id}: ${recipe}: input variant ${i} gives a different output part (the response tokenizes differently after it); the chat template must end the prompt on a token boundary`);
    }
    inputs.push(s.prompt);
  });
  const r = ref as ReturnType<typeof splitLastTurn> | null;
  if (!r) throw new Error('encodeVariants: no variants');
  return { inputs, output: r.output, outputLabels: r.outputLabels };
}

export function buildMisoPara(examples: Example[], o: MisoParaOptions, ctx: RecipeContext): RecipeResult {
  const groups: Group[] = [];
  const perN: Record<string, number> = {};
  let noTargets = 0;
  let sft = 0;
  for (const ex of examples) {
    const own = ctx.encode(ex);
    const texts = paraInstructions(ex, o);
    if (texts.length < 2) {
      const g = sftGroup(own, ex.id);
      if (!hasTargets(g)) noTargets++;
      else {
        groups.push(g);
        sft++;
      }
      continue;
    }
    const v = encodeVariants(ex, texts, ctx.encode, o.name, own);
    const made: Group[] =
      o.name === 'miso-para'
        ? [misoGroup(v.inputs, v.output, v.outputLabels, { positions: 'para', weighting: o.weighting ?? 'uniform', source: ex.id })]
        : v.inputs.map((inp, i) => misoGroup([inp], v.output, v.outputLabels, { positions: 'para', source: `${ex.id}[${i}]` }));
    if (!made.every(hasTargets)) {
      noTargets++;
      continue;
    }
    groups.push(...made);
    perN[String(texts.length)] = (perN[String(texts.length)] ?? 0) + 1;
  }
  return {
    groups, noTargets,
    info: { recipe: o.name, augmented_examples: Object.values(perN).reduce((a, b) => a + b, 0), sft_examples: sft, inputs_per_example: perN },
  };
}

/** Draws k in 1..probs.length with P(k) = probs[k-1] / sum(probs). */
export function drawK(rng: Rng, probs: readonly number[]): number {
  const total = probs.reduce((a, b) => a + b, 0);
  let u = rng.float() * total;
  for (let i = 0; i < probs.length; i++) {
    u -= probs[i]!;
    if (u < 0) return i + 1;
  }
  for (let i = probs.length - 1; i >= 0; i--) if (probs[i]! > 0) return i + 1;
  return 1;
}

/** k near-equal successive chunks of `ids` (sizes differ by at most one; k <= ids.length). */
export function splitChunks(ids: readonly number[], k: number): number[][] {
  const L = ids.length;
  const out: number[][] = [];
  for (let c = 0; c < k; c++) out.push(ids.slice(Math.floor((c * L) / k), Math.floor(((c + 1) * L) / k)));
  return out;
}

export function buildMisoSucc(examples: Example[], o: MisoSuccOptions, ctx: RecipeContext): RecipeResult {
  const probs = o.kProbs ?? DEFAULT_K_PROBS;
  if (!probs.length || probs.some((p) => !(p >= 0)) || !(probs.reduce((a, b) => a + b, 0) > 0)) {
    throw new MixtuneError(`miso-succ: k_probs must be non-negative numbers with a positive sum, got [${probs.join(', ')}]`);
  }
  const rng = new Rng((ctx.seed ^ 0x5ecc) >>> 0);
  const groups: Group[] = [];
  const perK: Record<string, number> = {};
  let noTargets = 0;
  for (const ex of examples) {
    const enc = ctx.encode(ex);
    let k = drawK(rng, probs);
    let g: Group;
    if (k === 1) g = sftGroup(enc, ex.id);
    else {
      const s = splitLastTurn(enc, ex.id, 'miso-succ');
      k = Math.min(k, s.prompt.length);
      g = k === 1 ? sftGroup(enc, ex.id) : misoGroup(splitChunks(s.prompt, k), s.output, s.outputLabels, { positions: 'succ', weighting: o.weighting ?? 'uniform', source: ex.id });
    }
    if (!hasTargets(g)) {
      noTargets++;
      continue;
    }
    perK[String(k)] = (perK[String(k)] ?? 0) + 1;
    groups.push(g);
  }
  return { groups, noTargets, info: { recipe: 'miso-succ', chunks_per_example: perK } };
}
