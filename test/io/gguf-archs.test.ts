/**
 * GGUF for Qwen3 (llama.cpp arch 'qwen3') and Gemma 3 text (arch 'gemma3'), both ways. Small random models shaped like
 * the family fixtures (test/fixtures/families/, the real model_type and keys) are exported with our writer; llama.cpp
 * (node-llama-cpp 3.21.1, test/helpers/llamacpp.ts) loads each file and decodes greedily to the same tokens as our
 * engine; our reader loads the file back to the same config and the same greedy tokens as the model written.
 *
 * The vocabulary is tok512 (models/stories260K's SentencePiece tokenizer, 512 pieces) instead of the families' real
 * ones (152k and 262k pieces: their tokenizer.json alone takes 2-5 s to read). Both engines are given prompt ids, so
 * the vocabulary only has to load. Each Gemma switch llama.cpp reads from the file (the local window, the period of
 * the local layers, their RoPE base, linear scaling of the global layers) is shown to change the tokens for the prompt
 * used, so that agreeing on the tokens shows both engines read it the same way.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { FormatError } from '../../src/tensor/errors.js';
import { configFromGgufMetadata, ggufMetadataFromConfig } from '../../src/io/gguf-config.js';
import { GgufType, readGguf } from '../../src/io/gguf.js';
import { loadModel, type LoadedModel } from '../../src/io/model-load.js';
import { writeGgufModel, writeHfFolder } from '../../src/io/model-save.js';
import { toF32, type RawTensor } from '../../src/io/tensor-file.js';
import { hfToGguf } from '../../src/io/weight-names.js';
import { configFromHf, configToHf, makeConfig, type ModelConfig } from '../../src/model/config.js';
import { runCli } from '../helpers/cli.js';
import { llamaCpp, llamaCppGreedy, oursGreedy } from '../helpers/llamacpp.js';
import { randomModel } from '../helpers/random-model.js';
import { tempDir } from './tmp.js';

const dir = tempDir('gguf-archs');
const skipLlamaCpp = typeof llamaCpp === 'string' ? llamaCpp : false;
const tok512 = loadModel('models/stories260K');
const PROMPT = tok512.tokenizer!.encode('Once upon a time, there was a little girl named Lily. She loved to play', { bos: true }); // 21 ids

/** A family fixture's config.json with tok512's vocabulary and special ids, and `over` on top. */
function fixtureConfig(family: 'qwen3' | 'gemma3', over: Record<string, unknown> = {}): ModelConfig {
  const json = JSON.parse(readFileSync(`test/fixtures/families/${family}/config.json`, 'utf8')) as Record<string, unknown>;
  return configFromHf({ ...json, vocab_size: 512, bos_token_id: 1, eos_token_id: 2, ...over }, `${family} fixture`);
}

/** Gemma 3 as the fixture, with 6 layers so that llama.cpp's default period (5 local, 1 global) applies. */
const gemmaJson = (over: Record<string, unknown> = {}) =>
  ({ num_hidden_layers: 6, layer_types: undefined, _sliding_window_pattern: undefined, torch_dtype: 'float32', ...over });

/** Random weights N(0, std^2) (norm gains about 1 + N(0, std^2) as the model applies them) with tok512. */
function randomLm(cfg: ModelConfig, seed: number, std: number): LoadedModel {
  const m = randomModel(cfg, seed, std);
  if (cfg.normPlusOne) {
    for (const t of m.tensors.values()) if (t.shape.length === 1) t.data = toF32(t).map((g) => g - 1); // stored w of 1 + w
  }
  return { ...m, tokenizer: tok512.tokenizer, tokenizerSource: tok512.tokenizerSource };
}

const withConfig = (m: LoadedModel, over: Partial<ModelConfig>): LoadedModel => ({ ...m, config: makeConfig({ ...m.config, ...over }, 'variant') });

