/**
 * Native gemm, gemmF16, f32ToF16 and f16ToF32 against naive oracles written here (float64 accumulation, exact
 * half rounding) and, when it is available, against the reference backend. Shapes cover every dispatch path of
 * native/src/gemm.cpp: matrix-vector (M = 1, N = 1, M <= 4), tiny, packed single- and multi-threaded (split over
 * rows and over columns, several K and N blocks), batched with broadcast strides. The whole file is re-run in a
 * child process with RECURFORMER_SIMD=scalar so the portable kernels are checked too.
 */
import { test } from 'node:test';
import { Rng } from '../../src/tensor/rng.js';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import type { Kernels } from '../../src/tensor/kernels.js';
import { loadNative, type NativeAddon } from '../../src/tensor/native.js';
import { TOL } from '../helpers/tolerances.js';

type GemmKernels = Pick<Kernels, 'gemm' | 'gemmF16' | 'f32ToF16' | 'f16ToF32'>;
type Addon = NativeAddon & GemmKernels;

const load = loadNative();
const native = load.addon && typeof load.addon.gemm === 'function' ? (load.addon as Addon) : null;
const skipNative = native ? false : `native addon unavailable: ${load.error ?? 'no gemm export'}`;
const isChild = process.env.RF_GEMM_TEST_CHILD === '1';

// ---- oracles ------------------------------------------------------------------------------------------------

/** Seeded uniform [0, 1) draws (the engine's xoshiro128** Rng) so a failure reproduces. */
function rng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.next();
}

function randomArray(n: number, rand: () => number): Float32Array {
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = rand() * 2 - 1;
  return out;
}

interface GemmCase {
  transA: number;
  transB: number;
  M: number;
  N: number;
  K: number;
  alpha: number;
  beta: number;
  batch: number;
  strideA: number;
  strideB: number;
  strideC: number;
}

/** The contract of Kernels.gemm, element by element, accumulating in float64. */
function gemmNaive(g: GemmCase, a: Float32Array, b: Float32Array, c: Float32Array): void {
  const { transA, transB, M, N, K, alpha, beta } = g;
  for (let bt = 0; bt < g.batch; bt++) {
    const ao = bt * g.strideA, bo = bt * g.strideB, co = bt * g.strideC;
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) {
          s += (transA ? a[ao + k * M + i]! : a[ao + i * K + k]!) * (transB ? b[bo + j * K + k]! : b[bo + k * N + j]!);
        }
        const idx = co + i * N + j;
        c[idx] = beta === 0 ? alpha * s : alpha * s + beta * c[idx]!;
      }
    }
  }
}

/** Half bits -> value, straight from the IEEE 754 definition. */
function halfValue(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
  if (exp === 31) return mant ? NaN : sign * Infinity;
  return exp === 0 ? sign * mant * 2 ** -24 : sign * (1 + mant / 1024) * 2 ** (exp - 15);
}

