/**
 * Training benchmark (npm run bench:train): tokens/s and effective GFLOPS, as a fraction of this machine's measured
 * FMA peak, for full optimizer steps of the real training loop (src/train/loop.ts: objective, backward, clipping,
 * AdamW) on two workloads:
 *   distill   stage 2 on stories260K converted at budget 0.5 (synthetic group scores, the test fixture), batch 8 x
 *             seq 128: teacher forward + student forward + backward, only recurrent tensors train;
 *   pretrain  a fresh Llama-style model, 4 layers, d_model 256 (4 heads, 2 KV heads, SwiGLU 688, vocab 512 of the
 *             stories260K tokenizer), batch 8 x seq 256, every tensor trains.
 * FLOPs counted (the usual estimates): forward 2 P + 4 L d T per token (P parameters in matmuls, attention scores
 * and values), backward twice the forward for the input gradients plus weight gradients: 6 P + 12 L d T per token
 * when everything trains. Distillation: teacher forward, student forward, student input gradients (2 P) and the
 * trainable tensors' weight gradients (2 P_trainable). `--json` prints one JSON line at the end.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { configToHf } from '../src/model/config.js';
import { loadNative } from '../src/tensor/native.js';
import { makeTrainConfig } from '../src/train/config.js';
import { openRun, trainStep, type TrainingRun } from '../src/train/loop.js';
import { tinyConfig } from '../test/helpers/random-model.js';
import { convertedModel, STORIES, TEACHER, tmp } from '../test/train/helpers.js';
import { bestTime, measureHw, pct, requireBenchAddon } from './lib/hw.js';

interface Figure {
  name: string;
  batch: number;
  seq: number;
  seconds: number;
  tokPerSec: number;
  gflop: number;
  gflops: number;
  fraction: number;
}

function matmulParams(s: TrainingRun, only?: Set<string>): number {
  let n = 0;
  for (const [name, w] of s.student.weights) {
    if (w.shape.length < 2 || (only && !only.has(name))) continue;
    if (name.endsWith('embed_tokens.weight') && !s.student.cfg.tiedEmbeddings) continue; // a gather, not a matmul
    n += w.shape.reduce((a, b) => a * b, 1);
  }
  return n;
}

function measure(name: string, s: TrainingRun, flopsPerStep: number, peak: number): Figure {
  trainStep(s); // warm-up (allocations, pools)
  const seconds = bestTime(() => void trainStep(s), { warmup: 1, minReps: 3, maxReps: 20, budget: 6 });
  const tokens = s.cfg.batch * s.cfg.seq * s.cfg.accum;
  const gflops = flopsPerStep / seconds / 1e9;
  return { name, batch: s.cfg.batch, seq: s.cfg.seq, seconds, tokPerSec: tokens / seconds, gflop: flopsPerStep / 1e9, gflops, fraction: gflops / peak };
}

function main(): void {
  const json = process.argv.includes('--json');
  const load = loadNative();
  const addon = requireBenchAddon(load.addon, load.error);
  const info = addon.info();
  const hw = measureHw(addon, info.threads);
  console.log(`recurformer train benchmark: ${info.threads} threads, measured FMA peak ${hw.peakGflops.toFixed(1)} GFLOPS`);
  const cache = tmp('bench-cache');
  const figures: Figure[] = [];

  {
    const s = openRun(makeTrainConfig({
      stage: 'distill', model: convertedModel(), teacher: TEACHER, data: STORIES, cacheDir: cache, batch: 8, seq: 128,
      steps: 1000, out: tmp('bench-distill'),
    }));
    const c = s.student.cfg, tokens = s.cfg.batch * s.cfg.seq;
    const P = matmulParams(s), Ptr = matmulParams(s, new Set(s.names));
    const attn = 4 * c.nLayers * c.nHeads * c.headDim * s.cfg.seq;
    const flops = tokens * ((2 * P + attn) * 2 /* teacher + student forward */ + (2 * P + attn) /* input grads */ + 2 * Ptr);
    figures.push(measure('distill stories260K (budget 0.5)', s, flops, hw.peakGflops));
  }
  {
    const dir = tmp('bench-init');
    const mc = tinyConfig('llama', { vocabSize: 512, dModel: 256, nLayers: 4, nHeads: 4, nKvHeads: 2, headDim: 64, ffnDim: 688, maxPos: 256, tiedEmbeddings: true });
    writeFileSync(join(dir, 'config.json'), JSON.stringify(configToHf(mc)));
    const s = openRun(makeTrainConfig({
      stage: 'pretrain', init: join(dir, 'config.json'), tokenizer: TEACHER, data: STORIES, cacheDir: cache, batch: 8, seq: 256,
      steps: 1000, out: join(dir, 'run'),
    }));
    const tokens = s.cfg.batch * s.cfg.seq;
    const flops = tokens * (6 * matmulParams(s) + 12 * mc.nLayers * mc.dModel * s.cfg.seq);
    figures.push(measure('pretrain 4L d256 seq256', s, flops, hw.peakGflops));
  }
  // The host is shared: a probe reading can only be slowed down, so take the best of a reading before and after.
  const after = measureHw(addon, info.threads);
  if (after.peakGflops > hw.peakGflops) {
    console.log(`(peak re-measured after the workloads: ${after.peakGflops.toFixed(1)} GFLOPS; fractions use it)`);
    hw.peakGflops = after.peakGflops;
    for (const f of figures) f.fraction = f.gflops / hw.peakGflops;
  }
  for (const f of figures) {
    console.log(`${f.name.padEnd(34)} batch ${f.batch} x seq ${f.seq}: ${(f.seconds * 1000).toFixed(1)} ms/step, ` +
      `${Math.round(f.tokPerSec)} tok/s, ${f.gflop.toFixed(2)} GFLOP/step, ${f.gflops.toFixed(1)} GFLOPS = ${pct(f.fraction)} of peak`);
  }
  if (json) console.log(JSON.stringify({ threads: info.threads, peakGflops: hw.peakGflops, figures }));
}

main();
