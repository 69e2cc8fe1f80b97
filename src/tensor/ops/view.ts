/** View and data-movement ops: contiguous, reshape, transpose, permute, slice, (un)squeeze, concat, gather. */
import { record } from '../autograd.js';
import { K } from '../backend.js';
import { ArgumentError, ShapeError } from '../errors.js';
import { Tensor, empty, normAxis, shapeSize, shapeStr, zeros, type Shape } from '../tensor.js';

/** t itself when contiguous, otherwise a contiguous copy of its elements. No autograd. */
function materialize(t: Tensor): Tensor {
  if (t.isContiguous()) return t;
  const out = empty(t.shape);
  K().copyStrided(t.storage.data, t.offset, Int32Array.from(t.strides), Int32Array.from(t.shape), out.data);
  return out;
}

/** The elements of t as a contiguous Float32Array (zero-copy when t is contiguous). No autograd. */
export function contiguousData(t: Tensor): Float32Array {
  return materialize(t).data;
}

/** t itself when contiguous, otherwise a contiguous copy (gradient passes straight through). */
export function contiguous(t: Tensor): Tensor {
  if (t.isContiguous()) return t;
  const out = materialize(t);
  record('contiguous', [t], [out], ([g]) => [g!]);
  return out;
}

/** Reshape; a view when t is contiguous, else a copy. One dimension may be -1. */
export function reshape(t: Tensor, shape: Shape): Tensor {
  const sh = [...shape];
  const neg = sh.indexOf(-1);
  if (neg >= 0) {
    const rest = shapeSize(sh.filter((_, i) => i !== neg));
    if (rest === 0 || t.size % rest !== 0) {
      throw new ShapeError('reshape', 'shape', `a shape with ${t.size} elements`, sh, `input is ${shapeStr(t.shape)}`);
    }
    sh[neg] = t.size / rest;
  }
  if (shapeSize(sh) !== t.size) {
    throw new ShapeError('reshape', 'shape', `${t.size} elements (input ${shapeStr(t.shape)})`, sh);
  }
  const src = contiguous(t);
  const out = new Tensor(src.storage, sh, undefined, src.offset);
  record('reshape', [src], [out], ([g]) => [new Tensor(g!.storage, src.shape, undefined, g!.offset)]);
  return out;
}

/** Swaps two axes (a strided view, no copy). */
export function transpose(t: Tensor, a = -2, b = -1): Tensor {
  const perm = [...Array(t.rank).keys()];
  const i = normAxis(a, t.rank, 'transpose'), j = normAxis(b, t.rank, 'transpose');
  perm[i] = j;
  perm[j] = i;
  return permute(t, perm);
}

/** Reorders axes (a strided view). The gradient is made contiguous. */
export function permute(t: Tensor, perm: readonly number[]): Tensor {
  if (perm.length !== t.rank || new Set(perm).size !== t.rank || perm.some((p) => p < 0 || p >= t.rank)) {
    throw new ArgumentError('permute', 'perm', `[${perm.join(', ')}] is not a permutation of ${t.rank} axes`);
  }
  const out = new Tensor(t.storage, perm.map((p) => t.shape[p]!), perm.map((p) => t.strides[p]!), t.offset);
  record('permute', [t], [out], ([g]) => {
    const inv = new Array<number>(perm.length);
    perm.forEach((p, i) => (inv[p] = i));
    // axis k of t is axis inv[k] of the output: view g with t's shape and permuted strides
    const gs = new Tensor(g!.storage, t.shape, inv.map((p) => g!.strides[p]!), g!.offset);
    return [materialize(gs)];
  });
  return out;
}

