/**
 * ModelConfig <-> GGUF metadata (llama.cpp's `{arch}.*` keys, see ggml docs/gguf.md "LLM" section).
 *
 * GGUF architectures: 'llama' (also Mistral, whose llama.cpp conversion uses 'llama'), 'qwen2', 'qwen3', 'gemma3',
 * 'gpt2' (weight-names.ts ggufArchOf picks one from the config's switches). The config read from a GGUF describes the
 * model after `ggufToHf` (weight-names.ts) has renamed the tensors, undone the q/k row permutation and Gemma's 1 + w
 * gains, so its ropeStyle is 'half' like any HF Llama.
 *
 * Gemma 3 as llama.cpp runs it (src/models/gemma3.cpp and its hparams loader): q/k norms, post-attention and
 * post-FFN norms and the gelu-tanh MLP are implied by the architecture; the embeddings are scaled by sqrtf(n_embd) in
 * float32 (never rounded to the checkpoint's dtype as transformers does: a BF16 gemma-3-1b runs with 33.941 instead of
 * 34); the query pre-attention scale is 1/sqrt(key_length), or 1/sqrt(n_embd / n_head) for the 62-layer 27B, with no
 * key for it; `attention.sliding_window` turns on the local layers, every layer but each sliding_window_pattern-th
 * (default 6; the key is written only for another period) with RoPE base `rope.freq_base_swa` (default 10000, never
 * scaled; written only when different). We refuse to write a Gemma config llama.cpp would run differently (another
 * attention scale, local layers that are no period, a final logit softcap) rather than write a file that means two
 * things, or without local layers (llama.cpp runs such a file through another graph).
 *
 * Limits, each an explicit error rather than a silent approximation:
 * - llama3 rope scaling: llama.cpp stores it as a precomputed `rope_freqs.weight` tensor (one factor per rotated
 *   pair), not as metadata. We write it (ropeFreqsTensor, as convert_hf_to_gguf.py's LlamaModel does) and read it
 *   back as ropeScaling { type: 'freqs' } (the factors themselves; config.json cannot express them). llama.cpp's
 *   qwen3 and gemma3 graphs do not apply it: refused there.
 * - Mistral's sliding window has no standard key for arch 'llama'; we write and read `llama.attention.sliding_window`
 *   (ignored by llama.cpp, which therefore attends to the full context).
 * - GGUF has one EOS id; a second EOS is written as `tokenizer.ggml.eot_token_id`, further ones are dropped.
 */
import { FormatError } from '../tensor/errors.js';
import { attnScaleOf, layerWindow, makeConfig, type ModelConfig } from '../model/config.js';
import { ggufGet, ggufOpt, GgufType, type GgufFile, type GgufValue } from './gguf.js';
import { gv } from './gguf-write.js';
import { toF32, type RawTensor } from './tensor-file.js';
import { ggufArchOf, type GgufArch } from './weight-names.js';

const SUPPORTED_GGUF_ARCHS = ['llama', 'qwen2', 'gpt2', 'qwen3', 'gemma3'];

/** llama.cpp's Gemma 3 defaults: every 6th layer global, local RoPE base 10000. */
const GEMMA3_SWA_PERIOD = 6;
const GEMMA3_LOCAL_THETA = 10000;

/** llama.cpp's Gemma 3 query scale: 1/sqrt(head dim), but 1/sqrt(n_embd / n_head) (integer division) for the 27B. */
function gemma3AttnScale(nLayers: number, dModel: number, nHeads: number, headDim: number): number {
  return Math.pow(nLayers === 62 ? Math.floor(dModel / nHeads) : headDim, -0.5);
}

/** Which layers are local for llama.cpp's set_swa_pattern(period): all but every period-th (period 1: none). */
function swaLayers(nLayers: number, period: number): boolean[] {
  return Array.from({ length: nLayers }, (_, i) => i % period < period - 1);
}

