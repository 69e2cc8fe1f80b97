/**
 * Engine benchmark (npm run bench:engine): measures this machine's FMA peak and memory bandwidth, then reports
 * the native GEMM, the decode matrix-vector products (f32 and f16 weights) and, when bench/train-step.ts exists,
 * one training step, each as a fraction of the measured hardware limit. `--json` adds one JSON line at the end.
 * Fractions are of the AVX2 FMA peak (the design target); when the GEMM runs its AVX-512 kernels the fraction of
 * the measured AVX-512 peak is printed too.
 */
import { loadNative } from '../src/tensor/native.js';
import {
  type BenchAddon, type HwFigures, bestTime, measureHw, pct, randomFloats, requireBenchAddon,
} from './lib/hw.js';

interface GemmFigure {
  n: number;
  seconds: number;
  gflops: number;
  /** Of the measured all-threads AVX2 FMA peak. */
  fraction: number;
  /** Of the measured all-threads FMA peak of the ISA the GEMM kernels use (AVX-512 when they do). */
  fractionOfIsaPeak: number;
}

interface MatvecFigure {
  dtype: 'f32' | 'f16';
  N: number;
  K: number;
  /** Weight bytes read per call. */
  bytes: number;
  seconds: number;
  gbs: number;
  /** Of the measured streaming bandwidth. */
  fraction: number;
  /** Weight copies rotated so the working set exceeds the last-level cache. */
  copies: number;
}

interface TrainFigure {
  seconds: number;
  gflop: number;
  gflops: number;
  fraction: number;
  fractionOfIsaPeak: number;
}

const GEMM_SIZES = [256, 512, 1024, 2048];
const MATVEC_N = 8192;
const MATVEC_K = 4096;
/** Rotate weight copies until at least this many bytes are in play, so no call finds its weight in L3. */
const MATVEC_WORKING_SET = 2 ** 30;

function benchGemm(addon: BenchAddon, peak: number, isaPeak: number): GemmFigure[] {
  return GEMM_SIZES.map((n) => {
    const a = randomFloats(n * n, 1), b = randomFloats(n * n, 2), c = new Float32Array(n * n);
    const seconds = bestTime(() => addon.gemm(0, 0, n, n, n, 1, a, 0, b, 0, 0, c, 0, 1), { warmup: 2, minReps: 5 });
    const gflops = (2 * n ** 3) / seconds / 1e9;
    return { n, seconds, gflops, fraction: gflops / peak, fractionOfIsaPeak: gflops / isaPeak };
  });
}

/** Times `call(copy)` round-robin over `copies` weights and converts the best time to GB/s of weight read. */
function timeMatvec(dtype: 'f32' | 'f16', bytes: number, copies: number, call: (i: number) => void, bw: number): MatvecFigure {
  let next = 0;
  const seconds = bestTime(() => call(next++ % copies), { warmup: copies, minReps: 3 * copies, budget: 1.5 });
  const gbs = bytes / seconds / 1e9;
  return { dtype, N: MATVEC_N, K: MATVEC_K, bytes, seconds, gbs, fraction: gbs / bw, copies };
}

function benchMatvec(addon: BenchAddon, bw: number): MatvecFigure[] {
  const N = MATVEC_N, K = MATVEC_K;
  const x = randomFloats(K, 3), y = new Float32Array(N);
  const w32 = randomFloats(N * K, 4);
  const out: MatvecFigure[] = [];
  {
    const copies = Math.max(1, Math.ceil(MATVEC_WORKING_SET / (N * K * 4)));
    const ws = Array.from({ length: copies }, (_, i) => (i === 0 ? w32 : new Float32Array(w32)));
    // transB = 1: the weight is stored (N, K), the nn.Linear layout, so the product is N dot products.
    out.push(timeMatvec('f32', N * K * 4, copies, (i) => addon.gemm(0, 1, 1, N, K, 1, x, 0, ws[i]!, 0, 0, y, 0, 1), bw));
  }
  {
    const w16 = new Uint16Array(N * K);
    addon.f32ToF16(w32, w16);
    const copies = Math.max(1, Math.ceil(MATVEC_WORKING_SET / (N * K * 2)));
    const ws = Array.from({ length: copies }, (_, i) => (i === 0 ? w16 : new Uint16Array(w16)));
    out.push(timeMatvec('f16', N * K * 2, copies, (i) => addon.gemmF16(1, N, K, x, ws[i]!, 0, y), bw));
  }
  return out;
}

function isMissingModule(e: unknown, name: string): boolean {
  const err = e as { code?: string; message?: string };
  return err?.code === 'ERR_MODULE_NOT_FOUND' && (err.message ?? '').includes(name);
}

interface TrainStepModule {
  benchTrainStep(opts: { peakGflops: number }): Promise<{ seconds: number; gflop: number; gflops: number }>;
}

