/**
 * ggml tensor types as stored in GGUF: dequantization of the block-quantized ones to float32, and quantization for
 * GGUF export.
 *
 * Decoded: the legacy block formats Q8_0, Q4_0, Q4_1, Q5_0, Q5_1 and the K-quants Q4_K, Q5_K, Q6_K (kquants.ts).
 * Other types (Q2_K, Q3_K, i-quants, ...) are rejected by the reader with a hint to re-export. Encoded (export): Q8_0,
 * Q5_0 (llama.cpp's fallback for Q4_K rows that are not a multiple of 256), Q4_K, Q5_K, Q6_K.
 *
 * Legacy layouts follow ggml's ggml-common.h, blocks of 32 values:
 * - block_q8_0 (34 bytes): f16 d, 32 x int8; value = d * q.
 * - block_q4_0 (18 bytes): f16 d, 16 bytes of nibbles; low nibbles are values 0..15, high nibbles 16..31;
 *   value = d * (q - 8).
 * - block_q4_1 (20 bytes): f16 d, f16 m, nibbles as Q4_0; value = d * q + m.
 * - block_q5_0 (22 bytes): f16 d, u32 qh (little-endian: bit j is the fifth bit of value j), nibbles as Q4_0;
 *   value = d * (q - 16).
 * - block_q5_1 (24 bytes): f16 d, f16 m, u32 qh, nibbles; value = d * q + m.
 */
import { dequantizeK, f16AtLeast, fitSymmetric, Q4_K_BYTES, Q5_K_BYTES, Q6_K_BYTES, QK_K, quantizeK } from './kquants.js';
import { f16ToF32, f32ToF16 } from './tensor-file.js';

export enum GgmlType {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q8_1 = 9,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  Q8_K = 15,
  BF16 = 30,
}

/** Elements per block and bytes per block for the types we can read. */
export const GGML_BLOCK: Readonly<Partial<Record<GgmlType, { elems: number; bytes: number }>>> = Object.freeze({
  [GgmlType.F32]: { elems: 1, bytes: 4 },
  [GgmlType.F16]: { elems: 1, bytes: 2 },
  [GgmlType.BF16]: { elems: 1, bytes: 2 },
  [GgmlType.Q8_0]: { elems: 32, bytes: 34 },
  [GgmlType.Q4_0]: { elems: 32, bytes: 18 },
  [GgmlType.Q4_1]: { elems: 32, bytes: 20 },
  [GgmlType.Q5_0]: { elems: 32, bytes: 22 },
  [GgmlType.Q5_1]: { elems: 32, bytes: 24 },
  [GgmlType.Q4_K]: { elems: QK_K, bytes: Q4_K_BYTES },
  [GgmlType.Q5_K]: { elems: QK_K, bytes: Q5_K_BYTES },
  [GgmlType.Q6_K]: { elems: QK_K, bytes: Q6_K_BYTES },
});

/** The block-quantized types we read, by name (for messages). */
export const READABLE_QUANTS = 'Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q4_K, Q5_K, Q6_K';

export function ggmlTypeName(t: number): string {
  return GgmlType[t] ?? `type ${t}`;
}

/**
 * Byte offsets, within one block, of the f16 scales whose NaN/Inf makes every value of the block non-finite (d, and
 * the min of the types that have one). Quants are small integers, so no other value of a block can be non-finite.
 */
export const SCALE_OFFSETS: Readonly<Partial<Record<GgmlType, readonly number[]>>> = Object.freeze({
  [GgmlType.Q8_0]: [0],
  [GgmlType.Q4_0]: [0],
  [GgmlType.Q4_1]: [0, 2],
  [GgmlType.Q5_0]: [0],
  [GgmlType.Q5_1]: [0, 2],
  [GgmlType.Q4_K]: [0, 2],
  [GgmlType.Q5_K]: [0, 2],
  [GgmlType.Q6_K]: [208],
});

