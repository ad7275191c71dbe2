// Dataset readers: JSONL / JSON / Parquet files holding chat data in the usual formats, normalized
// to Example {id, domain, system?, messages, base?, constraints?}. Every problem names its
// file:line (JSONL) or file#record (JSON, Parquet) and the field, and is either an error or
// (skipBad) a counted skip.
//
// Formats (RecordFormat; 'auto' detects per record, FollowBench per file):
//   messages            {messages: [{role, content, tool_calls?, tool_call_id?}], tools?}   (OpenAI)
//   sharegpt            {conversations: [{from, value}], tools?}   (glaive: function_call / observation turns)
//   alpaca              {instruction, input?, output, system?, history?}
//   prompt_completion   {prompt, completion | response}
//   constraints         {instruction, constraints: string[], output | response, prompt?}
//   ifeval              {prompt, instruction_id_list, kwargs, response, base?}   (IFEval style)
//   crab                {messages, Aug_instruction: {Additional_Instruction: {type: text}}}
//   followbench         {example_id, level, instruction, target | answer}  (level chains)
// Multi-constraint formats fill `base` + `constraints` (MISO-para); the first user message holds
// the full instruction. See ifeval/crab/followbench notes at their parsers.
// Tool use (any format with a conversation): a record's `tools` (a list, or a JSON string of one as
// in glaive) becomes Example.tools in the HF shape [{type: "function", function: {name, ...}}];
// assistant tool calls become Message.tool_calls [{type: "function", function: {name, arguments}}]
// with arguments as an object (OpenAI's JSON-string arguments are parsed); tool results are role
// "tool". The chat template renders them (src/io/chat.ts).
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { MixtuneError } from '../util/errors.js';
import type { ToolCall, ToolSchema } from '../io/chat.js';
import { BadRecord } from './bad-record.js';
import { parseCrabAugmentation, isCrabRecord } from './crab.js';
import { followBenchItems, isFollowBenchRecord } from './followbench.js';
import { renderIfevalConstraint } from './ifeval-constraints.js';
import { readParquetObjectsSync } from './parquet.js';

export { BadRecord };

export type Role = 'system' | 'user' | 'assistant' | 'tool';

export type { ToolCall, ToolSchema };

// A type (not an interface) so that a Message is also a chat-template ChatMessage.
export type Message = {
  role: Role;
  /** '' for an assistant turn that only calls tools. */
  content: string;
  /** Assistant turns: the tools it calls. */
  tool_calls?: ToolCall[];
  /** Tool results: the id of the call they answer, when the data gives one. */
  tool_call_id?: string;
};

export interface Example {
  /** Stable id: file:line or file#index. */
  id: string;
  domain: string;
  /** System prompt given by the data or the dataset config (recipes may draw one from a pool). */
  system?: string;
  /** The conversation without the system prompt. */
  messages: Message[];
  /** Function schemas the conversation may call (HF `tools` shape); absent when there are none. */
  tools?: ToolSchema[];
  /**
   * Multi-constraint data (MISO-para): the bare instruction and its constraints, one sentence
   * each. The first user message holds the full instruction (bare + all constraints).
   */
  base?: string;
  constraints?: string[];
}

/** The instruction text with a subset of its constraints (MISO-para's full / single / bare inputs). */
export function composeInstruction(base: string, constraints: readonly string[]): string {
  return constraints.length ? `${base.trim()} ${constraints.map((c) => c.trim()).join(' ')}` : base.trim();
}

export const RECORD_FORMATS = ['auto', 'messages', 'sharegpt', 'alpaca', 'prompt_completion', 'constraints', 'ifeval', 'crab', 'followbench'] as const;
export type RecordFormat = (typeof RECORD_FORMATS)[number];

export interface ReadOptions {
  format?: RecordFormat;
  domain?: string;
  /** Field renames applied to each record before parsing, e.g. {prompt: 'question', completion: 'answer'}. */
  columns?: Record<string, string>;
  skipBad?: boolean;
  /** Read at most this many examples. */
  limit?: number;
  /**
   * Prompt-only examples (no assistant turn: messages end with the user turn) instead of a bad
   * record when a source has no response: evaluation use of IFEval inputs and FollowBench.
   */
  allowNoResponse?: boolean;
  /** FollowBench: one example per chain at its highest level (default) or one per level. */
  followbenchLevels?: 'highest' | 'all';
}

