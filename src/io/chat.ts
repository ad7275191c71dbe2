// Chat templates (tokenizer_config.json `chat_template`, rendered with @huggingface/jinja, or the
// built-in plain template) and conversation encoding with loss masks.
//
// Loss masks come from the rendering itself:
// 1. R = render(messages). For assistant message i the turn's text is
//    D_i = render(messages[:i+1])[len(render(messages[:i], add_generation_prompt=true)):],
//    when both renders are prefixes of R (true for ChatML/Qwen, Llama 3, Mistral without system
//    prompt, the plain template). Otherwise (e.g. Mistral v0.3 moves the system prompt into the
//    LAST user turn, so earlier prefixes change) the assistant contents are located by rendering
//    with unique marker strings in place of the contents and aligning R with the marker render.
// 2. The trained text of a turn runs from the start of D_i (after the assistant header, i.e. the
//    generation prompt) through the end of its end-of-turn token: the last occurrence in D_i of
//    eos_token or a stop token ("</s>", "<|im_end|>", "<|eot_id|>"). What the template emits after
//    that token (Qwen's "\n" after "<|im_end|>") is not trained: generation stops at the end token,
//    so the model never produces it (TRL's {% generation %} blocks end at "<|im_end|>" too;
//    LLaMA-Factory's Qwen template does train that "\n" — we follow TRL).
// 3. Character spans become token spans on the tokens of the WHOLE rendering: the token index of a
//    character boundary c is found by encoding R[:c] and comparing it with the full encoding. A
//    token that straddles a span boundary (Mistral's "▁The" holds the template's space and the
//    content's first word) is trained.
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { Environment, Interpreter, Template } from '@huggingface/jinja';
import type { Tokenizer } from '../tokenizer.js';
import { MixtuneError } from '../util/errors.js';

/** An assistant tool call in the HF chat-template shape; `arguments` is an object (templates apply tojson). */
export interface ToolCall {
  type: 'function';
  /** Filled in when missing (see withToolCallIds). */
  id?: string;
  function: { name: string; arguments: unknown };
}

/** A function schema in the HF `tools` shape. */
export interface ToolSchema {
  type: 'function';
  function: { name: string; description?: string; parameters?: unknown; [key: string]: unknown };
}

export interface ChatMessage {
  role: string;
  /** '' for an assistant turn that only calls tools. */
  content: string;
  tool_calls?: ToolCall[];
  /** Tool results: the id of the call they answer (filled in when missing, see withToolCallIds). */
  tool_call_id?: string;
  [key: string]: unknown;
}

export type TrainOn = 'assistant' | 'last' | 'all';

/** Roles a conversation may use (the template decides which it supports; "tool" only with templates that know it). */
export const CHAT_ROLES = ['system', 'user', 'assistant', 'tool'] as const;

/**
 * The built-in template for models without a chat_template (llama2.c models, base models):
 *
 *     <bos>### System:\n{system}\n\n### Tools:\n{tool}\n{tool}\n\n### User:\n{user}\n\n
 *     ### Assistant:\n{assistant}<eos>\n\n### User:\n...
 *
 * Turns are separated by a blank line; the generation prompt is "### Assistant:\n" (after the
 * separator). bos_token/eos_token are written as token text ("<s>", "</s>") and become the BOS /
 * EOS ids when the rendering is encoded (tokenizers without special-token parsing, like llama2.c's
 * 512-piece vocabulary, get them as ids via encodeRendered). The header ends with a newline so the
 * content starts on a clean token boundary (a newline is a byte token in SentencePiece vocabularies
 * and its own pre-token in byte-level BPE).
 *
 * Tools (HF conventions: `tools` = [{type: "function", function: {name, description, parameters}}],
 * assistant `tool_calls` = [{type: "function", function: {name, arguments}}], results as role
 * "tool"): the "### Tools:" block follows the system block (or opens the conversation when there
 * is none), one function schema per line as JSON. An assistant turn's tool calls follow its
 * content (if any, on a new line), one block per call, before the end-of-turn token:
 *
 *     ### Assistant:\n<tool_call>\n{"name": "f", "arguments": {"x": 1}}\n</tool_call><eos>
 *
 * and a tool result is its own turn, "### Tool result:\n{content}" (no loss: it is not assistant
 * output).
 */
