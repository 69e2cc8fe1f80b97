import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { gguf as hfGguf } from '@huggingface/gguf';
import { FormatError } from '../../src/tensor/errors.js';
import { GgufType, parseGguf, readGguf, type GgufValue } from '../../src/io/gguf.js';
import { gv, serializeGguf, writeGguf } from '../../src/io/gguf-write.js';
import { GgmlType } from '../../src/io/ggml-quants.js';
import { f32ArrayToBf16, f32ArrayToF16, f32ToF16, type RawTensor } from '../../src/io/tensor-file.js';
import { bytes, ggufHeader, kv } from './hand-made.js';
import { tempDir } from './tmp.js';

const VOCAB = 'test/fixtures/gguf-vocab-gpt2/ggml-vocab-gpt-2.gguf';
const dir = tempDir('gguf');

function throwsFormat(fn: () => unknown, ...needles: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FormatError, `expected FormatError, got ${String(e)}`);
    for (const n of needles) assert.ok(e.message.includes(n), `message ${JSON.stringify(e.message)} lacks ${n}`);
    assert.ok(e.hint.length > 0);
    return true;
  });
}

/** A GGUF with one tensor of any ggml type and raw data bytes, built by hand (the writer only writes floats). */
function handMade(ne: number[], type: number, data: Uint8Array, opts: { offset?: number; second?: { offset: number } } = {}): Buffer {
  const parts: Buffer[] = [];
  const u32 = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(v); parts.push(b); };
  const u64 = (v: number) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); parts.push(b); };
  const str = (s: string) => { u64(Buffer.byteLength(s)); parts.push(Buffer.from(s)); };
  parts.push(Buffer.from('GGUF'));
  u32(3);
  u64(opts.second ? 2 : 1);
  u64(0);
  const info = (name: string, offset: number) => {
    str(name);
    u32(ne.length);
    for (const d of ne) u64(d);
    u32(type);
    u64(offset);
  };
  info('t', opts.offset ?? 0);
  if (opts.second) info('t2', opts.second.offset);
  const head = Buffer.concat(parts);
  const pad = Buffer.alloc((32 - (head.byteLength % 32)) % 32);
  return Buffer.concat([head, pad, data]);
}

test('GGUF: the llama.cpp GPT-2 vocab file parses, and agrees with @huggingface/gguf on every key', async () => {
  const f = readGguf(VOCAB);
  assert.equal(f.version, 3);
  assert.equal(f.metadata.size, 16);
  assert.equal(f.tensorInfos.length, 0);
  assert.equal(f.metadata.get('general.architecture')!.value, 'gpt2');
  const tokens = f.metadata.get('tokenizer.ggml.tokens')!;
  assert.equal(tokens.type, GgufType.ARRAY);
  assert.equal((tokens.value as string[]).length, 50257);
  assert.equal((tokens.value as string[])[50256], '<|endoftext|>');
  assert.ok(f.metadata.get('tokenizer.ggml.token_type')!.value instanceof Int32Array);
  assert.equal((f.metadata.get('tokenizer.ggml.merges')!.value as string[]).length, 50000);

  const oracle = await hfGguf(VOCAB, { allowLocalFile: true });
  const theirs = oracle.metadata as unknown as Record<string, unknown>;
  for (const [key, v] of f.metadata) {
    // Our F32 scalars are the shortest decimal of the stored float32; compare as float32.
    const ours = ArrayBuffer.isView(v.value) ? Array.from(v.value as Int32Array) : v.type === GgufType.F32 ? Math.fround(v.value as number) : v.value;
    const other = theirs[key];
    assert.deepEqual(ours, typeof other === 'bigint' ? Number(other) : other, key);
  }
});

