/** The library entry point exposes the pipeline: load, build, generate, analyze, plan, convert. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as rf from '../src/index.js';

test('library API: load -> build -> generate; plan and convert are exported', () => {
  const lm = rf.loadModel(new URL('../models/stories260K', import.meta.url).pathname);
  const r = rf.generate(rf.buildModel(lm), lm.tokenizer!, '', { maxTokens: 15, temperature: 0 });
  assert.equal(r.text, 'Once upon a time, there was a little girl named Lily.');
  for (const f of [rf.analyze, rf.probeRetrieval, rf.planFromAnalysis, rf.convert, rf.perplexity, rf.writeAnalysis, rf.recurrentChunked]) {
    assert.equal(typeof f, 'function');
  }
  assert.equal(typeof rf.tensor.matmul, 'function');
});
