// `mixtune train --config train.yaml`: load the model and tokenizer, prepare packed rows, train
// (optionally with LoRA), checkpoint, and export the final model as an HF folder.
import { copyFileSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { nativeKernels } from '../tensor/native.js';
import { loadModel, loadTokenizer } from '../io/load.js';
import { ChatTemplate, encodeConversation, pickChatTemplate, type ChatMessage } from '../io/chat.js';
import { saveHfModel } from '../io/hf-model.js';
import { writeLlama2cTokenizerFiles } from '../io/tokenizer-json.js';
import { Llama2cTokenizer } from '../io/llama2c-tokenizer.js';
import { configToHf } from '../io/hf-config.js';
import { applyLora, loraRngState, mergeLora, saveLoraAdapter, setLoraRngState, trainableParams } from '../model/lora.js';
import { loadTrainConfig, type TrainConfig } from '../train/config.js';
import { loadPrepared, prepareRows, type ExampleEncoder } from '../train/prepare.js';
import { Trainer } from '../train/trainer.js';
import { warmupStepsOf } from '../train/schedule.js';
import { resolveResume, ADAPTER_FILE, WEIGHTS_FILE } from '../train/checkpoint.js';
import { writeJsonAtomic } from '../util/fs.js';
import type { Tokenizer } from '../tokenizer.js';
import type { LlamaModel } from '../model/llama.js';
import { MixtuneError } from '../util/errors.js';

export interface TrainCliOptions {
  config: string;
  set: string[];
  resume?: string | boolean;
  skipBad?: boolean;
  maxSteps?: number;
  outputDir?: string;
  seed?: number;
  stopAfter?: number;
  progress?: boolean;
  /** Rows saved by `mixtune prepare --out` (overrides data.prepared). */
  prepared?: string;
}

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

export function templateFor(tok: Tokenizer, cfg: TrainConfig): ChatTemplate {
  return ChatTemplate.forTokenizer(tok, { plain: cfg.data.template === 'plain', ...(cfg.data.chat_template !== undefined ? { template: cfg.data.chat_template } : {}) });
}

/**
 * Tokenizer files to ship with exported folders and checkpoints, carrying `chatTemplate`, the
 * template the model was trained with (data.chat_template or data.template: plain may differ
 * from the model folder's), so `generate --chat` on the result renders prompts the same way.
 */
function tokenizerFileWriter(tokPath: string | undefined, modelPath: string, tok: Tokenizer, maxLen: number, chatTemplate: string): (dir: string) => void {
  return (dir) => {
    const folder = tokPath && existsSync(tokPath) && statSync(tokPath).isDirectory() ? tokPath : statSync(modelPath).isDirectory() ? modelPath : null;
    if (folder && existsSync(join(folder, 'tokenizer.json'))) {
      for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'tokenizer.model']) {
        if (existsSync(join(folder, f))) copyFileSync(join(folder, f), join(dir, f));
      }
      const cfgFile = join(dir, 'tokenizer_config.json');
      const cfg = existsSync(cfgFile) ? (JSON.parse(readFileSync(cfgFile, 'utf8')) as Record<string, unknown>) : {};
      let shipped: string | undefined;
      try {
        shipped = pickChatTemplate(cfg.chat_template, cfgFile);
      } catch {
        shipped = undefined;
      }
      if (shipped !== chatTemplate) writeJsonAtomic(cfgFile, { ...cfg, chat_template: chatTemplate });
      return;
    }
    if (tok instanceof Llama2cTokenizer) writeLlama2cTokenizerFiles(dir, tok, { chatTemplate, modelMaxLength: maxLen });
  };
}

