import { test } from 'node:test';
import assert from 'node:assert/strict';
import { evalRecord, type EvalRecord, type RetrievalResult } from '../../src/eval/record.js';
import { CONTROL_LABEL, markdownTable, summarize, whereItBreaks } from '../../src/eval/summary.js';
import type { CostResult } from '../../src/eval/cost.js';

function rec(task: EvalRecord['task'], label: string, memory: EvalRecord['memory'], result: unknown): EvalRecord {
  return evalRecord({ task, model: 'm', memory, equalCache: null, label, seed: 0, settings: {}, result, seconds: 1 });
}
const retrieval = (accs: [number, number][]): RetrievalResult => ({
  cells: [], misses: [], byLength: accs.map(([length, accuracy]) => ({ length, n: 4, accuracy })), accuracy: 0, chance: 1e-5,
});
const cost = (kv: number, at1k: number, tok: number): CostResult => ({
  kvBytesPerToken: kv, constantBytes: 0, fullKvBytesPerToken: 1280, lengths: [{ length: 1024, bytes: at1k, fullAttentionBytes: 1280 * 1024 }],
  prefill: { tokens: 512, seconds: 1, tokPerS: 512 }, decode: { tokens: 32, seconds: 32 / tok, tokPerS: tok, at: 2000, bytes: at1k },
});

test('summary: rows per label, perplexity change against the original, accuracies by length', () => {
  const records = [
    rec('ppl', 'original', 'full', { ppl: 10, nll: Math.log(10), tokens: 100 }),
    rec('passkey', 'original', 'full', retrieval([[256, 1], [512, 0.75]])),
    rec('cost', 'original', 'full', cost(1280, 1280 * 1024, 50)),
    rec('ppl', 'RecurFormer 50%', 'full', { ppl: 10.25 }),
    rec('passkey', 'RecurFormer 50%', 'full', retrieval([[256, 1], [512, 0.5]])),
    rec('agree', 'RecurFormer 50%', 'full', { match: 0.9, kl: 0.05 }),
    rec('cost', 'RecurFormer 50%', 'full', cost(640, 640 * 1024 + 4096, 70)),
    rec('passkey', 'StreamingLLM @50%', 'streaming', retrieval([[256, 1], [512, 0]])),
    rec('cost', 'StreamingLLM @50%', 'streaming', cost(1280, 640 * 1024 + 4096, 80)),
  ];
  const s = summarize(records);
  assert.deepEqual(s.lengths, [256, 512]);
  assert.equal(s.cacheAt, 1024);
  assert.equal(s.decodeAt, 2000);
  assert.deepEqual(s.rows.map((r) => r.label), ['original', 'RecurFormer 50%', 'StreamingLLM @50%']);
  const [o, h, st] = s.rows;
  assert.equal(o!.pplChange, 0);
  assert.ok(Math.abs(h!.pplChange! - 0.025) < 1e-12);
  assert.deepEqual(h!.passkey, [{ correct: 4, n: 4 }, { correct: 2, n: 4 }]);
  assert.deepEqual(h!.hashhop, [null, null]);
  assert.equal(h!.agree, 0.9);
  assert.equal(h!.kvBytesPerToken, 640);
  assert.equal(st!.kvBytesPerToken, null, 'a baseline has no per-token cost of its own: it is sized to the converted cache');
  assert.equal(st!.cacheBytes, 640 * 1024 + 4096);
  const md = markdownTable(s);
  // hashhop and needle ran nowhere: no columns for them
  assert.match(md, /\| RecurFormer 50% \| 640 \| 644 KiB \| 10\.250 \| \+2\.5% \| 4\/4, 2\/4 \| 0\.900 \(0\.050\) \|$/m);
  assert.match(md.split('\n')[0]!, /\| passkey @ 256, 512 \| agree \(KL\) \|$/);
  assert.match(md, /\| original \| 1,280 \| 1280 KiB \| 10\.000 \| \+0\.0% \| 4\/4, 3\/4 \| – \|$/m);
  assert.doesNotMatch(md, /tok\/s/, 'no shared-host speed column');
  assert.equal(md.split('\n').length, 2 + 3);
  assert.doesNotMatch(md, /NaN|undefined/);
});

