// safetensors read/write (https://huggingface.co/docs/safetensors): an 8-byte little-endian
// header length, a JSON header {name: {dtype, shape, data_offsets: [begin, end]}, __metadata__},
// then the raw little-endian tensor bytes. The reader trusts nothing: every size, offset and
// dtype × shape × byte count is checked before a byte of tensor data is touched.
import { closeSync, fsyncSync, openSync, readFileSync, renameSync, writeSync, existsSync, unlinkSync } from 'node:fs';
import { MixtuneError } from '../util/errors.js';

export type Dtype = 'F32' | 'F16' | 'BF16';

const DTYPE_BYTES: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };
const SUPPORTED = new Set(['F32', 'F16', 'BF16']);

export interface TensorInfo {
  name: string;
  dtype: string;
  shape: number[];
  begin: number; // byte offset inside the data section
  end: number;
}

export interface SafetensorsFile {
  path: string;
  tensors: Map<string, TensorInfo>;
  metadata: Record<string, string>;
  /** Decodes one tensor to fp32 (F32, F16 and BF16 are supported). */
  read(name: string): Float32Array;
  /** One tensor as bf16 bits: BF16 copied as stored, F32 / F16 rounded to nearest even. */
  readBf16(name: string): Uint16Array;
}

const MAX_HEADER = 100 * 1024 * 1024;

/** Parses and validates the header; throws MixtuneError naming the file on any inconsistency. */
export function parseSafetensors(path: string, bytes: Uint8Array): SafetensorsFile {
  const fail = (what: string): never => {
    throw new MixtuneError(`${path}: invalid safetensors file: ${what}`);
  };
  if (bytes.length < 8) fail(`${bytes.length} bytes is shorter than the 8-byte header length`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const headerLen = dv.getBigUint64(0, true);
  if (headerLen > BigInt(Math.min(MAX_HEADER, bytes.length - 8))) {
    fail(`header length ${headerLen} exceeds the file (${bytes.length} bytes)`);
  }
  const n = Number(headerLen);
  let header: unknown;
  try {
    header = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n)));
  } catch (e) {
    fail(`header is not valid UTF-8 JSON (${(e as Error).message.split('\n')[0]})`);
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) fail('header is not a JSON object');
  const dataStart = 8 + n;
  const dataLen = bytes.length - dataStart;
  const tensors = new Map<string, TensorInfo>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail('__metadata__ is not an object');
      metadata = {};
      for (const [k, v] of Object.entries(raw as Record<string, unknown>)) {
        if (typeof v !== 'string') fail(`__metadata__.${k} is not a string`);
        metadata[k] = v as string;
      }
      continue;
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) fail(`tensor ${name}: entry is not an object`);
    const e = raw as Record<string, unknown>;
    const dtype = e.dtype;
    if (typeof dtype !== 'string' || !(dtype in DTYPE_BYTES)) fail(`tensor ${name}: unknown dtype ${JSON.stringify(dtype)}`);
    const shape = e.shape;
    if (!Array.isArray(shape) || shape.some((d) => !Number.isSafeInteger(d) || d < 0)) fail(`tensor ${name}: shape must be a list of non-negative integers`);
    const offs = e.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || offs.some((d) => !Number.isSafeInteger(d) || d < 0)) {
      fail(`tensor ${name}: data_offsets must be [begin, end] non-negative integers`);
    }
    const [begin, end] = offs as [number, number];
    if (begin > end) fail(`tensor ${name}: data_offsets begin ${begin} > end ${end}`);
    if (end > dataLen) fail(`tensor ${name}: data_offsets end ${end} is beyond the data section (${dataLen} bytes)`);
    let count = 1;
    for (const d of shape as number[]) {
      count *= d;
      if (count > Number.MAX_SAFE_INTEGER / 8) fail(`tensor ${name}: shape [${shape}] is too large`);
    }
    const want = count * DTYPE_BYTES[dtype as string]!;
    if (end - begin !== want) fail(`tensor ${name}: ${end - begin} bytes for ${dtype} [${shape}] (needs ${want})`);
    tensors.set(name, { name, dtype: dtype as string, shape: shape as number[], begin, end });
  }
  // No two tensors may share bytes.
  const sorted = [...tensors.values()].filter((t) => t.end > t.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < sorted.length; i++) {
    if (sorted[i]!.begin < sorted[i - 1]!.end) fail(`tensors ${sorted[i - 1]!.name} and ${sorted[i]!.name} overlap`);
  }
  const read = (name: string): Float32Array => {
    const t = tensors.get(name);
    if (!t) throw new MixtuneError(`${path}: no tensor named ${name}`);
    if (!SUPPORTED.has(t.dtype)) throw new MixtuneError(`${path}: tensor ${name} has dtype ${t.dtype}; only F32, F16 and BF16 are supported`);
    return decode(t.dtype as Dtype, bytes.subarray(dataStart + t.begin, dataStart + t.end));
  };
  const readBf16 = (name: string): Uint16Array => {
    const t = tensors.get(name);
    if (t?.dtype !== 'BF16') {
      const f = read(name);
      const out = new Uint16Array(f.length);
      const scratch = new Float32Array(1);
      for (let i = 0; i < f.length; i++) out[i] = floatToBf16(f[i]!, scratch);
      return out;
    }
    const src = bytes.subarray(dataStart + t.begin, dataStart + t.end);
    const dv = new DataView(src.buffer, src.byteOffset, src.byteLength);
    const out = new Uint16Array(src.byteLength / 2);
    for (let i = 0; i < out.length; i++) out[i] = dv.getUint16(i * 2, true);
    return out;
  };
  return { path, tensors, metadata, read, readBf16 };
}

