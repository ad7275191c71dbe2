// Finds and loads a model and its tokenizer from a path the user gave.
import { existsSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import type { Kernels } from '../tensor/kernels.js';
import { LlamaModel } from '../model/llama.js';
import type { Tokenizer } from '../tokenizer.js';
import { MixtuneError } from '../util/errors.js';
import { loadLlama2c } from './llama2c.js';
import { Llama2cTokenizer } from './llama2c-tokenizer.js';

export type ModelFormat = 'llama2c';

export interface LoadedModel {
  model: LlamaModel;
  format: ModelFormat;
}

export function loadModel(path: string, kernels: Kernels): LoadedModel {
  if (!existsSync(path)) throw new MixtuneError(`${path}: model file not found`);
  if (statSync(path).isDirectory()) {
    throw new MixtuneError(`${path}: Hugging Face model folders are not supported yet; pass a llama2.c .bin checkpoint`);
  }
  const { config, weights } = loadLlama2c(path);
  return { model: new LlamaModel(config, kernels, weights, path), format: 'llama2c' };
}

/** The tokenizer at `path`, or tokenizer.bin beside the model when no path is given. */
export function loadTokenizer(path: string | undefined, modelPath: string, vocabSize: number): Tokenizer {
  let p = path;
  if (!p) {
    const beside = join(dirname(modelPath), 'tokenizer.bin');
    if (!existsSync(beside)) throw new MixtuneError(`no tokenizer: pass --tokenizer (looked for ${beside})`);
    p = beside;
  }
  if (!existsSync(p)) throw new MixtuneError(`${p}: tokenizer file not found`);
  return Llama2cTokenizer.load(p, vocabSize);
}
