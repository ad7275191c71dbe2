// Causal grouped-query attention: reference vs finite differences, native (every ISA) vs
// reference, KV-cache decoding consistency, the vectorized exp, and argument validation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../src/util/rng.js';
import { randArray, assertClose, checkGradFD, dot, isasToTest, withIsa } from './util.js';
import { refAttentionForward, refAttentionBackward } from '../src/tensor/reference/attention.js';
import { nativeKernels } from '../src/tensor/native.js';
import { native, numThreads, setNumThreads } from '../src/native.js';


interface Case { B: number; T: number; H: number; Hkv: number; D: number; scale?: number; mag?: number }

function makeInputs(c: Case, seed: number) {
  const rng = new Rng(seed);
  const mag = c.mag ?? 1;
  const q = randArray(rng, c.B * c.T * c.H * c.D, mag);
  const k = randArray(rng, c.B * c.T * c.Hkv * c.D, mag);
  const v = randArray(rng, c.B * c.T * c.Hkv * c.D);
  const dOut = randArray(rng, c.B * c.T * c.H * c.D);
  const scale = c.scale ?? 1 / Math.sqrt(c.D);
  return { q, k, v, dOut, scale };
}

test('reference attention backward matches central finite differences (q, k, v; GQA)', () => {
  for (const c of [
    { B: 1, T: 5, H: 4, Hkv: 2, D: 3, scale: 0.7 },
    { B: 2, T: 4, H: 2, Hkv: 1, D: 4 },
    { B: 1, T: 6, H: 3, Hkv: 3, D: 2, mag: 2 },
  ] as Case[]) {
    const { q, k, v, scale } = makeInputs(c, 11 + c.T);
    const rng = new Rng(5);
    const nO = c.B * c.T * c.H * c.D;
    const w = randArray(rng, nO);
    const out = new Float32Array(nO);
    const lse = new Float32Array(c.B * c.H * c.T);
    const L = (): number => {
      refAttentionForward(q, k, v, out, lse, c.B, c.T, c.T, c.H, c.Hkv, c.D, scale, 0);
      return dot(out, w);
    };
    L();
    const dq = new Float32Array(q.length);
    const dk = new Float32Array(k.length);
    const dv = new Float32Array(v.length);
    refAttentionBackward(q, k, v, out, lse, w, dq, dk, dv, c.B, c.T, c.H, c.Hkv, c.D, scale);
    const o = { samples: 16, eps: 1e-2, rtol: 1e-2, atol: 1e-3 };
    checkGradFD(L, q, dq, rng, { ...o, what: 'dq' });
    checkGradFD(L, k, dk, rng, { ...o, what: 'dk' });
    checkGradFD(L, v, dv, rng, { ...o, what: 'dv' });
  }
});

test('reference attention forward: first query copies v_0, lse of one key is its score', () => {
  const c: Case = { B: 1, T: 3, H: 2, Hkv: 1, D: 2 };
  const { q, k, v } = makeInputs(c, 3);
  const out = new Float32Array(c.T * c.H * c.D);
  const lse = new Float32Array(c.H * c.T);
  refAttentionForward(q, k, v, out, lse, 1, c.T, c.T, c.H, c.Hkv, c.D, 0.5, 0);
  for (let h = 0; h < c.H; h++) {
    assertClose(out.subarray(h * c.D, h * c.D + c.D), v.subarray(0, c.D), 1e-6, 1e-7, 'out row 0');
    const s = 0.5 * (q[h * c.D]! * k[0]! + q[h * c.D + 1]! * k[1]!);
    assertClose([lse[h * c.T]!], [s], 1e-6, 1e-7, 'lse row 0');
  }
});

const CASES: Case[] = [
  { B: 1, T: 1, H: 2, Hkv: 1, D: 8 },
  { B: 2, T: 2, H: 4, Hkv: 2, D: 16 },
  { B: 1, T: 7, H: 4, Hkv: 4, D: 64 },
  { B: 2, T: 63, H: 2, Hkv: 1, D: 8 },
  { B: 1, T: 64, H: 4, Hkv: 1, D: 16 },
  { B: 2, T: 65, H: 4, Hkv: 2, D: 64, scale: 0.3, mag: 2 },
  { B: 1, T: 130, H: 2, Hkv: 2, D: 128 },
  { B: 1, T: 200, H: 4, Hkv: 1, D: 10 },
  { B: 2, T: 33, H: 8, Hkv: 2, D: 6 },
  { B: 1, T: 17, H: 1, Hkv: 1, D: 1, mag: 3 },
  { B: 1, T: 129, H: 3, Hkv: 3, D: 33, mag: 3 },
];

