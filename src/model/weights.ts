/**
 * Model weights by name. A weight is a float32 Tensor (trainable), a HalfWeight kept 16-bit in memory, or a
 * QuantWeight kept in its GGUF blocks (Q8_0, Q4_K, Q5_K, Q6_K): the decode kernels read half floats and quantized
 * blocks directly (half, or about a seventh, of the bytes per token), and training converts on demand.
 */
import { K } from '../tensor/backend.js';
import { vMatvec16, vMatvecMulti, vMatvecQ } from '../tensor/vec.js';
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

/** The GGUF block formats kept quantized in memory, with ggml's type ids (the kernels' `type` argument). */
export const QUANT_TYPES = { Q8_0: 8, Q4_K: 12, Q5_K: 13, Q6_K: 14 } as const;
export type QuantKind = keyof typeof QUANT_TYPES;

/**
 * A (N, K) weight held in its GGUF blocks, rows one after another. Products read the blocks directly (gemmQ: integer
 * dot products against activations rounded to 8 bits, as llama.cpp computes them); rows of an embedding table are
 * dequantized as they are gathered.
 */
export class QuantWeight {
  constructor(readonly shape: Shape, readonly kind: QuantKind, readonly data: Uint8Array, readonly name?: string) {}
  get size(): number {
    return this.shape[0]! * this.shape[1]!;
  }
  get type(): number {
    return QUANT_TYPES[this.kind];
  }
  /** Rows [r0, r0 + n) dequantized (exactly) into dst. */
  rows(r0: number, n: number, dst: Float32Array): void {
    K().dequantQ(this.type, this.data, this.shape[1]!, r0, n, dst);
  }
  /** A float32 copy (for training, analysis, or ops without a quantized kernel). */
  toTensor(): Tensor {
    const out = new Float32Array(this.size);
    this.rows(0, this.shape[0]!, out);
    return tensor(out, this.shape);
  }
}

/** A weight that is not a float32 Tensor: frozen, read by its own kernels, widened by toTensor() where needed. */
export type PackedWeight = HalfWeight | QuantWeight;

export function isPacked(w: Weight): w is PackedWeight {
  return w instanceof HalfWeight || w instanceof QuantWeight;
}

/** Up to this many activation rows, 16-bit weights are read directly; beyond, widened once for the f32 GEMM. */
const DIRECT_ROWS = 8;

export type Weight = Tensor | HalfWeight | QuantWeight;

/** y = x @ w^T (+ b) with w (out, in): matmul for float32 weights, the F16/BF16 GEMM for half weights, gemmQ for quantized. */
export function linearW(x: Tensor, w: Weight, b: Tensor | null = null): Tensor {
  let y: Tensor;
  if (!isPacked(w)) {
    y = matmul(x, w, { transB: true });
  } else if (isGradEnabled() && x.requiresGrad) {
    y = packedLinearInGraph(x, w);
  } else {
    const [N, Kd] = w.shape as [number, number];
    if (x.shape[x.rank - 1] !== Kd) throw new ShapeError('linear', 'x', `[..., ${Kd}] (weight ${shapeStr(w.shape)})`, x.shape);
    const M = x.size / Kd;
    if (w instanceof HalfWeight && w.kind === 'bf16' && M > DIRECT_ROWS) {
      y = matmul(x, w.toTensor(), { transB: true });
    } else {
      y = empty([...x.shape.slice(0, -1), N]);
      if (w instanceof QuantWeight) vMatvecQ(w.type, w.data, N, Kd, contiguousData(x), y.data, M);
      else halfProduct(M, contiguousData(x), w, y.data);
    }
  }
  return b ? add(y, b) : y;
}

/**
 * x @ w^T for a frozen 16-bit or quantized weight inside a graph (a BF16 student whose recurrent heads train): the
 * forward runs as the no-grad path does, and the backward widens w only for its one product, dx = dy @ w, then lets
 * the copy go. The graph so holds no float32 copy of any frozen weight: a 1B student keeps 2 bytes a weight, not 4
 * (or 6).
 */
function packedLinearInGraph(x: Tensor, w: PackedWeight): Tensor {
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
  // quantized weights: one gemmQ each (their kernels do not fuse)
  const fusable = ws.length >= 2 && ws.length <= 3 && M >= 1 && M <= DIRECT_ROWS && !ws.some((w) => w instanceof QuantWeight) &&
    ws.every((w) => w.shape.length === 2 && w.shape[1] === Kd && (w instanceof HalfWeight ? w.kind === half : half === null)) &&
    !(isGradEnabled() && (x.requiresGrad || ws.some((w) => w instanceof Tensor && w.requiresGrad)));
  if (!fusable) return ws.map((w, i) => linearW(x, w, bs[i] ?? null));
  const lead = x.shape.slice(0, -1);
  const ys = ws.map((w) => empty([...lead, w.shape[0]!]));
  multiProduct(M, contiguousData(x), ws as readonly (Tensor | HalfWeight)[], ys.map((y) => y.data));
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
export function multiProduct(M: number, x: Float32Array, ws: readonly (Tensor | HalfWeight)[], ys: readonly Float32Array[]): void {
  const half = ws[0] instanceof HalfWeight ? ws[0].kind : null;
  vMatvecMulti(M, ws[0]!.shape[1]!, x, half === null ? 0 : half === 'f16' ? 1 : 2,
    ws.map((w, i) => ({ w: w instanceof HalfWeight ? w.data : contiguousData(w), N: w.shape[0]!, y: ys[i]! })));
}

/** Rows of an embedding table picked by ids, converting half rows on the fly (inference only, no gradient). */
export function embeddingW(w: Weight, ids: Int32Array, shape: readonly number[]): Tensor {
  if (w instanceof Tensor) return embedding(w, ids, shape);
  const [V, D] = w.shape as [number, number];
  checkTokenIds(ids, V);
  const out = empty([...shape, D]);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    const row = out.data.subarray(i * D, (i + 1) * D);
    if (w instanceof QuantWeight) w.rows(id, 1, row);
    else w.widen(w.data.subarray(id * D, (id + 1) * D), row);
  }
  return out;
}

/** The float32 tensor behind a weight (converting half and quantized weights). */
export function asTensor(w: Weight): Tensor {
  return isPacked(w) ? w.toTensor() : w;
}
