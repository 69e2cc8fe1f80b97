/**
 * The recurrent head (Mamba-2 / SSD style) that replaces a recency-aware attention head.
 *
 * Glossary (code name -> paper symbol), per replaced query head h of a layer, at time t:
 *   u      u_t        the layer's normalized input (d_model), the same input attention saw
 *   x      x_t        W_x u_t, head dim P (fills the head's slot in front of o_proj)
 *   bIn    B_t        W_B u_t, state dim N, shared by the heads of one KV group
 *   cIn    C_t        W_C u_t, state dim N, per head
 *   conv               short causal depthwise conv (kernel K) + SiLU on x, B and C
 *   dt     dt_t       softplus(w_dt . u_t + b_dt), a positive step size per head
 *   aLog   A_log      per-head decay rate: a_t = exp(-exp(A_log) dt_t) in (0, 1)
 *   H      H_t        state P x N: H_t = a_t H_{t-1} + dt_t x_t B_t^T
 *   y      y_t        H_t C_t + D x_t, optionally gated by silu(z_t) and RMS-normalized per head
 *
 * Two forms with one semantics (tested against each other, values and gradients):
 *   chunked (prefill, training): the sequence is cut into chunks of length L; inside a chunk the output is a masked
 *     matmul (C B^T * decay) (dt x), across chunks a state is passed sequentially (the SSD algorithm);
 *   step (decode): the recurrence above, one token at a time, with the conv's last K-1 inputs kept as state.
 * Everything is written with engine ops, so autograd provides the backward pass of both forms.
 */
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import { ArgumentError, ShapeError } from '../tensor/errors.js';
import { needsGrad } from '../tensor/autograd.js';
import { K } from '../tensor/backend.js';
import { HalfWeight, linearW, multiProduct } from './weights.js';
import { channels, type RecurrentDims } from './layout.js';
import type { RecurrentState } from './stores.js';

export type { RecurrentDims } from './layout.js';
export type { RecurrentState } from './stores.js';

/**
 * A projection of the recurrent heads: float32 (trainable), or held 16-bit like the model's other matrices (a BF16
 * model's decode reads its recurrent projections at 2 bytes a value, as it reads q/k/v; training widens them).
 */
export type Projection = Tensor | HalfWeight;

/** Parameters of all replaced heads of one layer (shapes in nn.Linear (out, in) layout). */
export interface RecurrentParams {
  wx: Projection; // (nHeads * P, D)
  wb: Projection; // (nGroups * N, D)
  wc: Projection; // (nHeads * N, D)
  convW: Tensor; // (nHeads * P + nGroups * N + nHeads * N, K)
  convB: Tensor; // (same channels)
  wdt: Projection; // (nHeads, D)
  bdt: Tensor; // (nHeads)
  aLog: Tensor; // (nHeads)
  d: Tensor; // (nHeads)
  wz?: Projection; // (nHeads * P, D) when gate
  normW?: Tensor; // (P) shared per-head RMSNorm gain when norm
  mix?: Tensor; // (nHeads) recurrent+window groups: the weight of each head's recurrent read-out
}

/** The float32 tensors among a layer's parameters (what can require a gradient). */
function tensorsOf(p: RecurrentParams): Tensor[] {
  return Object.values(p).filter((t): t is Tensor => t instanceof T.Tensor);
}

/** Whether projections can share one fused product: all float32, or all 16-bit of one kind. */
function oneKind(ws: readonly (Projection | undefined)[]): boolean {
  const w0 = ws[0];
  return ws.every((w) => w === undefined || (w instanceof HalfWeight ? w0 instanceof HalfWeight && w.kind === w0.kind : !(w0 instanceof HalfWeight)));
}

/** x @ w^T for one projection: the engine's linear for float32 (with autograd), the 16-bit product otherwise. */
function proj(u: Tensor, w: Projection): Tensor {
  return w instanceof HalfWeight ? linearW(u, w) : T.linear(u, w);
}

export function zeroState(d: RecurrentDims, B: number): RecurrentState {
  return { H: T.zeros([B, d.nHeads, d.P, d.N]), conv: T.zeros([B, Math.max(0, d.convK - 1), channels(d)]) };
}

/**
 * ys_i = x W_i^T for one token's row x (D): one fused product when the projections are of one kind, one product each
 * otherwise. Graph mode's single-token path and step mode (step-ops.ts) both project through here, so they agree bit
 * for bit.
 */
export function projectRow(x: Float32Array, ws: readonly Projection[], ys: readonly Float32Array[]): void {
  if (oneKind(ws)) multiProduct(1, x, ws, ys);
  else ws.forEach((w, i) => multiProduct(1, x, [w], [ys[i]!]));
}

