// Finds and loads a model and its tokenizer from what the user gave: a path, or the name of an
// embedded model (`stories260K`, see model-ref.ts).
import { closeSync, existsSync, openSync, readFileSync, readSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Kernels } from '../tensor/kernels.js';
import { LlamaModel } from '../model/llama.js';
import type { Tokenizer } from '../tokenizer.js';
import { MixtuneError, outOfMemoryError } from '../util/errors.js';
import { loadLlama2c } from './llama2c.js';
import { Llama2cTokenizer } from './llama2c-tokenizer.js';
import { HfTokenizer } from './hf-tokenizer.js';
import { type GenerationConfig, loadHfModel } from './hf-model.js';
import { resolveModelRef } from './model-ref.js';
import { configFromHf } from './hf-config.js';
import type { LlamaConfig } from '../model/config.js';

export type ModelFormat = 'llama2c' | 'hf';

export interface LoadedModel {
  model: LlamaModel;
  format: ModelFormat;
  /** generation_config.json of an HF folder, when present. */
  generationConfig?: GenerationConfig;
}

/** The file or folder a model argument points at (embedded names resolved); it must exist. */
export function modelPathOf(model: string): string {
  const path = resolveModelRef(model).model;
  if (!existsSync(path)) throw new MixtuneError(`${model}: model not found (a llama2.c .bin file, an HF model folder, or stories260K)`);
  return path;
}

/** A llama2.c .bin checkpoint, a Hugging Face model folder (config.json + safetensors), or an embedded name. */
export interface LoadModelOptions {
  /**
   * Keep every matrix as bf16 bits, frozen (lora.base_dtype: bf16): an HF folder's matrices are
   * read straight into bf16 (the fp32 model never exists); a llama2.c file is converted after loading.
   */
  bf16Matrices?: boolean;
}

export function loadModel(model: string, kernels: Kernels, opts: LoadModelOptions = {}): LoadedModel {
  const path = modelPathOf(model);
  try {
    return loadModelAt(path, kernels, opts);
  } catch (e) {
    throw outOfMemoryError(e, `loading the model ${path}`);
  }
}

function loadModelAt(path: string, kernels: Kernels, opts: LoadModelOptions): LoadedModel {
  if (statSync(path).isDirectory()) {
    const hf = loadHfModel(path, { bf16Matrices: opts.bf16Matrices === true });
    const m = new LlamaModel(hf.config, kernels, hf.weights, path);
    hf.weights.clear(); // the model holds the arrays; drop the map
    return { model: m, format: 'hf', ...(hf.generationConfig ? { generationConfig: hf.generationConfig } : {}) };
  }
  const { config, weights } = loadLlama2c(path);
  const m = new LlamaModel(config, kernels, weights, path);
  if (opts.bf16Matrices) {
    for (const t of m.params.values()) if (t.shape.length === 2) t.requiresGrad = false;
    m.storeFrozenMatricesInBf16();
  }
  return { model: m, format: 'llama2c' };
}

/** The model's config without loading its weights (HF config.json, or the llama2.c header). */
export function modelConfigOf(model: string): LlamaConfig {
  const path = modelPathOf(model);
  if (statSync(path).isDirectory()) {
    const p = join(path, 'config.json');
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(p, 'utf8'));
    } catch (e) {
      throw new MixtuneError(`${p}: cannot read the model config (${(e as NodeJS.ErrnoException).code ?? (e as Error).message.split('\n')[0]})`);
    }
    return configFromHf(raw, p);
  }
  return loadLlama2c(path, { configOnly: true }).config;
}

/** Where a tokenizer is found: a llama2.c tokenizer.bin file, or a folder with HF tokenizer files. */
export interface TokenizerLocation {
  kind: 'llama2c' | 'hf';
  path: string;
}

const HF_TOKENIZER_FILES = 'tokenizer.json, or vocab.json + merges.txt';

