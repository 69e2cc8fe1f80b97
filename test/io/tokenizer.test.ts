import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { TokenizerError } from '../../src/tensor/errors.js';
import { readGguf } from '../../src/io/gguf.js';
import { writeGguf } from '../../src/io/gguf-write.js';
import { readTokenizerBin } from '../../src/io/llama2c.js';
import { decodeUtf8Lenient, type Tokenizer } from '../../src/io/tokenizer.js';
import { ggufMetadataFromSpm, tokenizerFromGguf } from '../../src/io/tokenizer-gguf.js';
import { readTokenizerJson, tokenizerFromJson } from '../../src/io/tokenizer-json.js';
import { loadTokenizer } from '../../src/io/tokenizer-load.js';
import { spmFromTokenizerBin, SpmTokenizer } from '../../src/io/tokenizer-spm.js';
import { compileSplitPattern, LLAMA3_PATTERN } from '../../src/io/split-pattern.js';
import { tempDir } from './tmp.js';

const FIX = 'test/fixtures';
interface Ref { source: string; text: string; ids: number[]; decoded: string }
const REF: Ref[] = readFileSync(`${FIX}/tok512/tok512_sentencepiece_reference.jsonl`, 'utf8')
  .split('\n').filter((l) => l.length > 0).map((l) => JSON.parse(l) as Ref);

function checkReference(tok: Tokenizer, label: string): void {
  assert.equal(REF.length, 228);
  let encodeOk = 0;
  let decodeOk = 0;
  for (const r of REF) {
    // SentencePiece never parses special tokens out of text ("<s> not special </s>"): plain, as for user text
    assert.deepEqual(tok.encode(r.text, { bos: false, plain: true }), r.ids, `${label} encode ${JSON.stringify(r.text.slice(0, 60))}`);
    encodeOk++;
    assert.equal(tok.decode(r.ids), r.decoded, `${label} decode ${JSON.stringify(r.text.slice(0, 60))}`);
    decodeOk++;
  }
  assert.equal(encodeOk + decodeOk, 456);
}

const tokJson = () => readTokenizerJson(`${FIX}/tok512/tokenizer.json`);
const tokBin = () => spmFromTokenizerBin(readTokenizerBin(`${FIX}/stories260K/tok512.bin`, 512));

test('tok512 through tokenizer.json: all 228 SentencePiece reference lines (ids and decoded)', () => {
  checkReference(tokJson(), 'tokenizer.json');
});

test('tokenizer.json parses its special tokens out of text by default, as Hugging Face does; llama2.c never does', () => {
  assert.deepEqual(tokJson().encode('<s> x </s>', { bos: false }).filter((id) => id <= 2), [1, 2]);
  assert.ok(!tokBin().encode('<s> x </s>', { bos: false }).some((id) => id <= 2));
});

test('tok512 through llama2.c tokenizer.bin: all 228 reference lines', () => {
  checkReference(tokBin(), 'tokenizer.bin');
});

test('tok512 through a GGUF llama vocabulary written by us: all 228 reference lines', () => {
  const spec = tokBin().spec;
  const path = join(tempDir('tokgguf'), 'vocab.gguf');
  writeGguf(path, ggufMetadataFromSpm({ ...spec }), []);
  const tok = tokenizerFromGguf(readGguf(path));
  assert.ok(tok instanceof SpmTokenizer);
  checkReference(tok, 'gguf');
});

test('GPT-2 byte-level BPE from the llama.cpp GGUF vocab: every .inp/.out vector, and decode inverts encode', () => {
  const tok = loadTokenizer(`${FIX}/gguf-vocab-gpt2/ggml-vocab-gpt-2.gguf`);
  const inputs = readFileSync(`${FIX}/gguf-vocab-gpt2/ggml-vocab-gpt-2.gguf.inp`, 'utf8').split('\n__ggml_vocab_test__\n');
  const outputs = readFileSync(`${FIX}/gguf-vocab-gpt2/ggml-vocab-gpt-2.gguf.out`, 'utf8').split('\n');
  if (inputs.at(-1) === '') inputs.pop(); // the file ends with a separator
  if (outputs.at(-1) === '') outputs.pop();
  assert.equal(inputs.length, 46);
  assert.equal(outputs.length, inputs.length);
  inputs.forEach((text, i) => {
    const want = outputs[i]!.trim() === '' ? [] : outputs[i]!.trim().split(' ').map(Number);
    const got = tok.encode(text, { bos: false });
    assert.deepEqual(got, want, `vector ${i}: ${JSON.stringify(text.slice(0, 40))}`);
    assert.equal(tok.decode(got), text);
  });
  assert.equal(tok.vocabSize, 50257);
  assert.equal(tok.eosId, 50256);
  assert.equal(tok.idToPiece(18435), 'ĠHello');
});

