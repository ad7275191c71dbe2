// Reference (plain TypeScript) versions of the elementwise / row-wise kernels: embedding,
// RMSNorm, RoPE, SwiGLU, fused softmax cross-entropy and AdamW. Simple loops, fp64 arithmetic,
// one rounding to fp32 when a value is stored. They validate their arguments like the native
// kernels (TypeError on a bad call). Semantics: src/tensor/kernels.ts.
import type { Kernels } from '../kernels.js';

function fail(fn: string, what: string): never {
  throw new TypeError(`${fn}: ${what}`);
}

function checkInt(fn: string, name: string, v: number, lo = 0): void {
  if (!Number.isInteger(v) || v < lo) fail(fn, `${name} must be an integer >= ${lo}`);
}

function checkLen(fn: string, name: string, a: ArrayLike<number>, n: number): void {
  if (a.length < n) fail(fn, `${name} is too short: need ${n}, got ${a.length}`);
}

function checkIds(fn: string, ids: Int32Array, vocab: number): void {
  for (let t = 0; t < ids.length; t++) {
    const id = ids[t]!;
    if (id < 0 || id >= vocab) fail(fn, `ids[${t}] = ${id} is outside [0, ${vocab})`);
  }
}

/** Numerically safe logistic function in fp64. */
function sigmoid(g: number): number {
  if (g >= 0) return 1 / (1 + Math.exp(-g));
  const e = Math.exp(g);
  return e / (1 + e);
}

export const refEmbeddingForward: Kernels['embeddingForward'] = (ids, table, dim, out) => {
  const fn = 'embeddingForward';
  checkInt(fn, 'dim', dim, 1);
  if (table.length % dim !== 0) fail(fn, `table length ${table.length} is not a multiple of dim ${dim}`);
  checkLen(fn, 'out', out, ids.length * dim);
  checkIds(fn, ids, table.length / dim);
  for (let t = 0; t < ids.length; t++) {
    const src = ids[t]! * dim;
    for (let j = 0; j < dim; j++) out[t * dim + j] = table[src + j]!;
  }
};

export const refEmbeddingBackward: Kernels['embeddingBackward'] = (ids, dOut, dim, dTable) => {
  const fn = 'embeddingBackward';
  checkInt(fn, 'dim', dim, 1);
  checkLen(fn, 'dOut', dOut, ids.length * dim);
  if (dTable.length % dim !== 0) fail(fn, `dTable length ${dTable.length} is not a multiple of dim ${dim}`);
  checkIds(fn, ids, dTable.length / dim);
  // Tokens in order, one fp32 add each (the same order the native kernel uses per column).
  for (let t = 0; t < ids.length; t++) {
    const dst = ids[t]! * dim;
    for (let j = 0; j < dim; j++) dTable[dst + j] += dOut[t * dim + j]!;
  }
};

export const refRmsnormForward: Kernels['rmsnormForward'] = (x, w, rows, dim, eps, out, rstd) => {
  const fn = 'rmsnormForward';
  checkInt(fn, 'rows', rows);
  checkInt(fn, 'dim', dim, 1);
  checkLen(fn, 'x', x, rows * dim);
  checkLen(fn, 'w', w, dim);
  checkLen(fn, 'out', out, rows * dim);
  checkLen(fn, 'rstd', rstd, rows);
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    let ss = 0;
    for (let j = 0; j < dim; j++) ss += x[o + j]! * x[o + j]!;
    const rs = 1 / Math.sqrt(ss / dim + eps);
    for (let j = 0; j < dim; j++) out[o + j] = x[o + j]! * rs * w[j]!;
    rstd[r] = rs;
  }
};

export const refRmsnormBackward: Kernels['rmsnormBackward'] = (x, w, rstd, dOut, rows, dim, dX, dW) => {
  const fn = 'rmsnormBackward';
  checkInt(fn, 'rows', rows);
  checkInt(fn, 'dim', dim, 1);
  for (const [name, a] of [['x', x], ['dOut', dOut], ['dX', dX]] as const) checkLen(fn, name, a, rows * dim);
  checkLen(fn, 'w', w, dim);
  checkLen(fn, 'dW', dW, dim);
  checkLen(fn, 'rstd', rstd, rows);
  // y_j = x_j r w_j with r = (mean(x^2) + eps)^(-1/2), dr/dx_j = -r^3 x_j / dim.
  const acc = new Float64Array(dim);
  for (let r = 0; r < rows; r++) {
    const o = r * dim;
    const rs = rstd[r]!;
    let dotv = 0;
    for (let j = 0; j < dim; j++) dotv += dOut[o + j]! * w[j]! * x[o + j]!;
    const c = (dotv * rs * rs * rs) / dim;
    for (let j = 0; j < dim; j++) {
      const g = dOut[o + j]!;
      const xv = x[o + j]!;
      acc[j] += g * xv * rs;
      dX[o + j] = rs * w[j]! * g - c * xv;
    }
  }
  for (let j = 0; j < dim; j++) dW[j] += acc[j]!;
};

