// Layout-aware attention (docs/design.md §2): the five equivalences in forward and backward, native
// (every ISA path, both backward work partitions) against the reference, the reference against
// central finite differences, and layout validation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../src/util/rng.js';
import { randArray, assertClose, checkGradFD, dot, isasToTest, withIsa } from './util.js';
import { refAttentionForward, refAttentionBackward } from '../src/tensor/reference/attention.js';
import { refAttentionLayoutForward, refAttentionLayoutBackward } from '../src/tensor/reference/attention-layout.js';
import { nativeKernels } from '../src/tensor/native.js';
import { native, numThreads, setNumThreads } from '../src/native.js';
import type { Kernels } from '../src/tensor/kernels.js';


import { type Layout, type Spec, type W, buildLayout, randomRow, specLen } from './layouts.js';

interface Heads { H: number; Hkv: number; D: number; scale?: number; mag?: number }

function inputsFor(L: Layout, h: Heads, seed: number) {
  const rng = new Rng(seed);
  const mag = h.mag ?? 1;
  return {
    q: randArray(rng, L.B * L.T * h.H * h.D, mag),
    k: randArray(rng, L.B * L.T * h.Hkv * h.D, mag),
    v: randArray(rng, L.B * L.T * h.Hkv * h.D),
    dOut: randArray(rng, L.B * L.T * h.H * h.D),
    scale: h.scale ?? 1 / Math.sqrt(h.D),
  };
}

type X = ReturnType<typeof inputsFor>;

function fwd(kern: Kernels, L: Layout, h: Heads, x: X) {
  const out = new Float32Array(L.B * L.T * h.H * h.D).fill(NaN);
  const stats = new Float32Array(L.B * h.H * L.T * L.maxInputs).fill(NaN);
  kern.attentionLayoutForward(x.q, x.k, x.v, out, stats, L.B, L.T, h.H, h.Hkv, h.D, x.scale, L.group, L.part, L.nInputs, L.weighting, L.maxInputs);
  return { out, stats };
}

function bwd(kern: Kernels, L: Layout, h: Heads, x: X, out: Float32Array, stats: Float32Array, dOut = x.dOut) {
  const dq = new Float32Array(x.q.length).fill(7);
  const dk = new Float32Array(x.k.length).fill(NaN);
  const dv = new Float32Array(x.v.length).fill(-3);
  kern.attentionLayoutBackward(x.q, x.k, x.v, out, stats, dOut, dq, dk, dv, L.B, L.T, h.H, h.Hkv, h.D, x.scale,
    L.group, L.part, L.nInputs, L.weighting, L.maxInputs);
  return { dq, dk, dv };
}

const REF: Kernels = { attentionLayoutForward: refAttentionLayoutForward, attentionLayoutBackward: refAttentionLayoutBackward } as Kernels;
const gmax = (a: Float32Array): number => a.reduce((m, x) => Math.max(m, Math.abs(x)), 0);

function closeGrads(a: { dq: Float32Array; dk: Float32Array; dv: Float32Array }, b: { dq: Float32Array; dk: Float32Array; dv: Float32Array },
  tag: string, rtol = 1e-3): void {
  assertClose(a.dq, b.dq, rtol, 1e-4 * Math.max(1, gmax(b.dq)), `${tag} dq`);
  assertClose(a.dk, b.dk, rtol, 1e-4 * Math.max(1, gmax(b.dk)), `${tag} dk`);
  assertClose(a.dv, b.dv, rtol, 1e-4 * Math.max(1, gmax(b.dv)), `${tag} dv`);
}

/** Runs `check(kernels, tag)` for the reference and for native on every ISA path. */
function forAllKernels(check: (k: Kernels, tag: string) => void): void {
  check(REF, 'reference');
  const nk = nativeKernels();
  for (const isa of isasToTest()) withIsa(isa, () => check(nk, `native ${isa}`));
}

// Row slices: rows [t0, t0 + n) of row b of a [B*T, w] buffer.
function rowsOf(a: Float32Array, T: number, w: number, b: number, t0: number, n: number): Float32Array {
  return a.subarray((b * T + t0) * w, (b * T + t0 + n) * w);
}
function gather(a: Float32Array, T: number, w: number, b: number, ranges: Array<[number, number]>): Float32Array {
  const parts = ranges.map(([s, e]) => rowsOf(a, T, w, b, s, e - s));
  const out = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}