export const PLAIN_CHAT_TEMPLATE =
  "{{- bos_token -}}" +
  "{%- set ns = namespace(started=false) -%}" +
  "{%- if tools and not (messages|length > 0 and messages[0]['role'] == 'system') -%}" +
  "{{- '### Tools:' -}}{%- for tool in tools -%}{{- '\\n' + ((tool.function if tool.function is defined else tool)|tojson) -}}{%- endfor -%}" +
  "{%- set ns.started = true -%}" +
  "{%- endif -%}" +
  "{%- for message in messages -%}" +
  "{%- if ns.started -%}{{- '\\n\\n' -}}{%- endif -%}" +
  "{%- set ns.started = true -%}" +
  "{%- if message['role'] == 'system' -%}{{- '### System:\\n' + message['content'] -}}" +
  "{%- if loop.first and tools -%}" +
  "{{- '\\n\\n### Tools:' -}}{%- for tool in tools -%}{{- '\\n' + ((tool.function if tool.function is defined else tool)|tojson) -}}{%- endfor -%}" +
  "{%- endif -%}" +
  "{%- elif message['role'] == 'user' -%}{{- '### User:\\n' + message['content'] -}}" +
  "{%- elif message['role'] == 'assistant' -%}{{- '### Assistant:\\n' + message['content'] -}}" +
  "{%- if message.tool_calls -%}{%- for tool_call in message.tool_calls -%}" +
  "{%- if message['content'] or not loop.first -%}{{- '\\n' -}}{%- endif -%}" +
  "{{- '<tool_call>\\n{\"name\": ' + (tool_call.function.name|tojson) + ', \"arguments\": ' + (tool_call.function.arguments|tojson) + '}\\n</tool_call>' -}}" +
  "{%- endfor -%}{%- endif -%}" +
  "{{- eos_token -}}" +
  "{%- elif message['role'] == 'tool' -%}{{- '### Tool result:\\n' + message['content'] -}}" +
  "{%- else -%}{{- raise_exception('the plain chat template supports the roles system, user, assistant and tool, not ' + message['role']) -}}" +
  "{%- endif -%}" +
  "{%- endfor -%}" +
  "{%- if add_generation_prompt -%}{%- if ns.started -%}{{- '\\n\\n' -}}{%- endif -%}{{- '### Assistant:\\n' -}}{%- endif -%}";

class TemplateRaise extends Error {}

const MONTHS = ['January', 'February', 'March', 'April', 'May', 'June', 'July', 'August', 'September', 'October', 'November', 'December'];
const DAYS = ['Sunday', 'Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday'];

/** Python-style strftime for the directives chat templates use (English names, local time). */
export function strftime(d: Date, format: string): string {
  const p2 = (n: number): string => String(n).padStart(2, '0');
  return format.replace(/%[YymdbBaAHIMSpj%]/g, (t) => {
    switch (t) {
      case '%Y': return String(d.getFullYear());
      case '%y': return p2(d.getFullYear() % 100);
      case '%m': return p2(d.getMonth() + 1);
      case '%d': return p2(d.getDate());
      case '%b': return MONTHS[d.getMonth()]!.slice(0, 3);
      case '%B': return MONTHS[d.getMonth()]!;
      case '%a': return DAYS[d.getDay()]!.slice(0, 3);
      case '%A': return DAYS[d.getDay()]!;
      case '%H': return p2(d.getHours());
      case '%I': return p2(((d.getHours() + 11) % 12) + 1);
      case '%M': return p2(d.getMinutes());
      case '%S': return p2(d.getSeconds());
      case '%p': return d.getHours() < 12 ? 'AM' : 'PM';
      case '%j': return String(Math.floor((d.getTime() - new Date(d.getFullYear(), 0, 1).getTime()) / 86400000) + 1).padStart(3, '0');
      default: return '%';
    }
  });
}

/** Globals of HF's chat-template environment (besides raise_exception, bound per render). */
const JINJA_GLOBALS: Record<string, unknown> = {
  true: true,
  false: false,
  none: null,
  True: true,
  False: false,
  None: null,
  range: (start: number, stop?: number, step = 1): number[] => {
    if (stop === undefined) [start, stop] = [0, start];
    if (step === 0) throw new Error('range() step must not be zero');
    const out: number[] = [];
    if (step > 0) for (let i = start; i < stop; i += step) out.push(i);
    else for (let i = start; i > stop; i += step) out.push(i);
    return out;
  },
  strftime_now: (format: string): string => strftime(new Date(), format),
};

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** A tokenizer_config.json chat_template value → the template text (string; list or dict of named templates → "default"). */
export function pickChatTemplate(value: unknown, source: string, name = 'default'): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') return value;
  if (Array.isArray(value)) {
    const hit = value.find((t) => t && typeof t === 'object' && (t as { name?: unknown }).name === name);
    if (hit && typeof (hit as { template?: unknown }).template === 'string') return (hit as { template: string }).template;
    throw new MixtuneError(`${source}: chat_template list has no template named "${name}" (names: ${value.map((t) => (t as { name?: unknown })?.name).join(', ')})`);
  }
  if (typeof value === 'object') {
    const t = (value as Record<string, unknown>)[name];
    if (typeof t === 'string') return t;
    throw new MixtuneError(`${source}: chat_template has no template named "${name}"`);
  }
  throw new MixtuneError(`${source}: chat_template must be a string or a list of {name, template}`);
}

