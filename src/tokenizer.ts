// What the rest of mixtune needs from a tokenizer (llama2.c tokenizer.bin, HF tokenizer.json).
export interface Tokenizer {
  readonly vocabSize: number;
  /** BOS id; -1 when the tokenizer has none (e.g. Qwen2: then `bos: true` adds nothing). */
  readonly bosId: number;
  readonly eosId: number;
  /**
   * The id that fills the padding positions of a batch: the tokenizer's pad token when it has one,
   * else EOS (else 0). Padding never carries a loss and is never attended to, so this only has to
   * be a valid id; one rule for every entry point keeps batches identical between them.
   */
  readonly padId: number;
  /** Token ids of `text`; `bos` prepends BOS, `eos` appends EOS. */
  encode(text: string, opts?: { bos?: boolean; eos?: boolean }): number[];
  /**
   * The raw bytes of a token sequence (so a stream can be decoded as UTF-8 incrementally).
   * `prev` is the id before ids[0] (it decides whether a leading space is dropped after BOS);
   * special tokens give no bytes unless `special`.
   */
  decodeBytes(ids: readonly number[], opts?: { prev?: number; special?: boolean }): Uint8Array;
  /** Text of a token sequence (UTF-8 decoded decodeBytes). */
  decode(ids: readonly number[]): string;
  /**
   * Optional: like encode, but special tokens written in the text ("<s>", "[INST]", "<|im_end|>")
   * become their ids (chat templates render them as text). HF tokenizers implement it.
   */
  encodeWithSpecials?(text: string, opts?: { bos?: boolean; eos?: boolean }): number[];
  /** Optional: ids that end generation (EOS plus generation_config eos_token_id); default [eosId]. */
  readonly stopIds?: readonly number[];
}
