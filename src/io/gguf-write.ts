/**
 * GGUF v3 writer: typed metadata plus F32/F16/BF16 tensors and block-quantized tensors (already quantized by the
 * caller, see ggml-quants.ts `quantize`: the writer checks their byte size against the shape and writes the bytes).
 *
 * Tensor shapes are given outermost first (as everywhere in recurformer) and written innermost first, as GGUF wants.
 * Every tensor's data starts at a multiple of `general.alignment` (32 unless the metadata says otherwise).
 */
import { FormatError } from '../tensor/errors.js';
import { GGML_BLOCK, GgmlType, ggmlTypeName } from './ggml-quants.js';
import { GgufType, type GgufArrayValue, type GgufValue } from './gguf.js';
import { numel, tensorBytes, writeFileAtomic, type RawTensor } from './tensor-file.js';

/** Helpers to build typed metadata values. */
export const gv = {
  str: (value: string): GgufValue => ({ type: GgufType.STRING, value }),
  u32: (value: number): GgufValue => ({ type: GgufType.U32, value }),
  i32: (value: number): GgufValue => ({ type: GgufType.I32, value }),
  f32: (value: number): GgufValue => ({ type: GgufType.F32, value }),
  bool: (value: boolean): GgufValue => ({ type: GgufType.BOOL, value }),
  strs: (value: string[]): GgufValue => ({ type: GgufType.ARRAY, elemType: GgufType.STRING, value }),
  f32s: (value: Float32Array): GgufValue => ({ type: GgufType.ARRAY, elemType: GgufType.F32, value }),
  i32s: (value: Int32Array): GgufValue => ({ type: GgufType.ARRAY, elemType: GgufType.I32, value }),
};

/** Growable little-endian byte sink for the header. */
class Sink {
  private buf = Buffer.alloc(1 << 16);
  len = 0;
  private ensure(n: number): void {
    if (this.len + n <= this.buf.byteLength) return;
    const next = Buffer.alloc(Math.max(this.buf.byteLength * 2, this.len + n));
    this.buf.copy(next, 0, 0, this.len);
    this.buf = next;
  }
  u8(v: number): void { this.ensure(1); this.buf.writeUInt8(v, this.len); this.len += 1; }
  u32(v: number): void { this.ensure(4); this.buf.writeUInt32LE(v, this.len); this.len += 4; }
  u64(v: number | bigint): void { this.ensure(8); this.buf.writeBigUInt64LE(BigInt(v), this.len); this.len += 8; }
  raw(b: Uint8Array): void { this.ensure(b.byteLength); this.buf.set(b, this.len); this.len += b.byteLength; }
  str(s: string): void { const b = Buffer.from(s, 'utf8'); this.u64(b.byteLength); this.raw(b); }
  pad(alignment: number): void { const n = (alignment - (this.len % alignment)) % alignment; this.ensure(n); this.buf.fill(0, this.len, this.len + n); this.len += n; }
  bytes(): Buffer { return this.buf.subarray(0, this.len); }
}

function writeScalar(s: Sink, type: GgufType, v: unknown, key: string, file: string): void {
  const b = Buffer.alloc(8);
  switch (type) {
    case GgufType.U8: b.writeUInt8(v as number); s.raw(b.subarray(0, 1)); return;
    case GgufType.I8: b.writeInt8(v as number); s.raw(b.subarray(0, 1)); return;
    case GgufType.U16: b.writeUInt16LE(v as number); s.raw(b.subarray(0, 2)); return;
    case GgufType.I16: b.writeInt16LE(v as number); s.raw(b.subarray(0, 2)); return;
    case GgufType.U32: b.writeUInt32LE(v as number); s.raw(b.subarray(0, 4)); return;
    case GgufType.I32: b.writeInt32LE(v as number); s.raw(b.subarray(0, 4)); return;
    case GgufType.F32: b.writeFloatLE(v as number); s.raw(b.subarray(0, 4)); return;
    case GgufType.BOOL: s.u8(v ? 1 : 0); return;
    case GgufType.STRING: s.str(v as string); return;
    case GgufType.U64: b.writeBigUInt64LE(BigInt(v as number)); s.raw(b); return;
    case GgufType.I64: b.writeBigInt64LE(BigInt(v as number)); s.raw(b); return;
    case GgufType.F64: b.writeDoubleLE(v as number); s.raw(b); return;
    default: throw new FormatError(file, `cannot write metadata '${key}' of type ${type}`, 'use one of the GgufType scalar types');
  }
}

function writeValue(s: Sink, v: GgufValue, key: string, file: string): void {
  s.u32(v.type);
  if (v.type !== GgufType.ARRAY) {
    writeScalar(s, v.type, v.value, key, file);
    return;
  }
  s.u32(v.elemType);
  const arr = v.value as GgufArrayValue;
  s.u64(arr.length);
  if (ArrayBuffer.isView(arr) && !(arr instanceof BigInt64Array || arr instanceof BigUint64Array)) {
    s.raw(new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength));
    return;
  }
  for (const e of arr as Iterable<unknown>) {
    if (v.elemType === GgufType.ARRAY) {
      const inner = e as GgufValue;
      if (inner.type !== GgufType.ARRAY) throw new FormatError(file, `'${key}': nested element is not an array`, 'fix the value');
      s.u32(inner.elemType);
      s.u64((inner.value as GgufArrayValue).length);
      for (const x of inner.value as Iterable<unknown>) writeScalar(s, inner.elemType, x, key, file);
    } else {
      writeScalar(s, v.elemType, e, key, file);
    }
  }
}

