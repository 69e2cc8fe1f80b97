/**
 * gemmMulti (several decode products of one activation in one call) against the reference backend, and bit for bit
 * against the separate native gemm / gemmF16 / gemmBF16 calls it replaces, for float32, F16 and BF16 weights, one to
 * nine activation rows (the matrix-vector, few-rows and packed paths), odd sizes, two or three slots, and products
 * large enough to be split over the threads. Re-run in a child process with RECURFORMER_SIMD=scalar.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Rng } from '../../src/tensor/rng.js';
import { getBackend } from '../../src/tensor/index.js';
import { loadNative } from '../../src/tensor/native.js';
import { TOL, assertClose } from '../helpers/tolerances.js';

const load = loadNative();
const skip = load.addon && typeof load.addon.gemmMulti === 'function' ? false : `native addon unavailable: ${load.error ?? 'no gemmMulti'}`;
const isChild = process.env.RF_GEMM_MULTI_CHILD === '1';
const NONE = new Float32Array(0);

function data(n: number, rng: Rng): Float32Array {
  return Float32Array.from({ length: n }, () => rng.next() * 2 - 1);
}

test('gemmMulti matches the reference and the separate products exactly (f32, f16, bf16; M 1-9; odd sizes)', { skip }, () => {
  const nat = getBackend('native').kernels, ref = getBackend('reference').kernels;
  const rng = new Rng(11);
  const shapes: [number, number[]][] = [[1, [1, 1]], [7, [5, 3, 3]], [33, [37, 0, 11]], [129, [64, 16, 16]], [257, [300, 45, 7]], [96, [700, 700]]];
  for (const dtype of [0, 1, 2]) {
    for (const [K, Ns] of shapes) {
      for (const M of [1, 2, 3, 5, 8, 9]) {
        const a = data(M * K, rng);
        const ws = Ns.map((N) => {
          const w = data(N * K, rng);
          if (dtype === 0) return w;
          const h = new Uint16Array(N * K);
          if (dtype === 1) ref.f32ToF16(w, h);
          else for (let i = 0; i < h.length; i++) h[i] = new Uint32Array(w.buffer, i * 4, 1)[0]! >>> 16;
          return h;
        });
        const out = (): Float32Array[] => Ns.map((N) => new Float32Array(M * N).fill(Number.NaN));
        const cn = out(), cr = out();
        const args = (c: Float32Array[]): Parameters<typeof nat.gemmMulti> => {
          const slot = (i: number): [Float32Array | Uint16Array, number, Float32Array] => (i < Ns.length ? [ws[i]!, Ns[i]!, c[i]!] : [NONE, 0, NONE]);
          return [M, K, a, dtype, ...slot(0), ...slot(1), ...slot(2)];
        };
        nat.gemmMulti(...args(cn));
        ref.gemmMulti(...args(cr));
        const what = `dtype ${dtype} M ${M} K ${K} N ${Ns.join('/')}`;
        Ns.forEach((N, i) => {
          assertClose(cn[i]!, cr[i]!, TOL.parityLong, `${what}: slot ${i} vs reference`);
          const sep = new Float32Array(M * N).fill(Number.NaN);
          if (dtype === 0) nat.gemm(0, 1, M, N, K, 1, a, 0, ws[i] as Float32Array, 0, 0, sep, 0, 1);
          else if (dtype === 1) nat.gemmF16(M, N, K, a, ws[i] as Uint16Array, 0, sep);
          else nat.gemmBF16(M, N, K, a, ws[i] as Uint16Array, 0, sep);
          assert.deepEqual(cn[i], sep, `${what}: slot ${i} equals the separate product`);
        });
      }
    }
  }
});

test('gemmMulti rejects short operands and unknown weight types', { skip }, () => {
  const nat = getBackend('native').kernels;
  const a = new Float32Array(8), w = new Float32Array(8 * 3), c = new Float32Array(3);
  assert.throws(() => nat.gemmMulti(1, 8, a, 0, w, 4, c, NONE, 0, NONE, NONE, 0, NONE), /shorter/);
  assert.throws(() => nat.gemmMulti(1, 8, a, 3, w, 3, c, NONE, 0, NONE, NONE, 0, NONE), /dtype/);
  assert.throws(() => nat.gemmMulti(1, 8, a, 1, w, 3, c, NONE, 0, NONE, NONE, 0, NONE), /Uint16Array/);
});

test('the scalar kernels pass this whole file (child process, RECURFORMER_SIMD=scalar)', { skip: skip || (isChild ? 'already a child run' : false) }, () => {
  const env: NodeJS.ProcessEnv = { ...process.env, RECURFORMER_SIMD: 'scalar', RF_GEMM_MULTI_CHILD: '1' };
  delete env.NODE_TEST_CONTEXT;
  const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url)], { env, encoding: 'utf8' });
  assert.equal(r.status, 0, `scalar run failed:\n${`${r.stdout}\n${r.stderr}`.slice(-4000)}`);
  assert.match(r.stdout, /# fail 0/);
  assert.match(r.stdout, /# pass [1-9]/);
});
