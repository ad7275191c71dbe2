// llama2.c tokenizer.bin -> Hugging Face tokenizer.json / tokenizer_config.json.
//
// The result is a SentencePiece-style BPE (as Llama 2's own tokenizer.json): normalizer
// Prepend("▁") + Replace(" " -> "▁"), no pre-tokenizer, BPE with byte_fallback, Llama's decoder.
// llama2.c merges the adjacent pair whose concatenation is a piece with the highest score
// (leftmost on ties); HF BPE merges the adjacent pair with the lowest merge rank (leftmost on
// ties). So the merges are: for every mergeable piece p (score > -1e10, not special, not a byte
// piece) and every split p = a + b into two pieces, the merge (a, b), ranked by p's score
// descending (ties: lower id first, then shorter a first). Both algorithms then pick the same
// result piece at every step; they can differ only when two *different* pieces have the same
// score, or the same piece can be formed by two different splits at two places at once (then
// llama2.c takes the leftmost, HF the split listed first). See test/tokenizer-json.test.ts.
import { copyFileSync, existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { Llama2cTokenizer } from './llama2c-tokenizer.js';
import { PLAIN_CHAT_TEMPLATE, pickChatTemplate } from './chat.js';
import type { Tokenizer } from '../tokenizer.js';
import { writeJsonAtomic } from '../util/fs.js';
import { MixtuneError } from '../util/errors.js';

/** llama2.c only merges pieces whose score is above this (run.c's `best_score = -1e10`). */
const MIN_MERGE_SCORE = Math.fround(-1e10);
const SPACE = '\u2581';

/** Names used for ids 0, 1, 2 (llama2.c stores them as "<unk>", "\n<s>\n", "\n</s>\n"). */
const SPECIALS = ['<unk>', '<s>', '</s>'] as const;

function isBytePiece(s: string): boolean {
  return /^<0x[0-9A-Fa-f]{2}>$/.test(s);
}

/**
 * tokenizer.json (as a plain object) that encodes exactly like `tok.encode` (see the file comment
 * for the one theoretical source of difference) and decodes like HF's Llama tokenizer.
 */
export function llama2cToTokenizerJson(tok: Llama2cTokenizer): Record<string, unknown> {
  const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
  const n = tok.vocabSize;
  const strs: string[] = new Array<string>(n);
  const vocab: Record<string, number> = {};
  const ids = new Map<string, number>();
  for (let i = 0; i < n; i++) {
    let s: string;
    if (i < SPECIALS.length) s = SPECIALS[i]!;
    else {
      try {
        s = utf8.decode(tok.pieces[i]!).replaceAll(' ', SPACE);
      } catch {
        throw new MixtuneError(`llama2.c tokenizer: piece ${i} is not valid UTF-8; it cannot be written to tokenizer.json`);
      }
    }
    if (s.length === 0) throw new MixtuneError(`llama2.c tokenizer: piece ${i} is empty; it cannot be written to tokenizer.json`);
    if (ids.has(s)) {
      throw new MixtuneError(`llama2.c tokenizer: piece ${i} ${JSON.stringify(s)} duplicates piece ${ids.get(s)}; tokenizer.json needs unique pieces`);
    }
    ids.set(s, i);
    vocab[s] = i;
    strs[i] = s;
  }
  if (!ids.has(SPACE)) throw new MixtuneError(`llama2.c tokenizer has no " " piece (needed for the dummy prefix)`);
  // Merge candidates: pieces that llama2.c can form by merging.
  const mergeable = (id: number): boolean => id >= SPECIALS.length && !isBytePiece(strs[id]!);
  const entries: { score: number; id: number; a: string; b: string }[] = [];
  for (let id = SPECIALS.length; id < n; id++) {
    if (!mergeable(id)) continue;
    const score = tok.scores[id]!;
    if (!(score > MIN_MERGE_SCORE)) continue;
    const cps = Array.from(strs[id]!);
    let prefix = '';
    for (let k = 1; k < cps.length; k++) {
      prefix += cps[k - 1]!;
      const rest = cps.slice(k).join('');
      const ia = ids.get(prefix);
      const ib = ids.get(rest);
      if (ia !== undefined && ib !== undefined && mergeable(ia) && mergeable(ib)) entries.push({ score, id, a: prefix, b: rest });
    }
  }
  entries.sort((x, y) => y.score - x.score || x.id - y.id || x.a.length - y.a.length);
  const anySpace = entries.some((e) => e.a.includes(' ') || e.b.includes(' '));
  const merges = entries.map((e) => (anySpace ? [e.a, e.b] : `${e.a} ${e.b}`));
  const added = SPECIALS.map((content, id) => ({ id, content, single_word: false, lstrip: false, rstrip: false, normalized: false, special: true }));
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: {
      type: 'Sequence',
      normalizers: [
        { type: 'Prepend', prepend: SPACE },
        { type: 'Replace', pattern: { String: ' ' }, content: SPACE },
      ],
    },
    pre_tokenizer: null,
    post_processor: {
      type: 'TemplateProcessing',
      single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
      pair: [
        { SpecialToken: { id: '<s>', type_id: 0 } },
        { Sequence: { id: 'A', type_id: 0 } },
        { SpecialToken: { id: '<s>', type_id: 1 } },
        { Sequence: { id: 'B', type_id: 1 } },
      ],
      special_tokens: { '<s>': { id: '<s>', ids: [1], tokens: ['<s>'] } },
    },
    decoder: {
      type: 'Sequence',
      decoders: [
        { type: 'Replace', pattern: { String: SPACE }, content: ' ' },
        { type: 'ByteFallback' },
        { type: 'Fuse' },
        { type: 'Strip', content: ' ', start: 1, stop: 0 },
      ],
    },
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: '<unk>',
      continuing_subword_prefix: null,
      end_of_word_suffix: null,
      fuse_unk: true,
      byte_fallback: true,
      ignore_merges: false,
      vocab,
      merges,
    },
  };
}