test('GGUF: metadata of every type and F32/F16/BF16 tensors round-trip', () => {
  const meta = new Map<string, GgufValue>([
    ['general.architecture', gv.str('llama')],
    ['u8', { type: GgufType.U8, value: 250 }],
    ['i8', { type: GgufType.I8, value: -5 }],
    ['u16', { type: GgufType.U16, value: 65535 }],
    ['i16', { type: GgufType.I16, value: -300 }],
    ['u32', gv.u32(4000000000)],
    ['i32', gv.i32(-7)],
    ['f32', gv.f32(0.5)],
    ['bool', gv.bool(true)],
    ['str', gv.str('héllo ▁')],
    ['u64', { type: GgufType.U64, value: 2 ** 40 }],
    ['i64', { type: GgufType.I64, value: -(2 ** 40) }],
    ['big', { type: GgufType.U64, value: 2n ** 63n }],
    ['f64', { type: GgufType.F64, value: Math.PI }],
    ['arr.str', gv.strs(['a', '', 'ü'])],
    ['arr.f32', gv.f32s(new Float32Array([1, -2.5]))],
    ['arr.i32', gv.i32s(new Int32Array([1, 2, 3]))],
    ['arr.bool', { type: GgufType.ARRAY, elemType: GgufType.BOOL, value: [true, false] }],
    ['arr.nested', { type: GgufType.ARRAY, elemType: GgufType.ARRAY, value: [gv.i32s(new Int32Array([4, 5]))] }],
  ]);
  const w = Float32Array.from({ length: 6 * 5 }, (_, i) => Math.cos(i));
  const tensors: RawTensor[] = [
    { name: 'w.f32', dtype: 'F32', shape: [6, 5], data: w },
    { name: 'w.f16', dtype: 'F16', shape: [5, 3, 2], data: f32ArrayToF16(w) },
    { name: 'w.bf16', dtype: 'BF16', shape: [30], data: f32ArrayToBf16(w) },
  ];
  const path = join(dir, 'rt.gguf');
  writeGguf(path, meta, tensors);
  const back = readGguf(path);
  assert.equal(back.version, 3);
  assert.deepEqual([...back.metadata.keys()], [...meta.keys()]);
  for (const [k, v] of meta) assert.deepEqual(back.metadata.get(k), v, k);
  for (const t of tensors) {
    const r = back.tensors.get(t.name)!;
    assert.equal(r.dtype, t.dtype);
    assert.deepEqual(r.shape, t.shape);
    assert.deepEqual(Array.from(r.data), Array.from(t.data));
    assert.equal(back.tensorInfos.find((i) => i.name === t.name)!.offset % 32, 0);
  }
  // GGUF stores dims innermost first: the [6, 5] tensor has ne = [5, 6] on disk.
  const raw = readFileSync(path);
  const at = raw.indexOf(Buffer.from('w.f32')) + 5;
  assert.equal(raw.readUInt32LE(at), 2);
  assert.equal(Number(raw.readBigUInt64LE(at + 4)), 5);
  // The vocab file survives a read-write-read cycle.
  const vocab = readGguf(VOCAB);
  writeGguf(join(dir, 'vocab.gguf'), vocab.metadata, []);
  assert.deepEqual(readGguf(join(dir, 'vocab.gguf')).metadata, vocab.metadata);
});

test('GGUF: Q8_0, Q4_0 and Q4_1 tensors are dequantized to F32', () => {
  const q8 = Buffer.alloc(34);
  q8.writeUInt16LE(f32ToF16(0.5), 0);
  for (let j = 0; j < 32; j++) q8.writeInt8(j - 16, 2 + j);
  const t8 = parseGguf(handMade([32], GgmlType.Q8_0, q8), 'q8.gguf').tensors.get('t')!;
  assert.equal(t8.dtype, 'F32');
  assert.deepEqual(Array.from(t8.data), Array.from({ length: 32 }, (_, j) => (j - 16) * 0.5));

  const q4 = Buffer.alloc(18);
  q4.writeUInt16LE(f32ToF16(2), 0);
  for (let j = 0; j < 16; j++) q4[2 + j] = (j & 0xf) | ((15 - j) << 4);
  const t4 = parseGguf(handMade([32], GgmlType.Q4_0, q4), 'q4.gguf').tensors.get('t')!;
  const want4 = [...Array.from({ length: 16 }, (_, j) => (j - 8) * 2), ...Array.from({ length: 16 }, (_, j) => (15 - j - 8) * 2)];
  assert.deepEqual(Array.from(t4.data), want4);

  const q41 = Buffer.alloc(20);
  q41.writeUInt16LE(f32ToF16(1), 0);
  q41.writeUInt16LE(f32ToF16(-1), 2);
  for (let j = 0; j < 16; j++) q41[4 + j] = 3 | (5 << 4);
  const t41 = parseGguf(handMade([32], GgmlType.Q4_1, q41), 'q41.gguf').tensors.get('t')!;
  assert.deepEqual(Array.from(t41.data), [...Array(16).fill(2), ...Array(16).fill(4)]);
});

