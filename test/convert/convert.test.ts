/** Conversion: plans, cache accounting, hybrid decode parity, checkpoint round trip, generation. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel, type LoadedModel } from '../../src/io/model-load.js';
import { castTensor, writeHfFolder } from '../../src/io/model-save.js';
import { buildModel } from '../../src/io/build.js';
import { TapRecorder } from '../../src/model/taps.js';
import type { DecoderLM } from '../../src/model/transformer.js';
import { fullMemory, generate } from '../../src/inference/generate.js';
import { planFromAnalysis, type AnalysisLike, type ReplacementPlan } from '../../src/convert/plan.js';
import { calibrationModel, convert, type ConvertOptions } from '../../src/convert/apply.js';
import { HalfWeight } from '../../src/model/weights.js';
import { ArgumentError, Rng, noGrad } from '../../src/tensor/index.js';
import { testBothBackends } from '../helpers/backends.js';
import { TOL, assertClose } from '../helpers/tolerances.js';

const HF = new URL('../../models/stories260K', import.meta.url).pathname;
const base = loadModel(HF);
const cfg = base.config; // 5 layers, 4 KV groups (8 query heads)

/** A synthetic analysis: group (l, g) has recency score (l * 4 + g) / 20 at every window. */
function fakeAnalysis(): AnalysisLike {
  const groups = [];
  for (let l = 0; l < cfg.nLayers; l++) {
    for (let g = 0; g < cfg.nKvHeads; g++) {
      const v = (l * 4 + g) / 20;
      groups.push({ layer: l, kvGroup: g, groupScore: { rr: { '4': v, '16': v }, rrw: { '4': v, '16': g === 0 ? null : v } } });
    }
  }
  return { groups };
}

function ids(n: number, seed: number): Int32Array {
  const r = new Rng(seed);
  return Int32Array.from({ length: n }, (_, i) => (i === 0 ? 1 : 3 + r.int(cfg.vocabSize - 3)));
}

function logitsOf(m: DecoderLM, x: Int32Array): Float32Array {
  return noGrad(() => Float32Array.from(m.forward(x, 1, x.length).data));
}

test('plans: budget picks the highest group scores, threshold, per-layer minimum, excluded layers, undefined RRw', () => {
  const a = fakeAnalysis();
  const half = planFromAnalysis(a, cfg.nLayers, cfg.nKvHeads, { budget: 0.5 });
  assert.equal(half.scores.length, 10);
  assert.deepEqual(half.layers.map((l) => [l.layer, l.groups]), [[2, [2, 3]], [3, [0, 1, 2, 3]], [4, [0, 1, 2, 3]]]);
  const th = planFromAnalysis(a, cfg.nLayers, cfg.nKvHeads, { threshold: 0.9 });
  assert.deepEqual(th.layers, [{ layer: 4, groups: [2, 3] }]);
  const keep = planFromAnalysis(a, cfg.nLayers, cfg.nKvHeads, { budget: 0.5, minKeepPerLayer: 2 });
  assert.ok(keep.layers.every((l) => l.groups.length <= 2));
  const never = planFromAnalysis(a, cfg.nLayers, cfg.nKvHeads, { budget: 0.25, neverLayers: [4] });
  assert.ok(never.layers.every((l) => l.layer !== 4));
  const rrw = planFromAnalysis(a, cfg.nLayers, cfg.nKvHeads, { score: 'rrw', budget: 0.75 });
  assert.ok(rrw.scores.every((s) => s.kvGroup !== 0), 'groups with undefined RRw are never picked');
  assert.throws(() => planFromAnalysis(a, cfg.nLayers, cfg.nKvHeads, { budget: 0.5, window: 64 }),
    (e: unknown) => e instanceof ArgumentError && /window/.test((e as Error).message));
  assert.throws(() => planFromAnalysis(a, cfg.nLayers, cfg.nKvHeads, { score: 'rrw', budget: 1 }), ArgumentError);
});

