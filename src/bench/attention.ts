// `mixtune bench attention`: times the native causal GQA attention forward and backward at the
// reference training shape (B=4, T=512, 8 heads, 8 kv heads, headDim 64) and reports GFLOP/s of
// useful causal FLOPs: forward 4·B·H·T²·D/2 (QKᵀ and PV over the visible half), backward 2.5×
// that (QKᵀ recompute, dO·Vᵀ, dV, dK, dQ). Also times one KV-cache decode step (Tq = 1).
// Overrides: b=, t=, heads=, kv_heads=, d=, reps=, decode_t=.
//
// With layout=causal|packed|miso it instead times the layout-aware kernel (docs/design.md §2) against
// the causal kernel on rows of the same size, in one run (interleaved, best of reps):
//   causal: one n = 1 group per row (the path every SFT/MoI training step takes);
//   packed: groups= (default 8) n = 1 groups of random lengths per row;
//   miso:   miso_groups= (default 1) MISO groups per row, each with n= (default 4) inputs of
//           similar length (±25%) totalling about half the group, then the output part;
//           w=uniform|fid|vanilla (default uniform).
// It reports both kernels' time and GFLOP/s of useful FLOPs (4·D per visible (query, key) pair
// forward, 2.5× that backward; a uniform MISO output query counts every key of the group once),
// and the time ratios layout / causal.
//
// precision=bf16 (needs AVX512-BF16) also times the bf16 attention (src/tensor/bf16.ts) on the
// same inputs in the same run, interleaved with the fp32 kernel, best of reps: bf16_forward_ms,
// bf16_backward_ms, their GFLOP/s and bf16_forward_speedup / bf16_backward_speedup (fp32 time over
// bf16 time). With layout=causal|packed the bf16 kernel runs with each token's group start as its
// first visible key (what training.precision bf16 does for packed rows) and the speedups are over
// the fp32 layout kernel; MISO layouts have no bf16 attention.
import { nativeKernels } from '../tensor/native.js';
import { attentionBackwardBf16, attentionForwardBf16, requireBf16 } from '../tensor/bf16.js';
import { groupStarts } from '../tensor/ops.js';
import { currentIsa, numThreads } from '../native.js';
import { Rng } from '../util/rng.js';
import { MixtuneError } from '../util/errors.js';

const DEFAULTS = { b: 4, t: 512, heads: 8, kv_heads: 8, d: 64, reps: 5, decode_t: 2048 };

const LAYOUT_DEFAULTS = { n: 4, groups: 8, miso_groups: 1, seed: 1 };
const LAYOUTS = ['causal', 'packed', 'miso'] as const;
const WEIGHTINGS = ['uniform', 'fid', 'vanilla'] as const;

function parse(params: Record<string, string>): typeof DEFAULTS & typeof LAYOUT_DEFAULTS {
  const out = { ...DEFAULTS, ...LAYOUT_DEFAULTS } as Record<string, number>;
  for (const [k, v] of Object.entries(params)) {
    if (k === 'layout' || k === 'w' || k === 'precision') continue;
    if (!(k in out)) throw new MixtuneError(`bench attention: unknown parameter '${k}' (known: ${[...Object.keys(out), 'layout', 'w', 'precision'].join(', ')})`);
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new MixtuneError(`bench attention: ${k} must be a positive integer, got '${v}'`);
    out[k] = n;
  }
  if (out.heads! % out.kv_heads! !== 0) throw new MixtuneError('bench attention: heads must be a multiple of kv_heads');
  return out as typeof DEFAULTS & typeof LAYOUT_DEFAULTS;
}

function fill(rng: Rng, n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.float() * 2 - 1;
  return a;
}

function parseBf16(params: Record<string, string>): boolean {
  const p = params.precision ?? 'fp32';
  if (p !== 'fp32' && p !== 'bf16') throw new MixtuneError(`bench attention: precision must be fp32 or bf16, got '${p}'`);
  if (p === 'bf16') requireBf16('bench attention precision=bf16');
  return p === 'bf16';
}

