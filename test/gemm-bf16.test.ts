// bf16 matmuls and conversions (native/gemm_bf16*.cpp, src/tensor/bf16.ts) against their reference
// twins (src/tensor/reference/bf16.ts): rounding (ties, overflow, NaN/Inf, denormals), every bf16
// implementation this CPU runs (AMX only where the CPU has it) on odd / edge / block-crossing
// shapes with all transposes and fp32 / bf16 operands, agreement with the fp32 GEMM on bf16-rounded
// inputs (fp32 accumulation-order error) and with the exact product (bf16 error bound), packed
// op(B) bit for bit, the capability errors, threads, views and argument validation.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../src/util/rng.js';
import { native, bestIsa, setIsa, numThreads, setNumThreads } from '../src/native.js';
import { MixtuneError } from '../src/util/errors.js';
import { packageRoot } from '../src/util/paths.js';
import { refGemm } from '../src/tensor/reference/gemm.js';
import {
  bf16Support, hasBf16, requireBf16, setBf16Impl, f32ToBf16, bf16ToF32, gemmBf16, gemmBf16Packed, packBf16B, PackedBf16,
  type Bf16Impl, type Bf16Operand,
} from '../src/tensor/bf16.js';
import {
  f32ToBf16Bits, bf16BitsToF32, roundToBf16, refF32ToBf16, refBf16ToF32, refGemmBf16, refGemmBf16PackB, refGemmBf16Packed,
  refGemmBf16PackedSize,
} from '../src/tensor/reference/bf16.js';
import { randArray, assertClose } from './util.js';

const addon = native();
const support = bf16Support();
const TRANS: [boolean, boolean][] = [[false, false], [false, true], [true, false], [true, true]];
/** Every implementation that runs here: the CPU's own ones and the portable emulation. */
const IMPLS: Bf16Impl[] = [...(support.amxBf16 ? ['amx' as const] : []), ...(support.avx512bf16 ? ['avx512bf16' as const] : []), 'portable'];

function withImpls(fn: (impl: Bf16Impl) => void): void {
  try {
    for (const impl of IMPLS) {
      setBf16Impl(impl);
      fn(impl);
    }
  } finally {
    setBf16Impl('auto');
  }
}

/** fp32 accumulation-order tolerance (as the fp32 GEMM tests). */
function tol(K: number, alpha = 1): { rtol: number; atol: number } {
  return { rtol: 2e-5 * Math.sqrt(K + 1) + 1e-5, atol: (2e-6 * (K + 1) + 1e-6) * Math.max(1, Math.abs(alpha)) };
}

const u32 = new Uint32Array(1);
const f32v = new Float32Array(u32.buffer);
function fromBits(b: number): number {
  u32[0] = b >>> 0;
  return f32v[0]!;
}

test('f32 -> bf16 rounds to nearest even; overflow, Inf, NaN, signed zero and denormals (PyTorch bits)', () => {
  const cases: [number, number][] = [
    [0x3f800000, 0x3f80], // 1
    [0x3f808000, 0x3f80], // tie, even below
    [0x3f818000, 0x3f82], // tie, even above
    [0x3f808001, 0x3f81], // just above the tie
    [0x3f807fff, 0x3f80], // just below the tie
    [0xbf818000, 0xbf82], // negative tie
    [0x7f7fffff, 0x7f80], // largest finite float rounds to +Inf
    [0x7f7f7fff, 0x7f7f], // ... this one does not
    [0xff7fffff, 0xff80], // to -Inf
    [0x7f800000, 0x7f80], // +Inf
    [0xff800000, 0xff80], // -Inf
    [0x7fc00000, 0x7fc0], // quiet NaN
    [0x7f800001, 0x7fc0], // signalling NaN (would round to Inf if treated as a number)
    [0x7fffffff, 0x7fc0], // NaN with payload (would carry into the sign if rounded)
    [0xffc00001, 0x7fc0], // negative NaN: the canonical NaN
    [0x00000000, 0x0000],
    [0x80000000, 0x8000], // -0
    [0x00000001, 0x0000], // smallest denormal rounds to 0
    [0x00008000, 0x0000], // denormal tie, even (0)
    [0x00018000, 0x0002], // denormal tie, even above
    [0x00010000, 0x0001], // exact denormal bf16
    [0x007fffff, 0x0080], // largest denormal rounds up to the smallest normal
    [0x807fffff, 0x8080],
  ];
  const src = new Float32Array(cases.length);
  cases.forEach(([b], i) => (src[i] = fromBits(b)));
  for (const [i, [b, want]] of cases.entries()) assert.equal(f32ToBf16Bits(src[i]!), want, `ref 0x${b.toString(16)}`);
  for (const isa of ['avx512', 'avx2', 'portable'] as const) {
    if (['avx512', 'avx2', 'portable'].indexOf(isa) < ['avx512', 'avx2', 'portable'].indexOf(bestIsa())) continue;
    try {
      setIsa(isa);
      const got = f32ToBf16(src);
      for (const [i, [b, want]] of cases.entries()) assert.equal(got[i], want, `${isa} 0x${b.toString(16)} -> 0x${got[i]!.toString(16)}`);
    } finally {
      setIsa(bestIsa());
    }
  }
  assert.ok(Number.isNaN(bf16BitsToF32(0x7fc0)));
  assert.equal(roundToBf16(1 + 2 ** -9), 1); // tie to even
  assert.equal(roundToBf16(1 + 3 * 2 ** -9), 1 + 2 ** -7);
});

