/**
 * Waiver evidence (DESIGN.md): is the attention parked on position 0 a "waiver" that carries (almost) nothing?
 *
 * Per head, from one calibration sample (then averaged over samples):
 *   valueNorm    ||v_0|| / median_j ||v_j||   (the head's KV group value vectors)
 *   keyNorm      ||k_0|| / median_j ||k_j||   (keys after RoPE)
 *   contribution sum_{i>0} A[i,0] ||W_O,h v_0|| / sum_{i>0} ||W_O,h o_i||: the share of the head's output (through its
 *                slice W_O,h of o_proj / c_proj) that comes from the sink. A ratio of sums, so rows with a tiny
 *                output do not blow it up.
 * Per layer: residual-stream norms (mean token, position 0, median token) and massive activations: entries of the
 * residual whose |value| exceeds MASSIVE_FACTOR x the median |value| of that layer's residual.
 */
import type { DecoderLM } from '../model/transformer.js';
import { asTensor } from '../model/weights.js';
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';

export const MASSIVE_FACTOR = 100;

export interface HeadEvidence {
  layer: number;
  head: number;
  valueNorm: number;
  keyNorm: number;
  contribution: number;
}

export interface LayerEvidence {
  layer: number;
  residMeanNorm: number;
  residNormPos0: number;
  residMedianNorm: number;
  /** Largest |value| / median |value| of the layer's residual. */
  maxActRatio: number;
  /** Entries above MASSIVE_FACTOR x median, per sample (mean), how many of them sit at position 0, and channels. */
  massiveCount: number;
  massiveAtPos0: number;
  massiveChannels: number[];
}

function median(xs: Float64Array | Float32Array): number {
  const s = Float64Array.from(xs).sort();
  const n = s.length;
  return n === 0 ? 0 : n % 2 ? s[(n - 1) >> 1]! : (s[n / 2 - 1]! + s[n / 2]!) / 2;
}

/** Norms of the Dh-vectors of (1, T, H, Dh) data for head h: one per position. */
function rowNorms(d: Float32Array, Tn: number, H: number, Dh: number, h: number): Float64Array {
  const out = new Float64Array(Tn);
  for (let t = 0; t < Tn; t++) {
    let s = 0;
    const o = (t * H + h) * Dh;
    for (let c = 0; c < Dh; c++) s += d[o + c]! ** 2;
    out[t] = Math.sqrt(s);
  }
  return out;
}


/** Accumulates the evidence of every head and layer over samples (batch 1 per call). */
export class WaiverEvidenceAcc {
  private readonly heads: HeadEvidence[][] = [];
  private readonly layers: { sums: number[]; maxRatio: number; channels: Set<number> }[] = [];
  private samples = 0;

  constructor(readonly model: DecoderLM) {
    const { nLayers, nHeads } = model.cfg;
    for (let l = 0; l < nLayers; l++) {
      this.heads.push(Array.from({ length: nHeads }, (_, h) => ({ layer: l, head: h, valueNorm: 0, keyNorm: 0, contribution: 0 })));
      this.layers.push({ sums: [0, 0, 0, 0, 0], maxRatio: 0, channels: new Set() });
    }
  }

  /** Taps of one layer for one sample (B = 1) and the per-head sums over queries i > 0 of A[i, 0]. */
  addLayer(l: number, taps: Map<string, Tensor>, a0Sum: Float64Array): void {
    const { nHeads: Hq, nKvHeads: Hkv, headDim: Dh, dModel: D } = this.model.cfg;
    const k = T.contiguous(taps.get(`blk.${l}.k`)!), v = T.contiguous(taps.get(`blk.${l}.v`)!);
    const o = T.contiguous(taps.get(`blk.${l}.head_out`)!), resid = T.contiguous(taps.get(`blk.${l}.resid`)!);
    const Tn = k.shape[1]!;
    const nRep = Hq / Hkv;
    const wo = asTensor(this.model.family.outProjWeight(l)); // (D, Hq * Dh)
    for (let h = 0; h < Hq; h++) {
      const g = Math.floor(h / nRep);
      const vn = rowNorms(v.data, Tn, Hkv, Dh, g), kn = rowNorms(k.data, Tn, Hkv, Dh, g);
      const e = this.heads[l]![h]!;
      e.valueNorm += vn[0]! / Math.max(median(vn), 1e-30);
      e.keyNorm += kn[0]! / Math.max(median(kn), 1e-30);
      T.scope(() => {
        const woh = T.contiguous(T.slice(wo, 1, h * Dh, (h + 1) * Dh)); // (D, Dh)
        const oh = T.contiguous(T.reshape(T.slice(o, 2, h, h + 1), [Tn, Dh]));
        const vh = T.contiguous(T.reshape(T.slice(T.slice(v, 2, g, g + 1), 1, 0, 1), [1, Dh]));
        const yo = T.matmul(oh, woh, { transB: true }).data; // (T, D): the head's output through W_O,h
        const y0 = T.matmul(vh, woh, { transB: true }).data; // (1, D): W_O,h v_0
        let outSum = 0;
        for (let i = 1; i < Tn; i++) {
          let s = 0;
          for (let c = 0; c < D; c++) s += yo[i * D + c]! ** 2;
          outSum += Math.sqrt(s);
        }
        let c0 = 0;
        for (let c = 0; c < D; c++) c0 += y0[c]! ** 2;
        e.contribution += outSum > 0 ? (a0Sum[h]! * Math.sqrt(c0)) / outSum : 0;
      });
    }
    const rd = resid.data;
    const tokNorms = new Float64Array(Tn);
    for (let t = 0; t < Tn; t++) {
      let s = 0;
      for (let c = 0; c < D; c++) s += rd[t * D + c]! ** 2;
      tokNorms[t] = Math.sqrt(s);
    }
    const absMed = median(rd.map(Math.abs));
    const L = this.layers[l]!;
    let count = 0, at0 = 0, maxAbs = 0;
    for (let idx = 0; idx < rd.length; idx++) {
      const a = Math.abs(rd[idx]!);
      maxAbs = Math.max(maxAbs, a);
      if (a > MASSIVE_FACTOR * absMed) {
        count++;
        if (idx < D) at0++;
        L.channels.add(idx % D);
      }
    }
    L.sums[0]! += tokNorms.reduce((a, b) => a + b, 0) / Tn;
    L.sums[1]! += tokNorms[0]!;
    L.sums[2]! += median(tokNorms);
    L.sums[3]! += count;
    L.sums[4]! += at0;
    L.maxRatio = Math.max(L.maxRatio, absMed > 0 ? maxAbs / absMed : 0);
    if (l === this.model.cfg.nLayers - 1) this.samples++;
  }

  summary(): { heads: HeadEvidence[]; layers: LayerEvidence[] } {
    const n = Math.max(1, this.samples);
    const heads = this.heads.flat().map((e) => ({
      layer: e.layer, head: e.head, valueNorm: e.valueNorm / n, keyNorm: e.keyNorm / n, contribution: e.contribution / n,
    }));
    const layers = this.layers.map((L, l) => ({
      layer: l, residMeanNorm: L.sums[0]! / n, residNormPos0: L.sums[1]! / n, residMedianNorm: L.sums[2]! / n,
      maxActRatio: L.maxRatio, massiveCount: L.sums[3]! / n, massiveAtPos0: L.sums[4]! / n,
      massiveChannels: [...L.channels].sort((a, b) => a - b),
    }));
    return { heads, layers };
  }
}
