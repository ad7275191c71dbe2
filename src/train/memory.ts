// Memory preflight: estimate the peak resident memory of a run before it starts, and compare it
// with what this process may use (cgroup limit, MemAvailable, the address-space rlimit), so that
// "out of memory" is an answer given in the first second, not a crash after data preparation.
//
// The estimate counts what mixtune actually holds (fp32 unless said otherwise):
//   weights (every parameter; with lora.base_dtype bf16 the base matrices at 2 bytes; with
//   training.precision bf16 plus two packed bf16 copies of every fp32 matrix), gradients + AdamW m and v for the trained ones (all of them, or the
//   LoRA adapters), activations kept for backward per token and layer
//   (norm out, q, k, v, attention out + stats, o-proj out, residual, norm out, gate, up, swiglu,
//   down, residual), the logits [tokens, vocab] (the loss gradient reuses them), one layer's worth
//   of backward scratch, and a fixed runtime base (Node, V8, the addon, thread stacks).
import { readFileSync } from 'node:fs';
import { parameterShapes, type LlamaConfig } from '../model/config.js';
import { MixtuneError } from '../util/errors.js';
import { bf16PackCounts, type Bf16Op } from '../tensor/bf16-weights.js';

export interface MemoryEstimate {
  /** Bytes by part; `total` is their sum. */
  weights: number;
  gradients: number;
  optimizer: number;
  activations: number;
  logits: number;
  runtime: number;
  kv_cache: number;
  total: number;
}

const F32 = 4;
/**
 * Node + V8 + the native addon + thread stacks: RSS of `mixtune bench train` with a tiny model
 * (71 MiB) plus some heap slack. Training reuses its activation buffers from step to step
 * (src/tensor/workspace.ts), so no garbage of dead steps adds to the peak.
 */
export const RUNTIME_BASE_BYTES = 80 * 1024 * 1024;

function sum(e: Omit<MemoryEstimate, 'total'>): MemoryEstimate {
  return { ...e, total: e.weights + e.gradients + e.optimizer + e.activations + e.logits + e.runtime + e.kv_cache };
}

/** Two models held in one process (e.g. a benchmark's reference beside the benchmarked one): one runtime. */
export function addEstimates(a: MemoryEstimate, b: MemoryEstimate): MemoryEstimate {
  return sum({
    weights: a.weights + b.weights, gradients: a.gradients + b.gradients, optimizer: a.optimizer + b.optimizer,
    activations: a.activations + b.activations, logits: a.logits + b.logits, runtime: Math.max(a.runtime, b.runtime), kv_cache: a.kv_cache + b.kv_cache,
  });
}

/** Number of parameters of a config (as LlamaModel allocates them). */
export function parameterCount(c: LlamaConfig): number {
  let n = 0;
  for (const shape of parameterShapes(c).values()) n += shape.reduce((a, b) => a * b, 1);
  return n;
}

/** LoRA adapter parameters: r × (in + out) per targeted linear layer. */
export function loraParameterCount(c: LlamaConfig, rank: number, targets: readonly string[]): number {
  const q = c.nHeads * c.headDim, kv = c.nKvHeads * c.headDim;
  const shape: Record<string, [number, number]> = {
    q: [q, c.dim], k: [kv, c.dim], v: [kv, c.dim], o: [c.dim, q], gate: [c.hiddenDim, c.dim], up: [c.hiddenDim, c.dim], down: [c.dim, c.hiddenDim],
  };
  let n = 0;
  for (const t of new Set(targets)) {
    const s = shape[t];
    if (s) n += rank * (s[0] + s[1]);
  }
  return n * c.nLayers;
}

/** Floats kept for backward per token and layer (see the header). */
function activationFloatsPerTokenLayer(c: LlamaConfig, maxInputs: number): number {
  const q = c.nHeads * c.headDim, kv = c.nKvHeads * c.headDim;
  return 6 * c.dim + 2 * q + 2 * kv + 3 * c.hiddenDim + c.nHeads * maxInputs + 2;
}

/** Parameters in matrices (embedding, projections, head): what bf16 storage / packing applies to. */
function matrixParameterCount(c: LlamaConfig): number {
  let n = 0;
  for (const shape of parameterShapes(c).values()) if (shape.length === 2) n += shape[0]! * shape[1]!;
  return n;
}