/** Our greedy tokens, checked to be varied enough that agreeing on them means something. */
function greedy(m: LoadedModel): number[] {
  const ids = oursGreedy(m, PROMPT);
  assert.ok(ids.length === 16 && new Set(ids).size >= 4, `degenerate greedy output ${ids.join(' ')}: change the seed or scale`);
  return ids;
}

const meta = (path: string) => readGguf(path, { tensors: false }).metadata;

/** Export, then: the file loads back to the same config and tokens; llama.cpp gives the same tokens. */
async function roundTrip(m: LoadedModel, path: string): Promise<number[]> {
  const want = greedy(m);
  const back = loadModel(path);
  assert.deepEqual(back.config, m.config, 'config read back');
  assert.deepEqual(oursGreedy(back, PROMPT), want, 'greedy tokens of the file read back');
  if (typeof llamaCpp !== 'string') assert.deepEqual((await llamaCppGreedy(path, [PROMPT]))[0], want, 'llama.cpp greedy tokens');
  return want;
}

test('Qwen3 to GGUF (arch qwen3): q/k norms as attn_q_norm/attn_k_norm, rotate-half rows kept; llama.cpp and our reader give its greedy tokens', { skip: skipLlamaCpp }, async () => {
  const m = randomLm(fixtureConfig('qwen3'), 3, 0.1);
  const path = join(dir, 'qwen3.gguf');
  writeGgufModel(path, m, 'F32', 'qwen3 fixture');
  const f = readGguf(path);
  assert.equal(f.metadata.get('general.architecture')?.value, 'qwen3');
  assert.equal(f.metadata.get('qwen3.attention.key_length')?.value, 32); // head_dim 32, hidden 64 / 4 heads = 16
  const hf = (n: string) => toF32(m.tensors.get(n)!);
  assert.deepEqual(toF32(f.tensors.get('blk.1.attn_k_norm.weight')!), hf('model.layers.1.self_attn.k_norm.weight'));
  // NEOX RoPE in llama.cpp: q and k keep the HF row order (arch 'llama' would permute them)
  assert.deepEqual(toF32(f.tensors.get('blk.0.attn_q.weight')!), hf('model.layers.0.self_attn.q_proj.weight'));
  await roundTrip(m, path);
});

test('Gemma 3 to GGUF through `export --format gguf` (arch gemma3): 1 + w gains, 5 local layers of window 8 and a global one; llama.cpp and our reader agree', { skip: skipLlamaCpp }, async () => {
  const src = randomLm(fixtureConfig('gemma3', gemmaJson()), 3, 0.02);
  const folder = join(dir, 'gemma3-hf');
  writeHfFolder(folder, src, 'F32');
  const path = join(dir, 'gemma3.gguf');
  const r = await runCli(['export', folder, '--format', 'gguf', '--out', path]);
  assert.equal(r.code, 0, r.stderr);
  const m = loadModel(folder);
  assert.deepEqual(m.config, src.config);

  const f = readGguf(path);
  const md = f.metadata;
  assert.equal(md.get('general.architecture')?.value, 'gemma3');
  assert.equal(md.get('gemma3.attention.sliding_window')?.value, 8);
  assert.equal(md.get('gemma3.attention.key_length')?.value, 32);
  // llama.cpp's defaults (period 6, local base 10000) are not written, as convert_hf_to_gguf.py does not
  assert.equal(md.has('gemma3.attention.sliding_window_pattern'), false);
  assert.equal(md.has('gemma3.rope.freq_base_swa'), false);
  assert.equal(md.get('gemma3.rope.freq_base')?.value, 1e6);
  // every gain is stored as 1 + w (float32), q/k in HF row order
  for (const [hfName, gguf] of [['model.layers.2.post_feedforward_layernorm.weight', 'blk.2.post_ffw_norm.weight'],
    ['model.layers.0.self_attn.q_norm.weight', 'blk.0.attn_q_norm.weight'], ['model.norm.weight', 'output_norm.weight']]) {
    assert.deepEqual(toF32(f.tensors.get(gguf!)!), toF32(m.tensors.get(hfName!)!).map((w) => w + 1), gguf);
  }
  assert.deepEqual(toF32(f.tensors.get('blk.0.attn_k.weight')!), toF32(m.tensors.get('model.layers.0.self_attn.k_proj.weight')!));

  const want = await roundTrip(m, path);
  assert.notDeepEqual(greedy(withConfig(m, { slidingWindow: null, slidingLayers: undefined })), want, 'the local window must matter');
  assert.notDeepEqual(greedy(withConfig(m, { ropeLocalTheta: 1e6 })), want, 'the local RoPE base must matter');
  assert.notDeepEqual(greedy(withConfig(m, { slidingLayers: Array(6).fill(true) as boolean[] })), want, 'the global layer must matter');
});