/** Elements [start, end) along an axis (a view). */
export function slice(t: Tensor, axis: number, start: number, end: number): Tensor {
  const ax = normAxis(axis, t.rank, 'slice');
  const n = t.shape[ax]!;
  if (!Number.isInteger(start) || !Number.isInteger(end) || start < 0 || end > n || start > end) {
    throw new ArgumentError('slice', 'range', `[${start}, ${end}) is outside axis ${ax} of size ${n}`);
  }
  const shape = [...t.shape];
  shape[ax] = end - start;
  const out = new Tensor(t.storage, shape, t.strides, t.offset + start * t.strides[ax]!);
  record('slice', [t], [out], ([g]) => {
    const gx = zeros(t.shape);
    const gxv = new Tensor(gx.storage, shape, gx.strides, start * gx.strides[ax]!);
    // copy g into the sub-block of gx: iterate as (outer, len*inner) rows
    const inner = gx.strides[ax]!;
    const outer = shapeSize(t.shape.slice(0, ax));
    const len = (end - start) * inner;
    const gd = g!.data;
    for (let o = 0; o < outer; o++) {
      gx.data.set(gd.subarray(o * len, (o + 1) * len), gxv.offset + o * n * inner);
    }
    return [gx];
  });
  return out;
}

export function unsqueeze(t: Tensor, axis: number): Tensor {
  const ax = normAxis(axis < 0 ? axis + t.rank + 1 : axis, t.rank + 1, 'unsqueeze');
  const shape = [...t.shape];
  shape.splice(ax, 0, 1);
  return reshape(t, shape);
}

export function squeeze(t: Tensor, axis: number): Tensor {
  const ax = normAxis(axis, t.rank, 'squeeze');
  if (t.shape[ax] !== 1) throw new ShapeError('squeeze', 'input', `size 1 on axis ${ax}`, t.shape);
  const shape = [...t.shape];
  shape.splice(ax, 1);
  return reshape(t, shape);
}

/** Concatenates along an axis. */
export function concat(ts: readonly Tensor[], axis: number): Tensor {
  if (ts.length === 0) throw new ArgumentError('concat', 'tensors', 'is empty');
  const first = ts[0]!;
  const ax = normAxis(axis, first.rank, 'concat');
  let total = 0;
  ts.forEach((t, k) => {
    if (t.rank !== first.rank || t.shape.some((d, i) => i !== ax && d !== first.shape[i])) {
      throw new ShapeError('concat', `tensors[${k}]`, `${shapeStr(first.shape)} except axis ${ax}`, t.shape);
    }
    total += t.shape[ax]!;
  });
  const shape = [...first.shape];
  shape[ax] = total;
  const out = empty(shape);
  const outer = shapeSize(first.shape.slice(0, ax));
  const inner = shapeSize(first.shape.slice(ax + 1));
  let off = 0;
  const parts = ts.map((t) => contiguousData(t));
  ts.forEach((t, k) => {
    const len = t.shape[ax]! * inner;
    const src = parts[k]!;
    for (let o = 0; o < outer; o++) out.data.set(src.subarray(o * len, (o + 1) * len), o * total * inner + off);
    off += len;
  });
  record('concat', ts, [out], ([g]) => {
    let o2 = 0;
    const gd = g!.data;
    return ts.map((t) => {
      const len = t.shape[ax]! * inner;
      const gt = empty(t.shape);
      for (let o = 0; o < outer; o++) gt.data.set(gd.subarray(o * total * inner + o2, o * total * inner + o2 + len), o * len);
      o2 += len;
      return gt;
    });
  });
  return out;
}

/** Selects indices along an axis: out.shape[axis] = idx.length. */
export function gather(t: Tensor, axis: number, idx: Int32Array | readonly number[]): Tensor {
  const ax = normAxis(axis, t.rank, 'gather');
  const n = t.shape[ax]!;
  const ix = idx instanceof Int32Array ? idx : Int32Array.from(idx);
  for (let i = 0; i < ix.length; i++) {
    if (ix[i]! < 0 || ix[i]! >= n) {
      throw new ArgumentError('gather', `idx[${i}]`, `= ${ix[i]} is outside [0, ${n}) on axis ${ax}`);
    }
  }
  const outer = shapeSize(t.shape.slice(0, ax));
  const inner = shapeSize(t.shape.slice(ax + 1));
  const shape = [...t.shape];
  shape[ax] = ix.length;
  const out = empty(shape);
  K().gather(contiguousData(t), outer, n, inner, ix, out.data);
  record('gather', [t], [out], ([g]) => {
    const gx = zeros(t.shape);
    K().gatherGrad(g!.data, outer, n, inner, ix, gx.data);
    return [gx];
  });
  return out;
}
