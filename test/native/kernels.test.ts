/**
 * Native element-wise, row-wise and optimizer kernels against the reference backend (the oracle), on seeded random
 * inputs over many shapes: odd and prime sizes, length-1 axes, empty arrays, broadcast patterns, aliasing, special
 * values. Tolerances live in ./tolerances.ts. The whole file also runs once more in a child process with
 * RECURFORMER_SIMD=scalar so that the scalar fallbacks are covered as well.
 */
import { test } from 'node:test';
import { Rng } from '../../src/tensor/rng.js';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { getBackend } from '../../src/tensor/backend.js';
import { BinaryOp, ReduceOp, UnaryOp, type F32, type I32, type Kernels } from '../../src/tensor/kernels.js';
import { loadNative } from '../../src/tensor/native.js';
import { TOL, accumulation, assertClose, closeness, type Tol } from '../helpers/tolerances.js';

const load = loadNative();
/** Without the addon (no compiler on this machine) every native test skips with this one-line reason. */
const skip = load.addon ? false : `native addon unavailable: ${load.error ?? 'unknown error'}`;
const native = load.addon ? getBackend('native') : undefined;
// read only inside tests, which skip where the addon did not load
const N = native?.kernels as Kernels;
const R: Kernels = getBackend('reference').kernels;
const addon = load.addon!;

/** A test of the native addon: skipped with the reason above where it is not built. */
function nativeTest(name: string, fn: () => void): void {
  test(name, { skip }, fn);
}

const MINE = [
  'unary', 'unaryGrad', 'binary', 'affine', 'axpy', 'sumSquares', 'reduce', 'copyStrided', 'cumsum', 'gather',
  'gatherGrad', 'embedding', 'embeddingGrad', 'conv1dCausal', 'conv1dCausalGrad', 'softmax', 'softmaxGrad',
  'logSoftmax', 'logSoftmaxGrad', 'crossEntropy', 'rmsnorm', 'rmsnormGrad', 'layernorm', 'layernormGrad', 'rope',
  'adamw',
] as const;

// ---- inputs ------------------------------------------------------------------------------------------------------

/** Seeded uniform [0, 1) draws (the engine's xoshiro128** Rng) so a failure reproduces. */
function prng(seed: number): () => number {
  const r = new Rng(seed);
  return () => r.next();
}

class Gen {
  readonly u: () => number;
  constructor(seed: number) {
    this.u = prng(seed);
  }
  normal(): number {
    const a = Math.max(this.u(), 1e-12), b = this.u();
    return Math.sqrt(-2 * Math.log(a)) * Math.cos(2 * Math.PI * b);
  }
  f32(n: number, scale = 1, offset = 0): F32 {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = offset + scale * this.normal();
    return a;
  }
  positive(n: number, lo = 1e-3, hi = 10): F32 {
    const a = new Float32Array(n);
    for (let i = 0; i < n; i++) a[i] = lo * Math.pow(hi / lo, this.u());
    return a;
  }
  int(n: number): number {
    return Math.floor(this.u() * n);
  }
  ints(count: number, n: number): I32 {
    const a = new Int32Array(count);
    for (let i = 0; i < count; i++) a[i] = this.int(n);
    return a;
  }
}

const copy = (a: F32): F32 => new Float32Array(a);
const prod = (s: readonly number[]): number => s.reduce((p, v) => p * v, 1);
function contiguous(shape: readonly number[]): number[] {
  const st = new Array<number>(shape.length).fill(0);
  let s = 1;
  for (let d = shape.length - 1; d >= 0; d--) {
    st[d] = s;
    s *= shape[d]!;
  }
  return st;
}
/** Strides of a contiguous operand of shape `own` broadcast to `shape` (own[d] is 1 or shape[d]). */
function bcast(own: readonly number[]): Int32Array {
  const st = contiguous(own);
  return Int32Array.from(own.map((n, d) => (n === 1 ? 0 : st[d]!)));
}

/**
 * Runs fn once, passing the pool size for labels. Other thread counts (1 and 3: uneven partitions of the partial
 * sums) are covered by re-running this file in child processes with RECURFORMER_THREADS (see the end of the file);
 * addon.setThreads is not used because restarting the pool at run time is not safe yet.
 */
function withThreads(fn: (threads: number) => void): void {
  fn(addon.info().threads);
}

// ---- the helper itself -------------------------------------------------------------------------------------------

test('assertClose accepts matches and reports the worst element of a mismatch', () => {
  assertClose(new Float32Array([1, NaN, Infinity, -0]), [1, NaN, Infinity, 0], TOL.exact, 'equal');
  assertClose([1.000001, 2], [1, 2], { rtol: 2e-6, atol: 0 }, 'within rtol');
  assertClose(1e-8, 0, { rtol: 0, atol: 1e-7 }, 'within atol');
  assert.throws(() => assertClose([1, 2, 3], [1, 2.5, 3], TOL.norm, 'clear mismatch'),
    (e: Error) => e.name === 'AssertionError' && /clear mismatch/.test(e.message) && /index 1 of 3/.test(e.message) &&
      /actual 2, expected 2.5/.test(e.message));
  assert.throws(() => assertClose([NaN], [1], TOL.norm, 'nan vs number'), /nan vs number: .*actual NaN, expected 1/);
  assert.throws(() => assertClose([1], [NaN], TOL.norm, 'number vs nan'), /number vs nan/);
  assert.throws(() => assertClose([Infinity], [-Infinity], TOL.norm, 'inf'), /inf/);
  assert.throws(() => assertClose([1, 2], [1, 2, 3], TOL.norm, 'lengths'), /lengths: length mismatch: actual 2, expected 3/);
  assert.throws(() => assertClose([0], [1e-300], TOL.exact, 'exact'), /exact/);
  const c = closeness([1, 5, 3], [1, 2, 3.5], TOL.norm);
  assert.equal(c.ok, false);
  assert.equal(c.worst, 1);
});

