/**
 * Training checkpoints: one file, `DIR/checkpoint.bin`, written atomically (temp file in the same folder, fsync,
 * rename, fsync of the folder), so a crash or kill -9 mid-write leaves the previous checkpoint intact.
 *
 * Layout: magic "RFCKPT01", u32 header length H, H bytes of JSON header, then float32 blobs (little-endian) at the
 * offsets the header names. The header holds the TrainConfig, the step, the data position (epoch, cursor, RNG state
 * of the epoch's permutation), the optimizer step and the metrics needed to continue; the blobs are the trainable
 * weights and AdamW's first and second moments (m, v) per trainable tensor. Frozen weights are not stored: resume
 * rebuilds them from the model the config names (they never change).
 *
 * Test hook: with RECURFORMER_CKPT_PAUSE="STEP:MS" set, the writer of the checkpoint at step STEP pauses MS ms halfway
 * through the temp file (after printing "checkpoint-write-paused" to stderr), so a test can kill the process in the
 * middle of that write.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/tensor-file.js';
import { FormatError } from '../tensor/errors.js';
import type { TrainConfig } from './config.js';
import type { DataPosition } from './data.js';

const MAGIC = 'RFCKPT01';
export const CHECKPOINT_FILE = 'checkpoint.bin';

export interface CheckpointState {
  version: 1;
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

interface Entry {
  name: string;
  kind: 'w' | 'm' | 'v';
  offset: number;
  length: number;
}

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
      entries.push({ name, kind, offset, length: a.length });
      blobs.push(new Uint8Array(a.buffer, a.byteOffset, a.byteLength));
      offset += a.byteLength;
    }
  }
  let header = Buffer.from(JSON.stringify({ state, tensors: entries }), 'utf8');
  // pad the header so the blobs start 8-byte aligned
  const pad = (8 - ((12 + header.length) % 8)) % 8;
  header = Buffer.concat([header, Buffer.alloc(pad, 0x20)]);
  const pre = Buffer.alloc(12);
  pre.write(MAGIC, 0, 'latin1');
  pre.writeUInt32LE(header.length, 8);
  const path = join(dir, CHECKPOINT_FILE);
  writeAtomicWithHook(path, [pre, header, ...blobs], state.step);
  return path;
}

export function loadCheckpoint(dir: string): { state: CheckpointState; tensors: CheckpointTensors; path: string } {
  const path = join(dir, CHECKPOINT_FILE);
  if (!existsSync(path)) throw new FormatError(path, 'does not exist', 'pass the --out folder of an earlier `recurformer train` run to --resume');
  const buf = readFileSync(path);
  if (buf.length < 12 || buf.toString('latin1', 0, 8) !== MAGIC) throw new FormatError(path, 'is not a recurformer checkpoint (bad magic)');
  const hl = buf.readUInt32LE(8);
  if (12 + hl > buf.length) throw new FormatError(path, `header length ${hl} exceeds the file (${buf.length} bytes)`, 'the file is truncated');
  let head: { state: CheckpointState; tensors: Entry[] };
  try {
    head = JSON.parse(buf.toString('utf8', 12, 12 + hl)) as typeof head;
  } catch (e) {
    throw new FormatError(path, `header is not JSON (${(e as Error).message})`);
  }
  if (head.state?.version !== 1) throw new FormatError(path, `checkpoint version ${String(head.state?.version)}, expected 1`);
  const base = 12 + hl;
  const tensors: CheckpointTensors = { weights: new Map(), m: new Map(), v: new Map() };
  for (const e of head.tensors) {
    const start = base + e.offset, bytes = e.length * 4;
    if (!(e.offset >= 0 && start + bytes <= buf.length)) {
      throw new FormatError(path, `blob [${e.offset}, +${bytes}) is outside the file`, 'the checkpoint is truncated', e.name);
    }
    const a = new Float32Array(e.length);
    new Uint8Array(a.buffer).set(buf.subarray(start, start + bytes));
    (e.kind === 'w' ? tensors.weights : e.kind === 'm' ? tensors.m : tensors.v).set(e.name, a);
  }
  return { state: head.state, tensors, path };
}
