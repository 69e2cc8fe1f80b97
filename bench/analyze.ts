/**
 * Cost of the head analysis beside a plain forward pass of the same tokens.
 *
 *   npm run bench:analyze              (BENCH_SEQ=256 BENCH_SAMPLES=4 BENCH_BIG_SEQ=128 to change sizes)
 *
 * For stories260K and a ~100M-parameter random Llama (dModel 768, 12 layers, 12 heads, ffn 2048, vocab 32000) it
 * times (a) a plain forward pass (all logits) over N samples of T tokens, (b) the calibration (forward with q/k/v,
 * head_out and resid taps, the attention probabilities recomputed block by block and every per-head statistic and
 * the waiver evidence accumulated), and (c) the waiver tests (a fixed number of re-runs on at most 4 samples, not
 * per calibration token). It prints seconds per 1k tokens and the ratio (b)/(a); the target is <= 3x.
 * Each figure is the fastest of `reps` runs after a warm-up (a shared machine: minima are stable).
 */
import { readFileSync } from 'node:fs';
import { calibrate, sampleSequences } from '../src/analysis/collect.js';
import { runWaiverTests } from '../src/analysis/waiver-tests.js';
import { load } from '../src/cli/common.js';
import { buildModel } from '../src/io/build.js';
import type { DecoderLM } from '../src/model/transformer.js';
import { backend, noGrad, scope, Rng } from '../src/tensor/index.js';
import { randomModel, tinyConfig } from '../test/helpers/random-model.js';

/** Fastest of `reps` timed runs (after one warm-up run when `warm`), in seconds. */
function best(fn: () => void, reps: number, warm: boolean): number {
  if (warm) fn();
  let m = Infinity;
  for (let r = 0; r < reps; r++) {
    const t0 = performance.now();
    fn();
    m = Math.min(m, performance.now() - t0);
  }
  return m / 1000;
}

function bench(name: string, model: DecoderLM, textIds: number[], samples: number, seq: number, reps: number,
  warm: boolean, withTests: boolean): void {
  const s = { samples, seq, windows: [4, 16, 64].filter((k) => k < seq - 1), seed: 0 };
  const { seqs } = sampleSequences(textIds, model.cfg.bosId, s);
  const tokens = samples * seq;
  const fwd = best(() => { for (const ids of seqs) noGrad(() => scope(() => model.forward(ids, 1, seq))); }, reps, warm);
  const cal = best(() => calibrate(model, seqs, s), reps, warm);
  const per1k = (t: number): string => (t / tokens * 1000).toFixed(3);
  console.log(`${name}: ${samples} x ${seq} tokens`);
  console.log(`  forward      ${per1k(fwd)} s / 1k tokens`);
  console.log(`  analysis     ${per1k(cal)} s / 1k tokens   ratio to forward ${(cal / fwd).toFixed(2)}x (target <= 3x)`);
  if (withTests) {
    const tests = best(() => runWaiverTests(model, seqs.slice(0, 4)), 1, false);
    console.log(`  waiver tests ${tests.toFixed(3)} s once (${Math.min(4, samples)} samples x 6 variants; not per token)`);
  } else {
    console.log('  waiver tests skipped (BENCH_BIG_TESTS=1 to time them: 6 forward-sized passes per test sample)');
  }
}

const b = backend();
console.log(`backend ${b.name} (simd ${b.simd}, ${b.threads} threads, native kernels: ${b.nativeKernels.includes('gemm') ? 'with' : 'without'} gemm, ` +
  `${b.nativeKernels.includes('attention') ? 'with' : 'without'} attention)`);
const env = (k: string, d: number): number => Number(process.env[k] ?? d) || d;

const stories = load(undefined);
const text = readFileSync('data/tinystories-valid-excerpt/tinystories_val.txt', 'utf8').slice(0, 400_000);
bench('stories260K', stories.model, stories.loaded.tokenizer!.encode(text, { bos: false }), env('BENCH_SAMPLES', 4), env('BENCH_SEQ', 256), 3, true, true);

const cfg = tinyConfig('llama', {
  dModel: 768, nLayers: 12, nHeads: 12, nKvHeads: 12, headDim: 64, ffnDim: 2048, vocabSize: 32000, maxPos: 1024,
});
const t0 = performance.now();
const big = buildModel(randomModel(cfg, 0, 0.02));
const params = big.parameters().reduce((n, p) => n + p.size, 0);
console.log(`random llama: ${(params / 1e6).toFixed(1)}M parameters (built in ${((performance.now() - t0) / 1000).toFixed(1)} s)`);
const rng = new Rng(1);
bench('random llama ~100M', big, Array.from({ length: 20_000 }, () => 3 + rng.int(31_990)), env('BENCH_BIG_SAMPLES', 1), env('BENCH_BIG_SEQ', 128), 1, false,
  process.env.BENCH_BIG_TESTS === '1');
