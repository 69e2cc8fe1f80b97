/**
 * LoadedModel (raw tensors under HF names) -> DecoderLM (engine tensors). GPT-2's Conv1D weights ([in, out]) are
 * transposed once to the nn.Linear layout so one linear path serves every family. Half-precision matrices can stay
 * 16-bit (`dtype: 'f16'`) for decode (token embeddings too: the gather converts rows, the tied head reads them
 * directly); norms, biases and learned positions stay float32.
 */
import type { LoadedModel } from './model-load.js';
import { toF32, type RawTensor } from './tensor-file.js';
import { f32ArrayToF16 } from './tensor-file.js';
import { conv1dLayout } from './weight-names.js';
import { tensor } from '../tensor/index.js';
import { DecoderLM } from '../model/transformer.js';
import type { RecurformerSpec } from '../model/spec.js';
import { HalfWeight, QuantWeight, type Weight } from '../model/weights.js';

export interface BuildOptions {
  /**
   * 'f32' (default): every weight float32 (trainable). 'f16': 2-D weights held 16-bit for memory-bound decode (F16 and
   * BF16 checkpoints keep their bits, F32 ones are rounded to F16). 'keep': F16/BF16 stay 16-bit, F32 stays f32, and
   * GGUF matrices in Q8_0/Q4_K/Q5_K/Q6_K stay in their blocks (other quantized types are dequantized to f32).
   */
  dtype?: 'f32' | 'f16' | 'keep';
  /**
   * Use the loaded float32 arrays as the weights instead of copies (inference never writes its weights). Without
   * it, a model built for training owns its weights, so updating them cannot change the loaded model (a teacher
   * built from the same LoadedModel, say).
   */
  share?: boolean;
}


/** 2-D weights that may be held in half precision: projections, and token embeddings (also the tied head). */
function isMatrix(name: string, t: RawTensor): boolean {
  return t.shape.length === 2 && !/wpe/.test(name);
}

/**
 * A converted model's recurrent tensors that stay float32 whatever the dtype: all but its projections (wx, wb, wc,
 * wdt, wz). Those are matrices like q/k/v, held 16-bit by the same rules (a BF16 model's decode reads them at 2 bytes
 * a value); the conv, dt bias, decay, D and norm gain are small and read per channel.
 */
function keptFloat32(name: string): boolean {
  return name.includes('.recurrent.') && !/\.recurrent\.(wx|wb|wc|wdt|wz)$/.test(name);
}

export function buildModel(m: LoadedModel, opts: BuildOptions = {}, spec?: RecurformerSpec | null): DecoderLM {
  const dtype = opts.dtype ?? 'f32';
  const weights = new Map<string, Weight>();
  for (const [name, raw0] of m.tensors) {
    const raw = conv1dLayout(m.config.arch, name, raw0);
    const sixteen = raw.dtype === 'F16' || raw.dtype === 'BF16';
    const packable = isMatrix(name, raw) && !keptFloat32(name);
    const half = packable && (dtype === 'f16' || (dtype === 'keep' && sixteen));
    if (packable && dtype === 'keep' && raw.quant) {
      // GGUF blocks the kernels read directly stay quantized (the float32 values are never made)
      weights.set(name, new QuantWeight(raw.shape, raw.quant.kind, raw.quant.read(), name));
    } else if (half) {
      // 16-bit checkpoints keep their bits (F16 or BF16); float32 ones are rounded to F16
      if (raw.dtype === 'BF16') weights.set(name, new HalfWeight(raw.shape, raw.data as Uint16Array, name, 'bf16'));
      else weights.set(name, new HalfWeight(raw.shape, raw.dtype === 'F16' ? (raw.data as Uint16Array) : f32ArrayToF16(toF32(raw)), name));
    } else {
      const f32 = raw.dtype === 'F32' ? (opts.share && raw === raw0 ? raw.data as Float32Array : Float32Array.from(raw.data as Float32Array)) : toF32(raw);
      const t = tensor(f32, raw.shape);
      t.name = name;
      weights.set(name, t);
    }
  }
  const sp = spec === undefined ? ((m as { recurformer?: RecurformerSpec }).recurformer ?? null) : spec;
  return new DecoderLM(m.config, weights, sp);
}
