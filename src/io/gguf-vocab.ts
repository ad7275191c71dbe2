// A mixtune tokenizer as GGUF tokenizer metadata (tokenizer.ggml.*), the way llama.cpp reads it.
//
// - SentencePiece-style (`tokenizer.ggml.model = llama`): llama2.c tokenizer.bin (its scores as
//   they are: llama.cpp's SPM tokenizer runs the same highest-score-first merge loop as llama2.c's
//   run.c), and HF tokenizer.json BPE with byte_fallback (Llama 2, Mistral, mixtune's own converted
//   llama2.c tokenizers). HF BPE merges pairs by rank; llama.cpp merges the adjacent pair whose
//   concatenation is a token with the highest score, so each token's score is minus the rank of
//   the first merge that makes it (pieces no merge makes keep score 0 for single characters,
//   specials and bytes, -1e9 otherwise). Token types: 1 normal, 2 unknown, 3 control (special added
//   tokens), 4 user-defined (other added tokens), 5 unused (padding), 6 byte (<0xXX>).
// - Byte-level BPE (`tokenizer.ggml.model = gpt2`: Qwen2/2.5, Llama 3): tokens in their byte-level
//   spelling, the merges as "a b" strings, and `tokenizer.ggml.pre` from the pre-tokenizer's split
//   regex (qwen2, llama-bpe, gpt-2; anything else is refused rather than guessed). Added tokens are
//   control tokens when special or shaped like <|...|> (as llama.cpp's converter marks them),
//   user-defined otherwise.
// Both also carry bos/eos/unk/pad ids, add_bos/add_eos flags and tokenizer.chat_template. When the
// model's vocabulary is larger than the tokenizer's, ids past the tokenizer are "[PAD<id>]" tokens
// of type unused (llama.cpp needs one token per embedding row).
import type { Tokenizer } from '../tokenizer.js';
import { MixtuneError } from '../util/errors.js';
import type { GgufKv, GgufString } from './gguf.js';
import { Llama2cTokenizer } from './llama2c-tokenizer.js';
import { HfTokenizer, decoderTypes } from './hf-tokenizer.js';
import { PLAIN_CHAT_TEMPLATE } from './chat.js';

export const TokenType = { NORMAL: 1, UNKNOWN: 2, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5, BYTE: 6 } as const;

export interface GgufVocab {
  model: 'llama' | 'gpt2';
  /** tokenizer.ggml.pre: 'default' for SPM; the pre-tokenizer name for gpt2. */
  pre: string;
  tokens: GgufString[];
  /** SPM only. */
  scores?: Float32Array;
  types: Int32Array;
  /** gpt2 only: "left right" per merge, by rank. */
  merges?: string[];
  /** -1 = none. */
  bosId: number;
  eosId: number;
  unkId: number;
  padId: number;
  addBos: boolean;
  addEos: boolean;
  /** SPM: prepend a space (▁) to the text. */
  addSpacePrefix?: boolean;
  chatTemplate?: string;
  /** Named extra templates (tokenizer.chat_template.<name>). */
  namedChatTemplates?: { name: string; template: string }[];
}

const SPACE = '\u2581';
const BYTE_PIECE = /^<0x[0-9A-Fa-f]{2}>$/;

type Json = Record<string, unknown>;

/** Known byte-level pre-tokenizer split regexes -> llama.cpp's tokenizer.ggml.pre names. */
const PRE_BY_REGEX: Record<string, string> = {
  // Qwen2 / Qwen2.5 (single digits)
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+": 'qwen2',
  // Llama 3 (digits in groups of up to 3)
  "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+": 'llama-bpe',
  // GPT-2 (the ByteLevel pre-tokenizer's own regex, written out)
  "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+": 'gpt-2',
};

