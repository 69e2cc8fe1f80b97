/**
 * Raw tensors as they come out of (and go into) model files, before any model code sees them.
 *
 * Loaders produce `RawTensor`s: a name, a storage dtype, a row-major shape (outermost axis first, as in PyTorch and
 * safetensors) and the data. 16-bit floats stay 16-bit (bit patterns in a Uint16Array) so that a model stored in
 * F16/BF16 keeps half the bytes in memory; the converters below turn them into F32 when a caller needs numbers.
 * Quantized GGUF tensors are F32 tensors whose values are dequantized on first use; those in a format the kernels
 * read directly (Q8_0, Q4_K, Q5_K, Q6_K) also carry their blocks (`quant`), so a model can keep them quantized.
 *
 * All multi-byte values in our formats are little-endian; typed-array views are in host order, so we refuse to run
 * on a big-endian host rather than silently reading byte-swapped weights.
 */
import { closeSync, fsyncSync, openSync, renameSync, unlinkSync, writeSync } from 'node:fs';
import { endianness } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { RecurformerError } from '../tensor/errors.js';
import type { ByteSource } from './binary-reader.js';

export type RawDType = 'F32' | 'F16' | 'BF16';

export interface RawTensor {
  name: string;
  dtype: RawDType;
  /** Row-major, outermost axis first. */
  shape: number[];
  /** F32: Float32Array. F16/BF16: the 16-bit patterns. */
  data: Float32Array | Uint16Array;
  /** The tensor's quantized blocks where its file stores it so (`data` is then their dequantization). */
  quant?: QuantBlocks;
}

/** The GGUF block formats that can stay quantized in memory (model/weights.ts QuantWeight). */
export type QuantKind = 'Q8_0' | 'Q4_K' | 'Q5_K' | 'Q6_K';

/** A 2-D tensor's blocks as its file stores them, rows one after another, read when asked for (and not kept). */
export interface QuantBlocks {
  kind: QuantKind;
  bytes: number;
  read: () => Uint8Array;
}

if (endianness() !== 'LE') {
  throw new RecurformerError('recurformer io: big-endian hosts are not supported', 'model files are little-endian');
}

/** Bytes per element of each storage dtype. */
export const ITEM_SIZE: Readonly<Record<RawDType, number>> = Object.freeze({ F32: 4, F16: 2, BF16: 2 });

/** Product of the dims; 1 for a scalar (shape []). */
export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

// ---- 16-bit float conversions -------------------------------------------------------------------------------

const f32Scratch = new Float32Array(1);
const u32Scratch = new Uint32Array(f32Scratch.buffer);

/** IEEE 754 half (bit pattern) -> number. Exact: every half is representable in float32. */
export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24; // zero or subnormal
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

/** bfloat16 (bit pattern) -> number: the upper half of a float32. */
export function bf16ToF32(b: number): number {
  u32Scratch[0] = (b & 0xffff) << 16;
  return f32Scratch[0]!;
}

/** number -> IEEE half bit pattern, round to nearest even; overflow -> Inf, NaN stays NaN. */
export function f32ToF16(x: number): number {
  f32Scratch[0] = x;
  const f = u32Scratch[0]!;
  const sign = (f >>> 16) & 0x8000;
  const exp = (f >>> 23) & 0xff;
  let mant = f & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    // Subnormal half (or zero): shift the implicit-1 mantissa right, rounding to nearest even.
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    const half = 1 << (shift - 1);
    const rest = mant & ((1 << shift) - 1);
    let m = mant >>> shift;
    if (rest > half || (rest === half && m & 1)) m++;
    return sign | m;
  }
  const rest = mant & 0x1fff;
  let m = mant >>> 13;
  if (rest > 0x1000 || (rest === 0x1000 && m & 1)) {
    m++;
    if (m === 0x400) {
      m = 0;
      e++;
      if (e >= 0x1f) return sign | 0x7c00;
    }
  }
  return sign | (e << 10) | m;
}

/** number -> bfloat16 bit pattern, round to nearest even; NaN stays a quiet NaN. */
export function f32ToBf16(x: number): number {
  f32Scratch[0] = x;
  const f = u32Scratch[0]!;
  if ((f & 0x7f800000) === 0x7f800000 && f & 0x7fffff) return ((f >>> 16) | 0x40) & 0xffff;
  return ((f + 0x7fff + ((f >>> 16) & 1)) >>> 16) & 0xffff;
}

