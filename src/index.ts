// mixtune's library entry point.
export type { Kernels } from './tensor/kernels.js';
export { nativeKernels } from './tensor/native.js';
export { referenceKernels } from './tensor/reference.js';
export { Tensor, Tape } from './tensor/tensor.js';
export { LlamaModel, IGNORE_INDEX, type KvCache, type ForwardOptions, type ForwardResult } from './model/llama.js';
export { type LlamaConfig, parameterShapes } from './model/config.js';
export { loadLlama2c, saveLlama2c } from './io/llama2c.js';
export { Llama2cTokenizer } from './io/llama2c-tokenizer.js';
export { loadModel, loadTokenizer } from './io/load.js';
export type { Tokenizer } from './tokenizer.js';
export { generate, type GenerateOptions, type GenerateResult } from './infer/generate.js';
export { sampleToken, argmax, type SamplingOptions } from './infer/sample.js';
export { AdamW, clipGradNorm } from './train/adamw.js';
export { Rng } from './util/rng.js';
export { MixtuneError } from './util/errors.js';
export { bestIsa, currentIsa, setIsa, numThreads, setNumThreads } from './native.js';
