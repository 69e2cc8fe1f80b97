/**
 * The decoder-only Transformer for both supported families, driven by ModelConfig:
 *   llama: RMSNorm, RoPE (interleaved or rotate-half, scaled), GQA, optional q/k/v biases (Qwen2), optional sliding
 *          window (Mistral), SwiGLU MLP, tied or untied head; and the switches Qwen3 and Gemma 3 add: per-head q/k
 *          norms, (1 + w) norms, norms on the attention and MLP outputs, scaled embeddings, a GELU-tanh gated MLP,
 *          an attention scale, local layers (own window and RoPE base) among global ones, final logit softcapping.
 *   gpt2:  learned absolute positions, LayerNorm with bias, fused q/k/v projection, GELU MLP, tied head.
 * Weights use the Hugging Face names, with every projection in the nn.Linear (out, in) layout (the GPT-2 loader
 * transposes Conv1D weights once at load).
 *
 * Shapes: B batch, T new tokens, S keys visible (cache + new), D = dModel, Hq / Hkv heads, Dh head dim, V vocab.
 */
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import { ArgumentError, ShapeError } from '../tensor/errors.js';
import type { AttentionMemory } from '../inference/memory.js';
import { attnScaleOf, layerWindow, usesLocalRope, type ModelConfig } from './config.js';
import { invFreqFor } from './rope.js';
import type { TapSink } from './taps.js';
import { HalfWeight, asTensor, embeddingW, linearMultiW, linearW, type Weight } from './weights.js';
import { FastDecoder } from './decode-step.js';
import { headSplit, layerDims, layerPrefix, type HeadSplit, type RecurformerSpec } from '../convert/spec.js';
import {
  recurrentChunked, recurrentStep, zeroState, type RecurrentDims, type RecurrentParams,
} from './recurrent-head.js';

/** A layer whose replaced KV groups run recurrent heads. */
export interface RecurrentLayer {
  dims: RecurrentDims;
  params: RecurrentParams;
  /** Query heads served by attention / by the recurrent heads, and the KV groups kept as attention. */
  keptHeads: Int32Array;
  replacedHeads: Int32Array;
  keptGroups: Int32Array;
  /** Inverse permutation: output slot h reads position inv[h] of [kept heads..., replaced heads...]. */
  merge: Int32Array;
}

export interface ForwardOpts {
  /** Cache to read and extend; without one the call sees only its own tokens (positions from 0). */
  memory?: AttentionMemory;
  taps?: TapSink;
  /** Override absolute positions (length T); default memory.length + [0, T). Used by the waiver position test. */
  positions?: Int32Array;
  /** Return logits only for the last position (generation). */
  lastOnly?: boolean;
  /**
   * Query positions (indices into this call's T tokens) that attend only to themselves, as the first token does
   * under a causal mask: the waiver "mask test". Inference only.
   */
  selfOnly?: Int32Array;
}

export class DecoderLM {
  readonly invFreq: Float32Array;
  /** RoPE frequencies of the local (sliding-window) layers when they have their own base (Gemma 3), else invFreq. */
  readonly invFreqLocal: Float32Array;
  /** Recurrent layers of a converted model (empty for a plain Transformer). */
  readonly recurrent = new Map<number, RecurrentLayer>();
  /** Head splits of the streaming-heads baseline, computed once per layer and group set. */
  private readonly splits = new Map<string, HeadSplit>();
  /** The single-token decode path (src/model/decode-step.ts), built on first use. */
  private fast: FastDecoder | null = null;

  constructor(readonly cfg: ModelConfig, readonly weights: Map<string, Weight>, readonly spec: RecurformerSpec | null = null) {
    this.invFreq = cfg.ropeStyle === 'none' ? new Float32Array(0) : invFreqFor(cfg);
    this.invFreqLocal = cfg.ropeLocalTheta === undefined ? this.invFreq : invFreqFor(cfg, true);
    for (const { layer, groups } of spec?.layers ?? []) {
      if (groups.length === 0) continue;
      const p = `${layerPrefix(cfg, layer)}.recurrent`;
      const opt = (n: string): Tensor | undefined => (this.weights.has(`${p}.${n}`) ? this.f(`${p}.${n}`) : undefined);
      const params: RecurrentParams = {
        wx: this.f(`${p}.wx`), wb: this.f(`${p}.wb`), wc: this.f(`${p}.wc`), convW: this.f(`${p}.conv_w`),
        convB: this.f(`${p}.conv_b`), wdt: this.f(`${p}.wdt`), bdt: this.f(`${p}.bdt`), aLog: this.f(`${p}.a_log`),
        d: this.f(`${p}.d`), wz: opt('wz'), normW: opt('norm_w'),
      };
      const split = headSplit(cfg, groups);
      this.recurrent.set(layer, {
        dims: layerDims(cfg, spec!, groups), params, keptHeads: Int32Array.from(split.keptHeads),
        replacedHeads: Int32Array.from(split.splitHeads), keptGroups: Int32Array.from(split.keptGroups), merge: split.merge,
      });
    }
  }