/** Adds rows of src (concatenation of `ranges` of row b) back into dst. */
function scatterAdd(dst: Float64Array, src: Float32Array, T: number, w: number, b: number, ranges: Array<[number, number]>): void {
  let o = 0;
  for (const [s, e] of ranges) {
    for (let x = 0; x < (e - s) * w; x++) dst[(b * T + s) * w + x] += src[o + x]!;
    o += (e - s) * w;
  }
}

// --- Equivalence 1: an n = 1 group is plain causal attention of its tokens. -----------------------

test('eq 1: a row holding one n = 1 group == the causal kernel (forward, stats, backward)', () => {
  for (const [T, h] of [
    [1, { H: 2, Hkv: 1, D: 6 }], [17, { H: 4, Hkv: 2, D: 16 }], [64, { H: 2, Hkv: 2, D: 64 }],
    [65, { H: 4, Hkv: 1, D: 16 }], [130, { H: 2, Hkv: 1, D: 6 }],
  ] as Array<[number, Heads]>) {
    const L = buildLayout([[{ len: T }], [{ len: T }]], T);
    const x = inputsFor(L, h, 10 + T);
    const out = new Float32Array(x.q.length);
    const lse = new Float32Array(L.B * h.H * T);
    refAttentionForward(x.q, x.k, x.v, out, lse, L.B, T, T, h.H, h.Hkv, h.D, x.scale, 0);
    const g = { dq: new Float32Array(x.q.length), dk: new Float32Array(x.k.length), dv: new Float32Array(x.v.length) };
    refAttentionBackward(x.q, x.k, x.v, out, lse, x.dOut, g.dq, g.dk, g.dv, L.B, T, h.H, h.Hkv, h.D, x.scale);
    forAllKernels((kern, tag) => {
      tag = `${tag} T=${T} D=${h.D}`;
      const r = fwd(kern, L, h, x);
      assertClose(r.out, out, 2e-4, 2e-5, `${tag} out`);
      assertClose(r.stats, lse, 1e-5, 1e-5, `${tag} stats`);
      closeGrads(bwd(kern, L, h, x, r.out, r.stats), g, tag);
    });
  }
});

// --- Equivalence 2: uniform MISO == mean of separate causal runs on [input_i ; output]. ---------