/** The largest matrix, in elements. */
function largestMatrix(c: LlamaConfig): number {
  let n = 0;
  for (const shape of parameterShapes(c).values()) if (shape.length === 2) n = Math.max(n, shape[0]! * shape[1]!);
  return n;
}

/** The bf16 GEMM packs a whole op(B) of up to this many bytes per call (native/gemm_bf16.cpp). */
const BF16_FULL_PACK_MAX_BYTES = 64 * 1024 * 1024;

export interface TrainMemoryOptions {
  tokensPerMicroBatch: number;
  lora?: { rank: number; targets: readonly string[] };
  maxInputs?: number;
  checkpointing?: boolean;
  /** lora.base_dtype bf16: the frozen base matrices stored as bf16. */
  baseBf16?: boolean;
  /** training.precision bf16: every fp32 matrix also kept as two packed bf16 copies. */
  precisionBf16?: boolean;
  /** training.bf16_ops under precisionBf16 (default all): which packed copies the matrices keep. */
  bf16Ops?: readonly Bf16Op[];
}

/** Peak memory of training `tokensPerMicroBatch` tokens per forward/backward. */
export function estimateTrainMemory(c: LlamaConfig, o: TrainMemoryOptions): MemoryEstimate {
  const params = parameterCount(c);
  const trained = o.lora ? loraParameterCount(c, o.lora.rank, o.lora.targets) : params;
  const perLayer = activationFloatsPerTokenLayer(c, o.maxInputs ?? 1);
  const T = o.tokensPerMicroBatch;
  const baseBf16 = o.baseBf16 === true && o.lora !== undefined;
  const matrices = matrixParameterCount(c);
  const base = baseBf16 ? (params - matrices) * F32 + matrices * 2 : params * F32;
  // bf16 packs: up to two per fp32 matrix (forward and input gradient; the LM head's under
  // bf16_ops lm_head, the rest under linear_forward / linear_input_grad); a bf16-stored matrix is
  // packed per call into one buffer of at most BF16_FULL_PACK_MAX_BYTES
  const n = bf16PackCounts(o.bf16Ops);
  const head = c.vocabSize * c.dim;
  const packs = (o.precisionBf16 ? (baseBf16 ? 0 : 2 * (n.trunk * (matrices - head) + n.head * head)) + (o.lora ? n.trunk * 2 * trained : 0) : 0) +
    (baseBf16 ? Math.min(BF16_FULL_PACK_MAX_BYTES, 2 * largestMatrix(c)) : 0);
  return sum({
    weights: base + (o.lora ? trained * F32 : 0) + packs,
    gradients: trained * F32,
    optimizer: 2 * trained * F32,
    // every layer's saved tensors, plus one layer's gradients while backward runs through it;
    // checkpointing keeps each layer's input, and one recomputed layer's saved tensors and its
    // gradients at a time (without the gradients the estimate was 5-18% below the measured peak)
    activations: T * (o.checkpointing ? c.dim * (c.nLayers + 1) + 2 * perLayer + 2 * c.dim : perLayer * (c.nLayers + 1) + 2 * c.dim) * F32,
    logits: T * c.vocabSize * F32,
    runtime: RUNTIME_BASE_BYTES,
    kv_cache: 0,
  });
}

/** Peak memory of generating with a KV cache of `contextTokens` per sequence (`sequences` caches). */
export function estimateGenerateMemory(c: LlamaConfig, o: { contextTokens: number; sequences?: number }): MemoryEstimate {
  const kv = c.nKvHeads * c.headDim;
  return sum({
    weights: parameterCount(c) * F32, gradients: 0, optimizer: 0,
    activations: 4 * (c.dim + c.hiddenDim) * F32, logits: c.vocabSize * F32, runtime: RUNTIME_BASE_BYTES,
    kv_cache: 2 * c.nLayers * o.contextTokens * kv * F32 * (o.sequences ?? 1),
  });
}

export interface MemoryBudget {
  /** Bytes this process may still add, and what limits it. */
  bytes: number;
  limitedBy: string;
}

function readNumber(path: string): number | null {
  try {
    const t = readFileSync(path, 'utf8').trim();
    if (t === 'max') return null;
    const n = Number(t);
    return Number.isFinite(n) && n > 0 ? n : null;
  } catch {
    return null;
  }
}

function meminfo(key: string): number | null {
  try {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/meminfo', 'utf8'));
    return m ? Number(m[1]) * 1024 : null;
  } catch {
    return null;
  }
}