export const refRope: Kernels['rope'] = (x, pos, T, nHeads, headDim, invFreq, sign) => {
  const fn = 'rope';
  checkInt(fn, 'T', T);
  checkInt(fn, 'nHeads', nHeads);
  checkInt(fn, 'headDim', headDim, 2);
  if (headDim % 2 !== 0) fail(fn, 'headDim must be even');
  if (sign !== 1 && sign !== -1) fail(fn, 'sign must be 1 or -1');
  const half = headDim / 2;
  const stride = nHeads * headDim;
  checkLen(fn, 'x', x, T * stride);
  checkLen(fn, 'pos', pos, T);
  checkLen(fn, 'invFreq', invFreq, half);
  for (let t = 0; t < T; t++) {
    const p = Math.fround(pos[t]!);
    for (let j = 0; j < half; j++) {
      // The angle is the fp32 product (as in the native kernel: float(pos) * invFreq[j]); the
      // product of two fp32 values is exact in fp64, so fround gives the same rounding.
      const angle = Math.fround(p * invFreq[j]!);
      const c = Math.fround(Math.cos(angle));
      const s = sign * Math.fround(Math.sin(angle));
      for (let h = 0; h < nHeads; h++) {
        const i0 = t * stride + h * headDim + j;
        const a = x[i0]!;
        const b = x[i0 + half]!;
        x[i0] = a * c - b * s;
        x[i0 + half] = b * c + a * s;
      }
    }
  }
};

export const refAdd: Kernels['add'] = (a, b, n, out) => {
  const fn = 'add';
  checkInt(fn, 'n', n);
  checkLen(fn, 'a', a, n);
  checkLen(fn, 'b', b, n);
  checkLen(fn, 'out', out, n);
  for (let i = 0; i < n; i++) out[i] = a[i]! + b[i]!;
};

export const refSwigluForward: Kernels['swigluForward'] = (gate, up, n, out) => {
  const fn = 'swigluForward';
  checkInt(fn, 'n', n);
  checkLen(fn, 'gate', gate, n);
  checkLen(fn, 'up', up, n);
  checkLen(fn, 'out', out, n);
  for (let i = 0; i < n; i++) {
    const g = gate[i]!;
    out[i] = g * sigmoid(g) * up[i]!;
  }
};

export const refSwigluBackward: Kernels['swigluBackward'] = (gate, up, dOut, n, dGate, dUp) => {
  const fn = 'swigluBackward';
  checkInt(fn, 'n', n);
  for (const [name, a] of [['gate', gate], ['up', up], ['dOut', dOut], ['dGate', dGate], ['dUp', dUp]] as const) checkLen(fn, name, a, n);
  for (let i = 0; i < n; i++) {
    const g = gate[i]!;
    const u = up[i]!;
    const d = dOut[i]!;
    const s = sigmoid(g);
    dUp[i] = d * g * s;
    dGate[i] = d * u * s * (1 + g * (1 - s));
  }
};

export const refCrossEntropy: Kernels['crossEntropy'] = (logits, targets, N, V, ignoreIndex, losses, dLogits, gradScale) => {
  const fn = 'crossEntropy';
  checkInt(fn, 'N', N);
  checkInt(fn, 'V', V, 1);
  if (!Number.isInteger(ignoreIndex)) fail(fn, 'ignoreIndex must be an integer');
  checkLen(fn, 'logits', logits, N * V);
  checkLen(fn, 'targets', targets, N);
  checkLen(fn, 'losses', losses, N);
  if (dLogits) checkLen(fn, 'dLogits', dLogits, N * V);
  for (let r = 0; r < N; r++) {
    const t = targets[r]!;
    if (t !== ignoreIndex && (t < 0 || t >= V)) fail(fn, `targets[${r}] = ${t} is outside [0, ${V})`);
  }
  for (let r = 0; r < N; r++) {
    const o = r * V;
    const t = targets[r]!;
    if (t === ignoreIndex) {
      losses[r] = 0;
      if (dLogits) dLogits.fill(0, o, o + V);
      continue;
    }
    let m = -Infinity;
    for (let i = 0; i < V; i++) m = Math.max(m, logits[o + i]!);
    let s = 0;
    for (let i = 0; i < V; i++) s += Math.exp(logits[o + i]! - m);
    const lse = m + Math.log(s);
    losses[r] = lse - logits[o + t]!;
    if (dLogits) {
      // Each element is read before it is written, so dLogits may alias logits.
      for (let i = 0; i < V; i++) dLogits[o + i] = gradScale * (Math.exp(logits[o + i]! - lse) - (i === t ? 1 : 0));
    }
  }
};

export const refAdamw: Kernels['adamw'] = (p, g, m, v, n, lr, beta1, beta2, eps, weightDecay, step) => {
  const fn = 'adamw';
  checkInt(fn, 'n', n);
  checkInt(fn, 'step', step, 1);
  for (const [name, a] of [['p', p], ['g', g], ['m', m], ['v', v]] as const) checkLen(fn, name, a, n);
  const bc1 = 1 - beta1 ** step;
  const bc2 = 1 - beta2 ** step;
  for (let i = 0; i < n; i++) {
    const gi = g[i]!;
    const mi = beta1 * m[i]! + (1 - beta1) * gi;
    const vi = beta2 * v[i]! + (1 - beta2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    const pi = p[i]!;
    p[i] = pi - lr * (mi / bc1 / (Math.sqrt(vi / bc2) + eps) + weightDecay * pi);
  }
};
