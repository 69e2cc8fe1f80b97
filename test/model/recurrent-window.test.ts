/**
 * recurrent+window KV groups (layout.ts, attention.ts, step-ops.ts): a converted group that keeps an exact window of
 * sinks + the last W keys for softmax attention and adds mix times each head's recurrent read-out. Checked here:
 *   - one forward over the whole sequence (chunked recurrent form, several chunk lengths) == prefill in pieces ==
 *     token-by-token decode, in graph and step mode, for windows shorter and longer than the sequence, odd lengths;
 *     the recurrent states and the windows' keys agree too;
 *   - step mode equals graph mode bit for bit;
 *   - with W >= the sequence and mix 0 the model equals the original (full attention) exactly;
 *   - gradients of mix and of a recurrent projection against finite differences, and equal across chunk lengths;
 *   - convert: the mix fit is never worse than the window alone on its calibration tokens; bad settings are typed
 *     errors; the spec round-trips through config.json's parser.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildModel } from '../../src/io/build.js';
import { convert, type ConvertedModel, type ConvertOptions } from '../../src/convert/apply.js';
import { planFromAnalysis, type AnalysisLike } from '../../src/convert/plan.js';
import { fullMemory } from '../../src/inference/hybrid-memory.js';
import { setFastDecode } from '../../src/model/step-ops.js';
import { parseSpec } from '../../src/model/spec.js';
import { TapRecorder } from '../../src/model/taps.js';
import { alignLoss } from '../../src/train/objectives.js';
import { mse } from '../../src/train/losses.js';
import type { DecoderLM } from '../../src/model/transformer.js';
import type { ModelConfig } from '../../src/model/config.js';
import { ArgumentError, FormatError } from '../../src/tensor/errors.js';
import * as T from '../../src/tensor/index.js';
import { Rng, noGrad, scope, type Tensor } from '../../src/tensor/index.js';
import { randomModel, tinyConfig } from '../helpers/random-model.js';
import { fakeAnalysis } from '../helpers/cli.js';
import { gradcheck } from '../helpers/gradcheck.js';
import { TOL, assertClose } from '../helpers/tolerances.js';

const IDS = Int32Array.from({ length: 23 }, (_, i) => (i * 29 + 7) % 60);

/** Half of the model's KV groups, the later ones of each layer first (fakeAnalysis' scores on this shape). */
function planFor(cfg: ModelConfig): ReturnType<typeof planFromAnalysis> {
  const groups = Array.from({ length: cfg.nLayers * cfg.nKvHeads }, (_, i) => ({
    layer: Math.floor(i / cfg.nKvHeads), kvGroup: i % cfg.nKvHeads, groupScore: { rr: { '16': ((i * 7) % 11) / 11 }, rrw: { '16': 0.5 } },
  }));
  return planFromAnalysis({ ...(fakeAnalysis() as AnalysisLike), groups }, cfg.nLayers, cfg.nKvHeads, { budget: 0.5 });
}

function rwConverted(cfg: ModelConfig, o: ConvertOptions & { mixSeed?: number }): ConvertedModel {
  const plan = planFor(cfg);
  const conv = convert(randomModel(cfg, 3), plan, { chunk: 4, kind: 'recurrent+window', ...o });
  if (o.mixSeed !== undefined) {
    const rng = new Rng(o.mixSeed);
    for (const t of conv.tensors.values()) if (t.name.endsWith('.recurrent.mix')) (t.data as Float32Array).forEach((_, i, a) => (a[i] = 0.5 + rng.next()));
  }
  return conv;
}

/** Logits (T, V) of the whole sequence in one call without a memory. */
function whole(m: DecoderLM, ids: Int32Array): Float32Array {
  return noGrad(() => Float32Array.from(m.forward(ids, 1, ids.length).data));
}

