// The compute kernels every model operation is built from. Two implementations share this
// interface: `nativeKernels` (C++ via Node-API, multi-threaded, SIMD) and `referenceKernels`
// (plain TypeScript loops, the test oracle). Tests compare the two and check the reference
// with finite differences.
//
// Conventions (all kernels):
// - Every array is dense and row-major; use `subarray` to pass a slice.
// - "write" outputs are overwritten; "accumulate" outputs are added into (+=).
// - Activations are token-major: a [T, H*D] buffer holds token t, head h, element d at
//   t*H*D + h*D + d (exactly what a linear layer produces).
// - RoPE uses ONE internal convention: the HF "rotate-half" layout, in which element j of a
//   head is paired with element j + D/2 and rotated by pos * invFreq[j]. llama2.c checkpoints
//   (interleaved pairs 2j, 2j+1) are converted by permuting the rows of wq/wk at load time
//   (src/io/llama2c.ts), exactly as HF's convert_llama_weights_to_hf.py does.

export interface Kernels {
  readonly name: string;

  /**
   * C = alpha * op(A) · op(B) + beta * C, with op(A) M×K and op(B) K×N.
   * A is stored M×K (transA=false) or K×M (transA=true); B is K×N (transB=false) or N×K
   * (transB=true). beta = 0 overwrites C (C may hold garbage/NaN), beta = 1 accumulates.
   */
  gemm(
    transA: boolean, transB: boolean, M: number, N: number, K: number,
    alpha: number, A: Float32Array, B: Float32Array, beta: number, C: Float32Array,
  ): void;

  /** out[t, :] = table[ids[t], :] (write). ids must be in [0, vocab). */
  embeddingForward(ids: Int32Array, table: Float32Array, dim: number, out: Float32Array): void;
  /** dTable[ids[t], :] += dOut[t, :] (accumulate, scatter-add; repeated ids add up). */
  embeddingBackward(ids: Int32Array, dOut: Float32Array, dim: number, dTable: Float32Array): void;

  /**
   * RMSNorm over the last dimension: out = x * rstd * w, rstd[r] = 1/sqrt(mean(x[r]^2) + eps).
   * Writes out [rows, dim] and rstd [rows] (saved for backward).
   */
  rmsnormForward(x: Float32Array, w: Float32Array, rows: number, dim: number, eps: number, out: Float32Array, rstd: Float32Array): void;
  /** dX written, dW accumulated. */
  rmsnormBackward(
    x: Float32Array, w: Float32Array, rstd: Float32Array, dOut: Float32Array, rows: number, dim: number,
    dX: Float32Array, dW: Float32Array,
  ): void;

  /**
   * In-place rotate-half RoPE on x [T, nHeads * headDim]: for token t, head h, j < headDim/2,
   * angle = pos[t] * invFreq[j] (computed in fp32), (x_j, x_{j+D/2}) is rotated by +angle
   * (sign = 1, forward) or -angle (sign = -1, which is the backward pass).
   */
  rope(x: Float32Array, pos: Int32Array, T: number, nHeads: number, headDim: number, invFreq: Float32Array, sign: 1 | -1): void;

  /** out = a + b over n values (write); out may be a or b itself (in-place accumulation). */
  add(a: Float32Array, b: Float32Array, n: number, out: Float32Array): void;

  /** out = silu(gate) * up, elementwise over n values (write). */
  swigluForward(gate: Float32Array, up: Float32Array, n: number, out: Float32Array): void;
  /** dGate, dUp written. */
  swigluBackward(gate: Float32Array, up: Float32Array, dOut: Float32Array, n: number, dGate: Float32Array, dUp: Float32Array): void;

  /**
   * Causal grouped-query attention, tiled with an online softmax (no T×T buffer).
   * q [B, Tq, nHeads*D], k/v [B, Tk, nKvHeads*D], out [B, Tq, nHeads*D] (write),
   * lse [B, nHeads, Tq] (write: log-sum-exp of the scaled scores, saved for backward).
   * Query i has absolute position qOffset + i and sees keys j <= qOffset + i
   * (training: Tq = Tk, qOffset = 0; decoding with a KV cache: qOffset = Tk - Tq).
   * Query head h uses kv head floor(h / (nHeads / nKvHeads)). scale is usually 1/sqrt(D).
   */
  attentionForward(
    q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, lse: Float32Array,
    B: number, Tq: number, Tk: number, nHeads: number, nKvHeads: number, headDim: number, scale: number, qOffset: number,
  ): void;
  /** Backward of attentionForward with Tq = Tk = T, qOffset = 0. dq, dk, dv written. */
  attentionBackward(
    q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, lse: Float32Array, dOut: Float32Array,
    dq: Float32Array, dk: Float32Array, dv: Float32Array,
    B: number, T: number, nHeads: number, nKvHeads: number, headDim: number, scale: number,
  ): void;

