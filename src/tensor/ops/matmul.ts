/**
 * Batched matrix multiply with transposes: matmul(a, b, {transA, transB}) computes op(a) @ op(b) over the last
 * two axes. Transposed views (e.g. transpose(w)) are recognised and passed to the GEMM as flags without a copy.
 * Batch axes must be equal, or one operand must have none (it is then broadcast over the other's batch).
 */
import { record } from '../autograd.js';
import { K } from '../backend.js';
import { ShapeError } from '../errors.js';
import { Tensor, empty, shapeSize, shapeStr, zeros } from '../tensor.js';
import { contiguousData } from './view.js';

export interface MatmulOpts {
  transA?: boolean;
  transB?: boolean;
}

/** A matrix operand resolved to a flat array plus the storage layout the GEMM kernel expects. */
interface Operand {
  data: Float32Array;
  /** Stored transposed relative to its logical (rows, cols). */
  trans: boolean;
  batch: number;
  batchShape: number[];
  /** Logical rows / cols of op(x). */
  rows: number;
  cols: number;
}

function operand(t: Tensor, trans: boolean, arg: string): Operand {
  if (t.rank < 2) throw new ShapeError('matmul', arg, 'rank >= 2', t.shape);
  const r = t.shape[t.rank - 2]!, c = t.shape[t.rank - 1]!;
  const batchShape = t.shape.slice(0, -2);
  if (t.isContiguous()) {
    // the common case (activations, weights): no layout to work out
    return { data: t.data, trans, batch: r * c === 0 ? shapeSize(batchShape) : t.size / (r * c), batchShape, rows: trans ? c : r, cols: trans ? r : c };
  }
  const batch = shapeSize(batchShape);
  const sR = t.strides[t.rank - 2]!, sC = t.strides[t.rank - 1]!;
  const batchContig = batchShape.every((_, i) => {
    const inner = shapeSize(t.shape.slice(i + 1));
    return t.shape[i] === 1 || t.strides[i] === inner;
  });
  let data: Float32Array;
  let storedTrans = false;
  if (t.isContiguous()) {
    data = t.data;
  } else if (batchContig && sR === 1 && sC === r && r > 1 && c > 1) {
    // a transposed contiguous matrix: physical layout is (c, r)
    data = t.storage.data.subarray(t.offset, t.offset + t.size);
    storedTrans = true;
  } else {
    data = contiguousData(t);
  }
  const effTrans = storedTrans !== trans;
  return { data, trans: effTrans, batch, batchShape, rows: trans ? c : r, cols: trans ? r : c };
}

export function matmul(a: Tensor, b: Tensor, opts: MatmulOpts = {}): Tensor {
  const A = operand(a, !!opts.transA, 'a');
  const B = operand(b, !!opts.transB, 'b');
  const M = A.rows, Kd = A.cols, N = B.cols;
  if (B.rows !== Kd) {
    throw new ShapeError('matmul', 'b', `inner dimension ${Kd} (a is ${shapeStr(a.shape)}${opts.transA ? '^T' : ''})`,
      b.shape, 'check transA / transB');
  }
  let batchShape: number[];
  if (A.batch === B.batch && A.batchShape.length === B.batchShape.length) batchShape = A.batchShape;
  else if (B.batchShape.length === 0) batchShape = A.batchShape;
  else if (A.batchShape.length === 0) batchShape = B.batchShape;
  else {
    throw new ShapeError('matmul', 'b', `batch axes equal to ${shapeStr(A.batchShape)} or none`, b.shape,
      'reshape or expand the operands so their batch axes match');
  }
  const batch = shapeSize(batchShape);
  const out = empty([...batchShape, M, N]);
  const k = K();
  // Fold a's batch into M when b is shared and a is stored untransposed: one large GEMM instead of many small.
  if (B.batch === 1 && batch > 1 && !A.trans) {
    k.gemm(0, B.trans ? 1 : 0, batch * M, N, Kd, 1, A.data, 0, B.data, 0, 0, out.data, 0, 1);
  } else {
    k.gemm(A.trans ? 1 : 0, B.trans ? 1 : 0, M, N, Kd, 1, A.data, A.batch === 1 ? 0 : M * Kd, B.data,
      B.batch === 1 ? 0 : Kd * N, 0, out.data, M * N, batch);
  }
  record('matmul', [a, b], [out], ([g]) => {
    const gd = g!.data;
    let ga: Tensor | null = null, gb: Tensor | null = null;
    if (a.requiresGrad) ga = gradA(A, B, gd, M, N, Kd, batch, a.shape, !!opts.transA);
    if (b.requiresGrad) gb = gradB(A, B, gd, M, N, Kd, batch, b.shape, !!opts.transB);
    return [ga, gb];
  });
  return out;
}

