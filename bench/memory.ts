/**
 * `npm run bench:memory`: peak RSS of prefilling long prompts on a SmolLM2-135M-shaped BF16 model (random weights,
 * the real shapes: 30 layers, d 576, 9 query / 3 KV heads of 64, FFN 1536, vocabulary 49,152, tied embeddings),
 * original and 50% converted, next to what must be resident: weights + cache bytes (from the model's cache
 * profile, the layout's per-token and constant bytes) + the process baseline (Node, the engine, the loaded code,
 * measured by the same child with a 1-token prompt).
 *
 * Each measurement runs in a fresh child process (`--child MODEL LENGTH`), which loads the model as `generate` does
 * (weights kept 16-bit), prefills LENGTH tokens in prefill chunks, decodes one token and reports its peak RSS
 * (process.resourceUsage().maxRSS). Targets (issue: real models in bounded memory): peak <= weights + cache + 400 MB
 * at every length, and the converted model's peak below the original's at 8k and 16k.
 *
 * Measured here (2 cores; `npm run bench:memory`): original 2k/8k/16k peak 549/815/1181 MB, 50% converted 640/766/955 MB,
 * all within weights + cache + 400 MB; before bounded prefill (one forward over the prompt) 2k took 1227 and 1914 MB.
 *
 * Flags: --lengths 2048,8192,16384 (default), --keep DIR (reuse/keep the generated models there), --json.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { convert } from '../src/convert/apply.js';
import { planFromAnalysis } from '../src/convert/plan.js';
import { cacheBytesAt, cacheProfile } from '../src/eval/budget.js';
import { loadModel, type LoadedModel } from '../src/io/model-load.js';
import { writeHfFolder } from '../src/io/model-save.js';
import { randomBf16Tensors } from './random-weights.js';
import { buildModel } from '../src/io/build.js';
import { makeConfig, type ModelConfig } from '../src/model/config.js';
import { HalfWeight } from '../src/model/weights.js';
import { DecodeSession } from '../src/inference/session.js';

const MB = 1024 * 1024;
const arg = (name: string): string | undefined => {
  const i = process.argv.indexOf(name);
  return i >= 0 ? process.argv[i + 1] : undefined;
};

/** SmolLM2-135M's shapes with a context long enough for the longest prompt. */
function smolConfig(maxPos: number): ModelConfig {
  return makeConfig({
    arch: 'llama', vocabSize: 49152, dModel: 576, nLayers: 30, nHeads: 9, nKvHeads: 3, headDim: 64, ffnDim: 1536,
    maxPos, normEps: 1e-5, norm: 'rms', act: 'silu', ropeTheta: 100000, ropeStyle: 'half', ropeScaling: null,
    slidingWindow: null, qkvBias: false, tiedEmbeddings: true, bosId: 1, eosId: [2],
  }, 'bench:memory');
}


function makeModels(dir: string, maxPos: number): { original: string; converted: string } {
  const original = join(dir, 'smollm2-135m-bf16'), converted = join(dir, 'smollm2-135m-bf16-50');
  if (existsSync(join(original, 'config.json')) && existsSync(join(converted, 'config.json'))) return { original, converted };
  const cfg = smolConfig(maxPos);
  const lm: LoadedModel = { source: '<random>', format: 'hf', config: cfg, tensors: randomBf16Tensors(cfg), tokenizer: null, tokenizerSource: null };
  writeHfFolder(original, lm, 'BF16');
  // half of the 90 KV groups, spread over the layers (which ones does not change the cost)
  const groups = [];
  for (let l = 0; l < cfg.nLayers; l++) {
    for (let g = 0; g < cfg.nKvHeads; g++) groups.push({ layer: l, kvGroup: g, groupScore: { rr: { '16': ((g * 7 + l * 3) % 11) / 11 }, rrw: {} } });
  }
  const plan = planFromAnalysis({ groups }, cfg.nLayers, cfg.nKvHeads, { budget: 0.5 });
  writeHfFolder(converted, convert(loadModel(original), plan, { init: 'random' }), 'BF16');
  return { original, converted };
}

interface ChildResult { length: number; maxRssMB: number; weightsMB: number; cacheMB: number; seconds: number }

