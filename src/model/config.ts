/**
 * ModelConfig: the one frozen, typed description of an architecture that the model code reads. Every loader
 * produces it and every writer consumes it: Hugging Face config.json here (configFromHf, configToHf), GGUF metadata
 * in io/gguf-config.ts, the llama2.c header in io/llama2c.ts (io/ imports model/, never the other way round).
 *
 * Families: 'llama' covers Llama 1/2/3, Mistral (slidingWindow), Qwen2 (qkvBias), Qwen3 (qkNorm), Gemma 3 (the
 * optional switches at the end of ModelConfig) and SmolLM/TinyLlama; 'gpt2' is GPT-2 (learned positions, LayerNorm,
 * GELU). `ropeStyle` says how RoPE pairs dimensions for the weights *as they are held in memory*: 'half'
 * (rotate-half: dim i pairs with i + headDim/2, the Hugging Face layout), 'interleaved' (dims 2i and 2i+1, the
 * Meta/llama2.c layout and llama.cpp's GGUF layout for llama) or 'none' (GPT-2).
 *
 * HF configs carry dozens of keys. Keys that change the computation and that we do not implement (an o_proj bias, a
 * yarn rope scaling, cross-attention, ...) are errors naming the key; keys that do not change the forward pass
 * (dropout, initializer_range, torch_dtype, ...) are ignored.
 */
import { FormatError } from '../tensor/errors.js';
import { floatToHalf, halfToFloat } from '../tensor/index.js';

export type RopeScaling =
  | null
  | { type: 'linear'; factor: number }
  | { type: 'llama3'; factor: number; lowFreqFactor: number; highFreqFactor: number; originalMaxPos: number }
  /** Precomputed divisors, one per rotated pair: what llama.cpp's GGUF stores for llama3 (rope_freqs.weight). */
  | { type: 'freqs'; factors: readonly number[] };

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

  // Optional features (absent: the plain Llama computation). Each is one switch the model code reads.
  /** Qwen3, Gemma 3: q and k are RMS-normalized per head (q_norm / k_norm gains of headDim) before RoPE. */
  readonly qkNorm?: boolean;
  /** Gemma: every RMSNorm scales by (1 + weight) instead of weight. */
  readonly normPlusOne?: boolean;
  /**
   * Gemma 2/3 "sandwich" norms: the attention and MLP outputs are normalized before their residual add
   * (post_attention_layernorm, post_feedforward_layernorm), and pre_feedforward_layernorm is the MLP's input norm.
   */
  readonly postNorms?: boolean;
  /** Gemma: token embeddings are multiplied by this (sqrt(dModel) rounded to the checkpoint's dtype). */
  readonly embedScale?: number;
  /** Softmax scale of the attention logits; default 1 / sqrt(headDim) (Gemma: query_pre_attn_scalar^-0.5). */
  readonly attnScale?: number;
  /** Final logits become cap * tanh(logits / cap). */
  readonly finalSoftcap?: number;
  /** The layers slidingWindow applies to (absent: every layer, as in Mistral). Gemma 3: five local, one global. */
  readonly slidingLayers?: readonly boolean[];
  /** RoPE base of the sliding-window layers, without rope scaling (Gemma 3's rope_local_base_freq). */
  readonly ropeLocalTheta?: number;
}

export const SUPPORTED_MODEL_TYPES = ['llama', 'mistral', 'qwen2', 'gpt2', 'qwen3', 'gemma3_text', 'gemma3'] as const;

/** Keys a query of layer l attends to at most (0: all of them). */
export function layerWindow(cfg: ModelConfig, l: number): number {
  return cfg.slidingWindow === null || cfg.slidingLayers?.[l] === false ? 0 : cfg.slidingWindow;
}

/** Whether layer l rotates with ropeLocalTheta (a sliding-window layer of a model that has a local RoPE base). */
export function usesLocalRope(cfg: ModelConfig, l: number): boolean {
  return cfg.ropeLocalTheta !== undefined && layerWindow(cfg, l) > 0;
}

