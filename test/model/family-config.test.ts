/**
 * Qwen3 and Gemma 3 configs: the real checkpoints' config.json files parse to the features the model code reads,
 * configToHf gives them back, keys we do not implement are errors naming them, the vision-language Gemma 3 config
 * gives its text model, and the weight table and the GGUF names know what these families hold.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FormatError } from '../../src/tensor/errors.js';
import { configFromHf, configToHf, layerWindow, makeConfig, usesLocalRope } from '../../src/model/config.js';
import { invFreqFor } from '../../src/model/rope.js';
import { hfToGguf, weightTable } from '../../src/io/weight-names.js';
import { randomModel } from '../helpers/random-model.js';

// google/gemma-3-1b-it and Qwen/Qwen3-0.6B as published (keys in their order)
const GEMMA3_1B = {
  architectures: ['Gemma3ForCausalLM'], attention_bias: false, attention_dropout: 0.0, attn_logit_softcapping: null,
  bos_token_id: 2, cache_implementation: 'hybrid', eos_token_id: [1, 106], final_logit_softcapping: null, head_dim: 256,
  hidden_activation: 'gelu_pytorch_tanh', hidden_size: 1152, initializer_range: 0.02, intermediate_size: 6912,
  max_position_embeddings: 32768, model_type: 'gemma3_text', num_attention_heads: 4, num_hidden_layers: 26,
  num_key_value_heads: 1, pad_token_id: 0, query_pre_attn_scalar: 256, rms_norm_eps: 1e-6, rope_local_base_freq: 10000,
  rope_scaling: null, rope_theta: 1000000, sliding_window: 512, sliding_window_pattern: 6, torch_dtype: 'bfloat16',
  transformers_version: '4.50.0.dev0', use_cache: true, vocab_size: 262144,
};
const QWEN3_06B = {
  architectures: ['Qwen3ForCausalLM'], attention_bias: false, attention_dropout: 0.0, bos_token_id: 151643,
  eos_token_id: 151645, head_dim: 128, hidden_act: 'silu', hidden_size: 1024, initializer_range: 0.02,
  intermediate_size: 3072, max_position_embeddings: 40960, max_window_layers: 28, model_type: 'qwen3',
  num_attention_heads: 16, num_hidden_layers: 28, num_key_value_heads: 8, rms_norm_eps: 1e-6, rope_scaling: null,
  rope_theta: 1000000, sliding_window: null, tie_word_embeddings: true, torch_dtype: 'bfloat16',
  transformers_version: '4.51.0', use_cache: true, use_sliding_window: false, vocab_size: 151936,
};

function throwsFormat(fn: () => unknown, ...needles: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FormatError, `expected FormatError, got ${String(e)}`);
    for (const n of needles) assert.ok(e.message.includes(n) || e.hint.includes(n), `${JSON.stringify(e.message)} lacks ${n}`);
    return true;
  });
}

test('Qwen3-0.6B: q/k norms, head_dim 128 != 1024 / 16, no biases, tied; configToHf gives it back', () => {
  const c = configFromHf(QWEN3_06B, 'qwen3.json');
  assert.deepEqual([c.qkNorm, c.qkvBias, c.headDim, c.nHeads * c.headDim, c.tiedEmbeddings, c.act], [true, false, 128, 2048, true, 'silu']);
  assert.equal(c.slidingWindow, null);
  assert.equal(c.postNorms, undefined);
  const hf = configToHf(c);
  assert.equal(hf['model_type'], 'qwen3');
  assert.deepEqual(configFromHf(JSON.parse(JSON.stringify(hf)), 'back.json'), c);
  throwsFormat(() => configFromHf({ ...QWEN3_06B, use_sliding_window: true }, 'q.json'), '"use_sliding_window"');
  throwsFormat(() => configFromHf({ ...QWEN3_06B, attention_bias: true }, 'q.json'), '"attention_bias"');
});

test('Gemma-3-1b-it: every sixth layer global, local RoPE base, (1 + w) and post norms, bf16 embedding scale', () => {
  const c = configFromHf(GEMMA3_1B, 'gemma.json');
  assert.deepEqual(
    [c.qkNorm, c.normPlusOne, c.postNorms, c.act, c.tiedEmbeddings, c.attnScale, c.ropeTheta, c.ropeLocalTheta, c.finalSoftcap],
    [true, true, true, 'gelu_tanh', true, 1 / 16, 1e6, 1e4, undefined],
  );
  // sqrt(1152) = 33.94..., as a bfloat16 34: HF casts the scale to the weights' dtype
  assert.equal(c.embedScale, 34);
  assert.equal(configFromHf({ ...GEMMA3_1B, torch_dtype: 'float32' }, 'g').embedScale, Math.fround(Math.sqrt(1152)));
  const windows = Array.from({ length: c.nLayers }, (_, l) => layerWindow(c, l));
  assert.deepEqual(windows.slice(0, 12), [512, 512, 512, 512, 512, 0, 512, 512, 512, 512, 512, 0]);
  assert.equal(usesLocalRope(c, 0), true);
  assert.equal(usesLocalRope(c, 5), false);
  assert.deepEqual(c.eosId, [1, 106]);
  const hf = configToHf(c);
  assert.equal(hf['model_type'], 'gemma3_text');
  assert.deepEqual(configFromHf(JSON.parse(JSON.stringify(hf)), 'back.json'), c);
  // layer_types (newer configs) and transformers 5's rope_parameters describe the same model
  const layerTypes = windows.map((w) => (w ? 'sliding_attention' : 'full_attention'));
  const { sliding_window_pattern: _p, ...noPattern } = GEMMA3_1B;
  assert.deepEqual(configFromHf({ ...noPattern, layer_types: layerTypes }, 'g'), c);
  const { rope_theta: _t, rope_local_base_freq: _l, rope_scaling: _s, ...noRope } = GEMMA3_1B;
  const v5 = { ...noRope, rope_parameters: { full_attention: { rope_type: 'default', rope_theta: 1e6 }, sliding_attention: { rope_type: 'default', rope_theta: 1e4 } } };
  assert.deepEqual(configFromHf(v5, 'g'), c);
});

test('Gemma 3 with linear RoPE scaling: only the global layers are scaled', () => {
  const c = configFromHf({ ...GEMMA3_1B, rope_scaling: { rope_type: 'linear', factor: 8 } }, 'g');
  const global = invFreqFor(c), local = invFreqFor(c, true);
  assert.ok(Math.abs(global[1]! - Math.fround(1e6 ** (-2 / 256) / 8)) < 1e-9);
  assert.ok(Math.abs(local[1]! - Math.fround(1e4 ** (-2 / 256))) < 1e-9);
});

test('Gemma 3 keys we do not implement are errors naming them', () => {
  throwsFormat(() => configFromHf({ ...GEMMA3_1B, attn_logit_softcapping: 50 }, 'g.json'), '"attn_logit_softcapping"');
  throwsFormat(() => configFromHf({ ...GEMMA3_1B, use_bidirectional_attention: true }, 'g.json'), '"use_bidirectional_attention"');
  throwsFormat(() => configFromHf({ ...GEMMA3_1B, hidden_activation: 'gelu' }, 'g.json'), '"hidden_activation"');
  throwsFormat(() => configFromHf({ ...GEMMA3_1B, layer_types: ['sliding_attention'] }, 'g.json'), '"layer_types"');
  throwsFormat(() => configFromHf({ ...GEMMA3_1B, sliding_window: null }, 'g.json'), '"sliding_window"');
});

// google/gemma-3-4b-it as published: text_config names only what differs from Gemma3TextConfig's defaults
const GEMMA3_4B = {
  architectures: ['Gemma3ForConditionalGeneration'], boi_token_index: 255999, eoi_token_index: 256000, eos_token_id: [1, 106],
  image_token_index: 262144, initializer_range: 0.02, mm_tokens_per_image: 256, model_type: 'gemma3',
  text_config: {
    hidden_size: 2560, intermediate_size: 10240, model_type: 'gemma3_text', num_hidden_layers: 34,
    rope_scaling: { factor: 8.0, rope_type: 'linear' }, sliding_window: 1024,
  },
  torch_dtype: 'bfloat16', transformers_version: '4.50.0.dev0',
  vision_config: {
    hidden_size: 1152, image_size: 896, intermediate_size: 4304, model_type: 'siglip_vision_model', num_attention_heads: 16,
    num_hidden_layers: 27, patch_size: 14, vision_use_head: false,
  },
};

test('Gemma-3-4b-it (vision-language, model_type gemma3): the text model from text_config and Gemma3TextConfig defaults, dtype and EOS from the top level', () => {
  const c = configFromHf(GEMMA3_4B, '4b.json');
  assert.deepEqual(
    [c.dModel, c.ffnDim, c.nLayers, c.nHeads, c.nKvHeads, c.headDim, c.vocabSize, c.maxPos, c.slidingWindow, c.ropeTheta, c.ropeLocalTheta],
    [2560, 10240, 34, 8, 4, 256, 262208, 131072, 1024, 1e6, 10000]);
  assert.deepEqual(c.ropeScaling, { type: 'linear', factor: 8 });
  assert.equal(c.attnScale, 1 / 16); // query_pre_attn_scalar 256
  assert.equal(c.embedScale, 50.5); // sqrt(2560) = 50.596 in bfloat16, the top-level torch_dtype
  assert.deepEqual([c.bosId, c.eosId], [2, [1, 106]]);
  assert.equal(c.slidingLayers!.filter((s) => !s).length, 5); // layers 5, 11, 17, 23, 29 global
  // the text model written back is an ordinary gemma3_text config
  assert.deepEqual(configFromHf(configToHf(c), 'back'), c);
  // text_config's own dtype and special ids win over the top level's
  const own = configFromHf({ ...GEMMA3_4B, text_config: { ...GEMMA3_4B.text_config, torch_dtype: 'float32', eos_token_id: 1 } }, '4b.json');
  assert.equal(own.embedScale, Math.fround(Math.sqrt(2560)));
  assert.deepEqual(own.eosId, [1]);
  throwsFormat(() => configFromHf({ ...GEMMA3_4B, text_config: [1] }, '4b.json'), '"text_config"');
  throwsFormat(() => configFromHf({ ...GEMMA3_4B, text_config: { ...GEMMA3_4B.text_config, attn_logit_softcapping: 50 } }, '4b.json'), '"attn_logit_softcapping"');
});

test('configToHf refuses feature combinations no model_type has; makeConfig checks the new fields', () => {
  const q = configFromHf(QWEN3_06B, 'q');
  throwsFormat(() => configToHf(makeConfig({ ...q, qkvBias: true }, 'x')), 'qkvBias');
  throwsFormat(() => configToHf(makeConfig({ ...q, act: 'gelu_tanh' }, 'x')), 'act gelu_tanh');
  throwsFormat(() => configToHf(makeConfig({ ...q, embedScale: 2 }, 'x')), 'embedScale');
  throwsFormat(() => makeConfig({ ...q, slidingLayers: [true] }, 'x'), 'slidingLayers');
  throwsFormat(() => makeConfig({ ...q, attnScale: -1 }, 'x'), 'attnScale');
});

test('weight table: q/k norms of head_dim (Qwen3), four norms per block (Gemma 3); GGUF names for both', () => {
  const small = { hidden_size: 16, intermediate_size: 24, num_hidden_layers: 1, num_attention_heads: 2, num_key_value_heads: 1, head_dim: 8, vocab_size: 40, bos_token_id: 1, eos_token_id: 2 };
  const q = configFromHf({ ...QWEN3_06B, ...small }, 'q');
  const g = configFromHf({ ...GEMMA3_1B, ...small }, 'g');
  const names = (c: typeof q) => new Map(weightTable(c).map((e) => [e.hf, e.shape]));
  assert.deepEqual(names(q).get('model.layers.0.self_attn.q_norm.weight'), [8]);
  assert.deepEqual(names(q).get('model.layers.0.self_attn.k_norm.weight'), [8]);
  assert.equal(names(q).has('model.layers.0.pre_feedforward_layernorm.weight'), false);
  const gemmaNorms = [...names(g).keys()].filter((n) => n.startsWith('model.layers.0.') && n.endsWith('layernorm.weight'));
  assert.deepEqual(gemmaNorms.sort(), ['input_layernorm', 'post_attention_layernorm', 'post_feedforward_layernorm', 'pre_feedforward_layernorm'].map((n) => `model.layers.0.${n}.weight`));
  // GGUF names as llama.cpp's qwen3 / gemma3 tensors (test/io/gguf-archs.test.ts runs them in llama.cpp)
  const ggufNames = (c: typeof q) => new Set(hfToGguf(c, randomModel(c).tensors).map((t) => t.name));
  for (const n of ['attn_norm', 'attn_q_norm', 'attn_k_norm', 'ffn_norm']) assert.ok(ggufNames(q).has(`blk.0.${n}.weight`), n);
  for (const n of ['attn_q_norm', 'post_attention_norm', 'ffn_norm', 'post_ffw_norm']) assert.ok(ggufNames(g).has(`blk.0.${n}.weight`), n);
});