test('plans with a retrieval probe keep the groups retrieval needs, whatever their recency score', () => {
  // the two most recency-aware groups (layer 4, groups 2 and 3) are the ones the probe says retrieval needs
  const a: AnalysisLike = { ...fakeAnalysis(), retrieval: { groups: fakeAnalysis().groups.map((g) => ({
    layer: g.layer, kvGroup: g.kvGroup, harm: g.layer === 4 && g.kvGroup >= 2 ? [0, 0, 0.5, 2][g.kvGroup]! : 0.001,
  })) } };
  const plain = planFromAnalysis(fakeAnalysis(), cfg.nLayers, cfg.nKvHeads, { budget: 0.25 });
  assert.deepEqual(plain.layers, [{ layer: 3, groups: [3] }, { layer: 4, groups: [0, 1, 2, 3] }]);
  assert.equal(plain.protected, undefined);
  const guarded = planFromAnalysis(a, cfg.nLayers, cfg.nKvHeads, { budget: 0.25 }); // default threshold 0.1 nats
  assert.deepEqual(guarded.layers, [{ layer: 3, groups: [1, 2, 3] }, { layer: 4, groups: [0, 1] }]);
  assert.deepEqual(guarded.protected, { threshold: 0.1, groups: [{ layer: 4, kvGroup: 2, harm: 0.5 }, { layer: 4, kvGroup: 3, harm: 2 }] });
  const high = planFromAnalysis(a, cfg.nLayers, cfg.nKvHeads, { budget: 0.25, protectRetrieval: 1 });
  assert.deepEqual(high.protected?.groups.map((g) => g.kvGroup), [3]);
  const off = planFromAnalysis(a, cfg.nLayers, cfg.nKvHeads, { budget: 0.25, protectRetrieval: null });
  assert.deepEqual(off.layers, plain.layers);
  assert.throws(() => planFromAnalysis(fakeAnalysis(), cfg.nLayers, cfg.nKvHeads, { budget: 0.25, protectRetrieval: 0.1 }),
    /needs an analysis with a retrieval probe/);
  assert.throws(() => planFromAnalysis(a, cfg.nLayers, cfg.nKvHeads, { budget: 1 }), /2 groups are kept for retrieval/);
  assert.throws(() => planFromAnalysis(a, cfg.nLayers, cfg.nKvHeads, { budget: 0.25, protectRetrieval: -1 }), /nats >= 0/);
});

test('budget 0.5 halves the KV bytes per token exactly; budget 0 reproduces the original logits exactly', () => {
  const orig = buildModel(base);
  const half = buildModel(convert(base, planFromAnalysis(fakeAnalysis(), cfg.nLayers, cfg.nKvHeads, { budget: 0.5 })));
  assert.equal(half.layout.kvBytesPerToken() * 2, orig.layout.kvBytesPerToken());
  assert.equal(orig.layout.kvBytesPerToken(), 5 * 4 * 8 * 2 * 4);
  const zero = buildModel(convert(base, planFromAnalysis(fakeAnalysis(), cfg.nLayers, cfg.nKvHeads, { budget: 0 })));
  const x = ids(20, 1);
  assert.deepEqual(logitsOf(zero, x), logitsOf(orig, x));
});

testBothBackends('hybrid model: prefill + decode == pure decode == one prefill (chunked vs step recurrent heads)', () => {
  for (const budget of [0.25, 0.5, 1]) {
    const conv = convert(base, planFromAnalysis(fakeAnalysis(), cfg.nLayers, cfg.nKvHeads, { budget }), { chunk: 4 });
    const m = buildModel(conv);
    const x = ids(11, 2);
    const full = logitsOf(m, x);
    const V = cfg.vocabSize;
    for (const split of [1, 5]) {
      const mem = fullMemory(m);
      const out = new Float32Array(x.length * V);
      noGrad(() => {
        out.set(m.forward(x.subarray(0, split), 1, split, { memory: mem }).data, 0);
        for (let t = split; t < x.length; t++) {
          out.set(m.forward(x.subarray(t, t + 1), 1, 1, { memory: mem }).data, t * V);
        }
      });
      assertClose(out, full, TOL.parity, `budget ${budget} split ${split}`);
      assert.equal(mem.kind, 'hybrid');
      assert.ok(m.layout.stateBytes() > 0);
      assert.equal(mem.bytes(), m.layout.bytesAt(x.length), 'measured bytes == the layout\'s');
    }
  }
});

