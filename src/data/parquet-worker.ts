// Worker side of readParquetObjectsSync (parquet.ts): reads the file, posts {rows} or {error},
// then wakes the blocked main thread.
import { workerData } from 'node:worker_threads';
import type { MessagePort } from 'node:worker_threads';

const { path, flag, port } = workerData as { path: string; flag: Int32Array; port: MessagePort };

async function main(): Promise<void> {
  let msg: { rows?: unknown[]; error?: string };
  try {
    const { readParquetObjects } = await import('./parquet.js');
    msg = { rows: await readParquetObjects(path) };
  } catch (e) {
    msg = { error: e instanceof Error ? e.message : String(e) };
  }
  try {
    port.postMessage(msg);
  } catch (e) {
    port.postMessage({ error: `${path}: cannot pass Parquet rows to the reader (${(e as Error).message})` });
  } finally {
    Atomics.store(flag, 0, 1);
    Atomics.notify(flag, 0);
  }
}

void main();
