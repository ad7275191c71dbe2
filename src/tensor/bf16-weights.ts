// training.precision: bf16 — the linear layers' GEMMs on bf16 operands with fp32 accumulation
// (vdpbf16ps / AMX-BF16, src/tensor/bf16.ts). Master weights, gradients, AdamW state, norms,
// softmax and the loss stay fp32; a weight is rounded to bf16 and packed at most once per
// optimizer step for each direction that uses it (y = x·Wᵀ and dX = dY·W), frozen weights (a
// LoRA base) only once.
//
// training.bf16_ops chooses which products take bf16 operands (default: all of them). Measured on
// the demo (docs/measurements.md): the forward side (the trunk's x·Wᵀ, where one rounded weight
// meets every token of the step, and the attention) is what moves the loss curve away from fp32;
// bf16 in the backward GEMMs and the LM head alone keeps it within 1.4% of fp32 at every step, at a
// smaller speedup.
import { type PackedBf16, packBf16B } from './bf16.js';
import type { Tensor } from './tensor.js';
import { MixtuneError } from '../util/errors.js';

/** The products training.bf16_ops can put on bf16 operands. */
export const BF16_OPS = ['linear_forward', 'linear_input_grad', 'linear_weight_grad', 'attention', 'lm_head'] as const;
export type Bf16Op = (typeof BF16_OPS)[number];

/** A comma list of training.bf16_ops names (CLI flags, bench keys); `what` prefixes errors. */
export function parseBf16Ops(list: string, what: string): Bf16Op[] {
  const names = list.split(',').map((x) => x.trim()).filter((x) => x !== '');
  if (names.length === 0) throw new MixtuneError(`${what}: give at least one of ${BF16_OPS.join(', ')}`);
  for (const n of names) {
    if (!(BF16_OPS as readonly string[]).includes(n)) throw new MixtuneError(`${what}: unknown op '${n}' (choose from ${BF16_OPS.join(', ')})`);
  }
  if (new Set(names).size !== names.length) throw new MixtuneError(`${what}: an op is listed twice`);
  return names as Bf16Op[];
}

/** The packed copies (forward and / or input gradient) a trunk matrix and the LM head keep under these ops. */
export function bf16PackCounts(ops: readonly Bf16Op[] = BF16_OPS): { trunk: number; head: number } {
  return {
    trunk: (ops.includes('linear_forward') ? 1 : 0) + (ops.includes('linear_input_grad') ? 1 : 0),
    head: ops.includes('lm_head') ? 2 : 0,
  };
}

interface Pack {
  version: number;
  data: PackedBf16;
}

export class Bf16Weights {
  private readonly fwdPacks = new WeakMap<Tensor, Pack>();
  private readonly bwdPacks = new WeakMap<Tensor, Pack>();
  private readonly ops: ReadonlySet<Bf16Op>;
  private version = 0;

  constructor(ops: readonly Bf16Op[] = BF16_OPS) {
    this.ops = new Set(ops);
  }

  /** Whether `op` runs on bf16 operands. */
  uses(op: Bf16Op): boolean {
    return this.ops.has(op);
  }

  /** The weights changed (an optimizer step): trainable weights are packed again on next use. */
  invalidate(): void {
    this.version++;
  }

  /** op(B) = Wᵀ [in, out] of W [out, in], for y = x·Wᵀ (packed now if stale). */
  forward(W: Tensor): PackedBf16 {
    const [outF, inF] = W.shape as [number, number];
    return this.packed(this.fwdPacks, W, (reuse) => packBf16B(true, inF, outF, W.data, reuse));
  }

  /** op(B) = W [out, in], for dX = dY·W (packed now if stale). */
  inputGrad(W: Tensor): PackedBf16 {
    const [outF, inF] = W.shape as [number, number];
    return this.packed(this.bwdPacks, W, (reuse) => packBf16B(false, outF, inF, W.data, reuse));
  }

  private packed(cache: WeakMap<Tensor, Pack>, W: Tensor, pack: (reuse?: PackedBf16) => PackedBf16): PackedBf16 {
    const p = cache.get(W);
    if (p && (p.version === this.version || !W.requiresGrad)) return p.data;
    const data = pack(p?.data);
    cache.set(W, { version: this.version, data });
    return data;
  }
}
