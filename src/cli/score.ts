// `mixtune score`: log-probabilities of an output under a MISO group (several inputs, one output),
// from one layout-aware forward of the group (src/infer/miso.ts).
//
// Token ids of the group:
// - --input-ids / --output-ids: exactly as given (no BOS, no template).
// - --input TEXT: BOS + text (as `generate --prompt`); --output TEXT: the text without BOS.
// - --chat: every input is the conversation [system?, user: input] rendered with the chat template
//   WITHOUT the generation prompt, and the output is the rest of the rendered conversation
//   [system?, user: input, assistant: output]: the assistant header, the response and its
//   end-of-turn token, i.e. the output part as the MISO recipes train it. The header's first token is
//   given, so the log-probs start inside the header; `header_tokens` tells how many output tokens
//   the header has, and `response_total` sums the log-probs of the response (+ end of turn) only.
import { nativeKernels } from '../tensor/native.js';
import { loadModel, loadTokenizer } from '../io/load.js';
import { type MisoPositions, misoScore } from '../infer/miso.js';
import { chatGroup, type ScoredGroup } from '../infer/miso-text.js';
import type { Weighting } from '../tensor/ops.js';
import type { Tokenizer } from '../tokenizer.js';
import { MixtuneError } from '../util/errors.js';

export interface ScoreCliOptions {
  model: string;
  tokenizer?: string;
  input: string[];
  inputIds: string[];
  output?: string;
  outputIds?: string;
  positions: MisoPositions;
  weighting: Weighting;
  chat?: boolean;
  system?: string;
  json?: boolean;
}

/** Parses a comma-separated id list given to `flag`; ids must be in [0, vocab). */
export function parseIds(flag: string, text: string, vocab: number): number[] {
  const parts = text.split(',').map((s) => s.trim());
  if (text.trim() === '' || parts.some((p) => !/^\d+$/.test(p))) {
    throw new MixtuneError(`${flag}: expected a comma-separated list of token ids like 1,2,3, got '${text}'`);
  }
  return parts.map((p) => {
    const id = Number(p);
    if (id >= vocab) throw new MixtuneError(`${flag}: token id ${id} is outside the model's vocabulary [0, ${vocab})`);
    return id;
  });
}

function buildGroup(o: ScoreCliOptions, vocab: number, tok: () => Tokenizer): ScoredGroup {
  const nText = o.input.length;
  const nIds = o.inputIds.length;
  if (nText === 0 && nIds === 0) throw new MixtuneError('score: pass at least one --input TEXT or --input-ids IDS');
  if (nText > 0 && nIds > 0) throw new MixtuneError('score: use either --input or --input-ids, not both (the order of the inputs would be ambiguous)');
  if (o.output !== undefined && o.outputIds !== undefined) throw new MixtuneError('score: use either --output or --output-ids, not both');
  if (o.output === undefined && o.outputIds === undefined) throw new MixtuneError('score: pass --output TEXT or --output-ids IDS');
  if (o.chat) {
    if (nIds > 0 || o.outputIds !== undefined) throw new MixtuneError('--chat renders --input/--output text; it cannot be used with --input-ids/--output-ids');
    return chatGroup(tok(), o.input, o.output!, o.system);
  }
  if (o.system !== undefined) throw new MixtuneError('--system needs --chat');
  const inputs = nIds > 0
    ? o.inputIds.map((s) => parseIds('--input-ids', s, vocab))
    : o.input.map((text) => {
      const t = tok();
      const ids = t.encode(text, { bos: true });
      if (ids.length === 0) ids.push(t.bosId >= 0 ? t.bosId : t.eosId);
      return ids;
    });
  let output: number[];
  if (o.outputIds !== undefined) output = parseIds('--output-ids', o.outputIds, vocab);
  else {
    output = tok().encode(o.output!);
    if (output.length === 0) throw new MixtuneError('--output: the text encodes to no tokens');
  }
  return { inputs, output, headerTokens: 0 };
}

export async function runScore(o: ScoreCliOptions): Promise<void> {
  const { model } = loadModel(o.model, nativeKernels());
  const vocab = model.config.vocabSize;
  let tokenizer: Tokenizer | null = null;
  const tok = (): Tokenizer => (tokenizer ??= loadTokenizer(o.tokenizer, o.model, vocab));
  const g = buildGroup(o, vocab, tok);
  const r = misoScore(model, g.inputs, g.output, { positions: o.positions, weighting: o.weighting });
  if (o.json) {
    const res: Record<string, unknown> = {
      logprobs: r.logprobs,
      total: r.total,
      output_ids: g.output,
      input_lengths: g.inputs.map((x) => x.length),
      positions: o.positions,
      weighting: o.weighting,
    };
    if (o.chat) {
      res.header_tokens = g.headerTokens;
      res.response_total = r.logprobs.slice(Math.max(0, g.headerTokens - 1)).reduce((a, b) => a + b, 0);
    }
    process.stdout.write(JSON.stringify(res) + '\n');
    return;
  }
  // A readable table; token text only when a tokenizer is at hand.
  let t: Tokenizer | null = tokenizer;
  if (t === null) {
    try {
      t = tok();
    } catch (e) {
      if (o.tokenizer !== undefined) throw e; // a tokenizer the user named must load
    }
  }
  const lines = [`${'j'.padStart(4)} ${'id'.padStart(7)}  ${'token'.padEnd(20)} logprob`];
  for (let j = 1; j < g.output.length; j++) {
    const id = g.output[j]!;
    const piece = t ? JSON.stringify(Buffer.from(t.decodeBytes([id], { prev: g.output[j - 1]!, special: true })).toString('utf8')) : '';
    const mark = o.chat && j < g.headerTokens ? ' (header)' : '';
    lines.push(`${String(j).padStart(4)} ${String(id).padStart(7)}  ${piece.padEnd(20)} ${r.logprobs[j - 1]!.toFixed(4)}${mark}`);
  }
  lines.push(`total ${r.total.toFixed(4)} over ${r.logprobs.length} tokens (${g.inputs.length} input${g.inputs.length === 1 ? '' : 's'}, positions ${o.positions}, weighting ${o.weighting})`);
  if (o.chat) {
    // the response (+ end of turn) without the assistant header, as in --json's response_total
    const resp = r.logprobs.slice(Math.max(0, g.headerTokens - 1));
    lines.push(`response_total ${resp.reduce((a, b) => a + b, 0).toFixed(4)} over ${resp.length} tokens (without the ${g.headerTokens}-token header)`);
  }
  process.stdout.write(lines.join('\n') + '\n');
}
