/** Forward values of the front-end ops against naive definitions, views, typed errors. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as T from '../../src/tensor/index.js';
import { Rng, tensor } from '../../src/tensor/index.js';
import { testBothBackends } from '../helpers/backends.js';
import { randTensor } from '../helpers/gradcheck.js';
import { TOL, assertClose, closeness } from '../helpers/tolerances.js';

const rng = new Rng(99);

function naiveMatmul(a: number[], b: number[], M: number, K: number, N: number): number[] {
  const c = new Array<number>(M * N).fill(0);
  for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) for (let k = 0; k < K; k++) c[i * N + j]! += a[i * K + k]! * b[k * N + j]!;
  return c;
}

function transposeArr(a: number[], R: number, C: number): number[] {
  const t = new Array<number>(R * C);
  for (let i = 0; i < R; i++) for (let j = 0; j < C; j++) t[j * R + i] = a[i * C + j]!;
  return t;
}

testBothBackends('matmul forward equals the naive product for every layout', () => {
  for (const [M, K, N] of [[1, 1, 1], [3, 5, 7], [17, 13, 1], [1, 31, 9], [33, 65, 17]] as const) {
    const a = randTensor([M, K], rng), b = randTensor([K, N], rng);
    const want = naiveMatmul(a.toArray(), b.toArray(), M, K, N);
    assertClose(T.matmul(a, b).toArray(), want, TOL.parity, `plain ${M}x${K}x${N}`);
    const aT = tensor(transposeArr(a.toArray(), M, K), [K, M]);
    const bT = tensor(transposeArr(b.toArray(), K, N), [N, K]);
    assertClose(T.matmul(aT, bT, { transA: true, transB: true }).toArray(), want, TOL.parity, 'transA transB');
    assertClose(T.matmul(T.transpose(aT), b).toArray(), want, TOL.parity, 'transposed view');
  }
  const a = randTensor([3, 2, 4], rng), b = randTensor([3, 4, 5], rng);
  const got = T.matmul(a, b).toArray();
  for (let i = 0; i < 3; i++) {
    const want = naiveMatmul(a.toArray().slice(i * 8, i * 8 + 8), b.toArray().slice(i * 20, i * 20 + 20), 2, 4, 5);
    assertClose(got.slice(i * 10, i * 10 + 10), want, TOL.parity, `batch ${i}`);
  }
});

testBothBackends('softmax rows sum to one; logSoftmax = log(softmax); crossEntropy = -logSoftmax[target]', () => {
  const x = randTensor([4, 9], rng, -5, 5);
  const p = T.softmax(x).toArray();
  for (let i = 0; i < 4; i++) assert.ok(Math.abs(p.slice(i * 9, i * 9 + 9).reduce((s, v) => s + v, 0) - 1) < 1e-6);
  const lp = T.logSoftmax(x).toArray();
  assertClose(lp, p.map(Math.log), TOL.parity, 'logSoftmax');
  const tg = Int32Array.of(0, 8, 3, -100);
  const ce = T.crossEntropy(x, tg, { reduction: 'none' }).toArray();
  assertClose(ce, [-lp[0]!, -lp[9 + 8]!, -lp[18 + 3]!, 0], TOL.parity, 'ce rows');
  const mean = T.crossEntropy(x, tg).item();
  assert.ok(Math.abs(mean - (ce[0]! + ce[1]! + ce[2]!) / 3) < 1e-5);
});

testBothBackends('rope rotates pairs by position * frequency in both layouts', () => {
  const x = tensor([1, 0, 0, 1], [1, 1, 1, 4]);
  const invFreq = Float32Array.of(1, 0.5);
  const pos = Int32Array.of(2);
  // interleaved pairs (x0,x1)=(1,0) angle 2, (x2,x3)=(0,1) angle 1
  const yi = T.rope(x, { positions: pos, invFreq, style: 'interleaved' }).toArray();
  assertClose(yi, [Math.cos(2), Math.sin(2), -Math.sin(1), Math.cos(1)], TOL.parity, 'interleaved');
  // rotate-half pairs (x0,x2)=(1,0) angle 2, (x1,x3)=(0,1) angle 1
  const yh = T.rope(x, { positions: pos, invFreq, style: 'half' }).toArray();
  assertClose(yh, [Math.cos(2), -Math.sin(1), Math.sin(2), Math.cos(1)], TOL.parity, 'half');
});

testBothBackends('attention equals naive softmax(QK^T/sqrt(d))V with causal, GQA, window and sink masks', () => {
  const B = 2, Tq = 6, Hq = 4, Hkv = 2, Dh = 5;
  const q = randTensor([B, Tq, Hq, Dh], rng), k = randTensor([B, Tq, Hkv, Dh], rng), v = randTensor([B, Tq, Hkv, Dh], rng);
  for (const opts of [{}, { window: 2 }, { window: 2, sinks: 1 }, { causal: false }] as T.AttentionOpts[]) {
    const { out, probs } = T.attention(q, k, v, { ...opts, returnProbs: true });
    const qa = q.toArray(), ka = k.toArray(), va = v.toArray();
    const want: number[] = [];
    const wantP: number[] = new Array<number>(B * Hq * Tq * Tq).fill(0);
    for (let b = 0; b < B; b++) for (let i = 0; i < Tq; i++) for (let h = 0; h < Hq; h++) {
      const g = Math.floor(h / (Hq / Hkv));
      const sc: number[] = [];
      for (let j = 0; j < Tq; j++) {
        const causalOk = opts.causal === false || j <= i;
        const winOk = !opts.window || j > i - opts.window || j < (opts.sinks ?? 0);
        let s = 0;
        for (let d = 0; d < Dh; d++) s += qa[((b * Tq + i) * Hq + h) * Dh + d]! * ka[((b * Tq + j) * Hkv + g) * Dh + d]!;
        sc.push(causalOk && winOk ? s / Math.sqrt(Dh) : -Infinity);
      }
      const m = Math.max(...sc);
      const e = sc.map((s) => Math.exp(s - m));
      const z = e.reduce((a, c) => a + c, 0);
      for (let d = 0; d < Dh; d++) {
        let o = 0;
        for (let j = 0; j < Tq; j++) o += (e[j]! / z) * va[((b * Tq + j) * Hkv + g) * Dh + d]!;
        want.push(o);
      }
      for (let j = 0; j < Tq; j++) wantP[((b * Hq + h) * Tq + i) * Tq + j] = e[j]! / z;
    }
    assertClose(out.toArray(), want, TOL.parity, `attention ${JSON.stringify(opts)}`);
    assertClose(probs!.toArray(), wantP, TOL.parity, `probs ${JSON.stringify(opts)}`);
  }
});

test('views share storage and copy only when strided', () => {
  const x = tensor([0, 1, 2, 3, 4, 5], [2, 3]);
  const r = T.reshape(x, [3, 2]);
  assert.equal(r.storage, x.storage);
  const t = T.transpose(x);
  assert.equal(t.storage, x.storage);
  assert.equal(t.isContiguous(), false);
  assert.deepEqual(t.toArray(), [0, 3, 1, 4, 2, 5]);
  const s = T.slice(x, 1, 1, 3);
  assert.deepEqual(s.toArray(), [1, 2, 4, 5]);
  assert.equal(s.storage, x.storage);
  assert.deepEqual(T.contiguous(t).toArray(), [0, 3, 1, 4, 2, 5]);
  assert.deepEqual(T.add(t, 1).toArray(), [1, 4, 2, 5, 3, 6], 'binary op reads strided views directly');
  assert.deepEqual(T.gather(x, 1, [2, 0]).toArray(), [2, 0, 5, 3]);
  assert.deepEqual(T.concat([x, x], 0).shape, [4, 3]);
  assert.deepEqual(T.sum(x, 0).toArray(), [3, 5, 7]);
  assert.deepEqual(T.max(x, 1).toArray(), [2, 5]);
  assert.deepEqual(T.cumsum(x, 1).toArray(), [0, 1, 3, 3, 7, 12]);
  assert.throws(() => x.data.length && t.data, T.ArgumentError);
});

test('typed errors name the op, the argument, expected and actual shapes', () => {
  const a = tensor(new Float32Array(6), [2, 3]), b = tensor(new Float32Array(8), [4, 2]);
  assert.throws(() => T.matmul(a, b), (e: unknown) => e instanceof T.ShapeError && /matmul: b has shape \[4, 2\], expected inner dimension 3/.test((e as Error).message));
  assert.throws(() => T.add(a, b), (e: unknown) => e instanceof T.ShapeError && /add/.test((e as Error).message));
  assert.throws(() => T.reshape(a, [4, 2]), T.ShapeError);
  assert.throws(() => T.embedding(tensor(new Float32Array(8), [4, 2]), [1, 4]),
    (e: unknown) => e instanceof T.ArgumentError && /ids\[1\] = 4 is outside the vocabulary \[0, 4\)/.test((e as Error).message));
  assert.throws(() => T.crossEntropy(a, [0, 3]), (e: unknown) => e instanceof T.ArgumentError && /targets\[1\]/.test((e as Error).message));
  assert.throws(() => T.attention(tensor(new Float32Array(12), [1, 2, 3, 2]), tensor(new Float32Array(8), [1, 2, 2, 2]),
    tensor(new Float32Array(8), [1, 2, 2, 2])), (e: unknown) => e instanceof T.ShapeError && /dividing 3/.test((e as Error).message));
  assert.throws(() => T.slice(a, 1, 2, 5), T.ArgumentError);
  assert.throws(() => T.backward(a), T.AutogradError);
});

test('tolerance helper rejects mismatches, NaN against numbers and length mismatches', () => {
  assert.throws(() => assertClose([1, 2], [1, 2.1], TOL.parity, 'x'), /index 1 /);
  assert.throws(() => assertClose([NaN], [1], TOL.parity, 'x'));
  assert.throws(() => assertClose([1], [1, 2], TOL.parity, 'x'), /length/);
  assert.throws(() => assertClose([Infinity], [1e30], TOL.parity, 'x'));
  assert.equal(closeness([1, NaN, -Infinity], [1 + 1e-7, NaN, -Infinity], TOL.parity).ok, true);
});

test('autograd accumulates over shared inputs and frees intermediate gradients', () => {
  const x = tensor([1, 2, 3]).param('x');
  const y = T.mul(x, x);
  const z = T.sum(T.add(y, x));
  T.backward(z);
  assert.deepEqual(x.grad!.toArray(), [3, 5, 7]);
  assert.equal(y.grad, null, 'intermediate gradient released');
  assert.throws(() => T.backward(z), T.AutogradError, 'second backward through a freed graph');
  const w = tensor([1, 2]).param();
  T.noGrad(() => {
    const o = T.mul(w, w);
    assert.equal(o.requiresGrad, false);
    assert.equal(o.node, null);
  });
});
