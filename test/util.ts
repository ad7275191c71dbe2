// Shared test helpers: seeded random data, closeness checks, finite differences.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { basename, join } from 'node:path';
import { packageRoot } from '../src/util/paths.js';
import { Rng } from '../src/util/rng.js';
import { MixtuneError } from '../src/util/errors.js';
import { bestIsa, setIsa, type Isa } from '../src/native.js';
import { type LlamaConfig, parameterShapes } from '../src/model/config.js';
import { findTorchPython } from '../src/torch/python.js';

export function randArray(rng: Rng, n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = (rng.float() * 2 - 1) * scale;
  return a;
}

export function randInts(rng: Rng, n: number, hi: number): Int32Array {
  const a = new Int32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.int(hi);
  return a;
}

/** max |a-b| / (atol + rtol*|b|) must be <= 1; reports the worst index. */
export function assertClose(a: ArrayLike<number>, b: ArrayLike<number>, rtol = 1e-4, atol = 1e-5, what = 'value'): void {
  assert.equal(a.length, b.length, `${what}: length ${a.length} != ${b.length}`);
  let worst = 0;
  let wi = -1;
  for (let i = 0; i < a.length; i++) {
    const x = a[i]!;
    const y = b[i]!;
    if (Number.isNaN(x) !== Number.isNaN(y)) assert.fail(`${what}[${i}]: ${x} vs ${y}`);
    const r = Math.abs(x - y) / (atol + rtol * Math.abs(y));
    if (r > worst) {
      worst = r;
      wi = i;
    }
  }
  if (worst > 1) assert.fail(`${what}[${wi}]: ${a[wi]} vs ${b[wi]} (error ratio ${worst.toFixed(2)}, rtol ${rtol}, atol ${atol})`);
}

/**
 * Central finite difference of a scalar function f with respect to x[i] for a few sampled
 * indices, compared with the analytic gradient. Uses fp64 evaluation if f computes in fp64.
 */
export function checkGradFD(
  f: () => number, x: Float32Array, grad: ArrayLike<number>, rng: Rng,
  opts: { samples?: number; eps?: number; rtol?: number; atol?: number; what?: string } = {},
): void {
  const samples = opts.samples ?? 12;
  const eps = opts.eps ?? 1e-2;
  const rtol = opts.rtol ?? 2e-2;
  const atol = opts.atol ?? 2e-3;
  for (let s = 0; s < samples; s++) {
    const i = rng.int(x.length);
    const old = x[i]!;
    x[i] = old + eps;
    const fp = f();
    x[i] = old - eps;
    const fm = f();
    x[i] = old;
    const fd = (fp - fm) / (2 * eps);
    const g = grad[i]!;
    if (Math.abs(fd - g) > atol + rtol * Math.abs(fd)) {
      assert.fail(`${opts.what ?? 'grad'}[${i}]: analytic ${g} vs finite difference ${fd}`);
    }
  }
}

/** Dot product in fp64: handy as a random linear functional L = sum(out * w) for gradient checks. */
export function dot(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * b[i]!;
  return s;
}

export const ISAS = ['avx512', 'avx2', 'portable'] as const;

const ISA_RANK: Record<Isa, number> = { portable: 0, avx2: 1, avx512: 2 };

/** Every kernel build this CPU can run (portable, avx2, avx512 as supported). */
export function isasToTest(): Isa[] {
  const best = bestIsa();
  return ISAS.filter((i) => ISA_RANK[i] <= ISA_RANK[best]);
}

/** Runs f with the kernels forced to `isa`, then restores the best build. */
export function withIsa(isa: Isa, f: () => void): void {
  setIsa(isa);
  try {
    f();
  } finally {
    setIsa(bestIsa());
  }
}

