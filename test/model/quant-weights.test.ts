/**
 * GGUF matrices kept in their blocks (QuantWeight, gemmQ) through a whole model: a random Llama of 256-wide rows
 * exported as Q4_K_M (Q4_K and Q6_K matrices) and Q8_0 and read back. The loader hands out the blocks without ever
 * dequantizing; step-mode decode equals graph mode bit for bit; prefill and decode (8-bit activations, as llama.cpp)
 * stay close to the model built with float32 weights and to each other; gradients through a frozen quantized weight
 * equal those through its float32 copy; and the CLI keeps such a file quantized.
 */
import test from 'node:test';
import assert from 'node:assert/strict';
import { join } from 'node:path';
import { buildModel } from '../../src/io/build.js';
import { loadModel } from '../../src/io/model-load.js';
import { writeGgufModel } from '../../src/io/model-save.js';
import { isDeferred } from '../../src/io/tensor-file.js';
import { QuantWeight, linearW } from '../../src/model/weights.js';
import { setFastDecode } from '../../src/model/step-ops.js';
import type { DecoderLM } from '../../src/model/transformer.js';
import { fullMemory, generateIds } from '../../src/inference/generate.js';
import { readGguf } from '../../src/io/gguf.js';
import { runCli } from '../helpers/cli.js';
import { backward, noGrad, scope, sum, tensor } from '../../src/tensor/index.js';
import { loadNative } from '../../src/tensor/native.js';
import { randomModel, tinyConfig } from '../helpers/random-model.js';
import { TOL, assertClose } from '../helpers/tolerances.js';
import { tempDir } from '../io/tmp.js';

const dir = tempDir('quant-weights');
const skip = loadNative().addon ? false : 'native addon unavailable (the reference gemmQ makes this file take minutes)';
const cfg = tinyConfig('llama', { vocabSize: 512, dModel: 256, nLayers: 2, nHeads: 4, nKvHeads: 2, headDim: 64, ffnDim: 512, maxPos: 256 });
// stories260K's SentencePiece vocabulary (512 pieces), so the file has a tokenizer and the CLI can run it
const src = { ...randomModel(cfg, 7, 0.05), tokenizer: loadModel('models/stories260K').tokenizer };
const PROMPT = Int32Array.from({ length: 40 }, (_, i) => (i * 37 + 11) % cfg.vocabSize);

function gguf(dtype: 'Q4_K_M' | 'Q8_0'): string {
  const path = join(dir, `m-${dtype}.gguf`);
  writeGgufModel(path, src, dtype);
  return path;
}

/** Logits of a prefill of `prompt` (every position), or of token-by-token steps, fast path on or off. */
function logits(m: DecoderLM, prompt: Int32Array, how: 'prefill' | 'steps' | 'steps-general'): Float32Array[] {
  const memory = fullMemory(m);
  const was = setFastDecode(how === 'steps');
  try {
    return noGrad(() => {
      if (how === 'prefill') {
        const all = scope(() => Float32Array.from(m.forward(prompt, 1, prompt.length, { memory }).data));
        return Array.from(prompt, (_, t) => all.subarray(t * cfg.vocabSize, (t + 1) * cfg.vocabSize));
      }
      return Array.from(prompt, (id) => scope(() => Float32Array.from(m.forward(Int32Array.of(id), 1, 1, { memory }).data)));
    });
  } finally {
    setFastDecode(was);
  }
}

test('a Q4_K_M GGUF loads its matrices as blocks, never dequantizing them', { skip }, () => {
  const lm = loadModel(gguf('Q4_K_M'));
  const model = buildModel(lm, { dtype: 'keep', share: true });
  const kinds = new Map<string, number>();
  for (const [name, w] of model.weights) {
    if (!(w instanceof QuantWeight)) continue;
    kinds.set(w.kind, (kinds.get(w.kind) ?? 0) + 1);
    assert.ok(isDeferred(lm.tensors.get(name)!), `${name}: its float32 values were made`);
    const perRow = w.kind === 'Q4_K' ? 144 : w.kind === 'Q6_K' ? 210 : 34 * 8;
    assert.equal(w.data.byteLength, (w.shape[0]! * w.shape[1]! / 256) * perRow, `${name}: stored bytes`);
  }
  // every matrix (2 layers x 7, the embedding table and the head); Q4_K_M mixes Q4_K with Q6_K (v, down, the head)
  const matrices = [...model.weights.values()].filter((w) => w.shape.length === 2).length;
  assert.equal(matrices, 16);
  assert.equal((kinds.get('Q4_K') ?? 0) + (kinds.get('Q6_K') ?? 0), matrices, JSON.stringify([...kinds]));
  assert.ok((kinds.get('Q6_K') ?? 0) > 0 && (kinds.get('Q4_K') ?? 0) > 0, JSON.stringify([...kinds]));
});

