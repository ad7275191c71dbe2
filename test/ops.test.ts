// Tests of the "ops" kernels (embedding, RMSNorm, RoPE, SwiGLU, cross-entropy, AdamW):
// native (every ISA path this CPU supports) vs the TypeScript reference, the reference backward
// vs central finite differences, numerical edge cases and argument validation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Rng } from '../src/util/rng.js';
import { randArray, randInts, assertClose, checkGradFD, dot, ISAS } from './util.js';
import { Tensor } from '../src/tensor/tensor.js';
import { Workspace } from '../src/tensor/workspace.js';
import { referenceKernels as R } from '../src/tensor/reference.js';
import { nativeKernels } from '../src/tensor/native.js';
import { native, bestIsa, setIsa, numThreads, setNumThreads, type Isa } from '../src/native.js';

const N = nativeKernels();
const RANK: Record<Isa, number> = { portable: 0, avx2: 1, avx512: 2 };

/** Runs fn once per ISA path the CPU supports, restoring bestIsa() afterwards. */
function forEachIsa(fn: (isa: Isa) => void): void {
  const best = bestIsa();
  try {
    for (const isa of ISAS) {
      if (RANK[isa] > RANK[best]) continue;
      setIsa(isa);
      fn(isa);
    }
  } finally {
    setIsa(best);
  }
}

function withThreads(n: number, fn: () => void): void {
  const old = numThreads();
  setNumThreads(n);
  try {
    fn();
  } finally {
    setNumThreads(old);
  }
}

function invFreqs(headDim: number, theta = 10000): Float32Array {
  const f = new Float32Array(headDim / 2);
  for (let j = 0; j < f.length; j++) f[j] = 1 / theta ** ((2 * j) / headDim);
  return f;
}

// ------------------------------------------------------------------------------------------
// native vs reference

test('embedding: native forward/backward equal the reference exactly (repeated ids, parallel sizes)', () => {
  const rng = new Rng(1);
  forEachIsa((isa) => {
    for (const dim of [1, 3, 17, 65, 130]) {
      for (const T of [1, 7, 33, 300]) {
        for (const vocab of [1, 5, 50]) {
          const what = `${isa} dim=${dim} T=${T} vocab=${vocab}`;
          const table = randArray(rng, vocab * dim);
          const ids = randInts(rng, T, vocab);
          const o1 = new Float32Array(T * dim).fill(NaN);
          const o2 = new Float32Array(T * dim).fill(NaN);
          N.embeddingForward(ids, table, dim, o1);
          R.embeddingForward(ids, table, dim, o2);
          assert.deepEqual(o1, o2, what);
          const dOut = randArray(rng, T * dim);
          const d1 = randArray(rng, vocab * dim);
          const d2 = d1.slice();
          N.embeddingBackward(ids, dOut, dim, d1);
          R.embeddingBackward(ids, dOut, dim, d2);
          assert.deepEqual(d1, d2, what);
        }
      }
    }
  });
});

test('rmsnorm: native forward/backward vs reference (odd dims, parallel row blocks)', () => {
  const rng = new Rng(2);
  forEachIsa((isa) => {
    for (const dim of [1, 3, 17, 65, 130, 1000]) {
      for (const rows of [1, 7, 33, 300]) {
        if (rows * dim > 200_000) continue;
        const what = `${isa} rows=${rows} dim=${dim}`;
        const x = randArray(rng, rows * dim, 2);
        const w = randArray(rng, dim);
        const eps = 1e-5;
        const o1 = new Float32Array(rows * dim).fill(NaN);
        const o2 = new Float32Array(rows * dim);
        const r1 = new Float32Array(rows).fill(NaN);
        const r2 = new Float32Array(rows);
        N.rmsnormForward(x, w, rows, dim, eps, o1, r1);
        R.rmsnormForward(x, w, rows, dim, eps, o2, r2);
        assertClose(r1, r2, 2e-6, 0, `rstd ${what}`);
        assertClose(o1, o2, 1e-5, 1e-6, `out ${what}`);
        const dOut = randArray(rng, rows * dim);
        const dx1 = new Float32Array(rows * dim).fill(NaN);
        const dx2 = new Float32Array(rows * dim);
        const dw1 = randArray(rng, dim);
        const dw2 = dw1.slice();
        N.rmsnormBackward(x, w, r2, dOut, rows, dim, dx1, dw1);
        R.rmsnormBackward(x, w, r2, dOut, rows, dim, dx2, dw2);
        assertClose(dx1, dx2, 1e-4, 2e-6, `dX ${what}`);
        assertClose(dw1, dw2, 1e-4, 1e-5 * Math.sqrt(rows), `dW ${what}`);
      }
    }
  });
});

