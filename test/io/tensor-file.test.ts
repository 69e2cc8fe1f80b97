import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import {
  bf16ArrayToF32,
  bf16ToF32,
  f16ArrayToF32,
  f16ToF32,
  f32ToBf16,
  f32ToF16,
  writeFileAtomic,
} from '../../src/io/tensor-file.js';
import { tempDir } from './tmp.js';

test('every half round-trips through float32 (NaNs stay NaN)', () => {
  for (let h = 0; h < 65536; h++) {
    const x = f16ToF32(h);
    if (Number.isNaN(x)) assert.ok(Number.isNaN(f16ToF32(f32ToF16(x))));
    else assert.equal(f32ToF16(x), h, `half 0x${h.toString(16)}`);
  }
  const all = Uint16Array.from({ length: 65536 }, (_, i) => i);
  const f = f16ArrayToF32(all);
  assert.equal(f[0x3c00], 1);
  assert.equal(f[0xc000], -2);
});

test('f32 -> f16 rounds to nearest even, overflows to Inf, handles subnormals', () => {
  assert.equal(f32ToF16(1 + 2 ** -11), 0x3c00); // exactly half an ulp above 1: ties to even (1)
  assert.equal(f32ToF16(1 + 3 * 2 ** -11), 0x3c02); // tie, odd below: rounds up
  assert.equal(f32ToF16(65520), 0x7c00); // rounds past the largest half
  assert.equal(f32ToF16(2 ** -24), 0x0001);
  assert.equal(f32ToF16(2 ** -25), 0x0000); // tie to even zero
  assert.equal(f32ToF16(-0), 0x8000);
});

test('bf16 round trip and rounding', () => {
  for (let b = 0; b < 65536; b += 7) {
    const x = bf16ToF32(b);
    if (!Number.isNaN(x)) assert.equal(f32ToBf16(x), b);
  }
  assert.equal(f32ToBf16(1 + 2 ** -8), 0x3f80); // tie to even
  assert.equal(f32ToBf16(1 + 3 * 2 ** -8), 0x3f82);
  assert.ok(Number.isNaN(bf16ToF32(f32ToBf16(NaN))));
  assert.deepEqual([...bf16ArrayToF32(new Uint16Array([0x3f80, 0xc000]))], [1, -2]);
});

test('writeFileAtomic writes chunks and leaves no temp file behind', () => {
  const dir = tempDir('atomic');
  const p = join(dir, 'out.bin');
  writeFileAtomic(p, [new Uint8Array([1, 2]), new Uint8Array([3])]);
  writeFileAtomic(p, new Uint8Array([9, 8, 7, 6]));
  assert.deepEqual([...readFileSync(p)], [9, 8, 7, 6]);
  assert.deepEqual(readdirSync(dir), ['out.bin']);
});