test('BOS handling: tok512 adds BOS by default (tokenizer_config add_bos_token), decode hides control tokens', () => {
  for (const tok of [tokJson(), tokBin()]) {
    assert.equal(tok.bosId, 1);
    assert.equal(tok.eosId, 2);
    assert.deepEqual(tok.encode('a'), [1, 261]);
    assert.deepEqual(tok.encode('a', { bos: false }), [261]);
    assert.equal(tok.decode([1, 261, 2]), 'a');
    assert.equal(tok.idToPiece(261), '▁a');
  }
});

test('token ids outside the vocabulary are TokenizerErrors naming the id', () => {
  const gpt2 = loadTokenizer(`${FIX}/gguf-vocab-gpt2/ggml-vocab-gpt-2.gguf`);
  for (const [tok, bad] of [[tokJson(), 512], [tokBin(), -1], [gpt2, 50257]] as const) {
    assert.throws(() => tok.decode([5, bad]), (e: unknown) => e instanceof TokenizerError && e.tokenId === bad && e.message.includes(`token id ${bad}`) && e.hint.length > 0);
    assert.throws(() => tok.idToPiece(bad), TokenizerError);
  }
  assert.throws(() => tokJson().decode([1.5]), TokenizerError);
});

test('SentencePiece decode: invalid UTF-8 byte runs give one U+FFFD per bad byte', () => {
  assert.equal(decodeUtf8Lenient([0xe6, 0x97]), '\ufffd\ufffd');
  assert.equal(decodeUtf8Lenient([0x41, 0xf0, 0x9f, 0x98, 0x8a, 0xff]), 'A😊\ufffd');
  assert.equal(decodeUtf8Lenient([0xc0, 0x80]), '\ufffd\ufffd'); // overlong
  const tok = tokBin();
  assert.equal(tok.decode([233, 154]), '\ufffd\ufffd'); // <0xE6><0x97>, a truncated 3-byte sequence
});

test('unsupported tokenizer.json layouts are TokenizerErrors naming the component', () => {
  assert.throws(() => tokenizerFromJson({ model: { type: 'WordPiece', vocab: {} } }, {}, 'wp.json'),
    (e: unknown) => e instanceof TokenizerError && e.message.includes('wp.json') && e.message.includes('WordPiece'));
  const base = JSON.parse(readFileSync(`${FIX}/tok512/tokenizer.json`, 'utf8')) as Record<string, unknown>;
  assert.throws(() => tokenizerFromJson({ ...base, normalizer: { type: 'Lowercase' } }, {}, 'lc.json'),
    (e: unknown) => e instanceof TokenizerError && e.message.includes('Lowercase'));
  assert.throws(() => loadTokenizer('model.onnx'), TokenizerError);
});

test("Llama 3's (?i:...) split pattern compiles for Node 20 and keeps its meaning", () => {
  const re = compileSplitPattern(LLAMA3_PATTERN, 'llama3');
  assert.deepEqual([..."I'M here, it'S 12345 ok\n\n".matchAll(re)].map((m) => m[0]), ['I', "'M", ' here', ',', ' it', "'S", ' ', '123', '45', ' ok', '\n\n']);
});

test('GPT-2 vocabulary written back to GGUF by us (ggufMetadataFromByteLevel) tokenizes identically', async () => {
  const { ByteLevelTokenizer } = await import('../../src/io/tokenizer-bytelevel.js');
  const { ggufMetadataFromByteLevel } = await import('../../src/io/tokenizer-gguf.js');
  const src = loadTokenizer(`${FIX}/gguf-vocab-gpt2/ggml-vocab-gpt-2.gguf`);
  assert.ok(src instanceof ByteLevelTokenizer);
  const path = join(tempDir('gpt2vocab'), 'gpt2.gguf');
  writeGguf(path, ggufMetadataFromByteLevel(src.spec), []);
  const back = loadTokenizer(path);
  const text = readFileSync(`${FIX}/gguf-vocab-gpt2/ggml-vocab-gpt-2.gguf.inp`, 'utf8');
  assert.deepEqual(back.encode(text, { bos: false }), src.encode(text, { bos: false }));
  assert.equal(back.decode(src.encode(text)), text);
});

test('whole-corpus check: the TinyStories excerpt is 384,958 tok512 tokens (count from real SentencePiece, BOS per paragraph)', () => {
  // data/tinystories-valid-excerpt/SOURCE.md: 4,300 "\n\n"-separated paragraphs (stripped), each encoded with BOS.
  const text = readFileSync('data/tinystories-valid-excerpt/tinystories_val.txt', 'utf8');
  const paragraphs = text.split('\n\n').map((p) => p.trim()).filter((p) => p.length > 0);
  assert.equal(paragraphs.length, 4300);
  for (const tok of [tokJson(), tokBin()]) {
    let n = 0;
    for (const p of paragraphs) n += tok.encode(p, { bos: true }).length;
    assert.equal(n, 384958);
  }
});

test('SentencePiece keeps newlines and tabs at the edges (unlike the tokenizers Strip normalizer)', () => {
  for (const tok of [tokJson(), tokBin()]) {
    assert.deepEqual(tok.encode('\nx', { bos: false }), [410, 13, 444]);
    assert.equal(tok.decode(tok.encode('\tx\n')), '\tx\n');
  }
});
