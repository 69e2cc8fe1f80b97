/**
 * The attention core every family's block calls: RoPE, then each kind of KV group of the layer's layout attends
 * through its store (attention groups over every cached key, window groups over sinks + window), the recurrent
 * groups' query heads run recurrent heads instead, the recurrent+window groups' heads both (their exact window's
 * attention plus mix times the recurrent read-out), and the head outputs are merged back into head order.
 *
 * Shapes: B batch, T new tokens, S keys visible, Hq / Hkv heads, Dh head dim; per kind Hk query heads, Gk groups.
 */
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import { ArgumentError, ShapeError } from '../tensor/errors.js';
import { attnScaleOf, type ModelConfig } from './config.js';
import type { LayerLayout, RecurrentDims } from './layout.js';
import { recurrentChunked, recurrentStep, zeroState, type RecurrentParams } from './recurrent-head.js';
import { storeOf, type KVView, type LayerStores } from './stores.js';
import type { TapSink } from './taps.js';

/** A layer's recurrent heads: shapes, parameters and the query heads they serve. */
export interface RecurrentLayer {
  dims: RecurrentDims;
  params: RecurrentParams;
  /** Query heads the recurrent heads replace, in order. */
  replacedHeads: Int32Array;
}

export interface AttendOpts {
  positions: Int32Array;
  invFreq: Float32Array;
  taps?: TapSink;
  /** Query positions that attend only to themselves (the waiver mask test; attention groups only). */
  selfOnly?: Int32Array;
  /** Chunk length of the recurrent heads' SSD form. */
  chunk: number;
}

/**
 * Layer l's heads on q (B, T, Hq, Dh), k and v (B, T, Hkv, Dh) before RoPE, and its normalized input h (B, T, D) for
 * the recurrent heads; `stores` is the memory's (absent: the call sees only its own tokens). Returns (B, T, Hq, Dh).
 */
export function attend(cfg: ModelConfig, lay: LayerLayout, rl: RecurrentLayer | undefined, stores: LayerStores | undefined,
  h: Tensor, q: Tensor, k: Tensor, v: Tensor, o: AttendOpts): Tensor {
  const [B, Tn] = q.shape as [number, number, number, number];
  const l = lay.layer, taps = o.taps, scale = attnScaleOf(cfg);
  const parts: Tensor[] = [];
  let headWindow: Tensor | null = null; // the recurrent+window heads' windowed attention
  for (const kind of ['attention', 'window', 'recurrent+window'] as const) {
    const groups = lay.groups[kind];
    if (groups.length === 0) continue;
    const whole = groups.length === cfg.nKvHeads;
    let qk = whole ? q : T.gather(q, 2, lay.heads[kind]); // (B, T, Hk, Dh)
    let kk = whole ? k : T.gather(k, 2, groups); // (B, T, Gk, Dh)
    const vk = whole ? v : T.gather(v, 2, groups);
    if (cfg.ropeStyle !== 'none') {
      const ro = { positions: o.positions, invFreq: o.invFreq, style: cfg.ropeStyle };
      qk = T.rope(qk, ro);
      kk = T.rope(kk, ro);
    }
    const plain = kind === 'attention';
    if (plain && taps) {
      if (taps.wants(`blk.${l}.q`)) taps.put(`blk.${l}.q`, qk);
      if (taps.wants(`blk.${l}.k`)) taps.put(`blk.${l}.k`, kk);
      if (taps.wants(`blk.${l}.v`)) taps.put(`blk.${l}.v`, vk);
    }
    const store = stores ? storeOf(stores, kind) : null;
    // without a store the call sees only its own tokens, through the recurrent+window groups' own window
    const view: KVView = store ? store.append(T.contiguous(kk), T.contiguous(vk))
      : { k: kk, v: vk, qOffset: 0, ...(kind === 'recurrent+window' ? lay.headWindow! : {}) };
    const { window, sinks } = maskOf(lay, view);
    const wantProbs = plain && !!taps?.wants(`blk.${l}.attn_probs`);
    const { out, probs } = T.attention(qk, view.k, view.v, { qOffset: view.qOffset, window, sinks, scale, returnProbs: wantProbs }); // (B, T, Hk, Dh)
    if (plain && o.selfOnly?.length) applySelfOnly(o.selfOnly, out, probs, view.v, view.qOffset);
    if (wantProbs) taps!.put(`blk.${l}.attn_probs`, probs!);
    if (kind === 'recurrent+window') headWindow = out;
    else parts.push(out);
  }
  if (rl) {
    const r = recurrentHeads(rl, stores, h, B, Tn, o.chunk); // (B, T, Hr, P)
    if (taps?.wants(`blk.${l}.rec_out`)) taps.put(`blk.${l}.rec_out`, r);
    parts.push(headWindow ? mixHeads(headWindow, r, rl.params.mix!) : r);
  }
  const heads = lay.merge ? T.gather(parts.length > 1 ? T.concat(parts, 2) : parts[0]!, 2, lay.merge) : parts[0]!;
  if (taps?.wants(`blk.${l}.head_out`)) taps.put(`blk.${l}.head_out`, heads);
  return heads;
}

