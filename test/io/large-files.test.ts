/**
 * Files over 2 GiB (a Node Buffer's limit on some versions; Llama-3.2-1B is one 2.47 GB safetensors file) load, and
 * loading reads headers only. The files are sparse: they claim 2.25 GiB but cost no disk, and reading their holes
 * would show up as gigabytes of RSS.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { readGguf } from '../../src/io/gguf.js';
import { GgmlType } from '../../src/io/ggml-quants.js';
import { loadModel } from '../../src/io/model-load.js';
import { readSafetensors } from '../../src/io/safetensors.js';
import { isDeferred } from '../../src/io/tensor-file.js';
import { runCli } from '../helpers/cli.js';
import { bytes, ggufHeader, kv, safetensorsHeader, sparseFile, type HandTensor } from './hand-made.js';
import { tempDir } from './tmp.js';

const dir = tempDir('large');
const GiB = 2 ** 30;
/** A vocabulary whose [V, 4] F32 embedding is 2.25 GiB. */
const V = 2 ** 27 + 2 ** 24;
const MiB = 2 ** 20;

/** RSS growth while `fn` runs, in MiB. */
function rssGrowth<T>(fn: () => T): { value: T; mib: number } {
  const before = process.memoryUsage().rss;
  const value = fn();
  return { value, mib: (process.memoryUsage().rss - before) / MiB };
}

test('safetensors over 2 GiB: the tensor past 2 GiB reads back exactly, nothing else is read', () => {
  const far = new Float32Array([1.5, -2, 3.25, 1e-3]);
  const n = 2.25 * GiB / 4;
  const { head, offsets } = safetensorsHeader([
    { name: 'pad', dtype: 'F32', shape: [n], bytes: n * 4 },
    { name: 'far', dtype: 'F32', shape: [4], bytes: 16 },
  ]);
  const path = join(dir, 'big.safetensors');
  sparseFile(path, offsets[1]! + 16, [[0, head], [offsets[1]!, bytes(far)]]);
  assert.ok(offsets[1]! > 2 ** 31);

  const { value: st, mib } = rssGrowth(() => {
    const st = readSafetensors(path);
    assert.deepEqual(st.tensors.get('far')!.data, far);
    return st;
  });
  assert.ok(isDeferred(st.tensors.get('pad')!), 'the 2.25 GiB tensor was never read');
  assert.ok(mib < 64, `RSS grew ${mib.toFixed(1)} MiB`);
});

test('GGUF over 2 GiB: a tensor at offset 2.25 GiB reads back exactly, nothing else is read', () => {
  const far = new Float32Array([7, -0.5, 1e30, 42]);
  const infos: HandTensor[] = [
    { name: 'pad', shape: [2.25 * GiB / 4], type: GgmlType.F32, offset: 0 },
    { name: 'far', shape: [4], type: GgmlType.F32, offset: 2.25 * GiB },
  ];
  const head = ggufHeader([kv.str('general.architecture', 'llama')], infos);
  const path = join(dir, 'big.gguf');
  sparseFile(path, head.byteLength + 2.25 * GiB + 16, [[0, head], [head.byteLength + 2.25 * GiB, bytes(far)]]);

  const { value: f, mib } = rssGrowth(() => {
    const f = readGguf(path);
    assert.deepEqual(f.tensors.get('far')!.data, far);
    return f;
  });
  assert.ok(isDeferred(f.tensors.get('pad')!));
  assert.ok(mib < 64, `RSS grew ${mib.toFixed(1)} MiB`);
});