export function configFromGgufMetadata(f: Pick<GgufFile, 'file' | 'metadata' | 'tensorInfos'>): ModelConfig {
  const arch = ggufGet(f, 'general.architecture', 'string');
  if (!SUPPORTED_GGUF_ARCHS.includes(arch)) {
    throw new FormatError(f.file, `unsupported architecture: general.architecture '${arch}'`,
      `supported GGUF architectures: ${SUPPORTED_GGUF_ARCHS.join(', ')}`);
  }
  const k = (s: string) => `${arch}.${s}`;
  const dModel = ggufGet(f, k('embedding_length'), 'number');
  const nHeads = ggufGet(f, k('attention.head_count'), 'number');
  const tokens = ggufOpt(f, 'tokenizer.ggml.tokens', 'array');
  const embd = f.tensorInfos.find((t) => t.name === 'token_embd.weight');
  const vocabSize = ggufOpt(f, k('vocab_size'), 'number') ?? tokens?.length ?? embd?.shape[0];
  if (vocabSize === undefined) {
    throw new FormatError(f.file, `no vocabulary size (${k('vocab_size')}, tokenizer.ggml.tokens or token_embd.weight)`, 'the file is incomplete');
  }
  const eos = ggufOpt(f, 'tokenizer.ggml.eos_token_id', 'number');
  const eot = ggufOpt(f, 'tokenizer.ggml.eot_token_id', 'number');
  const eosId = [eos, eot].filter((x): x is number => x !== undefined).filter((x, i, a) => a.indexOf(x) === i);
  const bosId = ggufOpt(f, 'tokenizer.ggml.bos_token_id', 'number') ?? eosId[0] ?? 0;
  const tied = embd !== undefined && !f.tensorInfos.some((t) => t.name === 'output.weight');

  if (arch === 'gpt2') {
    return makeConfig({
      arch: 'gpt2', vocabSize, dModel, nLayers: ggufGet(f, k('block_count'), 'number'), nHeads, nKvHeads: nHeads,
      headDim: dModel / nHeads, ffnDim: ggufOpt(f, k('feed_forward_length'), 'number') ?? 4 * dModel,
      maxPos: ggufGet(f, k('context_length'), 'number'), normEps: ggufGet(f, k('attention.layer_norm_epsilon'), 'number'),
      norm: 'layer', act: 'gelu_tanh', ropeTheta: 10000, ropeStyle: 'none', ropeScaling: null, slidingWindow: null,
      qkvBias: true, tiedEmbeddings: embd === undefined ? true : tied, bosId, eosId,
    }, f.file);
  }
  const scalingType = ggufOpt(f, k('rope.scaling.type'), 'string');
  let ropeScaling: ModelConfig['ropeScaling'] = null;
  const freqs = 'tensors' in f ? (f as { tensors: Map<string, RawTensor> }).tensors.get('rope_freqs.weight') : undefined;
  if (freqs) {
    // llama3 scaling as llama.cpp stores it: one divisor per rotated pair (read now: headDim / 2 floats)
    const hd = ggufOpt(f, k('attention.key_length'), 'number') ?? dModel / nHeads;
    const factors = [...toF32(freqs)];
    if (factors.length !== hd / 2 || !factors.every((x) => Number.isFinite(x) && x > 0)) {
      throw new FormatError(f.file, `has ${factors.length} values (expected ${hd / 2} positive factors, one per rotated pair)`, 'the file is corrupt', 'rope_freqs.weight');
    }
    ropeScaling = { type: 'freqs', factors };
  } else if (scalingType === 'linear') ropeScaling = { type: 'linear', factor: ggufGet(f, k('rope.scaling.factor'), 'number') };
  else if (scalingType !== undefined && scalingType !== 'none') {
    throw new FormatError(f.file, `rope scaling '${scalingType}' is not supported`, 'supported: linear (and llama3 from HF configs)');
  }
  const headDim = ggufOpt(f, k('attention.key_length'), 'number') ?? dModel / nHeads;
  const rotDims = ggufOpt(f, k('rope.dimension_count'), 'number');
  if (rotDims !== undefined && rotDims !== headDim) {
    throw new FormatError(f.file, `${k('rope.dimension_count')} = ${rotDims} differs from the head dim ${headDim}`, 'partial RoPE is not supported');
  }
  if (ropeScaling?.type === 'freqs' && (arch === 'qwen3' || arch === 'gemma3')) {
    throw new FormatError(f.file, `rope_freqs.weight in a '${arch}' file`, `llama.cpp's ${arch} does not apply per-pair RoPE factors; the file is not one llama.cpp runs as written`, 'rope_freqs.weight');
  }
  const nLayers = ggufGet(f, k('block_count'), 'number');
  const window = ggufOpt(f, k('attention.sliding_window'), 'number');
  const base: ModelConfig = {
    arch: 'llama', vocabSize, dModel, nLayers, nHeads,
    nKvHeads: ggufOpt(f, k('attention.head_count_kv'), 'number') ?? nHeads, headDim,
    ffnDim: ggufGet(f, k('feed_forward_length'), 'number'), maxPos: ggufGet(f, k('context_length'), 'number'),
    normEps: ggufGet(f, k('attention.layer_norm_rms_epsilon'), 'number'), norm: 'rms', act: 'silu',
    ropeTheta: ggufOpt(f, k('rope.freq_base'), 'number') ?? 10000, ropeStyle: 'half', ropeScaling,
    slidingWindow: arch === 'gemma3' ? null : window ?? null, qkvBias: arch === 'qwen2',
    tiedEmbeddings: tied, bosId, eosId,
  };
  if (arch === 'qwen3') return makeConfig({ ...base, qkNorm: true }, f.file);
  if (arch === 'gemma3') return makeConfig(gemma3FromGguf(f, base, window), f.file);
  return makeConfig(base, f.file);
}

