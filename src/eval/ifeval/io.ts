// JSONL reading/appending for the IFEval evaluator (errors name file:line and field).
import { appendFileSync, existsSync, readFileSync } from 'node:fs';
import { MixtuneError } from '../../util/errors.js';

/** Parses a JSONL file; blank lines are skipped; a bad line throws MixtuneError "file:line: ...". */
export function readJsonl<T = Record<string, unknown>>(path: string, opts: { tolerateTruncatedLast?: boolean } = {}): T[] {
  if (!existsSync(path)) throw new MixtuneError(`${path}: file not found`);
  const lines = readFileSync(path, 'utf8').split('\n');
  const out: T[] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (line === '') continue;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (e) {
      // a half-written last line of a resumable output file (interrupted run) is dropped
      if (opts.tolerateTruncatedLast && i >= lines.length - 2) break;
      throw new MixtuneError(`${path}:${i + 1}: not valid JSON (${(e as Error).message})`);
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new MixtuneError(`${path}:${i + 1}: expected a JSON object`);
    (v as Record<string, unknown>).__line = i + 1;
    out.push(v as T);
  }
  return out;
}

/** Line number recorded by readJsonl. */
export function lineOf(rec: unknown): number {
  return ((rec as Record<string, unknown>).__line as number | undefined) ?? 0;
}

/** Appends one JSON line (a crash leaves at most one truncated last line, which readJsonl can drop). */
export function appendJsonl(path: string, rec: unknown): void {
  appendFileSync(path, JSON.stringify(rec) + '\n');
}

/** Serializes without the __line bookkeeping field. */
export function stripLine<T extends object>(rec: T): T {
  const { __line: _l, ...rest } = rec as T & { __line?: number };
  return rest as T;
}
