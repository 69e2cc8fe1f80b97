/**
 * Benchmark helpers: the native hardware probes (measured FMA peak and memory bandwidth) and a best-of timer.
 * Figures are reported against what this machine measurably delivers, not against datasheet numbers, because the
 * benchmarks run on VMs whose clocks, caches and memory channels are whatever the host hands out.
 */
import type { NativeAddon } from '../../src/tensor/native.js';

/** Kernel set and blocking of the native packed GEMM (native/src/gemm.cpp). */
export interface GemmInfo {
  isa: 'avx512' | 'avx2' | 'scalar';
  mr: number;
  nr: number;
  mc: number;
  kc: number;
  nc: number;
}

/** The addon functions the engine benchmark needs, all present. */
export type BenchAddon = NativeAddon &
  Required<Pick<NativeAddon, 'gemm' | 'gemmF16' | 'f32ToF16' | 'measureBandwidth'>> & {
    /** isa 'avx512' measures zmm FMAs (NaN without AVX-512F); the default is AVX2. */
    measureFmaPeak(seconds: number, threads: number, isa?: 'avx2' | 'avx512'): number;
    gemmInfo(): GemmInfo;
  };

export function requireBenchAddon(addon: NativeAddon | null, why: string | null): BenchAddon {
  if (!addon) throw new Error(`native addon unavailable (${why ?? 'unknown'}); run \`npm run build:native\``);
  const fns = addon as unknown as Record<string, unknown>;
  const missing = ['gemm', 'gemmF16', 'f32ToF16', 'measureFmaPeak', 'measureBandwidth', 'gemmInfo'].filter(
    (n) => typeof fns[n] !== 'function',
  );
  if (missing.length > 0) throw new Error(`native addon lacks ${missing.join(', ')}; rebuild it`);
  return addon as unknown as BenchAddon;
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
