// Atomic file writes for user-visible artefacts.
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
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