test('rmsnorm: in-place forward (out === x) and zero rows', () => {
  const rng = new Rng(3);
  forEachIsa(() => {
    const x = randArray(rng, 7 * 65);
    const w = randArray(rng, 65);
    const o = new Float32Array(x.length);
    const r = new Float32Array(7);
    R.rmsnormForward(x, w, 7, 65, 1e-6, o, r);
    const y = x.slice();
    N.rmsnormForward(y, w, 7, 65, 1e-6, y, new Float32Array(7));
    assertClose(y, o, 1e-5, 1e-6, 'in-place');
    N.rmsnormForward(new Float32Array(0), w, 0, 65, 1e-6, new Float32Array(0), new Float32Array(0));
  });
});

test('rope: native vs reference for both signs; rope(+1) then rope(-1) is the identity', () => {
  const rng = new Rng(4);
  forEachIsa((isa) => {
    for (const headDim of [2, 6, 34, 64, 130, 600]) {
      for (const nHeads of [1, 3, 5]) {
        for (const T of [1, 7, 33, 300]) {
          if (T * nHeads * headDim > 300_000) continue;
          const what = `${isa} T=${T} nHeads=${nHeads} headDim=${headDim}`;
          const inv = invFreqs(headDim, 500000);
          const pos = randInts(rng, T, 8192);
          const x = randArray(rng, T * nHeads * headDim);
          for (const sign of [1, -1] as const) {
            const a = x.slice();
            const b = x.slice();
            N.rope(a, pos, T, nHeads, headDim, inv, sign);
            R.rope(b, pos, T, nHeads, headDim, inv, sign);
            assertClose(a, b, 1e-5, 2e-6, `rope sign=${sign} ${what}`);
          }
          const y = x.slice();
          N.rope(y, pos, T, nHeads, headDim, inv, 1);
          N.rope(y, pos, T, nHeads, headDim, inv, -1);
          assertClose(y, x, 1e-5, 2e-6, `roundtrip ${what}`);
        }
      }
    }
  });
});

test('add: native equals the reference exactly (chunk tails, parallel sizes), also in place (out === a, out === b)', () => {
  const rng = new Rng(15);
  forEachIsa((isa) => {
    for (const n of [0, 1, 15, 16, 17, 1000, 70000, 300001]) {
      const what = `${isa} n=${n}`;
      const a = randArray(rng, n);
      const b = randArray(rng, n);
      const o1 = new Float32Array(n).fill(NaN);
      const o2 = new Float32Array(n);
      N.add(a, b, n, o1);
      R.add(a, b, n, o2);
      assert.deepEqual(o1, o2, what);
      const a1 = a.slice();
      N.add(a1, b, n, a1);
      assert.deepEqual(a1, o2, `out === a ${what}`);
      const b1 = b.slice();
      N.add(a, b1, n, b1);
      assert.deepEqual(b1, o2, `out === b ${what}`);
    }
  });
});

