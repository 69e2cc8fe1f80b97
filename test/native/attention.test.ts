/**
 * Attention kernels: the reference (oracle) against a naive float64 softmax(QK^T * scale + mask) V, the reference
 * backward against central finite differences, and the native addon against the reference over a grid of shapes
 * and masks (causal / non-causal, chunked prefill with qOffset, sliding window with and without sinks, GQA, odd
 * sizes, fully masked rows, multi-tile and split-K paths). The whole file is re-run once with
 * RECURFORMER_SIMD=scalar so the addon's portable fallback is checked too, and where the CPU has AVX-512 a child with
 * RECURFORMER_SIMD=avx2 must produce the same bits (the 512-bit kernels do per lane what the 256-bit ones do).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { getBackend } from '../../src/tensor/backend.js';
import { loadNative } from '../../src/tensor/native.js';
import type { Kernels } from '../../src/tensor/kernels.js';
import { TOL } from '../helpers/tolerances.js';

// Tolerances live in test/helpers/tolerances.ts (attentionOracle, attentionFwd, attentionGrad, attentionFd).
const ORACLE_ATOL = TOL.attentionOracle.atol;
const ORACLE_RTOL = TOL.attentionOracle.rtol;
const ATTN_FWD_ATOL = TOL.attentionFwd.atol;
const ATTN_FWD_RTOL = TOL.attentionFwd.rtol;
const ATTN_GRAD_ATOL = TOL.attentionGrad.atol;
const ATTN_GRAD_RTOL = TOL.attentionGrad.rtol;
// Step of the float64 central differences that validate the reference attentionGrad.
const FD_STEP = 1e-4;
const FD_ATOL = TOL.attentionFd.atol;
const FD_RTOL = TOL.attentionFd.rtol;

const CHILD_ENV = 'RECURFORMER_ATTN_TEST_CHILD';
const isChild = process.env[CHILD_ENV] === '1';

// ---- helpers ------------------------------------------------------------------------------------------------------

/** Seeded uniform(-amp, amp) Float32Array (mulberry32). */
function random(n: number, seed: number, amp = 1): Float32Array {
  let s = seed >>> 0;
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    a[i] = ((((t ^ (t >>> 14)) >>> 0) / 4294967296) * 2 - 1) * amp;
  }
  return a;
}

/**
 * Asserts |actual - expected| <= atol + rtol * |expected| element-wise (equal infinities match, NaN never does)
 * and reports the worst element with its index on failure.
 */
function assertClose(what: string, actual: ArrayLike<number>, expected: ArrayLike<number>, atol: number,
  rtol: number): void {
  assert.equal(actual.length, expected.length, `${what}: length ${actual.length} != ${expected.length}`);
  let worst = -1;
  let worstExcess = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i]!, e = expected[i]!;
    let excess: number;
    if (a === e) continue;
    if (Number.isNaN(a) || Number.isNaN(e) || !Number.isFinite(a) || !Number.isFinite(e)) excess = Infinity;
    else excess = Math.abs(a - e) - (atol + rtol * Math.abs(e));
    if (excess > 0 && (worst < 0 || excess > worstExcess)) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0) {
    const a = actual[worst]!, e = expected[worst]!;
    assert.fail(`${what}: worst mismatch at index ${worst}: actual ${a}, expected ${e}, |diff| ${Math.abs(a - e)} ` +
      `> ${atol} + ${rtol} * |expected|`);
  }
}

interface Shape {
  name: string;
  B: number; T: number; S: number; Hq: number; Hkv: number; Dh: number;
  /** Default qOffset (queries are the last T of S positions unless given). */
  qOffset?: number;
  /** Multiplies the usual 1/sqrt(Dh) scale (larger = peakier softmax, bigger running-max jumps). */
  scaleMul?: number;
}

interface MaskCase {
  name: string;
  causal: number; window: number; sinks: number;
  /** qOffset for this mask given the shape (default: the shape's). */
  qOffset?: (s: Shape) => number;
}

const defaultOffset = (s: Shape): number => s.qOffset ?? s.S - s.T;