export interface ReadResult {
  examples: Example[];
  skipped: number;
  /** The first few skip reasons, for the summary. */
  skipReasons: string[];
  /** Examples per record format (the detected one with format 'auto'). */
  formats: Partial<Record<Exclude<RecordFormat, 'auto'>, number>>;
}


const SHAREGPT_ROLES: Record<string, Role> = {
  system: 'system',
  human: 'user',
  user: 'user',
  gpt: 'assistant',
  assistant: 'assistant',
  chatgpt: 'assistant',
  bing: 'assistant',
  bard: 'assistant',
  model: 'assistant',
  function_call: 'assistant',
  observation: 'tool',
  tool: 'tool',
  function: 'tool',
};
const OPENAI_ROLES = new Set<Role>(['system', 'user', 'assistant', 'tool']);

/** A JSON Lines line that does not parse: a bad record like any other (skipped with --skip-bad). */
export class MalformedJson {
  constructor(readonly message: string) {}
}

/**
 * Yields [record, where] pairs from a .jsonl/.json/.parquet file (Parquet: one object per row). A
 * JSONL line that does not parse is yielded as a MalformedJson record; a whole .json file that
 * does not parse is an error.
 */
export function* readRecords(path: string): Generator<[unknown, string]> {
  if (extname(path).toLowerCase() === '.parquet') {
    const rows = readParquetObjectsSync(path);
    for (let i = 0; i < rows.length; i++) yield [rows[i], `${path}#${i}`];
    return;
  }
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new MixtuneError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  const ext = extname(path).toLowerCase();
  if (ext === '.jsonl' || ext === '.ndjson') {
    const lines = text.split('\n');
    for (let i = 0; i < lines.length; i++) {
      const line = lines[i]!.trim();
      if (!line) continue;
      let rec: unknown;
      try {
        rec = JSON.parse(line);
      } catch (e) {
        rec = new MalformedJson((e as Error).message.split('\n')[0]!);
      }
      yield [rec, `${path}:${i + 1}`];
    }
    return;
  }
  if (ext !== '.json') throw new MixtuneError(`${path}: unsupported data file type '${ext}' (expected .jsonl, .json or .parquet)`);
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (e) {
    throw new MixtuneError(`${path}: malformed JSON (${(e as Error).message.split('\n')[0]})`);
  }
  const list = Array.isArray(doc) ? doc : isObject(doc) && Array.isArray(doc.data) ? doc.data : [doc];
  for (let i = 0; i < list.length; i++) yield [list[i], `${path}#${i}`];
}

export function readDataset(path: string, opts: ReadOptions = {}): ReadResult {
  const examples: Example[] = [];
  const skipReasons: string[] = [];
  let skipped = 0;
  const format = opts.format ?? 'auto';
  const domain = opts.domain ?? 'default';
  const rename = (raw: unknown): unknown => (opts.columns ? renameColumns(raw, opts.columns) : raw);
  const formats: ReadResult['formats'] = {};
  const take = (where: string, build: () => Example, fmt: () => Exclude<RecordFormat, 'auto'>): void => {
    try {
      examples.push(build());
      const f = fmt();
      formats[f] = (formats[f] ?? 0) + 1;
    } catch (e) {
      if (!(e instanceof BadRecord)) throw e;
      const msg = `${where}: ${e.message}${e.hint ? ` (${e.hint})` : ''}`;
      if (!opts.skipBad) throw new MixtuneError(e.hint ? msg : `${msg} (use --skip-bad to skip bad records)`);
      skipped++;
      if (skipReasons.length < 5) skipReasons.push(msg);
    }
  };
  const malformed = (raw: unknown, where: string): boolean => {
    if (!(raw instanceof MalformedJson)) return false;
    take(where, () => {
      throw new BadRecord(`malformed JSON (${raw.message})`);
    }, () => 'messages');
    return true;
  };
  const records = (function* (): Generator<[unknown, string]> {
    for (const [raw, where] of readRecords(path)) if (!malformed(raw, where)) yield [raw, where];
  })();
  // FollowBench examples span several records (a level chain), so the whole file is grouped.
  // 'auto' picks it when the first record looks like FollowBench.
  const first = records.next();
  const all = (function* (): Generator<[unknown, string]> {
    if (!first.done) yield first.value;
    yield* records;
  })();
  const firstRec = first.done ? undefined : rename(first.value[0]);
  if (format === 'followbench' || (format === 'auto' && isObject(firstRec) && isFollowBenchRecord(firstRec))) {
    const renamed = (function* (): Generator<[unknown, string]> {
      for (const [raw, where] of all) yield [rename(raw), where];
    })();
    const fbOpts = { domain, levels: opts.followbenchLevels ?? 'highest', allowNoResponse: opts.allowNoResponse ?? false } as const;
    for (const item of followBenchItems(renamed, fbOpts)) {
      if (opts.limit !== undefined && examples.length >= opts.limit) break;
      take(item.where, item.build as () => Example, () => 'followbench');
    }
    return { examples, skipped, skipReasons, formats };
  }
  const parseOpts = { allowNoResponse: opts.allowNoResponse ?? false };
  for (const [raw, where] of all) {
    if (opts.limit !== undefined && examples.length >= opts.limit) break;
    const rec = rename(raw);
    take(where, () => parseRecord(rec, where, format, domain, parseOpts), () => (format === 'auto' ? detectFormat(rec as Record<string, unknown>) : format));
  }
  return { examples, skipped, skipReasons, formats };
}