test('swiglu: native forward/backward vs reference, chunk tails, large |gate| without NaN', () => {
  const rng = new Rng(5);
  const special = [0, -0, 1e-30, -1e-30, 15, -15, 30, -30, 88, -88, 89, -89, 100, -100, 104, -104, 1e4, -1e4, 1e30, -1e30];
  forEachIsa((isa) => {
    for (const n of [1, 3, 15, 16, 17, 65, 1000, 40000, special.length]) {
      const what = `${isa} n=${n}`;
      const gate = n === special.length ? Float32Array.from(special) : randArray(rng, n, 8);
      const up = randArray(rng, n, 2);
      const o1 = new Float32Array(n).fill(NaN);
      const o2 = new Float32Array(n);
      N.swigluForward(gate, up, n, o1);
      R.swigluForward(gate, up, n, o2);
      assertClose(o1, o2, 1e-5, 1e-7, `out ${what}`);
      const dOut = randArray(rng, n);
      const g1 = new Float32Array(n).fill(NaN);
      const u1 = new Float32Array(n).fill(NaN);
      const g2 = new Float32Array(n);
      const u2 = new Float32Array(n);
      N.swigluBackward(gate, up, dOut, n, g1, u1);
      R.swigluBackward(gate, up, dOut, n, g2, u2);
      assertClose(g1, g2, 1e-5, 1e-7, `dGate ${what}`);
      assertClose(u1, u2, 1e-5, 1e-7, `dUp ${what}`);
      for (const a of [o1, g1, u1]) assert.ok(a.every(Number.isFinite), `finite ${what}`);
    }
  });
});

test('crossEntropy: native vs reference over vocabulary chunk boundaries; separate, in-place and null dLogits', () => {
  const rng = new Rng(6);
  const IGN = -100;
  forEachIsa((isa) => {
    for (const V of [1, 15, 16, 17, 1000, 2047, 2048, 2049, 4099]) {
      for (const rows of [1, 7, 33]) {
        if (rows * V > 70_000 && rows > 7) continue;
        const what = `${isa} N=${rows} V=${V}`;
        const logits = randArray(rng, rows * V, 6);
        const targets = randInts(rng, rows, V);
        if (rows > 1) targets[rows - 2] = IGN;
        const gs = 0.37;
        const lossR = new Float32Array(rows);
        const dR = new Float32Array(rows * V);
        R.crossEntropy(logits, targets, rows, V, IGN, lossR, dR, gs);

        const lossN = new Float32Array(rows).fill(NaN);
        const dN = new Float32Array(rows * V).fill(NaN);
        N.crossEntropy(logits, targets, rows, V, IGN, lossN, dN, gs);
        assertClose(lossN, lossR, 1e-5, 1e-5, `loss ${what}`);
        assertClose(dN, dR, 1e-4, 1e-8, `dLogits ${what}`);

        const inPlace = logits.slice();
        const lossI = new Float32Array(rows).fill(NaN);
        N.crossEntropy(inPlace, targets, rows, V, IGN, lossI, inPlace, gs);
        assertClose(lossI, lossR, 1e-5, 1e-5, `in-place loss ${what}`);
        assertClose(inPlace, dR, 1e-4, 1e-8, `in-place dLogits ${what}`);

        const lossO = new Float32Array(rows).fill(NaN);
        N.crossEntropy(logits, targets, rows, V, IGN, lossO, null, gs);
        assertClose(lossO, lossR, 1e-5, 1e-5, `loss-only ${what}`);

        if (rows > 1) {
          const r = rows - 2;
          assert.equal(lossN[r], 0, `ignored loss ${what}`);
          assert.ok(dN.subarray(r * V, (r + 1) * V).every((v) => v === 0), `ignored row gradient ${what}`);
          assert.ok(inPlace.subarray(r * V, (r + 1) * V).every((v) => v === 0), `ignored in-place gradient ${what}`);
        }
      }
    }
    // One very long row (more than 256 chunks of the default size) and a training-shaped slice.
    for (const [rows, V] of [[1, 600_000], [3, 8192]] as const) {
      const logits = randArray(rng, rows * V, 10);
      const targets = randInts(rng, rows, V);
      const lossR = new Float32Array(rows);
      const dR = new Float32Array(rows * V);
      R.crossEntropy(logits, targets, rows, V, -1, lossR, dR, 1);
      const lossN = new Float32Array(rows);
      const dN = new Float32Array(rows * V);
      N.crossEntropy(logits, targets, rows, V, -1, lossN, dN, 1);
      assertClose(lossN, lossR, 1e-5, 1e-5, `loss ${isa} N=${rows} V=${V}`);
      assertClose(dN, dR, 1e-4, 1e-9, `dLogits ${isa} N=${rows} V=${V}`);
    }
  });
});

