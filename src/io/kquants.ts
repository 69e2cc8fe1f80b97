/**
 * llama.cpp's K-quants (Q4_K, Q5_K, Q6_K): dequantization exactly as ggml defines it, and quantizers of our own.
 *
 * Every K-quant tensor is a sequence of super-blocks of QK_K = 256 values (a row never shares a super-block with the
 * next: its length must be a multiple of 256). Layouts, byte offsets within one super-block (ggml-common.h):
 *
 * - block_q4_K, 144 bytes: d (f16) @0, dmin (f16) @2, scales[12] @4, qs[128] @16. Eight sub-blocks of 32 values;
 *   value = d * sc[j] * q - dmin * m[j], q a 4-bit quant, sc/m 6-bit (packing below).
 * - block_q5_K, 176 bytes: d @0, dmin @2, scales[12] @4, qh[32] @16, qs[128] @48. As Q4_K with 5-bit quants: the
 *   fifth bit of a value comes from qh.
 * - block_q6_K, 210 bytes: ql[128] @0 (low 4 bits), qh[64] @128 (high 2 bits), scales[16] @192 (int8), d (f16) @208.
 *   Sixteen sub-blocks of 16 values; value = d * sc[j] * (q - 32), q a 6-bit quant.
 *
 * Quant order (value e = 0..255 of a super-block):
 * - Q4_K/Q5_K: c = e >> 6 (a 64-value chunk), hi = (e >> 5) & 1, l = e & 31: the quant is the low (hi = 0) or high
 *   (hi = 1) nibble of qs[32c + l]; Q5_K adds 16 when bit 2c + hi of qh[l] is set. Sub-block j = e >> 5.
 * - Q6_K: h = e >> 7, k = (e >> 5) & 3, l = e & 31: the low 4 bits are the low (k < 2) or high (k >= 2) nibble of
 *   ql[64h + 32(k & 1) + l], the high 2 bits are bits 2k, 2k+1 of qh[32h + l]. Sub-block j = e >> 4.
 *
 * The 12 scale bytes of Q4_K/Q5_K hold eight 6-bit scales sc[0..7] and eight 6-bit mins m[0..7]:
 *   j < 4:  sc[j] = b[j] & 63,                            m[j] = b[j + 4] & 63
 *   j >= 4: sc[j] = (b[j + 4] & 15) | (b[j - 4] >> 6) << 4, m[j] = (b[j + 4] >> 4) | (b[j] >> 6) << 4
 *
 * Dequantization is exact: every product above fits float32's 24-bit significand (an f16 has 11 significant bits,
 * a scale 6 or 8, a quant 5 or 6), so computing in doubles and storing float32 gives the bits ggml's
 * dequantize_row_* gives.
 *
 * Quantizers. llama.cpp's reference quantizer searches scales iteratively with importance weights (make_qkx2_quants
 * and make_qx_quants); ours is a plain least-squares fit, documented here, whose output llama.cpp reads like its own:
 * 1. each sub-block is fitted on its own: a small grid of candidate step sizes around (max - min) / nmax (or
 *    amax / 32 for the symmetric Q6_K) assigns quants by rounding; for each assignment the scale (and the offset, for
 *    Q4_K/Q5_K) minimizing the squared error in closed form is computed; the best candidate is then refined by
 *    reassigning quants to the fitted scale and refitting until nothing improves (at most 4 rounds);
 * 2. the sub-block scales (and mins) are quantized to the super-block's 6-bit (Q4_K/Q5_K) or int8 (Q6_K) codes
 *    relative to their largest value, with d (and dmin) stored as the f16 nearest above (so no code overflows);
 * 3. every quant is finally re-assigned against the scales as stored (f16 times the code), so rounding of the scales
 *    is compensated where it can be.
 * Q4_K/Q5_K offsets are kept non-positive (the stored min is subtracted), as ggml requires: a sub-block of positive
 * values is fitted with offset 0.
 */
import { f16ToF32, f32ToF16 } from './tensor-file.js';

export const QK_K = 256;
export const Q4_K_BYTES = 144;
export const Q5_K_BYTES = 176;
export const Q6_K_BYTES = 210;

// ---- dequantization ---------------------------------------------------------------------------------------------

