// Atomic file writes for user-visible artefacts.
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, rmSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { dirname } from 'node:path';
import { MixtuneError } from './errors.js';

/**
 * Writes a file atomically: `write` fills a temporary file in the same folder (through its fd), which
 * is fsynced and renamed over `path`. The folder is created when missing. A failure removes the
 * temporary file and becomes a one-line MixtuneError ("<path>: cannot write <what>: <code>").
 */
export function writeFileAtomic(path: string, write: (fd: number) => void, what = 'the file'): void {
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  let fd = -1;
  try {
    mkdirSync(dirname(path), { recursive: true });
    fd = openSync(tmp, 'w');
    write(fd);
    fsyncSync(fd);
    closeSync(fd);
    fd = -1;
    renameSync(tmp, path);
  } catch (e) {
    if (fd >= 0) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      /* not created */
    }
    if (e instanceof MixtuneError) throw e;
    throw new MixtuneError(`${path}: cannot write ${what}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
}

/** Writes `obj` as JSON to `path` atomically (see writeFileAtomic). `indent` defaults to 2. */
export function writeJsonAtomic(path: string, obj: unknown, indent = 2): void {
  const text = JSON.stringify(obj, null, indent) + '\n';
  writeFileAtomic(path, (fd) => writeSync(fd, text), 'JSON file');
}

/** Writes `text` to `path` atomically (see writeFileAtomic). */
export function writeTextAtomic(path: string, text: string, what = 'the file'): void {
  writeFileAtomic(path, (fd) => writeSync(fd, text), what);
}

/** Writes records as JSON lines atomically (see writeFileAtomic). */
export function writeJsonlAtomic(path: string, records: readonly unknown[]): void {
  writeFileAtomic(path, (fd) => {
    for (const r of records) writeSync(fd, JSON.stringify(r) + '\n');
  }, 'the records');
}

/**
 * Fail fast: creates `dir` when missing and proves it writable with a probe file, before a command
 * spends time on data or training. `what` names it in the error ("output_dir", "--out").
 */
export function ensureWritableDir(dir: string, what: string): void {
  const probe = join(dir, `.mixtune-probe-${process.pid}`);
  try {
    mkdirSync(dir, { recursive: true });
    closeSync(openSync(probe, 'w'));
    rmSync(probe, { force: true });
  } catch (e) {
    throw new MixtuneError(`${what} ${dir}: not a writable folder (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
}
