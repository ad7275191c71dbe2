// `mixtune bench train`: full training steps (forward, backward, AdamW) of a Llama-style model on
// random tokens: the same work as ../shared/peers/torch_llama_train.py, which it can run in the
// same process tree for a ratio measured in one run (peer=1, or peer=auto when torch is present).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { LlamaModel } from '../model/llama.js';
import { nativeKernels } from '../tensor/native.js';
import { AdamW } from '../train/adamw.js';
import { Rng } from '../util/rng.js';
import { currentIsa, numThreads } from '../native.js';
import { sharedDir } from '../util/paths.js';
import { MixtuneError } from '../util/errors.js';
import { intParams } from './params.js';

export const TRAIN_DEFAULTS = { vocab: 8192, dim: 512, layers: 8, heads: 8, kv_heads: 8, ffn: 1408, seq: 512, batch: 4, steps: 6 };

export function benchTrain(params: Record<string, string>): Record<string, unknown> {
  const cfg = intParams('train', params, TRAIN_DEFAULTS, ['peer']);
  const peerMode = params.peer ?? 'auto';
  if (!['auto', '0', '1'].includes(peerMode)) throw new MixtuneError(`bench train: peer must be auto, 0 or 1, got '${peerMode}'`);
  const k = nativeKernels();
  const model = LlamaModel.random(
    {
      vocabSize: cfg.vocab, dim: cfg.dim, hiddenDim: cfg.ffn, nLayers: cfg.layers, nHeads: cfg.heads, nKvHeads: cfg.kv_heads,
      headDim: cfg.dim / cfg.heads, maxSeqLen: cfg.seq, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: false, qkvBias: false,
    },
    k, 0,
  );
  const opt = new AdamW(model.params, k, { weightDecay: 0.01 });
  const B = cfg.batch;
  const T = cfg.seq;
  const rng = new Rng(0);
  const inputs = new Int32Array(B * T);
  const targets = new Int32Array(B * T);
  for (let b = 0; b < B; b++) {
    const row = Array.from({ length: T + 1 }, () => rng.int(cfg.vocab));
    for (let t = 0; t < T; t++) {
      inputs[b * T + t] = row[t]!;
      targets[b * T + t] = row[t + 1]!;
    }
  }
  const times: number[] = [];
  let loss = 0;
  for (let s = 0; s < cfg.steps; s++) {
    const t0 = performance.now();
    model.zeroGrad();
    loss = model.forward(inputs, targets, B).loss;
    model.backward();
    opt.step(1e-4);
    times.push((performance.now() - t0) / 1000);
  }
  const steady = times.length > 1 ? times.slice(1) : times;
  const stepS = [...steady].sort((a, b) => a - b)[Math.floor(steady.length / 2)]!;
  const tokens = B * T;
  const nparams = model.numParams();
  const nonemb = nparams - cfg.vocab * cfg.dim;
  const flops = 6 * nonemb * tokens + 6 * cfg.layers * T * cfg.dim * tokens; // the peer's formula
  const result: Record<string, unknown> = {
    bench: 'train',
    impl: 'mixtune',
    isa: currentIsa(),
    threads: numThreads(),
    params: nparams,
    tokens_per_step: tokens,
    step_s: round(stepS, 4),
    tokens_per_s: round(tokens / stepS, 1),
    gflops: round(flops / stepS / 1e9, 1),
    loss: round(loss, 4),
    cfg,
  };
  if (peerMode !== '0') {
    const peer = runTorchPeer(cfg, peerMode === '1');
    if (peer) {
      result.peer = peer;
      const pt = Number(peer.tokens_per_s);
      if (pt > 0) result.ratio_vs_peer = round(tokens / stepS / pt, 3);
    }
  }
  return result;
}

/** Runs the PyTorch peer with the same overrides; null when unavailable and not required. */
function runTorchPeer(cfg: Record<string, number>, required: boolean): Record<string, unknown> | null {
  const script = join(sharedDir(), 'peers', 'torch_llama_train.py');
  const python = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';
  const fail = (why: string): null => {
    if (required) throw new MixtuneError(`bench train: the PyTorch peer failed: ${why}`);
    return null;
  };
  if (!existsSync(script)) return fail(`${script} not found`);
  const probe = spawnSync(python, ['-c', 'import torch'], { encoding: 'utf8' });
  if (probe.status !== 0) return fail('python3 cannot import torch (apt-get install -y python3-torch libopenblas0-pthread)');
  const args = [script, ...Object.entries(cfg).map(([key, v]) => `${key}=${v}`)];
  const env = { ...process.env, THREADS: String(numThreads()), OPENBLAS_CORETYPE: currentIsa() === 'avx512' ? 'SkylakeX' : 'Haswell' };
  const r = spawnSync(python, args, { encoding: 'utf8', env, maxBuffer: 1 << 24 });
  if (r.status !== 0) return fail((r.stderr || '').trim().split('\n').pop() ?? `exit ${r.status}`);
  const line = r.stdout.trim().split('\n').pop() ?? '';
  try {
    return JSON.parse(line) as Record<string, unknown>;
  } catch {
    return fail(`unparsable output: ${line.slice(0, 200)}`);
  }
}

export function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}
