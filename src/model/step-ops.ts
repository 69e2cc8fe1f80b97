/**
 * Step mode: the family's block (ops.ts) run for one token of batch 1 on preallocated rows through the vector
 * kernels (tensor/vec.ts), with no tensors and no tape. The same kernels with the same arguments as graph mode, so
 * the logits are bit-identical (test/model/decode-step.test.ts), while a step costs about 20 kernel calls per layer
 * instead of about 20 tensor ops each building shapes, strides, buffers and autograd checks. For small models that
 * overhead is most of a decode step (stories260K: ~60 us of ~70 us per layer); for large ones it is the gap between
 * the weight stream and the bandwidth bound (docs/performance.md).
 *
 * Rows come from an arena: the i-th allocation of a step gets the i-th buffer, made on the first step (the sequence
 * of allocations is the same every step), so a step allocates nothing. DecoderLM.forward uses this mode for one
 * new token with a memory, no gradients, no taps and no self-only queries.
 */
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import {
  vAdd, vAffine, vAttention, vGatherRows, vLayernorm, vMatvec, vMatvec16, vMatvecMulti, vMatvecQ, vMul, vRmsnorm, vRope, vSsdStep,
  vUnary, type MultiSlot,
} from '../tensor/vec.js';
import { attnScaleOf, type ModelConfig } from './config.js';
import { maskOf, type RecurrentLayer } from './attention.js';
import { projectRow } from './recurrent-head.js';
import { channels, type Layout } from './layout.js';
import type { Ops } from './ops.js';
import { storeOf, type KVRows, type ModelMemory } from './stores.js';
import { HalfWeight, QuantWeight, type Weight } from './weights.js';

let enabled = true;

/** Turns step mode on or off (tests compare it with graph mode); returns the previous setting. */
export function setFastDecode(on: boolean): boolean {
  const was = enabled;
  enabled = on;
  return was;
}

/** Whether a forward call can run in step mode. */
export function stepApplies(B: number, Tn: number, mem: ModelMemory | undefined, plain: boolean): boolean {
  return enabled && B === 1 && Tn === 1 && mem !== undefined && plain && !T.isGradEnabled();
}

const data = (t: Tensor): Float32Array => T.contiguous(t).data;
const NONE = new Float32Array(0);

/**
 * attention.ts's mixHeads on rows: out = att + (rec * mix[h]) per head of `width` values, rounded to float32 after
 * the product and after the sum as the engine's mul and add are, so step and graph mode agree bit for bit.
 */
function mixRows(att: Float32Array, rec: Float32Array, mix: Float32Array, width: number, out: Float32Array): void {
  for (let i = 0; i < rec.length; i++) out[i] = att[i]! + Math.fround(rec[i]! * mix[Math.floor(i / width)]!);
}

/** Rows [r0, r0 + n) of x @ w^T into the same rows of y, through the kernel of w's type. */
function matvecRows(w: Weight, r0: number, n: number, x: Float32Array, y: Float32Array): void {
  const [N, Kd] = w.shape as [number, number];
  const out = y.subarray(r0, r0 + n);
  if (w instanceof HalfWeight) vMatvec16(w.kind, w.data.subarray(r0 * Kd, (r0 + n) * Kd), n, Kd, x, out);
  else if (w instanceof QuantWeight) {
    const rowBytes = w.data.length / N;
    vMatvecQ(w.type, w.data.subarray(r0 * rowBytes, (r0 + n) * rowBytes), n, Kd, x, out);
  } else vMatvec(data(w).subarray(r0 * Kd, (r0 + n) * Kd), n, Kd, x, out);
}

export class StepOps implements Ops<Float32Array> {
  private readonly slots: Float32Array[] = [];
  private next = 0;
  private mem!: ModelMemory;
  private layout!: Layout;
  private readonly pos = new Int32Array(1);
  private readonly interleaved: boolean;

  constructor(private readonly cfg: ModelConfig, private readonly recurrent: ReadonlyMap<number, RecurrentLayer>,
    private readonly ropeFreq: (l: number) => Float32Array) {
    this.interleaved = cfg.ropeStyle === 'interleaved';
  }

  /** The i-th row of this step (made, or remade at a new size, on first use). */
  private row(n: number): Float32Array {
    let b = this.slots[this.next];
    if (!b || b.length !== n) this.slots[this.next] = b = new Float32Array(n);
    this.next++;
    return b;
  }

  /**
   * Runs `blocks` over the embedded token x0 (1, 1, D) at `position` with the memory; returns the residual stream
   * after the last block as a tensor (1, 1, D).
   */
  run(x0: Tensor, position: number, mem: ModelMemory, blocks: (o: StepOps, x: Float32Array) => Float32Array): Tensor {
    this.next = 0;
    this.mem = mem;
    this.layout = mem.layout;
    this.pos[0] = position;
    const x = blocks(this, Float32Array.from(data(x0)));
    return T.tensor(Float32Array.from(x), [1, 1, this.cfg.dModel]);
  }

