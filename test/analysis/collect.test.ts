/** Calibration sampling: BOS first, seeded, wrapping short texts; the runner never needs a full T x T map. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sampleSequences } from '../../src/analysis/collect.js';

test('sampleSequences: BOS first, contiguous text windows, deterministic for a seed', () => {
  const text = Array.from({ length: 1000 }, (_, i) => 10 + i);
  const s = { samples: 5, seq: 32, windows: [4], seed: 9 };
  const a = sampleSequences(text, 1, s), b = sampleSequences(text, 1, s);
  assert.deepEqual(a, b);
  assert.equal(a.wrapped, false);
  for (const q of a.seqs) {
    assert.equal(q.length, 32);
    assert.equal(q[0], 1);
    for (let t = 2; t < 32; t++) assert.equal(q[t], q[t - 1]! + 1, 'consecutive text tokens');
  }
  assert.notDeepEqual(sampleSequences(text, 1, { ...s, seed: 10 }).seqs, a.seqs);
});

test('sampleSequences wraps a text shorter than a sample and says so', () => {
  const r = sampleSequences([5, 6, 7], 1, { samples: 2, seq: 8, windows: [2], seed: 0 });
  assert.equal(r.wrapped, true);
  assert.deepEqual([...r.seqs[0]!], [1, 5, 6, 7, 5, 6, 7, 5]);
});
