/** bfloat16 decode GEMM and widening: native vs reference. */
import { test } from 'node:test';
import { getBackend } from '../../src/tensor/index.js';
import { loadNative } from '../../src/tensor/native.js';
import { TOL, assertClose } from '../helpers/tolerances.js';

const load = loadNative();
const skip = load.addon ? false : `native addon unavailable: ${load.error ?? 'unknown error'}`;

test('gemmBF16 and bf16ToF32 match the reference (odd sizes, beta, decode and small-batch shapes)', { skip }, () => {
  const nat = getBackend('native').kernels, ref = getBackend('reference').kernels;
  let seed = 3;
  const rnd = (): number => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  for (const [M, N, K] of [[1, 1, 1], [1, 37, 129], [3, 64, 17], [5, 13, 256], [8, 7, 33]] as const) {
    const a = Float32Array.from({ length: M * K }, rnd);
    const w = Uint16Array.from({ length: N * K }, () => (Math.floor(rnd() * 32768) & 0x7fff) % 0x3f80 + (rnd() < 0 ? 0x8000 : 0));
    for (const beta of [0, 0.5]) {
      const c0 = Float32Array.from({ length: M * N }, rnd);
      const cn = Float32Array.from(c0), cr = Float32Array.from(c0);
      nat.gemmBF16(M, N, K, a, w, beta, cn);
      ref.gemmBF16(M, N, K, a, w, beta, cr);
      assertClose(cn, cr, TOL.parityLong, `gemmBF16 ${M}x${N}x${K} beta ${beta}`);
    }
    const fn = new Float32Array(w.length), fr = new Float32Array(w.length);
    nat.bf16ToF32(w, fn);
    ref.bf16ToF32(w, fr);
    assertClose(fn, fr, TOL.exact, 'bf16ToF32');
  }
});