test('Gemma 3 to GGUF, the keys llama.cpp reads beyond its defaults: a period of 3, a local RoPE base of 20000, linear scaling of the global layers', { skip: skipLlamaCpp }, async () => {
  const variants: { name: string; json: Record<string, unknown>; key: [string, number] | null; without: Partial<ModelConfig> }[] = [
    // the fixture as it is: 3 layers, layer_types sliding, sliding, full
    { name: 'period3', json: { torch_dtype: 'float32' }, key: ['gemma3.attention.sliding_window_pattern', 3], without: { slidingLayers: [true, true, true] } },
    { name: 'local20000', json: gemmaJson({ rope_local_base_freq: 20000 }), key: ['gemma3.rope.freq_base_swa', 20000], without: { ropeLocalTheta: 10000 } },
    { name: 'linear8', json: gemmaJson({ rope_scaling: { rope_type: 'linear', factor: 8 } }), key: ['gemma3.rope.scaling.factor', 8], without: { ropeScaling: null } },
  ];
  for (const { name, json, key, without } of variants) {
    const m = randomLm(fixtureConfig('gemma3', json), 3, 0.02);
    const path = join(dir, `gemma3-${name}.gguf`);
    writeGgufModel(path, m, 'F32', name);
    if (key) assert.equal(meta(path).get(key[0])?.value, key[1], `${name}: ${key[0]}`);
    const want = await roundTrip(m, path);
    assert.notDeepEqual(greedy(withConfig(m, without)), want, `${name}: the key must matter`);
  }
});

test('GGUF read of Gemma 3 follows llama.cpp: embeddings scaled by sqrtf(n_embd) in float32 (a BF16 checkpoint\'s rounded scale is not kept)', () => {
  const m = randomLm(fixtureConfig('gemma3', { torch_dtype: 'bfloat16' }), 4, 0.02);
  assert.equal(m.config.embedScale, 6.9375); // sqrt(48) = 6.9282 in bfloat16, as transformers runs it
  const path = join(dir, 'gemma3-bf16.gguf');
  writeGgufModel(path, m, 'F32');
  const back = loadModel(path);
  assert.equal(back.config.embedScale, Math.fround(Math.sqrt(48)));
  assert.deepEqual({ ...back.config, embedScale: 0 }, { ...m.config, embedScale: 0 });
  // the tensors read back are the ones written (gains through 1 + w and back exactly)
  for (const [name, t] of m.tensors) assert.deepEqual(toF32(back.tensors.get(name)!), toF32(t), name);
  assert.doesNotThrow(() => configToHf(back.config), 'a GGUF-loaded Gemma is still a Hugging Face config');
});

