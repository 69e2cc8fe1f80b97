/**
 * Attention-sink statistics of one head, pure over probability rows (DESIGN.md: sink mass S_h).
 *
 * sink = mean over queries i > 0 of A[i, 0]. sinkFirst4 = mean of A[i, 0] + .. + A[i, 3] over queries i >= 4 only
 * (a refinement: for i < 4 the first four keys are the whole prefix and the mass would be 1 by construction).
 * `KeyMassAcc` measures the mass one chosen key position receives, for the waiver tests.
 */
export const SINK_PREFIX = 4;

export interface SinkSummary {
  sink: number | null;
  sinkFirst4: number | null;
}

export class SinkAcc {
  private s0 = 0;
  private n0 = 0;
  private s4 = 0;
  private n4 = 0;

  add(row: ArrayLike<number>, i: number, off = 0): void {
    if (i <= 0) return;
    this.s0 += row[off]!;
    this.n0++;
    if (i >= SINK_PREFIX) {
      let s = 0;
      for (let j = 0; j < SINK_PREFIX; j++) s += row[off + j]!;
      this.s4 += s;
      this.n4++;
    }
  }

  summary(): SinkSummary {
    return { sink: this.n0 ? this.s0 / this.n0 : null, sinkFirst4: this.n4 ? this.s4 / this.n4 : null };
  }
}

/** Mean attention that queries i > p give to key position p (the incoming mass of one element). */
export class KeyMassAcc {
  private s = 0;
  private n = 0;
  constructor(readonly p: number) {}
  add(row: ArrayLike<number>, i: number, off = 0): void {
    if (i <= this.p) return;
    this.s += row[off + this.p]!;
    this.n++;
  }
  value(): number | null {
    return this.n ? this.s / this.n : null;
  }
}