nativeTest('the native addon serves every kernel under test', () => {
  for (const name of MINE) assert.ok(native!.nativeKernels.includes(name), `${name} is not implemented natively`);
  if (process.env.RECURFORMER_SIMD === 'scalar') assert.equal(native!.simd, 'scalar');
  if (process.env.RECURFORMER_THREADS) assert.equal(native!.threads, Number(process.env.RECURFORMER_THREADS));
});

// ---- unary -------------------------------------------------------------------------------------------------------

const UNARY_OPS = Object.values(UnaryOp).filter((v): v is UnaryOp => typeof v === 'number');
const EXACT_UNARY = new Set([UnaryOp.Neg, UnaryOp.Relu, UnaryOp.Square, UnaryOp.Abs, UnaryOp.Sqrt]);
const SPECIALS = [0, -0, 1e-30, -1e-30, 1e-40, 0.5, -0.5, 20, -20, 50, -50, 88, -88, 89, -89, 100, -104, -110, 1e20,
  -1e20, Infinity, -Infinity, NaN];
const SIZES = [0, 1, 3, 8, 15, 16, 17, 33, 1000, 70001];

function unaryInput(g: Gen, op: UnaryOp, n: number, specials: boolean): F32 {
  const domainPositive = op === UnaryOp.Log || op === UnaryOp.Sqrt || op === UnaryOp.Rsqrt;
  const x = domainPositive ? g.positive(n, 1e-4, 1e4) : g.f32(n, 3);
  if (specials && n >= 8) {
    for (let i = 0; i < SPECIALS.length && 2 * i < n; i++) x[(i * 7919) % n] = SPECIALS[i]!;
  }
  return x;
}

nativeTest('unary matches the reference for every op, size and special value; y may alias x', () => {
  const g = new Gen(1);
  for (const op of UNARY_OPS) {
    const tol = EXACT_UNARY.has(op) ? TOL.exact : op === UnaryOp.Rsqrt ? TOL.elementwise : TOL.transcendental;
    for (const n of SIZES) {
      for (const specials of [false, true]) {
        const x = unaryInput(g, op, n, specials);
        const want = new Float32Array(n), got = new Float32Array(n);
        R.unary(op, x, want);
        N.unary(op, x, got);
        assertClose(got, want, tol, `unary ${UnaryOp[op]} n=${n} specials=${specials}`);
        const inplace = copy(x);
        N.unary(op, inplace, inplace);
        assertClose(inplace, want, tol, `unary ${UnaryOp[op]} n=${n} in place`);
      }
    }
  }
});

nativeTest('unaryGrad matches the reference for every op and size', () => {
  const g = new Gen(2);
  for (const op of UNARY_OPS) {
    const tol = op === UnaryOp.Neg || op === UnaryOp.Relu || op === UnaryOp.Square || op === UnaryOp.Abs
      ? TOL.exact : TOL.transcendentalGrad;
    for (const n of SIZES) {
      const x = unaryInput(g, op, n, false);
      if (n >= 8 && op !== UnaryOp.Log && op !== UnaryOp.Sqrt && op !== UnaryOp.Rsqrt) {
        // large magnitudes, zeros and NaN (infinities have no useful derivative)
        const sp = [0, -0, 30, -30, 1e20, -1e20, NaN];
        for (let i = 0; i < sp.length && 2 * i < n; i++) x[(i * 31) % n] = sp[i]!;
      }
      const y = new Float32Array(n);
      R.unary(op, x, y);
      const gy = g.f32(n);
      const want = new Float32Array(n), got = new Float32Array(n);
      R.unaryGrad(op, x, y, gy, want);
      N.unaryGrad(op, x, y, gy, got);
      assertClose(got, want, tol, `unaryGrad ${UnaryOp[op]} n=${n}`);
    }
  }
});

// ---- binary ------------------------------------------------------------------------------------------------------

const BINARY_OPS = Object.values(BinaryOp).filter((v): v is BinaryOp => typeof v === 'number');

interface BinCase {
  name: string;
  shape: number[];
  aShape: number[];
  bShape: number[];
  /** Explicit strides (transposed views) instead of broadcasting the contiguous own shape. */
  aStrides?: number[];
  aLen?: number;
}

function binaryCases(g: Gen): BinCase[] {
  const cases: BinCase[] = [
    { name: 'same shape', shape: [37, 129], aShape: [37, 129], bShape: [37, 129] },
    { name: 'scalar b', shape: [5, 7], aShape: [5, 7], bShape: [1, 1] },
    { name: 'scalar a', shape: [5, 7], aShape: [1, 1], bShape: [5, 7] },
    { name: 'row b', shape: [37, 129], aShape: [37, 129], bShape: [1, 129] },
    { name: 'column b', shape: [37, 129], aShape: [37, 129], bShape: [37, 1] },
    { name: 'column a', shape: [13, 3], aShape: [13, 1], bShape: [13, 3] },
    { name: 'middle axis', shape: [3, 5, 7], aShape: [3, 5, 7], bShape: [3, 1, 7] },
    { name: 'both broadcast', shape: [37, 129], aShape: [37, 1], bShape: [1, 129] },
    { name: 'both scalar', shape: [4, 9], aShape: [1, 1], bShape: [1, 1] },
    { name: 'transposed a', shape: [129, 37], aShape: [129, 37], bShape: [129, 37], aStrides: [1, 129], aLen: 129 * 37 },
    { name: 'length-1 axes', shape: [1, 1, 1], aShape: [1, 1, 1], bShape: [1, 1, 1] },
    { name: 'length-1 inner', shape: [6, 1], aShape: [6, 1], bShape: [1, 1] },
    { name: 'rank 0', shape: [], aShape: [], bShape: [] },
    { name: 'empty', shape: [3, 0, 2], aShape: [3, 0, 2], bShape: [1, 1, 2] },
    { name: 'rank 8', shape: [2, 3, 1, 2, 3, 1, 2, 5], aShape: [2, 3, 1, 2, 3, 1, 2, 5], bShape: [2, 1, 1, 2, 1, 1, 2, 5] },
    { name: 'big same shape', shape: [300, 257], aShape: [300, 257], bShape: [300, 257] },
    { name: 'big column', shape: [1000, 33], aShape: [1000, 33], bShape: [1000, 1] },
    { name: 'big row', shape: [999, 67], aShape: [1, 67], bShape: [999, 67] },
  ];
  for (let k = 0; k < 40; k++) {
    const rank = 1 + g.int(8);
    const shape = Array.from({ length: rank }, () => 1 + g.int(4));
    const aShape = shape.map((n) => (g.u() < 0.3 ? 1 : n));
    const bShape = shape.map((n) => (g.u() < 0.3 ? 1 : n));
    cases.push({ name: `random ${k}`, shape, aShape, bShape });
  }
  return cases;
}

