// `mixtune bench train`: full training steps (forward, backward, AdamW) of a Llama-style model on
// random tokens: the same work as ../shared/peers/torch_llama_train.py, which it can run in the
// same process tree for a ratio measured in one run (peer=1, or peer=auto when torch is present).
//
// With recipe=miso-para|miso-succ|sft|moi it instead times training steps on recipe-shaped packed
// rows against rows holding exactly the same tokens and targets under other attention layouts, in
// one run (the variants alternate step by step; median of the steps after a warm-up):
//   miso-para / miso-succ: rows packed with MISO groups (inputs= inputs of about input_len tokens
//     (±25%), an output of about output_len tokens; para or successive positions) vs "sft": the
//     same rows with every group an ordinary n = 1 group, vs "causal": one plain causal row.
//   sft / moi: rows packed with n = 1 groups of about inputs·input_len + output_len tokens vs
//     "causal".
// Reports each variant's step time and the ratios miso/sft and packed/causal.
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
import { IGNORE, buildRow, type Group, type Row } from '../data/pack.js';
import { misoGroup } from '../data/recipes/groups.js';
import { makeMicroBatch } from '../train/batch.js';
import { addEstimates, checkMemory, estimateTrainMemory } from '../train/memory.js';
import { applyLora, trainableParams } from '../model/lora.js';
import { requireBf16 } from '../tensor/bf16.js';
import { Bf16Weights, parseBf16Ops, type Bf16Op } from '../tensor/bf16-weights.js';
import { Profiler, profiledKernels, setPhase, setProfiler, timed } from '../tensor/profile.js';
import { measurePeak } from './peak.js';

export const TRAIN_DEFAULTS = { vocab: 8192, dim: 512, layers: 8, heads: 8, kv_heads: 8, ffn: 1408, seq: 512, batch: 4, steps: 6 };

export const RECIPE_BENCH_DEFAULTS = { ...TRAIN_DEFAULTS, inputs: 4, input_len: 48, output_len: 96, seed: 1 };
const BENCH_RECIPES = ['sft', 'moi', 'miso-para', 'miso-succ'] as const;

