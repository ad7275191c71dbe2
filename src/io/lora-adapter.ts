// PEFT LoRA adapter folders (adapter_config.json + adapter_model.safetensors): written after a LoRA
// run beside the merged model, and loaded back onto a plain model. The adapters themselves live in
// src/model/lora.ts; this file is only the file format.
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { basename, dirname, join, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { MixtuneError } from '../util/errors.js';
import { readSafetensors, writeSafetensors, type TensorToWrite } from './safetensors.js';
import type { LlamaModel } from '../model/llama.js';
import { applyLora, LORA_MODULES, loraSettings, removeLora, trainableParams, type LoraAdapter, type LoraTarget } from '../model/lora.js';


/**
 * Writes a PEFT-compatible adapter folder (adapter_config.json + adapter_model.safetensors, F32),
 * atomically (temporary folder + rename; refuses a non-empty DIR unless overwrite).
 */
export function saveLoraAdapter(dir: string, model: LlamaModel, opts: { baseModel?: string; overwrite?: boolean } = {}): void {
  const s = loraSettings(model);
  if (!s) throw new MixtuneError(`${dir}: cannot save LoRA adapter: the model has no adapters`);
  if (existsSync(dir) && readdirSync(dir).length > 0 && !opts.overwrite) {
    throw new MixtuneError(`${dir}: folder exists and is not empty (pass overwrite to replace it)`);
  }
  const config = {
    peft_type: 'LORA',
    task_type: 'CAUSAL_LM',
    base_model_name_or_path: opts.baseModel ?? null,
    r: s.rank,
    lora_alpha: s.alpha,
    lora_dropout: s.dropout,
    target_modules: s.targets.map((t) => LORA_MODULES[t].split('.')[1]),
    bias: 'none',
    fan_in_fan_out: false,
    inference_mode: true,
    init_lora_weights: true,
    modules_to_save: null,
    use_rslora: false,
    use_dora: false,
    layers_to_transform: null,
    rank_pattern: {},
    alpha_pattern: {},
  };
  const tensors = new Map<string, TensorToWrite>();
  for (const [n, t] of trainableParams(model)) tensors.set(n, { shape: t.shape, data: t.data });
  const parent = dirname(resolve(dir));
  const tmp = join(parent, `${basename(resolve(dir))}.tmp-${randomBytes(4).toString('hex')}`);
  mkdirSync(tmp);
  try {
    writeFileSync(join(tmp, 'adapter_config.json'), JSON.stringify(config, null, 2) + '\n');
    writeSafetensors(join(tmp, 'adapter_model.safetensors'), tensors, { metadata: { format: 'pt' } });
    if (existsSync(dir)) rmSync(dir, { recursive: true, force: true });
    renameSync(tmp, dir);
  } finally {
    if (existsSync(tmp)) rmSync(tmp, { recursive: true, force: true });
  }
}

/**
 * Loads a PEFT LoRA adapter folder onto a (plain) model: applyLora with the folder's r,
 * lora_alpha, lora_dropout and target_modules, then the saved A/B values. Supports the subset
 * mixtune writes: no rank/alpha patterns, no rslora/DoRA, no bias, no layers_to_transform.
 */
export function loadLoraAdapter(dir: string, model: LlamaModel): Map<string, LoraAdapter> {
  const cfgPath = join(dir, 'adapter_config.json');
  let cfg: Record<string, unknown>;
  try {
    cfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as Record<string, unknown>;
  } catch (e) {
    throw new MixtuneError(`${cfgPath}: cannot read adapter config (${(e as Error).message.split('\n')[0]})`);
  }
  const fail = (what: string): never => {
    throw new MixtuneError(`${cfgPath}: ${what}`);
  };
  if (cfg.peft_type !== 'LORA') fail(`peft_type ${JSON.stringify(cfg.peft_type)} is not supported (only LORA)`);
  if (cfg.use_rslora === true) fail('use_rslora: true is not supported');
  if (cfg.use_dora === true) fail('use_dora: true is not supported');
  if (cfg.bias !== undefined && cfg.bias !== 'none') fail(`bias ${JSON.stringify(cfg.bias)} is not supported (only none)`);
  if (cfg.fan_in_fan_out === true) fail('fan_in_fan_out: true is not supported');
  for (const k of ['rank_pattern', 'alpha_pattern']) {
    const v = cfg[k];
    if (v && typeof v === 'object' && Object.keys(v).length > 0) fail(`${k} is not supported`);
  }
  if (cfg.layers_to_transform !== undefined && cfg.layers_to_transform !== null) fail('layers_to_transform is not supported');
  const byModule = new Map(Object.entries(LORA_MODULES).map(([t, m]) => [m.split('.')[1]!, t as LoraTarget]));
  const tm = cfg.target_modules;
  if (!Array.isArray(tm) || tm.length === 0) fail('target_modules must be a non-empty list');
  const targets = (tm as unknown[]).map((m) => byModule.get(String(m)) ?? fail(`target module ${JSON.stringify(m)} is not supported`));
  const ads = applyLora(model, {
    rank: Number(cfg.r), alpha: Number(cfg.lora_alpha), dropout: Number(cfg.lora_dropout ?? 0), targets,
  });
  const sf = readSafetensors(join(dir, 'adapter_model.safetensors'));
  const want = trainableParams(model);
  for (const name of sf.tensors.keys()) {
    // PEFT may save with or without the adapter name ("default") inside the key.
    const key = name.replace(/\.lora_([AB])\.default\.weight$/, '.lora_$1.weight');
    const t = want.get(key);
    if (!t) {
      removeLora(model);
      throw new MixtuneError(`${sf.path}: unexpected tensor ${name}`);
    }
    const info = sf.tensors.get(name)!;
    if (info.shape.join() !== t.shape.join()) {
      removeLora(model);
      throw new MixtuneError(`${sf.path}: tensor ${name} has shape [${info.shape.join(', ')}], expected [${t.shape.join(', ')}]`);
    }
    t.data.set(sf.read(name));
    want.delete(key);
  }
  if (want.size > 0) {
    removeLora(model);
    throw new MixtuneError(`${sf.path}: missing tensor ${[...want.keys()][0]}`);
  }
  return ads;
}
