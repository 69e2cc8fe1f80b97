/**
 * The GPT-2 family: learned absolute positions, LayerNorm with bias, fused q/k/v projection, GELU MLP, tied head.
 * Weights under Hugging Face names; the Conv1D matrices are held in the nn.Linear (out, in) layout (transposed once
 * at load, see CONV1D).
 *
 * Shapes: B batch, T new tokens, D = dModel, H heads, Dh head dim, V vocab.
 */
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import { ArgumentError } from '../tensor/errors.js';
import type { ModelConfig } from './config.js';
import { WeightTable, type Family } from './family.js';
import { layerPrefix } from './spec.js';
import type { Ops } from './ops.js';
import { embeddingW, linearW, type Weight } from './weights.js';

/** GPT-2's Conv1D weights, stored (in, out) in its files. */
export const CONV1D = /\.(c_attn|c_proj|c_fc)\.weight$/;

interface Norm {
  w: Tensor;
  b: Tensor | null;
}

export interface Gpt2Layer {
  ln1: Norm;
  ln2: Norm;
  /** (3 * D, D): q, k and v stacked. */
  qkv: Weight;
  qkvB: Tensor | null;
  o: Weight;
  oB: Tensor | null;
  fc: Weight;
  fcB: Tensor | null;
  proj: Weight;
  projB: Tensor | null;
}

export class Gpt2 implements Family {
  readonly layers: Gpt2Layer[];
  readonly wte: Weight;
  readonly wpe: Weight;
  readonly lnF: Norm;

  constructor(readonly cfg: ModelConfig, weights: ReadonlyMap<string, Weight>) {
    const t = new WeightTable(weights);
    const norm = (p: string): Norm => ({ w: t.f(`${p}.weight`), b: t.opt(`${p}.bias`) });
    this.layers = Array.from({ length: cfg.nLayers }, (_, l) => {
      const p = layerPrefix(cfg, l);
      return {
        ln1: norm(`${p}.ln_1`), ln2: norm(`${p}.ln_2`),
        qkv: t.w(`${p}.attn.c_attn.weight`), qkvB: t.opt(`${p}.attn.c_attn.bias`),
        o: t.w(`${p}.attn.c_proj.weight`), oB: t.opt(`${p}.attn.c_proj.bias`),
        fc: t.w(`${p}.mlp.c_fc.weight`), fcB: t.opt(`${p}.mlp.c_fc.bias`),
        proj: t.w(`${p}.mlp.c_proj.weight`), projB: t.opt(`${p}.mlp.c_proj.bias`),
      };
    });
    this.wte = t.w('transformer.wte.weight');
    this.wpe = t.w('transformer.wpe.weight');
    this.lnF = norm('transformer.ln_f');
  }

  prefix(l: number): string {
    return layerPrefix(this.cfg, l);
  }

  private norm(n: Norm, x: Tensor): Tensor {
    return T.layernorm(x, n.w, n.b, this.cfg.normEps);
  }

  embed(ids: Int32Array, positions: Int32Array, B: number, Tn: number): Tensor {
    const maxPos = positions.reduce((m, p) => Math.max(m, p), 0);
    if (maxPos >= this.cfg.maxPos) {
      throw new ArgumentError('forward', 'positions', `reach ${maxPos}, beyond the ${this.cfg.maxPos} learned positions`, 'shorten the input');
    }
    return T.add(embeddingW(this.wte, ids, [B, Tn]), embeddingW(this.wpe, positions, [Tn])); // (B, T, D)
  }

  inputNorm(l: number, x: Tensor): Tensor {
    return this.norm(this.layers[l]!.ln1, x);
  }

  /** x + attn(ln_1(x)), then + mlp(ln_2(x)). */
  block<V>(o: Ops<V>, l: number, x: V): V {
    const c = this.cfg, L = this.layers[l]!;
    const H = c.nHeads, Dh = c.headDim;
    const h = o.layernorm(x, L.ln1.w, L.ln1.b); // (B, T, D)
    const qkv = o.linear(h, L.qkv, L.qkvB); // (B, T, 3 * H * Dh)
    const [q, k, v] = o.split(qkv, [H * Dh, c.nKvHeads * Dh, c.nKvHeads * Dh]);
    const heads = o.attend(l, h, o.heads(q!, H), o.heads(k!, c.nKvHeads), o.heads(v!, c.nKvHeads)); // (B, T, H, Dh)
    x = o.add(x, o.linear(o.flat(heads), L.o, L.oB));
    const u = o.act(o.linear(o.layernorm(x, L.ln2.w, L.ln2.b), L.fc, L.fcB)); // (B, T, F)
    return o.add(x, o.linear(u, L.proj, L.projB));
  }

  head(x: Tensor): Tensor {
    return linearW(T.contiguous(this.norm(this.lnF, x)), this.wte); // tied: (B, T, V)
  }

  outProjWeight(l: number): Weight {
    return this.layers[l]!.o;
  }

  ropeFreq(): Float32Array {
    return NO_ROPE;
  }
}

const NO_ROPE = new Float32Array(0);
