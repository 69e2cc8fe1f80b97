/**
 * The memory a model reads besides the current tokens: a HybridMemory composes, layer by layer, the stores its
 * layout (model/layout.ts) asks for:
 *   KVBuffer      keys and values of the attention groups, growing by doubling up to the context;
 *   WindowBuffer  keys and values of the window groups: sinks + the most recent `window`, the rest evicted (also
 *                 the exact window of the recurrent+window groups, with the model's window);
 *   StateSlot     the recurrent heads' constant-size state.
 * Full attention, a converted model's hybrid, StreamingLLM and the streaming-heads baseline are layouts of this one
 * class (the factories at the end). The forward pass commits its own tokens. snapshot()/restore() work for every
 * store; truncate(n) works where the stores can roll back and otherwise throws a MemoryError saying why.
 */
import { RecurformerError, ArgumentError, ShapeError } from '../tensor/errors.js';
import { Tensor, contiguous, keep, shapeStr, tensor } from '../tensor/index.js';
import type { Layout, LayoutName, WindowGroups, WindowOpts } from '../model/layout.js';
import type { KVRows, KVStore, KVView, LayerStores, ModelMemory, RecurrentState, RecurrentStore } from '../model/stores.js';
import type { DecoderLM } from '../model/transformer.js';

/** A memory operation its stores cannot do (truncating a recurrent state, restoring another memory's snapshot). */
export class MemoryError extends RecurformerError {
  constructor(readonly op: string, message: string, hint?: string) {
    super(`${op}: ${message}`, hint);
  }
}

const F32 = 4;

/** Keys and values laid out (batch, cap, row): item b's rows start at (b * cap + at) * row. */
interface KVRuns {
  k: Float32Array;
  v: Float32Array;
  cap: number;
  at: number;
}

/**
 * For every batch item, copies n rows of keys and values from src to dst (the one copy every store does: growing,
 * appending, snapshots, restores). The same buffer on both sides is fine: TypedArray.set copies as if through a
 * temporary.
 */
function copyRuns(src: KVRuns, dst: KVRuns, n: number, row: number, batch: number): void {
  for (let b = 0; b < batch; b++) {
    const from = (b * src.cap + src.at) * row, to = (b * dst.cap + dst.at) * row;
    dst.k.set(src.k.subarray(from, from + n * row), to);
    dst.v.set(src.v.subarray(from, from + n * row), to);
  }
}

/** The error of a truncate that a store cannot do. */
function cannotRollBack(what: string, len: number, n: number): MemoryError {
  return new MemoryError('memory.truncate', `${what} cannot roll back from ${len} to ${n} tokens`,
    'take a snapshot() where you may want to return and restore() it');
}

/** Keys and values of a layer's attention groups: (B, cap, H, D) per tensor, the first `len` tokens valid. */
class KVBuffer implements KVStore {
  len = 0;
  cap = 0;
  k = new Float32Array(0);
  v = new Float32Array(0);
  readonly row: number;

  constructor(readonly batch: number, readonly heads: number, readonly headDim: number, readonly maxLen: number) {
    this.row = heads * headDim;
  }

  private ensure(n: number): void {
    if (n <= this.cap) return;
    if (n > this.maxLen) {
      throw new ArgumentError('memory', 'length', `${n} exceeds the context of ${this.maxLen} tokens`, 'shorten the prompt or max tokens');
    }
    this.grow(Math.min(this.maxLen, Math.max(n, this.cap * 2, 64)));
  }

  grow(cap: number): void {
    if (cap <= this.cap) return;
    const { row, batch } = this;
    const k = new Float32Array(batch * cap * row), v = new Float32Array(batch * cap * row);
    copyRuns({ k: this.k, v: this.v, cap: this.cap, at: 0 }, { k, v, cap, at: 0 }, this.len, row, batch);
    Object.assign(this, { k, v, cap });
  }