test('conversions: native == reference on random bit patterns and every bf16 value; round trips; tails and views', () => {
  const rng = new Rng(5);
  const n = 100_003; // not a multiple of the vector width
  const bits = new Uint32Array(n);
  for (let i = 0; i < n; i++) bits[i] = (rng.int(65536) << 16 | rng.int(65536)) >>> 0;
  const src = new Float32Array(bits.buffer);
  const want = refF32ToBf16(src);
  assert.deepEqual(f32ToBf16(src), want);
  // every bf16 value back to fp32 exactly; bf16 -> fp32 -> bf16 is the identity except NaNs
  const all = new Uint16Array(65536).map((_, i) => i);
  const f = bf16ToF32(all);
  assert.deepEqual(new Uint32Array(f.buffer), new Uint32Array(refBf16ToF32(all).buffer));
  const back = f32ToBf16(f);
  for (let h = 0; h < 65536; h++) {
    const isNan = (h & 0x7f80) === 0x7f80 && (h & 0x7f) !== 0;
    assert.equal(back[h], isNan ? 0x7fc0 : h, `bf16 0x${h.toString(16)}`);
  }
  // lengths 0..40 (vector tails), subarray views with offsets, threaded sizes
  for (let len = 0; len <= 40; len++) {
    const big = randArray(rng, len + 10, 3);
    const view = big.subarray(3, 3 + len);
    const dst = new Uint16Array(len + 6).fill(0xabcd);
    f32ToBf16(view, dst.subarray(2, 2 + len));
    assert.deepEqual([...dst.subarray(2, 2 + len)], [...refF32ToBf16(view)]);
    assert.deepEqual([...dst.subarray(0, 2)], [0xabcd, 0xabcd]);
    assert.deepEqual([...dst.subarray(2 + len)], [0xabcd, 0xabcd, 0xabcd, 0xabcd]);
    const out = new Float32Array(len + 4).fill(7);
    bf16ToF32(dst.subarray(2, 2 + len), out.subarray(1, 1 + len));
    assert.deepEqual([...out.subarray(1, 1 + len)], [...refBf16ToF32(dst.subarray(2, 2 + len))]);
    assert.equal(out[0], 7);
    assert.equal(out[len + 1], 7);
  }
  const large = randArray(rng, 1 << 20, 100);
  assert.deepEqual(f32ToBf16(large), refF32ToBf16(large));
  assert.throws(() => addon.f32ToBf16(new Float32Array(4), new Uint16Array(3)), TypeError);
  assert.throws(() => addon.bf16ToF32(new Uint16Array(4), new Float32Array(3)), TypeError);
  assert.throws(() => addon.f32ToBf16(new Float64Array(4), new Uint16Array(4)), TypeError);
  assert.throws(() => addon.bf16ToF32(new Int16Array(4), new Float32Array(4)), TypeError);
});

test('refGemmBf16 matches hand-computed products; bf16 denormal operands count as zero', () => {
  // op(A) = [[1, 2+2^-9], [3, 4]] rounds to [[1, 2], [3, 4]]; op(B) = [[1, 0], [0.5, 1]]
  const A = new Float32Array([1, 2 + 2 ** -9, 3, 4]);
  const B = new Float32Array([1, 0, 0.5, 1]);
  const C = new Float32Array([1, 1, 1, 1]);
  refGemmBf16(false, false, 2, 2, 2, 2, A, B, 0.5, C);
  assert.deepEqual([...C], [4.5, 4.5, 10.5, 8.5]);
  // denormal bf16 (0x0040 = 2^-127) times 2^126 would be 0.5
  const D = new Float32Array(1);
  refGemmBf16(false, false, 1, 1, 1, 1, new Uint16Array([0x0040]), new Uint16Array([0x7e80]), 0, D);
  assert.equal(D[0], 0);
});

