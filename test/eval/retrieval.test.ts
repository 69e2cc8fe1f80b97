/**
 * The retrieval evaluations (src/eval/retrieval.ts): an oracle that reads the answer out of the prompt scores 100%,
 * random guessing scores near chance, prompts are sized to their lengths, cases are seeded per cell, and the real
 * bundled model runs under its own memory and a streaming baseline.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { loadModel } from '../../src/io/model-load.js';
import type { Tokenizer } from '../../src/io/tokenizer.js';
import { buildModel } from '../../src/io/build.js';
import { promptIds } from '../../src/inference/generate.js';
import { streamingMemory } from '../../src/inference/hybrid-memory.js';
import { evalRetrieval, modelPredictor, continuationText, defaultLengths, type Predictor, type RetrievalOpts, type RetrievalTask } from '../../src/eval/retrieval.js';
import { caseSeed, largestFitting, sizedCase } from '../../src/eval/retrieval-cases.js';
import { hashhopCase, hashhopDocument, needleCase, passkeyCase, PASSKEY_FILLER } from '../../src/eval/synthetic.js';
import { ArgumentError } from '../../src/tensor/errors.js';
import { Rng } from '../../src/tensor/rng.js';

const MODEL = new URL('../../models/stories260K', import.meta.url).pathname;
const loaded = loadModel(MODEL);
const tok: Tokenizer = loaded.tokenizer!;
const HAYSTACK = readFileSync(new URL('../../data/gutenberg/frankenstein_pg84.txt', import.meta.url), 'utf8').replace(/^\uFEFF/, '');
const CTX = 512;

const LENGTHS: Record<RetrievalTask, number[]> = { passkey: [160, 300, 480], hashhop: [80, 200, 480], needle: [128, 300, 480] };

function opts(task: RetrievalTask, extra: Partial<RetrievalOpts> = {}): RetrievalOpts {
  return { lengths: LENGTHS[task], depths: [0, 0.5, 1], hops: [1, 2, 3], samples: 3, seed: 0, haystack: HAYSTACK, maxContext: CTX, ...extra };
}

/** The answer a perfect reader finds in the prompt text. */
function readAnswer(text: string): string {
  const key = /The pass key is (\d{5})\./.exec(text);
  if (key) return ` ${key[1]}`;
  const query = /\nQuery: ([a-z]{6}|[1-9]\d{5}) =$/.exec(text);
  if (query) {
    const pairs = new Map(/^Pairs: (.*)\.\n/.exec(text)![1]!.split(', ').map((p) => p.split(' = ') as [string, string]));
    const chain: string[] = [];
    for (let h = pairs.get(query[1]!); h !== undefined; h = pairs.get(h)) chain.push(h);
    return ` ${chain.join(' = ')}`;
  }
  const name = /What is the secret word of (\w+)\? The secret word of \1 is$/.exec(text)![1]!;
  return ` ${new RegExp(`The secret word of ${name} is (\\w+)\\.`).exec(text)![1]}`;
}

/** Decodes the prompt, reads the answer and returns the ids that continue the prompt with it. */
const oracle: Predictor = (ids) => {
  const text = tok.decode(ids);
  const full = promptIds(tok, text + readAnswer(text));
  assert.deepEqual(full.slice(0, ids.length), [...ids], 'the answer tokenizes after the prompt without merging into it');
  return full.slice(ids.length);
};

function randomPredictor(seed: number): Predictor {
  const rng = new Rng(seed);
  return (_ids, maxNew) => Array.from({ length: maxNew }, () => rng.int(tok.vocabSize));
}

for (const task of ['passkey', 'hashhop', 'needle'] as const) {
  test(`${task}: an oracle reading the prompt scores 100% on every cell; prompts fill their lengths`, () => {
    const r = evalRetrieval(oracle, tok, task, opts(task));
    assert.equal(r.cells.length, 3 * 3);
    for (const c of r.cells) {
      assert.equal(c.n, 3);
      assert.equal(c.accuracy, 1, `cell ${JSON.stringify(c)}`);
      assert.ok(c.meanTokens <= c.length, `mean tokens ${c.meanTokens} within ${c.length}`);
    }
    assert.equal(r.accuracy, 1);
    assert.deepEqual(r.misses, []);
    assert.deepEqual(r.byLength.map((b) => [b.length, b.n, b.accuracy]), LENGTHS[task].map((L) => [L, 9, 1]));
    assert.ok(r.chance > 0 && r.chance < 0.05);
  });
}