/** Whether a chat-template setting is Jinja text rather than a file name: it holds "{{", "{%" or "{#". */
export function isInlineChatTemplate(value: string): boolean {
  return /\{[{%#]/.test(value);
}

/**
 * A user-chosen chat template (train.yaml data.chat_template): Jinja text as it is, or a file — a
 * tokenizer_config.json (.json: its chat_template, named `name` when it is a list) or a template
 * file such as chat_template.jinja (any other name: the whole text). `source` names it in errors.
 */
export function loadChatTemplate(value: string, name?: string): { text: string; source: string } {
  if (isInlineChatTemplate(value)) return { text: value, source: 'data.chat_template' };
  let raw: string;
  try {
    raw = readFileSync(value, 'utf8');
  } catch (e) {
    throw new MixtuneError(`${value}: cannot read the chat template (${(e as NodeJS.ErrnoException).code ?? errText(e)}); data.chat_template is a file or Jinja text`);
  }
  if (extname(value).toLowerCase() !== '.json') return { text: raw, source: value };
  let cfg: unknown;
  try {
    cfg = JSON.parse(raw);
  } catch (e) {
    throw new MixtuneError(`${value}: malformed JSON (${errText(e).split('\n')[0]})`);
  }
  const text = pickChatTemplate(cfg && typeof cfg === 'object' ? (cfg as { chat_template?: unknown }).chat_template : undefined, value, name);
  if (text === undefined) throw new MixtuneError(`${value}: field chat_template is missing`);
  return { text, source: `${value} chat_template` };
}

interface HfLike {
  config?: Record<string, unknown>;
  source?: string;
  bosToken?: string;
  eosToken?: string;
  idToToken?(id: number): string | undefined;
}

export class ChatTemplate {
  /** Template text (Jinja). */
  readonly text: string;
  /** "plain" for the built-in template, else the template's name/origin. */
  readonly name: string;
  readonly isPlain: boolean;
  /** The strings bound to bos_token / eos_token while rendering. */
  readonly bosToken: string;
  readonly eosToken: string;
  private readonly compiled: Template;
  private readonly extra: Record<string, unknown>;

  constructor(text: string, opts?: { name?: string; bosToken?: string; eosToken?: string; extra?: Record<string, unknown> }) {
    this.text = text;
    this.name = opts?.name ?? 'chat_template';
    this.isPlain = text === PLAIN_CHAT_TEMPLATE;
    this.bosToken = opts?.bosToken ?? '';
    this.eosToken = opts?.eosToken ?? '';
    this.extra = opts?.extra ?? {};
    try {
      this.compiled = new Template(text);
    } catch (e) {
      throw new MixtuneError(`${this.name}: cannot parse the chat template: ${errText(e)}`);
    }
  }

  /** The built-in plain template (see PLAIN_CHAT_TEMPLATE). */
  static plain(opts?: { bosToken?: string; eosToken?: string }): ChatTemplate {
    return new ChatTemplate(PLAIN_CHAT_TEMPLATE, { name: 'plain', bosToken: opts?.bosToken ?? '<s>', eosToken: opts?.eosToken ?? '</s>' });
  }

  /**
   * The template of a tokenizer: tokenizer_config.json's chat_template for HF tokenizers (named
   * `name`, default "default", when it is a list), else the plain template with the tokenizer's
   * BOS/EOS text ("<s>"/"</s>" for llama2.c tokenizers). `template` (train.yaml
   * data.chat_template: Jinja text or a file, see loadChatTemplate) overrides both.
   */
  static forTokenizer(tok: Tokenizer, opts?: { name?: string; plain?: boolean; template?: string }): ChatTemplate {
    const hf = tok as Tokenizer & HfLike;
    const bos = hf.bosToken ?? (tok.bosId >= 0 ? '<s>' : '');
    const eos = hf.eosToken ?? '</s>';
    if (opts?.template !== undefined) {
      const own = loadChatTemplate(opts.template, opts.name);
      return new ChatTemplate(own.text, { name: own.source, bosToken: bos, eosToken: eos });
    }
    const src = `${hf.source ?? 'tokenizer'} (tokenizer_config.json)`;
    const text = opts?.plain ? undefined : pickChatTemplate(hf.config?.chat_template, src, opts?.name);
    if (text === undefined) return ChatTemplate.plain({ bosToken: bos, eosToken: eos });
    return new ChatTemplate(text, { name: `${src} chat_template`, bosToken: bos, eosToken: eos });
  }

  /** Renders messages (checked with validateConversation) to text. Template errors and raise_exception → MixtuneError. */
  render(messages: readonly ChatMessage[], opts?: { addGenerationPrompt?: boolean; tools?: unknown[] }): string {
    const ctx: Record<string, unknown> = {
      ...JINJA_GLOBALS,
      ...this.extra,
      messages: withToolCallIds(messages).map((m) => ({ ...m })),
      add_generation_prompt: opts?.addGenerationPrompt ?? false,
      bos_token: this.bosToken,
      eos_token: this.eosToken,
      raise_exception: (msg: unknown) => {
        throw new TemplateRaise(String(msg));
      },
    };
    if (opts?.tools !== undefined) ctx.tools = opts.tools;
    try {
      // Template.render would not let us replace its raise_exception (it throws a plain Error), so
      // run the interpreter on our own environment with the same globals.
      const env = new Environment();
      for (const [k, v] of Object.entries(ctx)) env.set(k, v);
      return String(new Interpreter(env).run(this.compiled.parsed).value);
    } catch (e) {
      if (e instanceof TemplateRaise) throw new MixtuneError(`${this.name}: the chat template rejected the conversation: ${e.message}`);
      throw new MixtuneError(`${this.name}: rendering the chat template failed: ${errText(e)}`);
    }
  }
}

/** Whether an assistant message calls tools. */
function hasToolCalls(m: ChatMessage): m is ChatMessage & { tool_calls: ToolCall[] } {
  return Array.isArray(m.tool_calls) && m.tool_calls.length > 0;
}

/**
 * The messages with tool-call ids where the data has none: the k-th call of the conversation gets
 * "call" + k in five digits (9 alphanumeric characters, the form Mistral's template requires), and
 * a tool result without tool_call_id answers the earliest call not yet answered. Deterministic,
 * so every prefix of a conversation gets the same ids. Messages are copied only when changed.
 */
export function withToolCallIds(messages: readonly ChatMessage[]): ChatMessage[] {
  let n = 0;
  const pending: string[] = [];
  return messages.map((m) => {
    if (m.role === 'assistant' && hasToolCalls(m)) {
      let changed = false;
      const calls = m.tool_calls.map((c) => {
        n++;
        if (typeof c.id === 'string' && c.id) return c;
        changed = true;
        return { ...c, id: `call${String(n).padStart(5, '0')}` };
      });
      pending.push(...calls.map((c) => c.id!));
      return changed ? { ...m, tool_calls: calls } : m;
    }
    if (m.role === 'tool') {
      if (typeof m.tool_call_id === 'string' && m.tool_call_id) {
        const k = pending.indexOf(m.tool_call_id);
        if (k >= 0) pending.splice(k, 1);
        return m;
      }
      const id = pending.shift();
      return id !== undefined ? { ...m, tool_call_id: id } : m;
    }
    return m;
  });
}

/**
 * Throws MixtuneError unless `messages` is a list of {role, content} with known roles (assistant
 * turns may call tools: tool_calls = [{function: {name, arguments}}], then content may be "");
 * `where` names the record.
 */
export function validateConversation(messages: unknown, where = 'conversation'): asserts messages is ChatMessage[] {
  if (!Array.isArray(messages)) throw new MixtuneError(`${where}: messages must be a list`);
  messages.forEach((m, i) => {
    if (!m || typeof m !== 'object') throw new MixtuneError(`${where}: message ${i} is not an object`);
    const { role, content, tool_calls: calls } = m as { role?: unknown; content?: unknown; tool_calls?: unknown };
    if (typeof role !== 'string' || !(CHAT_ROLES as readonly string[]).includes(role)) {
      throw new MixtuneError(`${where}: message ${i} has unknown role ${JSON.stringify(role)} (expected ${CHAT_ROLES.join(', ')})`);
    }
    if (typeof content !== 'string') throw new MixtuneError(`${where}: message ${i} (${role}) has no string content`);
    if (calls !== undefined && calls !== null) {
      if (role !== 'assistant') throw new MixtuneError(`${where}: message ${i} (${role}) has tool_calls; only assistant turns call tools`);
      if (!Array.isArray(calls)) throw new MixtuneError(`${where}: message ${i}: tool_calls must be a list`);
      calls.forEach((c: unknown, j) => {
        const f = c && typeof c === 'object' ? (c as { function?: unknown }).function : undefined;
        if (!f || typeof f !== 'object' || typeof (f as { name?: unknown }).name !== 'string' || !(f as { name: string }).name) {
          throw new MixtuneError(`${where}: message ${i}: tool_calls[${j}] must be {type: "function", function: {name, arguments}}`);
        }
      });
    }
    const calling = Array.isArray(calls) && calls.length > 0;
    if (role === 'assistant' && content.trim() === '' && !calling) throw new MixtuneError(`${where}: message ${i} is an empty assistant turn`);
  });
}

/**
 * Token ids of a rendered template: tok.encodeWithSpecials when the tokenizer has it (HF);
 * otherwise the template's bos_token / eos_token strings become tok.bosId / tok.eosId and the text
 * between them is encoded with tok.encode (llama2.c).
 */
export function encodeRendered(tok: Tokenizer, template: ChatTemplate, text: string): number[] {
  if (tok.encodeWithSpecials) return tok.encodeWithSpecials(text);
  const specials: [string, number][] = [];
  if (template.bosToken && tok.bosId >= 0) specials.push([template.bosToken, tok.bosId]);
  if (template.eosToken && tok.eosId >= 0) specials.push([template.eosToken, tok.eosId]);
  const out: number[] = [];
  let pos = 0;
  let section = '';
  while (pos < text.length) {
    const hit = specials.find(([s]) => text.startsWith(s, pos));
    if (hit) {
      if (section) out.push(...tok.encode(section));
      section = '';
      out.push(hit[1]);
      pos += hit[0].length;
    } else {
      section += text[pos];
      pos++;
    }
  }
  if (section) out.push(...tok.encode(section));
  return out;
}

function commonPrefix(a: readonly number[], b: readonly number[]): number {
  const n = Math.min(a.length, b.length);
  let i = 0;
  while (i < n && a[i] === b[i]) i++;
  return i;
}

/** Texts of the end-of-turn tokens: eos_token and the tokenizer's stop tokens. */
function endTokenTexts(tok: Tokenizer, template: ChatTemplate): string[] {
  const out = new Set<string>();
  if (template.eosToken) out.add(template.eosToken);
  const hf = tok as Tokenizer & HfLike;
  if (hf.idToToken) {
    for (const id of tok.stopIds ?? [tok.eosId]) {
      const t = id >= 0 ? hf.idToToken(id) : undefined;
      if (t) out.add(t);
    }
  }
  return [...out];
}

export interface CharSpan {
  /** Where the assistant header (generation prompt) starts; = start when the template has none or it cannot be told apart. */
  header: number;
  start: number;
  end: number;
}

/**
 * Character spans in `full` (= template.render(messages, {tools})) of every assistant turn's
 * trained text. A turn that calls tools is trained like any assistant turn: its content (if the
 * template renders it) and its calls, through the end-of-turn token.
 */
export function assistantCharSpans(tok: Tokenizer, template: ChatTemplate, messages: readonly ChatMessage[], full: string, tools?: unknown[]): CharSpan[] {
  const ends = endTokenTexts(tok, template);
  const cut = (start: number, turnEnd: number): number => {
    const d = full.slice(start, turnEnd);
    let best = -1;
    for (const e of ends) {
      const k = d.lastIndexOf(e);
      if (k >= 0 && k + e.length > best) best = k + e.length;
    }
    return best >= 0 ? start + best : start + d.trimEnd().length;
  };
  const spans: CharSpan[] = [];
  let prefixOk = true;
  for (let i = 0; i < messages.length && prefixOk; i++) {
    if (messages[i]!.role !== 'assistant') continue;
    let before: string, prompt: string, turn: string;
    try {
      before = template.render(messages.slice(0, i), { addGenerationPrompt: false, tools });
      prompt = template.render(messages.slice(0, i), { addGenerationPrompt: true, tools });
      turn = template.render(messages.slice(0, i + 1), { addGenerationPrompt: false, tools });
    } catch {
      prefixOk = false; // the template rejects partial conversations: use markers
      break;
    }
    if (!full.startsWith(turn) || !turn.startsWith(prompt) || turn.length === prompt.length) {
      prefixOk = false;
      break;
    }
    const header = prompt.startsWith(before) && full.startsWith(before) ? before.length : prompt.length;
    spans.push({ header, start: prompt.length, end: cut(prompt.length, turn.length) });
  }
  if (prefixOk) return spans;
  return markerSpans(template, messages, full, ends, tools);
}

const marker = (k: number): string => `\u{F0000}mixtune-${k}\u{F0001}`;

/**
 * The message with marker k in place of what identifies its rendering: the content, or for a turn
 * that calls tools the first call's function name (templates render the calls, not always the content).
 */
function markMessage(m: ChatMessage, k: number): ChatMessage {
  if (!hasToolCalls(m)) return { ...m, content: marker(k) };
  const [first, ...rest] = m.tool_calls;
  return { ...m, tool_calls: [{ ...first!, function: { ...first!.function, name: marker(k) } }, ...rest] };
}

/**
 * Fallback: locate assistant turns by rendering unique markers in their place (markMessage).
 * Plain turns: the marker is the content and the turn ends with the end-of-turn token right
 * after it. Tool-call turns: the marker is the first call's name; the turn starts where a
 * one-turn probe of the same message puts the text before the name (Mistral: "[TOOL_CALLS]
 * [{"name": "") and ends with the first end-of-turn token after it.
 */
function markerSpans(template: ChatTemplate, messages: readonly ChatMessage[], full: string, ends: string[], tools?: unknown[]): CharSpan[] {
  const order: number[] = [];
  const marked = messages.map((m, i) => {
    if (m.role !== 'assistant') return m;
    order.push(i);
    return markMessage(m, order.length - 1);
  });
  const rm = template.render(marked, { addGenerationPrompt: false, tools });
  const segs: string[] = [];
  let pos = 0;
  for (let k = 0; k < order.length; k++) {
    const at = rm.indexOf(marker(k), pos);
    if (at < 0) throw new MixtuneError(`${template.name}: cannot locate assistant message ${order[k]} in the rendering (the template transforms or drops the content)`);
    segs.push(rm.slice(pos, at));
    pos = at + marker(k).length;
  }
  segs.push(rm.slice(pos));
  // The template's own text around an assistant turn, learnt from a one-turn probe: `header` = the
  // generation prompt, `lead` = the text between it and the marker (Mistral: " " before a
  // content; for a tool-call turn, its content and the call's opening text).
  const probe: ChatMessage[] = [{ role: 'user', content: 'x' }];
  let header = '';
  let p = '';
  try {
    const base = template.render(probe, { addGenerationPrompt: false });
    p = template.render(probe, { addGenerationPrompt: true });
    if (p.startsWith(base)) header = p.slice(base.length);
  } catch {
    /* no probe information: spans start at the content */
  }
  const leadOf = (m: ChatMessage): string | undefined => {
    try {
      const q = template.render([...probe, m], { addGenerationPrompt: false });
      const at = q.indexOf(marker(0));
      return p && q.startsWith(p) && at >= p.length ? q.slice(p.length, at) : undefined;
    } catch {
      return undefined;
    }
  };
  const plainLead = leadOf({ role: 'assistant', content: marker(0) }) ?? '';
  const spans: CharSpan[] = [];
  let at = 0;
  for (let k = 0; k < order.length; k++) {
    if (!full.startsWith(segs[k]!, at)) throw new MixtuneError(`${template.name}: the rendering of message ${order[k]} depends on its content; cannot derive the loss mask`);
    at += segs[k]!.length;
    const msg = messages[order[k]!]!;
    const seg = segs[k]!;
    const next = segs[k + 1]!;
    if (hasToolCalls(msg)) {
      const name = msg.tool_calls[0]!.function.name;
      const lead = leadOf(markMessage(msg, 0));
      if (!full.startsWith(name + next, at) || lead === undefined || !seg.endsWith(lead)) {
        throw new MixtuneError(`${template.name}: cannot align the tool calls of assistant message ${order[k]} with the rendering`);
      }
      const start = at - lead.length;
      const head = header && seg.endsWith(header + lead) ? start - header.length : start;
      at += name.length;
      let e = -1;
      for (const x of ends) {
        const j = next.indexOf(x);
        if (j >= 0 && (e < 0 || j + x.length < e)) e = j + x.length;
      }
      if (e < 0) throw new MixtuneError(`${template.name}: no end-of-turn token after the tool calls of assistant message ${order[k]}`);
      spans.push({ header: head, start, end: at + e });
      continue;
    }
    const c = msg.content;
    const cand = [c, c.trim(), c.trimStart(), c.trimEnd()].find((x) => full.startsWith(x + next, at));
    if (cand === undefined) throw new MixtuneError(`${template.name}: cannot align assistant message ${order[k]} with the rendering (the template rewrites its content)`);
    const start = seg.endsWith(plainLead) ? at - plainLead.length : at;
    const head = header && seg.endsWith(header + plainLead) ? start - header.length : start;
    at += cand.length;
    // The turn ends with the end-of-turn token right after the content (possibly after whitespace).
    const m = /^\s*/.exec(next)![0].length;
    const e = ends.filter((x) => next.startsWith(x, m)).sort((x, y) => y.length - x.length)[0];
    spans.push({ header: head, start, end: e !== undefined ? at + m + e.length : at });
  }
  return spans;
}

export interface TokenSpan {
  /** First token of the assistant header (generation prompt); = start when there is none. */
  header: number;
  /** First trained token of the turn. */
  start: number;
  /** One past the turn's end-of-turn token. */
  end: number;
}

export interface EncodedConversation {
  ids: number[];
  /** Aligned with ids: the id where the token carries loss, -100 elsewhere (the trainer shifts). */
  labels: number[];
  /** Token spans of every assistant turn (whatever trainOn says), clipped to maxLen. */
  assistantSpans: TokenSpan[];
  /** The rendered text. */
  text: string;
  /** Whether maxLen cut the sequence. */
  truncated: boolean;
  /**
   * Indices of messages whose (trimmed, non-empty) content does not occur in the rendering: the
   * template dropped them. Mistral v0.3's template, for one, only renders the system prompt
   * inside the LAST user turn, so a conversation ending with an assistant turn loses it.
   */
  droppedMessages: number[];
}

/**
 * Throws MixtuneError when the template silently drops tool calls or the tool list (a template
 * without tool support, e.g. the original Llama 3 one, renders a tool-call turn as an empty
 * assistant turn): every call's name and every tool's name is replaced by a unique marker, and
 * each marker must appear in the rendering.
 */
function checkToolsRendered(template: ChatTemplate, messages: readonly ChatMessage[], tools: unknown[] | undefined, where: string): void {
  const calls = messages.flatMap((m, i) => (hasToolCalls(m) ? m.tool_calls.map(() => i) : []));
  if (calls.length === 0 && !tools) return;
  let k = 0;
  const marked = messages.map((m) => (hasToolCalls(m) ? { ...m, tool_calls: m.tool_calls.map((c) => ({ ...c, function: { ...c.function, name: marker(k++) } })) } : m));
  const markedTools = tools?.map((t, j) => {
    const f = t && typeof t === 'object' ? (t as { function?: unknown }).function : undefined;
    const name = marker(calls.length + j);
    return f && typeof f === 'object' ? { ...(t as object), function: { ...f, name } } : { ...(t as object), name };
  });
  const r = template.render(marked, { addGenerationPrompt: false, ...(markedTools ? { tools: markedTools } : {}) });
  const fix = 'choose a template with tool support (data.chat_template) or the built-in one (data.template: plain)';
  const missing = calls.findIndex((_, j) => !r.includes(marker(j)));
  if (missing >= 0) throw new MixtuneError(`${where}: ${template.name} does not render tool calls (message ${calls[missing]} calls a tool); ${fix}`);
  if (tools && !tools.every((_, j) => r.includes(marker(calls.length + j)))) throw new MixtuneError(`${where}: ${template.name} does not render the tool list; ${fix}`);
}

/**
 * Renders and encodes a conversation with loss labels. trainOn: "assistant" (default) trains every
 * assistant turn's content plus its end-of-turn token; "last" only the final assistant turn; "all"
 * every token. maxLen truncates (and reports it).
 */
export function encodeConversation(
  tok: Tokenizer,
  template: ChatTemplate,
  messages: readonly ChatMessage[],
  opts?: { trainOn?: TrainOn; maxLen?: number; where?: string; tools?: unknown[] },
): EncodedConversation {
  const where = opts?.where ?? 'conversation';
  validateConversation(messages, where);
  const trainOn = opts?.trainOn ?? 'assistant';
  if (!['assistant', 'last', 'all'].includes(trainOn)) throw new MixtuneError(`${where}: train_on must be assistant, last or all, not ${JSON.stringify(trainOn)}`);
  const nAssistant = messages.filter((m) => m.role === 'assistant').length;
  if (trainOn !== 'all' && nAssistant === 0) throw new MixtuneError(`${where}: no assistant turn to train on`);
  const tools = opts?.tools?.length ? opts.tools : undefined;
  const text = template.render(messages, { addGenerationPrompt: false, tools });
  checkToolsRendered(template, messages, tools, where);
  const ids = encodeRendered(tok, template, text);
  const chars = nAssistant > 0 ? assistantCharSpans(tok, template, messages, text, tools) : [];
  const boundary = (c: number, straddle: 'before' | 'after'): number => {
    if (c <= 0) return 0;
    if (c >= text.length) return ids.length;
    const e = encodeRendered(tok, template, text.slice(0, c));
    const l = commonPrefix(e, ids);
    if (l === e.length) return l; // c is a token boundary
    return straddle === 'before' ? l : Math.min(l + 1, ids.length); // token l straddles c
  };
  const spans: TokenSpan[] = chars.map((s) => {
    const start = boundary(s.start, 'before');
    const header = s.header < s.start ? Math.min(boundary(s.header, 'before'), start) : start;
    const end = Math.max(boundary(s.end, 'after'), start);
    return { header, start, end };
  });
  const labels = new Array<number>(ids.length).fill(-100);
  if (trainOn === 'all') for (let t = 0; t < ids.length; t++) labels[t] = ids[t]!;
  else {
    for (const s of trainOn === 'last' ? spans.slice(-1) : spans) for (let t = s.start; t < s.end; t++) labels[t] = ids[t]!;
  }
  const maxLen = opts?.maxLen;
  let truncated = false;
  if (maxLen !== undefined) {
    if (!Number.isInteger(maxLen) || maxLen <= 0) throw new MixtuneError(`${where}: maxLen must be a positive integer, got ${maxLen}`);
    if (ids.length > maxLen) {
      truncated = true;
      ids.length = maxLen;
      labels.length = maxLen;
    }
  }
  const clipped = spans
    .filter((s) => s.header < ids.length)
    .map((s) => ({ header: s.header, start: Math.min(s.start, ids.length), end: Math.min(s.end, ids.length) }));
  const droppedMessages: number[] = [];
  messages.forEach((m, i) => {
    const c = m.content.trim();
    if (c !== '' && !text.includes(c)) droppedMessages.push(i);
  });
  return { ids, labels, assistantSpans: clipped, text, truncated, droppedMessages };
}

/** The prompt text for generation: messages rendered with add_generation_prompt. */
export function renderPrompt(template: ChatTemplate, messages: readonly ChatMessage[], opts?: { tools?: unknown[] }): string {
  validateConversation(messages);
  return template.render(messages, { addGenerationPrompt: true, tools: opts?.tools });
}

/** Token ids of renderPrompt (special tokens in the rendering become ids). */
export function encodePrompt(tok: Tokenizer, template: ChatTemplate, messages: readonly ChatMessage[], opts?: { tools?: unknown[] }): number[] {
  return encodeRendered(tok, template, renderPrompt(template, messages, opts));
}

/**
 * The assistant header that add_generation_prompt appends (e.g. "<|im_start|>assistant\n" for
 * Qwen, "" for Mistral, "\n\n### Assistant:\n" for the plain template), found by diffing the
 * renders of `messages` (default: one user message) with and without it. `ids` are its tokens as
 * they occur after the conversation (the tail of the prompt encoding when the encoding without the
 * header is a prefix of it; else the header encoded on its own).
 */
export function generationPrompt(
  tok: Tokenizer,
  template: ChatTemplate,
  messages: readonly ChatMessage[] = [{ role: 'user', content: 'Hello' }],
): { text: string; ids: number[] } {
  validateConversation(messages);
  const base = template.render(messages, { addGenerationPrompt: false });
  const withGen = template.render(messages, { addGenerationPrompt: true });
  if (!withGen.startsWith(base)) throw new MixtuneError(`${template.name}: add_generation_prompt changes the rendering before its end; cannot isolate the generation prompt`);
  const text = withGen.slice(base.length);
  if (text === '') return { text, ids: [] };
  const a = encodeRendered(tok, template, base);
  const b = encodeRendered(tok, template, withGen);
  const ids = commonPrefix(a, b) === a.length ? b.slice(a.length) : encodeRendered(tok, template, text);
  return { text, ids };
}
