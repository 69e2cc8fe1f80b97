/**
 * Every numeric tolerance of the test suite, in one place, and the comparison helper (itself tested in
 * test/tensor/ops.test.ts and test/native/kernels.test.ts).
 *
 * An element passes when |actual - expected| <= atol + rtol * |expected|; NaN must meet NaN and an infinity the same
 * infinity. Why each budget is what it is:
 *   exact          IEEE single operations (add/mul/div/max, copies): float32 gives the very bits of the rounded
 *                  float64 result.
 *   elementwise    one or two float32 roundings instead of one (affine, axpy, sqrt-based unary ops).
 *   transcendental vector exp / log1p are 1-2 ulp, plus up to two further roundings in silu, gelu, softplus and
 *                  their gradients (an ulp is 1.2e-7 relative); atol covers results that underflow.
 *   reduction      float partial sums whose order differs from the reference's (cumulative sums, weight-gradient
 *                  accumulations over many rows, LogSumExp); the sums that can cancel are kept in double natively.
 *   norm           softmax / norms: a few roundings per element plus float lane sums added in double.
 *   crossEntropy   losses are lse - x[t] of logits of order 10; gradients are probabilities minus one-hot.
 *   optimizer      AdamW in float32: the update itself is exact to a few ulp, parameters move by lr-sized steps.
 */
import { AssertionError } from 'node:assert';

export interface Tol {
  readonly rtol: number;
  readonly atol: number;
}

export const TOL = {
  exact: { rtol: 0, atol: 0 },
  /** Sums kept in float64 on both sides, in a different order (sumSquares). */
  double: { rtol: 1e-12, atol: 0 },
  elementwise: { rtol: 1e-6, atol: 1e-7 },
  transcendental: { rtol: 4e-6, atol: 1e-7 },
  /** Derivatives that cross zero (silu' near -1.28, gelu' near -0.75) are differences of O(1) terms: ~2 ulp of 1
   *  absolute, times |gy| (up to ~4 in the tests). */
  transcendentalGrad: { rtol: 4e-6, atol: 1e-6 },
  reduction: { rtol: 2e-5, atol: 2e-6 },
  norm: { rtol: 1e-5, atol: 1e-6 },
  crossEntropy: { rtol: 1e-5, atol: 2e-6 },
  optimizer: { rtol: 1e-6, atol: 1e-7 },
  /** Same model or op computed two ways (backends, cached vs uncached): only summation order differs. */
  parity: { rtol: 1e-4, atol: 1e-5 },
  /** Long reductions (GEMM with K in the thousands, attention over many keys). */
  parityLong: { rtol: 1e-3, atol: 1e-4 },
  /** Central finite differences in float32 with step FD_EPS against analytic gradients. */
  finiteDiff: { rtol: 3e-2, atol: 3e-3 },
  /**
   * Attention. Oracle: the reference vs a naive float64 softmax(QK^T)V (o accumulated in float32, observed worst
   * ~4e-8). Fwd: native vs reference, float32 dots over Dh <= 65 and online-softmax sums over up to 700 keys
   * (observed ~1e-7). Grad: gq/gk/gv sum float32 products over a few hundred (query, key) pairs (observed ~1e-6 on
   * entries of size 1-10). Fd: the reference gradient vs float64 central differences (observed ~2e-8).
   */
  /** GEMM vs a naive float64 product: rtol * sqrt(K) * (|want| + 1), float32 sums of K products. */
  gemmPerSqrtK: { rtol: 1e-5, atol: 0 },
  attentionOracle: { rtol: 1e-6, atol: 5e-7 },
  attentionFwd: { rtol: 2e-5, atol: 2e-6 },
  attentionGrad: { rtol: 1e-4, atol: 1e-5 },
  attentionFd: { rtol: 1e-5, atol: 1e-6 },
  /** Whole-model loss curves after a few dozen optimizer steps on different backends. */
  training: { rtol: 2e-2, atol: 2e-3 },
} as const satisfies Record<string, Tol>;

