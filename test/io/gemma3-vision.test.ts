/**
 * Gemma 3 vision-language checkpoints (Gemma3ForConditionalGeneration, model_type "gemma3", gemma-3-4b and up) load as
 * their text model. The test writes a tiny random checkpoint shaped like gemma-3-4b-it's (config.json with a sparse
 * text_config and a vision_config; BF16 text weights under `language_model.model.*`, or `model.language_model.*` as
 * transformers >= 4.52 saves them, beside a vision tower and projector), and the same text weights as a text-only
 * Gemma3ForCausalLM folder whose config.json spells out what Gemma3TextConfig fills in. Both load to the same config
 * and give the same greedy tokens. The vision tensors hold NaN: a read of any of them would print a non-finite
 * warning, and `inspect --check-weights` (which reads every tensor of the files) does list them; loading, inspect and
 * generation print none, only the one note that the vision tower is ignored.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { buildModel } from '../../src/io/build.js';
import { loadModel } from '../../src/io/model-load.js';
import { writeSafetensorsFolder } from '../../src/io/safetensors.js';
import { f32ArrayToBf16, isDeferred, toF32, type RawTensor } from '../../src/io/tensor-file.js';
import { weightTable } from '../../src/io/weight-names.js';
import { configFromHf } from '../../src/model/config.js';
import { generateIds } from '../../src/inference/generate.js';
import { Rng } from '../../src/tensor/index.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from './tmp.js';

const root = tempDir('gemma3-vision');

/** gemma-3-4b-it's config.json with tiny sizes (text_config names only what differs from Gemma3TextConfig's defaults). */
const VLM_CONFIG = {
  architectures: ['Gemma3ForConditionalGeneration'], boi_token_index: 255999, eoi_token_index: 256000, eos_token_id: [1, 106],
  image_token_index: 262144, initializer_range: 0.02, mm_tokens_per_image: 256, model_type: 'gemma3',
  text_config: {
    hidden_size: 48, intermediate_size: 128, model_type: 'gemma3_text', num_hidden_layers: 6, num_attention_heads: 4,
    num_key_value_heads: 1, head_dim: 32, query_pre_attn_scalar: 32, vocab_size: 512,
    rope_scaling: { factor: 8.0, rope_type: 'linear' }, sliding_window: 8,
  },
  torch_dtype: 'bfloat16', transformers_version: '4.50.0.dev0',
  vision_config: {
    hidden_size: 16, image_size: 16, intermediate_size: 32, model_type: 'siglip_vision_model', num_attention_heads: 2,
    num_hidden_layers: 1, patch_size: 4, vision_use_head: false,
  },
};

/** The same text model as transformers' Gemma3TextConfig(**text_config) serializes it, as a Gemma3ForCausalLM. */
const TEXT_CONFIG = {
  architectures: ['Gemma3ForCausalLM'], model_type: 'gemma3_text', attention_bias: false, attention_dropout: 0.0,
  attn_logit_softcapping: null, bos_token_id: 2, eos_token_id: [1, 106], final_logit_softcapping: null, head_dim: 32,
  hidden_activation: 'gelu_pytorch_tanh', hidden_size: 48, intermediate_size: 128, max_position_embeddings: 131072,
  num_attention_heads: 4, num_hidden_layers: 6, num_key_value_heads: 1, pad_token_id: 0, query_pre_attn_scalar: 32,
  rms_norm_eps: 1e-6, rope_local_base_freq: 10000.0, rope_scaling: { factor: 8.0, rope_type: 'linear' }, rope_theta: 1000000.0,
  sliding_window: 8, sliding_window_pattern: 6, torch_dtype: 'bfloat16', vocab_size: 512,
};

const text = configFromHf(TEXT_CONFIG, 'text config');

/** Random BF16 text weights under HF Gemma3ForCausalLM names (gains w near 0: the model applies 1 + w). */
const TEXT_TENSORS: RawTensor[] = (() => {
  const rng = new Rng(7);
  return weightTable(text).map((e) => {
    const data = Float32Array.from({ length: e.shape.reduce((a, b) => a * b, 1) }, () => rng.normal() * 0.02);
    return { name: e.hf, dtype: 'BF16' as const, shape: [...e.shape], data: f32ArrayToBf16(data) };
  });
})();

/** A SigLIP tower and the projector, as gemma-3-4b names them, all NaN. */
const VISION: [string, number[]][] = [
  ['vision_tower.vision_model.embeddings.patch_embedding.weight', [16, 3, 4, 4]],
  ['vision_tower.vision_model.embeddings.patch_embedding.bias', [16]],
  ['vision_tower.vision_model.embeddings.position_embedding.weight', [16, 16]],
  ['vision_tower.vision_model.encoder.layers.0.self_attn.q_proj.weight', [16, 16]],
  ['vision_tower.vision_model.encoder.layers.0.mlp.fc1.weight', [32, 16]],
  ['vision_tower.vision_model.post_layernorm.weight', [16]],
  ['multi_modal_projector.mm_input_projection_weight', [16, 48]],
  ['multi_modal_projector.mm_soft_emb_norm.weight', [16]],
];
const nanTensor = (name: string, shape: number[]): RawTensor =>
  ({ name, dtype: 'BF16', shape, data: new Uint16Array(shape.reduce((a, b) => a * b, 1)).fill(0x7fc0) });

