/**
 * Format knowledge for the mutators, written against the specs rather than our readers (so a reader bug is not
 * mirrored here): where a well-formed seed keeps its counts, lengths, types, dims and offsets, where its header
 * ends, and how to rewrite a header (JSON) so that its length and checksums stay right and the mutation reaches
 * the checks behind them.
 */
import type { ByteSeed, Field } from './mutate.js';

// ---- GGUF ---------------------------------------------------------------------------------------------------------

const SCALAR_SIZE: Record<number, number> = { 0: 1, 1: 1, 2: 2, 3: 2, 4: 4, 5: 4, 6: 4, 7: 1, 10: 8, 11: 8, 12: 8 };
const STRING = 8;
const ARRAY = 9;

/**
 * The integer fields of a GGUF v2/v3 file and where its header ends (the data region's start). Of long arrays
 * (a 50k-token vocabulary) only the first and last few elements' fields are listed, so that picking a field
 * uniformly still hits the counts and tensor infos.
 */
export function ggufLayout(b: Buffer): { fields: Field[]; headerEnd: number; infoStart: number } {
  const fields: Field[] = [];
  let p = 0;
  const field = (size: 1 | 2 | 4 | 8, what: string, keep = true): number => {
    const v = size === 8 ? Number(b.readBigUInt64LE(p)) : size === 4 ? b.readUInt32LE(p) : size === 2 ? b.readUInt16LE(p) : b[p]!;
    if (keep) fields.push({ at: p, size, what });
    p += size;
    return v;
  };
  const str = (what: string, keep = true): string => {
    const n = field(8, `length of ${what}`, keep);
    const s = b.toString('utf8', p, p + n);
    p += n;
    return s;
  };
  p = 4;
  field(4, 'version');
  const nTensors = field(8, 'tensor count');
  const nKv = field(8, 'metadata count');
  let alignment = 32;
  const value = (type: number, key: string, keep: boolean): void => {
    if (type === STRING) {
      str(`value of ${key}`, keep);
    } else if (type === ARRAY) {
      const elem = field(4, `element type of ${key}`, keep);
      const n = field(8, `length of ${key}`, keep);
      for (let i = 0; i < n; i++) value(elem, `${key}[${i}]`, keep && (i < 4 || i >= n - 2));
    } else {
      const size = SCALAR_SIZE[type] ?? 0;
      if (key === 'general.alignment') alignment = size === 4 ? b.readUInt32LE(p) : alignment;
      field(size as 1 | 2 | 4 | 8, `value of ${key}`, keep && size > 1);
    }
  };
  for (let i = 0; i < nKv; i++) {
    const key = str(`key #${i}`);
    const type = field(4, `type of '${key}'`);
    value(type, `'${key}'`, true);
  }
  const infoStart = p;
  for (let i = 0; i < nTensors; i++) {
    const name = str(`name of tensor #${i}`);
    const nDims = field(4, `n_dims of '${name}'`);
    for (let d = 0; d < nDims; d++) field(8, `dim ${d} of '${name}'`);
    field(4, `type of '${name}'`);
    field(8, `offset of '${name}'`);
  }
  return { fields, headerEnd: Math.ceil(p / alignment) * alignment, infoStart };
}

// ---- llama2.c -------------------------------------------------------------------------------------------------------

export const LLAMA2C_HEADER = ['dim', 'hidden_dim', 'n_layers', 'n_heads', 'n_kv_heads', 'vocab_size', 'seq_len'];

export function llama2cFields(): Field[] {
  return LLAMA2C_HEADER.map((what, i) => ({ at: 4 * i, size: 4, what }));
}

/** tokenizer.bin: max_token_length, then (f32 score, i32 length, bytes) per token; the first and last tokens' fields. */
export function tokenizerBinFields(b: Buffer): Field[] {
  const fields: Field[] = [{ at: 0, size: 4, what: 'max_token_length' }];
  const starts: number[] = [];
  for (let p = 4; p + 8 <= b.length;) {
    starts.push(p);
    p += 8 + b.readInt32LE(p + 4);
  }
  starts.forEach((p, i) => {
    if (i < 8 || i >= starts.length - 3) fields.push({ at: p, size: 4, what: `score of token ${i}` }, { at: p + 4, size: 4, what: `length of token ${i}` });
  });
  return fields;
}

// ---- safetensors ---------------------------------------------------------------------------------------------------

export function safetensorsHeaderLength(b: Buffer): number {
  return Number(b.readBigUInt64LE(0));
}

/** The file with its JSON header replaced (the length prefix updated, unless `keepLength`: then it lies). */
export function withSafetensorsHeader(seed: ByteSeed, header: string, keepLength: boolean): Buffer {
  const hl = safetensorsHeaderLength(seed.bytes);
  const json = Buffer.from(header, 'utf8');
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(keepLength ? hl : json.length));
  return Buffer.concat([len, json, seed.bytes.subarray(8 + hl)]);
}

// ---- checkpoint.bin --------------------------------------------------------------------------------------------------

/** Layout of a format-2 checkpoint: magic (8), u32 header length, u32 header CRC32, JSON header, blobs. */
export const CKPT_PRE = 16;

let table: Uint32Array | undefined;
/** CRC-32 (IEEE), written out here so the mutator does not share code with the reader it feeds. */
export function crc32(b: Uint8Array): number {
  table ??= Uint32Array.from({ length: 256 }, (_, n) => {
    for (let k = 0; k < 8; k++) n = n & 1 ? 0xedb88320 ^ (n >>> 1) : n >>> 1;
    return n;
  });
  let c = 0xffffffff;
  for (let i = 0; i < b.length; i++) c = table[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export function checkpointParts(b: Buffer): { header: string; blobs: Buffer } {
  const hl = b.readUInt32LE(8);
  return { header: b.toString('utf8', CKPT_PRE, CKPT_PRE + hl), blobs: b.subarray(CKPT_PRE + hl) };
}

/** A checkpoint with this header text (padded to 8 bytes as the writer does) and blobs, length and CRC right. */
export function buildCheckpoint(magic: Buffer, header: string, blobs: Buffer): Buffer {
  let json = Buffer.from(header, 'utf8');
  json = Buffer.concat([json, Buffer.alloc((8 - ((CKPT_PRE + json.length) % 8)) % 8, 0x20)]);
  const pre = Buffer.alloc(CKPT_PRE);
  magic.copy(pre, 0, 0, 8);
  pre.writeUInt32LE(json.length, 8);
  pre.writeUInt32LE(crc32(json), 12);
  return Buffer.concat([pre, json, blobs]);
}

interface BlobEntry {
  offset: number;
  length: number;
  crc32: number;
}

/**
 * Recompute the blob checksums the header lists (for entries whose offset and length fit the blobs), so damage to
 * blob bytes or to an entry reaches the checks after the checksums. Returns the header unchanged when it is not
 * the expected shape.
 */
export function fixBlobCrcs(header: string, blobs: Buffer): string {
  let h: { tensors?: unknown };
  try {
    h = JSON.parse(header) as { tensors?: unknown };
  } catch {
    return header;
  }
  if (!Array.isArray(h?.tensors)) return header;
  for (const e of h.tensors as BlobEntry[]) {
    if (typeof e !== 'object' || e === null) continue;
    const { offset, length } = e;
    if (Number.isSafeInteger(offset) && Number.isSafeInteger(length) && offset >= 0 && length >= 0 && offset + length * 4 <= blobs.length) {
      e.crc32 = crc32(blobs.subarray(offset, offset + length * 4));
    }
  }
  return JSON.stringify(h);
}