/** dA in a's logical layout: d op(A) = dC op(B)^T, transposed back when op(A) = A^T. */
function gradA(A: Operand, B: Operand, gd: Float32Array, M: number, N: number, Kd: number, batch: number,
  shape: readonly number[], userTrans: boolean): Tensor {
  const k = K();
  // We want dA with a's shape (logical, untransposed unless the user asked transA).
  // Compute d op(A) (M, K) = dC (M,N) @ op(B)^T (N,K), then transpose if the user's op(a) was a^T.
  const dop = A.batch === 1 && batch > 1 ? zeros([M, Kd]) : empty([batch, M, Kd]);
  const bT = B.trans ? 0 : 1; // op(B)^T from B's storage
  if (A.batch === 1 && batch > 1) {
    // a was broadcast over b's batch: its gradient sums the per-batch products
    for (let bi = 0; bi < batch; bi++) {
      k.gemm(0, bT, M, Kd, N, 1, gd.subarray(bi * M * N), 0, B.data.subarray(bi * Kd * N), 0, 1, dop.data, 0, 1);
    }
  } else if (B.batch === 1) {
    k.gemm(0, bT, batch * M, Kd, N, 1, gd, 0, B.data, 0, 0, dop.data, 0, 1);
  } else {
    k.gemm(0, bT, M, Kd, N, 1, gd, M * N, B.data, Kd * N, 0, dop.data, M * Kd, batch);
  }
  return toLogical(dop, shape, M, Kd, userTrans);
}

function gradB(A: Operand, B: Operand, gd: Float32Array, M: number, N: number, Kd: number, batch: number,
  shape: readonly number[], userTrans: boolean): Tensor {
  const k = K();
  // d op(B) (K, N) = op(A)^T (K,M) @ dC (M,N)
  const aT = A.trans ? 0 : 1;
  let dop: Tensor;
  if (B.batch === 1 && batch > 1) {
    dop = empty([Kd, N]);
    if (!A.trans && A.batch === batch) {
      // fold batch into the reduction dimension: A_flat^T (K, batch*M) @ dC_flat (batch*M, N)
      k.gemm(1, 0, Kd, N, batch * M, 1, A.data, 0, gd, 0, 0, dop.data, 0, 1);
    } else {
      dop.data.fill(0);
      for (let bi = 0; bi < batch; bi++) {
        const aOff = A.batch === 1 ? 0 : bi * M * Kd;
        k.gemm(aT, 0, Kd, N, M, 1, A.data.subarray(aOff), 0, gd.subarray(bi * M * N), 0, 1, dop.data, 0, 1);
      }
    }
  } else {
    dop = empty([batch, Kd, N]);
    k.gemm(aT, 0, Kd, N, M, 1, A.data, A.batch === 1 ? 0 : M * Kd, gd, M * N, 0, dop.data, Kd * N, batch);
  }
  return toLogical(dop, shape, Kd, N, userTrans);
}

/**
 * Converts d op(X) (rows, cols per batch) into the gradient of the user's tensor x. When the user passed
 * transX, op(x) = x^T over the last two axes, so the gradient is transposed back.
 */
function toLogical(dop: Tensor, shape: readonly number[], rows: number, cols: number, userTrans: boolean): Tensor {
  if (!userTrans) return new Tensor(dop.storage, shape);
  // the user's x is (cols, rows) per batch: transpose each (rows, cols) block back
  const batch = dop.size / (rows * cols);
  const out = empty(shape);
  K().copyStrided(dop.data, 0, Int32Array.of(rows * cols, 1, cols), Int32Array.of(batch, cols, rows), out.data);
  return out;
}
