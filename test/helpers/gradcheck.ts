/**
 * Finite-difference gradient check: for L = sum(f(inputs) * R) with a fixed random R, compares the autograd
 * gradient of every input against central differences (x + eps, x - eps) element by element.
 */
import {
  Rng, Tensor, backward, noGrad, tensor, type Shape,
} from '../../src/tensor/index.js';
import { FD_EPS, TOL, assertClose, type Tol } from './tolerances.js';

export function randTensor(shape: Shape, rng: Rng, lo = -1, hi = 1): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  const d = new Float32Array(n);
  for (let i = 0; i < n; i++) d[i] = lo + (hi - lo) * rng.next();
  return tensor(d, shape);
}

function weightedSum(out: Tensor, r: Float32Array): number {
  const a = out.toArray();
  let s = 0;
  for (let i = 0; i < a.length; i++) s += a[i]! * r[i]!;
  return s;
}

export function gradcheck(
  label: string,
  f: (...xs: Tensor[]) => Tensor,
  inputs: Tensor[],
  opts: { seed?: number; tol?: Tol; eps?: number; check?: boolean[] } = {},
): void {
  const rng = new Rng(opts.seed ?? 7);
  const eps = opts.eps ?? FD_EPS;
  const tol = opts.tol ?? TOL.finiteDiff;
  for (const x of inputs) {
    x.requiresGrad = true;
    x.grad = null;
  }
  const out = f(...inputs);
  const r = new Float32Array(out.size);
  for (let i = 0; i < r.length; i++) r[i] = rng.next() * 2 - 1;
  backward(out, tensor(Float32Array.from(r), out.shape));
  inputs.forEach((x, k) => {
    if (opts.check && !opts.check[k]) return;
    const analytic = x.grad ? x.grad.toArray() : new Array<number>(x.size).fill(0);
    const numeric: number[] = [];
    const d = x.data;
    for (let i = 0; i < x.size; i++) {
      const orig = d[i]!;
      d[i] = orig + eps;
      const up = noGrad(() => weightedSum(f(...inputs), r));
      d[i] = orig - eps;
      const down = noGrad(() => weightedSum(f(...inputs), r));
      d[i] = orig;
      numeric.push((up - down) / (2 * eps));
    }
    assertClose(analytic, numeric, tol, `${label}: d/d input ${k}`);
  });
}
