/** Reference row-wise kernels: softmax, log-softmax, cross-entropy, RMSNorm, LayerNorm, RoPE. */
import type { F32, I32 } from '../kernels.js';

/** log(sum_j exp(x[o + j])) over one row of n, computed stably (max subtracted). */
export function rowLogSumExp(x: F32, o: number, n: number): number {
  let m = -Infinity;
  for (let j = 0; j < n; j++) m = Math.max(m, x[o + j]!);
  let s = 0;
  for (let j = 0; j < n; j++) s += Math.exp(x[o + j]! - m);
  return m + Math.log(s);
}

export function softmax(x: F32, rows: number, n: number, y: F32): void {
  for (let r = 0; r < rows; r++) {
    const o = r * n;
    const lse = rowLogSumExp(x, o, n);
    for (let j = 0; j < n; j++) y[o + j] = Math.exp(x[o + j]! - lse);
  }
}

export function softmaxGrad(y: F32, gy: F32, rows: number, n: number, gx: F32): void {
  for (let r = 0; r < rows; r++) {
    const o = r * n;
    let d = 0;
    for (let j = 0; j < n; j++) d += gy[o + j]! * y[o + j]!;
    for (let j = 0; j < n; j++) gx[o + j] = y[o + j]! * (gy[o + j]! - d);
  }
}

export function logSoftmax(x: F32, rows: number, n: number, y: F32): void {
  for (let r = 0; r < rows; r++) {
    const o = r * n;
    const lse = rowLogSumExp(x, o, n);
    for (let j = 0; j < n; j++) y[o + j] = x[o + j]! - lse;
  }
}

export function logSoftmaxGrad(y: F32, gy: F32, rows: number, n: number, gx: F32): void {
  for (let r = 0; r < rows; r++) {
    const o = r * n;
    let s = 0;
    for (let j = 0; j < n; j++) s += gy[o + j]!;
    for (let j = 0; j < n; j++) gx[o + j] = gy[o + j]! - Math.exp(y[o + j]!) * s;
  }
}

export function crossEntropy(logits: F32, targets: I32, rows: number, V: number, ignoreIndex: number, losses: F32,
  dlogits: F32, gradScale: number): void {
  const wantGrad = dlogits.length > 0;
  for (let r = 0; r < rows; r++) {
    const o = r * V;
    const t = targets[r]!;
    if (t === ignoreIndex) {
      losses[r] = 0;
      if (wantGrad) dlogits.fill(0, o, o + V);
      continue;
    }
    const lse = rowLogSumExp(logits, o, V);
    losses[r] = lse - logits[o + t]!;
    if (wantGrad) {
      for (let j = 0; j < V; j++) dlogits[o + j] = (Math.exp(logits[o + j]! - lse) - (j === t ? 1 : 0)) * gradScale;
    }
  }
}

export function rmsnorm(x: F32, w: F32, rows: number, D: number, eps: number, y: F32, rstd: F32): void {
  for (let r = 0; r < rows; r++) {
    const o = r * D;
    let ss = 0;
    for (let d = 0; d < D; d++) ss += x[o + d]! * x[o + d]!;
    const rs = 1 / Math.sqrt(ss / D + eps);
    rstd[r] = rs;
    for (let d = 0; d < D; d++) y[o + d] = x[o + d]! * rs * (w.length ? w[d]! : 1);
  }
}

export function rmsnormGrad(x: F32, w: F32, rstd: F32, gy: F32, rows: number, D: number, gx: F32, gw: F32): void {
  for (let r = 0; r < rows; r++) {
    const o = r * D;
    const rs = rstd[r]!;
    // y = x * rs * w; dL/dx = rs * (g*w) - x * rs^3 * mean(g*w*x)
    let dot = 0;
    for (let d = 0; d < D; d++) dot += gy[o + d]! * (w.length ? w[d]! : 1) * x[o + d]!;
    const c = (dot / D) * rs * rs * rs;
    for (let d = 0; d < D; d++) {
      const gw_ = w.length ? w[d]! : 1;
      gx[o + d] = gy[o + d]! * gw_ * rs - x[o + d]! * c;
      if (w.length) gw[d]! += gy[o + d]! * x[o + d]! * rs;
    }
  }
}

export function layernorm(x: F32, w: F32, b: F32, rows: number, D: number, eps: number, y: F32, mean: F32,
  rstd: F32): void {
  for (let r = 0; r < rows; r++) {
    const o = r * D;
    let mu = 0;
    for (let d = 0; d < D; d++) mu += x[o + d]!;
    mu /= D;
    let v = 0;
    for (let d = 0; d < D; d++) v += (x[o + d]! - mu) ** 2;
    const rs = 1 / Math.sqrt(v / D + eps);
    mean[r] = mu;
    rstd[r] = rs;
    for (let d = 0; d < D; d++) {
      y[o + d] = (x[o + d]! - mu) * rs * (w.length ? w[d]! : 1) + (b.length ? b[d]! : 0);
    }
  }
}

export function layernormGrad(x: F32, w: F32, mean: F32, rstd: F32, gy: F32, rows: number, D: number, gx: F32,
  gw: F32, gb: F32): void {
  for (let r = 0; r < rows; r++) {
    const o = r * D;
    const mu = mean[r]!, rs = rstd[r]!;
    let sg = 0, sgx = 0;
    for (let d = 0; d < D; d++) {
      const g = gy[o + d]! * (w.length ? w[d]! : 1);
      const xh = (x[o + d]! - mu) * rs;
      sg += g;
      sgx += g * xh;
      if (w.length) gw[d]! += gy[o + d]! * xh;
      if (gb.length > 0) gb[d]! += gy[o + d]!;
    }
    for (let d = 0; d < D; d++) {
      const g = gy[o + d]! * (w.length ? w[d]! : 1);
      const xh = (x[o + d]! - mu) * rs;
      gx[o + d] = rs * (g - sg / D - xh * (sgx / D));
    }
  }
}


export function rope(x: F32, B: number, T: number, H: number, Dh: number, rotDim: number, positions: I32,
  invFreq: F32, interleaved: number, sign: number, y: F32): void {
  const half = rotDim >> 1;
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      const pos = positions[t]!;
      for (let h = 0; h < H; h++) {
        const o = ((b * T + t) * H + h) * Dh;
        for (let i = 0; i < half; i++) {
          const ang = pos * invFreq[i]!;
          const c = Math.cos(ang), s = sign * Math.sin(ang);
          const i0 = interleaved ? o + 2 * i : o + i;
          const i1 = interleaved ? o + 2 * i + 1 : o + i + half;
          const a0 = x[i0]!, a1 = x[i1]!;
          y[i0] = a0 * c - a1 * s;
          y[i1] = a0 * s + a1 * c;
        }
        for (let d = rotDim; d < Dh; d++) y[o + d] = x[o + d]!;
      }
    }
  }
}

export function adamw(p: F32, g: F32, m: F32, v: F32, lr: number, b1: number, b2: number, eps: number, wd: number,
  bc1: number, bc2: number): void {
  for (let i = 0; i < p.length; i++) {
    const gi = g[i]!;
    const mi = b1 * m[i]! + (1 - b1) * gi;
    const vi = b2 * v[i]! + (1 - b2) * gi * gi;
    m[i] = mi;
    v[i] = vi;
    p[i] = p[i]! - lr * (mi / bc1 / (Math.sqrt(vi / bc2) + eps) + wd * p[i]!);
  }
}
