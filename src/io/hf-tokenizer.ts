// Hugging Face tokenizers (tokenizer.json + tokenizer_config.json + generation_config.json) through
// @huggingface/tokenizers, behind mixtune's Tokenizer interface.
//
// Special-token policy (read this before calling encode):
// - encode(text, {bos, eos}) treats `text` literally: special tokens written in it ("<s>", "[INST]",
//   "<|im_start|>") are NOT parsed (like HF `split_special_tokens=True` and llama.cpp
//   `parse_special=false`); non-special added tokens (e.g. Qwen's "<tool_call>") still match.
//   BOS/EOS come only from the flags: {bos:true} prepends exactly one BOS (nothing when the
//   tokenizer has no BOS, e.g. Qwen2), {eos:true} appends one EOS. The tokenizer.json
//   post-processor is never applied, so BOS is never doubled.
// - encodeWithSpecials(text) parses every added token written in the text into its id (what chat
//   templates need: they render "<s>", "[INST]", "<|im_end|>" as text); again no post-processor.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Tokenizer as HfLibTokenizer } from '@huggingface/tokenizers';
import type { Tokenizer } from '../tokenizer.js';
import { MixtuneError } from '../util/errors.js';

type Json = Record<string, unknown>;

/** One entry of tokenizer.json `added_tokens`. */
export interface AddedTokenJson {
  id: number;
  content: string;
  single_word?: boolean;
  lstrip?: boolean;
  rstrip?: boolean;
  normalized?: boolean;
  special?: boolean;
}

function fsError(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  const text: Record<string, string> = { ENOENT: 'no such file', EACCES: 'permission denied', EISDIR: 'is a directory', ENOTDIR: 'a parent is not a directory' };
  return code ? `${text[code] ?? 'I/O error'} (${code})` : (e as Error).message;
}

function readText(path: string, what: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (e) {
    throw new MixtuneError(`${path}: cannot read ${what}: ${fsError(e)}`);
  }
}

function readJsonObject(path: string, what: string): Json {
  const text = readText(path, what);
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new MixtuneError(`${path}: ${what} is not valid JSON: ${(e as Error).message}`);
  }
  if (v === null || typeof v !== 'object' || Array.isArray(v)) throw new MixtuneError(`${path}: ${what} must hold a JSON object`);
  return v as Json;
}

/** The token text of a tokenizer_config.json special-token field: a string, an AddedToken object, or null. */
function tokenContent(v: unknown, field: string, source: string): string | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v === 'string') return v;
  if (typeof v === 'object' && typeof (v as Json).content === 'string') return (v as Json).content as string;
  throw new MixtuneError(`${source}: field "${field}" must be a string, an AddedToken object with "content", or null`);
}

// GPT-2 byte <-> unicode table used by ByteLevel pre-tokenizers/decoders.
let byteDecoderCache: Map<string, number> | undefined;
function byteLevelDecoder(): Map<string, number> {
  if (byteDecoderCache) return byteDecoderCache;
  const bs: number[] = [];
  for (let b = 0x21; b <= 0x7e; b++) bs.push(b);
  for (let b = 0xa1; b <= 0xac; b++) bs.push(b);
  for (let b = 0xae; b <= 0xff; b++) bs.push(b);
  const cs = bs.slice();
  let n = 0;
  for (let b = 0; b < 256; b++) {
    if (!bs.includes(b)) {
      bs.push(b);
      cs.push(256 + n);
      n++;
    }
  }
  const m = new Map<string, number>();
  for (let i = 0; i < bs.length; i++) m.set(String.fromCodePoint(cs[i]!), bs[i]!);
  byteDecoderCache = m;
  return m;
}

type DecodeMode = 'bytelevel' | 'spm' | 'generic';

/** The decoders of a tokenizer.json decoder block, Sequence flattened (also used by GGUF export). */
export function decoderTypes(d: unknown, out: Json[] = []): Json[] {
  if (d && typeof d === 'object') {
    const o = d as Json;
    if (o.type === 'Sequence' && Array.isArray(o.decoders)) for (const x of o.decoders) decoderTypes(x, out);
    else out.push(o);
  }
  return out;
}

