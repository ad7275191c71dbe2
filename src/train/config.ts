// The train.yaml schema (zod): every key has a type and a default, unknown keys are errors, and
// an error names its key path ("training.lr: expected number"). The `recipe` block is where the
// MoI/MISO recipes plug in; `data.datasets[].domain/system/weight` feed MoI's mixing.
import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { isEmbeddedModelName } from '../io/model-ref.js';
import { parse as parseYaml } from 'yaml';
import { z } from 'zod';
import { MixtuneError } from '../util/errors.js';
import { isInlineChatTemplate } from '../io/chat.js';
import { BF16_OPS } from '../tensor/bf16-weights.js';

const positiveInt = z.number().int().positive();
const nonNegInt = z.number().int().nonnegative();

const dataset = z
  .object({
    path: z.string().min(1),
    format: z.enum(['auto', 'messages', 'sharegpt', 'alpaca', 'prompt_completion', 'constraints', 'ifeval', 'crab', 'followbench']).default('auto'),
    /** Field renames, e.g. {prompt: question, completion: answer} for GSM8K's JSONL. */
    columns: z.record(z.string(), z.string()).optional(),
    domain: z.string().min(1).default('default'),
    /** A fixed system prompt, or a pool to draw from per example. */
    system: z.union([z.string(), z.array(z.string()).min(1)]).optional(),
    weight: z.number().positive().default(1),
    limit: positiveInt.optional(),
  })
  .strict();

const weighting = z.enum(['uniform', 'fid', 'vanilla']).default('uniform');
const paraOptions = {
  /** Input: the full instruction (ablation "w/o full" = false). */
  include_full: z.boolean().default(true),
  /** Input: the bare instruction without constraints. */
  include_bare: z.boolean().default(true),
  /**
   * Most inputs per group, counting the full and the bare instruction: full and bare are kept,
   * then the first constraints (default 6 = full + bare + 4 single-constraint inputs; Crab records
   * have up to 16 constraints, and every input costs as much as a whole prompt).
   */
  max_inputs: z.number().int().min(2).default(6),
};

/** The `recipe` block (src/data/recipes): one variant per recipe, each with its own options. */
const recipeSchema = z.discriminatedUnion('name', [
  z.object({ name: z.literal('sft') }).strict(),
  z
    .object({
      name: z.literal('moi'),
      mix: z.enum(['balanced', 'proportional', 'concat']).default('balanced'),
      /** Instructions per chunk (default: the number of domains). */
      n_mix: positiveInt.optional(),
      mask: z.enum(['chunk', 'isolated', 'full']).default('chunk'),
      /** Per-domain system-prompt pools (replace the built-in pool of that domain). */
      system_prompts: z.record(z.string(), z.array(z.string().min(1)).min(1)).optional(),
      /** System prompt of eval examples without their own ("" = none). */
      eval_system: z.string().default('You are a helpful assistant.'),
    })
    .strict(),
  z.object({ name: z.literal('miso-para'), ...paraOptions, weighting }).strict(),
  z.object({ name: z.literal('miso-augment-only'), ...paraOptions }).strict(),
  z
    .object({
      name: z.literal('miso-succ'),
      /** P(k = 1), P(k = 2), ...: the number of chunks of the prompt. */
      k_probs: z.array(z.number().nonnegative()).min(1).default([0.55, 0.15, 0.15, 0.15])
        .refine((p) => p.reduce((a, b) => a + b, 0) > 0, 'k_probs must have a positive sum'),
      weighting,
    })
    .strict(),
]);

export type RecipeConfig = z.infer<typeof recipeSchema>;

