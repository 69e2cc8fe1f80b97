/**
 * Step mode (src/model/step-ops.ts: the block on preallocated rows) against graph mode of DecoderLM.forward:
 * the same kernels with the same arguments, so every decoded logit must be bit-identical. Covers f32, f16 and bf16
 * weights, GQA, q/k/v biases, interleaved RoPE, a sliding window, StreamingLLM memory, converted models with
 * recurrent heads (gate and norm on and off, a layer with every group replaced), and streaming heads, and the cases that must fall back.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { buildModel } from '../../src/io/build.js';
import { HalfWeight, QuantWeight, type Weight } from '../../src/model/weights.js';
import { GgmlType, quantize } from '../../src/io/ggml-quants.js';
import { f32ArrayToBf16, f32ArrayToF16 } from '../../src/io/tensor-file.js';
import { convert } from '../../src/convert/apply.js';
import { planFromAnalysis, type AnalysisLike } from '../../src/convert/plan.js';
import { StepOps, setFastDecode } from '../../src/model/step-ops.js';
import { DecoderLM } from '../../src/model/transformer.js';
import { HybridMemory, streamingHeadsMemory, streamingMemory } from '../../src/inference/hybrid-memory.js';
import { fullMemory } from '../../src/inference/generate.js';
import { noGrad, scope, type Tensor } from '../../src/tensor/index.js';
import { randomModel, tinyConfig } from '../helpers/random-model.js';
import { fakeAnalysis } from '../helpers/cli.js';

// counts the steps that took the fast path, so a comparison cannot silently be general path against itself
let fastSteps = 0;
const run = StepOps.prototype.run;
StepOps.prototype.run = function (this: StepOps, ...a: Parameters<typeof run>) {
  fastSteps++;
  return run.apply(this, a);
};

const PROMPT = Int32Array.from([1, 5, 9, 14, 3, 22, 7]);
const STEPS = [11, 4, 30, 2, 17, 8, 25, 6, 13];

/** Logits of a 7-token prefill and then 9 single-token steps, with the fast path on or off for the steps. */
function decode(m: DecoderLM, mem: () => HybridMemory, fast: boolean): Float32Array[] {
  const memory = mem();
  const was = setFastDecode(fast);
  try {
    return noGrad(() => {
      const out: Float32Array[] = [];
      out.push(scope(() => Float32Array.from(m.forward(PROMPT, 1, PROMPT.length, { memory, lastOnly: true }).data)));
      for (const id of STEPS) {
        out.push(scope(() => Float32Array.from(m.forward(Int32Array.of(id), 1, 1, { memory }).data)));
      }
      return out;
    });
  } finally {
    setFastDecode(was);
  }
}

/** Decodes with the fast path on and off; the logits must be identical, and the fast run must have used it. */
function assertSame(m: DecoderLM, mem: () => HybridMemory, label: string, expectFast = true): void {
  const before = fastSteps;
  const fast = decode(m, mem, true);
  assert.equal(fastSteps - before, expectFast ? STEPS.length : 0, `${label}: steps on the fast path`);
  const slow = decode(m, mem, false);
  assert.equal(fastSteps - before, expectFast ? STEPS.length : 0, `${label}: the general run used the fast path`);
  for (let i = 0; i < fast.length; i++) {
    assert.ok(fast[i]!.every(Number.isFinite), `${label}: step ${i} not finite`);
    assert.deepEqual(fast[i], slow[i], `${label}: step ${i} differs`);
  }
}

function convertedModel(over: Parameters<typeof tinyConfig>[1], budget: number, opts: { gate?: boolean; norm?: boolean } = {},
  scattered = false): DecoderLM {
  const cfg = tinyConfig('llama', over);
  const base = randomModel(cfg, 3);
  const analysis = fakeAnalysis() as AnalysisLike;
  // scattered: replaced groups anywhere in a layer (fakeAnalysis replaces each layer's last groups first)
  if (scattered) analysis.groups.forEach((g, i) => (g.groupScore.rr['16'] = ((i * 7) % 11) / 11));
  const plan = planFromAnalysis(analysis, cfg.nLayers, cfg.nKvHeads, { budget });
  return buildModel(convert(base, plan, { chunk: 4, ...opts }));
}

