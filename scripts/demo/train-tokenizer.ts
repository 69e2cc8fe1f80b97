/**
 * Trains the demo models' byte-level BPE tokenizer with Hugging Face's `tokenizers` library (the Rust trainer, a dev
 * dependency) on the bundled training texts (not WikiText-2, which is evaluation-only, nor the held-out Frankenstein), and writes a tokenizer.json our loader reads.
 *
 *   node --import tsx scripts/demo/train-tokenizer.ts OUT_DIR [--vocab 4096]
 *
 * The pre-tokenizer is GPT-2's split with single digits (so a 5-digit key is 5 tokens wherever it occurs) followed by
 * ByteLevel. The node binding trains with the library's default BPE trainer (no vocabulary-size option), so this
 * script keeps the first (vocab - 258) merges of that run: BPE training is greedy, merge k depends only on merges
 * before it, so the prefix is what a run stopped at that size learns. The vocabulary is then <s> (0), </s> (1), the
 * 256 byte symbols and the merged pieces in merge order.
 */
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { writeFileAtomic } from '../../src/io/tensor-file.js';

const require = createRequire(import.meta.url);
const hf = require('tokenizers') as typeof import('tokenizers');

export const DEMO_SPLIT = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

const args = process.argv.slice(2);
const outDir = args[0];
if (!outDir) throw new Error('usage: train-tokenizer.ts OUT_DIR [--vocab N]');
const vi = args.indexOf('--vocab');
const vocabSize = vi >= 0 ? Number(args[vi + 1]) : 4096;
const data = (p: string): string => new URL(`../../data/${p}`, import.meta.url).pathname;
const files = ['tinystories-valid-excerpt/tinystories_val.txt', 'tinyshakespeare/input.txt',
  'gutenberg/alice_in_wonderland_pg11.txt', 'gutenberg/moby_dick_pg2701.txt', 'gutenberg/pride_and_prejudice_pg1342.txt'].map(data);

const preTokenizer = { type: 'Sequence', pretokenizers: [
  { type: 'Split', pattern: { Regex: DEMO_SPLIT }, behavior: 'Isolated', invert: false },
  { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
] };
// Built from JSON: the binding's splitPreTokenizer() takes its pattern as a literal string, not a regex.
const tok = hf.Tokenizer.fromString(JSON.stringify({
  version: '1.0', truncation: null, padding: null, added_tokens: [], normalizer: null, pre_tokenizer: preTokenizer,
  post_processor: null, decoder: null,
  model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
    fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab: {}, merges: [] },
}));
tok.train(files);
const tmp = join(outDir, '.trained-full.json');
mkdirSync(outDir, { recursive: true });
tok.save(tmp, false);
const full = JSON.parse(readFileSync(tmp, 'utf8')) as { model: { merges: ([string, string] | string)[] } };
rmSync(tmp);

const merges = full.model.merges.map((m) => (typeof m === 'string' ? (m.split(' ') as [string, string]) : m));
const keep = vocabSize - 258;
if (merges.length < keep) throw new Error(`the trainer learned only ${merges.length} merges, fewer than ${keep}`);
const vocab: Record<string, number> = { '<s>': 0, '</s>': 1 };
for (const b of hf.byteLevelAlphabet().sort((a, b) => a.codePointAt(0)! - b.codePointAt(0)!)) vocab[b] = Object.keys(vocab).length;
const kept = merges.slice(0, keep);
for (const [a, b] of kept) {
  if (!(a in vocab) || !(b in vocab)) throw new Error(`merge ${a} ${b} uses a piece outside the kept vocabulary`);
  if (!((a + b) in vocab)) vocab[a + b] = Object.keys(vocab).length;
}
const json = {
  version: '1.0', truncation: null, padding: null,
  added_tokens: [
    { id: 0, content: '<s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
    { id: 1, content: '</s>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true },
  ],
  normalizer: null,
  pre_tokenizer: preTokenizer,
  post_processor: { type: 'TemplateProcessing', single: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }],
    pair: [{ SpecialToken: { id: '<s>', type_id: 0 } }, { Sequence: { id: 'A', type_id: 0 } }, { Sequence: { id: 'B', type_id: 1 } }],
    special_tokens: { '<s>': { id: '<s>', ids: [0], tokens: ['<s>'] } } },
  decoder: { type: 'ByteLevel', add_prefix_space: false, trim_offsets: true, use_regex: false },
  model: { type: 'BPE', dropout: null, unk_token: null, continuing_subword_prefix: null, end_of_word_suffix: null,
    fuse_unk: false, byte_fallback: false, ignore_merges: false, vocab, merges: kept },
};
writeFileAtomic(join(outDir, 'tokenizer.json'), Buffer.from(JSON.stringify(json)));
writeFileSync(join(outDir, 'tokenizer_config.json'), JSON.stringify({ bos_token: '<s>', eos_token: '</s>', add_bos_token: true,
  model_max_length: 2048, tokenizer_class: 'PreTrainedTokenizerFast' }, null, 2) + '\n');
console.log(`tokenizer.json: ${Object.keys(vocab).length} tokens (${full.model.merges.length} merges learned, ${keep} kept) -> ${outDir}`);