interface Case {
  M: number; N: number; K: number; ta: boolean; tb: boolean; alpha: number; beta: number;
  A: Bf16Operand; B: Bf16Operand; C0: Float32Array; want: Float32Array;
}

function makeCase(rng: Rng, M: number, N: number, K: number, ta: boolean, tb: boolean, alpha: number, beta: number, kinds = 'ff'): Case {
  const mk = (n: number, kind: string): Bf16Operand => (kind === 'h' ? refF32ToBf16(randArray(rng, n)) : randArray(rng, n));
  const A = mk(M * K, kinds[0]!);
  const B = mk(K * N, kinds[1]!);
  const C0 = beta === 0 ? new Float32Array(M * N).fill(NaN) : randArray(rng, M * N);
  const want = C0.slice();
  refGemmBf16(ta, tb, M, N, K, alpha, A, B, beta, want);
  return { M, N, K, ta, tb, alpha, beta, A, B, C0, want };
}

function check(c: Case, what: string, packed = false): Float32Array {
  const got = c.C0.slice();
  if (packed) gemmBf16Packed(c.ta, c.M, c.N, c.K, c.alpha, c.A, packBf16B(c.tb, c.K, c.N, c.B), c.beta, got);
  else gemmBf16(c.ta, c.tb, c.M, c.N, c.K, c.alpha, c.A, c.B, c.beta, got);
  const t = tol(c.K, c.alpha);
  assertClose(got, c.want, t.rtol, t.atol, `${what} M=${c.M} N=${c.N} K=${c.K} ta=${c.ta} tb=${c.tb} alpha=${c.alpha} beta=${c.beta}`);
  return got;
}

test('gemmBf16 == reference: odd, tiny, edge and block-crossing shapes, all transposes, alpha/beta, fp32/bf16 operands, every implementation', () => {
  const rng = new Rng(7);
  const shapes: [number, number, number][] = [
    [1, 1, 1], [2, 3, 1], [3, 2, 5], [1, 129, 300], [129, 1, 300], [1, 37, 70], [45, 1, 33], [17, 63, 3],
    [14, 32, 64], [15, 33, 65], [28, 64, 31], [33, 31, 32], [67, 33, 1025], [29, 97, 64], [64, 64, 64], [600, 7, 31],
  ];
  const ab: [number, number][] = [[1, 0], [1, 1], [-0.75, 0.5]];
  const kinds = ['ff', 'hf', 'fh', 'hh'];
  const cases: Case[] = [];
  let n = 0;
  for (const [M, N, K] of shapes)
    for (const [ta, tb] of TRANS)
      for (const [alpha, beta] of ab) cases.push(makeCase(rng, M, N, K, ta, tb, alpha, beta, kinds[n++ % kinds.length]));
  withImpls((impl) => {
    for (const c of cases) check(c, impl);
  });
});

test('gemmBf16 on a 300x520x1100 problem (crosses KC / NC blocks, threaded), plain and with a packed B', () => {
  const rng = new Rng(11);
  for (const [ta, tb] of TRANS) {
    const c = makeCase(rng, 300, 520, 1100, ta, tb, 1, ta === tb ? 0 : 1, ta ? 'hf' : 'ff');
    withImpls((impl) => {
      check(c, impl);
      check(c, `${impl} packed`, true);
    });
  }
});

test('gemmBf16 agrees with the fp32 GEMM on bf16-rounded inputs (accumulation order) and with the exact product (bf16 bound)', () => {
  const rng = new Rng(13);
  for (const [M, N, K] of [[64, 96, 512], [33, 130, 777], [200, 40, 2048]] as [number, number, number][]) {
    for (const [ta, tb] of TRANS) {
      const A = randArray(rng, M * K, 2), B = randArray(rng, K * N, 0.5);
      const Ar = A.map(roundToBf16), Br = B.map(roundToBf16);
      const fp32 = new Float32Array(M * N);
      addon.gemm(ta, tb, M, N, K, 1, Ar, Br, 0, fp32);
      const exact = new Float32Array(M * N);
      refGemm(ta, tb, M, N, K, 1, A, B, 0, exact);
      // sum_k |a_ik b_kj|: the bound of the bf16 rounding error is 2^-8 of it (each operand
      // within 2^-9 relative; the products are exact)
      const absSum = new Float32Array(M * N);
      refGemm(ta, tb, M, N, K, 1, A.map(Math.abs), B.map(Math.abs), 0, absSum);
      withImpls((impl) => {
        const got = new Float32Array(M * N);
        gemmBf16(ta, tb, M, N, K, 1, A, B, 0, got);
        const t = tol(K);
        assertClose(got, fp32, t.rtol, t.atol * 2, `${impl} vs fp32 GEMM on rounded inputs M=${M} N=${N} K=${K} ta=${ta} tb=${tb}`);
        let worst = 0;
        let below = 0;
        for (let i = 0; i < got.length; i++) {
          const bound = 2 ** -8 * 1.01 * absSum[i]! + 1e-5 * absSum[i]! + 1e-6;
          worst = Math.max(worst, Math.abs(got[i]! - exact[i]!) / bound);
          if (Math.abs(got[i]! - exact[i]!) > 1e-7 * absSum[i]!) below++;
        }
        assert.ok(worst <= 1, `${impl}: error vs the exact product exceeds the bf16 bound (ratio ${worst.toFixed(3)})`);
        assert.ok(below > got.length / 2, `${impl}: results look like fp32, not bf16 (${below} of ${got.length} differ from the exact product)`);
      });
    }
  }
});

