/**
 * HybridMemory (inference/hybrid-memory.ts): the stores a layout asks for, composed. Checked here:
 *   - reserve: room for a known number of tokens in one allocation, rows kept, clipped to the context;
 *   - bytes measured from the stores equal the layout's derived bytes after N tokens, for every memory kind;
 *   - StreamingLLM with a window at least the context equals full attention token for token on a converted model
 *     (the recurrent heads keep their state; they used to restart from zero at every step);
 *   - snapshot()/restore() mid-generation reproduce the same continuation for full, hybrid and both baselines;
 *   - truncate(n) rolls attention back and refuses, with a MemoryError, where a store cannot.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  HybridMemory, MemoryError, fullMemory, streamingHeadsMemory, streamingMemory,
} from '../../src/inference/hybrid-memory.js';
import { DecodeSession } from '../../src/inference/session.js';
import { generateIds } from '../../src/inference/generate.js';
import { buildModel } from '../../src/io/build.js';
import { Layout } from '../../src/model/layout.js';
import type { DecoderLM } from '../../src/model/transformer.js';
import { convert } from '../../src/convert/apply.js';
import { planFromAnalysis, type AnalysisLike } from '../../src/convert/plan.js';
import { ArgumentError } from '../../src/tensor/errors.js';
import { noGrad, scope, tensor } from '../../src/tensor/index.js';
import { randomModel, tinyConfig } from '../helpers/random-model.js';
import { fakeAnalysis } from '../helpers/cli.js';

const row = (layer: number, pos: number, n: number, sign: number): Float32Array =>
  Float32Array.from({ length: n }, (_, i) => sign * (layer * 1000 + pos * 10 + i));

const plain = buildModel(randomModel(tinyConfig('llama', { nLayers: 3, maxPos: 96 }), 2));
const conv = ((): DecoderLM => {
  const cfg = tinyConfig('llama', { nLayers: 5, nHeads: 8, nKvHeads: 4, maxPos: 96 });
  const plan = planFromAnalysis(fakeAnalysis() as AnalysisLike, cfg.nLayers, cfg.nKvHeads, { budget: 0.5 });
  return buildModel(convert(randomModel(cfg, 3), plan, { chunk: 4 }));
})();

const convRW = ((): DecoderLM => {
  const cfg = tinyConfig('llama', { nLayers: 5, nHeads: 8, nKvHeads: 4, maxPos: 96 });
  const plan = planFromAnalysis(fakeAnalysis() as AnalysisLike, cfg.nLayers, cfg.nKvHeads, { budget: 0.5 });
  const m = convert(randomModel(cfg, 3), plan, { chunk: 4, kind: 'recurrent+window', headWindow: 6, headSinks: 2 });
  for (const t of m.tensors.values()) if (t.name.endsWith('.mix')) (t.data as Float32Array).fill(0.7);
  return buildModel(m);
})();

/** Every memory kind, on the model it runs on. */
const KINDS: [string, DecoderLM, () => HybridMemory][] = [
  ['full', plain, () => fullMemory(plain)],
  ['hybrid (converted)', conv, () => fullMemory(conv)],
  ['StreamingLLM', plain, () => streamingMemory(plain, { sinks: 2, window: 7 })],
  ['StreamingLLM on the converted model', conv, () => streamingMemory(conv, { sinks: 2, window: 7 })],
  ['streaming heads', plain, () => streamingHeadsMemory(plain, new Map([[0, [1]], [2, [0, 1]]]), { sinks: 1, window: 5 })],
  ['hybrid (recurrent+window)', convRW, () => fullMemory(convRW)],
  ['StreamingLLM on the recurrent+window model', convRW, () => streamingMemory(convRW, { sinks: 1, window: 9 })],
];

/** Feeds ids (a prefill of `prompt` tokens, then one at a time) and returns each call's last logits. */
function feed(m: DecoderLM, mem: HybridMemory, ids: ArrayLike<number>, prompt: number): Float32Array[] {
  return noGrad(() => {
    const out = [scope(() => Float32Array.from(m.forward(Int32Array.from({ length: prompt }, (_, i) => ids[i]!), 1, prompt, { memory: mem, lastOnly: true }).data))];
    for (let t = prompt; t < ids.length; t++) out.push(scope(() => Float32Array.from(m.forward(Int32Array.of(ids[t]!), 1, 1, { memory: mem }).data)));
    return out;
  });
}