test('native attention forward/backward == reference on every ISA path', () => {
  const nk = nativeKernels();
  CASES.forEach((c, ci) => {
    const { q, k, v, dOut, scale } = makeInputs(c, 100 + ci);
    const nO = c.B * c.T * c.H * c.D;
    const nL = c.B * c.H * c.T;
    const out = new Float32Array(nO);
    const lse = new Float32Array(nL);
    refAttentionForward(q, k, v, out, lse, c.B, c.T, c.T, c.H, c.Hkv, c.D, scale, 0);
    const dq = new Float32Array(q.length);
    const dk = new Float32Array(k.length);
    const dv = new Float32Array(v.length);
    refAttentionBackward(q, k, v, out, lse, dOut, dq, dk, dv, c.B, c.T, c.H, c.Hkv, c.D, scale);
    const gmax = (a: Float32Array) => a.reduce((m, x) => Math.max(m, Math.abs(x)), 0);
    for (const isa of isasToTest()) {
      withIsa(isa, () => {
        const tag = `${isa} B=${c.B} T=${c.T} H=${c.H}/${c.Hkv} D=${c.D}`;
        const o2 = new Float32Array(nO).fill(NaN);
        const l2 = new Float32Array(nL).fill(NaN);
        nk.attentionForward(q, k, v, o2, l2, c.B, c.T, c.T, c.H, c.Hkv, c.D, scale, 0);
        assertClose(o2, out, 2e-4, 2e-5, `${tag} out`);
        assertClose(l2, lse, 1e-5, 1e-5, `${tag} lse`);
        // Outputs are written, not accumulated: prefill with garbage.
        const dq2 = new Float32Array(q.length).fill(7);
        const dk2 = new Float32Array(k.length).fill(NaN);
        const dv2 = new Float32Array(v.length).fill(-3);
        nk.attentionBackward(q, k, v, out, lse, dOut, dq2, dk2, dv2, c.B, c.T, c.H, c.Hkv, c.D, scale);
        assertClose(dq2, dq, 1e-3, 1e-4 * Math.max(1, gmax(dq)), `${tag} dq`);
        assertClose(dk2, dk, 1e-3, 1e-4 * Math.max(1, gmax(dk)), `${tag} dk`);
        assertClose(dv2, dv, 1e-3, 1e-4 * Math.max(1, gmax(dv)), `${tag} dv`);
      });
    }
  });
});

test('backward: fused (per kv head) and split (per tile) work partitions agree with the reference', () => {
  const nk = nativeKernels();
  const saved = numThreads();
  try {
    for (const c of [
      { B: 1, T: 150, H: 2, Hkv: 1, D: 16 },
      { B: 2, T: 100, H: 4, Hkv: 2, D: 24 },
      { B: 1, T: 97, H: 3, Hkv: 3, D: 8 },
    ] as Case[]) {
      const { q, k, v, dOut, scale } = makeInputs(c, 900 + c.T);
      const out = new Float32Array(q.length);
      const lse = new Float32Array(c.B * c.H * c.T);
      refAttentionForward(q, k, v, out, lse, c.B, c.T, c.T, c.H, c.Hkv, c.D, scale, 0);
      const dq = new Float32Array(q.length), dk = new Float32Array(k.length), dv = new Float32Array(v.length);
      refAttentionBackward(q, k, v, out, lse, dOut, dq, dk, dv, c.B, c.T, c.H, c.Hkv, c.D, scale);
      // 1 thread: fused inline; 2 and 3 threads: fused or split depending on B*nKvHeads.
      for (const threads of [1, 2, 3]) {
        setNumThreads(threads);
        for (const isa of isasToTest()) {
          withIsa(isa, () => {
            const dq2 = new Float32Array(q.length), dk2 = new Float32Array(k.length), dv2 = new Float32Array(v.length);
            nk.attentionBackward(q, k, v, out, lse, dOut, dq2, dk2, dv2, c.B, c.T, c.H, c.Hkv, c.D, scale);
            const tag = `${isa} threads=${threads} B=${c.B} T=${c.T} H=${c.H}/${c.Hkv}`;
            assertClose(dq2, dq, 1e-3, 1e-4, `${tag} dq`);
            assertClose(dk2, dk, 1e-3, 1e-4, `${tag} dk`);
            assertClose(dv2, dv, 1e-3, 1e-4, `${tag} dv`);
          });
        }
      }
    }
  } finally {
    setNumThreads(saved);
  }
});