/** Half bit patterns -> Float32Array (uses a 64K lookup table built on first use). */
export function f16ArrayToF32(src: Uint16Array): Float32Array {
  const table = halfTable();
  const out = new Float32Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = table[src[i]!]!;
  return out;
}

/** bfloat16 bit patterns -> Float32Array (a shift into the upper half of each float32 word). */
export function bf16ArrayToF32(src: Uint16Array): Float32Array {
  const out = new Float32Array(src.length);
  const bits = new Uint32Array(out.buffer);
  for (let i = 0; i < src.length; i++) bits[i] = src[i]! << 16;
  return out;
}

export function f32ArrayToF16(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32ToF16(src[i]!);
  return out;
}

export function f32ArrayToBf16(src: Float32Array): Uint16Array {
  const out = new Uint16Array(src.length);
  for (let i = 0; i < src.length; i++) out[i] = f32ToBf16(src[i]!);
  return out;
}

let halfLut: Float32Array | null = null;
function halfTable(): Float32Array {
  if (!halfLut) {
    halfLut = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfLut[h] = f16ToF32(h);
  }
  return halfLut;
}

/** The tensor's values as float32 (a copy for 16-bit dtypes, the same array for F32). */
export function toF32(t: RawTensor): Float32Array {
  if (t.dtype === 'F32') return t.data as Float32Array;
  return t.dtype === 'F16' ? f16ArrayToF32(t.data as Uint16Array) : bf16ArrayToF32(t.data as Uint16Array);
}

// ---- lazily read tensors and the finite check ---------------------------------------------------------------

type TensorData = RawTensor['data'];

/** Reads a tensor from its file: the data and how many of its values are NaN or +-Inf. */
export type TensorReader = () => { data: TensorData; nonFinite: number };

/** A tensor whose data is computed on first access and then kept. Spreading it (`{ ...t }`) computes it. */
export function deferredTensor(name: string, dtype: RawDType, shape: number[], load: () => TensorData): RawTensor {
  const t = { name, dtype, shape } as RawTensor;
  const settle = (data: TensorData) => Object.defineProperty(t, 'data', { value: data, writable: true, enumerable: true, configurable: true });
  Object.defineProperty(t, 'data', {
    enumerable: true,
    configurable: true,
    get: () => {
      const data = load();
      settle(data);
      return data;
    },
    set: settle,
  });
  return t;
}

/** Whether `t.data` is still to be read or computed. */
export function isDeferred(t: RawTensor): boolean {
  return Object.getOwnPropertyDescriptor(t, 'data')?.get !== undefined;
}

/** Counts a file tensor's NaN and +-Inf values without loading it. */
const scanners = new WeakMap<RawTensor, () => number>();

/**
 * A tensor of a model file, read when its data is first used: loaders hand out every tensor this way, so a command
 * reads only the tensors it touches (`inspect`: none) and no file is ever held whole. A tensor holding NaN or Inf
 * warns when it is read, naming the file and the tensor: such weights load fine and then produce NaN logits.
 * `scan` counts those values straight from the file (for `inspect --check-weights`).
 */
export function fileTensor(file: string, name: string, dtype: RawDType, shape: number[], read: TensorReader, scan: () => number,
  quant?: { kind: QuantKind; bytes: number; read: () => { blocks: Uint8Array; nonFinite: number } }): RawTensor {
  const t = deferredTensor(name, dtype, shape, () => {
    const { data, nonFinite } = read();
    if (nonFinite > 0) warnNonFinite(file, name, nonFinite, data.length);
    return data;
  });
  if (quant) {
    t.quant = {
      kind: quant.kind, bytes: quant.bytes, read: () => {
        const { blocks, nonFinite } = quant.read();
        if (nonFinite > 0) warnNonFinite(file, name, nonFinite, numel(shape));
        return blocks;
      },
    };
  }
  scanners.set(t, scan);
  return t;
}

