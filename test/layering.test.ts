// The rule of the house: src/cli/ parses flags and prints; everything it calls lives below it, and
// nothing below imports src/cli/.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { packageRoot } from '../src/util/paths.js';

function tsFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((n) => {
    const p = join(dir, n);
    return statSync(p).isDirectory() ? tsFiles(p) : n.endsWith('.ts') ? [p] : [];
  });
}

test('layering: no library module under src/ imports src/cli/', () => {
  const src = join(packageRoot(), 'src');
  const offenders: string[] = [];
  for (const f of tsFiles(src)) {
    const rel = relative(src, f);
    if (rel.startsWith('cli/')) continue;
    const text = readFileSync(f, 'utf8');
    for (const m of text.matchAll(/from\s+'([^']+)'/g)) {
      if (/(^|\/)cli\//.test(m[1]!)) offenders.push(`${rel} imports ${m[1]}`);
    }
  }
  assert.deepEqual(offenders, []);
});

test('layering: the library entry point (src/index.ts) re-exports nothing from src/cli/', () => {
  const index = readFileSync(join(packageRoot(), 'src', 'index.ts'), 'utf8');
  assert.ok(!/from '\.\/cli\//.test(index), 'the library entry point re-exports CLI code');
});