test('GGUF metadata of Gemma 3: the 27B attention scale rule, a per-layer sliding_window_pattern, no window = no local layers', () => {
  // google/gemma-3-27b: head_dim 128 but query_pre_attn_scalar 168 = 5376 / 32; llama.cpp knows it by the 62 layers
  const g27 = configFromHf({ model_type: 'gemma3_text', hidden_size: 5376, num_attention_heads: 32, num_key_value_heads: 16, head_dim: 128,
    query_pre_attn_scalar: 168, num_hidden_layers: 62, intermediate_size: 21504, sliding_window: 1024, vocab_size: 262208, torch_dtype: 'float32',
    rope_scaling: { rope_type: 'linear', factor: 8 } }, 'gemma-3-27b');
  const infos = [{ name: 'token_embd.weight', shape: [262208, 5376], type: 0, offset: 0, bytes: 0 }];
  const read = (m: Map<string, unknown>) => configFromGgufMetadata({ file: 'x.gguf', metadata: m as ReturnType<typeof ggufMetadataFromConfig>, tensorInfos: infos });
  const m27 = ggufMetadataFromConfig(g27);
  assert.deepEqual(read(m27), g27);
  assert.equal(read(m27).attnScale, 168 ** -0.5);

  const small = fixtureConfig('gemma3', gemmaJson());
  const mm = ggufMetadataFromConfig(small);
  mm.set('gemma3.attention.sliding_window_pattern', { type: GgufType.ARRAY, elemType: GgufType.BOOL, value: [true, false, true, true, true, false] });
  infos[0]!.shape = [512, 48];
  assert.deepEqual(read(mm).slidingLayers, [true, false, true, true, true, false]);
  mm.set('gemma3.attention.sliding_window_pattern', { type: GgufType.ARRAY, elemType: GgufType.BOOL, value: [true] });
  assert.throws(() => read(mm), (e: unknown) => e instanceof FormatError && e.message.includes('sliding_window_pattern'));
  mm.delete('gemma3.attention.sliding_window_pattern');
  mm.delete('gemma3.attention.sliding_window');
  const global = read(mm);
  assert.equal(global.slidingWindow, null);
  assert.equal(global.slidingLayers, undefined);
});

test('GGUF export refuses what llama.cpp would run differently, naming it', () => {
  const refuses = (cfg: ModelConfig, ...needles: string[]) => assert.throws(() => ggufMetadataFromConfig(cfg), (e: unknown) => {
    assert.ok(e instanceof FormatError, String(e));
    for (const n of needles) assert.ok(e.message.includes(n) || e.hint.includes(n), `${e.message} / ${e.hint} lacks ${n}`);
    return true;
  });
  const gemma = fixtureConfig('gemma3', gemmaJson());
  refuses(fixtureConfig('gemma3', gemmaJson({ query_pre_attn_scalar: 64 })), 'attention scale', 'query_pre_attn_scalar 64');
  refuses(makeConfig({ ...gemma, slidingLayers: [true, false, true, true, false, true] }, 'x'), 'local layers [SGSSGS]');
  refuses(makeConfig({ ...gemma, finalSoftcap: 30 }, 'x'), 'final logit softcapping');
  refuses(makeConfig({ ...gemma, slidingLayers: Array(6).fill(false) as boolean[] }, 'x'), 'without local layers');
  refuses(makeConfig({ ...gemma, act: 'silu' }, 'x'), 'post-norms without the rest of Gemma 3');
  const qwen = fixtureConfig('qwen3');
  refuses(fixtureConfig('qwen3', { rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 8192 } }), 'llama3 rope scaling');
  refuses(makeConfig({ ...qwen, embedScale: 8 }, 'x'), 'Gemma switches embedScale');
  refuses(makeConfig({ ...qwen, slidingWindow: 16 }, 'x'), 'sliding window');
  // writeGgufModel names the file it refused to write, and writes nothing
  const out = join(dir, 'refused.gguf');
  assert.throws(() => writeGgufModel(out, randomLm(fixtureConfig('gemma3', gemmaJson({ query_pre_attn_scalar: 64 })), 1, 0.1)),
    (e: unknown) => e instanceof FormatError && e.file === out);
  assert.equal(existsSync(out), false);
  // the weight table itself converts any llama-family model (the refusals above are metadata)
  const q = randomLm(qwen, 1, 0.1);
  const names = hfToGguf(qwen, q.tensors).map((t: RawTensor) => t.name);
  assert.ok(names.includes('blk.0.attn_q_norm.weight') && names.includes('blk.1.attn_k_norm.weight'));
});