export const trainConfigSchema = z
  .object({
    model: z.string().min(1),
    tokenizer: z.string().min(1).optional(),
    output_dir: z.string().min(1).default('./mixtune-out'),
    seed: nonNegInt.default(0),
    data: z
      .object({
        datasets: z.array(dataset).min(1),
        eval_datasets: z.array(dataset).optional(),
        /** Held-out fraction of the training examples when no eval_datasets are given. */
        eval_split: z.number().min(0).max(0.5).default(0),
        max_len: positiveInt.default(512),
        overflow: z.enum(['truncate', 'drop', 'error']).default('truncate'),
        train_on: z.enum(['assistant', 'last', 'all']).default('assistant'),
        pack: z.boolean().default(true),
        skip_bad: z.boolean().default(false),
        /** Rows saved by `mixtune prepare --out FILE`: train on exactly those instead of preparing. */
        prepared: z.string().min(1).optional(),
        /** Chat template: "auto" (the tokenizer's, else the built-in plain one) or "plain". */
        template: z.enum(['auto', 'plain']).default('auto'),
        /**
         * A chat template of the user's choice, overriding the model folder's: Jinja text (it holds
         * "{{", "{%" or "{#") or a file (relative to this config): a .jinja/text file, or a
         * tokenizer_config.json whose chat_template is used.
         */
        chat_template: z.string().min(1).optional(),
      })
      .strict(),
    recipe: recipeSchema.default({ name: 'sft' }),
    training: z
      .object({
        epochs: z.number().positive().default(1),
        /** Overrides epochs when set. */
        max_steps: positiveInt.optional(),
        micro_batch_size: positiveInt.default(1),
        grad_accum: positiveInt.default(1),
        /** Peak learning rate; absent = the default for what is trained (defaultLearningRate). */
        lr: z.number().positive().optional(),
        weight_decay: z.number().nonnegative().default(0),
        beta1: z.number().min(0).lt(1).default(0.9),
        beta2: z.number().min(0).lt(1).default(0.999),
        eps: z.number().positive().default(1e-8),
        warmup_ratio: z.number().min(0).max(1).optional(),
        warmup_steps: nonNegInt.optional(),
        schedule: z.enum(['cosine', 'linear', 'constant']).default('cosine'),
        min_lr_ratio: z.number().min(0).max(1).default(0),
        max_grad_norm: z.number().nonnegative().default(1),
        log_every: positiveInt.default(1),
        eval_every: nonNegInt.default(0),
        save_every: nonNegInt.default(0),
        keep_last: positiveInt.default(2),
        /** Recompute each layer's activations in backward instead of keeping them (less memory, ~1/3 more compute). */
        gradient_checkpointing: z.boolean().default(false),
        /** bf16: the linear layers' GEMMs and the causal attention's products on bf16 operands with fp32 accumulation (needs AVX512-BF16 or AMX-BF16). */
        precision: z.enum(['fp32', 'bf16']).default('fp32'),
        /** With precision bf16: which products take bf16 operands (default all; the rest stay fp32). */
        bf16_ops: z.array(z.enum(BF16_OPS)).min(1).optional(),
      })
      .strict()
      // prefault: an absent section is parsed as {} so its inner defaults apply (zod 4's
      // .default({}) would return {} as it is)
      .prefault({}),
    lora: z
      .object({
        rank: positiveInt.default(8),
        alpha: z.number().positive().default(16),
        dropout: z.number().min(0).lt(1).default(0),
        targets: z.array(z.enum(['q', 'k', 'v', 'o', 'gate', 'up', 'down'])).min(1).default(['q', 'v']),
        /** bf16: the frozen base matrices stored (and multiplied) in bf16, half the weight memory (needs AVX512-BF16 or AMX-BF16). */
        base_dtype: z.enum(['f32', 'bf16']).default('f32'),
      })
      .strict()
      .optional(),
    export: z
      .object({
        dtype: z.enum(['f32', 'bf16']).default('f32'),
      })
      .strict()
      .prefault({}),
  })
  .strict();

export type TrainConfig = z.infer<typeof trainConfigSchema>;
export type DatasetConfig = z.infer<typeof dataset>;