/** The eight 6-bit scales and mins of a Q4_K/Q5_K super-block whose scale bytes start at src[o]. */
export function unpackScalesMins(src: Uint8Array, o: number, sc: Uint8Array | number[], m: Uint8Array | number[]): void {
  for (let j = 0; j < 4; j++) {
    sc[j] = src[o + j]! & 63;
    m[j] = src[o + j + 4]! & 63;
  }
  for (let j = 4; j < 8; j++) {
    sc[j] = (src[o + j + 4]! & 15) | ((src[o + j - 4]! >> 6) << 4);
    m[j] = (src[o + j + 4]! >> 4) | ((src[o + j]! >> 6) << 4);
  }
}

/** The inverse of unpackScalesMins: eight 6-bit scales and mins into 12 bytes at dst[o]. */
export function packScalesMins(sc: ArrayLike<number>, m: ArrayLike<number>, dst: Uint8Array, o: number): void {
  for (let j = 0; j < 4; j++) {
    dst[o + j] = (sc[j]! & 63) | ((sc[j + 4]! >> 4) << 6);
    dst[o + j + 4] = (m[j]! & 63) | ((m[j + 4]! >> 4) << 6);
    dst[o + j + 8] = (sc[j + 4]! & 15) | ((m[j + 4]! & 15) << 4);
  }
}

const half = (src: Uint8Array, o: number): number => f16ToF32(src[o]! | (src[o + 1]! << 8));

/** Dequantize `n` values (a multiple of 256) of Q4_K (bits 4) or Q5_K (bits 5) blocks into `out`. */
function dequantizeQxK(src: Uint8Array, n: number, bits: 4 | 5, out: Float32Array): void {
  const size = bits === 4 ? Q4_K_BYTES : Q5_K_BYTES;
  const qsAt = bits === 4 ? 16 : 48;
  const sc = new Uint8Array(8);
  const m = new Uint8Array(8);
  for (let o = 0, y = 0; y < n; o += size) {
    const d = half(src, o);
    const dmin = half(src, o + 2);
    unpackScalesMins(src, o + 4, sc, m);
    for (let c = 0; c < 4; c++, y += 64) {
      const d1 = d * sc[2 * c]!, m1 = dmin * m[2 * c]!;
      const d2 = d * sc[2 * c + 1]!, m2 = dmin * m[2 * c + 1]!;
      const q = o + qsAt + 32 * c;
      if (bits === 4) {
        for (let l = 0; l < 32; l++) {
          const byte = src[q + l]!;
          out[y + l] = d1 * (byte & 15) - m1;
          out[y + 32 + l] = d2 * (byte >> 4) - m2;
        }
      } else {
        const shift = 2 * c;
        for (let l = 0; l < 32; l++) {
          const byte = src[q + l]!;
          const h = src[o + 16 + l]! >> shift;
          out[y + l] = d1 * ((byte & 15) | ((h & 1) << 4)) - m1;
          out[y + 32 + l] = d2 * ((byte >> 4) | ((h & 2) << 3)) - m2;
        }
      }
    }
  }
}

function dequantizeQ6K(src: Uint8Array, n: number, out: Float32Array): void {
  for (let b = 0, y = 0; y < n; b++) {
    const o = b * Q6_K_BYTES;
    const d = half(src, o + 208);
    for (let h = 0; h < 2; h++) {
      const ql = o + 64 * h, qh = o + 128 + 32 * h, sc = o + 192 + 8 * h;
      for (let l = 0; l < 32; l++) {
        const s = (l >> 4);
        const lo = src[ql + l]!, lo2 = src[ql + 32 + l]!, hi = src[qh + l]!;
        out[y + l] = d * int8(src[sc + s]!) * (((lo & 15) | ((hi & 3) << 4)) - 32);
        out[y + 32 + l] = d * int8(src[sc + s + 2]!) * (((lo2 & 15) | (((hi >> 2) & 3) << 4)) - 32);
        out[y + 64 + l] = d * int8(src[sc + s + 4]!) * (((lo >> 4) | (((hi >> 4) & 3) << 4)) - 32);
        out[y + 96 + l] = d * int8(src[sc + s + 6]!) * (((lo2 >> 4) | (((hi >> 6) & 3) << 4)) - 32);
      }
      y += 128;
    }
  }
}

const int8 = (b: number): number => (b > 127 ? b - 256 : b);

