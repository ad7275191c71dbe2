// One path from a validated train config to the pieces every entry point needs (`mixtune train`,
// `prepare`, the demo, the studies): the chat template, the example encoder, the step count and
// the Trainer's options. Entry points must not map config keys to components by hand.
import { requireBf16 } from '../tensor/bf16.js';
import { existsSync } from 'node:fs';
import { checkModelAndTokenizer, modelConfigOf } from '../io/load.js';
import { estimateTrainMemory, parameterCount, type MemoryEstimate } from './memory.js';
import { ensureWritableDir } from '../util/fs.js';
import { MixtuneError } from '../util/errors.js';
import { ChatTemplate, encodeConversation, type ChatMessage } from '../io/chat.js';
import type { Tokenizer } from '../tokenizer.js';
import { defaultLearningRate, type TrainConfig } from './config.js';
import type { ExampleEncoder } from './prepare.js';
import { warmupStepsOf } from './schedule.js';
import type { TrainerOptions } from './trainer.js';

/** The chat template the config asks for: data.chat_template, the tokenizer's (auto) or the built-in plain one. */
export function templateFor(tok: Tokenizer, cfg: TrainConfig): ChatTemplate {
  return ChatTemplate.forTokenizer(tok, { plain: cfg.data.template === 'plain', ...(cfg.data.chat_template !== undefined ? { template: cfg.data.chat_template } : {}) });
}

/** Encodes an example (system prompt + turns) with the template; labels follow `trainOn`. */
export function chatEncoder(tok: Tokenizer, template: ChatTemplate, trainOn: TrainConfig['data']['train_on']): ExampleEncoder {
  return (ex) => {
    const messages: ChatMessage[] = [
      ...(ex.system !== undefined ? [{ role: 'system', content: ex.system }] : []),
      ...ex.messages,
    ];
    const enc = encodeConversation(tok, template, messages, { trainOn, where: ex.id, ...(ex.tools ? { tools: ex.tools } : {}) });
    return { ids: enc.ids, labels: enc.labels, spans: enc.assistantSpans };
  };
}

/** The encoder of a config: its template and train_on rule. */
export function encoderFor(tok: Tokenizer, cfg: TrainConfig): { template: ChatTemplate; encode: ExampleEncoder } {
  const template = templateFor(tok, cfg);
  return { template, encode: chatEncoder(tok, template, cfg.data.train_on) };
}

/** Optimizer steps of a run: training.max_steps, else epochs over the rows. */
export function totalStepsOf(cfg: TrainConfig, nRows: number): number {
  const per = cfg.training.micro_batch_size * cfg.training.grad_accum;
  return cfg.training.max_steps ?? Math.max(1, Math.ceil((cfg.training.epochs * nRows) / per));
}

/** What an entry point decides beyond the config: the run's length, padding, and its own hooks. */
export type TrainerExtras = Omit<Partial<TrainerOptions>, 'padId'> & { totalSteps: number; padId: number };

/** The Trainer's options from the config's `training` section, `output_dir` and `seed`. */
export function trainerOptionsOf(cfg: TrainConfig, extras: TrainerExtras): TrainerOptions {
  const t = cfg.training;
  if (t.lr === undefined) throw new Error('trainerOptionsOf: training.lr is unresolved (call resolveLearningRate first)');
  return {
    outputDir: cfg.output_dir, seed: cfg.seed,
    microBatchSize: t.micro_batch_size, gradAccum: t.grad_accum, lr: t.lr,
    warmupSteps: warmupStepsOf(extras.totalSteps, {
      ...(t.warmup_steps !== undefined ? { steps: t.warmup_steps } : {}),
      ...(t.warmup_ratio !== undefined ? { ratio: t.warmup_ratio } : {}),
    }),
    schedule: t.schedule, minLrRatio: t.min_lr_ratio,
    weightDecay: t.weight_decay, beta1: t.beta1, beta2: t.beta2, eps: t.eps, maxGradNorm: t.max_grad_norm,
    logEvery: t.log_every, evalEvery: t.eval_every, saveEvery: t.save_every, keepLast: t.keep_last,
    ...(t.gradient_checkpointing ? { checkpointing: true } : {}),
    ...extras,
  };
}