/** Logits (T, V) fed through a memory in pieces of the given lengths (1s: token by token). */
function pieces(m: DecoderLM, ids: Int32Array, cuts: number[], fast = true): { logits: Float32Array; mem: ReturnType<typeof fullMemory> } {
  const mem = fullMemory(m);
  const was = setFastDecode(fast);
  try {
    const out: number[] = [];
    noGrad(() => {
      let at = 0;
      for (const n of cuts) {
        scope(() => out.push(...m.forward(ids.subarray(at, at + n), 1, n, { memory: mem }).data));
        at += n;
      }
      assert.equal(at, ids.length);
    });
    return { logits: Float32Array.from(out), mem };
  } finally {
    setFastDecode(was);
  }
}

const ones = (n: number): number[] => new Array<number>(n).fill(1);

const CASES: [string, Partial<ModelConfig>, ConvertOptions][] = [
  ['GQA, window 5 + 2 sinks (shorter than the sequence)', {}, { headWindow: 5, headSinks: 2 }],
  ['no sinks, window 1', {}, { headWindow: 1, headSinks: 0 }],
  ['window longer than the sequence', {}, { headWindow: 40, headSinks: 4 }],
  ['MHA, gate + norm, window 7', { nKvHeads: 4 }, { headWindow: 7, headSinks: 1, gate: true, norm: true }],
  ['own sliding window 6 (Mistral)', { slidingWindow: 6 }, { headWindow: 9, headSinks: 2 }],
];

test('recurrent+window: one call == pieces == token by token (graph and step mode), states and windows agree', () => {
  for (const [label, over, o] of CASES) {
    const cfg = tinyConfig('llama', over);
    for (const chunk of [1, 3, 64]) {
      const m = buildModel(rwConverted(cfg, { ...o, chunk, mixSeed: 5 }));
      assert.ok(m.layout.count('recurrent+window') > 0, label);
      const ref = whole(m, IDS);
      for (const [how, cuts, fast] of [['pieces 7+1+9+6', [7, 1, 9, 6], true], ['token by token, step mode', ones(23), true],
        ['token by token, graph mode', ones(23), false]] as const) {
        const got = pieces(m, IDS, [...cuts], fast);
        assertClose(got.logits, ref, TOL.parity, `${label}, chunk ${chunk}, ${how}`);
      }
      // the final states and windows: prefill in one call vs step by step
      const a = pieces(m, IDS, [23]).mem, b = pieces(m, IDS, ones(23)).mem;
      for (const L of m.layout.layers) {
        if (!L.recurrent) continue;
        const sa = a.layer(L.layer).recurrent!.get()!, sb = b.layer(L.layer).recurrent!.get()!;
        assertClose(sb.H.data, T.contiguous(sa.H).data, TOL.parity, `${label}: state H of layer ${L.layer}`);
        assertClose(sb.conv.data, T.contiguous(sa.conv).data, TOL.parity, `${label}: conv window of layer ${L.layer}`);
      }
      assert.equal(a.bytes(), b.bytes(), `${label}: bytes`);
      assert.equal(a.bytes(), m.layout.bytesAt(IDS.length), `${label}: the layout's formula`);
    }
  }
});

test('recurrent+window: step mode equals graph mode bit for bit', () => {
  for (const [label, over, o] of CASES) {
    const m = buildModel(rwConverted(tinyConfig('llama', over), { ...o, mixSeed: 9 }));
    const cuts = [5, ...ones(18)];
    const fast = pieces(m, IDS, cuts, true).logits, slow = pieces(m, IDS, cuts, false).logits;
    assert.deepEqual(fast, slow, label);
  }
});

test('recurrent+window with W >= the sequence and mix 0 is the original model exactly', () => {
  for (const over of [{}, { nKvHeads: 4 }] as Partial<ModelConfig>[]) {
    const cfg = tinyConfig('llama', over);
    const orig = buildModel(randomModel(cfg, 3));
    const m = buildModel(rwConverted(cfg, { headWindow: IDS.length, headSinks: 0 })); // no calibration: mix stays 0
    assert.deepEqual(whole(m, IDS), whole(orig, IDS));
    assert.deepEqual(pieces(m, IDS, [4, ...ones(19)]).logits, pieces(orig, IDS, [4, ...ones(19)]).logits);
    // a narrower window changes the output: the comparison above can fail
    const narrow = buildModel(rwConverted(cfg, { headWindow: 3, headSinks: 0 }));
    assert.notDeepEqual(whole(narrow, IDS), whole(orig, IDS));
  }
});