test('crossEntropy: huge logits (±1e4) are stable and the loss equals the fp64 log-softmax', () => {
  const rng = new Rng(7);
  const V = 1037;
  const rows = 6;
  const logits = new Float32Array(rows * V);
  for (let i = 0; i < logits.length; i++) logits[i] = rng.float() < 0.5 ? -1e4 + rng.float() * 10 : 1e4 - rng.float() * 10;
  logits.fill(1e4, 0, V); // row 0: all equal -> loss = log V
  logits.fill(-1e4, V, 2 * V); // row 1: one huge logit, the rest tiny
  logits[V + 5] = 1e4;
  logits.fill(-1e4, 2 * V, 3 * V);
  const targets = Int32Array.from([3, 5, 9, 0, 100, V - 1]);
  const expected = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let m = -Infinity;
    for (let i = 0; i < V; i++) m = Math.max(m, logits[r * V + i]!);
    let s = 0;
    for (let i = 0; i < V; i++) s += Math.exp(logits[r * V + i]! - m);
    expected[r] = m + Math.log(s) - logits[r * V + targets[r]!]!;
  }
  assert.ok(Math.abs(expected[0]! - Math.log(V)) < 1e-12);
  assert.ok(Math.abs(expected[1]!) < 1e-12);
  const check = (loss: Float32Array, d: Float32Array, what: string): void => {
    assertClose(loss, expected, 2e-6, 1e-6, `loss ${what}`);
    assert.ok(d.every(Number.isFinite), `finite gradient ${what}`);
    for (let r = 0; r < rows; r++) {
      let s = 0;
      for (let i = 0; i < V; i++) s += d[r * V + i]!;
      assert.ok(Math.abs(s) < 1e-5, `gradient row ${r} sums to ${s} (${what})`);
    }
  };
  const lossR = new Float32Array(rows);
  const dR = new Float32Array(rows * V);
  R.crossEntropy(logits, targets, rows, V, -100, lossR, dR, 1);
  check(lossR, dR, 'reference');
  forEachIsa((isa) => {
    const loss = new Float32Array(rows);
    const d = logits.slice();
    N.crossEntropy(d, targets, rows, V, -100, loss, d, 1);
    check(loss, d, isa);
    assertClose(d, dR, 1e-4, 1e-7, `dLogits ${isa}`);
  });
});

test('adamw: native and reference follow the fp64 formula step by step', () => {
  const rng = new Rng(8);
  const lr = 1e-2;
  const b1 = 0.9;
  const b2 = 0.999;
  const eps = 1e-8;
  const wd = 0.1;
  const run = (kernels: typeof N, n: number, what: string): void => {
    const p = randArray(rng, n);
    const m = new Float32Array(n);
    const v = new Float32Array(n);
    const P = Float64Array.from(p);
    const M = new Float64Array(n);
    const Vv = new Float64Array(n);
    for (let step = 1; step <= 6; step++) {
      const g = randArray(rng, n, step === 3 ? 1e-3 : 1);
      if (n > 2) g[1] = 0;
      kernels.adamw(p, g, m, v, n, lr, b1, b2, eps, wd, step);
      for (let i = 0; i < n; i++) {
        M[i] = b1 * M[i]! + (1 - b1) * g[i]!;
        Vv[i] = b2 * Vv[i]! + (1 - b2) * g[i]! * g[i]!;
        const mh = M[i]! / (1 - b1 ** step);
        const vh = Vv[i]! / (1 - b2 ** step);
        P[i] = P[i]! - lr * (mh / (Math.sqrt(vh) + eps) + wd * P[i]!);
      }
      assertClose(m, M, 1e-5, 1e-7, `m ${what} step ${step}`);
      assertClose(v, Vv, 1e-5, 1e-10, `v ${what} step ${step}`);
      assertClose(p, P, 1e-5, 1e-6, `p ${what} step ${step}`);
    }
  };
  for (const n of [1, 15, 17, 1000, 40000]) {
    run(R, n, `reference n=${n}`);
    forEachIsa((isa) => run(N, n, `${isa} n=${n}`));
  }
});