/** The Gemma 3 switches of a 'gemma3' file, as llama.cpp sets them (see the header). */
function gemma3FromGguf(f: Pick<GgufFile, 'file' | 'metadata'>, base: ModelConfig, window: number | undefined): ModelConfig {
  const { nLayers, dModel, nHeads, headDim } = base;
  const cap = ggufOpt(f, 'gemma3.final_logit_softcapping', 'number');
  const out: ModelConfig = {
    ...base, act: 'gelu_tanh', qkNorm: true, normPlusOne: true, postNorms: true,
    embedScale: Math.fround(Math.sqrt(dModel)), attnScale: gemma3AttnScale(nLayers, dModel, nHeads, headDim),
    ...(cap !== undefined && cap > 0 ? { finalSoftcap: cap } : {}),
  };
  if (window === undefined || window === 0) return out; // no local layers
  const pattern = f.metadata.get('gemma3.attention.sliding_window_pattern');
  let sliding: boolean[];
  if (pattern === undefined) sliding = swaLayers(nLayers, GEMMA3_SWA_PERIOD);
  else if (typeof pattern.value === 'number' && Number.isSafeInteger(pattern.value) && pattern.value > 0) sliding = swaLayers(nLayers, pattern.value);
  else if (pattern.type === GgufType.ARRAY && pattern.value.length === nLayers && [...pattern.value as Iterable<unknown>].every((x) => typeof x === 'boolean')) {
    sliding = [...pattern.value as boolean[]];
  } else {
    throw new FormatError(f.file, `metadata key 'gemma3.attention.sliding_window_pattern' is not a positive period or ${nLayers} booleans`, 'the file is corrupt');
  }
  return {
    ...out, slidingWindow: window, slidingLayers: sliding,
    ropeLocalTheta: ggufOpt(f, 'gemma3.rope.freq_base_swa', 'number') ?? GEMMA3_LOCAL_THETA,
  };
}

/**
 * The `general.*`, `{arch}.*` and special-token keys for a config (tokenizer vocab keys are written separately).
 * llama3 rope scaling has no metadata form: with `ropeFreqs: true` the caller promises to write ropeFreqsTensor(cfg)
 * (writeGgufModel does), otherwise it is an error. A config llama.cpp's architecture cannot express is a FormatError
 * naming `file` (the GGUF being written).
 */
