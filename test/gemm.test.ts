// GEMM: native (every ISA path) vs the fp64 reference, transposes, alpha/beta, odd shapes,
// shapes crossing the cache blocks, views, threading, argument validation; FMA peak sanity.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../src/util/rng.js';
import { native, bestIsa, setIsa, numThreads, setNumThreads, type Isa } from '../src/native.js';
import { refGemm } from '../src/tensor/reference/gemm.js';
import { randArray, assertClose, ISAS } from './util.js';

const addon = native();
const best = bestIsa();
const isas: Isa[] = ISAS.filter((i) => ISAS.indexOf(i) >= ISAS.indexOf(best));
const TRANS: [boolean, boolean][] = [[false, false], [false, true], [true, false], [true, true]];

function tol(K: number, alpha = 1): { rtol: number; atol: number } {
  return { rtol: 2e-5 * Math.sqrt(K + 1) + 1e-5, atol: (2e-6 * (K + 1) + 1e-6) * Math.max(1, Math.abs(alpha)) };
}

interface Case {
  M: number;
  N: number;
  K: number;
  ta: boolean;
  tb: boolean;
  alpha: number;
  beta: number;
  A: Float32Array;
  B: Float32Array;
  C0: Float32Array;
  want: Float32Array;
}

function makeCase(rng: Rng, M: number, N: number, K: number, ta: boolean, tb: boolean, alpha: number, beta: number): Case {
  const A = randArray(rng, M * K);
  const B = randArray(rng, K * N);
  const C0 = beta === 0 ? new Float32Array(M * N).fill(NaN) : randArray(rng, M * N);
  const want = C0.slice();
  refGemm(ta, tb, M, N, K, alpha, A, B, beta, want);
  return { M, N, K, ta, tb, alpha, beta, A, B, C0, want };
}

function checkNative(c: Case, what: string): void {
  const got = c.C0.slice();
  addon.gemm(c.ta, c.tb, c.M, c.N, c.K, c.alpha, c.A, c.B, c.beta, got);
  const t = tol(c.K, c.alpha);
  assertClose(got, c.want, t.rtol, t.atol, `${what} M=${c.M} N=${c.N} K=${c.K} ta=${c.ta} tb=${c.tb} alpha=${c.alpha} beta=${c.beta}`);
}

function withIsas(fn: (isa: Isa) => void): void {
  try {
    for (const isa of isas) {
      setIsa(isa);
      fn(isa);
    }
  } finally {
    setIsa(best);
  }
}

test('refGemm matches hand-computed products for all transposes', () => {
  // op(A) = [[1,2,3],[4,5,6]] (2x3), op(B) = [[1,0],[0,1],[2,-1]] (3x2): op(A)op(B) = [[7,-1],[16,-1]]
  const a = [1, 2, 3, 4, 5, 6];
  const aT = [1, 4, 2, 5, 3, 6];
  const b = [1, 0, 0, 1, 2, -1];
  const bT = [1, 0, 2, 0, 1, -1];
  for (const [ta, tb] of TRANS) {
    const C = new Float32Array([1, 1, 1, 1]);
    refGemm(ta, tb, 2, 2, 3, 2, new Float32Array(ta ? aT : a), new Float32Array(tb ? bT : b), 0.5, C);
    assert.deepEqual([...C], [14.5, -1.5, 32.5, -1.5]);
  }
  const C = new Float32Array([NaN, NaN]);
  refGemm(false, false, 1, 2, 0, 1, new Float32Array(0), new Float32Array(0), 0, C);
  assert.deepEqual([...C], [0, 0]);
});

test('native gemm == reference: odd, tiny, GEMV and block-crossing shapes, all transposes, alpha/beta, every ISA', () => {
  const rng = new Rng(7);
  const shapes: [number, number, number][] = [
    [1, 1, 1], [2, 3, 1], [3, 2, 5], [1, 129, 300], [129, 1, 300], [1, 300, 301], [301, 1, 300],
    [1, 37, 70], [45, 1, 33], [17, 63, 3], [14, 32, 256], [15, 33, 257], [67, 33, 1025], [29, 97, 64], [64, 64, 64], [600, 7, 31],
  ];
  const ab: [number, number][] = [[1, 0], [1, 1], [-0.75, 0.5]];
  const cases: Case[] = [];
  for (const [M, N, K] of shapes) for (const [ta, tb] of TRANS) for (const [alpha, beta] of ab) cases.push(makeCase(rng, M, N, K, ta, tb, alpha, beta));
  withIsas((isa) => {
    for (const c of cases) checkNative(c, isa);
  });
});

test('native gemm == reference on a 300x520x260 problem (crosses KC/NC blocks, threaded)', () => {
  const rng = new Rng(11);
  for (const [ta, tb] of TRANS) {
    const c = makeCase(rng, 300, 520, 260, ta, tb, 1, ta === tb ? 0 : 1);
    withIsas((isa) => checkNative(c, isa));
  }
});