/**
 * The Qwen2 tokenizer.json that HF `Qwen2TokenizerFast` builds from vocab.json + merges.txt
 * (the "slow" files): NFC normalizer, the Qwen2 split regex, ByteLevel without prefix space,
 * BPE without unk/byte fallback; added tokens from tokenizer_config.json `added_tokens_decoder`.
 */
export function qwen2TokenizerJson(vocab: Record<string, number>, mergesTxt: string, config: Json): Json {
  const merges = mergesTxt
    .split('\n')
    .map((l) => l.replace(/\r$/, ''))
    .filter((l, i) => l.length > 0 && !(i === 0 && l.startsWith('#version')));
  const added: AddedTokenJson[] = [];
  const dec = config.added_tokens_decoder;
  if (dec && typeof dec === 'object') {
    for (const [k, v] of Object.entries(dec as Record<string, Json>)) {
      added.push({
        id: Number(k),
        content: String(v.content),
        single_word: Boolean(v.single_word),
        lstrip: Boolean(v.lstrip),
        rstrip: Boolean(v.rstrip),
        normalized: Boolean(v.normalized),
        special: Boolean(v.special),
      });
    }
  }
  added.sort((a, b) => a.id - b.id);
  const byteLevel = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };
  return {
    version: '1.0',
    truncation: null,
    padding: null,
    added_tokens: added,
    normalizer: { type: 'NFC' },
    pre_tokenizer: {
      type: 'Sequence',
      pretokenizers: [
        {
          type: 'Split',
          pattern: { Regex: "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+" },
          behavior: 'Isolated',
          invert: false,
        },
        byteLevel,
      ],
    },
    post_processor: byteLevel,
    decoder: byteLevel,
    model: {
      type: 'BPE',
      dropout: null,
      unk_token: null,
      continuing_subword_prefix: '',
      end_of_word_suffix: '',
      fuse_unk: false,
      byte_fallback: false,
      vocab,
      merges,
    },
  };
}

export interface HfTokenizerSources {
  /** Parsed tokenizer.json. */
  tokenizerJson: Json;
  /** Parsed tokenizer_config.json ({} when absent). */
  config?: Json;
  /** Parsed generation_config.json (optional). */
  generationConfig?: Json;
  /** Names the origin in error messages (a directory or file path). */
  source?: string;
}

export class HfTokenizer implements Tokenizer {
  readonly vocabSize: number;
  /** BOS id, or -1 when the tokenizer has no BOS token (e.g. Qwen2). */
  readonly bosId: number;
  /** EOS id (tokenizer_config eos_token, else generation_config's first eos_token_id), or -1. */
  readonly eosId: number;
  /** pad_token id, or -1. */
  /** The pad_token's id, -1 when tokenizer_config.json names none. */
  readonly padTokenId: number;
  /** The id that fills batch padding (see Tokenizer.padId): the pad token, else EOS, else 0. */
  readonly padId: number;
  /** unk_token id, or -1. */
  readonly unkId: number;
  readonly bosToken: string | undefined;
  readonly eosToken: string | undefined;
  readonly padToken: string | undefined;
  readonly unkToken: string | undefined;
  /** tokenizer_config add_bos_token (else: whether the post-processor adds BOS). Callers decide whether to pass {bos:true}. */
  readonly addBos: boolean;
  /** tokenizer_config add_eos_token (default false). */
  readonly addEos: boolean;
  /** Ids that end generation: eosId plus generation_config.json eos_token_id (int or list), deduplicated. */
  readonly stopIds: number[];
  /** chat_template from tokenizer_config.json (string, or list/dict of named templates), if any. */
  readonly chatTemplate: unknown;
  /** Parsed tokenizer_config.json. */
  readonly config: Json;
  readonly source: string;

  private readonly full: HfLibTokenizer;
  private literalTok: HfLibTokenizer | undefined;
  private readonly json: Json;
  private readonly special = new Set<number>(); // added tokens with special=true
  private readonly addedContent = new Map<number, string>(); // every added token
  private readonly mode: DecodeMode;
  private readonly stripLeadingSpace: boolean; // SPM decoders drop the first space of a sequence
  private readonly byteFallback: boolean;
  private readonly pieces: (string | undefined)[]; // id -> token string (model vocab + added)

