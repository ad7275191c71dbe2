// `mixtune export gguf` as a library call: a model reference (llama2.c .bin, HF folder, or an
// embedded name) and its tokenizer -> a GGUF v3 file (+ optionally an Ollama Modelfile beside it).
import { statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import type { LlamaConfig } from '../model/config.js';
import type { Tokenizer } from '../tokenizer.js';
import { MixtuneError } from '../util/errors.js';
import { writeTextAtomic } from '../util/fs.js';
import { loadHfModel } from './hf-model.js';
import { loadLlama2c } from './llama2c.js';
import { loadTokenizer, modelPathOf } from './load.js';
import { resolveModelRef } from './model-ref.js';
import { checkGgufOutput } from './gguf.js';
import { type GgufDtype, GGUF_DTYPES, exportGguf } from './gguf-export.js';
import { type GgufVocab, ggufVocabFromTokenizer } from './gguf-vocab.js';
import { ollamaModelfile } from './ollama.js';

export interface ExportModelGgufOptions {
  model: string;
  tokenizer?: string | undefined;
  out: string;
  dtype?: GgufDtype;
  overwrite?: boolean;
  /** Also write an Ollama Modelfile beside the GGUF file. */
  modelfile?: boolean;
  /** The already loaded tokenizer (skips finding and loading it again). */
  tokenizerInstance?: Tokenizer;
}

export interface ExportModelGgufResult {
  path: string;
  modelfile?: string;
  config: LlamaConfig;
  vocab: GgufVocab;
  arch: 'llama' | 'qwen2';
  dtype: GgufDtype;
}

/** config + fp32 weights (HF names, mixtune layout) of a model reference, without building a LlamaModel. */
export function loadModelWeights(model: string): { config: LlamaConfig; weights: Map<string, Float32Array>; path: string } {
  const path = modelPathOf(model);
  if (statSync(path).isDirectory()) {
    const hf = loadHfModel(path);
    return { config: hf.config, weights: hf.weights, path };
  }
  const { config, weights } = loadLlama2c(path);
  return { config, weights, path };
}

function modelName(model: string, path: string): string {
  const ref = resolveModelRef(model);
  if (ref.embedded) return ref.embedded;
  const b = basename(path.replace(/[\\/]+$/, ''));
  return b === 'final' || b === 'model' ? `${basename(dirname(path))}-${b}` : b.replace(/\.bin$/, '');
}

export function exportModelGguf(o: ExportModelGgufOptions): ExportModelGgufResult {
  const dtype = o.dtype ?? 'f32';
  if (!GGUF_DTYPES.includes(dtype)) throw new MixtuneError(`--dtype must be one of ${GGUF_DTYPES.join(', ')}, got '${dtype}'`);
  checkGgufOutput(o.out, o.overwrite ?? false); // fail before loading anything
  const modelfilePath = join(dirname(o.out), 'Modelfile');
  if (o.modelfile) checkModelfile(modelfilePath, o.overwrite ?? false);
  const { config, weights, path } = loadModelWeights(o.model);
  const tok = o.tokenizerInstance ?? loadTokenizer(o.tokenizer, o.model, config.vocabSize);
  const vocab = ggufVocabFromTokenizer(tok, config.vocabSize);
  exportGguf(o.out, { config, weights }, vocab, { dtype, name: modelName(o.model, path), overwrite: o.overwrite ?? false });
  const result: ExportModelGgufResult = { path: o.out, config, vocab, arch: config.qkvBias ? 'qwen2' : 'llama', dtype };
  if (o.modelfile) {
    writeTextAtomic(modelfilePath, ollamaModelfile(basename(o.out), vocab, config), 'Modelfile');
    result.modelfile = modelfilePath;
  }
  return result;
}

function checkModelfile(path: string, overwrite: boolean): void {
  try {
    statSync(path);
  } catch {
    return;
  }
  if (!overwrite) throw new MixtuneError(`${path}: file exists (pass --overwrite to replace it)`);
}