/** The softmax scale of the attention logits. */
export function attnScaleOf(cfg: ModelConfig): number {
  return cfg.attnScale ?? 1 / Math.sqrt(cfg.headDim);
}

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
  const positive = { embedScale: c.embedScale, attnScale: c.attnScale, finalSoftcap: c.finalSoftcap, ropeLocalTheta: c.ropeLocalTheta };
  for (const [k, v] of Object.entries(positive)) {
    if (v !== undefined && !(Number.isFinite(v) && v > 0)) throw new FormatError(file, `${k} ${v} must be a positive number`, 'the config is corrupt');
  }
  if (c.slidingLayers !== undefined && (c.slidingLayers.length !== c.nLayers || c.slidingWindow === null)) {
    throw new FormatError(file, `slidingLayers names ${c.slidingLayers.length} layers of ${c.nLayers}${c.slidingWindow === null ? ' without a slidingWindow' : ''}`,
      'give one entry per layer, and the window size');
  }
  if (c.arch === 'gpt2' && (c.qkNorm || c.normPlusOne || c.postNorms)) {
    throw new FormatError(file, 'GPT-2 with q/k norms, (1 + w) norms or post-norms', 'these are Llama-family features');
  }
  for (const id of [c.bosId, ...c.eosId]) {
    if (!Number.isSafeInteger(id) || id < 0 || id >= c.vocabSize) {
      throw new FormatError(file, `special token id ${id} is outside the vocabulary (size ${c.vocabSize})`, 'check bos_token_id / eos_token_id');
    }
  }
  return Object.freeze({
    ...c, eosId: Object.freeze([...c.eosId]),
    ropeScaling: c.ropeScaling && Object.freeze(c.ropeScaling.type === 'freqs' ? { ...c.ropeScaling, factors: Object.freeze([...c.ropeScaling.factors]) } : { ...c.ropeScaling }),
    ...(c.slidingLayers ? { slidingLayers: Object.freeze([...c.slidingLayers]) } : {}),
  });
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
  if (mt === 'llama' || mt === 'mistral' || mt === 'qwen2' || mt === 'qwen3') return llamaFromHf(j, mt, file);
  if (mt === 'gemma3_text') return gemma3FromHf(j, file);
  if (mt === 'gemma3') return gemma3FromHf(gemma3TextConfig(j, file), file);
  throw new FormatError(file, `unsupported architecture: model_type ${JSON.stringify(mt)}`,
    `supported model_type values: ${SUPPORTED_MODEL_TYPES.join(', ')}`);
}

function llamaFromHf(j: Json, mt: 'llama' | 'mistral' | 'qwen2' | 'qwen3', file: string): ModelConfig {
  const act = j['hidden_act'] ?? 'silu';
  if (act !== 'silu') reject(file, 'hidden_act', act, 'the Llama family uses SwiGLU with silu');
  if (j['attention_bias'] === true) reject(file, 'attention_bias', true, 'biases on all attention projections (o_proj included)');
  if (j['mlp_bias'] === true) reject(file, 'mlp_bias', true, 'MLP biases');
  if (j['partial_rotary_factor'] !== undefined && j['partial_rotary_factor'] !== 1) reject(file, 'partial_rotary_factor', j['partial_rotary_factor'], 'partial RoPE');
  if (mt.startsWith('qwen') && j['use_sliding_window'] === true) reject(file, 'use_sliding_window', true, "Qwen's per-layer sliding window");
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
    ...(mt === 'qwen3' ? { qkNorm: true } : {}),
  }, file);
}

const f32 = new Float32Array(1), u32 = new Uint32Array(f32.buffer);

/** A number as the checkpoint's dtype holds it: HF builds the embedding scale as a float32 tensor cast to the weights' dtype. */
function inDtype(x: number, dtype: unknown): number {
  f32[0] = x;
  if (dtype === 'float16') return halfToFloat(floatToHalf(f32[0]!));
  // bfloat16 is a float32's upper half: round the lower half away, to nearest even (x is finite here)
  if (dtype === 'bfloat16') u32[0] = (u32[0]! + 0x7fff + ((u32[0]! >>> 16) & 1)) & 0xffff0000;
  return f32[0]!;
}

