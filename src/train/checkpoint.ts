/**
 * Training checkpoints: one file, `DIR/checkpoint.bin`, written atomically (temp file in the same folder, fsync,
 * rename, fsync of the folder), so a crash or kill -9 mid-write leaves the previous checkpoint intact.
 *
 * Layout (format 2): magic "RFCKPT02", u32 header length H, u32 CRC32 of the header, H bytes of JSON header, then
 * float32 blobs (little-endian) back to back at the offsets the header names, each with its CRC32 in the header. The
 * header holds the TrainConfig (paths absolute, so a resume works from any working directory), the step, the data
 * position (epoch, cursor, RNG state of the epoch's permutation), the optimizer step and the metrics needed to
 * continue; the blobs are the trainable weights and AdamW's first and second moments (m, v) per trainable tensor.
 * Frozen weights are not stored: resume rebuilds them from the model the config names (they never change).
 *
 * Loading trusts nothing: the header's checksum, its shape (a zod schema), the blobs tiling the rest of the file
 * exactly and every blob's checksum are checked, so a truncated, bit-flipped or hand-edited file is a FormatError
 * naming it instead of a TypeError, or worse, a resume that trains on garbage.
 *
 * Test hook: with RECURFORMER_CKPT_PAUSE="STEP:MS" set, the writer of the checkpoint at step STEP pauses MS ms halfway
 * through the temp file (after printing "checkpoint-write-paused" to stderr), so a test can kill the process in the
 * middle of that write.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import * as zlib from 'node:zlib';
import { z } from 'zod';
import { writeFileAtomic } from '../io/tensor-file.js';
import { ArgumentError, FormatError } from '../tensor/errors.js';
import { makeTrainConfig, type TrainConfig } from './config.js';
import type { DataPosition } from './data.js';

const MAGIC = 'RFCKPT02';
const OLD_MAGIC = 'RFCKPT01';
/** Magic, header length, header CRC32. */
const PRE = 16;
export const CHECKPOINT_FILE = 'checkpoint.bin';

export interface CheckpointState {
  version: 2;
  config: TrainConfig;
  /** Optimizer steps taken (including skipped ones). */
  step: number;
  skipped: number;
  tokens: number;
  optimizerStep: number;
  data: DataPosition;
  /** The shard's cache key: resume refuses data that changed. */
  dataKey: string;
  elapsedMs: number;
}

export interface CheckpointTensors {
  /** Trainable tensors by name, with their AdamW moments. */
  weights: Map<string, Float32Array>;
  m: Map<string, Float32Array>;
  v: Map<string, Float32Array>;
}

const count = z.int().min(0);
const u32 = z.int().min(0).max(0xffffffff);
const headerSchema = z.object({
  state: z.object({
    version: z.literal(2),
    // checked by makeTrainConfig below, which knows every option
    config: z.record(z.string(), z.unknown()),
    step: count, skipped: count, tokens: count, optimizerStep: count,
    data: z.object({ epoch: count, cursor: count, epochRng: z.array(u32).min(1) }),
    dataKey: z.string(),
    elapsedMs: z.number().min(0),
  }),
  tensors: z.array(z.object({ name: z.string(), kind: z.enum(['w', 'm', 'v']), offset: count, length: count, crc32: u32 })),
});
type Entry = z.infer<typeof headerSchema>['tensors'][number];

