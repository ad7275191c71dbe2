// Dataset readers: JSONL / JSON files holding chat data in the usual formats, normalized to
// Example {id, source, domain, system?, messages}. Every problem names its file:line (JSONL) or
// file#record (JSON) and the field, and is either an error or (skipBad) a counted skip.
import { readFileSync } from 'node:fs';
import { extname } from 'node:path';
import { MixtuneError } from '../util/errors.js';

export type Role = 'system' | 'user' | 'assistant' | 'tool';

export interface Message {
  role: Role;
  content: string;
}

export interface Example {
  /** Stable id: file:line or file#index. */
  id: string;
  domain: string;
  /** System prompt given by the data or the dataset config (recipes may draw one from a pool). */
  system?: string;
  /** The conversation without the system prompt. */
  messages: Message[];
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

export type RecordFormat = 'auto' | 'messages' | 'sharegpt' | 'alpaca' | 'prompt_completion' | 'constraints';

export interface ReadOptions {
  format?: RecordFormat;
  domain?: string;
  /** Field renames applied to each record before parsing, e.g. {prompt: 'question', completion: 'answer'}. */
  columns?: Record<string, string>;
  skipBad?: boolean;
  /** Read at most this many examples. */
  limit?: number;
}

export interface ReadResult {
  examples: Example[];
  skipped: number;
  /** The first few skip reasons, for the summary. */
  skipReasons: string[];
}

class BadRecord extends Error {}

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

/** Yields [record, where] pairs from a .jsonl/.json file. */
export function* readRecords(path: string): Generator<[unknown, string]> {
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
        throw new MixtuneError(`${path}:${i + 1}: malformed JSON (${(e as Error).message.split('\n')[0]})`);
      }
      yield [rec, `${path}:${i + 1}`];
    }
    return;
  }
  if (ext !== '.json') throw new MixtuneError(`${path}: unsupported data file type '${ext}' (expected .jsonl or .json)`);
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
  for (const [raw, where] of readRecords(path)) {
    if (opts.limit !== undefined && examples.length >= opts.limit) break;
    try {
      const rec = opts.columns ? renameColumns(raw, opts.columns) : raw;
      examples.push(parseRecord(rec, where, opts.format ?? 'auto', opts.domain ?? 'default'));
    } catch (e) {
      if (!(e instanceof BadRecord)) throw e;
      const msg = `${where}: ${e.message}`;
      if (!opts.skipBad) throw new MixtuneError(msg + ' (use --skip-bad to skip bad records)');
      skipped++;
      if (skipReasons.length < 5) skipReasons.push(msg);
    }
  }
  return { examples, skipped, skipReasons };
}

function renameColumns(raw: unknown, columns: Record<string, string>): unknown {
  if (!isObject(raw)) return raw;
  const out: Record<string, unknown> = { ...raw };
  for (const [canonical, field] of Object.entries(columns)) {
    if (field in raw) out[canonical] = raw[field];
  }
  return out;
}

export function parseRecord(rec: unknown, where: string, format: RecordFormat, domain: string): Example {
  if (!isObject(rec)) throw new BadRecord('record is not a JSON object');
  const fmt = format === 'auto' ? detectFormat(rec) : format;
  let messages: Message[];
  let multi: { base: string; constraints: string[] } | undefined;
  switch (fmt) {
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
  if (!messages.some((m) => m.role === 'assistant')) throw new BadRecord('no assistant turn to train on');
  const recDomain = typeof rec.domain === 'string' && rec.domain ? rec.domain : domain;
  return { id: where, domain: recDomain, ...(system !== undefined ? { system } : {}), messages, ...(multi ?? {}) };
}

function detectFormat(rec: Record<string, unknown>): Exclude<RecordFormat, 'auto'> {
  if ('constraints' in rec && 'instruction' in rec) return 'constraints';
  if ('messages' in rec) return 'messages';
  if ('conversations' in rec) return 'sharegpt';
  if ('instruction' in rec && 'output' in rec) return 'alpaca';
  if ('prompt' in rec && ('completion' in rec || 'response' in rec)) return 'prompt_completion';
  throw new BadRecord(
    `unrecognized record (fields: ${Object.keys(rec).slice(0, 6).join(', ') || 'none'}); expected messages, conversations, instruction/output or prompt/completion`,
  );
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
    return { role: role as Role, content: contentOf(m.content, `messages[${i}].content`, role === 'assistant') };
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
    return { role, content: contentOf(m.value ?? m.content, `conversations[${i}].value`, role === 'assistant') };
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

function contentOf(v: unknown, field: string, nonEmpty: boolean): string {
  if (typeof v !== 'string') throw new BadRecord(`field ${field} must be a string, got ${v === undefined ? 'nothing' : typeof v}`);
  if (nonEmpty && v.trim() === '') throw new BadRecord(`field ${field} is empty`);
  return v;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}
