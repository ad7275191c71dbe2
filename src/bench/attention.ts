// `mixtune bench attention`: times the native causal GQA attention forward and backward at the
// reference training shape (B=4, T=512, 8 heads, 8 kv heads, headDim 64) and reports GFLOP/s of
// useful causal FLOPs: forward 4·B·H·T²·D/2 (QKᵀ and PV over the visible half), backward 2.5×
// that (QKᵀ recompute, dO·Vᵀ, dV, dK, dQ). Also times one KV-cache decode step (Tq = 1).
// Overrides: b=, t=, heads=, kv_heads=, d=, reps=, decode_t=.
import { nativeKernels } from '../tensor/native.js';
import { currentIsa, numThreads } from '../native.js';
import { Rng } from '../util/rng.js';
import { MixtuneError } from '../util/errors.js';

const DEFAULTS = { b: 4, t: 512, heads: 8, kv_heads: 8, d: 64, reps: 5, decode_t: 2048 };

function parse(params: Record<string, string>): typeof DEFAULTS {
  const out = { ...DEFAULTS } as Record<string, number>;
  for (const [k, v] of Object.entries(params)) {
    if (!(k in DEFAULTS)) throw new MixtuneError(`bench attention: unknown parameter '${k}' (known: ${Object.keys(DEFAULTS).join(', ')})`);
    const n = Number(v);
    if (!Number.isInteger(n) || n <= 0) throw new MixtuneError(`bench attention: ${k} must be a positive integer, got '${v}'`);
    out[k] = n;
  }
  if (out.heads! % out.kv_heads! !== 0) throw new MixtuneError('bench attention: heads must be a multiple of kv_heads');
  return out as typeof DEFAULTS;
}

function fill(rng: Rng, n: number): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = rng.float() * 2 - 1;
  return a;
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
  const fwd = time(c.reps, () => k.attentionForward(q, kk, v, out, lse, B, T, T, H, Hkv, D, scale, 0));
  const bwd = time(c.reps, () => k.attentionBackward(q, kk, v, out, lse, dOut, dq, dk, dv, B, T, H, Hkv, D, scale));
  const fwdFlops = (4 * B * H * T * T * D) / 2;
  const bwdFlops = 2.5 * fwdFlops;

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
  };
}
