/**
 * NaN and Inf weights load fine and then produce NaN logits far from the cause. Loading warns, naming the file and
 * the tensor (float tensors: every value; quantized ones: the block scales), and `inspect --check-weights` lists
 * every such tensor and exits 1.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { GgmlType } from '../../src/io/ggml-quants.js';
import { readGguf } from '../../src/io/gguf.js';
import { findNonFiniteWeights } from '../../src/io/model-load.js';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import { f32ToF16, type RawTensor } from '../../src/io/tensor-file.js';
import { runCli } from '../helpers/cli.js';
import { ggufHeader } from './hand-made.js';
import { tempDir } from './tmp.js';

const dir = tempDir('finite');

/** What `fn` writes to stderr, with warnings on (the test runner sets RECURFORMER_QUIET). */
function stderrOf(fn: () => void): string[] {
  const quiet = process.env.RECURFORMER_QUIET;
  delete process.env.RECURFORMER_QUIET;
  let err = '';
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((s: string | Uint8Array) => {
    err += String(s);
    return true;
  }) as typeof process.stderr.write;
  try {
    fn();
  } finally {
    process.stderr.write = write;
    if (quiet !== undefined) process.env.RECURFORMER_QUIET = quiet;
  }
  return err.split('\n').filter((l) => l);
}

test('loading a tensor with NaN or Inf warns once, naming the file and the tensor; finite tensors are silent', () => {
  const path = join(dir, 'bad.safetensors');
  writeSafetensors(path, [
    { name: 'ok', dtype: 'F32', shape: [3], data: new Float32Array([1, -0, 3.4e38]) },
    { name: 'nan', dtype: 'F32', shape: [2, 2], data: new Float32Array([1, NaN, 2, 3]) },
    { name: 'inf.f16', dtype: 'F16', shape: [3], data: new Uint16Array([f32ToF16(1), 0x7c00, 0xfc00]) },
    { name: 'inf.bf16', dtype: 'BF16', shape: [1], data: new Uint16Array([0xff80]) },
    { name: 'max.f16', dtype: 'F16', shape: [1], data: new Uint16Array([0x7bff]) }, // 65504: large, finite
  ]);
  const st = readSafetensors(path);
  const lines = stderrOf(() => {
    for (const t of st.tensors.values()) void t.data;
    for (const t of st.tensors.values()) void t.data; // read once: no second warning
  });
  assert.deepEqual(lines, [
    `recurformer: warning: ${path}: tensor 'nan' has 1 non-finite values (NaN or Inf) of 4`,
    `recurformer: warning: ${path}: tensor 'inf.f16' has 2 non-finite values (NaN or Inf) of 3`,
    `recurformer: warning: ${path}: tensor 'inf.bf16' has 1 non-finite values (NaN or Inf) of 1`,
  ]);
});

test('the warnings are capped per file, with a last line pointing at inspect --check-weights', () => {
  const path = join(dir, 'many.safetensors');
  writeSafetensors(path, Array.from({ length: 12 }, (_, i): RawTensor => ({ name: `t${i}`, dtype: 'F32', shape: [1], data: new Float32Array([NaN]) })));
  const st = readSafetensors(path);
  const lines = stderrOf(() => {
    for (const t of st.tensors.values()) void t.data;
  });
  assert.equal(lines.length, 9);
  assert.ok(lines[7]!.includes("tensor 't7'"));
  assert.match(lines[8]!, /more tensors have non-finite values; `recurformer inspect --check-weights` lists them all/);
});

/** A GGUF with a Q8_0 tensor whose second block has a NaN scale and a Q4_1 tensor whose first block's min is Inf. */
function quantizedGguf(): string {
  const q8 = Buffer.alloc(2 * 34);
  q8.writeUInt16LE(f32ToF16(0.5), 0);
  q8.writeUInt16LE(0x7e00, 34); // NaN
  const q41 = Buffer.alloc(20);
  q41.writeUInt16LE(f32ToF16(1), 0);
  q41.writeUInt16LE(0x7c00, 2); // m = Inf
  const head = ggufHeader([], [
    { name: 'q8', shape: [64], type: GgmlType.Q8_0, offset: 0 },
    { name: 'q41', shape: [32], type: GgmlType.Q4_1, offset: 96 },
  ]);
  const path = join(dir, 'quant.gguf');
  writeFileSync(path, Buffer.concat([head, q8, Buffer.alloc(96 - 68), q41]));
  return path;
}