/** Both naming conventions: transformers < 4.52 and >= 4.52. */
const CONVENTIONS = {
  old: { text: (n: string) => n.replace(/^model\./, 'language_model.model.'), vision: (n: string) => n },
  new: { text: (n: string) => n.replace(/^model\./, 'model.language_model.'), vision: (n: string) => `model.${n}` },
} as const;

function folder(name: string, config: object, tensors: RawTensor[]): string {
  const dir = join(root, name);
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'config.json'), JSON.stringify(config, null, 2));
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join('models/stories260K', f), join(dir, f));
  writeSafetensorsFolder(dir, tensors, { metadata: { format: 'pt' } });
  return dir;
}

function vlmFolder(name: string, convention: keyof typeof CONVENTIONS): string {
  const c = CONVENTIONS[convention];
  return folder(name, VLM_CONFIG, [
    ...TEXT_TENSORS.map((t) => ({ ...t, name: c.text(t.name) })),
    ...VISION.map(([n, shape]) => nanTensor(c.vision(n), shape)),
  ]);
}

/** stderr of `fn`, with RECURFORMER_QUIET lifted so that notes and non-finite warnings are printed. */
async function stderrOf<T>(fn: () => T | Promise<T>): Promise<{ result: T; stderr: string }> {
  const quiet = process.env.RECURFORMER_QUIET;
  delete process.env.RECURFORMER_QUIET;
  let stderr = '';
  const write = process.stderr.write.bind(process.stderr);
  process.stderr.write = ((s: string | Uint8Array) => {
    stderr += typeof s === 'string' ? s : Buffer.from(s).toString();
    return true;
  }) as typeof process.stderr.write;
  try {
    return { result: await fn(), stderr };
  } finally {
    process.stderr.write = write;
    if (quiet !== undefined) process.env.RECURFORMER_QUIET = quiet;
  }
}

const PROMPT = [2, 17, 42, 99, 7, 311, 5, 64, 120, 33, 250, 8, 19, 77]; // longer than the window of 8
const greedy = (dir: string) => generateIds(buildModel(loadModel(dir)), PROMPT, null, { maxTokens: 12, temperature: 0 }).ids;

test('Gemma 3 vision-language folders (old and new tensor names) load as their text model: same config and greedy tokens as the text-only folder', async () => {
  const textDir = folder('text-only', TEXT_CONFIG, TEXT_TENSORS);
  const want = greedy(textDir);
  assert.ok(new Set(want).size >= 4, `degenerate greedy output ${want.join(' ')}`);
  const ref = loadModel(textDir);
  for (const convention of ['old', 'new'] as const) {
    const dir = vlmFolder(`vlm-${convention}`, convention);
    const { result: m, stderr } = await stderrOf(() => loadModel(dir));
    assert.deepEqual(m.config, ref.config, convention);
    assert.deepEqual([...m.tensors.keys()], [...ref.tensors.keys()], convention);
    assert.ok([...m.tensors.values()].every(isDeferred), `${convention}: loading reads no tensor`);
    assert.equal(stderr.match(/vision tower \(8 tensors\) is ignored/g)?.length, 1, `${convention}: one note\n${stderr}`);
    for (const [name, t] of ref.tensors) assert.deepEqual(m.tensors.get(name)!.data, t.data, `${convention}: ${name}`);
    const { result: ids, stderr: genErr } = await stderrOf(() => greedy(dir));
    assert.deepEqual(ids, want, `${convention}: greedy tokens`);
    assert.doesNotMatch(genErr, /non-finite/, `${convention}: generation read a vision tensor`);
  }
  // a text tensor under both names is an error naming it
  const both = folder('vlm-both', VLM_CONFIG, [...TEXT_TENSORS.map((t) => ({ ...t, name: CONVENTIONS.old.text(t.name) })),
    { ...TEXT_TENSORS[1]!, name: CONVENTIONS.new.text(TEXT_TENSORS[1]!.name) }]);
  assert.throws(() => loadModel(both), /model\.layers\.0\.input_layernorm\.weight twice/);
});

test('inspect on a Gemma 3 vision-language folder reads no vision tensor; --check-weights (which reads every tensor) finds their NaN', async () => {
  const dir = vlmFolder('vlm-inspect', 'new');
  const { result: r, stderr } = await stderrOf(() => runCli(['inspect', dir, '--json']));
  assert.equal(r.code, 0, r.stderr);
  assert.doesNotMatch(stderr + r.stderr, /non-finite/);
  assert.equal((stderr + r.stderr).match(/recurformer: note: .*vision tower/g)?.length, 1, stderr + r.stderr);
  const info = JSON.parse(r.stdout) as { params: number; layers: number; vocab: number };
  assert.deepEqual([info.params, info.layers, info.vocab], [TEXT_TENSORS.reduce((s, t) => s + toF32(t).length, 0), 6, 512]);

  const { result: check } = await stderrOf(() => runCli(['inspect', dir, '--json', '--check-weights']));
  assert.equal(check.code, 1);
  const bad = (JSON.parse(check.stdout) as { nonFiniteTensors: { tensor: string }[] }).nonFiniteTensors.map((b) => b.tensor);
  assert.deepEqual(bad.sort(), VISION.map(([n]) => `model.${n}`).sort());
});