interface Problem {
  B: number; T: number; S: number; Hq: number; Hkv: number; Dh: number;
  scale: number; causal: number; qOffset: number; window: number; sinks: number;
  q: Float32Array; k: Float32Array; v: Float32Array;
}

function makeProblem(s: Shape, m: MaskCase, seed: number): Problem {
  return {
    B: s.B, T: s.T, S: s.S, Hq: s.Hq, Hkv: s.Hkv, Dh: s.Dh,
    scale: (s.scaleMul ?? 1) / Math.sqrt(s.Dh),
    causal: m.causal, qOffset: m.qOffset ? m.qOffset(s) : defaultOffset(s), window: m.window, sinks: m.sinks,
    q: random(s.B * s.T * s.Hq * s.Dh, seed),
    k: random(s.B * s.S * s.Hkv * s.Dh, seed + 1),
    v: random(s.B * s.S * s.Hkv * s.Dh, seed + 2),
  };
}

interface Forward { o: Float32Array; lse: Float32Array; probs: Float32Array }

function runForward(kern: Kernels, p: Problem, withProbs: boolean): Forward {
  const o = new Float32Array(p.B * p.T * p.Hq * p.Dh).fill(NaN);
  const lse = new Float32Array(p.B * p.Hq * p.T).fill(NaN);
  const probs = withProbs ? new Float32Array(p.B * p.Hq * p.T * p.S).fill(NaN) : new Float32Array(0);
  kern.attention(p.q, p.k, p.v, p.B, p.T, p.S, p.Hq, p.Hkv, p.Dh, p.scale, p.causal, p.qOffset, p.window, p.sinks,
    o, lse, probs);
  return { o, lse, probs };
}

interface Grads { gq: Float32Array; gk: Float32Array; gv: Float32Array }

function runBackward(kern: Kernels, p: Problem, f: Forward, go: Float32Array): Grads {
  // NaN-filled outputs: the kernel must overwrite every element.
  const gq = new Float32Array(p.q.length).fill(NaN);
  const gk = new Float32Array(p.k.length).fill(NaN);
  const gv = new Float32Array(p.v.length).fill(NaN);
  kern.attentionGrad(p.q, p.k, p.v, f.o, f.lse, go, p.B, p.T, p.S, p.Hq, p.Hkv, p.Dh, p.scale, p.causal, p.qOffset,
    p.window, p.sinks, gq, gk, gv);
  return { gq, gk, gv };
}

/** The masking rule of kernels.ts, restated independently of the reference's `visible`. */
function maskAllows(p: Problem, i: number, j: number): boolean {
  const pos = p.qOffset + i;
  const causalOk = !p.causal || j <= pos;
  const windowOk = p.window <= 0 || j > pos - p.window || j < p.sinks;
  return causalOk && windowOk;
}

/**
 * Naive float64 attention, literally softmax(Q K^T * scale + M) V per (batch, query head) with explicit T x S
 * matrices, M = 0 / -inf. Inputs are read as float64 numbers (optionally with one entry overridden, for finite
 * differences). Returns o (B, T, Hq, Dh), lse (B, Hq, T) and probs (B, Hq, T, S) as float64.
 */
