/**
 * Attention probabilities of a forward pass, streamed block by block from the q/k/v taps: each layer's queries are
 * cut into blocks of `block` rows and `attention(qBlock, k, v, {qOffset, returnProbs})` recomputes their
 * probabilities (B, Hq, block, S). Only one block per layer is ever alive, so long T never materializes a T x T map
 * per head (the forward itself keeps its online softmax). The model is read through taps, never forked.
 */
import type { ForwardOpts } from '../model/transformer.js';
import type { DecoderLM } from '../model/transformer.js';
import { attnScaleOf, layerWindow } from '../model/config.js';
import { TapRecorder } from '../model/taps.js';
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';

export const DEFAULT_BLOCK = 64;

export interface ProbBlock {
  layer: number;
  /** (B, Hq, qLen, S) probabilities, row (b, h, r) at ((b * Hq + h) * qLen + r) * S; query index qStart + r. */
  probs: Float32Array;
  B: number;
  Hq: number;
  qStart: number;
  qLen: number;
  S: number;
}

export interface StreamOpts {
  forward?: Pick<ForwardOpts, 'positions' | 'selfOnly'>;
  /** Further taps the caller wants per layer (`blk.{l}.resid`, `blk.{l}.head_out`, ...). */
  extraTaps?: (name: string) => boolean;
  block?: number;
}

/**
 * Runs the model on ids (B * Tn) and calls `onBlock` for every query block of every layer, then `onLayer` with the
 * layer's recorded taps (q, k, v and the extra ones). All tensors are freed when the call returns.
 */
export function streamAttention(model: DecoderLM, ids: Int32Array, B: number, Tn: number, opts: StreamOpts,
  onBlock: (blk: ProbBlock) => void, onLayer?: (layer: number, taps: Map<string, Tensor>) => void): void {
  const block = opts.block ?? DEFAULT_BLOCK;
  const extra = opts.extraTaps ?? (() => false);
  const rec = new TapRecorder((n) => /^blk\.\d+\.[qkv]$/.test(n) || extra(n));
  const scale = attnScaleOf(model.cfg); // Gemma 3: query_pre_attn_scalar^-1/2
  const selfOnly = opts.forward?.selfOnly ?? new Int32Array(0);
  T.noGrad(() => T.scope(() => {
    model.forward(ids, B, Tn, { ...opts.forward, taps: rec, lastOnly: true });
    for (let l = 0; l < model.cfg.nLayers; l++) {
      const q = rec.values.get(`blk.${l}.q`)!, k = rec.values.get(`blk.${l}.k`)!, v = rec.values.get(`blk.${l}.v`)!;
      const Hq = q.shape[2]!;
      const window = layerWindow(model.cfg, l); // Gemma 3 interleaves local (windowed) and global layers
      for (let s = 0; s < Tn; s += block) {
        const e = Math.min(Tn, s + block);
        T.scope(() => {
          const { probs } = T.attention(T.slice(q, 1, s, e), k, v, { qOffset: s, window, scale, returnProbs: true });
          const p = probs!.data;
          // The mask test's self-only queries see only their own key (as the model computed them).
          for (const i of selfOnly) {
            if (i < s || i >= e) continue;
            for (let r = 0; r < B * Hq; r++) {
              const row = (r * (e - s) + (i - s)) * Tn;
              p.fill(0, row, row + Tn);
              p[row + i] = 1;
            }
          }
          onBlock({ layer: l, probs: p, B, Hq, qStart: s, qLen: e - s, S: Tn });
        });
      }
      onLayer?.(l, new Map([...rec.values].filter(([n]) => n.startsWith(`blk.${l}.`))));
    }
  }));
}
