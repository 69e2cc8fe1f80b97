/**
 * Throughput of the native element-wise, row and optimizer kernels against the reference backend.
 *
 *   node --import tsx bench/kernels.ts            (RECURFORMER_SIMD=scalar / RECURFORMER_THREADS=n to compare)
 *
 * Last, the quantized products of a prefill (gemmQ: 128 activation rows against Q4_K / Q5_K / Q6_K weights, the
 * decode benchmark's shapes) in billions of multiply-adds x 2 per second, against the float32 product (gemm) of the
 * same shape in the same run.
 *
 * GB/s counts the bytes a kernel must move at least (inputs read once, outputs written once), so it can be compared
 * with the machine's streaming bandwidth. Each timing is the fastest of repeated runs after a warm-up (this is a
 * shared machine: medians wander, minima are stable); the median is printed alongside.
 */
import { getBackend } from '../src/tensor/backend.js';
import { BinaryOp, UnaryOp, type Kernels } from '../src/tensor/kernels.js';
import { GgmlType, quantize, type QuantType } from '../src/io/ggml-quants.js';
import { loadNative } from '../src/tensor/native.js';

const native = getBackend('native');
const N = native.kernels;
const R = getBackend('reference').kernels;

function randn(n: number, scale = 1): Float32Array {
  const a = new Float32Array(n);
  let s = 12345;
  for (let i = 0; i < n; i++) {
    // xorshift; a cheap deterministic source is enough for timing
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    a[i] = ((s >>> 0) / 4294967296 - 0.5) * 3.4 * scale;
  }
  return a;
}

interface Timing {
  min: number;
  median: number;
}

/** Runs fn until `budgetMs` is spent (at least 3 and at most 200 times) after one warm-up call; times in ms. */
function time(fn: () => void, budgetMs: number): Timing {
  fn();
  const t: number[] = [];
  const start = performance.now();
  while (t.length < 3 || (t.length < 200 && performance.now() - start < budgetMs)) {
    const t0 = performance.now();
    fn();
    t.push(performance.now() - t0);
  }
  t.sort((a, b) => a - b);
  return { min: t[0]!, median: t[t.length >> 1]! };
}

interface Case {
  name: string;
  shape: string;
  bytes: number;
  run: (k: Kernels) => void;
}

function cases(): Case[] {
  const out: Case[] = [];
  const rows = 2048;
  for (const D of [256, 512]) {
    const x = randn(rows * D), y = new Float32Array(rows * D), gy = randn(rows * D), gx = new Float32Array(rows * D);
    const w = randn(D, 0.3).map((v) => v + 1), gw = new Float32Array(D), rstd = new Float32Array(rows);
    const shape = `${rows} x ${D}`;
    out.push({ name: 'softmax', shape, bytes: 8 * rows * D, run: (k) => k.softmax(x, rows, D, y) });
    out.push({ name: 'rmsnorm', shape, bytes: 8 * rows * D, run: (k) => k.rmsnorm(x, w, rows, D, 1e-5, y, rstd) });
    out.push({
      name: 'rmsnormGrad', shape, bytes: 12 * rows * D,
      run: (k) => k.rmsnormGrad(x, w, rstd, gy, rows, D, gx, gw),
    });
    out.push({ name: 'unary silu', shape, bytes: 8 * rows * D, run: (k) => k.unary(UnaryOp.Silu, x, y) });
    const shp = Int32Array.from([rows, D]), st = Int32Array.from([D, 1]), row = Int32Array.from([0, 1]);
    out.push({ name: 'binary add', shape, bytes: 12 * rows * D, run: (k) => k.binary(BinaryOp.Add, x, st, gy, st, shp, y) });
    const bias = randn(D);
    out.push({
      name: 'binary add (row bcast)', shape, bytes: 8 * rows * D,
      run: (k) => k.binary(BinaryOp.Add, x, st, bias, row, shp, y),
    });
  }
  for (const [rows_, V] of [[2048, 512], [256, 32000]] as const) {
    const logits = randn(rows_ * V, 2), d = new Float32Array(rows_ * V), losses = new Float32Array(rows_);
    const targets = Int32Array.from({ length: rows_ }, (_, i) => (i * 7919) % V);
    out.push({
      name: 'crossEntropy (+grad)', shape: `${rows_} x ${V}`, bytes: 8 * rows_ * V,
      run: (k) => k.crossEntropy(logits, targets, rows_, V, -100, losses, d, 1 / rows_),
    });
  }
  {
    const [B, T, H, Dh] = [1, 2048, 32, 128];
    const x = randn(B * T * H * Dh), y = new Float32Array(x.length);
    const positions = Int32Array.from({ length: T }, (_, t) => t);
    const invFreq = Float32Array.from({ length: Dh / 2 }, (_, i) => Math.pow(10000, -(2 * i) / Dh));
    out.push({
      name: 'rope (rotate-half)', shape: `${T}x${H}x${Dh}`, bytes: 8 * x.length,
      run: (k) => k.rope(x, B, T, H, Dh, Dh, positions, invFreq, 0, 1, y),
    });
  }
  const P = 3_500_000;
  const p = randn(P, 0.1), g = randn(P), m = new Float32Array(P), v = new Float32Array(P);
  out.push({
    name: 'adamw', shape: '3.5M params', bytes: 28 * P,
    run: (k) => k.adamw(p, g, m, v, 1e-3, 0.9, 0.999, 1e-8, 0.1, 0.5, 0.01),
  });
  return out;
}

