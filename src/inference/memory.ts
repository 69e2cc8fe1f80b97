/**
 * Attention memory: what a layer's attention reads besides the current tokens. One interface, several
 * implementations (full KV here; recurrent state, hybrid and the streaming baselines join in the conversion
 * issue), chosen by configuration, never by model name.
 */
import { Tensor, contiguous, empty, keep, shapeStr } from '../tensor/index.js';
import { ArgumentError, ShapeError } from '../tensor/errors.js';
import type { RecurrentState } from '../model/recurrent-head.js';
import type { DecoderLM } from '../model/transformer.js';

export interface MemoryView {
  /** Keys and values attention should read: (B, S, Hkv, Dh). */
  k: Tensor;
  v: Tensor;
  /** Position of the first new query among the returned keys. */
  qOffset: number;
  /** Extra attention mask for this call (eviction baselines): only the last `window` keys plus the first `sinks`. */
  window?: number;
  sinks?: number;
}

export interface AttentionMemory {
  readonly kind: string;
  /** Tokens processed so far: the absolute position of the next token. */
  readonly length: number;
  /** Stores layer `layer`'s new keys/values (B, T, Hkv, Dh) and returns the full view to attend over. */
  update(layer: number, k: Tensor, v: Tensor): MemoryView;
  /** Marks T tokens as processed (after every layer has been updated for them). */
  advance(T: number): void;
  /** Bytes held now. */
  bytes(): number;
  /** Forgets everything. */
  reset(): void;
  /** KV groups of a layer that keep only sinks + window (the streaming-heads baseline); none by default. */
  windowedGroups?(layer: number): readonly number[];
  /** Stores and returns the windowed groups' keys/values (with their window mask) for `windowedGroups`. */
  updateWindowed?(layer: number, k: Tensor, v: Tensor): MemoryView;
  /** Makes room for this many tokens in one allocation (memories of fixed size ignore it). */
  reserve?(tokens: number): void;
  /** Recurrent state of a layer with recurrent heads (undefined before its first token). */
  recurrentState?(layer: number): RecurrentState | undefined;
  setRecurrentState?(layer: number, s: RecurrentState): void;
}

/**
 * The KV cache: every key and value of every kept KV head of every layer, growing by doubling up to `maxLen`.
 * Layers may keep different numbers of KV heads (a converted model keeps only its attention groups); layers with
 * recurrent heads also hold a constant-size recurrent state here, which makes this the hybrid memory.
 */
export class KVCache implements AttentionMemory {
  private len = 0;
  private cap = 0;
  private readonly ks: Float32Array[];
  private readonly vs: Float32Array[];
  private readonly kvHeads: number[];
  private readonly states = new Map<number, RecurrentState>();

  constructor(
    readonly nLayers: number,
    readonly batch: number,
    kvHeads: number | readonly number[],
    readonly headDim: number,
    readonly maxLen: number,
  ) {
    this.kvHeads = typeof kvHeads === 'number' ? new Array<number>(nLayers).fill(kvHeads) : [...kvHeads];
    if (this.kvHeads.length !== nLayers) throw new ArgumentError('KVCache', 'kvHeads', `needs ${nLayers} entries`);
    this.ks = Array.from({ length: nLayers }, () => new Float32Array(0));
    this.vs = Array.from({ length: nLayers }, () => new Float32Array(0));
  }

  get kind(): string {
    return this.hasRecurrent || this.states.size > 0 ? 'hybrid' : 'full';
  }

  /** Set by the model when some layers are recurrent (the kind is hybrid even before the first token). */
  hasRecurrent = false;

  recurrentState(layer: number): RecurrentState | undefined {
    return this.states.get(layer);
  }

  setRecurrentState(layer: number, s: RecurrentState): void {
    // the state outlives the step's buffer scope (generate wraps each step in one)
    this.states.set(layer, keep(s));
  }

  /** Bytes of the recurrent states alone (constant in the sequence length). */
  constantBytes(): number {
    let n = 0;
    for (const s of this.states.values()) n += (s.H.size + s.conv.size) * 4;
    return n;
  }

  get length(): number {
    return this.len;
  }

  /** Tokens the cache holds before it next grows. */
  get capacity(): number {
    return this.cap;
  }

