// Optional time accounting of a training step by phase (forward / backward / optimizer) and op
// kind (gemm, attention, norms, ...), for `mixtune bench train verbose=1` (wall clock) or
// `verbose=cpu` (CPU seconds of the process, all threads: on a machine shared with other jobs
// this is what stays comparable). Off by default: with no active profiler `profStart` returns 0
// and `profEnd` returns at once, so the ops pay one branch.
import type { Kernels } from './kernels.js';

export type Phase = 'forward' | 'backward' | 'optimizer';

export type Clock = 'wall' | 'cpu';

export class Profiler {
  phase: Phase = 'forward';
  /** Milliseconds on the chosen clock. */
  readonly now: () => number;
  /** Seconds per "phase.kind". */
  readonly seconds = new Map<string, number>();
  /** GEMM seconds and FLOPs per shape "nt M×N×K" (transposes, then sizes). */
  readonly gemmShapes = new Map<string, { s: number; flops: number }>();

  constructor(readonly clock: Clock = 'wall') {
    this.now = clock === 'wall' ? () => performance.now() : () => {
      const u = process.cpuUsage();
      return (u.user + u.system) / 1000;
    };
  }

  add(kind: string, s: number): void {
    const key = `${this.phase}.${kind}`;
    this.seconds.set(key, (this.seconds.get(key) ?? 0) + s);
  }

  /** Totals sorted by time, in seconds per step (divided by `steps`). */
  table(steps: number): Record<string, number> {
    const rows = [...this.seconds].sort((a, b) => b[1] - a[1]);
    return Object.fromEntries(rows.map(([k, s]) => [k, Math.round((s / steps) * 1e4) / 1e4]));
  }
}

let active: Profiler | null = null;

/** Starts (or with null stops) accounting into `p`. */
export function setProfiler(p: Profiler | null): void {
  active = p;
}

export function profiler(): Profiler | null {
  return active;
}

export function setPhase(phase: Phase): void {
  if (active) active.phase = phase;
}

export function profStart(): number {
  return active ? active.now() : 0;
}

export function profEnd(kind: string, t0: number): void {
  if (active) active.add(kind, (active.now() - t0) / 1000);
}

/** The op kind a kernel's time is accounted to. */
const KERNEL_KIND: Record<string, string> = {
  gemm: 'gemm', embeddingForward: 'embedding', embeddingBackward: 'embedding', rmsnormForward: 'rmsnorm',
  rmsnormBackward: 'rmsnorm', rope: 'rope', add: 'add', swigluForward: 'swiglu', swigluBackward: 'swiglu',
  attentionForward: 'attention', attentionBackward: 'attention', attentionLayoutForward: 'attention',
  attentionLayoutBackward: 'attention', crossEntropy: 'cross_entropy', adamw: 'adamw',
};

/** `k` with every kernel call timed into the active profiler (by KERNEL_KIND, else its own name). */
export function profiledKernels(k: Kernels): Kernels {
  const out: Record<string, unknown> = { name: k.name };
  for (const [name, fn] of Object.entries(k)) {
    if (typeof fn !== 'function') continue;
    const kind = KERNEL_KIND[name] ?? name;
    const call = fn as (...a: unknown[]) => unknown;
    out[name] = name !== 'gemm'
      ? (...args: unknown[]) => timed(kind, () => call(...args))
      : (...args: unknown[]) => {
        const [ta, tb, M, N, K] = args as [boolean, boolean, number, number, number];
        return timedGemm('gemm', `${ta ? 't' : 'n'}${tb ? 't' : 'n'}`, M, N, K, () => call(...args));
      };
  }
  return out as unknown as Kernels;
}

/**
 * Runs a GEMM, accounting its time to `kind` and to the shape table under `${prefix} M×N×K`
 * (prefix: the transposes, e.g. "nt", or "bf16 nt" for the bf16 kernels).
 */
export function timedGemm<T>(kind: string, prefix: string, M: number, N: number, K: number, fn: () => T): T {
  const p = active;
  if (!p) return fn();
  const t0 = p.now();
  try {
    return fn();
  } finally {
    const s = (p.now() - t0) / 1000;
    p.add(kind, s);
    const key = `${prefix} ${M}x${N}x${K}`;
    const e = p.gemmShapes.get(key) ?? { s: 0, flops: 0 };
    e.s += s;
    e.flops += 2 * M * N * K;
    p.gemmShapes.set(key, e);
  }
}

/** Runs fn, accounting its time to `kind`. */
export function timed<T>(kind: string, fn: () => T): T {
  const p = active;
  if (!p) return fn();
  const t0 = p.now();
  try {
    return fn();
  } finally {
    p.add(kind, (p.now() - t0) / 1000);
  }
}
