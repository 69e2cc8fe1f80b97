/**
 * ModelConfig: the one frozen, typed description of an architecture that the model code reads. Every loader
 * (Hugging Face config.json, GGUF metadata, llama2.c header) produces it; every writer consumes it.
 *
 * Families: 'llama' covers Llama 1/2/3, Mistral (slidingWindow), Qwen2 (qkvBias) and SmolLM/TinyLlama; 'gpt2' is
 * GPT-2 (learned positions, LayerNorm, GELU). `ropeStyle` says how RoPE pairs dimensions for the weights *as they are
 * held in memory*: 'half' (rotate-half: dim i pairs with i + headDim/2, the Hugging Face layout), 'interleaved'
 * (dims 2i and 2i+1, the Meta/llama2.c layout and llama.cpp's GGUF layout for llama) or 'none' (GPT-2).
 *
 * HF configs carry dozens of keys. Keys that change the computation and that we do not implement (an o_proj bias, a
 * yarn rope scaling, cross-attention, ...) are errors naming the key; keys that do not change the forward pass
 * (dropout, initializer_range, torch_dtype, ...) are ignored.
 */
import { FormatError } from '../tensor/errors.js';

// GGUF metadata <-> ModelConfig lives beside the GGUF reader; re-exported so all config constructors are found here.
export { configFromGgufMetadata, ggufMetadataFromConfig } from '../io/gguf-config.js';

export type RopeScaling =
  | null
  | { type: 'linear'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPos: number };

export interface ModelConfig {
  readonly arch: 'llama' | 'gpt2';
  readonly vocabSize: number;
  readonly dModel: number;
  readonly nLayers: number;
  readonly nHeads: number;
  readonly nKvHeads: number;
  readonly headDim: number;
  readonly ffnDim: number;
  /** Context length the model was trained for (GPT-2: the size of the position table). */
  readonly maxPos: number;
  readonly normEps: number;
  readonly norm: 'rms' | 'layer';
  readonly act: 'silu' | 'gelu_tanh' | 'gelu_erf';
  readonly ropeTheta: number;
  readonly ropeStyle: 'interleaved' | 'half' | 'none';
  readonly ropeScaling: Readonly<RopeScaling>;
  /** Mistral: each query attends to at most this many most recent keys. */
  readonly slidingWindow: number | null;
  /** Qwen2: q/k/v projections have biases (o_proj does not). */
  readonly qkvBias: boolean;
  readonly tiedEmbeddings: boolean;
  readonly bosId: number;
  readonly eosId: readonly number[];
}

export const SUPPORTED_MODEL_TYPES = ['llama', 'mistral', 'qwen2', 'gpt2'] as const;

/** Check invariants and freeze. Every constructor of a ModelConfig goes through here. */
export function makeConfig(c: ModelConfig, file: string): ModelConfig {
  const posInt: (keyof ModelConfig)[] = ['vocabSize', 'dModel', 'nLayers', 'nHeads', 'nKvHeads', 'headDim', 'ffnDim', 'maxPos'];
  for (const k of posInt) {
    const v = c[k];
    if (typeof v !== 'number' || !Number.isSafeInteger(v) || v <= 0) {
      throw new FormatError(file, `${k} = ${String(v)} must be a positive integer`, 'the config is corrupt', undefined);
    }
  }
  if (c.nHeads % c.nKvHeads !== 0) {
    throw new FormatError(file, `nHeads ${c.nHeads} is not a multiple of nKvHeads ${c.nKvHeads}`, 'grouped-query attention needs whole groups');
  }
  if (c.ropeStyle !== 'none' && c.headDim % 2 !== 0) {
    throw new FormatError(file, `headDim ${c.headDim} is odd`, 'RoPE rotates pairs of dimensions');
  }
  if (!(c.normEps > 0) || !(c.ropeTheta > 0)) {
    throw new FormatError(file, `normEps ${c.normEps} and ropeTheta ${c.ropeTheta} must be positive`, 'the config is corrupt');
  }
  if (c.slidingWindow !== null && !(Number.isSafeInteger(c.slidingWindow) && c.slidingWindow > 0)) {
    throw new FormatError(file, `slidingWindow ${c.slidingWindow} must be a positive integer or null`, 'the config is corrupt');
  }
  for (const id of [c.bosId, ...c.eosId]) {
    if (!Number.isSafeInteger(id) || id < 0 || id >= c.vocabSize) {
      throw new FormatError(file, `special token id ${id} is outside the vocabulary (size ${c.vocabSize})`, 'check bos_token_id / eos_token_id');
    }
  }
  return Object.freeze({ ...c, eosId: Object.freeze([...c.eosId]), ropeScaling: c.ropeScaling && Object.freeze({ ...c.ropeScaling }) });
}

// ---- Hugging Face config.json ---------------------------------------------------------------------------------

type Json = Record<string, unknown>;

