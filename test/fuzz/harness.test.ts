/**
 * The fuzz harness itself: a hang is cut at the timeout and the worker restarted; untyped errors and typed errors
 * naming no file of the input fail; an input is a function of its seed alone (so the seed in a failure report
 * replays it), and RECURFORMER_FUZZ_REPLAY runs exactly the seeds given.
 */
import { test } from 'node:test';
import type { TestContext } from 'node:test';
import assert from 'node:assert/strict';
import { fuzz, judge, Sandbox, type Target } from './harness.js';
import { inputSeed, mutateBytes, mutateJson, Rng } from './mutate.js';

const box = new Sandbox();

test('a hang is cut at the timeout, and the restarted worker runs the next input', async () => {
  try {
    const hang = await box.run({ kind: 'selftest', what: 'hang', path: '/in' }, 1000);
    assert.equal(hang.ok, false);
    assert.ok(!hang.ok && hang.name === 'Timeout' && !hang.typed);
    assert.ok(hang.ms >= 1000 && hang.ms < 5000, `${hang.ms}`);
    const next = await box.run({ kind: 'selftest', what: 'ok', path: '/in' }, 5000);
    assert.ok(next.ok);
    assert.equal(box.starts, 2);
  } finally {
    await box.kill();
  }
});

test('only typed errors naming a file of the input pass', async () => {
  try {
    const untyped = await box.run({ kind: 'selftest', what: 'untyped', path: '/in/x' }, 5000);
    assert.match(judge(untyped, '/in') ?? '', /^TypeError is not a RecurformerError/);
    const typed = await box.run({ kind: 'selftest', what: 'typed', path: '/in/x' }, 5000);
    assert.equal(judge(typed, '/in'), null);
    assert.match(judge(typed, '/elsewhere') ?? '', /names no file of the input/);
  } finally {
    await box.kill();
  }
});

test('an input is a function of its seed', () => {
  const seed = { name: 's', bytes: Buffer.from(Array.from({ length: 300 }, (_, i) => i & 0xff)), hot: [[0, 40]] as [number, number][],
    fields: [{ at: 8, size: 8 as const, what: 'count' }] };
  const json = JSON.stringify({ a: [1, 2, { b: 'x', c: null }], d: { e: 1.5, f: 'Regex' }, g: true }, null, 2);
  for (let i = 0; i < 50; i++) {
    const s = inputSeed(7, i);
    const [x, y] = [mutateBytes(new Rng(s), seed, []), mutateBytes(new Rng(s), seed, [])];
    assert.ok(x.bytes.equals(y.bytes) && x.tail === y.tail);
    assert.deepEqual(x.log, y.log);
    assert.deepEqual(mutateJson(new Rng(s), json, { regexKeys: ['f'] }), mutateJson(new Rng(s), json, { regexKeys: ['f'] }));
  }
  assert.equal(new Set(Array.from({ length: 1000 }, (_, i) => inputSeed(7, i))).size, 1000);
});

test('failures are reported with seeds that replay them', async () => {
  const fake = { diagnostic() {}, todo() {}, skip() {} } as unknown as TestContext;
  // fails on about a third of the inputs: untyped, or typed but naming another path
  const target: Target = {
    name: 'selftest', seconds: 60, maxInputs: 12,
    make: (rng, dir) => {
      const k = rng.int(3);
      return { request: { kind: 'selftest', what: k === 0 ? 'untyped' : 'typed', path: k === 1 ? '/elsewhere' : dir }, log: [`k=${k}`] };
    },
  };
  let report = '';
  try {
    assert.ok((await box.run({ kind: 'selftest', what: 'ok', path: '/in' }, 10_000)).ok); // the worker started
    await assert.rejects(fuzz(fake, target, box), (e: Error) => (report = e.message, true));
    const seeds = [...report.matchAll(/input seed ([0-9a-f]{8})/g)].map((m) => m[1]!);
    assert.ok(seeds.length >= 2, report);
    assert.match(report, /RECURFORMER_FUZZ_REPLAY=selftest:[0-9a-f]{8}/);
    process.env.RECURFORMER_FUZZ_REPLAY = `selftest:${seeds.join(',')}`;
    await assert.rejects(fuzz(fake, target, box), (e: Error) => {
      assert.deepEqual([...e.message.matchAll(/input seed ([0-9a-f]{8})/g)].map((m) => m[1]), seeds);
      return true;
    });
  } finally {
    delete process.env.RECURFORMER_FUZZ_REPLAY;
    await box.kill();
  }
});
