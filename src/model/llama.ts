/**
 * The llama family: Llama 1/2/3, Mistral (sliding window), Qwen2 (q/k/v biases), Qwen3 (per-head q/k norms) and
 * Gemma 3 ((1 + w) norms, norms on the attention and MLP outputs, scaled embeddings, GELU-tanh gated MLP, attention
 * scale, local layers with their own window and RoPE base, final logit softcapping), all driven by ModelConfig.
 * RMSNorm, RoPE, GQA, gated MLP, tied or untied head. Weights under Hugging Face names, every projection in the
 * nn.Linear (out, in) layout.
 *
 * Shapes: B batch, T new tokens, D = dModel, Hq / Hkv heads, Dh head dim, F ffn dim, V vocab.
 */
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import { usesLocalRope, type ModelConfig } from './config.js';
import { WeightTable, type Family } from './family.js';
import { layerPrefix } from './spec.js';
import { rmsnormGain, type Ops } from './ops.js';
import { invFreqFor } from './rope.js';
import { embeddingW, linearW, type Weight } from './weights.js';

/** One layer's weights, resolved once. Norm gains as in the file (Gemma applies 1 + w). */
export interface LlamaLayer {
  inNorm: Tensor;
  /** The MLP's input norm (post_attention_layernorm, or Gemma's pre_feedforward_layernorm). */
  mlpNorm: Tensor;
  /** Gemma's norms of the attention and MLP outputs. */
  attnOutNorm: Tensor | null;
  mlpOutNorm: Tensor | null;
  /** Qwen3 / Gemma 3 per-head norms of q and k. */
  qNorm: Tensor | null;
  kNorm: Tensor | null;
  q: Weight;
  k: Weight;
  v: Weight;
  /** Qwen2's biases. */
  qb: Tensor | null;
  kb: Tensor | null;
  vb: Tensor | null;
  o: Weight;
  gate: Weight;
  up: Weight;
  down: Weight;
  /** RoPE frequencies of this layer (a Gemma local layer has its own base). */
  invFreq: Float32Array;
}

export class Llama implements Family {
  readonly layers: LlamaLayer[];
  readonly embedding: Weight;
  readonly finalNorm: Tensor;
  readonly lmHead: Weight;

  constructor(readonly cfg: ModelConfig, weights: ReadonlyMap<string, Weight>) {
    const t = new WeightTable(weights);
    const global = cfg.ropeStyle === 'none' ? new Float32Array(0) : invFreqFor(cfg);
    const local = cfg.ropeLocalTheta === undefined ? global : invFreqFor(cfg, true);
    const post = cfg.postNorms === true;
    this.layers = Array.from({ length: cfg.nLayers }, (_, l) => {
      const p = layerPrefix(cfg, l), a = `${p}.self_attn`;
      return {
        inNorm: t.f(`${p}.input_layernorm.weight`),
        mlpNorm: t.f(post ? `${p}.pre_feedforward_layernorm.weight` : `${p}.post_attention_layernorm.weight`),
        attnOutNorm: post ? t.f(`${p}.post_attention_layernorm.weight`) : null,
        mlpOutNorm: post ? t.f(`${p}.post_feedforward_layernorm.weight`) : null,
        qNorm: cfg.qkNorm ? t.f(`${a}.q_norm.weight`) : null,
        kNorm: cfg.qkNorm ? t.f(`${a}.k_norm.weight`) : null,
        q: t.w(`${a}.q_proj.weight`), k: t.w(`${a}.k_proj.weight`), v: t.w(`${a}.v_proj.weight`),
        qb: t.opt(`${a}.q_proj.bias`), kb: t.opt(`${a}.k_proj.bias`), vb: t.opt(`${a}.v_proj.bias`),
        o: t.w(`${a}.o_proj.weight`),
        gate: t.w(`${p}.mlp.gate_proj.weight`), up: t.w(`${p}.mlp.up_proj.weight`), down: t.w(`${p}.mlp.down_proj.weight`),
        invFreq: usesLocalRope(cfg, l) ? local : global,
      };
    });
    this.embedding = t.w('model.embed_tokens.weight');
    this.finalNorm = t.f('model.norm.weight');
    this.lmHead = cfg.tiedEmbeddings ? this.embedding : t.w('lm_head.weight');
  }

  prefix(l: number): string {
    return layerPrefix(this.cfg, l);
  }

  embed(ids: Int32Array, _positions: Int32Array, B: number, Tn: number): Tensor {
    const x = embeddingW(this.embedding, ids, [B, Tn]); // (B, T, D)
    return this.cfg.embedScale === undefined ? x : T.affine(x, this.cfg.embedScale);
  }

  inputNorm(l: number, x: Tensor): Tensor {
    return rmsnormGain(this.cfg, x, this.layers[l]!.inNorm);
  }

  /**
   * x + attn(norm(x)), then + mlp(norm(x)). With Gemma's post-norms each branch's output is normalized too before
   * the add: x + norm(attn(norm(x))), then x + norm(mlp(norm(x))).
   */
  block<V>(o: Ops<V>, l: number, x: V): V {
    const c = this.cfg, L = this.layers[l]!;
    const h = o.rmsnorm(x, L.inNorm); // (B, T, D)
    // one fused product for a few rows (decode), three otherwise: (B, T, Hq * Dh), (B, T, Hkv * Dh) twice
    const [q, k, v] = o.qkv(l, h, [L.q, L.k, L.v], [L.qb, L.kb, L.vb]);
    let qh = o.heads(q!, c.nHeads), kh = o.heads(k!, c.nKvHeads); // (B, T, Hq, Dh), (B, T, Hkv, Dh)
    if (L.qNorm && L.kNorm) {
      qh = o.rmsnorm(qh, L.qNorm); // per head
      kh = o.rmsnorm(kh, L.kNorm);
    }
    const heads = o.attend(l, h, qh, kh, o.heads(v!, c.nKvHeads)); // (B, T, Hq, Dh)
    const a = o.linear(o.flat(heads), L.o); // (B, T, D)
    x = o.add(x, L.attnOutNorm ? o.rmsnorm(a, L.attnOutNorm) : a);
    const h2 = o.rmsnorm(x, L.mlpNorm);
    const [g, u] = o.linearMulti(h2, [L.gate, L.up]); // (B, T, F) each
    const m = o.linear(o.mul(o.act(g!), u!), L.down); // (B, T, D)
    return o.add(x, L.mlpOutNorm ? o.rmsnorm(m, L.mlpOutNorm) : m);
  }

  head(x: Tensor): Tensor {
    const logits = linearW(T.contiguous(rmsnormGain(this.cfg, x, this.finalNorm)), this.lmHead); // (B, T, V)
    const cap = this.cfg.finalSoftcap;
    return cap === undefined ? logits : T.affine(T.tanh(T.affine(logits, 1 / cap)), cap);
  }

  outProjWeight(l: number): Weight {
    return this.layers[l]!.o;
  }

  ropeFreq(l: number): Float32Array {
    return this.layers[l]!.invFreq;
  }
}