test('eq 2: uniform MISO output == (1/n) sum_i causal attention on [input_i ; output] (forward and backward)', () => {
  const cases: Array<{ inputs: number[]; out: number; h: Heads; pre: number }> = [
    { inputs: [3, 5], out: 4, h: { H: 2, Hkv: 1, D: 6 }, pre: 0 },
    { inputs: [1, 17, 2], out: 65, h: { H: 2, Hkv: 2, D: 16 }, pre: 5 },
    { inputs: [64, 63, 65, 1], out: 70, h: { H: 4, Hkv: 2, D: 16 }, pre: 0 },
    { inputs: [20, 9, 33, 12, 7], out: 1, h: { H: 2, Hkv: 1, D: 64 }, pre: 3 },
    { inputs: [40, 1], out: 130, h: { H: 1, Hkv: 1, D: 6, mag: 3 }, pre: 60 },
  ];
  cases.forEach((c, ci) => {
    const n = c.inputs.length;
    const len = specLen({ inputs: c.inputs, out: c.out, w: 'uniform' });
    const T = c.pre + len + 3;
    // Row 0: [causal prefix group][MISO group][padding]; row 1: the same MISO group at offset 0.
    const L = buildLayout([c.pre ? [{ len: c.pre }, { inputs: c.inputs, out: c.out, w: 'uniform' }] : [{ inputs: c.inputs, out: c.out, w: 'uniform' }],
      [{ inputs: c.inputs, out: c.out, w: 'uniform' }]], T);
    const { H, Hkv, D } = c.h;
    const x = inputsFor(L, c.h, 200 + ci);
    // Oracle: causal runs (reference causal kernel) on [input_i ; output] for each row's group.
    const wq = H * D, wk = Hkv * D;
    const oOut = new Float64Array(x.q.length);
    const gq = new Float64Array(x.q.length), gk = new Float64Array(x.k.length), gv = new Float64Array(x.v.length);
    for (let b = 0; b < 2; b++) {
      const g0 = b === 0 ? c.pre : 0;
      let s = g0;
      const inR: Array<[number, number]> = c.inputs.map((l) => [s, (s += l)] as [number, number]);
      const outR: [number, number] = [s, s + c.out];
      for (let i = 0; i < n; i++) {
        const ranges = [inR[i]!, outR];
        const Tn = c.inputs[i]! + c.out;
        const q = gather(x.q, T, wq, b, ranges), k = gather(x.k, T, wk, b, ranges), v = gather(x.v, T, wk, b, ranges);
        const o = new Float32Array(q.length), lse = new Float32Array(H * Tn);
        refAttentionForward(q, k, v, o, lse, 1, Tn, Tn, H, Hkv, D, x.scale, 0);
        // Loss weights: the layout's dOut on input rows, dOut / n on output rows.
        const dO = gather(x.dOut, T, wq, b, ranges);
        for (let r = c.inputs[i]! * wq; r < Tn * wq; r++) dO[r] /= n;
        const dq = new Float32Array(q.length), dk = new Float32Array(k.length), dv = new Float32Array(v.length);
        refAttentionBackward(q, k, v, o, lse, dO, dq, dk, dv, 1, Tn, H, Hkv, D, x.scale);
        for (let r = c.inputs[i]! * wq; r < Tn * wq; r++) o[r] /= n; // output rows contribute A_i / n
        scatterAdd(oOut, o, T, wq, b, ranges);
        scatterAdd(gq, dq, T, wq, b, ranges);
        scatterAdd(gk, dk, T, wk, b, ranges);
        scatterAdd(gv, dv, T, wk, b, ranges);
      }
    }
    forAllKernels((kern, tag) => {
      tag = `${tag} inputs=${c.inputs} out=${c.out}`;
      const r = fwd(kern, L, c.h, x);
      const g = bwd(kern, L, c.h, x, r.out, r.stats);
      for (let b = 0; b < 2; b++) {
        const s0 = b === 0 ? c.pre : 0;
        const sl = (a: ArrayLike<number> & { subarray?: unknown }, w: number): number[] =>
          Array.from((a as Float32Array).subarray((b * T + s0) * w, (b * T + s0 + len) * w));
        assertClose(sl(r.out, wq), sl(oOut as unknown as Float32Array, wq), 2e-4, 2e-5, `${tag} row ${b} out`);
        const m = Math.max(1, gmax(g.dq), gmax(g.dk), gmax(g.dv));
        assertClose(sl(g.dq, wq), sl(gq as unknown as Float32Array, wq), 1e-3, 1e-4 * m, `${tag} row ${b} dq`);
        assertClose(sl(g.dk, wk), sl(gk as unknown as Float32Array, wk), 1e-3, 1e-4 * m, `${tag} row ${b} dk`);
        assertClose(sl(g.dv, wk), sl(gv as unknown as Float32Array, wk), 1e-3, 1e-4 * m, `${tag} row ${b} dv`);
      }
    });
  });
});

// --- Equivalence 3: fid / vanilla == one masked softmax (+log n on output keys for fid). --------

/**
 * Dense fp64 masked softmax attention on one row (the test's own oracle): bias(i, j) is the
 * logit bias of key j for query i, or null when j is invisible to i. Returns out and the
 * gradients of sum(out * dOut).
 */
function denseAttention(q: Float32Array, k: Float32Array, v: Float32Array, dOut: Float32Array, T: number, h: Heads, scale: number,
  bias: (i: number, j: number) => number | null) {
  const { H, Hkv, D } = h;
  const out = new Float64Array(T * H * D), dq = new Float64Array(q.length), dk = new Float64Array(k.length), dv = new Float64Array(v.length);
  for (let hh = 0; hh < H; hh++) {
    const kh = Math.floor(hh / (H / Hkv));
    for (let i = 0; i < T; i++) {
      const qi = i * H * D + hh * D;
      const s = new Float64Array(T).fill(-Infinity);
      for (let j = 0; j < T; j++) {
        const bj = bias(i, j);
        if (bj === null) continue;
        let d = 0;
        for (let c = 0; c < D; c++) d += q[qi + c]! * k[j * Hkv * D + kh * D + c]!;
        s[j] = scale * d + bj;
      }
      const mx = Math.max(...s);
      const p = s.map((x) => Math.exp(x - mx));
      const z = p.reduce((a, x) => a + x, 0);
      for (let j = 0; j < T; j++) p[j]! /= z;
      for (let j = 0; j < T; j++) for (let c = 0; c < D; c++) out[qi + c] += p[j]! * v[j * Hkv * D + kh * D + c]!;
      let di = 0;
      for (let c = 0; c < D; c++) di += dOut[qi + c]! * out[qi + c]!;
      for (let j = 0; j < T; j++) {
        if (p[j] === 0) continue;
        const kj = j * Hkv * D + kh * D;
        let dp = 0;
        for (let c = 0; c < D; c++) dp += dOut[qi + c]! * v[kj + c]!;
        const ds = p[j]! * (dp - di);
        for (let c = 0; c < D; c++) {
          dv[kj + c] += p[j]! * dOut[qi + c]!;
          dq[qi + c] += scale * ds * k[kj + c]!;
          dk[kj + c] += scale * ds * q[qi + c]!;
        }
      }
    }
  }
  const f = (a: Float64Array) => Float32Array.from(a);
  return { out: f(out), g: { dq: f(dq), dk: f(dk), dv: f(dv) } };
}