nativeTest('binary matches the reference bit for bit over broadcast patterns and ranks 0..8', () => {
  const g = new Gen(3);
  for (const c of binaryCases(g)) {
    const a = g.f32(c.aLen ?? prod(c.aShape), 2);
    const b = g.f32(prod(c.bShape), 2);
    // ties, signed zeros and NaN exercise the Max/Min choice rules
    if (a.length > 3 && b.length > 3) {
      a[0] = b[0] = 1.5;
      a[1] = 0;
      b[1] = -0;
      a[2] = NaN;
      b[3] = NaN;
    }
    const as = c.aStrides ? Int32Array.from(c.aStrides) : bcast(c.aShape);
    const bs = bcast(c.bShape);
    const shape = Int32Array.from(c.shape);
    for (const op of BINARY_OPS) {
      const want = new Float32Array(prod(c.shape)), got = new Float32Array(prod(c.shape));
      R.binary(op, a, as, b, bs, shape, want);
      N.binary(op, a, as, b, bs, shape, got);
      assertClose(got, want, TOL.exact, `binary ${BinaryOp[op]} ${c.name} [${c.shape.join(',')}]`);
      // Max/Min must also agree on which zero they return
      for (let i = 0; i < got.length; i++) {
        if (Object.is(got[i], -0) !== Object.is(want[i], -0)) assert.fail(`binary ${BinaryOp[op]} ${c.name}: sign of zero at ${i}`);
      }
    }
  }
});

// ---- affine, axpy, sumSquares ---------------------------------------------------------------------------------

nativeTest('affine and axpy match the reference; affine in place', () => {
  const g = new Gen(4);
  for (const n of SIZES) {
    const x = g.f32(n, 3);
    const mul = g.normal(), add = g.normal();
    const want = new Float32Array(n), got = new Float32Array(n);
    R.affine(x, mul, add, want);
    N.affine(x, mul, add, got);
    assertClose(got, want, TOL.elementwise, `affine n=${n}`);
    const inplace = copy(x);
    N.affine(inplace, mul, add, inplace);
    assertClose(inplace, want, TOL.elementwise, `affine n=${n} in place`);
    const y0 = g.f32(n), alpha = g.normal();
    const yw = copy(y0), yg = copy(y0);
    R.axpy(alpha, x, yw);
    N.axpy(alpha, x, yg);
    assertClose(yg, yw, TOL.elementwise, `axpy n=${n}`);
  }
});

nativeTest('sumSquares accumulates in double like the reference', () => {
  const g = new Gen(5);
  withThreads((t) => {
    for (const n of [0, 1, 7, 16, 17, 1001, 65537, 1_000_003]) {
      const x = g.f32(n, 10);
      assertClose(N.sumSquares(x), R.sumSquares(x), TOL.double, `sumSquares n=${n} threads=${t}`);
    }
  });
  // 2^24 + 1 ones: a float accumulator would stall at 2^24
  const ones = new Float32Array((1 << 24) + 1).fill(1);
  assert.equal(N.sumSquares(ones), (1 << 24) + 1);
});

// ---- reduce, cumsum ----------------------------------------------------------------------------------------------

const REDUCE_OPS = Object.values(ReduceOp).filter((v): v is ReduceOp => typeof v === 'number');
const ONI: [number, number, number][] = [
  [1, 1, 1], [3, 1, 5], [1, 7, 1], [4, 33, 1], [5, 17, 3], [2, 1000, 1], [2, 100, 600], [7, 0, 3], [0, 5, 5],
  [64, 129, 1], [3, 9, 1031], [1, 3, 8], [2, 2, 9],
];

function reduceTol(op: ReduceOp): Tol {
  if (op === ReduceOp.Max || op === ReduceOp.Min) return TOL.exact;
  if (op === ReduceOp.LogSumExp) return TOL.reduction;
  return TOL.elementwise;
}

nativeTest('reduce matches the reference over (outer, n, inner) shapes, with NaN, -inf and +inf', () => {
  const g = new Gen(6);
  for (const op of REDUCE_OPS) {
    for (const [outer, n, inner] of ONI) {
      for (const special of ['none', 'nan', '-inf', '+inf'] as const) {
        const x = g.f32(outer * n * inner, 5, 1);
        if (special !== 'none' && x.length > 0) {
          const v = special === 'nan' ? NaN : special === '-inf' ? -Infinity : Infinity;
          for (let k = 0; k < 3; k++) x[g.int(x.length)] = v;
          // one whole (o, :, i) line of -inf: LogSumExp and Max give -inf
          if (special === '-inf') for (let j = 0; j < n; j++) x[j * inner] = -Infinity;
        }
        const want = new Float32Array(outer * inner), got = new Float32Array(outer * inner);
        R.reduce(op, x, outer, n, inner, want);
        N.reduce(op, x, outer, n, inner, got);
        assertClose(got, want, reduceTol(op), `reduce ${ReduceOp[op]} (${outer},${n},${inner}) ${special}`);
      }
    }
  }
});

