// `mixtune generate`: load a model + tokenizer, stream a continuation to stdout.
import { nativeKernels } from '../tensor/native.js';
import { loadModel, loadTokenizer } from '../io/load.js';
import { generate } from '../infer/generate.js';
import { ChatTemplate, encodePrompt } from '../io/chat.js';

export interface GenerateCliOptions {
  model: string;
  tokenizer?: string;
  prompt: string;
  temperature: number;
  topK: number;
  topP: number;
  seed?: number;
  maxNewTokens: number;
  echo: boolean;
  chat?: boolean;
  system?: string;
  cache: boolean;
  stop: boolean;
}

export async function runGenerate(o: GenerateCliOptions): Promise<void> {
  const { model, format } = loadModel(o.model, nativeKernels());
  const tok = loadTokenizer(o.tokenizer, o.model, model.config.vocabSize);
  // --chat: the prompt is a user turn rendered with the model's chat template (+ generation prompt).
  const prompt = o.chat
    ? encodePrompt(tok, ChatTemplate.forTokenizer(tok), [
        ...(o.system !== undefined ? [{ role: 'system', content: o.system }] : []),
        { role: 'user', content: o.prompt },
      ])
    : tok.encode(o.prompt, { bos: true });
  if (prompt.length === 0) prompt.push(tok.bosId >= 0 ? tok.bosId : tok.eosId);
  // llama2.c's TinyStories models mark story boundaries with BOS, and llama2.c stops on it.
  const stopIds = o.stop ? (format === 'llama2c' ? [tok.eosId, tok.bosId] : [...(tok.stopIds ?? [tok.eosId])]) : [];

  const decoder = new TextDecoder('utf-8');
  const write = (bytes: Uint8Array): void => {
    const s = decoder.decode(bytes, { stream: true });
    if (s) process.stdout.write(s);
  };
  const pieceOf = (prev: number, id: number): Uint8Array => tok.decodeBytes([id], { prev });

  if (o.echo) for (let i = 1; i < prompt.length; i++) write(pieceOf(prompt[i - 1]!, prompt[i]!));
  let prev = prompt[prompt.length - 1]!;
  generate(model, prompt, {
    maxNewTokens: o.maxNewTokens,
    temperature: o.temperature,
    topK: o.topK,
    topP: o.topP,
    seed: o.seed ?? (Date.now() >>> 0),
    stopIds,
    useCache: o.cache,
    onToken: (id) => {
      if (!stopIds.includes(id)) write(pieceOf(prev, id));
      prev = id;
    },
  });
  const rest = decoder.decode();
  process.stdout.write(rest + '\n');
}