function roundHalfEven(q: number): number {
  const f = Math.floor(q), d = q - f;
  return d > 0.5 || (d === 0.5 && f % 2 === 1) ? f + 1 : f;
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/**
 * Float32 bits -> half bits by exact arithmetic on doubles (a float32 divided by a power of two is exact), an
 * implementation independent of the bit-twiddling ones under test. NaNs keep their top payload bits, quieted.
 */
function halfBits(bits: number): number {
  u32[0] = bits;
  const x = f32[0]!;
  const sign = bits & 0x80000000 ? 0x8000 : 0;
  if (Number.isNaN(x)) return sign | 0x7e00 | ((bits >>> 13) & 0x3ff);
  const ax = Math.abs(x);
  if (ax >= 65520) return sign | 0x7c00;  // halfway between 65504 and 2^16 and above rounds to infinity
  if (ax < 2 ** -14) return sign | roundHalfEven(ax / 2 ** -24);  // subnormal (may round up to the smallest normal)
  let e = Math.floor(Math.log2(ax));
  while (2 ** e > ax) e--;
  while (2 ** (e + 1) <= ax) e++;
  let m = roundHalfEven(ax / 2 ** (e - 10));
  if (m === 2048) {
    m = 1024;
    e++;
  }
  return sign | ((e + 15) << 10) | (m - 1024);
}

function bitsOf(x: number): number {
  f32[0] = x;
  return u32[0]!;
}

/**
 * |got - want| <= TOL.gemmPerSqrtK * sqrt(K) * (|want| + 1) everywhere (test/helpers/tolerances.ts); reports the
 * first offender. NaN matches NaN only: that is the untouched NaN padding between strided batch items.
 */
function assertClose(got: Float32Array, want: Float32Array, K: number, what: string): void {
  assert.equal(got.length, want.length);
  const tol = TOL.gemmPerSqrtK.rtol * Math.sqrt(Math.max(K, 1));
  for (let i = 0; i < got.length; i++) {
    const g = got[i]!, w = want[i]!;
    if (Number.isNaN(g) && Number.isNaN(w)) continue;
    if (!(Math.abs(g - w) <= tol * (Math.abs(w) + 1))) {
      assert.fail(`${what}: element ${i} is ${g}, expected ${w} (tolerance ${tol * (Math.abs(w) + 1)})`);
    }
  }
}

// ---- gemm cases ---------------------------------------------------------------------------------------------

interface Operands {
  a: Float32Array;
  b: Float32Array;
  c: Float32Array;
}

/** Operands sized for the case's strides; C is NaN-filled when beta = 0 so a read of C would show. */
function makeOperands(g: GemmCase, rand: () => number): Operands {
  const span = (stride: number, extent: number) => Math.max(1, (g.batch - 1) * stride + extent);
  const a = randomArray(span(g.strideA, g.M * g.K), rand);
  const b = randomArray(span(g.strideB, g.K * g.N), rand);
  const c = g.beta === 0 ? new Float32Array(span(g.strideC, g.M * g.N)).fill(NaN) : randomArray(span(g.strideC, g.M * g.N), rand);
  return { a, b, c };
}

function runGemm(k: GemmKernels, g: GemmCase, o: Operands): Float32Array {
  const c = o.c.slice();
  k.gemm(g.transA, g.transB, g.M, g.N, g.K, g.alpha, o.a, g.strideA, o.b, g.strideB, g.beta, c, g.strideC, g.batch);
  return c;
}

function describe(g: GemmCase): string {
  return `gemm(tA=${g.transA}, tB=${g.transB}, M=${g.M}, N=${g.N}, K=${g.K}, alpha=${g.alpha}, beta=${g.beta}, ` +
    `batch=${g.batch}, strides=${g.strideA}/${g.strideB}/${g.strideC})`;
}

function checkGemm(k: GemmKernels, g: GemmCase, rand: () => number): void {
  const o = makeOperands(g, rand);
  const want = o.c.slice();
  gemmNaive(g, o.a, o.b, want);
  assertClose(runGemm(k, g, o), want, g.K, describe(g));
}

const SMALL_SIZES = [1, 2, 3, 4, 5, 6, 7, 8, 13, 16, 17, 31, 37, 64, 97, 131];
const ALPHAS = [1, -0.5, 2.25];
const BETAS = [0, 1, -0.75];

/** A random batched case: strides 0 (broadcast), exact, or padded; alpha / beta from the lists above. */
function randomCase(rand: () => number, i: number): GemmCase {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rand() * xs.length)]!;
  const M = pick(SMALL_SIZES), N = pick(SMALL_SIZES), K = pick(SMALL_SIZES);
  const batch = pick([1, 1, 2, 3, 5]);
  const stride = (extent: number) => pick([0, extent, extent + 3]);
  return {
    transA: i & 1, transB: (i >> 1) & 1, M, N, K, alpha: pick(ALPHAS), beta: pick(BETAS), batch,
    strideA: stride(M * K), strideB: stride(K * N), strideC: pick([M * N, M * N + 5]),
  };
}

/** Every transpose combination of one shape with one alpha / beta. */
function allTransposes(M: number, N: number, K: number, alpha = 1, beta = 0): GemmCase[] {
  return [0, 1, 2, 3].map((t) => ({
    transA: t & 1, transB: t >> 1, M, N, K, alpha, beta, batch: 1, strideA: 0, strideB: 0, strideC: 0,
  }));
}

// Shapes chosen per dispatch path: matrix-vector (M = 1 / N = 1), few rows (M <= 8, several weight blocks),
// packed on one or two threads split over rows or columns, several K blocks (K > 384), several N blocks
// (N > 3072), ragged edges.
const PATH_SHAPES: [number, number, number][] = [
  [1, 8191, 257], [1, 1, 300], [1, 1000, 1], [1, 41, 1023], [1, 43, 1024], [1, 29, 2093], [333, 1, 255], [2, 515, 300], [3, 129, 77], [4, 67, 1031],
  [5, 700, 97], [8, 300, 1000],
  [389, 211, 401], [600, 50, 70], [20, 1000, 50], [7, 3100, 11], [61, 67, 1], [128, 128, 128], [97, 5, 800],
];