export function benchTrain(params: Record<string, string>): Record<string, unknown> {
  if (params.recipe !== undefined) return benchTrainRecipe(params);
  const cfg = intParams('train', params, TRAIN_DEFAULTS, ['peer', 'force', 'verbose', 'checkpointing', 'lora', 'tied', 'bias', 'base_dtype', 'precision', 'compare', 'bf16_ops']);
  const flag = (k: string): boolean => {
    const v = params[k] ?? '0';
    if (v !== '0' && v !== '1') throw new MixtuneError(`bench train: ${k} must be 0 or 1, got '${v}'`);
    return v === '1';
  };
  const checkpointing = flag('checkpointing');
  const loraRank = params.lora === undefined ? 0 : Number(params.lora);
  if (!Number.isInteger(loraRank) || loraRank < 0) throw new MixtuneError(`bench train: lora must be a rank >= 0 (0 = full fine-tuning), got '${params.lora}'`);
  const baseDtype = params.base_dtype ?? 'f32';
  if (baseDtype !== 'f32' && baseDtype !== 'bf16') throw new MixtuneError(`bench train: base_dtype must be f32 or bf16, got '${baseDtype}'`);
  const baseBf16 = baseDtype === 'bf16';
  if (baseBf16 && loraRank === 0) throw new MixtuneError('bench train: base_dtype=bf16 is the frozen base of LoRA: add lora=R');
  if (baseBf16) requireBf16('bench train base_dtype=bf16');
  const precision = params.precision ?? 'fp32';
  if (precision !== 'fp32' && precision !== 'bf16') throw new MixtuneError(`bench train: precision must be fp32 or bf16, got '${precision}'`);
  if (precision === 'bf16') requireBf16('bench train precision=bf16');
  const bf16Ops = benchBf16Ops(params, precision);
  // compare=1 times a reference variant of the same model in this run, alternating step by step
  // (main, ref, ref, main, ...) so that load changes hit both alike: precision=bf16 against fp32
  // steps (the default with bf16), lora=R against full fine-tuning steps (adapters set aside,
  // every base weight trained by its own AdamW; with base_dtype=bf16, of a separate fp32 model).
  const compareFlag = params.compare ?? (precision === 'bf16' ? '1' : '0');
  if (compareFlag !== '0' && compareFlag !== '1') throw new MixtuneError(`bench train: compare must be 0 or 1, got '${compareFlag}'`);
  if (compareFlag === '1' && precision !== 'bf16' && loraRank === 0) {
    throw new MixtuneError('bench train: compare=1 needs precision=bf16 (fp32 steps beside the bf16 ones) or lora=R (full fine-tuning steps beside the LoRA ones)');
  }
  if (compareFlag === '1' && precision === 'bf16' && loraRank > 0 && params.compare !== undefined) {
    throw new MixtuneError('bench train: compare=1 compares bf16 with fp32 or LoRA with full fine-tuning, not both: drop precision=bf16 or lora');
  }
  const compareFull = compareFlag === '1' && loraRank > 0 && precision !== 'bf16';
  // A bf16-stored base cannot be fully fine-tuned: with base_dtype=bf16 the full fine-tuning
  // reference is a separate fp32 model drawn from the same seed (what a user would otherwise train).
  const separateFull = compareFull && baseBf16;
  const compare = compareFlag === '1' && (precision === 'bf16' || compareFull);
  if (params.verbose !== undefined && !['0', '1', 'cpu'].includes(params.verbose)) throw new MixtuneError(`bench train: verbose must be 0, 1 or cpu, got '${params.verbose}'`);
  const verbose = params.verbose === '1' || params.verbose === 'cpu';
  const peerMode = params.peer ?? 'auto';
  if (!['auto', '0', '1'].includes(peerMode)) throw new MixtuneError(`bench train: peer must be auto, 0 or 1, got '${peerMode}'`);
  // verbose=1: every kernel call and the ops' own loops / allocations are timed (src/tensor/profile.ts).
  const prof = verbose ? new Profiler(params.verbose === 'cpu' ? 'cpu' : 'wall') : null;
  const k = prof ? profiledKernels(nativeKernels()) : nativeKernels();
  const config = {
    vocabSize: cfg.vocab, dim: cfg.dim, hiddenDim: cfg.ffn, nLayers: cfg.layers, nHeads: cfg.heads, nKvHeads: cfg.kv_heads,
    headDim: cfg.dim / cfg.heads, maxSeqLen: cfg.seq, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: flag('tied'), qkvBias: flag('bias'),
  };
  const loraTargets = ['q', 'k', 'v', 'o', 'gate', 'up', 'down'] as const;
  const tokensPerMicroBatch = cfg.batch * cfg.seq;
  const lora = { rank: loraRank, targets: loraTargets };
  const estimate = separateFull
    // the LoRA model on its bf16 base and, beside it, the fp32 model trained in full
    ? addEstimates(
      estimateTrainMemory(config, { tokensPerMicroBatch, ...(checkpointing ? { checkpointing } : {}), lora, baseBf16 }),
      estimateTrainMemory(config, { tokensPerMicroBatch, ...(checkpointing ? { checkpointing } : {}) }))
    : estimateTrainMemory(config, {
      // compare=1 with LoRA also holds full fine-tuning's gradients and AdamW state
      tokensPerMicroBatch, ...(checkpointing ? { checkpointing } : {}), ...(loraRank > 0 && !compareFull ? { lora } : {}),
      baseBf16, precisionBf16: precision === 'bf16', ...(bf16Ops ? { bf16Ops } : {}),
    });
  checkMemory(estimate, 'bench train', {
    force: params.force === '1', fixes: 'use a smaller shape (vocab, dim, layers, ffn, seq, batch)',
  });
  // base_dtype=bf16: each matrix is rounded to bf16 as soon as it is drawn, so the fp32 model
  // never exists at once (as when `mixtune train` reads an HF folder straight into bf16)
  const model = LlamaModel.random(config, k, 0, 0.02, baseBf16 ? { bf16Matrices: true } : {});
  const fullModel = separateFull ? LlamaModel.random(config, k, 0, 0.02) : model;
  const baseParams = new Map([...fullModel.params].filter(([, t]) => t.requiresGrad));
  // (created before applyLora freezes the base: AdamW keeps only parameters that require grad)
  const fullOpt = compareFull ? new AdamW(baseParams, k, { weightDecay: 0.01 }) : null;
  if (loraRank > 0) applyLora(model, { rank: loraRank, alpha: 2 * loraRank, targets: [...loraTargets] });
  const trainable = trainableParams(model);
  if (precision === 'bf16') model.bf16 = new Bf16Weights(bf16Ops);
  const opt = new AdamW(trainable, k, { weightDecay: 0.01 });
  // compare=1 with LoRA: full fine-tuning steps of the same model (adapters set aside)
  const loraAdapters = new Map(model.adapters);
  const useFull = (full: boolean): void => {
    if (!compareFull || separateFull) return;
    model.adapters.clear();
    if (!full) for (const [name, ad] of loraAdapters) model.adapters.set(name, ad);
    for (const t of baseParams.values()) t.requiresGrad = full;
  };
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
  // The FMA peak is measured right before and after the steps: with a shared machine the ratio
  // of the two is what stays comparable between runs.
  const peakBefore = measurePeak(0.6, currentIsa() === 'avx512' ? 'avx512' : undefined);
  const times: number[] = [];
  const cpuTimes: number[] = [];
  const fp32Times: number[] = [];
  const fp32CpuTimes: number[] = [];
  const bf16Weights = model.bf16;
  let loss = 0;
  let fp32Loss = 0;
  let lastLoss = 0;
  const step = (bf16: boolean, full: boolean, profiled: boolean): [number, number] => {
    model.bf16 = bf16 ? bf16Weights : null;
    useFull(full);
    const stepParams = full ? baseParams : trainable;
    const stepOpt = full ? fullOpt! : opt;
    const stepModel = full ? fullModel : model;
    setProfiler(profiled ? prof : null);
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    setPhase('optimizer');
    timed('total', () => timed('zero_grad', () => {
      for (const t of stepParams.values()) t.zeroGrad();
    }));
    setPhase('forward');
    lastLoss = timed('total', () => stepModel.forward(inputs, targets, B, checkpointing ? { checkpointing } : {}).loss);
    setPhase('backward');
    timed('total', () => stepModel.backward());
    setPhase('optimizer');
    timed('total', () => {
      stepOpt.step(1e-4);
      bf16Weights?.invalidate();
    });
    const wall = (performance.now() - t0) / 1000;
    const c1 = process.cpuUsage(c0);
    setProfiler(null);
    return [wall, (c1.user + c1.system) / 1e6];
  };
  for (let s = 0; s < cfg.steps; s++) {
    // The first step (of each precision) is a warm-up and is not profiled; only the steps of the
    // benchmarked precision are profiled. With compare, the order alternates: bf16 fp32 fp32 bf16 ...
    const run = (fp32: boolean): void => {
      const [w, c] = step(!fp32 && precision === 'bf16', fp32 && compareFull, !fp32 && s > 0);
      (fp32 ? fp32Times : times).push(w);
      (fp32 ? fp32CpuTimes : cpuTimes).push(c);
      if (fp32) fp32Loss = lastLoss;
      else loss = lastLoss;
    };
    if (compare && s % 2 === 1) run(true);
    run(false);
    if (compare && s % 2 === 0) run(true);
  }
  model.bf16 = bf16Weights;
  useFull(false);
  setProfiler(null);
  const peakAfter = measurePeak(0.6, currentIsa() === 'avx512' ? 'avx512' : undefined);
  const steady = times.length > 1 ? times.slice(1) : times;
  const stepS = median(steady);
  const bestS = Math.min(...steady);
  const steadyCpu = cpuTimes.length > 1 ? cpuTimes.slice(1) : cpuTimes;
  const cpuS = median(steadyCpu);
  const tokens = B * T;
  const nparams = model.numParams();
  // The peer's formula: 6 FLOPs per token and matmul weight (forward 2, input and weight
  // gradients 2 + 2) plus attention. The embedding lookup is no matmul, but a tied table is also
  // the head. A frozen LoRA base has no weight gradient (4 per weight); the adapters are trained.
  const matmulParams = config.tiedEmbeddings ? nparams : nparams - cfg.vocab * cfg.dim;
  const weightFlops = loraRank > 0 ? 4 * matmulParams + 6 * trainableCount(trainable) : 6 * matmulParams;
  const flops = weightFlops * tokens + 6 * cfg.layers * T * cfg.dim * tokens;
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
    // Efficiency against the FMA peak (bench peak) measured in this run, before and after the steps.
    peak_gflops: round((peakBefore.gflops + peakAfter.gflops) / 2, 1),
    ratio_to_peak: round(flops / stepS / 1e9 / ((peakBefore.gflops + peakAfter.gflops) / 2), 3),
    ratio_to_peak_best: round(flops / bestS / 1e9 / Math.max(peakBefore.gflops, peakAfter.gflops), 3),
    // The same with CPU time instead of wall time (less sensitive to other processes on the cores):
    // FLOPs per CPU-second of the step × threads over the uncontended peak (cpuGflops).
    ratio_to_peak_cpu: round(((flops / cpuS) * numThreads()) / 1e9 / Math.max(peakBefore.cpuGflops, peakAfter.cpuGflops), 3),
    cpu_s_per_step: round(cpuS, 4),
    loss: round(loss, 4),
    // measured peak RSS of this process vs the preflight's estimate (src/train/memory.ts)
    peak_rss_mb: Math.round(process.resourceUsage().maxRSS / 1024),
    estimated_peak_mb: Math.round(estimate.total / 2 ** 20),
    trainable_params: [...trainable.values()].reduce((a, t) => a + t.size, 0),
    precision,
    ...(bf16Ops ? { bf16_ops: bf16Ops } : {}),
    cfg: { ...cfg, checkpointing: checkpointing ? 1 : 0, lora: loraRank, tied: config.tiedEmbeddings ? 1 : 0, bias: config.qkvBias ? 1 : 0, base_dtype: baseDtype },
  };
  if (compare) {
    // The fp32 steps of this run (same model and tokens, alternating with the bf16 steps; median
    // of the steps after each precision's warm-up): ratio_vs_fp32 = bf16 tokens/s over fp32
    // tokens/s (wall clock), ratio_vs_fp32_cpu = the same per CPU-second (robust to other load),
    // ratio_vs_fp32_paired = median over the step pairs run back to back of fp32 / bf16 wall time.
    const f32 = fp32Times.length > 1 ? fp32Times.slice(1) : fp32Times;
    const f32Cpu = fp32CpuTimes.length > 1 ? fp32CpuTimes.slice(1) : fp32CpuTimes;
    const f32S = median(f32), f32CpuS = median(f32Cpu);
    // With lora=R the reference is full fine-tuning: `full` and ratio_vs_full(_cpu, _paired).
    const paired = f32.map((t, i) => t / steady[i]!);
    const ref = compareFull ? 'full' : 'fp32';
    result[ref] = {
      step_s: round(f32S, 4), tokens_per_s: round(tokens / f32S, 1), cpu_s_per_step: round(f32CpuS, 4), loss: round(fp32Loss, 4),
      ...(compareFull ? { trainable_params: [...baseParams.values()].reduce((a, t) => a + t.size, 0), base_dtype: 'f32' } : {}),
    };
    result[`ratio_vs_${ref}`] = round(f32S / stepS, 3);
    result[`ratio_vs_${ref}_cpu`] = round(f32CpuS / cpuS, 3);
    result[`ratio_vs_${ref}_paired`] = round(median(paired), 3);
  }
  if (prof) {
    // Seconds per step by phase.kind (wall or CPU seconds); "other" is the phase's time outside
    // every timed kind.
    const n = steady.length;
    for (const phase of ['forward', 'backward', 'optimizer']) {
      let inner = 0;
      for (const [key, s] of prof.seconds) if (key.startsWith(phase + '.') && !key.endsWith('total')) inner += s;
      const total = prof.seconds.get(phase + '.total') ?? 0;
      if (total > 0) prof.seconds.set(phase + '.other', Math.max(0, total - inner));
    }
    result.profile_s = prof.table(n);
    // Per GEMM shape: seconds per step and GFLOP/s (slowest first); with verbose=cpu, gflops is
    // per CPU-second × threads, comparable with the uncontended peak (peak cpuGflops).
    result.profile_clock = prof.clock;
    result.gemm_shapes = Object.fromEntries([...prof.gemmShapes].sort((a, b) => b[1].s - a[1].s)
      .map(([key, e]) => [key, { s: round(e.s / n, 4), gflops: round((e.flops / e.s / 1e9) * (prof.clock === 'cpu' ? numThreads() : 1), 1) }]));
  }
  if (peerMode !== '0' && loraRank === 0 && !checkpointing && !config.tiedEmbeddings && !config.qkvBias) {
    // the peer runs fp32: ratio_vs_peer of a bf16 step is bf16 mixtune against fp32 PyTorch
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

/** The median (upper middle for an even count). */
function median(xs: readonly number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
}

export function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

function randomModel(cfg: typeof TRAIN_DEFAULTS): LlamaModel {
  return LlamaModel.random(
    {
      vocabSize: cfg.vocab, dim: cfg.dim, hiddenDim: cfg.ffn, nLayers: cfg.layers, nHeads: cfg.heads, nKvHeads: cfg.kv_heads,
      headDim: cfg.dim / cfg.heads, maxSeqLen: cfg.seq, normEps: 1e-5, ropeTheta: 10000, tiedEmbeddings: false, qkvBias: false,
    },
    nativeKernels(), 0,
  );
}

/**
 * One row of exactly T tokens packed with recipe-shaped groups; the last group is scaled down to
 * fill the row exactly.
 */
function recipeRow(recipe: (typeof BENCH_RECIPES)[number], T: number, c: typeof RECIPE_BENCH_DEFAULTS, rng: Rng): Row {
  const jitter = (x: number): number => Math.max(1, Math.round(x * (0.75 + 0.5 * rng.float())));
  const ids = (n: number): number[] => Array.from({ length: n }, () => rng.int(c.vocab));
  const groups: Group[] = [];
  let left = T;
  const miso = recipe === 'miso-para' || recipe === 'miso-succ';
  while (left > 0) {
    let lens = miso ? Array.from({ length: c.inputs }, () => jitter(c.input_len)) : [];
    let out = miso ? jitter(c.output_len) : jitter(c.inputs * c.input_len + c.output_len);
    const size = lens.reduce((a, b) => a + b, 0) + out;
    if (size > left) {
      const f = left / size;
      lens = lens.map((l) => Math.max(1, Math.floor(l * f)));
      out = left - lens.reduce((a, b) => a + b, 0);
      if (out < 2 || (miso && lens.length < 2)) {
        lens = [];
        out = left; // too small for a MISO group: an n = 1 filler
      }
    }
    const output = ids(out);
    if (lens.length >= 2) {
      groups.push(misoGroup(lens.map(ids), output, output.slice(), { positions: recipe === 'miso-succ' ? 'succ' : 'para', source: 'bench' }));
    } else {
      const targets = output.slice(1).concat([IGNORE]);
      groups.push({ tokens: output, targets, positions: output.map((_, i) => i), nInputs: 1, source: 'bench' });
    }
    left -= size > left ? left : size;
  }
  return buildRow(groups);
}

/** The same tokens and targets as `row` with every group an ordinary n = 1 group (positions kept). */
function asSftRow(row: Row): Row {
  return { ...row, part: new Int32Array(row.length), groups: row.groups.map(() => ({ nInputs: 1, weighting: 'uniform' as const })) };
}

/** The same tokens and targets as one plain causal row (positions 0..T-1). */
function asCausalRow(row: Row): Row {
  const positions = new Int32Array(row.length);
  for (let t = 0; t < row.length; t++) positions[t] = t;
  return { ...row, positions, group: new Int32Array(row.length), part: new Int32Array(row.length), groups: [{ nInputs: 1, weighting: 'uniform' }] };
}

/** bf16_ops=a,b (training.bf16_ops): which products run on bf16 operands; needs precision=bf16. */
function benchBf16Ops(params: Record<string, string>, precision: string): Bf16Op[] | undefined {
  if (params.bf16_ops === undefined) return undefined;
  if (precision !== 'bf16') throw new MixtuneError('bench train: bf16_ops needs precision=bf16');
  return parseBf16Ops(params.bf16_ops, 'bench train: bf16_ops');
}

function benchTrainRecipe(params: Record<string, string>): Record<string, unknown> {
  const recipe = params.recipe as (typeof BENCH_RECIPES)[number];
  if (!(BENCH_RECIPES as readonly string[]).includes(recipe)) throw new MixtuneError(`bench train: recipe must be ${BENCH_RECIPES.join(', ')}, got '${params.recipe}'`);
  const c = intParams('train', params, RECIPE_BENCH_DEFAULTS, ['recipe', 'precision', 'bf16_ops']);
  if (c.steps < 2) throw new MixtuneError('bench train: recipe mode needs steps >= 2 (the first step is a warm-up)');
  const precision = params.precision ?? 'fp32';
  if (precision !== 'fp32' && precision !== 'bf16') throw new MixtuneError(`bench train: precision must be fp32 or bf16, got '${precision}'`);
  if (precision === 'bf16') requireBf16('bench train precision=bf16');
  const bf16Ops = benchBf16Ops(params, precision);
  const model = randomModel(c);
  if (precision === 'bf16') model.bf16 = new Bf16Weights(bf16Ops);
  const opt = new AdamW(model.params, model.kernels, { weightDecay: 0.01 });
  const rng = new Rng(c.seed);
  const rows = Array.from({ length: c.batch }, () => recipeRow(recipe, c.seq, c, rng));
  const miso = recipe === 'miso-para' || recipe === 'miso-succ';
  const variants: [string, Row[]][] = [
    [miso ? recipe : 'packed', rows],
    ...(miso ? ([['sft', rows.map(asSftRow)]] as [string, Row[]][]) : []),
    ['causal', rows.map(asCausalRow)],
  ];
  const batches = variants.map(([name, rs]) => [name, makeMicroBatch(rs, 0)] as const);
  const times = new Map<string, number[]>(batches.map(([n]) => [n, []]));
  const losses = new Map<string, number>();
  for (let s = 0; s < c.steps; s++) {
    for (const [name, mb] of batches) {
      const t0 = performance.now();
      model.zeroGrad();
      const r = model.forward(mb.inputs, mb.targets, mb.batch, { positions: mb.positions, ...(mb.layout ? { layout: mb.layout } : {}) });
      model.backward();
      opt.step(1e-5);
      model.bf16?.invalidate();
      times.get(name)!.push((performance.now() - t0) / 1000);
      losses.set(name, r.loss);
    }
  }
  const median = (a: number[]): number => {
    const x = a.slice(1).sort((p, q) => p - q);
    return x.length % 2 ? x[(x.length - 1) / 2]! : (x[x.length / 2 - 1]! + x[x.length / 2]!) / 2;
  };
  const stepS: Record<string, number> = {};
  for (const [name, t] of times) stepS[name] = round(median(t), 4);
  const groupsPerRow = round(rows.reduce((a, r) => a + r.groups.length, 0) / rows.length, 2);
  const misoGroups = rows.reduce((a, r) => a + r.groups.filter((g) => g.nInputs > 1).length, 0);
  const first = variants[0]![0];
  return {
    bench: 'train',
    recipe,
    precision,
    ...(bf16Ops ? { bf16_ops: bf16Ops } : {}),
    isa: currentIsa(),
    threads: numThreads(),
    params: model.numParams(),
    tokens_per_step: rows.reduce((a, r) => a + r.length, 0),
    groups_per_row: groupsPerRow,
    ...(miso ? { miso_groups: misoGroups } : {}),
    step_s: stepS,
    ...(miso ? { ratio_vs_sft: round(stepS[first]! / stepS.sft!, 3), ratio_sft_vs_causal: round(stepS.sft! / stepS.causal!, 3) } : {}),
    ratio_vs_causal: round(stepS[first]! / stepS.causal!, 3),
    loss: Object.fromEntries([...losses].map(([k, v]) => [k, round(v, 4)])),
    cfg: c,
  };
}

function trainableCount(trainable: Map<string, { size: number }>): number {
  let n = 0;
  for (const t of trainable.values()) n += t.size;
  return n;
}
