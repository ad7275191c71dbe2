// The recipes (docs/design.md §3): examples -> groups. `buildGroups` runs the selected recipe on the
// training examples; `evalGroups` builds the eval set, which is always plain SFT groups of the
// original examples (what the model sees at inference), so eval losses compare across recipes.
import type { Example } from '../readers.js';
import type { Group } from '../pack.js';
import { MixtuneError } from '../../util/errors.js';
import { hasTargets, sftGroup } from './groups.js';
import { buildMisoPara, buildMisoSucc } from './miso.js';
import { buildMoi } from './moi.js';
import { DEFAULT_SYSTEM_PROMPT } from './prompts.js';
import type { RecipeContext, RecipeOptions, RecipeResult } from './types.js';

export * from './types.js';
export { splitLastTurn, misoGroup, sftGroup, type PromptOutput } from './groups.js';
export { paraInstructions, withInstruction, drawK, splitChunks, DEFAULT_K_PROBS, buildMisoPara, buildMisoSucc } from './miso.js';
export { assignSystemPrompts, mixChunks, PassCycler, mergeRowGroups, domainsOf, buildMoi } from './moi.js';
export { BUILTIN_SYSTEM_PROMPTS, DEFAULT_SYSTEM_PROMPT, systemPromptPool } from './prompts.js';

/** SFT: one causal group per example. */
export function buildSft(examples: Example[], ctx: RecipeContext): RecipeResult {
  const groups: Group[] = [];
  let noTargets = 0;
  for (const ex of examples) {
    const g = sftGroup(ctx.encode(ex), ex.id);
    if (hasTargets(g)) groups.push(g);
    else noTargets++;
  }
  return { groups, noTargets, info: { recipe: 'sft' } };
}

/** Runs a recipe over the training examples. */
export function buildGroups(recipe: RecipeOptions, examples: Example[], ctx: RecipeContext): RecipeResult {
  switch (recipe.name) {
    case 'sft':
      return buildSft(examples, ctx);
    case 'moi':
      return buildMoi(examples, recipe, ctx);
    case 'miso-para':
    case 'miso-augment-only':
      return buildMisoPara(examples, recipe, ctx);
    case 'miso-succ':
      return buildMisoSucc(examples, recipe, ctx);
    default:
      throw new MixtuneError(`unknown recipe ${(recipe as { name: string }).name}`);
  }
}

/**
 * Eval groups: plain SFT groups of the original examples. For MoI, examples without a system
 * prompt of their own get the single default prompt (recipe.evalSystem, default "You are a helpful
 * assistant.") rather than a domain prompt, to expose system-prompt overfitting.
 */
export function evalGroups(recipe: RecipeOptions, examples: Example[], ctx: RecipeContext): RecipeResult {
  if (recipe.name === 'moi') {
    const sys = recipe.evalSystem ?? DEFAULT_SYSTEM_PROMPT;
    examples = examples.map((ex) => (ex.system === undefined && sys !== '' ? { ...ex, system: sys } : ex));
  }
  return buildSft(examples, ctx);
}
