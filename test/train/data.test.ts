/** Data pipeline: sources (file, folder, JSONL), the cached token shard, packing with BOS, split, seeded order. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync, readFileSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { loadModel } from '../../src/io/model-load.js';
import { ArgumentError, FormatError } from '../../src/tensor/errors.js';
import fc from 'fast-check';
import { Batcher, documentBases, listSources, loadShard, PackedData, readShard, tokenizeSources } from '../../src/train/data.js';
import { STORIES, TEACHER, tmp } from './helpers.js';

const tok = loadModel(TEACHER).tokenizer!;
const text = readFileSync(STORIES, 'utf8').slice(0, 6000);

test('sources: a file, a folder (recursive, sorted, .txt/.md/.jsonl only) and JSONL records with BOS each', () => {
  const dir = tmp('src');
  mkdirSync(join(dir, 'sub'));
  writeFileSync(join(dir, 'b.txt'), 'Tom had a red ball.');
  writeFileSync(join(dir, 'sub', 'a.md'), 'Lily saw a cat.');
  writeFileSync(join(dir, 'skip.bin'), 'x');
  writeFileSync(join(dir, 'c.jsonl'), `${JSON.stringify({ text: 'One day.' })}\n\n${JSON.stringify({ text: 'The end.' })}\n`);
  const files = listSources(dir);
  assert.deepEqual(files.map((f) => f.slice(dir.length + 1)), ['b.txt', 'c.jsonl', 'sub/a.md']);
  const ids = Array.from(tokenizeSources(files, tok));
  const expected = [
    ...tok.encode('Tom had a red ball.', { bos: true }), ...tok.encode('One day.', { bos: true }),
    ...tok.encode('The end.', { bos: true }), ...tok.encode('Lily saw a cat.', { bos: true }),
  ];
  assert.deepEqual(ids, expected);
  writeFileSync(join(dir, 'c.jsonl'), '{"body": "x"}\n');
  assert.throws(() => tokenizeSources(listSources(dir), tok), (e: unknown) => e instanceof FormatError && /text-key/.test((e as Error).message));
  assert.deepEqual(Array.from(tokenizeSources([join(dir, 'c.jsonl')], tok, { textKey: 'body' })), tok.encode('x', { bos: true }));
  assert.throws(() => listSources(join(dir, 'missing')), ArgumentError);
});

test('token shard: written once, reused while sources are unchanged, rebuilt when they change', () => {
  const dir = tmp('shard');
  const f = join(dir, 'a.txt');
  writeFileSync(f, text);
  const cache = join(dir, 'cache');
  const a = loadShard(f, tok, cache);
  assert.equal(a.cached, false);
  assert.ok(a.tokens instanceof Uint16Array, 'a 512-token vocabulary fits 16 bits');
  assert.equal(statSync(a.path).size, 24 + 2 * a.tokens.length);
  assert.deepEqual(Array.from(readShard(a.path)), Array.from(a.tokens));
  utimesSync(f, new Date(), new Date(Date.now() + 5000)); // touched, same content
  const b = loadShard(f, tok, cache);
  assert.equal(b.cached, true);
  assert.equal(b.path, a.path);
  writeFileSync(f, `${text} More.`);
  const c = loadShard(f, tok, cache);
  assert.equal(c.cached, false);
  assert.notEqual(c.path, a.path);
  writeFileSync(a.path, Buffer.from('nonsense'));
  assert.throws(() => readShard(a.path), FormatError);
});

test('packing: BOS-led sequences of T, inputs shifted from targets, the last sequences held out', () => {
  const tokens = Uint16Array.from({ length: 103 }, (_, i) => 10 + i);
  const d = new PackedData(tokens, { seq: 10, bos: 1, valFraction: 0.2 });
  assert.equal(d.nSeq, 10);
  assert.equal(d.nVal, 2);
  assert.equal(d.nTrain, 8);
  const inp = new Int32Array(10), tgt = new Int32Array(10);
  d.fill(3, inp, tgt, 0);
  assert.deepEqual(Array.from(inp), [1, 40, 41, 42, 43, 44, 45, 46, 47, 48]);
  assert.deepEqual(Array.from(tgt), [40, 41, 42, 43, 44, 45, 46, 47, 48, 49]);
  const val = [...d.valBatches(4)];
  assert.equal(val.length, 1);
  assert.equal(val[0]!.B, 2);
  assert.equal(val[0]!.targets[0], 10 + 80);
  assert.throws(() => new PackedData(tokens, { seq: 200, bos: 1 }), ArgumentError);
});

/** A stream of documents (BOS = 1, then tokens 100 + document index) of the given lengths. */
function docStream(lengths: readonly number[]): { tokens: Uint16Array; spans: [number, number][] } {
  const out: number[] = [];
  const spans: [number, number][] = [];
  lengths.forEach((L, k) => {
    out.push(1);
    spans.push([out.length, out.length + L]);
    for (let t = 0; t < L; t++) out.push(100 + k);
  });
  return { tokens: Uint16Array.from(out), spans };
}

