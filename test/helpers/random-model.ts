/** Tiny random models of each family, built from the weight table so every tensor the loader expects exists. */
import type { LoadedModel } from '../../src/io/model-load.js';
import type { RawTensor } from '../../src/io/tensor-file.js';
import { weightTable } from '../../src/io/weight-names.js';
import { makeConfig, type ModelConfig } from '../../src/model/config.js';
import { Rng } from '../../src/tensor/index.js';

export function tinyConfig(arch: 'llama' | 'gpt2', over: Partial<ModelConfig> = {}): ModelConfig {
  const base: ModelConfig = arch === 'llama'
    ? {
      arch: 'llama', vocabSize: 67, dModel: 32, nLayers: 2, nHeads: 4, nKvHeads: 2, headDim: 8, ffnDim: 48,
      maxPos: 128, normEps: 1e-5, norm: 'rms', act: 'silu', ropeTheta: 10000, ropeStyle: 'half', ropeScaling: null,
      slidingWindow: null, qkvBias: false, tiedEmbeddings: false, bosId: 1, eosId: [2],
    }
    : {
      arch: 'gpt2', vocabSize: 71, dModel: 24, nLayers: 2, nHeads: 3, nKvHeads: 3, headDim: 8, ffnDim: 96,
      maxPos: 64, normEps: 1e-5, norm: 'layer', act: 'gelu_tanh', ropeTheta: 10000, ropeStyle: 'none', ropeScaling: null,
      slidingWindow: null, qkvBias: true, tiedEmbeddings: true, bosId: 0, eosId: [0],
    };
  return makeConfig({ ...base, ...over }, '<test>');
}

/** A LoadedModel with N(0, std) weights (norm gains near 1) and no tokenizer. */
export function randomModel(cfg: ModelConfig, seed = 0, std = 0.2): LoadedModel {
  const rng = new Rng(seed);
  const tensors = new Map<string, RawTensor>();
  for (const e of weightTable(cfg)) {
    const n = e.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const isNormGain = e.shape.length === 1 && /norm|ln_/.test(e.hf) && e.hf.endsWith('.weight');
    for (let i = 0; i < n; i++) data[i] = (isNormGain ? 1 : 0) + rng.normal() * std;
    tensors.set(e.hf, { name: e.hf, dtype: 'F32', shape: [...e.shape], data });
  }
  return { source: '<random>', format: 'hf', config: cfg, tensors, tokenizer: null, tokenizerSource: null };
}
