// bf16 causal attention (native/attention_bf16*.cpp, src/tensor/bf16.ts) against its reference twin
// (src/tensor/reference/attention-bf16.ts) on every bf16 implementation this CPU runs plus the
// portable emulation: GQA, odd head dims and lengths, several key tiles, both backward task
// splits, and packed rows (per-query lo); its distance from fp32 attention (bf16-sized, and much
// larger than from the twin, so the products really are bf16); its backward against finite differences of the fp32 reference; the
// capability error; and op.attention choosing it under training.precision bf16.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../src/util/rng.js';
import { numThreads, setNumThreads } from '../src/native.js';
import { refAttentionForward, refAttentionBackward } from '../src/tensor/reference/attention.js';
import { refAttentionBf16Forward, refAttentionBf16Backward } from '../src/tensor/reference/attention-bf16.js';
import { attentionBackwardBf16, attentionForwardBf16, bf16Support, setBf16Impl, type Bf16Impl } from '../src/tensor/bf16.js';
import { randArray, checkGradFD, dot } from './util.js';
import { nativeKernels } from '../src/tensor/native.js';
import { Tape, Tensor } from '../src/tensor/tensor.js';
import { Bf16Weights } from '../src/tensor/bf16-weights.js';
import * as op from '../src/tensor/ops.js';

const support = bf16Support();
const IMPLS: Bf16Impl[] = [...(support.avx512bf16 ? ['avx512bf16' as const] : []), 'portable'];

interface Case { B: number; T: number; H: number; Hkv: number; D: number }
const CASES: Case[] = [
  { B: 2, T: 150, H: 4, Hkv: 2, D: 64 },  // three key tiles, GQA, fused backward
  { B: 1, T: 67, H: 2, Hkv: 1, D: 33 },   // odd D and T, one kv head: split backward
  { B: 1, T: 5, H: 3, Hkv: 3, D: 8 },     // one small tile
  { B: 3, T: 40, H: 2, Hkv: 1, D: 80 },   // D not a multiple of 16
];

function inputs(c: Case, seed: number) {
  const rng = new Rng(seed);
  return {
    q: randArray(rng, c.B * c.T * c.H * c.D, 2),
    k: randArray(rng, c.B * c.T * c.Hkv * c.D, 2),
    v: randArray(rng, c.B * c.T * c.Hkv * c.D),
    dOut: randArray(rng, c.B * c.T * c.H * c.D),
    scale: 1 / Math.sqrt(c.D),
  };
}

/** max |a - b| / max |b| */
function relDist(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) {
    num = Math.max(num, Math.abs(a[i]! - b[i]!));
    den = Math.max(den, Math.abs(b[i]!));
  }
  return num / den;
}

/** sqrt(mean (a - b)^2) / sqrt(mean b^2): the bulk distance, which one rounding tie flipped the other
 * way (the twin sums in fp64, the kernel in fp32, so a value at a bf16 tie may round differently:
 * 2^-8 of one term) barely moves. */
function rmsDist(a: Float32Array, b: Float32Array): number {
  let num = 0, den = 0;
  for (let i = 0; i < b.length; i++) {
    num += (a[i]! - b[i]!) ** 2;
    den += b[i]! ** 2;
  }
  return Math.sqrt(num / den);
}

function withImpl(impl: Bf16Impl, fn: () => void): void {
  try {
    setBf16Impl(impl);
    fn();
  } finally {
    setBf16Impl('auto');
  }
}

interface Run { out: Float32Array; lse: Float32Array; dq: Float32Array; dk: Float32Array; dv: Float32Array }

type FwdFn = (...a: [...Parameters<typeof attentionForwardBf16>]) => void;
type BwdFn = (...a: [...Parameters<typeof attentionBackwardBf16>]) => void;

