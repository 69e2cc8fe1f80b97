/**
 * K-quants and the legacy 5-bit types: bit-exact dequantization of hand-built blocks against values worked out by
 * hand from the format (ggml-common.h), quantize -> write -> read -> dequantize round trips within named error
 * bounds, the reader's checks (row length, byte size, unsupported types, NaN scales), and the Q4_K_M type plan.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { FormatError } from '../../src/tensor/errors.js';
import { parseGguf, readGguf } from '../../src/io/gguf.js';
import { writeGguf, serializeGguf } from '../../src/io/gguf-write.js';
import { dequantize, GgmlType, quantize, type QuantType } from '../../src/io/ggml-quants.js';
import { packScalesMins, unpackScalesMins } from '../../src/io/kquants.js';
import { fallbackType, planGgufTypes, useMoreBits } from '../../src/io/kquants-mix.js';
import { f32ToF16, nonFiniteCount } from '../../src/io/tensor-file.js';
import { tempDir } from './tmp.js';
import { relRms } from '../helpers/tolerances.js';

const dir = tempDir('kquant');

/** A GGUF holding one tensor `t` of the given ggml type, dims innermost first, with these data bytes. */
function oneTensor(ne: number[], type: GgmlType, data: Uint8Array): Buffer {
  const parts: Buffer[] = [];
  const u32 = (v: number) => { const b = Buffer.alloc(4); b.writeUInt32LE(v); parts.push(b); };
  const u64 = (v: number) => { const b = Buffer.alloc(8); b.writeBigUInt64LE(BigInt(v)); parts.push(b); };
  parts.push(Buffer.from('GGUF'));
  u32(3);
  u64(1);
  u64(0);
  u64(1);
  parts.push(Buffer.from('t'));
  u32(ne.length);
  for (const d of ne) u64(d);
  u32(type);
  u64(0);
  const head = Buffer.concat(parts);
  return Buffer.concat([head, Buffer.alloc((32 - (head.byteLength % 32)) % 32), data]);
}

const decode = (type: GgmlType, data: Uint8Array, n: number): Float32Array =>
  parseGguf(oneTensor([n], type, data), `${GgmlType[type]}.gguf`).tensors.get('t')!.data as Float32Array;

function throwsFormat(fn: () => unknown, ...needles: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FormatError, `expected FormatError, got ${String(e)}`);
    for (const n of needles) assert.ok(e.message.includes(n), `message ${JSON.stringify(e.message)} lacks ${n}`);
    return true;
  });
}

// The Q4_K/Q5_K scale bytes for sc = [1, 2, 3, 4, 17, 33, 48, 63] and m = [0, 1, 2, 3, 20, 40, 5, 63], packed by
// hand: bytes 0-3 are sc[0..3] with the top 2 bits of sc[4..7] in bits 6-7; bytes 4-7 are m[0..3] with the top 2
// bits of m[4..7]; bytes 8-11 are the low 4 bits of sc[4..7] | the low 4 bits of m[4..7] << 4.
//   b0 = 1 | (17 >> 4) << 6 = 0x41   b4 = 0 | (20 >> 4) << 6 = 0x40   b8  = (17 & 15) | (20 & 15) << 4 = 0x41
//   b1 = 2 | (33 >> 4) << 6 = 0x82   b5 = 1 | (40 >> 4) << 6 = 0x81   b9  = (33 & 15) | (40 & 15) << 4 = 0x81
//   b2 = 3 | (48 >> 4) << 6 = 0xc3   b6 = 2 | (5 >> 4) << 6  = 0x02   b10 = (48 & 15) | (5 & 15) << 4  = 0x50
//   b3 = 4 | (63 >> 4) << 6 = 0xc4   b7 = 3 | (63 >> 4) << 6 = 0xc3   b11 = (63 & 15) | (63 & 15) << 4 = 0xff
const SC = [1, 2, 3, 4, 17, 33, 48, 63];
const MN = [0, 1, 2, 3, 20, 40, 5, 63];
const SCALE_BYTES = [0x41, 0x82, 0xc3, 0xc4, 0x40, 0x81, 0x02, 0xc3, 0x41, 0x81, 0x50, 0xff];