/** zlib.crc32 arrived in Node 20.15; older Node 20 (package.json allows it) gets this table-driven equivalent. */
let table: Uint32Array | undefined;
export function crc32Portable(b: Uint8Array): number {
  table ??= Uint32Array.from({ length: 256 }, (_, n) => {
    for (let k = 0; k < 8; k++) n = n & 1 ? 0xedb88320 ^ (n >>> 1) : n >>> 1;
    return n;
  });
  let c = 0xffffffff;
  for (let i = 0; i < b.length; i++) c = table[(c ^ b[i]!) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
const zcrc = (zlib as { crc32?: (b: Uint8Array) => number }).crc32;
export const crc32 = (b: Uint8Array): number => (zcrc ? zcrc(b) : crc32Portable(b));

function sleepMs(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/**
 * Atomic write of byte chunks (writeFileAtomic) with the crash tests' hook: RECURFORMER_CKPT_PAUSE=STEP:MS pauses
 * half way through writing the checkpoint of that step, so a test can SIGKILL the process mid-write.
 */
function writeAtomicWithHook(path: string, chunks: readonly Uint8Array[], step: number): void {
  const [atStep, ms] = (process.env.RECURFORMER_CKPT_PAUSE ?? '').split(':').map(Number);
  const pause = atStep === step && ms! > 0 ? ms! : 0;
  let paused = false;
  writeFileAtomic(path, chunks, pause > 0 ? (written, total) => {
    if (!paused && written >= total / 2) {
      paused = true;
      process.stderr.write('checkpoint-write-paused\n');
      sleepMs(pause);
    }
  } : undefined);
}

export function saveCheckpoint(dir: string, state: CheckpointState, t: CheckpointTensors): string {
  const entries: Entry[] = [];
  const blobs: Uint8Array[] = [];
  let offset = 0;
  for (const [kind, map] of [['w', t.weights], ['m', t.m], ['v', t.v]] as const) {
    for (const [name, a] of map) {
      const bytes = new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
      entries.push({ name, kind, offset, length: a.length, crc32: crc32(bytes) });
      blobs.push(bytes);
      offset += a.byteLength;
    }
  }
  let header = Buffer.from(JSON.stringify({ state, tensors: entries }), 'utf8');
  // pad the header so the blobs start 8-byte aligned
  const pad = (8 - ((PRE + header.length) % 8)) % 8;
  header = Buffer.concat([header, Buffer.alloc(pad, 0x20)]);
  const pre = Buffer.alloc(PRE);
  pre.write(MAGIC, 0, 'latin1');
  pre.writeUInt32LE(header.length, 8);
  pre.writeUInt32LE(crc32(header), 12);
  const path = join(dir, CHECKPOINT_FILE);
  writeAtomicWithHook(path, [pre, header, ...blobs], state.step);
  return path;
}

const CORRUPT = 'the checkpoint is corrupt (truncated or damaged): resume from a copy, or start over with --force';

export function loadCheckpoint(dir: string): { state: CheckpointState; tensors: CheckpointTensors; path: string } {
  const path = join(dir, CHECKPOINT_FILE);
  if (!existsSync(path)) throw new FormatError(path, 'does not exist', 'pass the --out folder of an earlier `recurformer train` run to --resume');
  const buf = readFileSync(path);
  const magic = buf.toString('latin1', 0, 8);
  if (magic === OLD_MAGIC) {
    throw new FormatError(path, 'is a format 1 checkpoint (written by an older recurformer), this version reads format 2',
      'resume it with the recurformer version that wrote it, or start the run over with --force');
  }
  if (buf.length < PRE || magic !== MAGIC) {
    throw new FormatError(path, 'is not a recurformer checkpoint (bad magic)', 'pass the --out folder of an earlier `recurformer train` run');
  }
  const hl = buf.readUInt32LE(8);
  if (PRE + hl > buf.length) throw new FormatError(path, `header length ${hl} exceeds the file (${buf.length} bytes)`, CORRUPT);
  const headerBytes = buf.subarray(PRE, PRE + hl);
  if (crc32(headerBytes) !== buf.readUInt32LE(12)) throw new FormatError(path, 'header checksum mismatch', CORRUPT);
  let json: unknown;
  try {
    json = JSON.parse(headerBytes.toString('utf8'));
  } catch (e) {
    throw new FormatError(path, `header is not JSON (${(e as Error).message})`, CORRUPT);
  }
  const parsed = headerSchema.safeParse(json);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    throw new FormatError(path, `header field ${issue.path.join('.') || '(top level)'}: ${issue.message}`, CORRUPT);
  }
  const head = parsed.data;
  let config: TrainConfig;
  try {
    config = makeTrainConfig(head.state.config);
  } catch (e) {
    if (!(e instanceof ArgumentError)) throw e;
    throw new FormatError(path, `header config: ${e.message.split('\n')[0]!}`, CORRUPT);
  }
  // the blobs tile the rest of the file exactly: a header length that is off, or bytes missing or added, show here
  const base = PRE + hl;
  let end = 0;
  for (const e of head.tensors) {
    if (e.offset !== end) throw new FormatError(path, `blob at offset ${e.offset}, expected ${end}`, CORRUPT, e.name);
    end += e.length * 4;
  }
  if (base + end !== buf.length) throw new FormatError(path, `has ${buf.length} bytes, its header describes ${base + end}`, CORRUPT);
  const tensors: CheckpointTensors = { weights: new Map(), m: new Map(), v: new Map() };
  for (const e of head.tensors) {
    const bytes = buf.subarray(base + e.offset, base + e.offset + e.length * 4);
    if (crc32(bytes) !== e.crc32) throw new FormatError(path, `${e.kind} blob checksum mismatch`, CORRUPT, e.name);
    const a = new Float32Array(e.length);
    new Uint8Array(a.buffer).set(bytes);
    (e.kind === 'w' ? tensors.weights : e.kind === 'm' ? tensors.m : tensors.v).set(e.name, a);
  }
  return { state: { ...head.state, config }, tensors, path };
}
