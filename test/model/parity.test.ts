/**
 * Two forms, one semantics: prefill logits equal step-by-step decode logits through the KV cache; write/read
 * round trips (HF folder, GGUF) give identical logits; F16 weights stay within their tolerance of F32.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel } from '../../src/io/model-load.js';
import { writeGgufModel, writeHfFolder } from '../../src/io/model-save.js';
import { buildModel } from '../../src/io/build.js';
import type { DecoderLM } from '../../src/model/transformer.js';
import { fullMemory, generateIds } from '../../src/inference/generate.js';
import { ArgumentError, Rng, noGrad } from '../../src/tensor/index.js';
import { invFreqFor } from '../../src/model/rope.js';
import { HalfWeight } from '../../src/model/weights.js';
import { randomModel, tinyConfig } from '../helpers/random-model.js';
import { testBothBackends } from '../helpers/backends.js';
import { TOL, assertClose } from '../helpers/tolerances.js';

const VARIANTS = {
  'llama GQA': tinyConfig('llama'),
  'qwen2 (q/k/v bias, tied)': tinyConfig('llama', { qkvBias: true, tiedEmbeddings: true }),
  'mistral (sliding window 5)': tinyConfig('llama', { slidingWindow: 5 }),
  'llama interleaved RoPE, llama3 scaling': tinyConfig('llama', {
    ropeStyle: 'interleaved', ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPos: 32 },
  }),
  gpt2: tinyConfig('gpt2'),
};

function ids(n: number, vocab: number, seed: number): Int32Array {
  const r = new Rng(seed);
  return Int32Array.from({ length: n }, () => r.int(vocab));
}

function prefillLogits(m: DecoderLM, x: Int32Array): Float32Array {
  return noGrad(() => Float32Array.from(m.forward(x, 1, x.length).data));
}

/** Logits of every position, computed by a prefill of `split` tokens then one token at a time. */
function cachedLogits(m: DecoderLM, x: Int32Array, split: number): Float32Array {
  const V = m.cfg.vocabSize;
  const out = new Float32Array(x.length * V);
  const mem = fullMemory(m);
  noGrad(() => {
    const first = m.forward(x.subarray(0, split), 1, split, { memory: mem });
    out.set(first.data, 0);
    for (let t = split; t < x.length; t++) {
      const l = m.forward(x.subarray(t, t + 1), 1, 1, { memory: mem });
      out.set(l.data, t * V);
    }
  });
  return out;
}

for (const [name, cfg] of Object.entries(VARIANTS)) {
  testBothBackends(`prefill == step-by-step decode == chunked prefill: ${name}`, () => {
    const m = buildModel(randomModel(cfg, 3));
    const x = ids(13, cfg.vocabSize, 5);
    const full = prefillLogits(m, x);
    assertClose(cachedLogits(m, x, 1), full, TOL.parity, `${name}: pure decode`);
    assertClose(cachedLogits(m, x, 6), full, TOL.parity, `${name}: prefill 6 + decode`);
  });
}

