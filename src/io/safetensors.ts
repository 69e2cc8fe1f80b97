/**
 * safetensors read/write, plus sharded checkpoints (model.safetensors.index.json).
 *
 * Layout (https://github.com/huggingface/safetensors, "Format"): u64 little-endian N, then N bytes of a UTF-8 JSON
 * object {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__"?: {string: string}}, then the data
 * region. Offsets are relative to the start of the data region. The spec requires the tensors to index the whole
 * data region without holes or overlaps; we check exactly that, so a corrupt or hand-edited file fails here with
 * the file and tensor named instead of producing garbage weights later.
 *
 * The file is never read whole: the header is read through a file descriptor and each tensor's bytes are read at
 * their offset when the tensor's data is first used (see `fileTensor`), so files over 2 GiB load and `inspect` reads
 * headers only.
 */
import { existsSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { ArgumentError, FormatError } from '../tensor/errors.js';
import { bufferSource, fileSource, type ByteSource } from './binary-reader.js';
import { countNonFinite, fileTensor, ITEM_SIZE, numel, scanNonFinite, tensorBytes, writeFileAtomic, type RawDType, type RawTensor } from './tensor-file.js';

export interface SafetensorsFile {
  file: string;
  /** In file order (sorted by data offset). */
  tensors: Map<string, RawTensor>;
  metadata: Record<string, string>;
}

/** Headers larger than this are rejected before JSON.parse (the reference implementation uses 100 MB). */
const MAX_HEADER_BYTES = 100_000_000;
const SUPPORTED: readonly RawDType[] = ['F32', 'F16', 'BF16'];
const KNOWN_UNSUPPORTED = ['F64', 'I64', 'I32', 'I16', 'I8', 'U64', 'U32', 'U16', 'U8', 'BOOL', 'F8_E4M3', 'F8_E5M2'];

interface Entry {
  name: string;
  dtype: RawDType;
  shape: number[];
  begin: number;
  end: number;
}

export function readSafetensors(path: string): SafetensorsFile {
  return parseSource(fileSource(path));
}

/** Parse a whole safetensors file held in memory. `file` is only used in error messages. */
export function parseSafetensors(buf: Buffer, file: string): SafetensorsFile {
  return parseSource(bufferSource(buf, file));
}

function parseSource(src: ByteSource): SafetensorsFile {
  const { file, size } = src;
  if (size < 8) {
    throw new FormatError(file, `truncated: ${size} bytes, a safetensors file starts with an 8-byte header length`,
      'the file is incomplete or not a safetensors file');
  }
  const lenBytes = Buffer.alloc(8);
  src.read(0, lenBytes);
  const headerLen = Number(lenBytes.readBigUInt64LE(0));
  if (headerLen > size - 8) {
    throw new FormatError(file, `header length ${headerLen} is beyond the file (${size} bytes)`,
      'the file is truncated or not a safetensors file');
  }
  if (headerLen > MAX_HEADER_BYTES) {
    throw new FormatError(file, `header length ${headerLen} exceeds ${MAX_HEADER_BYTES} bytes`, 'the file is corrupt');
  }
  const headerBytes = Buffer.alloc(headerLen);
  src.read(8, headerBytes);
  let header: unknown;
  try {
    header = JSON.parse(headerBytes.toString('utf8'));
  } catch (e) {
    throw new FormatError(file, `header is not valid JSON (${(e as Error).message})`, 'the file is corrupt');
  }
  if (!isObject(header)) throw new FormatError(file, 'header is not a JSON object', 'the file is corrupt');

  const dataStart = 8 + headerLen;
  const dataLen = size - dataStart;
  let metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, raw] of Object.entries(header)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(raw, file);
      continue;
    }
    entries.push(parseEntry(name, raw, dataLen, file));
  }
  checkCoverage(entries, dataLen, file);

  const tensors = new Map<string, RawTensor>();
  for (const e of entries) {
    const at = dataStart + e.begin;
    tensors.set(e.name, fileTensor(file, e.name, e.dtype, e.shape, () => readEntry(src, at, e), () => scanNonFinite(src, at, e.end - e.begin, e.dtype)));
  }
  return { file, tensors, metadata };
}