test('gemm matches the naive oracle on random small shapes, all transposes, strides and alpha/beta',
  { skip: skipNative }, () => {
    const rand = rng(1234);
    for (let i = 0; i < 400; i++) checkGemm(native!, randomCase(rand, i), rand);
  });

test('gemm matches the naive oracle on shapes that exercise every dispatch path', { skip: skipNative }, () => {
  const rand = rng(99);
  let n = 0;
  for (const [M, N, K] of PATH_SHAPES) {
    for (const g of allTransposes(M, N, K, ALPHAS[n % 3]!, BETAS[n % 3]!)) checkGemm(native!, g, rand);
    n++;
  }
});

test('gemm with beta = 0 never reads C: NaN in C does not propagate on any path', { skip: skipNative }, () => {
  const rand = rng(7);
  for (const [M, N, K] of [[1, 300, 70], [300, 1, 70], [3, 40, 40], [5, 5, 5], [150, 140, 130]] as const) {
    for (const g of allTransposes(M, N, K, 1.5, 0)) {
      const o = makeOperands(g, rand);
      const got = runGemm(native!, g, o);
      assert.ok(got.every(Number.isFinite), `${describe(g)} left a NaN`);
    }
  }
});

test('gemm batches: broadcast operands, padded strides, many small items in parallel', { skip: skipNative }, () => {
  const rand = rng(5);
  for (const [M, N, K, batch] of [[20, 24, 28, 16], [8, 8, 8, 64], [130, 70, 90, 3], [1, 33, 64, 12], [40, 1, 30, 7]]) {
    for (let t = 0; t < 4; t++) {
      for (const [sa, sb] of [[M * K, K * N], [0, K * N], [M * K, 0], [M * K + 1, K * N + 2]]) {
        checkGemm(native!, {
          transA: t & 1, transB: t >> 1, M, N, K, alpha: 0.5, beta: t === 3 ? 1 : 0, batch, strideA: sa, strideB: sb,
          strideC: M * N,
        }, rand);
      }
    }
  }
});

test('gemm with strideC = 0 accumulates the batch items in order', { skip: skipNative }, () => {
  const rand = rng(11);
  for (const [M, N, K] of [[3, 5, 7], [40, 50, 60]]) {
    checkGemm(native!, {
      transA: 0, transB: 1, M, N, K, alpha: 1, beta: 1, batch: 4, strideA: M * K, strideB: K * N, strideC: 0,
    }, rand);
  }
});

test('gemm edge sizes: K = 0 scales C by beta, empty M / N / batch do nothing', { skip: skipNative }, () => {
  const c = new Float32Array([1, NaN, 3, 4]);
  native!.gemm(0, 0, 2, 2, 0, 1, new Float32Array(0), 0, new Float32Array(0), 0, 0, c, 0, 1);
  assert.deepEqual([...c], [0, 0, 0, 0]);
  const d = new Float32Array([1, 2, 3, 4]);
  native!.gemm(1, 1, 2, 2, 0, 1, new Float32Array(0), 0, new Float32Array(0), 0, 0.5, d, 0, 1);
  assert.deepEqual([...d], [0.5, 1, 1.5, 2]);
  const e = new Float32Array([7]);
  native!.gemm(0, 0, 0, 1, 3, 1, new Float32Array(0), 0, new Float32Array(3), 0, 0, e, 0, 1);
  native!.gemm(0, 0, 1, 1, 3, 1, new Float32Array(3), 0, new Float32Array(3), 0, 0, e, 0, 0);
  assert.deepEqual([...e], [7]);
});

