/** Seeded random tensors for initialization and tests. */
import type { Rng } from './rng.js';
import { empty, type Shape, type Tensor } from './tensor.js';

export function randn(shape: Shape, rng: Rng, std = 1): Tensor {
  const t = empty(shape);
  const d = t.data;
  for (let i = 0; i < d.length; i++) d[i] = rng.normal() * std;
  return t;
}

export function uniform(shape: Shape, rng: Rng, lo = -1, hi = 1): Tensor {
  const t = empty(shape);
  const d = t.data;
  for (let i = 0; i < d.length; i++) d[i] = lo + (hi - lo) * rng.next();
  return t;
}