/** In the child: load as `generate` does, prefill `length` tokens, decode one, report. */
function child(model: string, length: number): void {
  const lm = loadModel(model);
  const m = buildModel(lm, { dtype: 'keep', share: true }); // as the CLI's load()
  let weights = 0;
  for (const w of m.weights.values()) weights += w instanceof HalfWeight ? w.data.byteLength : w.size * 4;
  const prompt = Array.from({ length }, (_, i) => (i === 0 ? m.cfg.bosId : (i * 7919 + 13) % m.cfg.vocabSize));
  const t0 = performance.now();
  const s = new DecodeSession(m, null, prompt, { maxTokens: 2, temperature: 0 });
  s.step();
  const cache = s.bytes();
  const seconds = (performance.now() - t0) / 1000;
  const r: ChildResult = { length, maxRssMB: process.resourceUsage().maxRSS / 1024, weightsMB: weights / MB, cacheMB: cache / MB, seconds };
  process.stdout.write(`${JSON.stringify(r)}\n`);
}

function measure(model: string, length: number): ChildResult {
  const r = spawnSync(process.execPath, ['--import', 'tsx', new URL(import.meta.url).pathname, '--child', model, String(length)],
    { encoding: 'utf8', env: { ...process.env, RECURFORMER_QUIET: '1' }, maxBuffer: 1 << 20 });
  if (r.status !== 0) throw new Error(`child for ${model} at ${length} failed (${r.status}):\n${r.stderr}`);
  return JSON.parse(r.stdout.trim().split('\n').at(-1)!) as ChildResult;
}

function main(): void {
  if (process.argv.includes('--child')) {
    child(arg('--child')!, Number(process.argv[process.argv.indexOf('--child') + 2]));
    return;
  }
  const json = process.argv.includes('--json');
  const lengths = (arg('--lengths') ?? '2048,8192,16384').split(',').map(Number);
  const keep = arg('--keep');
  const dir = keep ?? mkdtempSync(join(tmpdir(), 'rf-bench-memory-'));
  mkdirSync(dir, { recursive: true });
  try {
    const maxPos = Math.max(16384, ...lengths) + 16; // one pair of models serves every length up to 16k
    const t0 = performance.now();
    const models = makeModels(dir, maxPos);
    if (!json) console.log(`models ready in ${((performance.now() - t0) / 1000).toFixed(1)} s (${dir})`);
    const rows: Record<string, unknown>[] = [];
    for (const [label, path] of [['original', models.original], ['RecurFormer 50%', models.converted]] as const) {
      const base = measure(path, 1); // Node + code + weights, no prompt to speak of
      const lm = loadModel(path);
      const profile = cacheProfile(lm.config, lm.recurformer);
      for (const length of lengths) {
        const r = measure(path, length);
        const cacheMB = cacheBytesAt(profile, length + 1) / MB;
        const bound = r.weightsMB + cacheMB + 400; // the target: weights + cache + 400 MB
        const row = {
          model: label, length, peakRssMB: Math.round(r.maxRssMB), baselineRssMB: Math.round(base.maxRssMB), weightsMB: Math.round(r.weightsMB),
          cacheMB: Math.round(cacheMB), measuredCacheMB: Math.round(r.cacheMB), excessMB: Math.round(r.maxRssMB - base.maxRssMB - cacheMB),
          targetMB: Math.round(bound), withinTarget: r.maxRssMB <= bound, prefillTokPerS: Math.round(length / r.seconds),
        };
        rows.push(row);
        if (!json) {
          console.log(`${label.padEnd(16)} ${String(length).padStart(6)} tokens: peak ${row.peakRssMB} MB = baseline ${row.baselineRssMB} (weights ${row.weightsMB})`
            + ` + cache ${row.cacheMB} + ${row.excessMB} MB rest; target weights + cache + 400 = ${row.targetMB} MB: ${row.withinTarget ? 'met' : 'MISSED'}; ${row.prefillTokPerS} tok/s`);
        }
      }
    }
    const at = (model: string, length: number) => rows.find((r) => r['model'] === model && r['length'] === length)?.['peakRssMB'] as number | undefined;
    const compare = lengths.filter((l) => l >= 8192).map((l) => ({ length: l, original: at('original', l), converted: at('RecurFormer 50%', l) }));
    if (json) console.log(JSON.stringify({ rows, compare }, null, 1));
    else for (const c of compare) console.log(`at ${c.length}: converted peak ${c.converted} MB vs original ${c.original} MB (${c.converted! < c.original! ? 'below: met' : 'NOT below'})`);
  } finally {
    if (!keep) rmSync(dir, { recursive: true, force: true });
  }
}

main();
