// llama2.c tokenizer.bin reader with tokenization identical to llama2.c run.c `encode`/`decode`.
//
// File layout (little-endian): int32 max_token_length, then per token:
//   float32 score, int32 len, len bytes (the piece; SentencePiece's U+2581 already replaced by ' ').
import { readFileSync } from 'node:fs';
import type { Tokenizer } from '../tokenizer.js';
import { MixtuneError } from '../util/errors.js';

/** Hard cap on one piece's byte length (llama2.c pieces are a few dozen bytes at most). */
const MAX_PIECE_BYTES = 1 << 16;
/** llama2.c starts the merge search at `float best_score = -1e10`: only scores above it can merge. */
const MIN_MERGE_SCORE = Math.fround(-1e10);

function fsError(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  const text: Record<string, string> = { ENOENT: 'no such file', EACCES: 'permission denied', EISDIR: 'is a directory', ENOTDIR: 'a parent is not a directory' };
  return code ? `${text[code] ?? 'I/O error'} (${code})` : (e as Error).message;
}

function latin1(b: Uint8Array): string {
  return Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('latin1');
}

/**
 * The byte a piece designates when it looks like `<0xXX>`, else -1. Mirrors llama2.c's
 * `sscanf(piece, "<0x%02hhX>", &byte_val) == 1`: "<0x" followed by one or two hex digits
 * (the closing '>' is not checked by sscanf either).
 */
function rawByteOf(piece: Uint8Array): number {
  if (piece.length < 4 || piece[0] !== 0x3c || piece[1] !== 0x30 || piece[2] !== 0x78) return -1;
  const hex = (c: number | undefined): number => {
    if (c === undefined) return -1;
    if (c >= 0x30 && c <= 0x39) return c - 0x30;
    if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10;
    if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10;
    return -1;
  };
  const d0 = hex(piece[3]);
  if (d0 < 0) return -1;
  const d1 = hex(piece[4]);
  return d1 < 0 ? d0 : d0 * 16 + d1;
}

/** Binary max-heap of merge candidates ordered by (score desc, left position asc). */
class MergeHeap {
  private score: number[] = [];
  private left: number[] = [];
  private right: number[] = [];
  private id: number[] = [];
  private verL: number[] = [];
  private verR: number[] = [];
  get size(): number {
    return this.score.length;
  }
  private before(a: number, b: number): boolean {
    const sa = this.score[a]!;
    const sb = this.score[b]!;
    return sa > sb || (sa === sb && this.left[a]! < this.left[b]!);
  }
  private swap(a: number, b: number): void {
    for (const arr of [this.score, this.left, this.right, this.id, this.verL, this.verR]) {
      const t = arr[a]!;
      arr[a] = arr[b]!;
      arr[b] = t;
    }
  }
  push(score: number, left: number, right: number, id: number, verL: number, verR: number): void {
    let i = this.score.length;
    this.score.push(score);
    this.left.push(left);
    this.right.push(right);
    this.id.push(id);
    this.verL.push(verL);
    this.verR.push(verR);
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.before(i, p)) break;
      this.swap(i, p);
      i = p;
    }
  }
  /** Removes the top entry and returns [left, right, id, verL, verR]. */
  pop(): [number, number, number, number, number] {
    const top: [number, number, number, number, number] = [this.left[0]!, this.right[0]!, this.id[0]!, this.verL[0]!, this.verR[0]!];
    const last = this.score.length - 1;
    this.swap(0, last);
    for (const arr of [this.score, this.left, this.right, this.id, this.verL, this.verR]) arr.pop();
    const n = this.score.length;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < n && this.before(l, m)) m = l;
      if (r < n && this.before(r, m)) m = r;
      if (m === i) break;
      this.swap(i, m);
      i = m;
    }
    return top;
  }
}

export class Llama2cTokenizer implements Tokenizer {
  readonly bosId = 1;
  readonly eosId = 2;
  /** llama2.c tokenizers have no pad token: padding uses EOS. */
  readonly padId = 2;
  readonly vocabSize: number;
  /** The file's max_token_length field. */
  readonly maxTokenLength: number;
  /** Raw bytes of every piece (index = token id). */
  readonly pieces: readonly Uint8Array[];
  readonly scores: Float32Array;
  private readonly keys: string[]; // pieces as latin1 strings (one char per byte)
  private readonly lookup = new Map<string, number>(); // piece -> first id with that piece
  private readonly rawByte: Int16Array; // rawByteOf(piece) per id
  private readonly rawByteNoSpace: Int16Array; // rawByteOf(piece without its leading ' ') per id
  private readonly spaceId: number; // id of the piece " " (the dummy prefix), -1 if absent

