/**
 * The window store (inference/hybrid-memory.ts) keeps its retained keys in a preallocated buffer (sinks + a sliding run of recent tokens) instead
 * of copying the whole window every step. Checked against the plain copying cache it replaced: identical logits,
 * bit for bit, over many more steps than the window (so the run wraps back to the buffer start several times),
 * and bytes() constant once the window is full.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildModel } from '../../src/io/build.js';
import { streamingMemory } from '../../src/inference/hybrid-memory.js';
import type { Layout } from '../../src/model/layout.js';
import type { KVRows, KVStore, KVView, LayerStores, ModelMemory } from '../../src/model/stores.js';
import { Tensor, concat, contiguous, keep, noGrad, scope, slice, tensor } from '../../src/tensor/index.js';
import { randomModel, tinyConfig } from '../helpers/random-model.js';
import { testBothBackends } from '../helpers/backends.js';

/** The previous implementation's window store: concatenates the retained keys with the new ones and copies sinks + window. */
class CopyingWindowStore implements KVStore {
  private kv: { k: Tensor; v: Tensor } | null = null;
  private seen = 0;
  constructor(readonly sinks: number, readonly window: number) {}
  append(k: Tensor, v: Tensor): KVView {
    const prev = this.kv;
    const kAll = prev ? concat([prev.k, k], 1) : k;
    const vAll = prev ? concat([prev.v, v], 1) : v;
    const S = kAll.shape[1]!, T = k.shape[1]!;
    const sinkCount = Math.min(this.sinks, this.seen + T);
    this.seen += T;
    const keepRecent = Math.min(this.window - 1, S - sinkCount);
    const parts = (x: Tensor): Tensor => {
      if (sinkCount + keepRecent >= S) return contiguous(x);
      const recent = slice(x, 1, S - keepRecent, S);
      return contiguous(sinkCount > 0 ? concat([slice(x, 1, 0, sinkCount), recent], 1) : recent);
    };
    this.kv = keep({ k: parts(kAll), v: parts(vAll) });
    return { k: kAll, v: vAll, qOffset: S - T, window: this.window, sinks: sinkCount };
  }
  appendRow(k: Float32Array, v: Float32Array): KVRows {
    const H = k.length / cfg.headDim;
    const view = this.append(tensor(Float32Array.from(k), [1, 1, H, cfg.headDim]), tensor(Float32Array.from(v), [1, 1, H, cfg.headDim]));
    return { k: contiguous(view.k).data, v: contiguous(view.v).data, S: view.k.shape[1]!, qOffset: view.qOffset, window: view.window, sinks: view.sinks };
  }
  bytes(): number {
    return this.kv ? (this.kv.k.size + this.kv.v.size) * 4 : 0;
  }
}

/** A StreamingLLM memory made of copying window stores (the model only needs the ModelMemory interface). */
class CopyingStreamingMemory implements ModelMemory {
  readonly layout: Layout;
  length = 0;
  private readonly stores: CopyingWindowStore[];
  constructor(sinks: number, window: number) {
    this.layout = model.layout.withWindows('all', { sinks, window });
    this.stores = Array.from({ length: cfg.nLayers }, () => new CopyingWindowStore(sinks, window));
  }
  layer(l: number): LayerStores {
    return { kv: null, window: this.stores[l]!, headWindow: null, recurrent: null };
  }
  commit(T: number): void {
    this.length += T;
  }
  bytes(): number {
    return this.stores.reduce((n, s) => n + s.bytes(), 0);
  }
}

const cfg = tinyConfig('llama', { maxPos: 512 });
const model = buildModel(randomModel(cfg, 5));
const V = cfg.vocabSize;

/** Logits of prefill chunks of `prompt` tokens then single-token steps, each call under its own buffer scope. */
function run(mem: ModelMemory & { bytes(): number }, ids: Int32Array, prompt: number | number[], B = 1, bytes: number[] = []): Float32Array {
  const T = ids.length / B;
  const out = new Float32Array(B * T * V);
  const put = (l: Float32Array, t0: number, n: number): void => {
    for (let b = 0; b < B; b++) out.set(l.subarray(b * n * V, (b + 1) * n * V), (b * T + t0) * V);
  };
  const pick = (t0: number, n: number): Int32Array => {
    const x = new Int32Array(B * n);
    for (let b = 0; b < B; b++) x.set(ids.subarray(b * T + t0, b * T + t0 + n), b * n);
    return x;
  };
  noGrad(() => {
    let t0 = 0;
    for (const n of typeof prompt === 'number' ? [prompt] : prompt) {
      scope(() => put(model.forward(pick(t0, n), B, n, { memory: mem }).data, t0, n));
      t0 += n;
    }
    for (let t = t0; t < T; t++) {
      scope(() => put(model.forward(pick(t, 1), B, 1, { memory: mem }).data, t, 1));
      bytes.push(mem.bytes());
    }
  });
  return out;
}

testBothBackends('StreamingLLM window stores (in-place buffer) gives the same logits, bit for bit, as the copying cache', () => {
  const T = 90;
  for (const [sinks, window, prompt, B] of [[4, 8, 3, 1], [0, 5, 1, 1], [2, 1, 5, 1], [3, 16, 20, 1], [2, 6, 4, 2]] as const) {
    const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 31 + 7) % V);
    const want = run(new CopyingStreamingMemory(sinks, window), ids, prompt, B);
    const bytes: number[] = [];
    const got = run(streamingMemory(model, { sinks, window }, { batch: B }), ids, prompt, B, bytes);
    assert.deepEqual(got, want, `sinks ${sinks} window ${window} prompt ${prompt} batch ${B}`);
    const perToken = B * cfg.nLayers * cfg.nKvHeads * cfg.headDim * 2 * 4;
    const full = bytes.slice(sinks + window);
    assert.ok(full.length > 2 * (sinks + window), 'runs well past the window, so the buffer wraps');
    assert.ok(full.every((b) => b === perToken * (sinks + window - 1)), 'bytes() stays at sinks + window - 1 tokens');
  }
});

test('StreamingLLM window stores: a prefill longer than its buffer grows it; reset forgets everything', () => {
  const ids = Int32Array.from({ length: 60 }, (_, i) => (i * 13 + 1) % V);
  const chunks = [3, 40, 1, 7];
  const want = run(new CopyingStreamingMemory(2, 4), ids, chunks);
  const mem = streamingMemory(model, { sinks: 2, window: 4 });
  assert.deepEqual(run(mem, ids, chunks), want);
  mem.reset();
  assert.equal(mem.bytes(), 0);
  assert.equal(mem.length, 0);
  assert.deepEqual(run(mem, ids, chunks), want, 'the same after reset');
});
