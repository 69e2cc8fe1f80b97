/**
 * ModelConfig <-> GGUF metadata (llama.cpp's `{arch}.*` keys, see ggml docs/gguf.md "LLM" section).
 *
 * GGUF architectures: 'llama' (also Mistral, whose llama.cpp conversion uses 'llama'), 'qwen2', 'gpt2'. The config
 * read from a GGUF describes the model after `ggufToHf` (weight-names.ts) has renamed the tensors and undone the q/k
 * row permutation, so its ropeStyle is 'half' like any HF Llama.
 *
 * Limits, each an explicit error rather than a silent approximation:
 * - llama3 rope scaling: llama.cpp stores it as a precomputed `rope_freqs.weight` tensor (one factor per rotated
 *   pair), not as metadata. We write it (ropeFreqsTensor, as convert_hf_to_gguf.py's LlamaModel does) and read it
 *   back as ropeScaling { type: 'freqs' } (the factors themselves; config.json cannot express them).
 * - Mistral's sliding window has no standard key for arch 'llama'; we write and read `llama.attention.sliding_window`
 *   (ignored by llama.cpp, which therefore attends to the full context).
 * - GGUF has one EOS id; a second EOS is written as `tokenizer.ggml.eot_token_id`, further ones are dropped.
 */
import { FormatError } from '../tensor/errors.js';
import { makeConfig, type ModelConfig } from '../model/config.js';
import { ggufGet, ggufOpt, type GgufFile, type GgufValue } from './gguf.js';
import { gv } from './gguf-write.js';
import { toF32, type RawTensor } from './tensor-file.js';

const SUPPORTED_GGUF_ARCHS = ['llama', 'qwen2', 'gpt2'];

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
  return makeConfig({
    arch: 'llama', vocabSize, dModel, nLayers: ggufGet(f, k('block_count'), 'number'), nHeads,
    nKvHeads: ggufOpt(f, k('attention.head_count_kv'), 'number') ?? nHeads, headDim,
    ffnDim: ggufGet(f, k('feed_forward_length'), 'number'), maxPos: ggufGet(f, k('context_length'), 'number'),
    normEps: ggufGet(f, k('attention.layer_norm_rms_epsilon'), 'number'), norm: 'rms', act: 'silu',
    ropeTheta: ggufOpt(f, k('rope.freq_base'), 'number') ?? 10000, ropeStyle: 'half', ropeScaling,
    slidingWindow: ggufOpt(f, k('attention.sliding_window'), 'number') ?? null, qkvBias: arch === 'qwen2',
    tiedEmbeddings: tied, bosId, eosId,
  }, f.file);
}

/**
 * The `general.*`, `{arch}.*` and special-token keys for a config (tokenizer vocab keys are written separately).
 * llama3 rope scaling has no metadata form: with `ropeFreqs: true` the caller promises to write ropeFreqsTensor(cfg)
 * (writeGgufModel does), otherwise it is an error.
 */
export function ggufMetadataFromConfig(cfg: ModelConfig, name = 'recurformer model', opts: { ropeFreqs?: boolean } = {}): Map<string, GgufValue> {
  const arch = cfg.arch === 'gpt2' ? 'gpt2' : cfg.qkvBias ? 'qwen2' : 'llama';
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
    if (cfg.headDim * cfg.nHeads !== cfg.dModel) {
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
    if (cfg.slidingWindow !== null) m.set(k('attention.sliding_window'), gv.u32(cfg.slidingWindow));
  }
  m.set('tokenizer.ggml.bos_token_id', gv.u32(cfg.bosId));
  if (cfg.eosId[0] !== undefined) m.set('tokenizer.ggml.eos_token_id', gv.u32(cfg.eosId[0]));
  if (cfg.eosId[1] !== undefined) m.set('tokenizer.ggml.eot_token_id', gv.u32(cfg.eosId[1]));
  return m;
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