/** Dequantize `n` elements (a multiple of the type's block) of a block-quantized tensor starting at `src[0]`. */
export function dequantize(type: GgmlType, src: Uint8Array, n: number): Float32Array {
  if (type === GgmlType.Q4_K) return dequantizeK('Q4_K', src, n);
  if (type === GgmlType.Q5_K) return dequantizeK('Q5_K', src, n);
  if (type === GgmlType.Q6_K) return dequantizeK('Q6_K', src, n);
  const out = new Float32Array(n);
  const dv = new DataView(src.buffer, src.byteOffset, src.byteLength);
  const blocks = n / 32;
  if (type === GgmlType.Q8_0) {
    for (let b = 0; b < blocks; b++) {
      const o = b * 34;
      const d = f16ToF32(dv.getUint16(o, true));
      for (let j = 0; j < 32; j++) out[b * 32 + j] = d * dv.getInt8(o + 2 + j);
    }
  } else if (type === GgmlType.Q4_0 || type === GgmlType.Q4_1) {
    const withMin = type === GgmlType.Q4_1;
    const qs = withMin ? 4 : 2;
    const size = withMin ? 20 : 18;
    for (let b = 0; b < blocks; b++) {
      const o = b * size;
      const d = f16ToF32(dv.getUint16(o, true));
      const m = withMin ? f16ToF32(dv.getUint16(o + 2, true)) : 0;
      const bias = withMin ? 0 : 8;
      for (let j = 0; j < 16; j++) {
        const q = src[o + qs + j]!;
        out[b * 32 + j] = ((q & 0x0f) - bias) * d + m;
        out[b * 32 + j + 16] = ((q >> 4) - bias) * d + m;
      }
    }
  } else if (type === GgmlType.Q5_0 || type === GgmlType.Q5_1) {
    const withMin = type === GgmlType.Q5_1;
    const size = withMin ? 24 : 22;
    const hAt = withMin ? 4 : 2;
    const bias = withMin ? 0 : 16;
    for (let b = 0; b < blocks; b++) {
      const o = b * size;
      const d = f16ToF32(dv.getUint16(o, true));
      const m = withMin ? f16ToF32(dv.getUint16(o + 2, true)) : 0;
      const qh = dv.getUint32(o + hAt, true);
      for (let j = 0; j < 16; j++) {
        const q = src[o + hAt + 4 + j]!;
        out[b * 32 + j] = (((q & 0x0f) | (((qh >>> j) & 1) << 4)) - bias) * d + m;
        out[b * 32 + j + 16] = (((q >> 4) | (((qh >>> (j + 16)) & 1) << 4)) - bias) * d + m;
      }
    }
  } else {
    throw new Error(`dequantize: ${ggmlTypeName(type)} is not a supported block type`);
  }
  return out;
}

// ---- quantization (export) ----------------------------------------------------------------------------------

/** The types `quantize` writes. */
export type QuantType = GgmlType.Q8_0 | GgmlType.Q5_0 | GgmlType.Q4_K | GgmlType.Q5_K | GgmlType.Q6_K;

/**
 * Quantize float32 values to blocks of `type`. `x.length` must be a multiple of the block size, and so must the
 * row length (blocks never straddle rows); the caller checks the row length, this checks the total.
 *
 * Q8_0: d = amax / 127 (the f16 at or above it), q = round(x / d). Q5_0: a least-squares symmetric fit (fitSymmetric in kquants.ts)
 * of the 32 values to 5-bit levels -16..15. K-quants: see kquants.ts.
 */
export function quantize(type: QuantType, x: Float32Array): Uint8Array {
  const block = GGML_BLOCK[type]!;
  if (x.length % block.elems !== 0) throw new RangeError(`quantize: ${x.length} values are not a multiple of ${ggmlTypeName(type)}'s block of ${block.elems}`);
  if (type === GgmlType.Q4_K) return quantizeK('Q4_K', x);
  if (type === GgmlType.Q5_K) return quantizeK('Q5_K', x);
  if (type === GgmlType.Q6_K) return quantizeK('Q6_K', x);
  const blocks = x.length / 32;
  const out = new Uint8Array(blocks * block.bytes);
  if (type === GgmlType.Q8_0) {
    for (let b = 0; b < blocks; b++) {
      let amax = 0;
      for (let j = 0; j < 32; j++) amax = Math.max(amax, Math.abs(x[b * 32 + j]!));
      const d = f16AtLeast(amax / 127);
      const h = f32ToF16(d);
      const o = b * 34;
      out[o] = h & 255;
      out[o + 1] = h >> 8;
      for (let j = 0; j < 32; j++) {
        let q = d > 0 ? Math.round(x[b * 32 + j]! / d) : 0;
        q = q < -128 ? -128 : q > 127 ? 127 : q;
        out[o + 2 + j] = q & 255;
      }
    }
    return out;
  }
  // Q5_0
  const L = new Uint8Array(32);
  for (let b = 0; b < blocks; b++) {
    const s = fitSymmetric(x, b * 32, 32, -16, 15, L, 0);
    const h = f32ToF16(s);
    const d = f16ToF32(h);
    const o = b * 22;
    out[o] = h & 255;
    out[o + 1] = h >> 8;
    let qh = 0;
    for (let j = 0; j < 32; j++) {
      let q = d !== 0 ? Math.round(x[b * 32 + j]! / d) : 0;
      q = (q < -16 ? -16 : q > 15 ? 15 : q) + 16;
      L[j] = q;
      qh |= (q >> 4) << j;
    }
    new DataView(out.buffer, out.byteOffset + o + 2, 4).setUint32(0, qh >>> 0, true);
    for (let j = 0; j < 16; j++) out[o + 6 + j] = (L[j]! & 15) | ((L[j + 16]! & 15) << 4);
  }
  return out;
}
