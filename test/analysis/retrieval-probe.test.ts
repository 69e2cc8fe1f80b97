/**
 * The retrieval probe on the bundled demo-llama, whose passkey retrieval lives in one KV group of its last layer
 * (measured on the committed weights): windowing that group alone breaks retrieval, windowing any group of the first
 * four layers costs nothing. Then the CLI path: analyze --retrieval-probe writes the probe, convert keeps that group.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { probeRetrieval, type ProbeSettings } from '../../src/eval/retrieval-probe.js';
import type { Analysis } from '../../src/analysis/schema.js';
import type { ReplacementPlan } from '../../src/convert/plan.js';
import { loadModel } from '../../src/io/model-load.js';
import { buildModel } from '../../src/io/build.js';
import { ArgumentError } from '../../src/tensor/errors.js';
import { runCli } from '../helpers/cli.js';
import { tempDir } from '../io/tmp.js';

const DEMO = new URL('../../models/demo-llama', import.meta.url).pathname;
const loaded = loadModel(DEMO);
const model = buildModel(loaded, { dtype: 'f32' });
const tok = loaded.tokenizer!;
const SETTINGS: ProbeSettings = { length: 256, samples: 2, depths: [0, 0.25, 0.5], sinks: 4, window: 32, seed: 0 };

test('retrieval probe: windowing the last layer\'s retrieval group breaks passkey retrieval, early groups cost nothing', () => {
  const p = probeRetrieval(model, tok, SETTINGS);
  assert.equal(p.prompts, 6);
  assert.equal(p.groups.length, 24);
  assert.equal(p.baseline.accuracy, 1);
  assert.ok(p.baseline.nll < 0.2, `full-attention answer NLL ${p.baseline.nll}`);
  for (const g of p.groups) assert.ok(Math.abs(g.harm - (g.nll - p.baseline.nll)) < 1e-9);
  const top = [...p.groups].sort((a, b) => b.harm - a.harm)[0]!;
  assert.deepEqual([top.layer, top.kvGroup], [5, 1]);
  assert.ok(top.harm > 1, `harm ${top.harm}`);
  assert.ok(top.accuracy < 1, `accuracy ${top.accuracy}`); // teacher-forced: later digits still follow the first
  const early = p.groups.filter((g) => g.layer < 4);
  assert.ok(early.every((g) => Math.abs(g.harm) < 0.05 && g.accuracy === 1), JSON.stringify(early.map((g) => g.harm)));
  assert.throws(() => probeRetrieval(model, tok, { ...SETTINGS, depths: [1] }), ArgumentError);
  assert.throws(() => probeRetrieval(model, tok, { ...SETTINGS, length: 4000 }), /context of 2048/);
});

test('analyze --retrieval-probe records the probe; convert keeps the group retrieval needs', async () => {
  const dir = tempDir('probe');
  const data = join(dir, 'calib.txt');
  writeFileSync(data, readFileSync(new URL('../../data/tinystories-valid-excerpt/tinystories_val.txt', import.meta.url), 'utf8').slice(0, 20_000));
  const an = join(dir, 'an');
  const r = await runCli(['analyze', DEMO, '--data', data, '--samples', '2', '--seq', '64', '--windows', '4,16', '--out', an, '--retrieval-probe',
    '--probe-length', '256', '--probe-samples', '1', '--probe-window', '32', '--json']);
  assert.equal(r.code, 0, r.stderr);
  const summary = JSON.parse(r.stdout) as { retrievalGroups: { layer: number; kvGroup: number }[] };
  assert.deepEqual([summary.retrievalGroups[0]!.layer, summary.retrievalGroups[0]!.kvGroup], [5, 1]);
  const a = JSON.parse(readFileSync(join(an, 'analysis.json'), 'utf8')) as Analysis;
  assert.equal(a.retrieval?.settings.length, 256);
  assert.ok(readFileSync(join(an, 'report.html'), 'utf8').includes('Retrieval probe'));
  const out = join(dir, 'conv');
  const c = await runCli(['convert', DEMO, '--analysis', join(an, 'analysis.json'), '--budget', '0.9', '--window', '4', '--calib', data, '--out', out, '--json']);
  assert.equal(c.code, 0, c.stderr);
  const plan = JSON.parse(readFileSync(join(out, 'plan.json'), 'utf8')) as ReplacementPlan;
  assert.ok(plan.protected!.groups.some((g) => g.layer === 5 && g.kvGroup === 1));
  assert.ok(!plan.layers.some((l) => l.layer === 5 && l.groups.includes(1)), 'the retrieval group stays attention');
  const bad = await runCli(['convert', DEMO, '--analysis', join(an, 'analysis.json'), '--budget', '0.5', '--protect-retrieval', 'lots', '--out', join(dir, 'x')]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /--protect-retrieval/);
});

test('analyze --retrieval-probe on a model that cannot retrieve says so', async () => {
  const dir = tempDir('probe-stories');
  const data = join(dir, 'calib.txt');
  writeFileSync(data, readFileSync(new URL('../../data/tinystories-valid-excerpt/tinystories_val.txt', import.meta.url), 'utf8').slice(0, 20_000));
  const r = await runCli(['analyze', '--data', data, '--samples', '2', '--seq', '64', '--windows', '4,16', '--out', join(dir, 'an'),
    '--retrieval-probe', '--probe-length', '256', '--probe-samples', '1', '--probe-window', '32']);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, /answers only 0% of the probe's pass keys/);
});
