/**
 * Benchmark helpers: the native hardware probes (measured FMA peak and memory bandwidth) and a best-of timer.
 * Figures are reported against what this machine measurably delivers, not against datasheet numbers, because the
 * benchmarks run on VMs whose clocks, caches and memory channels are whatever the host hands out.
 *
 * The probes are not part of the production addon: `npm run build:native` builds them into their own module,
 * native/build/Release/recurformer_bench.node (native/src/bench/probes.cpp), next to recurformer.node, and only
 * this file loads it.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { loadNative, type NativeAddon } from '../../src/tensor/native.js';

/** Kernel set and blocking of the native packed GEMM (native/src/gemm.cpp). */
export interface GemmInfo {
  isa: 'avx512' | 'avx2' | 'scalar';
  mr: number;
  nr: number;
  mc: number;
  kc: number;
  nc: number;
}

/**
 * The hardware probes of recurformer_bench.node. Both run on that module's own thread pool: `threads` is capped at
 * its size (RECURFORMER_THREADS, else every core, like the production addon's pool).
 */
export interface Probes {
  /** Measured FMA GFLOPS over `seconds`; isa 'avx512' measures zmm FMAs (NaN without AVX-512F), default AVX2. */
  measureFmaPeak(seconds: number, threads: number, isa?: 'avx2' | 'avx512'): number;
  /** Streaming-read GB/s (1e9 bytes per second) over a buffer of `bytes`, best pass within `seconds`. */
  measureBandwidth(bytes: number, seconds: number, threads: number): number;
}

export interface ProbesLoad {
  probes: Probes | null;
  /** Why the module is unavailable (null when it loaded). */
  error: string | null;
  path: string;
}

/** Loads recurformer_bench.node from the folder of the production addon (so RECURFORMER_NATIVE_PATH moves both). */
export function loadProbes(addonPath = loadNative().path): ProbesLoad {
  const path = join(dirname(addonPath), 'recurformer_bench.node');
  try {
    const probes = createRequire(import.meta.url)(path) as Probes;
    if (typeof probes.measureFmaPeak !== 'function' || typeof probes.measureBandwidth !== 'function') {
      return { probes: null, error: `${path} lacks the probes; rebuild it`, path };
    }
    return { probes, error: null, path };
  } catch (e) {
    return { probes: null, error: (e as Error).message.split('\n')[0]!, path };
  }
}

/** The addon functions the engine benchmark needs, all present, with the probes of recurformer_bench.node. */
export type BenchAddon = NativeAddon & Required<Pick<NativeAddon, 'gemm' | 'gemmF16' | 'f32ToF16'>> & Probes & {
  gemmInfo(): GemmInfo;
};

/** The production addon plus the hardware probes, or an error that says what to build. */
export function requireBenchAddon(addon: NativeAddon | null, why: string | null): BenchAddon {
  if (!addon) throw new Error(`native addon unavailable (${why ?? 'unknown'}); run \`npm run build:native\``);
  const fns = addon as unknown as Record<string, unknown>;
  const missing = ['gemm', 'gemmF16', 'f32ToF16', 'gemmInfo'].filter((n) => typeof fns[n] !== 'function');
  if (missing.length > 0) throw new Error(`native addon lacks ${missing.join(', ')}; rebuild it`);
  const { probes, error } = loadProbes();
  if (!probes) {
    throw new Error(`benchmark probes unavailable (${error ?? 'unknown'}); \`npm run build:native\` builds ` +
      'native/build/Release/recurformer_bench.node next to the addon');
  }
  return { ...fns, measureFmaPeak: probes.measureFmaPeak, measureBandwidth: probes.measureBandwidth } as unknown as BenchAddon;
}

export interface HwFigures {
  /** AVX2 FMA GFLOPS on all pool threads (2 on the reference machine) and on one thread. */
  peakGflops: number;
  peakGflops1: number;
  /** AVX-512 FMA GFLOPS on all pool threads, or null without AVX-512F. */
  peakGflops512: number | null;
  /** Streaming-read GB/s on all pool threads over a buffer larger than the last-level cache. */
  bandwidthGBs: number;
  threads: number;
}

/** One GiB: bigger than the 480 MiB L3 the VM reports, so the bandwidth probe streams from memory. */
export const BANDWIDTH_BYTES = 2 ** 30;

/** Highest of `n` readings: the probes can only be slowed down (by other load on a shared host), never sped up. */
function bestOf(n: number, probe: () => number): number {
  let best = 0;
  for (let i = 0; i < n; i++) best = Math.max(best, probe());
  return best;
}

export function measureHw(addon: BenchAddon, threads: number): HwFigures {
  const peakGflops = bestOf(3, () => addon.measureFmaPeak(0.5, threads));
  const peakGflops1 = bestOf(3, () => addon.measureFmaPeak(0.5, 1));
  const p512 = bestOf(2, () => addon.measureFmaPeak(0.5, threads, 'avx512'));
  const bandwidthGBs = bestOf(3, () => addon.measureBandwidth(BANDWIDTH_BYTES, 1.0, threads));
  return { peakGflops, peakGflops1, peakGflops512: Number.isFinite(p512) && p512 > 0 ? p512 : null, bandwidthGBs, threads };
}

/**
 * Best wall time (seconds) of `fn` after `warmup` untimed calls: repeats until `budget` seconds are spent, at
 * least `minReps` and at most `maxReps` times. The minimum is the figure least disturbed by the host.
 */
export function bestTime(fn: () => void, opts: { warmup?: number; minReps?: number; maxReps?: number; budget?: number } = {}): number {
  const { warmup = 2, minReps = 5, maxReps = 200, budget = 1.0 } = opts;
  for (let i = 0; i < warmup; i++) fn();
  let best = Infinity;
  const start = process.hrtime.bigint();
  for (let rep = 0; rep < maxReps; rep++) {
    const t0 = process.hrtime.bigint();
    fn();
    const t1 = process.hrtime.bigint();
    best = Math.min(best, Number(t1 - t0) / 1e9);
    if (rep + 1 >= minReps && Number(t1 - start) / 1e9 >= budget) break;
  }
  return best;
}

/** Uniform random floats in [-1, 1) from a small deterministic generator (fast enough for 10^8 values). */
export function randomFloats(n: number, seed = 1): Float32Array {
  const out = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    out[i] = (s >>> 0) / 2 ** 31 - 1;
  }
  return out;
}

export function pct(x: number): string {
  return `${(x * 100).toFixed(1)}%`;
}
