/** Reference element-wise, reduction and data-movement kernels. */
import { BinaryOp, ReduceOp, UnaryOp, type F32, type I32 } from '../kernels.js';

const SQRT_2_OVER_PI = Math.sqrt(2 / Math.PI);
const GELU_C = 0.044715;

/** erf with |error| < 1.2e-7 (Numerical Recipes erfc, Chebyshev fit), adequate for a float32 oracle. */
export function erf(x: number): number {
  const z = Math.abs(x);
  const t = 1 / (1 + 0.5 * z);
  const r = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
  return x >= 0 ? 1 - r : r - 1;
}

function softplus(x: number): number {
  return x > 20 ? x : Math.log1p(Math.exp(x));
}

function sigmoid(x: number): number {
  return 1 / (1 + Math.exp(-x));
}

export function unaryFn(op: UnaryOp, x: number): number {
  switch (op) {
    case UnaryOp.Neg: return -x;
    case UnaryOp.Exp: return Math.exp(x);
    case UnaryOp.Log: return Math.log(x);
    case UnaryOp.Sqrt: return Math.sqrt(x);
    case UnaryOp.Rsqrt: return 1 / Math.sqrt(x);
    case UnaryOp.Silu: return x * sigmoid(x);
    case UnaryOp.GeluTanh: return 0.5 * x * (1 + Math.tanh(SQRT_2_OVER_PI * (x + GELU_C * x * x * x)));
    case UnaryOp.GeluErf: return 0.5 * x * (1 + erf(x / Math.SQRT2));
    case UnaryOp.Sigmoid: return sigmoid(x);
    case UnaryOp.Softplus: return softplus(x);
    case UnaryOp.Relu: return x > 0 ? x : 0;
    case UnaryOp.Square: return x * x;
    case UnaryOp.Abs: return Math.abs(x);
    case UnaryOp.Tanh: return Math.tanh(x);
  }
  throw new Error(`unary: unknown op ${op as number}`);
}

/** d f(x) / dx, given x and y = f(x). */
export function unaryDeriv(op: UnaryOp, x: number, y: number): number {
  switch (op) {
    case UnaryOp.Neg: return -1;
    case UnaryOp.Exp: return y;
    case UnaryOp.Log: return 1 / x;
    case UnaryOp.Sqrt: return 0.5 / y;
    case UnaryOp.Rsqrt: return -0.5 * y * y * y;
    case UnaryOp.Silu: {
      const s = sigmoid(x);
      return s * (1 + x * (1 - s));
    }
    case UnaryOp.GeluTanh: {
      const u = SQRT_2_OVER_PI * (x + GELU_C * x * x * x);
      const t = Math.tanh(u);
      return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * SQRT_2_OVER_PI * (1 + 3 * GELU_C * x * x);
    }
    case UnaryOp.GeluErf:
      return 0.5 * (1 + erf(x / Math.SQRT2)) + x * Math.exp(-0.5 * x * x) / Math.sqrt(2 * Math.PI);
    case UnaryOp.Sigmoid: return y * (1 - y);
    case UnaryOp.Softplus: return sigmoid(x);
    case UnaryOp.Relu: return x > 0 ? 1 : 0;
    case UnaryOp.Square: return 2 * x;
    case UnaryOp.Abs: return x > 0 ? 1 : x < 0 ? -1 : 0;
    case UnaryOp.Tanh: return 1 - y * y;
  }
  throw new Error(`unaryGrad: unknown op ${op as number}`);
}

export function unary(op: UnaryOp, x: F32, y: F32): void {
  for (let i = 0; i < x.length; i++) y[i] = unaryFn(op, x[i]!);
}

export function unaryGrad(op: UnaryOp, x: F32, y: F32, gy: F32, gx: F32): void {
  for (let i = 0; i < x.length; i++) gx[i] = gy[i]! * unaryDeriv(op, x[i]!, y[i]!);
}