/** The training-step benchmark lives in its own module, written separately; absent means "not yet". */
async function benchTrain(peakGflops: number, isaPeak: number): Promise<TrainFigure | null> {
  const spec = './train-step.js';  // a variable so the type checker does not require the module to exist
  let mod: TrainStepModule;
  try {
    mod = (await import(spec)) as TrainStepModule;
  } catch (e) {
    if (isMissingModule(e, 'train-step')) {
      console.log('train step: not available yet');
      return null;
    }
    throw e;
  }
  const r = await mod.benchTrainStep({ peakGflops });
  const fig = { seconds: r.seconds, gflop: r.gflop, gflops: r.gflops, fraction: r.gflops / peakGflops, fractionOfIsaPeak: r.gflops / isaPeak };
  console.log(`train step: ${(fig.seconds * 1e3).toFixed(1)} ms, ${fig.gflop.toFixed(2)} GFLOP, ` +
    `${fig.gflops.toFixed(1)} GFLOPS = ${pct(fig.fraction)} of the AVX2 peak` +
    (isaPeak !== peakGflops ? ` (${pct(fig.fractionOfIsaPeak)} of the peak of the ISA the GEMM uses)` : ''));
  return fig;
}

function printHw(hw: HwFigures): void {
  console.log(`FMA peak (AVX2, measured): ${hw.peakGflops.toFixed(1)} GFLOPS on ${hw.threads} threads, ` +
    `${hw.peakGflops1.toFixed(1)} GFLOPS on 1 thread`);
  if (hw.peakGflops512 !== null) {
    console.log(`FMA peak (AVX-512, measured): ${hw.peakGflops512.toFixed(1)} GFLOPS on ${hw.threads} threads`);
  }
  console.log(`memory bandwidth (streaming read, 1 GiB, ${hw.threads} threads): ${hw.bandwidthGBs.toFixed(1)} GB/s`);
}

async function main(): Promise<void> {
  const json = process.argv.includes('--json');
  const load = loadNative();
  const addon = requireBenchAddon(load.addon, load.error);
  const info = addon.info();
  console.log(`recurformer engine benchmark: native addon, simd ${info.simd}, ${info.threads} threads`);

  // The host's cores are shared: a probe run while a neighbour is busy reads low. Probe before and after the
  // workloads and keep the best of each figure, so the fractions are against what this machine can really do.
  const before = measureHw(addon, info.threads);
  const gemmRaw = () => benchGemm(addon, 1, 1);
  const gemmFigs = gemmRaw();
  const matvecFigs = benchMatvec(addon, 1);
  const after = measureHw(addon, info.threads);
  const best = (a: number | null, b: number | null): number | null => (a === null ? b : b === null ? a : Math.max(a, b));
  const hw: HwFigures = {
    peakGflops: Math.max(before.peakGflops, after.peakGflops),
    peakGflops1: Math.max(before.peakGflops1, after.peakGflops1),
    peakGflops512: best(before.peakGflops512, after.peakGflops512),
    bandwidthGBs: Math.max(before.bandwidthGBs, after.bandwidthGBs),
    threads: before.threads,
  };
  printHw(hw);

  const gi = addon.gemmInfo();
  const isaPeak = gi.isa === 'avx512' && hw.peakGflops512 !== null ? hw.peakGflops512 : hw.peakGflops;
  console.log(`gemm kernels: ${gi.isa} ${gi.mr}x${gi.nr} micro-kernel, MC/KC/NC ${gi.mc}/${gi.kc}/${gi.nc}`);
  const gemm = gemmFigs.map((g) => ({ ...g, fraction: g.gflops / hw.peakGflops, fractionOfIsaPeak: g.gflops / isaPeak }));
  for (const g of gemm) {
    const own = gi.isa === 'avx512' ? ` (${pct(g.fractionOfIsaPeak)} of the AVX-512 peak)` : '';
    console.log(`gemm ${g.n}^3 f32: ${(g.seconds * 1e3).toFixed(2)} ms, ${g.gflops.toFixed(1)} GFLOPS = ` +
      `${pct(g.fraction)} of the AVX2 peak${own}`);
  }

  const matvec = matvecFigs.map((m) => ({ ...m, fraction: m.gbs / hw.bandwidthGBs }));
  for (const m of matvec) {
    console.log(`matvec ${m.N}x${m.K} ${m.dtype} weight (M=1): ${(m.seconds * 1e3).toFixed(2)} ms, ` +
      `${m.gbs.toFixed(1)} GB/s = ${pct(m.fraction)} of bandwidth (${m.copies} copies rotated)`);
  }

  const train = await benchTrain(hw.peakGflops, isaPeak);

  if (json) {
    console.log(JSON.stringify({
      simd: info.simd, gemmIsa: gi.isa, threads: info.threads, peakGflops: hw.peakGflops,
      peakGflops1: hw.peakGflops1, peakGflops512: hw.peakGflops512, bandwidthGBs: hw.bandwidthGBs, gemm, matvec,
      trainStep: train,
    }));
  }
}

await main();
