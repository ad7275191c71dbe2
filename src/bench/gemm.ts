// Benchmark: fp32 GEMM throughput on the training shapes of the linear layers, as a ratio to the
// FMA peak measured in the same run. Shapes: M = 2048 tokens, K, N in {512, 1408, 8192}, and the
// four transpose combinations (nt = forward Y = X·W^T, nn = dX = dY·W, tn = dW += dY^T·X, tt).
import { native } from '../native.js';
import { measurePeak } from './peak.js';

function parseList(name: string, v: string | undefined, dflt: number[]): number[] {
  if (v === undefined) return dflt;
  const xs = v.split(',').map((s) => Number(s.trim()));
  for (const x of xs) if (!Number.isInteger(x) || x < 1) throw new TypeError(`gemm bench: ${name} must be a comma list of positive integers, got ${v}`);
  return xs;
}

function fill(a: Float32Array, seed: number): void {
  let s = seed >>> 0;
  for (let i = 0; i < a.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 4294967296 - 0.5;
  }
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m]! : (s[m - 1]! + s[m]!) / 2;
}

/**
 * params: m=<tokens, default 2048>, k=<comma list>, n=<comma list>, trans=<comma list of nn,nt,tn,tt>,
 * seconds=<time budget per shape, default 0.4>, peakSeconds=<default 1.5>, beta=<0|1, default 0>.
 */
export function benchGemm(params: Record<string, string>): Record<string, unknown> {
  const addon = native();
  const ms = parseList('m', params.m, [2048]);
  const ks = parseList('k', params.k, [512, 1408, 8192]);
  const ns = parseList('n', params.n, [512, 1408, 8192]);
  const trans = (params.trans ?? 'nn,nt,tn,tt').split(',').map((s) => s.trim());
  for (const t of trans) if (!/^[nt][nt]$/.test(t)) throw new TypeError(`gemm bench: trans must be a comma list of nn,nt,tn,tt, got ${params.trans}`);
  const perShape = params.seconds !== undefined ? Number(params.seconds) : 0.4;
  const peakSeconds = params.peakSeconds !== undefined ? Number(params.peakSeconds) : 1.5;
  const beta = params.beta !== undefined ? Number(params.beta) : 0;
  if (!(perShape > 0) || !(peakSeconds > 0) || !Number.isFinite(beta)) throw new TypeError('gemm bench: bad seconds/peakSeconds/beta');

  const peak = measurePeak(peakSeconds);
  const shapes: Record<string, unknown>[] = [];
  const t0 = performance.now();
  for (const M of ms) {
    for (const K of ks) {
      for (const N of ns) {
        const A = new Float32Array(M * K);
        const B = new Float32Array(K * N);
        const C = new Float32Array(M * N);
        fill(A, 1);
        fill(B, 2);
        for (const t of trans) {
          const ta = t[0] === 't';
          const tb = t[1] === 't';
          const flops = 2 * M * N * K;
          const run = (): number => {
            const s = performance.now();
            addon.gemm(ta, tb, M, N, K, 1, A, B, beta, C);
            return (performance.now() - s) / 1000;
          };
          const first = run(); // warmup (also grows the packing buffers)
          const reps = Math.max(3, Math.min(50, Math.round(perShape / Math.max(first, 1e-6))));
          const times: number[] = [];
          for (let r = 0; r < reps; r++) times.push(run());
          const sec = median(times);
          const gflops = flops / sec / 1e9;
          shapes.push({ m: M, n: N, k: K, trans: t, ms: round(sec * 1000, 3), gflops: round(gflops, 2), ratio: round(gflops / peak.gflops, 4), reps });
        }
      }
    }
  }
  const ratios = shapes.map((s) => s.ratio as number);
  const geo = Math.exp(ratios.reduce((a, r) => a + Math.log(r), 0) / ratios.length);
  return {
    bench: 'gemm',
    isa: addon.isa() as string,
    threads: addon.numThreads() as number,
    peakGflops: round(peak.gflops, 2),
    peakIsa: peak.isa,
    peakVariants: peak.variants,
    minRatio: round(Math.min(...ratios), 4),
    geomeanRatio: round(geo, 4),
    seconds: round((performance.now() - t0) / 1000, 1),
    shapes,
  };
}

function round(x: number, d: number): number {
  const f = 10 ** d;
  return Math.round(x * f) / f;
}