  private constructor(src: HfTokenizerSources) {
    const source = src.source ?? 'tokenizer.json';
    this.source = source;
    this.json = src.tokenizerJson;
    this.config = src.config ?? {};
    const cfgName = `${source} (tokenizer_config.json)`;
    const model = this.json.model as Json | undefined;
    if (!model || typeof model !== 'object') throw new MixtuneError(`${source}: tokenizer.json has no "model" object`);
    if (!Array.isArray(this.json.added_tokens)) this.json.added_tokens = [];
    // Special added tokens are matched in the raw text (normalized: false): with normalized: true
    // and a Prepend("▁") normalizer (some Llama 2 tokenizer.json files) the library would look for
    // "▁</s>" and miss "help?</s>". Non-special added tokens keep their flags.
    const fullJson = {
      ...this.json,
      added_tokens: (this.json.added_tokens as AddedTokenJson[]).map((t) => (t && t.special && t.normalized ? { ...t, normalized: false } : t)),
    };
    try {
      this.full = new HfLibTokenizer(fullJson, this.config);
    } catch (e) {
      throw new MixtuneError(`${source}: unsupported or corrupt tokenizer.json: ${(e as Error).message}`);
    }
    for (const t of this.json.added_tokens as AddedTokenJson[]) {
      if (typeof t?.id !== 'number' || typeof t.content !== 'string') throw new MixtuneError(`${source}: tokenizer.json added_tokens entry without integer id / string content`);
      this.addedContent.set(t.id, t.content);
      if (t.special) this.special.add(t.id);
    }
    // id -> piece table (and the vocabulary size).
    const vocab = this.full.get_vocab(true);
    let maxId = -1;
    for (const id of vocab.values()) if (id > maxId) maxId = id;
    for (const id of this.addedContent.keys()) if (id > maxId) maxId = id;
    this.vocabSize = maxId + 1;
    this.pieces = new Array<string | undefined>(this.vocabSize);
    for (const [tok, id] of vocab) this.pieces[id] = tok;
    for (const [id, c] of this.addedContent) this.pieces[id] = c;

    const idOf = (field: string): [string | undefined, number] => {
      const content = tokenContent(this.config[field], field, cfgName);
      if (content === undefined) return [undefined, -1];
      const id = this.tokenToId(content);
      if (id === undefined) throw new MixtuneError(`${cfgName}: ${field} "${content}" is not a token of tokenizer.json`);
      return [content, id];
    };
    [this.bosToken, this.bosId] = idOf('bos_token');
    [this.eosToken, this.eosId] = idOf('eos_token');
    [this.padToken, this.padTokenId] = idOf('pad_token');
    this.padId = this.padTokenId >= 0 ? this.padTokenId : Math.max(0, this.eosId);
    [this.unkToken, this.unkId] = idOf('unk_token');

    const gen = src.generationConfig ?? {};
    const genEos = gen.eos_token_id;
    const genIds: number[] = genEos === undefined || genEos === null ? [] : Array.isArray(genEos) ? genEos : [genEos];
    for (const id of genIds) {
      if (!Number.isInteger(id) || (id as number) < 0 || (id as number) >= this.vocabSize) {
        throw new MixtuneError(`${source} (generation_config.json): eos_token_id ${JSON.stringify(genEos)} is not a token id (vocabulary 0..${this.vocabSize - 1})`);
      }
    }
    if (this.eosId < 0 && genIds.length > 0) {
      this.eosId = genIds[0]!;
      this.eosToken = this.pieces[this.eosId];
    }
    if (this.bosId < 0 && Number.isInteger(gen.bos_token_id) && (gen.bos_token_id as number) >= 0 && (gen.bos_token_id as number) < this.vocabSize) {
      // tokenizer_config without bos_token: generation_config's bos_token_id (Qwen2 has neither).
      this.bosId = gen.bos_token_id as number;
      this.bosToken = this.pieces[this.bosId];
    }
    this.stopIds = [...new Set([...(this.eosId >= 0 ? [this.eosId] : []), ...(genIds as number[])])];

    if (typeof this.config.add_bos_token === 'boolean') this.addBos = this.config.add_bos_token;
    else if (this.bosId >= 0) {
      const a = this.full.encode('a', { add_special_tokens: true }).ids;
      this.addBos = a[0] === this.bosId;
    } else this.addBos = false;
    this.addBos &&= this.bosId >= 0;
    this.addEos = this.config.add_eos_token === true && this.eosId >= 0;
    this.chatTemplate = this.config.chat_template;

    // How token strings map to bytes.
    const decs = decoderTypes(this.json.decoder);
    this.byteFallback = model.byte_fallback === true || decs.some((d) => d.type === 'ByteFallback');
    if (decs.some((d) => d.type === 'ByteLevel')) {
      this.mode = 'bytelevel';
      this.stripLeadingSpace = false;
    } else if (decs.some((d) => d.type === 'Metaspace' || (d.type === 'Replace' && (d.pattern as Json | undefined)?.String === '\u2581'))) {
      this.mode = 'spm';
      const meta = decs.find((d) => d.type === 'Metaspace');
      this.stripLeadingSpace =
        decs.some((d) => d.type === 'Strip' && (d.start as number) >= 1 && d.content === ' ') ||
        (meta !== undefined && meta.prepend_scheme !== 'never' && meta.add_prefix_space !== false);
    } else {
      this.mode = 'generic';
      this.stripLeadingSpace = false;
    }
  }