  /** The RoPE frequencies of layer l. */
  ropeFreq(l: number): Float32Array {
    return usesLocalRope(this.cfg, l) ? this.invFreqLocal : this.invFreq;
  }

  /** KV heads each layer keeps in its cache (all of them unless the layer has recurrent heads). */
  kvHeadsPerLayer(): number[] {
    return Array.from({ length: this.cfg.nLayers }, (_, l) => this.recurrent.get(l)?.keptGroups.length ?? this.cfg.nKvHeads);
  }

  w(name: string): Weight {
    const t = this.weights.get(name);
    if (!t) throw new ArgumentError('DecoderLM', 'weights', `lack tensor "${name}"`, 'the checkpoint is incomplete');
    return t;
  }

  /** Float32 tensor of a weight (norms, embeddings, biases). */
  f(name: string): Tensor {
    return asTensor(this.w(name));
  }

  opt(name: string): Tensor | null {
    const t = this.weights.get(name);
    return t ? asTensor(t) : null;
  }

  /** Trainable float32 parameters in a stable order. */
  parameters(): Tensor[] {
    return [...this.weights.values()].filter((w): w is Tensor => !(w instanceof HalfWeight));
  }

  /** Logits (B, T, V) for token ids (B * T, row-major). */
  forward(ids: Int32Array, B: number, Tn: number, opts: ForwardOpts = {}): Tensor {
    const cfg = this.cfg;
    if (ids.length !== B * Tn) throw new ShapeError('forward', 'ids', `${B * Tn} ids (B=${B}, T=${Tn})`, [ids.length]);
    const start = opts.memory?.length ?? 0;
    const positions = opts.positions ?? Int32Array.from({ length: Tn }, (_, i) => start + i);
    if (positions.length !== Tn) throw new ShapeError('forward', 'positions', `[${Tn}]`, [positions.length]);
    const maxPosUsed = positions.reduce((m, p) => Math.max(m, p), 0);
    if (cfg.arch === 'gpt2' && maxPosUsed >= cfg.maxPos) {
      throw new ArgumentError('forward', 'positions', `reach ${maxPosUsed}, beyond the ${cfg.maxPos} learned positions`,
        'shorten the input');
    }
    let x: Tensor;
    if (cfg.arch === 'gpt2') {
      const tok = embeddingW(this.w('transformer.wte.weight'), ids, [B, Tn]);
      const pos = embeddingW(this.w('transformer.wpe.weight'), positions, [Tn]);
      x = T.add(tok, pos); // (B, T, D)
    } else {
      x = embeddingW(this.w('model.embed_tokens.weight'), ids, [B, Tn]);
      if (cfg.embedScale !== undefined) x = T.affine(x, cfg.embedScale);
    }
    if (FastDecoder.applies(this, B, Tn, opts.memory, !opts.taps && !opts.selfOnly?.length)) {
      x = (this.fast ??= new FastDecoder(this)).blocks(x, positions[0]!, opts.memory!);
    } else for (let l = 0; l < cfg.nLayers; l++) {
      if (opts.taps?.wants(`blk.${l}.in`)) opts.taps.put(`blk.${l}.in`, x); // the block's input (teacher forcing)
      // Without a graph to keep (no grad, no taps), each block runs in its own buffer scope: its intermediates go
      // back to the pool for the next block, so a prefill chunk holds one block's activations, not every layer's.
      const l0 = l, x0 = x;
      x = !T.isGradEnabled() && !opts.taps ? T.scope(() => this.block(l0, x0, B, Tn, positions, opts)) : this.block(l, x, B, Tn, positions, opts);
      if (opts.taps?.wants(`blk.${l}.resid`)) opts.taps.put(`blk.${l}.resid`, x);
    }
    if (opts.lastOnly && Tn > 1) x = T.slice(x, 1, Tn - 1, Tn);
    x = this.norm(cfg.arch === 'gpt2' ? 'transformer.ln_f' : 'model.norm', x);
    const head = cfg.tiedEmbeddings
      ? this.w(cfg.arch === 'gpt2' ? 'transformer.wte.weight' : 'model.embed_tokens.weight')
      : this.w('lm_head.weight');
    const logits = linearW(T.contiguous(x), head);
    const cap = cfg.finalSoftcap;
    return cap === undefined ? logits : T.affine(T.tanh(T.affine(logits, 1 / cap)), cap);
  }

