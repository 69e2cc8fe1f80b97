/**
 * Attention memory: what a layer's attention reads besides the current tokens. One interface, several
 * implementations (full KV here; recurrent state, hybrid and the streaming baselines join in the conversion
 * issue), chosen by configuration, never by model name.
 */
import { Tensor, empty, shapeStr } from '../tensor/index.js';
import { ArgumentError, ShapeError } from '../tensor/errors.js';

export interface MemoryView {
  /** Keys and values attention should read: (B, S, Hkv, Dh). */
  k: Tensor;
  v: Tensor;
  /** Position of the first new query among the returned keys. */
  qOffset: number;
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
}

/** The full KV cache: every key and value of every layer, growing by doubling up to `maxLen`. */
export class KVCache implements AttentionMemory {
  readonly kind = 'full';
  private len = 0;
  private cap = 0;
  private readonly ks: Float32Array[];
  private readonly vs: Float32Array[];

  constructor(
    readonly nLayers: number,
    readonly batch: number,
    readonly nKvHeads: number,
    readonly headDim: number,
    readonly maxLen: number,
  ) {
    this.ks = Array.from({ length: nLayers }, () => new Float32Array(0));
    this.vs = Array.from({ length: nLayers }, () => new Float32Array(0));
  }

  get length(): number {
    return this.len;
  }

  private ensure(n: number): void {
    if (n <= this.cap) return;
    if (n > this.maxLen) {
      throw new ArgumentError('KVCache', 'length', `${n} exceeds the context of ${this.maxLen} tokens`,
        'shorten the prompt or max tokens');
    }
    const cap = Math.min(this.maxLen, Math.max(n, this.cap * 2, 64));
    const row = this.nKvHeads * this.headDim;
    for (let l = 0; l < this.nLayers; l++) {
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
    if (B !== this.batch || H !== this.nKvHeads || D !== this.headDim) {
      throw new ShapeError('KVCache.update', 'k', `[${this.batch}, T, ${this.nKvHeads}, ${this.headDim}]`, k.shape);
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

  advance(T: number): void {
    this.len += T;
  }

  bytes(): number {
    return this.nLayers * 2 * this.batch * this.len * this.nKvHeads * this.headDim * 4;
  }

  reset(): void {
    this.len = 0;
  }
}