  /**
   * Layout-aware attention (docs/design.md §2): the generalization used for training rows that hold
   * packed groups (SFT/MoI) and multi-input MISO groups. q [B, T, nHeads*D], k/v [B, T, nKvHeads*D].
   * Per token: group[B*T] (global group id; a group's tokens are contiguous inside one row, input
   * parts first in order, then the output part) and part[B*T] (0..n-1 = input part, -1 = output
   * part; n = 1 groups may use 0 or -1 throughout). Per group g: nInputs[g] >= 1 and
   * weighting[g] (0 = uniform, 1 = fid, 2 = vanilla).
   * Rules: an input-part query attends causally to the keys of its own part; an output-part query
   * attends, for every input i, to all keys of input i plus the output keys up to itself, and mixes
   * the per-input results by the group's weighting; nothing crosses groups. An n = 1 group is plain
   * causal attention over its tokens.
   * Uniform: O = (1/n) Σ_i (U_i + U_o)/(S_i + S_o); fid: one softmax over all the group's visible
   * keys with +log(n) on the output keys; vanilla: the same without the bias.
   * stats [B, nHeads, T, maxInputs] (write; every slot is written, unused slots are 0), what the
   * backward needs, in units of the scaled scores: for an output query of a uniform group with
   * n >= 2, slot i (i < n) = log Z_i = log(S_i + S_o); for every other query slot 0 = the
   * log-sum-exp of its one softmax (fid output queries: including the +log n bias).
   * maxInputs >= max(nInputs). Layout errors are TypeErrors: group ids outside [0, nInputs.length)
   * or not one contiguous run in one row; nInputs[g] outside [1, maxInputs]; weighting[g] outside
   * {0, 1, 2}; n = 1 groups with parts other than 0/-1; n >= 2 groups whose parts are not
   * 0, 1, ..., n-1 (each non-empty, in order) optionally followed by -1.
   */
  attentionLayoutForward(
    q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, stats: Float32Array,
    B: number, T: number, nHeads: number, nKvHeads: number, headDim: number, scale: number,
    group: Int32Array, part: Int32Array, nInputs: Int32Array, weighting: Int32Array, maxInputs: number,
  ): void;
  /** Backward of attentionLayoutForward (reads out and stats of the forward). dq, dk, dv written. */
  attentionLayoutBackward(
    q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, stats: Float32Array, dOut: Float32Array,
    dq: Float32Array, dk: Float32Array, dv: Float32Array,
    B: number, T: number, nHeads: number, nKvHeads: number, headDim: number, scale: number,
    group: Int32Array, part: Int32Array, nInputs: Int32Array, weighting: Int32Array, maxInputs: number,
  ): void;

  /**
   * Fused softmax + cross-entropy over rows of logits [N, V], computed over vocabulary chunks
   * with an online max/sum. losses[i] = logsumexp(logits[i]) - logits[i, targets[i]], or 0 when
   * targets[i] === ignoreIndex. If dLogits is given (it may alias logits), it receives
   * gradScale * (softmax(logits[i]) - onehot(targets[i])), and zeros for ignored rows.
   * Targets outside [0, V) other than ignoreIndex are an error.
   */
  crossEntropy(
    logits: Float32Array, targets: Int32Array, N: number, V: number, ignoreIndex: number,
    losses: Float32Array, dLogits: Float32Array | null, gradScale: number,
  ): void;

  /**
   * One AdamW step in place over n parameters (decoupled weight decay, bias-corrected):
   * m = b1 m + (1-b1) g; v = b2 v + (1-b2) g²; p -= lr * (m/(1-b1^step) / (sqrt(v/(1-b2^step)) + eps) + wd * p).
   * step counts from 1.
   */
  adamw(
    p: Float32Array, g: Float32Array, m: Float32Array, v: Float32Array, n: number,
    lr: number, beta1: number, beta2: number, eps: number, weightDecay: number, step: number,
  ): void;
}