test('avx512bf16 and the portable path agree bit for bit (alpha 1, beta 0/1): the portable path defines the results', { skip: !support.avx512bf16 && 'no AVX512-BF16 here' }, () => {
  const rng = new Rng(17);
  for (const [M, N, K] of [[37, 45, 1100], [200, 300, 64], [5, 7, 9]] as [number, number, number][])
    for (const [ta, tb] of TRANS)
      for (const beta of [0, 1]) {
        const A = randArray(rng, M * K, 30), B = randArray(rng, K * N, 0.1), C0 = randArray(rng, M * N);
        const out: Float32Array[] = [];
        try {
          for (const impl of ['avx512bf16', 'portable'] as const) {
            setBf16Impl(impl);
            const C = C0.slice();
            gemmBf16(ta, tb, M, N, K, 1, A, B, beta, C);
            out.push(C);
          }
        } finally {
          setBf16Impl('auto');
        }
        assert.deepEqual(new Uint32Array(out[0]!.buffer), new Uint32Array(out[1]!.buffer), `M=${M} N=${N} K=${K} ta=${ta} tb=${tb} beta=${beta}`);
      }
});

test('the hardware semantics the portable path reproduces: denormal operands as zero, denormal sums flushed, pair rounding', () => {
  withImpls((impl) => {
    const C = new Float32Array(1);
    gemmBf16(false, true, 1, 1, 2, 1, new Uint16Array([0x0040, 0x3f80]), new Uint16Array([0x7e80, 0x0001]), 0, C);
    assert.equal(C[0], 0, `${impl}: denormal bf16 operands count as zero`);
    const D = new Float32Array(1);
    gemmBf16(false, true, 1, 1, 2, 1, new Uint16Array([0x1f80, 0x1f80]), new Uint16Array([0x1f80, 0x1f80]), 0, D);
    if (impl !== 'amx') assert.equal(D[0], 0, `${impl}: a denormal sum (2^-127) is flushed`);
    const E = new Float32Array(1).fill(NaN);
    // NaN and Inf operands propagate
    gemmBf16(false, true, 1, 1, 2, 1, new Float32Array([NaN, 1]), new Float32Array([1, 1]), 0, E);
    assert.ok(Number.isNaN(E[0]!), `${impl}: NaN propagates`);
    gemmBf16(false, true, 1, 1, 2, 1, new Float32Array([Infinity, 1]), new Float32Array([1, 1]), 0, E);
    assert.equal(E[0], Infinity, `${impl}: Inf propagates`);
    gemmBf16(false, true, 1, 1, 1, 1, new Float32Array([3.4e38]), new Float32Array([3.4e38]), 0, E);
    assert.equal(E[0], Infinity, `${impl}: overflow is Inf`);
  });
});

test('gemmBf16PackB writes the reference layout bit for bit (fp32 and bf16 sources, both transposes, padding)', () => {
  const rng = new Rng(19);
  for (const [K, N] of [[1, 1], [7, 5], [31, 33], [32, 32], [33, 64], [100, 70], [513, 97], [1029, 67], [2051, 40]] as [number, number][]) // the last two: threaded over k ranges (B) / panels (B^T)
    for (const tb of [false, true])
      for (const bf of [false, true]) {
        const src = randArray(rng, K * N, 10);
        const B: Bf16Operand = bf ? refF32ToBf16(src) : src;
        const want = refGemmBf16PackB(tb, K, N, B);
        assert.equal(want.length, refGemmBf16PackedSize(K, N));
        assert.equal(addon.gemmBf16PackedSize(K, N), want.length);
        for (const isa of ['avx512', 'portable'] as const) {
          if (isa === 'avx512' && bestIsa() !== 'avx512') continue;
          try {
            setIsa(isa);
            const p = new PackedBf16(K, N);
            p.data.fill(0xdead);
            p.pack(tb, B);
            assert.deepEqual(p.data, want, `${isa} K=${K} N=${N} transB=${tb} bf16=${bf}`);
          } finally {
            setIsa(bestIsa());
          }
        }
      }
});