  /** The gain a norm multiplies by: its weight, or 1 + weight (Gemma). */
  normWeight(prefix: string): Tensor {
    const w = this.f(`${prefix}.weight`);
    return this.cfg.normPlusOne ? T.affine(w, 1, 1) : w;
  }

  /** RMSNorm or LayerNorm over the last axis (per head for q/k norms: x (B, T, H, Dh)). */
  norm(prefix: string, x: Tensor): Tensor {
    if (this.cfg.norm === 'rms') return T.rmsnorm(x, this.normWeight(prefix), this.cfg.normEps);
    return T.layernorm(x, this.f(`${prefix}.weight`), this.opt(`${prefix}.bias`), this.cfg.normEps);
  }

  private act(x: Tensor): Tensor {
    switch (this.cfg.act) {
      case 'silu': return T.silu(x);
      case 'gelu_tanh': return T.gelu(x);
      case 'gelu_erf': return T.geluErf(x);
    }
  }

  /**
   * One pre-norm block: x + attn(norm(x)), then + mlp(norm(x)). With postNorms (Gemma) each branch's output is
   * normalized too before the add: x + norm(attn(norm(x))), then x + norm(mlp(norm(x))).
   */
  block(l: number, x: Tensor, B: number, Tn: number, positions: Int32Array, opts: ForwardOpts): Tensor {
    const gpt2 = this.cfg.arch === 'gpt2', post = this.cfg.postNorms === true;
    const p = gpt2 ? `transformer.h.${l}` : `model.layers.${l}`;
    const h = this.norm(gpt2 ? `${p}.ln_1` : `${p}.input_layernorm`, x);
    const a = this.attention(l, h, B, Tn, positions, opts);
    x = T.add(x, post ? this.norm(`${p}.post_attention_layernorm`, a) : a);
    const h2 = this.norm(gpt2 ? `${p}.ln_2` : post ? `${p}.pre_feedforward_layernorm` : `${p}.post_attention_layernorm`, x);
    const m = this.mlp(p, h2);
    return T.add(x, post ? this.norm(`${p}.post_feedforward_layernorm`, m) : m);
  }

  mlp(p: string, h: Tensor): Tensor {
    if (this.cfg.arch === 'gpt2') {
      const u = this.act(linearW(h, this.w(`${p}.mlp.c_fc.weight`), this.opt(`${p}.mlp.c_fc.bias`)));
      return linearW(u, this.w(`${p}.mlp.c_proj.weight`), this.opt(`${p}.mlp.c_proj.bias`));
    }
    const [g, u] = linearMultiW(h, [this.w(`${p}.mlp.gate_proj.weight`), this.w(`${p}.mlp.up_proj.weight`)]);
    return linearW(T.mul(this.act(g!), u!), this.w(`${p}.mlp.down_proj.weight`));
  }

  /** Projections to q (B, T, Hq, Dh), k and v (B, T, Hkv, Dh), before RoPE (q and k normalized per head with qkNorm). */
  qkv(l: number, h: Tensor, B: number, Tn: number): [Tensor, Tensor, Tensor] {
    const { nHeads: Hq, nKvHeads: Hkv, headDim: Dh } = this.cfg;
    if (this.cfg.arch === 'gpt2') {
      const p = `transformer.h.${l}.attn`;
      const qkv = linearW(h, this.w(`${p}.c_attn.weight`), this.opt(`${p}.c_attn.bias`)); // (B, T, 3 * Hq * Dh)
      const q = T.reshape(T.slice(qkv, 2, 0, Hq * Dh), [B, Tn, Hq, Dh]);
      const k = T.reshape(T.slice(qkv, 2, Hq * Dh, 2 * Hq * Dh), [B, Tn, Hkv, Dh]);
      const v = T.reshape(T.slice(qkv, 2, 2 * Hq * Dh, 3 * Hq * Dh), [B, Tn, Hkv, Dh]);
      return [q, k, v];
    }
    const p = `model.layers.${l}.self_attn`;
    // one fused product for a few rows (decode), three otherwise
    const [q, k, v] = linearMultiW(h, [this.w(`${p}.q_proj.weight`), this.w(`${p}.k_proj.weight`), this.w(`${p}.v_proj.weight`)],
      [this.opt(`${p}.q_proj.bias`), this.opt(`${p}.k_proj.bias`), this.opt(`${p}.v_proj.bias`)]);
    const qh = T.reshape(q!, [B, Tn, Hq, Dh]), kh = T.reshape(k!, [B, Tn, Hkv, Dh]);
    if (!this.cfg.qkNorm) return [qh, kh, T.reshape(v!, [B, Tn, Hkv, Dh])];
    return [this.norm(`${p}.q_norm`, qh), this.norm(`${p}.k_norm`, kh), T.reshape(v!, [B, Tn, Hkv, Dh])];
  }

