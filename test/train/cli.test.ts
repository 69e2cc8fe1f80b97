/** `recurformer train`: pure flag parsing, a run with --json, the metrics log and the loss-curve report. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { resolveTrainValues, trainValuesFromCli } from '../../src/cli/commands/train.js';
import { ArgumentError } from '../../src/tensor/errors.js';
import { makeTrainConfig } from '../../src/train/config.js';
import { readMetrics } from '../../src/train/loop.js';
import { runCli } from '../helpers/cli.js';
import { convertedModel, settleReporter, smallCorpus, TEACHER, tmp } from './helpers.js';

test('flags -> config values: numbers parsed, absent flags absent, bad numbers are typed errors', () => {
  const v = trainValuesFromCli('m', { data: 'd', out: 'o', steps: '12', lr: '1e-3', trainable: 'all', clip: '0' });
  assert.deepEqual(v, { model: 'm', data: 'd', out: 'o', steps: 12, lr: 1e-3, trainable: 'all', clip: 0 });
  assert.throws(() => trainValuesFromCli(undefined, { steps: '1.5' }), ArgumentError);
  assert.throws(() => trainValuesFromCli(undefined, { lr: 'fast' }), ArgumentError);
  assert.deepEqual(trainValuesFromCli('m', { steps: 12, lr: 1e-3 }), { model: 'm', steps: 12, lr: 1e-3 }, 'values commander already parsed');
  assert.throws(() => trainValuesFromCli(undefined, { steps: 0 }), /--steps = 0 must be an integer >= 1/);
  assert.equal(resolveTrainValues(undefined, { resume: 'r' }).out, 'r');
  assert.equal(resolveTrainValues(undefined, { resume: 'r', out: 'o' }).out, 'o');
  // --packing reaches the config; a wrong value is an error naming the option
  const values = trainValuesFromCli('m', { data: 'd', out: 'o', teacher: 't', packing: 'document' });
  assert.equal(makeTrainConfig(values).packing, 'document');
  assert.equal(makeTrainConfig(trainValuesFromCli('m', { data: 'd', out: 'o', teacher: 't' })).packing, 'stream');
  assert.throws(() => makeTrainConfig({ ...values, packing: 'doc' }), /packing = doc is not stream or document/);
});

test('train --json: summary, metrics.jsonl, report.html with SVG curves, an HF model folder', async () => {
  const out = tmp('cli');
  await settleReporter();
  const r = await runCli(['train', convertedModel(), '--teacher', TEACHER, '--data', smallCorpus(20_000), '--stage', 'distill',
    '--steps', '6', '--batch', '2', '--seq', '16', '--eval-every', '3', '--eval-batches', '1', '--out', out, '--json']);
  assert.equal(r.code, 0, r.stderr);
  const s = JSON.parse(r.stdout) as { steps: number; first: { kl: number }; last: { kl: number }; report: string; model: string };
  assert.equal(s.steps, 6);
  assert.ok(Number.isFinite(s.first.kl) && Number.isFinite(s.last.kl));
  const m = readMetrics(out);
  assert.equal(m.filter((x) => x.type === 'train').length, 6);
  assert.deepEqual(m.filter((x) => x.type === 'eval').map((x) => x.step), [0, 3, 6]);
  const html = readFileSync(join(out, 'report.html'), 'utf8');
  assert.ok(html.includes('class="chart line"') && html.includes('training loss') && html.includes('distill'));
  assert.ok(existsSync(join(s.model, 'config.json')));
  const bad = await runCli(['train', '--data', 'x', '--stage', 'distill', '--out', tmp('bad')]);
  assert.equal(bad.code, 1);
  assert.match(bad.stderr, /model is required/);
});
