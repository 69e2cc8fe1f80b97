/**
 * The engine against the independent reference forward (test/helpers/reference-forward.ts: float64 loops written
 * from the architectures' definitions) on small random models of each Llama-family variant and Gemma 3: the logits
 * of a prompt agree within TOL.parity, and 16 greedy tokens (prefill, then the single-token decode path through the
 * KV cache, no EOS stop) are the reference's. Covers GQA, q/k/v biases, llama3 and linear RoPE scaling, Qwen3's q/k norms with
 * head_dim != hidden / heads, and Gemma 3's local/global layers with a window shorter than the prompt. A last test
 * checks that the fast decode step computes Qwen3 and Gemma 3 bit for bit as the general path does.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { configFromHf } from '../../src/model/config.js';
import { buildModel } from '../../src/io/build.js';
import type { DecoderLM } from '../../src/model/transformer.js';
import { setFastDecode, StepOps } from '../../src/model/step-ops.js';
import { fullMemory } from '../../src/inference/generate.js';
import { toF32 } from '../../src/io/tensor-file.js';
import type { LoadedModel } from '../../src/io/model-load.js';
import { Rng, noGrad, scope } from '../../src/tensor/index.js';
import { randomModel } from '../helpers/random-model.js';
import { argmaxOf, referenceGreedy, referenceLogits, type RefModel } from '../helpers/reference-forward.js';
import { TOL, assertClose } from '../helpers/tolerances.js';

const base = {
  vocab_size: 97, hidden_size: 32, intermediate_size: 48, num_hidden_layers: 2, num_attention_heads: 4,
  num_key_value_heads: 2, max_position_embeddings: 128, rms_norm_eps: 1e-6, bos_token_id: 1, eos_token_id: 2,
};

/** Small random configs as config.json objects: the engine reads them with configFromHf, the reference by itself. */
const FAMILY_CONFIGS: Record<string, Record<string, unknown>> = {
  'llama (GQA, untied)': { ...base, model_type: 'llama', rope_theta: 10000 },
  'llama 3 (llama3 rope scaling, tied)': {
    ...base, model_type: 'llama', rope_theta: 500000, tie_word_embeddings: true,
    rope_scaling: { rope_type: 'llama3', factor: 8, low_freq_factor: 1, high_freq_factor: 4, original_max_position_embeddings: 16 },
  },
  'mistral (sliding window 5)': { ...base, model_type: 'mistral', sliding_window: 5 },
  'qwen2 (q/k/v biases, tied)': { ...base, model_type: 'qwen2', rope_theta: 1e6, tie_word_embeddings: true },
  'qwen3 (q/k norms, head_dim 16 != 32 / 4)': { ...base, model_type: 'qwen3', head_dim: 16, rope_theta: 1e6, attention_bias: false },
  'gemma3 (pattern 2: local/global, window 4, linear-scaled global RoPE, bf16 embed scale)': {
    ...base, model_type: 'gemma3_text', hidden_size: 48, num_hidden_layers: 4, head_dim: 16, query_pre_attn_scalar: 24,
    sliding_window: 4, sliding_window_pattern: 2, rope_theta: 1e6, rope_local_base_freq: 10000,
    rope_scaling: { rope_type: 'linear', factor: 8 }, torch_dtype: 'bfloat16', eos_token_id: [1, 2],
  },
  'gemma3 (layer_types, MQA, untied, final softcap)': {
    ...base, model_type: 'gemma3_text', num_hidden_layers: 3, num_key_value_heads: 1, head_dim: 8, query_pre_attn_scalar: 8,
    sliding_window: 6, layer_types: ['sliding_attention', 'full_attention', 'sliding_attention'], tie_word_embeddings: false,
    final_logit_softcapping: 3, torch_dtype: 'float32',
  },
};

