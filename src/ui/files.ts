// Which files `mixtune ui` may send: only regular files inside one of the run folders it was given,
// after every symlink is resolved. A URL path that climbs out (`/../`, `%2e%2e`, `%2f`, a
// backslash), names an absolute path, holds a NUL, or reaches a symlink pointing outside resolves
// to null (the server answers 404 and says nothing about what exists outside).
import { realpathSync, statSync } from 'node:fs';
import { isAbsolute, join, relative, sep } from 'node:path';

/** A run folder the UI serves from, with its resolved real path. */
export interface Root {
  /** As given on the command line (shown to the user). */
  given: string;
  /** realpath of the folder. */
  real: string;
}

export function rootOf(dir: string): Root {
  return { given: dir, real: realpathSync(dir) };
}

/** Whether `p` (a real path) is `root` itself or lies inside it. */
export function isInside(root: string, p: string): boolean {
  const rel = relative(root, p);
  return rel === '' || (!rel.startsWith('..') && !isAbsolute(rel) && rel.split(sep)[0] !== '..');
}

/**
 * The real path of the regular file that `urlPath` (still percent-encoded, relative to the root,
 * '/'-separated) names inside `root`, or null when it is not one.
 */
export function resolveInside(root: Root, urlPath: string): string | null {
  const parts: string[] = [];
  for (const raw of urlPath.split('/')) {
    if (raw === '') continue;
    let seg: string;
    try {
      seg = decodeURIComponent(raw);
    } catch {
      return null;
    }
    // decoded separators, parent / current links, NUL, drive letters: never a plain name
    if (seg === '.' || seg === '..' || seg.includes('/') || seg.includes('\\') || seg.includes('\0') || seg.includes(':')) return null;
    parts.push(seg);
  }
  if (parts.length === 0) return null;
  let real: string;
  try {
    real = realpathSync(join(root.real, ...parts));
  } catch {
    return null;
  }
  if (!isInside(root.real, real)) return null;
  try {
    if (!statSync(real).isFile()) return null;
  } catch {
    return null;
  }
  return real;
}