/** fn must throw a one-line MixtuneError naming `file` (and matching re); returns the message. */
export function expectError(fn: () => unknown, file: string, re?: RegExp): string {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  assert.ok(err instanceof MixtuneError, `expected MixtuneError, got ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
  const msg = (err as Error).message;
  assert.ok(msg.includes(basename(file)), `message should name the file: ${msg}`);
  assert.ok(!msg.includes('\n'), `message should be one line: ${msg}`);
  if (re) assert.match(msg, re);
  return msg;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs the built `mixtune` command (bin/mixtune.js) with args. */
export function runCli(...args: string[]): CliResult {
  const r = spawnSync(process.execPath, [join(packageRoot(), 'bin', 'mixtune.js'), ...args], { encoding: 'utf8' });
  return { code: r.status ?? -1, stdout: r.stdout, stderr: r.stderr };
}

/** A failed CLI run printed exactly one "mixtune: ..." line (no stack) mentioning each string / matching each regexp. */
export function assertOneLineError(r: { code: number; stderr: string }, mentions: (string | RegExp)[]): void {
  assert.notEqual(r.code, 0);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, `expected one line, got:\n${r.stderr}`);
  assert.match(lines[0]!, /^mixtune: /);
  for (const m of mentions) {
    if (typeof m === 'string') assert.ok(lines[0]!.includes(m), `'${lines[0]}' should mention '${m}'`);
    else assert.match(lines[0]!, m);
  }
}

/** A minimal XML well-formedness check: balanced tags, quoted attributes, escaped text, one <svg> root (an XML declaration is optional). */
export function assertWellFormedSvg(svg: string): void {
  const body = svg.replace(/^<\?xml[^>]*\?>/, '');
  const stack: string[] = [];
  const re = /<(\/?)([a-zA-Z][\w:-]*)((?:\s+[\w:-]+="[^"<]*")*)\s*(\/?)>|<|>/g;
  let m: RegExpExecArray | null;
  let roots = 0;
  while ((m = re.exec(body))) {
    if (m[0] === '<' || m[0] === '>') assert.fail(`stray '${m[0]}' at ${m.index}: ${body.slice(Math.max(0, m.index - 40), m.index + 40)}`);
    const [, close, name, , selfClose] = m;
    if (close) assert.equal(stack.pop(), name, `closing ${name}`);
    else if (!selfClose) {
      if (stack.length === 0) roots++;
      stack.push(name!);
    } else if (stack.length === 0) roots++;
  }
  assert.equal(stack.length, 0, `unclosed ${stack.join(',')}`);
  assert.equal(roots, 1);
  assert.ok(/^\s*<svg /.test(body), 'root is svg');
  assert.ok(!/&(?!(amp|lt|gt|quot|apos);)/.test(body), 'unescaped &');
}

/** Random weights with the right shapes: embeddings/linears ~ N(0, s²), norms ~ 1 ± 0.1, biases ~ N(0, 0.1²). */
export function randomWeights(config: LlamaConfig, seed: number): Map<string, Float32Array> {
  const rng = new Rng(seed);
  const w = new Map<string, Float32Array>();
  for (const [name, shape] of parameterShapes(config)) {
    const n = shape.reduce((a, b) => a * b, 1);
    const a = new Float32Array(n);
    const std = name.endsWith('.bias') ? 0.1 : name.endsWith('norm.weight') ? 0.1 : name.includes('embed') || name.startsWith('lm_head') ? 0.5 : 1 / Math.sqrt(shape[1]!);
    for (let i = 0; i < n; i++) a[i] = rng.normal() * std + (name.endsWith('norm.weight') ? 1 : 0);
    w.set(name, a);
  }
  return w;
}

/**
 * The Python with PyTorch the torch-engine tests run, and the skip reason when there is none. In CI
 * (which installs python3-torch) a missing torch is an error: the engine must be tested there.
 */
export function torchPythonForTests(): { python: string | null; skip: string | false } {
  try {
    return { python: findTorchPython().python, skip: false };
  } catch (e) {
    if (process.env.CI) throw e;
    return { python: null, skip: 'PyTorch is not installed (apt-get install -y python3-torch)' };
  }
}