nativeTest('cumsum matches the reference forwards and backwards, in place too', () => {
  const g = new Gen(7);
  for (const [outer, n, inner] of ONI) {
    for (const reverse of [0, 1]) {
      const x = g.f32(outer * n * inner, 3);
      const want = new Float32Array(x.length), got = new Float32Array(x.length);
      R.cumsum(x, outer, n, inner, reverse, want);
      N.cumsum(x, outer, n, inner, reverse, got);
      assertClose(got, want, TOL.elementwise, `cumsum (${outer},${n},${inner}) reverse=${reverse}`);
      const inplace = copy(x);
      N.cumsum(inplace, outer, n, inner, reverse, inplace);
      assertClose(inplace, want, TOL.elementwise, `cumsum (${outer},${n},${inner}) reverse=${reverse} in place`);
    }
  }
});

// ---- data movement ---------------------------------------------------------------------------------------------

nativeTest('copyStrided matches the reference: transposes, slices, broadcast, flips, rank 8', () => {
  const g = new Gen(8);
  const cases: { name: string; srcLen: number; offset: number; shape: number[]; strides: number[] }[] = [
    { name: 'identity', srcLen: 20, offset: 0, shape: [4, 5], strides: [5, 1] },
    { name: 'transpose', srcLen: 35, offset: 0, shape: [7, 5], strides: [1, 7] },
    { name: 'permute (T,H,D)->(H,T,D)', srcLen: 5 * 3 * 8, offset: 0, shape: [3, 5, 8], strides: [8, 24, 1] },
    { name: 'slice with offset', srcLen: 120, offset: 2 * 12 + 3, shape: [5, 6], strides: [12, 1] },
    { name: 'broadcast rows', srcLen: 6, offset: 0, shape: [4, 6], strides: [0, 1] },
    { name: 'broadcast scalar', srcLen: 3, offset: 2, shape: [3, 4], strides: [0, 0] },
    { name: 'flip', srcLen: 5, offset: 4, shape: [5], strides: [-1] },
    { name: 'flip rows', srcLen: 12, offset: 9, shape: [4, 3], strides: [-3, 1] },
    { name: 'every other', srcLen: 20, offset: 1, shape: [10], strides: [2] },
    { name: 'empty', srcLen: 3, offset: 0, shape: [0, 3], strides: [3, 1] },
    { name: 'rank 0', srcLen: 4, offset: 3, shape: [], strides: [] },
    { name: 'length-1 axes', srcLen: 6, offset: 0, shape: [1, 6, 1], strides: [100, 1, 100] },
    { name: 'big transpose', srcLen: 600 * 300, offset: 0, shape: [300, 600], strides: [1, 300] },
    { name: 'tiled transpose, leftovers', srcLen: 37 * 45, offset: 0, shape: [45, 37], strides: [1, 45] },
    { name: 'tiled, row stride 2', srcLen: 2 * 40 * 50, offset: 1, shape: [40, 50], strides: [2, 80] },
    { name: 'tiled with planes', srcLen: 3 * 40 * 50, offset: 0, shape: [3, 50, 40], strides: [2000, 1, 50] },
    { name: 'tiled, reversed rows', srcLen: 16 * 9, offset: 15, shape: [16, 9], strides: [-1, 16] },
    { name: 'big permute', srcLen: 64 * 48 * 33, offset: 0, shape: [48, 64, 33], strides: [33, 48 * 33, 1] },
  ];
  for (let k = 0; k < 20; k++) {
    // a random permutation of a random contiguous tensor of rank up to 8
    const rank = 1 + g.int(8);
    const own = Array.from({ length: rank }, () => 1 + g.int(4));
    const st = contiguous(own);
    const perm = own.map((_, i) => i).sort(() => g.u() - 0.5);
    cases.push({ name: `random permute ${k}`, srcLen: prod(own), offset: 0, shape: perm.map((p) => own[p]!),
      strides: perm.map((p) => st[p]!) });
  }
  for (const c of cases) {
    const src = g.f32(c.srcLen);
    const want = new Float32Array(prod(c.shape)), got = new Float32Array(prod(c.shape));
    R.copyStrided(src, c.offset, Int32Array.from(c.strides), Int32Array.from(c.shape), want);
    N.copyStrided(src, c.offset, Int32Array.from(c.strides), Int32Array.from(c.shape), got);
    assertClose(got, want, TOL.exact, `copyStrided ${c.name}`);
  }
});

nativeTest('gather / gatherGrad match the reference, repeated indices add up', () => {
  const g = new Gen(9);
  const cases: [number, number, number, number][] = [
    [1, 1, 1, 1], [1, 5, 3, 0], [2, 7, 5, 9], [3, 4, 1, 6], [1, 50, 64, 200], [4, 33, 129, 17], [1, 1000, 40, 3000],
  ];
  for (const [outer, n, inner, m] of cases) {
    const x = g.f32(outer * n * inner);
    const idx = g.ints(m, n);
    if (m > 2) idx[1] = idx[0]!;
    const want = new Float32Array(outer * m * inner), got = new Float32Array(outer * m * inner);
    R.gather(x, outer, n, inner, idx, want);
    N.gather(x, outer, n, inner, idx, got);
    assertClose(got, want, TOL.exact, `gather (${outer},${n},${inner}) m=${m}`);
    withThreads((t) => {
      const gout = g.f32(outer * m * inner), gx0 = g.f32(outer * n * inner);
      const gw = copy(gx0), gg = copy(gx0);
      R.gatherGrad(gout, outer, n, inner, idx, gw);
      N.gatherGrad(gout, outer, n, inner, idx, gg);
      // same additions in the same order per element: identical bits
      assertClose(gg, gw, TOL.exact, `gatherGrad (${outer},${n},${inner}) m=${m} threads=${t}`);
    });
  }
});