function binaryFn(op: BinaryOp, a: number, b: number): number {
  switch (op) {
    case BinaryOp.Add: return a + b;
    case BinaryOp.Sub: return a - b;
    case BinaryOp.Mul: return a * b;
    case BinaryOp.Div: return a / b;
    case BinaryOp.Max: return a >= b ? a : b;
    case BinaryOp.Min: return a <= b ? a : b;
  }
  throw new Error(`binary: unknown op ${op as number}`);
}

export function binary(op: BinaryOp, a: F32, aStrides: I32, b: F32, bStrides: I32, shape: I32, out: F32): void {
  const rank = shape.length;
  const idx = new Int32Array(rank);
  const n = out.length;
  let ai = 0, bi = 0;
  for (let o = 0; o < n; o++) {
    out[o] = binaryFn(op, a[ai]!, b[bi]!);
    // odometer increment of the multi-index, updating both source offsets incrementally
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]!++;
      ai += aStrides[d]!;
      bi += bStrides[d]!;
      if (idx[d]! < shape[d]!) break;
      ai -= aStrides[d]! * shape[d]!;
      bi -= bStrides[d]! * shape[d]!;
      idx[d] = 0;
    }
  }
}

export function affine(x: F32, mul: number, add: number, y: F32): void {
  for (let i = 0; i < x.length; i++) y[i] = x[i]! * mul + add;
}

export function axpy(alpha: number, x: F32, y: F32): void {
  for (let i = 0; i < x.length; i++) y[i]! += alpha * x[i]!;
}

export function sumSquares(x: F32): number {
  let s = 0;
  for (let i = 0; i < x.length; i++) s += x[i]! * x[i]!;
  return s;
}

export function reduce(op: ReduceOp, x: F32, outer: number, n: number, inner: number, y: F32): void {
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * n * inner + i;
      let r: number;
      if (op === ReduceOp.Max || op === ReduceOp.Min || op === ReduceOp.LogSumExp) {
        let m = op === ReduceOp.Min ? Infinity : -Infinity;
        for (let j = 0; j < n; j++) {
          const v = x[base + j * inner]!;
          if (op === ReduceOp.Min ? v < m : v > m) m = v;
          if (Number.isNaN(v)) m = NaN;
        }
        if (op === ReduceOp.LogSumExp) {
          if (m === -Infinity || Number.isNaN(m)) {
            r = m;
          } else {
            let s = 0;
            for (let j = 0; j < n; j++) s += Math.exp(x[base + j * inner]! - m);
            r = m + Math.log(s);
          }
        } else {
          r = m;
        }
      } else {
        let s = 0;
        for (let j = 0; j < n; j++) s += x[base + j * inner]!;
        r = op === ReduceOp.Mean ? s / n : s;
      }
      y[o * inner + i] = r;
    }
  }
}

export function copyStrided(src: F32, offset: number, strides: I32, shape: I32, dst: F32): void {
  const rank = shape.length;
  const idx = new Int32Array(rank);
  const n = dst.length;
  let si = offset;
  for (let o = 0; o < n; o++) {
    dst[o] = src[si]!;
    for (let d = rank - 1; d >= 0; d--) {
      idx[d]!++;
      si += strides[d]!;
      if (idx[d]! < shape[d]!) break;
      si -= strides[d]! * shape[d]!;
      idx[d] = 0;
    }
  }
}

export function cumsum(x: F32, outer: number, n: number, inner: number, reverse: number, y: F32): void {
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const base = o * n * inner + i;
      let s = 0;
      for (let jj = 0; jj < n; jj++) {
        const j = reverse ? n - 1 - jj : jj;
        s += x[base + j * inner]!;
        y[base + j * inner] = s;
      }
    }
  }
}

export function gather(x: F32, outer: number, n: number, inner: number, idx: I32, out: F32): void {
  const m = idx.length;
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < m; j++) {
      const src = (o * n + idx[j]!) * inner, dst = (o * m + j) * inner;
      for (let i = 0; i < inner; i++) out[dst + i] = x[src + i]!;
    }
  }
}