/**
 * tokenizer_config.json for a converted llama2.c tokenizer: BOS "<s>" (added by default), EOS
 * "</s>", unk "<unk>", no pad; `chatTemplate` (e.g. chat.ts PLAIN_CHAT_TEMPLATE) and
 * `modelMaxLength` (the model's seq_len) are optional.
 */
export function tokenizerConfigJson(opts?: { chatTemplate?: string; modelMaxLength?: number }): Record<string, unknown> {
  const decoder: Record<string, unknown> = {};
  SPECIALS.forEach((content, id) => {
    decoder[String(id)] = { content, lstrip: false, normalized: false, rstrip: false, single_word: false, special: true };
  });
  const cfg: Record<string, unknown> = {
    add_bos_token: true,
    add_eos_token: false,
    added_tokens_decoder: decoder,
    bos_token: '<s>',
    eos_token: '</s>',
    unk_token: '<unk>',
    pad_token: null,
    clean_up_tokenization_spaces: false,
    legacy: true,
    sp_model_kwargs: {},
    tokenizer_class: 'LlamaTokenizer',
  };
  if (opts?.modelMaxLength !== undefined) cfg.model_max_length = opts.modelMaxLength;
  if (opts?.chatTemplate !== undefined) cfg.chat_template = opts.chatTemplate;
  return cfg;
}

/** Writes tokenizer.json and tokenizer_config.json for `tok` into `dir` (each atomically). */
export function writeLlama2cTokenizerFiles(dir: string, tok: Llama2cTokenizer, opts?: { chatTemplate?: string; modelMaxLength?: number }): void {
  writeJsonAtomic(`${dir}/tokenizer.json`, llama2cToTokenizerJson(tok));
  writeJsonAtomic(`${dir}/tokenizer_config.json`, tokenizerConfigJson(opts));
}

/**
 * What to write beside exported weights (checkpoints, final/, demo models) so the folder loads on
 * its own: the source folder's HF tokenizer files (and its generation_config.json) copied as they
 * are, or tokenizer.json + tokenizer_config.json built from a llama2.c tokenizer. `chatTemplate`:
 * the template the model was trained with (data.chat_template or data.template: plain may differ
 * from the source folder's), written into tokenizer_config.json so `generate --chat` on the result
 * renders prompts the same way (default: the source's, or the plain one for llama2.c).
 */
export function tokenizerFilesWriter(tok: Tokenizer, from: { tokenizerDir?: string | undefined; modelDir?: string | undefined; modelMaxLength: number; chatTemplate?: string }): (dir: string) => void {
  const isDir = (p: string | undefined): p is string => p !== undefined && existsSync(p) && statSync(p).isDirectory();
  const tokDir = isDir(from.tokenizerDir) ? from.tokenizerDir : isDir(from.modelDir) ? from.modelDir : null;
  const hfFiles = tokDir !== null && (existsSync(join(tokDir, 'tokenizer.json')) || existsSync(join(tokDir, 'vocab.json')));
  const modelDir = isDir(from.modelDir) ? from.modelDir : null;
  return (dir) => {
    if (hfFiles) {
      for (const f of ['tokenizer.json', 'tokenizer_config.json', 'special_tokens_map.json', 'tokenizer.model', 'vocab.json', 'merges.txt']) {
        if (existsSync(join(tokDir!, f))) copyFileSync(join(tokDir!, f), join(dir, f));
      }
      if (from.chatTemplate !== undefined) {
        const cfgFile = join(dir, 'tokenizer_config.json');
        const cfg = existsSync(cfgFile) ? (JSON.parse(readFileSync(cfgFile, 'utf8')) as Record<string, unknown>) : {};
        let shipped: string | undefined;
        try {
          shipped = pickChatTemplate(cfg.chat_template, cfgFile);
        } catch {
          shipped = undefined;
        }
        if (shipped !== from.chatTemplate) writeJsonAtomic(cfgFile, { ...cfg, chat_template: from.chatTemplate });
      }
    } else if (tok instanceof Llama2cTokenizer) {
      writeLlama2cTokenizerFiles(dir, tok, { chatTemplate: from.chatTemplate ?? PLAIN_CHAT_TEMPLATE, modelMaxLength: from.modelMaxLength });
    }
    // the source model's sampling defaults and extra stop ids travel with the weights
    if (modelDir && existsSync(join(modelDir, 'generation_config.json'))) copyFileSync(join(modelDir, 'generation_config.json'), join(dir, 'generation_config.json'));
  };
}