  rmsnorm(x: Float32Array, w: Tensor): Float32Array {
    let g = data(w);
    if (this.cfg.normPlusOne) {
      const one = this.row(g.length);
      vAffine(g, 1, 1, one);
      g = one;
    }
    const out = this.row(x.length);
    vRmsnorm(x, g, g.length, this.cfg.normEps, out, this.row(x.length / g.length));
    return out;
  }

  layernorm(x: Float32Array, w: Tensor, b: Tensor | null): Float32Array {
    const rows = x.length / w.size, out = this.row(x.length);
    vLayernorm(x, data(w), b ? data(b) : null, this.cfg.normEps, out, this.row(rows), this.row(rows));
    return out;
  }

  linear(x: Float32Array, w: Weight, b: Tensor | null = null): Float32Array {
    const [N, Kd] = w.shape as [number, number];
    const y = this.row(N);
    if (w instanceof HalfWeight) vMatvec16(w.kind, w.data, N, Kd, x, y);
    else if (w instanceof QuantWeight) vMatvecQ(w.type, w.data, N, Kd, x, y);
    else vMatvec(data(w), N, Kd, x, y);
    return b ? this.add(y, data(b)) : y;
  }

  linearMulti(x: Float32Array, ws: readonly Weight[], bs: readonly (Tensor | null)[] = []): Float32Array[] {
    const half = ws[0] instanceof HalfWeight ? ws[0].kind : null;
    // one gemmMulti call when the weights are of one type (as linearMultiW), one product each otherwise
    if (ws.length > 3 || !ws.every((w) => (w instanceof HalfWeight ? w.kind === half : half === null && !(w instanceof QuantWeight)))) {
      return ws.map((w, i) => this.linear(x, w, bs[i] ?? null));
    }
    const slots: MultiSlot[] = ws.map((w) => ({ w: w instanceof HalfWeight ? w.data : data(w as Tensor), N: w.shape[0]!, y: this.row(w.shape[0]!) }));
    vMatvecMulti(1, ws[0]!.shape[1]!, x, half === null ? 0 : half === 'f16' ? 1 : 2, slots);
    return slots.map((s, i) => (bs[i] ? this.add(s.y, data(bs[i]!)) : s.y));
  }

  /**
   * The q/k/v products of layer l. Without pure recurrent groups, linearMulti. With them, only the row runs of the
   * heads and groups some other kind reads, one product per run (a row's value does not depend on the rows computed
   * with it), into rows that stay 0 elsewhere: a converted model's decode skips the q/k/v of its replaced heads.
   */
  qkv(l: number, x: Float32Array, ws: readonly [Weight, Weight, Weight], bs: readonly [Tensor | null, Tensor | null, Tensor | null]): Float32Array[] {
    const runs = this.layout.layers[l]!.qkvRuns;
    if (!runs) return this.linearMulti(x, ws, bs);
    const Dh = this.cfg.headDim, nRep = this.cfg.nHeads / this.cfg.nKvHeads;
    return ws.map((w, i) => {
      const y = this.row(w.shape[0]!);
      y.fill(0);
      const per = i === 0 ? nRep * Dh : Dh; // rows of one group: q has nRep heads a group
      for (const [g, n] of runs) matvecRows(w, g * per, n * per, x, y);
      return bs[i] ? this.add(y, data(bs[i]!)) : y;
    });
  }

  add(a: Float32Array, b: Float32Array): Float32Array {
    const out = this.row(a.length);
    vAdd(a, b, out);
    return out;
  }

  mul(a: Float32Array, b: Float32Array): Float32Array {
    const out = this.row(a.length);
    vMul(a, b, out);
    return out;
  }

  act(x: Float32Array): Float32Array {
    const out = this.row(x.length);
    vUnary(this.cfg.act, x, out);
    return out;
  }

  heads(x: Float32Array): Float32Array {
    return x;
  }

  flat(x: Float32Array): Float32Array {
    return x;
  }

  split(x: Float32Array, sizes: readonly number[]): Float32Array[] {
    let at = 0;
    return sizes.map((n) => x.subarray(at, (at += n)));
  }