test('vectorized exp: relative error < 1e-6 against Math.exp; 0 below the range, inf above, NaN stays NaN', () => {
  const rng = new Rng(9);
  const xs: number[] = [];
  for (let x = -120; x <= 95; x += 0.001) xs.push(x);
  for (let i = 0; i < 20000; i++) xs.push((rng.float() * 2 - 1) * 1e-3, (rng.float() * 2 - 1) * 1000);
  xs.push(0, -0, -Infinity, Infinity, NaN, -1e30, 1e30, -87.3, -87.4, 88.72, 88.73, -103.9, -104, -150);
  const x = Float32Array.from(xs);
  forEachIsa((isa) => {
    const y = new Float32Array(x.length).fill(-1);
    native()._opsExp!(x, y);
    let worst = 0;
    for (let i = 0; i < x.length; i++) {
      const e = Math.exp(x[i]!);
      const got = y[i]!;
      let ok: boolean;
      let rel = 0;
      if (Number.isNaN(x[i]!)) ok = Number.isNaN(got);
      else if (x[i]! < -104) ok = got === 0;
      else if (e > 3.4028234663852886e38) ok = got === Infinity;
      else if (e < 1.1754943508222875e-38) ok = Math.abs(got - e) <= 3e-45; // subnormal result: absolute
      else {
        rel = Math.abs(got - e) / e;
        if (rel > worst) worst = rel;
        ok = rel < 1e-6;
      }
      if (!ok) assert.fail(`${isa}: exp(${x[i]}) = ${got}, expected ${e} (rel ${rel})`);
    }
    assert.ok(worst < 1e-6);
  });
});

// ------------------------------------------------------------------------------------------
// reference backward vs finite differences

test('reference rmsnorm backward matches finite differences (x and w)', () => {
  const rng = new Rng(10);
  for (const [rows, dim] of [[3, 17], [1, 1], [2, 5]] as const) {
    const x = randArray(rng, rows * dim, 2);
    const w = randArray(rng, dim);
    const c = randArray(rng, rows * dim);
    const out = new Float32Array(rows * dim);
    const rstd = new Float32Array(rows);
    const f = (): number => {
      R.rmsnormForward(x, w, rows, dim, 1e-5, out, rstd);
      return dot(out, c);
    };
    f();
    const dX = new Float32Array(rows * dim);
    const dW = new Float32Array(dim);
    R.rmsnormBackward(x, w, rstd, c, rows, dim, dX, dW);
    checkGradFD(f, x, dX, rng, { eps: 1e-3, what: `dX ${rows}x${dim}` });
    checkGradFD(f, w, dW, rng, { eps: 1e-3, what: `dW ${rows}x${dim}` });
  }
});

test('reference rope: backward (sign -1) is the Jacobian transpose (finite differences), roundtrip is identity', () => {
  const rng = new Rng(11);
  const [T, nH, D] = [5, 3, 8];
  const inv = invFreqs(D);
  const pos = Int32Array.from([0, 1, 7, 100, 4000]);
  const x = randArray(rng, T * nH * D);
  const c = randArray(rng, T * nH * D);
  const f = (): number => {
    const y = x.slice();
    R.rope(y, pos, T, nH, D, inv, 1);
    return dot(y, c);
  };
  const grad = c.slice();
  R.rope(grad, pos, T, nH, D, inv, -1);
  checkGradFD(f, x, grad, rng, { samples: 30, rtol: 1e-3, atol: 1e-4 });
  const y = x.slice();
  R.rope(y, pos, T, nH, D, inv, 1);
  assert.ok(y.some((v, i) => Math.abs(v - x[i]!) > 1e-3), 'rope must change x');
  R.rope(y, pos, T, nH, D, inv, -1);
  assertClose(y, x, 1e-6, 1e-6, 'roundtrip');
});

