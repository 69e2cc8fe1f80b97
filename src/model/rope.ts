/** RoPE inverse frequencies for a ModelConfig, including the linear and llama3 rope_scaling variants. */
import type { ModelConfig } from './config.js';

/**
 * theta^(-2i/d) for i < d/2, then scaled: 'linear' divides every frequency by factor (positions interpolated);
 * 'llama3' leaves high frequencies, divides low frequencies by factor and blends the band in between; 'freqs' divides
 * each pair's frequency by its stored factor (llama.cpp's rope_freqs.weight: llama3 scaling read from a GGUF).
 * `local`: the frequencies of the sliding-window layers of a model with its own local base (Gemma 3), never scaled.
 */
export function invFreqFor(cfg: ModelConfig, local = false): Float32Array {
  const d = cfg.headDim;
  const theta = local ? cfg.ropeLocalTheta ?? cfg.ropeTheta : cfg.ropeTheta;
  const f = new Float64Array(d / 2);
  for (let i = 0; i < f.length; i++) f[i] = 1 / Math.pow(theta, (2 * i) / d);
  const s = local ? null : cfg.ropeScaling;
  if (s?.type === 'linear') {
    for (let i = 0; i < f.length; i++) f[i] = f[i]! / s.factor;
  } else if (s?.type === 'freqs') {
    for (let i = 0; i < f.length; i++) f[i] = f[i]! / s.factors[i]!;
  } else if (s?.type === 'llama3') {
    const lowWavelen = s.originalMaxPos / s.lowFreqFactor;
    const highWavelen = s.originalMaxPos / s.highFreqFactor;
    for (let i = 0; i < f.length; i++) {
      const wavelen = (2 * Math.PI) / f[i]!;
      if (wavelen < highWavelen) continue;
      if (wavelen > lowWavelen) {
        f[i] = f[i]! / s.factor;
      } else {
        const smooth = (s.originalMaxPos / wavelen - s.lowFreqFactor) / (s.highFreqFactor - s.lowFreqFactor);
        f[i] = (1 - smooth) * (f[i]! / s.factor) + smooth * f[i]!;
      }
    }
  }
  return Float32Array.from(f);
}
