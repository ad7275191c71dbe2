// Hugging Face model folders (LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM):
//   config.json, model.safetensors or model.safetensors.index.json + shards, generation_config.json,
//   tokenizer files.
//
// Tensor names and shapes are exactly transformers' (src/model/config.ts parameterShapes); q/k
// rows are in transformers' rotate-half RoPE layout, which is also mixtune's internal layout, so
// weights are stored as-is (llama2.c's interleaved layout is converted when a .bin is loaded).
//
// Saving writes a whole folder atomically: everything goes into `DIR.tmp-<random>` beside DIR,
// files are fsynced, then the temporary folder is renamed to DIR. An existing non-empty DIR is
// refused unless `overwrite` is set; with `overwrite` the old DIR is renamed aside, the new one
// renamed in, and the old one deleted (a crash in between leaves `DIR.old-<random>` behind, never a
// half-written DIR). An existing empty DIR is replaced without asking.
import {
  closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync,
} from 'node:fs';
import { basename, dirname, isAbsolute, join, normalize, resolve } from 'node:path';
import { randomBytes } from 'node:crypto';
import { type LlamaConfig, parameterShapes, validateConfig } from '../model/config.js';
import type { LlamaModel } from '../model/llama.js';
import { MixtuneError } from '../util/errors.js';
import { configFromHf, configToHf } from './hf-config.js';
import { readSafetensors, writeSafetensors, type TensorToWrite } from './safetensors.js';

export type HfArch = 'llama' | 'mistral' | 'qwen2';

/** generation_config.json as transformers writes it (snake_case keys, kept as parsed). */
export interface GenerationConfig {
  bos_token_id?: number;
  eos_token_id?: number | number[];
  pad_token_id?: number;
  do_sample?: boolean;
  [key: string]: unknown;
}

export interface HfModelFiles<W extends Float32Array | Uint16Array = Float32Array> {
  config: LlamaConfig;
  /**
   * Weights under transformers' names (exactly parameterShapes(config)): fp32, or bf16 bits for the
   * matrices when loaded with `bf16Matrices`.
   */
  weights: Map<string, W>;
  /** generation_config.json, when the folder has one. */
  generationConfig?: GenerationConfig;
  /** The parsed config.json (for fields mixtune does not model, e.g. bos_token_id). */
  hfConfig: Record<string, unknown>;
  /** model_type of config.json. */
  arch: HfArch;
}

/** Tensors a checkpoint may carry that mixtune recomputes (ignored on load). */
const HARMLESS = /^model\.layers\.\d+\.self_attn\.rotary_emb\.inv_freq$/;

function fsCode(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  const text: Record<string, string> = { ENOENT: 'no such file', EACCES: 'permission denied', EISDIR: 'is a directory', ENOTDIR: 'a parent is not a directory', ENOSPC: 'no space left on device' };
  return code ? `${text[code] ?? 'I/O error'} (${code})` : (e as Error).message.split('\n')[0]!;
}