const TYPE_OF: Record<RawTensor['dtype'], GgmlType> = { F32: GgmlType.F32, F16: GgmlType.F16, BF16: GgmlType.BF16 };

/** A tensor already in a ggml block format (Q8_0, Q4_K, ...): its blocks, row after row. */
export interface QuantizedTensor {
  name: string;
  /** Outermost first, like RawTensor; the last dim (ggml's ne[0], the row) must be a multiple of the block. */
  shape: number[];
  type: GgmlType;
  data: Uint8Array;
}

/** What the writer accepts: float tensors, or quantized ones. */
export type GgufTensor = RawTensor | QuantizedTensor;

const isQuantized = (t: GgufTensor): t is QuantizedTensor => 'type' in t && !('dtype' in t);

/** The ggml type and data bytes of a tensor to write, checked against its shape. */
function typedBytes(t: GgufTensor, file: string): { type: GgmlType; bytes: Uint8Array } {
  if (isQuantized(t)) {
    const block = GGML_BLOCK[t.type];
    const row = t.shape[t.shape.length - 1] ?? 1;
    if (!block || block.elems === 1) throw new FormatError(file, `type ${ggmlTypeName(t.type)} is not a block type we write`, 'pass float data as a RawTensor', t.name);
    if (row % block.elems !== 0) {
      throw new FormatError(file, `row length ${row} is not a multiple of ${ggmlTypeName(t.type)}'s block of ${block.elems}`,
        'use a type whose block divides the row (Q8_0, or F16)', t.name);
    }
    const want = (numel(t.shape) / block.elems) * block.bytes;
    if (t.data.byteLength !== want) {
      throw new FormatError(file, `data of ${t.data.byteLength} bytes does not match shape [${t.shape.join(', ')}] ${ggmlTypeName(t.type)} (${want} bytes)`, 'fix the tensor', t.name);
    }
    return { type: t.type, bytes: t.data };
  }
  const bytes = tensorBytes(t);
  if (bytes.byteLength !== numel(t.shape) * (t.dtype === 'F32' ? 4 : 2)) {
    throw new FormatError(file, `data of ${bytes.byteLength} bytes does not match shape [${t.shape.join(', ')}] ${t.dtype}`, 'fix the tensor', t.name);
  }
  return { type: TYPE_OF[t.dtype], bytes };
}

/** Serialize metadata and tensors to GGUF v3 chunks. */
export function serializeGguf(metadata: Map<string, GgufValue>, tensors: readonly GgufTensor[], file = '<memory>'): Uint8Array[] {
  const alignV = metadata.get('general.alignment')?.value;
  const alignment = typeof alignV === 'number' ? alignV : 32;
  if (!Number.isInteger(alignment) || alignment <= 0 || (alignment & (alignment - 1)) !== 0) {
    throw new FormatError(file, `general.alignment = ${String(alignV)} is not a power of two`, 'use 32');
  }
  const s = new Sink();
  s.raw(Buffer.from('GGUF', 'latin1'));
  s.u32(3);
  s.u64(tensors.length);
  s.u64(metadata.size);
  for (const [key, v] of metadata) {
    s.str(key);
    writeValue(s, v, key, file);
  }
  const names = new Set<string>();
  let offset = 0;
  const data: Uint8Array[] = [];
  const padded: number[] = [];
  for (const t of tensors) {
    if (names.has(t.name)) throw new FormatError(file, 'duplicate tensor name', 'give every tensor a unique name', t.name);
    names.add(t.name);
    const { type, bytes } = typedBytes(t, file);
    if (t.shape.length > 4) throw new FormatError(file, `has ${t.shape.length} dims (GGUF allows 4)`, 'reshape it', t.name);
    s.str(t.name);
    s.u32(t.shape.length);
    for (const d of [...t.shape].reverse()) s.u64(d);
    s.u32(type);
    s.u64(offset);
    const pad = (alignment - (bytes.byteLength % alignment)) % alignment;
    data.push(bytes);
    padded.push(pad);
    offset += bytes.byteLength + pad;
  }
  s.pad(alignment);
  const chunks: Uint8Array[] = [s.bytes()];
  data.forEach((bytes, i) => {
    chunks.push(bytes);
    if (padded[i]! > 0) chunks.push(new Uint8Array(padded[i]!));
  });
  return chunks;
}

export function writeGguf(path: string, metadata: Map<string, GgufValue>, tensors: readonly GgufTensor[]): void {
  writeFileAtomic(path, serializeGguf(metadata, tensors, path));
}
