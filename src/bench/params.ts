// key=value parameters of `mixtune bench NAME ...`: unknown keys and bad numbers are errors.
import { MixtuneError } from '../util/errors.js';

export function intParams<T extends Record<string, number>>(bench: string, params: Record<string, string>, defaults: T, extra: string[] = []): T {
  const out = { ...defaults } as Record<string, number>;
  for (const [k, v] of Object.entries(params)) {
    if (extra.includes(k)) continue;
    if (!(k in defaults)) throw new MixtuneError(`bench ${bench}: unknown parameter '${k}' (known: ${[...Object.keys(defaults), ...extra].join(', ')})`);
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new MixtuneError(`bench ${bench}: ${k} must be a positive integer, got '${v}'`);
    out[k] = n;
  }
  return out as T;
}