function renameColumns(raw: unknown, columns: Record<string, string>): unknown {
  if (!isObject(raw)) return raw;
  const out: Record<string, unknown> = { ...raw };
  for (const [canonical, field] of Object.entries(columns)) {
    if (field in raw) out[canonical] = raw[field];
  }
  return out;
}

export function parseRecord(rec: unknown, where: string, format: RecordFormat, domain: string, opts: { allowNoResponse?: boolean } = {}): Example {
  if (!isObject(rec)) throw new BadRecord('record is not a JSON object');
  const fmt = format === 'auto' ? detectFormat(rec) : format;
  let messages: Message[];
  let multi: { base: string; constraints: string[] } | undefined;
  let promptOnly = false;
  switch (fmt) {
    case 'ifeval': {
      const r = parseIfeval(rec, opts.allowNoResponse ?? false);
      multi = { base: r.base, constraints: r.constraints };
      messages = r.messages;
      promptOnly = r.promptOnly;
      break;
    }
    case 'crab': {
      const r = parseCrab(rec);
      multi = { base: r.base, constraints: r.constraints };
      messages = r.messages;
      break;
    }
    case 'followbench':
      throw new BadRecord('FollowBench records form level chains: read the whole file (readDataset with format followbench)');
    case 'constraints':
      multi = parseConstraints(rec);
      messages = [
        { role: 'user', content: typeof rec.prompt === 'string' && rec.prompt.trim() ? rec.prompt : composeInstruction(multi.base, multi.constraints) },
        { role: 'assistant', content: contentOf(rec.output ?? rec.response, rec.output !== undefined ? 'output' : 'response', true) },
      ];
      break;
    case 'messages':
      messages = parseOpenAi(rec);
      break;
    case 'sharegpt':
      messages = parseShareGpt(rec);
      break;
    case 'alpaca':
      messages = parseAlpaca(rec);
      break;
    case 'prompt_completion':
      messages = parsePromptCompletion(rec);
      break;
    default:
      throw new BadRecord(`unknown format ${fmt}`);
  }
  let system: string | undefined;
  if (messages[0]?.role === 'system') system = messages.shift()!.content;
  if (typeof rec.system === 'string' && rec.system.trim() && system === undefined) system = rec.system;
  if (messages.some((m) => m.role === 'system')) throw new BadRecord('a system message is only allowed as the first turn');
  if (!promptOnly && !messages.some((m) => m.role === 'assistant')) throw new BadRecord('no assistant turn to train on');
  const recDomain = typeof rec.domain === 'string' && rec.domain ? rec.domain : domain;
  const tools = parseTools(rec.tools);
  return { id: where, domain: recDomain, ...(system !== undefined ? { system } : {}), messages, ...(tools ? { tools } : {}), ...(multi ?? {}) };
}