test('Q4_K/Q5_K 6-bit scale packing: the hand-packed bytes unpack to the scales and mins, and pack back', () => {
  const sc = new Uint8Array(8), m = new Uint8Array(8);
  unpackScalesMins(Uint8Array.from(SCALE_BYTES), 0, sc, m);
  assert.deepEqual(Array.from(sc), SC);
  assert.deepEqual(Array.from(m), MN);
  const back = new Uint8Array(12);
  packScalesMins(SC, MN, back, 0);
  assert.deepEqual(Array.from(back), SCALE_BYTES);
});

test('Q4_K: a hand-built super-block dequantizes bit-exactly to d * sc * q - dmin * m', () => {
  const b = new Uint8Array(144);
  b.set([0x00, 0x38], 0); // d = 0.5 (f16 0x3800)
  b.set([0x00, 0x34], 2); // dmin = 0.25 (f16 0x3400)
  b.set(SCALE_BYTES, 4);
  // qs[32c + l]: low nibble l & 15 is value 64c + l, high nibble 15 - (l & 15) is value 64c + 32 + l
  for (let c = 0; c < 4; c++) for (let l = 0; l < 32; l++) b[16 + 32 * c + l] = (l & 15) | ((15 - (l & 15)) << 4);
  const y = decode(GgmlType.Q4_K, b, 256);
  // by hand: value 1 = 0.5 * 1 * 1 - 0.25 * 0; value 32 = 0.5 * 2 * 15 - 0.25 * 1; value 197 (sub-block 6, q 5)
  // = 0.5 * 48 * 5 - 0.25 * 5; value 224 (sub-block 7, q 15) = 0.5 * 63 * 15 - 0.25 * 63; value 255 (q 0) = -0.25 * 63
  assert.equal(y[0], 0);
  assert.equal(y[1], 0.5);
  assert.equal(y[32], 14.75);
  assert.equal(y[197], 118.75);
  assert.equal(y[224], 456.75);
  assert.equal(y[255], -15.75);
  for (let e = 0; e < 256; e++) {
    const j = e >> 5, l = e & 31, q = (e & 32) ? 15 - (l & 15) : l & 15;
    assert.equal(y[e], 0.5 * SC[j]! * q - 0.25 * MN[j]!, `value ${e}`);
  }
});

test('Q5_K: the fifth bit of value 64c + 32h + l is bit 2c + h of qh[l]', () => {
  const b = new Uint8Array(176);
  b.set([0x00, 0x38], 0); // d = 0.5
  b.set([0x00, 0x34], 2); // dmin = 0.25
  b.set(SCALE_BYTES, 4);
  for (let l = 0; l < 32; l++) b[16 + l] = l < 16 ? 0xff : 0b0000_0110; // l >= 16: only bits 1 (c 0, h 1) and 2 (c 1, h 0)
  for (let c = 0; c < 4; c++) for (let l = 0; l < 32; l++) b[48 + 32 * c + l] = (l & 15) | ((15 - (l & 15)) << 4);
  const y = decode(GgmlType.Q5_K, b, 256);
  // value 0: q = 0 + 16 -> 0.5 * 1 * 16 = 8; value 16: q = 0 (qh[16] bit 0 clear); value 35 (sub-block 1, high
  // nibble 12, qh[3] bit 1 set): q = 28 -> 0.5 * 2 * 28 - 0.25 * 1; value 48 (qh[16] bit 1 set, nibble 15): q = 31
  // -> 0.5 * 2 * 31 - 0.25; value 80 (c 1, low nibble 0, qh[16] bit 2 set): q = 16 -> 0.5 * 3 * 16 - 0.25 * 2
  assert.equal(y[0], 8);
  assert.equal(y[16], 0);
  assert.equal(y[35], 27.75);
  assert.equal(y[48], 30.75);
  assert.equal(y[80], 23.5);
  for (let e = 0; e < 256; e++) {
    const c = e >> 6, h = (e >> 5) & 1, l = e & 31, j = e >> 5;
    const q = (h ? 15 - (l & 15) : l & 15) + (((b[16 + l]! >> (2 * c + h)) & 1) << 4);
    assert.equal(y[e], 0.5 * SC[j]! * q - 0.25 * MN[j]!, `value ${e}`);
  }
});