function naiveAttention(p: Problem, override?: { which: 'q' | 'k' | 'v'; index: number; value: number }) {
  const { B, T, S, Hq, Hkv, Dh, scale } = p;
  const nRep = Hq / Hkv;
  const get = (which: 'q' | 'k' | 'v', idx: number): number =>
    override && override.which === which && override.index === idx ? override.value : p[which][idx]!;
  const o = new Float64Array(B * T * Hq * Dh);
  const lse = new Float64Array(B * Hq * T);
  const probs = new Float64Array(B * Hq * T * S);
  for (let b = 0; b < B; b++) {
    for (let h = 0; h < Hq; h++) {
      const g = Math.floor(h / nRep);
      // Gather Q_h (T x Dh), K_g and V_g (S x Dh).
      const Q = Array.from({ length: T }, (_, i) =>
        Array.from({ length: Dh }, (_, d) => get('q', ((b * T + i) * Hq + h) * Dh + d)));
      const Km = Array.from({ length: S }, (_, j) =>
        Array.from({ length: Dh }, (_, d) => get('k', ((b * S + j) * Hkv + g) * Dh + d)));
      const Vm = Array.from({ length: S }, (_, j) =>
        Array.from({ length: Dh }, (_, d) => get('v', ((b * S + j) * Hkv + g) * Dh + d)));
      for (let i = 0; i < T; i++) {
        const logits = Km.map((kr, j) =>
          kr.reduce((acc, kd, d) => acc + Q[i]![d]! * kd, 0) * scale + (maskAllows(p, i, j) ? 0 : -Infinity));
        const mx = Math.max(...logits);
        const row = (b * Hq + h) * T + i;
        if (mx === -Infinity) {
          lse[row] = -Infinity; // no visible key: o stays 0, probs stay 0
          continue;
        }
        const e = logits.map((x) => Math.exp(x - mx));
        const z = e.reduce((acc, x) => acc + x, 0);
        lse[row] = mx + Math.log(z);
        for (let j = 0; j < S; j++) {
          const pj = e[j]! / z;
          probs[row * S + j] = pj;
          for (let d = 0; d < Dh; d++) o[((b * T + i) * Hq + h) * Dh + d]! += pj * Vm[j]![d]!;
        }
      }
    }
  }
  return { o, lse, probs };
}

// ---- cases -------------------------------------------------------------------------------------------------------

const SHAPES: Shape[] = [
  { name: 'B1 T1 S1 H1/1 Dh1', B: 1, T: 1, S: 1, Hq: 1, Hkv: 1, Dh: 1 },
  { name: 'B2 T3 S3 H2/1 Dh7', B: 2, T: 3, S: 3, Hq: 2, Hkv: 1, Dh: 7 },
  { name: 'chunked prefill B1 T5 S12 qOffset7 H4/4 Dh8', B: 1, T: 5, S: 12, Hq: 4, Hkv: 4, Dh: 8, qOffset: 7 },
  { name: 'B2 T13 S13 H4/1 Dh13', B: 2, T: 13, S: 13, Hq: 4, Hkv: 1, Dh: 13 },
  { name: 'B1 T17 S31 H2/2 Dh64', B: 1, T: 17, S: 31, Hq: 2, Hkv: 2, Dh: 64 },
  { name: 'B1 T31 S31 H8/2 Dh65', B: 1, T: 31, S: 31, Hq: 8, Hkv: 2, Dh: 65 },
  { name: 'multi-tile B1 T130 S130 H2/1 Dh17 peaky', B: 1, T: 130, S: 130, Hq: 2, Hkv: 1, Dh: 17, scaleMul: 4 },
  { name: 'decode split-K B1 T1 S700 H8/4 Dh64', B: 1, T: 1, S: 700, Hq: 8, Hkv: 4, Dh: 64 },
  { name: 'B3 T64 S200 H4/2 Dh31', B: 3, T: 64, S: 200, Hq: 4, Hkv: 2, Dh: 31 },
  { name: 'short chunk B2 T3 S17 H8/2 Dh3', B: 2, T: 3, S: 17, Hq: 8, Hkv: 2, Dh: 3 },
  // short decode caches of 128 KB and more split their keys over the threads (two splits of 56 keys; four of 40)
  { name: 'decode short split B1 T1 S100 H12/12 Dh64', B: 1, T: 1, S: 100, Hq: 12, Hkv: 12, Dh: 64 },
  { name: 'decode short split B2 T1 S150 H8/4 Dh64', B: 2, T: 1, S: 150, Hq: 8, Hkv: 4, Dh: 64 },
];

const MASKS: MaskCase[] = [
  { name: 'non-causal', causal: 0, window: 0, sinks: 0 },
  { name: 'causal', causal: 1, window: 0, sinks: 0 },
  { name: 'causal window 4', causal: 1, window: 4, sinks: 0 },
  { name: 'causal window S/3 + 1, 3 sinks', causal: 1, window: -1, sinks: 3 },
  { name: 'non-causal window 5, 1 sink', causal: 0, window: 5, sinks: 1 },
  { name: 'causal qOffset -2 (first rows fully masked)', causal: 1, window: 0, sinks: 0, qOffset: () => -2 },
  { name: 'non-causal window 2 past the end (rows fully masked)', causal: 0, window: 2, sinks: 0, qOffset: (s) => s.S },
];

