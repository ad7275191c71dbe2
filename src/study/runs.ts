// Reusing finished study runs: each run's DIR/result.json carries a key describing everything
// that determines it (configuration, seed, data, training and evaluation settings, model). A rerun
// of the same study command (after an interruption, or with more seeds or configurations) reads
// the runs whose key matches instead of training them again.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeJsonAtomic } from '../util/fs.js';

/** The stable key of a run (JSON of the given description, with a format version). */
export function runKey(what: Record<string, unknown>): string {
  return JSON.stringify({ v: 1, ...what });
}

/** DIR/result.json when it exists, parses and has this key (the key itself removed); else null. */
export function readRunResult<T extends object>(dir: string, key: string): T | null {
  try {
    const r = JSON.parse(readFileSync(join(dir, 'result.json'), 'utf8')) as T & { key?: string };
    if (r.key !== key) return null;
    delete r.key;
    return r;
  } catch {
    return null; // missing or torn: the run is done again
  }
}

/** Writes DIR/result.json atomically with the key. */
export function writeRunResult(dir: string, key: string, r: object): void {
  writeJsonAtomic(join(dir, 'result.json'), { ...r, key });
}
