import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { FormatError } from '../../src/tensor/errors.js';
import { parseLlama2c, readLlama2c, readTokenizerBin } from '../../src/io/llama2c.js';
import { checkHfTensors } from '../../src/io/weight-names.js';

const CKPT = 'test/fixtures/stories260K/stories260K.bin';
const TOK = 'test/fixtures/stories260K/tok512.bin';

test('llama2.c: stories260K header, config, tensor names and shapes', () => {
  const c = readLlama2c(CKPT);
  assert.deepEqual(c.header, { dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512, seqLen: 512, sharedClassifier: true });
  assert.equal(c.ropeInterleaved, true);
  assert.equal(c.config.ropeStyle, 'interleaved');
  assert.equal(c.config.headDim, 8);
  assert.equal(c.config.tiedEmbeddings, true);
  assert.equal(c.tensors.size, 1 + 5 * 9 + 1);
  const shape = (n: string) => c.tensors.get(n)!.shape;
  assert.deepEqual(shape('model.embed_tokens.weight'), [512, 64]);
  assert.deepEqual(shape('model.layers.0.input_layernorm.weight'), [64]);
  assert.deepEqual(shape('model.layers.4.self_attn.q_proj.weight'), [64, 64]);
  assert.deepEqual(shape('model.layers.2.self_attn.k_proj.weight'), [32, 64]);
  assert.deepEqual(shape('model.layers.2.self_attn.v_proj.weight'), [32, 64]);
  assert.deepEqual(shape('model.layers.3.mlp.gate_proj.weight'), [172, 64]);
  assert.deepEqual(shape('model.layers.3.mlp.down_proj.weight'), [64, 172]);
  assert.deepEqual(shape('model.layers.3.mlp.up_proj.weight'), [172, 64]);
  assert.deepEqual(shape('model.norm.weight'), [64]);
  assert.equal(c.tensors.has('lm_head.weight'), false);
  // The tensor set is exactly what the weight table expects for this config.
  assert.equal(checkHfTensors(c.config, c.tensors, CKPT).size, c.tensors.size);
  let params = 0;
  for (const t of c.tensors.values()) params += t.data.length;
  assert.equal(params, 260032);
});

test('llama2.c: known first values (read independently with Python struct)', () => {
  const c = readLlama2c(CKPT);
  const first = (n: string, k: number) => Array.from(c.tensors.get(n)!.data.subarray(0, k));
  const close = (a: number[], b: number[]) => a.forEach((x, i) => assert.ok(Math.abs(x - b[i]!) < 1e-7, `${x} vs ${b[i]}`));
  close(first('model.embed_tokens.weight', 4), [-0.29474878311157227, 0.5618956089019775, 0.1754225343465805, 0.34057360887527466]);
  close(first('model.layers.0.input_layernorm.weight', 3), [0.9722429513931274, 0.6754933595657349, 0.8203195333480835]);
  close(first('model.layers.0.self_attn.q_proj.weight', 3), [0.04439278692007065, 0.07974770665168762, -0.008925346657633781]);
  const wq = c.tensors.get('model.layers.0.self_attn.q_proj.weight')!.data;
  close([wq[64]!, wq[65]!], [0.22455421090126038, 0.12866616249084473]);
});

test('llama2.c: truncated, padded and non-checkpoint files are FormatErrors naming the file', () => {
  const buf = readFileSync(CKPT);
  for (const [b, needle] of [
    [buf.subarray(0, buf.byteLength - 4), 'truncated'],
    [Buffer.concat([buf, Buffer.alloc(4)]), 'not a legacy v0'],
    [buf.subarray(0, 12), 'truncated'],
  ] as const) {
    assert.throws(() => parseLlama2c(b, 'x.bin'), (e: unknown) => e instanceof FormatError && e.message.includes('x.bin') && e.message.includes(needle));
  }
  const bad = Buffer.from(buf.subarray(0, 28));
  bad.writeInt32LE(0, 0);
  assert.throws(() => parseLlama2c(bad, 'h.bin'), (e: unknown) => e instanceof FormatError && e.message.includes('dim = 0'));
});

test('llama2.c tokenizer.bin: 512 tokens, raw bytes as stored, scores', () => {
  const t = readTokenizerBin(TOK, 512);
  assert.equal(t.maxTokenLength, 7);
  assert.equal(t.pieces.length, 512);
  const s = (i: number) => Buffer.from(t.pieces[i]!).toString('utf8');
  assert.equal(s(0), '<unk>');
  assert.equal(s(1), '\n<s>\n');
  assert.equal(s(3), '<0x00>');
  assert.equal(s(259), ' t');
  assert.equal(t.scores[260], -1);
  assert.throws(() => readTokenizerBin(TOK, 511), (e: unknown) => e instanceof FormatError && e.message.includes('bytes left'));
  assert.throws(() => readTokenizerBin(TOK, 513), (e: unknown) => e instanceof FormatError && e.message.includes('truncated'));
});

test('llama2.c: a negative vocab_size means a separate classifier, read as lm_head.weight', () => {
  const [dim, hidden, layers, heads, kvHeads, vocab, seq] = [8, 12, 1, 2, 1, 5, 4];
  const hd = dim / heads;
  const floats = vocab * dim + layers * dim * 2 + layers * dim * dim * 2 + layers * kvHeads * hd * dim * 2 + layers * hidden * dim * 3 + dim + seq * hd + vocab * dim;
  const header = Buffer.alloc(28);
  [dim, hidden, layers, heads, kvHeads, -vocab, seq].forEach((v, i) => header.writeInt32LE(v, i * 4));
  const body = Buffer.from(Float32Array.from({ length: floats }, (_, i) => i).buffer);
  const c = parseLlama2c(Buffer.concat([header, body]), 'sep.bin');
  assert.equal(c.header.sharedClassifier, false);
  assert.equal(c.config.tiedEmbeddings, false);
  const head = c.tensors.get('lm_head.weight')!;
  assert.deepEqual(head.shape, [5, 8]);
  assert.equal(head.data[0], floats - vocab * dim); // the classifier is the last block of the file
  assert.equal(c.tensors.get('model.layers.0.self_attn.k_proj.weight')!.shape.join(','), '4,8');
  assert.equal(checkHfTensors(c.config, c.tensors, 'sep.bin').size, c.tensors.size);
});