function num(json: Json, key: string, file: string, fallback?: number): number {
  const v = json[key];
  if (v === undefined || v === null) {
    if (fallback !== undefined) return fallback;
    throw new FormatError(file, `config key "${key}" is missing`, 'the config.json is incomplete');
  }
  if (typeof v !== 'number') throw new FormatError(file, `config key "${key}" = ${JSON.stringify(v)} is not a number`, 'fix config.json');
  return v;
}

function reject(file: string, key: string, value: unknown, why: string): never {
  throw new FormatError(file, `config key "${key}" = ${JSON.stringify(value)} is not supported: ${why}`,
    'recurformer implements the plain architecture only; use a checkpoint without this feature');
}

function eosList(v: unknown, file: string): number[] {
  if (v === undefined || v === null) return [];
  const list = Array.isArray(v) ? v : [v];
  if (!list.every((x) => typeof x === 'number')) throw new FormatError(file, `eos_token_id ${JSON.stringify(v)} is not a number or list`, 'fix config.json');
  return list as number[];
}

function ropeScalingFromHf(v: unknown, file: string): RopeScaling {
  if (v === undefined || v === null) return null;
  if (typeof v !== 'object') reject(file, 'rope_scaling', v, 'not an object');
  const rs = v as Json;
  const type = rs['rope_type'] ?? rs['type'];
  if (type === 'default') return null;
  if (type === 'linear') return { type: 'linear', factor: num(rs, 'factor', file) };
  if (type === 'llama3') {
    return {
      type: 'llama3',
      factor: num(rs, 'factor', file),
      lowFreqFactor: num(rs, 'low_freq_factor', file),
      highFreqFactor: num(rs, 'high_freq_factor', file),
      originalMaxPos: num(rs, 'original_max_position_embeddings', file),
    };
  }
  return reject(file, 'rope_scaling', v, `rope type ${JSON.stringify(type)} (supported: linear, llama3)`);
}

/** Parse a Hugging Face config.json object. `file` names it in errors. */
export function configFromHf(json: unknown, file: string): ModelConfig {
  if (typeof json !== 'object' || json === null) throw new FormatError(file, 'config is not a JSON object', 'fix config.json');
  const j = json as Json;
  const mt = j['model_type'];
  if (mt === 'gpt2') return gpt2FromHf(j, file);
  if (mt === 'llama' || mt === 'mistral' || mt === 'qwen2') return llamaFromHf(j, mt, file);
  throw new FormatError(file, `unsupported architecture: model_type ${JSON.stringify(mt)}`,
    `supported model_type values: ${SUPPORTED_MODEL_TYPES.join(', ')}`);
}

function llamaFromHf(j: Json, mt: 'llama' | 'mistral' | 'qwen2', file: string): ModelConfig {
  const act = j['hidden_act'] ?? 'silu';
  if (act !== 'silu') reject(file, 'hidden_act', act, 'the Llama family uses SwiGLU with silu');
  if (j['attention_bias'] === true) reject(file, 'attention_bias', true, 'biases on all attention projections (o_proj included)');
  if (j['mlp_bias'] === true) reject(file, 'mlp_bias', true, 'MLP biases');
  if (j['partial_rotary_factor'] !== undefined && j['partial_rotary_factor'] !== 1) reject(file, 'partial_rotary_factor', j['partial_rotary_factor'], 'partial RoPE');
  if (mt === 'qwen2' && j['use_sliding_window'] === true) reject(file, 'use_sliding_window', true, "Qwen2's per-layer sliding window");
  const dModel = num(j, 'hidden_size', file);
  const nHeads = num(j, 'num_attention_heads', file);
  const sw = mt === 'mistral' ? j['sliding_window'] : null;
  if (sw !== null && sw !== undefined && typeof sw !== 'number') reject(file, 'sliding_window', sw, 'not a number');
  return makeConfig({
    arch: 'llama',
    vocabSize: num(j, 'vocab_size', file),
    dModel,
    nLayers: num(j, 'num_hidden_layers', file),
    nHeads,
    nKvHeads: num(j, 'num_key_value_heads', file, nHeads),
    headDim: num(j, 'head_dim', file, dModel / nHeads),
    ffnDim: num(j, 'intermediate_size', file),
    maxPos: num(j, 'max_position_embeddings', file),
    normEps: num(j, 'rms_norm_eps', file, 1e-6),
    norm: 'rms',
    act: 'silu',
    ropeTheta: num(j, 'rope_theta', file, 10000),
    ropeStyle: 'half',
    ropeScaling: ropeScalingFromHf(j['rope_scaling'], file),
    slidingWindow: typeof sw === 'number' ? sw : null,
    qkvBias: mt === 'qwen2',
    tiedEmbeddings: j['tie_word_embeddings'] === true,
    bosId: num(j, 'bos_token_id', file, 1),
    eosId: eosList(j['eos_token_id'] ?? 2, file),
  }, file);
}

const GPT2_ACT: Record<string, ModelConfig['act']> = { gelu_new: 'gelu_tanh', gelu_pytorch_tanh: 'gelu_tanh', gelu: 'gelu_erf' };

