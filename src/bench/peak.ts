import { MixtuneError } from '../util/errors.js';
// Benchmark: the machine's fp32 FMA peak with all threads (the denominator of every efficiency ratio).
import { native } from '../native.js';

export interface PeakResult {
  gflops: number;
  threads: number;
  isa: string;
  variants: Record<string, number>;
  seconds: number;
  /** Sum over threads of FLOPs / thread CPU time: the peak with uncontended cores. */
  cpuGflops: number;
  cpuVariants: Record<string, number>;
}

/**
 * Measures the FMA peak (GFLOP/s) for about `seconds` seconds, split between the vector widths
 * (avx512 = zmm, avx512-ymm = ymm with 32 registers, avx2, portable), or only `variant`.
 */
export function measurePeak(seconds = 1, variant?: string): PeakResult {
  return native().measurePeak(seconds, variant) as PeakResult;
}

/** params: seconds=<total measuring time, default 1.5>. */
export function benchPeak(params: Record<string, string>): Record<string, unknown> {
  const seconds = params.seconds !== undefined ? Number(params.seconds) : 1.5;
  if (!(seconds > 0 && seconds <= 600)) throw new MixtuneError(`bench peak: seconds must be in (0, 600], got ${params.seconds}`);
  const r = measurePeak(seconds);
  return {
    bench: 'peak',
    gflops: round(r.gflops),
    threads: r.threads,
    isa: r.isa,
    variants: Object.fromEntries(Object.entries(r.variants).map(([k, v]) => [k, round(v)])),
    cpuGflops: round(r.cpuGflops),
    cpuVariants: Object.fromEntries(Object.entries(r.cpuVariants).map(([k, v]) => [k, round(v)])),
    seconds: r.seconds,
    bestIsa: native().bestIsa() as string,
  };
}

function round(x: number): number {
  return Math.round(x * 100) / 100;
}