function detectFormat(rec: Record<string, unknown>): Exclude<RecordFormat, 'auto'> {
  // Explicit constraint lists win: such records may also carry IFEval ids for evaluation.
  if ('constraints' in rec && 'instruction' in rec) return 'constraints';
  if ('instruction_id_list' in rec) return 'ifeval';
  if (isCrabRecord(rec)) return 'crab';
  if (isFollowBenchRecord(rec)) return 'followbench';
  if ('messages' in rec) return 'messages';
  if ('conversations' in rec) return 'sharegpt';
  if ('instruction' in rec && 'output' in rec) return 'alpaca';
  if ('prompt' in rec && ('completion' in rec || 'response' in rec)) return 'prompt_completion';
  const keys = Object.keys(rec);
  const fields = keys.length > 8 ? `${keys.slice(0, 8).join(', ')}, ...` : keys.join(', ') || 'none';
  throw new BadRecord(`unrecognized record (fields: ${fields}); expected messages, conversations, instruction/output or prompt/completion`, columnsHint(rec));
}

// Field names that usually hold a prompt / its answer, in order of preference (MATH: problem +
// solution, not the bare answer).
const PROMPT_FIELDS = ['prompt', 'question', 'query', 'problem', 'instruction', 'input', 'request', 'task'];
const ANSWER_FIELDS = ['completion', 'response', 'output', 'solution', 'answer', 'target', 'reply'];

/** What to do about an unrecognized record: a `columns:` mapping onto prompt/completion. */
function columnsHint(rec: Record<string, unknown>): string {
  const text = (f: string): boolean => typeof rec[f] === 'string';
  const prompt = PROMPT_FIELDS.find(text);
  const answer = ANSWER_FIELDS.find((f) => f !== prompt && text(f));
  if (prompt === undefined || answer === undefined) {
    return 'map its fields in the dataset\'s config with columns: {prompt: <prompt field>, completion: <response field>}, or use --skip-bad to skip bad records';
  }
  const map = [...(prompt !== 'prompt' ? [`prompt: ${prompt}`] : []), `completion: ${answer}`];
  return `map its fields in the dataset's config with columns: {${map.join(', ')}}`;
}

/**
 * IFEval style: {prompt, instruction_id_list, kwargs, response, base?}. constraints = one rendered
 * sentence per instruction id (ifeval-constraints.ts); the user turn is the original prompt.
 * base: IFEval prompts weave their constraints into free text, so the bare instruction cannot be
 * cut out reliably. A `base` field (map one with columns, e.g. {base: 'instruction'}) gives it;
 * without one, base = the prompt itself (so MISO-para's single-constraint inputs become
 * prompt + one restated constraint, and its bare input the full prompt).
 * kwargs may be a JSON string; null kwargs values are ignored (the Hugging Face copy has them).
 */
function parseIfeval(rec: Record<string, unknown>, allowNoResponse: boolean): { base: string; constraints: string[]; messages: Message[]; promptOnly: boolean } {
  const prompt = contentOf(rec.prompt, 'prompt', true);
  const ids = rec.instruction_id_list;
  if (!Array.isArray(ids) || ids.some((x) => typeof x !== 'string')) throw new BadRecord('field instruction_id_list must be a list of strings');
  let kwargs = rec.kwargs;
  if (typeof kwargs === 'string') {
    try {
      kwargs = JSON.parse(kwargs);
    } catch {
      throw new BadRecord('field kwargs is a string but not valid JSON');
    }
  }
  if (kwargs === undefined || kwargs === null) kwargs = ids.map(() => ({}));
  if (!Array.isArray(kwargs)) throw new BadRecord('field kwargs must be a list of objects');
  if (kwargs.length !== ids.length) throw new BadRecord(`field kwargs has ${kwargs.length} entries for ${ids.length} instruction ids`);
  const constraints = (ids as string[]).map((id, i) => {
    const kw = kwargs[i];
    if (kw !== null && kw !== undefined && !isObject(kw)) throw new BadRecord(`field kwargs[${i}] must be an object`);
    const clean = Object.fromEntries(Object.entries(kw ?? {}).filter(([, v]) => v !== null && v !== undefined));
    try {
      return renderIfevalConstraint(id, clean, `kwargs[${i}]`);
    } catch (e) {
      if (e instanceof BadRecord && e.message.startsWith('unknown IFEval')) throw new BadRecord(`field instruction_id_list[${i}]: ${e.message}`);
      throw e;
    }
  });
  const base = typeof rec.base === 'string' && rec.base.trim() ? rec.base.trim() : prompt.trim();
  const messages: Message[] = [{ role: 'user', content: prompt }];
  if (rec.response === undefined || rec.response === null) {
    if (!allowNoResponse) throw new BadRecord('field response is missing: a training example needs a response, and an IFEval input file (prompt, instruction_id_list, kwargs) has none; train on a file with responses (e.g. input_response_data_*.jsonl)');
    return { base, constraints, messages, promptOnly: true };
  }
  messages.push({ role: 'assistant', content: contentOf(rec.response, 'response', true) });
  return { base, constraints, messages, promptOnly: false };
}