/** The GGUF vocabulary of a mixtune tokenizer, padded to the model's `vocabSize`. */
export function ggufVocabFromTokenizer(tok: Tokenizer, vocabSize: number): GgufVocab {
  let v: GgufVocab;
  if (tok instanceof Llama2cTokenizer) v = spmFromLlama2c(tok);
  else if (tok instanceof HfTokenizer) v = fromHf(tok);
  else throw new MixtuneError('GGUF export: unsupported tokenizer (a llama2.c tokenizer.bin or an HF tokenizer is needed)');
  if (v.tokens.length > vocabSize) throw new MixtuneError(`GGUF export: the tokenizer has ${v.tokens.length} tokens but the model only ${vocabSize}`);
  return padVocab(v, vocabSize);
}

function padVocab(v: GgufVocab, n: number): GgufVocab {
  const have = v.tokens.length;
  if (have === n) return v;
  const tokens = v.tokens.slice();
  for (let i = have; i < n; i++) tokens.push(`[PAD${i}]`);
  const types = new Int32Array(n);
  types.set(v.types);
  types.fill(TokenType.UNUSED, have);
  const out: GgufVocab = { ...v, tokens, types };
  if (v.scores) {
    const scores = new Float32Array(n);
    scores.set(v.scores);
    scores.fill(-1000, have);
    out.scores = scores;
  }
  return out;
}

/** llama2.c tokenizer.bin: pieces with ' ' spelled '▁', its own scores, ids 0/1/2 = <unk>/<s>/</s>. */
function spmFromLlama2c(tok: Llama2cTokenizer): GgufVocab {
  const n = tok.vocabSize;
  const tokens: GgufString[] = [];
  const types = new Int32Array(n);
  const names = ['<unk>', '<s>', '</s>'];
  const spaceBytes = Buffer.from(SPACE, 'utf8');
  for (let i = 0; i < n; i++) {
    if (i < names.length) {
      tokens.push(names[i]!);
      types[i] = i === 0 ? TokenType.UNKNOWN : TokenType.CONTROL;
      continue;
    }
    const p = tok.pieces[i]!;
    const parts: Uint8Array[] = [];
    let start = 0;
    for (let j = 0; j < p.length; j++) {
      if (p[j] === 0x20) {
        parts.push(p.subarray(start, j), spaceBytes);
        start = j + 1;
      }
    }
    parts.push(p.subarray(start));
    const bytes = Buffer.concat(parts);
    tokens.push(bytes);
    types[i] = BYTE_PIECE.test(bytes.toString('latin1')) ? TokenType.BYTE : TokenType.NORMAL;
  }
  return {
    model: 'llama', pre: 'default', tokens, scores: Float32Array.from(tok.scores), types,
    bosId: tok.bosId, eosId: tok.eosId, unkId: 0, padId: -1, addBos: true, addEos: false, addSpacePrefix: true,
    chatTemplate: PLAIN_CHAT_TEMPLATE,
  };
}

