/**
 * GGUF reader (versions 2 and 3), the llama.cpp model format.
 *
 * Layout (ggml docs/gguf.md): "GGUF" magic, u32 version, u64 tensor count, u64 metadata count; metadata as
 * (string key, u32 value type, value); tensor infos as (string name, u32 n_dims, u64 dims[n_dims], u32 ggml type,
 * u64 offset); padding to `general.alignment` (default 32); the data region, in which each tensor's offset is
 * relative to the region start and aligned. Strings are u64 length + UTF-8 bytes.
 *
 * GGUF lists dims innermost first (ggml's ne[0] is the contiguous axis). We expose shapes outermost first, like
 * safetensors and PyTorch, so a [vocab, dim] embedding reads as [vocab, dim] from either format.
 *
 * Why not @huggingface/gguf: it parses metadata only, and on a truncated local file it returned partial metadata
 * without an error (checked with 0.4.6), which breaks "loaders trust nothing". We use it in tests as an independent
 * oracle for the metadata we parse.
 *
 * The file is never read whole: the header is read through a file descriptor and each tensor's bytes are read at
 * their offset when the tensor's data is first used (see `fileTensor`), so files over 2 GiB load and `inspect` reads
 * headers only. Every count in the header is checked against the bytes the file has before anything is allocated.
 */
import { FormatError } from '../tensor/errors.js';
import { BinaryReader, bufferSource, fileSource, type ByteSource } from './binary-reader.js';
import { dequantize, GGML_BLOCK, GgmlType, ggmlTypeName, READABLE_QUANTS, SCALE_OFFSETS } from './ggml-quants.js';
import { countNonFinite, fileTensor, numel, scanNonFinite, type QuantKind, type RawDType, type RawTensor } from './tensor-file.js';

export enum GgufType {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  BOOL = 7,
  STRING = 8,
  ARRAY = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
}

export type GgufScalar = number | bigint | boolean | string;
/** Numeric arrays are typed arrays (token scores and types can have 100k+ entries); u64/i64 arrays are BigInt64. */
export type GgufArrayValue =
  | Uint8Array | Int8Array | Uint16Array | Int16Array | Uint32Array | Int32Array | Float32Array | Float64Array
  | BigUint64Array | BigInt64Array | boolean[] | string[] | GgufValue[];

/** A typed metadata value: the type is kept so that a file read and written back keeps its types. */
export type GgufValue =
  | { type: Exclude<GgufType, GgufType.ARRAY>; value: GgufScalar }
  | { type: GgufType.ARRAY; elemType: GgufType; value: GgufArrayValue };

export interface GgufTensorInfo {
  name: string;
  /** Outermost first. */
  shape: number[];
  type: GgmlType;
  /** Relative to the data region. */
  offset: number;
  bytes: number;
}

export interface GgufFile {
  file: string;
  version: number;
  alignment: number;
  metadata: Map<string, GgufValue>;
  tensorInfos: GgufTensorInfo[];
  /** Decoded tensors (read on first use): F32/F16/BF16 as stored, quantized types (legacy and K-quants) dequantized to F32. */
  tensors: Map<string, RawTensor>;
}

const MAGIC = 0x46554747; // "GGUF" read as a little-endian u32
const DEFAULT_ALIGNMENT = 32;
/** Sanity bounds on counts, so a corrupt count fails fast instead of allocating gigabytes. */
const MAX_DIMS = 4;
/**
 * The smallest entries: a metadata pair is an empty key (u64 length), a u32 type and a 1-byte value; a tensor info
 * an empty name, u32 n_dims = 0, u32 type and u64 offset. A count needing more bytes than the file has is
 * corruption, not a huge model.
 */
const MIN_KV_BYTES = 8 + 4 + 1;
const MIN_TENSOR_INFO_BYTES = 8 + 4 + 4 + 8;

export function readGguf(path: string, opts: { tensors?: boolean } = {}): GgufFile {
  return parseSource(fileSource(path), opts);
}

/** Parse a GGUF file held in memory. With `tensors: false` only metadata and tensor infos are decoded. */
export function parseGguf(buf: Buffer, file: string, opts: { tensors?: boolean } = {}): GgufFile {
  return parseSource(bufferSource(buf, file), opts);
}