  /**
   * Loads `dir`/tokenizer.json (or, for tokenizer_class Qwen2Tokenizer without tokenizer.json,
   * builds it from vocab.json + merges.txt), tokenizer_config.json (optional) and
   * generation_config.json (optional).
   */
  static load(dir: string): HfTokenizer {
    const cfgPath = join(dir, 'tokenizer_config.json');
    const config = existsSync(cfgPath) ? readJsonObject(cfgPath, 'tokenizer config') : {};
    const genPath = join(dir, 'generation_config.json');
    const generationConfig = existsSync(genPath) ? readJsonObject(genPath, 'generation config') : undefined;
    const tjPath = join(dir, 'tokenizer.json');
    let tokenizerJson: Json;
    let source = tjPath;
    if (existsSync(tjPath)) tokenizerJson = readJsonObject(tjPath, 'tokenizer.json');
    else if (config.tokenizer_class === 'Qwen2Tokenizer' && existsSync(join(dir, 'vocab.json')) && existsSync(join(dir, 'merges.txt'))) {
      const vocabPath = join(dir, 'vocab.json');
      const vocab = readJsonObject(vocabPath, 'vocab.json') as Record<string, number>;
      for (const [k, v] of Object.entries(vocab)) {
        if (!Number.isInteger(v)) throw new MixtuneError(`${vocabPath}: token ${JSON.stringify(k)} has a non-integer id`);
      }
      tokenizerJson = qwen2TokenizerJson(vocab, readText(join(dir, 'merges.txt'), 'merges.txt'), config);
      source = join(dir, 'vocab.json + merges.txt');
    } else {
      // Produce the usual "no such file" message.
      readText(tjPath, 'tokenizer.json');
      throw new MixtuneError(`${tjPath}: cannot read tokenizer.json`);
    }
    return new HfTokenizer({ tokenizerJson, config, generationConfig, source });
  }

  /** From already-parsed files (e.g. a freshly converted llama2.c tokenizer). */
  static fromJson(src: HfTokenizerSources): HfTokenizer {
    return new HfTokenizer(src);
  }

  /** A library instance without the special added tokens (literal encoding), built on first use. */
  private literal(): HfLibTokenizer {
    if (!this.literalTok) {
      const added = (this.json.added_tokens as AddedTokenJson[]).filter((t) => !t.special);
      this.literalTok = new HfLibTokenizer({ ...this.json, added_tokens: added }, this.config);
    }
    return this.literalTok;
  }

  private wrap(ids: number[], opts?: { bos?: boolean; eos?: boolean }): number[] {
    if (opts?.bos && this.bosId >= 0) ids.unshift(this.bosId);
    if (opts?.eos && this.eosId >= 0) ids.push(this.eosId);
    return ids;
  }

