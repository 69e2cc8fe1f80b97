import { test } from 'node:test';
import assert from 'node:assert/strict';
import { FormatError } from '../../src/tensor/errors.js';
import { configFromHf, configToHf, makeConfig, type ModelConfig } from '../../src/model/config.js';
import { configFromGgufMetadata, ggufMetadataFromConfig } from '../../src/io/gguf-config.js';
import { readGguf } from '../../src/io/gguf.js';

/** Abridged real configs (keys as published on the Hugging Face hub). */
const LLAMA2 = {
  architectures: ['LlamaForCausalLM'], model_type: 'llama', vocab_size: 32000, hidden_size: 4096, intermediate_size: 11008,
  num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 32, max_position_embeddings: 4096, rms_norm_eps: 1e-5,
  hidden_act: 'silu', rope_theta: 10000, rope_scaling: null, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2,
  pad_token_id: null, initializer_range: 0.02, pretraining_tp: 1, torch_dtype: 'float16', transformers_version: '4.31.0', use_cache: true,
};
const LLAMA31 = {
  ...LLAMA2, vocab_size: 128256, intermediate_size: 14336, num_key_value_heads: 8, max_position_embeddings: 131072, rope_theta: 500000,
  rope_scaling: { factor: 8.0, low_freq_factor: 1.0, high_freq_factor: 4.0, original_max_position_embeddings: 8192, rope_type: 'llama3' },
  bos_token_id: 128000, eos_token_id: [128001, 128008, 128009], attention_bias: false, mlp_bias: false, head_dim: 128,
};
const MISTRAL = {
  architectures: ['MistralForCausalLM'], model_type: 'mistral', vocab_size: 32000, hidden_size: 4096, intermediate_size: 14336,
  num_hidden_layers: 32, num_attention_heads: 32, num_key_value_heads: 8, max_position_embeddings: 32768, rms_norm_eps: 1e-5,
  hidden_act: 'silu', rope_theta: 10000.0, sliding_window: 4096, tie_word_embeddings: false, bos_token_id: 1, eos_token_id: 2,
};
const QWEN2 = {
  architectures: ['Qwen2ForCausalLM'], model_type: 'qwen2', vocab_size: 151936, hidden_size: 896, intermediate_size: 4864,
  num_hidden_layers: 24, num_attention_heads: 14, num_key_value_heads: 2, max_position_embeddings: 32768, rms_norm_eps: 1e-6,
  hidden_act: 'silu', rope_theta: 1000000.0, sliding_window: 32768, use_sliding_window: false, max_window_layers: 21,
  tie_word_embeddings: true, bos_token_id: 151643, eos_token_id: 151643, attention_dropout: 0.0,
};
const GPT2 = {
  activation_function: 'gelu_new', architectures: ['GPT2LMHeadModel'], attn_pdrop: 0.1, bos_token_id: 50256, embd_pdrop: 0.1,
  eos_token_id: 50256, initializer_range: 0.02, layer_norm_epsilon: 1e-5, model_type: 'gpt2', n_ctx: 1024, n_embd: 768,
  n_head: 12, n_layer: 12, n_positions: 1024, resid_pdrop: 0.1, summary_type: 'cls_index', vocab_size: 50257,
};

function throwsFormat(fn: () => unknown, ...needles: string[]): void {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof FormatError, `expected FormatError, got ${String(e)}`);
    for (const n of needles) assert.ok(e.message.includes(n) || e.hint.includes(n), `${JSON.stringify(e.message)} lacks ${n}`);
    return true;
  });
}

test('HF configs: llama 2, llama 3.1, mistral, qwen2, gpt2 parse to the expected fields', () => {
  const l2 = configFromHf(LLAMA2, 'l2/config.json');
  assert.equal(l2.arch, 'llama');
  assert.equal(l2.headDim, 128);
  assert.equal(l2.ropeStyle, 'half');
  assert.equal(l2.tiedEmbeddings, false);
  assert.deepEqual(l2.eosId, [2]);
  assert.ok(Object.isFrozen(l2));
  const l3 = configFromHf(LLAMA31, 'l3/config.json');
  assert.deepEqual(l3.ropeScaling, { type: 'llama3', factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPos: 8192 });
  assert.deepEqual(l3.eosId, [128001, 128008, 128009]);
  assert.equal(l3.nKvHeads, 8);
  assert.equal(configFromHf(MISTRAL, 'm').slidingWindow, 4096);
  const q = configFromHf(QWEN2, 'q');
  assert.equal(q.qkvBias, true);
  assert.equal(q.slidingWindow, null);
  assert.equal(q.tiedEmbeddings, true);
  const g = configFromHf(GPT2, 'g');
  assert.deepEqual(
    { arch: g.arch, norm: g.norm, act: g.act, ropeStyle: g.ropeStyle, ffnDim: g.ffnDim, maxPos: g.maxPos, tied: g.tiedEmbeddings },
    { arch: 'gpt2', norm: 'layer', act: 'gelu_tanh', ropeStyle: 'none', ffnDim: 3072, maxPos: 1024, tied: true },
  );
});

test('HF config round trip: configFromHf(configToHf(cfg)) equals cfg for every family', () => {
  for (const json of [LLAMA2, LLAMA31, MISTRAL, QWEN2, GPT2, { ...LLAMA2, rope_scaling: { type: 'linear', factor: 4 } }]) {
    const cfg = configFromHf(json, 'config.json');
    const hf = configToHf(cfg);
    assert.equal(hf['model_type'], json.model_type);
    assert.deepEqual(configFromHf(JSON.parse(JSON.stringify(hf)), 'back.json'), cfg);
  }
});