test('a packed B is reusable: repacked in place after the weight changes, same results as the unpacked GEMM (bit for bit), reference twin', () => {
  const rng = new Rng(23);
  const M = 70, N = 90, K = 130;
  const W = randArray(rng, N * K);
  const X = randArray(rng, M * K);
  const p = packBf16B(true, K, N, W); // forward: Y = X W^T
  const data = p.data;
  withImpls((impl) => {
    for (let step = 0; step < 2; step++) {
      if (step === 1) {
        for (let i = 0; i < W.length; i++) W[i] = W[i]! * 0.5 + 0.01;
        assert.equal(packBf16B(true, K, N, W, p), p, 'same buffer');
        assert.equal(p.data, data);
      }
      const a = new Float32Array(M * N), b = new Float32Array(M * N), r = new Float32Array(M * N);
      gemmBf16Packed(false, M, N, K, 1, X, p, 0, a);
      gemmBf16(false, true, M, N, K, 1, X, W, 0, b);
      assert.deepEqual(new Uint32Array(a.buffer), new Uint32Array(b.buffer), `${impl} step ${step}`);
      refGemmBf16Packed(false, M, N, K, 1, X, p.data, 0, r);
      const t = tol(K);
      assertClose(a, r, t.rtol, t.atol, `${impl} packed vs reference`);
    }
  });
  assert.throws(() => gemmBf16Packed(false, M, N, K + 1, 1, X, p, 0, new Float32Array(M * N)), /packed B is 130x90/);
  assert.notEqual(packBf16B(true, K + 1, N, randArray(rng, (K + 1) * N), p), p, 'a new buffer for a new shape');
});

test('tiny cache blocks exercise multi-slice packing, padded k slices and edge tiles', () => {
  const saved = addon.gemmBf16Blocking() as { kc: number; mc: number; nc: number; tilesPerThread: number };
  const rng = new Rng(29);
  const cases: Case[] = [];
  for (const [M, N, K] of [[45, 70, 77], [100, 33, 50], [31, 130, 97]] as [number, number, number][])
    for (const [ta, tb] of TRANS) cases.push(makeCase(rng, M, N, K, ta, tb, 1.25, 0.5, ta ? 'fh' : 'ff'));
  try {
    withImpls((impl) => {
      for (const [kc, mc, nc] of [[32, 1, 1], [40, 28, 64], [64, 50, 40]]) {
        addon.gemmBf16Blocking(kc, mc, nc);
        for (const c of cases) {
          check(c, `${impl} kc=${kc} mc=${mc} nc=${nc}`);
          check(c, `${impl} packed kc=${kc} mc=${mc} nc=${nc}`, true);
        }
      }
    });
  } finally {
    addon.gemmBf16Blocking(saved.kc, saved.mc, saved.nc, saved.tilesPerThread);
  }
  assert.equal((addon.gemmBf16Blocking() as { kc: number }).kc, saved.kc);
});

test('K = 0, alpha = 0 and empty outputs: C = beta * C', () => {
  withImpls(() => {
    const C = new Float32Array([NaN, 2, 3, NaN]);
    gemmBf16(false, false, 2, 2, 0, 1, new Float32Array(0), new Float32Array(0), 0, C);
    assert.deepEqual([...C], [0, 0, 0, 0]);
    const D = new Float32Array([1, 2, 3, 4]);
    gemmBf16(true, true, 2, 2, 0, 1, new Uint16Array(0), new Float32Array(0), 0.5, D);
    assert.deepEqual([...D], [0.5, 1, 1.5, 2]);
    const E = new Float32Array([1, 2, 3, 4]);
    gemmBf16(false, true, 2, 2, 3, 0, new Float32Array(6).fill(NaN), new Float32Array(6), 2, E);
    assert.deepEqual([...E], [2, 4, 6, 8]);
    gemmBf16(false, false, 0, 5, 3, 1, new Float32Array(0), new Float32Array(15), 0, new Float32Array(0));
    const F = new Float32Array([5, 6]);
    gemmBf16Packed(false, 1, 2, 0, 1, new Float32Array(0), packBf16B(false, 0, 2, new Float32Array(0)), 1, F);
    assert.deepEqual([...F], [5, 6]);
  });
});

