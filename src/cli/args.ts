// Flag value parsers shared by every command (commander calls them with the raw string).
import type { AddressInfo } from 'node:net';
import { InvalidArgumentError } from 'commander';
import { MixtuneError } from '../util/errors.js';

/** An integer >= min. */
export function intArg(min: number) {
  return (v: string): number => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isInteger(n) || n < min) throw new InvalidArgumentError(`expected an integer >= ${min}, got '${v}'`);
    return n;
  };
}

/** A finite number in [min, max]; `exclusiveMin` excludes min itself (a positive learning rate). */
export function numArg(min: number, max = Infinity, o: { exclusiveMin?: boolean } = {}) {
  return (v: string): number => {
    const n = Number(v);
    const low = o.exclusiveMin ? n > min : n >= min;
    if (v.trim() === '' || !Number.isFinite(n) || !low || n > max) {
      const range = max === Infinity ? `${o.exclusiveMin ? '>' : '>='} ${min}` : `in [${min}, ${max}]`;
      throw new InvalidArgumentError(`expected a number ${range}, got '${v}'`);
    }
    return n;
  };
}

/** A repeatable flag: every occurrence appends its value. */
export function collect(v: string, acc: string[]): string[] {
  return [...acc, v];
}

/** A comma list of names from `known`, each at most once. */
export function listArg(known: Record<string, unknown>, what = 'configuration') {
  return (v: string): string[] => {
    const names = v.split(',').map((s) => s.trim()).filter(Boolean);
    if (names.length === 0) throw new InvalidArgumentError(`no ${what} given`);
    for (const n of names) if (!(n in known)) throw new InvalidArgumentError(`unknown ${what} '${n}' (known: ${Object.keys(known).join(', ')})`);
    if (new Set(names).size !== names.length) throw new InvalidArgumentError(`a ${what} is listed twice`);
    return names;
  };
}

/**
 * Starts a server with `listen(port, host)`; address problems become one-line errors naming
 * --port / --host. Returns the base URL (http://host:port, the actual port when --port 0).
 */
export async function listenOn(listen: (port: number, host: string) => Promise<AddressInfo>, port: number, host: string): Promise<string> {
  let addr: AddressInfo;
  try {
    addr = await listen(port, host);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new MixtuneError(`--port ${port}: the address ${host}:${port} is already in use`);
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') throw new MixtuneError(`--host ${host}: not an address of this machine`);
    if (code === 'EACCES') throw new MixtuneError(`--port ${port}: permission denied (ports below 1024 need privileges)`);
    throw e;
  }
  return `http://${addr.family === 'IPv6' ? `[${addr.address}]` : addr.address}:${addr.port}`;
}