  append(k: Tensor, v: Tensor): KVView {
    const [B, T, H, D] = k.shape as [number, number, number, number];
    if (B !== this.batch || H !== this.heads || D !== this.headDim) {
      throw new ShapeError('memory.append', 'k', `[${this.batch}, T, ${this.heads}, ${this.headDim}]`, k.shape);
    }
    if (v.shape.some((d, i) => d !== k.shape[i])) throw new ShapeError('memory.append', 'v', shapeStr(k.shape), v.shape);
    this.ensure(this.len + T);
    const { row, cap } = this;
    copyRuns({ k: contiguous(k).data, v: contiguous(v).data, cap: T, at: 0 }, { k: this.k, v: this.v, cap, at: this.len }, T, row, B);
    const qOffset = this.len, S = (this.len += T);
    if (B === 1) {
      // zero-copy: the first S rows of the single batch item
      return { k: new Tensor({ data: this.k.subarray(0, S * row) }, [1, S, H, D]), v: new Tensor({ data: this.v.subarray(0, S * row) }, [1, S, H, D]), qOffset };
    }
    const view = (buf: Float32Array): Tensor => new Tensor({ data: buf }, [B, S, H, D], [cap * row, row, D, 1], 0);
    return { k: view(this.k), v: view(this.v), qOffset };
  }

  appendRow(k: Float32Array, v: Float32Array): KVRows {
    const row = this.row;
    if (this.batch !== 1 || k.length !== row || v.length !== row) throw new ShapeError('memory.appendRow', 'k', `[${row}] for batch 1`, [k.length]);
    this.ensure(this.len + 1);
    this.k.set(k, this.len * row);
    this.v.set(v, this.len * row);
    const qOffset = this.len, S = ++this.len;
    return { k: this.k.subarray(0, S * row), v: this.v.subarray(0, S * row), S, qOffset };
  }

  bytes(): number {
    return this.len * this.row * this.batch * 2 * F32;
  }

  snapshot(): KVSnap {
    const { row, cap, len, batch } = this;
    const k = new Float32Array(batch * len * row), v = new Float32Array(batch * len * row);
    copyRuns({ k: this.k, v: this.v, cap, at: 0 }, { k, v, cap: len, at: 0 }, len, row, batch);
    return { len, k, v };
  }

  restore(s: KVSnap): void {
    this.grow(s.len);
    copyRuns({ k: s.k, v: s.v, cap: s.len, at: 0 }, { k: this.k, v: this.v, cap: this.cap, at: 0 }, s.len, this.row, this.batch);
    this.len = s.len;
  }

  truncate(n: number): void {
    this.len = Math.min(this.len, n); // the rows past n are overwritten by the next append
  }

  reset(): void {
    this.len = 0;
  }
}

interface KVSnap {
  len: number;
  k: Float32Array;
  v: Float32Array;
}

/**
 * Keys and values of a layer's window groups: every group keeps the first `sinks` tokens and the most recent
 * `window`, everything in between is evicted, so the store stops growing at sinks + window tokens. Keys are stored
 * after RoPE, so evicted tokens leave no gap in the positions of the rest.
 *
 * Storage: one preallocated buffer per batch item holding the retained run [sinks | recent] contiguously from a
 * sliding start `o`. New tokens are appended after it and attention reads the run in place; evicting the oldest
 * recent tokens moves the start forward and moves only the sinks behind it (`sinks` tokens per step). When the run
 * reaches the end of the buffer it moves back to the start, once every ~(sinks + window) steps: a decode step copies
 * O(sinks + 1) tokens amortized, not the window. The keys attention sees, and their order, are those of a plain
 * sinks + window cache, so logits are bit-identical to it.
 */
class WindowBuffer implements KVStore {
  k: Float32Array;
  v: Float32Array;
  cap = 0;
  /** Start and length of the retained run. */
  o = 0;
  n = 0;
  /** Tokens appended so far. */
  seen = 0;
  /** The eviction the last append decided, applied at the next (its view must stay readable until then). */
  keepSinks = 0;
  keepRecent = 0;
  /** Whether a token was ever evicted (then the store cannot be truncated). */
  evicted = false;
  readonly row: number;

  constructor(readonly batch: number, readonly heads: number, readonly headDim: number, readonly w: WindowOpts) {
    this.row = heads * headDim;
    this.k = new Float32Array(0);
    this.v = new Float32Array(0);
  }