test('quantized tensors: blocks with a NaN or Inf scale are found from the scales', () => {
  const path = quantizedGguf();
  const f = readGguf(path);
  const lines = stderrOf(() => {
    for (const t of f.tensors.values()) void t.data;
  });
  assert.deepEqual(lines, [
    `recurformer: warning: ${path}: tensor 'q8' has 32 non-finite values (NaN or Inf) of 64`,
    `recurformer: warning: ${path}: tensor 'q41' has 32 non-finite values (NaN or Inf) of 32`,
  ]);
  // the count agrees with the dequantized values
  assert.equal((f.tensors.get('q8')!.data as Float32Array).filter((x) => !Number.isFinite(x)).length, 32);
  assert.deepEqual(findNonFiniteWeights(path), {
    checked: 2,
    bad: [{ file: path, tensor: 'q8', count: 32, total: 64 }, { file: path, tensor: 'q41', count: 32, total: 32 }],
  });
});

test('a quantized matrix read as blocks (kept quantized in memory) warns as its values would', () => {
  const q8 = Buffer.alloc(2 * 34);
  q8.writeUInt16LE(f32ToF16(0.5), 0);
  q8.writeUInt16LE(0x7c00, 34); // Inf: the second row's block
  const path = join(dir, 'quant-matrix.gguf');
  writeFileSync(path, Buffer.concat([ggufHeader([], [{ name: 'm', shape: [2, 32], type: GgmlType.Q8_0, offset: 0 }]), q8]));
  const t = readGguf(path).tensors.get('m')!;
  let blocks: Uint8Array | undefined;
  const lines = stderrOf(() => {
    blocks = t.quant!.read();
  });
  assert.deepEqual(lines, [`recurformer: warning: ${path}: tensor 'm' has 32 non-finite values (NaN or Inf) of 64`]);
  assert.deepEqual([...blocks!], [...q8]);
  assert.equal(t.quant!.kind, 'Q8_0');
});

test('inspect --check-weights: lists every non-finite tensor and exits 1; a clean model passes', async () => {
  const clean = await runCli(['inspect', '--check-weights']);
  assert.equal(clean.code, 0, clean.stderr);
  assert.match(clean.stdout, /weights\s+all 47 tensors finite/);
  assert.deepEqual(findNonFiniteWeights('test/fixtures/stories260K/stories260K.bin').bad, []);

  // the bundled model with one NaN and one Inf written into its safetensors file
  const model = join(dir, 'stories-nan');
  mkdirSync(model);
  for (const f of readdirSync('models/stories260K')) copyFileSync(join('models/stories260K', f), join(model, f));
  const file = join(model, 'model.safetensors');
  const buf = readFileSync(file);
  const headerLen = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + headerLen).toString()) as Record<string, { data_offsets: [number, number] }>;
  const at = (name: string, i: number) => 8 + headerLen + header[name]!.data_offsets[0] + 4 * i;
  buf.writeFloatLE(NaN, at('model.layers.2.mlp.up_proj.weight', 17));
  buf.writeFloatLE(-Infinity, at('model.norm.weight', 0));
  writeFileSync(file, buf);

  const r = await runCli(['inspect', model, '--check-weights']);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /weights\s+2 of 47 tensors hold NaN or Inf:/);
  assert.ok(r.stdout.includes(`${file}: tensor 'model.layers.2.mlp.up_proj.weight': 1 of 11008 values NaN or Inf`), r.stdout);
  assert.ok(r.stdout.includes(`${file}: tensor 'model.norm.weight': 1 of 64 values NaN or Inf`), r.stdout);
  assert.match(r.stderr, /2 of 47 tensors hold NaN or Inf values/);

  const j = await runCli(['inspect', model, '--check-weights', '--json']);
  assert.equal(j.code, 1);
  const info = JSON.parse(j.stdout) as { checkedTensors: number; nonFiniteTensors: { tensor: string; count: number }[] };
  assert.equal(info.checkedTensors, 47);
  assert.deepEqual(info.nonFiniteTensors.map((b) => [b.tensor, b.count]), [['model.layers.2.mlp.up_proj.weight', 1], ['model.norm.weight', 1]]);
});