export function readSafetensors(path: string): SafetensorsFile {
  let bytes: Uint8Array;
  try {
    bytes = readFileSync(path);
  } catch (e) {
    throw new MixtuneError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return parseSafetensors(path, bytes);
}

function decode(dtype: Dtype, src: Uint8Array): Float32Array {
  const dv = new DataView(src.buffer, src.byteOffset, src.byteLength);
  if (dtype === 'F32') {
    const out = new Float32Array(src.byteLength / 4);
    for (let i = 0; i < out.length; i++) out[i] = dv.getFloat32(i * 4, true);
    return out;
  }
  const out = new Float32Array(src.byteLength / 2);
  if (dtype === 'BF16') {
    const u = new Uint32Array(out.buffer);
    for (let i = 0; i < out.length; i++) u[i] = dv.getUint16(i * 2, true) << 16;
    return out;
  }
  for (let i = 0; i < out.length; i++) out[i] = halfToFloat(dv.getUint16(i * 2, true));
  return out;
}

export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? Number.NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

/** fp32 -> bf16 bits, round to nearest even (NaN stays NaN). */
export function floatToBf16(x: number, scratch = new Float32Array(1)): number {
  scratch[0] = x;
  const u = new Uint32Array(scratch.buffer)[0]!;
  if ((u & 0x7f800000) === 0x7f800000 && (u & 0x7fffff) !== 0) return ((u >>> 16) | 0x40) & 0xffff;
  const rounding = 0x7fff + ((u >>> 16) & 1);
  return ((u + rounding) >>> 16) & 0xffff;
}

export interface TensorToWrite {
  shape: readonly number[];
  data: Float32Array;
}

/**
 * Writes tensors (fp32 in memory) as F32 or BF16, atomically: a temporary file in the same
 * folder, fsync, then rename. Tensor order in the file follows the sorted names.
 */
export function writeSafetensors(path: string, tensors: Map<string, TensorToWrite>, opts: { dtype?: 'F32' | 'BF16'; metadata?: Record<string, string> } = {}): void {
  const dtype = opts.dtype ?? 'F32';
  const esize = dtype === 'F32' ? 4 : 2;
  const names = [...tensors.keys()].sort();
  const header: Record<string, unknown> = {};
  if (opts.metadata) header.__metadata__ = opts.metadata;
  let offset = 0;
  for (const name of names) {
    const t = tensors.get(name)!;
    const count = t.shape.reduce((a, b) => a * b, 1);
    if (count !== t.data.length) throw new Error(`writeSafetensors: ${name} has ${t.data.length} values for shape [${t.shape}]`);
    header[name] = { dtype, shape: [...t.shape], data_offsets: [offset, offset + count * esize] };
    offset += count * esize;
  }
  let json = JSON.stringify(header);
  while ((8 + Buffer.byteLength(json)) % 8 !== 0) json += ' '; // align the data section to 8 bytes
  const headerBytes = Buffer.from(json, 'utf8');
  const tmp = `${path}.tmp-${process.pid}`;
  // Errors name the file and say what the system said (ENOSPC = the disk is full).
  const failed = (e: unknown): MixtuneError => e instanceof MixtuneError ? e
    : new MixtuneError(`${path}: cannot write safetensors: ${(e as NodeJS.ErrnoException).code === 'ENOSPC' ? 'ENOSPC (no space left on the device)' : (e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  let fd: number;
  try {
    fd = openSync(tmp, 'w');
  } catch (e) {
    throw failed(e);
  }
  try {
    const len = Buffer.alloc(8);
    len.writeBigUInt64LE(BigInt(headerBytes.length));
    writeSync(fd, len);
    writeSync(fd, headerBytes);
    const scratch = new Float32Array(1);
    for (const name of names) {
      const data = tensors.get(name)!.data;
      const chunk = 1 << 20;
      for (let s = 0; s < data.length; s += chunk) {
        const part = data.subarray(s, Math.min(data.length, s + chunk));
        const buf = Buffer.alloc(part.length * esize);
        if (dtype === 'F32') for (let i = 0; i < part.length; i++) buf.writeFloatLE(part[i]!, i * 4);
        else for (let i = 0; i < part.length; i++) buf.writeUInt16LE(floatToBf16(part[i]!, scratch), i * 2);
        writeSync(fd, buf);
      }
    }
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    if (existsSync(tmp)) unlinkSync(tmp);
    throw failed(e);
  }
  closeSync(fd);
  try {
    renameSync(tmp, path);
  } catch (e) {
    if (existsSync(tmp)) unlinkSync(tmp);
    throw failed(e);
  }
}