test('weight-gradient shapes (tn, K >> M: op(B) packed whole, doubled k slice, fewer tiles) == reference at 1 and 2 threads, bit-identical across threads', () => {
  const threads = numThreads();
  const saved = addon.gemmBf16Blocking() as { kc: number; mc: number; nc: number; tilesPerThread: number };
  const rng = new Rng(37);
  const cases: Case[] = [];
  // dW = dY^T X: M = out, N = in, K = tokens; K crosses the doubled k slice (1024 by default, 64
  // with kc = 32) with a short, odd last slice; M just above and well above the whole-pack limit.
  for (const [M, N, K] of [[29, 33, 2051], [45, 70, 1100], [141, 97, 1031], [300, 64, 129]] as [number, number, number][])
    for (const [alpha, beta, kinds] of [[1, 0, 'ff'], [1, 1, 'hf'], [0.5, -1, 'fh']] as [number, number, string][])
      cases.push(makeCase(rng, M, N, K, true, false, alpha, beta, kinds));
  try {
    withImpls((impl) => {
      for (const blocking of [[saved.kc, saved.mc, saved.nc, saved.tilesPerThread], [32, 28, 64, 3], [96, 1, 1, 1]]) {
        addon.gemmBf16Blocking(...blocking);
        for (const c of cases) {
          setNumThreads(1);
          const one = check(c, `${impl} 1 thread blocking=${blocking.join(',')}`);
          setNumThreads(Math.max(2, threads));
          const two = check(c, `${impl} 2 threads blocking=${blocking.join(',')}`);
          assert.deepEqual(two, one, `${impl} threads M=${c.M} N=${c.N} K=${c.K} blocking=${blocking.join(',')}`);
        }
      }
    });
  } finally {
    setNumThreads(threads);
    addon.gemmBf16Blocking(saved.kc, saved.mc, saved.nc, saved.tilesPerThread);
  }
});

test('multi-threaded results equal single-threaded ones bit for bit; subarray views are read and written in place only', () => {
  const threads = numThreads();
  const rng = new Rng(31);
  try {
    withImpls((impl) => {
      for (const [M, N, K] of [[200, 300, 150], [1, 700, 300], [700, 1, 300]] as [number, number, number][])
        for (const [ta, tb] of TRANS) {
          const A = randArray(rng, M * K), B = randArray(rng, K * N);
          const C1 = new Float32Array(M * N), Cn = new Float32Array(M * N);
          setNumThreads(1);
          gemmBf16(ta, tb, M, N, K, 1, A, B, 0, C1);
          setNumThreads(Math.max(2, threads));
          gemmBf16(ta, tb, M, N, K, 1, A, B, 0, Cn);
          assert.deepEqual(Cn, C1, `${impl} threads M=${M} N=${N} K=${K} ta=${ta} tb=${tb}`);
        }
    });
  } finally {
    setNumThreads(threads);
  }
  const M = 37, N = 45, K = 29;
  for (const [ta, tb] of TRANS) {
    const c = makeCase(rng, M, N, K, ta, tb, 1, 0.5, 'hf');
    const bigA = new Uint16Array(M * K + 7);
    bigA.set(c.A as Uint16Array, 3);
    const bigB = randArray(rng, K * N + 9);
    bigB.set(c.B, 5);
    const bigC = randArray(rng, M * N + 13);
    bigC.set(c.C0, 6);
    const before = bigC.slice();
    withImpls((impl) => {
      bigC.set(before);
      gemmBf16(ta, tb, M, N, K, 1, bigA.subarray(3, 3 + M * K), bigB.subarray(5, 5 + K * N), 0.5, bigC.subarray(6, 6 + M * N));
      const t = tol(K);
      assertClose(bigC.subarray(6, 6 + M * N), c.want, t.rtol, t.atol, `${impl} view`);
      assert.deepEqual([...bigC.subarray(0, 6)], [...before.subarray(0, 6)]);
      assert.deepEqual([...bigC.subarray(6 + M * N)], [...before.subarray(6 + M * N)]);
    });
  }
});

