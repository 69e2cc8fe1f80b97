import { test } from 'node:test';
import assert from 'node:assert/strict';
import { writeFileSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { FormatError } from '../../src/tensor/errors.js';
import {
  parseSafetensors,
  readSafetensors,
  readSafetensorsFolder,
  readShardedSafetensors,
  writeSafetensors,
} from '../../src/io/safetensors.js';
import { f32ArrayToBf16, f32ArrayToF16, isDeferred, type RawTensor } from '../../src/io/tensor-file.js';
import { tempDir } from './tmp.js';

const dir = tempDir('st');

function sample(): RawTensor[] {
  const a = new Float32Array([1, -2.5, 3.25, 1e-8, -0, Infinity, 65504, 1 / 3]);
  const b = Float32Array.from({ length: 15 }, (_, i) => Math.sin(i) * 100);
  return [
    { name: 'a.f32', dtype: 'F32', shape: [2, 4], data: a },
    { name: 'b.f16', dtype: 'F16', shape: [3, 5], data: f32ArrayToF16(b) },
    { name: 'c.bf16', dtype: 'BF16', shape: [5, 3], data: f32ArrayToBf16(b) },
    { name: 'scalar', dtype: 'F32', shape: [], data: new Float32Array([7]) },
    { name: 'odd', dtype: 'F16', shape: [3], data: new Uint16Array([1, 0x7c00, 0xfc00]) },
  ];
}

/** Assemble a file from a raw header object and a data region (for the bad-input cases). */
function rawFile(header: unknown, data: Uint8Array): Buffer {
  const json = Buffer.from(JSON.stringify(header));
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(json.byteLength));
  return Buffer.concat([len, json, data]);
}

function throwsFormat(fn: () => unknown, ...needles: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FormatError, `expected FormatError, got ${String(e)}`);
    for (const n of needles) assert.ok(e.message.includes(n), `message ${JSON.stringify(e.message)} lacks ${n}`);
    assert.ok(e.hint.length > 0, 'has a hint');
    return true;
  });
}

test('safetensors round trip is bit-exact for F32, F16, BF16 with metadata', () => {
  const path = join(dir, 'rt.safetensors');
  const ts = sample();
  writeSafetensors(path, ts, { format: 'pt', note: 'x' });
  const back = readSafetensors(path);
  assert.deepEqual(back.metadata, { format: 'pt', note: 'x' });
  assert.deepEqual([...back.tensors.keys()], ts.map((t) => t.name));
  for (const t of ts) {
    const r = back.tensors.get(t.name)!;
    assert.equal(r.dtype, t.dtype);
    assert.deepEqual(r.shape, t.shape);
    assert.deepEqual(new Uint8Array(r.data.buffer, r.data.byteOffset, r.data.byteLength),
      new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength));
  }
});

test('safetensors: tensors at offsets not aligned to their item size read back exactly', () => {
  // A 2-byte F16 tensor first leaves the F32 one at an offset that is not a multiple of 4.
  const f16: RawTensor = { name: 'h', dtype: 'F16', shape: [1], data: new Uint16Array([0x3c00]) };
  const f32: RawTensor = { name: 'f', dtype: 'F32', shape: [2], data: new Float32Array([1.5, 2.5]) };
  const path = join(dir, 'unaligned.safetensors');
  writeSafetensors(path, [f16, f32]);
  const back = readSafetensors(path);
  assert.deepEqual([...(back.tensors.get('f')!.data as Float32Array)], [1.5, 2.5]);
  assert.equal(back.tensors.get('h')!.data[0], 0x3c00);
});

test('safetensors: tensors are read on first use, from the file whose header was read', () => {
  const path = join(dir, 'lazy.safetensors');
  const ts = sample();
  writeSafetensors(path, ts);
  const st = readSafetensors(path);
  assert.ok([...st.tensors.values()].every(isDeferred));
  assert.deepEqual(st.tensors.get('b.f16')!.data, ts[1]!.data);
  assert.ok(!isDeferred(st.tensors.get('b.f16')!) && isDeferred(st.tensors.get('a.f32')!));
  // replaced before the other tensors were read: an error, not weights from two different files
  writeSafetensors(path, [{ ...ts[0]!, data: new Float32Array(8).fill(9) }, ...ts.slice(1)]);
  throwsFormat(() => st.tensors.get('a.f32')!.data, path, 'changed on disk');
});

test('safetensors: truncated file', () => {
  throwsFormat(() => parseSafetensors(Buffer.alloc(5), 'tiny.safetensors'), 'tiny.safetensors', 'truncated');
  const full = rawFile({ w: { dtype: 'F32', shape: [4], data_offsets: [0, 16] } }, new Uint8Array(16));
  throwsFormat(() => parseSafetensors(full.subarray(0, full.byteLength - 4), 'cut.safetensors'),
    'cut.safetensors', "tensor 'w'", 'out of range');
});

