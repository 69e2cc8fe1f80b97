/**
 * Bounded prefill: a prompt run through the memory in chunks (each freed before the next) gives the logits of the
 * one-shot prefill, for every memory kind (full KV, converted hybrid with recurrent state carried across chunks,
 * StreamingLLM, streaming heads), and a DecodeSession with a small prefillChunk generates the same tokens.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { buildModel } from '../../src/io/build.js';
import { convert } from '../../src/convert/apply.js';
import { planFromAnalysis, type AnalysisLike } from '../../src/convert/plan.js';
import type { DecoderLM } from '../../src/model/transformer.js';
import { streamingHeadsMemory, streamingMemory, type HybridMemory } from '../../src/inference/hybrid-memory.js';
import { fullMemory } from '../../src/inference/generate.js';
import { DecodeSession, PREFILL_CHUNK } from '../../src/inference/session.js';
import { noGrad, scope } from '../../src/tensor/index.js';
import { ArgumentError } from '../../src/tensor/errors.js';
import { randomModel, tinyConfig } from '../helpers/random-model.js';
import { fakeAnalysis } from '../helpers/cli.js';

const TOL = 2e-5; // float32 sums in another order (chunk boundaries of the SSD scan and of the GEMM blocking)

function hybrid(): DecoderLM {
  const cfg = tinyConfig('llama', { nLayers: 5, nHeads: 8, nKvHeads: 4, maxPos: 256 });
  const plan = planFromAnalysis(fakeAnalysis() as AnalysisLike, cfg.nLayers, cfg.nKvHeads, { budget: 0.5 });
  return buildModel(convert(randomModel(cfg, 3), plan, { chunk: 4 }));
}
const plain = buildModel(randomModel(tinyConfig('llama', { nLayers: 3, maxPos: 256 }), 2));
const conv = hybrid();
const CASES: [string, DecoderLM, () => HybridMemory][] = [
  ['full', plain, () => fullMemory(plain)],
  ['converted hybrid', conv, () => fullMemory(conv)],
  ['StreamingLLM 2 + 9', plain, () => streamingMemory(plain, { sinks: 2, window: 9 })],
  ['StreamingLLM 2 + 9 on the converted model', conv, () => streamingMemory(conv, { sinks: 2, window: 9 })],
  ['streaming heads', plain, () => streamingHeadsMemory(plain, new Map([[0, [1]], [2, [0, 1]]]), { sinks: 2, window: 9 })],
];

/** The last position's logits after feeding `ids` in chunks of the given sizes, then two single steps. */
function logits(m: DecoderLM, memory: HybridMemory, ids: Int32Array, chunks: number[]): Float32Array[] {
  return noGrad(() => {
    const out: Float32Array[] = [];
    let at = 0;
    for (const n of chunks) {
      out.push(scope(() => Float32Array.from(m.forward(ids.subarray(at, at + n), 1, n, { memory, lastOnly: true }).data)));
      at += n;
    }
    assert.equal(at, ids.length);
    for (const id of [3, 17]) {
      out.push(scope(() => Float32Array.from(m.forward(Int32Array.of(id), 1, 1, { memory }).data)));
    }
    return out;
  });
}

for (const [label, m, mem] of CASES) {
  test(`chunked prefill equals one-shot prefill: ${label}`, () => {
    const V = m.cfg.vocabSize;
    const ids = Int32Array.from({ length: 77 }, (_, i) => (i * 29 + 5) % V);
    const want = logits(m, mem(), ids, [77]);
    for (const chunks of [[1, 76], [7, 7, 7, 56], [30, 30, 17], [64, 13]]) {
      const got = logits(m, mem(), ids, chunks);
      // the final chunk's last row, then the two steps after it
      for (const [w, g] of [[want[0]!, got[chunks.length - 1]!], [want[1]!, got[chunks.length]!], [want[2]!, got[chunks.length + 1]!]] as const) {
        let worst = 0;
        for (let i = 0; i < w.length; i++) worst = Math.max(worst, Math.abs(w[i]! - g[i]!) / (1 + Math.abs(w[i]!)));
        assert.ok(worst <= TOL, `${label} chunks ${chunks.join('+')}: worst relative difference ${worst}`);
      }
    }
  });
}

test('DecodeSession prefills in chunks of prefillChunk and generates what a one-shot prefill generates', () => {
  for (const [label, m, mem] of CASES) {
    const prompt = Array.from({ length: 90 }, (_, i) => (i * 13 + 1) % m.cfg.vocabSize);
    const run = (prefillChunk: number) => {
      const s = new DecodeSession(m, null, prompt, { maxTokens: 12, temperature: 0, memory: mem, prefillChunk });
      while (!s.done) s.step();
      return s.result().ids;
    };
    assert.deepEqual(run(8), run(1000), label);
  }
  assert.equal(PREFILL_CHUNK, 512);
  assert.throws(() => new DecodeSession(plain, null, [1, 2], { prefillChunk: 0 }), ArgumentError);
});