/** Gemma3TextConfig's defaults (transformers), for the keys a Hub config may leave out. */
const GEMMA3_DEFAULTS: Json = {
  vocab_size: 262208, hidden_size: 2304, intermediate_size: 9216, num_hidden_layers: 26, num_attention_heads: 8,
  num_key_value_heads: 4, head_dim: 256, max_position_embeddings: 131072, rms_norm_eps: 1e-6, rope_theta: 1_000_000,
  rope_local_base_freq: 10_000, query_pre_attn_scalar: 256, sliding_window: 4096, sliding_window_pattern: 6,
  bos_token_id: 2, eos_token_id: 1,
};

/** Whether a config.json is a Gemma 3 vision-language model (Gemma3ForConditionalGeneration), whose text model we load. */
export function isGemma3VisionLanguage(json: unknown): boolean {
  return typeof json === 'object' && json !== null && (json as Json)['model_type'] === 'gemma3';
}

/**
 * The text model's config of a Gemma 3 vision-language config (model_type "gemma3": gemma-3-4b and up), as
 * transformers builds it: Gemma3TextConfig(**text_config), so the keys text_config leaves out take Gemma3TextConfig's
 * defaults (gemma-3-4b-it's gives only hidden_size, intermediate_size, num_hidden_layers, rope_scaling and
 * sliding_window). Where text_config has none, the weights' dtype (which rounds the embedding scale) comes from the
 * top level, where transformers keeps it for the whole checkpoint; so do the special tokens, as our choice:
 * transformers' text config would say eos 1, but generation (generation_config.json) stops at the top level's
 * [1, 106] (<eos>, <end_of_turn>). The vision_config is not read.
 */
function gemma3TextConfig(j: Json, file: string): Json {
  const text = j['text_config'] ?? {};
  if (typeof text !== 'object' || text === null || Array.isArray(text)) {
    throw new FormatError(file, `config key "text_config" = ${JSON.stringify(text)} is not an object`, 'a Gemma 3 vision-language config.json describes its text model in text_config');
  }
  const t = text as Json;
  const inherited = ['torch_dtype', 'dtype', 'bos_token_id', 'eos_token_id', 'pad_token_id']
    .filter((k) => (t[k] === undefined || t[k] === null) && j[k] !== undefined && j[k] !== null);
  return { ...Object.fromEntries(inherited.map((k) => [k, j[k]])), ...t };
}

/**
 * Gemma 3 text: a Llama block with (1 + w) RMSNorms, q/k norms, norms on the attention and MLP outputs, a GELU-tanh
 * gated MLP, embeddings scaled by sqrt(hidden_size), and local (sliding-window, own RoPE base) layers interleaved
 * with global ones: `layer_types`, or every `sliding_window_pattern`-th layer global.
 */
