// The PyTorch engine's layout attention (python/mixtune_torch/attention.py) against the native
// kernel: outputs and gradients on the same layouts — causal, packed groups, MISO uniform / fid /
// vanilla, grouped-query heads — with query blocks smaller than the row.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Rng } from '../src/util/rng.js';
import { nativeKernels } from '../src/tensor/native.js';
import { torchEnginePath } from '../src/torch/python.js';
import { buildLayout, randomRow, type Spec } from './layouts.js';
import { assertClose, randArray, torchPythonForTests } from './util.js';

const { python, skip } = torchPythonForTests();

const CASES: Array<{ name: string; rows: Spec[][] | null; B: number; T: number; H: number; Hkv: number; D: number; block: number; maxN?: number; seed?: number }> = [
  { name: 'causal', rows: [[{ len: 48 }], [{ len: 48 }]], B: 2, T: 48, H: 4, Hkv: 4, D: 16, block: 16 },
  { name: 'packed groups (MoI chunks) + padding', rows: [[{ len: 10 }, { len: 25 }, { len: 7 }], [{ len: 30 }]], B: 2, T: 45, H: 4, Hkv: 2, D: 8, block: 8 },
  { name: 'MISO uniform', rows: [[{ inputs: [9, 5, 12], out: 14, w: 'uniform' }]], B: 1, T: 40, H: 2, Hkv: 1, D: 16, block: 16 },
  { name: 'MISO fid', rows: [[{ inputs: [9, 5, 12], out: 14, w: 'fid' }]], B: 1, T: 40, H: 2, Hkv: 1, D: 16, block: 7 },
  { name: 'MISO vanilla', rows: [[{ inputs: [9, 5, 12], out: 14, w: 'vanilla' }]], B: 1, T: 40, H: 2, Hkv: 1, D: 16, block: 128 },
  { name: 'random packed MISO rows (all weightings, GQA)', rows: null, B: 3, T: 120, H: 4, Hkv: 2, D: 32, block: 32, maxN: 5, seed: 1 },
  { name: 'random packed MISO rows (heads 6/kv 3, odd block)', rows: null, B: 2, T: 97, H: 6, Hkv: 3, D: 24, block: 13, maxN: 4, seed: 2 },
];

for (const c of CASES) {
  test(`torch layout attention == native kernel: ${c.name}`, { skip }, () => {
    const rng = new Rng(c.seed ?? 7);
    const rows = c.rows ?? Array.from({ length: c.B }, () => randomRow(rng, c.T, c.maxN!));
    const L = buildLayout(rows, c.T);
    const { B, T } = L;
    const x = {
      q: randArray(rng, B * T * c.H * c.D), k: randArray(rng, B * T * c.Hkv * c.D),
      v: randArray(rng, B * T * c.Hkv * c.D), dOut: randArray(rng, B * T * c.H * c.D),
    };
    const scale = 1 / Math.sqrt(c.D);
    const nk = nativeKernels();
    const out = new Float32Array(B * T * c.H * c.D);
    const stats = new Float32Array(B * c.H * T * L.maxInputs);
    nk.attentionLayoutForward(x.q, x.k, x.v, out, stats, B, T, c.H, c.Hkv, c.D, scale, L.group, L.part, L.nInputs, L.weighting, L.maxInputs);
    const dq = new Float32Array(x.q.length);
    const dk = new Float32Array(x.k.length);
    const dv = new Float32Array(x.v.length);
    nk.attentionLayoutBackward(x.q, x.k, x.v, out, stats, x.dOut, dq, dk, dv, B, T, c.H, c.Hkv, c.D, scale, L.group, L.part, L.nInputs, L.weighting, L.maxInputs);

    const dir = mkdtempSync(join(tmpdir(), 'mixtune-torch-att-'));
    try {
      writeFileSync(join(dir, 'meta.json'), JSON.stringify({ B, T, heads: c.H, kv_heads: c.Hkv, head_dim: c.D, scale, block: c.block }));
      const put = (name: string, a: Float32Array | Int32Array) => writeFileSync(join(dir, name), Buffer.from(a.buffer, a.byteOffset, a.byteLength));
      put('q.f32', x.q); put('k.f32', x.k); put('v.f32', x.v); put('d_out.f32', x.dOut);
      put('group.i32', L.group); put('part.i32', L.part); put('n_inputs.i32', L.nInputs); put('weighting.i32', L.weighting);
      const r = spawnSync(python!, ['-m', 'mixtune_torch.check_attention', dir], { encoding: 'utf8', env: { ...process.env, PYTHONPATH: torchEnginePath() } });
      assert.equal(r.status, 0, r.stderr);
      const get = (name: string) => {
        const b = readFileSync(join(dir, name));
        return new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
      };
      assertClose(get('out.f32'), out, 1e-4, 1e-5, 'out');
      assertClose(get('dq.f32'), dq, 1e-4, 1e-5, 'dq');
      assertClose(get('dk.f32'), dk, 1e-4, 1e-5, 'dk');
      assertClose(get('dv.f32'), dv, 1e-4, 1e-5, 'dv');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