function gpt2FromHf(j: Json, file: string): ModelConfig {
  const actName = j['activation_function'] ?? 'gelu_new';
  const act = GPT2_ACT[actName as string];
  if (!act) reject(file, 'activation_function', actName, 'supported: gelu_new, gelu_pytorch_tanh, gelu');
  if (j['scale_attn_weights'] === false) reject(file, 'scale_attn_weights', false, 'unscaled attention');
  if (j['scale_attn_by_inverse_layer_idx'] === true) reject(file, 'scale_attn_by_inverse_layer_idx', true, 'per-layer attention scaling');
  if (j['add_cross_attention'] === true) reject(file, 'add_cross_attention', true, 'encoder-decoder cross-attention');
  const dModel = num(j, 'n_embd', file);
  const nHeads = num(j, 'n_head', file);
  const eos = num(j, 'eos_token_id', file, 50256);
  return makeConfig({
    arch: 'gpt2',
    vocabSize: num(j, 'vocab_size', file),
    dModel,
    nLayers: num(j, 'n_layer', file),
    nHeads,
    nKvHeads: nHeads,
    headDim: dModel / nHeads,
    ffnDim: num(j, 'n_inner', file, 4 * dModel),
    maxPos: num(j, 'n_positions', file),
    normEps: num(j, 'layer_norm_epsilon', file, 1e-5),
    norm: 'layer',
    act: act!,
    ropeTheta: 10000,
    ropeStyle: 'none',
    ropeScaling: null,
    slidingWindow: null,
    qkvBias: true,
    tiedEmbeddings: j['tie_word_embeddings'] !== false,
    bosId: num(j, 'bos_token_id', file, 50256),
    eosId: [eos],
  }, file);
}

/**
 * The inverse of configFromHf. The model_type is derived from the features: qkvBias -> qwen2, a sliding window ->
 * mistral, else llama (a Mistral config without a window therefore comes back as llama, which computes the same).
 */
export function configToHf(cfg: ModelConfig): Record<string, unknown> {
  if (cfg.arch === 'gpt2') {
    return {
      architectures: ['GPT2LMHeadModel'],
      model_type: 'gpt2',
      vocab_size: cfg.vocabSize,
      n_positions: cfg.maxPos,
      n_ctx: cfg.maxPos,
      n_embd: cfg.dModel,
      n_layer: cfg.nLayers,
      n_head: cfg.nHeads,
      n_inner: cfg.ffnDim,
      activation_function: cfg.act === 'gelu_erf' ? 'gelu' : 'gelu_new',
      layer_norm_epsilon: cfg.normEps,
      tie_word_embeddings: cfg.tiedEmbeddings,
      bos_token_id: cfg.bosId,
      eos_token_id: cfg.eosId[0] ?? cfg.bosId,
      torch_dtype: 'float32',
    };
  }
  if (cfg.ropeStyle !== 'half') {
    throw new FormatError('config.json', `ropeStyle '${cfg.ropeStyle}' cannot be written as a Hugging Face config`,
      'HF Llama uses rotate-half RoPE: permute q_proj/k_proj rows with interleavedToHalfRows first (see weight-names.ts)');
  }
  const modelType = cfg.qkvBias ? 'qwen2' : cfg.slidingWindow !== null ? 'mistral' : 'llama';
  const arch = { llama: 'LlamaForCausalLM', mistral: 'MistralForCausalLM', qwen2: 'Qwen2ForCausalLM' }[modelType];
  const rs = cfg.ropeScaling;
  const out: Record<string, unknown> = {
    architectures: [arch],
    model_type: modelType,
    vocab_size: cfg.vocabSize,
    hidden_size: cfg.dModel,
    intermediate_size: cfg.ffnDim,
    num_hidden_layers: cfg.nLayers,
    num_attention_heads: cfg.nHeads,
    num_key_value_heads: cfg.nKvHeads,
    head_dim: cfg.headDim,
    max_position_embeddings: cfg.maxPos,
    rms_norm_eps: cfg.normEps,
    hidden_act: 'silu',
    rope_theta: cfg.ropeTheta,
    rope_scaling: rs === null ? null
      : rs.type === 'linear' ? { rope_type: 'linear', factor: rs.factor }
        : {
          rope_type: 'llama3', factor: rs.factor, low_freq_factor: rs.lowFreqFactor,
          high_freq_factor: rs.highFreqFactor, original_max_position_embeddings: rs.originalMaxPos,
        },
    tie_word_embeddings: cfg.tiedEmbeddings,
    bos_token_id: cfg.bosId,
    eos_token_id: cfg.eosId.length === 1 ? cfg.eosId[0] : [...cfg.eosId],
    torch_dtype: 'float32',
  };
  if (modelType === 'llama') Object.assign(out, { attention_bias: false, mlp_bias: false });
  if (modelType === 'mistral') out['sliding_window'] = cfg.slidingWindow;
  if (modelType === 'qwen2') Object.assign(out, { use_sliding_window: false, sliding_window: null });
  return out;
}
