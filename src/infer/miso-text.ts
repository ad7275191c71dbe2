// Text -> token ids of a MISO group for decoding and scoring: the same layout the MISO recipes
// train (inputs rendered without the generation prompt, the output opened by the assistant header).
import { ChatTemplate, type ChatMessage, encodeConversation, encodeRendered, generationPrompt } from '../io/chat.js';
import type { Tokenizer } from '../tokenizer.js';
import { MixtuneError } from '../util/errors.js';

/**
 * The MISO group of `generate --input ...`: the token ids of every input and the given start of the
 * output part. Plain: each input is BOS + text (like --prompt), the output starts with the --prompt
 * text (no BOS; may be empty only with one input). --chat: each input is the conversation
 * [system?, user: input] rendered WITHOUT the generation prompt, and the output starts with the
 * assistant header (the generation prompt) followed by the --prompt text if any, as the MISO recipes
 * train. With one input both concatenate to the standard prompt.
 */
export function misoGroupFromText(
  tok: Tokenizer, o: { input: readonly string[]; prompt: string; chat?: boolean; system?: string },
): { inputs: number[][]; prefix: number[] } {
  const promptIds = o.prompt !== '' ? tok.encode(o.prompt) : [];
  if (o.chat) {
    const template = ChatTemplate.forTokenizer(tok);
    const conv = (text: string): ChatMessage[] => [
      ...(o.system !== undefined ? [{ role: 'system' as const, content: o.system }] : []),
      { role: 'user', content: text },
    ];
    const inputs = o.input.map((text) => encodeRendered(tok, template, template.render(conv(text), { addGenerationPrompt: false })));
    const header = generationPrompt(tok, template, conv(o.input[0]!)).ids;
    return { inputs, prefix: [...header, ...promptIds] };
  }
  const inputs = o.input.map((text) => {
    const ids = tok.encode(text, { bos: true });
    if (ids.length === 0) ids.push(tok.bosId >= 0 ? tok.bosId : tok.eosId);
    return ids;
  });
  return { inputs, prefix: promptIds };
}

export interface ScoredGroup {
  inputs: number[][];
  output: number[];
  /** Output tokens before the response (the chat header); 0 without --chat. */
  headerTokens: number;
}

/**
 * The chat form of a scored MISO group: every input is the conversation [system?, user: input]
 * rendered WITHOUT the generation prompt; the output is the rest of the rendered conversation
 * [system?, user: input, assistant: output] — the assistant header, the response and its end of
 * turn — i.e. the output part as the MISO recipes train it.
 */
export function chatGroup(tok: Tokenizer, inputs: readonly string[], output: string, system?: string): ScoredGroup {
  const template = ChatTemplate.forTokenizer(tok);
  let out: number[] | null = null;
  let headerTokens = 0;
  const ins = inputs.map((text, i) => {
    const messages: ChatMessage[] = [
      ...(system !== undefined ? [{ role: 'system' as const, content: system }] : []),
      { role: 'user', content: text },
      { role: 'assistant', content: output },
    ];
    const enc = encodeConversation(tok, template, messages, { trainOn: 'last', where: `--input ${i + 1}` });
    const span = enc.assistantSpans.at(-1);
    if (!span || span.header === 0) throw new MixtuneError(`--chat: the chat template renders no prompt before the assistant turn for --input ${i + 1}`);
    const o = enc.ids.slice(span.header, span.end);
    if (out === null) {
      out = o;
      headerTokens = span.start - span.header;
    } else if (o.length !== out.length || o.some((id, j) => id !== out![j])) {
      throw new MixtuneError(`--chat: the chat template renders the output differently after --input ${i + 1} than after --input 1; score with --input-ids/--output-ids`);
    }
    return enc.ids.slice(0, span.header);
  });
  return { inputs: ins, output: out ?? [], headerTokens };
}