function parseMetadata(raw: unknown, file: string): Record<string, string> {
  if (!isObject(raw) || Object.values(raw).some((v) => typeof v !== 'string')) {
    throw new FormatError(file, '__metadata__ must be an object of string values', 'the file is corrupt');
  }
  return raw as Record<string, string>;
}

function parseEntry(name: string, raw: unknown, dataLen: number, file: string): Entry {
  if (!isObject(raw)) throw new FormatError(file, 'header entry is not an object', 'the file is corrupt', name);
  const { dtype, shape, data_offsets: offsets } = raw;
  if (typeof dtype !== 'string' || !(SUPPORTED as readonly string[]).includes(dtype)) {
    const known = typeof dtype === 'string' && KNOWN_UNSUPPORTED.includes(dtype);
    throw new FormatError(file, `${known ? 'unsupported' : 'unknown'} dtype ${JSON.stringify(dtype)}`,
      `supported dtypes are ${SUPPORTED.join(', ')}; convert the checkpoint to one of them`, name);
  }
  if (!Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) {
    throw new FormatError(file, `shape ${JSON.stringify(shape)} is not a list of non-negative integers`, 'the file is corrupt', name);
  }
  if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isSafeInteger(o) && o >= 0)) {
    throw new FormatError(file, `data_offsets ${JSON.stringify(offsets)} is not [begin, end]`, 'the file is corrupt', name);
  }
  const [begin, end] = offsets as [number, number];
  if (begin > end || end > dataLen) {
    throw new FormatError(file, `data_offsets [${begin}, ${end}] out of range: the data region has ${dataLen} bytes`,
      'the file is truncated or its header is corrupt', name);
  }
  const want = numel(shape as number[]) * ITEM_SIZE[dtype as RawDType];
  if (end - begin !== want) {
    throw new FormatError(file, `shape [${(shape as number[]).join(', ')}] of ${dtype} needs ${want} bytes, data_offsets span ${end - begin}`,
      'the header is inconsistent; the file is corrupt', name);
  }
  return { name, dtype: dtype as RawDType, shape: shape as number[], begin, end };
}

/** The tensors must tile [0, dataLen) exactly: sorted by begin, each starting where the previous ended. */
function checkCoverage(entries: Entry[], dataLen: number, file: string): void {
  entries.sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  let prev = '';
  for (const e of entries) {
    if (e.begin < pos) {
      throw new FormatError(file, `data_offsets [${e.begin}, ${e.end}] overlap tensor '${prev}' (which ends at ${pos})`,
        'the header is corrupt', e.name);
    }
    if (e.begin > pos) {
      throw new FormatError(file, `hole in the data region: bytes [${pos}, ${e.begin}) belong to no tensor`,
        'the header is corrupt', e.name);
    }
    pos = e.end;
    prev = e.name;
  }
  if (pos !== dataLen) {
    throw new FormatError(file, `the tensors cover ${pos} bytes but the data region has ${dataLen} (trailing bytes)`,
      'the file has extra data after the last tensor; it is corrupt');
  }
}

function readEntry(src: ByteSource, offset: number, e: Entry): { data: Float32Array | Uint16Array; nonFinite: number } {
  const n = numel(e.shape);
  const data = e.dtype === 'F32' ? new Float32Array(n) : new Uint16Array(n);
  src.read(offset, data);
  return { data, nonFinite: countNonFinite(e.dtype, data) };
}

// ---- write --------------------------------------------------------------------------------------------------

/** Serialize to chunks (header, then each tensor's bytes), in the given order. */
export function serializeSafetensors(tensors: readonly RawTensor[], metadata?: Record<string, string>, file = '<memory>'): Uint8Array[] {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length > 0) header['__metadata__'] = metadata;
  let offset = 0;
  for (const t of tensors) {
    if (t.name === '__metadata__' || t.name in header) {
      throw new FormatError(file, 'duplicate or reserved tensor name', 'give every tensor a unique name', t.name);
    }
    const bytes = numel(t.shape) * ITEM_SIZE[t.dtype];
    if (t.data.byteLength !== bytes) {
      throw new FormatError(file, `shape [${t.shape.join(', ')}] of ${t.dtype} needs ${bytes} bytes, data has ${t.data.byteLength}`,
        'the tensor data does not match its shape', t.name);
    }
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  // Pad the JSON with spaces so the data region starts 8-byte aligned (what the reference writer does too).
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - ((8 + Buffer.byteLength(json)) % 8)) % 8);
  const head = Buffer.alloc(8 + Buffer.byteLength(json));
  head.writeBigUInt64LE(BigInt(head.byteLength - 8), 0);
  head.write(json, 8, 'utf8');
  return [head, ...tensors.map(tensorBytes)];
}