test('hashhop with digit hashes: the oracle scores 100%, every hash is 6 digits, each cell seeded as with letters', () => {
  const digits = evalRetrieval(oracle, tok, 'hashhop', opts('hashhop', { alphabet: 'digits' }));
  assert.equal(digits.accuracy, 1);
  assert.equal(digits.cells.length, 9);
  for (const length of LENGTHS.hashhop) {
    for (const hops of [1, 2, 3]) {
      const spec = { task: 'hashhop' as const, length, param: hops, seed: 0, sample: 2 };
      const d = sizedCase(tok, { ...spec, alphabet: 'digits' }), l = sizedCase(tok, spec);
      assert.ok(d.ids.length <= length);
      const hashes = d.prompt.replace(/^Pairs: /, '').replace(/\.\nQuery: /, ', ').replace(/ =$/, '').split(/, | = /);
      assert.equal(hashes.length, 2 * d.size + 1, d.prompt);
      for (const h of hashes) assert.match(h, /^[1-9]\d{5}$/);
      assert.match(d.answer, new RegExp(`^( [1-9]\\d{5})( = [1-9]\\d{5}){${hops - 1}}$`));
      // the letters case of the same cell is what it always was: the alphabet does not move the seed
      assert.deepEqual(l, sizedCase(tok, { ...spec, alphabet: 'letters' }));
      assert.match(l.answer, /^ [a-z]{6}/);
    }
  }
  // a digit case is a function of its Rng alone; an alphabet the format does not know is a typed error
  const a = hashhopCase(new Rng(5), 12, 2, 'digits'), b = hashhopCase(new Rng(5), 12, 2, 'digits');
  assert.deepEqual(a, b);
  assert.throws(() => hashhopCase(new Rng(5), 12, 2, 'hex' as 'digits'), (e: unknown) => e instanceof ArgumentError && /alphabet = "hex" is not one of letters, digits/.test(e.message));
});

test('a hashhop training document answers each of its queries by the chain its pairs spell, each chain once', () => {
  for (const [pairs, hops, queries] of [[40, 2, 8], [7, 2, 8], [30, 1, 5], [12, 3, 1]] as const) {
    const doc = hashhopDocument(new Rng(pairs * 10 + hops), pairs, hops, queries, 'digits');
    const [head, ...asked] = doc.split('\n');
    const pairList = /^Pairs: (.*)\.$/.exec(head!)![1]!.split(', ').map((p) => p.split(' = ') as [string, string]);
    assert.equal(pairList.length, pairs);
    const next = new Map(pairList);
    assert.equal(asked.length, Math.min(queries, Math.floor(pairs / hops)), doc);
    const starts = new Set<string>();
    for (const line of asked) {
      const chain = /^Query: (.*)\.$/.exec(line)![1]!.split(' = ');
      assert.equal(chain.length, hops + 1, line);
      for (let i = 0; i < hops; i++) assert.equal(next.get(chain[i]!), chain[i + 1], line);
      assert.ok(![...next.values()].includes(chain[0]!), `${line} starts a chain`);
      starts.add(chain[0]!);
    }
    assert.equal(starts.size, asked.length, 'no chain is asked twice');
  }
  assert.throws(() => hashhopDocument(new Rng(1), 10, 2, 0), (e: unknown) => e instanceof ArgumentError && /queries = 0 must be a positive integer/.test(e.message));
});

