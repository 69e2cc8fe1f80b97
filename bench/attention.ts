/**
 * Attention kernel benchmark (native backend): `node --import tsx bench/attention.ts`.
 *
 * Prints
 *  - forward and backward GFLOPS for causal prefill / training at B=8, H=4, T=S=256, Dh=64. The forward counts
 *    4*T*S*Dh*B*H/2 flops (QK^T and PV, halved by the causal mask); the backward counts 2.5x that (five
 *    T x S x Dh products: QK^T and dO V^T recomputed, then dV, dK and dQ), the usual FlashAttention convention.
 *  - decode at T=1, S=32768, Hq=8, Hkv=4, Dh=64 as GB/s of K and V read once (64 MiB per call). "hot" reuses one
 *    cache, which may stay in a large last-level cache; "cold" cycles through enough distinct caches to exceed
 *    the last-level cache, which is the DRAM-bound figure to compare with the machine's streaming bandwidth.
 * Each figure is given as median (best) of repeated runs after a warm-up: on a shared machine the best run is the
 * closer estimate of what the kernel can do, the median of what a run typically gets. RECURFORMER_THREADS=1 gives
 * single-thread figures.
 */
import { cpus } from 'node:os';
import { readFileSync } from 'node:fs';
import { getBackend } from '../src/tensor/backend.js';
import { loadProbes } from './lib/hw.js';

const backend = getBackend('native');
const kern = backend.kernels;
if (!backend.nativeKernels.includes('attention') || !backend.nativeKernels.includes('attentionGrad')) {
  console.error('bench/attention: the native addon does not implement attention; run `npm run build:native`');
  process.exit(1);
}

/** Deterministic uniform(-1, 1) fill. */
function randomArray(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    a[i] = (s / 4294967296) * 2 - 1;
  }
  return a;
}

interface Timing { median: number; best: number }

/** Median and best seconds per call of fn over repeated timed runs lasting at least minSeconds in total. */
function timeIt(fn: (iter: number) => void, minSeconds: number, minRuns = 5): Timing {
  for (let w = 0; w < 3; w++) fn(w);
  const times: number[] = [];
  const start = performance.now();
  let iter = 0;
  while (times.length < minRuns || performance.now() - start < minSeconds * 1000) {
    const t0 = performance.now();
    fn(iter++);
    times.push((performance.now() - t0) / 1000);
  }
  times.sort((x, y) => x - y);
  return { median: times[Math.floor(times.length / 2)]!, best: times[0]! };
}

/** "median (best)" of a rate work / seconds, and the median time in ms. */
function rate(t: Timing, work: number, unit: string): string {
  return `${(t.median * 1e3).toFixed(3)} ms, ${(work / t.median / 1e9).toFixed(1)} (best ${(work / t.best / 1e9).toFixed(1)}) ${unit}`;
}

function lastLevelCacheBytes(): number {
  // Linux exposes the cache hierarchy in sysfs; fall back to 64 MiB elsewhere.
  let best = 64 * 2 ** 20;
  for (let idx = 0; idx < 8; idx++) {
    try {
      const base = `/sys/devices/system/cpu/cpu0/cache/index${idx}`;
      const size = readFileSync(`${base}/size`, 'utf8').trim();
      const m = /^(\d+)([KMG]?)$/.exec(size);
      if (!m) continue;
      const mul = m[2] === 'K' ? 2 ** 10 : m[2] === 'M' ? 2 ** 20 : m[2] === 'G' ? 2 ** 30 : 1;
      best = Math.max(best, Number(m[1]) * mul);
    } catch {
      break;
    }
  }
  return best;
}

console.log(`attention bench: simd=${backend.simd} threads=${backend.threads} cpu="${cpus()[0]?.model ?? '?'}"`);