test('gemm rejects operands that are too short and arguments of the wrong type', { skip: skipNative }, () => {
  const a = new Float32Array(6), b = new Float32Array(6), c = new Float32Array(4);
  assert.throws(() => native!.gemm(0, 0, 2, 2, 3, 1, a, 0, b, 0, 0, new Float32Array(3), 0, 1), RangeError);
  assert.throws(() => native!.gemm(0, 0, 2, 2, 3, 1, a, 6, b, 0, 0, c, 4, 2), RangeError);
  assert.throws(() => native!.gemm(0, 0, 2, 2, 3, 1, a, 0, b.subarray(1), 0, 0, c, 0, 1), RangeError);
  assert.throws(() => native!.gemm(0, 0, -1, 2, 3, 1, a, 0, b, 0, 0, c, 0, 1), RangeError);
  const bad = <T>(x: unknown) => x as T;  // deliberately wrong array types, as untyped JS callers might pass
  assert.throws(() => native!.gemm(0, 0, 2, 2, 3, 1, bad(new Float64Array(6)), 0, b, 0, 0, c, 0, 1), TypeError);
  assert.throws(() => native!.gemmF16(1, 2, 3, a, bad(new Int16Array(6)), 0, c), TypeError);
  assert.throws(() => native!.f32ToF16(a, new Uint16Array(5)), RangeError);
});

test('gemm gives the same results on a single-thread pool', { skip: skipNative }, () => {
  const threads = native!.info().threads;
  native!.setThreads(1);
  try {
    const rand = rng(17);
    for (const [M, N, K] of [[1, 2000, 100], [389, 211, 401], [20, 1000, 50]] as const) {
      for (const g of allTransposes(M, N, K, 1, 0.5)) checkGemm(native!, g, rand);
    }
    checkGemm(native!, {
      transA: 0, transB: 0, M: 9, N: 10, K: 11, alpha: 1, beta: 0, batch: 9, strideA: 99, strideB: 0, strideC: 90,
    }, rand);
  } finally {
    native!.setThreads(threads);
  }
});

// ---- half precision -----------------------------------------------------------------------------------------

/** Random finite half weights (moderate magnitudes) as bit patterns. */
function randomHalfs(n: number, rand: () => number): Uint16Array {
  const out = new Uint16Array(n);
  for (let i = 0; i < n; i++) out[i] = halfBits(bitsOf(rand() * 2 - 1));
  return out;
}

function gemmF16Naive(M: number, N: number, K: number, a: Float32Array, w: Uint16Array, beta: number, c: Float32Array): void {
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < K; k++) s += a[i * K + k]! * halfValue(w[j * K + k]!);
      c[i * N + j] = beta === 0 ? s : s + beta * c[i * N + j]!;
    }
  }
}

test('gemmF16 matches the naive oracle: decode matvec, few rows (direct and widened), packed', { skip: skipNative }, () => {
  const rand = rng(23);
  const shapes: [number, number, number][] = [
    // one row: linear kernel (rows under 4 KiB, with 32-, 8- and 1-wide tails) and blocked kernel (rows of 2048+
    // halves, ragged last block)
    [1, 4099, 333], [1, 7, 5], [1, 1, 1], [1, 37, 48], [1, 6, 63], [1, 97, 2047], [1, 67, 2048], [1, 30, 4133], [2, 130, 67], [3, 64, 64], [4, 33, 1029], [5, 31, 17], [7, 300, 129],
    [6, 700, 1000], [8, 9, 3], [9, 40, 41], [33, 1, 50], [64, 200, 400], [131, 97, 389],
  ];
  for (const [M, N, K] of shapes) {
    for (const beta of [0, 0.5]) {
      const a = randomArray(M * K, rand), w = randomHalfs(N * K, rand);
      const c0 = beta === 0 ? new Float32Array(M * N).fill(NaN) : randomArray(M * N, rand);
      const want = c0.slice(), got = c0.slice();
      gemmF16Naive(M, N, K, a, w, beta, want);
      native!.gemmF16(M, N, K, a, w, beta, got);
      assertClose(got, want, K, `gemmF16(M=${M}, N=${N}, K=${K}, beta=${beta})`);
    }
  }
});