/** The projections before the conv: (B, T, channels) = [x | B | C] and dt (B, T, nHeads). */
function project(u: Tensor, p: RecurrentParams): { xbc: Tensor; dt: Tensor; z: Tensor | null } {
  const D = u.shape[2]!;
  if (u.size === D && !needsGrad([u, ...tensorsOf(p)])) {
    // one token without gradients (decode): two fused products, x | B | C written straight into one row
    const nx = p.wx.shape[0]!, nb = p.wb.shape[0]!, nc = p.wc.shape[0]!;
    const xbc = T.empty([...u.shape.slice(0, 2), nx + nb + nc]);
    const ud = T.contiguous(u).data, row = xbc.data;
    projectRow(ud, [p.wx, p.wb, p.wc], [row.subarray(0, nx), row.subarray(nx, nx + nb), row.subarray(nx + nb)]);
    const dtRaw = T.empty([...u.shape.slice(0, 2), p.wdt.shape[0]!]);
    const z = p.wz ? T.empty([...u.shape.slice(0, 2), p.wz.shape[0]!]) : null;
    projectRow(ud, p.wz ? [p.wdt, p.wz] : [p.wdt], z ? [dtRaw.data, z.data] : [dtRaw.data]);
    return { xbc, dt: T.softplus(T.add(dtRaw, p.bdt)), z };
  }
  const xbc = T.concat([proj(u, p.wx), proj(u, p.wb), proj(u, p.wc)], 2);
  const dt = T.softplus(T.add(proj(u, p.wdt), p.bdt));
  const z = p.wz ? proj(u, p.wz) : null;
  return { xbc, dt, z };
}

/** Splits the conv output into x (B,T,H,P), B expanded to heads (B,T,H,N) and C (B,T,H,N). */
function split(xbc: Tensor, d: RecurrentDims, Bn: number, Tn: number): { x: Tensor; b: Tensor; c: Tensor } {
  const { nHeads: H, nGroups: G, P, N } = d;
  const x = T.reshape(T.slice(xbc, 2, 0, H * P), [Bn, Tn, H, P]);
  const bg = T.reshape(T.slice(xbc, 2, H * P, H * P + G * N), [Bn, Tn, G, N]);
  const b = T.gather(bg, 2, d.groupOf); // (B, T, H, N): each head reads its group's B
  const c = T.reshape(T.slice(xbc, 2, H * P + G * N, H * P + G * N + H * N), [Bn, Tn, H, N]);
  return { x, b, c };
}

/** Output gate and per-head RMSNorm, then flatten heads: (B, T, H, P) -> (B, T, H * P). */
function finish(y: Tensor, z: Tensor | null, d: RecurrentDims, p: RecurrentParams, Bn: number, Tn: number): Tensor {
  let out = y;
  if (d.gate && z) out = T.mul(out, T.silu(T.reshape(z, [Bn, Tn, d.nHeads, d.P])));
  if (d.norm) out = T.rmsnorm(out, p.normW ?? null, d.normEps);
  return T.reshape(out, [Bn, Tn, d.nHeads * d.P]);
}

function checkInput(u: Tensor, p: RecurrentParams, d: RecurrentDims): void {
  if (u.rank !== 3) throw new ShapeError('recurrentHead', 'u', '[batch, time, d_model]', u.shape);
  const D = u.shape[2]!;
  if (p.wx.shape[0] !== d.nHeads * d.P || p.wx.shape[1] !== D) {
    throw new ShapeError('recurrentHead', 'wx', `[${d.nHeads * d.P}, ${D}]`, p.wx.shape);
  }
  if (d.groupOf.length !== d.nHeads) throw new ArgumentError('recurrentHead', 'groupOf', `needs ${d.nHeads} entries`);
}

/** Decay exponent per step: log a_t = -exp(A_log) * dt_t, shape like dt (B, T, H). */
function logDecay(dt: Tensor, aLog: Tensor): Tensor {
  return T.mul(T.neg(T.exp(aLog)), dt);
}

/**
 * Chunked SSD form over a whole sequence. u: (B, T, D) -> y (B, T, nHeads * P), plus the final state.
 * `state` (optional) is the state before the first token (prefill after earlier tokens).
 */