  /** Ids of `text` read literally (special tokens in the text are plain text); BOS/EOS only from the flags. */
  encode(text: string, opts?: { bos?: boolean; eos?: boolean }): number[] {
    return this.wrap(this.literal().encode(text, { add_special_tokens: false }).ids, opts);
  }

  /** Ids of `text` where every added token written in it ("<s>", "[INST]", "<|im_end|>") becomes its id. */
  encodeWithSpecials(text: string, opts?: { bos?: boolean; eos?: boolean }): number[] {
    return this.wrap(this.full.encode(text, { add_special_tokens: false }).ids, opts);
  }

  /** The tokenizer.json this tokenizer was built from (read-only; e.g. for GGUF export). */
  get tokenizerJson(): Readonly<Json> {
    return this.json;
  }

  tokenToId(token: string): number | undefined {
    return this.full.token_to_id(token);
  }

  idToToken(id: number): string | undefined {
    return Number.isInteger(id) && id >= 0 && id < this.vocabSize ? this.pieces[id] : undefined;
  }

  /** Whether `id` is an added token marked special (skipped by decode unless {special:true}). */
  isSpecial(id: number): boolean {
    return this.special.has(id);
  }

  /** Added tokens marked special, as [content, id]. */
  specialTokens(): [string, number][] {
    return [...this.special].map((id) => [this.addedContent.get(id)!, id]);
  }

  private checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize || this.pieces[id] === undefined) {
      throw new MixtuneError(`${this.source}: token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`);
    }
  }

  private pieceBytes(id: number): Uint8Array {
    const added = this.addedContent.get(id);
    if (added !== undefined) return Buffer.from(added, 'utf8');
    const piece = this.pieces[id]!;
    if (this.mode === 'bytelevel') {
      const table = byteLevelDecoder();
      const out: number[] = [];
      for (const ch of piece) {
        const b = table.get(ch);
        if (b === undefined) return Buffer.from(piece, 'utf8'); // not a byte-level piece
        out.push(b);
      }
      return Uint8Array.from(out);
    }
    if (this.mode === 'spm') {
      if (this.byteFallback && piece.length === 6 && /^<0x[0-9A-Fa-f]{2}>$/.test(piece)) return Uint8Array.of(parseInt(piece.slice(3, 5), 16));
      return Buffer.from(piece.replaceAll('\u2581', ' '), 'utf8');
    }
    return Buffer.from(this.full.decode([id], { skip_special_tokens: false, clean_up_tokenization_spaces: false }), 'utf8');
  }

  /**
   * Raw bytes of `ids` (stream-safe: byte-fallback / byte-level pieces give their bytes, so a
   * character split over tokens is only whole after its last token). Special tokens give no bytes
   * unless `special` is true. For SentencePiece-style tokenizers the first space of the sequence is
   * dropped (HF's Strip decoder) when the first emitted token starts it and `prev` is undefined or BOS;
   * pass `prev` (the id before ids[0]) when decoding a stream token by token.
   */
  decodeBytes(ids: readonly number[], opts?: { special?: boolean; prev?: number }): Uint8Array {
    if (this.mode === 'generic') {
      for (const id of ids) this.checkId(id);
      const keep = opts?.special ? [...ids] : ids.filter((id) => !this.special.has(id));
      if (keep.length === 0) return new Uint8Array(0);
      return Buffer.from(this.full.decode(keep, { skip_special_tokens: false, clean_up_tokenization_spaces: false }), 'utf8');
    }
    const parts: Uint8Array[] = [];
    let total = 0;
    let atStart = this.stripLeadingSpace && (opts?.prev === undefined || opts.prev < 0 || opts.prev === this.bosId);
    for (const id of ids) {
      this.checkId(id);
      if (!opts?.special && this.special.has(id)) continue;
      let b = this.pieceBytes(id);
      if (atStart && b.length > 0 && b[0] === 0x20 && !this.addedContent.has(id)) b = b.subarray(1);
      atStart = false;
      parts.push(b);
      total += b.length;
    }
    return Buffer.concat(parts, total);
  }

  /** UTF-8 text of decodeBytes (invalid sequences become U+FFFD). */
  decode(ids: readonly number[], opts?: { special?: boolean; prev?: number }): string {
    return Buffer.from(this.decodeBytes(ids, opts)).toString('utf8');
  }
}