  /**
   * Runs layer l's recurrent heads on the normalized input h and puts their outputs into the replaced heads' slots
   * of the attention output (B, T, Hq, Dh). With a memory, the recurrent state is read from and written back to it;
   * a single new token uses the step form, several the chunked SSD form.
   */
  private mergeRecurrent(l: number, rl: RecurrentLayer, h: Tensor, attnOut: Tensor, B: number, Tn: number,
    opts: ForwardOpts): Tensor {
    const mem = opts.memory;
    const prev = mem?.recurrentState?.(l) ?? zeroState(rl.dims, B);
    const r = Tn === 1 && mem ? recurrentStep(h, rl.params, rl.dims, prev)
      : recurrentChunked(h, rl.params, rl.dims, this.spec!.chunk, prev);
    mem?.setRecurrentState?.(l, r.state);
    const y = T.reshape(r.y, [B, Tn, rl.dims.nHeads, rl.dims.P]);
    const both = rl.keptHeads.length ? T.concat([attnOut, y], 2) : y; // (B, T, kept + replaced, Dh)
    return T.gather(both, 2, rl.merge);
  }

  /**
   * Streaming-heads baseline: the memory's windowed KV groups attend over sinks + window only, the rest over the
   * full cache; the two head sets are merged back into the original head order. (B, T, Hq, Dh) out.
   */
  private splitWindowed(l: number, q: Tensor, k: Tensor, v: Tensor, wg: readonly number[], opts: ForwardOpts): Tensor {
    const cfg = this.cfg;
    const key = `${l}:${wg.join(',')}`;
    let split = this.splits.get(key);
    if (!split) this.splits.set(key, (split = headSplit(cfg, wg)));
    const { keptGroups, keptHeads, splitHeads: winHeads, merge } = split;
    const mem = opts.memory!;
    const parts: Tensor[] = [];
    const own = layerWindow(cfg, l), scale = attnScaleOf(cfg);
    if (keptGroups.length) {
      const view = mem.update(l, T.contiguous(T.gather(k, 2, keptGroups)), T.contiguous(T.gather(v, 2, keptGroups)));
      parts.push(T.attention(T.gather(q, 2, keptHeads), view.k, view.v, { qOffset: view.qOffset, window: own, scale }).out);
    }
    const wv = mem.updateWindowed!(l, T.contiguous(T.gather(k, 2, wg)), T.contiguous(T.gather(v, 2, wg)));
    const window = own ? Math.min(own, wv.window ?? Infinity) : wv.window ?? 0;
    parts.push(T.attention(T.gather(q, 2, winHeads), wv.k, wv.v, { qOffset: wv.qOffset, window, sinks: wv.sinks ?? 0, scale }).out);
    return T.gather(parts.length > 1 ? T.concat(parts, 2) : parts[0]!, 2, merge);
  }

