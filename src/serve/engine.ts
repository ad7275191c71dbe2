// The model behind `mixtune serve`: turns validated API requests into decoding jobs (prompt token
// ids or a MISO group, sampling, limits) and decodes them one token at a time, yielding to the
// event loop between tokens so the server keeps answering, streams and notices disconnects.
//
// Decoding is the same code as `mixtune generate` (generateSteps / misoGenerateSteps, the same stop
// ids, the same incremental detokenization), so greedy answers equal the CLI's.
import { basename, dirname, resolve } from 'node:path';
import { nativeKernels } from '../tensor/native.js';
import { loadModel, loadTokenizer } from '../io/load.js';
import { isEmbeddedModelName } from '../io/model-ref.js';
import { ChatTemplate, type ChatMessage, encodePrompt, encodeRendered, generationPrompt, validateConversation } from '../io/chat.js';
import { generateSteps, type DecodeSteps } from '../infer/generate.js';
import { misoGenerateSteps, misoPositions, type MisoPositions } from '../infer/miso.js';
import { misoGroupFromText } from '../infer/miso-text.js';
import type { LlamaModel } from '../model/llama.js';
import type { Weighting } from '../tensor/ops.js';
import type { Tokenizer } from '../tokenizer.js';
import { MixtuneError } from '../util/errors.js';
import { badRequest } from './api-error.js';
import { CancelledError } from './queue.js';
import { StopStrings } from './stop-strings.js';
import type { ApiMessage, ChatRequest, CompletionRequest } from './requests.js';

export interface DecodeJob {
  /** Standard generation: the prompt's token ids (null for MISO). */
  prompt: number[] | null;
  /** MISO generation: the inputs' token ids and the start of the output. */
  miso: { inputs: number[][]; prefix: number[]; weighting: Weighting; positions: MisoPositions } | null;
  promptTokens: number;
  maxTokens: number;
  temperature: number;
  topP: number;
  topK: number;
  seed: number;
  stop: string[];
  /** Generate past the model's end-of-sequence tokens (they decode to no text). */
  ignoreEos: boolean;
}

export interface Completion {
  text: string;
  finishReason: 'stop' | 'length';
  promptTokens: number;
  /** Tokens the model generated (a final end-of-turn token included). */
  completionTokens: number;
}

export interface ServedModelOptions {
  model: string;
  tokenizer?: string;
  /** The id clients see in /v1/models and responses (default: the model's folder or file name). */
  name?: string;
  /** Longest prompt + completion a request may use (default and at most: the model's context). */
  context?: number;
  /** Most MISO inputs a request may send. */
  maxInputs: number;
}

const yieldToEventLoop = (): Promise<void> => new Promise((r) => setImmediate(r));

export class ServedModel {
  readonly created = Math.floor(Date.now() / 1000);
  readonly context: number;
  private readonly template: ChatTemplate;

  private constructor(
    readonly id: string,
    readonly model: LlamaModel,
    readonly tok: Tokenizer,
    /** Token ids that end generation (as `mixtune generate`). */
    readonly stopIds: readonly number[],
    context: number,
    readonly maxInputs: number,
  ) {
    this.context = Math.min(context, model.config.maxSeqLen);
    this.template = ChatTemplate.forTokenizer(tok);
  }

  static load(o: ServedModelOptions): ServedModel {
    const { model, format } = loadModel(o.model, nativeKernels());
    const tok = loadTokenizer(o.tokenizer, o.model, model.config.vocabSize);
    // llama2.c's TinyStories models mark story boundaries with BOS, and llama2.c stops on it.
    const stopIds = format === 'llama2c' ? [tok.eosId, tok.bosId] : [...(tok.stopIds ?? [tok.eosId])];
    return new ServedModel(o.name ?? modelId(o.model), model, tok, stopIds, o.context ?? model.config.maxSeqLen, o.maxInputs);
  }

