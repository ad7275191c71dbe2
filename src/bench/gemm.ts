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
 * seconds=<time budget per shape, default 0.4>, peakSeconds=<default 1.5>, beta=<0|1, default 0>,
 * localPeakSeconds=<default 0.1>.
 * `ratio` = wall-clock GFLOP/s / the peak measured at the start (the headline number);
 * `localRatio` divides by a short peak measurement taken right after the shape (tracks the
 * contention from other processes on a shared machine). `cpuRatio` is the same
 * throughput computed from process CPU time (x threads) against the per-thread CPU-time peak: it
 * is insensitive to other processes stealing the cores, but blind to idle (sleeping) threads.
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
  const localSeconds = params.localPeakSeconds !== undefined ? Number(params.localPeakSeconds) : 0.1;
  if (!(perShape > 0) || !(peakSeconds > 0) || !Number.isFinite(beta)) throw new TypeError('gemm bench: bad seconds/peakSeconds/beta');

  const threads = addon.numThreads() as number;
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
          // Calls are timed in batches of >= ~50 ms so that process CPU time (which the kernel
          // accounts for other threads only at scheduling events) is accurate.
          const run = (calls: number): [number, number] => {
            const c = process.cpuUsage();
            const s = performance.now();
            for (let i = 0; i < calls; i++) addon.gemm(ta, tb, M, N, K, 1, A, B, beta, C);
            const wall = (performance.now() - s) / 1000;
            const u = process.cpuUsage(c);
            return [wall / calls, (u.user + u.system) / 1e6 / calls];
          };
          const [first] = run(1); // warmup (also grows the packing buffers)
          const calls = Math.max(1, Math.ceil(0.05 / Math.max(first, 1e-6)));
          const batches = Math.max(3, Math.min(25, Math.round(perShape / Math.max(first * calls, 1e-6))));
          const walls: number[] = [];
          const cpus: number[] = [];
          for (let r = 0; r < batches; r++) {
            const [w, c] = run(calls);
            walls.push(w);
            cpus.push(c);
          }
          const sec = median(walls);
          const gflops = flops / sec / 1e9;
          // Peak re-measured right after this shape (same contention from other processes).
          const local = measurePeak(localSeconds, peak.isa).gflops;
          // CPU-time view: throughput per busy core times the thread count, against the
          // per-thread-CPU-time peak.
          const cpuGflops = (flops / median(cpus) / 1e9) * threads;
          shapes.push({
            m: M, n: N, k: K, trans: t, ms: round(sec * 1000, 3), gflops: round(gflops, 2),
            ratio: round(gflops / peak.gflops, 4), localRatio: round(gflops / Math.max(local, 1e-9), 4),
            cpuRatio: round(cpuGflops / peak.cpuGflops, 4), calls: calls * batches,
          });
        }
      }
    }
  }
  const ratios = shapes.map((s) => s.ratio as number);
  const geo = Math.exp(ratios.reduce((a, r) => a + Math.log(r), 0) / ratios.length);
  const cpuRatios = shapes.map((s) => s.cpuRatio as number);
  const localRatios = shapes.map((s) => s.localRatio as number);
  const gm = (xs: number[]): number => Math.exp(xs.reduce((a, r) => a + Math.log(r), 0) / xs.length);
  const cpuGeo = gm(cpuRatios);
  return {
    bench: 'gemm',
    isa: addon.isa() as string,
    threads,
    peakGflops: round(peak.gflops, 2),
    peakIsa: peak.isa,
    peakVariants: peak.variants,
    minRatio: round(Math.min(...ratios), 4),
    geomeanRatio: round(geo, 4),
    minLocalRatio: round(Math.min(...localRatios), 4),
    geomeanLocalRatio: round(gm(localRatios), 4),
    peakCpuGflops: round(peak.cpuGflops, 2),
    minCpuRatio: round(Math.min(...cpuRatios), 4),
    geomeanCpuRatio: round(cpuGeo, 4),
    seconds: round((performance.now() - t0) / 1000, 1),
    shapes,
  };
}

function round(x: number, d: number): number {
  const f = 10 ** d;
  return Math.round(x * f) / f;
}