/** Best time of each function over reps rounds, the functions interleaved (after one warm-up each). */
function bestInterleaved(reps: number, runs: Record<string, () => void>): Record<string, number> {
  const best: Record<string, number> = {};
  for (const f of Object.values(runs)) f();
  for (let r = 0; r < reps; r++) {
    for (const [name, f] of Object.entries(runs)) {
      const t0 = process.hrtime.bigint();
      f();
      best[name] = Math.min(best[name] ?? Infinity, Number(process.hrtime.bigint() - t0) / 1e9);
    }
  }
  return best;
}

/** The bf16 fields of the report: times, GFLOP/s and speedups over the fp32 times given. */
function bf16Report(best: Record<string, number>, fp32Fwd: number, fp32Bwd: number, fwdFlops: number): Record<string, number> {
  return {
    bf16_forward_ms: +(best.bf! * 1e3).toFixed(3),
    bf16_backward_ms: +(best.bb! * 1e3).toFixed(3),
    bf16_forward_gflops: +(fwdFlops / best.bf! / 1e9).toFixed(2),
    bf16_backward_gflops: +((2.5 * fwdFlops) / best.bb! / 1e9).toFixed(2),
    bf16_forward_speedup: +(fp32Fwd / best.bf!).toFixed(3),
    bf16_backward_speedup: +(fp32Bwd / best.bb!).toFixed(3),
  };
}

/** Best-of-reps wall time in seconds (after one warm-up call). */
function time(reps: number, f: () => void): number {
  f();
  let best = Infinity;
  for (let r = 0; r < reps; r++) {
    const t0 = process.hrtime.bigint();
    f();
    best = Math.min(best, Number(process.hrtime.bigint() - t0) / 1e9);
  }
  return best;
}

export function benchAttention(params: Record<string, string>): Record<string, unknown> {
  const c = parse(params);
  const bf16 = parseBf16(params);
  if (params.layout !== undefined) return benchLayout(params, c, bf16);
  if (params.w !== undefined) throw new MixtuneError('bench attention: w= needs layout=miso');
  const k = nativeKernels();
  const { b: B, t: T, heads: H, kv_heads: Hkv, d: D } = c;
  const rng = new Rng(1);
  const q = fill(rng, B * T * H * D);
  const kk = fill(rng, B * T * Hkv * D);
  const v = fill(rng, B * T * Hkv * D);
  const dOut = fill(rng, B * T * H * D);
  const out = new Float32Array(B * T * H * D);
  const lse = new Float32Array(B * H * T);
  const dq = new Float32Array(q.length);
  const dk = new Float32Array(kk.length);
  const dv = new Float32Array(v.length);
  const scale = 1 / Math.sqrt(D);
  const f32Fwd = (): void => k.attentionForward(q, kk, v, out, lse, B, T, T, H, Hkv, D, scale, 0);
  const f32Bwd = (): void => k.attentionBackward(q, kk, v, out, lse, dOut, dq, dk, dv, B, T, H, Hkv, D, scale);
  const fwdFlops = (4 * B * H * T * T * D) / 2;
  const bwdFlops = 2.5 * fwdFlops;
  let fwd: number, bwd: number;
  let bf16Fields: Record<string, number> = {};
  if (bf16) {
    const out16 = new Float32Array(out.length), lse16 = new Float32Array(lse.length);
    const best = bestInterleaved(c.reps, {
      ff: f32Fwd, fb: f32Bwd,
      bf: () => attentionForwardBf16(q, kk, v, out16, lse16, B, T, T, H, Hkv, D, scale, 0),
      bb: () => attentionBackwardBf16(q, kk, v, out16, lse16, dOut, dq, dk, dv, B, T, H, Hkv, D, scale),
    });
    fwd = best.ff!;
    bwd = best.fb!;
    bf16Fields = bf16Report(best, fwd, bwd, fwdFlops);
  } else {
    fwd = time(c.reps, f32Fwd);
    bwd = time(c.reps, f32Bwd);
  }

  // One decode step: B = 1, Tq = 1, a KV cache of decode_t tokens.
  const Tk = c.decode_t;
  const kc = fill(rng, Tk * Hkv * D);
  const vc = fill(rng, Tk * Hkv * D);
  const q1 = fill(rng, H * D);
  const o1 = new Float32Array(H * D);
  const l1 = new Float32Array(H);
  const dec = time(Math.max(20, c.reps), () => k.attentionForward(q1, kc, vc, o1, l1, 1, 1, Tk, H, Hkv, D, scale, Tk - 1));

  return {
    bench: 'attention',
    isa: currentIsa(),
    threads: numThreads(),
    B, T, heads: H, kv_heads: Hkv, head_dim: D,
    forward_ms: +(fwd * 1e3).toFixed(3),
    backward_ms: +(bwd * 1e3).toFixed(3),
    forward_gflops: +(fwdFlops / fwd / 1e9).toFixed(2),
    backward_gflops: +(bwdFlops / bwd / 1e9).toFixed(2),
    decode_tk: Tk,
    decode_us: +(dec * 1e6).toFixed(1),
    decode_gflops: +((4 * H * Tk * D) / dec / 1e9).toFixed(2),
    ...(bf16 ? { precision: 'bf16', ...bf16Fields } : {}),
  };
}

