import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseSafetensors, readSafetensors, writeSafetensors, halfToFloat, floatToBf16 } from '../src/io/safetensors.js';
import { MixtuneError } from '../src/util/errors.js';
import { Rng } from '../src/util/rng.js';
import { randArray } from './util.js';

function sample(rng: Rng): Map<string, { shape: number[]; data: Float32Array }> {
  return new Map([
    ['a.weight', { shape: [3, 5], data: randArray(rng, 15) }],
    ['b.bias', { shape: [7], data: randArray(rng, 7) }],
    ['scalar', { shape: [], data: Float32Array.of(1.5) }],
    ['empty', { shape: [0, 4], data: new Float32Array(0) }],
  ]);
}

test('safetensors: F32 round trip is exact, atomic write leaves no temp file', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mixtune-st-'));
  const p = join(dir, 'model.safetensors');
  const tensors = sample(new Rng(1));
  writeSafetensors(p, tensors, { metadata: { format: 'pt' } });
  assert.deepEqual(readdirSync(dir), ['model.safetensors']);
  const f = readSafetensors(p);
  assert.equal(f.metadata.format, 'pt');
  for (const [name, t] of tensors) {
    assert.deepEqual(f.tensors.get(name)!.shape, t.shape);
    assert.deepEqual(f.read(name), t.data);
  }
  // header length is a multiple of 8 so the data section is aligned
  assert.equal(Number(readFileSync(p).readBigUInt64LE(0)) % 8, 0);
});

test('safetensors: BF16 write rounds to nearest even; F16 and BF16 decode', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mixtune-st-'));
  const p = join(dir, 'bf16.safetensors');
  const vals = Float32Array.of(1, -2.5, 3.140625, 1 + 2 ** -8, 1 + 3 * 2 ** -8, 1e-3, 65504, Infinity);
  writeSafetensors(p, new Map([['x', { shape: [vals.length], data: vals }]]), { dtype: 'BF16' });
  const back = readSafetensors(p).read('x');
  assert.equal(readSafetensors(p).tensors.get('x')!.dtype, 'BF16');
  assert.equal(back[0], 1);
  assert.equal(back[1], -2.5);
  assert.equal(back[2], 3.140625);
  assert.equal(back[3], 1); // tie -> even
  assert.equal(back[4], 1 + 4 * 2 ** -8); // tie -> even (up)
  assert.ok(Math.abs(back[5]! - 1e-3) / 1e-3 < 2 ** -8);
  assert.equal(back[7], Infinity);
  assert.ok(Number.isNaN(halfToFloat(0x7e00)));
  assert.equal(halfToFloat(0x3c00), 1);
  assert.equal(halfToFloat(0xc000), -2);
  assert.equal(halfToFloat(0x0001), 2 ** -24);
  assert.equal(halfToFloat(0x7bff), 65504);
  assert.equal(floatToBf16(NaN) & 0x7f80, 0x7f80);
});

test('safetensors: a fuzz of corrupted headers always gives a clean MixtuneError, never a crash', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mixtune-st-'));
  const p = join(dir, 'ok.safetensors');
  writeSafetensors(p, sample(new Rng(2)));
  const good = readFileSync(p);
  const headerLen = Number(good.readBigUInt64LE(0));
  const rng = new Rng(3);
  let errors = 0;
  let parsed = 0;
  const tryParse = (bytes: Uint8Array, what: string): void => {
    try {
      const f = parseSafetensors('fuzz.safetensors', bytes);
      for (const name of f.tensors.keys()) {
        const x = f.read(name);
        assert.equal(x.length, f.tensors.get(name)!.shape.reduce((a, b) => a * b, 1));
      }
      parsed++;
    } catch (e) {
      if (!(e instanceof MixtuneError)) assert.fail(`${what}: ${String(e)}`);
      assert.match(e.message, /^fuzz\.safetensors: /);
      assert.ok(!e.message.includes('\n'));
      errors++;
    }
  };
  for (let i = 0; i < 3000; i++) {
    const b = Buffer.from(good);
    const kind = i % 5;
    if (kind === 0) {
      for (let j = 0; j < 1 + rng.int(4); j++) b[8 + rng.int(headerLen)] = rng.int(256); // flip header bytes
      tryParse(b, `flip ${i}`);
    } else if (kind === 1) {
      b.writeBigUInt64LE(BigInt(rng.int(2 ** 31)) * BigInt(1 + rng.int(4)), 0); // absurd header length
      tryParse(b, `len ${i}`);
    } else if (kind === 2) {
      tryParse(b.subarray(0, rng.int(b.length)), `truncate ${i}`);
    } else {
      // structured corruption: valid JSON, wrong numbers
      const h = JSON.parse(b.subarray(8, 8 + headerLen).toString()) as Record<string, { data_offsets?: number[]; shape?: number[]; dtype?: string }>;
      const names = Object.keys(h).filter((n) => n !== '__metadata__');
      const t = h[names[rng.int(names.length)]!]!;
      const choices = [
        () => (t.data_offsets = [rng.int(200), rng.int(200)]),
        () => (t.shape = [rng.int(9) - 2, rng.int(9)]),
        () => (t.dtype = ['F32', 'BF16', 'I8', 'Q4', 'F16'][rng.int(5)]!),
        () => (t.data_offsets = [0, 1e300]),
        () => (t.shape = [2 ** 40, 2 ** 40]),
      ];
      choices[rng.int(choices.length)]!();
      let json = JSON.stringify(h);
      while (json.length % 8) json += ' ';
      const len = Buffer.alloc(8);
      len.writeBigUInt64LE(BigInt(json.length));
      tryParse(Buffer.concat([len, Buffer.from(json), b.subarray(8 + headerLen)]), `struct ${i}: ${json}`);
    }
  }
  assert.ok(errors > 2000, `${errors} errors`);
  assert.ok(parsed > 0);
});