/** Validates a parsed config object; paths inside it are resolved against baseDir. */
export function validateTrainConfig(raw: unknown, source: string, baseDir = process.cwd()): TrainConfig {
  const r = trainConfigSchema.safeParse(raw ?? {});
  if (!r.success) {
    const issue = r.error.issues[0]!;
    const path = issue.path.join('.') || '(top level)';
    let msg = issue.message;
    if (issue.code === 'unrecognized_keys') {
      const key = [...issue.path, (issue as { keys: string[] }).keys[0]].join('.');
      throw new MixtuneError(`${source}: unknown key ${key}`);
    }
    if (issue.code === 'invalid_type' && msg.includes('received undefined')) msg = 'required key is missing';
    throw new MixtuneError(`${source}: ${path}: ${msg}`);
  }
  const cfg = r.data;
  const abs = (p: string): string => (isAbsolute(p) ? p : resolve(baseDir, p));
  // an embedded model's name (stories260K) is not a path
  if (!isEmbeddedModelName(cfg.model)) cfg.model = abs(cfg.model);
  if (cfg.tokenizer) cfg.tokenizer = abs(cfg.tokenizer);
  cfg.output_dir = abs(cfg.output_dir);
  for (const d of [...cfg.data.datasets, ...(cfg.data.eval_datasets ?? [])]) d.path = abs(d.path);
  if (cfg.data.prepared) cfg.data.prepared = abs(cfg.data.prepared);
  if (cfg.data.chat_template !== undefined) {
    if (cfg.data.template === 'plain') throw new MixtuneError(`${source}: data: give template: plain or chat_template, not both`);
    if (!isInlineChatTemplate(cfg.data.chat_template)) cfg.data.chat_template = abs(cfg.data.chat_template);
  }
  const ops = cfg.training.bf16_ops;
  if (ops && cfg.training.precision !== 'bf16') throw new MixtuneError(`${source}: training.bf16_ops needs training.precision: bf16`);
  if (ops && new Set(ops).size !== ops.length) throw new MixtuneError(`${source}: training.bf16_ops: an op is listed twice`);
  if (cfg.training.warmup_ratio !== undefined && cfg.training.warmup_steps !== undefined) {
    throw new MixtuneError(`${source}: training: give warmup_ratio or warmup_steps, not both`);
  }
  return cfg;
}

export function loadTrainConfig(path: string, overrides: string[] = []): TrainConfig {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new MixtuneError(`${path}: cannot read config (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  let raw: unknown;
  try {
    raw = parseYaml(text);
  } catch (e) {
    throw new MixtuneError(`${path}: invalid YAML (${(e as Error).message.split('\n')[0]})`);
  }
  for (const o of overrides) raw = applyOverride(raw, o, path);
  return validateTrainConfig(raw, path, dirname(path));
}

/** `--set training.lr=1e-4`: the value is parsed as YAML (numbers, booleans, lists). */
export function applyOverride(raw: unknown, assignment: string, source: string): unknown {
  const eq = assignment.indexOf('=');
  if (eq <= 0) throw new MixtuneError(`--set ${assignment}: expected key.path=value`);
  const keys = assignment.slice(0, eq).split('.');
  let value: unknown;
  try {
    value = parseYaml(assignment.slice(eq + 1));
  } catch {
    value = assignment.slice(eq + 1);
  }
  const root: Record<string, unknown> = typeof raw === 'object' && raw !== null ? (raw as Record<string, unknown>) : {};
  let node = root;
  for (const k of keys.slice(0, -1)) {
    const next = node[k];
    if (next === undefined) node[k] = {};
    else if (typeof next !== 'object' || next === null || Array.isArray(next)) throw new MixtuneError(`${source}: --set ${assignment}: ${k} is not a section`);
    node = node[k] as Record<string, unknown>;
  }
  node[keys[keys.length - 1]!] = value;
  return root;
}

/**
 * The peak learning rate when the config gives none, by what is trained: LoRA adapters 2e-4 (PEFT's
 * common default); full fine-tuning by model size — 2e-5 from 1B parameters (the usual 7B value),
 * 5e-5 from 100M, 1e-3 below (tiny models such as stories260K barely move at 2e-5).
 */
export function defaultLearningRate(params: number, lora: boolean): { lr: number; why: string } {
  if (lora) return { lr: 2e-4, why: 'default for LoRA' };
  if (params >= 1e9) return { lr: 2e-5, why: 'default for full fine-tuning of >= 1B parameters' };
  if (params >= 1e8) return { lr: 5e-5, why: 'default for full fine-tuning of 100M-1B parameters' };
  return { lr: 1e-3, why: 'default for full fine-tuning of < 100M parameters' };
}
