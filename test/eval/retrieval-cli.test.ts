/**
 * `recurformer eval passkey|hashhop|needle` end to end on the bundled model: --json prints the EvalRecord, --out
 * writes it, --equal-cache sizes the baselines to a converted model's cache, bad flags are typed errors.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fakeAnalysis, runCli } from '../helpers/cli.js';
import { loadModel } from '../../src/io/model-load.js';
import { cacheProfile, streamingAtEqualCache, streamingHeadsAtEqualCache } from '../../src/eval/budget.js';
import type { EvalRecord, RetrievalResult } from '../../src/eval/record.js';

type Rec = EvalRecord<RetrievalResult>;

test('eval passkey --json prints the EvalRecord; --out writes the same record; the table lists every cell', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rf-retr-'));
  try {
    const out = join(dir, 'passkey.json');
    const r = await runCli(['eval', 'passkey', '--lengths', '160,256', '--depths', '0,1', '--samples', '2', '--seed', '3', '--label', 'tiny', '--out', out, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const rec = JSON.parse(r.stdout) as Rec;
    assert.equal(rec.schema, 'recurformer.eval');
    assert.equal(rec.version, 1);
    assert.equal(rec.task, 'passkey');
    assert.equal(rec.memory, 'full');
    assert.equal(rec.equalCache, null);
    assert.equal(rec.label, 'tiny');
    assert.equal(rec.seed, 3);
    assert.deepEqual(rec.settings, { lengths: [160, 256], depths: [0, 1], samples: 2, maxContext: 512 });
    assert.equal(rec.result.cells.length, 4);
    for (const c of rec.result.cells) assert.ok(c.accuracy >= 0 && c.accuracy <= 1 && c.meanTokens <= c.length);
    assert.equal(rec.result.misses.length, rec.result.cells.reduce((s, c) => s + c.n - c.correct, 0));
    for (const m of rec.result.misses) assert.match(m.expected, /^ \d{5}$/);
    const written = JSON.parse(readFileSync(out, 'utf8')) as Rec;
    assert.deepEqual({ ...written, seconds: 0 }, { ...rec, seconds: 0 });
    const t = await runCli(['eval', 'hashhop', '--lengths', '96', '--hops', '1,2', '--samples', '1']);
    assert.equal(t.code, 0, t.stderr);
    assert.match(t.stdout, /length\s+tokens\s+hops=1\s+hops=2\s+all\n\s+96\s+\d+\s+\d+%\s+\d+%\s+\d+%\noverall \d+% over 2 cases/);
    // stories260K never follows a hash chain: both cases are listed with what it answered
    assert.match(t.stdout, /\nmisses:\n {2}length 96 hops 1 sample 0: expected " [^"]+", got ".*"\n {2}length 96 hops 2 sample 0: expected /);
    const d = await runCli(['eval', 'hashhop', '--lengths', '96', '--hops', '2', '--samples', '1', '--alphabet', 'digits', '--json']);
    assert.equal(d.code, 0, d.stderr);
    const dr = JSON.parse(d.stdout) as Rec;
    assert.equal(dr.settings.alphabet, 'digits');
    for (const m of dr.result.misses) assert.match(m.expected, /^ [1-9]\d{5} = [1-9]\d{5}$/);
    assert.equal(dr.result.misses.length, 1, 'stories260K never follows a chain of digit hashes either');
    const n = await runCli(['eval', 'needle', '--lengths', '200', '--depths', '0.5', '--samples', '1', '--memory', 'streaming', '--window', '32', '--json']);
    assert.equal(n.code, 0, n.stderr);
    const nr = JSON.parse(n.stdout) as Rec;
    assert.deepEqual(nr.settings.windows, [{ length: 200, sinks: 4, window: 32 }]);
    assert.equal(nr.result.chance, 1 / 50);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('--equal-cache sizes streaming to the converted model\'s cache at each length, streaming-heads to its state', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rf-retr-'));
  try {
    const a = join(dir, 'analysis.json');
    writeFileSync(a, JSON.stringify(fakeAnalysis()));
    const conv = join(dir, 'conv');
    const c = await runCli(['convert', '--analysis', a, '--budget', '0.5', '--calib-tokens', '128', '--out', conv, '--json']);
    assert.equal(c.code, 0, c.stderr);
    const lm = loadModel(conv);
    const profile = cacheProfile(lm.config, lm.recurformer);
    const s = await runCli(['eval', 'passkey', '--memory', 'streaming', '--equal-cache', conv, '--lengths', '160,256', '--depths', '0.5', '--samples', '1', '--json']);
    assert.equal(s.code, 0, s.stderr);
    const rec = JSON.parse(s.stdout) as Rec;
    assert.equal(rec.memory, 'streaming');
    assert.equal(rec.equalCache, conv);
    assert.deepEqual(rec.settings.windows, [160, 256].map((length) => ({ length, ...streamingAtEqualCache(profile, length, 4) })));
    // half the KV groups replaced: about half the tokens fit, less for the recurrent state
    assert.ok((rec.settings.windows as { window: number }[])[0]!.window > 60);
    const h = await runCli(['eval', 'passkey', '--memory', 'streaming-heads', '--equal-cache', conv, '--sinks', '2', '--lengths', '160', '--depths', '0', '--samples', '1', '--json']);
    assert.equal(h.code, 0, h.stderr);
    assert.deepEqual((JSON.parse(h.stdout) as Rec).settings.windows, [{ length: 160, ...streamingHeadsAtEqualCache(profile, 2) }]);
    const full = await runCli(['eval', 'passkey', '--equal-cache', conv, '--lengths', '160']);
    assert.equal(full.code, 1);
    assert.match(full.stderr, /--equal-cache needs a baseline memory, not --memory full[^]*hint: add --memory streaming/);
    const notConverted = await runCli(['eval', 'passkey', '--memory', 'streaming', '--equal-cache', new URL('../../models/stories260K', import.meta.url).pathname, '--lengths', '160']);
    assert.match(notConverted.stderr, /--equal-cache .* is not a converted model/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad flags are typed errors naming the flag', async () => {
  const cases: [string[], RegExp][] = [
    [['eval', 'passkey', '--lengths', '600'], /length = 600 leaves no room in the context of 512 tokens[^]*hint: use lengths up to/],
    [['eval', 'passkey', '--lengths', '256,abc'], /--lengths = 256,abc: abc is not a number/],
    [['eval', 'passkey', '--depths', '0,1.5'], /--depths = 0,1.5: 1.5 must be within \[0, 1\]\n.*e\.g\. --depths 0,0.5,1/],
    [['eval', 'needle', '--depths', '-0.1'], /--depths = -0.1: -0.1 must be within \[0, 1\]/],
    [['eval', 'hashhop', '--hops', '0'], /--hops = 0: 0 must be a positive integer/],
    [['eval', 'hashhop', '--hops', ''], /--hops is empty/],
    [['eval', 'hashhop', '--alphabet', 'hex'], /--alphabet.*hex.*Allowed choices are letters, digits/],
    [['eval', 'passkey', '--samples', '0'], /--samples = 0/],
    [['eval', 'passkey', '--memory', 'lossy'], /lossy is not a memory kind/],
    [['eval', 'needle', '--haystack', '/nonexistent/book.txt'], /--haystack \/nonexistent\/book.txt does not exist/],
  ];
  for (const [args, re] of cases) {
    const r = await runCli(args);
    assert.equal(r.code, 1, args.join(' '));
    assert.match(r.stderr, re);
  }
});