test('eq 3: fid == softmax over [inputs ; output] with +log n on output keys and input-to-input blocking; vanilla == no bias', () => {
  for (const [ci, c] of ([
    { inputs: [3, 1, 4], out: 5, h: { H: 2, Hkv: 1, D: 6 } },
    { inputs: [17, 2], out: 65, h: { H: 2, Hkv: 2, D: 16 } },
    { inputs: [63, 64, 65, 5, 1], out: 20, h: { H: 2, Hkv: 1, D: 16, mag: 2 } },
  ] as Array<{ inputs: number[]; out: number; h: Heads }>).entries()) {
    for (const w of ['fid', 'vanilla'] as W[]) {
      const n = c.inputs.length;
      const T = specLen({ inputs: c.inputs, out: c.out, w }) + 2; // + padding
      const L = buildLayout([[{ inputs: c.inputs, out: c.out, w }]], T);
      const x = inputsFor(L, c.h, 300 + ci);
      const partOf = (t: number) => L.part[t]!, grp = (t: number) => L.group[t]!;
      const { out, g } = denseAttention(x.q, x.k, x.v, x.dOut, T, c.h, x.scale, (i, j) => {
        if (j > i && !(partOf(i) === -1 && partOf(j) >= 0)) return null; // causal, except output queries see every input key
        if (grp(i) !== grp(j)) return null;
        if (partOf(i) >= 0 && partOf(j) !== partOf(i)) return null; // inputs see only themselves
        return partOf(i) === -1 && partOf(j) === -1 && w === 'fid' && grp(i) === 0 ? Math.log(n) : 0;
      });
      forAllKernels((kern, tag) => {
        tag = `${tag} ${w} inputs=${c.inputs} out=${c.out}`;
        const r = fwd(kern, L, c.h, x);
        assertClose(r.out, out, 2e-4, 2e-5, `${tag} out`);
        closeGrads(bwd(kern, L, c.h, x, r.out, r.stats), g, tag);
      });
    }
  }
});

// --- Equivalence 4: packing. -------------------------------------------------------------------

test('eq 4: a packed row == each group alone (outputs and gradients per token)', () => {
  const h: Heads = { H: 4, Hkv: 2, D: 16 };
  const groups: Spec[] = [
    { len: 1 }, { inputs: [5, 17], out: 9, w: 'uniform' }, { len: 2 }, { inputs: [1, 3, 2], out: 4, w: 'fid' },
    { len: 63 }, { inputs: [6, 7], out: 8, w: 'vanilla' }, { len: 65 }, { inputs: [30, 40, 2], out: 50, w: 'uniform' }, { len: 17 },
  ];
  const T = groups.reduce((a, s) => a + specLen(s), 0) + 11;
  const L = buildLayout([groups], T);
  const x = inputsFor(L, h, 400);
  const wq = h.H * h.D, wk = h.Hkv * h.D;
  forAllKernels((kern, tag) => {
    const r = fwd(kern, L, h, x);
    const g = bwd(kern, L, h, x, r.out, r.stats);
    for (const [start, s] of L.spans[0]!) {
      const len = specLen(s);
      const A = buildLayout([[s]], len);
      const xa: X = {
        q: rowsOf(x.q, T, wq, 0, start, len).slice(), k: rowsOf(x.k, T, wk, 0, start, len).slice(),
        v: rowsOf(x.v, T, wk, 0, start, len).slice(), dOut: rowsOf(x.dOut, T, wq, 0, start, len).slice(), scale: x.scale,
      };
      const ra = fwd(kern, A, h, xa);
      const ga = bwd(kern, A, h, xa, ra.out, ra.stats);
      const t2 = `${tag} group at ${start} (${JSON.stringify(s)})`;
      assertClose(rowsOf(r.out, T, wq, 0, start, len), ra.out, 1e-5, 1e-6, `${t2} out`);
      assertClose(rowsOf(g.dq, T, wq, 0, start, len), ga.dq, 1e-4, 1e-5, `${t2} dq`);
      assertClose(rowsOf(g.dk, T, wk, 0, start, len), ga.dk, 1e-4, 1e-5, `${t2} dk`);
      assertClose(rowsOf(g.dv, T, wk, 0, start, len), ga.dv, 1e-4, 1e-5, `${t2} dv`);
    }
  });
});