  /** Applies the eviction the previous append decided: [sinks | evicted | recent] -> [sinks | recent]. */
  private settle(): void {
    const gone = this.n - this.keepSinks - this.keepRecent;
    if (gone <= 0) return;
    // the sinks move forward next to the recent tokens
    const buf = { k: this.k, v: this.v, cap: this.cap };
    copyRuns({ ...buf, at: this.o }, { ...buf, at: this.o + gone }, this.keepSinks, this.row, this.batch);
    this.o += gone;
    this.n = this.keepSinks + this.keepRecent;
    this.evicted = true;
  }

  /** Makes room for T more tokens after the retained run: move it to the start, or grow the buffer. */
  private roomFor(T: number): void {
    if (this.o + this.n + T <= this.cap) return;
    const { row, batch } = this;
    // room for the retained run plus as many steps again, so the run moves back only every ~(sinks + window) steps
    const cap = Math.max(this.cap, this.n + T, 2 * (this.w.sinks + this.w.window) + T);
    const same = cap === this.cap;
    const k = same ? this.k : new Float32Array(batch * cap * row);
    const v = same ? this.v : new Float32Array(batch * cap * row);
    copyRuns({ k: this.k, v: this.v, cap: this.cap, at: this.o }, { k, v, cap, at: 0 }, this.n, row, batch);
    Object.assign(this, { k, v, cap, o: 0 });
  }

  /** Appends T tokens of flat (B, T, row) data and decides the next eviction; returns the run's length S. */
  private put(kd: Float32Array, vd: Float32Array, T: number): number {
    this.settle();
    this.roomFor(T);
    copyRuns({ k: kd, v: vd, cap: T, at: 0 }, { k: this.k, v: this.v, cap: this.cap, at: this.o + this.n }, T, this.row, this.batch);
    const S = (this.n += T);
    this.seen += T;
    // keep the sinks and the last window-1 keys: the next query adds itself to make `window` recent keys
    this.keepSinks = Math.min(this.w.sinks, this.seen);
    this.keepRecent = Math.min(this.w.window - 1, S - this.keepSinks);
    return S;
  }

  append(k: Tensor, v: Tensor): KVView {
    const [B, T, H, D] = k.shape as [number, number, number, number];
    if (B !== this.batch || H !== this.heads || D !== this.headDim) {
      throw new ShapeError('memory.append', 'k', `[${this.batch}, T, ${this.heads}, ${this.headDim}]`, k.shape);
    }
    if (v.shape.some((d, i) => d !== k.shape[i])) throw new ShapeError('memory.append', 'v', shapeStr(k.shape), v.shape);
    const S = this.put(contiguous(k).data, contiguous(v).data, T);
    const { row, cap, o } = this;
    // (B, S, H, D) in place: contiguous for one batch item, a strided view over the buffer otherwise
    const view = (buf: Float32Array): Tensor => new Tensor({ data: buf }, [B, S, H, D], [cap * row, row, D, 1], o * row);
    return { k: view(this.k), v: view(this.v), qOffset: S - T, window: this.w.window, sinks: this.keepSinks };
  }

  appendRow(k: Float32Array, v: Float32Array): KVRows {
    const row = this.row;
    if (this.batch !== 1 || k.length !== row || v.length !== row) throw new ShapeError('memory.appendRow', 'k', `[${row}] for batch 1`, [k.length]);
    const S = this.put(k, v, 1);
    const o = this.o * row;
    return { k: this.k.subarray(o, o + S * row), v: this.v.subarray(o, o + S * row), S, qOffset: S - 1, window: this.w.window, sinks: this.keepSinks };
  }

  /** Bytes of the retained keys and values (sinks + window - 1 tokens once full); the buffer reserves about 2x. */
  bytes(): number {
    return Math.min(this.n, this.keepSinks + this.keepRecent) * this.row * this.batch * 2 * F32;
  }

  snapshot(): WindowSnap {
    const { row, n, batch } = this;
    const k = new Float32Array(batch * n * row), v = new Float32Array(batch * n * row);
    copyRuns({ k: this.k, v: this.v, cap: this.cap, at: this.o }, { k, v, cap: n, at: 0 }, n, row, batch);
    return { k, v, n, seen: this.seen, keepSinks: this.keepSinks, keepRecent: this.keepRecent, evicted: this.evicted };
  }