export function writeSafetensors(path: string, tensors: readonly RawTensor[], metadata?: Record<string, string>): void {
  writeFileAtomic(path, serializeSafetensors(tensors, metadata, path));
}

// ---- sharded checkpoints ------------------------------------------------------------------------------------

/** Default largest shard: below 2 GiB, so every shard stays readable by tools that map a file into one buffer. */
export const DEFAULT_MAX_SHARD_BYTES = 2_000_000_000;
const SHARD_FILE = /^model-\d{5}-of-\d{5}\.safetensors$/;

/**
 * Write a model's weights into `dir` the way Hugging Face does: one model.safetensors when they fit in
 * `maxShardBytes`, otherwise model-0000k-of-0000n.safetensors shards (tensors in order, a new shard whenever the next
 * tensor would overflow; a tensor larger than the limit gets a shard of its own) plus model.safetensors.index.json
 * (metadata.total_size and the weight_map). Weight files of the other layout left in `dir` are removed afterwards,
 * so a folder never holds both. Each file is written atomically; the index is written last.
 */
export function writeSafetensorsFolder(dir: string, tensors: readonly RawTensor[], o: { metadata?: Record<string, string>; maxShardBytes?: number } = {}): string[] {
  const max = o.maxShardBytes ?? DEFAULT_MAX_SHARD_BYTES;
  const sizes = tensors.map((t) => numel(t.shape) * ITEM_SIZE[t.dtype]);
  const total = sizes.reduce((a, b) => a + b, 0);
  const stale = (keep: (f: string) => boolean) => {
    for (const f of readdirSync(dir)) {
      if ((f === 'model.safetensors' || f === 'model.safetensors.index.json' || SHARD_FILE.test(f)) && !keep(f)) rmSync(join(dir, f), { force: true });
    }
  };
  if (total <= max) {
    writeSafetensors(join(dir, 'model.safetensors'), tensors, o.metadata);
    stale((f) => f === 'model.safetensors');
    return ['model.safetensors'];
  }
  const groups: RawTensor[][] = [];
  let bytes = Infinity;
  tensors.forEach((t, i) => {
    if (bytes + sizes[i]! > max) {
      groups.push([]);
      bytes = 0;
    }
    groups[groups.length - 1]!.push(t);
    bytes += sizes[i]!;
  });
  const pad = (n: number) => String(n).padStart(5, '0');
  const names = groups.map((_, k) => `model-${pad(k + 1)}-of-${pad(groups.length)}.safetensors`);
  const weightMap: Record<string, string> = {};
  groups.forEach((g, k) => {
    writeSafetensors(join(dir, names[k]!), g, o.metadata);
    for (const t of g) weightMap[t.name] = names[k]!;
  });
  const index = { metadata: { total_size: total }, weight_map: weightMap };
  writeFileAtomic(join(dir, 'model.safetensors.index.json'), Buffer.from(`${JSON.stringify(index, null, 2)}\n`));
  stale((f) => f === 'model.safetensors.index.json' || names.includes(f));
  return [...names, 'model.safetensors.index.json'];
}

/** A shard size flag: bytes, or a number with KB/MB/GB (powers of 1000, as Hugging Face's max_shard_size). */
export function parseShardSize(v: string, arg = '--max-shard-size'): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(B|KB|MB|GB)?\s*$/i.exec(v);
  const n = m ? Math.floor(Number(m[1]) * ({ B: 1, KB: 1e3, MB: 1e6, GB: 1e9 } as Record<string, number>)[(m[2] ?? 'B').toUpperCase()]!) : NaN;
  if (!(n >= 1)) throw new ArgumentError('cli', arg, `= ${v} is not a size`, 'use bytes or a number with KB, MB or GB, e.g. 2GB');
  return n;
}

