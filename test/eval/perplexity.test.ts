/**
 * Sliding-window perplexity: stride = ctx is the old non-overlapping protocol bit for bit; a smaller stride scores
 * every target once with more context (lower ppl on the real model) and equals a brute-force reference that scores
 * each target with a fresh forward over its own window.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { load } from '../../src/cli/common.js';
import { perplexityOfIds, slidingPerplexity } from '../../src/eval/perplexity.js';
import { slidingWindows } from '../../src/eval/windows.js';
import { streamingMemory, type HybridMemory } from '../../src/inference/hybrid-memory.js';
import { buildModel } from '../../src/io/build.js';
import type { DecoderLM } from '../../src/model/transformer.js';
import { ArgumentError, crossEntropy, noGrad, scope } from '../../src/tensor/index.js';
import { randomModel, tinyConfig } from '../helpers/random-model.js';
import { TOL, assertClose } from '../helpers/tolerances.js';

const { loaded, model } = load(undefined);
const TEXT = readFileSync(new URL('../../data/tinystories-valid-excerpt/tinystories_val.txt', import.meta.url), 'utf8').slice(0, 3000);
const IDS = loaded.tokenizer!.encode(TEXT, { bos: true });

/** The non-overlapping protocol written out plainly: each window's summed cross-entropy, in order. */
function nonOverlapping(m: DecoderLM, ids: readonly number[], ctx: number): number {
  let sum = 0, count = 0;
  for (let start = 0; start < ids.length - 1; start += ctx) {
    const n = Math.min(ctx, ids.length - 1 - start);
    sum += noGrad(() => scope(() => crossEntropy(m.forward(Int32Array.from(ids.slice(start, start + n)), 1, n),
      Int32Array.from(ids.slice(start + 1, start + 1 + n)), { reduction: 'sum' }).item()));
    count += n;
  }
  return sum / count;
}

/** Brute force: target t (predicted from ids[t-1]) sees ids[start, t) where start is its window's, one forward each. */
function bruteForce(m: DecoderLM, ids: readonly number[], ctx: number, stride: number): number {
  let sum = 0;
  for (let t = 1; t < ids.length; t++) {
    const k = t <= ctx ? 0 : Math.ceil((t - ctx) / stride);
    const start = k * stride;
    const input = Int32Array.from(ids.slice(start, t));
    const logits = noGrad(() => scope(() => Float64Array.from(m.forward(input, 1, input.length, { lastOnly: true }).data)));
    const max = Math.max(...logits);
    const lse = max + Math.log(logits.reduce((s, x) => s + Math.exp(x - max), 0));
    sum += lse - logits[ids[t]!]!;
  }
  return sum / (ids.length - 1);
}

test('slidingWindows scores every target exactly once, each with at least ctx - stride tokens of context', () => {
  for (const [tokens, ctx, stride] of [[2, 1, 1], [50, 12, 5], [50, 12, 12], [13, 12, 3], [100, 7, 1]] as const) {
    const seen = new Array<number>(tokens - 1).fill(0);
    const ws = slidingWindows(tokens, ctx, stride);
    ws.forEach((w, i) => {
      assert.ok(w.n <= ctx && w.n >= 1 && w.from >= 0 && w.from < w.n);
      assert.equal(w.start, i * stride);
      for (let p = w.from; p < w.n; p++) {
        seen[w.start + p]! += 1;
        if (i > 0) assert.ok(p >= ctx - stride, 'a later window scores only targets with ctx - stride tokens before them');
      }
    });
    assert.deepEqual(seen, new Array<number>(tokens - 1).fill(1), `${tokens}/${ctx}/${stride}`);
  }
  assert.equal(slidingWindows(101, 10, 10).length, 10);
});

test('stride = ctx reproduces the non-overlapping result bit for bit (with and without a baseline memory)', () => {
  const r = perplexityOfIds(model, IDS, 64);
  assert.equal(r.nll, nonOverlapping(model, IDS, 64));
  assert.equal(slidingPerplexity(model, IDS, { ctx: 64, stride: 64 }).nll, r.nll);
  // golden values of the implementation before --stride existed (commit 2131a3f). The forward is float32: the
  // kernels' summation order (SIMD set, matrix-vector row order) moves the mean NLL by ~1e-10 relative, while
  // scoring a target twice, skipping one or giving it other context moves it by 1e-4 or more.
  const GOLDEN = { rtol: 1e-7, atol: 0 };
  assertClose(r.nll, 1.573103091108783, GOLDEN, 'ctx 64');
  assert.equal(r.tokens, IDS.length - 1);
  assert.equal(r.windows, Math.ceil((IDS.length - 1) / 64));
  const s = perplexityOfIds(model, IDS, 100, undefined, (m) => streamingMemory(m, { sinks: 2, window: 24 }), 16);
  assertClose(s.nll, 1.5910913084791563, GOLDEN, 'ctx 100, streaming 2 + 24, blocks of 16');
  assert.equal(slidingPerplexity(model, IDS, { ctx: 100, memory: (m) => streamingMemory(m, { sinks: 2, window: 24 }), block: 16 }).nll, s.nll);
});

test('a small stride lowers perplexity on stories260K and scores the same tokens', () => {
  const full = slidingPerplexity(model, IDS, { ctx: 64 });
  const slid = slidingPerplexity(model, IDS, { ctx: 64, stride: 16 });
  assert.equal(slid.tokens, full.tokens);
  assert.ok(slid.ppl <= full.ppl, `stride 16 ppl ${slid.ppl} vs non-overlapping ${full.ppl}`);
  assert.ok(slid.windows > full.windows);
});

test('sliding perplexity equals a brute-force per-target forward on a tiny model, also through a memory', () => {
  const m = buildModel(randomModel(tinyConfig('llama'), 3));
  const ids = Array.from({ length: 41 }, (_, i) => (i * 13 + 5) % m.cfg.vocabSize);
  for (const [ctx, stride] of [[12, 5], [12, 1], [7, 7], [40, 3]] as const) {
    const want = bruteForce(m, ids, ctx, stride);
    assertClose(slidingPerplexity(m, ids, { ctx, stride }).nll, want, TOL.parity, `ctx ${ctx} stride ${stride}`);
    // a streaming memory whose window covers the whole window changes nothing; blocks of 4 split windows unevenly
    const mem = (lm: DecoderLM): HybridMemory => streamingMemory(lm, { sinks: 4, window: ctx });
    assertClose(slidingPerplexity(m, ids, { ctx, stride, memory: mem, block: 4 }).nll, want, TOL.parity, `memory, ctx ${ctx} stride ${stride}`);
  }
});

test('a stride larger than ctx or a ctx beyond the model is an ArgumentError naming it', () => {
  assert.throws(() => slidingPerplexity(model, IDS, { ctx: 64, stride: 65 }), (e) => e instanceof ArgumentError && /stride = 65/.test(e.message));
  assert.throws(() => slidingPerplexity(model, IDS, { ctx: 4096 }), /ctx = 4096 exceeds the model context of 512/);
});
