import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FormatError } from '../../src/tensor/errors.js';
import { loadModel, toHalfRope } from '../../src/io/model-load.js';
import { writeGgufModel, writeHfFolder } from '../../src/io/model-save.js';
import { readGguf } from '../../src/io/gguf.js';
import { toF32 } from '../../src/io/tensor-file.js';
import { tempDir } from './tmp.js';

const dir = tempDir('models');
const HF = 'models/stories260K';
const BIN = 'test/fixtures/stories260K/stories260K.bin';
interface Ref { text: string; ids: number[]; decoded: string }
const REF: Ref[] = readFileSync('test/fixtures/tok512/tok512_sentencepiece_reference.jsonl', 'utf8')
  .split('\n').filter((l) => l).map((l) => JSON.parse(l) as Ref);

test('loadModel: the HF folder and the llama2.c checkpoint give the same model once RoPE layouts agree', () => {
  const hf = loadModel(HF);
  assert.equal(hf.format, 'hf');
  assert.equal(hf.config.ropeStyle, 'half');
  assert.ok(hf.tokenizer);
  const l2c = loadModel(BIN);
  assert.equal(l2c.format, 'llama2c');
  assert.equal(l2c.config.ropeStyle, 'interleaved');
  assert.equal(l2c.tokenizerSource, 'test/fixtures/stories260K/tok512.bin');
  const half = toHalfRope(l2c);
  assert.deepEqual(half.config, hf.config);
  for (const [name, t] of hf.tensors) assert.deepEqual(Array.from(half.tensors.get(name)!.data), Array.from(t.data), name);
  assert.deepEqual(loadModel(BIN, { ropeStyle: 'half' }).config, hf.config);
});

test('stories260K HF -> GGUF (F32) -> load: same config, bit-identical weights, tokenizer exact on all 228 lines', () => {
  const hf = loadModel(HF);
  const path = join(dir, 'stories260K-f32.gguf');
  writeGgufModel(path, hf, 'F32', 'stories260K');
  const f = readGguf(path, { tensors: false });
  assert.equal(f.metadata.get('general.architecture')!.value, 'llama');
  assert.equal(f.metadata.get('tokenizer.ggml.model')!.value, 'llama');
  assert.equal(f.tensorInfos.length, 1 + 5 * 9 + 1); // tied: no output.weight
  const g = loadModel(path);
  assert.deepEqual(g.config, hf.config);
  for (const [name, t] of hf.tensors) assert.deepEqual(Array.from(g.tensors.get(name)!.data), Array.from(t.data), name);
  for (const r of REF) {
    assert.deepEqual(g.tokenizer!.encode(r.text, { bos: false }), r.ids, r.text.slice(0, 40));
    assert.equal(g.tokenizer!.decode(r.ids), r.decoded);
  }
});

test('GGUF F16 export keeps matrices in F16 and norms in F32, within half precision of the F32 weights', () => {
  const hf = loadModel(HF);
  const path = join(dir, 'stories260K-f16.gguf');
  writeGgufModel(path, hf, 'F16');
  const g = loadModel(path);
  assert.equal(g.tensors.get('model.layers.0.self_attn.q_proj.weight')!.dtype, 'F16');
  assert.equal(g.tensors.get('model.norm.weight')!.dtype, 'F32');
  for (const [name, t] of hf.tensors) {
    const a = toF32(t);
    const b = toF32(g.tensors.get(name)!);
    for (let i = 0; i < a.length; i++) assert.ok(Math.abs(a[i]! - b[i]!) <= Math.abs(a[i]!) * 2 ** -11 + 2 ** -24, name);
  }
});

test('HF folder export in F16 and BF16 reloads with the same config and tokenizer files', () => {
  const hf = loadModel(HF);
  for (const dtype of ['F16', 'BF16'] as const) {
    const out = join(dir, `hf-${dtype}`);
    assert.deepEqual(writeHfFolder(out, hf, dtype), { tokenizerWritten: true });
    const back = loadModel(out);
    assert.deepEqual(back.config, hf.config);
    assert.equal(back.tensors.get('model.embed_tokens.weight')!.dtype, dtype);
    assert.deepEqual(back.tokenizer!.encode('Once upon a time'), hf.tokenizer!.encode('Once upon a time'));
  }
  // A llama2.c model has no tokenizer.json to copy: the result says so.
  assert.deepEqual(writeHfFolder(join(dir, 'from-l2c'), loadModel(BIN, { ropeStyle: 'half' })), { tokenizerWritten: false });
  assert.throws(() => writeGgufModel(join(dir, 'x.gguf'), loadModel(BIN)), (e: unknown) => e instanceof FormatError && e.message.includes('interleaved'));
});

test('bad model input: missing path, shape not matching config, unsupported architecture', () => {
  assert.throws(() => loadModel(join(dir, 'nope')), (e: unknown) => e instanceof FormatError && e.message.includes('nope'));
  const bad = join(dir, 'bad-shape');
  mkdirSync(bad);
  copyFileSync(join(HF, 'model.safetensors'), join(bad, 'model.safetensors'));
  const cfg = JSON.parse(readFileSync(join(HF, 'config.json'), 'utf8')) as Record<string, unknown>;
  writeFileSync(join(bad, 'config.json'), JSON.stringify({ ...cfg, intermediate_size: 128 }));
  assert.throws(() => loadModel(bad), (e: unknown) => e instanceof FormatError && e.message.includes("tensor 'model.layers.0.mlp.gate_proj.weight'")
    && e.message.includes('[172, 64]') && e.message.includes('[128, 64]'));
  writeFileSync(join(bad, 'config.json'), JSON.stringify({ ...cfg, model_type: 'falcon' }));
  assert.throws(() => loadModel(bad), (e: unknown) => e instanceof FormatError && e.message.includes('falcon') && e.message.includes('config.json'));
});