test('Q6_K: a hand-built super-block dequantizes bit-exactly to d * sc * (q - 32)', () => {
  // d = 0.25 at byte 208; int8 scales at 192; one quant set by hand: ql[0] = 0x21, qh[0] = 0b00_01_10_11
  const b = new Uint8Array(210);
  b.set([0x00, 0x34], 208);
  const scales = [1, -1, 2, -2, 3, -3, 4, -4, 5, -5, 6, -6, 7, -7, 127, -128];
  scales.forEach((s, j) => { b[192 + j] = s & 255; });
  b[0] = 0x21;
  b[128] = 0b00_01_10_11;
  const y = decode(GgmlType.Q6_K, b, 256);
  // value 0: low 4 bits from ql[0] low nibble (1), high 2 bits from qh[0] bits 0-1 (3): q = 49 -> 0.25 * 1 * 17
  // value 32: ql[32] low nibble (0), qh[0] bits 2-3 (2): q = 32 -> 0
  // value 64: ql[0] high nibble (2), qh[0] bits 4-5 (1): q = 18 -> 0.25 * 3 (sub-block 4) * -14
  // value 96: ql[32] high nibble (0), qh[0] bits 6-7 (0): q = 0 -> 0.25 * 4 (sub-block 6) * -32
  // every other value has q = 0: 0.25 * sc[e >> 4] * -32
  assert.equal(y[0], 4.25);
  assert.equal(y[32], 0);
  assert.equal(y[64], -10.5);
  assert.equal(y[96], -32);
  assert.equal(y[255], 0.25 * -128 * -32);
  for (let e = 0; e < 256; e++) {
    if (e === 0 || e === 32 || e === 64) continue;
    assert.equal(y[e], 0.25 * scales[e >> 4]! * -32, `value ${e}`);
  }
  // all 64 quant levels, packed by the layout rule: value e = 128h + 32k + l takes ql[64h + 32(k & 1) + l]'s nibble
  // k >> 1 and bits 2k, 2k + 1 of qh[32h + l]
  const q = (e: number) => (e * 7) & 63;
  b.fill(0, 0, 192);
  for (let e = 0; e < 256; e++) {
    const h = e >> 7, k = (e >> 5) & 3, l = e & 31;
    b[64 * h + 32 * (k & 1) + l] |= (q(e) & 15) << (4 * (k >> 1));
    b[128 + 32 * h + l] |= (q(e) >> 4) << (2 * k);
  }
  const z = decode(GgmlType.Q6_K, b, 256);
  for (let e = 0; e < 256; e++) assert.equal(z[e], 0.25 * scales[e >> 4]! * (q(e) - 32), `value ${e}`);
  assert.equal(z[230], 0.25 * 127 * (10 - 32)); // e = 230: q = 1610 & 63 = 10, sub-block 14
});