// --- Equivalence 5: native == reference, all layouts, every ISA, both backward partitions. ---------

const RANDOM_CASES: Array<{ B: number; T: number; h: Heads; maxN: number }> = [
  { B: 2, T: 37, h: { H: 2, Hkv: 1, D: 6 }, maxN: 3 },
  { B: 1, T: 129, h: { H: 4, Hkv: 2, D: 16 }, maxN: 5 },
  { B: 2, T: 200, h: { H: 2, Hkv: 2, D: 64, scale: 0.2, mag: 2 }, maxN: 4 },
  { B: 3, T: 90, h: { H: 3, Hkv: 1, D: 33 }, maxN: 5 },
];

test('eq 5: native == reference on random packed/MISO layouts, every ISA path, forward + stats + backward', () => {
  const nk = nativeKernels();
  RANDOM_CASES.forEach((c, ci) => {
    const rng = new Rng(500 + ci);
    const L = buildLayout(Array.from({ length: c.B }, () => randomRow(rng, c.T, c.maxN)), c.T);
    const x = inputsFor(L, c.h, 600 + ci);
    const ref = fwd(REF, L, c.h, x);
    const rg = bwd(REF, L, c.h, x, ref.out, ref.stats);
    for (const isa of isasToTest()) {
      withIsa(isa, () => {
        const tag = `${isa} case ${ci}`;
        const r = fwd(nk, L, c.h, x);
        assertClose(r.out, ref.out, 2e-4, 2e-5, `${tag} out`);
        assertClose(r.stats, ref.stats, 1e-5, 1e-5, `${tag} stats`);
        closeGrads(bwd(nk, L, c.h, x, ref.out, ref.stats), rg, tag);
      });
    }
  });
});

test('eq 5: backward work partitions (fused per kv head, split per tile) and thread counts agree with the reference', () => {
  const nk = nativeKernels();
  const saved = numThreads();
  try {
    for (const [ci, c] of ([
      { B: 1, T: 150, h: { H: 2, Hkv: 1, D: 16 }, maxN: 4 },
      { B: 2, T: 100, h: { H: 4, Hkv: 2, D: 24 }, maxN: 3 },
      { B: 1, T: 97, h: { H: 3, Hkv: 3, D: 8 }, maxN: 5 },
    ] as typeof RANDOM_CASES).entries()) {
      const rng = new Rng(700 + ci);
      // Row 0 of every case holds a big uniform group so the split dk/dv tasks see kind-1 tiles.
      const rows = Array.from({ length: c.B }, (_, b) =>
        b === 0 ? [{ inputs: [20, 33, 1], out: c.T - 60, w: 'uniform' } as Spec] : randomRow(rng, c.T, c.maxN));
      const L = buildLayout(rows, c.T);
      const x = inputsFor(L, c.h, 800 + ci);
      const ref = fwd(REF, L, c.h, x);
      const rg = bwd(REF, L, c.h, x, ref.out, ref.stats);
      for (const threads of [1, 2, 3]) {
        setNumThreads(threads);
        for (const isa of isasToTest()) {
          withIsa(isa, () => {
            const tag = `${isa} threads=${threads} case ${ci}`;
            const r = fwd(nk, L, c.h, x);
            assertClose(r.out, ref.out, 2e-4, 2e-5, `${tag} out`);
            const g = bwd(nk, L, c.h, x, ref.out, ref.stats);
            closeGrads(g, rg, tag);
            // Deterministic: the same call gives bit-identical gradients.
            const g2 = bwd(nk, L, c.h, x, ref.out, ref.stats);
            assert.deepEqual(g2.dk, g.dk, `${tag} dk not deterministic`);
            assert.deepEqual(g2.dq, g.dq, `${tag} dq not deterministic`);
          });
        }
      }
    }
  } finally {
    setNumThreads(saved);
  }
});