/** Dequantize `n` values (a multiple of 256) of a Q4_K, Q5_K or Q6_K tensor. */
export function dequantizeK(kind: 'Q4_K' | 'Q5_K' | 'Q6_K', src: Uint8Array, n: number): Float32Array {
  const out = new Float32Array(n);
  if (kind === 'Q6_K') dequantizeQ6K(src, n, out);
  else dequantizeQxK(src, n, kind === 'Q4_K' ? 4 : 5, out);
  return out;
}

// ---- quantization -----------------------------------------------------------------------------------------------

/**
 * The f16 nearest to x whose magnitude is at least |x|'s: a super-block scale rounded down would push the largest
 * sub-block's code past its range (64 for 6 bits, -129 for int8), which matters where f16 gets coarse (subnormal
 * scales, for tensors of values around 1e-4).
 */
export function f16AtLeast(x: number): number {
  let h = f32ToF16(x);
  if (Number.isFinite(x) && Math.abs(f16ToF32(h)) < Math.abs(x) && (h & 0x7fff) < 0x7bff) h++; // next magnitude up (same sign)
  return f16ToF32(h);
}

const TMP = new Uint8Array(QK_K);

/**
 * One candidate assignment for fitAffine: quants round((v - off) * inv) clamped to [0, nmax] into TMP, then the
 * least-squares s and b for them (b <= 0). Returns the squared error, with s and b in FIT[0], FIT[1].
 */
const FIT = new Float64Array(2);
function affineCandidate(x: Float32Array, o: number, n: number, nmax: number, off: number, inv: number, sx: number, sxx: number): number {
  let sl = 0, sll = 0, slx = 0;
  for (let i = 0; i < n; i++) {
    const v = x[o + i]!;
    const t = (v - off) * inv;
    const q = t >= nmax ? nmax : t > 0 ? (t + 0.5) | 0 : 0;
    TMP[i] = q;
    sl += q;
    sll += q * q;
    slx += q * v;
  }
  const det = n * sll - sl * sl;
  let s = 0, b = sx / n;
  if (det > 0) {
    s = (n * slx - sl * sx) / det;
    b = (sll * sx - sl * slx) / det;
  }
  if (b > 0 || s < 0) { // the offset must be <= 0 (ggml subtracts a non-negative min): refit the scale alone
    b = Math.min(0, b);
    s = sll > 0 ? Math.max(0, (slx - b * sl) / sll) : 0;
  }
  FIT[0] = s;
  FIT[1] = b;
  return sxx - 2 * s * slx - 2 * b * sx + s * s * sll + 2 * s * b * sl + n * b * b;
}

/**
 * Least-squares fit of x[o..o+n) ≈ s * L + b with integer L in [0, nmax], s >= 0 and b <= 0 (Q4_K/Q5_K sub-blocks).
 * Writes L into `L[lo..lo+n)` and returns [s, -b] in `res`.
 */
function fitAffine(x: Float32Array, o: number, n: number, nmax: number, L: Uint8Array, lo: number, res: Float64Array): void {
  let min = Infinity, max = -Infinity, sxx = 0, sx = 0;
  for (let i = 0; i < n; i++) {
    const v = x[o + i]!;
    if (v < min) min = v;
    if (v > max) max = v;
    sx += v;
    sxx += v * v;
  }
  if (min > 0) min = 0;
  if (!(max > min)) { // all equal (or NaN): one level
    L.fill(0, lo, lo + n);
    res[0] = 0;
    res[1] = -min;
    return;
  }
  let bestErr = Infinity, bestS = 0, bestB = 0;
  const tol = 1e-12 * sxx;
  const range = max - min;
  for (let k = -AFFINE_STEPS; k <= AFFINE_STEPS; k++) {
    const err = affineCandidate(x, o, n, nmax, min, (nmax + k / AFFINE_STEPS) / range, sx, sxx);
    if (err < bestErr - tol) {
      bestErr = err;
      bestS = FIT[0]!;
      bestB = FIT[1]!;
      L.set(TMP.subarray(0, n), lo);
    }
  }
  for (let round = 0; round < 4 && bestS > 0; round++) {
    const err = affineCandidate(x, o, n, nmax, bestB, 1 / bestS, sx, sxx);
    if (!(err < bestErr - tol)) break;
    bestErr = err;
    bestS = FIT[0]!;
    bestB = FIT[1]!;
    L.set(TMP.subarray(0, n), lo);
  }
  res[0] = bestS;
  res[1] = -bestB;
}

