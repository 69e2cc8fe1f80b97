/**
 * Test helpers: model files written byte by byte (our writers only write what they computed; these files are huge,
 * lie about their counts or hold NaN), and sparse files, which cost no disk however large they claim to be.
 */
import { closeSync, ftruncateSync, openSync, writeSync } from 'node:fs';
import { GgufType } from '../../src/io/gguf.js';

const u32 = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(v); return b; };
const u64 = (v: number | bigint) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); return b; };
const str = (s: string) => Buffer.concat([u64(Buffer.byteLength(s)), Buffer.from(s)]);

/** GGUF metadata pairs, encoded. */
export const kv = {
  u32: (key: string, v: number) => Buffer.concat([str(key), u32(GgufType.U32), u32(v)]),
  u64: (key: string, v: number | bigint) => Buffer.concat([str(key), u32(GgufType.U64), u64(v)]),
  f32: (key: string, v: number) => { const b = Buffer.alloc(4); b.writeFloatLE(v); return Buffer.concat([str(key), u32(GgufType.F32), b]); },
  str: (key: string, v: string) => Buffer.concat([str(key), u32(GgufType.STRING), str(v)]),
  /** An array header claiming `n` elements of `elemType`, followed by `body`. */
  array: (key: string, elemType: number, n: number | bigint, body = Buffer.alloc(0)) =>
    Buffer.concat([str(key), u32(GgufType.ARRAY), u32(elemType), u64(n), body]),
};

export interface HandTensor {
  name: string;
  /** Outermost first, as everywhere in recurformer (written innermost first). */
  shape: number[];
  type: number;
  offset: number;
}

/**
 * A GGUF v3 header padded to `alignment`, so the data region starts right after it. The counts default to the
 * entries given; pass them to make the header lie.
 */
export function ggufHeader(kvs: Buffer[], tensors: HandTensor[], o: { alignment?: number; tensorCount?: number | bigint; kvCount?: number | bigint } = {}): Buffer {
  const parts = [Buffer.from('GGUF'), u32(3), u64(o.tensorCount ?? tensors.length), u64(o.kvCount ?? kvs.length), ...kvs];
  for (const t of tensors) parts.push(str(t.name), u32(t.shape.length), ...[...t.shape].reverse().map(u64), u32(t.type), u64(t.offset));
  const head = Buffer.concat(parts);
  const a = o.alignment ?? 32;
  return Buffer.concat([head, Buffer.alloc((a - (head.byteLength % a)) % a)]);
}

/** A safetensors header (length + JSON) for tensors laid out in the order given, each `bytes` long. */
export function safetensorsHeader(tensors: { name: string; dtype: string; shape: number[]; bytes: number }[]): { head: Buffer; offsets: number[] } {
  const header: Record<string, unknown> = {};
  const offsets: number[] = [];
  let at = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [at, at + t.bytes] };
    offsets.push(at);
    at += t.bytes;
  }
  const json = Buffer.from(JSON.stringify(header));
  const head = Buffer.concat([u64(json.byteLength), json]);
  return { head, offsets: offsets.map((x) => x + head.byteLength) };
}

/** A file of `size` bytes that are zeros (holes, no disk) except `writes` ([absolute offset, bytes]). */
export function sparseFile(path: string, size: number, writes: [number, Uint8Array][]): void {
  const fd = openSync(path, 'w');
  try {
    ftruncateSync(fd, size);
    for (const [at, bytes] of writes) writeSync(fd, bytes, 0, bytes.byteLength, at);
  } finally {
    closeSync(fd);
  }
}

/** The bytes of a typed array. */
export function bytes(a: ArrayBufferView): Uint8Array {
  return new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
}