function readJson(path: string, what: string): unknown {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (e) {
    throw new MixtuneError(`${path}: cannot read ${what}: ${fsCode(e)}`);
  }
  try {
    return JSON.parse(text);
  } catch (e) {
    throw new MixtuneError(`${path}: ${what} is not valid JSON (${(e as Error).message.split('\n')[0]})`);
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/**
 * Loads an HF model folder: config.json (via configFromHf: unsupported options are refused by
 * name), then model.safetensors or model.safetensors.index.json with its shards (F32/F16/BF16,
 * decoded to fp32 one shard at a time), then generation_config.json if present.
 *
 * Checks: every expected tensor present exactly once with the exact shape; unexpected tensors
 * are an error except rotary inv_freq buffers and lm_head.weight of a tied model; every shard
 * named by the index exists; shard names stay inside DIR. Every error is a one-line MixtuneError
 * naming the file.
 */
export interface LoadHfOptions {
  /** Keep every matrix (embedding, projections, head) as bf16 bits, never as fp32 (a frozen LoRA base). */
  bf16Matrices?: boolean;
}

export function loadHfModel(dir: string): HfModelFiles;
export function loadHfModel(dir: string, opts: LoadHfOptions): HfModelFiles<Float32Array | Uint16Array>;
export function loadHfModel(dir: string, opts: LoadHfOptions = {}): HfModelFiles<Float32Array | Uint16Array> {
  let st;
  try {
    st = statSync(dir);
  } catch (e) {
    throw new MixtuneError(`${dir}: cannot open model folder: ${fsCode(e)}`);
  }
  if (!st.isDirectory()) throw new MixtuneError(`${dir}: not a folder (expected a Hugging Face model folder with config.json)`);
  const cfgPath = join(dir, 'config.json');
  if (!existsSync(cfgPath)) throw new MixtuneError(`${cfgPath}: not found (a Hugging Face model folder needs config.json)`);
  const hfConfig = readJson(cfgPath, 'config.json');
  const config = configFromHf(hfConfig, cfgPath);
  validateConfig(config, cfgPath);
  const raw = hfConfig as Record<string, unknown>;
  const arch = (typeof raw.model_type === 'string' ? raw.model_type : config.qkvBias ? 'qwen2' : 'llama') as HfArch;

  const expected = parameterShapes(config);
  const single = join(dir, 'model.safetensors');
  const indexPath = join(dir, 'model.safetensors.index.json');
  let shards: { file: string; path: string; listed: Set<string> | null }[];
  if (existsSync(single)) {
    shards = [{ file: 'model.safetensors', path: single, listed: null }];
  } else if (existsSync(indexPath)) {
    shards = readIndex(dir, indexPath);
  } else {
    const other = ['pytorch_model.bin', 'pytorch_model.bin.index.json', 'model.gguf'].find((f) => existsSync(join(dir, f)));
    throw new MixtuneError(`${dir}: no model.safetensors or model.safetensors.index.json${other ? ` (found ${other}; only safetensors weights are supported)` : ''}`);
  }

  const weights = new Map<string, Float32Array | Uint16Array>();
  const where = new Map<string, string>(); // tensor -> shard file it was found in
  for (const shard of shards) {
    // One shard's bytes at a time: they are dropped when the next shard is read.
    const sf = readSafetensors(shard.path);
    for (const [name, info] of sf.tensors) {
      const prev = where.get(name);
      if (prev !== undefined) {
        throw new MixtuneError(`${shard.path}: tensor ${name} is also in ${prev} (each tensor must be stored exactly once)`);
      }
      where.set(name, shard.file);
      if (shard.listed && !shard.listed.has(name) && !HARMLESS.test(name)) {
        throw new MixtuneError(`${shard.path}: tensor ${name} is not mapped to this shard by ${indexPath}`);
      }
      const shape = expected.get(name);
      if (!shape) {
        if (HARMLESS.test(name)) continue;
        if (name === 'lm_head.weight' && config.tiedEmbeddings) continue; // tied: the embedding is the head
        throw new MixtuneError(`${shard.path}: unexpected tensor ${name} (not part of a ${arch} model with this config.json)`);
      }
      if (info.shape.length !== shape.length || info.shape.some((d, i) => d !== shape[i])) {
        throw new MixtuneError(`${shard.path}: tensor ${name} has shape [${info.shape.join(', ')}], expected [${shape.join(', ')}]`);
      }
      weights.set(name, opts.bf16Matrices && shape.length === 2 ? sf.readBf16(name) : sf.read(name));
    }
    if (shard.listed) {
      for (const name of shard.listed) {
        if (!sf.tensors.has(name)) throw new MixtuneError(`${shard.path}: tensor ${name} is missing (${indexPath} maps it to this shard)`);
      }
    }
  }
  for (const name of expected.keys()) {
    if (!weights.has(name)) {
      const hint = name === 'lm_head.weight' ? ' (config.json has tie_word_embeddings: false)' : '';
      throw new MixtuneError(`${shards.length === 1 ? shards[0]!.path : indexPath}: missing tensor ${name}${hint}`);
    }
  }

  const genPath = join(dir, 'generation_config.json');
  let generationConfig: GenerationConfig | undefined;
  if (existsSync(genPath)) {
    const g = readJson(genPath, 'generation_config.json');
    if (!isObject(g)) throw new MixtuneError(`${genPath}: generation_config.json is not a JSON object`);
    generationConfig = g as GenerationConfig;
  }
  return { config, weights, hfConfig: raw, arch, ...(generationConfig ? { generationConfig } : {}) };
}

function readIndex(dir: string, indexPath: string): { file: string; path: string; listed: Set<string> }[] {
  const idx = readJson(indexPath, 'safetensors index');
  if (!isObject(idx) || !isObject(idx.weight_map)) throw new MixtuneError(`${indexPath}: weight_map must be an object {tensor: shard file}`);
  const byShard = new Map<string, Set<string>>();
  for (const [name, file] of Object.entries(idx.weight_map)) {
    if (typeof file !== 'string' || file === '') throw new MixtuneError(`${indexPath}: weight_map.${name} must be a shard file name`);
    const norm = normalize(file);
    if (isAbsolute(file) || norm.startsWith('..')) throw new MixtuneError(`${indexPath}: weight_map.${name} points outside the folder (${file})`);
    let set = byShard.get(norm);
    if (!set) byShard.set(norm, (set = new Set()));
    set.add(name);
  }
  if (byShard.size === 0) throw new MixtuneError(`${indexPath}: weight_map is empty`);
  const out = [...byShard].sort((a, b) => (a[0] < b[0] ? -1 : 1)).map(([file, listed]) => ({ file, path: join(dir, file), listed }));
  for (const s of out) if (!existsSync(s.path)) throw new MixtuneError(`${s.path}: shard not found (listed in ${indexPath})`);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Saving

export interface SaveHfOptions {
  /** Tensor storage dtype (default F32). BF16 rounds to nearest even. */
  dtype?: 'F32' | 'BF16';
  /** model_type / architecture of config.json (default: qwen2 when qkvBias, else llama). */
  arch?: HfArch;
  /** Extra config.json fields (e.g. bos_token_id, eos_token_id). */
  configExtra?: Record<string, unknown>;
  /** Written as generation_config.json when given. */
  generationConfig?: GenerationConfig;
  /** Files to place in the folder: name -> contents (an object is written as indented JSON). */
  tokenizerFiles?: Record<string, string | Uint8Array | object>;
  /** Called with the temporary folder before it is renamed into place (write more files there). */
  beforeCommit?: (tmpDir: string) => void;
  /** Replace an existing non-empty DIR (default false: refuse). */
  overwrite?: boolean;
}

/** Throws a one-line MixtuneError when DIR cannot be written as a new model folder. */
export function checkOutputDir(dir: string, overwrite = false): void {
  if (!existsSync(dir)) {
    const parent = dirname(resolve(dir));
    if (!existsSync(parent)) throw new MixtuneError(`${dir}: parent folder ${parent} does not exist`);
    return;
  }
  if (!statSync(dir).isDirectory()) throw new MixtuneError(`${dir}: exists and is not a folder`);
  if (!overwrite && readdirSync(dir).length > 0) throw new MixtuneError(`${dir}: folder exists and is not empty (pass --overwrite to replace it)`);
}

function writeFileSynced(path: string, data: string | Uint8Array): void {
  const fd = openSync(path, 'wx');
  try {
    const buf = typeof data === 'string' ? Buffer.from(data, 'utf8') : data;
    let done = 0;
    while (done < buf.length) done += writeSync(fd, buf, done, Math.min(buf.length - done, 1 << 30));
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    /* not supported on every platform/filesystem */
  }
}

/**
 * Saves a model (or config + fp32 weights under HF names) as an HF folder: config.json
 * (configToHf), model.safetensors (F32 or BF16; tensors as-is: mixtune's layout is transformers'),
 * generation_config.json and tokenizer files when given. Atomic (see the file comment).
 */
export function saveHfModel(
  dir: string,
  src: LlamaModel | { config: LlamaConfig; weights: Map<string, Float32Array> },
  opts: SaveHfOptions = {},
): void {
  const config = src.config;
  validateConfig(config, dir);
  const tensors = new Map<string, TensorToWrite>();
  const shapes = parameterShapes(config);
  const get = (name: string): Float32Array | undefined =>
    'params' in src ? src.params.get(name)?.data : src.weights.get(name);
  for (const [name, shape] of shapes) {
    const data = get(name);
    const n = shape.reduce((a, b) => a * b, 1);
    if (!data) throw new MixtuneError(`${dir}: cannot save model: missing tensor ${name}`);
    if (data.length !== n) throw new MixtuneError(`${dir}: cannot save model: tensor ${name} has ${data.length} values, expected ${n} [${shape.join(', ')}]`);
    tensors.set(name, { shape, data });
  }
  if ('params' in src && 'adapters' in src && (src as LlamaModel).adapters.size > 0) {
    throw new MixtuneError(`${dir}: cannot save model: it has LoRA adapters; merge them first (mergeLora)`);
  }
  if (!('params' in src)) {
    for (const name of src.weights.keys()) if (!shapes.has(name)) throw new MixtuneError(`${dir}: cannot save model: unexpected tensor ${name}`);
  }
  checkOutputDir(dir, opts.overwrite);

  const dtype = opts.dtype ?? 'F32';
  const arch = opts.arch ?? (config.qkvBias ? 'qwen2' : 'llama');
  if (config.qkvBias && arch !== 'qwen2') throw new MixtuneError(`${dir}: cannot save model: q/k/v biases need arch qwen2, not ${arch}`);
  if (!config.qkvBias && arch === 'qwen2') throw new MixtuneError(`${dir}: cannot save model: arch qwen2 needs q/k/v biases`);
  const hfConfig = configToHf(config, arch, { torch_dtype: dtype === 'F32' ? 'float32' : 'bfloat16', ...opts.configExtra });

  const parent = dirname(resolve(dir));
  const tmp = join(parent, `${basename(resolve(dir))}.tmp-${randomBytes(4).toString('hex')}`);
  try {
    mkdirSync(tmp);
  } catch (e) {
    throw new MixtuneError(`${tmp}: cannot create temporary folder: ${fsCode(e)}`);
  }
  let committed = false;
  try {
    writeFileSynced(join(tmp, 'config.json'), JSON.stringify(hfConfig, null, 2) + '\n');
    if (opts.generationConfig) writeFileSynced(join(tmp, 'generation_config.json'), JSON.stringify(opts.generationConfig, null, 2) + '\n');
    writeSafetensors(join(tmp, 'model.safetensors'), tensors, { dtype, metadata: { format: 'pt' } });
    for (const [name, contents] of Object.entries(opts.tokenizerFiles ?? {})) {
      if (name !== basename(name) || name === '' || name.startsWith('.')) throw new MixtuneError(`${dir}: invalid tokenizer file name ${JSON.stringify(name)}`);
      const data = typeof contents === 'string' || contents instanceof Uint8Array ? contents : JSON.stringify(contents, null, 2) + '\n';
      writeFileSynced(join(tmp, name), data);
    }
    opts.beforeCommit?.(tmp);
    fsyncDir(tmp);
    commitDir(tmp, dir, opts.overwrite ?? false);
    fsyncDir(parent);
    committed = true;
  } catch (e) {
    if (e instanceof MixtuneError) throw e;
    throw new MixtuneError(`${dir}: cannot save model folder: ${fsCode(e)}`);
  } finally {
    if (!committed) rmSync(tmp, { recursive: true, force: true });
  }
}

/** Moves the finished temporary folder to DIR (replacing an empty DIR, or any DIR with overwrite). */
function commitDir(tmp: string, dir: string, overwrite: boolean): void {
  if (!existsSync(dir)) {
    renameSync(tmp, dir);
    return;
  }
  checkOutputDir(dir, overwrite); // re-check: the folder may have changed while we wrote
  if (readdirSync(dir).length === 0) {
    rmSync(dir, { recursive: true });
    renameSync(tmp, dir);
    return;
  }
  const old = `${resolve(dir)}.old-${randomBytes(4).toString('hex')}`;
  renameSync(dir, old);
  try {
    renameSync(tmp, dir);
  } catch (e) {
    renameSync(old, dir); // put the old folder back
    throw e;
  }
  rmSync(old, { recursive: true, force: true });
}
