// Atomic file writes for user-visible artefacts.
import { closeSync, fsyncSync, mkdirSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { dirname } from 'node:path';
import { MixtuneError } from './errors.js';

/**
 * Writes `obj` as JSON to `path` atomically: a temporary file in the same folder, fsync, rename.
 * The folder is created when missing. `indent` defaults to 2.
 */
export function writeJsonAtomic(path: string, obj: unknown, indent = 2): void {
  const tmp = `${path}.tmp-${process.pid}-${Math.random().toString(36).slice(2)}`;
  let fd = -1;
  try {
    mkdirSync(dirname(path), { recursive: true });
    const text = JSON.stringify(obj, null, indent) + '\n';
    fd = openSync(tmp, 'w');
    writeSync(fd, text);
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
    const code = (e as NodeJS.ErrnoException).code;
    throw new MixtuneError(`${path}: cannot write JSON file: ${code ?? (e as Error).message}`);
  }
}

