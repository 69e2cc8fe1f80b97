/**
 * Recency statistics of one attention head, as pure functions over probability rows (DESIGN.md, Definitions).
 *
 * Glossary: row = A[i, 0..i] (query i, causal, sums to 1); k = window; RR(k) = mass on keys i-k..i (k + 1 keys);
 * RRw(k) = RR(k) / (1 - A[i, 0]) (the waiver-adjusted recency: sink mass discounted); entropy in nats; distance =
 * sum_j A[i, j] (i - j).
 *
 * Refinements (documented in docs/analysis.md):
 * - RR(k) and RRw(k) average only queries i > k (their window does not reach position 0, as DESIGN.md asks).
 * - RRw: a row whose sink mass leaves less than RRW_MIN_REST (1 - A[i, 0] < 1e-6) has no information outside the
 *   sink; it is excluded from RRw and counted in `rrwExcluded`. A head with every row excluded has RRw = null.
 * - Entropy and mean distance average the queries i > 0 (row 0 is always one-hot on itself).
 */
export const RRW_MIN_REST = 1e-6;

/** Mass of `row` (length >= i + 1, keys 0..i valid) on keys max(0, i - k)..i. */
export function windowMass(row: ArrayLike<number>, i: number, k: number, off = 0): number {
  let s = 0;
  for (let j = Math.max(0, i - k); j <= i; j++) s += row[off + j]!;
  return s;
}

export function rowEntropy(row: ArrayLike<number>, i: number, off = 0): number {
  let h = 0;
  for (let j = 0; j <= i; j++) {
    const p = row[off + j]!;
    if (p > 0) h -= p * Math.log(p);
  }
  return h;
}

export function rowDistance(row: ArrayLike<number>, i: number, off = 0): number {
  let d = 0;
  for (let j = 0; j < i; j++) d += row[off + j]! * (i - j);
  return d;
}

export interface RecencySummary {
  rr: Record<string, number | null>;
  rrw: Record<string, number | null>;
  /** Rows left out of RRw(k) because they put (almost) all their mass on position 0, per window. */
  rrwExcluded: Record<string, number>;
  entropy: number | null;
  meanDistance: number | null;
}

/** Accumulates RR, RRw, entropy and distance of one head over any number of rows (sums in float64). */
export class RecencyAcc {
  private readonly rrSum: Float64Array;
  private readonly rrN: Float64Array;
  private readonly rrwSum: Float64Array;
  private readonly rrwN: Float64Array;
  private readonly rrwEx: Float64Array;
  private entSum = 0;
  private distSum = 0;
  private rows = 0;

  constructor(readonly windows: readonly number[]) {
    const n = windows.length;
    this.rrSum = new Float64Array(n);
    this.rrN = new Float64Array(n);
    this.rrwSum = new Float64Array(n);
    this.rrwN = new Float64Array(n);
    this.rrwEx = new Float64Array(n);
  }

  /** One query row: keys 0..i of `row` starting at `off`. */
  add(row: ArrayLike<number>, i: number, off = 0): void {
    if (i <= 0) return;
    const rest = 1 - row[off]!;
    // Cumulative mass from the query backwards, so every window costs one pass over the largest one.
    let cum = 0, j = i;
    for (let w = 0; w < this.windows.length; w++) {
      const k = this.windows[w]!;
      if (i <= k) continue;
      for (; j >= i - k; j--) cum += row[off + j]!;
      this.rrSum[w]! += cum;
      this.rrN[w]! += 1;
      if (rest < RRW_MIN_REST) this.rrwEx[w]! += 1;
      else {
        this.rrwSum[w]! += Math.min(1, cum / rest);
        this.rrwN[w]! += 1;
      }
    }
    this.entSum += rowEntropy(row, i, off);
    this.distSum += rowDistance(row, i, off);
    this.rows++;
  }

  summary(): RecencySummary {
    const rr: Record<string, number | null> = {}, rrw: Record<string, number | null> = {};
    const rrwExcluded: Record<string, number> = {};
    this.windows.forEach((k, w) => {
      rr[k] = this.rrN[w]! > 0 ? this.rrSum[w]! / this.rrN[w]! : null;
      rrw[k] = this.rrwN[w]! > 0 ? this.rrwSum[w]! / this.rrwN[w]! : null;
      rrwExcluded[k] = this.rrwEx[w]!;
    });
    return {
      rr, rrw, rrwExcluded,
      entropy: this.rows ? this.entSum / this.rows : null,
      meanDistance: this.rows ? this.distSum / this.rows : null,
    };
  }
}

/** RR(k) of the uniform causal head (A[i, j] = 1 / (i + 1)) over T queries, in closed form (for tests and docs). */
export function uniformHeadRR(k: number, T: number): number {
  // mean over i = k+1..T-1 of (k+1)/(i+1) = (k+1) (H_T - H_{k+1}) / (T - k - 1)
  let h = 0;
  for (let m = k + 2; m <= T; m++) h += 1 / m;
  return ((k + 1) * h) / (T - k - 1);
}

/**
 * GQA group score: a KV group's cache is freed only when every query head in it is replaced, so the group scores
 * the minimum over its heads (null when any head has no value).
 */
export function groupScore(values: readonly (number | null)[]): number | null {
  let m = Infinity;
  for (const v of values) {
    if (v === null) return null;
    m = Math.min(m, v);
  }
  return values.length ? m : null;
}