// ---- prefill / training shape ----------------------------------------------------------------------------------
{
  const B = 8, H = 4, T = 256, S = 256, Dh = 64;
  const scale = 1 / Math.sqrt(Dh);
  const q = randomArray(B * T * H * Dh, 1), k = randomArray(B * S * H * Dh, 2), v = randomArray(B * S * H * Dh, 3);
  const go = randomArray(B * T * H * Dh, 4);
  const o = new Float32Array(q.length), lse = new Float32Array(B * H * T), none = new Float32Array(0);
  const gq = new Float32Array(q.length), gk = new Float32Array(k.length), gv = new Float32Array(k.length);
  const fwdFlops = (4 * T * S * Dh * B * H) / 2;
  const fwd = timeIt(() => kern.attention(q, k, v, B, T, S, H, H, Dh, scale, 1, 0, 0, 0, o, lse, none), 1.5);
  const bwd = timeIt(
    () => kern.attentionGrad(q, k, v, o, lse, go, B, T, S, H, H, Dh, scale, 1, 0, 0, 0, gq, gk, gv), 1.5);
  console.log(`forward  causal B=${B} H=${H} T=S=${T} Dh=${Dh}: ${rate(fwd, fwdFlops, 'GFLOPS')}`);
  console.log(`backward causal B=${B} H=${H} T=S=${T} Dh=${Dh}: ${rate(bwd, 2.5 * fwdFlops, 'GFLOPS')} (2.5x forward flops)`);
  const full = timeIt(() => kern.attention(q, k, v, B, T, S, H, H, Dh, scale, 0, 0, 0, 0, o, lse, none), 1);
  console.log(`forward  non-causal, same shape:          ${rate(full, 2 * fwdFlops, 'GFLOPS')}`);
}

// ---- decode ------------------------------------------------------------------------------------------------------
{
  const B = 1, T = 1, S = 32768, Hq = 8, Hkv = 4, Dh = 64;
  const scale = 1 / Math.sqrt(Dh);
  const kvLen = B * S * Hkv * Dh;
  const bytes = 2 * kvLen * 4;
  const q = randomArray(B * T * Hq * Dh, 5);
  const o = new Float32Array(q.length), lse = new Float32Array(B * Hq * T), none = new Float32Array(0);
  const hotK = randomArray(kvLen, 6), hotV = randomArray(kvLen, 7);
  const hot = timeIt(() => kern.attention(q, hotK, hotV, B, T, S, Hq, Hkv, Dh, scale, 1, S - 1, 0, 0, o, lse, none), 1);
  const llc = lastLevelCacheBytes();
  const copies = Math.min(24, Math.max(2, Math.ceil((1.5 * llc) / bytes)));
  const ks: Float32Array[] = [], vs: Float32Array[] = [];
  for (let c = 0; c < copies; c++) {
    ks.push(randomArray(kvLen, 100 + 2 * c));
    vs.push(randomArray(kvLen, 101 + 2 * c));
  }
  const cold = timeIt((it) => {
    const c = it % copies;
    kern.attention(q, ks[c]!, vs[c]!, B, T, S, Hq, Hkv, Dh, scale, 1, S - 1, 0, 0, o, lse, none);
  }, 2, 2 * copies);
  const mib = (bytes / 2 ** 20).toFixed(0);
  console.log(`decode T=1 S=${S} Hq=${Hq} Hkv=${Hkv} Dh=${Dh}, K+V ${mib} MiB read once per call:`);
  console.log(`  hot  (one cache, may sit in the LLC):             ${rate(hot, bytes, 'GB/s')}`);
  console.log(`  cold (${copies} caches in turn, LLC ${(llc / 2 ** 20).toFixed(0)} MiB):          ${rate(cold, bytes, 'GB/s')}`);
  const { probes, error } = loadProbes();
  if (probes) {
    const bw = probes.measureBandwidth(256 * 2 ** 20, 1, backend.threads);
    console.log(`machine streaming read bandwidth (bench probes): ${bw.toFixed(1)} GB/s`);
  } else {
    console.log(`machine streaming read bandwidth: not measured (${error})`);
  }
}
