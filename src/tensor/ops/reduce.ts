/** Reductions, softmax, log-softmax and cumsum. Reductions take one axis (or all elements when axis is omitted). */
import { record } from '../autograd.js';
import { K } from '../backend.js';
import { ReduceOp } from '../kernels.js';
import { Tensor, empty, normAxis, shapeSize } from '../tensor.js';
import { contiguousData } from './view.js';

interface ReduceOpts {
  keepDim?: boolean;
}

function geometry(x: Tensor, axis: number | undefined): { outer: number; n: number; inner: number; outShape: number[]; keptShape: number[] } {
  if (axis === undefined) return { outer: 1, n: x.size, inner: 1, outShape: [], keptShape: x.shape.map(() => 1) };
  const ax = normAxis(axis, x.rank, 'reduce');
  const keptShape = [...x.shape];
  keptShape[ax] = 1;
  const outShape = x.shape.filter((_, i) => i !== ax);
  return {
    outer: shapeSize(x.shape.slice(0, ax)), n: x.shape[ax]!, inner: shapeSize(x.shape.slice(ax + 1)), outShape, keptShape,
  };
}

/** Broadcasts a reduced gradient (outer, inner) back over n: out[o, j, i] = g[o, i] * (w ? w[o, j, i] : 1). */
function expandGrad(g: Float32Array, outer: number, n: number, inner: number, shape: readonly number[], weights?: Float32Array): Tensor {
  const gx = empty(shape);
  const d = gx.data;
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < n; j++) {
      const base = (o * n + j) * inner;
      for (let i = 0; i < inner; i++) d[base + i] = g[o * inner + i]! * (weights ? weights[base + i]! : 1);
    }
  }
  return gx;
}

function reduceWith(op: ReduceOp, name: string, x: Tensor, axis?: number, opts: ReduceOpts = {}): Tensor {
  const { outer, n, inner, outShape, keptShape } = geometry(x, axis);
  const out = empty(opts.keepDim ? keptShape : outShape);
  const xd = contiguousData(x);
  K().reduce(op, xd, outer, n, inner, out.data);
  record(name, [x], [out], ([g]) => {
    const gd = g!.data;
    switch (op) {
      case ReduceOp.Sum: return [expandGrad(gd, outer, n, inner, x.shape)];
      case ReduceOp.Mean: {
        const gx = expandGrad(gd, outer, n, inner, x.shape);
        K().affine(gx.data, 1 / n, 0, gx.data);
        return [gx];
      }
      case ReduceOp.LogSumExp: {
        // d lse / dx_j = softmax_j = exp(x_j - lse)
        const w = new Float32Array(xd.length);
        const od = out.data;
        for (let o = 0; o < outer; o++) {
          for (let j = 0; j < n; j++) {
            for (let i = 0; i < inner; i++) {
              const k = (o * n + j) * inner + i;
              w[k] = Math.exp(xd[k]! - od[o * inner + i]!);
            }
          }
        }
        return [expandGrad(gd, outer, n, inner, x.shape, w)];
      }
      default: {
        // Max / Min: the gradient goes to every element equal to the extreme value.
        const w = new Float32Array(xd.length);
        const od = out.data;
        for (let o = 0; o < outer; o++) {
          for (let j = 0; j < n; j++) {
            for (let i = 0; i < inner; i++) {
              const k = (o * n + j) * inner + i;
              w[k] = xd[k] === od[o * inner + i] ? 1 : 0;
            }
          }
        }
        return [expandGrad(gd, outer, n, inner, x.shape, w)];
      }
    }
  });
  return out;
}

export const sum = (x: Tensor, axis?: number, opts?: ReduceOpts): Tensor => reduceWith(ReduceOp.Sum, 'sum', x, axis, opts);
export const mean = (x: Tensor, axis?: number, opts?: ReduceOpts): Tensor => reduceWith(ReduceOp.Mean, 'mean', x, axis, opts);
export const max = (x: Tensor, axis?: number, opts?: ReduceOpts): Tensor => reduceWith(ReduceOp.Max, 'max', x, axis, opts);
export const min = (x: Tensor, axis?: number, opts?: ReduceOpts): Tensor => reduceWith(ReduceOp.Min, 'min', x, axis, opts);
export const logsumexp = (x: Tensor, axis?: number, opts?: ReduceOpts): Tensor =>
  reduceWith(ReduceOp.LogSumExp, 'logsumexp', x, axis, opts);

function lastAxisRows(x: Tensor): { rows: number; n: number } {
  const n = x.rank === 0 ? 1 : x.shape[x.rank - 1]!;
  return { rows: n === 0 ? 0 : x.size / n, n };
}

/** A row-wise op over the last axis whose backward reads only its output: softmax and log-softmax. */
function rowwise(name: string, x: Tensor,
  fwd: (x: Float32Array, rows: number, n: number, y: Float32Array) => void,
  bwd: (y: Float32Array, gy: Float32Array, rows: number, n: number, gx: Float32Array) => void): Tensor {
  const { rows, n } = lastAxisRows(x);
  const out = empty(x.shape);
  fwd(contiguousData(x), rows, n, out.data);
  record(name, [x], [out], ([g]) => {
    const gx = empty(x.shape);
    bwd(out.data, g!.data, rows, n, gx.data);
    return [gx];
  });
  return out;
}

/** Softmax over the last axis. */
export function softmax(x: Tensor): Tensor {
  const k = K();
  return rowwise('softmax', x, k.softmax, k.softmaxGrad);
}

/** Log-softmax over the last axis. */
export function logSoftmax(x: Tensor): Tensor {
  const k = K();
  return rowwise('logSoftmax', x, k.logSoftmax, k.logSoftmaxGrad);
}

/** Inclusive cumulative sum along an axis. */
export function cumsum(x: Tensor, axis: number, reverse = false): Tensor {
  const { outer, n, inner } = geometry(x, axis);
  const out = empty(x.shape);
  K().cumsum(contiguousData(x), outer, n, inner, reverse ? 1 : 0, out.data);
  record('cumsum', [x], [out], ([g]) => {
    const gx = empty(x.shape);
    K().cumsum(g!.data, outer, n, inner, reverse ? 0 : 1, gx.data);
    return [gx];
  });
  return out;
}
