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
  private f32: Float32Array | null;
  /**
   * A frozen weight stored only as bf16 bits (`lora.base_dtype: bf16`: half the memory of fp32);
   * null when the values are fp32 in `data`. The hot ops (op.linear, op.embedding) read the bits
   * directly; anything else reading `data` gets a dequantized copy (see `data`).
   */
  private bits: Uint16Array | null = null;
  readonly size: number;

  /** `values`: fp32 data, or bf16 bits (a frozen, bf16-stored tensor). */
  constructor(
    values: Float32Array | Uint16Array,
    public readonly shape: readonly number[],
    public requiresGrad = false,
  ) {
    const n = shape.reduce((a, b) => a * b, 1);
    if (n !== values.length) throw new Error(`Tensor: shape [${shape}] needs ${n} values, got ${values.length}`);
    this.size = n;
    if (values instanceof Uint16Array) {
      if (requiresGrad) throw new Error('Tensor: a bf16-stored tensor cannot require a gradient');
      this.f32 = null;
      this.bits = values;
    } else {
      this.f32 = values;
    }
  }

  static zeros(shape: readonly number[], requiresGrad = false): Tensor {
    return new Tensor(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape, requiresGrad);
  }

  /**
   * The fp32 values. For a bf16-stored tensor this is a fresh dequantized copy on every read
   * (exact: bf16 -> fp32 loses nothing), so writes into it are lost -- call toFp32() first to
   * change a bf16-stored tensor's values.
   */
  get data(): Float32Array {
    return this.f32 ?? dequantizeBf16(this.bits!);
  }

  set data(d: Float32Array) {
    if (d.length !== this.size) throw new Error(`Tensor: shape [${this.shape}] needs ${this.size} values, got ${d.length}`);
    this.f32 = d;
    this.bits = null;
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

  /** The bf16 bits of a bf16-stored tensor, or null when it holds fp32. */
  get bf16(): Uint16Array | null {
    return this.bits;
  }

  /** Keeps only `bits` (the caller's bf16 rounding of this tensor's values): frozen tensors only. */
  storeBf16(bits: Uint16Array): void {
    if (bits.length !== this.size) throw new Error(`Tensor: ${bits.length} bf16 values for a tensor of ${this.size}`);
    if (this.requiresGrad) throw new Error('Tensor: a tensor that requires a gradient cannot be stored in bf16');
    this.bits = bits;
    this.f32 = null;
    this.g = null;
  }

  /** Back to fp32 storage (the exact values of the bf16 bits); a no-op for an fp32 tensor. */
  toFp32(): void {
    if (this.bits) this.data = dequantizeBf16(this.bits);
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

/** bf16 bits -> fp32 (exact: the bits are the high half of the fp32 word). */
export function dequantizeBf16(bits: Uint16Array, out: Float32Array = new Float32Array(bits.length)): Float32Array {
  const u = new Uint32Array(out.buffer, out.byteOffset, bits.length);
  for (let i = 0; i < bits.length; i++) u[i] = bits[i]! << 16;
  return out;
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