nativeTest('embedding / embeddingGrad match the reference, repeated ids add up', () => {
  const g = new Gen(10);
  for (const [V, D, rows] of [[1, 1, 1], [5, 3, 0], [11, 7, 13], [50, 64, 300], [1000, 256, 512]] as const) {
    const w = g.f32(V * D);
    const ids = g.ints(rows, V);
    if (rows > 3) ids[2] = ids[0]!;
    const want = new Float32Array(rows * D), got = new Float32Array(rows * D);
    R.embedding(w, ids, D, want);
    N.embedding(w, ids, D, got);
    assertClose(got, want, TOL.exact, `embedding V=${V} D=${D} rows=${rows}`);
    withThreads((t) => {
      const gout = g.f32(rows * D), gw0 = g.f32(V * D);
      const ew = copy(gw0), eg = copy(gw0);
      R.embeddingGrad(gout, ids, D, ew);
      N.embeddingGrad(gout, ids, D, eg);
      assertClose(eg, ew, TOL.exact, `embeddingGrad V=${V} D=${D} rows=${rows} threads=${t}`);
    });
  }
});

nativeTest('conv1dCausal / conv1dCausalGrad match the reference, with and without bias', () => {
  const g = new Gen(11);
  const cases: [number, number, number, number][] = [
    [1, 1, 1, 1], [1, 5, 3, 4], [2, 7, 5, 3], [2, 3, 9, 5], [3, 64, 33, 4], [2, 300, 96, 4], [1, 17, 8, 1],
  ];
  for (const [B, T, C, K] of cases) {
    for (const withBias of [true, false]) {
      const x = g.f32(B * T * C), w = g.f32(C * K), bias = withBias ? g.f32(C) : new Float32Array(0);
      const want = new Float32Array(B * T * C), got = new Float32Array(B * T * C);
      R.conv1dCausal(x, w, bias, B, T, C, K, want);
      N.conv1dCausal(x, w, bias, B, T, C, K, got);
      const label = `conv1dCausal B=${B} T=${T} C=${C} K=${K} bias=${withBias}`;
      assertClose(got, want, TOL.reduction, label);
      withThreads((t) => {
        const gy = g.f32(B * T * C), gw0 = g.f32(C * K), gb0 = withBias ? g.f32(C) : new Float32Array(0);
        const gxw = new Float32Array(B * T * C).fill(7), gxg = new Float32Array(B * T * C).fill(7);
        const gww = copy(gw0), gwg = copy(gw0), gbw = copy(gb0), gbg = copy(gb0);
        R.conv1dCausalGrad(x, w, gy, B, T, C, K, gxw, gww, gbw);
        N.conv1dCausalGrad(x, w, gy, B, T, C, K, gxg, gwg, gbg);
        assertClose(gxg, gxw, TOL.reduction, `${label} gx threads=${t}`);
        assertClose(gwg, gww, accumulation(B * T), `${label} gw threads=${t}`);
        assertClose(gbg, gbw, accumulation(B * T), `${label} gbias threads=${t}`);
      });
    }
  }
});

// ---- softmax family ------------------------------------------------------------------------------------------

const ROWS_N: [number, number][] = [
  [1, 1], [1, 7], [3, 8], [5, 17], [64, 64], [7, 1000], [300, 33], [2, 50257], [1, 4099],
];

/** Logits with a few -inf (masked) entries in some rows, plus one fully masked row when there are several rows. */
function logits(g: Gen, rows: number, n: number, scale = 3): F32 {
  const x = g.f32(rows * n, scale);
  for (let r = 0; r < rows; r += 3) if (n > 2) x[r * n + g.int(n)] = -Infinity;
  return x;
}

nativeTest('softmax / logSoftmax match the reference, masked rows included, in place too', () => {
  const g = new Gen(12);
  for (const [rows, n] of ROWS_N) {
    const x = logits(g, rows, n);
    if (rows > 4) x.fill(-Infinity, 4 * n, 5 * n);  // fully masked row: NaN in both
    if (rows > 5) x[5 * n + (n >> 1)] = NaN;  // a NaN anywhere makes its whole row NaN
    for (const k of ['softmax', 'logSoftmax'] as const) {
      const want = new Float32Array(rows * n), got = new Float32Array(rows * n);
      R[k](x, rows, n, want);
      N[k](x, rows, n, got);
      assertClose(got, want, TOL.norm, `${k} rows=${rows} n=${n}`);
      const inplace = copy(x);
      N[k](inplace, rows, n, inplace);
      assertClose(inplace, want, TOL.norm, `${k} rows=${rows} n=${n} in place`);
    }
  }
});

nativeTest('softmaxGrad / logSoftmaxGrad match the reference', () => {
  const g = new Gen(13);
  for (const [rows, n] of ROWS_N) {
    const x = logits(g, rows, n);
    const gy = g.f32(rows * n);
    for (const [fwd, bwd] of [['softmax', 'softmaxGrad'], ['logSoftmax', 'logSoftmaxGrad']] as const) {
      const y = new Float32Array(rows * n);
      R[fwd](x, rows, n, y);
      const want = new Float32Array(rows * n), got = new Float32Array(rows * n);
      R[bwd](y, gy, rows, n, want);
      N[bwd](y, gy, rows, n, got);
      assertClose(got, want, TOL.norm, `${bwd} rows=${rows} n=${n}`);
    }
  }
});

