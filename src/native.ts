// Loads the native kernel addon built by `npm ci` (node-gyp). There is deliberately no silent
// fallback to the TypeScript reference kernels: a missing build is an installation error.
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from './util/paths.js';

/** The raw addon: argument order documented in native/*.cpp and wrapped by src/tensor/native.ts. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type NativeAddon = Record<string, (...args: any[]) => any>;

let cached: NativeAddon | null = null;

export function native(): NativeAddon {
  if (cached) return cached;
  const root = packageRoot();
  const candidates = [join(root, 'build', 'Release', 'mixtune.node'), join(root, 'build', 'Debug', 'mixtune.node')];
  const found = candidates.find((p) => existsSync(p));
  if (!found) {
    throw new Error(
      `mixtune: the native kernel addon is not built (looked for ${candidates[0]}). ` +
        'Run `npm ci` (or `npx node-gyp rebuild`) with g++, make and python3 installed.',
    );
  }
  const require = createRequire(import.meta.url);
  cached = require(found) as NativeAddon;
  return cached;
}

export type Isa = 'avx512' | 'avx2' | 'portable';

export function bestIsa(): Isa {
  return native().bestIsa() as Isa;
}
export function currentIsa(): Isa {
  return native().isa() as Isa;
}
export function setIsa(isa: Isa): void {
  native().setIsa(isa);
}
export function numThreads(): number {
  return native().numThreads() as number;
}
export function setNumThreads(n: number): void {
  native().setNumThreads(n);
}