/** A random model of a config.json, and the reference's view of the same weights. */
function randomPair(json: Record<string, unknown>, seed: number): { lm: LoadedModel; ref: RefModel } {
  const lm = randomModel(configFromHf(json, '<test>'), seed, 0.3);
  const cache = new Map<string, Float32Array>();
  const weight = (name: string): Float32Array => {
    const t = lm.tensors.get(name);
    if (!t) throw new Error(`reference wants ${name}, which the engine's weight table lacks`);
    if (!cache.has(name)) cache.set(name, toF32(t));
    return cache.get(name)!;
  };
  return { lm, ref: { config: json, weight } };
}

const PROMPT_LEN = 12;

function promptOf(vocab: number, seed: number): number[] {
  const r = new Rng(seed);
  return [1, ...Array.from({ length: PROMPT_LEN - 1 }, () => 3 + r.int(vocab - 3))];
}

/** `steps` greedy ids: the prompt prefilled into the KV cache, then one token at a time (the fast decode path), no EOS stop. */
function engineGreedy(model: DecoderLM, prompt: readonly number[], steps: number): number[] {
  return noGrad(() => {
    const memory = fullMemory(model);
    const out: number[] = [];
    let logits = scope(() => Float32Array.from(model.forward(Int32Array.from(prompt), 1, prompt.length, { memory, lastOnly: true }).data));
    for (let s = 0; s < steps; s++) {
      out.push(argmaxOf(logits));
      logits = scope(() => Float32Array.from(model.forward(Int32Array.of(out[s]!), 1, 1, { memory }).data));
    }
    return out;
  });
}

for (const [name, json] of Object.entries(FAMILY_CONFIGS)) {
  test(`reference forward: ${name}: prompt logits within TOL.parity, 16 greedy tokens identical`, () => {
    const { lm, ref } = randomPair(json, 7);
    const model = buildModel(lm);
    const prompt = promptOf(model.cfg.vocabSize, 3);
    const logits = noGrad(() => Float32Array.from(model.forward(Int32Array.from(prompt), 1, prompt.length).data));
    const want = referenceLogits(ref, prompt);
    const flat = new Float64Array(want.length * want[0]!.length);
    want.forEach((row, i) => flat.set(row, i * row.length));
    assertClose(logits, flat, TOL.parity, `${name}: logits`);
    assert.deepEqual(engineGreedy(model, prompt, 16), referenceGreedy(ref, prompt, 16), `${name}: greedy tokens`);
  });
}

test('fast decode step == general path, bit for bit, for Qwen3 and Gemma 3 (f32 and bf16 weights)', () => {
  let fastSteps = 0;
  const blocks = StepOps.prototype.run;
  StepOps.prototype.run = function (this: StepOps, ...a: Parameters<typeof blocks>) {
    fastSteps++;
    return blocks.apply(this, a);
  };
  try {
    for (const name of Object.keys(FAMILY_CONFIGS).filter((n) => /qwen3|gemma3/.test(n))) {
      const { lm } = randomPair(FAMILY_CONFIGS[name]!, 11);
      for (const dtype of ['f32', 'f16'] as const) {
        const model = buildModel(lm, { dtype });
        const prompt = promptOf(model.cfg.vocabSize, 5);
        const run = (fast: boolean): Float32Array[] => {
          const was = setFastDecode(fast);
          try {
            return noGrad(() => {
              const memory = fullMemory(model);
              const out = [scope(() => Float32Array.from(model.forward(Int32Array.from(prompt), 1, prompt.length, { memory, lastOnly: true }).data))];
              for (let i = 0; i < 10; i++) {
                out.push(scope(() => Float32Array.from(model.forward(Int32Array.of(3 + i * 7), 1, 1, { memory }).data)));
              }
              return out;
            });
          } finally {
            setFastDecode(was);
          }
        };
        const before = fastSteps;
        const fast = run(true);
        assert.equal(fastSteps - before, 10, `${name} ${dtype}: every step took the fast path`);
        const slow = run(false);
        fast.forEach((row, i) => assert.deepEqual(row, slow[i], `${name} ${dtype}: step ${i}`));
      }
    }
  } finally {
    StepOps.prototype.run = blocks;
  }
});