function parseSource(src: ByteSource, opts: { tensors?: boolean }): GgufFile {
  const file = src.file;
  const r = new BinaryReader(src);
  const magic = r.u32('magic');
  if (magic !== MAGIC) {
    throw new FormatError(file, `bad magic 0x${magic.toString(16)} (expected "GGUF")`, 'this is not a GGUF file');
  }
  const version = r.u32('version');
  if (version !== 2 && version !== 3) {
    throw new FormatError(file, `GGUF version ${version} is not supported (2 and 3 are)`,
      version === 1 ? 'GGUF v1 is obsolete; re-convert with a current llama.cpp' : 'the file is corrupt or from a newer llama.cpp');
  }
  const tensorCount = r.u64('tensor count');
  const kvCount = r.u64('metadata count');
  for (const [what, n, min] of [['tensor count', tensorCount, MIN_TENSOR_INFO_BYTES], ['metadata count', kvCount, MIN_KV_BYTES]] as const) {
    if (n * min > r.remaining) {
      throw new FormatError(file, `${what} ${n} cannot fit in ${r.length} bytes (each entry takes at least ${min})`,
        'the file is truncated or corrupt');
    }
  }

  const metadata = new Map<string, GgufValue>();
  for (let i = 0; i < kvCount; i++) {
    const key = readString(r, `metadata key #${i}`);
    if (metadata.has(key)) throw new FormatError(file, `duplicate metadata key '${key}'`, 'the file is corrupt');
    metadata.set(key, readValue(r, r.u32(`type of '${key}'`), key));
  }

  const alignment = readAlignment(metadata, file);
  const tensorInfos: GgufTensorInfo[] = [];
  const names = new Set<string>();
  for (let i = 0; i < tensorCount; i++) {
    const info = readTensorInfo(r, i, file);
    if (names.has(info.name)) throw new FormatError(file, 'duplicate tensor name', 'the file is corrupt', info.name);
    names.add(info.name);
    tensorInfos.push(info);
  }

  // The data region starts at the next multiple of the file's alignment, and tensor offsets are relative to it.
  const dataStart = Math.ceil(r.pos / alignment) * alignment;
  const dataLen = r.length - dataStart;
  if (tensorCount > 0 && dataLen < 0) {
    throw new FormatError(file, `truncated: the data region would start at ${dataStart}, beyond the file (${r.length} bytes)`,
      'the file is incomplete; fetch it again');
  }
  checkTensorBounds(tensorInfos, dataLen, alignment, file);

  const tensors = new Map<string, RawTensor>();
  if (opts.tensors !== false) {
    for (const info of tensorInfos) {
      const at = dataStart + info.offset;
      const kind = KEPT_QUANTIZED[info.type];
      tensors.set(info.name, fileTensor(file, info.name, FLOAT_DTYPE[info.type] ?? 'F32', info.shape,
        () => readTensor(src, at, info), () => scanTensor(src, at, info),
        kind && info.shape.length === 2 ? { kind, bytes: info.bytes, read: () => readBlocks(src, at, info) } : undefined));
    }
  }
  return { file, version, alignment, metadata, tensorInfos, tensors };
}

function readString(r: BinaryReader, what: string): string {
  const n = r.u64(`length of ${what}`);
  return r.utf8(n, what);
}