test('GGUF bad input: bad magic, old version, truncated file', () => {
  throwsFormat(() => parseGguf(Buffer.from('GGML\x03\0\0\0'), 'm.gguf'), 'm.gguf', 'bad magic');
  const v1 = handMade([4], GgmlType.F32, Buffer.alloc(16));
  v1.writeUInt32LE(1, 4);
  throwsFormat(() => parseGguf(v1, 'v1.gguf'), 'v1.gguf', 'version 1');
  const full = readFileSync(VOCAB);
  throwsFormat(() => parseGguf(full.subarray(0, 300000), 'cut.gguf'), 'cut.gguf', 'truncated');
  throwsFormat(() => parseGguf(full.subarray(0, 6), 'cut6.gguf'), 'cut6.gguf', 'truncated');
});

test('GGUF bad input: tensor data out of range, misaligned, overlapping, unsupported type', () => {
  throwsFormat(() => parseGguf(handMade([8], GgmlType.F32, Buffer.alloc(16)), 'short.gguf'), 'short.gguf', "tensor 't'", 'out of range');
  throwsFormat(() => parseGguf(handMade([4], GgmlType.F32, Buffer.alloc(64), { offset: 4 }), 'mis.gguf'), "tensor 't'", 'alignment');
  throwsFormat(() => parseGguf(handMade([16], GgmlType.F32, Buffer.alloc(128), { second: { offset: 32 } }), 'ov.gguf'),
    'ov.gguf', "tensor 't2'", "overlaps tensor 't'");
  throwsFormat(() => parseGguf(handMade([256], GgmlType.Q2_K, Buffer.alloc(84)), 'k.gguf'), 'k.gguf', "tensor 't'", 'Q2_K');
  throwsFormat(() => parseGguf(handMade([33], GgmlType.Q8_0, Buffer.alloc(64)), 'blk.gguf'), "tensor 't'", 'blocks of 32');
});

test('GGUF writer pads data to the alignment and serializes deterministically', () => {
  const t: RawTensor = { name: 'x', dtype: 'F16', shape: [3], data: new Uint16Array([1, 2, 3]) };
  const a = Buffer.concat(serializeGguf(new Map(), [t, { ...t, name: 'y' }]));
  const b = Buffer.concat(serializeGguf(new Map(), [t, { ...t, name: 'y' }]));
  assert.deepEqual(a, b);
  const f = parseGguf(a, 'pad.gguf');
  assert.deepEqual(f.tensorInfos.map((i) => i.offset), [0, 32]);
});

test('GGUF general.alignment 64 and 128: the data region and every tensor offset follow it', () => {
  const a = new Float32Array([1, 2, 3, 4, 5]);
  const b = new Float32Array([-1, 0.5, 1e-20]);
  for (const alignment of [64, 128]) {
    const infos = [{ name: 'a', shape: [5], type: GgmlType.F32, offset: 0 }, { name: 'b', shape: [3], type: GgmlType.F32, offset: alignment }];
    // Pad a metadata string so that the header ends 8 bytes past a multiple of 128: the data region then starts at a
    // different place for alignments 32, 64 and 128, and reading with the wrong one gives shifted tensors.
    let filler = '';
    const unpadded = () => ggufHeader([kv.u32('general.alignment', alignment), kv.str('filler', filler)], infos, { alignment: 1 });
    while (unpadded().byteLength % 128 !== 8) filler += 'x';
    const head = ggufHeader([kv.u32('general.alignment', alignment), kv.str('filler', filler)], infos, { alignment });
    const file = Buffer.concat([head, bytes(a), Buffer.alloc(alignment - 20), bytes(b)]);
    const path = join(dir, `align${alignment}.gguf`);
    writeFileSync(path, file);
    for (const f of [parseGguf(file, path), readGguf(path)]) {
      assert.equal(f.alignment, alignment);
      assert.deepEqual(f.tensors.get('a')!.data, a);
      assert.deepEqual(f.tensors.get('b')!.data, b);
    }
  }
});

test('GGUF general.alignment must be a nonzero power of two', () => {
  for (const bad of [kv.u32('general.alignment', 0), kv.u32('general.alignment', 48), kv.str('general.alignment', '32'),
    // 2^32 + 2^31 passes a 32-bit `a & (a - 1)` test
    kv.u64('general.alignment', 2 ** 32 + 2 ** 31)]) {
    throwsFormat(() => parseGguf(ggufHeader([bad], []), 'al.gguf'), 'al.gguf', "'general.alignment'", 'power of two');
  }
});