test('Q5_0 and Q5_1: the fifth bit of value j is bit j of the little-endian u32 qh', () => {
  const b0 = new Uint8Array(22);
  b0.set([0x00, 0x40], 0); // d = 2
  b0.set([0x01, 0x00, 0x01, 0x80], 2); // qh bits 0, 16, 31
  for (let j = 0; j < 16; j++) b0[6 + j] = 0x3 | (0x5 << 4);
  const y0 = decode(GgmlType.Q5_0, b0, 32);
  assert.equal(y0[0], (3 + 16 - 16) * 2); // bit 0 set
  assert.equal(y0[1], (3 - 16) * 2);
  assert.equal(y0[16], (5 + 16 - 16) * 2); // bit 16 set
  assert.equal(y0[17], (5 - 16) * 2);
  assert.equal(y0[31], (5 + 16 - 16) * 2); // bit 31 set
  const b1 = new Uint8Array(24);
  b1.set([0x00, 0x3c], 0); // d = 1
  b1.set([0x00, 0xbc], 2); // m = -1
  b1.set([0x02, 0x00, 0x00, 0x00], 4); // qh bit 1
  for (let j = 0; j < 16; j++) b1[8 + j] = 0x7 | (0xf << 4);
  const y1 = decode(GgmlType.Q5_1, b1, 32);
  assert.equal(y1[0], 7 - 1);
  assert.equal(y1[1], 7 + 16 - 1);
  assert.equal(y1[16], 15 - 1);
});

/** Deterministic Gaussian values (Box-Muller on a fixed LCG). */
function gaussian(n: number, seed: number, sigma = 1): Float32Array {
  let s = seed >>> 0;
  const u = () => { s = (Math.imul(s, 1664525) + 1013904223) >>> 0; return (s + 0.5) / 2 ** 32; };
  return Float32Array.from({ length: n }, () => sigma * Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u()));
}

/** Relative RMS error bounds on Gaussian data (measured: Q8_0 0.0053, Q5_0 0.040, Q4_K 0.072, Q5_K 0.036, Q6_K 0.017). */
const TOLERANCE: [QuantType, number][] = [
  [GgmlType.Q8_0, 0.008], [GgmlType.Q5_0, 0.05], [GgmlType.Q4_K, 0.1], [GgmlType.Q5_K, 0.05], [GgmlType.Q6_K, 0.02],
];

test('quantize -> write GGUF -> read -> dequantize: relative RMS error within each type\'s bound on Gaussian data', () => {
  const rows = 64, cols = 512;
  const x = gaussian(rows * cols, 7, 0.02);
  const tensors = TOLERANCE.map(([type]) => ({ name: GgmlType[type]!, shape: [rows, cols], type, data: quantize(type, x) }));
  const path = join(dir, 'roundtrip.gguf');
  writeGguf(path, new Map(), tensors);
  const f = readGguf(path);
  for (const [type, tol] of TOLERANCE) {
    const info = f.tensorInfos.find((t) => t.name === GgmlType[type])!;
    assert.equal(info.type, type);
    assert.deepEqual(info.shape, [rows, cols]);
    const t = f.tensors.get(GgmlType[type]!)!;
    assert.equal(t.dtype, 'F32');
    const err = relRms(x, t.data as Float32Array);
    assert.ok(err < tol, `${GgmlType[type]}: relative RMS ${err.toFixed(4)} >= ${tol}`);
    // reading is the inverse of the bytes written: dequantizing them directly gives the same values
    assert.deepEqual(t.data, dequantize(type, quantize(type, x), x.length));
  }
  // a scale 100x larger or smaller changes nothing relative (f16 scales have the range)
  for (const sigma of [2, 2e-4]) {
    const y = gaussian(256 * 8, 11, sigma);
    for (const [type, tol] of TOLERANCE) assert.ok(relRms(y, dequantize(type, quantize(type, y), y.length)) < tol, `${GgmlType[type]} at sigma ${sigma}`);
  }
});

