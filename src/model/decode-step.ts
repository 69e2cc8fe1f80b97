/**
 * The single-token decode step of a Llama-family model (plain or converted, Qwen3 and Gemma 3 included) without the
 * tensor layer: the same
 * kernels as DecoderLM.forward, called with the same arguments on preallocated buffers, so the logits are
 * bit-identical (test/model/decode-step.test.ts) while a step costs about 20 kernel calls per layer instead of
 * about 20 tensor ops each building shapes, strides, buffers and autograd checks. For small models the per-op
 * overhead is most of a decode step (stories260K: ~60 us of ~70 us per layer), and for large ones it is the gap
 * between the weight stream and the bandwidth bound (docs/performance.md).
 *
 * Used by DecoderLM.forward for one new token (B = 1, T = 1) with a memory, no gradients, no taps, no position
 * override or self-only queries, and no streaming-heads groups; everything else takes the general path.
 */
import { K } from '../tensor/backend.js';
import { BinaryOp, UnaryOp } from '../tensor/kernels.js';
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import { KVCache, type AttentionMemory } from '../inference/memory.js';
import { attnScaleOf, layerWindow } from './config.js';
import { channels, type RecurrentDims } from './recurrent-head.js';
import { HalfWeight, halfProduct, multiProduct, type Weight } from './weights.js';
import type { DecoderLM, RecurrentLayer } from './transformer.js';

let enabled = true;

/** Turns the fast path on or off (tests compare it with the general path); returns the previous setting. */
export function setFastDecode(on: boolean): boolean {
  const was = enabled;
  enabled = on;
  return was;
}

const NONE = new Float32Array(0);
const ONE = Int32Array.of(1);

/** One layer's weights, looked up by name once (norm gains as applied: 1 + w for Gemma). */
interface LayerWeights {
  inNorm: Float32Array;
  /** The MLP's input norm (post_attention_layernorm, or Gemma's pre_feedforward_layernorm). */
  mlpNorm: Float32Array;
  /** Gemma's norms of the attention and MLP outputs. */
  attnOutNorm: Float32Array | null;
  mlpOutNorm: Float32Array | null;
  qNorm: Float32Array | null;
  kNorm: Float32Array | null;
  invFreq: Float32Array;
  qkv: Weight[];
  bias: (Float32Array | null)[];
  o: Weight;
  gateUp: Weight[];
  down: Weight;
  rec?: RecurrentRaw;
}

/** A recurrent layer's parameters as flat arrays, and its step's scratch buffers. */
interface RecurrentRaw {
  wx: Float32Array; wb: Float32Array; wc: Float32Array; wdt: Float32Array; bdt: Float32Array; wz: Float32Array | null;
  convW: Float32Array; convB: Float32Array; aLog: Float32Array; d: Float32Array; normW: Float32Array;
  nx: number; nb: number; nc: number; nz: number;
  xbc: Float32Array; dtRaw: Float32Array; sum: Float32Array; dt: Float32Array; z: Float32Array; y: Float32Array;
  gated: Float32Array; normed: Float32Array; rstd: Float32Array;
}

/** Preallocated buffers of one model's decode step. */
interface Buffers {
  x: Float32Array; x2: Float32Array; h: Float32Array; attn: Float32Array; proj: Float32Array;
  q: Float32Array; k: Float32Array; v: Float32Array; qr: Float32Array; kr: Float32Array; qg: Float32Array;
  kg: Float32Array; vg: Float32Array; qn: Float32Array; kn: Float32Array; heads: Float32Array; g: Float32Array;
  u: Float32Array; act: Float32Array; rstd: Float32Array; lse: Float32Array; shape: Int32Array; pos: Int32Array;
}

const ACT = { silu: UnaryOp.Silu, gelu_tanh: UnaryOp.GeluTanh, gelu_erf: UnaryOp.GeluErf } as const;

const data = (t: Tensor): Float32Array => T.contiguous(t).data;

/** y = w x for one row, as linearW does it (same kernel, same arguments). */
function matvec(w: Weight, x: Float32Array, y: Float32Array): void {
  if (w instanceof HalfWeight) halfProduct(1, x, w, y);
  else K().gemm(0, 1, 1, w.shape[0]!, w.shape[1]!, 1, x, 0, data(w), 0, 0, y, w.shape[0]!, 1);
}

/** [w_i x] for weights sharing x, as linearMultiW does it: one gemmMulti call when their types agree. */
function matvecMulti(ws: readonly Weight[], x: Float32Array, ys: Float32Array[]): void {
  const half = ws[0] instanceof HalfWeight ? ws[0].kind : null;
  if (ws.every((w) => (w instanceof HalfWeight ? w.kind === half : half === null))) multiProduct(1, x, ws, ys);
  else ws.forEach((w, i) => matvec(w, x, ys[i]!));
}