export interface SafetensorsIndex {
  /** tensor name -> shard file name (relative to the index's folder) */
  weightMap: Map<string, string>;
  metadata: Record<string, unknown>;
}

export function readSafetensorsIndex(indexPath: string): SafetensorsIndex {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(indexPath, 'utf8'));
  } catch (e) {
    throw new FormatError(indexPath, `cannot read the index (${(e as Error).message})`, 'the file is missing or not JSON');
  }
  if (!isObject(json) || !isObject(json['weight_map'])) {
    throw new FormatError(indexPath, 'no "weight_map" object', 'a model.safetensors.index.json maps tensor names to shard files');
  }
  const weightMap = new Map<string, string>();
  for (const [name, shard] of Object.entries(json['weight_map'])) {
    if (typeof shard !== 'string' || shard === '' || shard.includes('/') || shard.includes('\\') || shard.startsWith('.')) {
      throw new FormatError(indexPath, `shard ${JSON.stringify(shard)} is not a plain file name`, 'the index is corrupt', name);
    }
    weightMap.set(name, shard);
  }
  return { weightMap, metadata: isObject(json['metadata']) ? json['metadata'] : {} };
}

/**
 * Read every shard named by an index and merge the tensors. Each tensor must be in the shard the index says, and
 * every tensor in a shard must be in the index: a mismatch means the folder mixes files from different checkpoints.
 */
export function readShardedSafetensors(indexPath: string): SafetensorsFile {
  const index = readSafetensorsIndex(indexPath);
  const dir = dirname(indexPath);
  const tensors = new Map<string, RawTensor>();
  const metadata: Record<string, string> = {};
  for (const shard of [...new Set(index.weightMap.values())].sort()) {
    const path = join(dir, shard);
    if (!existsSync(path) || !statSync(path).isFile()) {
      throw new FormatError(indexPath, `names the shard ${JSON.stringify(shard)}, which is not a file in ${dir}`,
        'the download is incomplete or the index belongs to another checkpoint', [...index.weightMap].find(([, s]) => s === shard)![0]);
    }
    const st = readSafetensors(path);
    Object.assign(metadata, st.metadata);
    for (const [name, t] of st.tensors) {
      if (index.weightMap.get(name) !== shard) {
        throw new FormatError(st.file, `is not listed for this shard in ${indexPath}`, 'the folder mixes checkpoints; re-download it', name);
      }
      tensors.set(name, t);
    }
  }
  for (const [name, shard] of index.weightMap) {
    if (!tensors.has(name)) {
      throw new FormatError(join(dir, shard), `missing: the index lists it in this shard`, 'the shard is from another checkpoint', name);
    }
  }
  return { file: indexPath, tensors, metadata };
}

/** The weights of a Hugging Face folder: model.safetensors, or the shards named by model.safetensors.index.json. */
export function readSafetensorsFolder(dir: string): SafetensorsFile {
  const single = join(dir, 'model.safetensors');
  if (existsSync(single)) return readSafetensors(single);
  const index = join(dir, 'model.safetensors.index.json');
  if (existsSync(index)) return readShardedSafetensors(index);
  return noWeights(dir);
}

/** The safetensors files of a Hugging Face folder: model.safetensors, or each shard named by the index. */
export function safetensorsShards(dir: string): string[] {
  const single = join(dir, 'model.safetensors');
  if (existsSync(single)) return [single];
  const index = join(dir, 'model.safetensors.index.json');
  if (existsSync(index)) return [...new Set(readSafetensorsIndex(index).weightMap.values())].sort().map((s) => join(dir, s));
  return noWeights(dir);
}

function noWeights(dir: string): never {
  throw new FormatError(dir, 'has neither model.safetensors nor model.safetensors.index.json',
    'point at a Hugging Face model folder (PyTorch .bin checkpoints are not supported; convert them to safetensors)');
}

function isObject(x: unknown): x is Record<string, unknown> {
  return typeof x === 'object' && x !== null && !Array.isArray(x);
}