nativeTest('crossEntropy matches the reference: ignoreIndex rows, gradScale, optional dlogits', () => {
  const g = new Gen(14);
  const shapes: [number, number][] = [[1, 1], [1, 5], [4, 7], [33, 1000], [3, 50257], [200, 64], [5, 4099]];
  for (const [rows, V] of shapes) {
    for (const ignoreIndex of [-100, 3]) {
      for (const gradScale of [1, 1 / rows, 0, 2.5]) {
        const x = logits(g, rows, V, 4);
        if (rows > 2) x[2 * V + (V >> 1)] = NaN;  // NaN logits: NaN loss and gradient row (unless ignored)
        // targets never point at a -inf logit (an infinite loss is valid but says nothing about accuracy)
        const targets = new Int32Array(rows);
        for (let r = 0; r < rows; r++) {
          let t = g.int(V);
          while (x[r * V + t] === -Infinity) t = (t + 1) % V;
          targets[r] = t;
          if (g.u() < 0.25) targets[r] = ignoreIndex;
        }
        const lw = new Float32Array(rows), lg = new Float32Array(rows);
        const dw = new Float32Array(rows * V), dg = new Float32Array(rows * V).fill(NaN);
        R.crossEntropy(x, targets, rows, V, ignoreIndex, lw, dw, gradScale);
        N.crossEntropy(x, targets, rows, V, ignoreIndex, lg, dg, gradScale);
        const label = `crossEntropy rows=${rows} V=${V} ignore=${ignoreIndex} scale=${gradScale}`;
        assertClose(lg, lw, TOL.crossEntropy, `${label} losses`);
        assertClose(dg, dw, { rtol: TOL.crossEntropy.rtol, atol: TOL.crossEntropy.atol * Math.abs(gradScale) },
          `${label} dlogits`);
        const lonly = new Float32Array(rows);
        N.crossEntropy(x, targets, rows, V, ignoreIndex, lonly, new Float32Array(0), gradScale);
        assertClose(lonly, lw, TOL.crossEntropy, `${label} losses without dlogits`);
      }
    }
  }
  // every row ignored
  const x = g.f32(3 * 5), t = new Int32Array([-1, -1, -1]);
  const l = new Float32Array(3).fill(9), d = new Float32Array(15).fill(9);
  N.crossEntropy(x, t, 3, 5, -1, l, d, 1);
  assert.deepEqual([...l], [0, 0, 0]);
  assert.ok(d.every((v) => v === 0));
});

// ---- norms -----------------------------------------------------------------------------------------------------

const ROWS_D: [number, number][] = [[1, 1], [1, 64], [3, 7], [17, 129], [256, 256], [4, 1031], [2, 4096]];

nativeTest('rmsnorm / rmsnormGrad match the reference with and without weight', () => {
  const g = new Gen(15);
  for (const [rows, D] of ROWS_D) {
    for (const withW of [true, false]) {
      const x = g.f32(rows * D, 2, 0.5), w = withW ? g.f32(D, 0.5, 1) : new Float32Array(0);
      const label = `rmsnorm rows=${rows} D=${D} w=${withW}`;
      const yw = new Float32Array(rows * D), yg = new Float32Array(rows * D);
      const rw = new Float32Array(rows), rg = new Float32Array(rows);
      R.rmsnorm(x, w, rows, D, 1e-5, yw, rw);
      N.rmsnorm(x, w, rows, D, 1e-5, yg, rg);
      assertClose(yg, yw, TOL.norm, `${label} y`);
      assertClose(rg, rw, TOL.norm, `${label} rstd`);
      const inplace = copy(x);
      N.rmsnorm(inplace, w, rows, D, 1e-5, inplace, rg);
      assertClose(inplace, yw, TOL.norm, `${label} in place`);
      withThreads((t) => {
        const gy = g.f32(rows * D), gw0 = withW ? g.f32(D) : new Float32Array(0);
        const gxw = new Float32Array(rows * D), gxg = new Float32Array(rows * D);
        const gww = copy(gw0), gwg = copy(gw0);
        R.rmsnormGrad(x, w, rw, gy, rows, D, gxw, gww);
        N.rmsnormGrad(x, w, rw, gy, rows, D, gxg, gwg);
        assertClose(gxg, gxw, TOL.norm, `${label} gx threads=${t}`);
        assertClose(gwg, gww, accumulation(rows), `${label} gw threads=${t}`);
      });
    }
  }
});

nativeTest('layernorm / layernormGrad match the reference for every weight / bias combination', () => {
  const g = new Gen(16);
  for (const [rows, D] of ROWS_D) {
    for (const [withW, withB] of [[true, true], [true, false], [false, true], [false, false]] as const) {
      const x = g.f32(rows * D, 2, 3);
      const w = withW ? g.f32(D, 0.5, 1) : new Float32Array(0), b = withB ? g.f32(D) : new Float32Array(0);
      const label = `layernorm rows=${rows} D=${D} w=${withW} b=${withB}`;
      const yw = new Float32Array(rows * D), yg = new Float32Array(rows * D);
      const mw = new Float32Array(rows), mg = new Float32Array(rows);
      const rw = new Float32Array(rows), rg = new Float32Array(rows);
      R.layernorm(x, w, b, rows, D, 1e-5, yw, mw, rw);
      N.layernorm(x, w, b, rows, D, 1e-5, yg, mg, rg);
      assertClose(yg, yw, TOL.norm, `${label} y`);
      assertClose(mg, mw, TOL.norm, `${label} mean`);
      assertClose(rg, rw, TOL.norm, `${label} rstd`);
      withThreads((t) => {
        const gy = g.f32(rows * D);
        const gw0 = withW ? g.f32(D) : new Float32Array(0), gb0 = withB ? g.f32(D) : new Float32Array(0);
        const gxw = new Float32Array(rows * D), gxg = new Float32Array(rows * D);
        const gww = copy(gw0), gwg = copy(gw0), gbw = copy(gb0), gbg = copy(gb0);
        R.layernormGrad(x, w, mw, rw, gy, rows, D, gxw, gww, gbw);
        N.layernormGrad(x, w, mw, rw, gy, rows, D, gxg, gwg, gbg);
        assertClose(gxg, gxw, TOL.norm, `${label} gx threads=${t}`);
        assertClose(gwg, gww, accumulation(rows), `${label} gw threads=${t}`);
        assertClose(gbg, gbw, accumulation(rows), `${label} gb threads=${t}`);
      });
    }
  }
});