  private ensure(n: number): void {
    if (n <= this.cap) return;
    if (n > this.maxLen) {
      throw new ArgumentError('KVCache', 'length', `${n} exceeds the context of ${this.maxLen} tokens`,
        'shorten the prompt or max tokens');
    }
    this.grow(Math.min(this.maxLen, Math.max(n, this.cap * 2, 64)));
  }

  /**
   * Allocates room for `tokens` tokens (clipped to the context) up front, so that a generation of known length
   * never regrows the cache: each doubling copies every layer's keys and values (with bench:decode's 110M model,
   * 0.13-0.29 ms per step averaged over the rounds after a doubling).
   */
  reserve(tokens: number): void {
    if (!Number.isInteger(tokens) || tokens < 0) {
      throw new ArgumentError('KVCache.reserve', 'tokens', `must be a non-negative integer, got ${tokens}`,
        'pass the prompt length plus the most tokens the generation may add');
    }
    const cap = Math.min(this.maxLen, tokens);
    if (cap > this.cap) this.grow(cap);
  }

  private grow(cap: number): void {
    for (let l = 0; l < this.nLayers; l++) {
      const row = this.kvHeads[l]! * this.headDim;
      for (const arrs of [this.ks, this.vs]) {
        const next = new Float32Array(this.batch * cap * row);
        for (let b = 0; b < this.batch; b++) {
          next.set(arrs[l]!.subarray(b * this.cap * row, (b * this.cap + this.len) * row), b * cap * row);
        }
        arrs[l] = next;
      }
    }
    this.cap = cap;
  }

  update(layer: number, k: Tensor, v: Tensor): MemoryView {
    const [B, T, H, D] = k.shape as [number, number, number, number];
    if (B !== this.batch || H !== this.kvHeads[layer] || D !== this.headDim) {
      throw new ShapeError('KVCache.update', 'k', `[${this.batch}, T, ${this.kvHeads[layer]}, ${this.headDim}]`, k.shape);
    }
    if (v.shape.some((d, i) => d !== k.shape[i])) throw new ShapeError('KVCache.update', 'v', shapeStr(k.shape), v.shape);
    this.ensure(this.len + T);
    const row = H * D;
    const kd = k.data, vd = v.data;
    const K = this.ks[layer]!, V = this.vs[layer]!;
    for (let b = 0; b < B; b++) {
      K.set(kd.subarray(b * T * row, (b + 1) * T * row), (b * this.cap + this.len) * row);
      V.set(vd.subarray(b * T * row, (b + 1) * T * row), (b * this.cap + this.len) * row);
    }
    const S = this.len + T;
    let kOut: Tensor, vOut: Tensor;
    if (B === 1) {
      // zero-copy: the first S rows of the single batch item
      kOut = new Tensor({ data: K.subarray(0, S * row) }, [1, S, H, D]);
      vOut = new Tensor({ data: V.subarray(0, S * row) }, [1, S, H, D]);
    } else {
      kOut = empty([B, S, H, D]);
      vOut = empty([B, S, H, D]);
      for (let b = 0; b < B; b++) {
        kOut.data.set(K.subarray(b * this.cap * row, (b * this.cap + S) * row), b * S * row);
        vOut.data.set(V.subarray(b * this.cap * row, (b * this.cap + S) * row), b * S * row);
      }
    }
    return { k: kOut, v: vOut, qOffset: this.len };
  }

  /**
   * The single-token decode path's update (src/model/decode-step.ts): stores one token's keys and values (Hkv * Dh
   * each, batch 1) and returns the first S cached rows of the layer as flat arrays, as `update` does without
   * building tensors.
   */
  appendOne(layer: number, k: Float32Array, v: Float32Array): { k: Float32Array; v: Float32Array; S: number; qOffset: number } {
    const row = this.kvHeads[layer]! * this.headDim;
    if (this.batch !== 1 || k.length !== row || v.length !== row) {
      throw new ShapeError('KVCache.appendOne', 'k', `[${row}] for batch 1`, [k.length]);
    }
    this.ensure(this.len + 1);
    const K = this.ks[layer]!, V = this.vs[layer]!;
    K.set(k, this.len * row);
    V.set(v, this.len * row);
    const S = this.len + 1;
    return { k: K.subarray(0, S * row), v: V.subarray(0, S * row), S, qOffset: this.len };
  }

  advance(T: number): void {
    this.len += T;
  }