test('reference layout backward matches central finite differences (uniform, fid, vanilla, GQA, packed)', () => {
  for (const [ci, c] of ([
    { rows: [[{ inputs: [2, 3, 1], out: 3, w: 'uniform' }, { len: 2 }]], T: 12, h: { H: 4, Hkv: 2, D: 3, scale: 0.7 } },
    { rows: [[{ inputs: [3, 2], out: 4, w: 'fid' }], [{ inputs: [1, 1, 2], out: 2, w: 'vanilla' }, { len: 3 }]], T: 9, h: { H: 2, Hkv: 1, D: 4 } },
    { rows: [[{ len: 3 }, { inputs: [2, 4], out: 3, w: 'uniform' }]], T: 13, h: { H: 3, Hkv: 3, D: 2, mag: 2 } },
  ] as Array<{ rows: Spec[][]; T: number; h: Heads }>).entries()) {
    const L = buildLayout(c.rows, c.T);
    const x = inputsFor(L, c.h, 900 + ci);
    const rng = new Rng(5 + ci);
    const w = randArray(rng, x.q.length);
    let last = fwd(REF, L, c.h, x);
    const f = (): number => {
      last = fwd(REF, L, c.h, x);
      return dot(last.out, w);
    };
    f();
    const g = bwd(REF, L, c.h, x, last.out, last.stats, w);
    const o = { samples: 20, eps: 1e-2, rtol: 1e-2, atol: 1e-3 };
    checkGradFD(f, x.q, g.dq, rng, { ...o, what: `case ${ci} dq` });
    checkGradFD(f, x.k, g.dk, rng, { ...o, what: `case ${ci} dk` });
    checkGradFD(f, x.v, g.dv, rng, { ...o, what: `case ${ci} dv` });
  }
});

test('stats layout: slot i = log Z_i for uniform output queries, slot 0 = lse otherwise, unused slots 0', () => {
  const h: Heads = { H: 1, Hkv: 1, D: 4 };
  const L = buildLayout([[{ inputs: [2, 3], out: 2, w: 'uniform' }, { inputs: [1, 1, 1], out: 1, w: 'fid' }]], 11);
  const x = inputsFor(L, h, 1);
  forAllKernels((kern, tag) => {
    const { stats } = fwd(kern, L, h, x);
    const M = L.maxInputs;
    assert.equal(M, 3);
    const score = (i: number, j: number) => x.scale * dot(x.q.subarray(i * 4, i * 4 + 4), x.k.subarray(j * 4, j * 4 + 4));
    const lse = (i: number, keys: number[], b: (j: number) => number = () => 0) => Math.log(keys.reduce((a, j) => a + Math.exp(score(i, j) + b(j)), 0));
    // Input query 3 (input 1 = tokens 2..4): causal over 2..3.
    assertClose(Array.from(stats.subarray(3 * M, 4 * M)), [lse(3, [2, 3]), 0, 0], 1e-5, 1e-6, `${tag} input query`);
    // Output query 6 of the uniform group: log Z_0 over {0,1,5,6}, log Z_1 over {2,3,4,5,6}.
    assertClose(Array.from(stats.subarray(6 * M, 7 * M)), [lse(6, [0, 1, 5, 6]), lse(6, [2, 3, 4, 5, 6]), 0], 1e-5, 1e-6, `${tag} uniform output`);
    // Output query 10 of the fid group (tokens 7..10): lse over all with +log 3 on key 10.
    assertClose(Array.from(stats.subarray(10 * M, 11 * M)), [lse(10, [7, 8, 9, 10], (j) => (j === 10 ? Math.log(3) : 0)), 0, 0], 1e-5, 1e-6, `${tag} fid output`);
  });
});

// --- Validation. ----------------------------------------------------------------------------------