/** Finite-difference step for float32 central differences (test/helpers/gradcheck.ts). */
export const FD_EPS = 1e-2;

/**
 * For results the reference accumulates term by term into a float32 array (weight gradients: gw[d] += ... per row).
 * Each of those additions rounds at the size of the running sum, so the reference's own error grows with the
 * number of terms: about 2^-24 * magnitude * terms / sqrt(2) for random terms of the given typical magnitude. The
 * allowance is twice that on top of the reduction tolerance.
 */
export function accumulation(terms: number, magnitude = 1): Tol {
  return { rtol: TOL.reduction.rtol, atol: TOL.reduction.atol + 2 ** -23 * magnitude * terms };
}

export interface Closeness {
  ok: boolean;
  /** Index of the worst element (largest error relative to its allowance), -1 when there is none. */
  worst: number;
  actual: number;
  expected: number;
  /** |actual - expected| / (atol + rtol |expected|) at the worst element (Infinity for a NaN or inf mismatch). */
  ratio: number;
  message: string;
}

/**
 * RF_TOL_SCALE=0.25 (say) shrinks every allowance for a run, to see how much margin the kernels leave; unset, 1.
 */
const SCALE = Number(process.env.RF_TOL_SCALE ?? '1') || 1;

function elementRatio(a: number, e: number, tol: Tol): number {
  if (Number.isNaN(e) || Number.isNaN(a)) return Number.isNaN(e) && Number.isNaN(a) ? 0 : Infinity;
  if (!Number.isFinite(e) || !Number.isFinite(a)) return a === e ? 0 : Infinity;
  const diff = Math.abs(a - e);
  if (diff === 0) return 0;
  const allow = SCALE * (tol.atol + tol.rtol * Math.abs(e));
  return allow === 0 ? Infinity : diff / allow;
}

/** Compares element-wise and describes the worst element; never throws. */
export function closeness(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: Tol): Closeness {
  if (actual.length !== expected.length) {
    return {
      ok: false, worst: -1, actual: NaN, expected: NaN, ratio: Infinity,
      message: `length mismatch: actual ${actual.length}, expected ${expected.length}`,
    };
  }
  let worst = -1, ratio = 0;
  for (let i = 0; i < actual.length; i++) {
    const r = elementRatio(actual[i]!, expected[i]!, tol);
    if (r > ratio || (worst < 0 && r > 0)) {
      ratio = r;
      worst = i;
    }
  }
  const ok = ratio <= 1;
  const a = worst >= 0 ? actual[worst]! : NaN, e = worst >= 0 ? expected[worst]! : NaN;
  const message = worst < 0
    ? `all ${actual.length} elements equal`
    : `worst at index ${worst} of ${actual.length}: actual ${a}, expected ${e}, |diff| ${Math.abs(a - e)} ` +
      `= ${ratio.toPrecision(3)} x allowance (rtol ${tol.rtol}, atol ${tol.atol})`;
  return { ok, worst, actual: a, expected: e, ratio, message };
}

/** Throws an AssertionError naming `label`, the worst index and its values unless actual matches expected. */
export function assertClose(actual: ArrayLike<number> | number, expected: ArrayLike<number> | number, tol: Tol,
  label: string): void {
  const a = typeof actual === 'number' ? [actual] : actual;
  const e = typeof expected === 'number' ? [expected] : expected;
  const c = closeness(a, e, tol);
  if (!c.ok) throw new AssertionError({ message: `${label}: ${c.message}` });
}

/** Relative RMS error of `actual` against `expected`: ||actual - expected|| / ||expected|| (quantization error). */
export function relRms(expected: ArrayLike<number>, actual: ArrayLike<number>): number {
  let e = 0, s = 0;
  for (let i = 0; i < expected.length; i++) {
    e += (expected[i]! - actual[i]!) ** 2;
    s += expected[i]! ** 2;
  }
  return Math.sqrt(e / s);
}