test('sizing: passkey within one filler block, hashhop within a couple of pairs, needle maximal to the sentence', () => {
  const block = tok.encode(PASSKEY_FILLER, { bos: false }).length;
  for (const c of evalRetrieval(oracle, tok, 'passkey', opts('passkey')).cells) assert.ok(c.meanTokens > c.length - block, JSON.stringify(c));
  for (const c of evalRetrieval(oracle, tok, 'hashhop', opts('hashhop')).cells) assert.ok(c.meanTokens >= c.length - 24, JSON.stringify(c));
  for (const c of evalRetrieval(oracle, tok, 'needle', opts('needle')).cells) assert.ok(c.meanTokens >= c.length * 0.6, JSON.stringify(c));
  // each needle case is the largest that fits: one more character of haystack overflows the length
  for (const depth of [0, 0.5, 1]) {
    const spec = { task: 'needle' as const, length: 300, param: depth, seed: 3, sample: 1, haystack: HAYSTACK };
    const c = sizedCase(tok, spec);
    assert.ok(c.ids.length <= 300);
    const next = needleCase(new Rng(caseSeed(3, 'needle', 300, depth, 1)), HAYSTACK, c.size + 1, depth);
    assert.ok(promptIds(tok, next.prompt).length > 300);
  }
  // the passkey case for a length is the one with the most filler blocks that fits
  const s = caseSeed(0, 'passkey', 400, 0.5, 0);
  const fit = largestFitting((n) => passkeyCase(new Rng(s), n, 0.5), tok, 400, 0, 400, 1)!;
  assert.ok(fit.fit.ids.length <= 400);
  assert.ok(promptIds(tok, passkeyCase(new Rng(s), fit.size + 1, 0.5).prompt).length > 400);
});

test('random guessing scores near chance: never a pass key or a hash chain, rarely a needle word', () => {
  assert.equal(evalRetrieval(randomPredictor(1), tok, 'passkey', opts('passkey')).cells.reduce((s, c) => s + c.correct, 0), 0);
  assert.equal(evalRetrieval(randomPredictor(2), tok, 'hashhop', opts('hashhop')).cells.reduce((s, c) => s + c.correct, 0), 0);
  const needle = evalRetrieval(randomPredictor(3), tok, 'needle', opts('needle'));
  assert.ok(needle.accuracy <= 0.1, `random needle accuracy ${needle.accuracy}`);
  assert.equal(needle.chance, 1 / 50);
});

test('misses list every wrong case with its cell, sample, expected answer and decoded continuation', () => {
  // right on sample 1 of each cell, a fixed wrong key elsewhere
  const wrong = promptIds(tok, 'The pass key is 00000').slice(promptIds(tok, 'The pass key is').length);
  let i = 0;
  const half: Predictor = (ids) => (i++ % 3 === 1 ? oracle(ids, 0, 0) : wrong);
  const r = evalRetrieval(half, tok, 'passkey', opts('passkey'));
  assert.equal(r.misses.length, r.cells.reduce((s, c) => s + c.n - c.correct, 0));
  assert.equal(r.misses.length, 2 * 9);
  const prompts = recorder();
  evalRetrieval(prompts.predict, tok, 'passkey', opts('passkey'));
  for (const [k, m] of r.misses.entries()) {
    const cell = Math.floor(k / 2), sample = [0, 2][k % 2]!;
    assert.equal(m.sample, sample);
    assert.equal(m.length, r.cells[cell]!.length);
    assert.equal(m.depth, r.cells[cell]!.depth);
    assert.equal(m.hops, undefined);
    assert.equal(m.got, ' 00000');
    // the expected answer is the key the prompt holds
    assert.equal(m.expected, ` ${/pass key is (\d+)/.exec(prompts.prompts[cell * 3 + sample]!)![1]}`);
  }
  const hops = evalRetrieval(randomPredictor(4), tok, 'hashhop', opts('hashhop'));
  assert.equal(hops.misses.length, 27);
  assert.deepEqual(hops.misses.slice(0, 3).map((m) => [m.hops, m.sample, m.depth]), [[1, 0, undefined], [1, 1, undefined], [1, 2, undefined]]);
});

/** A predictor that answers nothing and records the prompts it saw. */
function recorder(): { predict: Predictor; prompts: string[] } {
  const prompts: string[] = [];
  return { predict: (ids) => (prompts.push(tok.decode(ids)), []), prompts };
}