test('quantizers on awkward blocks: zeros, a constant, all positive, one outlier, NaN-free and close', () => {
  const n = 256;
  const cases: [string, Float32Array][] = [
    ['zeros', new Float32Array(n)],
    ['constant', new Float32Array(n).fill(0.37)],
    ['negative constant', new Float32Array(n).fill(-1.5)],
    ['positive', Float32Array.from({ length: n }, (_, i) => 1 + (i % 17) / 16)],
    ['outlier', Float32Array.from(gaussian(n, 3), (v, i) => (i === 100 ? 50 : v))],
  ];
  for (const [name, x] of cases) {
    for (const [type] of TOLERANCE) {
      const y = dequantize(type, quantize(type, x), n);
      assert.ok(y.every(Number.isFinite), `${name} ${GgmlType[type]}`);
      const scale = Math.max(...Array.from(x, Math.abs)) || 1;
      // error per value at most a few quant steps of the block's range
      for (let i = 0; i < n; i++) assert.ok(Math.abs(y[i]! - x[i]!) <= scale * 0.15 + 1e-6, `${name} ${GgmlType[type]} value ${i}: ${y[i]} vs ${x[i]}`);
    }
  }
  // exactly representable values come back exactly: Q6_K levels -32..31 times 1/8, each sub-block of 16 holding a -32
  // (so its only exact scale is +1/8, and the super-block's int8 scales are all -128 times d = -1/1024)
  const ints = Float32Array.from({ length: n }, (_, i) => (i % 16 === 0 ? -32 : ((i * 7) % 63) - 31) / 8);
  assert.deepEqual(dequantize(GgmlType.Q6_K, quantize(GgmlType.Q6_K, ints), n), ints);
});

test('GGUF reader: K-quant rows not a multiple of 256, wrong byte sizes and unsupported types are FormatErrors naming the tensor', () => {
  throwsFormat(() => parseGguf(oneTensor([128, 2], GgmlType.Q4_K, new Uint8Array(144)), 'row.gguf'), 'row.gguf', "tensor 't'", 'row length 128', 'Q4_K', '256');
  throwsFormat(() => parseGguf(oneTensor([320], GgmlType.Q6_K, new Uint8Array(420)), 'row6.gguf'), "tensor 't'", 'row length 320', 'Q6_K');
  throwsFormat(() => parseGguf(oneTensor([256, 2], GgmlType.Q5_K, new Uint8Array(176)), 'short.gguf'), "tensor 't'", 'out of range');
  throwsFormat(() => parseGguf(oneTensor([256], GgmlType.Q2_K, new Uint8Array(84)), 'q2k.gguf'), "tensor 't'", 'Q2_K', 'unsupported');
  // the writer checks quantized data against its shape too
  throwsFormat(() => serializeGguf(new Map(), [{ name: 'w', shape: [2, 256], type: GgmlType.Q4_K, data: new Uint8Array(144) }]), "tensor 'w'", '144 bytes', '288');
  throwsFormat(() => serializeGguf(new Map(), [{ name: 'w', shape: [1, 64], type: GgmlType.Q6_K, data: new Uint8Array(210) }]), "tensor 'w'", 'row length 64');
});

test('a K-quant block with a NaN or Inf scale counts all its 256 values as non-finite', () => {
  const x = gaussian(512, 5);
  for (const [type, at] of [[GgmlType.Q4_K, 0], [GgmlType.Q4_K, 2], [GgmlType.Q5_K, 2], [GgmlType.Q6_K, 208]] as const) {
    const q = quantize(type, x);
    new DataView(q.buffer).setUint16(at, f32ToF16(NaN), true);
    const t = parseGguf(oneTensor([512], type, q), 'nan.gguf').tensors.get('t')!;
    assert.equal(nonFiniteCount(t), 256, `${GgmlType[type]} scale at byte ${at}`);
  }
});

