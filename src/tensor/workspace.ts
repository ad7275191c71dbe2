// Reusable activation / gradient buffers for training steps. Every step of a run asks for the
// same sequence of buffer sizes, so after the first step each request is served by a buffer
// the previous step used: no allocation, no zero-filling, no page faults, no GC of 100 MB
// arrays (a fresh Float32Array is mmap'd zero pages that fault in on first write, which cost as
// much as the elementwise ops themselves).
//
// Buffers come back dirty: callers either overwrite them completely or ask for `zeroed`.
import { profEnd, profStart } from './profile.js';

export class Workspace {
  private readonly free = new Map<number, Float32Array[]>();
  private readonly taken = new Set<Float32Array>();
  /** Per size: buffers out now, and the most out at once since the last giveAll. */
  private readonly out = new Map<number, number>();
  private readonly peak = new Map<number, number>();

  /** A buffer of exactly n floats with arbitrary contents. */
  take(n: number): Float32Array {
    const list = this.free.get(n);
    let buf = list?.pop();
    if (!buf) {
      const t0 = profStart();
      buf = new Float32Array(n);
      profEnd('alloc', t0);
    }
    this.taken.add(buf);
    const o = (this.out.get(n) ?? 0) + 1;
    this.out.set(n, o);
    if (o > (this.peak.get(n) ?? 0)) this.peak.set(n, o);
    return buf;
  }

  zeroed(n: number): Float32Array {
    const b = this.take(n);
    b.fill(0);
    return b;
  }

  /** Whether buf is out of this workspace (i.e. an activation or gradient of the current step). */
  owns(buf: Float32Array | null | undefined): boolean {
    return !!buf && this.taken.has(buf);
  }

  /** Returns one buffer early (it is dead); buffers not taken from this workspace are ignored. */
  give(buf: Float32Array | null | undefined): void {
    if (!buf || !this.taken.delete(buf)) return;
    this.out.set(buf.length, this.out.get(buf.length)! - 1);
    let list = this.free.get(buf.length);
    if (!list) this.free.set(buf.length, (list = []));
    list.push(buf);
  }

  /**
   * Returns every buffer still out (the end of a step: activations and their gradients are
   * dead), and keeps per size only as many buffers as were out at once since the last call, so
   * shapes that stopped occurring (a different sequence length) do not hold memory.
   */
  giveAll(): void {
    for (const b of [...this.taken]) this.give(b);
    for (const [n, list] of this.free) {
      const keep = this.peak.get(n) ?? 0;
      if (keep === 0) this.free.delete(n);
      else list.length = Math.min(list.length, keep);
    }
    this.peak.clear();
    this.out.clear();
  }

  /** The buffers out now: what releaseSince keeps. */
  mark(): Set<Float32Array> {
    return new Set(this.taken);
  }

  /**
   * Gives back every buffer taken since `mark` except those in `keep` (activation checkpointing:
   * a layer's intermediate activations are dead once its output exists, and once its recomputed
   * backward has produced the input gradient).
   */
  releaseSince(mark: Set<Float32Array>, keep: (Float32Array | null | undefined)[]): void {
    for (const b of [...this.taken]) if (!mark.has(b) && !keep.includes(b)) this.give(b);
  }

  /** Test hook: fills every free buffer with v (NaN shows an op that reads what it did not write). */
  poisonFree(v: number): void {
    for (const l of this.free.values()) for (const b of l) b.fill(v);
  }

  /** Drops every buffer (memory back to the GC). */
  clear(): void {
    this.taken.clear();
    this.free.clear();
    this.out.clear();
    this.peak.clear();
  }

  /** Floats held (out and free). */
  get floats(): number {
    let n = 0;
    for (const b of this.taken) n += b.length;
    for (const l of this.free.values()) for (const b of l) n += b.length;
    return n;
  }
}