test('reference swiglu backward matches finite differences (gate and up)', () => {
  const rng = new Rng(12);
  const n = 40;
  const gate = randArray(rng, n, 4);
  const up = randArray(rng, n, 2);
  const c = randArray(rng, n);
  const out = new Float32Array(n);
  const f = (): number => {
    R.swigluForward(gate, up, n, out);
    return dot(out, c);
  };
  const dG = new Float32Array(n);
  const dU = new Float32Array(n);
  R.swigluBackward(gate, up, c, n, dG, dU);
  checkGradFD(f, gate, dG, rng, { eps: 1e-3, samples: 20, what: 'dGate' });
  checkGradFD(f, up, dU, rng, { eps: 1e-3, samples: 20, what: 'dUp' });
});

test('reference crossEntropy gradient matches finite differences of gradScale * sum(losses)', () => {
  const rng = new Rng(13);
  const [rows, V] = [4, 11];
  const logits = randArray(rng, rows * V, 3);
  const targets = Int32Array.from([2, -100, 10, 0]);
  const gs = 0.25;
  const losses = new Float32Array(rows);
  const f = (): number => {
    R.crossEntropy(logits, targets, rows, V, -100, losses, null, gs);
    return gs * losses.reduce((a, b) => a + b, 0);
  };
  const d = new Float32Array(rows * V);
  R.crossEntropy(logits, targets, rows, V, -100, losses, d, gs);
  checkGradFD(f, logits, d, rng, { eps: 1e-3, samples: 30, rtol: 1e-2, atol: 5e-4 });
  assert.ok(d.subarray(V, 2 * V).every((v) => v === 0));
});

test('reference embedding backward matches finite differences (repeated ids)', () => {
  const rng = new Rng(14);
  const [vocab, dim] = [6, 5];
  const ids = Int32Array.from([1, 3, 1, 1, 5, 0]);
  const table = randArray(rng, vocab * dim);
  const c = randArray(rng, ids.length * dim);
  const out = new Float32Array(ids.length * dim);
  const f = (): number => {
    R.embeddingForward(ids, table, dim, out);
    return dot(out, c);
  };
  const dT = new Float32Array(vocab * dim);
  R.embeddingBackward(ids, c, dim, dT);
  checkGradFD(f, table, dT, rng, { samples: 30, what: 'dTable' });
  assert.ok(dT.subarray(2 * dim, 3 * dim).every((v) => v === 0), 'unused row stays zero');
});

// ------------------------------------------------------------------------------------------
// determinism, validation

test('native results do not depend on the thread count (rmsnorm dW, embedding scatter-add, cross-entropy)', () => {
  const rng = new Rng(15);
  const [rows, dim, vocab, V] = [500, 96, 40, 3000];
  const x = randArray(rng, rows * dim);
  const w = randArray(rng, dim);
  const g = randArray(rng, rows * dim);
  const ids = randInts(rng, rows, vocab);
  const logits = randArray(rng, 40 * V, 4);
  const targets = randInts(rng, 40, V);
  const runAll = (): Float32Array[] => {
    const out = new Float32Array(rows * dim);
    const rstd = new Float32Array(rows);
    N.rmsnormForward(x, w, rows, dim, 1e-5, out, rstd);
    const dX = new Float32Array(rows * dim);
    const dW = new Float32Array(dim);
    N.rmsnormBackward(x, w, rstd, g, rows, dim, dX, dW);
    const dT = new Float32Array(vocab * dim);
    N.embeddingBackward(ids, g, dim, dT);
    const loss = new Float32Array(40);
    const d = new Float32Array(40 * V);
    N.crossEntropy(logits, targets, 40, V, -100, loss, d, 1);
    return [out, rstd, dX, dW, dT, loss, d];
  };
  forEachIsa((isa) => {
    const a = runAll();
    let b: Float32Array[] = [];
    withThreads(1, () => {
      b = runAll();
    });
    const c = runAll();
    for (let i = 0; i < a.length; i++) {
      assert.deepEqual(a[i], b[i], `${isa} result ${i} with 1 thread`);
      assert.deepEqual(a[i], c[i], `${isa} result ${i} repeated`);
    }
  });
});

