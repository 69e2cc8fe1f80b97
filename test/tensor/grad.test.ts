/** Every differentiable op's gradient against central finite differences, on every available backend. */
import { Rng, tensor, type Tensor } from '../../src/tensor/index.js';
import * as T from '../../src/tensor/index.js';
import { testBothBackends } from '../helpers/backends.js';
import { gradcheck, randTensor } from '../helpers/gradcheck.js';

const rng = new Rng(1234);
const r = (shape: number[], lo = -1, hi = 1): Tensor => randTensor(shape, rng, lo, hi);
/** Values in +-[0.2, 1]: keeps kinks (abs, relu, max) away from the finite-difference step. */
function awayFromZero(shape: number[]): Tensor {
  const t = r(shape, 0.2, 1);
  const d = t.data;
  for (let i = 0; i < d.length; i++) if (rng.next() < 0.5) d[i] = -d[i]!;
  return t;
}

testBothBackends('grad: broadcast add/sub/mul/div', () => {
  gradcheck('add', T.add, [r([2, 3, 4]), r([3, 1])]);
  gradcheck('sub', T.sub, [r([2, 1, 4]), r([2, 3, 4])]);
  gradcheck('mul', T.mul, [r([3, 4]), r([4])]);
  gradcheck('div', T.div, [r([2, 5]), r([2, 1], 0.5, 2)]);
  gradcheck('mul scalar-shaped', T.mul, [r([]), r([2, 3])]);
  gradcheck('maximum', T.maximum, [awayFromZero([4, 3]), awayFromZero([4, 3])]);
});

testBothBackends('grad: unary ops', () => {
  const x = (): Tensor => awayFromZero([3, 7]);
  const pos = (): Tensor => r([3, 7], 0.5, 2);
  for (const [name, f, mk] of [
    ['neg', T.neg, x], ['exp', T.exp, x], ['log', T.log, pos], ['sqrt', T.sqrt, pos], ['rsqrt', T.rsqrt, pos],
    ['silu', T.silu, x], ['gelu', T.gelu, x], ['geluErf', T.geluErf, x], ['sigmoid', T.sigmoid, x],
    ['softplus', T.softplus, x], ['relu', T.relu, x], ['square', T.square, x], ['abs', T.abs, x], ['tanh', T.tanh, x],
  ] as [string, (t: Tensor) => Tensor, () => Tensor][]) {
    gradcheck(name, f, [mk()]);
  }
  gradcheck('affine', (t) => T.affine(t, -1.5, 0.25), [x()]);
});

testBothBackends('grad: reductions, softmax, cumsum', () => {
  gradcheck('sum all', (t) => T.sum(t), [r([3, 4])]);
  gradcheck('sum axis 1', (t) => T.sum(t, 1), [r([2, 3, 4])]);
  gradcheck('mean axis -1 keepDim', (t) => T.mean(t, -1, { keepDim: true }), [r([2, 3, 5])]);
  gradcheck('max axis 0', (t) => T.max(t, 0), [r([5, 3])]);
  gradcheck('logsumexp axis 1', (t) => T.logsumexp(t, 1), [r([2, 6, 3])]);
  gradcheck('softmax', T.softmax, [r([3, 7], -2, 2)]);
  gradcheck('logSoftmax', T.logSoftmax, [r([4, 5], -2, 2)]);
  gradcheck('cumsum axis 1', (t) => T.cumsum(t, 1), [r([2, 5, 3])]);
  gradcheck('cumsum reverse', (t) => T.cumsum(t, 0, true), [r([6, 2])]);
});

testBothBackends('grad: matmul with transposes, batches and broadcast', () => {
  gradcheck('2d', (a, b) => T.matmul(a, b), [r([3, 4]), r([4, 5])]);
  gradcheck('transA', (a, b) => T.matmul(a, b, { transA: true }), [r([4, 3]), r([4, 5])]);
  gradcheck('transB', (a, b) => T.matmul(a, b, { transB: true }), [r([3, 4]), r([5, 4])]);
  gradcheck('transA transB', (a, b) => T.matmul(a, b, { transA: true, transB: true }), [r([4, 3]), r([5, 4])]);
  gradcheck('batched', (a, b) => T.matmul(a, b), [r([2, 3, 4]), r([2, 4, 2])]);
  gradcheck('b broadcast', (a, b) => T.matmul(a, b, { transB: true }), [r([2, 3, 4]), r([5, 4])]);
  gradcheck('a broadcast', (a, b) => T.matmul(a, b), [r([3, 4]), r([2, 4, 5])]);
  gradcheck('transposed view', (a, b) => T.matmul(T.transpose(a), b), [r([4, 3]), r([4, 2])]);
  gradcheck('batched transA', (a, b) => T.matmul(a, b, { transA: true }), [r([2, 4, 3]), r([2, 4, 2])]);
  gradcheck('linear with bias', (x, w, b) => T.linear(x, w, b), [r([2, 3, 4]), r([5, 4]), r([5])]);
});

