import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The package root (the folder holding package.json and binding.gyp). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'binding.gyp'))) return dir;
    dir = dirname(dir);
  }
  throw new Error('mixtune: cannot locate the package root (binding.gyp) from ' + fileURLToPath(import.meta.url));
}

/** ../shared beside the checkout (fixtures and datasets for tests, demos and benchmarks). */
export function sharedDir(): string {
  return resolve(process.env.MIXTUNE_SHARED ?? join(packageRoot(), '..', 'shared'));
}
