// Finds and loads a model and its tokenizer from a path the user gave.
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Kernels } from '../tensor/kernels.js';
import { LlamaModel } from '../model/llama.js';
import type { Tokenizer } from '../tokenizer.js';
import { MixtuneError } from '../util/errors.js';
import { loadLlama2c } from './llama2c.js';
import { Llama2cTokenizer } from './llama2c-tokenizer.js';
import { HfTokenizer } from './hf-tokenizer.js';
import { type GenerationConfig, loadHfModel } from './hf-model.js';

export type ModelFormat = 'llama2c' | 'hf';

export interface LoadedModel {
  model: LlamaModel;
  format: ModelFormat;
  /** generation_config.json of an HF folder, when present. */
  generationConfig?: GenerationConfig;
}

/** A llama2.c .bin checkpoint, or a Hugging Face model folder (config.json + safetensors). */
export function loadModel(path: string, kernels: Kernels): LoadedModel {
  if (!existsSync(path)) throw new MixtuneError(`${path}: model file not found`);
  if (statSync(path).isDirectory()) {
    const hf = loadHfModel(path);
    const model = new LlamaModel(hf.config, kernels, hf.weights, path);
    hf.weights.clear(); // the model holds the arrays; drop the map
    return { model, format: 'hf', ...(hf.generationConfig ? { generationConfig: hf.generationConfig } : {}) };
  }
  const { config, weights } = loadLlama2c(path);
  return { model: new LlamaModel(config, kernels, weights, path), format: 'llama2c' };
}

/**
 * The tokenizer at `path` (a file, or a folder), else the one belonging to the model: inside the
 * model folder, or tokenizer.bin beside a .bin checkpoint. In a folder, tokenizer.json is
 * preferred over tokenizer.bin.
 */
export function loadTokenizer(path: string | undefined, modelPath: string, vocabSize: number): Tokenizer {
  let p = path;
  if (!p) {
    if (existsSync(modelPath) && statSync(modelPath).isDirectory()) return loadTokenizerFolder(modelPath, vocabSize, true);
    const beside = join(dirname(modelPath), 'tokenizer.bin');
    if (!existsSync(beside)) throw new MixtuneError(`no tokenizer: pass --tokenizer (looked for ${beside})`);
    p = beside;
  }
  if (!existsSync(p)) throw new MixtuneError(`${p}: tokenizer file not found`);
  if (statSync(p).isDirectory()) return loadTokenizerFolder(p, vocabSize, false);
  return Llama2cTokenizer.load(p, vocabSize);
}

function loadTokenizerFolder(dir: string, vocabSize: number, isModelDir: boolean): Tokenizer {
  const json = join(dir, 'tokenizer.json');
  if (existsSync(json)) {
    const tok = HfTokenizer.load(dir);
    if (tok.vocabSize > vocabSize) throw new MixtuneError(`${json}: the tokenizer has ${tok.vocabSize} tokens but the model only ${vocabSize}`);
    return tok;
  }
  const bin = join(dir, 'tokenizer.bin');
  if (existsSync(bin)) return Llama2cTokenizer.load(bin, vocabSize);
  throw new MixtuneError(`${dir}: no tokenizer.json or tokenizer.bin in the folder${isModelDir ? '; pass --tokenizer' : ''}`);
}