function readValue(r: BinaryReader, type: number, key: string, depth = 0): GgufValue {
  const what = `value of '${key}'`;
  switch (type) {
    case GgufType.U8: return { type, value: r.u8(what) };
    case GgufType.I8: { const v = r.u8(what); return { type, value: v > 127 ? v - 256 : v }; }
    case GgufType.U16: return { type, value: r.u16(what) };
    case GgufType.I16: return { type, value: r.i16(what) };
    case GgufType.U32: return { type, value: r.u32(what) };
    case GgufType.I32: return { type, value: r.i32(what) };
    case GgufType.F32: return { type, value: shortestF32(r.f32(what)) };
    case GgufType.BOOL: {
      const b = r.u8(what);
      if (b > 1) throw new FormatError(r.file, `bool ${what} is ${b}`, 'the file is corrupt');
      return { type, value: b === 1 };
    }
    case GgufType.STRING: return { type, value: readString(r, what) };
    case GgufType.U64: case GgufType.I64: {
      const v = r.big64(type === GgufType.I64, what);
      return { type, value: v >= -BigInt(Number.MAX_SAFE_INTEGER) && v <= BigInt(Number.MAX_SAFE_INTEGER) ? Number(v) : v };
    }
    case GgufType.F64: return { type, value: r.f64(what) };
    case GgufType.ARRAY: {
      if (depth > 8) throw new FormatError(r.file, `arrays nested too deeply in '${key}'`, 'the file is corrupt');
      const elemType = r.u32(`element type of '${key}'`);
      const n = r.u64(`length of '${key}'`);
      return { type, elemType, value: readArray(r, elemType, n, key, depth) };
    }
    default:
      throw new FormatError(r.file, `unknown metadata value type ${type} for '${key}'`, 'the file is corrupt or from a newer GGUF version');
  }
}

/**
 * The shortest decimal that rounds to the same float32 (1e-5 rather than 9.99999974737875e-6), so hyperparameters
 * written from decimal configs read back as the decimals they were. Same float32, so nothing computed changes.
 */
function shortestF32(x: number): number {
  if (!Number.isFinite(x)) return x;
  for (let p = 1; p <= 9; p++) {
    const d = Number(x.toPrecision(p));
    if (Math.fround(d) === x) return d;
  }
  return x;
}

const TYPED: Partial<Record<GgufType, { size: number; make: (b: ArrayBuffer) => GgufArrayValue }>> = {
  [GgufType.U8]: { size: 1, make: (b) => new Uint8Array(b) },
  [GgufType.I8]: { size: 1, make: (b) => new Int8Array(b) },
  [GgufType.U16]: { size: 2, make: (b) => new Uint16Array(b) },
  [GgufType.I16]: { size: 2, make: (b) => new Int16Array(b) },
  [GgufType.U32]: { size: 4, make: (b) => new Uint32Array(b) },
  [GgufType.I32]: { size: 4, make: (b) => new Int32Array(b) },
  [GgufType.F32]: { size: 4, make: (b) => new Float32Array(b) },
  [GgufType.U64]: { size: 8, make: (b) => new BigUint64Array(b) },
  [GgufType.I64]: { size: 8, make: (b) => new BigInt64Array(b) },
  [GgufType.F64]: { size: 8, make: (b) => new Float64Array(b) },
};

function readArray(r: BinaryReader, elemType: number, n: number, key: string, depth: number): GgufArrayValue {
  const typed = TYPED[elemType as GgufType];
  if (typed) {
    const bytes = r.bytes(n * typed.size, `array '${key}' (${n} elements)`);
    const copy = new ArrayBuffer(bytes.byteLength);
    new Uint8Array(copy).set(bytes);
    return typed.make(copy);
  }
  // Variable-size elements have a minimum size (a string its u64 length, an array its type and length): reject a
  // length the file cannot hold before reading, and grow the array as elements arrive rather than preallocating.
  const min = elemType === GgufType.STRING ? 8 : elemType === GgufType.ARRAY ? 12 : 1;
  r.need(n * min, `array '${key}' (${n} elements)`);
  if (elemType === GgufType.STRING) {
    const out: string[] = [];
    for (let i = 0; i < n; i++) out.push(readString(r, `'${key}'[${i}]`));
    return out;
  }
  if (elemType === GgufType.BOOL) {
    const out: boolean[] = [];
    for (let i = 0; i < n; i++) out.push(readValue(r, GgufType.BOOL, key).value as boolean);
    return out;
  }
  if (elemType === GgufType.ARRAY) {
    const out: GgufValue[] = [];
    for (let i = 0; i < n; i++) out.push(readValue(r, GgufType.ARRAY, `${key}[${i}]`, depth + 1));
    return out;
  }
  throw new FormatError(r.file, `unknown array element type ${elemType} for '${key}'`, 'the file is corrupt');
}