  private constructor(pieces: Uint8Array[], scores: Float32Array, maxTokenLength: number) {
    this.pieces = pieces;
    this.scores = scores;
    this.vocabSize = pieces.length;
    this.maxTokenLength = maxTokenLength;
    this.keys = pieces.map(latin1);
    this.rawByte = new Int16Array(pieces.length);
    this.rawByteNoSpace = new Int16Array(pieces.length);
    for (let i = 0; i < pieces.length; i++) {
      const p = pieces[i]!;
      if (!this.lookup.has(this.keys[i]!)) this.lookup.set(this.keys[i]!, i);
      this.rawByte[i] = rawByteOf(p);
      this.rawByteNoSpace[i] = p[0] === 0x20 ? rawByteOf(p.subarray(1)) : this.rawByte[i]!;
    }
    this.spaceId = this.lookup.get(' ') ?? -1;
  }

  /**
   * Reads a llama2.c tokenizer.bin. With `vocabSize` (the model's vocab_size) exactly that many
   * records must be present and nothing may follow them; without it, records are read until EOF.
   */
  static load(path: string, vocabSize?: number): Llama2cTokenizer {
    let buf: Buffer;
    try {
      buf = readFileSync(path);
    } catch (e) {
      throw new MixtuneError(`${path}: cannot read tokenizer file: ${fsError(e)}`);
    }
    return Llama2cTokenizer.fromBuffer(buf, path, vocabSize);
  }

  /** Parses tokenizer.bin bytes; `source` names the file in error messages. */
  static fromBuffer(buf: Uint8Array, source: string, vocabSize?: number): Llama2cTokenizer {
    const fail = (what: string): never => {
      throw new MixtuneError(`${source}: invalid llama2.c tokenizer: ${what}`);
    };
    if (vocabSize !== undefined && (!Number.isInteger(vocabSize) || vocabSize <= 0)) {
      fail(`expected vocab size must be a positive integer, got ${vocabSize}`);
    }
    const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
    if (buf.byteLength < 4) fail(`file is ${buf.byteLength} bytes, shorter than the 4-byte header`);
    const maxTokenLength = dv.getInt32(0, true);
    if (maxTokenLength <= 0 || maxTokenLength > MAX_PIECE_BYTES) {
      fail(`max_token_length is ${maxTokenLength} (expected 1..${MAX_PIECE_BYTES})`);
    }
    const pieces: Uint8Array[] = [];
    const scores: number[] = [];
    let off = 4;
    while (vocabSize === undefined ? off < buf.byteLength : pieces.length < vocabSize) {
      const i = pieces.length;
      const at = `record ${i} (byte offset ${off})`;
      if (off + 8 > buf.byteLength) {
        if (off === buf.byteLength && vocabSize !== undefined) {
          fail(`file ends after ${i} records, but the model's vocab_size is ${vocabSize}`);
        }
        fail(`${at}: truncated record header (${buf.byteLength - off} bytes left, need 8)`);
      }
      const score = dv.getFloat32(off, true);
      const len = dv.getInt32(off + 4, true);
      if (Number.isNaN(score)) fail(`${at}: score is NaN`);
      if (len < 0 || len > MAX_PIECE_BYTES) fail(`${at}: piece length ${len} is out of range 0..${MAX_PIECE_BYTES}`);
      if (off + 8 + len > buf.byteLength) {
        fail(`${at}: piece length ${len} runs past the end of the file (${buf.byteLength - off - 8} bytes left)`);
      }
      pieces.push(Uint8Array.from(buf.subarray(off + 8, off + 8 + len)));
      scores.push(score);
      off += 8 + len;
    }
    if (off !== buf.byteLength) {
      fail(`${buf.byteLength - off} unexpected bytes after the ${pieces.length} records the model's vocab_size asks for (wrong tokenizer for this model?)`);
    }
    if (pieces.length < 3) fail(`only ${pieces.length} records; need at least <unk>, <s>, </s>`);
    return new Llama2cTokenizer(pieces, Float32Array.from(scores), maxTokenLength);
  }

  /** Id of a piece given as text (UTF-8), or -1; for duplicate pieces the lowest id. */
  pieceId(piece: string): number {
    return this.lookup.get(Buffer.from(piece, 'utf8').toString('latin1')) ?? -1;
  }