test('document packing: each sequence starts at a document (right after BOS); the cut document starts the next one', () => {
  // documents of 3, 6, 2, 4 and 5 tokens, T = 8
  const { tokens } = docStream([3, 6, 2, 4, 5]);
  const d = new PackedData(tokens, { seq: 8, bos: 1, valFraction: 0.2, packing: 'document' });
  assert.deepEqual(Array.from(documentBases(tokens, 8, 1)), [1, 5, 12]); // the last document has no full sequence left
  assert.equal(d.nSeq, 3);
  const inp = new Int32Array(8), tgt = new Int32Array(8);
  d.fill(1, inp, tgt, 0); // the 6-token document, whole from position 1, then the next document's BOS and a token
  assert.deepEqual(Array.from(inp), [1, 101, 101, 101, 101, 101, 101, 1]);
  assert.deepEqual(Array.from(tgt), [101, 101, 101, 101, 101, 101, 1, 102]);
  d.fill(0, inp, tgt, 0); // the first document, then the head of the second (read again in sequence 1)
  assert.deepEqual(Array.from(inp), [1, 100, 100, 100, 1, 101, 101, 101]);
  // a document longer than T continues in the next sequence from where the last one ended
  assert.deepEqual(Array.from(documentBases(docStream([2, 20, 3]).tokens, 8, 1)), [1, 4, 12, 20]);
  // stream packing of the same tokens starts sequences anywhere
  assert.equal(new PackedData(tokens, { seq: 8, bos: 1 }).nSeq, 3);
  assert.throws(() => new PackedData(tokens, { seq: 8, bos: 1, packing: 'docs' as 'document' }), /stream or document/);
});

test('document packing (property): no text token skipped, every document that fits is seen whole, bases start documents', () => {
  fc.assert(fc.property(fc.array(fc.integer({ min: 1, max: 40 }), { minLength: 1, maxLength: 30 }), fc.integer({ min: 2, max: 24 }),
    (lengths, T) => {
      const { tokens, spans } = docStream(lengths);
      const bases = Array.from(documentBases(tokens, T, 1));
      const starts = new Set(spans.map(([a]) => a));
      for (let i = 0; i < bases.length; i++) {
        const b = bases[i]!;
        assert.ok(b + T <= tokens.length);
        if (i > 0) {
          const prev = bases[i - 1]!;
          // increasing, and no token between sequences goes unread but the BOS of a document the next one starts with
          assert.ok(b > prev && (b <= prev + T || (b === prev + T + 1 && tokens[prev + T] === 1)));
          // a base is a document's first token, or the continuation of a document longer than T
          assert.ok(starts.has(b) || (b === prev + T && tokens[b - 1] !== 1));
        }
      }
      const end = bases.length ? bases[bases.length - 1]! + T : 0;
      for (const [a, z] of spans) {
        if (z - a > T || z > end) continue;
        assert.ok(bases.some((b) => b <= a && z <= b + T), `document [${a}, ${z}) whole in one sequence`);
      }
    }), { numRuns: 300 });
});

test('batches: seeded shuffle covering every training sequence per epoch; a saved position resumes the same order', () => {
  const tokens = Uint16Array.from({ length: 8 * 50 }, (_, i) => i % 500);
  const d = new PackedData(tokens, { seq: 8, bos: 1, valFraction: 0.1 });
  const first = (b: { targets: Int32Array }): number => b.targets[0]! / 8; // sequence index from its first target
  const a = new Batcher(d, 3, 7);
  const seen: number[] = [];
  for (let i = 0; i < 15; i++) {
    const batch = a.next();
    for (let r = 0; r < 3; r++) seen.push(batch.targets[r * 8]! / 8);
  }
  assert.deepEqual([...seen].sort((x, y) => x - y), Array.from({ length: 45 }, (_, i) => i), 'one epoch = each sequence once');
  assert.notDeepEqual(seen, [...seen].sort((x, y) => x - y), 'shuffled');
  const b = new Batcher(d, 3, 7), c = new Batcher(d, 3, 8);
  assert.deepEqual(first(b.next()), first(new Batcher(d, 3, 7).next()));
  assert.notDeepEqual([0, 1, 2, 3].map(() => first(b.next())), [0, 1, 2, 3].map(() => first(c.next())));
  // resume mid-epoch and across an epoch boundary
  const x = new Batcher(d, 3, 11);
  for (let i = 0; i < 20; i++) x.next();
  const y = new Batcher(d, 3, 11, JSON.parse(JSON.stringify(x.position())));
  for (let i = 0; i < 20; i++) assert.deepEqual(y.next().inputs, x.next().inputs);
});
