/**
 * Model weights by name. A weight is a float32 Tensor (trainable) or a HalfWeight kept 16-bit in memory: the
 * decode kernels read half floats directly (half the bytes per token), and training converts on demand.
 */
import { K } from '../tensor/backend.js';
import { vMatvec16, vMatvecMulti } from '../tensor/vec.js';
import { ShapeError } from '../tensor/errors.js';
import { Tensor, add, checkTokenIds, contiguousData, embedding, empty, matmul, reshape, shapeStr, tensor, type Shape } from '../tensor/index.js';
import { isGradEnabled, noGrad, record } from '../tensor/autograd.js';

export class HalfWeight {
  /** `kind`: IEEE half ('f16') or bfloat16 ('bf16') bit patterns. */
  constructor(readonly shape: Shape, readonly data: Uint16Array, readonly name?: string, readonly kind: 'f16' | 'bf16' = 'f16') {}
  get size(): number {
    return this.data.length;
  }
  /** Widens 16-bit values (a row range, or everything) to float32. */
  widen(src: Uint16Array, dst: Float32Array): void {
    if (this.kind === 'bf16') K().bf16ToF32(src, dst);
    else K().f16ToF32(src, dst);
  }
  /** A float32 copy (for training or for ops without a half-precision kernel). */
  toTensor(): Tensor {
    const out = new Float32Array(this.data.length);
    this.widen(this.data, out);
    return tensor(out, this.shape);
  }
}

/** Up to this many activation rows, 16-bit weights are read directly; beyond, widened once for the f32 GEMM. */
const DIRECT_ROWS = 8;

export type Weight = Tensor | HalfWeight;

/** y = x @ w^T (+ b) with w (out, in): matmul for float32 weights, the F16 GEMM for half weights. */
export function linearW(x: Tensor, w: Weight, b: Tensor | null = null): Tensor {
  let y: Tensor;
  if (w instanceof HalfWeight) {
    if (isGradEnabled() && x.requiresGrad) y = halfLinearInGraph(x, w);
    else {
      const [N, Kd] = w.shape as [number, number];
      if (x.shape[x.rank - 1] !== Kd) throw new ShapeError('linear', 'x', `[..., ${Kd}] (weight ${shapeStr(w.shape)})`, x.shape);
      const M = x.size / Kd;
      const xd = contiguousData(x);
      if (w.kind === 'bf16' && M > DIRECT_ROWS) {
        y = matmul(x, w.toTensor(), { transB: true });
      } else {
        y = empty([...x.shape.slice(0, -1), N]);
        halfProduct(M, xd, w, y.data);
      }
    }
  } else {
    y = matmul(x, w, { transB: true });
  }
  return b ? add(y, b) : y;
}

/**
 * x @ w^T for a frozen 16-bit weight inside a graph (a BF16 student whose recurrent heads train): the forward runs
 * as the no-grad path does, and the backward widens w only for its one product, dx = dy @ w, then lets the copy go.
 * The graph so holds no float32 copy of any frozen weight: a 1B student keeps 2 bytes a weight, not 4 (or 6).
 */
function halfLinearInGraph(x: Tensor, w: HalfWeight): Tensor {
  const y = noGrad(() => linearW(x, w)); // (..., N)
  record('linearHalf', [x], [y], ([g]) => [reshape(matmul(g!, w.toTensor()), x.shape)]); // (..., N) @ (N, K) -> (..., K)
  return y;
}

/**
 * [x @ w_i^T (+ b_i)] for two or three weights sharing the input x (q/k/v, gate/up): for a few rows without
 * gradients one `gemmMulti` call computes them all (one thread hand-off, every weight read once); otherwise, or
 * when the weights differ in type, one `linearW` each. Same results either way.
 */
export function linearMultiW(x: Tensor, ws: readonly Weight[], bs: readonly (Tensor | null)[] = []): Tensor[] {
  const w0 = ws[0]!;
  const Kd = w0.shape[1]!;
  const half = w0 instanceof HalfWeight ? w0.kind : null;
  const M = x.shape[x.rank - 1] === Kd ? x.size / Kd : -1;
  const fusable = ws.length >= 2 && ws.length <= 3 && M >= 1 && M <= DIRECT_ROWS &&
    ws.every((w) => w.shape.length === 2 && w.shape[1] === Kd && (w instanceof HalfWeight ? w.kind === half : half === null)) &&
    !(isGradEnabled() && (x.requiresGrad || ws.some((w) => w instanceof Tensor && w.requiresGrad)));
  if (!fusable) return ws.map((w, i) => linearW(x, w, bs[i] ?? null));
  const lead = x.shape.slice(0, -1);
  const ys = ws.map((w) => empty([...lead, w.shape[0]!]));
  multiProduct(M, contiguousData(x), ws, ys.map((y) => y.data));
  return ys.map((y, i) => (bs[i] ? add(y, bs[i]) : y));
}

/** y (M, N) = x (M, K) w^T for a 16-bit weight read directly: the kernel call of linearW's few-row path. */
export function halfProduct(M: number, x: Float32Array, w: HalfWeight, y: Float32Array): void {
  const [N, Kd] = w.shape as [number, number];
  vMatvec16(w.kind, w.data, N, Kd, x, y, M);
}

/**
 * ys[i] = x (M, K) w_i^T for two or three weights of one type sharing x, in one `gemmMulti` call: the kernel call
 * of linearMultiW's fused path.
 */
export function multiProduct(M: number, x: Float32Array, ws: readonly Weight[], ys: readonly Float32Array[]): void {
  const half = ws[0] instanceof HalfWeight ? ws[0].kind : null;
  vMatvecMulti(M, ws[0]!.shape[1]!, x, half === null ? 0 : half === 'f16' ? 1 : 2,
    ws.map((w, i) => ({ w: w instanceof HalfWeight ? w.data : contiguousData(w), N: w.shape[0]!, y: ys[i]! })));
}

/** Rows of an embedding table picked by ids, converting half rows on the fly (inference only, no gradient). */
export function embeddingW(w: Weight, ids: Int32Array, shape: readonly number[]): Tensor {
  if (!(w instanceof HalfWeight)) return embedding(w, ids, shape);
  const [V, D] = w.shape as [number, number];
  checkTokenIds(ids, V);
  const out = empty([...shape, D]);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    w.widen(w.data.subarray(id * D, (id + 1) * D), out.data.subarray(i * D, (i + 1) * D));
  }
  return out;
}

/** The float32 tensor behind a weight (converting half weights). */
export function asTensor(w: Weight): Tensor {
  return w instanceof HalfWeight ? w.toTensor() : w;
}
