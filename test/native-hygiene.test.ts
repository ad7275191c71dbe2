// The native addon never takes the process down: C++ exceptions on any thread become JS errors,
// integer arguments are range-checked before conversion, the thread count is bounded, and a
// resize from another JS thread cannot overflow a running kernel's per-thread workspace.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { Rng } from '../src/util/rng.js';
import { native, numThreads, setNumThreads } from '../src/native.js';
import { nativeKernels } from '../src/tensor/native.js';
import { referenceKernels } from '../src/tensor/reference.js';
import { packageRoot } from '../src/util/paths.js';
import { randArray, assertClose } from './util.js';

const n = native();

function gemmWorks(): void {
  const rng = new Rng(3);
  const M = 64, N = 48, K = 80;
  const A = randArray(rng, M * K), B = randArray(rng, K * N);
  const C = new Float32Array(M * N), R = new Float32Array(M * N);
  nativeKernels().gemm(false, false, M, N, K, 1, A, B, 0, C);
  referenceKernels.gemm(false, false, M, N, K, 1, A, B, 0, R);
  assertClose(C, R, 1e-4, 1e-4, 'gemm after the error');
}

test('native: integer arguments beyond int64, Infinity and NaN are TypeErrors, not undefined behaviour', () => {
  const A = new Float32Array(4), B = new Float32Array(4), C = new Float32Array(4);
  for (const bad of [2 ** 64, 2 ** 63, 1e300, Infinity, -Infinity, NaN, 1.5, -1]) {
    assert.throws(() => n.gemm!(false, false, bad, 2, 2, 1, A, B, 0, C), TypeError, `M = ${bad}`);
  }
  assert.throws(() => setNumThreads(Infinity), TypeError);
  assert.throws(() => setNumThreads(2 ** 64), TypeError);
  gemmWorks();
});

test('native: setNumThreads is bounded; the pool keeps working after a refused size', () => {
  const before = numThreads();
  assert.throws(() => setNumThreads(1000), /setNumThreads: n must be <= 256/);
  assert.equal(numThreads(), before);
  gemmWorks();
});

test('native: an allocation failure on a pool thread is a JS error naming the function and the size; the pool stays usable', () => {
  const before = numThreads();
  setNumThreads(2);
  try {
    let err: (Error & { code?: string }) | null = null;
    try {
      n._allocProbe!(2 ** 52); // 16 PiB of floats: no machine has it
    } catch (e) {
      err = e as Error & { code?: string };
    }
    assert.ok(err, 'the impossible allocation did not fail');
    assert.match(err.message, /^_allocProbe: out of memory allocating [\d.]+ MiB for the allocation probe$/);
    assert.equal(err.code, 'ENOMEM');
    assert.equal(n._allocProbe!(1024), 2, 'both workers allocate afterwards');
    gemmWorks();
  } finally {
    setNumThreads(before);
  }
});

test('native: MIXTUNE_THREADS must be an integer in [1, 256] (a clear error, not a silent default)', () => {
  const script = `import('${packageRoot()}/dist/src/native.js').then((m) => { try { m.numThreads(); console.log('ok'); } catch (e) { console.log('ERR ' + e.message); } })`;
  for (const [v, want] of [['abc', /ERR .*MIXTUNE_THREADS='abc': expected an integer in \[1, 256\]/], ['0', /ERR .*MIXTUNE_THREADS='0'/], ['999', /ERR .*MIXTUNE_THREADS='999'/], ['3', /^ok/]] as const) {
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env: { ...process.env, MIXTUNE_THREADS: v }, encoding: 'utf8' });
    assert.equal(r.status, 0, r.stderr);
    assert.match(r.stdout.trim(), want, `MIXTUNE_THREADS=${v}`);
  }
});

test('native: setNumThreads from a worker thread while the main thread runs attention does not corrupt it', async () => {
  const before = numThreads();
  const rng = new Rng(11);
  const B = 2, T = 96, H = 4, Hkv = 2, D = 32;
  const q = randArray(rng, B * T * H * D), k = randArray(rng, B * T * Hkv * D), v = randArray(rng, B * T * Hkv * D);
  const want = new Float32Array(B * T * H * D), lseW = new Float32Array(B * H * T);
  referenceKernels.attentionForward(q, k, v, want, lseW, B, T, T, H, Hkv, D, 1 / Math.sqrt(D), 0);
  // The worker resizes the pool between 1 and 8 threads as fast as it can while we compute.
  const worker = new Worker(`
    const { parentPort } = require('node:worker_threads');
    import('${packageRoot()}/dist/src/native.js').then((m) => {
      let stop = false, resizes = 0;
      parentPort.on('message', () => { stop = true; });
      const loop = () => { for (let i = 0; i < 50 && !stop; i++) { m.setNumThreads(1 + (resizes++ % 8)); } if (stop) parentPort.postMessage(resizes); else setImmediate(loop); };
      loop();
    });`, { eval: true });
  const resizes = new Promise<number>((res) => worker.once('message', res));
  try {
    const out = new Float32Array(want.length), lse = new Float32Array(lseW.length);
    const t0 = Date.now();
    let calls = 0;
    while (Date.now() - t0 < 1500) {
      out.fill(0);
      nativeKernels().attentionForward(q, k, v, out, lse, B, T, T, H, Hkv, D, 1 / Math.sqrt(D), 0);
      assertClose(out, want, 1e-4, 1e-5, `attention output (call ${calls})`);
      calls++;
      await new Promise((r) => setImmediate(r)); // let the worker's messages through
    }
    worker.postMessage('stop');
    assert.ok((await resizes) > 10, 'the worker did not resize the pool concurrently');
    assert.ok(calls > 10);
  } finally {
    await worker.terminate();
    setNumThreads(before);
  }
});

test('out of memory under ulimit -v past the preflight (force=1): a one-line error and exit 1, no signal, no stack trace', () => {
  const bin = `${packageRoot()}/bin/mixtune.js`;
  // ~6 GB of weights against a 2 GB address-space limit
  const r = spawnSync('sh', ['-c', `ulimit -v 2000000 && exec "${process.execPath}" "${bin}" bench train vocab=32000 dim=2048 layers=24 heads=16 kv_heads=16 ffn=8192 seq=256 batch=1 steps=1 peer=0 force=1`], { encoding: 'utf8' });
  assert.equal(r.signal, null, `killed by ${r.signal}: ${r.stderr}`);
  assert.equal(r.status, 1, r.stderr);
  const lines = r.stderr.trim().split('\n');
  assert.equal(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /^mixtune: out of memory while running mixtune bench .*LoRA/);
});

test('bench train refuses a shape that cannot fit before allocating it (memory preflight)', () => {
  const bin = `${packageRoot()}/bin/mixtune.js`;
  const r = spawnSync('sh', ['-c', `ulimit -v 2000000 && exec "${process.execPath}" "${bin}" bench train vocab=32000 dim=2048 layers=24 heads=16 kv_heads=16 ffn=8192 seq=256 batch=1 steps=1 peer=0`], { encoding: 'utf8' });
  assert.equal(r.status, 1, r.stderr);
  assert.match(r.stderr.trim(), /^mixtune: bench train: estimated peak memory [\d.]+ GiB .* exceeds .*ulimit -v.*smaller shape.*--force/);
});
