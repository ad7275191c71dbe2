// A user-facing error: the CLI prints its one-line message (no stack trace) and exits non-zero.
// Messages name the file (or flag/record/field) and say what is wrong.
export class MixtuneError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'MixtuneError';
  }
}

/** V8's messages when an ArrayBuffer / typed array cannot be allocated. */
const JS_ALLOC_FAILED = /Array buffer allocation failed|Invalid typed array length|Invalid array buffer length/;

/** An out-of-memory failure, from JS allocations or the native kernels (code ENOMEM). */
export function isOutOfMemory(e: unknown): boolean {
  return (e instanceof RangeError && JS_ALLOC_FAILED.test(e.message)) || (e instanceof Error && (e as { code?: unknown }).code === 'ENOMEM');
}

/**
 * Turns an out-of-memory failure into a one-line MixtuneError saying what was being done and the
 * cheapest fixes; any other error is returned unchanged.
 */
export function outOfMemoryError(e: unknown, what: string): unknown {
  if (!isOutOfMemory(e)) return e;
  const detail = e instanceof RangeError ? 'a memory allocation failed' : (e as Error).message;
  return new MixtuneError(`out of memory while ${what} (${detail}); free memory, or need less of it: LoRA instead of full fine-tuning, ` +
    'a smaller micro_batch_size or max_len, a smaller model');
}
