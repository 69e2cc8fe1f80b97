/**
 * `npm run bench:decode`: decode and prefill speed of a random-init Llama-style model of about 110M parameters
 * (d_model 768, 12 layers, 12 heads, SwiGLU 2048, vocab 32000 tied: 440 MB in F32, well beyond the caches), in F32
 * and F16 weights. Decode is memory-bound: each token reads every weight once, so the bound is
 * (measured bandwidth) / (bytes of weights read per token). Prefill is compute-bound: reported against the
 * measured FMA peak. Pass --json for one JSON line.
 */
import { loadNative } from '../src/tensor/native.js';
import { backend, noGrad, scope } from '../src/tensor/index.js';
import { buildModel } from '../src/io/build.js';
import { fullMemory } from '../src/inference/generate.js';
import type { DecoderLM } from '../src/model/transformer.js';
import { HalfWeight } from '../src/model/weights.js';
import { randomModel, tinyConfig } from '../test/helpers/random-model.js';
import { BANDWIDTH_BYTES, measureHw, requireBenchAddon } from './lib/hw.js';
import { median } from './lib/stats.js';

const json = process.argv.includes('--json');
const small = process.argv.includes('--small'); // a quick smoke run for CI-sized machines
const log = (s: string): void => {
  if (!json) console.log(s);
};

const cfg = tinyConfig('llama', small
  ? { vocabSize: 4096, dModel: 256, nLayers: 4, nHeads: 4, nKvHeads: 4, headDim: 64, ffnDim: 688, maxPos: 4096, tiedEmbeddings: true }
  : { vocabSize: 32000, dModel: 768, nLayers: 12, nHeads: 12, nKvHeads: 12, headDim: 64, ffnDim: 2048, maxPos: 4096, tiedEmbeddings: true });

function weightBytesPerToken(m: DecoderLM): number {
  // every matrix is read once per decoded token except the embedding table, of which only one row is gathered;
  // with tied embeddings the table is read in full as the output head
  let bytes = 0;
  for (const [name, w] of m.weights) {
    const per = w instanceof HalfWeight ? 2 : 4;
    const isEmb = /embed_tokens|wte/.test(name);
    if (isEmb && !m.cfg.tiedEmbeddings) bytes += w.shape[1]! * per;
    else bytes += w.size * per;
  }
  return bytes;
}

/**
 * Decode rounds, each right after its own bandwidth reading: the host's bandwidth drifts (30-43 GB/s within
 * minutes on the shared machine), so a rate is only compared with the bandwidth measured next to it. Returns
 * every round's tokens/s and bandwidth; the report takes the median round by fraction of the bound.
 */
function decodeRounds(m: DecoderLM, promptLen: number, steps: number, rounds: number): { rate: number; bw: number }[] {
  const mem = fullMemory(m);
  mem.reserve(promptLen + steps * rounds + 1); // as a generation of known length does (DecodeSession)
  const prompt = Int32Array.from({ length: promptLen }, (_, i) => (i * 7) % cfg.vocabSize);
  noGrad(() => scope(() => {
    m.forward(prompt, 1, promptLen, { memory: mem, lastOnly: true });
  }));
  const step = (t: number): void => noGrad(() => scope(() => {
    m.forward(Int32Array.of(t % cfg.vocabSize), 1, 1, { memory: mem });
  }));
  step(1); // warm-up
  const out: { rate: number; bw: number }[] = [];
  for (let round = 0; round < rounds; round++) {
    const bw = bench.measureBandwidth(BANDWIDTH_BYTES, 0.3, hw.threads);
    const t0 = performance.now();
    for (let i = 0; i < steps; i++) step(i);
    out.push({ rate: steps / ((performance.now() - t0) / 1000), bw });
  }
  return out;
}

function prefillRate(m: DecoderLM, T: number): number {
  const ids = Int32Array.from({ length: T }, (_, i) => (i * 13) % cfg.vocabSize);
  const run = (): void => noGrad(() => scope(() => {
    m.forward(ids, 1, T, { lastOnly: true });
  }));
  run();
  const t0 = performance.now();
  run();
  return T / ((performance.now() - t0) / 1000);
}

function prefillFlopsPerToken(m: DecoderLM, T: number): number {
  // The prefill runs with lastOnly (the output head only for the last position, as in generation), so the
  // embedding table costs no flops per token: 2 flops per block weight per token, plus causal attention
  // (QK^T and PV over T/2 keys on average).
  let params = 0;
  for (const [name, w] of m.weights) if (!/embed_tokens|wte|lm_head/.test(name)) params += w.size;
  return 2 * params + 2 * 2 * m.cfg.nLayers * m.cfg.nHeads * m.cfg.headDim * (T / 2);
}

const { addon, error } = loadNative();
const bench = requireBenchAddon(addon, error);
const hw = measureHw(bench, addon!.info().threads);
log(`backend ${backend().name}; measured FMA peak ${hw.peakGflops.toFixed(1)} GFLOPS (${hw.threads} threads), ` +
  `bandwidth ${hw.bandwidthGBs.toFixed(1)} GB/s`);
const lm = randomModel(cfg, 1, 0.02);
const results: Record<string, unknown> = { hw };
for (const dtype of ['f32', 'f16'] as const) {
  const m = buildModel(lm, { dtype });
  const bytes = weightBytesPerToken(m);
  const rounds = decodeRounds(m, 16, small ? 10 : 20, small ? 3 : 7).map((r) => ({ ...r, fraction: (r.rate * bytes) / (r.bw * 1e9) }));
  const fraction = median(rounds.map((r) => r.fraction));
  const mid = rounds.find((r) => r.fraction === fraction) ?? rounds[0]!;
  const bws = rounds.map((r) => r.bw);
  log(`decode ${dtype}: ${mid.rate.toFixed(1)} tok/s at ${mid.bw.toFixed(1)} GB/s (bound ${((mid.bw * 1e9) / bytes).toFixed(1)} tok/s, ` +
    `${(bytes / 1e6).toFixed(0)} MB/token) -> ${(100 * fraction).toFixed(0)}% of the bandwidth bound (median of ${rounds.length} ` +
    `rounds, each beside its own bandwidth reading: ${Math.min(...bws).toFixed(0)}-${Math.max(...bws).toFixed(0)} GB/s; ` +
    `best round ${(100 * Math.max(...rounds.map((r) => r.fraction))).toFixed(0)}%)`);
  results[`decode_${dtype}`] = { tokPerS: mid.rate, bandwidthGBs: mid.bw, fraction, bytesPerToken: bytes, rounds };
}
const m32 = buildModel(lm, { dtype: 'f32' });
for (const T of [512, 2048]) {
  const rate = prefillRate(m32, T);
  const gflops = (rate * prefillFlopsPerToken(m32, T)) / 1e9;
  log(`prefill ${T}: ${rate.toFixed(0)} tok/s = ${gflops.toFixed(1)} GFLOPS -> ${((100 * gflops) / hw.peakGflops).toFixed(0)}% of the FMA peak`);
  results[`prefill_${T}`] = { tokPerS: rate, gflops, fraction: gflops / hw.peakGflops };
}
if (json) console.log(JSON.stringify(results));