interface BenchLayout {
  group: Int32Array;
  part: Int32Array;
  nInputs: Int32Array;
  weighting: Int32Array;
  maxInputs: number;
  /** Visible (query, key) pairs summed over the rows (per head). */
  pairs: number;
}

/** Builds B rows of T tokens for layout=causal|packed|miso. */
function makeLayout(kind: (typeof LAYOUTS)[number], B: number, T: number, c: typeof LAYOUT_DEFAULTS, w: number, rng: Rng): BenchLayout {
  const group = new Int32Array(B * T);
  const part = new Int32Array(B * T);
  const nInputs: number[] = [];
  const weighting: number[] = [];
  let pairs = 0;
  const causalGroup = (b: number, s: number, len: number): void => {
    const g = nInputs.length;
    for (let t = s; t < s + len; t++) group[b * T + t] = g;
    nInputs.push(1);
    weighting.push(0);
    pairs += (len * (len + 1)) / 2;
  };
  // Random cut points: `count` pieces of at least 1 token summing to `len`.
  const cuts = (len: number, count: number): number[] => {
    count = Math.min(count, len);
    const pts = new Set<number>();
    while (pts.size < count - 1) pts.add(1 + rng.int(len - 1));
    const xs = [0, ...[...pts].sort((a, b) => a - b), len];
    return xs.slice(1).map((x, i) => x - xs[i]!);
  };
  for (let b = 0; b < B; b++) {
    if (kind === 'causal') causalGroup(b, 0, T);
    else if (kind === 'packed') {
      let s = 0;
      for (const len of cuts(T, c.groups)) {
        causalGroup(b, s, len);
        s += len;
      }
    } else {
      const glen = Math.floor(T / c.miso_groups);
      let s = 0;
      for (let gi = 0; gi < c.miso_groups; gi++) {
        const len = gi === c.miso_groups - 1 ? T - s : glen;
        const n = c.n;
        const base = len / 2 / n;
        const inputs = Array.from({ length: n }, () => Math.max(1, Math.round(base * (0.75 + 0.5 * rng.float()))));
        const used = inputs.reduce((a, x) => a + x, 0);
        if (used >= len) throw new MixtuneError(`bench attention: a MISO group of ${len} tokens cannot hold ${n} inputs`);
        const out = len - used;
        const g = nInputs.length;
        let t = s;
        inputs.forEach((il, i) => {
          for (let x = 0; x < il; x++, t++) {
            group[b * T + t] = g;
            part[b * T + t] = i;
          }
          pairs += (il * (il + 1)) / 2;
        });
        for (let x = 0; x < out; x++, t++) {
          group[b * T + t] = g;
          part[b * T + t] = n === 1 ? 0 : -1;
        }
        pairs += out * used + (out * (out + 1)) / 2;
        nInputs.push(n);
        weighting.push(w);
        s += len;
      }
    }
  }
  return { group, part, nInputs: Int32Array.from(nInputs), weighting: Int32Array.from(weighting), maxInputs: Math.max(...nInputs), pairs };
}