export async function runTrain(o: TrainCliOptions): Promise<void> {
  const sets = [...o.set];
  if (o.skipBad) sets.push('data.skip_bad=true');
  if (o.maxSteps !== undefined) sets.push(`training.max_steps=${o.maxSteps}`);
  if (o.seed !== undefined) sets.push(`seed=${o.seed}`);
  const cfg = loadTrainConfig(o.config, sets);
  if (o.outputDir) cfg.output_dir = o.outputDir;
  const log = (s: string): void => void process.stderr.write(s + '\n');

  const t0 = performance.now();
  const { model } = loadModel(cfg.model, nativeKernels());
  const tok = loadTokenizer(cfg.tokenizer, cfg.model, model.config.vocabSize);
  const template = templateFor(tok, cfg);
  if (cfg.lora) applyLora(model, { rank: cfg.lora.rank, alpha: cfg.lora.alpha, dropout: cfg.lora.dropout, targets: cfg.lora.targets, seed: cfg.seed });
  const trainable = trainableParams(model);

  const preparedFile = o.prepared ?? cfg.data.prepared;
  const prep = preparedFile ? loadPrepared(preparedFile) : prepareRows(cfg, chatEncoder(tok, template, cfg.data.train_on));
  const s = prep.stats;
  if (preparedFile) log(`data: prepared rows from ${preparedFile} (recipe ${s.recipe})`);
  log(`data: recipe ${s.recipe}; ${Object.entries(s.examples).map(([d, n]) => `${d}=${n}`).join(' ')} examples, ${s.evalExamples} eval; ` +
    `${s.train.rows} rows of <= ${cfg.data.max_len} tokens (packing efficiency ${(s.train.efficiency * 100).toFixed(1)}%), ` +
    `${s.train.targetTokens} trained tokens; truncated ${s.train.truncated}, dropped ${s.train.dropped}, skipped ${s.skippedBad}, no-target ${s.noTargets}`);
  for (const w of s.warnings) log(`warning: ${w}`);

  const per = cfg.training.micro_batch_size * cfg.training.grad_accum;
  const totalSteps = cfg.training.max_steps ?? Math.max(1, Math.ceil((cfg.training.epochs * prep.train.length) / per));
  const maxLen = cfg.data.max_len;
  const writeTok = tokenizerFileWriter(cfg.tokenizer, cfg.model, tok, maxLen, template.text);
  const isLora = Boolean(cfg.lora);
  const trainer = new Trainer(model, trainable, prep.train, prep.eval, {
    outputDir: cfg.output_dir, seed: cfg.seed, totalSteps,
    microBatchSize: cfg.training.micro_batch_size, gradAccum: cfg.training.grad_accum,
    lr: cfg.training.lr,
    warmupSteps: warmupStepsOf(totalSteps, {
      ...(cfg.training.warmup_steps !== undefined ? { steps: cfg.training.warmup_steps } : {}),
      ...(cfg.training.warmup_ratio !== undefined ? { ratio: cfg.training.warmup_ratio } : {}),
    }),
    schedule: cfg.training.schedule, minLrRatio: cfg.training.min_lr_ratio,
    weightDecay: cfg.training.weight_decay, beta1: cfg.training.beta1, beta2: cfg.training.beta2, eps: cfg.training.eps,
    maxGradNorm: cfg.training.max_grad_norm, logEvery: cfg.training.log_every, evalEvery: cfg.training.eval_every,
    saveEvery: cfg.training.save_every, keepLast: cfg.training.keep_last, padId: padIdOf(tok),
    weightsFile: isLora ? ADAPTER_FILE : WEIGHTS_FILE,
    checkpointExtras: (dir) => {
      // A full fine-tuning checkpoint is itself a loadable HF folder.
      if (!isLora) writeJsonAtomic(join(dir, 'config.json'), configToHf(model.config));
      writeTok(dir);
    },
    ...(isLora ? { extraState: { save: () => ({ loraRng: loraRngState(model) }), restore: (x: unknown) => setLoraRngState(model, (x as { loraRng: number[] }).loraRng) } } : {}),
    ...(o.stopAfter !== undefined ? { stopAfter: o.stopAfter } : {}),
    ...(o.progress === false ? { progress: false } : {}),
    log,
  });
  const resume = o.resume === undefined || o.resume === false ? undefined : resolveResume(cfg.output_dir, o.resume === true ? 'latest' : o.resume);
  log(`training ${totalSteps} steps (${per} rows/step, ${isLora ? `LoRA r=${cfg.lora!.rank} on ${cfg.lora!.targets.join(',')}` : 'full fine-tuning'}), output ${cfg.output_dir}`);
  const r = trainer.run(resume);

  let exported: string | null = null;
  if (r.steps >= totalSteps) exported = exportModel(model, cfg, isLora, writeTok, log);
  const summary = {
    steps: r.steps,
    total_steps: totalSteps,
    tokens: r.tokens,
    seconds: Math.round(r.seconds * 10) / 10,
    tokens_per_s: r.seconds > 0 ? Math.round(r.tokens / r.seconds) : 0,
    final_loss: r.finalLoss,
    eval_loss: r.evalLoss,
    peak_rss_mb: r.peakRssMb,
    wall_seconds: Math.round((performance.now() - t0) / 100) / 10,
    data: {
      recipe: s.recipe, recipe_info: s.recipeInfo,
      examples: s.examples, eval_examples: s.evalExamples, rows: s.train.rows, packing_efficiency: s.train.efficiency,
      trained_tokens: s.train.targetTokens, truncated: s.train.truncated, dropped: s.train.dropped, skipped_bad: s.skippedBad,
      skip_reasons: s.skipReasons, without_targets: s.noTargets, warnings: s.warnings,
    },
    resumed_from: r.resumedFrom,
    exported,
  };
  mkdirSync(cfg.output_dir, { recursive: true });
  writeJsonAtomic(join(cfg.output_dir, 'summary.json'), summary);
  log(`done: ${r.steps}/${totalSteps} steps, ${r.tokens} tokens in ${summary.seconds}s (${summary.tokens_per_s} tok/s), ` +
    `loss ${r.finalLoss.toFixed(4)}${r.evalLoss !== null ? `, eval loss ${r.evalLoss.toFixed(4)}` : ''}, peak RSS ${r.peakRssMb} MB` +
    (exported ? `; model saved to ${exported}` : r.steps < totalSteps ? `; stopped early, resume with --resume` : ''));
}

function exportModel(model: LlamaModel, cfg: TrainConfig, isLora: boolean, writeTok: (dir: string) => void, log: (s: string) => void): string {
  const dir = join(cfg.output_dir, 'final');
  if (isLora) {
    saveLoraAdapter(join(cfg.output_dir, 'adapter'), model, { baseModel: cfg.model, overwrite: true });
    mergeLora(model);
    log(`LoRA adapter saved to ${join(cfg.output_dir, 'adapter')}; merged into the exported model`);
  }
  saveHfModel(dir, model, { dtype: cfg.export.dtype === 'bf16' ? 'BF16' : 'F32', beforeCommit: writeTok, overwrite: true });
  return dir;
}

function padIdOf(tok: Tokenizer): number {
  const p = (tok as Tokenizer & { padId?: number }).padId;
  if (typeof p === 'number' && p >= 0) return p;
  return tok.eosId >= 0 ? tok.eosId : 0;
}

export function checkTrainArgs(o: TrainCliOptions): void {
  if (!existsSync(o.config)) throw new MixtuneError(`${o.config}: config file not found`);
}