test('native forward with Tq < Tk (KV cache prompt chunk) == reference', () => {
  const nk = nativeKernels();
  for (const [B, Tq, Tk, H, Hkv, D, qOffset] of [
    [1, 1, 300, 4, 1, 64, 299],
    [2, 70, 150, 4, 2, 16, 80],
    [1, 3, 77, 2, 1, 10, 74], // few queries: the per-row (decode) path, odd D
    [2, 1, 65, 4, 4, 33, 64],
    [1, 5, 9, 2, 2, 8, 2], // qOffset + Tq < Tk: the keys after qOffset + Tq - 1 are never read
  ] as const) {
    const rng = new Rng(B * 1000 + Tq);
    const q = randArray(rng, B * Tq * H * D);
    const k = randArray(rng, B * Tk * Hkv * D);
    const v = randArray(rng, B * Tk * Hkv * D);
    const out = new Float32Array(B * Tq * H * D);
    const lse = new Float32Array(B * H * Tq);
    refAttentionForward(q, k, v, out, lse, B, Tq, Tk, H, Hkv, D, 0.25, qOffset);
    for (const isa of isasToTest()) {
      withIsa(isa, () => {
        const o2 = new Float32Array(out.length);
        const l2 = new Float32Array(lse.length);
        nk.attentionForward(q, k, v, o2, l2, B, Tq, Tk, H, Hkv, D, 0.25, qOffset);
        assertClose(o2, out, 2e-4, 2e-5, `${isa} Tq=${Tq} Tk=${Tk} out`);
        assertClose(l2, lse, 1e-5, 1e-5, `${isa} Tq=${Tq} Tk=${Tk} lse`);
      });
    }
  }
});

test('decoding consistency: full causal forward == row-by-row forward with qOffset', () => {
  const nk = nativeKernels();
  const T = 70, H = 4, Hkv = 2, D = 32;
  const rng = new Rng(77);
  const q = randArray(rng, T * H * D);
  const k = randArray(rng, T * Hkv * D);
  const v = randArray(rng, T * Hkv * D);
  const scale = 1 / Math.sqrt(D);
  for (const isa of isasToTest()) {
    withIsa(isa, () => {
      const out = new Float32Array(T * H * D);
      const lse = new Float32Array(H * T);
      nk.attentionForward(q, k, v, out, lse, 1, T, T, H, Hkv, D, scale, 0);
      const o1 = new Float32Array(H * D);
      const l1 = new Float32Array(H);
      for (let i = 0; i < T; i++) {
        const qi = q.subarray(i * H * D, (i + 1) * H * D);
        // Cache holding exactly i + 1 tokens.
        nk.attentionForward(qi, k.subarray(0, (i + 1) * Hkv * D), v.subarray(0, (i + 1) * Hkv * D), o1, l1, 1, 1, i + 1, H, Hkv, D, scale, i);
        assertClose(o1, out.subarray(i * H * D, (i + 1) * H * D), 1e-5, 1e-6, `${isa} row ${i}`);
        for (let h = 0; h < H; h++) assertClose([l1[h]!], [lse[h * T + i]!], 1e-6, 1e-6, `${isa} lse row ${i}`);
        // Preallocated cache of capacity T (later slots unread).
        nk.attentionForward(qi, k, v, o1, l1, 1, 1, T, H, Hkv, D, scale, i);
        assertClose(o1, out.subarray(i * H * D, (i + 1) * H * D), 1e-5, 1e-6, `${isa} row ${i} (capacity T)`);
      }
      // Prompt chunks of 25 tokens.
      for (let s = 0; s < T; s += 25) {
        const n = Math.min(25, T - s);
        const oc = new Float32Array(n * H * D);
        const lc = new Float32Array(H * n);
        nk.attentionForward(q.subarray(s * H * D, (s + n) * H * D), k.subarray(0, (s + n) * Hkv * D), v.subarray(0, (s + n) * Hkv * D),
          oc, lc, 1, n, s + n, H, Hkv, D, scale, s);
        assertClose(oc, out.subarray(s * H * D, (s + n) * H * D), 1e-5, 1e-6, `${isa} chunk at ${s}`);
      }
    });
  }
});

