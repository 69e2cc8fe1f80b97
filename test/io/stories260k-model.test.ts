import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { configFromHf } from '../../src/model/config.js';
import { readLlama2c } from '../../src/io/llama2c.js';
import { readSafetensorsFolder } from '../../src/io/safetensors.js';
import { loadTokenizer } from '../../src/io/tokenizer-load.js';
import { checkHfTensors, interleavedToHalfRows } from '../../src/io/weight-names.js';
import { makeStories260k } from '../../scripts/make-stories260k.js';
import { tempDir } from './tmp.js';

const MODEL = 'models/stories260K';
const CKPT = 'test/fixtures/stories260K/stories260K.bin';

test('models/stories260K: config.json is the llama2.c config in the rotate-half layout', () => {
  const cfg = configFromHf(JSON.parse(readFileSync(join(MODEL, 'config.json'), 'utf8')), 'config.json');
  const ref = readLlama2c(CKPT).config;
  assert.deepEqual(cfg, { ...ref, ropeStyle: 'half' });
});

test('models/stories260K: weights equal the llama2.c weights after the documented q/k permutation', () => {
  const ckpt = readLlama2c(CKPT);
  const st = readSafetensorsFolder(MODEL);
  const cfg = configFromHf(JSON.parse(readFileSync(join(MODEL, 'config.json'), 'utf8')), 'config.json');
  const hf = checkHfTensors(cfg, st.tensors, st.file);
  assert.equal(hf.size, ckpt.tensors.size);
  let permuted = 0;
  for (const [name, t] of ckpt.tensors) {
    const got = hf.get(name)!;
    assert.equal(got.dtype, 'F32');
    assert.deepEqual(got.shape, t.shape, name);
    let want = t;
    if (name.endsWith('q_proj.weight')) want = interleavedToHalfRows(t, cfg.nHeads);
    if (name.endsWith('k_proj.weight')) want = interleavedToHalfRows(t, cfg.nKvHeads);
    if (want !== t) {
      permuted++;
      assert.notDeepEqual(Array.from(got.data), Array.from(t.data), `${name} was permuted`);
    }
    assert.deepEqual(Array.from(got.data), Array.from(want.data), name);
  }
  assert.equal(permuted, 10);
});

test('models/stories260K: the bundled tokenizer loads and encodes with BOS', () => {
  const tok = loadTokenizer(MODEL);
  assert.deepEqual(tok.encode('Once upon a time'), [1, 403, 407, 261, 378]);
  assert.equal(tok.decode([1, 403, 407, 261, 378]), 'Once upon a time');
});

test('make-stories260k is deterministic: a fresh run reproduces the committed folder byte for byte', () => {
  const out = tempDir('stories');
  makeStories260k({ src: 'test/fixtures/stories260K', tok: 'test/fixtures/tok512', out });
  const files = readdirSync(MODEL).sort();
  assert.deepEqual(readdirSync(out).sort(), files);
  for (const f of files) assert.ok(readFileSync(join(out, f)).equals(readFileSync(join(MODEL, f))), f);
});
