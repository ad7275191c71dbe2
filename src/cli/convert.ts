// `mixtune convert`: a llama2.c checkpoint + tokenizer.bin -> a Hugging Face model folder
// (config.json, model.safetensors, generation_config.json, tokenizer files), written atomically.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadLlama2c } from '../io/llama2c.js';
import { Llama2cTokenizer } from '../io/llama2c-tokenizer.js';
import { checkOutputDir, saveHfModel } from '../io/hf-model.js';
import { writeLlama2cTokenizerFiles } from '../io/tokenizer-json.js';
import { PLAIN_CHAT_TEMPLATE } from '../io/chat.js';
import { MixtuneError } from '../util/errors.js';

export interface ConvertCliOptions {
  from: string;
  tokenizer: string;
  to: string;
  dtype?: string;
  overwrite?: boolean;
}

/**
 * Writes the tokenizer files of a converted llama2.c model into `dir` (the temporary folder
 * before it is renamed into place): tokenizer.json (SentencePiece-style BPE that encodes exactly
 * like tok.bin), tokenizer_config.json, and tokenizer.bin (a byte copy of the source).
 */
export function writeTokenizerFiles(dir: string, tok: Llama2cTokenizer, tokBinPath: string, modelMaxLength?: number): void {
  writeLlama2cTokenizerFiles(dir, tok, { chatTemplate: PLAIN_CHAT_TEMPLATE, ...(modelMaxLength !== undefined ? { modelMaxLength } : {}) });
  writeFileSync(join(dir, 'tokenizer.bin'), readFileSync(tokBinPath));
}

export async function runConvert(o: ConvertCliOptions): Promise<void> {
  const dtype = (o.dtype ?? 'f32').toLowerCase();
  if (dtype !== 'f32' && dtype !== 'bf16') throw new MixtuneError(`--dtype must be f32 or bf16, got '${o.dtype}'`);
  checkOutputDir(o.to, o.overwrite ?? false); // fail before loading anything
  const { config, weights } = loadLlama2c(o.from);
  const tok = Llama2cTokenizer.load(o.tokenizer, config.vocabSize);
  saveHfModel(o.to, { config, weights }, {
    dtype: dtype === 'bf16' ? 'BF16' : 'F32',
    arch: 'llama',
    configExtra: { bos_token_id: tok.bosId, eos_token_id: tok.eosId },
    // TinyStories-style llama2.c models end a story with BOS; llama2.c stops on it, so do HF tools.
    generationConfig: { bos_token_id: tok.bosId, eos_token_id: [tok.eosId, tok.bosId], do_sample: false },
    beforeCommit: (tmp) => writeTokenizerFiles(tmp, tok, o.tokenizer, config.maxSeqLen),
    overwrite: o.overwrite ?? false,
  });
  process.stderr.write(`mixtune: wrote ${o.to} (${config.nLayers} layers, dim ${config.dim}, vocab ${config.vocabSize}, ${dtype})\n`);
}