test('bad layouts and arguments are rejected with TypeError (native and reference)', () => {
  const n = native();
  const B = 1, T = 6, H = 2, Hkv = 1, D = 4;
  const f = (len: number) => new Float32Array(len);
  const q = f(B * T * H * D), k = f(B * T * Hkv * D), v = f(B * T * Hkv * D), out = f(B * T * H * D);
  const good = {
    group: Int32Array.from([0, 0, 0, 0, 0, 1]), part: Int32Array.from([0, 1, 1, -1, -1, 0]),
    nInputs: Int32Array.from([2, 1]), weighting: Int32Array.from([0, 2]), M: 2,
  };
  type A = typeof good & { stats?: Float32Array; q?: unknown; H?: number; B?: number; scale?: number };
  const call = (kern: Pick<Kernels, 'attentionLayoutForward' | 'attentionLayoutBackward'>, which: 'fwd' | 'bwd', over: Partial<A>) => {
    const a: A = { ...good, ...over };
    const stats = a.stats ?? f(B * H * T * a.M);
    const hh = a.H ?? H, bb = a.B ?? B, sc = a.scale ?? 0.5;
    const qq = (a.q ?? q) as Float32Array;
    return () => (which === 'fwd'
      ? kern.attentionLayoutForward(qq, k, v, out, stats, bb, T, hh, Hkv, D, sc, a.group, a.part, a.nInputs, a.weighting, a.M)
      : kern.attentionLayoutBackward(qq, k, v, out, stats, f(out.length), f(q.length), f(k.length), f(v.length), bb, T, hh, Hkv, D, sc,
        a.group, a.part, a.nInputs, a.weighting, a.M));
  };
  const nat = {
    attentionLayoutForward: (...args: unknown[]) => n.attentionLayoutForward!(...args),
    attentionLayoutBackward: (...args: unknown[]) => n.attentionLayoutBackward!(...args),
  } as unknown as Kernels;
  for (const kern of [nat, REF]) {
    call(kern, 'fwd', {})();
    call(kern, 'bwd', {})();
    const bads: Array<[string, Partial<A>]> = [
      ['group not contiguous', { group: Int32Array.from([0, 0, 1, 0, 0, 1]), nInputs: Int32Array.from([2, 1]) }],
      ['group id reused after another group', { group: Int32Array.from([0, 0, 0, 0, 1, 0]) }],
      ['group id >= nInputs.length', { group: Int32Array.from([0, 0, 0, 0, 0, 2]) }],
      ['negative group id', { group: Int32Array.from([0, 0, 0, 0, 0, -1]) }],
      ['part >= nInputs', { part: Int32Array.from([0, 1, 2, -1, -1, 0]) }],
      ['output part before an input part', { part: Int32Array.from([-1, 0, 1, -1, -1, 0]) }],
      ['output part between inputs', { part: Int32Array.from([0, -1, 1, -1, -1, 0]) }],
      ['input parts out of order', { part: Int32Array.from([1, 0, 0, -1, -1, 0]) }],
      ['input part skipped', { part: Int32Array.from([0, 0, 0, -1, -1, 0]) }],
      ['missing last input', { nInputs: Int32Array.from([3, 1]), M: 3 }],
      ['input after output', { part: Int32Array.from([0, 1, -1, 1, -1, 0]) }],
      ['part < -1', { part: Int32Array.from([0, 1, 1, -1, -2, 0]) }],
      ['n = 1 group with part 1', { part: Int32Array.from([0, 1, 1, -1, -1, 1]) }],
      ['weighting code 3', { weighting: Int32Array.from([3, 0]) }],
      ['weighting code -1', { weighting: Int32Array.from([0, -1]) }],
      ['weighting too short', { weighting: Int32Array.from([0]) }],
      ['nInputs 0', { nInputs: Int32Array.from([2, 0]) }],
      ['maxInputs < nInputs', { M: 1 }],
      ['maxInputs 0', { M: 0 }],
      ['stats too short', { stats: f(B * H * T * 2 - 1) }],
      ['group too short', { group: Int32Array.from([0, 0, 0, 0, 0]) }],
      ['part too short', { part: Int32Array.from([0, 1, 1, -1, -1]) }],
      ['group is Float32Array', { group: new Float32Array(6) as unknown as typeof good.group }],
      ['nInputs is not an array', { nInputs: [2, 1] as unknown as typeof good.group }],
      ['nHeads not a multiple', { H: 3 }],
      ['B too large for the arrays', { B: 2 }],
      ['q too short', { q: f(3) }],
      ['scale NaN', { scale: NaN }],
    ];
    for (const [what, bad] of bads) {
      for (const which of ['fwd', 'bwd'] as const) {
        assert.throws(call(kern, which, bad), TypeError, `${kern === REF ? 'reference' : 'native'} ${which}: ${what}`);
      }
    }
  }
});
