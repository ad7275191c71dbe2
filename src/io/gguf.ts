// GGUF (version 3), the file format of llama.cpp / ggml: a writer (atomic, tensors encoded one at
// a time) and a small reader (for checks and tests).
//
// Layout (little-endian):
//   uint32 magic "GGUF" (0x46554747), uint32 version = 3, uint64 tensor_count, uint64 kv_count,
//   kv_count × (string key, uint32 value_type, value),
//   tensor_count × (string name, uint32 n_dims, uint64 ne[n_dims], uint32 ggml_type, uint64 offset),
//   zero padding to `general.alignment` (default 32), then the tensor data; each tensor starts at
//   data_start + offset, offsets aligned, zero padding between tensors.
// A string is uint64 byte length + UTF-8 bytes (no terminator); an array is uint32 item type,
// uint64 count, items. Tensor dims are ggml's: ne[0] is the innermost (contiguous) dimension, so a
// row-major [rows, cols] matrix is stored as ne = [cols, rows].
import { closeSync, existsSync, openSync, readSync, statSync, writeSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { MixtuneError } from '../util/errors.js';
import { writeFileAtomic } from '../util/fs.js';

export const GGUF_MAGIC = 0x46554747;
export const GGUF_VERSION = 3;
export const GGUF_DEFAULT_ALIGNMENT = 32;

/** GGUF metadata value types. */
export const GgufType = {
  UINT8: 0, INT8: 1, UINT16: 2, INT16: 3, UINT32: 4, INT32: 5, FLOAT32: 6, BOOL: 7, STRING: 8, ARRAY: 9, UINT64: 10, INT64: 11, FLOAT64: 12,
} as const;
export type GgufScalarKind = 'u8' | 'i8' | 'u16' | 'i16' | 'u32' | 'i32' | 'f32' | 'bool' | 'string' | 'u64' | 'i64' | 'f64';

const KIND_CODE: Record<GgufScalarKind, number> = {
  u8: 0, i8: 1, u16: 2, i16: 3, u32: 4, i32: 5, f32: 6, bool: 7, string: 8, u64: 10, i64: 11, f64: 12,
};
const CODE_KIND = new Map<number, GgufScalarKind>(Object.entries(KIND_CODE).map(([k, v]) => [v, k as GgufScalarKind]));

/** A GGUF string: text (written as UTF-8) or raw bytes. */
export type GgufString = string | Uint8Array;
export type GgufScalar = number | bigint | boolean | GgufString;

/** One metadata entry: a scalar of `kind`, or (`array: true`) an array whose items are of `kind`. */
export type GgufKv =
  | { key: string; kind: GgufScalarKind; value: GgufScalar; array?: false }
  | { key: string; kind: GgufScalarKind; value: ArrayLike<number> | readonly GgufScalar[]; array: true };

/** ggml tensor types written here (ids from ggml.h). */
export const GgmlType = { F32: 0, F16: 1, Q8_0: 8 } as const;
export type GgmlTypeName = keyof typeof GgmlType;
const TYPE_NAME = new Map<number, GgmlTypeName>(Object.entries(GgmlType).map(([k, v]) => [v, k as GgmlTypeName]));

/** Q8_0: blocks of 32 values, each an f16 scale + 32 int8 (34 bytes). */
export const Q8_0_BLOCK = 32;
export const Q8_0_BLOCK_BYTES = 34;

/** Bytes of `n` values of a ggml type (n must be a multiple of the block size). */
export function ggmlTypeBytes(type: number, n: number): number {
  if (type === GgmlType.F32) return 4 * n;
  if (type === GgmlType.F16) return 2 * n;
  if (type === GgmlType.Q8_0) {
    if (n % Q8_0_BLOCK !== 0) throw new RangeError(`Q8_0 needs a multiple of ${Q8_0_BLOCK} values, got ${n}`);
    return (n / Q8_0_BLOCK) * Q8_0_BLOCK_BYTES;
  }
  throw new RangeError(`unsupported ggml type ${type}`);
}

export function ggmlTypeName(type: number): string {
  return TYPE_NAME.get(type) ?? `type${type}`;
}

/** A tensor to write. `shape` is row-major (outermost first, like mixtune); the file stores it reversed. */
export interface GgufTensorToWrite {
  name: string;
  shape: readonly number[];
  type: number;
  /** The encoded bytes (exactly ggmlTypeBytes(type, size)); called once, while writing. */
  encode(): Uint8Array;
}

// ---------------------------------------------------------------------------------------------
// Writing

class ByteSink {
  private chunks: Uint8Array[] = [];
  private cur = new Uint8Array(1 << 16);
  private pos = 0;
  length = 0;

  private room(n: number): void {
    if (this.pos + n <= this.cur.length) return;
    if (this.pos > 0) this.chunks.push(this.cur.subarray(0, this.pos));
    this.cur = new Uint8Array(Math.max(1 << 16, n));
    this.pos = 0;
  }
  bytes(b: Uint8Array): void {
    this.room(b.length);
    this.cur.set(b, this.pos);
    this.pos += b.length;
    this.length += b.length;
  }
  private view(n: number): DataView {
    this.room(n);
    const dv = new DataView(this.cur.buffer, this.cur.byteOffset + this.pos, n);
    this.pos += n;
    this.length += n;
    return dv;
  }
  u8(v: number): void { this.view(1).setUint8(0, v); }
  i8(v: number): void { this.view(1).setInt8(0, v); }
  u16(v: number): void { this.view(2).setUint16(0, v, true); }
  i16(v: number): void { this.view(2).setInt16(0, v, true); }
  u32(v: number): void { this.view(4).setUint32(0, v, true); }
  i32(v: number): void { this.view(4).setInt32(0, v, true); }
  f32(v: number): void { this.view(4).setFloat32(0, v, true); }
  f64(v: number): void { this.view(8).setFloat64(0, v, true); }
  u64(v: number | bigint): void { this.view(8).setBigUint64(0, BigInt(v), true); }
  i64(v: number | bigint): void { this.view(8).setBigInt64(0, BigInt(v), true); }
  str(s: GgufString): void {
    const b = typeof s === 'string' ? Buffer.from(s, 'utf8') : s;
    this.u64(b.length);
    this.bytes(b);
  }
  zeros(n: number): void {
    if (n > 0) this.bytes(new Uint8Array(n));
  }
  result(): Uint8Array {
    if (this.pos > 0) this.chunks.push(this.cur.subarray(0, this.pos));
    this.pos = 0;
    this.cur = new Uint8Array(0);
    return Buffer.concat(this.chunks, this.length);
  }
}

function checkInt(key: string, kind: GgufScalarKind, v: GgufScalar): void {
  const ranges: Partial<Record<GgufScalarKind, [number, number]>> = {
    u8: [0, 255], i8: [-128, 127], u16: [0, 65535], i16: [-32768, 32767], u32: [0, 2 ** 32 - 1], i32: [-(2 ** 31), 2 ** 31 - 1],
  };
  const r = ranges[kind];
  if (r && (typeof v !== 'number' || !Number.isInteger(v) || v < r[0] || v > r[1])) {
    throw new RangeError(`GGUF metadata ${key}: ${String(v)} is not a valid ${kind}`);
  }
}

function writeScalar(out: ByteSink, key: string, kind: GgufScalarKind, v: GgufScalar): void {
  checkInt(key, kind, v);
  switch (kind) {
    case 'u8': out.u8(v as number); break;
    case 'i8': out.i8(v as number); break;
    case 'u16': out.u16(v as number); break;
    case 'i16': out.i16(v as number); break;
    case 'u32': out.u32(v as number); break;
    case 'i32': out.i32(v as number); break;
    case 'f32': out.f32(v as number); break;
    case 'f64': out.f64(v as number); break;
    case 'u64': out.u64(v as number | bigint); break;
    case 'i64': out.i64(v as number | bigint); break;
    case 'bool':
      if (typeof v !== 'boolean') throw new RangeError(`GGUF metadata ${key}: ${String(v)} is not a boolean`);
      out.u8(v ? 1 : 0);
      break;
    case 'string':
      if (typeof v !== 'string' && !(v instanceof Uint8Array)) throw new RangeError(`GGUF metadata ${key}: not a string`);
      out.str(v);
      break;
  }
}

function alignUp(n: number, a: number): number {
  return Math.ceil(n / a) * a;
}

/**
 * The header of a GGUF file (everything before the tensor data, padding included) and each
 * tensor's offset in the data section.
 */
export function ggufHeader(metadata: readonly GgufKv[], tensors: readonly GgufTensorToWrite[], alignment = GGUF_DEFAULT_ALIGNMENT): { header: Uint8Array; offsets: number[]; sizes: number[] } {
  const keys = new Set<string>();
  for (const kv of metadata) {
    if (keys.has(kv.key)) throw new RangeError(`GGUF metadata key ${kv.key} given twice`);
    keys.add(kv.key);
  }
  const names = new Set<string>();
  const out = new ByteSink();
  out.u32(GGUF_MAGIC);
  out.u32(GGUF_VERSION);
  out.u64(tensors.length);
  out.u64(metadata.length);
  for (const kv of metadata) {
    out.str(kv.key);
    if (kv.array) {
      out.u32(GgufType.ARRAY);
      out.u32(KIND_CODE[kv.kind]);
      const items = kv.value;
      out.u64(items.length);
      for (let i = 0; i < items.length; i++) writeScalar(out, kv.key, kv.kind, items[i] as GgufScalar);
    } else {
      out.u32(KIND_CODE[kv.kind]);
      writeScalar(out, kv.key, kv.kind, kv.value);
    }
  }
  const offsets: number[] = [];
  const sizes: number[] = [];
  let off = 0;
  for (const t of tensors) {
    if (names.has(t.name)) throw new RangeError(`GGUF tensor ${t.name} given twice`);
    names.add(t.name);
    if (t.shape.length < 1 || t.shape.length > 4) throw new RangeError(`GGUF tensor ${t.name}: ${t.shape.length} dimensions (1..4 allowed)`);
    const n = t.shape.reduce((a, b) => a * b, 1);
    const size = ggmlTypeBytes(t.type, n);
    if (t.type === GgmlType.Q8_0 && t.shape[t.shape.length - 1]! % Q8_0_BLOCK !== 0) {
      throw new RangeError(`GGUF tensor ${t.name}: Q8_0 rows must hold a multiple of ${Q8_0_BLOCK} values, got ${t.shape[t.shape.length - 1]}`);
    }
    out.str(t.name);
    out.u32(t.shape.length);
    for (let i = t.shape.length - 1; i >= 0; i--) out.u64(t.shape[i]!);
    out.u32(t.type);
    out.u64(off);
    offsets.push(off);
    sizes.push(size);
    off = alignUp(off + size, alignment);
  }
  out.zeros(alignUp(out.length, alignment) - out.length);
  return { header: out.result(), offsets, sizes };
}

export interface WriteGgufOptions {
  alignment?: number;
  /** Replace an existing file (default false: refuse). */
  overwrite?: boolean;
}

/** Throws a one-line MixtuneError when `path` cannot be written as a new GGUF file. */
export function checkGgufOutput(path: string, overwrite = false): void {
  const parent = dirname(resolve(path));
  if (!existsSync(parent) || !statSync(parent).isDirectory()) throw new MixtuneError(`${path}: parent folder ${parent} does not exist`);
  if (existsSync(path)) {
    if (statSync(path).isDirectory()) throw new MixtuneError(`${path}: is a folder`);
    if (!overwrite) throw new MixtuneError(`${path}: file exists (pass --overwrite to replace it)`);
  }
}

/**
 * Writes a GGUF v3 file atomically (temporary file in the same folder, fsync, rename). Tensors are
 * encoded one at a time, so peak memory is the model plus its largest encoded tensor. Metadata
 * `general.alignment`, when present, must equal the alignment used.
 */
export function writeGguf(path: string, metadata: readonly GgufKv[], tensors: readonly GgufTensorToWrite[], opts: WriteGgufOptions = {}): void {
  const alignment = opts.alignment ?? GGUF_DEFAULT_ALIGNMENT;
  const al = metadata.find((kv) => kv.key === 'general.alignment');
  if (al && al.value !== alignment) throw new RangeError(`general.alignment (${String(al.value)}) differs from the alignment used (${alignment})`);
  checkGgufOutput(path, opts.overwrite ?? false);
  const { header, offsets, sizes } = ggufHeader(metadata, tensors, alignment);
  writeFileAtomic(path, (fd) => {
    const write = (b: Uint8Array): void => {
      let done = 0;
      while (done < b.length) done += writeSync(fd, b, done, Math.min(b.length - done, 1 << 30));
    };
    write(header);
    let pos = 0;
    tensors.forEach((t, i) => {
      if (offsets[i]! > pos) write(new Uint8Array(offsets[i]! - pos));
      const data = t.encode();
      if (data.length !== sizes[i]) throw new RangeError(`GGUF tensor ${t.name}: encoded ${data.length} bytes, expected ${sizes[i]}`);
      write(data);
      pos = offsets[i]! + data.length;
    });
    const end = alignUp(pos, alignment);
    if (tensors.length > 0 && end > pos) write(new Uint8Array(end - pos));
  }, 'GGUF file');
}

// ---------------------------------------------------------------------------------------------
// Reading

export type GgufValue = number | bigint | boolean | string | GgufValue[];

export interface GgufTensorInfo {
  name: string;
  /** ggml order: ne[0] innermost. */
  ne: number[];
  /** Row-major shape (ne reversed). */
  shape: number[];
  type: number;
  /** Offset from the start of the data section. */
  offset: number;
  byteLength: number;
}

export interface GgufFile {
  version: number;
  metadata: Map<string, GgufValue>;
  /** The value type of each key (for arrays: 'array:<item kind>'). */
  kinds: Map<string, string>;
  tensors: GgufTensorInfo[];
  alignment: number;
  dataOffset: number;
  /** The whole file. */
  bytes: Uint8Array;
}

/** Reads a whole GGUF file (v2/v3, little-endian). Strings are decoded as UTF-8. */
export function readGguf(path: string): GgufFile {
  let bytes: Uint8Array;
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch (e) {
    throw new MixtuneError(`${path}: cannot read GGUF file: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
  }
  try {
    const size = statSync(path).size;
    bytes = new Uint8Array(size);
    let done = 0;
    while (done < size) {
      const n = readSync(fd, bytes, done, Math.min(size - done, 1 << 30), done);
      if (n <= 0) break;
      done += n;
    }
  } finally {
    closeSync(fd);
  }
  return parseGguf(bytes, path);
}

export function parseGguf(bytes: Uint8Array, source = 'GGUF'): GgufFile {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let p = 0;
  const fail = (what: string): never => {
    throw new MixtuneError(`${source}: invalid GGUF file: ${what}`);
  };
  const need = (n: number): void => {
    if (p + n > bytes.length) fail(`unexpected end of file at byte ${p}`);
  };
  const u32 = (): number => (need(4), (p += 4), dv.getUint32(p - 4, true));
  const u64 = (): number => {
    need(8);
    const v = dv.getBigUint64(p, true);
    p += 8;
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) fail(`64-bit value ${v} too large`);
    return Number(v);
  };
  const str = (): string => {
    const n = u64();
    need(n);
    const s = Buffer.from(bytes.buffer, bytes.byteOffset + p, n).toString('utf8');
    p += n;
    return s;
  };
  const scalar = (code: number): GgufValue => {
    switch (code) {
      case 0: need(1); p += 1; return dv.getUint8(p - 1);
      case 1: need(1); p += 1; return dv.getInt8(p - 1);
      case 2: need(2); p += 2; return dv.getUint16(p - 2, true);
      case 3: need(2); p += 2; return dv.getInt16(p - 2, true);
      case 4: return u32();
      case 5: need(4); p += 4; return dv.getInt32(p - 4, true);
      case 6: need(4); p += 4; return dv.getFloat32(p - 4, true);
      case 7: need(1); p += 1; return dv.getUint8(p - 1) !== 0;
      case 8: return str();
      case 10: need(8); p += 8; return dv.getBigUint64(p - 8, true);
      case 11: need(8); p += 8; return dv.getBigInt64(p - 8, true);
      case 12: need(8); p += 8; return dv.getFloat64(p - 8, true);
      default: return fail(`unknown value type ${code}`);
    }
  };
  if (u32() !== GGUF_MAGIC) fail('bad magic (not a GGUF file)');
  const version = u32();
  if (version !== 2 && version !== 3) fail(`unsupported version ${version}`);
  const nTensors = u64();
  const nKv = u64();
  const metadata = new Map<string, GgufValue>();
  const kinds = new Map<string, string>();
  for (let i = 0; i < nKv; i++) {
    const key = str();
    const t = u32();
    if (t === GgufType.ARRAY) {
      const it = u32();
      const n = u64();
      const arr: GgufValue[] = new Array<GgufValue>(n);
      for (let j = 0; j < n; j++) arr[j] = scalar(it);
      metadata.set(key, arr);
      kinds.set(key, `array:${CODE_KIND.get(it) ?? it}`);
    } else {
      metadata.set(key, scalar(t));
      kinds.set(key, CODE_KIND.get(t) ?? String(t));
    }
  }
  const tensors: GgufTensorInfo[] = [];
  for (let i = 0; i < nTensors; i++) {
    const name = str();
    const nd = u32();
    const ne: number[] = [];
    for (let j = 0; j < nd; j++) ne.push(u64());
    const type = u32();
    const offset = u64();
    const n = ne.reduce((a, b) => a * b, 1);
    tensors.push({ name, ne, shape: [...ne].reverse(), type, offset, byteLength: ggmlTypeBytes(type, n) });
  }
  const al = metadata.get('general.alignment');
  const alignment = typeof al === 'number' ? al : GGUF_DEFAULT_ALIGNMENT;
  const dataOffset = alignUp(p, alignment);
  for (const t of tensors) {
    if (t.offset % alignment !== 0) fail(`tensor ${t.name} offset ${t.offset} is not aligned to ${alignment}`);
    if (dataOffset + t.offset + t.byteLength > bytes.length) fail(`tensor ${t.name} runs past the end of the file`);
  }
  return { version, metadata, kinds, tensors, alignment, dataOffset, bytes };
}

/** The raw bytes of a tensor of a parsed file. */
export function ggufTensorBytes(f: GgufFile, name: string): Uint8Array {
  const t = f.tensors.find((x) => x.name === name);
  if (!t) throw new MixtuneError(`GGUF: no tensor ${name}`);
  return f.bytes.subarray(f.dataOffset + t.offset, f.dataOffset + t.offset + t.byteLength);
}