function benchLayout(params: Record<string, string>, c: ReturnType<typeof parse>, bf16: boolean): Record<string, unknown> {
  const kind = params.layout as (typeof LAYOUTS)[number];
  if (!LAYOUTS.includes(kind)) throw new MixtuneError(`bench attention: layout must be one of ${LAYOUTS.join(', ')}, got '${params.layout}'`);
  if (bf16 && kind === 'miso') throw new MixtuneError('bench attention: precision=bf16 needs layout=causal or packed (MISO groups keep fp32 attention)');
  const wName = (params.w ?? 'uniform') as (typeof WEIGHTINGS)[number];
  if (!WEIGHTINGS.includes(wName)) throw new MixtuneError(`bench attention: w must be one of ${WEIGHTINGS.join(', ')}, got '${params.w}'`);
  const k = nativeKernels();
  const { b: B, t: T, heads: H, kv_heads: Hkv, d: D } = c;
  const rng = new Rng(c.seed);
  const L = makeLayout(kind, B, T, c, WEIGHTINGS.indexOf(wName), rng);
  const q = fill(rng, B * T * H * D);
  const kk = fill(rng, B * T * Hkv * D);
  const v = fill(rng, B * T * Hkv * D);
  const dOut = fill(rng, B * T * H * D);
  const scale = 1 / Math.sqrt(D);
  const out = new Float32Array(q.length), lse = new Float32Array(B * H * T);
  const lout = new Float32Array(q.length), stats = new Float32Array(B * H * T * L.maxInputs);
  const dq = new Float32Array(q.length), dk = new Float32Array(kk.length), dv = new Float32Array(v.length);
  const runs: Record<string, () => void> = {
    cf: () => k.attentionForward(q, kk, v, out, lse, B, T, T, H, Hkv, D, scale, 0),
    lf: () => k.attentionLayoutForward(q, kk, v, lout, stats, B, T, H, Hkv, D, scale, L.group, L.part, L.nInputs, L.weighting, L.maxInputs),
    cb: () => k.attentionBackward(q, kk, v, out, lse, dOut, dq, dk, dv, B, T, H, Hkv, D, scale),
    lb: () => k.attentionLayoutBackward(q, kk, v, lout, stats, dOut, dq, dk, dv, B, T, H, Hkv, D, scale,
      L.group, L.part, L.nInputs, L.weighting, L.maxInputs),
  };
  if (bf16) {
    const lo = groupStarts(L.group, B, T);
    const bout = new Float32Array(q.length), blse = new Float32Array(B * H * T);
    runs.bf = () => attentionForwardBf16(q, kk, v, bout, blse, B, T, T, H, Hkv, D, scale, 0, lo);
    runs.bb = () => attentionBackwardBf16(q, kk, v, bout, blse, dOut, dq, dk, dv, B, T, H, Hkv, D, scale, lo);
  }
  const best = bestInterleaved(c.reps, runs);  // the warm-up calls also give the backward passes their outputs
  const causalFwd = 4 * D * H * B * (T * (T + 1)) / 2;
  const layoutFwd = 4 * D * H * L.pairs;
  const gf = (flops: number, s: number): number => +(flops / s / 1e9).toFixed(2);
  return {
    bench: 'attention',
    layout: kind,
    isa: currentIsa(),
    threads: numThreads(),
    B, T, heads: H, kv_heads: Hkv, head_dim: D,
    ...(kind === 'packed' ? { groups: c.groups } : {}),
    ...(kind === 'miso' ? { n: c.n, miso_groups: c.miso_groups, weighting: wName } : {}),
    visible_pairs_ratio: +(L.pairs / (B * (T * (T + 1)) / 2)).toFixed(3),
    causal_forward_ms: +(best.cf! * 1e3).toFixed(3),
    causal_backward_ms: +(best.cb! * 1e3).toFixed(3),
    layout_forward_ms: +(best.lf! * 1e3).toFixed(3),
    layout_backward_ms: +(best.lb! * 1e3).toFixed(3),
    causal_forward_gflops: gf(causalFwd, best.cf!),
    causal_backward_gflops: gf(2.5 * causalFwd, best.cb!),
    layout_forward_gflops: gf(layoutFwd, best.lf!),
    layout_backward_gflops: gf(2.5 * layoutFwd, best.lb!),
    forward_time_ratio: +(best.lf! / best.cf!).toFixed(3),
    backward_time_ratio: +(best.lb! / best.cb!).toFixed(3),
    ...(bf16 ? { precision: 'bf16', ...bf16Report(best, best.lf!, best.lb!, layoutFwd) } : {}),
  };
}
