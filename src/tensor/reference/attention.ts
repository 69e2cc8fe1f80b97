/**
 * Reference attention: for each (batch, head, query) row, scores over the visible keys, a two-pass softmax and the
 * weighted sum of values. Slow and obvious; the native kernel uses an online softmax instead.
 */
import type { F32 } from '../kernels.js';

/** Key j is visible to query i (absolute position qOffset + i). */
export function visible(i: number, j: number, causal: number, qOffset: number, window: number, sinks: number): boolean {
  const p = qOffset + i;
  if (causal && j > p) return false;
  if (window > 0 && j <= p - window && j >= sinks) return false;
  return true;
}

export function attention(q: F32, k: F32, v: F32, B: number, T: number, S: number, Hq: number, Hkv: number,
  Dh: number, scale: number, causal: number, qOffset: number, window: number, sinks: number, o: F32, lse: F32,
  probs: F32): void {
  const nRep = Hq / Hkv;
  const sc = new Float64Array(S);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const g = Math.floor(h / nRep);
      for (let i = 0; i < T; i++) {
        const qo = ((b * T + i) * Hq + h) * Dh;
        let m = -Infinity;
        for (let j = 0; j < S; j++) {
          if (!visible(i, j, causal, qOffset, window, sinks)) {
            sc[j] = -Infinity;
            continue;
          }
          const ko = ((b * S + j) * Hkv + g) * Dh;
          let s = 0;
          for (let d = 0; d < Dh; d++) s += q[qo + d]! * k[ko + d]!;
          sc[j] = s * scale;
          if (sc[j]! > m) m = sc[j]!;
        }
        const oo = qo;
        const lo = (b * Hq + h) * T + i;
        const po = ((b * Hq + h) * T + i) * S;
        if (m === -Infinity) {
          for (let d = 0; d < Dh; d++) o[oo + d] = 0;
          lse[lo] = -Infinity;
          if (probs.length) probs.fill(0, po, po + S);
          continue;
        }
        let z = 0;
        for (let j = 0; j < S; j++) z += sc[j] === -Infinity ? 0 : Math.exp(sc[j]! - m);
        lse[lo] = m + Math.log(z);
        for (let d = 0; d < Dh; d++) o[oo + d] = 0;
        for (let j = 0; j < S; j++) {
          const p = sc[j] === -Infinity ? 0 : Math.exp(sc[j]! - m) / z;
          if (probs.length) probs[po + j] = p;
          if (p === 0) continue;
          const vo = ((b * S + j) * Hkv + g) * Dh;
          for (let d = 0; d < Dh; d++) o[oo + d]! += p * v[vo + d]!;
        }
      }
    }
  }
}

export function attentionGrad(q: F32, k: F32, v: F32, o: F32, lse: F32, go: F32, B: number, T: number, S: number,
  Hq: number, Hkv: number, Dh: number, scale: number, causal: number, qOffset: number, window: number, sinks: number,
  gq: F32, gk: F32, gv: F32): void {
  const nRep = Hq / Hkv;
  gq.fill(0);
  gk.fill(0);
  gv.fill(0);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const g = Math.floor(h / nRep);
      for (let i = 0; i < T; i++) {
        const lo = (b * Hq + h) * T + i;
        const L = lse[lo]!;
        if (L === -Infinity) continue;
        const qo = ((b * T + i) * Hq + h) * Dh;
        // D_i = dO_i . O_i  (equals sum_j P_ij dP_ij)
        let Di = 0;
        for (let d = 0; d < Dh; d++) Di += go[qo + d]! * o[qo + d]!;
        for (let j = 0; j < S; j++) {
          if (!visible(i, j, causal, qOffset, window, sinks)) continue;
          const ko = ((b * S + j) * Hkv + g) * Dh;
          let s = 0;
          for (let d = 0; d < Dh; d++) s += q[qo + d]! * k[ko + d]!;
          const p = Math.exp(s * scale - L);
          let dp = 0;
          for (let d = 0; d < Dh; d++) {
            dp += go[qo + d]! * v[ko + d]!;
            gv[ko + d]! += p * go[qo + d]!;
          }
          const ds = p * (dp - Di) * scale;
          for (let d = 0; d < Dh; d++) {
            gq[qo + d]! += ds * k[ko + d]!;
            gk[ko + d]! += ds * q[qo + d]!;
          }
        }
      }
    }
  }
}