function run(c: Case, x: ReturnType<typeof inputs>, fwd: FwdFn, bwd: BwdFn, fp32Out?: Run, lo?: Int32Array): Run {
  const nq = c.B * c.T * c.H * c.D, nk = c.B * c.T * c.Hkv * c.D;
  const r: Run = {
    out: new Float32Array(nq), lse: new Float32Array(c.B * c.H * c.T), dq: new Float32Array(nq), dk: new Float32Array(nk), dv: new Float32Array(nk),
  };
  fwd(x.q, x.k, x.v, r.out, r.lse, c.B, c.T, c.T, c.H, c.Hkv, c.D, x.scale, 0, lo);
  // The backward reads out/lse of a forward: give every implementation the same ones (fp32's).
  const o = fp32Out ?? r;
  bwd(x.q, x.k, x.v, o.out, o.lse, x.dOut, r.dq, r.dk, r.dv, c.B, c.T, c.H, c.Hkv, c.D, x.scale, lo);
  return r;
}

test('bf16 attention == its reference twin (every implementation, GQA, odd shapes, both backward splits); bf16-sized distance from fp32', () => {
  for (const impl of IMPLS) {
    withImpl(impl, () => {
      CASES.forEach((c, ci) => {
        const x = inputs(c, 100 + ci);
        const f32 = run(c, x, refAttentionForward, refAttentionBackward);
        const twin = run(c, x, refAttentionBf16Forward, refAttentionBf16Backward, f32);
        const nat = run(c, x, attentionForwardBf16, attentionBackwardBf16, f32);
        for (const key of ['out', 'lse', 'dq', 'dk', 'dv'] as const) {
          const dTwin = rmsDist(nat[key], twin[key]), maxTwin = relDist(nat[key], twin[key]);
          const dF32 = rmsDist(nat[key], f32[key]), maxF32 = relDist(nat[key], f32[key]);
          const what = `${impl} ${JSON.stringify(c)} ${key}: to the twin rms ${dTwin.toExponential(2)} max ${maxTwin.toExponential(2)}, ` +
            `to fp32 rms ${dF32.toExponential(2)} max ${maxF32.toExponential(2)}`;
          assert.ok(dTwin <= (key === 'lse' ? 1e-6 : 1e-4) && maxTwin <= 1e-2, what);
          assert.ok(maxF32 < 3e-2, what);
          // The bf16 roundings are there: fp32 is much farther than the twin (lse is nearly exact either way).
          if (key !== 'lse') assert.ok(dF32 > 10 * dTwin, what);
        }
      });
    });
  }
});

test('bf16 attention: the two backward task splits and one thread give the same results', () => {
  const threads = numThreads();
  const c: Case = { B: 1, T: 130, H: 4, Hkv: 2, D: 32 };  // 2 groups: fused with 1 or 2 threads; 3 threads split
  const x = inputs(c, 7);
  const f32 = run(c, x, refAttentionForward, refAttentionBackward);
  try {
    setNumThreads(1);
    const one = run(c, x, attentionForwardBf16, attentionBackwardBf16, f32);
    setNumThreads(3);
    const three = run(c, x, attentionForwardBf16, attentionBackwardBf16, f32);
    for (const key of ['out', 'lse', 'dq', 'dk', 'dv'] as const) assert.deepEqual(three[key], one[key], key);
  } finally {
    setNumThreads(threads);
  }
});

