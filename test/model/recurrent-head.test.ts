/** The recurrent head's chunked SSD form equals its step form token by token: values, state and gradients. */
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { Rng, type Tensor } from '../../src/tensor/index.js';
import {
  recurrentChunked, recurrentStep, zeroState, type RecurrentDims, type RecurrentParams, type RecurrentState,
} from '../../src/model/recurrent-head.js';
import { channels } from '../../src/model/layout.js';
import { HalfWeight } from '../../src/model/weights.js';
import { f32ArrayToBf16 } from '../../src/io/tensor-file.js';
import { testBothBackends } from '../helpers/backends.js';
import { TOL, assertClose } from '../helpers/tolerances.js';
import { gradcheck } from '../helpers/gradcheck.js';

const D = 12;

function dims(over: Partial<RecurrentDims> = {}): RecurrentDims {
  return {
    nHeads: 3, nGroups: 2, groupOf: Int32Array.of(0, 0, 1), P: 4, N: 5, convK: 4, gate: true, norm: true, normEps: 1e-5,
    ...over,
  };
}

/** Parameters whose projections are float32 tensors (trainable, so gradients can be checked). */
type F32Params = RecurrentParams & { wx: Tensor; wb: Tensor; wc: Tensor; wdt: Tensor; wz?: Tensor };

function params(d: RecurrentDims, seed: number): F32Params {
  const rng = new Rng(seed);
  const r = (shape: number[], s = 0.3): Tensor => T.randn(shape, rng, s).param();
  const C = channels(d);
  return {
    wx: r([d.nHeads * d.P, D]), wb: r([d.nGroups * d.N, D]), wc: r([d.nHeads * d.N, D]),
    convW: r([C, d.convK], 0.5), convB: r([C], 0.1), wdt: r([d.nHeads, D]), bdt: r([d.nHeads], 0.5),
    aLog: r([d.nHeads], 0.5), d: r([d.nHeads], 0.5),
    ...(d.gate ? { wz: r([d.nHeads * d.P, D]) } : {}),
    ...(d.norm ? { normW: T.add(T.ones([d.P]), T.randn([d.P], rng, 0.1)).param() } : {}),
  };
}

function stepAll(u: Tensor, p: RecurrentParams, d: RecurrentDims, s0?: RecurrentState): { y: Tensor; state: RecurrentState } {
  const [B, Tn] = u.shape as [number, number, number];
  let st = s0 ?? zeroState(d, B);
  const ys: Tensor[] = [];
  for (let t = 0; t < Tn; t++) {
    const r = recurrentStep(T.slice(u, 1, t, t + 1), p, d, st);
    ys.push(r.y);
    st = r.state;
  }
  return { y: T.concat(ys, 1), state: st };
}

function paramList(p: RecurrentParams): Tensor[] {
  return Object.values(p).filter((t): t is Tensor => t !== undefined);
}

const VARIANTS: [string, RecurrentDims][] = [
  ['gate + norm, GQA groups', dims()],
  ['plain (no gate, no norm)', dims({ gate: false, norm: false })],
  ['conv width 1, one group', dims({ convK: 1, nGroups: 1, groupOf: Int32Array.of(0, 0, 0) })],
];

for (const [name, d] of VARIANTS) {
  testBothBackends(`chunked == step, values and state, for chunk sizes 1..16 and odd lengths: ${name}`, () => {
    const rng = new Rng(3);
    const p = params(d, 1);
    for (const Tn of [1, 7, 11]) {
      const u = T.randn([2, Tn, D], rng);
      const ref = T.noGrad(() => stepAll(u, p, d));
      for (const chunk of [1, 3, 4, 16]) {
        const got = T.noGrad(() => recurrentChunked(u, p, d, chunk));
        assertClose(got.y.toArray(), ref.y.toArray(), TOL.parity, `${name} T=${Tn} chunk=${chunk}: y`);
        assertClose(got.state.H.toArray(), ref.state.H.toArray(), TOL.parity, `T=${Tn} chunk=${chunk}: H`);
        assertClose(got.state.conv.toArray(), ref.state.conv.toArray(), TOL.parity, `T=${Tn} chunk=${chunk}: conv`);
      }
    }
  });
}

testBothBackends('chunked prefill in two calls (carrying the state) == one call', () => {
  const d = dims();
  const p = params(d, 2);
  const u = T.randn([1, 13, D], new Rng(8));
  T.noGrad(() => {
    const whole = recurrentChunked(u, p, d, 4);
    const a = recurrentChunked(T.slice(u, 1, 0, 6), p, d, 4);
    const b = recurrentChunked(T.slice(u, 1, 6, 13), p, d, 4, a.state);
    assertClose(T.concat([a.y, b.y], 1).toArray(), whole.y.toArray(), TOL.parity, 'split prefill');
    const c = stepAll(T.slice(u, 1, 6, 13), p, d, a.state);
    assertClose(c.y.toArray(), b.y.toArray(), TOL.parity, 'prefill then decode');
  });
});