// Matrix-vector products of 256 KiB matrices and more read their rows as four side-by-side streams per thread; a
// row's sum keeps the arithmetic of the kernel that computes a lone row, so the whole product equals the rows done
// one at a time bit for bit, and the oracle within tolerance. Shapes: rows under 4 KiB (four accumulators) and over
// (two), k tails of every width, rows per thread not divisible by four, beta on and off.
test('matrix-vector products of large matrices (side-by-side streams) equal the rows done one at a time, bit for bit',
  { skip: skipNative }, () => {
    const rand = rng(77);
    const f32: [number, number][] = [[1030, 300], [301, 1100], [263, 2093], [2049, 64]];
    for (const [N, K] of f32) {
      for (const beta of [0, -0.75]) {
        const x = randomArray(K, rand), w = randomArray(N * K, rand), c0 = randomArray(N, rand);
        const whole = c0.slice(), rows = c0.slice();
        native!.gemm(0, 1, 1, N, K, 1, x, 0, w, 0, beta, whole, N, 1);
        for (let r = 0; r < N; r++) native!.gemm(0, 1, 1, 1, K, 1, x, 0, w.subarray(r * K, (r + 1) * K), 0, beta, rows.subarray(r, r + 1), 1, 1);
        const name = `f32 (${N} x ${K}), beta ${beta}`;
        assert.deepEqual(whole, rows, name);
        const want = c0.slice();
        gemmNaive({ transA: 0, transB: 1, M: 1, N, K, alpha: 1, beta, batch: 1, strideA: 0, strideB: 0, strideC: N }, x, w, want);
        assertClose(whole, want, K, name);
      }
    }
    const f16: [number, number][] = [[2051, 333], [515, 2090], [4099, 64]];
    for (const [N, K] of f16) {
      for (const beta of [0, 0.5]) {
        const x = randomArray(K, rand), w = randomHalfs(N * K, rand), c0 = randomArray(N, rand);
        const whole = c0.slice(), rows = c0.slice();
        native!.gemmF16(1, N, K, x, w, beta, whole);
        for (let r = 0; r < N; r++) native!.gemmF16(1, 1, K, x, w.subarray(r * K, (r + 1) * K), beta, rows.subarray(r, r + 1));
        const name = `f16 (${N} x ${K}), beta ${beta}`;
        assert.deepEqual(whole, rows, name);
        const want = c0.slice();
        gemmF16Naive(1, N, K, x, w, beta, want);
        assertClose(whole, want, K, name);
      }
    }
  });

test('f32ToF16 rounds to nearest even and handles zero, subnormals, overflow, infinity and NaN',
  { skip: skipNative }, () => {
    const special = [
      0, -0, 1, -1, 65504, -65504, 65519.99, 65520, 1e6, -1e6, Infinity, -Infinity, 2 ** -14, 2 ** -24, 2 ** -25,
      3 * 2 ** -26, 2 ** -26, 1.5 * 2 ** -24, 2.5 * 2 ** -24, 1e-10, -1e-10, 1 + 2 ** -11, 1 + 3 * 2 ** -11,
      2049, 2051, 0.1, 1 / 3, 6.1e-5, 6.09e-5,
    ];
    const bits: number[] = special.map(bitsOf);
    bits.push(0x7fc00000, 0xffc00000, 0x7f800001, 0x7fa00000, 0x7fffffff, 0x00000001, 0x807fffff);
    const rand = rng(31);
    for (let i = 0; i < 20000; i++) {  // every exponent a half can meet, random mantissas and signs
      const e = Math.floor(rand() * 50) - 30;
      bits.push(bitsOf((rand() < 0.5 ? -1 : 1) * (1 + rand()) * 2 ** e));
    }
    const src = new Float32Array(new Uint32Array(bits).buffer);
    const dst = new Uint16Array(src.length);
    native!.f32ToF16(src, dst);
    for (let i = 0; i < bits.length; i++) {
      const want = halfBits(bits[i]!);
      if (dst[i] !== want) {
        assert.fail(`f32ToF16(${src[i]} = 0x${bits[i]!.toString(16)}) = 0x${dst[i]!.toString(16)}, ` +
          `expected 0x${want.toString(16)}`);
      }
    }
  });

test('f16ToF32 decodes all 65536 half bit patterns', { skip: skipNative }, () => {
  const src = new Uint16Array(65536).map((_, i) => i);
  const dst = new Float32Array(65536);
  native!.f16ToF32(src, dst);
  for (let h = 0; h < 65536; h++) {
    const want = halfValue(h), got = dst[h]!;
    if (Number.isNaN(want) ? !Number.isNaN(got) : !Object.is(got, want)) {
      assert.fail(`f16ToF32(0x${h.toString(16)}) = ${got}, expected ${want}`);
    }
  }
});

