// What the rest of mixtune needs from a tokenizer (llama2.c tokenizer.bin now; HF tokenizer.json later).
export interface Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  /** Token ids of `text`; `bos` prepends BOS, `eos` appends EOS. */
  encode(text: string, opts?: { bos?: boolean; eos?: boolean }): number[];
  /** The raw bytes of a token sequence (so a stream can be decoded as UTF-8 incrementally). */
  decodeBytes(ids: readonly number[]): Uint8Array;
  /** Text of a token sequence (UTF-8 decoded decodeBytes). */
  decode(ids: readonly number[]): string;
}
