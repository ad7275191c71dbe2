// Shared types of the recipes: how an example is encoded (the chat template's token ids, loss
// labels and the token spans of its assistant turns) and what a recipe returns.
import type { Example } from '../readers.js';
import type { Group, Weighting } from '../pack.js';

export interface TurnSpan {
  /** First token of the assistant header (the generation prompt); = start when the template has none. */
  header: number;
  /** First trained token of the turn. */
  start: number;
  /** One past the turn's end-of-turn token. */
  end: number;
}

export interface EncodedExample {
  ids: number[];
  /** Aligned with ids: the token id where a loss applies, else IGNORE (-100). */
  labels: number[];
  /**
   * Token spans of the assistant turns (src/io/chat.ts encodeConversation's assistantSpans).
   * Required by the MISO recipes, which split the last turn into prompt and output parts.
   */
  spans?: TurnSpan[];
}

export type ExampleEncoder = (ex: Example) => EncodedExample;

export type MixStrategy = 'balanced' | 'proportional' | 'concat';
export type MoiMask = 'chunk' | 'isolated' | 'full';

export interface SftOptions {
  name: 'sft';
}

export interface MoiOptions {
  name: 'moi';
  /** How chunks are filled (default balanced). */
  mix?: MixStrategy;
  /** Instructions per chunk (default: the number of domains). */
  nMix?: number;
  /** Attention mask (default chunk). */
  mask?: MoiMask;
  /** Per-domain system-prompt pools; they replace the built-in pool of that domain. */
  systemPrompts?: Record<string, string[]>;
  /** System prompt of eval examples that have none of their own (default DEFAULT_SYSTEM_PROMPT). */
  evalSystem?: string;
}

export interface MisoParaOptions {
  name: 'miso-para' | 'miso-augment-only';
  /** Input: the full instruction (base + every constraint). Default true. */
  includeFull?: boolean;
  /** Input: the bare instruction (no constraint). Default true. */
  includeBare?: boolean;
  /** At most this many inputs (>= 2): full and bare are kept, then the first constraints in order. */
  maxInputs?: number;
  /** MISO mixing of the inputs (miso-para only; default uniform). */
  weighting?: Weighting;
}

export interface MisoSuccOptions {
  name: 'miso-succ';
  /** P(k = i+1) for the number of chunks; normalized. Default [0.55, 0.15, 0.15, 0.15]. */
  kProbs?: number[];
  weighting?: Weighting;
}

export type RecipeOptions = SftOptions | MoiOptions | MisoParaOptions | MisoSuccOptions;
export type RecipeName = RecipeOptions['name'];
export const RECIPE_NAMES: readonly RecipeName[] = ['sft', 'moi', 'miso-para', 'miso-augment-only', 'miso-succ'];

export interface RecipeContext {
  encode: ExampleEncoder;
  /** Seed of the recipe's own random choices (chunking, k, system prompts). */
  seed: number;
  /** Per-example sampling weight (the dataset's `weight`), aligned with the examples; default 1. */
  weights?: number[];
}

export interface RecipeResult {
  groups: Group[];
  /** Examples that had no trained token (skipped, counted). */
  noTargets: number;
  /** Recipe-specific counters for the summary (e.g. MISO groups per number of inputs). */
  info: Record<string, number | string | Record<string, number>>;
  /** MoI mask "full": after packing, every row is merged into one group. */
  mergeRows?: boolean;
}