test('bad arguments throw TypeError (native and reference), never crash', () => {
  const f = (n: number): Float32Array => new Float32Array(n);
  const i = (...v: number[]): Int32Array => Int32Array.from(v);
  for (const K of [N, R]) {
    const bad: Array<[string, () => void]> = [
      ['embedding id too large', () => K.embeddingForward(i(0, 4), f(8), 2, f(4))],
      ['embedding id negative', () => K.embeddingForward(i(-1), f(8), 2, f(2))],
      ['embedding out short', () => K.embeddingForward(i(0, 1), f(8), 2, f(3))],
      ['embedding table not a multiple of dim', () => K.embeddingForward(i(0), f(7), 2, f(2))],
      ['embedding dim 0', () => K.embeddingForward(i(0), f(8), 0, f(2))],
      ['embeddingBackward id out of range', () => K.embeddingBackward(i(0, 4), f(4), 2, f(8))],
      ['embeddingBackward dOut short', () => K.embeddingBackward(i(0, 1), f(3), 2, f(8))],
      ['rmsnorm x short', () => K.rmsnormForward(f(5), f(3), 2, 3, 1e-5, f(6), f(2))],
      ['rmsnorm w short', () => K.rmsnormForward(f(6), f(2), 2, 3, 1e-5, f(6), f(2))],
      ['rmsnorm rstd short', () => K.rmsnormForward(f(6), f(3), 2, 3, 1e-5, f(6), f(1))],
      ['rmsnorm rows not integer', () => K.rmsnormForward(f(6), f(3), 1.5, 3, 1e-5, f(6), f(2))],
      ['rmsnormBackward dW short', () => K.rmsnormBackward(f(6), f(3), f(2), f(6), 2, 3, f(6), f(2))],
      ['rmsnormBackward dX short', () => K.rmsnormBackward(f(6), f(3), f(2), f(6), 2, 3, f(5), f(3))],
      ['rope x short', () => K.rope(f(7), i(0, 1), 2, 1, 4, f(2), 1)],
      ['rope odd headDim', () => K.rope(f(6), i(0, 1), 2, 1, 3, f(2), 1)],
      ['rope invFreq short', () => K.rope(f(8), i(0, 1), 2, 1, 4, f(1), 1)],
      ['rope pos short', () => K.rope(f(8), i(0), 2, 1, 4, f(2), 1)],
      ['rope bad sign', () => K.rope(f(8), i(0, 1), 2, 1, 4, f(2), 2 as 1)],
      ['swiglu out short', () => K.swigluForward(f(4), f(4), 4, f(3))],
      ['add b short', () => K.add(f(4), f(3), 4, f(4))],
      ['add out short', () => K.add(f(4), f(4), 4, f(3))],
      ['swigluBackward dUp short', () => K.swigluBackward(f(4), f(4), f(4), 4, f(4), f(3))],
      ['crossEntropy target too large', () => K.crossEntropy(f(6), i(0, 3), 2, 3, -100, f(2), null, 1)],
      ['crossEntropy target negative', () => K.crossEntropy(f(6), i(0, -1), 2, 3, -100, f(2), null, 1)],
      ['crossEntropy logits short', () => K.crossEntropy(f(5), i(0, 1), 2, 3, -100, f(2), null, 1)],
      ['crossEntropy losses short', () => K.crossEntropy(f(6), i(0, 1), 2, 3, -100, f(1), null, 1)],
      ['crossEntropy dLogits short', () => K.crossEntropy(f(6), i(0, 1), 2, 3, -100, f(2), f(5), 1)],
      ['crossEntropy V 0', () => K.crossEntropy(f(6), i(0, 1), 2, 0, -100, f(2), null, 1)],
      ['adamw m short', () => K.adamw(f(4), f(4), f(3), f(4), 4, 1e-3, 0.9, 0.999, 1e-8, 0, 1)],
      ['adamw step 0', () => K.adamw(f(4), f(4), f(4), f(4), 4, 1e-3, 0.9, 0.999, 1e-8, 0, 0)],
    ];
    for (const [what, fn] of bad) assert.throws(fn, TypeError, `${K.name}: ${what}`);
  }
  // Native-only checks: element types and overlapping (but not identical) dLogits.
  const n = native();
  assert.throws(() => n.swigluForward!(new Float64Array(4), f(4), 4, f(4)), TypeError);
  assert.throws(() => n.embeddingForward!(new Float32Array(2), f(8), 2, f(2)), TypeError);
  assert.throws(() => n.swigluForward!(f(4), f(4), -1, f(4)), TypeError);
  assert.throws(() => n.swigluForward!(f(4), f(4), 4), TypeError);
  const buf = f(12);
  assert.throws(() => N.crossEntropy(buf.subarray(0, 6), i(0, 1), 2, 3, -100, f(2), buf.subarray(3, 9), 1), TypeError);
  // Still usable after all the rejected calls.
  const out = f(4);
  N.swigluForward(Float32Array.from([1, 2, 3, 4]), Float32Array.from([1, 1, 1, 1]), 4, out);
  assert.ok(Math.abs(out[0]! - 1 / (1 + Math.exp(-1))) < 1e-6);
});

