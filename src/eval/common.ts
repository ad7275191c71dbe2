// Shared machinery of the `mixtune eval` tasks: progress display, resumable per-item results
// (DIR/results.jsonl), the run description that guards resuming (DIR/run.json), the atomic
// summary (DIR/summary.json), --limit handling and greedy chat generation.
import { closeSync, existsSync, fsyncSync, ftruncateSync, mkdirSync, openSync, readFileSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { LlamaModel } from '../model/llama.js';
import { generate } from '../infer/generate.js';
import { type ChatMessage, type ChatTemplate, encodePrompt } from '../io/chat.js';
import type { Tokenizer } from '../tokenizer.js';
import { MixtuneError } from '../util/errors.js';
import { writeJsonAtomic } from '../util/fs.js';

// ---------------------------------------------------------------------------------------------
// Progress

export type { Progress } from '../util/progress.js';

/** The shared progress display (src/util/progress.ts). */
export { startProgress } from '../util/progress.js';

// ---------------------------------------------------------------------------------------------
// Resumable results

/** One line of DIR/results.jsonl: the item id plus task-specific fields. */
export interface ResultRow {
  id: string;
  [key: string]: unknown;
}

/**
 * DIR/results.jsonl opened for resuming: the rows already there (a torn last line, from a run
 * killed mid-write, is cut off) and an append method that writes one JSON line per item.
 */
export class ResultsFile {
  readonly path: string;
  readonly rows: ResultRow[] = [];
  private readonly done = new Set<string>();

  constructor(dir: string) {
    mkdirSync(dir, { recursive: true });
    this.path = join(dir, 'results.jsonl');
    if (!existsSync(this.path)) return;
    const text = readFileSync(this.path, 'utf8');
    const lastNl = text.lastIndexOf('\n');
    if (lastNl + 1 < text.length) {
      // Torn last line: drop it so the next append starts on a fresh line.
      const keep = Buffer.byteLength(text.slice(0, lastNl + 1), 'utf8');
      const fd = openSync(this.path, 'r+');
      try {
        ftruncateSync(fd, keep);
      } finally {
        closeSync(fd);
      }
    }
    const lines = text.slice(0, lastNl + 1).split('\n');
    lines.forEach((line, i) => {
      if (line.trim() === '') return;
      let row: unknown;
      try {
        row = JSON.parse(line);
      } catch {
        throw new MixtuneError(`${this.path}: line ${i + 1} is not valid JSON; delete the file (or the line) to re-run those items`);
      }
      if (!row || typeof row !== 'object' || typeof (row as ResultRow).id !== 'string') {
        throw new MixtuneError(`${this.path}: line ${i + 1} has no string "id"`);
      }
      const r = row as ResultRow;
      if (this.done.has(r.id)) return; // a duplicate (should not happen): keep the first
      this.done.add(r.id);
      this.rows.push(r);
    });
  }

  has(id: string): boolean {
    return this.done.has(id);
  }

  /** Appends one row (one line, written with a single write call and fsync'ed). */
  append(row: ResultRow): void {
    if (this.done.has(row.id)) throw new Error(`results: item ${row.id} was already recorded`);
    const fd = openSync(this.path, 'a');
    try {
      writeSync(fd, JSON.stringify(row) + '\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    this.done.add(row.id);
    this.rows.push(row);
  }
}

/**
 * DIR/run.json: the settings that decide the results (task, data file, model, prompt...). A new
 * run in a folder that holds results of different settings is refused (its rows would be mixed);
 * settings like --limit that only choose how many items run are not part of it.
 */
export function checkRunFile(dir: string, settings: Record<string, unknown>): void {
  mkdirSync(dir, { recursive: true });
  const path = join(dir, 'run.json');
  if (existsSync(path) && statSync(path).size > 0) {
    let old: Record<string, unknown>;
    try {
      old = JSON.parse(readFileSync(path, 'utf8')) as Record<string, unknown>;
    } catch {
      throw new MixtuneError(`${path}: not valid JSON; delete it or use another --out folder`);
    }
    for (const k of new Set([...Object.keys(old), ...Object.keys(settings)])) {
      if (JSON.stringify(old[k] ?? null) !== JSON.stringify(settings[k] ?? null)) {
        throw new MixtuneError(
          `${dir} holds results of a different run (${k}: ${JSON.stringify(old[k] ?? null)} there, ${JSON.stringify(settings[k] ?? null)} now); use another --out folder`,
        );
      }
    }
    return;
  }
  writeJsonAtomic(path, settings);
}

/** Writes DIR/summary.json atomically. */
export function writeSummary(dir: string, summary: Record<string, unknown>): void {
  writeJsonAtomic(join(dir, 'summary.json'), summary);
}

/** The first `limit` items (all when undefined). Limits select by position, so a larger --limit extends a run. */
export function applyLimit<T>(items: readonly T[], limit: number | undefined): T[] {
  if (limit === undefined) return [...items];
  if (!Number.isInteger(limit) || limit < 1) throw new MixtuneError(`--limit: expected an integer >= 1, got ${limit}`);
  return items.slice(0, limit);
}

// ---------------------------------------------------------------------------------------------
// Responses given on the command line (--responses FILE)

/**
 * Reads a JSONL file of existing completions: each line {"id"|"task_id": ..., "response"|"completion": "..."}
 * (ids may be numbers; they are compared as strings). Later lines win for a repeated id.
 */
export function readResponses(path: string): Map<string, string> {
  if (!existsSync(path)) throw new MixtuneError(`${path}: responses file not found`);
  const out = new Map<string, string>();
  readFileSync(path, 'utf8').split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let r: Record<string, unknown>;
    try {
      r = JSON.parse(line) as Record<string, unknown>;
    } catch {
      throw new MixtuneError(`${path}: line ${i + 1} is not valid JSON`);
    }
    const id = r.id ?? r.task_id;
    const resp = r.response ?? r.completion;
    if ((typeof id !== 'string' && typeof id !== 'number') || typeof resp !== 'string') {
      throw new MixtuneError(`${path}: line ${i + 1} needs "id" (or "task_id") and a string "response" (or "completion")`);
    }
    out.set(String(id), resp);
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// Generation

export interface GenerateAnswerOptions {
  maxNewTokens: number;
  /** Extra stop ids (e.g. BOS for llama2.c story models). */
  extraStopIds?: readonly number[];
}

export interface GeneratedAnswer {
  text: string;
  promptTokens: number;
  newTokens: number;
  stoppedBy: 'stop' | 'length' | 'context';
}

/**
 * Greedy generation of the assistant turn after `messages` (rendered with `template` and its
 * generation prompt). Stops at tok.stopIds (default [eosId]) plus `extraStopIds`; the stop token is
 * not part of the text.
 */
export function generateAnswer(
  model: LlamaModel, tok: Tokenizer, template: ChatTemplate, messages: readonly ChatMessage[], o: GenerateAnswerOptions,
): GeneratedAnswer {
  const prompt = encodePrompt(tok, template, messages);
  if (prompt.length === 0) prompt.push(tok.bosId >= 0 ? tok.bosId : tok.eosId);
  const stopIds = [...(tok.stopIds ?? [tok.eosId]), ...(o.extraStopIds ?? [])];
  const r = generate(model, prompt, { maxNewTokens: o.maxNewTokens, temperature: 0, stopIds });
  const ids = r.stoppedBy === 'stop' ? r.tokens.slice(0, -1) : r.tokens;
  const text = new TextDecoder('utf-8').decode(tok.decodeBytes(ids, { prev: prompt[prompt.length - 1]! }));
  return { text, promptTokens: prompt.length, newTokens: r.tokens.length, stoppedBy: r.stoppedBy };
}

/** Rounds to `digits` decimals (for summaries). */
export function round(x: number, digits = 4): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