for (const dtype of ['Q4_K_M', 'Q8_0'] as const) {
  test(`${dtype}: decode steps equal graph mode bit for bit; prefill and decode stay close to float32 weights`, { skip }, () => {
    const path = gguf(dtype);
    const q = buildModel(loadModel(path), { dtype: 'keep', share: true });
    const f = buildModel(loadModel(path), { dtype: 'f32' });
    const prompt = PROMPT.subarray(0, 12);
    const fast = logits(q, prompt, 'steps'), general = logits(q, prompt, 'steps-general');
    fast.forEach((l, i) => assert.deepEqual(l, general[i], `step ${i}`));
    // 8-bit activations: the logits move by the rounding only (a random model with 2 layers: ~1-2% of their range)
    const worst = (a: Float32Array[], b: Float32Array[]): number => {
      let w = 0;
      a.forEach((l, i) => {
        const spread = Math.max(...b[i]!) - Math.min(...b[i]!);
        for (let j = 0; j < l.length; j++) w = Math.max(w, Math.abs(l[j]! - b[i]![j]!) / spread);
      });
      return w;
    };
    const decode = worst(fast, logits(f, prompt, 'steps')), prefill = worst(logits(q, PROMPT, 'prefill'), logits(f, PROMPT, 'prefill'));
    assert.ok(decode < 0.05 && decode > 0, `decode logits vs float32 weights: worst difference ${decode} of the logit range`);
    assert.ok(prefill < 0.05 && prefill > 0, `prefill logits vs float32 weights: worst difference ${prefill} of the logit range`);
  });
}

test('prefill of a quantized model equals its step-by-step decode (to float rounding: every row is rounded alike)', { skip }, () => {
  const q = buildModel(loadModel(gguf('Q4_K_M')), { dtype: 'keep', share: true });
  const pre = logits(q, PROMPT, 'prefill'), steps = logits(q, PROMPT, 'steps');
  pre.forEach((l, i) => {
    const spread = Math.max(...l) - Math.min(...l);
    // the projections see the same 8-bit rows either way; attention sums in another order
    assertClose(steps[i]!.map((v) => v / spread), l.map((v) => v / spread), TOL.parity, `position ${i}`);
  });
});

test('the gradient through a frozen quantized weight equals the one through its float32 copy', { skip }, () => {
  const q = buildModel(loadModel(gguf('Q4_K_M')), { dtype: 'keep', share: true });
  const w = q.weights.get('model.layers.0.mlp.down_proj.weight') as QuantWeight;
  const [, Kd] = w.shape as [number, number];
  const xs = Float32Array.from({ length: 10 * Kd }, (_, i) => Math.sin(i * 0.37));
  const grad = (weight: Parameters<typeof linearW>[1]): Float32Array => {
    const x = tensor(Float32Array.from(xs), [10, Kd]);
    x.requiresGrad = true;
    backward(sum(linearW(x, weight)));
    return Float32Array.from(x.grad!.data);
  };
  assertClose(grad(w), grad(w.toTensor()), TOL.exact, 'dx');
});

test('the CLI keeps a Q4_K_M GGUF quantized: inspect counts its stored bytes and types; generate equals the library', { skip }, async () => {
  const path = gguf('Q4_K_M');
  const info = JSON.parse((await runCli(['inspect', path, '--json'])).stdout) as { weightBytes: number; weightTypes: Record<string, number> };
  const f = readGguf(path, { tensors: false });
  const fileBytes = f.tensorInfos.reduce((s, t) => s + t.bytes, 0);
  assert.equal(info.weightBytes, fileBytes, 'the bytes the file stores');
  assert.equal((info.weightTypes.Q4_K ?? 0) + (info.weightTypes.Q6_K ?? 0), 16, JSON.stringify(info.weightTypes));
  const r = await runCli(['generate', path, '--prompt', 'Once upon a time', '--max-tokens', '12', '--temperature', '0', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const lm = loadModel(path);
  const q = buildModel(lm, { dtype: 'keep', share: true });
  const want = generateIds(q, lm.tokenizer!.encode('Once upon a time', { bos: true }), lm.tokenizer, { maxTokens: 12, temperature: 0 }).ids;
  assert.ok(want.length > 0);
  assert.deepEqual((JSON.parse(r.stdout) as { ids: number[] }).ids, want);
});