function fromHf(tok: HfTokenizer): GgufVocab {
  const json = tok.tokenizerJson as Json;
  const model = (json.model ?? {}) as Json;
  if (model.type !== 'BPE') throw new MixtuneError(`${tok.source}: GGUF export supports BPE tokenizers only (this one is ${String(model.type)})`);
  const n = tok.vocabSize;
  const tokens: GgufString[] = new Array<GgufString>(n);
  const vocab = model.vocab as Record<string, number>;
  for (const [piece, id] of Object.entries(vocab)) tokens[id] = piece;
  const added = (json.added_tokens ?? []) as { id: number; content: string; special?: boolean }[];
  for (const a of added) tokens[a.id] = a.content;
  for (let i = 0; i < n; i++) if (tokens[i] === undefined) throw new MixtuneError(`${tok.source}: token id ${i} has no piece (the vocabulary has a hole)`);
  const addedById = new Map(added.map((a) => [a.id, a]));
  const rawMerges = (model.merges ?? []) as (string | [string, string])[];
  const mergePair = (m: string | [string, string]): [string, string] => {
    if (Array.isArray(m)) return m;
    const sp = m.indexOf(' ');
    if (sp <= 0) throw new MixtuneError(`${tok.source}: malformed merge ${JSON.stringify(m)}`);
    return [m.slice(0, sp), m.slice(sp + 1)];
  };
  const decs = decoderTypes(json.decoder);
  const byteLevel = decs.some((d) => d.type === 'ByteLevel');
  const chat = chatTemplates(tok.chatTemplate, tok.source);
  const common = {
    bosId: tok.bosId, eosId: tok.eosId, unkId: tok.unkId, padId: tok.padTokenId, addBos: tok.addBos, addEos: tok.addEos, ...chat,
  };

  if (byteLevel && model.byte_fallback !== true) {
    const types = new Int32Array(n).fill(TokenType.NORMAL);
    for (const a of added) {
      const looksSpecial = a.content.startsWith('<|') && a.content.endsWith('|>');
      types[a.id] = a.special || looksSpecial ? TokenType.CONTROL : TokenType.USER_DEFINED;
    }
    const merges = rawMerges.map((m) => mergePair(m).map((s) => s.replaceAll(' ', '\u0120')).join(' '));
    return { model: 'gpt2', pre: byteLevelPre(json, tok.source), tokens, types, merges, ...common };
  }
  if (model.byte_fallback === true) {
    // SentencePiece-style BPE: scores from merge ranks.
    const scores = new Float32Array(n);
    const made = new Uint8Array(n);
    rawMerges.forEach((m, rank) => {
      const [a, b] = mergePair(m);
      const id = vocab[a + b];
      if (id !== undefined && !made[id]) {
        made[id] = 1;
        scores[id] = 0 - rank; // (not -rank: no -0 in the file)
      }
    });
    const types = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      const a = addedById.get(i);
      const piece = tokens[i] as string;
      if (a) types[i] = i === tok.unkId ? TokenType.UNKNOWN : a.special ? TokenType.CONTROL : TokenType.USER_DEFINED;
      else if (i === tok.unkId) types[i] = TokenType.UNKNOWN;
      else if (BYTE_PIECE.test(piece)) types[i] = TokenType.BYTE;
      else types[i] = TokenType.NORMAL;
      if (!made[i] && types[i] === TokenType.NORMAL && Array.from(piece).length > 1) scores[i] = -1e9;
    }
    return { model: 'llama', pre: 'default', tokens, scores, types, addSpacePrefix: spmAddsPrefix(json), ...common };
  }
  throw new MixtuneError(`${tok.source}: GGUF export supports SentencePiece-style BPE (byte_fallback) and byte-level BPE tokenizers; this BPE is neither`);
}

function flatten(node: unknown, listKey: string): Json[] {
  if (!node || typeof node !== 'object') return [];
  const o = node as Json;
  if (o.type === 'Sequence' && Array.isArray(o[listKey])) return (o[listKey] as unknown[]).flatMap((x) => flatten(x, listKey));
  return [o];
}

/** Whether an SPM-style tokenizer.json puts '▁' before the text (Prepend normalizer or Metaspace prepend). */
function spmAddsPrefix(json: Json): boolean {
  const norms = flatten(json.normalizer, 'normalizers');
  if (norms.some((x) => x.type === 'Prepend' && x.prepend === SPACE)) return true;
  const pres = flatten(json.pre_tokenizer, 'pretokenizers');
  const meta = pres.find((x) => x.type === 'Metaspace');
  if (meta) {
    if (typeof meta.prepend_scheme === 'string') return meta.prepend_scheme !== 'never';
    return meta.add_prefix_space !== false;
  }
  return false;
}