test('recurrent+window: gradients of mix and W_x against finite differences, equal across chunk lengths', () => {
  const cfg = tinyConfig('llama', { nLayers: 1 });
  const ids = IDS.subarray(0, 9);
  const grads: Float32Array[][] = [];
  for (const chunk of [2, 4, 64]) {
    const m = buildModel(rwConverted(cfg, { headWindow: 3, headSinks: 1, chunk, mixSeed: 2 }));
    const p = m.recurrent.get(0)!.params;
    const wx = p.wx as Tensor, mix = p.mix!;
    if (chunk === 4) {
      gradcheck('mix, wx', () => T.affine(m.forward(ids, 1, ids.length), 1), [mix, wx], { check: [true, true] });
    }
    for (const t of [mix, wx]) {
      t.requiresGrad = true;
      t.grad = null;
    }
    T.backward(T.sum(T.mul(m.forward(ids, 1, ids.length), m.forward(ids, 1, ids.length))));
    grads.push([Float32Array.from(mix.grad!.data), Float32Array.from(wx.grad!.data)]);
    assert.ok(mix.grad!.data.some((x) => x !== 0), 'mix gets a gradient');
  }
  for (let i = 1; i < grads.length; i++) {
    assertClose(grads[i]![0]!, grads[0]![0]!, TOL.parity, `mix grad, chunk run ${i}`);
    assertClose(grads[i]![1]!, grads[0]![1]!, TOL.parity, `wx grad, chunk run ${i}`);
  }
});

test('convert --head-kind recurrent+window: the fitted mix is never worse than the window alone on the calibration tokens', () => {
  const cfg = tinyConfig('llama', { nLayers: 2, maxPos: 128 });
  const base = randomModel(cfg, 3);
  const calib = Int32Array.from({ length: 64 }, (_, i) => (i * 13 + 1) % 60);
  const fitted = rwConverted(cfg, { headWindow: 4, headSinks: 1, calibration: calib });
  const zero = rwConverted(cfg, { headWindow: 4, headSinks: 1 });
  const mixes = [...fitted.tensors.values()].filter((t) => t.name.endsWith('.recurrent.mix'));
  assert.ok(mixes.length > 0 && mixes.every((t) => (t.data as Float32Array).some((x) => x !== 0)), 'mix is fitted');
  // after the rescale of W_x, mix is the cosine of the residual and the read-out
  assert.ok(mixes.every((t) => (t.data as Float32Array).every((x) => Math.abs(x) <= 1 + 1e-6)), mixes.map((t) => [...t.data as Float32Array]).join(' '));
  // the first converted layer sees the original's input, so its replaced heads' outputs compare directly
  const l = fitted.recurformer.layers[0]!.layer;
  const out = (m: DecoderLM): Float32Array => noGrad(() => {
    const taps = new TapRecorder((n) => n === `blk.${l}.head_out`);
    m.forward(calib, 1, calib.length, { taps });
    return Float32Array.from(T.gather(taps.values.get(`blk.${l}.head_out`)!, 2, m.recurrent.get(l)?.replacedHeads ?? heads).data);
  });
  const heads = buildModel(fitted).recurrent.get(l)!.replacedHeads;
  const want = out(buildModel(base));
  const err = (y: Float32Array): number => y.reduce((s, v, i) => s + (v - want[i]!) ** 2, 0);
  const ef = err(out(buildModel(fitted))), e0 = err(out(buildModel(zero)));
  assert.ok(ef < e0, `squared error of the replaced heads with the fitted mix ${ef} < with mix 0 ${e0}`);
});

