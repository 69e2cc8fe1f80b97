/**
 * ggml tensor types as stored in GGUF, and dequantization of the block-quantized ones to float32.
 *
 * Only the simple legacy block formats are decoded (Q8_0, Q4_0, Q4_1); they cover the "quantized model in, F32
 * analysis out" use. K-quants and i-quants are rejected by the caller with a hint to re-export as Q8_0/F16.
 * Block layouts follow ggml's ggml-common.h (block_q8_0: f16 d + 32 x int8; block_q4_0: f16 d + 16 bytes of nibbles,
 * low nibbles are elements 0..15, high nibbles 16..31, both offset by 8; block_q4_1: f16 d, f16 m + nibbles).
 */
import { f16ToF32 } from './tensor-file.js';

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
});

export function ggmlTypeName(t: number): string {
  return GgmlType[t] ?? `type ${t}`;
}

/** Dequantize `n` elements (a multiple of 32) of a Q8_0/Q4_0/Q4_1 tensor starting at `src[0]`. */
export function dequantize(type: GgmlType, src: Uint8Array, n: number): Float32Array {
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
  } else {
    throw new Error(`dequantize: ${ggmlTypeName(type)} is not a supported block type`);
  }
  return out;
}