function byteLevelPre(json: Json, source: string): string {
  const norms = flatten(json.normalizer, 'normalizers');
  const badNorm = norms.find((x) => x.type !== 'NFC');
  if (badNorm) throw new MixtuneError(`${source}: GGUF export: normalizer ${String(badNorm.type)} is not supported for byte-level BPE`);
  const pres = flatten(json.pre_tokenizer, 'pretokenizers');
  const bl = pres.find((x) => x.type === 'ByteLevel');
  if (!bl) throw new MixtuneError(`${source}: GGUF export: a byte-level BPE needs a ByteLevel pre-tokenizer`);
  if (bl.add_prefix_space === true) throw new MixtuneError(`${source}: GGUF export: ByteLevel add_prefix_space is not supported by llama.cpp`);
  const splits = pres.filter((x) => x.type === 'Split');
  let regex: string | undefined;
  if (splits.length === 1) {
    const pat = splits[0]!.pattern as Json | undefined;
    regex = typeof pat?.Regex === 'string' ? pat.Regex : undefined;
    if (bl.use_regex === true) regex = undefined; // a second split: unknown combination
  } else if (splits.length === 0 && bl.use_regex !== false) {
    regex = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
  }
  const pre = regex === undefined ? undefined : PRE_BY_REGEX[regex];
  if (!pre) {
    throw new MixtuneError(`${source}: GGUF export: unknown byte-level pre-tokenizer (supported: the Qwen2, Llama 3 and GPT-2 split regexes); llama.cpp would split the text differently`);
  }
  return pre;
}

function chatTemplates(t: unknown, source: string): Pick<GgufVocab, 'chatTemplate' | 'namedChatTemplates'> {
  if (t === undefined || t === null) return {};
  if (typeof t === 'string') return { chatTemplate: t };
  if (Array.isArray(t)) {
    const named: { name: string; template: string }[] = [];
    let dflt: string | undefined;
    for (const e of t as Json[]) {
      if (typeof e?.name !== 'string' || typeof e.template !== 'string') throw new MixtuneError(`${source}: chat_template list entries need "name" and "template" strings`);
      if (e.name === 'default') dflt = e.template;
      else named.push({ name: e.name, template: e.template });
    }
    return { ...(dflt !== undefined ? { chatTemplate: dflt } : {}), ...(named.length ? { namedChatTemplates: named } : {}) };
  }
  throw new MixtuneError(`${source}: chat_template must be a string or a list of {name, template}`);
}

/** tokenizer.* metadata entries of a vocabulary. */
export function vocabMetadata(v: GgufVocab): GgufKv[] {
  const kv: GgufKv[] = [
    { key: 'tokenizer.ggml.model', kind: 'string', value: v.model },
    { key: 'tokenizer.ggml.pre', kind: 'string', value: v.pre },
    { key: 'tokenizer.ggml.tokens', kind: 'string', value: v.tokens, array: true },
  ];
  if (v.scores) kv.push({ key: 'tokenizer.ggml.scores', kind: 'f32', value: v.scores, array: true });
  kv.push({ key: 'tokenizer.ggml.token_type', kind: 'i32', value: v.types, array: true });
  if (v.merges) kv.push({ key: 'tokenizer.ggml.merges', kind: 'string', value: v.merges, array: true });
  const id = (key: string, x: number): void => {
    if (x >= 0) kv.push({ key, kind: 'u32', value: x });
  };
  id('tokenizer.ggml.bos_token_id', v.bosId);
  id('tokenizer.ggml.eos_token_id', v.eosId);
  id('tokenizer.ggml.unknown_token_id', v.unkId);
  id('tokenizer.ggml.padding_token_id', v.padId);
  kv.push({ key: 'tokenizer.ggml.add_bos_token', kind: 'bool', value: v.addBos });
  kv.push({ key: 'tokenizer.ggml.add_eos_token', kind: 'bool', value: v.addEos });
  if (v.addSpacePrefix !== undefined) kv.push({ key: 'tokenizer.ggml.add_space_prefix', kind: 'bool', value: v.addSpacePrefix });
  if (v.chatTemplate !== undefined) kv.push({ key: 'tokenizer.chat_template', kind: 'string', value: v.chatTemplate });
  if (v.namedChatTemplates?.length) {
    kv.push({ key: 'tokenizer.chat_templates', kind: 'string', value: v.namedChatTemplates.map((t) => t.name), array: true });
    for (const t of v.namedChatTemplates) kv.push({ key: `tokenizer.chat_template.${t.name}`, kind: 'string', value: t.template });
  }
  return kv;
}