  restore(s: WindowSnap): void {
    this.o = 0;
    this.n = 0;
    this.roomFor(s.n);
    copyRuns({ k: s.k, v: s.v, cap: s.n, at: 0 }, { k: this.k, v: this.v, cap: this.cap, at: 0 }, s.n, this.row, this.batch);
    Object.assign(this, { n: s.n, seen: s.seen, keepSinks: s.keepSinks, keepRecent: s.keepRecent, evicted: s.evicted });
  }

  /** Keeps the first n tokens; only while the run still holds every token seen (HybridMemory checks `evicted`). */
  truncate(n: number): void {
    if (n >= this.seen) return;
    this.n = this.seen = n;
    this.keepSinks = Math.min(this.w.sinks, n);
    this.keepRecent = Math.min(this.w.window - 1, n - this.keepSinks);
  }

  reset(): void {
    Object.assign(this, { o: 0, n: 0, seen: 0, keepSinks: 0, keepRecent: 0, evicted: false });
  }
}

interface WindowSnap {
  k: Float32Array;
  v: Float32Array;
  n: number;
  seen: number;
  keepSinks: number;
  keepRecent: number;
  evicted: boolean;
}

/** The recurrent heads' state of one layer. */
class StateSlot implements RecurrentStore {
  state: RecurrentState | undefined;

  get(): RecurrentState | undefined {
    return this.state;
  }

  set(s: RecurrentState): void {
    // the state outlives the step's buffer scope (a decode step runs in one)
    this.state = keep(s);
  }

  bytes(): number {
    return this.state ? (this.state.H.size + this.state.conv.size) * F32 : 0;
  }

  snapshot(): RecurrentState | undefined {
    const s = this.state;
    if (!s) return undefined;
    const copy = (t: Tensor): Tensor => tensor(Float32Array.from(contiguous(t).data), t.shape);
    return { H: copy(s.H), conv: copy(s.conv) };
  }

  restore(s: RecurrentState | undefined): void {
    // a copy again: the snapshot stays valid for another restore
    this.state = s ? keep({ H: tensor(Float32Array.from(s.H.data), s.H.shape), conv: tensor(Float32Array.from(s.conv.data), s.conv.shape) }) : undefined;
  }

  reset(): void {
    this.state = undefined;
  }
}

/** A saved memory: restore() it into the memory that took it. */
export interface MemorySnapshot {
  readonly length: number;
  /** @internal the stores' saved contents, and the memory they belong to */
  readonly stores: readonly (KVSnap | WindowSnap | RecurrentState | undefined)[];
  readonly owner: HybridMemory;
}

export interface MemoryOpts {
  /** Batch items (default 1). */
  batch?: number;
  /** Most tokens the attention stores may hold (default: the model's context). */
  maxLen?: number;
}

/** Every store of every layer, as the layout asks. See the file header. */
export class HybridMemory implements ModelMemory {
  private len = 0;
  private readonly stores: LayerStores[];
  private readonly all: (KVBuffer | WindowBuffer | StateSlot)[] = [];
  readonly batch: number;

  constructor(readonly layout: Layout, opts: MemoryOpts = {}) {
    const batch = (this.batch = opts.batch ?? 1);
    if (!(Number.isInteger(batch) && batch >= 1)) throw new ArgumentError('HybridMemory', 'batch', `= ${batch} must be a positive integer`);
    const maxLen = opts.maxLen ?? layout.cfg.maxPos;
    const Dh = layout.cfg.headDim;
    this.stores = layout.layers.map((L) => {
      const s: LayerStores = {
        kv: L.groups.attention.length ? new KVBuffer(batch, L.groups.attention.length, Dh, maxLen) : null,
        window: L.groups.window.length ? new WindowBuffer(batch, L.groups.window.length, Dh, layout.windows!) : null,
        headWindow: L.headWindow ? new WindowBuffer(batch, L.groups['recurrent+window'].length, Dh, L.headWindow) : null,
        recurrent: L.recurrent ? new StateSlot() : null,
      };
      for (const x of [s.kv, s.window, s.headWindow, s.recurrent]) if (x) this.all.push(x as KVBuffer | WindowBuffer | StateSlot);
      return s;
    });
  }

