/**
 * llama.cpp as an oracle: node-llama-cpp 3.21.1 (a dev dependency that ships prebuilt llama.cpp binaries and
 * downloads nothing when asked not to: build 'never', skipDownload) loads a GGUF file and decodes greedily from
 * prompt ids; our engine decodes the same file as read by our reader; the token ids must be equal. `llamaCpp` is the
 * loaded llama.cpp, or a string saying why it cannot load here (tests pass it as their skip reason).
 */
import { after } from 'node:test';
import assert from 'node:assert/strict';
import type { Llama, Token } from 'node-llama-cpp';
import { buildModel } from '../../src/io/build.js';
import { QuantWeight } from '../../src/model/weights.js';
import { loadModel, type LoadedModel } from '../../src/io/model-load.js';
import { ByteLevelTokenizer } from '../../src/io/tokenizer-bytelevel.js';
import { fullMemory, generateIds } from '../../src/inference/generate.js';
import { noGrad, scope } from '../../src/tensor/index.js';

export const GREEDY_TOKENS = 16;

/** llama.cpp, or why it cannot be had here. */
export const llamaCpp: Llama | string = await (async () => {
  try {
    const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
    return await getLlama({ gpu: false, build: 'never', skipDownload: true, progressLogs: false, logLevel: LlamaLogLevel.error, logger: () => {} });
  } catch (e) {
    return `node-llama-cpp cannot load llama.cpp here: ${(e as Error).message.split('\n')[0]}`;
  }
})();
after(async () => {
  if (typeof llamaCpp !== 'string') await llamaCpp.dispose();
});

/** llama.cpp's greedy continuation of each prompt (ids) from a GGUF file, loaded once. */
export async function llamaCppGreedy(path: string, prompts: readonly (readonly number[])[], n = GREEDY_TOKENS): Promise<number[][]> {
  if (typeof llamaCpp === 'string') throw new Error(llamaCpp);
  const model = await llamaCpp.loadModel({ modelPath: path });
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

/**
 * Our greedy continuation (it may end early at EOS), with the model built as the CLI builds it ('keep'): Q8_0, Q4_K,
 * Q5_K and Q6_K matrices stay in their blocks and decode through the quantized kernels (8-bit activations, as
 * llama.cpp's do). `quantized`: how many matrices must at least have stayed so.
 */
export function oursGreedy(m: LoadedModel, prompt: readonly number[], n = GREEDY_TOKENS, quantized = 0): number[] {
  const model = buildModel(m, { dtype: 'keep', share: true });
  const kept = [...model.weights.values()].filter((w) => w instanceof QuantWeight).length;
  assert.ok(kept >= quantized, `${kept} matrices stayed quantized, expected at least ${quantized}`);
  return generateIds(model, prompt, m.tokenizer, { maxTokens: n, temperature: 0 }).ids;
}

/**
 * llama.cpp's tokens equal ours; where we stopped at EOS, llama.cpp (which does not stop) produced that EOS too.
 *
 * With `ties` (quantized files): both engines round activations to 8 bits and sum in different orders, so a step
 * where two tokens are all but tied may go either way. The sequences must then be equal up to a step where our model
 * (built from `ties.model` as oursGreedy builds it, fed `ties.prompt` and our tokens so far) rates llama.cpp's token
 * within TIE_MARGIN of its best, measured against the spread of that step's logits; a misread weight moves logits by
 * far more (and the first divergence must still come after `ties.minAgree` tokens).
 */
export function assertSameTokens(theirs: number[], ours: number[], eos: readonly number[], what: string,
  ties?: { model: LoadedModel; prompt: readonly number[]; minAgree?: number }): void {
  assert.ok(ours.length > 0, what);
  const k = ours.findIndex((t, i) => theirs[i] !== t);
  if (k >= 0 && ties) {
    assert.ok(k >= (ties.minAgree ?? 4), `${what}: the engines differ at token ${k}, too early for a tie: ours ${ours.slice(0, k + 1)}, theirs ${theirs.slice(0, k + 1)}`);
    const model = buildModel(ties.model, { dtype: 'keep', share: true });
    const seq = Int32Array.from([...ties.prompt, ...ours.slice(0, k)]);
    const logits = noGrad(() => scope(() => Float32Array.from(model.forward(seq, 1, seq.length, { memory: fullMemory(model), lastOnly: true }).data)));
    const spread = Math.max(...logits) - Math.min(...logits);
    const gap = (logits[ours[k]!]! - logits[theirs[k]!]!) / spread;
    assert.ok(gap <= TIE_MARGIN, `${what}: at token ${k} llama.cpp chose ${theirs[k]} and we chose ${ours[k]}, ${gap.toExponential(2)} of the logit spread apart (a tie is within ${TIE_MARGIN})`);
    return;
  }
  assert.deepEqual(theirs.slice(0, ours.length), ours, what);
  if (ours.length < theirs.length) assert.ok(eos.includes(theirs[ours.length]!), `${what}: we stopped early without EOS`);
}

/**
 * Two tokens whose logits differ by at most this fraction of the step's logit spread count as tied. 2e-3 held on
 * hosts where llama.cpp runs its AVX2 / AVX-512 kernels; on a Sapphire Rapids host, where it takes its AMX tile
 * kernels for the K-quants (other sums, other rounding), demo-llama's Q4_K export parted at a step 2.1e-3 apart
 * (with this project's kernels of before and after its own AMX path: our logits did not move).
 */
export const TIE_MARGIN = 4e-3;

/**
 * models/demo-llama (dModel 256, so every matrix row holds whole super-blocks). Its tokenizer's split pattern (GPT-2's
 * with single digits) has no llama.cpp pre-tokenizer name, and a GGUF needs one to load: we write 'smollm' (digits
 * split, then GPT-2's pattern), which differs only in how spaces before digits split. Both sides get prompt ids,
 * never text, so that does not enter the comparison.
 */
export function demoLlama(): LoadedModel {
  const m = loadModel('models/demo-llama');
  const tok = m.tokenizer as ByteLevelTokenizer;
  return { ...m, tokenizer: new ByteLevelTokenizer({ ...tok.spec, ggufPre: 'smollm' }) };
}
