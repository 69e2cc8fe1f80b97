/**
 * The attention layout: what each KV group of each layer keeps while the model reads a sequence. One immutable
 * description, derived once from the config, the converted model's recurformer section and the memory's choice of
 * windows; everything that counts heads, parameters or cache bytes reads it here and nowhere else.
 *
 * Kinds of a KV group (its query heads follow it):
 *   attention  full KV: every key and value since the first token;
 *   recurrent  a Mamba-2 style recurrent head per query head, constant state (a converted model's replaced groups);
 *   window     sinks + the most recent `window` keys and values, the rest evicted (StreamingLLM for every group,
 *              the streaming-heads baseline for a plan's groups).
 *   recurrent+window
 *              a converted group that keeps an exact window (sinks + the last W keys, the spec's) for softmax
 *              attention and a recurrent head per query head that reads every token; the head's output is the
 *              windowed attention plus a learned per-head multiple of the recurrent read-out (docs/convert.md).
 * The model decides attention vs recurrent vs recurrent+window (its weights); the memory may turn attention groups
 * into windows.
 */
import { ArgumentError } from '../tensor/errors.js';
import type { ModelConfig } from './config.js';
import { layerWindow } from './config.js';

export type GroupKind = 'attention' | 'window' | 'recurrent' | 'recurrent+window';
/** Order of the kinds in a layer's concatenated head outputs (before the merge back into head order). */
export const KINDS: readonly GroupKind[] = ['attention', 'window', 'recurrent', 'recurrent+window'];
/** The kinds a converted model's replaced groups may have (what `convert --head-kind` takes). */
export type ReplacedKind = 'recurrent' | 'recurrent+window';
export const REPLACED_KINDS: readonly ReplacedKind[] = ['recurrent', 'recurrent+window'];

/** Whether a group of this kind has recurrent heads (and so a state that cannot be rolled back). */
export function isReplaced(k: GroupKind): k is ReplacedKind {
  return k === 'recurrent' || k === 'recurrent+window';
}

/**
 * The `recurformer` section of a converted model's config.json: which KV groups of which layers are recurrent and
 * the recurrent heads' hyperparameters (parsed and validated by spec.ts; documented in docs/convert.md).
 */
export interface RecurformerSpec {
  version: 1;
  /** Head dim P (= the model's head dim) and state dim N. */
  P: number;
  N: number;
  convK: number;
  gate: boolean;
  norm: boolean;
  /** Chunk length of the SSD prefill. */
  chunk: number;
  /** Kind of every replaced group (absent: 'recurrent'). */
  kind?: ReplacedKind;
  /** recurrent+window only: the exact window each replaced group keeps (sinks + the last `window` keys). */
  window?: number;
  sinks?: number;
  /** Replaced KV groups per layer (layers not listed keep all their attention). */
  layers: { layer: number; groups: number[] }[];
}

/** Shapes of one layer's recurrent heads. */
export interface RecurrentDims {
  /** Replaced query heads in this layer. */
  nHeads: number;
  /** KV groups they belong to (B is shared within a group). */
  nGroups: number;
  /** For each head, the index (0..nGroups-1) of its group. */
  groupOf: Int32Array;
  /** Head dim (P) and state dim (N). */
  P: number;
  N: number;
  /** Conv kernel width (K); 1 disables the conv's memory. */
  convK: number;
  gate: boolean;
  norm: boolean;
  normEps: number;
}

/** Conv channels of a recurrent layer: x (H * P), B (G * N) and C (H * N). */
export function channels(d: RecurrentDims): number {
  return d.nHeads * d.P + d.nGroups * d.N + d.nHeads * d.N;
}

/** Values held by a recurrent layer's state per batch item: P * N per head plus the conv's last K-1 inputs. */
export function stateSize(d: RecurrentDims): number {
  return d.nHeads * d.P * d.N + Math.max(0, d.convK - 1) * channels(d);
}

/** Query heads of the given KV groups, in order. */
export function headsOfGroups(cfg: ModelConfig, groups: readonly number[]): number[] {
  const nRep = cfg.nHeads / cfg.nKvHeads;
  return groups.flatMap((g) => Array.from({ length: nRep }, (_, r) => g * nRep + r));
}

export function layerDims(cfg: ModelConfig, spec: RecurformerSpec, groups: readonly number[]): RecurrentDims {
  const nRep = cfg.nHeads / cfg.nKvHeads;
  return {
    nHeads: groups.length * nRep, nGroups: groups.length,
    groupOf: Int32Array.from({ length: groups.length * nRep }, (_, i) => Math.floor(i / nRep)),
    P: spec.P, N: spec.N, convK: spec.convK, gate: spec.gate, norm: spec.norm, normEps: cfg.normEps,
  };
}

