/** Golden: greedy stories260K reproduces llama2.c's published sample token for token, from every format. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadModel } from '../../src/io/model-load.js';
import { writeGgufModel } from '../../src/io/model-save.js';
import { buildModel } from '../../src/io/build.js';
import { generate } from '../../src/inference/generate.js';

const GOLD = readFileSync(new URL('../fixtures/golden/stories260K-greedy.txt', import.meta.url), 'utf8');
const HF = new URL('../../models/stories260K', import.meta.url).pathname;
const BIN = new URL('../fixtures/stories260K/stories260K.bin', import.meta.url).pathname;

function greedy(path: string): string {
  const lm = loadModel(path);
  return generate(buildModel(lm), lm.tokenizer!, '', { maxTokens: 256, temperature: 0 }).text;
}

test('golden greedy sample from the bundled Hugging Face folder (rotate-half RoPE)', () => {
  assert.equal(greedy(HF), GOLD);
});

test('golden greedy sample from the llama2.c checkpoint (interleaved RoPE)', () => {
  assert.equal(greedy(BIN), GOLD);
});

test('golden greedy sample from our GGUF export', () => {
  const dir = mkdtempSync(join(tmpdir(), 'rf-golden-'));
  try {
    const path = join(dir, 'stories260K.gguf');
    writeGgufModel(path, loadModel(HF), 'F32');
    assert.equal(greedy(path), GOLD);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