test('reserve keeps the stored rows, stops regrowth, and is clipped to the context', () => {
  const mem = new HybridMemory(plain.layout, { maxLen: 100 });
  const n = plain.cfg.nKvHeads * plain.cfg.headDim;
  assert.equal(mem.capacity, 0);
  const put = (pos: number) => [0, 1, 2].map((l) => mem.layer(l).kv!.appendRow(row(l, pos, n, 1), row(l, pos, n, -1)));
  for (let p = 0; p < 5; p++) put(p);
  assert.equal(mem.capacity, 64, 'the first growth allocates 64 tokens');
  mem.reserve(90);
  assert.equal(mem.capacity, 90);
  for (let p = 5; p < 90; p++) put(p);
  assert.equal(mem.capacity, 90, 'filling the reserved room does not regrow');
  const views = put(90);
  for (let l = 0; l < 3; l++) {
    for (const p of [0, 4, 5, 63, 64, 89, 90]) {
      assert.deepEqual(views[l]!.k.subarray(p * n, (p + 1) * n), row(l, p, n, 1), `layer ${l} key row ${p}`);
      assert.deepEqual(views[l]!.v.subarray(p * n, (p + 1) * n), row(l, p, n, -1), `layer ${l} value row ${p}`);
    }
  }
  assert.equal(mem.capacity, 100, 'growth past the reservation is clipped to the context');
  mem.reserve(10);
  assert.equal(mem.capacity, 100, 'a smaller reservation is a no-op');
  for (const bad of [-1, 2.5, Number.NaN]) assert.throws(() => mem.reserve(bad), ArgumentError, `reserve(${bad})`);
  const one = tensor(row(0, 0, 5 * n, 1), [1, 5, plain.cfg.nKvHeads, plain.cfg.headDim]);
  assert.throws(() => new HybridMemory(plain.layout, { maxLen: 4 }).layer(0).kv!.append(one, one), /exceeds the context of 4 tokens/);
});

test('DecodeSession reserves prompt + max tokens (clipped to the context) before the prefill', () => {
  const m = buildModel(randomModel(tinyConfig('llama', { maxPos: 64 }), 3));
  for (const [prompt, maxTokens, want] of [[5, 20, 25], [10, 200, 64]] as const) {
    let mem: HybridMemory | null = null;
    const s = new DecodeSession(m, null, Array.from({ length: prompt }, (_, i) => 1 + i), {
      maxTokens, temperature: 0, memory: (model) => (mem = fullMemory(model)),
    });
    s.prefill();
    assert.equal((mem as HybridMemory | null)?.capacity, want, `prompt ${prompt}, max tokens ${maxTokens}`);
  }
});

test('the layout\'s derived bytes equal the memory\'s measured bytes after N tokens, for every memory kind', () => {
  const ids = Array.from({ length: 30 }, (_, i) => (i * 17 + 3) % 60);
  for (const [label, m, mk] of KINDS) {
    const mem = mk();
    assert.equal(mem.bytes(), 0, `${label}: empty`);
    noGrad(() => {
      m.forward(Int32Array.from(ids.slice(0, 4)), 1, 4, { memory: mem });
      for (let t = 4; t < ids.length; t++) {
        scope(() => m.forward(Int32Array.of(ids[t]!), 1, 1, { memory: mem }));
        assert.equal(mem.bytes(), mem.layout.bytesAt(t + 1), `${label} after ${t + 1} tokens`);
      }
    });
    assert.equal(mem.length, ids.length, `${label}: the forward pass committed its tokens`);
    assert.equal(mem.kind, mem.layout.name);
  }
  // the layout's byte counts themselves, by hand for the converted model: 10 of 20 groups kept, 16 floats a head
  const kv = conv.layout.kvBytesPerToken();
  assert.equal(kv, 10 * conv.cfg.headDim * 2 * 4);
  assert.equal(conv.layout.fullAttentionBytes(1), 2 * kv);
  assert.equal(Layout.of(conv.cfg).kvBytesPerToken(), 2 * kv);
  assert.equal(conv.layout.name, 'hybrid');
  assert.equal(plain.layout.name, 'full');
  // recurrent+window: 10 groups keep 2 sinks + the last 5 tokens once full, plus the state
  const rw = convRW.layout;
  assert.equal(rw.count('recurrent+window'), 10);
  assert.equal(rw.bytesAt(50) - rw.bytesAt(49), rw.kvBytesPerToken(), 'a full window adds nothing');
  assert.equal(rw.bytesAt(50), 50 * rw.kvBytesPerToken() + 7 * 10 * convRW.cfg.headDim * 2 * 4 + rw.stateBytes());
  assert.equal(rw.name, 'hybrid-window');
});

