/** The analysis end to end on stories260K and a random GPT-2: schema, determinism, group scores, CLI, errors. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { analyze, parseWindows } from '../../src/analysis/analyze.js';
import type { Analysis } from '../../src/analysis/schema.js';
import { load } from '../../src/cli/common.js';
import { buildModel } from '../../src/io/build.js';
import { ArgumentError, Rng } from '../../src/tensor/index.js';
import { runCli } from '../helpers/cli.js';
import { randomModel, tinyConfig } from '../helpers/random-model.js';

const DATA = 'data/tinystories-valid-excerpt/tinystories_val.txt';
const MECHANISMS = ['positional-encoding', 'feature-distribution', 'mixed', 'inconclusive', 'no-sink'];

function checkSchema(a: Analysis, windows: number[]): void {
  assert.equal(a.schema, 'recurformer.analysis');
  assert.equal(a.version, 1);
  const { nLayers: L, nHeads: H, nKvHeads: G } = a.model;
  assert.equal(a.heads.length, L * H);
  assert.equal(a.groups.length, L * G);
  for (const h of a.heads) {
    for (const key of ['layer', 'head', 'kvGroup', 'rr', 'rrw', 'sink', 'sinkFirst4', 'entropy', 'meanDistance']) {
      assert.ok(key in h, `head field ${key}`);
    }
    for (const k of windows) {
      const rr = h.rr[String(k)]!, rrw = h.rrw[String(k)]!;
      assert.ok(rr >= 0 && rr <= 1 + 1e-6, `RR(${k}) in [0, 1]: ${rr}`);
      assert.ok(rrw >= rr - 1e-9 && rrw <= 1 + 1e-6, `RR <= RRw <= 1: ${rr}, ${rrw}`);
    }
    assert.ok(h.sink! >= 0 && h.sink! <= h.sinkFirst4! + 0.5);
  }
  for (const g of a.groups) {
    const members = a.heads.filter((h) => h.layer === g.layer && h.kvGroup === g.kvGroup);
    assert.equal(members.length, H / G);
    for (const k of windows) {
      assert.equal(g.groupScore.rr[String(k)], Math.min(...members.map((h) => h.rr[String(k)]!)));
      assert.equal(g.groupScore.rrw[String(k)], Math.min(...members.map((h) => h.rrw[String(k)]!)));
    }
  }
  assert.ok(MECHANISMS.includes(a.waiver.mechanism));
  assert.equal(a.waiver.perLayer.length, L);
  assert.equal(a.waiver.evidence.heads.length, L * H);
  assert.equal(a.waiver.evidence.layers.length, L);
  assert.deepEqual(a.waiver.tests.tests.map((t) => t.test), ['shift', 'prepend', 'mask', 'bos-drop', 'bos-replace']);
  assert.ok(a.maps.length >= 3);
}

test('stories260K: the analysis runs end to end, fills the schema and is deterministic for a seed', () => {
  const { loaded, model } = load(undefined);
  const ids = loaded.tokenizer!.encode(readFileSync(DATA, 'utf8').slice(0, 200_000), { bos: false });
  const s = { samples: 2, seq: 64, windows: [4, 16], seed: 5 };
  const a = analyze(model, ids, s);
  checkSchema(a, s.windows);
  assert.equal(JSON.stringify(analyze(model, ids, s)), JSON.stringify(a), 'same seed, same JSON');
  assert.notEqual(JSON.stringify(analyze(model, ids, { ...s, seed: 6 }).heads), JSON.stringify(a.heads), 'another seed, other samples');
  // RoPE sees only relative positions: shifting every position id keeps the attention on the first token.
  for (const p of a.waiver.tests.tests[0]!.perLayer) assert.ok(Math.abs(p.values.retention! - 1) < 1e-3, `shift retention ${p.values.retention}`);
});

test('random GPT-2 (learned positions): the analysis runs end to end', () => {
  const cfg = tinyConfig('gpt2');
  const model = buildModel(randomModel(cfg, 1));
  const rng = new Rng(2);
  const ids = Array.from({ length: 500 }, () => 1 + rng.int(cfg.vocabSize - 1));
  const a = analyze(model, ids, { samples: 2, seq: 32, windows: [2, 8], seed: 0 });
  checkSchema(a, [2, 8]);
  assert.equal(a.model.positions, 'learned');
  assert.equal(a.waiver.tests.tests[0]!.perLayer[0]!.values.offset, 32);
});

test('bad settings are typed errors with hints', () => {
  const { model } = load(undefined);
  const ids = Array.from({ length: 300 }, (_, i) => 3 + (i % 50));
  assert.throws(() => analyze(model, ids, { samples: 1, seq: 1024, windows: [4], seed: 0 }), (e: unknown) => e instanceof ArgumentError && /context of 512/.test(e.message));
  assert.throws(() => analyze(model, ids, { samples: 1, seq: 64, windows: [64], seed: 0 }), ArgumentError);
  assert.throws(() => parseWindows('4,,x'), ArgumentError);
  assert.throws(() => parseWindows('4,4'), ArgumentError);
  assert.deepEqual(parseWindows('64, 4,16'), [4, 16, 64]);
});

test('CLI analyze writes analysis.json and report.html; a missing data file exits 1', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'rf-analyze-'));
  try {
    const r = await runCli(['analyze', '--data', DATA, '--samples', '1', '--seq', '48', '--windows', '4,16', '--out', dir, '--json']);
    assert.equal(r.code, 0, r.stderr);
    const out = JSON.parse(r.stdout) as { json: string; html: string; mechanism: string };
    assert.ok(MECHANISMS.includes(out.mechanism));
    const a = JSON.parse(readFileSync(join(dir, 'analysis.json'), 'utf8')) as Analysis;
    checkSchema(a, [4, 16]);
    assert.ok(existsSync(join(dir, 'report.html')));
    const bad = await runCli(['analyze', '--data', join(dir, 'missing.txt'), '--out', dir]);
    assert.equal(bad.code, 1);
    assert.match(bad.stderr, /missing\.txt does not exist/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
