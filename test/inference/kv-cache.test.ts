/**
 * KVCache.reserve: room for a known number of tokens in one allocation, so a generation never regrows the cache
 * (each doubling copies every layer). The rows already stored survive a reserve, the capacity is clipped to the
 * context, bad sizes are typed errors, and DecodeSession reserves prompt + max tokens before its prefill.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { KVCache, fullMemory } from '../../src/inference/memory.js';
import { DecodeSession } from '../../src/inference/session.js';
import { buildModel } from '../../src/model/build.js';
import { ArgumentError } from '../../src/tensor/errors.js';
import { tensor } from '../../src/tensor/index.js';
import { randomModel, tinyConfig } from '../helpers/random-model.js';

const row = (layer: number, pos: number, n: number, sign: number): Float32Array =>
  Float32Array.from({ length: n }, (_, i) => sign * (layer * 1000 + pos * 10 + i));

test('reserve keeps the stored rows, stops regrowth, and is clipped to the context', () => {
  const kvh = [2, 1];
  const c = new KVCache(2, 1, kvh, 3, 100);
  assert.equal(c.capacity, 0);
  const put = (pos: number): void => {
    for (let l = 0; l < 2; l++) c.appendOne(l, row(l, pos, kvh[l]! * 3, 1), row(l, pos, kvh[l]! * 3, -1));
    c.advance(1);
  };
  for (let p = 0; p < 5; p++) put(p);
  assert.equal(c.capacity, 64); // the first growth allocates 64 tokens
  c.reserve(90);
  assert.equal(c.capacity, 90);
  for (let p = 5; p < 90; p++) put(p);
  assert.equal(c.capacity, 90, 'filling the reserved room does not regrow');
  for (let l = 0; l < 2; l++) {
    const n = kvh[l]! * 3;
    const view = c.appendOne(l, row(l, 90, n, 1), row(l, 90, n, -1));
    for (const p of [0, 4, 5, 63, 64, 89, 90]) {
      assert.deepEqual(view.k.subarray(p * n, (p + 1) * n), row(l, p, n, 1), `layer ${l} key row ${p}`);
      assert.deepEqual(view.v.subarray(p * n, (p + 1) * n), row(l, p, n, -1), `layer ${l} value row ${p}`);
    }
  }
  assert.equal(c.capacity, 100, 'growth past the reservation is clipped to the context');
  c.reserve(10);
  assert.equal(c.capacity, 100, 'a smaller reservation is a no-op');
  const d = new KVCache(1, 1, 1, 2, 50);
  d.reserve(1000);
  assert.equal(d.capacity, 50);
  for (const bad of [-1, 2.5, Number.NaN]) assert.throws(() => d.reserve(bad), ArgumentError, `reserve(${bad})`);
});

test('update after reserve returns the same keys as without it', () => {
  const mk = (): KVCache => new KVCache(1, 1, 2, 4, 64);
  const a = mk(), b = mk();
  b.reserve(40);
  for (let t = 0; t < 3; t++) {
    const k = tensor(row(0, t, 5 * 8, 1), [1, 5, 2, 4]), v = tensor(row(0, t, 5 * 8, -1), [1, 5, 2, 4]);
    const va = a.update(0, k, v), vb = b.update(0, k, v);
    assert.deepEqual(vb.k.data, va.k.data);
    assert.deepEqual(vb.v.data, va.v.data);
    a.advance(5);
    b.advance(5);
  }
  assert.equal(b.capacity, 40);
});

test('DecodeSession reserves prompt + max tokens (clipped to the context) before the prefill', () => {
  const m = buildModel(randomModel(tinyConfig('llama', { maxPos: 64 }), 3));
  for (const [prompt, maxTokens, want] of [[5, 20, 25], [10, 200, 64]] as const) {
    let mem: KVCache | null = null;
    const s = new DecodeSession(m, null, Array.from({ length: prompt }, (_, i) => 1 + i), {
      maxTokens, temperature: 0, memory: (model) => (mem = fullMemory(model)),
    });
    s.prefill();
    assert.equal((mem as KVCache | null)?.capacity, want, `prompt ${prompt}, max tokens ${maxTokens}`);
  }
});
