/**
 * Reference quantized-weight kernels (gemmQ, dequantQ; contract in kernels.ts): each weight value decoded on its own
 * from its block by the formulas below, products accumulated in float64. The oracle for native/src/quant.cpp.
 *
 * Value e (0-based) of a 256-value K-quant super-block at byte o:
 * - Q4_K/Q5_K: sub-block j = e >> 5; code = nibble (e >> 5) & 1 of byte qs[32 (e >> 6) + (e & 31)], plus 16 for
 *   Q5_K when bit j of qh[e & 31] is set; value = d * sc[j] * code - dmin * m[j].
 * - Q6_K: half h = e >> 7, k = (e >> 5) & 3, l = e & 31; low 4 bits = nibble (k >> 1) of ql[64h + 32 (k & 1) + l],
 *   high 2 bits = bits 2k, 2k + 1 of qh[32h + l]; value = d * sc[e >> 4] * (code - 32).
 * Q8_0 (34 bytes, 32 values): value = d * q[e].
 */
import type { F32, U8 } from '../kernels.js';
import { floatToHalf, halfToFloat } from './gemm.js';

interface Layout {
  values: number;
  bytes: number;
  value: (w: U8, o: number, e: number) => number;
}

const half = (w: U8, o: number): number => halfToFloat(w[o]! | (w[o + 1]! << 8));
const int8 = (b: number): number => (b << 24) >> 24;

/** The 6-bit scale and min of sub-block j of a Q4_K/Q5_K super-block at o (12 scale bytes at o + 4). */
function scaleMin(w: U8, o: number, j: number): [number, number] {
  const b = (i: number): number => w[o + 4 + i]!;
  return j < 4 ? [b(j) & 63, b(j + 4) & 63] : [(b(j + 4) & 15) | ((b(j - 4) >> 6) << 4), (b(j + 4) >> 4) | ((b(j) >> 6) << 4)];
}

function qxkValue(five: boolean): Layout['value'] {
  return (w, o, e) => {
    const j = e >> 5, l = e & 31;
    const byte = w[o + (five ? 48 : 16) + 32 * (e >> 6) + l]!;
    let code = j & 1 ? byte >> 4 : byte & 15;
    if (five && (w[o + 16 + l]! >> j) & 1) code += 16;
    const [sc, m] = scaleMin(w, o, j);
    return half(w, o) * sc * code - half(w, o + 2) * m;
  };
}

const LAYOUTS: Readonly<Record<number, Layout>> = {
  8: { values: 32, bytes: 34, value: (w, o, e) => half(w, o) * int8(w[o + 2 + e]!) },
  12: { values: 256, bytes: 144, value: qxkValue(false) },
  13: { values: 256, bytes: 176, value: qxkValue(true) },
  14: {
    values: 256, bytes: 210, value: (w, o, e) => {
      const h = e >> 7, k = (e >> 5) & 3, l = e & 31;
      const lo = w[o + 64 * h + 32 * (k & 1) + l]!;
      const code = (k >> 1 ? lo >> 4 : lo & 15) | (((w[o + 128 + 32 * h + l]! >> (2 * k)) & 3) << 4);
      return half(w, o + 208) * int8(w[o + 192 + (e >> 4)]!) * (code - 32);
    },
  },
};

function layout(type: number, K: number): Layout {
  const f = LAYOUTS[type];
  if (!f) throw new RangeError(`reference gemmQ: type ${type} is not Q8_0 (8), Q4_K (12), Q5_K (13) or Q6_K (14)`);
  if (K <= 0 || K % f.values !== 0) throw new RangeError(`reference gemmQ: K = ${K} is not a positive multiple of ${f.values}`);
  return f;
}

export function dequantQ(type: number, w: U8, K: number, r0: number, n: number, dst: F32): void {
  const f = layout(type, K);
  const rowBytes = (K / f.values) * f.bytes;
  for (let i = 0; i < n; i++) {
    for (let e = 0; e < K; e++) {
      const o = (r0 + i) * rowBytes + Math.floor(e / f.values) * f.bytes;
      dst[i * K + e] = f.value(w, o, e % f.values);
    }
  }
}

/** round half to even, as the native kernels' nearbyint */
function roundEven(v: number): number {
  const q = Math.round(v);
  return q - v === 0.5 && q % 2 !== 0 ? q - 1 : q; // Math.round takes halves up
}

/**
 * A row as the integer products read it (kernels.ts, gemmQ; llama.cpp's activation formats): per block of 32 values
 * (Q8_0 weights) d = f16(amax / 127), q = round(x * 127 / amax); per block of 256 (K-quants), with m the first value
 * of largest magnitude, iscale = -128 / m, q = min(127, round(x * iscale)), d = 1 / iscale.
 */
function roundedRow(x: F32, K: number, block: number): Float64Array {
  const out = new Float64Array(K);
  for (let b = 0; b < K; b += block) {
    let amax = 0, m = 0;
    for (let i = b; i < b + block; i++) {
      if (Math.abs(x[i]!) > amax) {
        amax = Math.abs(x[i]!);
        m = x[i]!;
      }
    }
    if (amax === 0) continue;
    if (block === 32) {
      const id = Math.fround(127 / amax), d = halfToFloat(floatToHalf(Math.fround(amax / 127)));
      for (let i = b; i < b + block; i++) out[i] = roundEven(Math.fround(x[i]! * id)) * d;
    } else {
      const iscale = Math.fround(-128 / m), d = Math.fround(1 / iscale);
      for (let i = b; i < b + block; i++) out[i] = Math.min(127, roundEven(Math.fround(iscale * x[i]!))) * d;
    }
  }
  return out;
}

export function gemmQ(M: number, N: number, K: number, a: F32, type: number, w: U8, c: F32): void {
  const wd = new Float32Array(N * K);
  dequantQ(type, w, K, 0, N, wd);
  for (let i = 0; i < M; i++) {
    const row = a.subarray(i * K, (i + 1) * K);
    const x = roundedRow(row, K, type === 8 ? 32 : 256);
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += x[k]! * wd[j * K + k]!;
      c[i * N + j] = s;
    }
  }
}