/** out = a op b elementwise over n values (the tensor layer's equal-shape path). */
function binary(op: BinaryOp, a: Float32Array, b: Float32Array, n: number, out: Float32Array, buf: Buffers): void {
  buf.shape[0] = n;
  K().binary(op, a, ONE, b, ONE, buf.shape, out);
}

/** Copies rows `idx` (each `w` values) of src into dst, in order (the tensor layer's gather). */
function gatherRows(src: Float32Array, idx: Int32Array, w: number, dst: Float32Array): void {
  for (let i = 0; i < idx.length; i++) dst.set(src.subarray(idx[i]! * w, (idx[i]! + 1) * w), i * w);
}

export class FastDecoder {
  private readonly layers: LayerWeights[];
  private readonly buf: Buffers;
  private readonly interleaved: number;

  constructor(private readonly m: DecoderLM) {
    const c = m.cfg;
    const a = (n: number): Float32Array => new Float32Array(n);
    const ob = (name: string): Float32Array | null => {
      const t = m.opt(name);
      return t ? data(t) : null;
    };
    // the gains as DecoderLM.norm applies them, copied: 1 + w is computed in the first step's buffer scope
    const gain = (prefix: string): Float32Array => Float32Array.from(data(m.normWeight(prefix)));
    const post = c.postNorms === true;
    this.layers = Array.from({ length: c.nLayers }, (_, l) => {
      const p = `model.layers.${l}`;
      const lw: LayerWeights = {
        inNorm: gain(`${p}.input_layernorm`), mlpNorm: gain(post ? `${p}.pre_feedforward_layernorm` : `${p}.post_attention_layernorm`),
        attnOutNorm: post ? gain(`${p}.post_attention_layernorm`) : null, mlpOutNorm: post ? gain(`${p}.post_feedforward_layernorm`) : null,
        qNorm: c.qkNorm ? gain(`${p}.self_attn.q_norm`) : null, kNorm: c.qkNorm ? gain(`${p}.self_attn.k_norm`) : null,
        invFreq: m.ropeFreq(l),
        qkv: ['q', 'k', 'v'].map((n) => m.w(`${p}.self_attn.${n}_proj.weight`)),
        bias: ['q', 'k', 'v'].map((n) => ob(`${p}.self_attn.${n}_proj.bias`)),
        o: m.w(`${p}.self_attn.o_proj.weight`),
        gateUp: [m.w(`${p}.mlp.gate_proj.weight`), m.w(`${p}.mlp.up_proj.weight`)],
        down: m.w(`${p}.mlp.down_proj.weight`),
      };
      const rl = m.recurrent.get(l);
      if (rl) {
        const r = rl.params;
        const nx = r.wx.shape[0]!, nb = r.wb.shape[0]!, nc = r.wc.shape[0]!, nz = r.wz ? r.wz.shape[0]! : 0;
        const H = rl.dims.nHeads;
        lw.rec = {
          wx: data(r.wx), wb: data(r.wb), wc: data(r.wc), wdt: data(r.wdt), bdt: data(r.bdt), wz: r.wz ? data(r.wz) : null,
          convW: data(r.convW), convB: data(r.convB), aLog: data(r.aLog), d: data(r.d), normW: r.normW ? data(r.normW) : NONE,
          nx, nb, nc, nz, xbc: a(nx + nb + nc), dtRaw: a(H), sum: a(H), dt: a(H), z: a(nz), y: a(H * rl.dims.P),
          gated: a(H * rl.dims.P), normed: a(H * rl.dims.P), rstd: a(H),
        };
      }
      return lw;
    });
    const { dModel: D, nHeads: Hq, nKvHeads: Hkv, headDim: Dh, ffnDim: F } = c;
    this.buf = {
      x: a(D), x2: a(D), h: a(D), attn: a(Hq * Dh), proj: a(D), q: a(Hq * Dh), k: a(Hkv * Dh), v: a(Hkv * Dh),
      qr: a(Hq * Dh), kr: a(Hkv * Dh), qg: a(Hq * Dh), kg: a(Hkv * Dh), vg: a(Hkv * Dh), qn: a(Hq * Dh), kn: a(Hkv * Dh),
      heads: a(Hq * Dh), g: a(F), u: a(F), act: a(F), rstd: a(Math.max(1, Hq)), lse: a(Math.max(1, Hq)),
      shape: new Int32Array(1), pos: new Int32Array(1),
    };
    this.interleaved = c.ropeStyle === 'interleaved' ? 1 : 0;
  }