function gemma3FromHf(j0: Json, file: string): ModelConfig {
  if (j0['sliding_window'] === null) reject(file, 'sliding_window', null, 'Gemma 3\'s local layers need a window size');
  const j: Json = { ...GEMMA3_DEFAULTS, ...Object.fromEntries(Object.entries(j0).filter(([, v]) => v !== null && v !== undefined)) };
  const act = j['hidden_activation'] ?? j['hidden_act'] ?? 'gelu_pytorch_tanh';
  if (act !== 'gelu_pytorch_tanh') reject(file, 'hidden_activation', act, 'Gemma 3 uses gelu_pytorch_tanh');
  if (j['attention_bias'] === true) reject(file, 'attention_bias', true, 'biases on the attention projections');
  if (j['attn_logit_softcapping'] !== undefined) reject(file, 'attn_logit_softcapping', j['attn_logit_softcapping'], 'attention logit softcapping (Gemma 2)');
  if (j['use_bidirectional_attention'] === true) reject(file, 'use_bidirectional_attention', true, 'bidirectional attention (EmbeddingGemma)');
  const nLayers = num(j, 'num_hidden_layers', file);
  const types = j['layer_types'];
  let sliding: boolean[];
  if (types !== undefined) {
    if (!Array.isArray(types) || types.length !== nLayers || !types.every((t) => t === 'sliding_attention' || t === 'full_attention')) {
      reject(file, 'layer_types', types, `need ${nLayers} entries of "sliding_attention" or "full_attention"`);
    }
    sliding = types.map((t) => t === 'sliding_attention');
  } else {
    const every = num(j, 'sliding_window_pattern', file);
    sliding = Array.from({ length: nLayers }, (_, i) => (i + 1) % every !== 0);
  }
  // transformers 5 keeps RoPE per layer type in rope_parameters; older configs use rope_theta, rope_scaling and
  // rope_local_base_freq (the local layers are never scaled)
  let ropeTheta = num(j, 'rope_theta', file), ropeLocalTheta = num(j, 'rope_local_base_freq', file);
  let ropeScaling = ropeScalingFromHf(j['rope_scaling'], file);
  const rp = j['rope_parameters'] as Json | undefined;
  if (rp !== undefined) {
    const full = rp['full_attention'] as Json | undefined, local = rp['sliding_attention'] as Json | undefined;
    if (typeof full !== 'object' || typeof local !== 'object' || full === null || local === null) {
      reject(file, 'rope_parameters', rp, 'expected full_attention and sliding_attention entries');
    }
    if (ropeScalingFromHf(local, file) !== null) reject(file, 'rope_parameters', rp, 'scaled RoPE on the sliding-window layers');
    ropeTheta = num(full, 'rope_theta', file);
    ropeLocalTheta = num(local, 'rope_theta', file);
    ropeScaling = ropeScalingFromHf(full, file);
  }
  const dModel = num(j, 'hidden_size', file);
  const cap = j['final_logit_softcapping'];
  if (cap !== undefined && typeof cap !== 'number') reject(file, 'final_logit_softcapping', cap, 'not a number');
  return makeConfig({
    arch: 'llama',
    vocabSize: num(j, 'vocab_size', file),
    dModel,
    nLayers,
    nHeads: num(j, 'num_attention_heads', file),
    nKvHeads: num(j, 'num_key_value_heads', file),
    headDim: num(j, 'head_dim', file),
    ffnDim: num(j, 'intermediate_size', file),
    maxPos: num(j, 'max_position_embeddings', file),
    normEps: num(j, 'rms_norm_eps', file),
    norm: 'rms',
    act: 'gelu_tanh',
    ropeTheta,
    ropeStyle: 'half',
    ropeScaling,
    slidingWindow: num(j, 'sliding_window', file),
    qkvBias: false,
    tiedEmbeddings: j['tie_word_embeddings'] !== false,
    bosId: num(j, 'bos_token_id', file),
    eosId: eosList(j['eos_token_id'], file),
    qkNorm: true,
    normPlusOne: true,
    postNorms: true,
    embedScale: inDtype(Math.sqrt(dModel), j['torch_dtype'] ?? j['dtype']),
    attnScale: Math.pow(num(j, 'query_pre_attn_scalar', file), -0.5),
    ...(typeof cap === 'number' ? { finalSoftcap: cap } : {}),
    slidingLayers: sliding,
    ropeLocalTheta,
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

/** Which HF model_type expresses a Llama-family config; a combination of features none of them has is an error. */
function hfModelType(cfg: ModelConfig): 'llama' | 'mistral' | 'qwen2' | 'qwen3' | 'gemma3_text' {
  const gemma = cfg.postNorms === true;
  const type = gemma ? 'gemma3_text' : cfg.qkNorm ? 'qwen3' : cfg.qkvBias ? 'qwen2' : cfg.slidingWindow !== null ? 'mistral' : 'llama';
  const gemmaOnly = { normPlusOne: cfg.normPlusOne, embedScale: cfg.embedScale, attnScale: cfg.attnScale, finalSoftcap: cfg.finalSoftcap,
    slidingLayers: cfg.slidingLayers, ropeLocalTheta: cfg.ropeLocalTheta };
  const problems = [
    ...(gemma ? [] : Object.entries(gemmaOnly).filter(([, v]) => v !== undefined && v !== false).map(([k]) => k)),
    ...(gemma && !(cfg.qkNorm && cfg.normPlusOne && cfg.embedScale !== undefined && cfg.act === 'gelu_tanh') ? ['postNorms without the rest of Gemma 3'] : []),
    ...(!gemma && cfg.act !== 'silu' ? [`act ${cfg.act}`] : []),
    ...(cfg.qkvBias && type !== 'qwen2' ? ['qkvBias'] : []),
    ...(cfg.slidingWindow !== null && (type === 'qwen2' || type === 'qwen3') ? ['slidingWindow'] : []),
    ...(gemma && Math.abs(cfg.embedScale! / Math.sqrt(cfg.dModel) - 1) > 1e-2 ? [`embedScale ${cfg.embedScale}`] : []),
  ];
  if (problems.length) {
    throw new FormatError('config.json', `no Hugging Face model_type has this combination (${type} plus ${problems.join(', ')})`,
      'the config was edited into an architecture that does not exist');
  }
  return type;
}

/** The dtype name a Gemma config needs for configFromHf to give back its embedding scale. */
function embedDtype(cfg: ModelConfig): string {
  const s = cfg.embedScale!;
  return s === Math.fround(Math.sqrt(cfg.dModel)) ? 'float32' : s === inDtype(Math.sqrt(cfg.dModel), 'bfloat16') ? 'bfloat16' : 'float16';
}

/**
 * The inverse of configFromHf. The model_type is derived from the features: post-norms -> gemma3_text, q/k norms ->
 * qwen3, qkvBias -> qwen2, a sliding window -> mistral, else llama (a Mistral config without a window therefore
 * comes back as llama, which computes the same).
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
  const modelType = hfModelType(cfg);
  const arch = {
    llama: 'LlamaForCausalLM', mistral: 'MistralForCausalLM', qwen2: 'Qwen2ForCausalLM', qwen3: 'Qwen3ForCausalLM',
    gemma3_text: 'Gemma3ForCausalLM',
  }[modelType];
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
    hidden_act: cfg.act === 'silu' ? 'silu' : 'gelu_pytorch_tanh',
    rope_theta: cfg.ropeTheta,
    rope_scaling: rs === null ? null
      : rs.type === 'linear' ? { rope_type: 'linear', factor: rs.factor }
        : rs.type === 'freqs' ? freqsHasNoHfForm()
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
  if (modelType === 'qwen2' || modelType === 'qwen3') Object.assign(out, { attention_bias: false, use_sliding_window: false, sliding_window: null });
  if (modelType === 'gemma3_text') {
    const layerTypes = Array.from({ length: cfg.nLayers }, (_, l) => (layerWindow(cfg, l) > 0 ? 'sliding_attention' : 'full_attention'));
    Object.assign(out, {
      hidden_activation: 'gelu_pytorch_tanh', attention_bias: false, sliding_window: cfg.slidingWindow ?? 1, layer_types: layerTypes,
      rope_local_base_freq: cfg.ropeLocalTheta ?? cfg.ropeTheta,
      // the scale is stored as its inverse square; 12 digits give back the scalar the config was read from
      query_pre_attn_scalar: Number((1 / attnScaleOf(cfg) ** 2).toPrecision(12)),
      final_logit_softcapping: cfg.finalSoftcap ?? null, attn_logit_softcapping: null,
      // HF rounds sqrt(hidden_size) to the dtype it runs in; recurformer keeps the source's (see model-save.ts)
      torch_dtype: embedDtype(cfg),
    });
  }
  return out;
}

function freqsHasNoHfForm(): never {
  throw new FormatError('config.json', 'the RoPE frequencies come from a GGUF rope_freqs tensor, which config.json cannot express',
    'export the GGUF model back to GGUF, or convert the original Hugging Face folder', 'rope_scaling');
}