export function ggufMetadataFromConfig(cfg: ModelConfig, name = 'recurformer model', opts: { ropeFreqs?: boolean; file?: string } = {}): Map<string, GgufValue> {
  const arch = ggufArchOf(cfg);
  checkExpressible(cfg, arch, opts.file ?? '<gguf metadata>');
  const k = (s: string) => `${arch}.${s}`;
  const m = new Map<string, GgufValue>([
    ['general.architecture', gv.str(arch)],
    ['general.name', gv.str(name)],
    ['general.alignment', gv.u32(32)],
    [k('vocab_size'), gv.u32(cfg.vocabSize)],
    [k('context_length'), gv.u32(cfg.maxPos)],
    [k('embedding_length'), gv.u32(cfg.dModel)],
    [k('block_count'), gv.u32(cfg.nLayers)],
    [k('feed_forward_length'), gv.u32(cfg.ffnDim)],
    [k('attention.head_count'), gv.u32(cfg.nHeads)],
  ]);
  if (cfg.arch === 'gpt2') {
    m.set(k('attention.layer_norm_epsilon'), gv.f32(cfg.normEps));
  } else {
    if (cfg.ropeStyle !== 'half') {
      throw new FormatError('<gguf metadata>', `ropeStyle '${cfg.ropeStyle}' must be 'half' here`,
        'convert the weights to the HF layout (interleavedToHalfRows) first; hfToGguf then applies the GGUF permutation');
    }
    m.set(k('attention.head_count_kv'), gv.u32(cfg.nKvHeads));
    m.set(k('attention.layer_norm_rms_epsilon'), gv.f32(cfg.normEps));
    m.set(k('rope.freq_base'), gv.f32(cfg.ropeTheta));
    m.set(k('rope.dimension_count'), gv.u32(cfg.headDim));
    if (cfg.headDim * cfg.nHeads !== cfg.dModel || arch === 'gemma3') {
      m.set(k('attention.key_length'), gv.u32(cfg.headDim));
      m.set(k('attention.value_length'), gv.u32(cfg.headDim));
    }
    const rs = cfg.ropeScaling;
    if (rs?.type === 'linear') {
      m.set(k('rope.scaling.type'), gv.str('linear'));
      m.set(k('rope.scaling.factor'), gv.f32(rs.factor));
    } else if ((rs?.type === 'llama3' || rs?.type === 'freqs') && !opts.ropeFreqs) {
      throw new FormatError('<gguf metadata>', 'llama3 rope scaling cannot be written as GGUF metadata',
        'llama.cpp stores it as a rope_freqs.weight tensor: write the model with writeGgufModel, which adds it (ropeFreqsTensor)');
    }
    if (arch === 'gemma3') gemma3Metadata(cfg, m);
    else if (cfg.slidingWindow !== null) m.set(k('attention.sliding_window'), gv.u32(cfg.slidingWindow));
  }
  m.set('tokenizer.ggml.bos_token_id', gv.u32(cfg.bosId));
  if (cfg.eosId[0] !== undefined) m.set('tokenizer.ggml.eos_token_id', gv.u32(cfg.eosId[0]));
  if (cfg.eosId[1] !== undefined) m.set('tokenizer.ggml.eot_token_id', gv.u32(cfg.eosId[1]));
  return m;
}

/** Gemma 3's local layers: the window, and the period and local RoPE base where they are not llama.cpp's defaults. */
function gemma3Metadata(cfg: ModelConfig, m: Map<string, GgufValue>): void {
  const sliding = Array.from({ length: cfg.nLayers }, (_, l) => layerWindow(cfg, l) > 0); // some are (checkExpressible)
  m.set('gemma3.attention.sliding_window', gv.u32(cfg.slidingWindow!));
  const period = sliding.indexOf(false) + 1 || cfg.nLayers + 1;
  if (period !== GEMMA3_SWA_PERIOD) m.set('gemma3.attention.sliding_window_pattern', gv.u32(period));
  const local = cfg.ropeLocalTheta ?? cfg.ropeTheta;
  if (local !== GEMMA3_LOCAL_THETA) m.set('gemma3.rope.freq_base_swa', gv.f32(local));
}

/**
 * The config must be one llama.cpp's `arch` computes: the switches it has no key for are refused, naming them (a
 * file llama.cpp would run differently from us is worse than no file).
 */