/** Resolves the "S/3 + 1" window placeholder. */
function resolveMask(m: MaskCase, s: Shape): MaskCase {
  return m.window === -1 ? { ...m, window: Math.ceil(s.S / 3) + 1 } : m;
}

// ---- (1) the oracle against the naive float64 definition ---------------------------------------------------------

const reference = getBackend('reference').kernels;

test('reference attention matches naive float64 softmax(QK^T * scale + mask) V', async (t) => {
  // The big shapes add nothing here but run time; every mask case is covered on the others.
  const shapes = SHAPES.filter((s) => s.T * s.S * s.Hq <= 20000);
  for (const [si, s] of shapes.entries()) {
    for (const [mi, m0] of MASKS.entries()) {
      const m = resolveMask(m0, s);
      await t.test(`${s.name}, ${m.name}`, () => {
        const p = makeProblem(s, m, 1000 + 17 * si + mi);
        const f = runForward(reference, p, true);
        const n = naiveAttention(p);
        assertClose('o', f.o, n.o, ORACLE_ATOL, ORACLE_RTOL);
        assertClose('lse', f.lse, n.lse, ORACLE_ATOL, ORACLE_RTOL);
        assertClose('probs', f.probs, n.probs, ORACLE_ATOL, ORACLE_RTOL);
      });
    }
  }
});

test('naive float64 attention: masks behave as documented', () => {
  // Spot checks of the definition itself, so the oracle test is not circular: a causal query at position 0 sees
  // only key 0, a fully masked row is zero with lse -inf, and a sink stays visible outside the window.
  const s: Shape = { name: 'tiny', B: 1, T: 4, S: 6, Hq: 1, Hkv: 1, Dh: 2 };
  const causal = naiveAttention(makeProblem(s, { name: 'c', causal: 1, window: 0, sinks: 0, qOffset: () => 0 }, 5));
  assert.equal(causal.probs[0], 1);
  for (let j = 1; j < 6; j++) assert.equal(causal.probs[j], 0);
  const masked = naiveAttention(makeProblem(s, { name: 'm', causal: 1, window: 0, sinks: 0, qOffset: () => -1 }, 5));
  assert.equal(masked.lse[0], -Infinity);
  assert.deepEqual([...masked.o.slice(0, 2)], [0, 0]);
  const sink = naiveAttention(makeProblem(s, { name: 's', causal: 1, window: 2, sinks: 1, qOffset: () => 2 }, 5));
  // Query 3 sits at position 5: window 2 keeps keys 4 and 5, the sink keeps key 0.
  const row = 3 * 6;
  assert.ok(sink.probs[row]! > 0 && sink.probs[row + 4]! > 0 && sink.probs[row + 5]! > 0);
  for (const j of [1, 2, 3]) assert.equal(sink.probs[row + j], 0);
});

// ---- (3) the reference backward against finite differences -------------------------------------------------------

