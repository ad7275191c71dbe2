// `mixtune convert`: a llama2.c checkpoint (or stories260K) + tokenizer.bin -> a Hugging Face model folder
// (config.json, model.safetensors, generation_config.json, tokenizer files), written atomically.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadLlama2c } from '../io/llama2c.js';
import { Llama2cTokenizer } from '../io/llama2c-tokenizer.js';
import { checkOutputDir, saveHfModel } from '../io/hf-model.js';
import { writeLlama2cTokenizerFiles } from '../io/tokenizer-json.js';
import { PLAIN_CHAT_TEMPLATE } from '../io/chat.js';
import { MixtuneError } from '../util/errors.js';
import { findTokenizer, modelPathOf } from '../io/load.js';

export interface ConvertCliOptions {
  from: string;
  tokenizer?: string;
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
  const from = modelPathOf(o.from); // a .bin, or the embedded stories260K
  const tokLoc = findTokenizer(o.tokenizer, o.from);
  if (tokLoc.kind !== 'llama2c') throw new MixtuneError(`${tokLoc.path}: convert needs a llama2.c tokenizer.bin, not an HF tokenizer folder`);
  const { config, weights } = loadLlama2c(from);
  const tok = Llama2cTokenizer.load(tokLoc.path, config.vocabSize);
  saveHfModel(o.to, { config, weights }, {
    dtype: dtype === 'bf16' ? 'BF16' : 'F32',
    arch: 'llama',
    configExtra: { bos_token_id: tok.bosId, eos_token_id: tok.eosId },
    // TinyStories-style llama2.c models end a story with BOS; llama2.c stops on it, so do HF tools.
    generationConfig: { bos_token_id: tok.bosId, eos_token_id: [tok.eosId, tok.bosId], do_sample: false },
    beforeCommit: (tmp) => writeTokenizerFiles(tmp, tok, tokLoc.path, config.maxSeqLen),
    overwrite: o.overwrite ?? false,
  });
  process.stderr.write(`mixtune: wrote ${o.to} (${config.nLayers} layers, dim ${config.dim}, vocab ${config.vocabSize}, ${dtype})\n`);
}