/** A one-layer llama (d 4, 2 heads, ffn 8, tied) with a 2.25 GiB embedding: HF name, GGUF name, shape. */
const SMALL: [string, string, number[]][] = [
  ['model.layers.0.input_layernorm.weight', 'blk.0.attn_norm.weight', [4]],
  ['model.layers.0.self_attn.q_proj.weight', 'blk.0.attn_q.weight', [4, 4]],
  ['model.layers.0.self_attn.k_proj.weight', 'blk.0.attn_k.weight', [4, 4]],
  ['model.layers.0.self_attn.v_proj.weight', 'blk.0.attn_v.weight', [4, 4]],
  ['model.layers.0.self_attn.o_proj.weight', 'blk.0.attn_output.weight', [4, 4]],
  ['model.layers.0.post_attention_layernorm.weight', 'blk.0.ffn_norm.weight', [4]],
  ['model.layers.0.mlp.gate_proj.weight', 'blk.0.ffn_gate.weight', [8, 4]],
  ['model.layers.0.mlp.up_proj.weight', 'blk.0.ffn_up.weight', [8, 4]],
  ['model.layers.0.mlp.down_proj.weight', 'blk.0.ffn_down.weight', [4, 8]],
  ['model.norm.weight', 'output_norm.weight', [4]],
];
const PARAMS = V * 4 + SMALL.reduce((s, [, , shape]) => s + shape.reduce((a, b) => a * b, 1), 0);
const NORM = new Float32Array([1, 2, 3, 4]);

async function inspectHeadersOnly(path: string): Promise<void> {
  const t0 = performance.now();
  const before = process.memoryUsage().rss;
  const r = await runCli(['inspect', path, '--json']);
  const mib = (process.memoryUsage().rss - before) / MiB;
  const ms = performance.now() - t0;
  assert.equal(r.code, 0, r.stderr);
  const info = JSON.parse(r.stdout) as { params: number; vocab: number };
  assert.equal(info.vocab, V);
  assert.equal(info.params, PARAMS);
  assert.ok(mib < 64, `inspect grew RSS by ${mib.toFixed(1)} MiB`);
  assert.ok(ms < 5000, `inspect took ${ms.toFixed(0)} ms`);
  // and the model still loads: the final norm, stored past 2 GiB, reads back exactly
  assert.deepEqual(loadModel(path).tensors.get('model.norm.weight')!.data, NORM);
}

test('inspect reads headers only: a 2.25 GiB HF folder', async () => {
  const hf = join(dir, 'hf');
  mkdirSync(hf);
  writeFileSync(join(hf, 'config.json'), JSON.stringify({
    model_type: 'llama', vocab_size: V, hidden_size: 4, intermediate_size: 8, num_hidden_layers: 1, num_attention_heads: 2,
    max_position_embeddings: 16, tie_word_embeddings: true, bos_token_id: 1, eos_token_id: 2,
  }));
  const { head, offsets } = safetensorsHeader([
    { name: 'model.embed_tokens.weight', dtype: 'F32', shape: [V, 4], bytes: V * 16 },
    ...SMALL.map(([name, , shape]) => ({ name, dtype: 'F32', shape, bytes: shape.reduce((a, b) => a * b, 4) })),
  ]);
  sparseFile(join(hf, 'model.safetensors'), offsets.at(-1)! + 16, [[0, head], [offsets.at(-1)!, bytes(NORM)]]);
  await inspectHeadersOnly(hf);
});

test('inspect reads headers only: a 2.25 GiB GGUF', async () => {
  const gguf: [string, number[]][] = [['token_embd.weight', [V, 4]], ...SMALL.map(([, name, shape]): [string, number[]] => [name, shape])];
  let at = 0;
  const infos = gguf.map(([name, shape]) => {
    const t = { name, shape, type: GgmlType.F32, offset: at };
    at += Math.ceil(shape.reduce((a, b) => a * b, 4) / 32) * 32;
    return t;
  });
  const head = ggufHeader([
    kv.str('general.architecture', 'llama'), kv.u32('llama.embedding_length', 4), kv.u32('llama.attention.head_count', 2),
    kv.u32('llama.block_count', 1), kv.u32('llama.feed_forward_length', 8), kv.u32('llama.context_length', 16),
    kv.f32('llama.attention.layer_norm_rms_epsilon', 1e-5),
  ], infos);
  const path = join(dir, 'model.gguf');
  const normAt = head.byteLength + infos.at(-1)!.offset;
  sparseFile(path, normAt + 16, [[0, head], [normAt, bytes(NORM)]]);
  await inspectHeadersOnly(path);
});
