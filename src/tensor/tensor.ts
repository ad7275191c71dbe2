// A minimal tensor (a dense fp32 buffer with a shape) and a tape that records backward
// closures. The model is a fixed composition of a dozen fused ops (src/tensor/ops.ts), so a tape
// of closures is all the autograd we need: no graph objects, no broadcasting rules.
import { profEnd, profStart } from './profile.js';

export class Tensor {
  private g: Float32Array | null = null;
  /**
   * zeroGrad() only marks the gradient as zero: the buffer is filled at its next read, or never
   * when its next writer overwrites it whole (`gradToOverwrite`, the weight gradient GEMM of a
   * linear layer), which saves a pass over every weight gradient per step.
   */
  private zeroPending = false;

  constructor(
    public data: Float32Array,
    public readonly shape: readonly number[],
    public requiresGrad = false,
  ) {
    const n = shape.reduce((a, b) => a * b, 1);
    if (n !== data.length) throw new Error(`Tensor: shape [${shape}] needs ${n} values, got ${data.length}`);
  }

  static zeros(shape: readonly number[], requiresGrad = false): Tensor {
    return new Tensor(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape, requiresGrad);
  }

  /** Gradient buffer, allocated (zeroed) on first accumulation. */
  get grad(): Float32Array | null {
    if (this.zeroPending) {
      const t0 = profStart();
      this.g!.fill(0);
      this.zeroPending = false;
      profEnd('zero_grad', t0);
    }
    return this.g;
  }

  set grad(g: Float32Array | null) {
    this.g = g;
    this.zeroPending = false;
  }

  get size(): number {
    return this.data.length;
  }

  /** The gradient buffer, created zero-filled if absent. */
  gradBuffer(): Float32Array {
    if (!this.grad) {
      const t0 = profStart();
      this.grad = new Float32Array(this.data.length);
      profEnd('alloc', t0);
    }
    return this.grad!;
  }

  /**
   * For a writer that can either add into the gradient or overwrite it whole: the buffer, and
   * whether it must be overwritten rather than added to (its contents are stale and count as
   * zero after zeroGrad()). Returns null when there is no buffer yet (use gradBuffer()).
   */
  gradToOverwrite(): { buf: Float32Array; overwrite: boolean } | null {
    if (!this.g) return null;
    const overwrite = this.zeroPending;
    this.zeroPending = false;
    return { buf: this.g, overwrite };
  }

  zeroGrad(): void {
    if (this.g) this.zeroPending = true;
  }
}

/** Records backward closures during a forward pass and replays them in reverse. */
export class Tape {
  private steps: (() => void)[] = [];

  record(backward: () => void): void {
    this.steps.push(backward);
  }

  get length(): number {
    return this.steps.length;
  }

  /** Runs every recorded backward closure, newest first, then forgets them (frees activations). */
  backward(): void {
    for (let i = this.steps.length - 1; i >= 0; i--) {
      this.steps[i]!();
      this.steps[i] = noop;
    }
    this.steps = [];
  }

  clear(): void {
    this.steps = [];
  }
}

const noop = (): void => {};