test('vectorized exp: relative error < 1e-6, very negative and -inf give 0, never NaN', () => {
  const xs: number[] = [-Infinity, -1e30, -1000, -104, -88, -87.5, 0, -0, 1e-8, -1e-8, 1, 10, 80];
  for (let x = -87; x <= 20; x += 0.001953125 * 3.1) xs.push(x);
  const x = Float32Array.from(xs);
  for (const isa of isasToTest()) {
    withIsa(isa, () => {
      const y = new Float32Array(x.length).fill(NaN);
      native()._attentionExp!(x, y);
      for (let i = 0; i < x.length; i++) {
        const xi = x[i]!;
        const yi = y[i]!;
        assert.ok(!Number.isNaN(yi), `${isa} exp(${xi}) is NaN`);
        if (xi < -87) assert.ok(yi >= 0 && yi < 2e-38, `${isa} exp(${xi}) = ${yi}`);
        else {
          const e = Math.exp(xi);
          assert.ok(Math.abs(yi - e) <= 1e-6 * e, `${isa} exp(${xi}) = ${yi}, want ${e} (rel ${Math.abs(yi - e) / e})`);
        }
      }
    });
  }
});

test('attention rejects bad arguments with TypeError', () => {
  const n = native();
  const B = 1, T = 4, H = 4, Hkv = 2, D = 8;
  const f = (len: number) => new Float32Array(len);
  const q = f(B * T * H * D), k = f(B * T * Hkv * D), v = f(B * T * Hkv * D), out = f(B * T * H * D), lse = f(B * H * T);
  const fwd = (over: Partial<Record<string, unknown>>) => {
    const a = { q, k, v, out, lse, B, Tq: T, Tk: T, H, Hkv, D, scale: 0.3, qOffset: 0, ...over };
    return () => n.attentionForward!(a.q, a.k, a.v, a.out, a.lse, a.B, a.Tq, a.Tk, a.H, a.Hkv, a.D, a.scale, a.qOffset);
  };
  fwd({})(); // valid
  for (const bad of [
    { H: 3 }, { Hkv: 3 }, { Tq: 5 }, { qOffset: 1 }, { Tq: 1, qOffset: 4 }, { qOffset: -1 }, { B: 0 }, { D: 0 }, { D: 1.5 },
    { Tk: 5 }, { B: 2 }, { q: f(10) }, { k: f(B * T * Hkv * D - 1) }, { v: new Float64Array(B * T * Hkv * D) },
    { out: [] }, { lse: f(B * H * T - 1) }, { scale: NaN }, { scale: Infinity }, { scale: '1' }, { B: 2 ** 40, Tq: 2 ** 20, Tk: 2 ** 20 },
  ]) {
    assert.throws(fwd(bad), TypeError, `forward ${JSON.stringify(bad)}`);
  }
  assert.throws(() => n.attentionForward!(q, k, v, out, lse, B, T, T, H, Hkv, D, 0.3), TypeError, 'missing qOffset');
  const bwd = (over: Partial<Record<string, unknown>>) => {
    const a = { q, k, v, out, lse, dOut: f(q.length), dq: f(q.length), dk: f(k.length), dv: f(v.length), B, T, H, Hkv, D, scale: 0.3, ...over };
    return () => n.attentionBackward!(a.q, a.k, a.v, a.out, a.lse, a.dOut, a.dq, a.dk, a.dv, a.B, a.T, a.H, a.Hkv, a.D, a.scale);
  };
  bwd({})();
  for (const bad of [
    { H: 6 }, { T: 5 }, { T: 0 }, { dq: f(3) }, { dk: f(k.length - 1) }, { dv: null }, { dOut: f(1) }, { lse: f(2) }, { scale: -Infinity },
  ]) {
    assert.throws(bwd(bad), TypeError, `backward ${JSON.stringify(bad)}`);
  }
  // The reference checks the same shapes.
  assert.throws(() => refAttentionForward(q, k, v, out, lse, B, T, T, 3, Hkv, D, 0.3, 0), TypeError);
  assert.throws(() => refAttentionForward(q, k, v, out, lse, B, T, T, H, Hkv, D, 0.3, 1), TypeError);
});