  /** KV bytes per cached token (float32 keys and values of every kept KV head). */
  kvBytesPerToken(): number {
    return this.kvHeads.reduce((s, h) => s + h, 0) * 2 * this.headDim * 4 * this.batch;
  }

  bytes(): number {
    return this.len * this.kvBytesPerToken() + this.constantBytes();
  }

  reset(): void {
    this.len = 0;
    this.states.clear();
  }
}

/** One layer's retained keys and values in a StreamingMemory. */
interface StreamLayer {
  /** Keys / values (B, cap, H, D): the retained sequence is tokens [o, o + n) of every batch item. */
  k: Float32Array;
  v: Float32Array;
  cap: number;
  o: number;
  n: number;
  /** Eviction decided by the last update, applied at the next one (its view must stay readable until then). */
  sinks: number;
  recent: number;
  row: number;
  batch: number;
}

/**
 * StreamingLLM baseline: every head keeps the first `sinks` tokens and the most recent `window` tokens; everything
 * in between is evicted. Its cache stops growing at sinks + window tokens. Keys are cached after RoPE, so evicted
 * tokens leave no gap in the positions of the rest.
 *
 * Storage: per layer one preallocated buffer per batch item holding the retained sequence [sinks | recent]
 * contiguously at a sliding start `o`. New tokens are appended after it and the attention reads the whole run in
 * place (no copy); evicting the oldest recent tokens moves the start forward and moves only the sinks behind it
 * (`sinks` tokens per step). When the run reaches the end of the buffer it is moved back to the start, which
 * happens once every ~(sinks + window) steps: a decode step copies O(sinks + 1) tokens amortized, not the window.
 * The keys the attention sees, and their order, are exactly those of the plain sinks + window cache, so logits are
 * bit-identical to it.
 */
export class StreamingMemory implements AttentionMemory {
  readonly kind = 'streaming';
  private len = 0;
  private readonly layers: (StreamLayer | undefined)[] = [];

  constructor(readonly nLayers: number, readonly sinks: number, readonly window: number) {
    if (!(Number.isInteger(window) && window >= 1) || !(Number.isInteger(sinks) && sinks >= 0)) {
      throw new ArgumentError('StreamingMemory', 'window/sinks', `window ${window} must be >= 1 and sinks ${sinks} >= 0`);
    }
  }

  get length(): number {
    return this.len;
  }

  /** Applies the eviction the previous update decided: [sinks | evicted | recent] -> [sinks | recent]. */
  private settle(L: StreamLayer): void {
    const evicted = L.n - L.sinks - L.recent;
    if (evicted <= 0) return;
    const { row, cap } = L;
    for (let b = 0; b < L.batch; b++) {
      const base = b * cap * row;
      // the sinks move forward next to the recent tokens (copyWithin handles the overlap)
      L.k.copyWithin(base + (L.o + evicted) * row, base + L.o * row, base + (L.o + L.sinks) * row);
      L.v.copyWithin(base + (L.o + evicted) * row, base + L.o * row, base + (L.o + L.sinks) * row);
    }
    L.o += evicted;
    L.n = L.sinks + L.recent;
  }

  /** Makes room for T more tokens after the retained run: move it to the start, or grow the buffer. */
  private roomFor(L: StreamLayer, T: number): void {
    if (L.o + L.n + T <= L.cap) return;
    const { row } = L;
    const cap = Math.max(L.cap, L.n + T);
    const same = cap === L.cap;
    const k = same ? L.k : new Float32Array(L.batch * cap * row);
    const v = same ? L.v : new Float32Array(L.batch * cap * row);
    for (let b = 0; b < L.batch; b++) {
      const from = (b * L.cap + L.o) * row, to = (b * L.cap + L.o + L.n) * row;
      if (same) {
        k.copyWithin(b * cap * row, from, to);
        v.copyWithin(b * cap * row, from, to);
      } else {
        k.set(L.k.subarray(from, to), b * cap * row);
        v.set(L.v.subarray(from, to), b * cap * row);
      }
    }
    Object.assign(L, { k, v, cap, o: 0 });
  }