test('fast decode equals the general path bit for bit: dtypes, GQA, biases, RoPE styles, sliding window', () => {
  const cases: [string, Parameters<typeof tinyConfig>[1], 'f32' | 'f16' | 'bf16'][] = [
    ['llama GQA f32', {}, 'f32'],
    ['llama GQA f16', {}, 'f16'],
    ['llama bf16', { nKvHeads: 4 }, 'bf16'],
    ['qwen2 biases, interleaved RoPE', { qkvBias: true, ropeStyle: 'interleaved' }, 'f32'],
    ['mistral sliding window 5', { slidingWindow: 5, nLayers: 3 }, 'f32'],
    ['MQA, tied, 4 layers', { nKvHeads: 1, tiedEmbeddings: true, nLayers: 4 }, 'f16'],
  ];
  for (const [label, over, dtype] of cases) {
    const lm = randomModel(tinyConfig('llama', over), 1);
    // bf16: a checkpoint stored as BF16, kept 16-bit in memory
    if (dtype === 'bf16') {
      for (const [name, t] of lm.tensors) {
        if (t.shape.length === 2) lm.tensors.set(name, { ...t, dtype: 'BF16', data: f32ArrayToBf16(t.data as Float32Array) });
      }
    }
    const m = buildModel(lm, { dtype: dtype === 'bf16' ? 'keep' : dtype });
    if (dtype !== 'f32') assert.ok([...m.weights.values()].some((w) => w instanceof HalfWeight && w.kind === dtype), label);
    assertSame(m, () => fullMemory(m), label);
  }
});

test('fast decode equals the general path with StreamingLLM memory (sinks + window wrap during the steps)', () => {
  const m = buildModel(randomModel(tinyConfig('llama', { nLayers: 3 }), 2));
  assertSame(m, () => streamingMemory(m, { sinks: 2, window: 6 }), 'streaming 2 + 6');
});

test('fast decode equals the general path on converted models (recurrent heads, hybrid cache)', () => {
  for (const [budget, opts] of [[0.25, {}], [0.5, { gate: true, norm: true }], [0.5, { gate: false, norm: false }], [1, {}]] as const) {
    // five layers of four KV groups (fakeAnalysis' shape), two query heads per group
    const m = convertedModel({ nLayers: 5, nHeads: 8, nKvHeads: 4 }, budget, opts);
    assert.ok(m.recurrent.size > 0);
    assertSame(m, () => fullMemory(m), `budget ${budget} ${JSON.stringify(opts)}`);
    // StreamingLLM on a converted model: the attention groups windowed, the recurrent heads carry their state
    if (budget < 1) assertSame(m, () => streamingMemory(m, { sinks: 1, window: 5 }), `streaming on budget ${budget}`);
  }
});

test('fast decode equals the general path on converted models whose recurrent projections are held 16-bit', () => {
  for (const [kind, opts] of [['bf16', {}], ['f16', { gate: true, norm: true }]] as const) {
    const m0 = convertedModel({ nLayers: 5, nHeads: 8, nKvHeads: 4 }, 0.5, opts);
    // the projections as a 16-bit checkpoint holds them; conv, dt bias, decay, D and norm stay float32
    const weights = new Map(m0.weights);
    for (const [name, w] of m0.weights) {
      if (!/\.recurrent\.(wx|wb|wc|wdt|wz)$/.test(name)) continue;
      const f = (w as Tensor).data;
      weights.set(name, new HalfWeight(w.shape, kind === 'bf16' ? f32ArrayToBf16(f) : f32ArrayToF16(f), name, kind));
    }
    const m = new DecoderLM(m0.cfg, weights, m0.spec);
    const held = [...m.recurrent.values()].flatMap((r) => [r.params.wx, r.params.wb, r.params.wc, r.params.wdt, ...(r.params.wz ? [r.params.wz] : [])]);
    assert.ok(held.length > 0 && held.every((w) => w instanceof HalfWeight && w.kind === kind), `${kind}: the model reads them 16-bit`);
    assertSame(m, () => fullMemory(m), `${kind} recurrent projections ${JSON.stringify(opts)}`);
  }
});