/** One layer of the layout. */
export interface LayerLayout {
  readonly layer: number;
  /** Kind of each KV group. */
  readonly kinds: readonly GroupKind[];
  /** KV groups and query heads of each kind, in order. */
  readonly groups: Readonly<Record<GroupKind, Int32Array>>;
  readonly heads: Readonly<Record<GroupKind, Int32Array>>;
  /**
   * Output slot h reads entry merge[h] of the heads concatenated in KINDS order; null when one kind holds every head
   * (no split, no merge).
   */
  readonly merge: Int32Array | null;
  /** The recurrent heads' shapes (null without recurrent groups). */
  readonly recurrent: RecurrentDims | null;
  /** The model's own sliding window of this layer (0: none), independent of the memory's windows. */
  readonly ownWindow: number;
  /** The exact window of this layer's recurrent+window groups (null without them). */
  readonly headWindow: WindowOpts | null;
  /**
   * Runs [first group, count] of the KV groups whose q/k/v something reads (every kind but pure recurrent); null when
   * every group's are read. Step mode computes only these rows.
   */
  readonly qkvRuns: readonly (readonly [number, number])[] | null;
}

/** The memory's windows: sinks + the most recent `window` keys per windowed group. */
export interface WindowOpts {
  sinks: number;
  window: number;
}

/** Which attention groups keep a window: every one (StreamingLLM), or a plan's groups per layer (streaming heads). */
export type WindowGroups = 'all' | ReadonlyMap<number, readonly number[]>;

export type LayoutName = 'full' | 'hybrid' | 'hybrid-window' | 'streaming' | 'streaming-heads';

/** The exact window of a spec's recurrent+window groups (null for pure recurrent heads). */
export function specWindow(spec: RecurformerSpec | null): WindowOpts | null {
  return spec?.kind === 'recurrent+window' ? { window: spec.window!, sinks: spec.sinks! } : null;
}

const BYTES_F32 = 4;

export class Layout {
  readonly layers: readonly LayerLayout[];
  /** The window of the recurrent+window groups (the model's; null without them). */
  readonly headWindow: WindowOpts | null;

  private constructor(readonly cfg: ModelConfig, readonly spec: RecurformerSpec | null, readonly windows: WindowOpts | null,
    kinds: GroupKind[][]) {
    this.layers = kinds.map((k, l) => makeLayer(cfg, spec, l, k));
    this.headWindow = this.layers.find((L) => L.headWindow)?.headWindow ?? null;
  }

  /** The model's own layout: full attention, with a converted model's recurrent groups. */
  static of(cfg: ModelConfig, spec: RecurformerSpec | null = null): Layout {
    const kinds = Array.from({ length: cfg.nLayers }, () => new Array<GroupKind>(cfg.nKvHeads).fill('attention'));
    const kind = spec?.kind ?? 'recurrent';
    if (kind === 'recurrent+window' && !(Number.isInteger(spec!.window) && spec!.window! >= 1 && Number.isInteger(spec!.sinks) && spec!.sinks! >= 0)) {
      throw new ArgumentError('Layout', 'spec', `recurrent+window needs window >= 1 and sinks >= 0, got window ${spec!.window} and sinks ${spec!.sinks}`);
    }
    for (const { layer, groups } of spec?.layers ?? []) {
      if (layer < 0 || layer >= cfg.nLayers) throw new ArgumentError('Layout', 'spec', `names layer ${layer}, not a layer of this model`);
      for (const g of groups) {
        if (!(g >= 0 && g < cfg.nKvHeads)) throw new ArgumentError('Layout', 'spec', `names KV group ${g} of layer ${layer}, not a group of this model`);
        kinds[layer]![g] = kind;
      }
    }
    return new Layout(cfg, spec && spec.layers.some((e) => e.groups.length > 0) ? spec : null, null, kinds);
  }

  /**
   * This layout with attention groups turned into windows of sinks + window keys: every attention group ('all',
   * StreamingLLM; recurrent groups stay recurrent), or the listed groups per layer (streaming heads), which must be
   * attention groups.
   */
  withWindows(groups: WindowGroups, w: WindowOpts): Layout {
    if (!(Number.isInteger(w.window) && w.window >= 1) || !(Number.isInteger(w.sinks) && w.sinks >= 0)) {
      throw new ArgumentError('Layout.withWindows', 'window/sinks', `window ${w.window} must be >= 1 and sinks ${w.sinks} >= 0`);
    }
    const kinds = this.layers.map((L) => [...L.kinds]);
    if (groups === 'all') {
      for (const k of kinds) k.forEach((kind, g) => (k[g] = kind === 'attention' ? 'window' : kind));
    } else {
      for (const [l, gs] of groups) {
        for (const g of gs) {
          const kind = kinds[l]?.[g];
          if (kind === undefined) throw new ArgumentError('Layout.withWindows', 'groups', `layer ${l} group ${g} is not in this model`);
          if (kind !== 'attention') {
            throw new ArgumentError('Layout.withWindows', 'groups', `layer ${l} group ${g} is ${kind}, not attention`,
              'streaming heads window attention groups: pass the plan of the original model, and the original model');
          }
          kinds[l]![g] = 'window';
        }
      }
    }
    return new Layout(this.cfg, this.spec, w, kinds);
  }

  /**
   * What the memory of this layout is called: full, hybrid (recurrent groups), hybrid-window (recurrent+window
   * groups), streaming or streaming-heads.
   */
  get name(): LayoutName {
    const win = this.count('window'), att = this.count('attention');
    if (win === 0) return this.count('recurrent+window') > 0 ? 'hybrid-window' : this.replaced() > 0 ? 'hybrid' : 'full';
    return att === 0 ? 'streaming' : 'streaming-heads';
  }