function readAlignment(metadata: Map<string, GgufValue>, file: string): number {
  const v = metadata.get('general.alignment');
  if (v === undefined) return DEFAULT_ALIGNMENT;
  const a = v.value;
  // Not `a & (a - 1)`: bitwise operators truncate to 32 bits, which passes 2^32 + 2^31.
  if (typeof a !== 'number' || !Number.isInteger(a) || a <= 0 || !Number.isInteger(Math.log2(a))) {
    throw new FormatError(file, `metadata key 'general.alignment' = ${String(a)} is not a nonzero power of two`, 'the file is corrupt');
  }
  return a;
}

function readTensorInfo(r: BinaryReader, i: number, file: string): GgufTensorInfo {
  const name = readString(r, `name of tensor #${i}`);
  const nDims = r.u32(`n_dims of '${name}'`);
  if (nDims > MAX_DIMS) throw new FormatError(file, `has ${nDims} dims (at most ${MAX_DIMS})`, 'the file is corrupt', name);
  const ne: number[] = [];
  for (let d = 0; d < nDims; d++) ne.push(r.u64(`dim ${d} of '${name}'`));
  const type = r.u32(`type of '${name}'`) as GgmlType;
  const offset = r.u64(`offset of '${name}'`);
  const block = GGML_BLOCK[type];
  if (!block) {
    throw new FormatError(file, `unsupported tensor type ${ggmlTypeName(type)}`,
      `supported: F32, F16, BF16, ${READABLE_QUANTS}; re-export the model with llama-quantize to one of them (Q4_K_M, Q8_0, F16)`, name);
  }
  const n = ne.reduce((a, b) => a * b, 1);
  // blocks run along rows (ne[0]) and never straddle two: a row length that is not a multiple of the block is corrupt
  if (!Number.isSafeInteger(n) || (ne[0] ?? 1) % block.elems !== 0) {
    throw new FormatError(file, `row length ${ne[0] ?? 1} (dims [${ne.join(', ')}]) does not fit ${ggmlTypeName(type)} blocks of ${block.elems}`,
      'the file is corrupt', name);
  }
  return { name, shape: ne.slice().reverse(), type, offset, bytes: (n / block.elems) * block.bytes };
}

/** Offsets must be aligned, inside the data region, and tensors must not overlap (gaps are padding). */
function checkTensorBounds(infos: GgufTensorInfo[], dataLen: number, alignment: number, file: string): void {
  for (const t of infos) {
    if (t.offset % alignment !== 0) {
      throw new FormatError(file, `offset ${t.offset} is not a multiple of the alignment ${alignment}`, 'the file is corrupt', t.name);
    }
    if (t.offset + t.bytes > dataLen) {
      throw new FormatError(file, `data [${t.offset}, ${t.offset + t.bytes}) out of range: the data region has ${Math.max(0, dataLen)} bytes`,
        'the file is truncated or corrupt', t.name);
    }
  }
  const sorted = [...infos].sort((a, b) => a.offset - b.offset);
  for (let i = 1; i < sorted.length; i++) {
    const prev = sorted[i - 1]!;
    const cur = sorted[i]!;
    if (cur.offset < prev.offset + prev.bytes) {
      throw new FormatError(file, `data at ${cur.offset} overlaps tensor '${prev.name}' [${prev.offset}, ${prev.offset + prev.bytes})`,
        'the file is corrupt', cur.name);
    }
  }
}

/** The float types, stored as they are kept in memory; the others are block-quantized, dequantized to F32. */
const FLOAT_DTYPE: Partial<Record<GgmlType, RawDType>> = { [GgmlType.F32]: 'F32', [GgmlType.F16]: 'F16', [GgmlType.BF16]: 'BF16' };

/** The block formats the kernels read directly (gemmQ): 2-D tensors of these types also offer their blocks. */
const KEPT_QUANTIZED: Partial<Record<GgmlType, QuantKind>> = {
  [GgmlType.Q8_0]: 'Q8_0', [GgmlType.Q4_K]: 'Q4_K', [GgmlType.Q5_K]: 'Q5_K', [GgmlType.Q6_K]: 'Q6_K',
};