testBothBackends('grad: embedding, norms, rope', () => {
  const ids = Int32Array.of(3, 0, 3, 5, 1, 3);
  gradcheck('embedding', (w) => T.embedding(w, ids, [2, 3]), [r([6, 4])]);
  gradcheck('rmsnorm', (x, w) => T.rmsnorm(x, w, 1e-5), [r([3, 8]), r([8], 0.5, 1.5)]);
  gradcheck('rmsnorm no weight', (x) => T.rmsnorm(x, null, 1e-5), [r([2, 5])]);
  gradcheck('layernorm', (x, w, b) => T.layernorm(x, w, b, 1e-5), [r([3, 6]), r([6], 0.5, 1.5), r([6])]);
  gradcheck('layernorm no affine', (x) => T.layernorm(x, null, null, 1e-5), [r([2, 7])]);
  for (const style of ['interleaved', 'half'] as const) {
    const opts = { positions: Int32Array.of(0, 3, 7), invFreq: T.ropeInvFreq(4, 100), style };
    gradcheck(`rope ${style} partial`, (x) => T.rope(x, opts), [r([2, 3, 2, 6])]);
  }
});

testBothBackends('grad: cross-entropy (mean, sum, none, ignoreIndex)', () => {
  const targets = Int32Array.of(1, 4, -100, 0, 2, 4);
  gradcheck('ce mean', (x) => T.crossEntropy(x, targets), [r([6, 5], -2, 2)]);
  gradcheck('ce sum', (x) => T.crossEntropy(x, targets, { reduction: 'sum' }), [r([2, 3, 5], -2, 2)]);
  gradcheck('ce none', (x) => T.crossEntropy(x, targets, { reduction: 'none' }), [r([6, 5], -2, 2)]);
});

testBothBackends('grad: depthwise causal conv1d', () => {
  gradcheck('conv1d bias', (x, w, b) => T.conv1dCausal(x, w, b), [r([2, 5, 3]), r([3, 4]), r([3])]);
  gradcheck('conv1d no bias', (x, w) => T.conv1dCausal(x, w), [r([1, 3, 2]), r([2, 4])]);
});

testBothBackends('grad: fused attention (causal, GQA, window, sinks, offset)', () => {
  const cases: [string, number, number, number, number, number, T.AttentionOpts][] = [
    // label, B, T, S, Hq, Hkv, opts
    ['causal MHA', 1, 5, 5, 2, 2, {}],
    ['causal GQA', 2, 4, 4, 4, 2, {}],
    ['window+sinks', 1, 7, 7, 2, 1, { window: 3, sinks: 1 }],
    ['cached queries', 1, 3, 6, 2, 2, { qOffset: 3 }],
    ['bidirectional', 1, 3, 4, 2, 1, { causal: false }],
  ];
  for (const [label, B, Tq, S, Hq, Hkv, opts] of cases) {
    const Dh = 3;
    gradcheck(`attention ${label}`, (q, k, v) => T.attention(q, k, v, opts).out,
      [r([B, Tq, Hq, Dh]), r([B, S, Hkv, Dh]), r([B, S, Hkv, Dh])]);
  }
});

testBothBackends('grad: views and data movement', () => {
  gradcheck('reshape', (x) => T.mul(T.reshape(x, [3, -1]), T.reshape(x, [3, 4])), [r([2, 6])]);
  gradcheck('transpose', (x) => T.contiguous(T.transpose(x, 0, 2)), [r([2, 3, 4])]);
  gradcheck('permute + mul', (x, y) => T.mul(T.permute(x, [2, 0, 1]), y), [r([2, 3, 4]), r([4, 2, 3])]);
  gradcheck('slice', (x) => T.slice(x, 1, 1, 3), [r([2, 4, 3])]);
  gradcheck('concat', (a, b) => T.concat([a, b], 1), [r([2, 2, 3]), r([2, 1, 3])]);
  gradcheck('gather repeated', (x) => T.gather(x, 1, [2, 0, 2]), [r([2, 3, 2])]);
  gradcheck('unsqueeze/squeeze', (x) => T.squeeze(T.unsqueeze(x, 1), 1), [r([3, 2])]);
  gradcheck('tensor used twice', (x) => T.add(T.mul(x, x), x), [r([5])]);
});

testBothBackends('grad: custom op (x^3 with a hand-written backward)', () => {
  const cube: T.CustomOp<Float32Array> = {
    name: 'cube',
    forward([x]) {
      const xd = Float32Array.from(x!.data);
      const out = tensor(xd.map((v) => v * v * v), x!.shape);
      return { outputs: [out], saved: xd };
    },
    backward([g], xd) {
      const gd = g!.data;
      return [tensor(gd.map((v, i) => 3 * xd[i]! * xd[i]! * v), [gd.length])];
    },
  };
  gradcheck('custom cube', (x) => T.applyCustom(cube, [x])[0]!, [r([6])]);
});

testBothBackends('gradcheck itself fails on a wrong backward', () => {
  const wrong: T.CustomOp<null> = {
    name: 'wrongDouble',
    forward([x]) {
      return { outputs: [tensor(x!.data.map((v) => 2 * v), x!.shape)], saved: null };
    },
    backward([g]) {
      return [tensor(g!.data.map((v) => 2.1 * v), g!.shape)];
    },
  };
  let threw = false;
  try {
    gradcheck('wrong', (x) => T.applyCustom(wrong, [x])[0]!, [r([4])]);
  } catch (e) {
    threw = /allowance/.test((e as Error).message);
  }
  if (!threw) throw new Error('gradcheck accepted a backward that is 5% off');
});