test('summary: with a control row, every perplexity change is also given against it; retrieval as counts', () => {
  const records = [
    rec('ppl', 'original', 'full', { ppl: 10 }),
    rec('ppl', CONTROL_LABEL, 'full', { ppl: 9 }),
    rec('ppl', 'RecurFormer 50%', 'full', { ppl: 9.45 }),
    rec('passkey', 'RecurFormer 50%', 'full', { ...retrieval([[256, 0.975]]), byLength: [{ length: 256, n: 40, accuracy: 0.975 }] }),
  ];
  const s = summarize(records);
  const [o, c, h] = s.rows;
  assert.equal(o!.pplVsControl, null, 'the original is not compared with its own trained copy');
  assert.ok(Math.abs(c!.pplVsControl!) < 1e-12);
  assert.ok(Math.abs(h!.pplVsControl! - 0.05) < 1e-12 && Math.abs(h!.pplChange! + 0.055) < 1e-12);
  assert.deepEqual(h!.passkey, [{ correct: 39, n: 40 }]);
  const md = markdownTable(s);
  assert.match(md, /\| Δ ppl \| Δ vs control \|/);
  assert.match(md, /\| RecurFormer 50% \| – \| – \| 9\.450 \| -5\.5% \| \+5\.0% \| 39\/40 \|/);
  assert.doesNotMatch(markdownTable(summarize(records.filter((r) => r.label !== CONTROL_LABEL))), /control/, 'no column without a control');
});

test('where it breaks: the first length more than one prompt below the original, with what an evicting cache kept there', () => {
  const counts = (c: [number, number][]): RetrievalResult => ({ ...retrieval([]), byLength: c.map(([length, k]) => ({ length, n: 10, accuracy: k / 10 })) });
  const streaming = evalRecord({
    task: 'passkey', model: 'm', memory: 'streaming', equalCache: 'c', label: 'StreamingLLM @75%', seed: 0,
    settings: { windows: [{ length: 256, sinks: 4, window: 139 }, { length: 1024, sinks: 4, window: 331 }] }, result: counts([[256, 10], [1024, 4]]), seconds: 1,
  });
  const records = [
    rec('passkey', 'original', 'full', counts([[256, 10], [1024, 9]])),
    rec('needle', 'original', 'full', counts([[256, 10], [1024, 10]])),
    // one prompt below the original is within the goal; two is a break
    rec('passkey', 'recurrent+window 75%', 'full', counts([[256, 9], [1024, 8]])),
    rec('needle', 'recurrent+window 75%', 'full', counts([[256, 10], [1024, 9]])),
    rec('passkey', 'RecurFormer 75%', 'full', counts([[256, 10], [1024, 9]])),
    rec('needle', 'RecurFormer 75%', 'full', counts([[256, 10], [1024, 8]])),
    streaming,
    rec('ppl', 'converted 75% (untrained)', 'full', { ppl: 12 }),
  ];
  assert.deepEqual(whereItBreaks(records), [
    'recurrent+window 75%: holds to 1024 tokens (passkey 8/10, needle 9/10; the original passkey 9/10, needle 10/10)',
    'RecurFormer 75%: breaks at 1024 tokens (passkey 9/10, needle 8/10; the original passkey 9/10, needle 10/10)',
    'StreamingLLM @75%: breaks at 1024 tokens (passkey 4/10, needle –; the original passkey 9/10, needle 10/10): its cache keeps 4 sinks + 331 recent tokens there',
  ]);
  assert.deepEqual(whereItBreaks(records.filter((r) => r.label !== 'original')), [], 'nothing to compare with without the original');
  // an original that retrieves nothing (stories260K): no configuration can fall below it, and none is said to hold
  const none = (label: string, memory: EvalRecord['memory']): EvalRecord[] =>
    [rec('passkey', label, memory, { ...retrieval([[256, 0], [1024, 0.25]]) }), rec('needle', label, memory, { ...retrieval([[256, 0], [1024, 0]]) })];
  assert.deepEqual(whereItBreaks([...none('original', 'full'), ...none('RecurFormer 75%', 'full'), ...none('StreamingLLM @75%', 'streaming')]),
    ['none can break: the original retrieves at most one prompt per length (at 1024 tokens: passkey 1/4, needle 0/4), so there is no retrieval to lose']);
});