export function gatherGrad(gout: F32, outer: number, n: number, inner: number, idx: I32, gx: F32): void {
  const m = idx.length;
  for (let o = 0; o < outer; o++) {
    for (let j = 0; j < m; j++) {
      const dst = (o * n + idx[j]!) * inner, src = (o * m + j) * inner;
      for (let i = 0; i < inner; i++) gx[dst + i]! += gout[src + i]!;
    }
  }
}

export function embedding(w: F32, ids: I32, D: number, out: F32): void {
  for (let r = 0; r < ids.length; r++) {
    const src = ids[r]! * D;
    for (let d = 0; d < D; d++) out[r * D + d] = w[src + d]!;
  }
}

export function embeddingGrad(gout: F32, ids: I32, D: number, gw: F32): void {
  for (let r = 0; r < ids.length; r++) {
    const dst = ids[r]! * D;
    for (let d = 0; d < D; d++) gw[dst + d]! += gout[r * D + d]!;
  }
}

export function conv1dCausal(x: F32, w: F32, bias: F32, B: number, T: number, C: number, K: number, y: F32): void {
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      for (let c = 0; c < C; c++) {
        let s = bias.length ? bias[c]! : 0;
        for (let k = 0; k < K; k++) {
          const tt = t - (K - 1) + k;
          if (tt >= 0) s += w[c * K + k]! * x[(b * T + tt) * C + c]!;
        }
        y[(b * T + t) * C + c] = s;
      }
    }
  }
}

export function conv1dCausalGrad(x: F32, w: F32, gy: F32, B: number, T: number, C: number, K: number, gx: F32,
  gw: F32, gbias: F32): void {
  gx.fill(0);
  for (let b = 0; b < B; b++) {
    for (let t = 0; t < T; t++) {
      for (let c = 0; c < C; c++) {
        const g = gy[(b * T + t) * C + c]!;
        if (gbias.length) gbias[c]! += g;
        for (let k = 0; k < K; k++) {
          const tt = t - (K - 1) + k;
          if (tt < 0) continue;
          gw[c * K + k]! += g * x[(b * T + tt) * C + c]!;
          gx[(b * T + tt) * C + c]! += g * w[c * K + k]!;
        }
      }
    }
  }
}

export function ssdStep(xbc: F32, dt: F32, win: F32, convW: F32, convB: F32, S: F32, aLog: F32, d: F32, groupOf: I32,
  B: number, H: number, G: number, P: number, N: number, K: number, y: F32): void {
  const C = H * P + G * N + H * N;
  const conv = new Float64Array(C);
  for (let b = 0; b < B; b++) {
    for (let c = 0; c < C; c++) {
      let s = convB.length ? convB[c]! : 0;
      for (let k = 0; k < K - 1; k++) s += convW[c * K + k]! * win[(b * (K - 1) + k) * C + c]!;
      const cur = xbc[b * C + c]!;
      s += convW[c * K + K - 1]! * cur;
      conv[c] = s / (1 + Math.exp(-s)); // silu
      // slide the window: drop the oldest input, append the current one
      for (let k = 0; k < K - 2; k++) win[(b * (K - 1) + k) * C + c] = win[(b * (K - 1) + k + 1) * C + c]!;
      if (K > 1) win[(b * (K - 1) + K - 2) * C + c] = cur;
    }
    for (let h = 0; h < H; h++) {
      const g = groupOf[h]!;
      const dth = dt[b * H + h]!;
      const a = Math.exp(-Math.exp(aLog[h]!) * dth);
      const xo = h * P, bo = H * P + g * N, co = H * P + G * N + h * N;
      for (let p = 0; p < P; p++) {
        let acc = 0;
        for (let n = 0; n < N; n++) {
          const i = ((b * H + h) * P + p) * N + n;
          const v = a * S[i]! + dth * conv[xo + p]! * conv[bo + n]!;
          S[i] = v;
          acc += v * conv[co + n]!;
        }
        y[(b * H + h) * P + p] = acc + d[h]! * conv[xo + p]!;
      }
    }
  }
}