  /** The decoding job of a /v1/chat/completions request. */
  chatJob(req: ChatRequest): DecodeJob {
    const tools = req.tools ?? undefined;
    let prompt: number[] | null = null;
    let miso: DecodeJob['miso'] = null;
    if (req.mixtune) {
      if (req.messages && req.messages.length > 0) {
        throw badRequest('messages: with mixtune.inputs every input carries its own messages; send "messages": []', 'messages');
      }
      if (tools) throw badRequest('tools: not supported together with mixtune.inputs', 'tools');
      const inputs = req.mixtune.inputs;
      if (inputs.length > this.maxInputs) throw badRequest(`mixtune.inputs: ${inputs.length} inputs, more than this server allows (--max-inputs ${this.maxInputs})`, 'mixtune.inputs');
      const convs = inputs.map((msgs, i) => toChatMessages(msgs, `mixtune.inputs[${i}]`));
      const ids = convs.map((conv, i) => templateCall(`mixtune.inputs[${i}]`, () => encodeRendered(this.tok, this.template, this.template.render(conv, { addGenerationPrompt: false }))));
      // The output starts with the assistant header, as `generate --input ... --chat` and the MISO recipes.
      const prefix = templateCall('mixtune.inputs[0]', () => generationPrompt(this.tok, this.template, convs[0]!).ids);
      if (inputs.length > 1 && prefix.length === 0) {
        throw badRequest(`mixtune.inputs: the chat template (${this.template.name}) adds no assistant header, so several inputs leave the output nothing to start from`, 'mixtune.inputs');
      }
      miso = { inputs: ids, prefix, weighting: req.mixtune.weighting ?? 'uniform', positions: req.mixtune.positions ?? 'para' };
    } else {
      if (!req.messages || req.messages.length === 0) throw badRequest('messages: required, a non-empty list of messages', 'messages', 'missing_required_parameter');
      const conv = toChatMessages(req.messages, 'messages');
      prompt = templateCall('messages', () => encodePrompt(this.tok, this.template, conv, tools ? { tools } : undefined));
      if (prompt.length === 0) prompt.push(this.tok.bosId >= 0 ? this.tok.bosId : this.tok.eosId);
    }
    const maxTokens = req.max_completion_tokens ?? req.max_tokens ?? null;
    return this.job(req, { prompt, miso, promptParam: miso ? 'mixtune.inputs' : 'messages' }, maxTokens, req.max_completion_tokens != null ? 'max_completion_tokens' : 'max_tokens', null);
  }

  /** The decoding job of a /v1/completions request (and the prompt text for `echo`). */
  completionJob(req: CompletionRequest): { job: DecodeJob; promptText: string } {
    const p = req.prompt ?? '';
    const flat: string | number[] = Array.isArray(p) && (typeof p[0] === 'string' || Array.isArray(p[0])) ? (p[0] as string | number[]) : (p as string | number[]);
    let prompt: number[] | null = null;
    let miso: DecodeJob['miso'] = null;
    let promptText: string;
    if (typeof flat === 'string') promptText = flat;
    else {
      const V = this.model.config.vocabSize;
      const bad = flat.findIndex((id) => id >= V);
      if (bad >= 0) throw badRequest(`prompt: token ${bad} has id ${flat[bad]}, outside the vocabulary [0, ${V})`, 'prompt');
      promptText = this.tok.decode(flat);
    }
    if (req.mixtune) {
      if (typeof flat !== 'string') throw badRequest('prompt: with mixtune.inputs the prompt is the start of the output as text', 'prompt');
      const n = req.mixtune.inputs.length;
      if (n > this.maxInputs) throw badRequest(`mixtune.inputs: ${n} inputs, more than this server allows (--max-inputs ${this.maxInputs})`, 'mixtune.inputs');
      if (n > 1 && flat === '') throw badRequest('prompt: several mixtune.inputs need the start of the output; send it as the prompt', 'prompt');
      const group = misoGroupFromText(this.tok, { input: req.mixtune.inputs, prompt: flat });
      miso = { inputs: group.inputs, prefix: group.prefix, weighting: req.mixtune.weighting ?? 'uniform', positions: req.mixtune.positions ?? 'para' };
    } else {
      prompt = typeof flat === 'string' ? this.tok.encode(flat, { bos: true }) : [...flat];
      if (prompt.length === 0) prompt.push(this.tok.bosId >= 0 ? this.tok.bosId : this.tok.eosId);
    }
    // OpenAI's legacy completions default to 16 tokens.
    return { job: this.job(req, { prompt, miso, promptParam: miso ? 'mixtune.inputs' : 'prompt' }, req.max_tokens ?? null, 'max_tokens', 16), promptText };
  }

  /**
   * The limits and sampling of a job. `requested`: the request's max_tokens (null: `fallback`, or
   * whatever fits in the context when there is none); more than fits is a 400, as OpenAI answers.
   */
  private job(
    req: ChatRequest | CompletionRequest, what: { prompt: number[] | null; miso: DecodeJob['miso']; promptParam: string },
    requested: number | null, maxParam: string, fallback: number | null,
  ): DecodeJob {
    const { prompt, miso } = what;
    // Context used before the first new token: the prompt, or the output's start position + prefix.
    const used = prompt ? prompt.length : misoPositions(miso!.inputs.map((x) => x.length), miso!.positions).outputStart + miso!.prefix.length;
    const promptTokens = prompt ? prompt.length : miso!.inputs.reduce((a, x) => a + x.length, 0) + miso!.prefix.length;
    const room = this.context - used;
    if (room <= 0) {
      throw badRequest(`this model's context is ${this.context} tokens, but the prompt needs ${used}; shorten it`, what.promptParam, 'context_length_exceeded');
    }
    if (requested !== null && requested > room) {
      throw badRequest(`this model's context is ${this.context} tokens; the prompt needs ${used} and ${maxParam} asks for ${requested} more (at most ${room} fit)`, maxParam, 'context_length_exceeded');
    }
    const budget = requested ?? Math.min(fallback ?? room, room);
    const stop = req.stop == null ? [] : typeof req.stop === 'string' ? [req.stop] : req.stop;
    return {
      prompt, miso, promptTokens, maxTokens: budget,
      temperature: req.temperature ?? 1,
      topP: req.top_p ?? 1,
      topK: req.top_k ?? 0,
      seed: req.seed != null ? Number(BigInt.asUintN(32, BigInt(req.seed))) : (Math.random() * 2 ** 32) >>> 0,
      stop,
      ignoreEos: req.ignore_eos === true,
    };
  }