test('Tensor.zeroGrad is lazy: a read sees zeros; gradToOverwrite hands the stale buffer over once, to be overwritten', () => {
  const t = new Tensor(new Float32Array(3), [3], true);
  assert.equal(t.gradToOverwrite(), null);
  t.gradBuffer().set([1, 2, 3]);
  t.zeroGrad();
  assert.deepEqual([...t.grad!], [0, 0, 0]);
  t.grad!.set([4, 5, 6]);
  t.zeroGrad();
  const g = t.gradToOverwrite()!;
  assert.equal(g.overwrite, true);
  assert.deepEqual([...g.buf], [4, 5, 6]); // stale: the caller overwrites it
  g.buf.set([7, 8, 9]);
  assert.equal(t.gradToOverwrite()!.overwrite, false); // now it holds a real gradient: add to it
  assert.deepEqual([...t.grad!], [7, 8, 9]);
  t.zeroGrad();
  t.grad = new Float32Array([1, 1, 1]); // assigning a buffer cancels the pending zero
  assert.deepEqual([...t.grad!], [1, 1, 1]);
});

test('Workspace: reuses buffers by size, gives back early, keeps per size only what one step used at once', () => {
  const ws = new Workspace();
  const a = ws.take(10);
  const b = ws.take(10);
  const c = ws.take(7);
  assert.ok(ws.owns(a) && ws.owns(c) && !ws.owns(new Float32Array(10)));
  ws.give(b);
  ws.give(b); // twice: ignored
  assert.equal(ws.take(10), b);
  ws.giveAll();
  assert.equal(ws.floats, 27);
  // the next step uses one buffer of 10 and none of 7: the rest is dropped at its end
  const d = ws.take(10);
  assert.ok(d === a || d === b);
  ws.giveAll();
  assert.equal(ws.floats, 10);
  assert.equal(ws.zeroed(10).every((x) => x === 0), true);
  ws.clear();
  assert.equal(ws.floats, 0);
});