test('f32ToF16 / f16ToF32 on long arrays (parallel path) and odd lengths (tails) round-trip', { skip: skipNative }, () => {
  const rand = rng(41);
  for (const n of [0, 1, 15, 17, 300001]) {
    const src = randomArray(n, rand).map((x) => x * 1000);
    const h = new Uint16Array(n), back = new Float32Array(n);
    native!.f32ToF16(src, h);
    native!.f16ToF32(h, back);
    for (let i = 0; i < n; i++) {
      assert.equal(h[i], halfBits(bitsOf(src[i]!)));
      assert.equal(back[i], halfValue(h[i]!));
    }
  }
});

// ---- cross-checks -------------------------------------------------------------------------------------------

/** The reference backend (src/tensor/reference), when this checkout has it; otherwise the reason it is absent. */
async function referenceKernels(): Promise<GemmKernels | string> {
  try {
    const mod = await import('../../src/tensor/backend.js');
    return mod.getBackend('reference').kernels;
  } catch (e) {
    return `reference backend unavailable: ${(e as Error).message.split('\n')[0]}`;
  }
}

const reference = native ? await referenceKernels() : 'native addon unavailable';

test('gemm, gemmF16 and the half conversions agree with the reference backend',
  { skip: typeof reference === 'string' ? reference : false }, () => {
    const ref = reference as GemmKernels;
    const rand = rng(77);
    for (let i = 0; i < 120; i++) {
      const g = i < 100 ? randomCase(rand, i) : allTransposes(150, 70, 90, 1, 0)[i % 4]!;
      const o = makeOperands(g, rand);
      assertClose(runGemm(native!, g, o), runGemm(ref, g, o), g.K, `${describe(g)} vs reference`);
    }
    for (const [M, N, K] of [[1, 300, 65], [3, 40, 41], [20, 30, 40]]) {
      const a = randomArray(M * K, rand), w = randomHalfs(N * K, rand);
      const got = new Float32Array(M * N).fill(NaN), want = got.slice();
      native!.gemmF16(M, N, K, a, w, 0, got);
      ref.gemmF16(M, N, K, a, w, 0, want);
      assertClose(got, want, K, `gemmF16(${M}, ${N}, ${K}) vs reference`);
    }
    const x = randomArray(1000, rand).map((v) => v * 70000);
    const h1 = new Uint16Array(1000), h2 = new Uint16Array(1000);
    native!.f32ToF16(x, h1);
    ref.f32ToF16(x, h2);
    assert.deepEqual(h1, h2);
  });

/** Kernel set and blocking of the packed GEMM (native/src/gemm.cpp gemmInfo). */
interface GemmInfo {
  isa: string;
  mr: number;
  nr: number;
}

function gemmInfo(): GemmInfo {
  return (native as unknown as { gemmInfo(): GemmInfo }).gemmInfo();
}

// Each kernel set below the one this machine picks is covered by re-running this file in a child process
// that forces it (scalar everywhere; AVX2 too when the machine would otherwise use AVX-512).
for (const simd of ['scalar', 'avx2'] as const) {
  const skip = skipNative || (isChild ? 'already a child run' :
    simd === 'avx2' && gemmInfo().isa !== 'avx512' ? 'the AVX2 set is what this file already ran' : false);
  test(`the ${simd} kernels pass this whole file (child process, RECURFORMER_SIMD=${simd})`, { skip }, () => {
    const env: NodeJS.ProcessEnv = { ...process.env, RECURFORMER_SIMD: simd, RF_GEMM_TEST_CHILD: '1' };
    delete env.NODE_TEST_CONTEXT;  // run as a standalone script, not as a worker of the parent's test runner
    const r = spawnSync(process.execPath, ['--import', 'tsx', fileURLToPath(import.meta.url)], { env, encoding: 'utf8' });
    const out = `${r.stdout}\n${r.stderr}`;
    assert.equal(r.status, 0, `${simd} run failed:\n${out.slice(-4000)}`);
    assert.match(r.stdout, /# fail 0/);
    assert.match(r.stdout, /# pass [1-9]/);
  });
}

test('the kernel set follows RECURFORMER_SIMD', { skip: skipNative }, () => {
  const simd = native!.info().simd, isa = gemmInfo().isa;
  if (process.env.RECURFORMER_SIMD === 'scalar') {
    assert.equal(simd, 'scalar');
    assert.equal(isa, 'scalar');
  } else if (process.env.RECURFORMER_SIMD === 'avx2') {
    assert.equal(isa, simd === 'avx2' ? 'avx2' : 'scalar');
  } else {
    assert.ok(['avx512', 'avx2', 'scalar'].includes(isa), isa);
  }
});