test('no bf16 instructions: a clear error naming them (code ENOBF16), never a silent slow path; conversions still work', () => {
  const A = new Float32Array(4), B = new Float32Array(4), C = new Float32Array(4);
  try {
    setBf16Impl('none');
    assert.equal(hasBf16(), false);
    assert.throws(() => gemmBf16(false, false, 2, 2, 2, 1, A, B, 0, C), (e: Error & { code?: string }) =>
      /^gemmBf16: bf16 matmuls are unavailable: disabled by setBf16Isa\('none'\)$/.test(e.message) && e.code === 'ENOBF16');
    assert.throws(() => gemmBf16Packed(false, 2, 2, 2, 1, A, packBf16B(false, 2, 2, B), 0, C), /gemmBf16Packed: bf16 matmuls are unavailable/);
    assert.throws(() => requireBf16('training.precision: bf16'), (e: Error) => e instanceof MixtuneError && /^training\.precision: bf16 is unavailable: disabled/.test(e.message));
    assert.deepEqual([...f32ToBf16(new Float32Array([1, 2]))], [0x3f80, 0x4000]);
  } finally {
    setBf16Impl('auto');
  }
  if (support.best !== 'none') {
    // Emulating an older CPU with the fp32 ISA switch disables the bf16 instructions too.
    if (bestIsa() === 'avx512') {
      try {
        setIsa('avx2');
        assert.equal(hasBf16(), false);
        assert.match(bf16Support().reason, /limited to ISA 'avx2'.*excludes AVX512-BF16 and AMX-BF16/);
        assert.throws(() => gemmBf16(false, false, 2, 2, 2, 1, A, B, 0, C), /unavailable: the kernels are limited to ISA 'avx2'/);
        setBf16Impl('portable'); // an explicit request still runs the emulation
        gemmBf16(false, false, 2, 2, 2, 1, A, B, 0, C);
      } finally {
        setIsa(bestIsa());
        setBf16Impl('auto');
      }
    }
    assert.equal(hasBf16(), true);
  } else {
    assert.throws(() => gemmBf16(false, false, 2, 2, 2, 1, A, B, 0, C), /neither AVX512-BF16 \(VDPBF16PS\) nor AMX-BF16/);
  }
  if (!support.amxBf16) assert.throws(() => setBf16Impl('amx'), /this CPU cannot run amx/);
  assert.throws(() => setBf16Impl('fast' as Bf16Impl), /unknown bf16 implementation 'fast'/);
});

test('MIXTUNE_BF16 selects the implementation; one the CPU lacks is a reason, not a crash', () => {
  const script = `import('${packageRoot()}/dist/src/tensor/bf16.js').then((m) => { const s = m.bf16Support(); console.log(JSON.stringify(s)); })`;
  const run = (v: string): { current: string; reason: string; available: boolean } => {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, MIXTUNE_BF16: v }, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    return JSON.parse(r.stdout);
  };
  assert.deepEqual(run('none'), { ...run('none'), current: 'none', available: false, reason: 'disabled by MIXTUNE_BF16=none' });
  assert.equal(run('portable').current, 'portable');
  assert.match(run('fast').reason, /MIXTUNE_BF16='fast' is not one of amx, avx512bf16, portable, none/);
  if (!support.amxBf16) assert.match(run('amx').reason, /MIXTUNE_BF16=amx asks for AMX-BF16, which this CPU lacks/);
  if (support.avx512bf16) assert.equal(run('avx512bf16').current, 'avx512bf16');
});

test('bad arguments throw TypeError and never crash', () => {
  const A = new Float32Array(12), B = new Float32Array(12), C = new Float32Array(9);
  const g = addon.gemmBf16 as (...args: unknown[]) => void;
  const bad: unknown[][] = [
    [false, false, 3, 3, 4, 1, new Float32Array(11), B, 0, C],
    [false, false, 3, 3, 4, 1, A, new Uint16Array(11), 0, C],
    [false, false, 3, 3, 4, 1, A, B, 0, new Float32Array(8)],
    [false, false, 3, 3, 4, 1, new Int16Array(12), B, 0, C],
    [false, false, 3, 3, 4, 1, A, B, 0, new Uint16Array(9)],
    [false, false, 3, 3, 4, 1, A, [1, 2], 0, C],
    [0, false, 3, 3, 4, 1, A, B, 0, C],
    [false, false, -1, 3, 4, 1, A, B, 0, C],
    [false, false, 3, 3.5, 4, 1, A, B, 0, C],
    [false, false, 1e9, 1e9, 1e9, 1, A, B, 0, C],
    [false, false, 3, 3, 4, 1, A, B, 0],
    [],
  ];
  for (const args of bad) assert.throws(() => g(...args), TypeError, `gemmBf16(${args.map((a) => (ArrayBuffer.isView(a) ? a.constructor.name : String(a))).join(', ')})`);
  const size = addon.gemmBf16PackedSize(4, 3) as number;
  assert.throws(() => addon.gemmBf16PackB(false, 4, 3, B, new Uint16Array(size - 1)), TypeError);
  assert.throws(() => addon.gemmBf16PackB(false, 4, 3, new Float32Array(11), new Uint16Array(size)), TypeError);
  assert.throws(() => addon.gemmBf16Packed(false, 3, 3, 4, 1, A, new Uint16Array(size - 1), 0, C), TypeError);
  assert.throws(() => addon.gemmBf16Packed(false, 3, 3, 4, 1, A, new Float32Array(size), 0, C), TypeError);
  assert.throws(() => refGemmBf16(false, false, 3, 3, 4, 1, new Float32Array(11), B, 0, C), TypeError);
  g(false, false, 2, 2, 2, 1, A, B, 0, C); // longer-than-needed arrays are fine
});