test('reference attentionGrad matches central differences of the float64 forward', async (t) => {
  const s: Shape = { name: 'fd', B: 1, T: 4, S: 6, Hq: 4, Hkv: 2, Dh: 3 };
  const masks: MaskCase[] = [
    { name: 'non-causal', causal: 0, window: 0, sinks: 0 },
    { name: 'causal qOffset 2', causal: 1, window: 0, sinks: 0 },
    { name: 'causal window 2, 1 sink', causal: 1, window: 2, sinks: 1 },
    { name: 'causal qOffset -1 (a fully masked row)', causal: 1, window: 0, sinks: 0, qOffset: () => -1 },
  ];
  for (const [mi, m] of masks.entries()) {
    await t.test(m.name, () => {
      const p = makeProblem(s, m, 77 + mi);
      const r = random(p.B * p.T * p.Hq * p.Dh, 99 + mi);
      const loss = (ov?: { which: 'q' | 'k' | 'v'; index: number; value: number }): number => {
        const { o } = naiveAttention(p, ov);
        let acc = 0;
        for (let i = 0; i < o.length; i++) acc += o[i]! * r[i]!;
        return acc;
      };
      const f = runForward(reference, p, false);
      const g = runBackward(reference, p, f, r);
      for (const which of ['q', 'k', 'v'] as const) {
        const x = p[which];
        const fd = new Float64Array(x.length);
        for (let i = 0; i < x.length; i++) {
          const x0 = x[i]!;
          fd[i] = (loss({ which, index: i, value: x0 + FD_STEP }) - loss({ which, index: i, value: x0 - FD_STEP })) /
            (2 * FD_STEP);
        }
        const analytic = which === 'q' ? g.gq : which === 'k' ? g.gk : g.gv;
        assertClose(`d loss / d ${which}`, analytic, fd, FD_ATOL, FD_RTOL);
      }
    });
  }
});

// ---- (2) native against the reference ------------------------------------------------------------------------------

const load = loadNative();
const nativeSkip = load.addon ? false : `native addon not built (${load.error ?? 'unknown'})`;

function compareNative(native: Kernels, s: Shape, m: MaskCase, seed: number): void {
  const p = makeProblem(s, m, seed);
  const ref = runForward(reference, p, true);
  const nat = runForward(native, p, false);
  assertClose('o', nat.o, ref.o, ATTN_FWD_ATOL, ATTN_FWD_RTOL);
  assertClose('lse', nat.lse, ref.lse, ATTN_FWD_ATOL, ATTN_FWD_RTOL);
  const natP = runForward(native, p, true);
  assertClose('probs', natP.probs, ref.probs, ATTN_FWD_ATOL, ATTN_FWD_RTOL);
  // Requesting probs must not change o / lse.
  assert.deepEqual(natP.o, nat.o);
  assert.deepEqual(natP.lse, nat.lse);
  // Backward on the same (reference) forward results so only attentionGrad is compared.
  const go = random(p.q.length, seed + 3);
  const gr = runBackward(reference, p, ref, go);
  const gn = runBackward(native, p, ref, go);
  assertClose('gq', gn.gq, gr.gq, ATTN_GRAD_ATOL, ATTN_GRAD_RTOL);
  assertClose('gk', gn.gk, gr.gk, ATTN_GRAD_ATOL, ATTN_GRAD_RTOL);
  assertClose('gv', gn.gv, gr.gv, ATTN_GRAD_ATOL, ATTN_GRAD_RTOL);
}

test('native backend serves attention and attentionGrad', { skip: nativeSkip }, () => {
  const b = getBackend('native');
  assert.ok(b.nativeKernels.includes('attention'), 'attention is not native');
  assert.ok(b.nativeKernels.includes('attentionGrad'), 'attentionGrad is not native');
  if (process.env.RECURFORMER_SIMD === 'scalar') assert.equal(b.simd, 'scalar');
});

for (const [si, s] of SHAPES.entries()) {
  test(`native attention matches reference: ${s.name}`, { skip: nativeSkip }, async (t) => {
    const native = getBackend('native').kernels;
    for (const [mi, m0] of MASKS.entries()) {
      const m = resolveMask(m0, s);
      await t.test(m.name, () => compareNative(native, s, m, 5000 + 31 * si + mi));
    }
  });
}

// The thread count changes the work split (split-K decode with a log-sum-exp merge, per-thread dQ partials in the
// backward). It is fixed when the addon loads, so each count runs in a child process with RECURFORMER_THREADS
// set. (setThreads() is not used: switching the pool size at run time currently crashes in runtime.cpp.)
const THREADS_ENV = 'RECURFORMER_ATTN_TEST_THREADS';
const threadChild = process.env[THREADS_ENV];
const THREAD_TEST = 'native attention is independent of the thread count';