  /**
   * Decodes a job. `onText` receives the completion text as it becomes final (stop sequences held
   * back); an aborted `signal` stops at the next token with CancelledError.
   */
  async decode(job: DecodeJob, signal: AbortSignal, onText?: (text: string) => void): Promise<Completion> {
    const stopIds = job.ignoreEos ? [] : this.stopIds;
    const opts = { maxNewTokens: job.maxTokens, temperature: job.temperature, topP: job.topP, topK: job.topK, seed: job.seed, stopIds };
    let steps: DecodeSteps;
    let prev: number;
    if (job.miso) {
      const { inputs, prefix, weighting, positions } = job.miso;
      steps = misoGenerateSteps(this.model, inputs, { ...opts, outputPrefix: prefix, weighting, positions });
      prev = prefix.length > 0 ? prefix[prefix.length - 1]! : inputs[0]![inputs[0]!.length - 1]!;
    } else {
      steps = generateSteps(this.model, job.prompt!, opts);
      prev = job.prompt![job.prompt!.length - 1]!;
    }
    const decoder = new TextDecoder('utf-8');
    const stops = new StopStrings(job.stop);
    let text = '';
    let generated = 0;
    let finishReason: Completion['finishReason'] = 'length';
    const emit = (s: string): void => {
      if (!s) return;
      text += s;
      onText?.(s);
    };
    let stoppedByText = false;
    try {
      for (;;) {
        if (signal.aborted) throw new CancelledError();
        const r = steps.next();
        if (r.done) {
          finishReason = r.value.stoppedBy === 'stop' ? 'stop' : 'length';
          break;
        }
        generated++;
        const id = r.value;
        if (!stopIds.includes(id)) {
          const piece = decoder.decode(this.tok.decodeBytes([id], { prev }), { stream: true });
          const s = stops.push(piece);
          emit(s.emit);
          if (s.stopped) {
            stoppedByText = true;
            finishReason = 'stop';
            break;
          }
        }
        prev = id;
        await yieldToEventLoop();
      }
    } finally {
      steps.return(undefined as never);
    }
    if (!stoppedByText) {
      const s = stops.push(decoder.decode());
      emit(s.emit);
      if (s.stopped) finishReason = 'stop';
      else emit(stops.flush());
    }
    return { text, finishReason, promptTokens: job.promptTokens, completionTokens: generated };
  }
}

/** The id a model is served as: its name, file or folder (a run's final/ as "<run>/final"). */
export function modelId(model: string): string {
  if (isEmbeddedModelName(model)) return model;
  const abs = resolve(model);
  const base = basename(abs);
  return /^(final|checkpoint-\d+|step-\d+)$/.test(base) ? `${basename(dirname(abs))}/${base}` : base;
}

/** OpenAI messages -> the chat-template messages mixtune renders (text content only). */
function toChatMessages(messages: readonly ApiMessage[], param: string): ChatMessage[] {
  const out = messages.map((m, i): ChatMessage => {
    const where = `${param}[${i}]`;
    let content = '';
    if (typeof m.content === 'string') content = m.content;
    else if (Array.isArray(m.content)) {
      content = m.content.map((part, j) => {
        if (part.type !== 'text' || typeof part.text !== 'string') throw badRequest(`${where}.content[${j}]: only text content parts are supported, not ${JSON.stringify(part.type)}`, `${where}.content`);
        return part.text;
      }).join('');
    }
    const msg: ChatMessage = { role: m.role === 'developer' ? 'system' : m.role, content };
    if (m.name !== undefined) msg.name = m.name;
    if (m.tool_call_id !== undefined) msg.tool_call_id = m.tool_call_id;
    if (m.tool_calls && m.tool_calls.length > 0) {
      msg.tool_calls = m.tool_calls.map((c, j) => {
        let args: unknown = c.function.arguments;
        if (typeof args === 'string') {
          try {
            args = JSON.parse(args);
          } catch {
            throw badRequest(`${where}.tool_calls[${j}].function.arguments: not valid JSON`, `${where}.tool_calls`);
          }
        }
        return { type: 'function' as const, ...(c.id !== undefined ? { id: c.id } : {}), function: { name: c.function.name, arguments: args } };
      });
    }
    return msg;
  });
  templateCall(param, () => validateConversation(out, param));
  return out;
}

/** Runs a chat-template step; a template or conversation error is the client's: 400 naming the field. */
function templateCall<T>(param: string, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof MixtuneError) throw badRequest(e.message, param);
    throw e;
  }
}
