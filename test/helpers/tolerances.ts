/**
 * Named tolerances for engine tests, in one place (per comparison kind, float32 storage throughout).
 * A comparison passes when |actual - expected| <= atol + rtol * |expected| element-wise.
 */
export interface Tol {
  rtol: number;
  atol: number;
}

export const TOL = {
  /** Same algorithm on two backends: only summation order differs. */
  parity: { rtol: 1e-4, atol: 1e-5 },
  /** Reductions over long axes (GEMM with K up to a few thousand, attention over many keys). */
  parityLong: { rtol: 1e-3, atol: 1e-4 },
  /** Central finite differences in float32 with step FD_EPS against analytic gradients. */
  finiteDiff: { rtol: 3e-2, atol: 3e-3 },
  /** Whole-model comparisons after a few dozen optimizer steps on different backends. */
  training: { rtol: 2e-2, atol: 2e-3 },
} as const satisfies Record<string, Tol>;

/** Finite-difference step for float32 central differences. */
export const FD_EPS = 1e-2;

export interface CloseReport {
  ok: boolean;
  worst: number;
  index: number;
  actual: number;
  expected: number;
}

/** Element-wise closeness; NaN matches only NaN, infinities must match exactly. */
export function closeReport(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tol): CloseReport {
  let worst = 0, index = -1;
  let ok = actual.length === expected.length;
  const n = Math.min(actual.length, expected.length);
  for (let i = 0; i < n; i++) {
    const a = actual[i]!, e = expected[i]!;
    let excess: number;
    if (Number.isNaN(a) || Number.isNaN(e)) excess = Number.isNaN(a) && Number.isNaN(e) ? 0 : Infinity;
    else if (!Number.isFinite(a) || !Number.isFinite(e)) excess = a === e ? 0 : Infinity;
    else excess = Math.abs(a - e) - (tol.atol + tol.rtol * Math.abs(e));
    if (excess > 0) ok = false;
    if (index < 0 || excess > worst) {
      worst = excess;
      index = i;
    }
  }
  return { ok, worst, index, actual: actual[index] ?? NaN, expected: expected[index] ?? NaN };
}

export function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tol, label: string): void {
  if (actual.length !== expected.length) {
    throw new Error(`${label}: length ${actual.length} != expected ${expected.length}`);
  }
  const r = closeReport(actual, expected, tol);
  if (!r.ok) {
    throw new Error(`${label}: mismatch at index ${r.index}: actual ${r.actual}, expected ${r.expected} ` +
      `(rtol ${tol.rtol}, atol ${tol.atol})`);
  }
}