/** Decode-sized calls: one short row, where the per-call overhead is the whole cost. */
function tinyCases(): Case[] {
  const D = 64;
  const x = randn(D), y = new Float32Array(D), w = randn(D), rstd = new Float32Array(1);
  return [
    { name: 'softmax', shape: `1 x ${D}`, bytes: 8 * D, run: (k) => k.softmax(x, 1, D, y) },
    { name: 'rmsnorm', shape: `1 x ${D}`, bytes: 8 * D, run: (k) => k.rmsnorm(x, w, 1, D, 1e-5, y, rstd) },
    { name: 'unary silu', shape: `${D}`, bytes: 8 * D, run: (k) => k.unary(UnaryOp.Silu, x, y) },
  ];
}

const pad = (s: string, n: number): string => s.padEnd(n);
const lpad = (s: string, n: number): string => s.padStart(n);

console.log(`native backend: simd=${native.simd} threads=${native.threads}`);
console.log(`${pad('kernel', 24)}${pad('shape', 14)}${lpad('native ms', 11)}${lpad('(median)', 10)}${lpad('GB/s', 8)}` +
  `${lpad('ref ms', 10)}${lpad('GB/s', 7)}${lpad('speedup', 9)}`);
for (const c of cases()) {
  const nt = time(() => c.run(N), 400);
  const rt = time(() => c.run(R), 1500);
  const gbs = (t: number): string => (c.bytes / (t * 1e6)).toFixed(1);
  console.log(`${pad(c.name, 24)}${pad(c.shape, 14)}${lpad(nt.min.toFixed(3), 11)}${lpad(nt.median.toFixed(3), 10)}` +
    `${lpad(gbs(nt.min), 8)}${lpad(rt.min.toFixed(2), 10)}${lpad(gbs(rt.min), 7)}${lpad(`${(rt.min / nt.min).toFixed(1)}x`, 9)}`);
}

console.log('\ndecode-sized calls (per-call latency, including the N-API boundary)');
for (const c of tinyCases()) {
  const reps = 20000;
  const per = (k: Kernels): number => time(() => {
    for (let i = 0; i < reps; i++) c.run(k);
  }, 300).min * 1e3 / reps;
  const n = per(N), r = per(R);
  console.log(`${pad(c.name, 24)}${pad(c.shape, 14)}${lpad(`${n.toFixed(2)} us`, 11)}${lpad(`ref ${r.toFixed(2)} us`, 18)}` +
    `${lpad(`${(r / n).toFixed(1)}x`, 9)}`);
}

const info = loadNative().addon?.info();
console.log(`\nquantized products of a prefill (gemmQ; products on ${info?.amx ? 'AMX tiles' : info?.vnni ? 'AVX-512 VNNI' : native.simd})`);
console.log(`${pad('type', 8)}${pad('M x N x K', 18)}${lpad('ms', 8)}${lpad('GOPS', 8)}${lpad('f32 gemm GOPS', 15)}${lpad('ratio', 8)}`);
for (const [type, m, n, k] of [[GgmlType.Q4_K, 128, 768, 768], [GgmlType.Q4_K, 128, 2048, 768], [GgmlType.Q5_K, 128, 2048, 768],
  [GgmlType.Q6_K, 128, 768, 2048], [GgmlType.Q4_K, 16, 2048, 768]] as [QuantType, number, number, number][]) {
  const wf = randn(n * k, 0.02), w = quantize(type, wf), a = randn(m * k), c = new Float32Array(m * n);
  const q = time(() => N.gemmQ(m, n, k, a, type, w, c), 400);
  const f = time(() => N.gemm(0, 1, m, n, k, 1, a, 0, wf, 0, 0, c, 0, 1), 400);
  const gops = (t: number): number => (2 * m * n * k) / (t * 1e6);
  console.log(`${pad(GgmlType[type], 8)}${pad(`${m} x ${n} x ${k}`, 18)}${lpad(q.min.toFixed(3), 8)}${lpad(gops(q.min).toFixed(0), 8)}` +
    `${lpad(gops(f.min).toFixed(0), 15)}${lpad(`${(f.min / q.min).toFixed(2)}x`, 8)}`);
}