/**
 * Crab seed records: base = the seed instruction (the last user turn of `messages`), constraints
 * = Aug_instruction.Additional_Instruction texts (crab.ts tolerates its key/shape variants), the
 * user turn becomes composeInstruction(base, constraints) — the seed data has no composed text —
 * and the assistant turn is the original response. Refined_Instruction is not used.
 */
function parseCrab(rec: Record<string, unknown>): { base: string; constraints: string[]; messages: Message[] } {
  const messages = 'messages' in rec ? parseOpenAi(rec) : 'conversations' in rec ? parseShareGpt(rec) : undefined;
  if (!messages) throw new BadRecord('field messages is missing (Crab records carry the seed conversation)');
  const { constraints } = parseCrabAugmentation(rec);
  let u = messages.length - 1;
  while (u >= 0 && messages[u]!.role !== 'user') u--;
  if (u < 0) throw new BadRecord('field messages has no user turn');
  if (!messages.slice(u + 1).some((m) => m.role === 'assistant')) throw new BadRecord('field messages has no assistant turn after the instruction');
  const base = messages[u]!.content.trim();
  if (!base) throw new BadRecord(`field messages[${u}].content is empty`);
  messages[u] = { role: 'user', content: composeInstruction(base, constraints) };
  return { base, constraints, messages };
}

/** {instruction, constraints: string[], output | response, prompt?}: explicit multi-constraint records. */
function parseConstraints(rec: Record<string, unknown>): { base: string; constraints: string[] } {
  const base = contentOf(rec.instruction, 'instruction', true);
  const list = rec.constraints;
  if (!Array.isArray(list)) throw new BadRecord('field constraints must be a list of strings');
  const constraints = list.map((c, i) => contentOf(c, `constraints[${i}]`, true));
  return { base, constraints };
}

function parseOpenAi(rec: Record<string, unknown>): Message[] {
  const list = rec.messages;
  if (!Array.isArray(list) || list.length === 0) throw new BadRecord('field messages must be a non-empty list');
  return list.map((m, i) => {
    if (!isObject(m)) throw new BadRecord(`field messages[${i}] is not an object`);
    const role = m.role;
    if (typeof role !== 'string' || !OPENAI_ROLES.has(role as Role)) throw new BadRecord(`field messages[${i}].role: unknown role ${JSON.stringify(role)}`);
    // An empty tool_calls list (OpenAI exports write one on plain turns) is no call.
    if (role === 'assistant' && m.tool_calls !== undefined && m.tool_calls !== null && !(Array.isArray(m.tool_calls) && m.tool_calls.length === 0)) {
      const tool_calls = parseToolCalls(m.tool_calls, `messages[${i}].tool_calls`);
      const content = m.content === undefined || m.content === null ? '' : contentOf(m.content, `messages[${i}].content`, false);
      return { role, content, tool_calls };
    }
    const msg: Message = { role: role as Role, content: contentOf(m.content, `messages[${i}].content`, role === 'assistant') };
    if (role === 'tool' && typeof m.tool_call_id === 'string' && m.tool_call_id) msg.tool_call_id = m.tool_call_id;
    return msg;
  });
}

function parseShareGpt(rec: Record<string, unknown>): Message[] {
  const list = rec.conversations;
  if (!Array.isArray(list) || list.length === 0) throw new BadRecord('field conversations must be a non-empty list');
  return list.map((m, i) => {
    if (!isObject(m)) throw new BadRecord(`field conversations[${i}] is not an object`);
    const from = m.from ?? m.role;
    const role = typeof from === 'string' ? SHAREGPT_ROLES[from.toLowerCase()] : undefined;
    if (!role) throw new BadRecord(`field conversations[${i}].from: unknown role ${JSON.stringify(from)}`);
    const content = contentOf(m.value ?? m.content, `conversations[${i}].value`, role === 'assistant');
    if ((from as string).toLowerCase() !== 'function_call') return { role, content };
    // glaive: the value is the call as JSON, {"name": ..., "arguments": {...}} (or a list of them)
    let call: unknown;
    try {
      call = JSON.parse(content);
    } catch {
      throw new BadRecord(`field conversations[${i}].value: a function_call turn must be JSON {"name": ..., "arguments": {...}}`);
    }
    return { role, content: '', tool_calls: parseToolCalls(call, `conversations[${i}].value`) };
  });
}

