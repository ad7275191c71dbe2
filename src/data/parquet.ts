// Parquet datasets via hyparquet (pure JS; uncompressed and snappy pages — other codecs such as
// zstd/gzip need hyparquet-compressors, not installed). Rows come back as plain objects
// ({column: value}); INT64 values (bigint) become numbers (strings beyond 2^53), dates become
// ISO strings, so records look like their JSON counterparts.
//
// hyparquet's API is async. readParquetObjectsSync keeps the dataset readers synchronous: it runs
// the read in a worker thread and blocks on Atomics.wait until the rows arrive.
import { readFileSync, existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { MessageChannel, Worker, receiveMessageOnPort } from 'node:worker_threads';
import { MixtuneError } from '../util/errors.js';

export type ParquetRow = Record<string, unknown>;

/** Reads every row of a Parquet file as an object. Errors are MixtuneErrors naming the file. */
export async function readParquetObjects(path: string): Promise<ParquetRow[]> {
  let buf: Buffer;
  try {
    buf = await readFile(path);
  } catch (e) {
    throw new MixtuneError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  return decodeParquet(path, buf);
}

async function decodeParquet(path: string, buf: Buffer): Promise<ParquetRow[]> {
  if (buf.length < 12 || buf.toString('latin1', 0, 4) !== 'PAR1' || buf.toString('latin1', buf.length - 4) !== 'PAR1') {
    throw new MixtuneError(`${path}: not a Parquet file (no PAR1 magic)`);
  }
  const { parquetReadObjects } = await import('hyparquet');
  const file = buf.buffer.slice(buf.byteOffset, buf.byteOffset + buf.byteLength) as ArrayBuffer;
  let rows: Record<string, unknown>[];
  try {
    rows = await parquetReadObjects({ file, rowFormat: 'object' });
  } catch (e) {
    throw new MixtuneError(`${path}: cannot decode Parquet (${(e as Error).message.split('\n')[0]})`);
  }
  return rows.map((r) => normalize(r) as ParquetRow);
}

/** JSON-like values: bigint → number (or string when unsafe), Date → ISO string, recursively. */
export function normalize(v: unknown): unknown {
  if (typeof v === 'bigint') return v >= BigInt(Number.MIN_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v.toString();
  if (v instanceof Date) return v.toISOString();
  if (Array.isArray(v)) return v.map(normalize);
  if (ArrayBuffer.isView(v)) return v;
  if (typeof v === 'object' && v !== null) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(v)) out[k] = normalize(x);
    return out;
  }
  return v;
}

/** Synchronous readParquetObjects (a worker thread does the async read). */
export function readParquetObjectsSync(path: string): ParquetRow[] {
  // Fail here, not in the worker, for the common errors (also keeps the worker from hanging us).
  let head: Buffer;
  try {
    head = readFileSync(path);
  } catch (e) {
    throw new MixtuneError(`${path}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`);
  }
  if (head.length < 12 || head.toString('latin1', 0, 4) !== 'PAR1') throw new MixtuneError(`${path}: not a Parquet file (no PAR1 magic)`);
  const workerUrl = new URL('./parquet-worker.js', import.meta.url);
  if (!existsSync(fileURLToPath(workerUrl))) throw new MixtuneError(`${path}: Parquet worker ${fileURLToPath(workerUrl)} is missing (package not built?)`);
  const flag = new Int32Array(new SharedArrayBuffer(4));
  const { port1, port2 } = new MessageChannel();
  const worker = new Worker(workerUrl, { workerData: { path, flag, port: port2 }, transferList: [port2] });
  worker.on('error', () => {}); // reported through the message; never crash the main thread
  try {
    // The worker always posts {rows} or {error} and then flips the flag (it catches everything).
    const limitMs = 60 * 60 * 1000;
    if (Atomics.wait(flag, 0, 0, limitMs) === 'timed-out') throw new MixtuneError(`${path}: Parquet read did not finish within an hour`);
    const msg = receiveMessageOnPort(port1)?.message as { rows?: ParquetRow[]; error?: string } | undefined;
    if (!msg) throw new MixtuneError(`${path}: Parquet worker ended without a result`);
    if (msg.error !== undefined) throw new MixtuneError(msg.error);
    return msg.rows!;
  } finally {
    port1.close();
    void worker.terminate();
  }
}