/** A quantized tensor's blocks as stored, and the number of values in blocks with a non-finite scale. */
function readBlocks(src: ByteSource, at: number, info: GgufTensorInfo): { blocks: Uint8Array; nonFinite: number } {
  const blocks = new Uint8Array(info.bytes);
  src.read(at, blocks);
  return { blocks, nonFinite: badScales(info.type, blocks) * GGML_BLOCK[info.type]!.elems };
}

/** Read one tensor at its absolute offset `at`, counting its NaN/Inf values (for quantized types, from the scales). */
function readTensor(src: ByteSource, at: number, info: GgufTensorInfo): { data: Float32Array | Uint16Array; nonFinite: number } {
  const n = numel(info.shape);
  const dtype = FLOAT_DTYPE[info.type];
  if (dtype) {
    const data = dtype === 'F32' ? new Float32Array(n) : new Uint16Array(n);
    src.read(at, data);
    return { data, nonFinite: countNonFinite(dtype, data) };
  }
  const raw = new Uint8Array(info.bytes);
  src.read(at, raw);
  return { data: dequantize(info.type, raw, n), nonFinite: badScales(info.type, raw) * GGML_BLOCK[info.type]!.elems };
}

/** The NaN/Inf count of readTensor without decoding or keeping the tensor. */
function scanTensor(src: ByteSource, at: number, info: GgufTensorInfo): number {
  const dtype = FLOAT_DTYPE[info.type];
  if (dtype) return scanNonFinite(src, at, info.bytes, dtype);
  const raw = new Uint8Array(info.bytes);
  src.read(at, raw);
  return badScales(info.type, raw) * GGML_BLOCK[info.type]!.elems;
}

/**
 * Blocks whose f16 scale (d; and the min of Q4_1/Q5_1, dmin of Q4_K/Q5_K) is NaN or Inf: every value of such a block
 * is non-finite, and no other value can be (quants are small integers), so checking the scales is exact and cheap.
 */
function badScales(type: GgmlType, raw: Uint8Array): number {
  const { bytes } = GGML_BLOCK[type]!;
  const scales = SCALE_OFFSETS[type]!;
  let bad = 0;
  for (let o = 0; o < raw.byteLength; o += bytes) {
    for (const s of scales) {
      if ((raw[o + s + 1]! & 0x7c) === 0x7c) { // all-ones f16 exponent: NaN or Inf
        bad++;
        break;
      }
    }
  }
  return bad;
}

// ---- typed metadata access (used by config and tokenizer readers) --------------------------------------------

/** A required metadata value of the expected kind, or a FormatError naming the key. */
export function ggufGet(f: Pick<GgufFile, 'file' | 'metadata'>, key: string, kind: 'number'): number;
export function ggufGet(f: Pick<GgufFile, 'file' | 'metadata'>, key: string, kind: 'string'): string;
export function ggufGet(f: Pick<GgufFile, 'file' | 'metadata'>, key: string, kind: 'array'): GgufArrayValue;
export function ggufGet(f: Pick<GgufFile, 'file' | 'metadata'>, key: string, kind: 'number' | 'string' | 'array'): unknown {
  const v = f.metadata.get(key);
  if (v === undefined) throw new FormatError(f.file, `metadata key '${key}' is missing`, 'the GGUF file was not written for this architecture');
  const ok = kind === 'array' ? v.type === GgufType.ARRAY : typeof v.value === kind;
  if (!ok) throw new FormatError(f.file, `metadata key '${key}' has type ${GgufType[v.type]}, expected ${kind}`, 'the file is corrupt');
  return v.value;
}

/** An optional metadata value, or `undefined` when absent. */
export function ggufOpt(f: Pick<GgufFile, 'file' | 'metadata'>, key: string, kind: 'number'): number | undefined;
export function ggufOpt(f: Pick<GgufFile, 'file' | 'metadata'>, key: string, kind: 'string'): string | undefined;
export function ggufOpt(f: Pick<GgufFile, 'file' | 'metadata'>, key: string, kind: 'array'): GgufArrayValue | undefined;
export function ggufOpt(f: Pick<GgufFile, 'file' | 'metadata'>, key: string, kind: 'number' | 'string' | 'array'): unknown {
  if (!f.metadata.has(key)) return undefined;
  return ggufGet(f, key, kind as 'number');
}