function folderTokenizer(dir: string): TokenizerLocation | null {
  if (existsSync(join(dir, 'tokenizer.json'))) return { kind: 'hf', path: dir };
  if (existsSync(join(dir, 'vocab.json')) && existsSync(join(dir, 'merges.txt'))) return { kind: 'hf', path: dir };
  if (existsSync(join(dir, 'tokenizer.bin'))) return { kind: 'llama2c', path: join(dir, 'tokenizer.bin') };
  return null;
}

/**
 * Finds the tokenizer without reading it: `path` (a file, or a folder) when given, else the one
 * belonging to the model — the embedded model's own, the tokenizer files inside an HF model folder,
 * or tokenizer.bin beside a .bin checkpoint. In a folder, tokenizer.json is preferred, then
 * vocab.json + merges.txt, then tokenizer.bin.
 */
export function findTokenizer(path: string | undefined, model: string): TokenizerLocation {
  if (path) {
    if (!existsSync(path)) throw new MixtuneError(`${path}: tokenizer file not found`);
    if (!statSync(path).isDirectory()) return { kind: 'llama2c', path };
    const loc = folderTokenizer(path);
    if (!loc) throw new MixtuneError(`${path}: no tokenizer in the folder (${HF_TOKENIZER_FILES}, or tokenizer.bin)`);
    return loc;
  }
  const ref = resolveModelRef(model);
  if (ref.tokenizer) return { kind: 'llama2c', path: ref.tokenizer };
  const modelPath = modelPathOf(model);
  if (statSync(modelPath).isDirectory()) {
    const loc = folderTokenizer(modelPath);
    if (!loc) throw new MixtuneError(`${modelPath}: no tokenizer in the model folder (${HF_TOKENIZER_FILES}, or tokenizer.bin); pass --tokenizer`);
    return loc;
  }
  const beside = join(dirname(modelPath), 'tokenizer.bin');
  if (!existsSync(beside)) throw new MixtuneError(`${modelPath}: no tokenizer: pass --tokenizer (looked for ${beside})`);
  return { kind: 'llama2c', path: beside };
}

/** Loads the tokenizer found by findTokenizer and checks it fits the model's vocabulary. */
export function loadTokenizer(path: string | undefined, model: string, vocabSize: number): Tokenizer {
  const loc = findTokenizer(path, model);
  if (loc.kind === 'llama2c') return Llama2cTokenizer.load(loc.path, vocabSize);
  const tok = HfTokenizer.load(loc.path);
  if (tok.vocabSize > vocabSize) throw new MixtuneError(`${loc.path}: the tokenizer has ${tok.vocabSize} tokens but the model only ${vocabSize}`);
  return tok;
}

/** The model's vocabulary size without loading its weights (HF config.json or a llama2.c header). */
export function modelVocabSize(model: string): number {
  const modelPath = modelPathOf(model);
  if (statSync(modelPath).isDirectory()) {
    const p = join(modelPath, 'config.json');
    try {
      const c = JSON.parse(readFileSync(p, 'utf8')) as { vocab_size?: unknown; text_config?: { vocab_size?: unknown } };
      const v = c.vocab_size ?? c.text_config?.vocab_size;
      if (typeof v === 'number' && v > 0) return v;
    } catch (e) {
      throw new MixtuneError(`${p}: cannot read vocab_size (${(e as Error).message})`);
    }
    throw new MixtuneError(`${p}: no vocab_size`);
  }
  const fd = openSync(modelPath, 'r');
  try {
    const b = Buffer.alloc(40);
    readSync(fd, b, 0, 40, 0);
    const off = b.readUInt32LE(0) === 0x616b3432 ? 8 : 0;
    const v = Math.abs(b.readInt32LE(off + 20));
    if (!(v > 0)) throw new MixtuneError(`${modelPath}: cannot read the vocabulary size from the llama2.c header`);
    return v;
  } finally {
    closeSync(fd);
  }
}

/**
 * Fail fast: checks that the model and its tokenizer can be found and read before a command spends
 * time on data. Loads the tokenizer (cheap) but not the weights; returns the tokenizer.
 */
export function checkModelAndTokenizer(model: string, tokenizer: string | undefined): Tokenizer {
  return loadTokenizer(tokenizer, model, modelVocabSize(model));
}