test('safetensors: header length beyond the file', () => {
  const b = rawFile({}, new Uint8Array(0));
  b.writeBigUInt64LE(1000n);
  throwsFormat(() => parseSafetensors(b, 'h.safetensors'), 'h.safetensors', 'header length 1000 is beyond the file');
});

test('safetensors: offsets out of range', () => {
  const b = rawFile({ w: { dtype: 'F32', shape: [4], data_offsets: [8, 24] } }, new Uint8Array(16));
  throwsFormat(() => parseSafetensors(b, 'o.safetensors'), 'o.safetensors', "tensor 'w'", 'out of range');
});

test('safetensors: overlapping tensors', () => {
  const b = rawFile({
    a: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
    b: { dtype: 'F32', shape: [2], data_offsets: [4, 12] },
  }, new Uint8Array(12));
  throwsFormat(() => parseSafetensors(b, 'ov.safetensors'), 'ov.safetensors', "tensor 'b'", "overlap tensor 'a'");
});

test('safetensors: holes and trailing bytes are rejected', () => {
  const hole = rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [4, 8] } }, new Uint8Array(8));
  throwsFormat(() => parseSafetensors(hole, 'hole.safetensors'), "tensor 'a'", 'hole');
  const trail = rawFile({ a: { dtype: 'F32', shape: [1], data_offsets: [0, 4] } }, new Uint8Array(8));
  throwsFormat(() => parseSafetensors(trail, 'trail.safetensors'), 'trail.safetensors', 'trailing');
});

test('safetensors: unknown and unsupported dtypes', () => {
  const u = rawFile({ q: { dtype: 'Q4', shape: [1], data_offsets: [0, 1] } }, new Uint8Array(1));
  throwsFormat(() => parseSafetensors(u, 'u.safetensors'), 'u.safetensors', "tensor 'q'", 'unknown dtype "Q4"');
  const i = rawFile({ q: { dtype: 'I64', shape: [1], data_offsets: [0, 8] } }, new Uint8Array(8));
  throwsFormat(() => parseSafetensors(i, 'i.safetensors'), "tensor 'q'", 'unsupported dtype "I64"');
});

test('safetensors: shape not matching the byte span, bad JSON, bad metadata', () => {
  const s = rawFile({ w: { dtype: 'F16', shape: [3], data_offsets: [0, 8] } }, new Uint8Array(8));
  throwsFormat(() => parseSafetensors(s, 's.safetensors'), "tensor 'w'", 'needs 6 bytes');
  const j = Buffer.concat([Buffer.from([3, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{x}')]);
  throwsFormat(() => parseSafetensors(j, 'j.safetensors'), 'j.safetensors', 'not valid JSON');
  const m = rawFile({ __metadata__: { a: 1 } }, new Uint8Array(0));
  throwsFormat(() => parseSafetensors(m, 'm.safetensors'), '__metadata__');
});

test('sharded safetensors: merged through the index; a tensor missing from its shard is named', () => {
  const sd = join(dir, 'sharded');
  mkdirSync(sd);
  const [a, b, c] = sample();
  writeSafetensors(join(sd, 'model-00001-of-00002.safetensors'), [a!, b!]);
  writeSafetensors(join(sd, 'model-00002-of-00002.safetensors'), [c!]);
  const index = {
    metadata: { total_size: 0 },
    weight_map: { 'a.f32': 'model-00001-of-00002.safetensors', 'b.f16': 'model-00001-of-00002.safetensors', 'c.bf16': 'model-00002-of-00002.safetensors' },
  };
  writeFileSync(join(sd, 'model.safetensors.index.json'), JSON.stringify(index));
  const st = readSafetensorsFolder(sd);
  assert.deepEqual([...st.tensors.keys()].sort(), ['a.f32', 'b.f16', 'c.bf16']);
  assert.deepEqual(st.tensors.get('c.bf16')!.data, c!.data);

  index.weight_map = { ...index.weight_map, 'd.missing': 'model-00002-of-00002.safetensors' } as typeof index.weight_map;
  writeFileSync(join(sd, 'model.safetensors.index.json'), JSON.stringify(index));
  throwsFormat(() => readShardedSafetensors(join(sd, 'model.safetensors.index.json')), "tensor 'd.missing'", 'model-00002-of-00002');
  throwsFormat(() => readSafetensorsFolder(join(dir, 'nothing-here')), 'nothing-here', 'model.safetensors');
});
