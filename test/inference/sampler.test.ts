/** Sampler filters and determinism. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Sampler, argmax } from '../../src/inference/sampler.js';
import { ArgumentError } from '../../src/tensor/index.js';

const logits = Float32Array.from([2, 1, 0.5, 3, -1, 3]);

function histogram(s: Sampler, n: number, l = logits, history: number[] = []): number[] {
  const h = new Array<number>(l.length).fill(0);
  for (let i = 0; i < n; i++) h[s.sample(l, history)]!++;
  return h;
}

test('greedy picks the first maximum; temperature 0 ignores the seed', () => {
  assert.equal(argmax(logits), 3);
  assert.equal(new Sampler({ temperature: 0, seed: 1 }).sample(logits), 3);
  assert.equal(new Sampler({ temperature: 0, seed: 2 }).sample(logits), 3);
});

test('top-k keeps only the k most likely tokens', () => {
  const h = histogram(new Sampler({ temperature: 1, topK: 2, seed: 3 }), 2000);
  assert.deepEqual(h.map((c, i) => (c > 0 ? i : -1)).filter((i) => i >= 0), [3, 5]);
  assert.ok(Math.abs(h[3]! - h[5]!) < 200, 'equal logits get equal shares');
});

test('top-p keeps the smallest set whose mass reaches p', () => {
  // softmax of [2,1,0.5,3,-1,3]: 3 and 5 carry 0.384 each, 0 carries 0.141
  const kept = (p: number): number[] =>
    histogram(new Sampler({ temperature: 1, topP: p, seed: 4 }), 3000).map((c, i) => (c > 0 ? i : -1)).filter((i) => i >= 0);
  assert.deepEqual(kept(0.7), [3, 5], '0.768 >= 0.7 with two tokens');
  assert.deepEqual(kept(0.8), [0, 3, 5], 'the third token is needed to reach 0.8');
});

test('min-p drops tokens below p times the top probability', () => {
  // relative to the top (e^3): token 0 has e^-1 = 0.37, token 1 e^-2 = 0.135
  const h = histogram(new Sampler({ temperature: 1, minP: 0.2, seed: 5 }), 3000);
  assert.deepEqual(h.map((c, i) => (c > 0 ? i : -1)).filter((i) => i >= 0), [0, 3, 5]);
});

test('repetition penalty divides positive and multiplies negative logits of seen tokens', () => {
  const s = new Sampler({ temperature: 0, repetitionPenalty: 2 });
  assert.equal(s.sample(logits, [3, 5]), 0, 'both 3s halved to 1.5: token 0 (logit 2) wins');
  const neg = Float32Array.from([-1, -1.5]);
  assert.equal(new Sampler({ temperature: 0, repetitionPenalty: 2 }).sample(neg, [0]), 1, '-1 becomes -2');
});

test('temperature sampling follows the softmax distribution and is reproducible for a seed', () => {
  const n = 20000;
  const h = histogram(new Sampler({ temperature: 1, seed: 6 }), n);
  const z = Array.from(logits).map(Math.exp);
  const sum = z.reduce((a, b) => a + b, 0);
  h.forEach((c, i) => assert.ok(Math.abs(c / n - z[i]! / sum) < 0.015, `token ${i}: ${c / n} vs ${z[i]! / sum}`));
  assert.deepEqual(histogram(new Sampler({ temperature: 0.7, seed: 9 }), 50), histogram(new Sampler({ temperature: 0.7, seed: 9 }), 50));
});

test('invalid settings are typed errors naming the option', () => {
  assert.throws(() => new Sampler({ temperature: -1 }), (e: unknown) => e instanceof ArgumentError && /temperature/.test((e as Error).message));
  assert.throws(() => new Sampler({ topP: 0 }), /topP/);
  assert.throws(() => new Sampler({ topK: 1.5 }), /topK/);
  assert.throws(() => new Sampler({ minP: 1 }), /minP/);
  assert.throws(() => new Sampler({ repetitionPenalty: 0 }), /repetitionPenalty/);
});
