/**
 * The bundled Llama demo model retrieves (golden numbers measured on the committed weights): greedy passkey answers
 * are right at every depth of a 256-token prompt and 1,000-1,800 tokens back in a 2000-token one, and StreamingLLM
 * loses the key once it lies outside its window while keeping it inside. A regression in the model code, the KV
 * cache, the streaming memory or the weights moves these numbers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadModel } from '../../src/io/model-load.js';
import { buildModel } from '../../src/io/build.js';
import { streamingMemory } from '../../src/inference/hybrid-memory.js';
import { evalRetrieval, modelPredictor, type RetrievalOpts } from '../../src/eval/retrieval.js';

const loaded = loadModel(new URL('../../models/demo-llama', import.meta.url).pathname);
const tok = loaded.tokenizer!;
const model = buildModel(loaded, { dtype: 'f32' });
const OPTS: RetrievalOpts = { lengths: [256], depths: [0, 0.5, 1], samples: 3, seed: 0, maxContext: model.cfg.maxPos };

test('demo-llama finds the pass key at every depth of a 256-token prompt (full KV cache)', () => {
  const r = evalRetrieval(modelPredictor(model, tok), tok, 'passkey', OPTS);
  assert.deepEqual(r.cells.map((c) => [c.depth, c.n, c.accuracy]), [[0, 3, 1], [0.5, 3, 1], [1, 3, 1]]);
});

test('demo-llama under StreamingLLM (4 sinks + 64 recent tokens) loses the key outside the window only', () => {
  const r = evalRetrieval(modelPredictor(model, tok, () => (m) => streamingMemory(m, { sinks: 4, window: 64 })), tok, 'passkey', OPTS);
  const acc = new Map(r.cells.map((c) => [c.depth, c.accuracy]));
  // depth 0 and 0.5: the key is 100+ tokens before the question, evicted; depth 1: it is among the last 64 tokens
  assert.equal(acc.get(0), 0);
  assert.equal(acc.get(0.5), 0);
  assert.equal(acc.get(1), 1);
});

test('demo-llama retrieves across its whole context: pass keys 1,800 and 1,000 tokens back in a 2000-token prompt', () => {
  const opts: RetrievalOpts = { ...OPTS, lengths: [2000], depths: [0.1, 0.5], samples: 2 };
  const full = evalRetrieval(modelPredictor(model, tok), tok, 'passkey', opts);
  assert.deepEqual(full.cells.map((c) => [c.depth, c.correct]), [[0.1, 2], [0.5, 2]]);
  // a 512-token window keeps neither key
  const streaming = evalRetrieval(modelPredictor(model, tok, () => (m) => streamingMemory(m, { sinks: 4, window: 512 })), tok, 'passkey', opts);
  assert.deepEqual(streaming.cells.map((c) => [c.depth, c.correct]), [[0.1, 0], [0.5, 0]]);
});
