/**
 * The operations a family's block is written in, once, for two execution modes:
 *   GraphOps (here)        tensors of any batch and length, with autograd when enabled: prefill, training,
 *                          analysis (taps), evaluation;
 *   StepOps (step-ops.ts)  one token of batch 1 on preallocated buffers through the vector kernels (tensor/vec.ts),
 *                          no tape: the decode step.
 * Both call the same kernels with the same arguments, so a block gives bit-identical results in either mode.
 * Values (V) are Tensors in graph mode and flat rows in step mode; shapes in comments are graph mode's.
 */
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import type { ModelConfig } from './config.js';
import { linearMultiW, linearW, type Weight } from './weights.js';

/** RMSNorm over the last axis with gain w, or 1 + w with the config's normPlusOne (Gemma), on tensors. */
export function rmsnormGain(cfg: ModelConfig, x: Tensor, w: Tensor): Tensor {
  return T.rmsnorm(x, cfg.normPlusOne ? T.affine(w, 1, 1) : w, cfg.normEps);
}

export interface Ops<V> {
  /** RMSNorm over the last axis with gain w (1 + w with the config's normPlusOne); per head when x is (B, T, H, Dh). */
  rmsnorm(x: V, w: Tensor): V;
  /** LayerNorm over the last axis. */
  layernorm(x: V, w: Tensor, b: Tensor | null): V;
  /** x @ w^T (+ b), w (out, in). */
  linear(x: V, w: Weight, b?: Tensor | null): V;
  /** [x @ w_i^T (+ b_i)] for weights sharing x (fused for a few rows). */
  linearMulti(x: V, ws: readonly Weight[], bs?: readonly (Tensor | null)[]): V[];
  /**
   * Layer l's q, k and v projections (separate weights (Hq * Dh, D), (Hkv * Dh, D) twice): linearMulti, except
   * that step mode leaves the rows of the heads of pure recurrent groups at 0, as nothing reads them.
   */
  qkv(l: number, x: V, ws: readonly [Weight, Weight, Weight], bs: readonly [Tensor | null, Tensor | null, Tensor | null]): V[];
  add(a: V, b: V): V;
  mul(a: V, b: V): V;
  /** The config's activation. */
  act(x: V): V;
  /** (B, T, H * Dh) -> (B, T, H, Dh). */
  heads(x: V, H: number): V;
  /** (B, T, H, Dh) -> (B, T, H * Dh). */
  flat(x: V): V;
  /** Splits the last axis into consecutive parts of the given sizes. */
  split(x: V, sizes: readonly number[]): V[];
  /**
   * The attention core of layer l (attention.ts / StepOps.attend): q (B, T, Hq, Dh), k and v (B, T, Hkv, Dh) before
   * RoPE, h the block's normalized input (B, T, D) for the recurrent heads; returns the heads (B, T, Hq, Dh).
   */
  attend(l: number, h: V, q: V, k: V, v: V): V;
}

/** Graph mode: tensor ops. `attend` is the model's attention core bound to this call's memory and positions. */
export class GraphOps implements Ops<Tensor> {
  constructor(private readonly cfg: ModelConfig, private readonly B: number, private readonly Tn: number,
    readonly attend: (l: number, h: Tensor, q: Tensor, k: Tensor, v: Tensor) => Tensor) {}

  rmsnorm(x: Tensor, w: Tensor): Tensor {
    return rmsnormGain(this.cfg, x, w);
  }

  layernorm(x: Tensor, w: Tensor, b: Tensor | null): Tensor {
    return T.layernorm(x, w, b, this.cfg.normEps);
  }

  linear(x: Tensor, w: Weight, b: Tensor | null = null): Tensor {
    return linearW(x, w, b);
  }

  linearMulti(x: Tensor, ws: readonly Weight[], bs: readonly (Tensor | null)[] = []): Tensor[] {
    return linearMultiW(x, ws, bs);
  }

  qkv(_l: number, x: Tensor, ws: readonly [Weight, Weight, Weight], bs: readonly [Tensor | null, Tensor | null, Tensor | null]): Tensor[] {
    return linearMultiW(x, ws, bs);
  }

  add(a: Tensor, b: Tensor): Tensor {
    return T.add(a, b);
  }

  mul(a: Tensor, b: Tensor): Tensor {
    return T.mul(a, b);
  }

  act(x: Tensor): Tensor {
    switch (this.cfg.act) {
      case 'silu': return T.silu(x);
      case 'gelu_tanh': return T.gelu(x);
      case 'gelu_erf': return T.geluErf(x);
    }
  }

  heads(x: Tensor, H: number): Tensor {
    return T.reshape(x, [this.B, this.Tn, H, x.shape[2]! / H]);
  }

  flat(x: Tensor): Tensor {
    return T.reshape(x, [this.B, this.Tn, x.shape[2]! * x.shape[3]!]);
  }

  split(x: Tensor, sizes: readonly number[]): Tensor[] {
    let at = 0;
    return sizes.map((n) => T.slice(x, x.rank - 1, at, (at += n)));
  }
}