test('StreamingLLM with a window at least the context equals full attention token for token on a converted model', () => {
  const prompt = [1, 5, 9, 14, 3, 22, 7];
  const full = generateIds(conv, prompt, null, { maxTokens: 40, temperature: 1, seed: 3 });
  const wide = generateIds(conv, prompt, null, { maxTokens: 40, temperature: 1, seed: 3, memory: (m) => streamingMemory(m, { sinks: 4, window: 1000 }) });
  assert.ok(full.ids.length >= 20, `${full.ids.length} tokens`);
  assert.deepEqual(wide.ids, full.ids);
  const ids = [...prompt, ...full.ids];
  const a = feed(conv, fullMemory(conv), ids, 7), b = feed(conv, streamingMemory(conv, { sinks: 4, window: 1000 }), ids, 7);
  for (let i = 0; i < a.length; i++) assert.deepEqual(b[i], a[i], `step ${i}`);
});

test('snapshot()/restore() mid-generation reproduce the same continuation for every memory kind', () => {
  const ids = Array.from({ length: 40 }, (_, i) => (i * 29 + 5) % 60);
  for (const [label, m, mk] of KINDS) {
    const mem = mk();
    feed(m, mem, ids.slice(0, 20), 6);
    const snap = mem.snapshot();
    const bytes = mem.bytes();
    const first = feed(m, mem, ids.slice(20), 1);
    assert.equal(mem.length, 40);
    for (let round = 0; round < 2; round++) {
      mem.restore(snap);
      assert.equal(mem.length, 20, `${label}: length restored`);
      assert.equal(mem.bytes(), bytes, `${label}: bytes restored`);
      const again = feed(m, mem, ids.slice(20), 1);
      for (let i = 0; i < first.length; i++) assert.deepEqual(again[i], first[i], `${label} round ${round} step ${i}`);
    }
    assert.throws(() => mk().restore(snap), MemoryError, `${label}: another memory's snapshot`);
  }
});

test('truncate(n) rolls attention stores back; window and recurrent stores refuse with a MemoryError', () => {
  const ids = Array.from({ length: 24 }, (_, i) => (i * 11 + 2) % 60);
  // full attention: truncating to 12 and feeding the same tokens again gives the same logits
  const mem = fullMemory(plain);
  const want = feed(plain, mem, ids, 12);
  mem.truncate(12);
  assert.equal(mem.length, 12);
  assert.equal(mem.bytes(), plain.layout.bytesAt(12));
  const again = feed(plain, mem, ids.slice(12), 1);
  for (let i = 0; i < again.length; i++) assert.deepEqual(again[i], want[i + 1], `step ${i}`);
  assert.throws(() => mem.truncate(30), ArgumentError);
  // a window store that has evicted nothing can still go back; once it has, it cannot
  const sm = streamingMemory(plain, { sinks: 1, window: 30 });
  feed(plain, sm, ids.slice(0, 10), 6);
  sm.truncate(6);
  assert.equal(sm.bytes(), sm.layout.bytesAt(6));
  const tail = feed(plain, sm, ids.slice(6, 24), 1);
  const ref = feed(plain, streamingMemory(plain, { sinks: 1, window: 30 }), ids, 6);
  for (let i = 0; i < tail.length; i++) assert.deepEqual(tail[i], ref[i + 1], `window store step ${i}`);
  const small = streamingMemory(plain, { sinks: 1, window: 4 });
  feed(plain, small, ids, 10);
  assert.throws(() => small.truncate(5), (e: unknown) => e instanceof MemoryError && /evicted/.test(e.message) && /snapshot/.test(e.message));
  assert.equal(small.length, 24, 'a refused truncate changes nothing');
  const hy = fullMemory(conv);
  feed(conv, hy, ids, 10);
  assert.throws(() => hy.truncate(10), (e: unknown) => e instanceof MemoryError && /recurrent state cannot roll back/.test(e.message));
  hy.truncate(24); // to its own length: nothing to undo
});

test('a memory made for another layout is refused; streaming heads refuse recurrent groups', () => {
  assert.throws(() => noGrad(() => conv.forward(Int32Array.of(1), 1, 1, { memory: fullMemory(buildModel(randomModel(tinyConfig('llama', { nLayers: 5, nHeads: 8, nKvHeads: 4 }), 1))) })),
    /made for another model or layout/);
  const g = conv.spec!.layers.find((e) => e.groups.length > 0)!;
  assert.throws(() => streamingHeadsMemory(conv, new Map([[g.layer, [g.groups[0]!]]]), { sinks: 1, window: 4 }),
    (e: unknown) => e instanceof ArgumentError && /is recurrent, not attention/.test(e.message));
});
