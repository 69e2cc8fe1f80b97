/**
 * What the model asks of a memory (implemented by inference/hybrid-memory.ts). A memory is a set of stores, one of
 * each kind a layer's layout uses: keys and values of its attention groups (all of them), of its window groups
 * (sinks + window), of its recurrent+window groups' exact windows, and the state of its recurrent heads. The forward pass appends to the stores of each layer and
 * commits its tokens at the end; callers never advance a memory by hand.
 */
import type { Tensor } from '../tensor/index.js';
import type { Layout } from './layout.js';

/** Keys and values to attend over after an append: (B, S, H, Dh), the new queries starting at row qOffset. */
export interface KVView {
  k: Tensor;
  v: Tensor;
  qOffset: number;
  /** A window store's mask: attend to the first `sinks` keys and the last `window` (undefined: every key). */
  window?: number;
  sinks?: number;
}

/** The same for one token of batch 1, as flat arrays of S rows (the decode step's form). */
export interface KVRows {
  k: Float32Array;
  v: Float32Array;
  S: number;
  qOffset: number;
  window?: number;
  sinks?: number;
}

/** Keys and values of some KV groups of one layer. */
export interface KVStore {
  /** Stores the new keys and values (B, T, H, Dh) and returns what the new queries attend over. */
  append(k: Tensor, v: Tensor): KVView;
  /** The same for one token of batch 1 (H * Dh values each), without tensors. */
  appendRow(k: Float32Array, v: Float32Array): KVRows;
}

/** Recurrent state of one layer: H (B, nHeads, P, N) and the conv's last K-1 inputs (B, K-1, channels). */
export interface RecurrentState {
  H: Tensor;
  conv: Tensor;
}

/** The recurrent heads' state of one layer (undefined before the first token). */
export interface RecurrentStore {
  get(): RecurrentState | undefined;
  /** Replaces the state (the model never updates a state in place). */
  set(s: RecurrentState): void;
}

/** The stores of one layer, as its layout asks: null where the layer has no group of that kind. */
export interface LayerStores {
  kv: KVStore | null;
  window: KVStore | null;
  /** The recurrent+window groups' exact windows (their recurrent heads' state is in `recurrent`). */
  headWindow: KVStore | null;
  recurrent: RecurrentStore | null;
}

/** The store of a layer that holds the keys and values of its groups of `kind`. */
export function storeOf(s: LayerStores, kind: 'attention' | 'window' | 'recurrent+window'): KVStore | null {
  return kind === 'attention' ? s.kv : kind === 'window' ? s.window : s.headWindow;
}

export interface ModelMemory {
  /** The layout the memory was made for (the model checks it against its own). */
  readonly layout: Layout;
  /** Tokens committed so far: the absolute position of the next token. */
  readonly length: number;
  layer(l: number): LayerStores;
  /** Called by the forward pass once every layer has appended its T tokens. */
  commit(T: number): void;
}
