/**
 * Model weights by name. A weight is a float32 Tensor (trainable) or a HalfWeight kept 16-bit in memory: the
 * decode kernels read half floats directly (half the bytes per token), and training converts on demand.
 */
import { K } from '../tensor/backend.js';
import { ArgumentError, ShapeError } from '../tensor/errors.js';
import { Tensor, add, embedding, empty, matmul, shapeStr, tensor, type Shape } from '../tensor/index.js';
import { isGradEnabled } from '../tensor/autograd.js';

export class HalfWeight {
  constructor(readonly shape: Shape, readonly data: Uint16Array, readonly name?: string) {}
  get size(): number {
    return this.data.length;
  }
  /** A float32 copy (for training or for ops without a half-precision kernel). */
  toTensor(): Tensor {
    const out = new Float32Array(this.data.length);
    K().f16ToF32(this.data, out);
    return tensor(out, this.shape);
  }
}

export type Weight = Tensor | HalfWeight;

/** y = x @ w^T (+ b) with w (out, in): matmul for float32 weights, the F16 GEMM for half weights. */
export function linearW(x: Tensor, w: Weight, b: Tensor | null = null): Tensor {
  let y: Tensor;
  if (w instanceof HalfWeight) {
    if (isGradEnabled() && x.requiresGrad) y = matmul(x, w.toTensor(), { transB: true });
    else {
      const [N, Kd] = w.shape as [number, number];
      if (x.shape[x.rank - 1] !== Kd) throw new ShapeError('linear', 'x', `[..., ${Kd}] (weight ${shapeStr(w.shape)})`, x.shape);
      const M = x.size / Kd;
      y = empty([...x.shape.slice(0, -1), N]);
      const xd = x.isContiguous() ? x.data : Float32Array.from(x.toArray());
      K().gemmF16(M, N, Kd, xd, w.data, 0, y.data);
    }
  } else {
    y = matmul(x, w, { transB: true });
  }
  return b ? add(y, b) : y;
}

/** Rows of an embedding table picked by ids, converting half rows on the fly (inference only, no gradient). */
export function embeddingW(w: Weight, ids: Int32Array, shape: readonly number[]): Tensor {
  if (!(w instanceof HalfWeight)) return embedding(w, ids, shape);
  const [V, D] = w.shape as [number, number];
  const out = empty([...shape, D]);
  for (let i = 0; i < ids.length; i++) {
    const id = ids[i]!;
    if (!Number.isInteger(id) || id < 0 || id >= V) {
      throw new ArgumentError('embedding', `ids[${i}]`, `= ${id} is outside the vocabulary [0, ${V})`,
        'the token id does not belong to this model\'s tokenizer');
    }
    K().f16ToF32(w.data.subarray(id * D, (id + 1) * D), out.data.subarray(i * D, (i + 1) * D));
  }
  return out;
}

/** The float32 tensor behind a weight (converting half weights). */
export function asTensor(w: Weight): Tensor {
  return w instanceof HalfWeight ? w.toTensor() : w;
}