test('unsupported architecture: FormatError naming model_type and listing the supported ones', () => {
  throwsFormat(() => configFromHf({ ...LLAMA2, model_type: 'phi3' }, 'phi/config.json'), 'phi/config.json', 'model_type "phi3"', 'llama, mistral, qwen2, gpt2');
  throwsFormat(() => configFromHf({}, 'empty.json'), 'model_type undefined');
});

test('keys that change the computation are errors naming the key; harmless keys are ignored', () => {
  throwsFormat(() => configFromHf({ ...LLAMA2, attention_bias: true }, 'c.json'), '"attention_bias"');
  throwsFormat(() => configFromHf({ ...LLAMA2, mlp_bias: true }, 'c.json'), '"mlp_bias"');
  throwsFormat(() => configFromHf({ ...LLAMA2, hidden_act: 'gelu' }, 'c.json'), '"hidden_act"');
  throwsFormat(() => configFromHf({ ...LLAMA2, rope_scaling: { type: 'yarn', factor: 4 } }, 'c.json'), '"rope_scaling"', 'yarn');
  throwsFormat(() => configFromHf({ ...QWEN2, use_sliding_window: true }, 'c.json'), '"use_sliding_window"');
  throwsFormat(() => configFromHf({ ...GPT2, activation_function: 'relu' }, 'c.json'), '"activation_function"');
  throwsFormat(() => configFromHf({ ...GPT2, scale_attn_by_inverse_layer_idx: true }, 'c.json'), 'scale_attn_by_inverse_layer_idx');
  throwsFormat(() => configFromHf({ ...LLAMA2, hidden_size: undefined }, 'c.json'), '"hidden_size" is missing');
  const withNoise = configFromHf({ ...LLAMA2, attention_dropout: 0.1, some_future_logging_flag: true, _name_or_path: 'x' }, 'c.json');
  assert.deepEqual(withNoise, configFromHf(LLAMA2, 'c.json'));
});

test('config invariants: GQA groups, special ids inside the vocabulary', () => {
  throwsFormat(() => configFromHf({ ...LLAMA2, num_key_value_heads: 5 }, 'gqa.json'), 'gqa.json', 'multiple of nKvHeads');
  throwsFormat(() => configFromHf({ ...LLAMA2, eos_token_id: 32000 }, 'eos.json'), 'special token id 32000');
  const cfg = configFromHf(LLAMA2, 'c');
  assert.throws(() => { (cfg as { dModel: number }).dModel = 1; }, TypeError);
});

function tensorInfosFor(cfg: ModelConfig) {
  const infos = [{ name: 'token_embd.weight', shape: [cfg.vocabSize, cfg.dModel], type: 0, offset: 0, bytes: 0 }];
  if (!cfg.tiedEmbeddings) infos.push({ name: 'output.weight', shape: [cfg.vocabSize, cfg.dModel], type: 0, offset: 0, bytes: 0 });
  return infos;
}

test('GGUF metadata round trip for llama, mistral, qwen2, gpt2 configs', () => {
  for (const json of [LLAMA2, MISTRAL, QWEN2, GPT2, { ...LLAMA2, rope_scaling: { type: 'linear', factor: 2 } }]) {
    const cfg = configFromHf(json, 'c');
    const metadata = ggufMetadataFromConfig(cfg);
    const back = configFromGgufMetadata({ file: 'x.gguf', metadata, tensorInfos: tensorInfosFor(cfg) });
    // GGUF stores eps and theta as float32; the reader gives back the shortest decimal of that float32.
    assert.deepEqual(back, cfg);
  }
  const arch = (j: object) => ggufMetadataFromConfig(configFromHf(j, 'c')).get('general.architecture')!.value;
  assert.deepEqual([arch(LLAMA2), arch(MISTRAL), arch(QWEN2), arch(GPT2)], ['llama', 'llama', 'qwen2', 'gpt2']);
  throwsFormat(() => ggufMetadataFromConfig(configFromHf(LLAMA31, 'c')), 'llama3 rope scaling');
});

test('GGUF config from the llama.cpp GPT-2 vocab file; unsupported GGUF architectures are named', () => {
  const f = readGguf('test/fixtures/gguf-vocab-gpt2/ggml-vocab-gpt-2.gguf', { tensors: false });
  const cfg = configFromGgufMetadata(f);
  assert.equal(cfg.arch, 'gpt2');
  assert.equal(cfg.vocabSize, 50257);
  assert.equal(cfg.dModel, 768);
  assert.equal(cfg.maxPos, 1024);
  assert.deepEqual(cfg.eosId, [50256]);
  const meta = new Map(f.metadata);
  meta.set('general.architecture', { type: 8, value: 'mamba' });
  throwsFormat(() => configFromGgufMetadata({ ...f, metadata: meta }), "general.architecture 'mamba'", 'llama, qwen2, gpt2');
});

test('makeConfig freezes nested fields', () => {
  const cfg = makeConfig(configFromHf(LLAMA31, 'c'), 'c');
  assert.ok(Object.isFrozen(cfg.eosId));
  assert.ok(Object.isFrozen(cfg.ropeScaling));
});
