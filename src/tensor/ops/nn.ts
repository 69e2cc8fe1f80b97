/** Neural-network ops with fused kernels: embedding, norms, RoPE, cross-entropy, depthwise causal conv, linear. */
import { needsGrad, record } from '../autograd.js';
import { scratch } from '../memory.js';
import { K } from '../backend.js';
import { ArgumentError, ShapeError } from '../errors.js';
import { Tensor, empty, shapeSize, shapeStr, zeros } from '../tensor.js';
import { add } from './elementwise.js';
import { matmul } from './matmul.js';
import { contiguousData } from './view.js';

const NONE = new Float32Array(0);

function lastDim(x: Tensor, op: string, arg: string): number {
  if (x.rank < 1) throw new ShapeError(op, arg, 'rank >= 1', x.shape);
  return x.shape[x.rank - 1]!;
}

function checkVector(w: Tensor | null | undefined, D: number, op: string, arg: string): void {
  if (w && (w.rank !== 1 || w.shape[0] !== D)) throw new ShapeError(op, arg, `[${D}]`, w.shape);
}

/** Throws an ArgumentError naming the first id outside [0, V). */
export function checkTokenIds(ids: Int32Array, V: number, op = 'embedding'): void {
  for (let i = 0; i < ids.length; i++) {
    const t = ids[i]!;
    if (t < 0 || t >= V) {
      throw new ArgumentError(op, `ids[${i}]`, `= ${t} is outside the vocabulary [0, ${V})`,
        'the token id does not belong to this model\'s tokenizer');
    }
  }
}

/** Rows of a (V, D) table picked by integer ids; output shape idsShape + [D]. */
export function embedding(w: Tensor, ids: Int32Array | readonly number[], idsShape?: readonly number[]): Tensor {
  if (w.rank !== 2) throw new ShapeError('embedding', 'weight', '[vocab, dim]', w.shape);
  const [V, D] = w.shape as [number, number];
  const ix = ids instanceof Int32Array ? ids : Int32Array.from(ids);
  checkTokenIds(ix, V);
  const shape = idsShape ?? [ix.length];
  if (shapeSize(shape) !== ix.length) throw new ShapeError('embedding', 'idsShape', `${ix.length} elements`, shape);
  const out = empty([...shape, D]);
  K().embedding(contiguousData(w), ix, D, out.data);
  record('embedding', [w], [out], ([g]) => {
    const gw = zeros(w.shape);
    K().embeddingGrad(g!.data, ix, D, gw.data);
    return [gw];
  });
  return out;
}

/** RMSNorm over the last axis: x / sqrt(mean(x^2) + eps) * w. */
export function rmsnorm(x: Tensor, w: Tensor | null, eps: number): Tensor {
  const D = lastDim(x, 'rmsnorm', 'x');
  checkVector(w, D, 'rmsnorm', 'weight');
  const rows = D === 0 ? 0 : x.size / D;
  const out = empty(x.shape);
  const inputs = w ? [x, w] : [x];
  const rstd = needsGrad(inputs) ? new Float32Array(rows) : scratch(rows);
  const xd = contiguousData(x);
  const wd = w ? contiguousData(w) : NONE;
  K().rmsnorm(xd, wd, rows, D, eps, out.data, rstd);
  record('rmsnorm', inputs, [out], ([g]) => {
    const gx = empty(x.shape);
    const gw = w ? zeros(w.shape) : null;
    K().rmsnormGrad(xd, wd, rstd, g!.data, rows, D, gx.data, gw ? gw.data : NONE);
    return w ? [gx, gw] : [gx];
  });
  return out;
}

/** LayerNorm over the last axis with optional affine weight and bias. */
export function layernorm(x: Tensor, w: Tensor | null, b: Tensor | null, eps: number): Tensor {
  const D = lastDim(x, 'layernorm', 'x');
  checkVector(w, D, 'layernorm', 'weight');
  checkVector(b, D, 'layernorm', 'bias');
  const rows = D === 0 ? 0 : x.size / D;
  const out = empty(x.shape);
  const mean = new Float32Array(rows), rstd = new Float32Array(rows);
  const xd = contiguousData(x);
  const wd = w ? contiguousData(w) : NONE, bd = b ? contiguousData(b) : NONE;
  K().layernorm(xd, wd, bd, rows, D, eps, out.data, mean, rstd);
  const inputs = [x, ...(w ? [w] : []), ...(b ? [b] : [])];
  record('layernorm', inputs, [out], ([g]) => {
    const gx = empty(x.shape);
    const gw = w ? zeros(w.shape) : null, gb = b ? zeros(b.shape) : null;
    K().layernormGrad(xd, wd, mean, rstd, g!.data, rows, D, gx.data, gw ? gw.data : NONE, gb ? gb.data : NONE);
    return [gx, ...(w ? [gw] : []), ...(b ? [gb] : [])];
  });
  return out;
}

export type RopeStyle = 'interleaved' | 'half';

export interface RopeOpts {
  /** Absolute position of each time step (length T). */
  positions: Int32Array;
  /** Angular frequency per rotated pair (length rotDim / 2); see ropeInvFreq. */
  invFreq: Float32Array;
  style: RopeStyle;
}

/** Standard inverse frequencies theta^(-2i/rotDim), i < rotDim/2. Scaling variants adjust these. */
export function ropeInvFreq(rotDim: number, theta: number): Float32Array {
  const f = new Float32Array(rotDim / 2);
  for (let i = 0; i < f.length; i++) f[i] = 1 / Math.pow(theta, (2 * i) / rotDim);
  return f;
}

