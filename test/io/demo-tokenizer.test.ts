// The demo models' tokenizer (trained with Hugging Face `tokenizers`, scripts/demo/train-tokenizer.ts): our
// tokenizer.json reader must encode exactly as the library that trained it, on held-out real text and on every
// synthetic retrieval format, and decode back to the input.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { readTokenizerJson } from '../../src/io/tokenizer-json.js';
import { hashhopCase, needleCase, passkeyCase } from '../../src/eval/synthetic.js';
import { Rng } from '../../src/tensor/rng.js';

const require = createRequire(import.meta.url);
const hf = require('tokenizers') as typeof import('tokenizers');
const FILE = 'models/demo-llama/tokenizer.json';

test('demo tokenizer: our reader encodes exactly as Hugging Face tokenizers and round-trips', async () => {
  const ours = readTokenizerJson(FILE);
  const ref = hf.Tokenizer.fromFile(FILE);
  const book = readFileSync('data/gutenberg/frankenstein_pg84.txt', 'utf8');
  const lines = book.split('\n').filter((l) => l.trim().length > 0).slice(0, 1500);
  const rng = new Rng(3);
  const synthetic = [
    passkeyCase(rng, 5, 0.5), hashhopCase(rng, 20, 3), needleCase(rng, book, 2000, 0.3),
  ].map((c) => c.prompt + c.answer + '.');
  const texts = [...lines, ...synthetic, 'Digits 1234567890 and   spaces,\ttabs\nnewlines; émigré naïve 東京 🙂.'];
  let tokens = 0;
  for (const t of texts) {
    const want = (await ref.encode(t, null, { addSpecialTokens: false })).getIds();
    const got = ours.encode(t, { bos: false });
    assert.deepEqual(got, want, `encode ${JSON.stringify(t.slice(0, 80))}`);
    assert.equal(ours.decode(got), t, `decode ${JSON.stringify(t.slice(0, 80))}`);
    tokens += got.length;
  }
  assert.ok(tokens > 20000, `compared ${tokens} tokens`);
  assert.deepEqual(ours.encode('x', { bos: true }).slice(0, 1), [0], 'BOS <s> is id 0');
  // every digit is its own token, so a 5-digit key is 5 tokens wherever it stands
  assert.equal(ours.encode(' The pass key is 12345.', { bos: false }).length, ours.encode(' The pass key is', { bos: false }).length + 1 + 5 + 1);
});