test('HF folder and GGUF round trips give identical logits (llama and gpt2)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rf-parity-'));
  try {
    for (const cfg of [VARIANTS['llama GQA'], VARIANTS['qwen2 (q/k/v bias, tied)'], VARIANTS.gpt2]) {
      const lm = randomModel(cfg, 9);
      const x = ids(9, cfg.vocabSize, 2);
      const want = prefillLogits(buildModel(lm), x);
      const hf = join(dir, `${cfg.arch}-${cfg.qkvBias}-hf`);
      writeHfFolder(hf, lm, 'F32');
      assert.deepEqual(prefillLogits(buildModel(loadModel(hf)), x), want, `${cfg.arch} HF round trip`);
      const gg = join(dir, `${cfg.arch}-${cfg.qkvBias}.gguf`);
      writeGgufModel(gg, lm, 'F32');
      assert.deepEqual(prefillLogits(buildModel(loadModel(gg)), x), want, `${cfg.arch} GGUF round trip`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

testBothBackends('F16 weights in memory stay within half-precision tolerance of F32', () => {
  for (const cfg of [VARIANTS['llama GQA'], VARIANTS.gpt2]) {
    const lm = randomModel(cfg, 4);
    const x = ids(7, cfg.vocabSize, 8);
    const f32 = prefillLogits(buildModel(lm, { dtype: 'f32' }), x);
    const f16 = prefillLogits(buildModel(lm, { dtype: 'f16' }), x);
    // half floats carry 11 significant bits: relative error ~5e-4 per weight, accumulated over a few layers
    assertClose(f16, f32, { rtol: 2e-2, atol: 2e-2 }, `${cfg.arch} f16 vs f32`);
    const cached = (() => {
      const m = buildModel(lm, { dtype: 'f16' });
      return cachedLogits(m, x, 3);
    })();
    assertClose(cached, f16, TOL.parity, `${cfg.arch} f16 cached == f16 prefill`);
  }
});

test('bad generation input: token outside the vocabulary, prompt longer than the context', () => {
  const cfg = VARIANTS['llama GQA'];
  const m = buildModel(randomModel(cfg, 1));
  assert.throws(() => generateIds(m, [1, cfg.vocabSize], null),
    (e: unknown) => e instanceof ArgumentError && /prompt\[1\] = 67 is outside the vocabulary/.test((e as Error).message));
  assert.throws(() => generateIds(m, new Array<number>(cfg.maxPos + 1).fill(1), null),
    (e: unknown) => e instanceof ArgumentError && /more than the context of 128/.test((e as Error).message) && /hint/.test((e as Error).message));
  const r = generateIds(m, [1, 2, 3], null, { maxTokens: 200 });
  assert.ok(r.promptIds.length + r.ids.length <= cfg.maxPos, 'never runs past the context');
  assert.notEqual(r.stopReason, 'length', 'stops at the context (or an end token) before 200 tokens');
});

test('RoPE scaling: linear divides frequencies; llama3 keeps high, divides low, blends the middle', () => {
  const base = tinyConfig('llama', { headDim: 16 });
  const plain = invFreqFor(base);
  const lin = invFreqFor(tinyConfig('llama', { headDim: 16, ropeScaling: { type: 'linear', factor: 4 } }));
  plain.forEach((f, i) => assert.ok(Math.abs(lin[i]! - f / 4) < 1e-9 * f + 1e-12));
  const l3 = invFreqFor(tinyConfig('llama', {
    headDim: 16, ropeScaling: { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPos: 64 },
  }));
  plain.forEach((f, i) => {
    const wavelen = (2 * Math.PI) / f;
    if (wavelen < 16) assert.equal(l3[i], f, `high frequency ${i} unchanged`);
    else if (wavelen > 64) assert.ok(Math.abs(l3[i]! - f / 8) < 1e-7 * f, `low frequency ${i} divided by 8`);
    else assert.ok(l3[i]! < f && l3[i]! > f / 8, `band frequency ${i} blended`);
  });
});

test('selfOnly: the first token is already self-only; another self-only token changes the logits from there on', () => {
  const cfg = VARIANTS['llama GQA'];
  const m = buildModel(randomModel(cfg, 6));
  const x = ids(8, cfg.vocabSize, 4);
  const plain = prefillLogits(m, x);
  const first = noGrad(() => Float32Array.from(m.forward(x, 1, 8, { selfOnly: Int32Array.of(0) }).data));
  assert.deepEqual(first, plain);
  const third = noGrad(() => Float32Array.from(m.forward(x, 1, 8, { selfOnly: Int32Array.of(3) }).data));
  const V = cfg.vocabSize;
  assert.deepEqual(third.subarray(0, 3 * V), plain.subarray(0, 3 * V), 'earlier positions are untouched');
  assert.notDeepEqual(third.subarray(3 * V, 4 * V), plain.subarray(3 * V, 4 * V));
});

testBothBackends('BF16 checkpoints stay 16-bit in memory (dtype keep) and match their float32 widening', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rf-bf16-'));
  try {
    for (const cfg of [VARIANTS['llama GQA'], VARIANTS.gpt2]) {
      const path = join(dir, cfg.arch);
      writeHfFolder(path, randomModel(cfg, 12), 'BF16');
      const lm = loadModel(path);
      const kept = buildModel(lm, { dtype: 'keep' });
      const halves = [...kept.weights.values()].filter((w) => w instanceof HalfWeight);
      assert.ok(halves.length > 0 && halves.every((w) => (w as HalfWeight).kind === 'bf16'), 'matrices held as bf16');
      const x = ids(9, cfg.vocabSize, 3);
      const wide = buildModel(lm, { dtype: 'f32' });
      assertClose(prefillLogits(kept, x), prefillLogits(wide, x), TOL.parity, `${cfg.arch} bf16 direct vs widened (prefill > 8 rows widens)`);
      assertClose(cachedLogits(kept, x, 2), prefillLogits(wide, x), TOL.parity, `${cfg.arch} bf16 decode reads 16-bit weights`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
