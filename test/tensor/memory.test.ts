/** No-grad decode loops reuse buffers: after the first step a scoped loop allocates nothing new. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { Rng, memoryStats } from '../../src/tensor/index.js';
import { tinyLlama } from '../helpers/tiny-llama.js';

test('a scoped no-grad decode loop allocates no new buffers after warm-up', () => {
  const cfg = { vocab: 32, dModel: 16, nLayers: 2, nHeads: 4, nKvHeads: 2, ffn: 32, seq: 8 };
  const model = tinyLlama(cfg, 0);
  const ids = Int32Array.of(1, 2, 3, 4);
  const step = (): number => T.noGrad(() => T.scope(() => {
    const logits = model.forward(ids, 1, ids.length);
    return T.max(logits).item();
  }));
  const first = step();
  const before = memoryStats.allocated;
  const reusedBefore = memoryStats.reused;
  for (let i = 0; i < 5; i++) assert.equal(step(), first, 'same input, same result with reused buffers');
  assert.equal(memoryStats.allocated, before, 'no fresh allocations after the first step');
  assert.ok(memoryStats.reused > reusedBefore, 'buffers came from the free list');
});

test('scope keeps returned and kept tensors, poisons the rest', () => {
  let leaked: T.Tensor | undefined;
  let kept: T.Tensor | undefined;
  const out = T.scope(() => {
    const a = T.full([4], 2);
    leaked = T.mul(a, a);
    kept = T.keep(T.add(a, 1));
    return T.sum(a);
  });
  assert.equal(out.item(), 8);
  assert.deepEqual(kept!.toArray(), [3, 3, 3, 3]);
  assert.equal(leaked!.storage.data.length, 0, 'a released tensor is poisoned, not silently reused');
});

test('nested scopes hand kept buffers to the outer scope', () => {
  const r = T.scope(() => {
    const inner = T.scope(() => T.full([3], 5));
    return T.add(inner, 1);
  });
  assert.deepEqual(r.toArray(), [6, 6, 6]);
});

test('the pool stays under its limit across scopes of new lengths, and keeps what a repeating loop reuses', () => {
  T.releasePool();
  const was = T.setPoolLimit(64 * 1024); // 16K floats
  try {
    // one outermost scope per "prompt", each with lengths of its own (as prefills of different lengths)
    for (let p = 0; p < 20; p++) T.scope(() => { for (let i = 0; i < 4; i++) T.full([2000 + 100 * p + i], 1); });
    assert.ok(memoryStats.pooledBytes <= 64 * 1024 + 4 * 4 * 4000,
      `pooled ${memoryStats.pooledBytes} bytes: only the last scope's lengths may stay over the limit`);
    // a loop over the same lengths reuses its buffers however far over the limit they are
    T.scope(() => { for (let i = 0; i < 8; i++) T.full([5000 + i], 1); });
    const allocated = memoryStats.allocated;
    for (let step = 0; step < 3; step++) T.scope(() => { for (let i = 0; i < 8; i++) T.full([5000 + i], 1); });
    assert.equal(memoryStats.allocated, allocated, 'no fresh buffers: the repeating lengths were not dropped');
  } finally {
    T.setPoolLimit(was);
    T.releasePool();
  }
  assert.throws(() => T.setPoolLimit(-1), /setPoolLimit/);
});

test('AdamW matches the closed-form first step and respects the decay mask', () => {
  const w = T.tensor([1, -2, 3, 4], [2, 2]).param('w');
  const b = T.tensor([0.5, -0.5]).param('b');
  w.grad = T.tensor([0.1, -0.2, 0.3, 0], [2, 2]);
  b.grad = T.tensor([1, 1]);
  const opt = new T.AdamW([w, b], { lr: 0.1, beta1: 0.9, beta2: 0.99, eps: 1e-8, weightDecay: 0.5 });
  opt.step();
  // step 1: m_hat = g, v_hat = g^2, update = sign(g) (|g| >> eps) plus decoupled decay lr*wd*p on matrices only
  const expectW = [1, -2, 3, 4].map((p, i) => {
    const g = [0.1, -0.2, 0.3, 0][i]!;
    const u = g === 0 ? 0 : g / (Math.abs(g) + 1e-8);
    return p - 0.1 * (u + 0.5 * p);
  });
  w.toArray().forEach((v, i) => assert.ok(Math.abs(v - expectW[i]!) < 1e-6, `w[${i}] = ${v}, expected ${expectW[i]}`));
  assert.deepEqual(b.toArray().map((v) => Math.round(v * 1e6) / 1e6), [0.4, -0.6], 'vectors do not decay by default');
});

test('clipGradNorm scales to the max norm and reports the norm before clipping', () => {
  const p = T.tensor([0, 0]).param();
  p.grad = T.tensor([3, 4]);
  const n = T.clipGradNorm([p], 1);
  assert.equal(n, 5);
  assert.ok(Math.abs(T.gradNorm([p]) - 1) < 1e-5);
});

test('cosine schedule: linear warmup, cosine decay to minRatio, constant after', () => {
  const f = T.cosineSchedule({ lr: 1, warmupSteps: 4, totalSteps: 14, minRatio: 0.1 });
  assert.equal(f(0), 0.25);
  assert.equal(f(3), 1);
  assert.ok(Math.abs(f(9) - 0.55) < 1e-12, 'half way: (1 + 0.1) / 2');
  assert.ok(Math.abs(f(14) - 0.1) < 1e-12);
  assert.ok(Math.abs(f(100) - 0.1) < 1e-12);
});

test('Rng is deterministic and its state round-trips', () => {
  const a = new Rng(42), b = new Rng(42);
  const xs = Array.from({ length: 5 }, () => a.nextU32());
  assert.deepEqual(Array.from({ length: 5 }, () => b.nextU32()), xs);
  const s = a.getState();
  const next = a.next();
  const c = new Rng(s);
  assert.equal(c.next(), next);
  let mean = 0;
  const r = new Rng(1);
  for (let i = 0; i < 20000; i++) mean += r.normal();
  assert.ok(Math.abs(mean / 20000) < 0.03);
});

test('keep() inside a nested scope survives every enclosing scope; a nested return value survives only its own', () => {
  let kept: T.Tensor | undefined;
  let returned: T.Tensor | undefined;
  T.scope(() => {
    returned = T.scope(() => {
      kept = T.keep(T.add(T.tensor([0.5, 1, 1.5]), T.tensor([0.5, 1, 1.5]))); // op results come from the pool
      return T.add(T.tensor([2, 2.5, 3]), T.tensor([2, 2.5, 3]));
    });
    assert.deepEqual([...returned!.data], [4, 5, 6], 'the return value is alive in the outer scope');
  });
  assert.deepEqual([...kept!.data], [1, 2, 3], 'a kept tensor (a cache, a recurrent state) outlives the outer scope');
  assert.equal(returned!.storage.data.length, 0, 'the inner return value went back to the pool with the outer scope (poisoned)');
});
