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
 *
 * `--engine torch` also runs the distill workload (same model, batch, sequence length and data shard) through the
 * PyTorch engine (python/, RECURFORMER_PYTHON or /usr/bin/python3) and prints both engines' tokens/s from this run.
 */
import { spawnSync } from 'node:child_process';
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

/**
 * The same distill workload on the PyTorch engine: the run's options and token shard, measured by the python side
 * (best of its timed steps after a warm-up step). Null with a message when torch cannot be imported.
 */
function torchDistill(s: TrainingRun, flopsPerStep: number, ts: Figure): Figure | null {
  const python = process.env.RECURFORMER_PYTHON || '/usr/bin/python3';
  const root = new URL('..', import.meta.url).pathname;
  const code = `
import json, sys, time, torch
sys.path.insert(0, ${JSON.stringify(join(root, 'python'))})
from recurformer_torch import load_folder
from recurformer_torch.data import Batcher, PackedData, read_shard
from recurformer_torch.objectives import objective
from recurformer_torch.train import select_trainable
o = json.loads(sys.argv[1])
st, te = load_folder(o["model"]), load_folder(o["teacher"])
names, params = select_trainable(st, "recurrent")
opt = torch.optim.AdamW(params, lr=o["lr"], betas=(0.9, 0.95), eps=1e-8)
b = Batcher(PackedData(read_shard(o["shard"]), o["seq"], st.cfg.bos_id, o["valFraction"], o["packing"]), o["batch"], o["seed"])
best = float("inf")
for i in range(6):
    x, y = (torch.as_tensor(a) for a in b.next())
    t0 = time.time()
    loss, _ = objective(st, te, x, y, o)
    loss.backward(); torch.nn.utils.clip_grad_norm_(params, o["clip"]); opt.step(); opt.zero_grad()
    if i > 0: best = min(best, time.time() - t0)
print(json.dumps({"seconds": best, "threads": torch.get_num_threads(), "torch": torch.__version__}))
`;
  const shardPath = join(s.cfg.cacheDir, `tokens-${s.dataKey}.bin`); // the shard the TypeScript run reads (data.ts loadShard)
  const r = spawnSync(python, ['-c', code, JSON.stringify({ ...s.cfg, shard: shardPath })], { encoding: 'utf8' });
  if (r.status !== 0) {
    console.log(`torch engine: skipped (${python} cannot run it: ${(r.stderr || String(r.error)).trim().split('\n').at(-1)})`);
    return null;
  }
  const m = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { seconds: number; threads: number; torch: string };
  console.log(`torch engine: torch ${m.torch}, ${m.threads} thread(s)`);
  const gflops = flopsPerStep / m.seconds / 1e9;
  return { ...ts, name: 'distill stories260K (torch)', seconds: m.seconds, tokPerSec: (ts.batch * ts.seq) / m.seconds, gflops, fraction: NaN };
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
  let torchFigure: Figure | null = null;

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
    if (process.argv.includes('--engine') && process.argv[process.argv.indexOf('--engine') + 1] === 'torch') {
      torchFigure = torchDistill(s, flops, figures.at(-1)!);
    }
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
  if (torchFigure) {
    const ts = figures[0]!;
    console.log(`${'distill stories260K, torch engine'.padEnd(34)} batch ${torchFigure.batch} x seq ${torchFigure.seq}: ` +
      `${(torchFigure.seconds * 1000).toFixed(1)} ms/step, ${Math.round(torchFigure.tokPerSec)} tok/s, ` +
      `${torchFigure.gflops.toFixed(1)} GFLOPS; TypeScript engine / torch = ${(ts.tokPerSec / torchFigure.tokPerSec).toFixed(2)}x`);
  }
  if (json) console.log(JSON.stringify({ threads: info.threads, peakGflops: hw.peakGflops, figures, torch: torchFigure }));
}

main();
