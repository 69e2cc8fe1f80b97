import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { FormatError } from '../../src/tensor/errors.js';
import { configFromHf, type ModelConfig } from '../../src/model/config.js';
import { configFromGgufMetadata, ggufMetadataFromConfig } from '../../src/io/gguf-config.js';
import { readGguf } from '../../src/io/gguf.js';
import { writeGguf } from '../../src/io/gguf-write.js';
import { readSafetensors, writeSafetensors } from '../../src/io/safetensors.js';
import { f32ArrayToF16, type RawTensor } from '../../src/io/tensor-file.js';
import {
  checkHfTensors,
  ggufToHf,
  halfToInterleavedRows,
  hfToGguf,
  interleavedToHalfRows,
  weightTable,
} from '../../src/io/weight-names.js';
import { tempDir } from './tmp.js';

const dir = tempDir('names');

const TINY_LLAMA = configFromHf({
  model_type: 'llama', vocab_size: 40, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 2, num_attention_heads: 4,
  num_key_value_heads: 2, max_position_embeddings: 64, rms_norm_eps: 1e-5, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2,
}, 'tiny-llama');
const TINY_QWEN = configFromHf({
  model_type: 'qwen2', vocab_size: 40, hidden_size: 16, intermediate_size: 24, num_hidden_layers: 1, num_attention_heads: 4,
  num_key_value_heads: 2, max_position_embeddings: 64, tie_word_embeddings: true, bos_token_id: 1, eos_token_id: 2,
}, 'tiny-qwen');
const TINY_GPT2 = configFromHf({ model_type: 'gpt2', vocab_size: 40, n_embd: 16, n_layer: 2, n_head: 4, n_positions: 32, bos_token_id: 0, eos_token_id: 0 }, 'tiny-gpt2');

/** Deterministic pseudo-random weights for every tensor the config implies. */
function randomModel(cfg: ModelConfig, dtype: 'F32' | 'F16' = 'F32'): Map<string, RawTensor> {
  let s = 12345;
  const rnd = () => ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  const m = new Map<string, RawTensor>();
  for (const e of weightTable(cfg)) {
    const f = Float32Array.from({ length: e.shape.reduce((a, b) => a * b, 1) }, rnd);
    m.set(e.hf, { name: e.hf, dtype, shape: e.shape, data: dtype === 'F32' ? f : f32ArrayToF16(f) });
  }
  return m;
}

test('q/k row permutations: the HF formula on one head, and the two directions are inverses', () => {
  // 2 heads of dim 4, 1 column: interleaved rows [a0 b0 a1 b1] -> rotate-half rows [a0 a1 b0 b1] per head.
  const t: RawTensor = { name: 'q', dtype: 'F32', shape: [8, 1], data: Float32Array.from([0, 1, 2, 3, 4, 5, 6, 7]) };
  assert.deepEqual(Array.from(interleavedToHalfRows(t, 2).data), [0, 2, 1, 3, 4, 6, 5, 7]);
  const big: RawTensor = { name: 'k', dtype: 'F16', shape: [24, 5], data: Uint16Array.from({ length: 120 }, (_, i) => i) };
  assert.deepEqual(halfToInterleavedRows(interleavedToHalfRows(big, 3), 3).data, big.data);
  assert.deepEqual(interleavedToHalfRows(halfToInterleavedRows(big, 3), 3).data, big.data);
});

/** RoPE on one head vector at position p: interleaved pairs (2i, 2i+1) or rotate-half pairs (i, i + hd/2). */
function rope(x: Float32Array, p: number, style: 'interleaved' | 'half'): Float32Array {
  const hd = x.length;
  const out = new Float32Array(hd);
  for (let i = 0; i < hd / 2; i++) {
    const a = p * 10000 ** (-(2 * i) / hd);
    const [u, v] = style === 'interleaved' ? [2 * i, 2 * i + 1] : [i, i + hd / 2];
    out[u] = x[u]! * Math.cos(a) - x[v]! * Math.sin(a);
    out[v] = x[u]! * Math.sin(a) + x[v]! * Math.cos(a);
  }
  return out;
}

test('after interleavedToHalfRows, rotate-half RoPE gives the same attention scores as interleaved RoPE', () => {
  const hd = 8;
  const dIn = 6;
  const wq: RawTensor = { name: 'q', dtype: 'F32', shape: [hd, dIn], data: Float32Array.from({ length: hd * dIn }, (_, i) => Math.sin(i * 1.3)) };
  const wk: RawTensor = { name: 'k', dtype: 'F32', shape: [hd, dIn], data: Float32Array.from({ length: hd * dIn }, (_, i) => Math.cos(i * 0.7)) };
  const xq = Float32Array.from({ length: dIn }, (_, i) => i - 2.5);
  const xk = Float32Array.from({ length: dIn }, (_, i) => 1 / (i + 1));
  const matvec = (w: RawTensor, x: Float32Array) => Float32Array.from({ length: hd }, (_, r) => x.reduce((acc, xi, c) => acc + w.data[r * dIn + c]! * xi, 0));
  const dot = (a: Float32Array, b: Float32Array) => a.reduce((acc, ai, i) => acc + ai * b[i]!, 0);
  const score = (q: RawTensor, k: RawTensor, style: 'interleaved' | 'half') => dot(rope(matvec(q, xq), 7, style), rope(matvec(k, xk), 3, style));
  const ref = score(wq, wk, 'interleaved');
  const conv = score(interleavedToHalfRows(wq, 1), interleavedToHalfRows(wk, 1), 'half');
  assert.ok(Math.abs(ref - conv) < 1e-9, `${ref} vs ${conv}`);
  assert.ok(Math.abs(ref - score(wq, wk, 'half')) > 1e-3, 'without the permutation the scores differ');
});

