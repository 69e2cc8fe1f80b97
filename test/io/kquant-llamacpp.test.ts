/**
 * Our quantized GGUF exports against llama.cpp itself (node-llama-cpp 3.21.1, a dev dependency that ships prebuilt
 * llama.cpp binaries and downloads nothing when asked not to: build 'never', skipDownload). llama.cpp loads each file
 * and decodes greedily from the same prompt ids; its token ids must equal ours (our engine on the same file, read
 * and dequantized by our reader). Skipped, with the reason, where the package or its binary cannot load.
 *
 * Not covered here: reading a llama.cpp-made Q4_K file. node-llama-cpp 3.21.1 has no quantization API (llama.cpp's
 * llama_model_quantize is not bound), so no such file can be made offline; the K-quant reader is tested bit for bit
 * on hand-built blocks (kquant.test.ts), and here through llama.cpp agreeing with what our reader decodes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import type { Llama, Token } from 'node-llama-cpp';
import { loadModel, type LoadedModel } from '../../src/io/model-load.js';
import { writeGgufModel } from '../../src/io/model-save.js';
import { readGguf } from '../../src/io/gguf.js';
import { tokenizerFromGguf } from '../../src/io/tokenizer-gguf.js';
import { ByteLevelTokenizer } from '../../src/io/tokenizer-bytelevel.js';
import type { GgufExportType } from '../../src/io/kquants-mix.js';
import { makeConfig } from '../../src/model/config.js';
import { buildModel } from '../../src/io/build.js';
import { generateIds } from '../../src/inference/generate.js';
import { randomModel, tinyConfig } from '../helpers/random-model.js';
import { tempDir } from './tmp.js';

const dir = tempDir('kquant-llamacpp');
const TOKENS = 16;

/** llama.cpp, or why it cannot be had here. */
const llama: Llama | string = await (async () => {
  try {
    const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
    return await getLlama({ gpu: false, build: 'never', skipDownload: true, progressLogs: false, logLevel: LlamaLogLevel.error, logger: () => {} });
  } catch (e) {
    return `node-llama-cpp cannot load llama.cpp here: ${(e as Error).message.split('\n')[0]}`;
  }
})();
const skip = typeof llama === 'string' ? llama : false;
test.after(async () => {
  if (typeof llama !== 'string') await llama.dispose();
});

/** llama.cpp's greedy continuation of each prompt (ids) from a GGUF file, loaded once. */
async function llamaCppGreedy(path: string, prompts: readonly (readonly number[])[], n = TOKENS): Promise<number[][]> {
  const l = llama as Llama;
  const model = await l.loadModel({ modelPath: path });
  // one thread: llama.cpp's worker threads spin-wait, which crawls on busy shared cores (9 s instead of 25 ms)
  const ctx = await model.createContext({ contextSize: 256, batchSize: 128, threads: 1 });
  try {
    const seq = ctx.getSequence();
    const all: number[][] = [];
    for (const prompt of prompts) {
      await seq.clearHistory();
      const out: number[] = [];
      for await (const t of seq.evaluate(prompt as Token[], { temperature: 0 })) {
        out.push(t);
        if (out.length >= n) break;
      }
      all.push(out);
    }
    return all;
  } finally {
    await ctx.dispose();
    await model.dispose();
  }
}

/** Our greedy continuation from the same file, loaded by our reader (it may end early at EOS). */
function oursGreedy(m: LoadedModel, prompt: readonly number[], n = TOKENS): number[] {
  return generateIds(buildModel(m), prompt, m.tokenizer, { maxTokens: n, temperature: 0 }).ids;
}

/** llama.cpp's tokens equal ours; where we stopped at EOS, llama.cpp (which does not stop) produced that EOS too. */
function assertSameTokens(theirs: number[], ours: number[], eos: readonly number[], what: string): void {
  assert.ok(ours.length > 0, what);
  assert.deepEqual(theirs.slice(0, ours.length), ours, what);
  if (ours.length < theirs.length) assert.ok(eos.includes(theirs[ours.length]!), `${what}: we stopped early without EOS`);
}

/**
 * models/demo-llama (dModel 256, so every matrix row holds whole super-blocks). Its tokenizer's split pattern (GPT-2's
 * with single digits) has no llama.cpp pre-tokenizer name, and a GGUF needs one to load: we write 'smollm' (digits
 * split, then GPT-2's pattern), which differs only in how spaces before digits split. Both sides get prompt ids,
 * never text, so that does not enter the comparison.
 */
