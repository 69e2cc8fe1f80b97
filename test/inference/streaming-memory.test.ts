/**
 * StreamingMemory keeps its retained keys in a preallocated buffer (sinks + a sliding run of recent tokens) instead
 * of copying the whole window every step. Checked against the plain copying cache it replaced: identical logits,
 * bit for bit, over many more steps than the window (so the run wraps back to the buffer start several times),
 * and bytes() constant once the window is full.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildModel } from '../../src/model/build.js';
import { StreamingMemory, type AttentionMemory, type MemoryView } from '../../src/inference/memory.js';
import { Tensor, concat, contiguous, keep, noGrad, scope, slice } from '../../src/tensor/index.js';
import { randomModel, tinyConfig } from '../helpers/random-model.js';
import { testBothBackends } from '../helpers/backends.js';

/** The previous implementation: concatenates the retained keys with the new ones and copies sinks + window. */
class CopyingStreamingMemory implements AttentionMemory {
  readonly kind = 'streaming-copy';
  private len = 0;
  private readonly kv: { k: Tensor; v: Tensor }[] = [];
  constructor(readonly sinks: number, readonly window: number) {}
  get length(): number {
    return this.len;
  }
  update(layer: number, k: Tensor, v: Tensor): MemoryView {
    const prev = this.kv[layer];
    const kAll = prev ? concat([prev.k, k], 1) : k;
    const vAll = prev ? concat([prev.v, v], 1) : v;
    const S = kAll.shape[1]!, T = k.shape[1]!;
    const sinkCount = Math.min(this.sinks, this.len + T);
    const keepRecent = Math.min(this.window - 1, S - sinkCount);
    const parts = (x: Tensor): Tensor => {
      if (sinkCount + keepRecent >= S) return contiguous(x);
      const recent = slice(x, 1, S - keepRecent, S);
      return contiguous(sinkCount > 0 ? concat([slice(x, 1, 0, sinkCount), recent], 1) : recent);
    };
    this.kv[layer] = keep({ k: parts(kAll), v: parts(vAll) });
    return { k: kAll, v: vAll, qOffset: S - T, window: this.window, sinks: sinkCount };
  }
  advance(T: number): void {
    this.len += T;
  }
  bytes(): number {
    let n = 0;
    for (const e of this.kv) if (e) n += (e.k.size + e.v.size) * 4;
    return n;
  }
  reset(): void {
    this.len = 0;
    this.kv.length = 0;
  }
}

const cfg = tinyConfig('llama', { maxPos: 512 });
const model = buildModel(randomModel(cfg, 5));
const V = cfg.vocabSize;

/** Logits of prefill chunks of `prompt` tokens then single-token steps, each call under its own buffer scope. */
function run(mem: AttentionMemory, ids: Int32Array, prompt: number | number[], B = 1, bytes: number[] = []): Float32Array {
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
      mem.advance(n);
      t0 += n;
    }
    for (let t = t0; t < T; t++) {
      scope(() => put(model.forward(pick(t, 1), B, 1, { memory: mem }).data, t, 1));
      mem.advance(1);
      bytes.push(mem.bytes());
    }
  });
  return out;
}

testBothBackends('StreamingMemory (in-place buffer) gives the same logits, bit for bit, as the copying cache', () => {
  const T = 90;
  for (const [sinks, window, prompt, B] of [[4, 8, 3, 1], [0, 5, 1, 1], [2, 1, 5, 1], [3, 16, 20, 1], [2, 6, 4, 2]] as const) {
    const ids = Int32Array.from({ length: B * T }, (_, i) => (i * 31 + 7) % V);
    const want = run(new CopyingStreamingMemory(sinks, window), ids, prompt, B);
    const bytes: number[] = [];
    const got = run(new StreamingMemory(cfg.nLayers, sinks, window), ids, prompt, B, bytes);
    assert.deepEqual(got, want, `sinks ${sinks} window ${window} prompt ${prompt} batch ${B}`);
    const perToken = B * cfg.nLayers * cfg.nKvHeads * cfg.headDim * 2 * 4;
    const full = bytes.slice(sinks + window);
    assert.ok(full.length > 2 * (sinks + window), 'runs well past the window, so the buffer wraps');
    assert.ok(full.every((b) => b === perToken * (sinks + window - 1)), 'bytes() stays at sinks + window - 1 tokens');
  }
});

test('StreamingMemory: a prefill longer than its buffer grows it; reset forgets everything', () => {
  const ids = Int32Array.from({ length: 60 }, (_, i) => (i * 13 + 1) % V);
  const chunks = [3, 40, 1, 7];
  const want = run(new CopyingStreamingMemory(2, 4), ids, chunks);
  const mem = new StreamingMemory(cfg.nLayers, 2, 4);
  assert.deepEqual(run(mem, ids, chunks), want);
  mem.reset();
  assert.equal(mem.bytes(), 0);
  assert.equal(mem.length, 0);
  assert.deepEqual(run(mem, ids, chunks), want, 'the same after reset');
});
