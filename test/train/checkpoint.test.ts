/**
 * checkpoint.bin refuses damage with a FormatError naming the file, with a hint: truncation, a header length off by
 * one, a flipped bit in a blob (per-blob CRC32), a header with wrong types (zod schema, then the config's own checks)
 * and the older format 1. A good file round-trips (resume.test.ts checks that a real one resumes exactly).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FormatError } from '../../src/tensor/errors.js';
import { CHECKPOINT_FILE, crc32, crc32Portable, loadCheckpoint, saveCheckpoint, type CheckpointState } from '../../src/train/checkpoint.js';
import { absolutePaths, makeTrainConfig } from '../../src/train/config.js';
import { tmp } from './helpers.js';

const ramp = (n: number, k: number): Float32Array => Float32Array.from({ length: n }, (_, i) => (i - k) / 7);

/** A small, valid checkpoint in a fresh folder (synthetic state: no model needed). */
function sample(): string {
  const dir = tmp('ckpt');
  const config = absolutePaths(makeTrainConfig({ stage: 'pretrain', init: 'c.json', data: 'd.txt', out: dir }));
  const state: CheckpointState = {
    version: 2, config, step: 3, skipped: 0, tokens: 96, optimizerStep: 3, data: { epoch: 0, cursor: 6, epochRng: [1, 2, 3, 4] },
    dataKey: 'k', elapsedMs: 12,
  };
  const map = (k: number): Map<string, Float32Array> => new Map([['a', ramp(40, k)], ['b', ramp(9, k + 1)]]);
  saveCheckpoint(dir, state, { weights: map(0), m: map(10), v: map(20) });
  return dir;
}

function edit(dir: string, f: (b: Buffer) => Buffer): void {
  const p = join(dir, CHECKPOINT_FILE);
  writeFileSync(p, f(readFileSync(p)));
}

/** Rewrites the JSON header (new length and CRC, blobs unchanged): damage that the checksums cannot see. */
function editHeader(dir: string, f: (h: { state: Record<string, unknown>; tensors: Record<string, unknown>[] }) => void): void {
  edit(dir, (b) => {
    const hl = b.readUInt32LE(8);
    const head = JSON.parse(b.toString('utf8', 16, 16 + hl)) as Parameters<typeof f>[0];
    f(head);
    let json = Buffer.from(JSON.stringify(head));
    json = Buffer.concat([json, Buffer.alloc((8 - ((16 + json.length) % 8)) % 8, 0x20)]);
    const pre = Buffer.from(b.subarray(0, 16));
    pre.writeUInt32LE(json.length, 8);
    pre.writeUInt32LE(crc32(json), 12);
    return Buffer.concat([pre, json, b.subarray(16 + hl)]);
  });
}

function rejects(dir: string, re: RegExp): void {
  assert.throws(() => loadCheckpoint(dir), (e: unknown) => {
    assert.ok(e instanceof FormatError, `a FormatError, got ${String(e)}`);
    assert.ok(e.file.endsWith(CHECKPOINT_FILE), e.message);
    assert.ok(e.hint.length > 0, 'with a hint');
    assert.match(e.message, re);
    return true;
  });
}

test('CRC32: the standard check value, zlib and the portable fallback agree', () => {
  const nine = Buffer.from('123456789');
  assert.equal(crc32(nine), 0xcbf43926);
  assert.equal(crc32Portable(nine), 0xcbf43926);
  const r = new Uint8Array(ramp(1000, 3).buffer);
  assert.equal(crc32Portable(r), crc32(r));
});

test('a good checkpoint round-trips', () => {
  const ck = loadCheckpoint(sample());
  assert.equal(ck.state.step, 3);
  assert.deepEqual(ck.state.data, { epoch: 0, cursor: 6, epochRng: [1, 2, 3, 4] });
  assert.deepEqual(ck.tensors.weights.get('a'), ramp(40, 0));
  assert.deepEqual(ck.tensors.v.get('b'), ramp(9, 21));
});

test('truncated files are FormatErrors naming checkpoint.bin', () => {
  for (const keep of [5, 14, 40, -1, -4 * 9]) {
    const dir = sample();
    edit(dir, (b) => b.subarray(0, keep < 0 ? b.length + keep : keep));
    rejects(dir, /checkpoint\.bin: /);
  }
});

test('a header length off by one is refused (it used to parse and resume on shifted blobs)', () => {
  for (const delta of [-1, 1]) {
    const dir = sample();
    edit(dir, (b) => {
      b.writeUInt32LE(b.readUInt32LE(8) + delta, 8);
      return b;
    });
    rejects(dir, /header checksum mismatch/);
  }
});

test('a flipped bit in a blob is a checksum mismatch naming the tensor', () => {
  const dir = sample();
  edit(dir, (b) => {
    b[b.length - 3]! ^= 0x10; // inside the last blob: v of 'b'
    return b;
  });
  rejects(dir, /tensor 'b': v blob checksum mismatch/);
});

test('wrong types in the header are FormatErrors naming the field, not TypeErrors', () => {
  const cases: [(h: { state: Record<string, unknown>; tensors: Record<string, unknown>[] }) => void, RegExp][] = [
    [(h) => { h.state.step = '3'; }, /header field state\.step/],
    [(h) => { h.state.data = null; }, /header field state\.data/],
    [(h) => { h.tensors = {} as never; }, /header field tensors/],
    [(h) => { h.tensors[0]!.length = -2; }, /header field tensors\.0\.length/],
    [(h) => { h.tensors[1]!.offset = 0; }, /tensor 'b': blob at offset 0/],
    [(h) => { (h.state.config as Record<string, unknown>).steps = 'many'; }, /header config: .*steps = many/],
    [(h) => { h.state.version = 3; }, /header field state\.version/],
  ];
  for (const [f, re] of cases) {
    const dir = sample();
    editHeader(dir, f);
    rejects(dir, re);
  }
  const dir = sample();
  edit(dir, (b) => {
    b.write('x', 17, 'latin1'); // inside the JSON header
    return b;
  });
  rejects(dir, /header checksum mismatch/);
});

test('format 1 and foreign files are refused with a hint', () => {
  const dir = sample();
  edit(dir, (b) => {
    b.write('RFCKPT01', 0, 'latin1');
    return b;
  });
  rejects(dir, /format 1 checkpoint/);
  edit(dir, () => Buffer.from('not a checkpoint at all'));
  rejects(dir, /bad magic/);
});
