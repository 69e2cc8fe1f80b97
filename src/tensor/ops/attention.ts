/**
 * Fused causal multi-head attention (GQA, sliding window, sink tokens) as one op with an online-softmax forward
 * and a recomputing backward: no (T x S) matrix is kept unless probabilities are requested for analysis.
 */
import { needsGrad, record } from '../autograd.js';
import { K } from '../backend.js';
import { ArgumentError, ShapeError } from '../errors.js';
import { Tensor, empty, shapeStr } from '../tensor.js';
import { scratch } from '../memory.js';
import { contiguousData } from './view.js';

const NONE = new Float32Array(0);

export interface AttentionOpts {
  /** Default true. */
  causal?: boolean;
  /** Absolute position of query 0 among the keys; default S - T (queries are the last T positions). */
  qOffset?: number;
  /** Keep only the last `window` keys (0 = no window). */
  window?: number;
  /** With a window, the first `sinks` keys stay visible (StreamingLLM's attention sinks). */
  sinks?: number;
  /** Default 1 / sqrt(Dh). */
  scale?: number;
  /** Also return the probabilities (B, Hq, T, S): memory grows with T * S, use for analysis only. */
  returnProbs?: boolean;
}

export interface AttentionResult {
  out: Tensor;
  probs: Tensor | null;
}

/**
 * q (B, T, Hq, Dh), k and v (B, S, Hkv, Dh) -> out (B, T, Hq, Dh). Query head h uses KV head floor(h / (Hq/Hkv)).
 */
export function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOpts = {}): AttentionResult {
  if (q.rank !== 4) throw new ShapeError('attention', 'q', '[batch, time, heads, headDim]', q.shape);
  const [B, T, Hq, Dh] = q.shape as [number, number, number, number];
  if (k.rank !== 4 || k.shape[0] !== B || k.shape[3] !== Dh) {
    throw new ShapeError('attention', 'k', `[${B}, keys, kvHeads, ${Dh}]`, k.shape);
  }
  const S = k.shape[1]!, Hkv = k.shape[2]!;
  if (v.rank !== 4 || v.shape.some((d, i) => d !== k.shape[i])) {
    throw new ShapeError('attention', 'v', shapeStr(k.shape), v.shape);
  }
  if (Hkv === 0 || Hq % Hkv !== 0) {
    throw new ShapeError('attention', 'k', `a number of KV heads dividing ${Hq}`, k.shape);
  }
  const causal = opts.causal ?? true;
  const qOffset = opts.qOffset ?? S - T;
  const window = opts.window ?? 0;
  const sinks = opts.sinks ?? 0;
  if (window < 0 || sinks < 0) throw new ArgumentError('attention', 'window/sinks', 'must be non-negative');
  const scale = opts.scale ?? 1 / Math.sqrt(Dh);
  const qd = contiguousData(q), kd = contiguousData(k), vd = contiguousData(v);
  const out = empty(q.shape);
  // the log-sum-exp is kept only for the backward pass: without one, a shared scratch row serves
  const lse = needsGrad([q, k, v]) ? new Float32Array(B * Hq * T) : scratch(B * Hq * T);
  const probs = opts.returnProbs ? empty([B, Hq, T, S]) : null;
  K().attention(qd, kd, vd, B, T, S, Hq, Hkv, Dh, scale, causal ? 1 : 0, qOffset, window, sinks, out.data, lse,
    probs ? probs.data : NONE);
  record('attention', [q, k, v], [out], ([g]) => {
    const gq = empty(q.shape), gk = empty(k.shape), gv = empty(v.shape);
    K().attentionGrad(qd, kd, vd, out.data, lse, g!.data, B, T, S, Hq, Hkv, Dh, scale, causal ? 1 : 0, qOffset,
      window, sinks, gq.data, gk.data, gv.data);
    return [gq, gk, gv];
  });
  return { out, probs };
}
