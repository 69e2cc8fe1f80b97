/** Reference GEMM and half-precision conversion: plain loops, float64 accumulation, the oracle for native kernels. */
import type { F16, F32 } from '../kernels.js';

export function gemm(
  transA: number, transB: number, M: number, N: number, K: number, alpha: number,
  a: F32, strideA: number, b: F32, strideB: number, beta: number, c: F32, strideC: number, batch: number,
): void {
  for (let bt = 0; bt < batch; bt++) {
    const ao = bt * strideA, bo = bt * strideB, co = bt * strideC;
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          const av = transA ? a[ao + k * M + i]! : a[ao + i * K + k]!;
          const bv = transB ? b[bo + j * K + k]! : b[bo + k * N + j]!;
          s += av * bv;
        }
        const idx = co + i * N + j;
        c[idx] = beta === 0 ? alpha * s : alpha * s + beta * c[idx]!;
      }
    }
  }
}

const f32buf = new Float32Array(1);
const u32buf = new Uint32Array(f32buf.buffer);

/** IEEE half bits -> float. */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const mant = h & 0x3ff;
  if (exp === 0) return sign * mant * 2 ** -24;
  if (exp === 31) return mant ? NaN : sign * Infinity;
  return sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

/** float -> IEEE half bits, round to nearest even. */
export function floatToHalf(x: number): number {
  f32buf[0] = x;
  const bits = u32buf[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const abs = bits & 0x7fffffff;
  if (abs >= 0x7f800000) return sign | 0x7c00 | (abs > 0x7f800000 ? 0x200 | ((abs >>> 13) & 0x3ff) : 0);
  if (abs >= 0x477ff000) return sign | 0x7c00;
  if (abs < 0x38800000) {
    if (abs < 0x33000000) return sign;
    const e = abs >>> 23;
    const m = (abs & 0x7fffff) | 0x800000;
    const shift = 126 - e;
    let r = m >>> shift;
    const rem = m & ((1 << shift) - 1);
    const half = 1 << (shift - 1);
    if (rem > half || (rem === half && r & 1)) r++;
    return sign | r;
  }
  const r = abs - 0x38000000;
  let out = r >>> 13;
  const rem = r & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && out & 1)) out++;
  return sign | out;
}

/** C = A @ W^T + beta * C for a 16-bit weight widened element by element with `widen`. */
function gemm16(M: number, N: number, K: number, a: F32, w: F16, beta: number, c: F32, widen: (h: number) => number): void {
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += a[i * K + k]! * widen(w[j * K + k]!);
      const idx = i * N + j;
      c[idx] = beta === 0 ? s : s + beta * c[idx]!;
    }
  }
}

export function gemmF16(M: number, N: number, K: number, a: F32, w: F16, beta: number, c: F32): void {
  gemm16(M, N, K, a, w, beta, c, halfToFloat);
}

export function f32ToF16(src: F32, dst: F16): void {
  for (let i = 0; i < src.length; i++) dst[i] = floatToHalf(src[i]!);
}

export function f16ToF32(src: F16, dst: F32): void {
  for (let i = 0; i < src.length; i++) dst[i] = halfToFloat(src[i]!);
}

/** bfloat16 bits -> float (exact: the bits are the top half of a float32). */
export function bf16ToFloat(h: number): number {
  u32buf[0] = (h & 0xffff) << 16;
  return f32buf[0]!;
}

export function gemmBF16(M: number, N: number, K: number, a: F32, w: F16, beta: number, c: F32): void {
  gemm16(M, N, K, a, w, beta, c, bf16ToFloat);
}

export function bf16ToF32(src: F16, dst: F32): void {
  for (let i = 0; i < src.length; i++) dst[i] = bf16ToFloat(src[i]!);
}

export function gemmMulti(M: number, K: number, a: F32, dtype: number, w0: F32 | F16, n0: number, c0: F32,
  w1: F32 | F16, n1: number, c1: F32, w2: F32 | F16, n2: number, c2: F32): void {
  const slots: [F32 | F16, number, F32][] = [[w0, n0, c0], [w1, n1, c1], [w2, n2, c2]];
  for (const [w, N, c] of slots) {
    if (N === 0) continue;
    if (dtype === 0) gemm(0, 1, M, N, K, 1, a, 0, w as F32, 0, 0, c, 0, 1);
    else gemm16(M, N, K, a, w as F16, 0, c, dtype === 1 ? halfToFloat : bf16ToFloat);
  }
}