test('determinism: one seed gives the same prompts and results; another seed other keys; cells do not depend on each other', () => {
  const a = recorder(), b = recorder(), c = recorder(), d = recorder();
  const ra = evalRetrieval(a.predict, tok, 'passkey', opts('passkey', { lengths: [300] }));
  const rb = evalRetrieval(b.predict, tok, 'passkey', opts('passkey', { lengths: [300] }));
  assert.deepEqual(a.prompts, b.prompts);
  assert.deepEqual(ra, rb);
  evalRetrieval(c.predict, tok, 'passkey', opts('passkey', { lengths: [300], seed: 1 }));
  const keys = (ps: string[]): string[] => ps.map((p) => /pass key is (\d+)/.exec(p)![1]!);
  assert.notDeepEqual(keys(c.prompts), keys(a.prompts));
  // adding a length and a depth leaves the existing cells' cases as they were
  evalRetrieval(d.predict, tok, 'passkey', opts('passkey', { lengths: [200, 300], depths: [0, 0.25, 0.5, 1] }));
  const kept = d.prompts.slice(12).filter((_p, i) => Math.floor(i / 3) !== 1);
  assert.deepEqual(kept, a.prompts);
  assert.deepEqual(evalRetrieval(oracle, tok, 'needle', opts('needle', { lengths: [300] })), evalRetrieval(oracle, tok, 'needle', opts('needle', { lengths: [300] })));
});

test('continuationText keeps the answer\'s leading space; default lengths climb to the context', () => {
  const ids = promptIds(tok, 'The pass key is');
  const full = promptIds(tok, 'The pass key is 12345');
  assert.equal(continuationText(tok, ids, full.slice(ids.length)), ' 12345');
  assert.deepEqual(defaultLengths(512, 32), [256, 480]);
  assert.deepEqual(defaultLengths(4096, 32), [256, 512, 1024, 2048, 4064]);
  assert.deepEqual(defaultLengths(200, 32), [168]);
});

test('bad input: lengths beyond the context or too short, depths outside [0, 1], hops < 1, no haystack', () => {
  const none: Predictor = () => [];
  const argErr = (re: RegExp) => (e: unknown): boolean => e instanceof ArgumentError && re.test(e.message);
  assert.throws(() => evalRetrieval(none, tok, 'passkey', opts('passkey', { lengths: [600] })), argErr(/length = 600 .*context of 512/));
  assert.throws(() => evalRetrieval(none, tok, 'passkey', opts('passkey', { lengths: [508] })), argErr(/length = 508 .*context of 512[^]*hint: use lengths up to/));
  assert.throws(() => evalRetrieval(none, tok, 'passkey', opts('passkey', { lengths: [64] })), argErr(/length = 64 is too short for a passkey prompt/));
  assert.throws(() => evalRetrieval(none, tok, 'hashhop', opts('hashhop', { lengths: [20], hops: [2] })), argErr(/length = 20 is too short .* with 2 hops/));
  assert.throws(() => evalRetrieval(none, tok, 'passkey', opts('passkey', { depths: [1.5] })), argErr(/depth = 1.5 must be within \[0, 1\]/));
  assert.throws(() => evalRetrieval(none, tok, 'hashhop', opts('hashhop', { hops: [0] })), argErr(/hops = 0 must be a positive integer/));
  assert.throws(() => evalRetrieval(none, tok, 'needle', opts('needle', { haystack: undefined })), argErr(/haystack is required/));
  assert.throws(() => evalRetrieval(none, tok, 'needle', opts('needle', { haystack: HAYSTACK.slice(0, 400) })), argErr(/haystack has 400 characters/));
  assert.throws(() => evalRetrieval(none, tok, 'passkey', opts('passkey', { samples: 0 })), argErr(/samples = 0/));
});

test('the bundled model runs passkey under its own memory and a StreamingLLM baseline', () => {
  const model = buildModel(loaded, { dtype: 'f32' });
  const o = opts('passkey', { lengths: [160, 256], depths: [0, 1], samples: 2 });
  const full = evalRetrieval(modelPredictor(model, tok), tok, 'passkey', o);
  const asked: number[] = [];
  const wide = evalRetrieval(modelPredictor(model, tok, (L) => (asked.push(L), (m) => streamingMemory(m, { sinks: 4, window: 1000 }))), tok, 'passkey', o);
  const narrow = evalRetrieval(modelPredictor(model, tok, () => (m) => streamingMemory(m, { sinks: 4, window: 16 })), tok, 'passkey', o);
  for (const r of [full, wide, narrow]) {
    assert.equal(r.cells.length, 4);
    for (const c of r.cells) assert.ok(c.accuracy >= 0 && c.accuracy <= 1 && c.n === 2);
  }
  assert.deepEqual(wide, full, 'a window longer than the prompt evicts nothing');
  assert.deepEqual(asked, [160, 256], 'the memory factory is asked once per length');
});