function selfStatus(key: string): number {
  try {
    const m = new RegExp(`^${key}:\\s+(\\d+) kB`, 'm').exec(readFileSync('/proc/self/status', 'utf8'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** The address-space rlimit (ulimit -v) in bytes, or null when unlimited / unknown. */
function addressSpaceLimit(): number | null {
  try {
    const m = /^Max address space\s+(\S+)/m.exec(readFileSync('/proc/self/limits', 'utf8'));
    if (!m || m[1] === 'unlimited') return null;
    const n = Number(m[1]);
    return Number.isFinite(n) ? n : null;
  } catch {
    return null;
  }
}

/**
 * How much more memory this process can get: the smallest of the memory the system has available,
 * the cgroup's limit minus its usage, and the address-space rlimit minus the address space in use
 * (V8 and thread stacks reserve address space beyond what they touch, so that one is counted
 * against virtual size). Null when nothing can be read (not Linux): the preflight then passes.
 */
export function memoryBudget(): MemoryBudget | null {
  const rss = selfStatus('VmRSS');
  const options: MemoryBudget[] = [];
  const avail = meminfo('MemAvailable');
  if (avail !== null) options.push({ bytes: avail, limitedBy: 'MemAvailable' });
  const cgMax = readNumber('/sys/fs/cgroup/memory.max') ?? readNumber('/sys/fs/cgroup/memory/memory.limit_in_bytes');
  const cgCur = readNumber('/sys/fs/cgroup/memory.current') ?? readNumber('/sys/fs/cgroup/memory/memory.usage_in_bytes');
  if (cgMax !== null && cgMax < 2 ** 60) options.push({ bytes: cgMax - (cgCur ?? rss), limitedBy: 'the cgroup memory limit' });
  const as = addressSpaceLimit();
  if (as !== null) options.push({ bytes: as - selfStatus('VmSize'), limitedBy: 'ulimit -v' });
  if (options.length === 0) return null;
  const best = options.reduce((a, b) => (b.bytes < a.bytes ? b : a));
  // what this process already holds counts toward its estimated total
  return { bytes: Math.max(0, best.bytes) + rss, limitedBy: best.limitedBy };
}

export function formatBytes(b: number): string {
  return b >= 1024 ** 3 ? `${(b / 1024 ** 3).toFixed(2)} GiB` : `${(b / 1024 ** 2).toFixed(0)} MiB`;
}

/** One line: the estimate by part. */
export function describeEstimate(e: MemoryEstimate): string {
  const parts = (['weights', 'gradients', 'optimizer', 'activations', 'logits', 'kv_cache', 'runtime'] as const)
    .filter((k) => e[k] > 0).map((k) => `${k.replace('_', ' ')} ${formatBytes(e[k])}`);
  return `estimated peak memory ${formatBytes(e.total)} (${parts.join(', ')})`;
}

/**
 * Refuses a run whose estimate exceeds the budget (unless `force`), with the cheapest fixes.
 * Returns the budget for logging.
 */
export function checkMemory(e: MemoryEstimate, what: string, o: { force?: boolean; fixes: string }): MemoryBudget | null {
  const budget = memoryBudget();
  if (budget && e.total > budget.bytes && !o.force) {
    throw new MixtuneError(`${what}: ${describeEstimate(e)} exceeds the ${formatBytes(budget.bytes)} available (${budget.limitedBy}); ` +
      `${o.fixes}; or pass --force to try anyway`);
  }
  return budget;
}

export const TRAIN_MEMORY_FIXES = 'try LoRA (lora: {rank: 16}), a smaller training.micro_batch_size or data.max_len, or a smaller model';

export const GENERATE_MEMORY_FIXES = 'lower --max-new-tokens, or use a smaller model';

export const SERVE_MEMORY_FIXES = 'lower --context (the longest prompt + completion a request may use) or --max-inputs (MISO inputs per request, each with its own KV cache), or use a smaller model';

/** Refuses generation that cannot fit: the weights plus the KV caches for `contextTokens` each. */
export function checkGenerateMemory(c: LlamaConfig, o: { contextTokens: number; sequences?: number; force?: boolean; what: string; fixes?: string }): void {
  const e = estimateGenerateMemory(c, { contextTokens: Math.min(c.maxSeqLen, o.contextTokens), ...(o.sequences !== undefined ? { sequences: o.sequences } : {}) });
  checkMemory(e, o.what, { ...(o.force ? { force: true } : {}), fixes: o.fixes ?? GENERATE_MEMORY_FIXES });
}