function demoLlama(): LoadedModel {
  const m = loadModel('models/demo-llama');
  const tok = m.tokenizer as ByteLevelTokenizer;
  return { ...m, tokenizer: new ByteLevelTokenizer({ ...tok.spec, ggufPre: 'smollm' }) };
}

const PROMPTS = ['Once upon a time, there was a', 'The passkey is 4 8 1 5. Remember it. The grass is green.'];

test('llama.cpp decodes our Q8_0, Q4_K_M, Q4_K and Q6_K exports of demo-llama to the same greedy tokens as we do', { skip }, async () => {
  const src = demoLlama();
  for (const dtype of ['Q8_0', 'Q4_K_M', 'Q4_K', 'Q6_K'] as GgufExportType[]) {
    const path = join(dir, `demo-llama-${dtype}.gguf`);
    writeGgufModel(path, src, dtype, 'demo-llama');
    const back = loadModel(path);
    const prompts = PROMPTS.map((text) => back.tokenizer!.encode(text, { bos: true }));
    const theirs = await llamaCppGreedy(path, prompts);
    prompts.forEach((prompt, i) => assertSameTokens(theirs[i]!, oursGreedy(back, prompt), back.config.eosId, `${dtype}, "${PROMPTS[i]}"`));
  }
});

test('llama.cpp decodes our stories260K Q4_K_M export (Q8_0 head, Q5_0 and F16 fallbacks, SentencePiece vocab) as we do', { skip }, async () => {
  const path = join(dir, 'stories260K-q4km.gguf');
  writeGgufModel(path, loadModel('models/stories260K'), 'Q4_K_M');
  const back = loadModel(path);
  const prompt = back.tokenizer!.encode('Once upon a time', { bos: true });
  assertSameTokens((await llamaCppGreedy(path, [prompt], 24))[0]!, oursGreedy(back, prompt, 24), back.config.eosId, 'stories260K Q4_K_M');
});

test('llama.cpp applies our rope_freqs.weight as our engine applies llama3 rope scaling', { skip }, async () => {
  // demo-llama given llama3 scaling with a short original context, so that it changes positions 0..60
  const base = demoLlama();
  const ropeScaling = { type: 'llama3' as const, factor: 8, lowFreqFactor: 1, highFreqFactor: 4, originalMaxPos: 64 };
  const scaled: LoadedModel = { ...base, config: makeConfig({ ...base.config, ropeScaling }, 'llama3 test') };
  const path = join(dir, 'demo-llama3.gguf');
  writeGgufModel(path, scaled, 'F32');
  const prompt = base.tokenizer!.encode(`${PROMPTS[1]} ${PROMPTS[0]} a little dog who liked to run. One day, the dog`, { bos: true });
  const ours = oursGreedy(scaled, prompt);
  assert.notDeepEqual(ours, oursGreedy(base, prompt), 'the scaling must matter for this prompt, or the test proves nothing');
  assertSameTokens((await llamaCppGreedy(path, [prompt]))[0]!, ours, scaled.config.eosId, 'llama3 rope_freqs');
});

test('llama.cpp loads a vocabulary padded with [PAD{id}] tokens (GPT-2 vocab, 50304 rows) and decodes as we do', { skip }, async () => {
  const tok = tokenizerFromGguf(readGguf('test/fixtures/gguf-vocab-gpt2/ggml-vocab-gpt-2.gguf', { tensors: false }));
  const cfg = tinyConfig('llama', { vocabSize: 50304, dModel: 64, nHeads: 2, nKvHeads: 1, headDim: 32, ffnDim: 64, bosId: 50256, eosId: [50256] });
  const src: LoadedModel = { ...randomModel(cfg, 4, 0.5), tokenizer: tok };
  const path = join(dir, 'padded.gguf');
  writeGgufModel(path, src, 'F32');
  const back = loadModel(path);
  const prompt = tok.encode('Hello world, this is a test', { bos: false });
  const ours = oursGreedy(back, prompt, 8);
  assertSameTokens((await llamaCppGreedy(path, [prompt], 8))[0]!, ours, back.config.eosId, 'padded vocab');
});
