/** Random BF16 weights for the real-size benchmarks: uniform, std ~0.02, norm gains 1; fast enough for 1B values. */
import type { RawTensor } from '../src/io/tensor-file.js';
import { weightTable } from '../src/io/weight-names.js';
import type { ModelConfig } from '../src/model/config.js';

/** Every tensor the loader expects for `cfg`, filled by a seeded xorshift (about 40M values a second). */
export function randomBf16Tensors(cfg: ModelConfig, seed = 0x9e3779b9): Map<string, RawTensor> {
  let x = seed | 0;
  const f32 = new Float32Array(1);
  const u32 = new Uint32Array(f32.buffer);
  const tensors = new Map<string, RawTensor>();
  for (const e of weightTable(cfg)) {
    const n = e.shape.reduce((a, b) => a * b, 1);
    const gain = e.shape.length === 1 && /norm/.test(e.hf);
    const data = new Uint16Array(n);
    for (let i = 0; i < n; i++) {
      x ^= x << 13; x ^= x >>> 17; x ^= x << 5;
      f32[0] = gain ? 1 : ((x >>> 8) / 16777216 - 0.5) * 0.07;
      data[i] = u32[0]! >>> 16; // bf16: the top half of the float32
    }
    tensors.set(e.hf, { name: e.hf, dtype: 'BF16', shape: [...e.shape], data });
  }
  return tensors;
}