test('summary: HashHop by hops and length, one column per number of hops', () => {
  const cell = (length: number, hops: number, correct: number) => ({ length, hops, n: 8, correct, accuracy: correct / 8, meanTokens: length });
  const hh = (cells: ReturnType<typeof cell>[]): RetrievalResult => ({
    ...retrieval([]), cells,
    byLength: [256, 1024].map((L) => ({ length: L, n: 16, accuracy: cells.filter((c) => c.length === L).reduce((a, c) => a + c.correct, 0) / 16 })),
  });
  const records = [
    rec('ppl', 'original', 'full', { ppl: 10 }),
    rec('hashhop', 'original', 'full', hh([cell(256, 1, 8), cell(256, 2, 6), cell(1024, 1, 7), cell(1024, 2, 3)])),
    rec('hashhop', 'StreamingLLM @50%', 'streaming', hh([cell(256, 1, 5), cell(256, 2, 1), cell(1024, 1, 0), cell(1024, 2, 0)])),
  ];
  const s = summarize(records);
  assert.deepEqual(s.rows[0]!.hashhopByHops, [
    { hops: 1, counts: [{ correct: 8, n: 8 }, { correct: 7, n: 8 }] },
    { hops: 2, counts: [{ correct: 6, n: 8 }, { correct: 3, n: 8 }] },
  ]);
  assert.deepEqual(s.rows[0]!.hashhop, [{ correct: 14, n: 16 }, { correct: 10, n: 16 }], 'all hops together, as before');
  const md = markdownTable(s).split('\n');
  assert.match(md[0]!, /\| hashhop 1 hop @ 256, 1024 \| hashhop 2 hops @ 256, 1024 \|$/);
  assert.match(md[2]!, /\| original \| .* \| 8\/8, 7\/8 \| 6\/8, 3\/8 \|$/);
  assert.match(md[3]!, /\| StreamingLLM @50% \| .* \| 5\/8, 0\/8 \| 1\/8, 0\/8 \|$/);
  // where it breaks counts HashHop, by hops: a row that keeps passkey but loses 2-hop chains breaks there
  const more = [
    ...records,
    rec('passkey', 'original', 'full', { ...retrieval([]), byLength: [256, 1024].map((length) => ({ length, n: 8, accuracy: 1 })) }),
    rec('passkey', 'RecurFormer 50%', 'full', { ...retrieval([]), byLength: [256, 1024].map((length) => ({ length, n: 8, accuracy: 1 })) }),
    rec('hashhop', 'RecurFormer 50%', 'full', hh([cell(256, 1, 8), cell(256, 2, 5), cell(1024, 1, 6), cell(1024, 2, 1)])),
  ];
  assert.deepEqual(whereItBreaks(more), [
    'StreamingLLM @50%: breaks at 256 tokens (passkey –, hashhop 1 hop 5/8, hashhop 2 hops 1/8; the original passkey 8/8, hashhop 1 hop 8/8, hashhop 2 hops 6/8)',
    'RecurFormer 50%: breaks at 1024 tokens (passkey 8/8, hashhop 1 hop 6/8, hashhop 2 hops 1/8; the original passkey 8/8, hashhop 1 hop 7/8, hashhop 2 hops 3/8)',
  ]);
});