test('bf16 attention backward matches finite differences of the fp32 reference forward (bf16 tolerance)', () => {
  for (const impl of IMPLS) {
    withImpl(impl, () => {
      const c: Case = { B: 1, T: 9, H: 2, Hkv: 1, D: 6 };
      const x = inputs(c, 31);
      const rng = new Rng(3);
      const out = new Float32Array(c.T * c.H * c.D);
      const lse = new Float32Array(c.H * c.T);
      const L = (): number => {
        refAttentionForward(x.q, x.k, x.v, out, lse, c.B, c.T, c.T, c.H, c.Hkv, c.D, x.scale, 0);
        return dot(out, x.dOut);
      };
      L();
      const dq = new Float32Array(x.q.length), dk = new Float32Array(x.k.length), dv = new Float32Array(x.v.length);
      attentionBackwardBf16(x.q, x.k, x.v, out, lse, x.dOut, dq, dk, dv, c.B, c.T, c.H, c.Hkv, c.D, x.scale);
      const o = { samples: 16, eps: 1e-2, rtol: 3e-2, atol: 2e-2 };
      checkGradFD(L, x.q, dq, rng, { ...o, what: `${impl} dq` });
      checkGradFD(L, x.k, dk, rng, { ...o, what: `${impl} dk` });
      checkGradFD(L, x.v, dv, rng, { ...o, what: `${impl} dv` });
    });
  }
});

test('bf16 attention without bf16 instructions: an ENOBF16 error naming why, never a silent fp32 path', () => {
  withImpl('none', () => {
    const c: Case = { B: 1, T: 4, H: 1, Hkv: 1, D: 4 };
    const x = inputs(c, 1);
    const out = new Float32Array(16), lse = new Float32Array(4);
    assert.throws(() => attentionForwardBf16(x.q, x.k, x.v, out, lse, 1, 4, 4, 1, 1, 4, x.scale, 0),
      (e: Error & { code?: string }) => e.code === 'ENOBF16' && /attentionForwardBf16: bf16 attention is unavailable: .*MIXTUNE_BF16|disabled/.test(e.message));
    const g = new Float32Array(16);
    assert.throws(() => attentionBackwardBf16(x.q, x.k, x.v, out, lse, x.dOut, g, g.slice(), g.slice(), 1, 4, 1, 1, 4, x.scale),
      (e: Error & { code?: string }) => e.code === 'ENOBF16');
  });
});

test('bf16 attention validates its arguments like the fp32 kernel', () => {
  const x = inputs({ B: 1, T: 4, H: 2, Hkv: 1, D: 4 }, 2);
  withImpl('portable', () => {
    assert.throws(() => attentionForwardBf16(x.q, x.k, x.v, new Float32Array(3), new Float32Array(8), 1, 4, 4, 2, 1, 4, 0.5, 0), TypeError);
    assert.throws(() => attentionForwardBf16(x.q, x.k, x.v, new Float32Array(32), new Float32Array(8), 1, 4, 4, 3, 2, 4, 0.5, 0), TypeError);
  });
});

test('op.attention under training.precision bf16 (ctx.bf16) runs the bf16 kernel forward and backward; without it, fp32', { skip: !support.avx512bf16 && 'no AVX512-BF16 here' }, () => {
  const c: Case = { B: 2, T: 70, H: 4, Hkv: 2, D: 16 };
  const x = inputs(c, 9);
  const shape = { batch: c.B, seq: c.T, nHeads: c.H, nKvHeads: c.Hkv, headDim: c.D };
  const f32 = run(c, x, refAttentionForward, refAttentionBackward);
  const bf = run(c, x, attentionForwardBf16, attentionBackwardBf16);
  for (const bf16 of [new Bf16Weights(), null]) {
    const tape = new Tape();
    const ctx = { k: nativeKernels(), tape, bf16 };
    const q = new Tensor(x.q.slice(), [c.B * c.T, c.H * c.D], true);
    const k = new Tensor(x.k.slice(), [c.B * c.T, c.Hkv * c.D], true);
    const v = new Tensor(x.v.slice(), [c.B * c.T, c.Hkv * c.D], true);
    const out = op.attention(ctx, q, k, v, shape);
    out.grad = x.dOut.slice();
    tape.backward();
    const want = bf16 ? bf : f32;
    const tol = bf16 ? 0 : 1e-4;
    for (const [name, got, exp] of [['out', out.data, want.out], ['dq', q.grad!, want.dq], ['dk', k.grad!, want.dk], ['dv', v.grad!, want.dv]] as const) {
      assert.ok(relDist(got, exp) <= tol, `${bf16 ? 'bf16' : 'fp32'} ${name}: ${relDist(got, exp)}`);
    }
  }
});