test('a converted checkpoint round-trips bit-exactly through a Hugging Face folder', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rf-conv-'));
  try {
    const x = ids(16, 3);
    const conv = convert(base, planFromAnalysis(fakeAnalysis(), cfg.nLayers, cfg.nKvHeads, { budget: 0.5 }), { calibration: ids(64, 4) });
    writeHfFolder(dir, conv, 'F32');
    const cfgJson = JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { recurformer: { layers: unknown[] } };
    assert.equal(cfgJson.recurformer.layers.length, 3);
    const back = loadModel(dir);
    assert.deepEqual(back.recurformer, conv.recurformer);
    for (const [k, t] of conv.tensors) assert.deepEqual(back.tensors.get(k)!.data, t.data, k);
    assert.deepEqual(logitsOf(buildModel(back), x), logitsOf(buildModel(conv), x));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('init from attention with the fitted output scale starts closer to the original than random init', () => {
  const plan = planFromAnalysis(fakeAnalysis(), cfg.nLayers, cfg.nKvHeads, { budget: 0.25 });
  const calib = ids(128, 5);
  const x = ids(96, 6);
  const ref = logitsOf(buildModel(base), x);
  const mse = (m: DecoderLM): number => {
    const l = logitsOf(m, x);
    let s = 0;
    for (let i = 0; i < l.length; i++) s += (l[i]! - ref[i]!) ** 2;
    return s / l.length;
  };
  const att = mse(buildModel(convert(base, plan, { calibration: calib })));
  const rnd = mse(buildModel(convert(base, plan, { init: 'random' })));
  assert.ok(att < rnd, `attention init logit MSE ${att} should beat random ${rnd}`);
});

test('the output-scale fit of a BF16 model runs on its 16-bit weights, shared, and fits the scales of a float32 copy', () => {
  // stories260K rounded to BF16, and that BF16 model widened back to F32 (the same values in float32)
  const bf16: LoadedModel = { ...base, tensors: new Map([...base.tensors].map(([k, t]) => [k, castTensor(t, 'BF16')])) };
  const f32: LoadedModel = { ...base, tensors: new Map([...bf16.tensors].map(([k, t]) => [k, castTensor(t, 'F32')])) };
  // no float32 copy of a BF16 matrix: each is a bf16 HalfWeight over the loaded model's own array
  const m = calibrationModel(bf16, null);
  for (const [name, t] of bf16.tensors) {
    if (t.shape.length !== 2) continue;
    const w = m.weights.get(name);
    assert.ok(w instanceof HalfWeight && w.kind === 'bf16', `${name} is held 16-bit`);
    assert.equal(w.data, t.data, `${name} shares the loaded array`);
  }
  const plan = planFromAnalysis(fakeAnalysis(), cfg.nLayers, cfg.nKvHeads, { budget: 0.5 });
  const calibration = ids(64, 13); // more rows than the direct 16-bit path takes: the products widen, as f32 ones
  // and convert runs the fit on such a model: its products widen one 16-bit matrix at a time (a model built in
  // float32 would have no HalfWeight to widen)
  const toTensor = HalfWeight.prototype.toTensor;
  let widened = 0;
  HalfWeight.prototype.toTensor = function (this: HalfWeight) {
    widened++;
    return toTensor.call(this);
  };
  let a: ReturnType<typeof convert>;
  try {
    a = convert(bf16, plan, { calibration });
  } finally {
    HalfWeight.prototype.toTensor = toTensor;
  }
  assert.ok(widened > 0, 'the fit ran on the 16-bit weights');
  const b = convert(f32, plan, { calibration });
  const unfitted = convert(bf16, plan);
  for (const [name, t] of a.tensors) {
    if (!name.endsWith('.recurrent.wx')) continue;
    assert.deepEqual(t.data, b.tensors.get(name)!.data, `${name}: the same scales as the float32 copy's, bit for bit`);
    assert.notDeepEqual(t.data, unfitted.tensors.get(name)!.data, `${name}: the scales were fitted`);
  }
});

test('the converted model generates: scoped, buffer-reusing generate() == a plain greedy loop', () => {
  const m = buildModel(convert(base, planFromAnalysis(fakeAnalysis(), cfg.nLayers, cfg.nKvHeads, { budget: 0.5 }), { calibration: ids(64, 7) }));
  const r = generate(m, base.tokenizer!, 'Once upon a time', { maxTokens: 20, temperature: 0 });
  assert.equal(r.ids.length, 20);
  // the same greedy decode without scopes: recurrent state kept across steps must not be recycled by the scope
  const seq = [...r.promptIds];
  const want: number[] = [];
  for (let i = 0; i < 20; i++) {
    const l = logitsOf(m, Int32Array.from(seq));
    const last = l.subarray((seq.length - 1) * cfg.vocabSize);
    let best = 0;
    for (let j = 1; j < last.length; j++) if (last[j]! > last[best]!) best = j;
    want.push(best);
    seq.push(best);
  }
  assert.deepEqual(r.ids, want);
});

testBothBackends('StreamingLLM memory: prefill with the sink+window mask == evicting decode; the cache stops growing', async () => {
  const { streamingMemory } = await import('../../src/inference/hybrid-memory.js');
  const m = buildModel(base);
  const x = ids(30, 8);
  const V = cfg.vocabSize;
  for (const [sinks, window] of [[4, 8], [0, 5], [2, 1]] as const) {
    const pre = streamingMemory(m, { sinks, window });
    const want = noGrad(() => Float32Array.from(m.forward(x, 1, x.length, { memory: pre }).data));
    const mem = streamingMemory(m, { sinks, window });
    const got = new Float32Array(x.length * V);
    noGrad(() => {
      got.set(m.forward(x.subarray(0, 3), 1, 3, { memory: mem }).data, 0);
      for (let t = 3; t < x.length; t++) {
        got.set(m.forward(x.subarray(t, t + 1), 1, 1, { memory: mem }).data, t * V);
      }
    });
    assertClose(got, want, TOL.parity, `streaming sinks ${sinks} window ${window}`);
    const perToken = cfg.nLayers * cfg.nKvHeads * cfg.headDim * 2 * 4;
    assert.equal(mem.bytes(), perToken * (sinks + window - 1), 'holds sinks + window - 1 tokens between steps');
  }
  // with a window covering everything it equals full attention
  const wide = streamingMemory(m, { sinks: 4, window: 1000 });
  assertClose(noGrad(() => Float32Array.from(m.forward(x, 1, x.length, { memory: wide }).data)), logitsOf(m, x), TOL.parity, 'wide window');
});

testBothBackends('streaming-heads baseline: selected groups keep sinks + window, the rest full; prefill == decode', async () => {
  const { streamingHeadsMemory } = await import('../../src/inference/hybrid-memory.js');
  const m = buildModel(base);
  const plan = planFromAnalysis(fakeAnalysis(), cfg.nLayers, cfg.nKvHeads, { budget: 0.5 });
  const groups = new Map(plan.layers.map((l) => [l.layer, l.groups]));
  const x = ids(24, 9);
  const V = cfg.vocabSize;
  const mk = (w: number) => streamingHeadsMemory(m, groups, { sinks: 2, window: w }, { maxLen: 64 });
  assertClose(noGrad(() => Float32Array.from(m.forward(x, 1, x.length, { memory: mk(100) }).data)), logitsOf(m, x), TOL.parity,
    'a window longer than the text equals full attention');
  const pre = noGrad(() => Float32Array.from(m.forward(x, 1, x.length, { memory: mk(6) }).data));
  assert.notDeepEqual(pre, logitsOf(m, x));
  const mem = mk(6);
  const got = new Float32Array(x.length * V);
  noGrad(() => {
    got.set(m.forward(x.subarray(0, 4), 1, 4, { memory: mem }).data, 0);
    for (let t = 4; t < x.length; t++) {
      got.set(m.forward(x.subarray(t, t + 1), 1, 1, { memory: mem }).data, t * V);
    }
  });
  assertClose(got, pre, TOL.parity, 'streaming heads decode == prefill');
  const group = cfg.headDim * 2 * 4;
  assert.equal(mem.bytes(), 10 * group * 24 + 10 * group * (2 + 6 - 1), '10 full groups x 24 tokens + 10 windowed groups x 7');
});

/** A hand-written plan for stories260K replacing `layers` ([layer, groups]). */
function planOf(layers: [number, number[]][]): ReplacementPlan {
  return {
    schema: 'recurformer.plan', version: 1, score: 'rr', window: 16, selection: { budget: 0 }, nLayers: cfg.nLayers,
    nKvGroups: cfg.nKvHeads, layers: layers.map(([layer, groups]) => ({ layer, groups })), scores: [],
  };
}

/** Layer 3's per-head outputs (B, T, Hq, Dh) on x. */
function headOut3(m: LoadedModel, x: Int32Array): Float32Array {
  return noGrad(() => {
    const rec = new TapRecorder((n) => n === 'blk.3.head_out');
    buildModel(m).forward(x, 1, x.length, { taps: rec });
    return Float32Array.from(rec.values.get('blk.3.head_out')!.data);
  });
}

test('converting a converted model keeps its recurrent groups as they are and adds the plan\'s', () => {
  const x = ids(24, 10);
  const H = cfg.nHeads, Dh = cfg.headDim;
  const cases: [string, ConvertOptions, ConvertOptions][] = [
    ['random init with gate and norm', { init: 'random', gate: true, norm: true, seed: 1 }, { init: 'random', seed: 2 }],
    ['attention init with the fitted scale', { calibration: ids(64, 11) }, { calibration: ids(64, 12) }],
  ];
  for (const [what, o1, o2] of cases) {
    const first = convert(base, planOf([[3, [3]]]), o1);
    // move the earlier heads off their init, as training does, so re-initializing them would show
    for (const t of first.tensors.values()) if (t.name.includes('.recurrent.')) (t.data as Float32Array).forEach((v, i, a) => (a[i] = v + 0.01 * (i % 5)));
    const second = convert(first, planOf([[3, [0, 1, 3]], [4, [2]]]), o2);
    assert.deepEqual(second.recurformer.layers, [{ layer: 3, groups: [0, 1, 3] }, { layer: 4, groups: [2] }], what);
    assert.equal(second.recurformer.gate, first.recurformer.gate, `${what}: the earlier heads' settings carry over`);
    // layers 0-2 are untouched, so layer 3 sees the same input: group 3's heads (6, 7) must answer the same
    const a = headOut3(first, x), b = headOut3(second, x);
    for (let t = 0; t < x.length; t++) {
      for (const h of [6, 7]) {
        const o = (t * H + h) * Dh;
        assertClose(b.subarray(o, o + Dh), a.subarray(o, o + Dh), TOL.parity, `${what}: t ${t} head ${h}`);
      }
    }
    const dir = mkdtempSync(join(tmpdir(), 'rf-conv2-'));
    try {
      writeHfFolder(dir, second, 'F32');
      assert.deepEqual(loadModel(dir).recurformer, second.recurformer, `${what}: the result loads`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  const gated = convert(base, planOf([[3, [3]]]), { init: 'random', gate: true });
  assert.throws(() => convert(gated, planOf([[4, [0]]]), { init: 'random', gate: false }),
    (e: unknown) => e instanceof ArgumentError && /gate = false differs from the model's earlier recurrent heads/.test((e as Error).message));
});

test('convert refuses a plan it cannot apply: another model, layers or groups out of range, no window', () => {
  const refuses = (plan: ReplacementPlan, re: RegExp): void => {
    assert.throws(() => convert(base, plan), (e: unknown) => e instanceof ArgumentError && re.test((e as Error).message), String(re));
  };
  refuses(planOf([[5, [0]]]), /layers\[0\]\.layer = 5 is not a layer of this model \(0\.\.4\)/);
  refuses(planOf([[1, [0]], [2, [4]]]), /layers\[1\]\.groups = 4 is not a KV group of this model \(0\.\.3\)/);
  refuses(planOf([[1, [0]], [1, [1]]]), /layers\[1\]\.layer = 1 is listed twice/);
  refuses({ ...planOf([[1, [0]]]), nLayers: 6 }, /nLayers 6 \(the model has 5\)/);
  refuses({ ...planOf([[1, [0]]]), model: { nLayers: 5, nHeads: 8, nKvHeads: 4, headDim: 32 } }, /headDim 32 \(the model has 8\)/);
  const { window: _w, ...noWindow } = planOf([[1, [0]]]);
  refuses(noWindow as ReplacementPlan, /plan\.window = undefined must be a number >= 1/);
  // stories260K's analysis (5 x 4 groups) planned for a 6-layer model
  assert.throws(() => planFromAnalysis(fakeAnalysis(), 6, cfg.nKvHeads, { budget: 0.5 }),
    /was made for another model: it scores 5 layers x 4 KV groups, the model has 6 x 4/);
  assert.throws(() => planFromAnalysis({ ...fakeAnalysis(), model: { nLayers: 6 } }, cfg.nLayers, cfg.nKvHeads, { budget: 0.5 }),
    /nLayers 6 \(the model has 5\)/);
});