  /** Whether this step can take the fast path. */
  static applies(m: DecoderLM, B: number, Tn: number, mem: AttentionMemory | undefined, plain: boolean): boolean {
    if (!enabled || B !== 1 || Tn !== 1 || !mem || !plain || T.isGradEnabled()) return false;
    const c = m.cfg;
    if (c.arch !== 'llama' || c.norm !== 'rms') return false;
    if (mem.windowedGroups) for (let l = 0; l < c.nLayers; l++) if (mem.windowedGroups(l).length > 0) return false;
    return true;
  }

  /** Runs every block on the embedded token x (1, 1, D); returns the residual stream after the last block. */
  blocks(x0: Tensor, position: number, mem: AttentionMemory): Tensor {
    const b = this.buf;
    b.x.set(data(x0));
    b.pos[0] = position;
    for (let l = 0; l < this.m.cfg.nLayers; l++) this.block(l, mem);
    return T.tensor(Float32Array.from(b.x), [1, 1, this.m.cfg.dModel]);
  }

  private block(l: number, mem: AttentionMemory): void {
    const c = this.m.cfg, b = this.buf, lw = this.layers[l]!;
    const D = c.dModel, Dh = c.headDim;
    const k = K();
    // attention half: x += o_proj(attention(norm(x)))
    k.rmsnorm(b.x, lw.inNorm, 1, D, c.normEps, b.h, b.rstd);
    const nq = c.nHeads * Dh, nkv = c.nKvHeads * Dh;
    const q = b.q.subarray(0, nq), kk = b.k.subarray(0, nkv), v = b.v.subarray(0, nkv);
    matvecMulti(lw.qkv, b.h, [q, kk, v]);
    // biases: add(y, b) into new buffers in the tensor layer; the sums are the same
    let qs = lw.bias[0] ? (binary(BinaryOp.Add, q, lw.bias[0], nq, b.qg, b), b.qg.subarray(0, nq)) : q;
    let ks = lw.bias[1] ? (binary(BinaryOp.Add, kk, lw.bias[1], nkv, b.kg, b), b.kg.subarray(0, nkv)) : kk;
    const vs = lw.bias[2] ? (binary(BinaryOp.Add, v, lw.bias[2], nkv, b.vg, b), b.vg.subarray(0, nkv)) : v;
    if (lw.qNorm && lw.kNorm) {
      // per head: rows of Dh, as the tensor layer's rmsnorm over (1, 1, H, Dh)
      k.rmsnorm(qs, lw.qNorm, c.nHeads, Dh, c.normEps, b.qn, b.rstd);
      k.rmsnorm(ks, lw.kNorm, c.nKvHeads, Dh, c.normEps, b.kn, b.rstd);
      qs = b.qn.subarray(0, nq);
      ks = b.kn.subarray(0, nkv);
    }
    const rl = this.m.recurrent.get(l);
    let Hq = c.nHeads, Hkv = c.nKvHeads;
    let qh = qs, kh = ks, vh = vs;
    if (rl) {
      Hq = rl.keptHeads.length;
      Hkv = rl.keptGroups.length;
      qh = b.heads.subarray(0, Hq * Dh);
      gatherRows(qs, rl.keptHeads, Dh, qh);
      kh = b.attn.subarray(0, Hkv * Dh);
      gatherRows(ks, rl.keptGroups, Dh, kh);
      vh = b.proj.subarray(0, Hkv * Dh);
      gatherRows(vs, rl.keptGroups, Dh, vh);
    }
    const qr = b.qr.subarray(0, Hq * Dh), kr = b.kr.subarray(0, Hkv * Dh);
    if (c.ropeStyle !== 'none') {
      const inv = lw.invFreq;
      k.rope(qh, 1, 1, Hq, Dh, inv.length * 2, b.pos, inv, this.interleaved, 1, qr);
      k.rope(kh, 1, 1, Hkv, Dh, inv.length * 2, b.pos, inv, this.interleaved, 1, kr);
    } else {
      qr.set(qh);
      kr.set(kh);
    }
    // the plain KV cache stores and returns flat arrays; other memories (StreamingLLM) go through `update`
    let view: { k: Float32Array; v: Float32Array; S: number; qOffset: number; window?: number; sinks?: number };
    if (mem instanceof KVCache) {
      view = mem.appendOne(l, kr, vh);
    } else {
      const v = mem.update(l, T.tensor(Float32Array.from(kr), [1, 1, Hkv, Dh]), T.tensor(Float32Array.from(vh), [1, 1, Hkv, Dh]));
      view = { k: data(v.k), v: data(v.v), S: v.k.shape[1]!, qOffset: v.qOffset, window: v.window, sinks: v.sinks };
    }
    let window = layerWindow(c, l), sinks = 0;
    if (view.window !== undefined) {
      window = window > 0 ? Math.min(window, view.window) : view.window;
      sinks = view.sinks ?? 0;
    }
    let heads = b.attn.subarray(0, c.nHeads * Dh);
    if (Hq > 0) {
      const out = rl ? b.qg.subarray(0, Hq * Dh) : heads;
      k.attention(qr, view.k, view.v, 1, 1, view.S, Hq, Hkv, Dh, attnScaleOf(c), 1, view.qOffset, window, sinks,
        out, b.lse, NONE);
      if (rl) heads = this.mergeRecurrent(l, rl, lw.rec!, out, mem);
    } else {
      heads = this.mergeRecurrent(l, rl!, lw.rec!, b.qg.subarray(0, 0), mem);
    }
    matvec(lw.o, heads, b.proj);
    binary(BinaryOp.Add, b.x, this.outNorm(lw.attnOutNorm), D, b.x2, b);
    // MLP half: x += down(act(gate(norm(x))) * up(norm(x)))
    k.rmsnorm(b.x2, lw.mlpNorm, 1, D, c.normEps, b.h, b.rstd);
    const F = c.ffnDim;
    matvecMulti(lw.gateUp, b.h, [b.g, b.u]);
    k.unary(ACT[c.act], b.g, b.act);
    binary(BinaryOp.Mul, b.act, b.u, F, b.g, b);
    matvec(lw.down, b.g, b.proj);
    binary(BinaryOp.Add, b.x2, this.outNorm(lw.mlpOutNorm), D, b.x, b);
  }

