// Benchmark: fp32 GEMM throughput on the training shapes of the linear layers, as a ratio to the
// FMA peak measured in the same run. Shapes: M = 2048 tokens, K, N in {512, 1408, 8192}, and the
// four transpose combinations (nt = forward Y = X·W^T, nn = dX = dY·W, tn = dW += dY^T·X, tt).
// precision=bf16 times the bf16 GEMM (src/tensor/bf16.ts) instead, still as a ratio to the fp32 FMA
// peak, and (compare=1, the default) the fp32 GEMM on the same shape in the same run: `speedup` =
// fp32 time / bf16 time. skinny=compare also times fp32 shapes on the packed path, which skinny
// products (a LoRA rank wide, see native/gemm.cpp) leave: `skinnySpeedup` = packed time / time.
import { native } from '../native.js';
import { MixtuneError } from '../util/errors.js';
import { requireBf16, PackedBf16 } from '../tensor/bf16.js';
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
 * localPeakSeconds=<default 0.1>, precision=<fp32|bf16, default fp32>; with bf16:
 * operands=<f32|bf16|packed, default f32: fp32 A and B rounded while packed; bf16: both given as
 * bf16; packed: B packed once before timing (a weight packed once per optimizer step)>,
 * compare=<0|1, default 1: also time the fp32 GEMM per shape>; fp32: skinny=<1|0|compare, default 1:
 * skinny products take their own path; 0: the packed path for every shape; compare: both>.
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
  const precision = params.precision ?? 'fp32';
  if (precision !== 'fp32' && precision !== 'bf16') throw new MixtuneError(`bench gemm: precision must be fp32 or bf16, got '${precision}'`);
  const bf16 = precision === 'bf16';
  const operands = params.operands ?? 'f32';
  if (!['f32', 'bf16', 'packed'].includes(operands)) throw new MixtuneError(`bench gemm: operands must be f32, bf16 or packed, got '${operands}'`);
  if (!bf16 && params.operands !== undefined) throw new MixtuneError('bench gemm: operands= needs precision=bf16');
  const compare = bf16 && (params.compare ?? '1') !== '0';
  const skinny = params.skinny ?? '1';
  if (!['0', '1', 'compare'].includes(skinny)) throw new MixtuneError(`bench gemm: skinny must be 0, 1 or compare, got '${skinny}'`);
  if (bf16 && params.skinny !== undefined) throw new MixtuneError('bench gemm: skinny= is for the fp32 GEMM (drop precision=bf16)');
  if (bf16) requireBf16('bench gemm precision=bf16');
  const blocking = addon.gemmBlocking() as { kc: number; mc: number; nc: number; tilesPerThread: number };
  const setSkinny = (on: boolean): void => void addon.gemmBlocking(blocking.kc, blocking.mc, blocking.nc, blocking.tilesPerThread, on);

  const threads = addon.numThreads() as number;
  const peak = measurePeak(peakSeconds);
  const shapes: Record<string, unknown>[] = [];
  const t0 = performance.now();
  setSkinny(skinny !== '0');
  try {
    for (const M of ms) {
      for (const K of ks) {
        for (const N of ns) {
          const A = new Float32Array(M * K);
          const B = new Float32Array(K * N);
          const C = new Float32Array(M * N);
          fill(A, 1);
          fill(B, 2);
          const A16 = bf16 && operands === 'bf16' ? new Uint16Array(A.length) : null;
          if (A16) addon.f32ToBf16(A, A16);
          const B16 = bf16 && operands === 'bf16' ? new Uint16Array(B.length) : null;
          if (B16) addon.f32ToBf16(B, B16);
          for (const t of trans) {
            const ta = t[0] === 't';
            const tb = t[1] === 't';
            const flops = 2 * M * N * K;
            const packed = bf16 && operands === 'packed' ? new PackedBf16(K, N).pack(tb, B) : null;
            const call = !bf16
              ? () => addon.gemm(ta, tb, M, N, K, 1, A, B, beta, C)
              : packed
                ? () => addon.gemmBf16Packed(ta, M, N, K, 1, A, packed.data, beta, C)
                : () => addon.gemmBf16(ta, tb, M, N, K, 1, A16 ?? A, B16 ?? B, beta, C);
            const m = timeCalls(call, perShape);
            const sec = m.wall;
            const gflops = flops / sec / 1e9;
            // Peak re-measured right after this shape (same contention from other processes).
            const local = measurePeak(localSeconds, peak.isa).gflops;
            // CPU-time view: throughput per busy core times the thread count, against the
            // per-thread-CPU-time peak.
            const cpuGflops = (flops / m.cpu / 1e9) * threads;
            const row: Record<string, unknown> = {
              m: M, n: N, k: K, trans: t, ms: round(sec * 1000, 3), gflops: round(gflops, 2),
              ratio: round(gflops / peak.gflops, 4), localRatio: round(gflops / Math.max(local, 1e-9), 4),
              cpuRatio: round(cpuGflops / peak.cpuGflops, 4), calls: m.calls,
            };
            if (compare) {
              const f = timeCalls(() => addon.gemm(ta, tb, M, N, K, 1, A, B, beta, C), perShape);
              row.fp32Gflops = round(flops / f.wall / 1e9, 2);
              row.speedup = round(f.wall / sec, 3);
              row.cpuSpeedup = round(f.cpu / m.cpu, 3);
            }
            if (skinny === 'compare') {
              setSkinny(false);
              const p = timeCalls(call, perShape);
              setSkinny(true);
              row.packedGflops = round(flops / p.wall / 1e9, 2);
              row.skinnySpeedup = round(p.wall / sec, 3);
              row.skinnyCpuSpeedup = round(p.cpu / m.cpu, 3);
            }
            shapes.push(row);
          }
        }
      }
    }
  } finally {
    setSkinny(true);
  }
  const ratios = shapes.map((s) => s.ratio as number);
  const geo = Math.exp(ratios.reduce((a, r) => a + Math.log(r), 0) / ratios.length);
  const cpuRatios = shapes.map((s) => s.cpuRatio as number);
  const localRatios = shapes.map((s) => s.localRatio as number);
  const gm = (xs: number[]): number => Math.exp(xs.reduce((a, r) => a + Math.log(r), 0) / xs.length);
  const cpuGeo = gm(cpuRatios);
  const speedups = shapes.filter((r) => r.speedup !== undefined);
  const cmp = speedups.length === 0 ? {} : {
    minSpeedup: round(Math.min(...speedups.map((r) => r.speedup as number)), 3),
    geomeanSpeedup: round(gm(speedups.map((r) => r.speedup as number)), 3),
    geomeanCpuSpeedup: round(gm(speedups.map((r) => r.cpuSpeedup as number)), 3),
  };
  const sk = shapes.filter((r) => r.skinnySpeedup !== undefined);
  const skCmp = sk.length === 0 ? {} : {
    minSkinnySpeedup: round(Math.min(...sk.map((r) => r.skinnySpeedup as number)), 3),
    geomeanSkinnySpeedup: round(gm(sk.map((r) => r.skinnySpeedup as number)), 3),
    geomeanSkinnyCpuSpeedup: round(gm(sk.map((r) => r.skinnyCpuSpeedup as number)), 3),
  };
  return {
    bench: 'gemm',
    precision,
    ...(bf16 ? {} : { skinny }),
    ...skCmp,
    ...(bf16 ? { bf16: (addon.bf16Info() as { current: string }).current, operands } : {}),
    ...cmp,
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

/**
 * Times `call` in batches of >= ~50 ms (so that process CPU time, which the kernel accounts for
 * other threads only at scheduling events, is accurate) for about `budget` seconds after a warmup
 * call; medians of the per-call wall and CPU seconds.
 */
function timeCalls(call: () => void, budget: number): { wall: number; cpu: number; calls: number } {
  const run = (calls: number): [number, number] => {
    const c = process.cpuUsage();
    const s = performance.now();
    for (let i = 0; i < calls; i++) call();
    const wall = (performance.now() - s) / 1000;
    const u = process.cpuUsage(c);
    return [wall / calls, (u.user + u.system) / 1e6 / calls];
  };
  const [first] = run(1); // warmup (also grows the packing buffers)
  const calls = Math.max(1, Math.ceil(0.05 / Math.max(first, 1e-6)));
  const batches = Math.max(3, Math.min(25, Math.round(budget / Math.max(first * calls, 1e-6))));
  const walls: number[] = [];
  const cpus: number[] = [];
  for (let r = 0; r < batches; r++) {
    const [w, c] = run(calls);
    walls.push(w);
    cpus.push(c);
  }
  return { wall: median(walls), cpu: median(cpus), calls: calls * batches };
}

function round(x: number, d: number): number {
  const f = 10 ** d;
  return Math.round(x * f) / f;
}