// ---- rope ------------------------------------------------------------------------------------------------------

nativeTest('rope matches the reference: both layouts, both signs, partial rotDim, in place', () => {
  const g = new Gen(17);
  const cases: [number, number, number, number, number][] = [
    [1, 1, 1, 2, 2], [2, 5, 3, 16, 16], [1, 7, 2, 64, 32], [2, 3, 4, 10, 6], [1, 4, 2, 8, 0], [1, 300, 4, 128, 128],
    [3, 9, 5, 96, 64], [1, 1, 32, 128, 128],
  ];
  for (const [B, T, H, Dh, rotDim] of cases) {
    const half = rotDim / 2;
    const invFreq = Float32Array.from({ length: half }, (_, i) => Math.pow(10000, -(2 * i) / rotDim));
    // small, large, and beyond 2^30 radians (the native table falls back to libm there)
    const positions = Int32Array.from({ length: T }, (_, t) => (t % 3 === 0 ? t : t % 3 === 1 ? 100000 + 37 * t : 2_000_000_000 - t));
    for (const interleaved of [1, 0]) {
      for (const sign of [1, -1]) {
        const x = g.f32(B * T * H * Dh);
        const label = `rope B=${B} T=${T} H=${H} Dh=${Dh} rot=${rotDim} interleaved=${interleaved} sign=${sign}`;
        const want = new Float32Array(x.length), got = new Float32Array(x.length);
        R.rope(x, B, T, H, Dh, rotDim, positions, invFreq, interleaved, sign, want);
        N.rope(x, B, T, H, Dh, rotDim, positions, invFreq, interleaved, sign, got);
        assertClose(got, want, TOL.norm, label);
        const inplace = copy(x);
        N.rope(inplace, B, T, H, Dh, rotDim, positions, invFreq, interleaved, sign, inplace);
        assertClose(inplace, want, TOL.norm, `${label} in place`);
        // the inverse rotation undoes the forward one
        N.rope(got, B, T, H, Dh, rotDim, positions, invFreq, interleaved, -sign, got);
        assertClose(got, x, { rtol: 1e-5, atol: 1e-5 }, `${label} round trip`);
      }
    }
  }
});

// ---- adamw -----------------------------------------------------------------------------------------------------

nativeTest('adamw matches the reference over several steps', () => {
  const g = new Gen(18);
  for (const n of [1, 7, 8, 1001, 200003]) {
    const p0 = g.f32(n), pw = copy(p0), pg = copy(p0);
    const mw = new Float32Array(n), mg = new Float32Array(n), vw = new Float32Array(n), vg = new Float32Array(n);
    const b1 = 0.9, b2 = 0.999;
    for (let step = 1; step <= 5; step++) {
      const grad = g.f32(n, step === 3 ? 1e-4 : 1);
      const bc1 = 1 - b1 ** step, bc2 = 1 - b2 ** step;
      R.adamw(pw, grad, mw, vw, 1e-3, b1, b2, 1e-8, 0.1, bc1, bc2);
      N.adamw(pg, grad, mg, vg, 1e-3, b1, b2, 1e-8, 0.1, bc1, bc2);
      assertClose(mg, mw, TOL.optimizer, `adamw n=${n} step=${step} m`);
      assertClose(vg, vw, TOL.optimizer, `adamw n=${n} step=${step} v`);
      assertClose(pg, pw, TOL.optimizer, `adamw n=${n} step=${step} p`);
    }
  }
});

// ---- argument validation -----------------------------------------------------------------------------------------

