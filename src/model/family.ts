/**
 * What a model family provides to DecoderLM (transformer.ts): its weights resolved once into typed per-layer fields,
 * its embedding, its block and its output head. One file per family (llama.ts, gpt2.ts) holds all of that and the
 * names of its tensors; nothing outside it branches on the family.
 */
import type { Tensor } from '../tensor/index.js';
import { ArgumentError } from '../tensor/errors.js';
import type { Weight } from './weights.js';
import type { Ops } from './ops.js';
import { asTensor } from './weights.js';

export interface Family {
  /** Prefix of layer l's tensor names (the recurrent heads' tensors live under `${prefix}.recurrent`). */
  prefix(l: number): string;
  /** The block input of the first layer: (B, T, D). */
  embed(ids: Int32Array, positions: Int32Array, B: number, Tn: number): Tensor;
  /** One block, x (B, T, D) -> (B, T, D), written once for both execution modes (ops.ts). */
  block<V>(o: Ops<V>, l: number, x: V): V;
  /** The norm the block applies to its input before attention (its output is what the heads read). */
  inputNorm(l: number, x: Tensor): Tensor;
  /** Final norm and output head: x (B, T, D) -> logits (B, T, V). */
  head(x: Tensor): Tensor;
  /** The attention output projection of layer l, (D, Hq * Dh) (the waiver analysis reads it). */
  outProjWeight(l: number): Weight;
  /** RoPE frequencies of layer l (empty without RoPE). */
  ropeFreq(l: number): Float32Array;
}

/** Looks weights up by name for a family's resolve step (the only place names are read). */
export class WeightTable {
  constructor(private readonly weights: ReadonlyMap<string, Weight>) {}

  w(name: string): Weight {
    const t = this.weights.get(name);
    if (!t) throw new ArgumentError('model', 'weights', `lack tensor "${name}"`, 'the checkpoint is incomplete');
    return t;
  }

  /** A float32 tensor (norms, biases, positions). */
  f(name: string): Tensor {
    return asTensor(this.w(name));
  }

  opt(name: string): Tensor | null {
    const t = this.weights.get(name);
    return t ? asTensor(t) : null;
  }
}