test('measureBf16Peak: about twice the fp32 FMA peak per instruction width', { skip: !support.avx512bf16 && 'no AVX512-BF16 here' }, () => {
  const r = addon.measureBf16Peak(0.05) as { gflops: number; threads: number };
  assert.ok(r.gflops > 0 && Number.isFinite(r.gflops));
  assert.equal(r.threads, numThreads());
});

test('the AMX path (untestable on CPUs without AMX) matches the reference under a software emulation of the tile instructions', { skip: bestIsa() !== 'avx512' && 'the emulation harness packs B with AVX-512' }, () => {
  const gxx = spawnSync('g++', ['--version'], { encoding: 'utf8' });
  if (gxx.status !== 0) assert.fail('g++ is needed to build the AMX emulation harness (it builds the addon too)');
  const dir = mkdtempSync(join(tmpdir(), 'mixtune-amx-'));
  try {
    const exe = join(dir, 'amx-emu');
    const root = packageRoot();
    const c = spawnSync('g++', ['-O1', '-std=c++17', `-I${join(root, 'native')}`, join(root, 'test', 'native', 'amx-emu.cpp'),
      join(root, 'native', 'gemm_bf16_avx512.cpp'), '-o', exe], { encoding: 'utf8' });
    assert.equal(c.status, 0, c.stderr);
    const r = spawnSync(exe, [], { encoding: 'utf8' });
    assert.equal(r.status, 0, r.stdout + r.stderr);
    assert.match(r.stdout, /all AMX emulation trials ok/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('mixtune bench gemm precision=bf16: one JSON line with the speedup over the fp32 GEMM; without bf16 a one-line error', () => {
  const bin = join(packageRoot(), 'bin', 'mixtune.js');
  const run = (env: Record<string, string>, ...args: string[]) =>
    spawnSync(process.execPath, [bin, 'bench', 'gemm', ...args], { encoding: 'utf8', env: { ...process.env, ...env } });
  const small = ['m=64', 'k=64,96', 'n=64', 'trans=nt,tn', 'seconds=0.02', 'peakSeconds=0.05', 'localPeakSeconds=0.01'];
  const r = run({ MIXTUNE_BF16: 'portable' }, 'precision=bf16', 'operands=packed', ...small);
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.precision, 'bf16');
  assert.equal(j.bf16, 'portable');
  assert.equal(j.operands, 'packed');
  assert.equal(j.shapes.length, 4);
  for (const s of j.shapes) assert.ok(s.gflops > 0 && s.fp32Gflops > 0 && s.speedup > 0 && s.ratio > 0, JSON.stringify(s));
  assert.ok(j.geomeanSpeedup > 0 && j.minSpeedup > 0);
  const none = run({ MIXTUNE_BF16: 'none' }, 'precision=bf16', ...small);
  assert.equal(none.status, 1);
  assert.match(none.stderr.trim(), /^mixtune: bench gemm precision=bf16 is unavailable: disabled by MIXTUNE_BF16=none$/);
  const bad = run({}, 'precision=fp16', ...small);
  assert.match(bad.stderr.trim(), /^mixtune: bench gemm: precision must be fp32 or bf16, got 'fp16'$/);
});

test('mixtune bench gemm skinny=compare: the skinny path timed against the packed path in one run; skinny=0 and bad values', () => {
  const bin = join(packageRoot(), 'bin', 'mixtune.js');
  const run = (...args: string[]) => spawnSync(process.execPath, [bin, 'bench', 'gemm', ...args], { encoding: 'utf8' });
  const small = ['m=200', 'k=64', 'n=16', 'trans=nt,tn', 'seconds=0.02', 'peakSeconds=0.05', 'localPeakSeconds=0.01'];
  const r = run('skinny=compare', ...small);
  assert.equal(r.status, 0, r.stderr);
  const j = JSON.parse(r.stdout);
  assert.equal(j.skinny, 'compare');
  assert.equal(j.shapes.length, 2);
  for (const s of j.shapes) assert.ok(s.gflops > 0 && s.packedGflops > 0 && s.skinnySpeedup > 0, JSON.stringify(s));
  assert.ok(j.geomeanSkinnySpeedup > 0 && j.minSkinnySpeedup > 0);
  const off = JSON.parse(run('skinny=0', ...small).stdout);
  assert.equal(off.skinny, '0');
  assert.equal(off.shapes[0].skinnySpeedup, undefined);
  assert.match(run('skinny=2', ...small).stderr.trim(), /^mixtune: bench gemm: skinny must be 0, 1 or compare, got '2'$/);
  assert.match(run('skinny=0', 'precision=bf16', ...small).stderr.trim(), /^mixtune: bench gemm: skinny= is for the fp32 GEMM/);
});
