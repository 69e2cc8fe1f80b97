/**
 * The trained checkpoints of demo-llama-hh in the repository (F16; made by recipes/demo-llama-hh.json from
 * models/demo-llama-hh): models/demo-llama-hh-75, which `npm run demo` evaluates, and models/demo-llama-hh-50 and -25,
 * which `npm run experiment` evaluates with them. Each is what its SOURCE.md says (the plan: at 75%, 18 of the 24 KV
 * groups replaced, layer 3 and two groups of layer 5 kept; at 50%, 12; at 25%, 6; the kind and its window), and the
 * golden numbers measured on the committed weights hold: greedy pass keys 2,000, 1,800 and 1,000 tokens back in a
 * 2000-token prompt, 1- and 2-hop chains of digit hashes followed through a 1024-token prompt, and the perplexity of
 * the first 6,000 characters of Frankenstein (held out from all training) in 1024-token windows. A change to the weights, the loader's F16 path, the recurrent or
 * recurrent+window heads or the hybrid cache moves these numbers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { loadModel } from '../../src/io/model-load.js';
import { buildModel } from '../../src/io/build.js';
import { evalRetrieval, modelPredictor } from '../../src/eval/retrieval.js';
import { perplexity } from '../../src/eval/perplexity.js';
import { plainText } from '../../src/eval/synthetic.js';

const dir = (name: string): string => new URL(`../../models/${name}`, import.meta.url).pathname;
const TEXT = plainText(readFileSync(new URL('../../data/gutenberg/frankenstein_pg84.txt', import.meta.url), 'utf8')).slice(0, 6000);

interface Spec {
  kind?: string;
  window?: number;
  sinks?: number;
  layers: { layer: number; groups: number[] }[];
}
const PLAN75 = [[0, [0, 1, 2, 3]], [1, [0, 1, 2, 3]], [2, [0, 1, 2, 3]], [4, [0, 1, 2, 3]], [5, [2, 3]]];
const PLAN50 = [[0, [0]], [1, [0, 1, 2]], [2, [1, 2, 3]], [4, [0, 1, 2, 3]], [5, [2]]];
const PLAN25 = [[1, [0, 2]], [2, [1, 2, 3]], [4, [1]]];

// golden: [depth, right answers of 2] at 2000 tokens, [hops, right answers of 4] at 1024 tokens, and the perplexity
// (measured on the committed F16 weights)
const CASES = [
  { name: 'demo-llama-hh-75/recurformer', kind: undefined, plan: PLAN75, passkey: [[0, 2], [0.1, 2], [0.5, 2]], hashhop: [[1, 4], [2, 2]], ppl: 122.78933 },
  { name: 'demo-llama-hh-75/recurrent-window', kind: 'recurrent+window', plan: PLAN75, passkey: [[0, 2], [0.1, 2], [0.5, 2]], hashhop: [[1, 4], [2, 2]], ppl: 115.19728 },
  { name: 'demo-llama-hh-75/control', kind: null, plan: null, passkey: [[0, 2], [0.1, 2], [0.5, 2]], hashhop: [[1, 4], [2, 2]], ppl: 111.42340 },
  { name: 'demo-llama-hh-50/recurformer', kind: undefined, plan: PLAN50, passkey: [[0, 2], [0.1, 2], [0.5, 2]], hashhop: [[1, 4], [2, 1]], ppl: 119.17068 },
  { name: 'demo-llama-hh-50/recurrent-window', kind: 'recurrent+window', plan: PLAN50, passkey: [[0, 2], [0.1, 2], [0.5, 2]], hashhop: [[1, 4], [2, 3]], ppl: 112.94724 },
  { name: 'demo-llama-hh-25/recurformer', kind: undefined, plan: PLAN25, passkey: [[0, 2], [0.1, 2], [0.5, 2]], hashhop: [[1, 4], [2, 0]], ppl: 109.00595 },
  { name: 'demo-llama-hh-25/recurrent-window', kind: 'recurrent+window', plan: PLAN25, passkey: [[0, 2], [0.1, 2], [0.5, 2]], hashhop: [[1, 4], [2, 3]], ppl: 111.35559 },
] as const;

for (const c of CASES) {
  test(`checkpoint ${c.name}: its plan and kind, pass keys far back at 2000 tokens, HashHop at 1024, held-out perplexity`, () => {
    const loaded = loadModel(dir(c.name));
    const config = JSON.parse(readFileSync(`${dir(c.name)}/config.json`, 'utf8')) as { torch_dtype: string; recurformer?: Spec };
    assert.equal(config.torch_dtype, 'float16');
    if (c.kind === null) {
      assert.equal(config.recurformer, undefined, 'the control is an ordinary Llama');
    } else {
      const spec = config.recurformer!;
      assert.deepEqual(spec.layers.map((l) => [l.layer, l.groups]), c.plan);
      assert.equal(spec.kind, c.kind);
      if (c.kind === 'recurrent+window') assert.deepEqual([spec.window, spec.sinks], [64, 4]);
    }
    const tok = loaded.tokenizer!;
    const model = buildModel(loaded, {});
    const r = evalRetrieval(modelPredictor(model, tok), tok, 'passkey',
      { lengths: [2000], depths: [0, 0.1, 0.5], samples: 2, seed: 0, maxContext: model.cfg.maxPos });
    assert.deepEqual(r.cells.map((x) => [x.depth, x.correct]), c.passkey);
    const h = evalRetrieval(modelPredictor(model, tok), tok, 'hashhop',
      { lengths: [1024], hops: [1, 2], samples: 4, seed: 0, alphabet: 'digits', maxContext: model.cfg.maxPos });
    assert.deepEqual(h.cells.map((x) => [x.hops, x.correct]), c.hashhop);
    const p = perplexity(model, tok, TEXT, 1024);
    assert.equal(p.tokens, 1828);
    assert.ok(Math.abs(p.ppl / c.ppl - 1) < 1e-5, `perplexity ${p.ppl} against the golden ${c.ppl}`);
  });
}