  /** KV groups of `kind` summed over layers. */
  count(kind: GroupKind): number {
    return this.layers.reduce((n, L) => n + L.groups[kind].length, 0);
  }

  /** KV groups with recurrent heads (recurrent and recurrent+window) summed over layers. */
  replaced(): number {
    return this.count('recurrent') + this.count('recurrent+window');
  }

  /** Bytes one token adds for good: float32 keys and values of every attention group. */
  kvBytesPerToken(batch = 1): number {
    return this.count('attention') * this.cfg.headDim * 2 * BYTES_F32 * batch;
  }

  /** Bytes per retained token of the window groups. */
  windowBytesPerToken(batch = 1): number {
    return this.count('window') * this.cfg.headDim * 2 * BYTES_F32 * batch;
  }

  /** Bytes per retained token of the recurrent+window groups' exact windows. */
  headWindowBytesPerToken(batch = 1): number {
    return this.count('recurrent+window') * this.cfg.headDim * 2 * BYTES_F32 * batch;
  }

  /**
   * Tokens a window group retains after `tokens` tokens: sinks + window - 1 once full (the next query adds itself).
   * `w` defaults to the memory's windows; pass headWindow for the recurrent+window groups.
   */
  retained(tokens: number, w: WindowOpts | null = this.windows): number {
    return w ? Math.min(tokens, w.sinks + w.window - 1) : 0;
  }

  /** Bytes of the recurrent states, constant in the sequence length. */
  stateBytes(batch = 1): number {
    return this.layers.reduce((n, L) => n + (L.recurrent ? stateSize(L.recurrent) : 0), 0) * BYTES_F32 * batch;
  }

  /** Bytes the memory holds after `tokens` tokens (no state before the first token). */
  bytesAt(tokens: number, batch = 1): number {
    if (tokens <= 0) return 0;
    return tokens * this.kvBytesPerToken(batch) + this.retained(tokens) * this.windowBytesPerToken(batch) +
      this.retained(tokens, this.headWindow) * this.headWindowBytesPerToken(batch) + this.stateBytes(batch);
  }

  /** Bytes full attention over every KV group would hold after `tokens` tokens (the baseline). */
  fullAttentionBytes(tokens: number, batch = 1): number {
    return tokens * this.cfg.nLayers * this.cfg.nKvHeads * this.cfg.headDim * 2 * BYTES_F32 * batch;
  }

  /** Parameters of the recurrent heads (what convert adds and training trains). */
  recurrentParams(): number {
    const D = this.cfg.dModel;
    let n = 0;
    for (const L of this.layers) {
      const d = L.recurrent;
      if (!d) continue;
      n += (d.nHeads * d.P + d.nGroups * d.N + d.nHeads * d.N + d.nHeads) * D; // wx, wb, wc, wdt
      n += channels(d) * (d.convK + 1) + 3 * d.nHeads; // conv weight and bias; bdt, a_log, d
      if (d.gate) n += d.nHeads * d.P * D;
      if (d.norm) n += d.P;
      if (L.groups['recurrent+window'].length) n += d.nHeads; // mix
    }
    return n;
  }
}

function makeLayer(cfg: ModelConfig, spec: RecurformerSpec | null, l: number, kinds: GroupKind[]): LayerLayout {
  const groups = {} as Record<GroupKind, Int32Array>, heads = {} as Record<GroupKind, Int32Array>;
  for (const k of KINDS) {
    const gs = kinds.flatMap((kind, g) => (kind === k ? [g] : []));
    groups[k] = Int32Array.from(gs);
    heads[k] = Int32Array.from(headsOfGroups(cfg, gs));
  }
  const single = KINDS.some((k) => groups[k].length === kinds.length);
  let merge: Int32Array | null = null;
  if (!single) {
    merge = new Int32Array(cfg.nHeads);
    KINDS.flatMap((k) => [...heads[k]]).forEach((h, i) => (merge![h] = i));
  }
  // one model has one replaced kind, so a layer's recurrent heads are those of its recurrent or its
  // recurrent+window groups; concatenated in KINDS order either way
  const replaced = [...groups.recurrent, ...groups['recurrent+window']];
  const rec = replaced.length > 0 ? layerDims(cfg, spec!, replaced) : null;
  const headWindow = groups['recurrent+window'].length > 0 ? specWindow(spec) : null;
  let qkvRuns: [number, number][] | null = null;
  if (groups.recurrent.length > 0) {
    qkvRuns = [];
    kinds.forEach((k, g) => {
      if (k === 'recurrent') return;
      const last = qkvRuns!.at(-1);
      if (last && last[0] + last[1] === g) last[1]++;
      else qkvRuns!.push([g, 1]);
    });
  }
  return Object.freeze({
    layer: l, kinds: Object.freeze([...kinds]), groups, heads, merge, recurrent: rec, ownWindow: layerWindow(cfg, l), headWindow, qkvRuns,
  });
}