test('hfToGguf / ggufToHf round trip is bit-exact (llama permute, qwen2 biases, gpt2 Conv1D transposes)', () => {
  for (const cfg of [TINY_LLAMA, TINY_QWEN, TINY_GPT2]) {
    const hf = randomModel(cfg, cfg === TINY_GPT2 ? 'F16' : 'F32');
    const gguf = hfToGguf(cfg, hf);
    const back = ggufToHf(cfg, new Map(gguf.map((t) => [t.name, t])));
    assert.deepEqual([...back.keys()], [...hf.keys()]);
    for (const [name, t] of hf) assert.deepEqual(back.get(name)!, t, name);
  }
  const g = new Map(hfToGguf(TINY_LLAMA, randomModel(TINY_LLAMA)).map((t) => [t.name, t]));
  assert.deepEqual(g.get('blk.1.attn_k.weight')!.shape, [8, 16]);
  assert.deepEqual(g.get('output.weight')!.shape, [40, 16]);
  const gp = new Map(hfToGguf(TINY_GPT2, randomModel(TINY_GPT2)).map((t) => [t.name, t]));
  assert.deepEqual(gp.get('blk.0.attn_qkv.weight')!.shape, [48, 16]); // HF Conv1D [16, 48] transposed
  assert.equal(gp.has('output.weight'), false); // tied
});

test('a model written as GGUF by our writer reads back to the same config and HF tensors', () => {
  for (const cfg of [TINY_LLAMA, TINY_GPT2]) {
    const hf = randomModel(cfg);
    const path = join(dir, `${cfg.arch}.gguf`);
    writeGguf(path, ggufMetadataFromConfig(cfg), hfToGguf(cfg, hf));
    const f = readGguf(path);
    const cfg2 = configFromGgufMetadata(f);
    assert.deepEqual(cfg2, cfg);
    const back = ggufToHf(cfg2, f.tensors, path);
    for (const [name, t] of hf) assert.deepEqual(Array.from(back.get(name)!.data), Array.from(t.data), name);
  }
});

test('missing, extra and mis-shaped tensors are FormatErrors naming the tensor', () => {
  const fails = (m: Map<string, RawTensor>, ...needles: string[]) =>
    assert.throws(() => checkHfTensors(TINY_LLAMA, m, 'ckpt.safetensors'), (e: unknown) =>
      e instanceof FormatError && needles.every((n) => e.message.includes(n)) && e.message.includes('ckpt.safetensors'));
  const missing = randomModel(TINY_LLAMA);
  missing.delete('model.layers.1.mlp.up_proj.weight');
  fails(missing, "tensor 'model.layers.1.mlp.up_proj.weight'", 'missing');
  const extra = randomModel(TINY_LLAMA);
  extra.set('model.layers.2.mlp.up_proj.weight', extra.get('model.layers.1.mlp.up_proj.weight')!);
  fails(extra, "tensor 'model.layers.2.mlp.up_proj.weight'", 'extra');
  const shape = randomModel(TINY_LLAMA);
  const k = shape.get('model.layers.0.self_attn.k_proj.weight')!;
  shape.set(k.name, { ...k, shape: [16, 8] });
  fails(shape, "tensor 'model.layers.0.self_attn.k_proj.weight'", 'shape [16, 8]', '[8, 16]');
});

test('HF quirks: unprefixed GPT-2 names and attn.bias buffers; a tied lm_head equal to the embedding is dropped', () => {
  const hf = randomModel(TINY_GPT2);
  const old = new Map<string, RawTensor>();
  for (const [n, t] of hf) old.set(n.replace(/^transformer\./, ''), { ...t, name: n.replace(/^transformer\./, '') });
  old.set('h.0.attn.bias', { name: 'h.0.attn.bias', dtype: 'F32', shape: [1], data: new Float32Array(1) });
  assert.deepEqual([...checkHfTensors(TINY_GPT2, old, 'gpt2.safetensors').keys()], [...hf.keys()]);

  const q = randomModel(TINY_QWEN);
  q.set('lm_head.weight', { ...q.get('model.embed_tokens.weight')!, name: 'lm_head.weight' });
  assert.equal(checkHfTensors(TINY_QWEN, q, 'q').has('lm_head.weight'), false);
  const w = q.get('lm_head.weight')!;
  q.set('lm_head.weight', { ...w, data: new Float32Array(w.data.length) });
  assert.throws(() => checkHfTensors(TINY_QWEN, q, 'q'), (e: unknown) => e instanceof FormatError && e.message.includes("'lm_head.weight'"));
});

test('tiny random models survive a safetensors write/read exactly (F32 and F16)', () => {
  for (const dtype of ['F32', 'F16'] as const) {
    const hf = randomModel(TINY_LLAMA, dtype);
    const path = join(dir, `tiny-${dtype}.safetensors`);
    writeSafetensors(path, [...hf.values()], { format: 'pt' });
    const back = checkHfTensors(TINY_LLAMA, readSafetensors(path).tensors, path);
    for (const [name, t] of hf) assert.deepEqual(Array.from(back.get(name)!.data), Array.from(t.data));
  }
});