  /**
   * Rewrites the rows of `selfOnly` queries as if each attended only to its own key: the softmax over one key is 1,
   * so the output is that position's value vector (of the head's KV group) and the probability row is one-hot.
   */
  private applySelfOnly(selfOnly: Int32Array, out: Tensor, probs: Tensor | null, v: Tensor, qOffset: number): void {
    const [B, Tn, Hq, Dh] = out.shape as [number, number, number, number];
    const S = v.shape[1]!, Hkv = v.shape[2]!;
    const nRep = Hq / Hkv;
    const vd = T.contiguous(v).data, od = out.data;
    for (const i of selfOnly) {
      if (i < 0 || i >= Tn) throw new ArgumentError('forward', 'selfOnly', `position ${i} is outside [0, ${Tn})`);
      const j = qOffset + i; // its own key
      for (let b = 0; b < B; b++) {
        for (let h = 0; h < Hq; h++) {
          const g = Math.floor(h / nRep);
          od.set(vd.subarray(((b * S + j) * Hkv + g) * Dh, ((b * S + j) * Hkv + g + 1) * Dh), ((b * Tn + i) * Hq + h) * Dh);
          if (probs) {
            const row = ((b * Hq + h) * Tn + i) * S;
            probs.data.fill(0, row, row + S);
            probs.data[row + j] = 1;
          }
        }
      }
    }
  }

  /** Multi-head attention of layer l on normalized input h (B, T, D); returns the o_proj output (B, T, D). */
  attention(l: number, h: Tensor, B: number, Tn: number, positions: Int32Array, opts: ForwardOpts): Tensor {
    const { nHeads: Hq, headDim: Dh } = this.cfg;
    const rl = this.recurrent.get(l);
    let [q, k, v] = this.qkv(l, h, B, Tn);
    if (rl) {
      q = T.gather(q, 2, rl.keptHeads);
      k = T.gather(k, 2, rl.keptGroups);
      v = T.gather(v, 2, rl.keptGroups);
    }
    if (this.cfg.ropeStyle !== 'none') {
      const ro = { positions, invFreq: this.ropeFreq(l), style: this.cfg.ropeStyle };
      q = T.rope(q, ro);
      k = T.rope(k, ro);
    }
    const taps = opts.taps;
    const wg = !rl ? opts.memory?.windowedGroups?.(l) : undefined;
    if (wg && wg.length > 0) return this.outProj(l, T.reshape(this.splitWindowed(l, q, k, v, wg, opts), [B, Tn, Hq * Dh]));
    if (taps?.wants(`blk.${l}.q`)) taps.put(`blk.${l}.q`, q);
    if (taps?.wants(`blk.${l}.k`)) taps.put(`blk.${l}.k`, k);
    if (taps?.wants(`blk.${l}.v`)) taps.put(`blk.${l}.v`, v);
    let qOffset = 0;
    let window = layerWindow(this.cfg, l), sinks = 0;
    if (opts.memory) {
      const view = opts.memory.update(l, T.contiguous(k), T.contiguous(v));
      k = view.k;
      v = view.v;
      qOffset = view.qOffset;
      if (view.window !== undefined) {
        window = window > 0 ? Math.min(window, view.window) : view.window;
        sinks = view.sinks ?? 0;
      }
    }
    const wantProbs = !!taps?.wants(`blk.${l}.attn_probs`);
    if (rl && rl.keptHeads.length === 0) {
      // every group of this layer is recurrent: no attention at all
      const heads = this.mergeRecurrent(l, rl, h, T.zeros([B, Tn, 0, Dh]), B, Tn, opts);
      if (taps?.wants(`blk.${l}.head_out`)) taps.put(`blk.${l}.head_out`, heads);
      return this.outProj(l, T.reshape(heads, [B, Tn, Hq * Dh]));
    }
    const { out, probs } = T.attention(q, k, v, {
      qOffset, window, sinks, scale: attnScaleOf(this.cfg), returnProbs: wantProbs,
    }); // (B, T, Hq, Dh)
    if (opts.selfOnly?.length) this.applySelfOnly(opts.selfOnly, out, probs, v, qOffset);
    if (wantProbs) taps!.put(`blk.${l}.attn_probs`, probs!);
    let heads = out;
    if (rl) heads = this.mergeRecurrent(l, rl, h, out, B, Tn, opts);
    if (taps?.wants(`blk.${l}.head_out`)) taps.put(`blk.${l}.head_out`, heads);
    return this.outProj(l, T.reshape(heads, [B, Tn, Hq * Dh]));
  }

  /** The attention output projection (o_proj / c_proj) on the concatenated heads (B, T, Hq * Dh). */
  outProj(l: number, flat: Tensor): Tensor {
    if (this.cfg.arch === 'gpt2') {
      const p = `transformer.h.${l}.attn.c_proj`;
      return linearW(flat, this.w(`${p}.weight`), this.opt(`${p}.bias`));
    }
    return linearW(flat, this.w(`model.layers.${l}.self_attn.o_proj.weight`));
  }
}