  /**
   * llama2.c `encode`: optional BOS; the dummy-prefix token " " when the text is non-empty; one
   * token per UTF-8 codepoint (byte fallback id = byte + 3 when the codepoint is not a piece); then
   * repeatedly merge the adjacent pair whose concatenation is a piece with the highest score
   * (leftmost on ties); optional EOS. Merging uses a heap: O(n log n).
   */
  encode(text: string, opts?: { bos?: boolean; eos?: boolean }): number[] {
    const bytes = Buffer.from(text, 'utf8');
    const out: number[] = [];
    if (opts?.bos) out.push(this.bosId);
    const tok: number[] = [];
    if (bytes.length > 0) {
      if (this.spaceId < 0) throw new MixtuneError(`llama2.c tokenizer has no " " piece (needed for the dummy prefix)`);
      tok.push(this.spaceId);
    }
    // Codepoints, exactly as llama2.c: a buffer restarts at every non-continuation byte and grows
    // while the next byte is a continuation byte (at most 4 bytes).
    let start = 0;
    let len = 0;
    for (let c = 0; c < bytes.length; c++) {
      if ((bytes[c]! & 0xc0) !== 0x80) {
        start = c;
        len = 0;
      }
      len++;
      if (c + 1 < bytes.length && (bytes[c + 1]! & 0xc0) === 0x80 && len < 4) continue;
      const id = this.lookup.get(bytes.toString('latin1', start, start + len));
      if (id !== undefined) tok.push(id);
      else {
        for (let i = 0; i < len; i++) {
          const b = bytes[start + i]! + 3;
          if (b >= this.vocabSize) throw new MixtuneError(`llama2.c tokenizer: byte-fallback id ${b} is outside the vocabulary (${this.vocabSize})`);
          tok.push(b);
        }
      }
      len = 0;
      start = c + 1;
    }
    this.merge(tok);
    for (const t of tok) if (t >= 0) out.push(t);
    if (opts?.eos) out.push(this.eosId);
    return out;
  }

  /** In-place BPE merges; merged-away slots are set to -1. */
  private merge(tok: number[]): void {
    const n = tok.length;
    if (n < 2) return;
    const next = new Int32Array(n);
    const prev = new Int32Array(n);
    const ver = new Uint32Array(n);
    for (let i = 0; i < n; i++) {
      next[i] = i + 1 < n ? i + 1 : -1;
      prev[i] = i - 1;
    }
    const heap = new MergeHeap();
    const consider = (l: number, r: number): void => {
      if (l < 0 || r < 0) return;
      const id = this.lookup.get(this.keys[tok[l]!]! + this.keys[tok[r]!]!);
      if (id === undefined) return;
      const s = this.scores[id]!;
      if (s > MIN_MERGE_SCORE) heap.push(s, l, r, id, ver[l]!, ver[r]!);
    };
    for (let i = 0; i + 1 < n; i++) consider(i, i + 1);
    while (heap.size > 0) {
      const [l, r, id, vl, vr] = heap.pop();
      if (tok[l]! < 0 || tok[r]! < 0 || next[l] !== r || ver[l] !== vl || ver[r] !== vr) continue; // stale
      tok[l] = id;
      ver[l]!++;
      tok[r] = -1;
      const rn = next[r]!;
      next[l] = rn;
      if (rn >= 0) prev[rn] = l;
      consider(prev[l]!, l);
      consider(l, rn);
    }
  }

  private checkId(id: number): void {
    if (!Number.isInteger(id) || id < 0 || id >= this.vocabSize) {
      throw new MixtuneError(`llama2.c tokenizer: token id ${id} is outside the vocabulary (0..${this.vocabSize - 1})`);
    }
  }

  /**
   * llama2.c `decode(prev_token, token)`: the piece of `id`, without its leading space when
   * `prev` is BOS; a piece of the form <0xXX> is that raw byte. No special-token handling
   * (BOS decodes to its piece, e.g. "\n<s>\n"). Pass prev = -1 for "no previous token".
   */
  decodePiece(prev: number, id: number): Uint8Array {
    this.checkId(id);
    const strip = prev === this.bosId && this.pieces[id]![0] === 0x20;
    const b = strip ? this.rawByteNoSpace[id]! : this.rawByte[id]!;
    if (b >= 0) return Uint8Array.of(b);
    return strip ? this.pieces[id]!.subarray(1) : this.pieces[id]!;
  }

  /**
   * Bytes of `ids`, token by token with decodePiece (prev = the previous id in the list;
   * `opts.prev` for ids[0], default none). BOS and EOS contribute no bytes unless
   * `opts.special` is true (they still count as `prev`, so a space after BOS is dropped).
   */
  decodeBytes(ids: readonly number[], opts?: { prev?: number; special?: boolean }): Uint8Array {
    const parts: Uint8Array[] = [];
    let total = 0;
    let prev = opts?.prev ?? -1;
    for (const id of ids) {
      if (opts?.special || (id !== this.bosId && id !== this.eosId)) {
        const p = this.decodePiece(prev, id);
        parts.push(p);
        total += p.length;
      } else this.checkId(id);
      prev = id;
    }
    return Buffer.concat(parts, total);
  }

  /** UTF-8 text of decodeBytes (invalid sequences become U+FFFD). */
  decode(ids: readonly number[], opts?: { prev?: number; special?: boolean }): string {
    return Buffer.from(this.decodeBytes(ids, opts)).toString('utf8');
  }
}