test('skinny products (a LoRA rank wide: x·Aᵀ, dY·B, dYᵀ·t, dtᵀ·x) == reference and == the packed path, every ISA', () => {
  // N or M up to 2 vectors / 32 with the other side and K large take gemm_skinny (unpacked big
  // operand, blocks of rows or of vector-wide columns, a padded last block, scalar chunks).
  const rng = new Rng(17);
  const shapes: [number, number, number][] = [
    [512, 16, 96], [200, 7, 40], [150, 3, 40], [131, 17, 33], [97, 24, 300], [300, 32, 64], [65, 33, 20], [64, 1, 16],
    [16, 300, 50], [5, 131, 64], [32, 77, 29], [13, 64, 16], [200, 16, 15],
  ];
  const cases: Case[] = [];
  for (const [M, N, K] of shapes) for (const [ta, tb] of TRANS) for (const [alpha, beta] of [[1, 0], [-0.75, 0.5]] as [number, number][])
    cases.push(makeCase(rng, M, N, K, ta, tb, alpha, beta));
  const saved = addon.gemmBlocking() as { kc: number; mc: number; nc: number; tilesPerThread: number; skinny: boolean };
  assert.equal(saved.skinny, true, 'skinny products take their own path by default');
  try {
    withIsas((isa) => {
      for (const c of cases) {
        checkNative(c, `${isa} skinny`);
        addon.gemmBlocking(saved.kc, saved.mc, saved.nc, saved.tilesPerThread, false);
        checkNative(c, `${isa} packed`);
        addon.gemmBlocking(saved.kc, saved.mc, saved.nc, saved.tilesPerThread, true);
      }
    });
    // single-threaded too (blocks run in one call)
    const threads = numThreads();
    setNumThreads(1);
    try {
      for (const c of cases.slice(0, 16)) checkNative(c, 'skinny 1 thread');
    } finally {
      setNumThreads(threads);
    }
  } finally {
    addon.gemmBlocking(saved.kc, saved.mc, saved.nc, saved.tilesPerThread, true);
  }
});

test('native gemm with tiny cache blocks exercises multi-block packing and edge tiles', () => {
  const saved = addon.gemmBlocking() as { kc: number; mc: number; nc: number };
  const rng = new Rng(13);
  const cases: Case[] = [];
  for (const [M, N, K] of [[45, 70, 37], [100, 33, 50], [31, 130, 17]] as [number, number, number][])
    for (const [ta, tb] of TRANS) cases.push(makeCase(rng, M, N, K, ta, tb, 1.25, 0.5));
  try {
    withIsas((isa) => {
      for (const [kc, mc, nc] of [[8, 1, 1], [16, 28, 64], [5, 50, 40]]) {
        addon.gemmBlocking(kc, mc, nc);
        for (const c of cases) checkNative(c, `${isa} kc=${kc} mc=${mc} nc=${nc}`);
      }
    });
  } finally {
    addon.gemmBlocking(saved.kc, saved.mc, saved.nc);
  }
  assert.deepEqual(addon.gemmBlocking().kc, saved.kc);
});

test('K = 0, alpha = 0 and empty outputs: C = beta * C, NaN in C is overwritten when beta = 0', () => {
  withIsas(() => {
    const C = new Float32Array([NaN, 2, 3, NaN]);
    addon.gemm(false, false, 2, 2, 0, 1, new Float32Array(0), new Float32Array(0), 0, C);
    assert.deepEqual([...C], [0, 0, 0, 0]);
    const D = new Float32Array([1, 2, 3, 4]);
    addon.gemm(true, true, 2, 2, 0, 1, new Float32Array(0), new Float32Array(0), 0.5, D);
    assert.deepEqual([...D], [0.5, 1, 1.5, 2]);
    const E = new Float32Array([1, 2, 3, 4]);
    addon.gemm(false, true, 2, 2, 3, 0, new Float32Array(6).fill(NaN), new Float32Array(6), 2, E);
    assert.deepEqual([...E], [2, 4, 6, 8]);
    addon.gemm(false, false, 0, 5, 3, 1, new Float32Array(0), new Float32Array(15), 0, new Float32Array(0));
    addon.gemm(false, false, 5, 0, 3, 1, new Float32Array(15), new Float32Array(0), 0, new Float32Array(0));
  });
});