/** Candidate step sizes per side of (max - min) / nmax in fitAffine (steps of 1 / AFFINE_STEPS quant). */
const AFFINE_STEPS = 5;

/** One candidate of fitSymmetric: quants round(v * inv) clamped to [qmin, qmax] into TMP; the error, s in FIT[0]. */
function symmetricCandidate(x: Float32Array, o: number, n: number, qmin: number, qmax: number, inv: number, sxx: number): number {
  let sll = 0, slx = 0;
  for (let i = 0; i < n; i++) {
    const v = x[o + i]!;
    const t = v * inv;
    const q = t >= qmax ? qmax : t <= qmin ? qmin : Math.floor(t + 0.5);
    TMP[i] = q - qmin;
    sll += q * q;
    slx += q * v;
  }
  if (sll === 0) return Infinity;
  FIT[0] = slx / sll;
  return sxx - FIT[0] * slx;
}

/**
 * Least-squares fit of x[o..o+n) ≈ s * L with integer L in [qmin, qmax] (s may be negative: the largest magnitude
 * then takes the wider side, -32 for Q6_K). Writes L - qmin into `L[lo..lo+n)`; returns s.
 */
export function fitSymmetric(x: Float32Array, o: number, n: number, qmin: number, qmax: number, L: Uint8Array, lo: number): number {
  let amax = 0, max = 0, sxx = 0;
  for (let i = 0; i < n; i++) {
    const v = x[o + i]!;
    sxx += v * v;
    if (Math.abs(v) > amax) {
      amax = Math.abs(v);
      max = v;
    }
  }
  if (!(amax > 1e-30)) {
    L.fill(-qmin, lo, lo + n);
    return 0;
  }
  let bestErr = Infinity, bestS = 0;
  const tol = 1e-12 * sxx;
  // the largest magnitude on the wide side (qmin) or on the narrow side (qmax), and steps around both; then
  // refinement rounds at the fitted scale (candidate index >= 2 * span)
  const span = SYM_STEPS + (SYM_STEPS >> 1) + 1;
  for (let c = 0; c < 2 * span + 4; c++) {
    if (c >= 2 * span && bestS === 0) break;
    const k = (c >> 1) - SYM_STEPS;
    const inv = c >= 2 * span ? 1 / bestS : c & 1 ? (qmax + k / SYM_STEPS) / max : (qmin - k / SYM_STEPS) / max;
    const err = symmetricCandidate(x, o, n, qmin, qmax, inv, sxx);
    if (!(err < bestErr - tol)) {
      if (c >= 2 * span) break;
      continue;
    }
    bestErr = err;
    bestS = FIT[0]!;
    L.set(TMP.subarray(0, n), lo);
  }
  return bestS;
}

/** Candidate steps per quant in fitSymmetric. */
const SYM_STEPS = 4;