test('a converted model\'s decode skips the q/k/v rows of its recurrent heads, and equals the general path (f32, 16-bit, Q8_0)', () => {
  const m0 = convertedModel({ nLayers: 5, nHeads: 8, nKvHeads: 4 }, 0.5, {}, true);
  assert.ok(m0.layout.layers.some((L) => L.groups.recurrent.length > 0 && L.groups.recurrent[0] === 0 && L.groups.attention.length > 0),
    'a layer whose kept groups start after a recurrent one');
  const qkv = /\.self_attn\.[qkv]_proj\.weight$/;
  const held: [string, (w: Tensor) => Weight][] = [
    ['f32', (w) => w],
    ['bf16', (w) => new HalfWeight(w.shape, f32ArrayToBf16(w.data), undefined, 'bf16')],
    ['Q8_0', (w) => new QuantWeight(w.shape, 'Q8_0', quantize(GgmlType.Q8_0, w.data))],
  ];
  for (const [label, make] of held) {
    const weights = new Map([...m0.weights].map(([n, w]) => [n, qkv.test(n) ? make(w as Tensor) : w]));
    const m = new DecoderLM(m0.cfg, weights, m0.spec);
    // what step mode's q/k/v hand to attend: rows of recurrent heads stay 0, the others equal the fused products
    const seen: Float32Array[][] = [];
    const orig = StepOps.prototype.qkv;
    StepOps.prototype.qkv = function (this: StepOps, ...a: Parameters<typeof orig>) {
      const r = orig.apply(this, a);
      seen.push(r.map((x) => Float32Array.from(x)));
      return r;
    };
    try {
      assertSame(m, () => fullMemory(m), `${label} q/k/v`);
    } finally {
      StepOps.prototype.qkv = orig;
    }
    const Dh = m.cfg.headDim;
    for (const L of m.layout.layers.filter((x) => x.groups.recurrent.length > 0)) {
      const [q, k] = seen[seen.length - m.cfg.nLayers + L.layer]!;
      for (const h of L.heads.recurrent) assert.ok(q!.subarray(h * Dh, (h + 1) * Dh).every((x) => x === 0), `${label}: q of recurrent head ${h} not computed`);
      for (const g of L.groups.recurrent) assert.ok(k!.subarray(g * Dh, (g + 1) * Dh).every((x) => x === 0), `${label}: k of recurrent group ${g}`);
      for (const h of L.heads.attention) assert.ok(q!.subarray(h * Dh, (h + 1) * Dh).some((x) => x !== 0), `${label}: q of attention head ${h}`);
    }
  }
});

test('fast decode equals the general path with streaming-heads memory; batches and gradients take the general path', () => {
  const m = buildModel(randomModel(tinyConfig('llama', { nLayers: 2 }), 4));
  const windowed = new Map([[0, [1]], [1, [0]]]);
  assertSame(m, () => streamingHeadsMemory(m, windowed, { sinks: 1, window: 4 }, { maxLen: 64 }), 'streaming heads');
  const before = fastSteps;
  const mem = new HybridMemory(m.layout, { batch: 2, maxLen: 64 });
  noGrad(() => m.forward(Int32Array.of(1, 2), 2, 1, { memory: mem })); // batch of two
  m.forward(Int32Array.of(1), 1, 1, { memory: fullMemory(m) }); // gradients enabled
  assert.equal(fastSteps, before);
});