export function recurrentChunked(u: Tensor, p: RecurrentParams, d: RecurrentDims, chunk: number,
  state?: RecurrentState): { y: Tensor; state: RecurrentState } {
  checkInput(u, p, d);
  if (!(Number.isInteger(chunk) && chunk >= 1)) throw new ArgumentError('recurrentChunked', 'chunk', `= ${chunk} must be a positive integer`);
  const [Bn, Tn] = u.shape as [number, number, number];
  const { nHeads: H, P, N } = d;
  const st = state ?? zeroState(d, Bn);
  const { xbc, dt: dtRaw, z } = project(u, p);
  // causal conv with the carried-in window prepended, then SiLU
  const Km1 = Math.max(0, d.convK - 1);
  const withPast = Km1 > 0 ? T.concat([st.conv, xbc], 1) : xbc; // (B, K-1+T, C)
  const convOut = T.silu(T.conv1dCausal(withPast, p.convW, p.convB));
  const conv = Km1 > 0 ? T.slice(convOut, 1, Km1, Km1 + Tn) : convOut;
  const newConv = Km1 > 0 ? T.contiguous(T.slice(withPast, 1, Tn, Tn + Km1)) : st.conv;
  const { x, b, c } = split(T.contiguous(conv), d, Bn, Tn);

  // pad time to a multiple of the chunk: dt = 0 there, so a = 1 and nothing enters the state
  const L = Math.min(chunk, Math.max(1, Tn));
  const nC = Math.ceil(Tn / L);
  const Tp = nC * L;
  const pad = (t: Tensor, tail: number[]): Tensor => (Tp === Tn ? t : T.concat([t, T.zeros([Bn, Tp - Tn, ...tail])], 1));
  const xP = pad(x, [H, P]), bP = pad(b, [H, N]), cP = pad(c, [H, N]), dtP = pad(dtRaw, [H]);

  // to (B, H, nC, L, .) for batched matmuls per (batch, head, chunk)
  const toChunks = (t: Tensor, last: number): Tensor =>
    T.contiguous(T.permute(T.reshape(t, [Bn, nC, L, H, last]), [0, 3, 1, 2, 4]));
  const xc = toChunks(xP, P), bc = toChunks(bP, N), cc = toChunks(cP, N);
  const dtc = T.reshape(toChunks(T.reshape(dtP, [Bn, Tp, H, 1]), 1), [Bn, H, nC, L]);
  const la = logDecay(dtc, T.reshape(p.aLog, [1, H, 1, 1])); // (B, H, nC, L)
  const cs = T.cumsum(la, 3); // within-chunk cumulative log decay
  const dtx = T.mul(xc, T.unsqueeze(dtc, 4)); // (B, H, nC, L, P)

  // intra-chunk: y_t += sum_{s<=t} (C_t . B_s) exp(cs_t - cs_s) dt_s x_s
  const diff = T.sub(T.unsqueeze(cs, 4), T.unsqueeze(cs, 3)); // (B, H, nC, L, L): cs_t - cs_s
  const decay = T.exp(T.add(diff, causalMask(L)));
  const scores = T.mul(T.matmul(cc, bc, { transB: true }), decay); // (B, H, nC, L, L)
  const yIntra = T.matmul(scores, dtx); // (B, H, nC, L, P)

  // chunk summaries: S_c = sum_s exp(cs_last - cs_s) dt_s x_s B_s^T  (B, H, nC, P, N)
  const last = T.slice(cs, 3, L - 1, L); // (B, H, nC, 1)
  const wEnd = T.exp(T.sub(last, cs)); // (B, H, nC, L)
  const sC = T.matmul(T.mul(dtx, T.unsqueeze(wEnd, 4)), bc, { transA: true }); // (B, H, nC, P, N)
  const chunkDecay = T.exp(last); // (B, H, nC, 1)

  // inter-chunk recurrence (sequential over chunks): H_in[c] is the state entering chunk c
  const hIns: Tensor[] = [];
  let h = st.H; // (B, H, P, N)
  for (let ci = 0; ci < nC; ci++) {
    hIns.push(T.unsqueeze(h, 2));
    const a = T.reshape(T.slice(chunkDecay, 2, ci, ci + 1), [Bn, H, 1, 1]);
    h = T.add(T.mul(h, a), T.reshape(T.slice(sC, 2, ci, ci + 1), [Bn, H, P, N]));
  }
  const hIn = nC === 1 ? hIns[0]! : T.concat(hIns, 2); // (B, H, nC, P, N)
  // y_t += exp(cs_t) H_in C_t
  const yInter = T.mul(T.matmul(cc, hIn, { transB: true }), T.unsqueeze(T.exp(cs), 4)); // (B, H, nC, L, P)

  const yc = T.add(yIntra, yInter);
  let y = T.reshape(T.permute(yc, [0, 2, 3, 1, 4]), [Bn, Tp, H, P]); // back to (B, T', H, P)
  if (Tp !== Tn) y = T.slice(y, 1, 0, Tn);
  y = T.add(y, T.mul(x, T.reshape(p.d, [1, 1, H, 1]))); // D skip
  return { y: finish(T.contiguous(y), z, d, p, Bn, Tn), state: { H: h, conv: newConv } };
}