  /** attention.ts's attend for one token: each kind of group through its store, the recurrent heads, the merge. */
  attend(l: number, h: Float32Array, q: Float32Array, k: Float32Array, v: Float32Array): Float32Array {
    const c = this.cfg, Dh = c.headDim, lay = this.layout.layers[l]!, stores = this.mem.layer(l);
    const parts = this.row(c.nHeads * Dh); // the kinds' heads in KINDS order
    let at = 0, headWindow: Float32Array | null = null;
    for (const kind of ['attention', 'window', 'recurrent+window'] as const) {
      const groups = lay.groups[kind];
      if (groups.length === 0) continue;
      const Hk = lay.heads[kind].length, Gk = groups.length;
      let qk = q, kk = k, vk = v;
      if (Gk !== c.nKvHeads) {
        vGatherRows(q, lay.heads[kind], Dh, (qk = this.row(Hk * Dh)));
        vGatherRows(k, groups, Dh, (kk = this.row(Gk * Dh)));
        vGatherRows(v, groups, Dh, (vk = this.row(Gk * Dh)));
      }
      const inv = this.ropeFreq(l);
      if (c.ropeStyle !== 'none') {
        const qr = this.row(Hk * Dh), kr = this.row(Gk * Dh);
        vRope(qk, qr, { heads: Hk, headDim: Dh, position: this.pos, invFreq: inv, interleaved: this.interleaved });
        vRope(kk, kr, { heads: Gk, headDim: Dh, position: this.pos, invFreq: inv, interleaved: this.interleaved });
        qk = qr;
        kk = kr;
      }
      const view: KVRows = storeOf(stores, kind)!.appendRow(kk, vk);
      const { window, sinks } = maskOf(lay, view);
      const out = kind === 'recurrent+window' ? (headWindow = this.row(Hk * Dh)) : parts.subarray(at, (at += Hk * Dh));
      vAttention(qk, view.k, view.v, out, {
        S: view.S, Hq: Hk, Hkv: Gk, headDim: Dh, scale: attnScaleOf(c), qOffset: view.qOffset, window, sinks, lse: this.row(Hk),
      });
    }
    if (lay.recurrent) {
      const rl = this.recurrent.get(l)!, y = this.recurrentHeads(rl, h, l);
      if (headWindow) mixRows(headWindow, y, data(rl.params.mix!), Dh, parts.subarray(at));
      else parts.set(y, at);
    }
    if (!lay.merge) return parts;
    const heads = this.row(c.nHeads * Dh);
    vGatherRows(parts, lay.merge, Dh, heads);
    return heads;
  }

  /**
   * The recurrent heads of layer l on the normalized input h (recurrentStep's fused path: two projection products,
   * softplus(dt + bias), the ssdStep kernel on a copy of the state, gate and per-head norm): (Hr * P) values.
   */
  private recurrentHeads(rl: RecurrentLayer, h: Float32Array, l: number): Float32Array {
    const p = rl.params, d = rl.dims, { nHeads: H, P, N } = d;
    // x | B | C written into one row (three slices), as the general path concatenates them
    const nx = p.wx.shape[0]!, nb = p.wb.shape[0]!, nc = p.wc.shape[0]!;
    const xbc = this.row(nx + nb + nc);
    projectRow(h, [p.wx, p.wb, p.wc], [xbc.subarray(0, nx), xbc.subarray(nx, nx + nb), xbc.subarray(nx + nb)]);
    const dtRaw = this.row(H);
    const z = p.wz ? this.row(p.wz.shape[0]!) : null;
    projectRow(h, p.wz ? [p.wdt, p.wz] : [p.wdt], z ? [dtRaw, z] : [dtRaw]);
    const dt = this.row(H);
    vUnary('softplus', this.add(dtRaw, data(p.bdt)), dt);
    // the state is copied, not updated in place: the store's previous state object stays as it was
    const store = this.mem.layer(l).recurrent!;
    const prev = store.get();
    const state = prev ? data(prev.H).slice() : new Float32Array(H * P * N);
    const convShape = [1, Math.max(0, d.convK - 1), channels(d)];
    const win = prev ? data(prev.conv).slice() : new Float32Array(convShape[1]! * convShape[2]!);
    let y = this.row(H * P);
    vSsdStep({ xbc, dt, win, convW: data(p.convW), convB: data(p.convB), state, aLog: data(p.aLog), d: data(p.d),
      groupOf: d.groupOf, H, G: d.nGroups, P, N, convK: d.convK }, y);
    if (d.gate && z) {
      const s = this.row(z.length);
      vUnary('silu', z, s); // silu(z), then y * silu(z)
      y = this.mul(y, s);
    }
    if (d.norm) {
      const out = this.row(y.length);
      vRmsnorm(y, p.normW ? data(p.normW) : NONE, P, d.normEps, out, this.row(H));
      y = out;
    }
    store.set({ H: T.tensor(state, [1, H, P, N]), conv: T.tensor(win, convShape) });
    return y;
  }
}