  /** The branch output in b.proj, normalized by Gemma's post-norm when the layer has one (into b.h, free by then). */
  private outNorm(gain: Float32Array | null): Float32Array {
    const b = this.buf, c = this.m.cfg;
    if (!gain) return b.proj;
    K().rmsnorm(b.proj, gain, 1, c.dModel, c.normEps, b.h, b.rstd);
    return b.h;
  }

  /**
   * The recurrent heads of layer l on the normalized input (recurrentStep's fused path: two projection products,
   * softplus(dt + bias), the ssdStep kernel on a copy of the state, gate and per-head norm), merged with the
   * attention heads `att` into the original head order. Returns the (Hq * Dh) head outputs.
   */
  private mergeRecurrent(l: number, rl: RecurrentLayer, r: RecurrentRaw, att: Float32Array, mem: AttentionMemory): Float32Array {
    const c = this.m.cfg, b = this.buf, d: RecurrentDims = rl.dims, k = K();
    const D = c.dModel, Dh = c.headDim;
    const { nHeads: H, nGroups: G, P, N } = d;
    const { xbc, dtRaw, sum, dt, y } = r;
    const z = r.wz ? r.z : null;
    k.gemmMulti(1, D, b.h, 0, r.wx, r.nx, xbc.subarray(0, r.nx), r.wb, r.nb, xbc.subarray(r.nx, r.nx + r.nb), r.wc, r.nc,
      xbc.subarray(r.nx + r.nb));
    k.gemmMulti(1, D, b.h, 0, r.wdt, H, dtRaw, r.wz ?? NONE, r.nz, z ?? NONE, NONE, 0, NONE);
    binary(BinaryOp.Add, dtRaw, r.bdt, H, sum, b);
    k.unary(UnaryOp.Softplus, sum, dt);
    // the state is copied, not updated in place: the memory's previous state object stays as it was
    const prev = mem.recurrentState?.(l);
    const Hs = prev ? Float32Array.from(data(prev.H)) : new Float32Array(H * P * N);
    const convShape = [1, Math.max(0, d.convK - 1), channels(d)];
    const win = prev ? Float32Array.from(data(prev.conv)) : new Float32Array(convShape[1]! * convShape[2]!);
    k.ssdStep(xbc, dt, win, r.convW, r.convB, Hs, r.aLog, r.d, d.groupOf, 1, H, G, P, N, d.convK, y);
    let out = y;
    if (d.gate && z) {
      k.unary(UnaryOp.Silu, z, r.normed); // silu(z), then y * silu(z)
      binary(BinaryOp.Mul, y, r.normed, y.length, r.gated, b);
      out = r.gated;
    }
    if (d.norm) {
      k.rmsnorm(out, r.normW, H, P, d.normEps, r.normed, r.rstd);
      out = r.normed;
    }
    mem.setRecurrentState?.(l, {
      H: T.tensor(Hs, [1, H, P, N]),
      conv: T.tensor(win, convShape),
    });
    // slot h of the output reads entry merge[h] of [attention heads..., recurrent heads...]
    const nKept = rl.keptHeads.length, heads = this.buf.heads.subarray(0, c.nHeads * Dh);
    for (let h = 0; h < c.nHeads; h++) {
      const j = rl.merge[h]!;
      heads.set(j < nKept ? att.subarray(j * Dh, (j + 1) * Dh) : out.subarray((j - nKept) * Dh, (j - nKept + 1) * Dh), h * Dh);
    }
    return heads;
  }
}