/** Quantize `x` (length a multiple of 256; rows must not straddle super-blocks) to Q4_K (bits 4) or Q5_K (bits 5). */
function quantizeQxK(x: Float32Array, bits: 4 | 5): Uint8Array {
  const nmax = bits === 4 ? 15 : 31;
  const size = bits === 4 ? Q4_K_BYTES : Q5_K_BYTES;
  const nb = x.length / QK_K;
  const out = new Uint8Array(nb * size);
  const L = new Uint8Array(QK_K);
  const scales = new Float64Array(8), mins = new Float64Array(8);
  const ls = new Uint8Array(8), lm = new Uint8Array(8);
  const res = new Float64Array(2);
  for (let b = 0; b < nb; b++) {
    const xo = b * QK_K, o = b * size;
    let maxScale = 0, maxMin = 0;
    for (let j = 0; j < 8; j++) {
      fitAffine(x, xo + 32 * j, 32, nmax, L, 32 * j, res);
      scales[j] = res[0]!;
      mins[j] = res[1]!;
      if (scales[j]! > maxScale) maxScale = scales[j]!;
      if (mins[j]! > maxMin) maxMin = mins[j]!;
    }
    const d = f16AtLeast(maxScale / 63), dmin = f16AtLeast(maxMin / 63);
    for (let j = 0; j < 8; j++) {
      ls[j] = d > 0 ? Math.min(63, Math.round(scales[j]! / d)) : 0;
      lm[j] = dmin > 0 ? Math.min(63, Math.round(mins[j]! / dmin)) : 0;
    }
    const dh = f32ToF16(d), mh = f32ToF16(dmin);
    out[o] = dh & 255; out[o + 1] = dh >> 8;
    out[o + 2] = mh & 255; out[o + 3] = mh >> 8;
    packScalesMins(ls, lm, out, o + 4);
    // final quants against the scales as stored
    for (let j = 0; j < 8; j++) {
      const ds = d * ls[j]!, dm = dmin * lm[j]!;
      for (let i = 0; i < 32; i++) {
        let q = ds > 0 ? Math.round((x[xo + 32 * j + i]! + dm) / ds) : 0;
        q = q < 0 ? 0 : q > nmax ? nmax : q;
        L[32 * j + i] = q;
      }
    }
    const qs = o + (bits === 4 ? 16 : 48);
    for (let c = 0; c < 4; c++) {
      for (let l = 0; l < 32; l++) {
        const a = L[64 * c + l]!, h = L[64 * c + 32 + l]!;
        out[qs + 32 * c + l] = (a & 15) | ((h & 15) << 4);
        if (bits === 5) out[o + 16 + l] |= ((a >> 4) << (2 * c)) | ((h >> 4) << (2 * c + 1));
      }
    }
  }
  return out;
}

function quantizeQ6K(x: Float32Array): Uint8Array {
  const nb = x.length / QK_K;
  const out = new Uint8Array(nb * Q6_K_BYTES);
  const L = new Uint8Array(QK_K);
  const scales = new Float64Array(16);
  for (let b = 0; b < nb; b++) {
    const xo = b * QK_K, o = b * Q6_K_BYTES;
    let maxAbs = 0, maxScale = 0;
    for (let j = 0; j < 16; j++) {
      const s = fitSymmetric(x, xo + 16 * j, 16, -32, 31, L, 16 * j);
      scales[j] = s;
      if (Math.abs(s) > maxAbs) {
        maxAbs = Math.abs(s);
        maxScale = s;
      }
    }
    if (maxAbs === 0) continue; // all zero: d = 0, everything 0
    // the largest scale takes int8's wide side (-128), as ggml does
    const d = f16AtLeast(maxScale / -128);
    const dh = f32ToF16(d);
    out[o + 208] = dh & 255; out[o + 209] = dh >> 8;
    for (let j = 0; j < 16; j++) {
      let sc = d !== 0 ? Math.round(scales[j]! / d) : 0;
      sc = sc < -128 ? -128 : sc > 127 ? 127 : sc;
      out[o + 192 + j] = sc & 255;
      const ds = d * sc;
      for (let i = 0; i < 16; i++) {
        let q = ds !== 0 ? Math.round(x[xo + 16 * j + i]! / ds) : 0;
        q = q < -32 ? -32 : q > 31 ? 31 : q;
        L[16 * j + i] = q + 32;
      }
    }
    for (let h = 0; h < 2; h++) {
      const ql = o + 64 * h, qh = o + 128 + 32 * h, e = 128 * h;
      for (let l = 0; l < 32; l++) {
        const q1 = L[e + l]!, q2 = L[e + 32 + l]!, q3 = L[e + 64 + l]!, q4 = L[e + 96 + l]!;
        out[ql + l] = (q1 & 15) | ((q3 & 15) << 4);
        out[ql + 32 + l] = (q2 & 15) | ((q4 & 15) << 4);
        out[qh + l] = (q1 >> 4) | ((q2 >> 4) << 2) | ((q3 >> 4) << 4) | ((q4 >> 4) << 6);
      }
    }
  }
  return out;
}

/** Quantize `x` (length a multiple of 256) to Q4_K, Q5_K or Q6_K super-blocks. */
export function quantizeK(kind: 'Q4_K' | 'Q5_K' | 'Q6_K', x: Float32Array): Uint8Array {
  if (x.length % QK_K !== 0) throw new RangeError(`quantizeK: ${x.length} values are not a multiple of ${QK_K}`);
  return kind === 'Q6_K' ? quantizeQ6K(x) : quantizeQxK(x, kind === 'Q4_K' ? 4 : 5);
}