test('Q4_K_M plan: llama.cpp\'s use_more_bits and fallbacks', () => {
  assert.deepEqual([0, 1, 2, 3, 4, 5].filter((i) => useMoreBits(i, 6)), [2, 5]);
  assert.deepEqual([...Array(8).keys()].filter((i) => useMoreBits(i, 8)), [0, 3, 6, 7]);
  assert.deepEqual([...Array(32).keys()].filter((i) => useMoreBits(i, 32)), [0, 1, 2, 3, 6, 9, 12, 15, 18, 21, 24, 27, 28, 29, 30, 31]);
  assert.equal(fallbackType(GgmlType.Q4_K, 512), GgmlType.Q4_K);
  assert.equal(fallbackType(GgmlType.Q4_K, 64), GgmlType.Q5_0);
  assert.equal(fallbackType(GgmlType.Q5_K, 64), GgmlType.Q5_1);
  assert.equal(fallbackType(GgmlType.Q6_K, 96), GgmlType.Q8_0);
  assert.equal(fallbackType(GgmlType.Q6_K, 172), GgmlType.F16);
  assert.equal(fallbackType(GgmlType.Q8_0, 172), GgmlType.F16);

  const layer = (l: number) => ['attn_norm', 'attn_q', 'attn_k', 'attn_v', 'attn_output', 'ffn_norm', 'ffn_gate', 'ffn_up', 'ffn_down']
    .map((n) => ({ name: `blk.${l}.${n}.weight`, shape: n.endsWith('norm') ? [256] : [256, 256] }));
  const model = (tied: boolean) => [{ name: 'token_embd.weight', shape: [1000, 256] }, ...[0, 1, 2, 3, 4, 5, 6, 7].flatMap(layer),
    { name: 'output_norm.weight', shape: [256] }, ...(tied ? [] : [{ name: 'output.weight', shape: [1000, 256] }])];
  const untied = planGgufTypes(model(false), 'Q4_K_M');
  const name = (t: GgmlType) => GgmlType[t];
  assert.equal(name(untied.get('output.weight')!), 'Q6_K');
  assert.equal(name(untied.get('token_embd.weight')!), 'Q4_K');
  assert.equal(name(untied.get('output_norm.weight')!), 'F32');
  for (let l = 0; l < 8; l++) {
    const more = [0, 3, 6, 7].includes(l) ? 'Q6_K' : 'Q4_K';
    assert.equal(name(untied.get(`blk.${l}.attn_v.weight`)!), more, `attn_v ${l}`);
    assert.equal(name(untied.get(`blk.${l}.ffn_down.weight`)!), more, `ffn_down ${l}`);
    for (const t of ['attn_q', 'attn_k', 'attn_output', 'ffn_gate', 'ffn_up']) assert.equal(name(untied.get(`blk.${l}.${t}.weight`)!), 'Q4_K');
    assert.equal(name(untied.get(`blk.${l}.attn_norm.weight`)!), 'F32');
  }
  // tied: the embedding is the output, so it takes the output's Q6_K
  assert.equal(name(planGgufTypes(model(true), 'Q4_K_M').get('token_embd.weight')!), 'Q6_K');
  // pure types
  assert.ok([...planGgufTypes(model(false), 'Q4_K').entries()].every(([k, t]) => name(t) === (k.includes('norm') ? 'F32' : 'Q4_K')));
  assert.ok([...planGgufTypes(model(false), 'Q6_K').entries()].every(([k, t]) => name(t) === (k.includes('norm') ? 'F32' : 'Q6_K')));
  assert.ok([...planGgufTypes(model(false), 'Q8_0').entries()].every(([k, t]) => name(t) === (k.includes('norm') ? 'F32' : 'Q8_0')));
  // GPT-2: the fused attn_qkv follows the attn_v rule; learned positions are not quantized
  const gpt2 = planGgufTypes([{ name: 'position_embd.weight', shape: [1024, 256] }, { name: 'blk.0.attn_qkv.weight', shape: [768, 256] },
    { name: 'blk.0.attn_qkv.bias', shape: [768] }], 'Q4_K_M');
  assert.deepEqual([...gpt2.values()].map(name), ['F32', 'Q6_K', 'F32']);
});