test('align (stage 1) on recurrent+window heads is the MSE of the student\'s own head outputs at the first converted layer', () => {
  const cfg = tinyConfig('llama', { nLayers: 2 });
  const base = randomModel(cfg, 3);
  for (const o of [{ headWindow: 4, headSinks: 1 }, { headWindow: 6, headSinks: 0, gate: true }] as ConvertOptions[]) {
    const student = buildModel(rwConverted(cfg, { ...o, mixSeed: 4 })), teacher = buildModel(base);
    const ids = IDS.subarray(0, 16);
    const batch = { inputs: Int32Array.from([...ids, ...ids.map((x) => (x + 5) % 60)]), targets: new Int32Array(32), B: 2, T: 16 };
    const l = student.spec!.layers[0]!.layer, heads = student.recurrent.get(l)!.replacedHeads;
    const got = noGrad(() => alignLoss(student, teacher, batch)).parts[`mse.${l}`]!;
    const tap = (m: DecoderLM): Tensor => noGrad(() => {
      const taps = new TapRecorder((n) => n === `blk.${l}.head_out`);
      m.forward(batch.inputs, 2, 16, { taps });
      return T.gather(taps.values.get(`blk.${l}.head_out`)!, 2, heads);
    });
    const want = noGrad(() => mse(tap(student), tap(teacher)).item());
    assertClose([got], [want], TOL.parity, `align mse of layer ${l}`);
    // and it trains mix: the gradient reaches it
    const mix = student.recurrent.get(l)!.params.mix!;
    mix.requiresGrad = true;
    mix.grad = null;
    T.backward(alignLoss(student, teacher, batch).loss);
    assert.ok(mix.grad!.data.every(Number.isFinite) && mix.grad!.data.some((x) => x !== 0), 'mix gets a gradient');
  }
});

test('recurrent+window settings: typed errors, and the spec round-trips through the parser', () => {
  const cfg = tinyConfig('llama');
  const plan = planFor(cfg);
  const base = randomModel(cfg, 3);
  assert.throws(() => convert(base, plan, { headWindow: 8 }), (e: unknown) => e instanceof ArgumentError && /recurrent\+window/.test(e.message));
  assert.throws(() => convert(base, plan, { kind: 'recurrent+window', headWindow: 0 }), ArgumentError);
  assert.throws(() => convert(base, plan, { kind: 'recurrent+window', headSinks: -1 }), ArgumentError);
  assert.throws(() => convert(base, plan, { kind: 'window' as never }), (e: unknown) => e instanceof ArgumentError && /not one of/.test(e.message));
  const conv = convert(base, plan, { kind: 'recurrent+window' });
  assert.deepEqual({ kind: conv.recurformer.kind, window: conv.recurformer.window, sinks: conv.recurformer.sinks }, { kind: 'recurrent+window', window: 64, sinks: 4 });
  // a converted model keeps its kind: adding groups of the other kind is refused
  assert.throws(() => convert(conv, plan, { kind: 'recurrent' }), (e: unknown) => e instanceof ArgumentError && /one model has one kind/.test(e.hint ?? ''));
  const json = JSON.parse(JSON.stringify(conv.recurformer)) as Record<string, unknown>;
  assert.deepEqual(Object.keys(json), ['version', 'P', 'N', 'convK', 'gate', 'norm', 'chunk', 'kind', 'window', 'sinks', 'layers']);
  assert.deepEqual(parseSpec(json, cfg, 'config.json'), conv.recurformer);
  for (const [bad, re] of [
    [{ ...json, kind: 'sliding' }, /recurformer.kind = "sliding" is not one of/],
    [{ ...json, window: 0 }, /recurformer.window = 0/],
    [{ ...json, sinks: -2 }, /recurformer.sinks = -2/],
    [{ ...json, kind: 'recurrent' }, /belong to kind "recurrent\+window"/],
  ] as const) {
    assert.throws(() => parseSpec(bad, cfg, 'config.json'), (e: unknown) => e instanceof FormatError && re.test(e.message) && /config.json/.test(e.message));
  }
  const { kind: _k, window: _w, sinks: _s, ...plain } = json;
  assert.equal(parseSpec(plain, cfg, 'config.json').kind, undefined, 'a pure recurrent spec has no kind');
});