  update(layer: number, k: Tensor, v: Tensor): MemoryView {
    const [B, T, H, D] = k.shape as [number, number, number, number];
    if (v.shape.some((d, i) => d !== k.shape[i])) throw new ShapeError('StreamingMemory.update', 'v', shapeStr(k.shape), v.shape);
    const row = H * D;
    let L = this.layers[layer];
    if (L && (L.batch !== B || L.row !== row)) {
      throw new ShapeError('StreamingMemory.update', 'k', `[${L.batch}, T, ${L.row / D}, ${D}]`, k.shape);
    }
    if (!L) {
      // room for the retained run plus as many steps again, so the run moves back only every ~(sinks + window) steps
      const cap = 2 * (this.sinks + this.window) + T;
      L = { k: new Float32Array(B * cap * row), v: new Float32Array(B * cap * row), cap, o: 0, n: 0, sinks: 0, recent: 0, row, batch: B };
      this.layers[layer] = L;
    }
    this.settle(L);
    this.roomFor(L, T);
    const kd = contiguous(k).data, vd = contiguous(v).data;
    for (let b = 0; b < B; b++) {
      const at = (b * L.cap + L.o + L.n) * row;
      L.k.set(kd.subarray(b * T * row, (b + 1) * T * row), at);
      L.v.set(vd.subarray(b * T * row, (b + 1) * T * row), at);
    }
    const S = L.n + T;
    L.n = S;
    // how many of the retained keys are sinks: the first min(sinks, tokens seen) positions
    const sinkCount = Math.min(this.sinks, this.len + T);
    // keep the sinks and the last window-1 keys: the next query adds itself to make `window` recent keys
    L.sinks = sinkCount;
    L.recent = Math.min(this.window - 1, S - sinkCount);
    // (B, S, H, D) in place: contiguous for one batch item, a strided view over the buffer otherwise
    const view = (buf: Float32Array): Tensor =>
      new Tensor({ data: buf }, [B, S, H, D], [L.cap * row, row, D, 1], L.o * row);
    return { k: view(L.k), v: view(L.v), qOffset: S - T, window: this.window, sinks: sinkCount };
  }

  advance(T: number): void {
    this.len += T;
  }

  /** Bytes of the retained keys and values (sinks + window - 1 tokens once full); the buffers reserve about 2x. */
  bytes(): number {
    let n = 0;
    for (const L of this.layers) if (L) n += Math.min(L.n, L.sinks + L.recent) * L.row * L.batch * 2 * 4;
    return n;
  }

  reset(): void {
    this.len = 0;
    this.layers.length = 0;
  }
}

/**
 * The streaming-heads baseline at the hybrid's budget: the KV groups a plan would make recurrent keep only sinks +
 * window of keys instead (evicting the rest), the other groups keep their full KV cache. The model attends the two
 * sets separately and merges the heads.
 */
export class StreamingHeadsMemory implements AttentionMemory {
  readonly kind = 'streaming-heads';
  private readonly full: KVCache;
  private readonly windowed: StreamingMemory;

  constructor(readonly nLayers: number, nKvHeads: number, headDim: number, maxLen: number,
    private readonly groups: ReadonlyMap<number, readonly number[]>, sinks: number, window: number) {
    this.full = new KVCache(nLayers, 1, Array.from({ length: nLayers }, (_, l) => nKvHeads - (groups.get(l)?.length ?? 0)), headDim, maxLen);
    this.windowed = new StreamingMemory(nLayers, sinks, window);
  }

  get length(): number {
    return this.full.length;
  }

  windowedGroups(layer: number): readonly number[] {
    return this.groups.get(layer) ?? [];
  }

  update(layer: number, k: Tensor, v: Tensor): MemoryView {
    return this.full.update(layer, k, v);
  }

  updateWindowed(layer: number, k: Tensor, v: Tensor): MemoryView {
    return this.windowed.update(layer, k, v);
  }

  advance(T: number): void {
    this.full.advance(T);
    this.windowed.advance(T);
  }

  bytes(): number {
    return this.full.bytes() + this.windowed.bytes();
  }

  reset(): void {
    this.full.reset();
    this.windowed.reset();
  }

  reserve(tokens: number): void {
    this.full.reserve(tokens);
  }
}

/** The model's native memory: the full KV cache, or for a converted model the hybrid (kept KV + recurrent state). */
export function fullMemory(model: DecoderLM, batch = 1): KVCache {
  const c = model.cfg;
  const m = new KVCache(c.nLayers, batch, model.kvHeadsPerLayer(), c.headDim, c.maxPos);
  m.hasRecurrent = model.recurrent.size > 0;
  return m;
}