/** lo of rows packed with samples of random lengths (each token sees [start of its sample, itself]). */
function packedLoOf(c: Case, rng: Rng, maxLen: number): Int32Array {
  const lo = new Int32Array(c.B * c.T);
  for (let b = 0; b < c.B; b++) {
    let start = 0, end = 0;
    for (let t = 0; t < c.T; t++) {
      if (t === end) {
        start = t;
        end = t + 1 + rng.int(maxLen);
      }
      lo[b * c.T + t] = start;
    }
  }
  return lo;
}

test('bf16 attention over packed rows (per-query lo) == its twin and == fp32 per-sample attention at bf16 distance; lo = 0 is the causal kernel bit for bit', () => {
  for (const impl of IMPLS) {
    withImpl(impl, () => {
      for (const [ci, c] of ([{ B: 2, T: 200, H: 4, Hkv: 2, D: 32 }, { B: 1, T: 131, H: 2, Hkv: 1, D: 17 }] as Case[]).entries()) {
        const x = inputs(c, 40 + ci);
        const lo = packedLoOf(c, new Rng(ci + 1), 90);
        // fp32 truth: the fp32 layout kernel's rule for one-input groups, computed with the reference on each sample alone.
        const twinF = run(c, x, refAttentionBf16Forward, refAttentionBf16Backward, undefined, lo);
        const nat = run(c, x, attentionForwardBf16, attentionBackwardBf16, twinF, lo);
        const seg = perSampleF32(c, x, lo);
        for (const key of ['out', 'lse', 'dq', 'dk', 'dv'] as const) {
          const dTwin = rmsDist(nat[key], twinF[key]), maxTwin = relDist(nat[key], twinF[key]);
          const what = `${impl} ${JSON.stringify(c)} ${key}: to the twin rms ${dTwin.toExponential(2)} max ${maxTwin.toExponential(2)}`;
          // Short samples have few keys per query, so one flipped rounding of dS weighs more than in
          // the long causal rows above (measured: rms up to ~2e-4; bf16 vs fp32 is ~4e-3).
          assert.ok(dTwin <= (key === 'lse' ? 1e-6 : 5e-4) && maxTwin <= 1e-2, what);
          if (key === 'out' || key === 'lse') assert.ok(relDist(nat[key], seg[key]) < 3e-2, `${what}, to fp32 per sample ${relDist(nat[key], seg[key])}`);
        }
        const zero = run(c, x, attentionForwardBf16, attentionBackwardBf16, twinF, new Int32Array(c.B * c.T));
        const causal = run(c, x, attentionForwardBf16, attentionBackwardBf16, twinF);
        for (const key of ['out', 'lse', 'dq', 'dk', 'dv'] as const) assert.deepEqual(zero[key], causal[key], `${impl} lo = 0 ${key}`);
      }
    });
  }
});

/** fp32 reference attention of every packed sample on its own (out and lse only). */
function perSampleF32(c: Case, x: ReturnType<typeof inputs>, lo: Int32Array): { out: Float32Array; lse: Float32Array } {
  const out = new Float32Array(c.B * c.T * c.H * c.D), lse = new Float32Array(c.B * c.H * c.T);
  for (let b = 0; b < c.B; b++) {
    for (let s = 0; s < c.T;) {
      let e = s;
      while (e < c.T && lo[b * c.T + e] === s) e++;
      const n = e - s, qw = c.H * c.D, kw = c.Hkv * c.D;
      const q = x.q.slice((b * c.T + s) * qw, (b * c.T + e) * qw), k = x.k.slice((b * c.T + s) * kw, (b * c.T + e) * kw);
      const v = x.v.slice((b * c.T + s) * kw, (b * c.T + e) * kw);
      const o = new Float32Array(n * qw), l = new Float32Array(c.H * n);
      refAttentionForward(q, k, v, o, l, 1, n, n, c.H, c.Hkv, c.D, x.scale, 0);
      out.set(o, (b * c.T + s) * qw);
      for (let h = 0; h < c.H; h++) lse.set(l.subarray(h * n, (h + 1) * n), (b * c.H + h) * c.T + s);
      s = e;
    }
  }
  return { out, lse };
}

