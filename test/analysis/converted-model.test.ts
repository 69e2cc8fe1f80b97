/** analyze() on a converted model: a clear refusal, not an internal slice error deep in the waiver evidence. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { analyze } from '../../src/analysis/analyze.js';
import { convert } from '../../src/convert/apply.js';
import { loadModel } from '../../src/io/model-load.js';
import { buildModel } from '../../src/io/build.js';
import { ArgumentError } from '../../src/tensor/index.js';

test('analyze refuses a converted model and says what to analyze instead', () => {
  const base = loadModel(new URL('../../models/stories260K', import.meta.url).pathname);
  const conv = convert(base, {
    schema: 'recurformer.plan', version: 1, score: 'rr', window: 16, selection: { budget: 0.1 }, nLayers: 5, nKvGroups: 4,
    layers: [{ layer: 3, groups: [1] }, { layer: 4, groups: [0] }], scores: [],
  });
  const ids = Array.from({ length: 200 }, (_, i) => 3 + (i * 7) % 500);
  assert.throws(() => analyze(buildModel(conv), ids, { samples: 1, seq: 32, windows: [4], seed: 0 }),
    (e: unknown) => e instanceof ArgumentError && /model is a converted model \(2 KV groups are already recurrent\)/.test(e.message)
      && /analyze the original model/.test(e.hint));
});