  /** full, hybrid, streaming or streaming-heads (from the layout). */
  get kind(): LayoutName {
    return this.layout.name;
  }

  get length(): number {
    return this.len;
  }

  layer(l: number): LayerStores {
    const s = this.stores[l];
    if (!s) throw new ArgumentError('memory.layer', 'layer', `${l} is not a layer of this memory (0..${this.stores.length - 1})`);
    return s;
  }

  commit(T: number): void {
    this.len += T;
  }

  /** Bytes held now, measured from the stores. */
  bytes(): number {
    return this.all.reduce((n, s) => n + s.bytes(), 0);
  }

  /** Allocates room for this many tokens in the attention stores at once (a generation of known length never regrows). */
  reserve(tokens: number): void {
    if (!Number.isInteger(tokens) || tokens < 0) {
      throw new ArgumentError('memory.reserve', 'tokens', `must be a non-negative integer, got ${tokens}`,
        'pass the prompt length plus the most tokens the generation may add');
    }
    for (const s of this.all) if (s instanceof KVBuffer) s.grow(Math.min(s.maxLen, tokens));
  }

  /** Tokens the attention stores hold before they next grow (the context for a memory without them). */
  get capacity(): number {
    const kv = this.all.find((s): s is KVBuffer => s instanceof KVBuffer);
    return kv ? kv.cap : this.layout.cfg.maxPos;
  }

  /** Forgets everything. */
  reset(): void {
    this.len = 0;
    for (const s of this.all) s.reset();
  }

  /** A copy of everything the memory holds now; restore() returns to it, any number of times. */
  snapshot(): MemorySnapshot {
    return { length: this.len, stores: this.all.map((s) => s.snapshot()), owner: this };
  }

  restore(snap: MemorySnapshot): void {
    if (snap.owner !== this) throw new MemoryError('memory.restore', 'the snapshot was taken from another memory', 'restore a snapshot into the memory that took it');
    this.all.forEach((s, i) => (s as { restore(x: unknown): void }).restore(snap.stores[i]));
    this.len = snap.length;
  }

  /**
   * Forgets every token after the first n. Attention stores can; a window store only while it has evicted nothing,
   * and a recurrent state never (it has no memory of its earlier values): those throw a MemoryError, and the memory
   * is unchanged.
   */
  truncate(n: number): void {
    if (!(Number.isInteger(n) && n >= 0 && n <= this.len)) {
      throw new ArgumentError('memory.truncate', 'n', `= ${n} must be an integer in [0, ${this.len}]`);
    }
    if (n === this.len) return;
    if (this.all.some((s) => s instanceof StateSlot)) throw cannotRollBack('a recurrent state', this.len, n);
    if (this.all.some((s) => s instanceof WindowBuffer && s.evicted)) throw cannotRollBack('a window store that has evicted tokens', this.len, n);
    for (const s of this.all) (s as KVBuffer | WindowBuffer).truncate(n);
    this.len = n;
  }
}

/** The model's own memory: full KV, or for a converted model the hybrid (kept KV + recurrent state). */
export function fullMemory(model: DecoderLM, opts: MemoryOpts = {}): HybridMemory {
  return new HybridMemory(model.layout, opts);
}

/**
 * StreamingLLM: every attention group keeps sinks + window keys. On a converted model the recurrent heads keep their
 * state and only the attention groups are windowed; with a window at least the context it equals fullMemory.
 */
export function streamingMemory(model: DecoderLM, w: WindowOpts, opts: MemoryOpts = {}): HybridMemory {
  return new HybridMemory(model.layout.withWindows('all', w), opts);
}

/**
 * The streaming-heads baseline at the hybrid's budget: the given KV groups (a plan's) keep sinks + window keys, the
 * others their full KV. The groups must be attention groups of the model (pass the original model).
 */
export function streamingHeadsMemory(model: DecoderLM, groups: WindowGroups, w: WindowOpts, opts: MemoryOpts = {}): HybridMemory {
  return new HybridMemory(model.layout.withWindows(groups, w), opts);
}

/** Bytes a full KV cache would hold after `tokens` tokens of this model (the baseline the playground charts). */
export function fullAttentionBytes(model: DecoderLM, tokens: number): number {
  return model.layout.fullAttentionBytes(tokens);
}