/** Rotary embedding on x (B, T, H, Dh); the first 2 * invFreq.length features rotate. */
export function rope(x: Tensor, opts: RopeOpts): Tensor {
  if (x.rank !== 4) throw new ShapeError('rope', 'x', '[batch, time, heads, headDim]', x.shape);
  const [B, T, H, Dh] = x.shape as [number, number, number, number];
  const rotDim = opts.invFreq.length * 2;
  if (rotDim > Dh) throw new ShapeError('rope', 'invFreq', `at most ${Dh / 2} frequencies`, [opts.invFreq.length]);
  if (opts.positions.length !== T) throw new ShapeError('rope', 'positions', `[${T}]`, [opts.positions.length]);
  const inter = opts.style === 'interleaved' ? 1 : 0;
  const out = empty(x.shape);
  K().rope(contiguousData(x), B, T, H, Dh, rotDim, opts.positions, opts.invFreq, inter, 1, out.data);
  record('rope', [x], [out], ([g]) => {
    const gx = empty(x.shape);
    K().rope(g!.data, B, T, H, Dh, rotDim, opts.positions, opts.invFreq, inter, -1, gx.data);
    return [gx];
  });
  return out;
}

export interface CrossEntropyOpts {
  ignoreIndex?: number;
  /** 'mean' over non-ignored targets (default), 'sum', or 'none' (per-row losses). */
  reduction?: 'mean' | 'sum' | 'none';
}

/** Cross-entropy of logits (..., V) against integer targets, fused with its softmax gradient. */
export function crossEntropy(logits: Tensor, targets: Int32Array | readonly number[], opts: CrossEntropyOpts = {}): Tensor {
  const V = lastDim(logits, 'crossEntropy', 'logits');
  const rows = V === 0 ? 0 : logits.size / V;
  const tg = targets instanceof Int32Array ? targets : Int32Array.from(targets);
  if (tg.length !== rows) {
    throw new ShapeError('crossEntropy', 'targets', `${rows} entries (logits ${shapeStr(logits.shape)})`, [tg.length]);
  }
  const ignore = opts.ignoreIndex ?? -100;
  let count = 0;
  for (let i = 0; i < rows; i++) {
    const t = tg[i]!;
    if (t === ignore) continue;
    if (!Number.isInteger(t) || t < 0 || t >= V) {
      throw new ArgumentError('crossEntropy', `targets[${i}]`, `= ${t} is outside [0, ${V})`,
        `use ignoreIndex (${ignore}) for positions without a target`);
    }
    count++;
  }
  const reduction = opts.reduction ?? 'mean';
  const xd = contiguousData(logits);
  const losses = new Float32Array(rows);
  K().crossEntropy(xd, tg, rows, V, ignore, losses, NONE, 1);
  let out: Tensor;
  if (reduction === 'none') {
    out = empty(logits.shape.slice(0, -1));
    out.data.set(losses);
  } else {
    let s = 0;
    for (let i = 0; i < rows; i++) s += losses[i]!;
    out = empty([]);
    out.data[0] = reduction === 'mean' ? (count ? s / count : 0) : s;
  }
  record('crossEntropy', [logits], [out], ([g]) => {
    const gx = empty(logits.shape);
    if (reduction === 'none') {
      K().crossEntropy(xd, tg, rows, V, ignore, losses, gx.data, 1);
      const gd = g!.data;
      for (let r = 0; r < rows; r++) {
        const gr = gd[r]!;
        const row = gx.data.subarray(r * V, (r + 1) * V);
        K().affine(row, gr, 0, row);
      }
    } else {
      const gscale = g!.data[0]! * (reduction === 'mean' ? (count ? 1 / count : 0) : 1);
      K().crossEntropy(xd, tg, rows, V, ignore, losses, gx.data, gscale);
    }
    return [gx];
  });
  return out;
}

/** Depthwise causal conv1d: x (B, T, C), w (C, Kw), optional bias (C). */
export function conv1dCausal(x: Tensor, w: Tensor, bias: Tensor | null = null): Tensor {
  if (x.rank !== 3) throw new ShapeError('conv1dCausal', 'x', '[batch, time, channels]', x.shape);
  const [B, T, C] = x.shape as [number, number, number];
  if (w.rank !== 2 || w.shape[0] !== C) throw new ShapeError('conv1dCausal', 'weight', `[${C}, kernel]`, w.shape);
  checkVector(bias, C, 'conv1dCausal', 'bias');
  const Kw = w.shape[1]!;
  const out = empty(x.shape);
  const xd = contiguousData(x), wd = contiguousData(w), bd = bias ? contiguousData(bias) : NONE;
  K().conv1dCausal(xd, wd, bd, B, T, C, Kw, out.data);
  const inputs = bias ? [x, w, bias] : [x, w];
  record('conv1dCausal', inputs, [out], ([g]) => {
    const gx = empty(x.shape), gw = zeros(w.shape), gb = bias ? zeros(bias.shape) : null;
    K().conv1dCausalGrad(xd, wd, g!.data, B, T, C, Kw, gx.data, gw.data, gb ? gb.data : NONE);
    return bias ? [gx, gw, gb] : [gx, gw];
  });
  return out;
}

/** y = x @ w^T (+ b), w in the (out, in) layout of nn.Linear / safetensors. */
export function linear(x: Tensor, w: Tensor, b: Tensor | null = null): Tensor {
  const y = matmul(x, w, { transB: true });
  return b ? add(y, b) : y;
}
