// `mixtune generate`: load a model + tokenizer, stream a continuation to stdout.
// With --input (repeatable): MISO generation, one output decoded against several inputs.
import { nativeKernels } from '../tensor/native.js';
import { loadModel, loadTokenizer, modelConfigOf } from '../io/load.js';
import { checkGenerateMemory } from '../train/memory.js';
import { generate } from '../infer/generate.js';
import { type MisoPositions, misoGenerate } from '../infer/miso.js';
import { ChatTemplate, encodePrompt } from '../io/chat.js';
import { misoGroupFromText } from '../infer/miso-text.js';
import type { Weighting } from '../tensor/ops.js';
import type { Tokenizer } from '../tokenizer.js';
import { MixtuneError } from '../util/errors.js';

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
  /** MISO inputs (--input, repeatable); empty = standard generation from --prompt. */
  input?: string[];
  weighting?: Weighting;
  positions?: MisoPositions;
  /** Generate even when the memory estimate exceeds what is available. */
  force?: boolean;
}

export async function runGenerate(o: GenerateCliOptions): Promise<void> {
  const miso = (o.input ?? []).length > 0;
  if (miso && !o.cache) throw new MixtuneError('--no-cache cannot be used with --input (MISO generation always uses the per-input KV caches)');
  checkGenerateMemory(modelConfigOf(o.model), {
    // tokens <= UTF-8 bytes + BOS + template overhead; every MISO input has its own cache
    contextTokens: o.maxNewTokens + Math.max(Buffer.byteLength(o.prompt), ...(o.input ?? []).map((x) => Buffer.byteLength(x))) + 256,
    sequences: Math.max(1, (o.input ?? []).length), ...(o.force ? { force: true } : {}), what: 'generate',
  });
  const { model, format } = loadModel(o.model, nativeKernels());
  const tok = loadTokenizer(o.tokenizer, o.model, model.config.vocabSize);
  if (miso) return runMisoGenerate(o, model, format, tok);
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

async function runMisoGenerate(o: GenerateCliOptions, model: ReturnType<typeof loadModel>['model'], format: string, tok: Tokenizer): Promise<void> {
  const input = o.input ?? [];
  const { inputs, prefix } = misoGroupFromText(tok, { input, prompt: o.prompt, chat: o.chat, system: o.system });
  if (inputs.length > 1 && prefix.length === 0) {
    throw new MixtuneError('generate: several --input need the start of the output: pass --prompt TEXT (it begins the output) or --chat (the assistant header begins it)');
  }
  const stopIds = o.stop ? (format === 'llama2c' ? [tok.eosId, tok.bosId] : [...(tok.stopIds ?? [tok.eosId])]) : [];
  const decoder = new TextDecoder('utf-8');
  const write = (bytes: Uint8Array): void => {
    const s = decoder.decode(bytes, { stream: true });
    if (s) process.stdout.write(s);
  };
  const pieceOf = (prev: number, id: number): Uint8Array => tok.decodeBytes([id], { prev });
  // --echo: with one input, the input and the output start (= what --prompt would echo); else the output start.
  const shown = inputs.length === 1 ? [...inputs[0]!, ...prefix] : prefix;
  let prev = inputs.length === 1 ? inputs[0]![0]! : (tok.bosId >= 0 ? tok.bosId : -1);
  const from = inputs.length === 1 ? 1 : 0;
  if (o.echo) for (let i = from; i < shown.length; i++) write(pieceOf(i > 0 ? shown[i - 1]! : prev, shown[i]!));
  if (shown.length > 0) prev = shown[shown.length - 1]!;
  misoGenerate(model, inputs, {
    outputPrefix: prefix,
    weighting: o.weighting ?? 'uniform',
    positions: o.positions ?? 'para',
    maxNewTokens: o.maxNewTokens,
    temperature: o.temperature,
    topK: o.topK,
    topP: o.topP,
    seed: o.seed ?? (Date.now() >>> 0),
    stopIds,
    onToken: (id) => {
      if (!stopIds.includes(id)) write(pieceOf(prev, id));
      prev = id;
    },
  });
  const rest = decoder.decode();
  process.stdout.write(rest + '\n');
}