function checkExpressible(cfg: ModelConfig, arch: GgufArch, file: string): void {
  if (cfg.arch === 'gpt2') return;
  const fail = (what: string, hint: string): never => {
    throw new FormatError(file, `llama.cpp's '${arch}' architecture cannot express ${what}`, hint);
  };
  const gemmaOnly = Object.entries({ normPlusOne: cfg.normPlusOne, embedScale: cfg.embedScale, attnScale: cfg.attnScale,
    finalSoftcap: cfg.finalSoftcap, slidingLayers: cfg.slidingLayers, ropeLocalTheta: cfg.ropeLocalTheta })
    .filter(([, v]) => v !== undefined && v !== false).map(([key]) => key);
  if (arch !== 'gemma3' && gemmaOnly.length > 0) fail(`the Gemma switches ${gemmaOnly.join(', ')}`, 'these belong to Gemma 3 (with its post-norms)');
  if (arch !== 'gemma3' && cfg.act !== 'silu') fail(`act ${cfg.act}`, 'the Llama family uses SwiGLU with silu');
  if (arch === 'qwen3' && (cfg.qkvBias || cfg.slidingWindow !== null)) fail('q/k norms with q/k/v biases or a sliding window', 'Qwen3 has neither');
  const rs = cfg.ropeScaling;
  if ((arch === 'qwen3' || arch === 'gemma3') && (rs?.type === 'llama3' || rs?.type === 'freqs')) {
    fail('llama3 rope scaling', `llama.cpp's ${arch} graph applies no rope_freqs factors; linear scaling is supported`);
  }
  if (arch !== 'gemma3') return;
  if (!(cfg.qkNorm && cfg.normPlusOne && cfg.embedScale !== undefined && cfg.act === 'gelu_tanh')) {
    fail('post-norms without the rest of Gemma 3', 'Gemma 3 has q/k norms, (1 + w) norms, scaled embeddings and a GELU-tanh MLP');
  }
  const want = gemma3AttnScale(cfg.nLayers, cfg.dModel, cfg.nHeads, cfg.headDim);
  if (Math.abs(attnScaleOf(cfg) / want - 1) > 1e-6) {
    fail(`the attention scale ${attnScaleOf(cfg)} (query_pre_attn_scalar ${Number((attnScaleOf(cfg) ** -2).toPrecision(12))})`,
      `llama.cpp derives ${want} from the head dim (27B: from n_embd / n_head) and has no key for another`);
  }
  if (cfg.finalSoftcap !== undefined) fail('final logit softcapping', 'Gemma 3 has none (llama.cpp\'s sliding-window graph ignores the key)');
  const sliding = Array.from({ length: cfg.nLayers }, (_, l) => layerWindow(cfg, l) > 0);
  if (!sliding.some(Boolean)) fail('a Gemma 3 without local layers', 'llama.cpp runs a gemma3 file without a window through another graph (with a final softcap)');
  const period = sliding.indexOf(false) + 1 || cfg.nLayers + 1;
  if (sliding.some((s, i) => s !== (i % period < period - 1))) {
    fail(`the local layers [${sliding.map((s) => (s ? 'S' : 'G')).join('')}]`, 'llama.cpp repeats a period: every layer local but each n-th');
  }
}

/**
 * llama.cpp's `rope_freqs.weight` for llama3 rope scaling: one F32 factor per rotated pair (headDim / 2), by which
 * llama.cpp divides that pair's frequency. Computed as convert_hf_to_gguf.py's LlamaModel does, in float32 like its
 * torch code: freq_i = 1 / theta^(2i / headDim), wavelength 2 pi / freq_i; factor 1 below
 * originalMaxPos / highFreqFactor, `factor` above originalMaxPos / lowFreqFactor, and between them
 * 1 / ((1 - smooth) / factor + smooth) with smooth = (originalMaxPos / wavelength - low) / (high - low).
 */
export function ropeFreqsTensor(cfg: ModelConfig): RawTensor {
  const rs = cfg.ropeScaling;
  if (rs?.type === 'freqs') return { name: 'rope_freqs.weight', dtype: 'F32', shape: [rs.factors.length], data: Float32Array.from(rs.factors) };
  if (rs?.type !== 'llama3') throw new FormatError('<gguf rope_freqs>', 'the config has no llama3 rope scaling', 'rope_freqs.weight is only for llama3 scaling');
  const f = Math.fround;
  const { factor, lowFreqFactor: low, highFreqFactor: high, originalMaxPos: old } = rs;
  const lowWavelen = f(old / low), highWavelen = f(old / high);
  const n = cfg.headDim / 2;
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const freq = f(1 / f(cfg.ropeTheta ** f((2 * i) / cfg.headDim)));
    const wavelen = f(f(2 * Math.PI) / freq);
    if (wavelen < highWavelen) data[i] = 1;
    else if (wavelen > lowWavelen) data[i] = factor;
    else {
      const smooth = f(f(f(old / wavelen) - low) / (high - low));
      data[i] = 1 / (f(f(1 - smooth) / factor) + smooth);
    }
  }
  return { name: 'rope_freqs.weight', dtype: 'F32', shape: [n], data };
}
