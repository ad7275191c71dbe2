// training.precision: bf16 — the linear layers' GEMMs on bf16 operands with fp32 accumulation
// (vdpbf16ps / AMX-BF16, src/tensor/bf16.ts). Master weights, gradients, AdamW state, norms,
// softmax, attention and the loss stay fp32; every weight is rounded to bf16 and packed once per
// optimizer step (twice: for y = x·Wᵀ and for dX = dY·W), frozen weights (a LoRA base) only once.
import { type PackedBf16, packBf16B } from './bf16.js';
import type { Tensor } from './tensor.js';

interface Packs {
  version: number;
  /** op(B) = Wᵀ [in, out]: the forward. */
  fwd: PackedBf16;
  /** op(B) = W [out, in]: the input gradient. */
  bwd: PackedBf16;
}

export class Bf16Weights {
  private readonly packs = new WeakMap<Tensor, Packs>();
  private version = 0;

  /** The weights changed (an optimizer step): trainable weights are packed again on next use. */
  invalidate(): void {
    this.version++;
  }

  /** The packed bf16 copies of W [out, in], packed now if stale. */
  of(W: Tensor): Packs {
    const [outF, inF] = W.shape as [number, number];
    let p = this.packs.get(W);
    if (p && (p.version === this.version || !W.requiresGrad)) return p;
    const fwd = packBf16B(true, inF, outF, W.data, p?.fwd);
    const bwd = packBf16B(false, outF, inF, W.data, p?.bwd);
    p = { version: this.version, fwd, bwd };
    this.packs.set(W, p);
    return p;
  }
}
