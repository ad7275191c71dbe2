// Tensor encodings for GGUF: f32, f16 (IEEE half, round to nearest even) and ggml's Q8_0
// (blocks of 32 values: an f16 scale d = max|x| / 127, then 32 int8 q = round(x / d), rounding
// halves away from zero — the arithmetic of llama.cpp's gguf-py quantizer, in float32).
import { Q8_0_BLOCK, Q8_0_BLOCK_BYTES } from './gguf.js';

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

/** IEEE 754 binary16 bits of a float32 value (round to nearest, ties to even; NaN stays NaN). */
export function f32ToF16Bits(x: number): number {
  f32buf[0] = x;
  const b = u32buf[0]!;
  const sign = (b >>> 16) & 0x8000;
  const exp = (b >>> 23) & 0xff;
  let mant = b & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant !== 0 ? 0x200 | (mant >>> 13) : 0); // inf / NaN
  const e = exp - 127 + 15; // rebiased exponent
  if (e >= 0x1f) return sign | 0x7c00; // overflow -> inf
  if (e <= 0) {
    // subnormal half (or zero): shift the full mantissa (with its implicit 1) right
    if (e < -10) return sign; // rounds to zero
    mant |= 0x800000;
    const shift = 14 - e; // 14..24
    const half = mant >>> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    const r = rem > mid || (rem === mid && (half & 1) === 1) ? half + 1 : half;
    return sign | r; // a carry into bit 10 correctly becomes the smallest normal
  }
  const half = (e << 10) | (mant >>> 13);
  const rem = mant & 0x1fff;
  const r = rem > 0x1000 || (rem === 0x1000 && (half & 1) === 1) ? half + 1 : half; // carry may reach inf: correct
  return sign | r;
}

/** The float value of IEEE binary16 bits. */
export function f16BitsToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >>> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 0x1f) return mant ? Number.NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** float32 little-endian bytes of `x` (a copy). */
export function encodeF32(x: Float32Array): Uint8Array {
  const out = new Uint8Array(x.length * 4);
  new Float32Array(out.buffer).set(x); // all supported platforms are little-endian
  return out;
}

export function encodeF16(x: Float32Array): Uint8Array {
  const out = new Uint8Array(x.length * 2);
  const dv = new DataView(out.buffer);
  for (let i = 0; i < x.length; i++) dv.setUint16(2 * i, f32ToF16Bits(x[i]!), true);
  return out;
}

export function decodeF16(bytes: Uint8Array): Float32Array {
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(bytes.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = f16BitsToF32(dv.getUint16(2 * i, true));
  return out;
}

/** C roundf: nearest integer, halves away from zero. */
function roundf(v: number): number {
  return v < 0 ? -Math.floor(-v + 0.5) : Math.floor(v + 0.5);
}

/** Q8_0 blocks of `x` (length a multiple of 32; blocks never straddle rows when rows hold a multiple of 32). */
export function encodeQ8_0(x: Float32Array): Uint8Array {
  if (x.length % Q8_0_BLOCK !== 0) throw new RangeError(`Q8_0: ${x.length} values is not a multiple of ${Q8_0_BLOCK}`);
  const nb = x.length / Q8_0_BLOCK;
  const out = new Uint8Array(nb * Q8_0_BLOCK_BYTES);
  const dv = new DataView(out.buffer);
  for (let b = 0; b < nb; b++) {
    const base = b * Q8_0_BLOCK;
    let amax = 0;
    for (let j = 0; j < Q8_0_BLOCK; j++) amax = Math.max(amax, Math.abs(x[base + j]!));
    const d = Math.fround(amax / 127);
    const o = b * Q8_0_BLOCK_BYTES;
    dv.setUint16(o, f32ToF16Bits(d), true);
    for (let j = 0; j < Q8_0_BLOCK; j++) {
      const q = d === 0 ? 0 : roundf(Math.fround(x[base + j]! / d));
      dv.setInt8(o + 2 + j, q);
    }
  }
  return out;
}

export function decodeQ8_0(bytes: Uint8Array): Float32Array {
  const nb = bytes.length / Q8_0_BLOCK_BYTES;
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(nb * Q8_0_BLOCK);
  for (let b = 0; b < nb; b++) {
    const o = b * Q8_0_BLOCK_BYTES;
    const d = f16BitsToF32(dv.getUint16(o, true));
    for (let j = 0; j < Q8_0_BLOCK; j++) out[b * Q8_0_BLOCK + j] = d * dv.getInt8(o + 2 + j);
  }
  return out;
}