/**
 * Fail fast: every path a run needs — output_dir writable, the data (or prepared rows) present, the
 * model and its tokenizer found and readable — is checked before data preparation or model loading
 * starts. Returns the tokenizer.
 */
export function preflightTrain(cfg: TrainConfig, o: { prepared?: string | undefined; engine?: 'native' | 'torch' } = {}): Tokenizer {
  ensureWritableDir(cfg.output_dir, 'output_dir');
  // (the torch engine's bf16 is CUDA autocast: this CPU's instructions do not matter there)
  if (cfg.training.precision === 'bf16' && o.engine !== 'torch') requireBf16('training.precision: bf16');
  // the bf16 base is multiplied by the bf16 GEMM (activations rounded to bf16, fp32 accumulation)
  if (cfg.lora?.base_dtype === 'bf16') requireBf16('lora.base_dtype: bf16');
  const files = o.prepared ? [o.prepared] : [...cfg.data.datasets, ...(cfg.data.eval_datasets ?? [])].map((d) => d.path);
  for (const f of files) if (!existsSync(f)) throw new MixtuneError(`${f}: data file not found`);
  const tok = checkModelAndTokenizer(cfg.model, cfg.tokenizer);
  checkContextLength(cfg);
  return tok;
}

function contextError(cfg: TrainConfig, context: number, what: string): MixtuneError {
  return new MixtuneError(`data.max_len: ${what} beyond the model's context of ${context} tokens (max_position_embeddings / seq_len of ${cfg.model}); ` +
    `lower data.max_len to ${context}, or extend the model's context deliberately (rope_scaling in its config.json)`);
}

/**
 * RoPE positions must stay inside the model's context. Rows of n = 1 groups (sft, moi) have
 * positions up to max_len − 1, so max_len itself is checked before preparation; MISO groups restart
 * positions per input, so their rows are checked after (pass them).
 */
export function checkContextLength(cfg: TrainConfig, rows?: readonly { positions: Int32Array }[]): void {
  const context = modelConfigOf(cfg.model).maxSeqLen;
  const miso = cfg.recipe.name === 'miso-para' || cfg.recipe.name === 'miso-augment-only' || cfg.recipe.name === 'miso-succ';
  if (!rows) {
    if (!miso && cfg.data.max_len > context) throw contextError(cfg, context, `${cfg.data.max_len} puts positions`);
    return;
  }
  let maxPos = -1;
  for (const r of rows) for (const p of r.positions) if (p > maxPos) maxPos = p;
  if (maxPos >= context) throw contextError(cfg, context, `the prepared rows reach position ${maxPos},`);
}

/** The memory a run of this config needs at its peak (see src/train/memory.ts). */
export function trainMemoryEstimate(cfg: TrainConfig): MemoryEstimate {
  return estimateTrainMemory(modelConfigOf(cfg.model), {
    tokensPerMicroBatch: cfg.training.micro_batch_size * cfg.data.max_len,
    ...(cfg.lora ? { lora: { rank: cfg.lora.rank, targets: cfg.lora.targets } } : {}),
    ...(cfg.training.gradient_checkpointing ? { checkpointing: true } : {}),
    ...(cfg.lora?.base_dtype === 'bf16' ? { baseBf16: true } : {}),
    ...(cfg.training.precision === 'bf16' ? { precisionBf16: true, ...(cfg.training.bf16_ops ? { bf16Ops: cfg.training.bf16_ops } : {}) } : {}),
  });
}

/** Fills training.lr with the default for what is trained when the config gives none; says which. */
export function resolveLearningRate(cfg: TrainConfig): string {
  if (cfg.training.lr !== undefined) return `lr ${cfg.training.lr}`;
  const d = defaultLearningRate(parameterCount(modelConfigOf(cfg.model)), Boolean(cfg.lora));
  cfg.training.lr = d.lr;
  return `lr ${d.lr} (${d.why})`;
}
