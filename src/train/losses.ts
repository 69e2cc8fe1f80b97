/**
 * Training objectives.
 *
 *   distillKL   KL(teacher || student) over next-token distributions at temperature tau, averaged over positions and
 *               multiplied by tau^2 (Hinton et al. 2015: keeps gradient magnitudes comparable across temperatures):
 *                 p = softmax(z_t / tau), q = softmax(z_s / tau), loss = tau^2 * mean_rows sum_v p (log p - log q)
 *               d loss / d z_s = tau * (q - p) / rows. The teacher's logits are constants (no gradient).
 *               With focus gamma > 0 the rows are weighted by w_r = (KL_r / mean KL)^gamma, scaled to mean 1 and
 *               held constant (no gradient through the weights, as focal losses do): the positions the student
 *               imitates worst count most. Retrieval answers are such positions: the teacher is sure of the digit
 *               that a small imitation error in the student loses, while most story tokens are already matched.
 *   mse         mean squared error, used by head alignment (stage 1).
 *   crossEntropy (from the engine) for pretraining and the optional CE term of distillation.
 */
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import { ShapeError, ArgumentError } from '../tensor/errors.js';

interface KlSaved {
  q: Float32Array;
  p: Float32Array;
  rows: number;
  /** Per-row weights (mean 1), or null for the plain mean. */
  w: Float32Array | null;
}

/** Row-wise softmax of x / tau into out (float64 sums); returns log-sum-exp of the scaled row. */
function softmaxRow(x: Float32Array, o: number, V: number, tau: number, out: Float32Array): number {
  let m = -Infinity;
  for (let v = 0; v < V; v++) m = Math.max(m, x[o + v]! / tau);
  let s = 0;
  for (let v = 0; v < V; v++) {
    const e = Math.exp(x[o + v]! / tau - m);
    out[o + v] = e;
    s += e;
  }
  for (let v = 0; v < V; v++) out[o + v] = out[o + v]! / s;
  return m + Math.log(s);
}

/** Weights (KL_r / mean KL)^gamma scaled to mean 1; all ones when every row's KL is 0. */
function focusWeights(kls: Float64Array, gamma: number): Float32Array {
  const rows = kls.length;
  const mean = kls.reduce((a, b) => a + b, 0) / rows;
  const w = new Float32Array(rows).fill(1);
  if (!(mean > 0)) return w;
  let sum = 0;
  for (let r = 0; r < rows; r++) sum += (w[r] = Math.max(0, kls[r]! / mean) ** gamma);
  for (let r = 0; r < rows; r++) w[r] = (w[r]! * rows) / sum;
  return w;
}

/**
 * KL(teacher || student) at temperature tau, mean over rows, times tau^2. Logits (..., V); a scalar out. With
 * focus > 0 the mean is weighted towards the rows with the largest KL (see the header).
 */
export function distillKL(student: Tensor, teacher: Tensor, tau = 1, focus = 0): Tensor {
  return distillKLWithMean(student, teacher, tau, focus).loss;
}

/**
 * distillKL, plus the plain (unweighted) mean times tau^2 from the same pass, for logging a focused loss next to
 * runs without focus. Without focus the two are equal.
 */
export function distillKLWithMean(student: Tensor, teacher: Tensor, tau = 1, focus = 0): { loss: Tensor; mean: number } {
  if (student.shape.length !== teacher.shape.length || student.shape.some((d, i) => d !== teacher.shape[i])) {
    throw new ShapeError('distillKL', 'teacher', `[${student.shape.join(', ')}] (the student's shape)`, teacher.shape,
      'teacher and student must share the vocabulary and the batch');
  }
  if (!(tau > 0)) throw new ArgumentError('distillKL', 'tau', `= ${tau} must be > 0`);
  if (!(focus >= 0 && Number.isFinite(focus))) throw new ArgumentError('distillKL', 'focus', `= ${focus} must be a number >= 0`);
  let mean = 0;
  const [out] = T.applyCustom<KlSaved>({
    name: 'distillKL',
    forward([s, t]) {
      const V = s!.shape[s!.rank - 1]!;
      const rows = s!.size / V;
      const sd = T.contiguousData(s!), td = T.contiguousData(t!);
      const q = new Float32Array(sd.length), p = new Float32Array(td.length);
      const kls = new Float64Array(rows);
      for (let r = 0; r < rows; r++) {
        const o = r * V;
        const lseS = softmaxRow(sd, o, V, tau, q);
        const lseT = softmaxRow(td, o, V, tau, p);
        let kl = 0;
        for (let v = 0; v < V; v++) {
          const pv = p[o + v]!;
          if (pv > 0) kl += pv * ((td[o + v]! / tau - lseT) - (sd[o + v]! / tau - lseS));
        }
        kls[r] = kl;
      }
      const w = focus > 0 ? focusWeights(kls, focus) : null;
      let total = 0, plain = 0;
      for (let r = 0; r < rows; r++) {
        total += (w ? w[r]! : 1) * kls[r]!;
        plain += kls[r]!;
      }
      mean = Math.fround((tau * tau * plain) / rows); // as .item() of the unfocused loss reads it
      const y = T.scalar((tau * tau * total) / rows);
      return { outputs: [y], saved: { q, p, rows, w } };
    },
    backward([g], saved) {
      const gs = T.empty(student.shape);
      const f = (g!.data[0]! * tau) / saved.rows;
      const { q, p, w } = saved;
      const V = q.length / saved.rows;
      for (let r = 0, i = 0; r < saved.rows; r++) {
        const fr = w ? f * w[r]! : f;
        for (const end = i + V; i < end; i++) gs.data[i] = fr * (q[i]! - p[i]!);
      }
      return [gs, null];
    },
  }, [student, teacher]);
  return { loss: out!, mean };
}

/** Mean of (a - b)^2 over all elements. */
export function mse(a: Tensor, b: Tensor): Tensor {
  const d = T.sub(a, b);
  return T.mean(T.mul(d, d));
}