function parseAlpaca(rec: Record<string, unknown>): Message[] {
  const instruction = contentOf(rec.instruction, 'instruction', true);
  const input = rec.input === undefined || rec.input === null ? '' : contentOf(rec.input, 'input', false);
  const output = contentOf(rec.output, 'output', true);
  const msgs: Message[] = [];
  if (typeof rec.system === 'string' && rec.system.trim()) msgs.push({ role: 'system', content: rec.system });
  if (Array.isArray(rec.history)) {
    rec.history.forEach((h, i) => {
      if (!Array.isArray(h) || h.length !== 2) throw new BadRecord(`field history[${i}] must be [instruction, response]`);
      msgs.push({ role: 'user', content: contentOf(h[0], `history[${i}][0]`, true) });
      msgs.push({ role: 'assistant', content: contentOf(h[1], `history[${i}][1]`, true) });
    });
  }
  msgs.push({ role: 'user', content: input ? `${instruction}\n\n${input}` : instruction });
  msgs.push({ role: 'assistant', content: output });
  return msgs;
}

function parsePromptCompletion(rec: Record<string, unknown>): Message[] {
  const prompt = contentOf(rec.prompt, 'prompt', true);
  const completion = contentOf(rec.completion ?? rec.response, rec.completion !== undefined ? 'completion' : 'response', true);
  return [
    { role: 'user', content: prompt },
    { role: 'assistant', content: completion },
  ];
}

/**
 * A record's tools: a list (or a JSON string of one, as glaive stores it) of function schemas,
 * HF/OpenAI style {type: "function", function: {name, description, parameters}} or bare {name, ...}.
 * Returned in the HF shape; undefined when there are none.
 */
function parseTools(v: unknown): ToolSchema[] | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  let list = v;
  if (typeof v === 'string') {
    try {
      list = JSON.parse(v);
    } catch {
      throw new BadRecord('field tools is a string but not valid JSON');
    }
  }
  if (!Array.isArray(list)) throw new BadRecord('field tools must be a list of function schemas');
  const tools = list.map((t, i): ToolSchema => {
    const f = isObject(t) && isObject(t.function) ? t.function : t;
    if (!isObject(f) || typeof f.name !== 'string' || !f.name.trim()) throw new BadRecord(`field tools[${i}] must be a function schema with a name`);
    return { type: 'function', function: { ...f, name: f.name } };
  });
  return tools.length ? tools : undefined;
}

/**
 * Tool calls: one {name, arguments} or a list; OpenAI's {type, id, function: {name, arguments}}
 * too. Arguments may be an object or a JSON string of one (OpenAI); they are kept as an object,
 * which is what chat templates expect (they render it with tojson).
 */
function parseToolCalls(v: unknown, field: string): ToolCall[] {
  const list = Array.isArray(v) ? v : [v];
  if (list.length === 0) throw new BadRecord(`field ${field} is an empty list of tool calls`);
  return list.map((c, i) => {
    const at = Array.isArray(v) ? `${field}[${i}]` : field;
    const fn = isObject(c) && isObject(c.function) ? c.function : c;
    if (!isObject(fn) || typeof fn.name !== 'string' || !fn.name.trim()) throw new BadRecord(`field ${at} must be a tool call {"name": ..., "arguments": {...}}`);
    let args = fn.arguments ?? {};
    if (typeof args === 'string') {
      try {
        args = args.trim() ? JSON.parse(args) : {};
      } catch {
        throw new BadRecord(`field ${at}.arguments is a string but not valid JSON`);
      }
    }
    if (!isObject(args)) throw new BadRecord(`field ${at}.arguments must be an object`);
    const id = isObject(c) && typeof c.id === 'string' && c.id ? c.id : undefined;
    return { type: 'function', ...(id ? { id } : {}), function: { name: fn.name, arguments: args } };
  });
}

function contentOf(v: unknown, field: string, nonEmpty: boolean): string {
  if (typeof v !== 'string') throw new BadRecord(`field ${field} must be a string, got ${v === undefined ? 'nothing' : typeof v}`);
  if (nonEmpty && v.trim() === '') throw new BadRecord(`field ${field} is empty`);
  return v;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