nativeTest('bad arguments throw RangeError / TypeError naming the kernel and the argument', () => {
  const f = (n: number): F32 => new Float32Array(n);
  const i = (...v: number[]): I32 => Int32Array.from(v);
  const range = (fn: () => void, re: RegExp): void => assert.throws(fn, (e: Error) => e instanceof RangeError && re.test(e.message));
  range(() => N.unary(UnaryOp.Exp, f(10), f(9)), /unary: y has length 9, needs at least 10/);
  range(() => N.unary(99 as UnaryOp, f(1), f(1)), /unary: unknown UnaryOp 99/);
  range(() => N.unaryGrad(UnaryOp.Exp, f(4), f(4), f(3), f(4)), /unaryGrad: gy/);
  range(() => N.binary(BinaryOp.Add, f(6), i(3, 1), f(1), i(0, 0), i(2, 3), f(5)), /binary: out/);
  range(() => N.binary(BinaryOp.Add, f(5), i(3, 1), f(1), i(0, 0), i(2, 3), f(6)), /binary: a \(length 5\)/);
  range(() => N.binary(BinaryOp.Add, f(6), i(3, 1), f(2), i(0, 1), i(2, 3), f(6)), /binary: b \(length 2\)/);
  range(() => N.binary(BinaryOp.Add, f(1), i(...Array(9).fill(0)), f(1), i(...Array(9).fill(0)), i(...Array(9).fill(1)), f(1)),
    /binary: shape has rank 9/);
  range(() => N.binary(BinaryOp.Add, f(6), i(1), f(6), i(1, 1), i(2, 3), f(6)), /binary: aStrides/);
  range(() => N.copyStrided(f(5), 0, i(-1), i(5), f(5)), /copyStrided: src/);
  range(() => N.copyStrided(f(5), 3, i(1), i(3), f(3)), /copyStrided: src \(length 5\)/);
  range(() => N.reduce(ReduceOp.Sum, f(5), 2, 3, 1, f(2)), /reduce: x has length 5, needs at least 6/);
  range(() => N.reduce(ReduceOp.Sum, f(6), -2, 3, 1, f(2)), /reduce: outer must be a non-negative integer/);
  range(() => N.reduce(ReduceOp.Sum, f(6), 2.5, 3, 1, f(2)), /reduce: outer/);
  range(() => N.gather(f(6), 1, 3, 2, i(0, 3), f(4)), /gather: idx\[1\] = 3 is outside \[0, 3\)/);
  range(() => N.gatherGrad(f(4), 1, 3, 2, i(-1, 0), f(6)), /gatherGrad: idx\[0\] = -1/);
  range(() => N.embedding(f(6), i(0, 3), 2, f(4)), /embedding: ids\[1\] = 3/);
  range(() => N.embeddingGrad(f(4), i(0, 1), 2, f(2)), /embeddingGrad: ids\[1\] = 1/);
  range(() => N.crossEntropy(f(6), i(0, 3), 2, 3, -100, f(2), f(0), 1), /crossEntropy: targets\[1\] = 3/);
  range(() => N.crossEntropy(f(6), i(0, 1), 2, 3, -100, f(2), f(5), 1), /crossEntropy: dlogits/);
  range(() => N.softmax(f(5), 2, 3, f(6)), /softmax: x has length 5/);
  range(() => N.rmsnorm(f(6), f(2), 2, 3, 1e-5, f(6), f(2)), /rmsnorm: w has length 2/);
  range(() => N.rmsnormGrad(f(6), f(3), f(2), f(6), 2, 3, f(6), f(0)), /rmsnormGrad: gw/);
  range(() => N.layernorm(f(6), f(0), f(2), 2, 3, 1e-5, f(6), f(2), f(2)), /layernorm: b/);
  range(() => N.layernormGrad(f(6), f(0), f(2), f(1), f(6), 2, 3, f(6), f(0), f(0)), /layernormGrad: rstd/);
  range(() => N.rope(f(8), 1, 1, 1, 8, 3, i(0), f(1), 1, 1, f(8)), /rope: rotDim = 3 must be even/);
  range(() => N.rope(f(8), 1, 1, 1, 8, 10, i(0), f(5), 1, 1, f(8)), /rope: rotDim = 10/);
  range(() => N.rope(f(8), 1, 2, 1, 4, 4, i(0), f(2), 1, 1, f(8)), /rope: positions/);
  range(() => N.conv1dCausal(f(6), f(5), f(0), 1, 3, 2, 3, f(6)), /conv1dCausal: w/);
  range(() => N.conv1dCausalGrad(f(6), f(6), f(6), 1, 3, 2, 3, f(6), f(6), f(1)), /conv1dCausalGrad: gbias/);
  range(() => N.adamw(f(4), f(4), f(3), f(4), 1e-3, 0.9, 0.999, 1e-8, 0, 1, 1), /adamw: m/);
  assert.throws(() => N.unary(UnaryOp.Exp, new Float64Array(2) as unknown as F32, f(2)),
    (e: Error) => e instanceof TypeError && /unary: argument 1 must be a Float32Array/.test(e.message));
  assert.throws(() => N.gather(f(6), 1, 3, 2, new Float32Array(2) as unknown as I32, f(4)),
    (e: Error) => e instanceof TypeError && /gather: argument 4 must be an Int32Array/.test(e.message));
});

// ---- the scalar fallback and other pool sizes ---------------------------------------------------------------

const CHILD_RUNS: { name: string; env: Record<string, string> }[] = [
  { name: 'RECURFORMER_SIMD=scalar', env: { RECURFORMER_SIMD: 'scalar' } },
  { name: 'RECURFORMER_THREADS=3', env: { RECURFORMER_THREADS: '3' } },
  { name: 'RECURFORMER_THREADS=1', env: { RECURFORMER_THREADS: '1' } },
];

for (const run of CHILD_RUNS) {
  test(`the whole file passes with ${run.name}`, { skip: process.env.RF_KERNELS_TEST_CHILD === '1' ? 'already a child run' : skip }, () => {
    const file = fileURLToPath(import.meta.url);
    // NODE_TEST_CONTEXT (set by a parent `node --test`) would make the child skip its tests and exit 0.
    const env: Record<string, string | undefined> = { ...process.env, ...run.env, RF_KERNELS_TEST_CHILD: '1' };
    delete env.NODE_TEST_CONTEXT;
    const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=tap', file], {
      env, encoding: 'utf8', timeout: 10 * 60 * 1000,
    });
    const out = `${r.stdout}\n${r.stderr}`;
    assert.equal(r.status, 0, `${run.name} run failed:\n${out}`);
    // the child must really have run the comparisons (all but the child-run tests, which it skips)
    const pass = Number(/^# pass (\d+)$/m.exec(r.stdout)?.[1] ?? 0);
    const skipped = Number(/^# skipped (\d+)$/m.exec(r.stdout)?.[1] ?? -1);
    assert.ok(pass >= 20 && skipped === CHILD_RUNS.length, `${run.name}: unexpected child summary\n${out}`);
  });
}