test('subarray views with nonzero byteOffset are read and written in place only', () => {
  const rng = new Rng(17);
  const M = 37, N = 45, K = 29;
  for (const [ta, tb] of TRANS) {
    const c = makeCase(rng, M, N, K, ta, tb, 1, 0.5);
    const bigA = randArray(rng, M * K + 7);
    bigA.set(c.A, 3);
    const bigB = randArray(rng, K * N + 9);
    bigB.set(c.B, 5);
    const bigC = randArray(rng, M * N + 13);
    bigC.set(c.C0, 6);
    const before = bigC.slice();
    withIsas((isa) => {
      bigC.set(before);
      addon.gemm(ta, tb, M, N, K, 1, bigA.subarray(3, 3 + M * K), bigB.subarray(5, 5 + K * N), 0.5, bigC.subarray(6, 6 + M * N));
      const t = tol(K);
      assertClose(bigC.subarray(6, 6 + M * N), c.want, t.rtol, t.atol, `${isa} view`);
      assert.deepEqual([...bigC.subarray(0, 6)], [...before.subarray(0, 6)]);
      assert.deepEqual([...bigC.subarray(6 + M * N)], [...before.subarray(6 + M * N)]);
    });
  }
});

test('multi-threaded result equals the single-threaded one', () => {
  const threads = numThreads();
  const rng = new Rng(19);
  const shapes: [number, number, number][] = [[200, 300, 150], [1, 2000, 300], [2000, 1, 300], [3, 700, 200]];
  try {
    for (const [M, N, K] of shapes) {
      for (const [ta, tb] of TRANS) {
        const A = randArray(rng, M * K);
        const B = randArray(rng, K * N);
        const C1 = new Float32Array(M * N);
        const Cn = new Float32Array(M * N);
        setNumThreads(1);
        addon.gemm(ta, tb, M, N, K, 1, A, B, 0, C1);
        setNumThreads(Math.max(2, threads));
        addon.gemm(ta, tb, M, N, K, 1, A, B, 0, Cn);
        const t = tol(K);
        assertClose(Cn, C1, t.rtol, t.atol, `threads M=${M} N=${N} K=${K} ta=${ta} tb=${tb}`);
      }
    }
  } finally {
    setNumThreads(threads);
  }
});

test('bad arguments throw TypeError and never crash', () => {
  const A = new Float32Array(12);
  const B = new Float32Array(12);
  const C = new Float32Array(9);
  const g = addon.gemm as (...args: unknown[]) => void;
  const bad: unknown[][] = [
    [false, false, 3, 3, 4, 1, new Float32Array(11), B, 0, C], // A too short
    [false, false, 3, 3, 4, 1, A, new Float32Array(11), 0, C], // B too short
    [false, false, 3, 3, 4, 1, A, B, 0, new Float32Array(8)], // C too short
    [true, true, 3, 4, 3, 1, A, B, 0, C], // C too short for 3x4
    [false, false, 3, 3, 4, 1, new Float64Array(12), B, 0, C], // wrong element type
    [false, false, 3, 3, 4, 1, A, [1, 2, 3], 0, C], // not a typed array
    [false, false, 3, 3, 4, 1, A, B, 0, new Int32Array(9)],
    [0, false, 3, 3, 4, 1, A, B, 0, C], // transA not a boolean
    [false, 'no', 3, 3, 4, 1, A, B, 0, C],
    [false, false, -1, 3, 4, 1, A, B, 0, C], // negative size
    [false, false, 3, 3.5, 4, 1, A, B, 0, C], // non-integer size
    [false, false, 3, 3, NaN, 1, A, B, 0, C],
    [false, false, 3, 3, 4, '1', A, B, 0, C], // alpha not a number
    [false, false, 3, 3, 4, 1, A, B, null, C],
    [false, false, 1e9, 1e9, 1e9, 1, A, B, 0, C], // absurd sizes
    [false, false, 3, 3, 4, 1, A, B, 0], // too few arguments
    [],
  ];
  for (const args of bad) assert.throws(() => g(...args), TypeError, `gemm(${args.map((a) => (ArrayBuffer.isView(a) ? a.constructor.name : String(a))).join(', ')})`);
  // The reference validates too.
  assert.throws(() => refGemm(false, false, 3, 3, 4, 1, new Float32Array(11), B, 0, C), TypeError);
  assert.throws(() => refGemm(false, false, 3, 3, -4, 1, A, B, 0, C), TypeError);
  // Longer-than-needed arrays are fine.
  g(false, false, 2, 2, 2, 1, A, B, 0, C);
});

test('measurePeak reports a positive GFLOP/s for all threads and names the vector width', () => {
  const r = addon.measurePeak(0.06) as { gflops: number; threads: number; isa: string; variants: Record<string, number> };
  assert.ok(r.gflops > 0 && Number.isFinite(r.gflops));
  assert.equal(r.threads, numThreads());
  assert.ok(Object.keys(r.variants).includes(r.isa));
  assert.equal(r.gflops, Math.max(...Object.values(r.variants)));
  assert.throws(() => addon.measurePeak(-1), TypeError);
  assert.throws(() => addon.measurePeak('x'), TypeError);
});