/**
 * Inference path of the step form: the conv, decay, state update and readout in one `ssdStep` kernel call (the
 * op-by-op path below costs ~30 engine calls per layer and token). The state is copied, never updated in place.
 */
function fusedStep(xbc: Tensor, dt: Tensor, z: Tensor | null, p: RecurrentParams, d: RecurrentDims, state: RecurrentState,
  Bn: number): { y: Tensor; state: RecurrentState } {
  const { nHeads: H, nGroups: G, P, N } = d;
  const Hs = T.tensor(T.contiguous(state.H).data.slice(), state.H.shape);
  const win = T.tensor(T.contiguous(state.conv).data.slice(), state.conv.shape);
  const y = T.empty([Bn, H * P]);
  K().ssdStep(T.contiguous(xbc).data, T.contiguous(dt).data, win.data, T.contiguous(p.convW).data, T.contiguous(p.convB).data,
    Hs.data, T.contiguous(p.aLog).data, T.contiguous(p.d).data, d.groupOf, Bn, H, G, P, N, d.convK, y.data);
  return { y: finish(T.reshape(y, [Bn, 1, H, P]), z, d, p, Bn, 1), state: { H: Hs, conv: win } };
}

const maskCache = new Map<number, Tensor>();

/** (L, L) additive mask: 0 on and below the diagonal, -Infinity above (future positions). */
function causalMask(L: number): Tensor {
  let m = maskCache.get(L);
  if (!m) {
    const data = new Float32Array(L * L);
    for (let t = 0; t < L; t++) for (let s = t + 1; s < L; s++) data[t * L + s] = -Infinity;
    m = T.tensor(data, [L, L]);
    maskCache.set(L, m);
  }
  return m;
}

/** Step form: one token u (B, 1, D) and the previous state -> y (B, 1, nHeads * P) and the next state. */
export function recurrentStep(u: Tensor, p: RecurrentParams, d: RecurrentDims, state: RecurrentState): { y: Tensor; state: RecurrentState } {
  checkInput(u, p, d);
  const [Bn, Tn] = u.shape as [number, number, number];
  if (Tn !== 1) throw new ShapeError('recurrentStep', 'u', '[batch, 1, d_model]', u.shape, 'use recurrentChunked for several tokens');
  const { nHeads: H, P, N } = d;
  const { xbc, dt, z } = project(u, p);
  if (!needsGrad([u, ...tensorsOf(p), state.H, state.conv])) {
    return fusedStep(xbc, dt, z, p, d, state, Bn);
  }
  const Km1 = Math.max(0, d.convK - 1);
  const window = Km1 > 0 ? T.concat([state.conv, xbc], 1) : xbc; // (B, K, C): the conv sees exactly its kernel
  // conv output at the last position: sum_k w[c, k] * window[k, c] + bias
  const convW = T.transpose(p.convW); // (K, C)
  const conv = T.silu(T.add(T.sum(T.mul(window, T.unsqueeze(convW, 0)), 1, { keepDim: true }), p.convB)); // (B, 1, C)
  const newConv = Km1 > 0 ? T.contiguous(T.slice(window, 1, 1, Km1 + 1)) : state.conv;
  const { x, b, c } = split(T.contiguous(conv), d, Bn, 1);
  const x2 = T.reshape(x, [Bn, H, P, 1]);
  const b2 = T.reshape(b, [Bn, H, 1, N]);
  const c2 = T.reshape(c, [Bn, H, N, 1]);
  const dt2 = T.reshape(dt, [Bn, H, 1, 1]);
  const a = T.exp(logDecay(dt2, T.reshape(p.aLog, [1, H, 1, 1]))); // (B, H, 1, 1)
  const Hn = T.add(T.mul(state.H, a), T.mul(T.matmul(x2, b2), dt2)); // a H + dt x B^T
  let y = T.reshape(T.matmul(Hn, c2), [Bn, 1, H, P]); // H C
  y = T.add(y, T.mul(T.reshape(x, [Bn, 1, H, P]), T.reshape(p.d, [1, 1, H, 1])));
  return { y: finish(y, z, d, p, Bn, 1), state: { H: Hn, conv: newConv } };
}