/**
 * Runs this file again in a child `node --test` with extra environment and asserts that it exited 0 having run
 * and passed at least one test. NODE_TEST_CONTEXT is removed: node sets it for test-file processes, and a
 * `--test` child that inherits it silently skips its files (and exits 0).
 */
function runSelf(what: string, extraEnv: Record<string, string>, args: string[] = []): void {
  const file = fileURLToPath(import.meta.url);
  const env: Record<string, string | undefined> = { ...process.env, RECURFORMER_QUIET: '1', ...extraEnv };
  delete env.NODE_TEST_CONTEXT;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--test', '--test-reporter=tap', ...args, file], {
    cwd: join(dirname(file), '..', '..'),
    env,
    encoding: 'utf8',
    timeout: 10 * 60 * 1000,
  });
  const out = `${r.stdout}\n${r.stderr}`;
  assert.equal(r.status, 0, `${what} failed (status ${r.status}, signal ${r.signal}):\n${out}`);
  const pass = Number(/^# pass (\d+)$/m.exec(r.stdout)?.[1] ?? 0);
  const fail = Number(/^# fail (\d+)$/m.exec(r.stdout)?.[1] ?? -1);
  assert.ok(pass > 0 && fail === 0, `${what} ran no tests or failed some (pass ${pass}, fail ${fail}):\n${out}`);
}

test(THREAD_TEST, { skip: nativeSkip }, async (t) => {
  if (threadChild === undefined) {
    for (const threads of ['1', '3']) {
      await t.test(`${threads} thread(s), in a child process`, () => {
        runSelf(`RECURFORMER_THREADS=${threads} run`, { RECURFORMER_THREADS: threads, [THREADS_ENV]: threads },
          ['--test-name-pattern', THREAD_TEST]);
      });
    }
    return;
  }
  assert.equal(getBackend('native').threads, Number(threadChild), 'RECURFORMER_THREADS was not applied');
  const native = getBackend('native').kernels;
  const cases: [Shape, MaskCase][] = [
    [SHAPES[7]!, MASKS[3]!], // decode, window + sinks
    [{ name: 'B1 T40 S300 H1/1 Dh16', B: 1, T: 40, S: 300, Hq: 1, Hkv: 1, Dh: 16 }, MASKS[1]!],
    [{ name: 'B1 T1 S1000 H4/1 Dh24', B: 1, T: 1, S: 1000, Hq: 4, Hkv: 1, Dh: 24 }, MASKS[0]!],
    [SHAPES[8]!, MASKS[4]!],
    [SHAPES[10]!, MASKS[1]!], // short decode split
    [{ name: 'B1 T1 S130 H2/1 Dh128 (MQA decode split)', B: 1, T: 1, S: 130, Hq: 2, Hkv: 1, Dh: 128 }, MASKS[3]!],
  ];
  for (const [ci, [s, m0]] of cases.entries()) {
    const m = resolveMask(m0, s);
    await t.test(`${s.name}, ${m.name}`, () => compareNative(native, s, m, 9000 + ci));
  }
});

test('native attention treats fractional mask parameters like the reference', { skip: nativeSkip }, async (t) => {
  // The contract passes positions as numbers; non-integers must compare exactly as in the reference.
  const native = getBackend('native').kernels;
  const s: Shape = { name: 'B1 T6 S9 H2/1 Dh5', B: 1, T: 6, S: 9, Hq: 2, Hkv: 1, Dh: 5 };
  const cases: MaskCase[] = [
    { name: 'causal qOffset -0.5', causal: 1, window: 0, sinks: 0, qOffset: () => -0.5 },
    { name: 'causal qOffset 2.5, window 2.5, sinks 1.5', causal: 1, window: 2.5, sinks: 1.5, qOffset: () => 2.5 },
    { name: 'non-causal window 0.5', causal: 0, window: 0.5, sinks: 0, qOffset: () => 1 },
  ];
  for (const [ci, m] of cases.entries()) await t.test(m.name, () => compareNative(native, s, m, 7000 + ci));
});

test('native attention rejects inconsistent sizes', { skip: nativeSkip }, () => {
  const native = getBackend('native').kernels;
  const f = (n: number) => new Float32Array(n);
  // B=1 T=2 S=3 Hq=2 Hkv=1 Dh=4: q/o 16, k/v 12, lse 4.
  assert.throws(() => native.attention(f(16), f(12), f(12), 1, 2, 3, 2, 1, 4, 0.5, 1, 0, 0, 0, f(15), f(4), f(0)),
    RangeError);
  assert.throws(() => native.attention(f(16), f(12), f(12), 1, 2, 3, 3, 2, 4, 0.5, 1, 0, 0, 0, f(16), f(4), f(0)),
    RangeError);
  assert.throws(() => native.attention(f(16), f(12), f(12), 1, 2, 3, 2, 1, 4, 0.5, 1, 0, 0, 0, f(16), f(4), f(5)),
    RangeError);
  assert.throws(() => native.attentionGrad(f(16), f(12), f(12), f(16), f(4), f(16), 1, 2, 3, 2, 1, 4, 0.5, 1, 0, 0, 0,
    f(16), f(11), f(12)), RangeError);
});

// ---- (4) the scalar fallback -----------------------------------------------------------------------------------------

test('the whole file passes with RECURFORMER_SIMD=scalar', { skip: isChild || nativeSkip }, () => {
  runSelf('RECURFORMER_SIMD=scalar run', { RECURFORMER_SIMD: 'scalar', [CHILD_ENV]: '1' });
});

// ---- (5) AVX-512 against AVX2: the same bits ---------------------------------------------------------------------

/** Forward (o, lse) and backward (gq, gk, gv) of a few prefill-sized cases, hashed. */
function attentionFingerprint(): string {
  const native = getBackend('native').kernels;
  const cases: [Shape, MaskCase][] = [
    [{ name: 'B1 T70 S70 H4/2 Dh64', B: 1, T: 70, S: 70, Hq: 4, Hkv: 2, Dh: 64 }, MASKS[1]!],
    [{ name: 'B2 T37 S90 H3/1 Dh20', B: 2, T: 37, S: 90, Hq: 3, Hkv: 1, Dh: 20 }, MASKS[4]!],
    [{ name: 'B1 T48 S48 H2/2 Dh40', B: 1, T: 48, S: 48, Hq: 2, Hkv: 2, Dh: 40 }, MASKS[3]!],
  ];
  return cases.map(([s, m0], ci) => {
    const m = resolveMask(m0, s);
    const p = makeProblem(s, m, 11000 + ci);
    const f = runForward(native, p, false);
    const g = runBackward(native, p, f, random(f.o.length, 12000 + ci));
    const h = createHash('sha256');
    for (const a of [f.o, f.lse, g.gq, g.gk, g.gv]) h.update(Buffer.from(a.buffer, a.byteOffset, a.byteLength));
    return h.digest('hex');
  }).join('|');
}

const FP_ENV = 'RECURFORMER_ATTN_TEST_FINGERPRINT';
if (process.env[FP_ENV] && !nativeSkip) process.stdout.write(`# fingerprint ${attentionFingerprint()}\n`);

const avx512Skip = isChild || nativeSkip || (loadNative().addon?.info().attention === 'avx512' ? false : 'the AVX-512 attention kernels are not in use on this CPU');
test('the AVX-512 attention kernels give the AVX2 kernels\' bits (child with RECURFORMER_SIMD=avx2)', { skip: avx512Skip }, () => {
  const file = fileURLToPath(import.meta.url);
  const env: Record<string, string | undefined> = { ...process.env, RECURFORMER_SIMD: 'avx2', [FP_ENV]: '1', [CHILD_ENV]: '1' };
  delete env.NODE_TEST_CONTEXT;
  const r = spawnSync(process.execPath, ['--import', 'tsx', '--test-name-pattern', 'serves attention', file], { env, encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr.slice(-2000));
  const theirs = /# fingerprint (\S+)/.exec(r.stdout)?.[1];
  assert.ok(theirs, 'the child printed no fingerprint');
  assert.equal(attentionFingerprint(), theirs, 'the AVX2 run computed other bits');
});