testBothBackends('chunked and step forms have the same gradients for every parameter and the input', () => {
  const d = dims();
  const rng = new Rng(5);
  const u = T.randn([2, 9, D], rng).param();
  const p = params(d, 4);
  const r = T.randn([2, 9, d.nHeads * d.P], rng);
  const grads = (f: () => Tensor): number[][] => {
    for (const t of [u, ...paramList(p)]) t.grad = null;
    T.backward(T.sum(T.mul(f(), r)));
    return [u, ...paramList(p)].map((t) => t.grad!.toArray());
  };
  const gStep = grads(() => stepAll(u, p, d).y);
  for (const chunk of [2, 4, 9]) {
    const gChunk = grads(() => recurrentChunked(u, p, d, chunk).y);
    gChunk.forEach((g, i) => assertClose(g, gStep[i]!, TOL.parity, `chunk ${chunk}: gradient ${i}`));
  }
});

testBothBackends('chunked form gradient matches finite differences', () => {
  const d = dims({ nHeads: 2, nGroups: 1, groupOf: Int32Array.of(0, 0), P: 2, N: 3, convK: 3 });
  const p = params(d, 6);
  const u = T.randn([1, 5, D], new Rng(1));
  gradcheck('ssd chunked', (uu, aLog, bdt, wx) => recurrentChunked(uu, { ...p, aLog, bdt, wx }, d, 2).y,
    [u, p.aLog, p.bdt, p.wx]);
});

testBothBackends('without input the state decays by exactly a = exp(-exp(A_log) softplus(b_dt)) per step', () => {
  const d = dims({ gate: false, norm: false, convK: 1, nHeads: 1, nGroups: 1, groupOf: Int32Array.of(0) });
  const p = params(d, 9);
  p.convB.data.fill(0); // zero input -> zero x, B, C after the conv (silu(0) = 0)
  const rng = new Rng(2);
  const u = T.concat([T.randn([1, 1, D], rng), T.zeros([1, 10, D])], 1);
  const norm = (t: Tensor): number => Math.sqrt(t.toArray().reduce((s, v) => s + v * v, 0));
  T.noGrad(() => {
    const h1 = recurrentChunked(T.slice(u, 1, 0, 1), p, d, 4).state.H;
    const h11 = recurrentChunked(u, p, d, 4).state.H;
    const dt = Math.log1p(Math.exp(p.bdt.data[0]!));
    const a = Math.exp(-Math.exp(p.aLog.data[0]!) * dt);
    assert.ok(norm(h1) > 0);
    assert.ok(Math.abs(norm(h11) / norm(h1) - a ** 10) < 1e-4 * a ** 10, `decay ${norm(h11) / norm(h1)} vs ${a ** 10}`);
  });
});

testBothBackends('the fused inference step (one ssdStep kernel) equals the op-by-op step, state included', () => {
  for (const [name, d] of VARIANTS) {
    const p = params(d, 11);
    const rng = new Rng(12);
    let sOps = zeroState(d, 2), sFused = zeroState(d, 2);
    for (let t = 0; t < 5; t++) {
      const u = T.randn([2, 1, D], rng);
      // grad enabled + a parameter requiring grad -> the op-by-op path; noGrad -> the fused kernel
      const a = recurrentStep(u, p, d, sOps);
      const b = T.noGrad(() => recurrentStep(u, p, d, sFused));
      assertClose(b.y.toArray(), a.y.toArray(), TOL.parity, `${name} step ${t}: y`);
      assertClose(b.state.H.toArray(), a.state.H.toArray(), TOL.parity, `${name} step ${t}: H`);
      assertClose(b.state.conv.toArray(), a.state.conv.toArray(), TOL.parity, `${name} step ${t}: conv window`);
      sOps = { H: a.state.H.detach(), conv: a.state.conv.detach() };
      sFused = b.state;
    }
  }
});

testBothBackends('16-bit projections: the chunked form equals it on their float32 values, and the step form follows it', () => {
  for (const [name, d] of VARIANTS) {
    const p = params(d, 13);
    // the projections rounded to bf16 and held so (as a BF16 model's decode reads them), and the same values widened
    const half: RecurrentParams = { ...p }, wide: RecurrentParams = { ...p };
    for (const k of ['wx', 'wb', 'wc', 'wdt', 'wz'] as const) {
      const w = p[k];
      if (!w) continue;
      const h = new HalfWeight(w.shape, f32ArrayToBf16(w.data), k, 'bf16');
      half[k] = h;
      wide[k] = h.toTensor();
    }
    const u = T.randn([1, 11, D], new Rng(14)); // more rows than the direct 16-bit product takes: it widens, bit-exact
    const a = T.noGrad(() => recurrentChunked(u, half, d, 4)), b = T.noGrad(() => recurrentChunked(u, wide, d, 4));
    assert.deepEqual(a.y.toArray(), b.y.toArray(), `${name}: chunked`);
    const s = T.noGrad(() => stepAll(u, half, d));
    assertClose(s.y.toArray(), b.y.toArray(), TOL.parity, `${name}: step form`);
    assertClose(s.state.H.toArray(), b.state.H.toArray(), TOL.parity, `${name}: step state`);
  }
});