test('bf16 attention rejects a lo outside [0, position]', () => {
  const c: Case = { B: 1, T: 4, H: 1, Hkv: 1, D: 4 };
  const x = inputs(c, 5);
  withImpl('portable', () => {
    for (const bad of [[0, 0, 3, 2], [0, -1, 0, 0]]) {
      assert.throws(() => attentionForwardBf16(x.q, x.k, x.v, new Float32Array(16), new Float32Array(4), 1, 4, 4, 1, 1, 4, x.scale, 0, Int32Array.from(bad)),
        (e: Error) => e instanceof TypeError && /lo\[\d\] = -?\d+ is outside/.test(e.message));
    }
  });
});

test('op.attention under ctx.bf16 with a packed layout (one-input groups) runs the bf16 kernel with per-token lo; a MISO layout keeps the fp32 layout kernel', { skip: !support.avx512bf16 && 'no AVX512-BF16 here' }, () => {
  const c: Case = { B: 2, T: 96, H: 2, Hkv: 1, D: 16 };
  const x = inputs(c, 12);
  const shape = { batch: c.B, seq: c.T, nHeads: c.H, nKvHeads: c.Hkv, headDim: c.D };
  const lo = packedLoOf(c, new Rng(4), 40);
  // Global group ids from the runs of lo; part -1 (output) everywhere.
  const group = new Int32Array(c.B * c.T);
  let g = -1;
  for (let t = 0; t < c.B * c.T; t++) {
    if (t % c.T === 0 || lo[t] !== lo[t - 1]) g++;
    group[t] = g;
  }
  const packed = { group, part: new Int32Array(c.B * c.T).fill(-1), nInputs: new Int32Array(g + 1).fill(1), weighting: Array(g + 1).fill('uniform') as op.Weighting[] };
  const want = run(c, x, attentionForwardBf16, attentionBackwardBf16, undefined, lo);
  const tape = new Tape();
  const ctx = { k: nativeKernels(), tape, bf16: new Bf16Weights() };
  const q = new Tensor(x.q.slice(), [c.B * c.T, c.H * c.D], true);
  const k = new Tensor(x.k.slice(), [c.B * c.T, c.Hkv * c.D], true);
  const v = new Tensor(x.v.slice(), [c.B * c.T, c.Hkv * c.D], true);
  const out = op.attention(ctx, q, k, v, shape, packed);
  out.grad = x.dOut.slice();
  tape.backward();
  assert.deepEqual(out.data, want.out);
  assert.deepEqual(q.grad, want.dq);
  assert.deepEqual(k.grad, want.dk);
  assert.deepEqual(v.grad, want.dv);
  // A MISO group (two inputs, then the output) in row 0: the fp32 layout kernel, exactly.
  const part = new Int32Array(c.B * c.T).fill(-1);
  const g2 = new Int32Array(c.B * c.T);
  for (let t = 0; t < c.B * c.T; t++) g2[t] = t < c.T ? 0 : 1;
  for (let t = 0; t < 20; t++) part[t] = t < 10 ? 0 : 1;
  const miso = { group: g2, part, nInputs: Int32Array.from([2, 1]), weighting: ['uniform', 'uniform'] as op.Weighting[] };
  const outM = op.attention({ k: nativeKernels(), tape: null, bf16: new Bf16Weights() }, q, k, v, shape, miso);
  const ref = op.attention({ k: nativeKernels(), tape: null }, q, k, v, shape, miso);
  assert.deepEqual(outM.data, ref.data);
});