/**
 * The output of recurrent+window heads: their windowed attention plus each head's recurrent read-out times its mix,
 * att + (rec * mix) in that order (step mode computes the same two roundings). att, rec (B, T, H, P), mix (H).
 */
export function mixHeads(att: Tensor, rec: Tensor, mix: Tensor): Tensor {
  if (att.shape[2] !== rec.shape[2] || mix.size !== rec.shape[2]) {
    throw new ShapeError('attend', 'mix', `[${rec.shape[2]}] with as many windowed heads`, mix.shape);
  }
  return T.add(att, T.mul(rec, T.reshape(mix, [1, 1, mix.size, 1])));
}

/** The attention mask of a kind of group: the layer's own sliding window, narrowed by a window store's. */
export function maskOf(lay: LayerLayout, view: { window?: number; sinks?: number }): { window: number; sinks: number } {
  if (view.window === undefined) return { window: lay.ownWindow, sinks: 0 };
  return { window: lay.ownWindow > 0 ? Math.min(lay.ownWindow, view.window) : view.window, sinks: view.sinks ?? 0 };
}

/**
 * The recurrent heads on the normalized input h: (B, T, Hr, P). With a memory the state is read from and written back
 * to its store; a single new token uses the step form, several the chunked SSD form.
 */
function recurrentHeads(rl: RecurrentLayer, stores: LayerStores | undefined, h: Tensor, B: number, Tn: number, chunk: number): Tensor {
  const store = stores?.recurrent;
  const prev = store?.get() ?? zeroState(rl.dims, B);
  const r = Tn === 1 && store ? recurrentStep(h, rl.params, rl.dims, prev) : recurrentChunked(h, rl.params, rl.dims, chunk, prev);
  store?.set(r.state);
  return T.reshape(r.y, [B, Tn, rl.dims.nHeads, rl.dims.P]);
}

/**
 * Rewrites the rows of `selfOnly` queries as if each attended only to its own key: the softmax over one key is 1,
 * so the output is that position's value vector (of the head's KV group) and the probability row is one-hot.
 */
function applySelfOnly(selfOnly: Int32Array, out: Tensor, probs: Tensor | null, v: Tensor, qOffset: number): void {
  const [B, Tn, Hq, Dh] = out.shape as [number, number, number, number];
  const S = v.shape[1]!, Hkv = v.shape[2]!;
  const nRep = Hq / Hkv;
  const vd = T.contiguous(v).data, od = out.data;
  for (const i of selfOnly) {
    if (i < 0 || i >= Tn) throw new ArgumentError('forward', 'selfOnly', `position ${i} is outside [0, ${Tn})`);
    const j = qOffset + i; // its own key
    for (let b = 0; b < B; b++) {
      for (let hh = 0; hh < Hq; hh++) {
        const g = Math.floor(hh / nRep);
        od.set(vd.subarray(((b * S + j) * Hkv + g) * Dh, ((b * S + j) * Hkv + g + 1) * Dh), ((b * Tn + i) * Hq + hh) * Dh);
        if (probs) {
          const row = ((b * Hq + hh) * Tn + i) * S;
          probs.data.fill(0, row, row + S);
          probs.data[row + j] = 1;
        }
      }
    }
  }
}
