/**
 * Our quantized GGUF exports against llama.cpp itself (node-llama-cpp 3.21.1, a dev dependency that ships prebuilt
 * llama.cpp binaries and downloads nothing when asked not to: build 'never', skipDownload). llama.cpp loads each file
 * and decodes greedily from the same prompt ids; its token ids must equal ours (our engine on the same file, read
 * and dequantized by our reader). Skipped, with the reason, where the package or its binary cannot load.
 *
 * Reading K-quant files that llama.cpp itself made: test/io/llamacpp-quantized.test.ts. The helpers are in
 * test/helpers/llamacpp.ts.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { loadModel, type LoadedModel } from '../../src/io/model-load.js';
import { writeGgufModel } from '../../src/io/model-save.js';
import { readGguf } from '../../src/io/gguf.js';
import { tokenizerFromGguf } from '../../src/io/tokenizer-gguf.js';
import type { GgufExportType } from '../../src/io/kquants-mix.js';
import { makeConfig } from '../../src/model/config.js';
import { randomModel, tinyConfig } from '../helpers/random-model.js';
import { assertSameTokens, demoLlama, llamaCpp, llamaCppGreedy, oursGreedy } from '../helpers/llamacpp.js';
import { tempDir } from './tmp.js';

const dir = tempDir('kquant-llamacpp');
const skip = typeof llamaCpp === 'string' ? llamaCpp : false;

const PROMPTS = ['Once upon a time, there was a', 'The passkey is 4 8 1 5. Remember it. The grass is green.'];

test('llama.cpp decodes our Q8_0, Q4_K_M, Q4_K and Q6_K exports of demo-llama to our greedy tokens (up to a near-tie)', { skip }, async () => {
  const src = demoLlama();
  for (const dtype of ['Q8_0', 'Q4_K_M', 'Q4_K', 'Q6_K'] as GgufExportType[]) {
    const path = join(dir, `demo-llama-${dtype}.gguf`);
    writeGgufModel(path, src, dtype, 'demo-llama');
    const back = loadModel(path);
    const prompts = PROMPTS.map((text) => back.tokenizer!.encode(text, { bos: true }));
    const theirs = await llamaCppGreedy(path, prompts);
    // every matrix but the embedding table stays in its blocks: demo-llama's 6 layers x 7, and the head
    prompts.forEach((prompt, i) => assertSameTokens(theirs[i]!, oursGreedy(back, prompt, undefined, 43), back.config.eosId, `${dtype}, "${PROMPTS[i]}"`, { model: back, prompt }));
  }
});

test('llama.cpp decodes our stories260K Q4_K_M export (Q8_0 head, Q5_0 and F16 fallbacks, SentencePiece vocab) as we do', { skip }, async () => {
  const path = join(dir, 'stories260K-q4km.gguf');
  writeGgufModel(path, loadModel('models/stories260K'), 'Q4_K_M');
  const back = loadModel(path);
  const prompt = back.tokenizer!.encode('Once upon a time', { bos: true });
  assertSameTokens((await llamaCppGreedy(path, [prompt], 24))[0]!, oursGreedy(back, prompt, 24), back.config.eosId, 'stories260K Q4_K_M', { model: back, prompt });
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