/** NaN and +-Inf values in a tensor; a file tensor not loaded yet is scanned in its file (no warning, nothing kept). */
export function nonFiniteCount(t: RawTensor): number {
  const scan = scanners.get(t);
  return scan && isDeferred(t) ? scan() : countNonFinite(t.dtype, t.data);
}

/** Read `dtype` values stored at [offset, offset + bytes) of a file and count NaN/Inf, one chunk in memory at a time. */
export function scanNonFinite(src: ByteSource, offset: number, bytes: number, dtype: RawDType): number {
  const chunk = new ArrayBuffer(Math.min(bytes, SCAN_CHUNK));
  let bad = 0;
  for (let done = 0; done < bytes; done += chunk.byteLength) {
    const n = Math.min(chunk.byteLength, bytes - done);
    src.read(offset + done, new Uint8Array(chunk, 0, n));
    bad += countNonFinite(dtype, dtype === 'F32' ? new Float32Array(chunk, 0, n / 4) : new Uint16Array(chunk, 0, n / 2));
  }
  return bad;
}

const SCAN_CHUNK = 1 << 24;

/** NaN and +-Inf values in stored data: an all-ones exponent, tested on the bits (no float conversion). */
export function countNonFinite(dtype: RawDType, data: TensorData): number {
  let bad = 0;
  if (dtype === 'F32') {
    const bits = new Uint32Array(data.buffer, data.byteOffset, data.length);
    for (let i = 0; i < bits.length; i++) if ((bits[i]! & 0x7f800000) === 0x7f800000) bad++;
  } else {
    const exp = dtype === 'F16' ? 0x7c00 : 0x7f80;
    for (let i = 0; i < data.length; i++) if ((data[i]! & exp) === exp) bad++;
  }
  return bad;
}

/** One warning line per bad tensor, at most this many per file (a broken file can have hundreds). */
const MAX_WARNINGS_PER_FILE = 8;
const warnings = new Map<string, number>();

function warnNonFinite(file: string, tensor: string, bad: number, total: number): void {
  if (process.env.RECURFORMER_QUIET) return;
  const k = warnings.get(file) ?? 0;
  warnings.set(file, k + 1);
  if (k < MAX_WARNINGS_PER_FILE) {
    process.stderr.write(`recurformer: warning: ${file}: tensor '${tensor}' has ${bad} non-finite values (NaN or Inf) of ${total}\n`);
  } else if (k === MAX_WARNINGS_PER_FILE) {
    process.stderr.write(`recurformer: warning: ${file}: more tensors have non-finite values; \`recurformer inspect --check-weights\` lists them all\n`);
  }
}

/** A byte view of the tensor's data (no copy). */
export function tensorBytes(t: RawTensor): Uint8Array {
  return new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
}

// ---- atomic writes ------------------------------------------------------------------------------------------

/**
 * Write a file so that readers see either the old file or the complete new one, never a torn one: write a temp file
 * in the same directory (rename is only atomic within a filesystem), fsync it, rename over the target, then fsync the
 * directory so the rename itself survives a crash. `data` may be a list of chunks to avoid one large concatenation.
 */
export function writeFileAtomic(path: string, data: Uint8Array | readonly Uint8Array[],
  onProgress?: (written: number, total: number) => void): void {
  const dir = dirname(path);
  const tmp = join(dir, `.${basename(path)}.${process.pid}.${Date.now().toString(36)}.tmp`);
  const chunks = data instanceof Uint8Array ? [data] : data;
  const total = chunks.reduce((s, c) => s + c.byteLength, 0);
  const fd = openSync(tmp, 'w', 0o644);
  try {
    let written = 0;
    for (const chunk of chunks) {
      let off = 0;
      while (off < chunk.byteLength) {
        // pieces of 1 MiB at most, so progress (and the crash tests' pause hook) can land mid-file
        const n = writeSync(fd, chunk, off, Math.min(chunk.byteLength - off, 1 << 20));
        off += n;
        written += n;
        onProgress?.(written, total);
      }
    }
    fsyncSync(fd);
  } catch (e) {
    closeSync(fd);
    unlinkSync(tmp);
    throw e;
  }
  closeSync(fd);
  renameSync(tmp, path);
  const dfd = openSync(dir, 'r');
  try {
    fsyncSync(dfd);
  } finally {
    closeSync(dfd);
  }
}
