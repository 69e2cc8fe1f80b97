/**
 * models/demo-llama-hh, the demo model that learned HashHop (scripts/demo/recreate-hashhop.sh; F16): it is demo-llama's
 * architecture, and the golden numbers measured on the committed weights hold: greedy 1- and 2-hop chains of digit
 * hashes followed through a 1024-token prompt, pass keys 1,800 and 1,000 tokens back in a 2000-token one, and a
 * StreamingLLM cache of 4 sinks + 64 recent tokens follows only the chain whose pair its window holds. A change to the
 * weights, the F16 loader, the model code, the KV cache or the hashhop format moves these numbers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { loadModel } from '../../src/io/model-load.js';
import { buildModel } from '../../src/io/build.js';
import { streamingMemory } from '../../src/inference/hybrid-memory.js';
import { evalRetrieval, modelPredictor, type RetrievalOpts } from '../../src/eval/retrieval.js';

const DIR = new URL('../../models/demo-llama-hh', import.meta.url).pathname;
const loaded = loadModel(DIR);
const tok = loaded.tokenizer!;
const model = buildModel(loaded, {});
// golden: [hops, right answers of 4] (measured on the committed weights)
const GOLDEN_HOPS = [[1, 4], [2, 2]];
const HOPS: RetrievalOpts = { lengths: [1024], hops: [1, 2], samples: 4, seed: 0, alphabet: 'digits', maxContext: model.cfg.maxPos };

test('demo-llama-hh is demo-llama\'s architecture in F16, with its tokenizer', () => {
  const cfg = (d: string): Record<string, unknown> => JSON.parse(readFileSync(`${d}/config.json`, 'utf8')) as Record<string, unknown>;
  const hh = cfg(DIR), base = cfg(new URL('../../models/demo-llama', import.meta.url).pathname);
  assert.equal(hh['torch_dtype'], 'float16');
  for (const k of ['hidden_size', 'num_hidden_layers', 'num_attention_heads', 'num_key_value_heads', 'intermediate_size', 'vocab_size',
    'max_position_embeddings', 'rope_theta', 'tie_word_embeddings']) assert.equal(hh[k], base[k], k);
  assert.equal(readFileSync(`${DIR}/tokenizer.json`, 'utf8'), readFileSync(new URL('../../models/demo-llama/tokenizer.json', import.meta.url), 'utf8'));
});

test('demo-llama-hh follows 1- and 2-hop chains of digit hashes through a 1024-token prompt; StreamingLLM only in its window', () => {
  const full = evalRetrieval(modelPredictor(model, tok), tok, 'hashhop', HOPS);
  assert.deepEqual(full.cells.map((c) => [c.hops, c.correct]), GOLDEN_HOPS);
  const streaming = evalRetrieval(modelPredictor(model, tok, () => (m) => streamingMemory(m, { sinks: 4, window: 64 })), tok, 'hashhop', HOPS);
  // golden too: the one 1-hop chain it follows is the one whose pair lies among the last 64 tokens
  assert.deepEqual(streaming.cells.map((c) => [c.hops, c.correct]), [[1, 1], [2, 0]]);
});

test('demo-llama-hh keeps demo-llama\'s passkey: keys 1,800 and 1,000 tokens back in a 2000-token prompt', () => {
  const r = evalRetrieval(modelPredictor(model, tok), tok, 'passkey', { lengths: [2000], depths: [0.1, 0.5], samples: 2, seed: 0, maxContext: model.cfg.maxPos });
  assert.deepEqual(r.cells.map((c) => [c.depth, c.correct]), [[0.1, 2], [0.5, 2]]);
});
