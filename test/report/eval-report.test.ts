/**
 * The eval report page from synthetic records of every task: one main chart per task, one heatmap per retrieval
 * record, every label, no NaN / undefined text; the record check names the file and the problem.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { captureChartWarnings } from '../../src/report/charts.js';
import { checkEvalRecord, renderEvalReport } from '../../src/report/eval-report.js';
import { FormatError } from '../../src/tensor/errors.js';
import { assertSelfContained } from './svg-checks.js';
import { LABELS, syntheticRecords } from './synthetic-records.js';

const count = (s: string, sub: string): number => s.split(sub).length - 1;

test('renderEvalReport: one chart per task, a heatmap per retrieval record, every label, no NaN or undefined', async () => {
  const recs = syntheticRecords();
  const { value: page, warnings } = await captureChartWarnings(() => renderEvalReport(recs, 'Synthetic <eval>'));
  assert.deepEqual(warnings, [], 'Vega-Lite and Vega have nothing to warn about');
  assert.ok(page.startsWith('<!doctype html>'));
  assert.ok(page.includes('<title>Synthetic &lt;eval&gt;</title>'));
  for (const t of ['passkey', 'hashhop', 'needle', 'ppl', 'agree', 'cost']) assert.equal(count(page, `data-chart="${t}"`), 1, t);
  assert.equal(count(page, 'class="chart heatmap"'), 3 * LABELS.length, 'a length x depth/hops heatmap per retrieval record');
  assert.equal(count(page, 'role-legend-gradient'), 3 * LABELS.length, 'every heat map has a color legend');
  // accuracy-vs-length: one line per label in each retrieval chart
  assert.equal(count(page, `class="chart line" data-series="${LABELS.length}"`), 3);
  for (const l of LABELS) assert.ok(page.includes(l), l);
  assert.ok(page.includes('>hops<') && page.includes('>depth<'), 'heatmap axes name depth and hops');
  assert.ok(!/NaN|undefined|Infinity/.test(page));
  assertSelfContained(page);
  // every record passes the schema check
  for (const r of recs) {
    const json: unknown = JSON.parse(JSON.stringify(r));
    assert.deepEqual(checkEvalRecord(json, 'r.json'), json);
  }
});

test('renderEvalReport copes with a single task and missing optional settings', async () => {
  const recs = syntheticRecords().filter((r) => r.task === 'ppl').map((r) => ({ ...r, settings: {} }));
  const page = await renderEvalReport(recs, 'ppl only');
  assert.equal(count(page, 'data-chart='), 1);
  assert.ok(!/NaN|undefined/.test(page));
});

test('checkEvalRecord: typed errors naming the file and the field', () => {
  const good = syntheticRecords()[0]!;
  const cases: [unknown, RegExp][] = [
    [[1], /not a JSON object/],
    [{ ...good, schema: 'x' }, /schema is "x"/],
    [{ ...good, version: 2 }, /version 2 is not supported/],
    [{ ...good, task: 'bleu' }, /task "bleu" is not one of/],
    [{ ...good, label: 3 }, /label is not a string/],
    [{ ...good, result: { ...(good.result as object), cells: [{ length: 'long' }] } }, /result\.cells\[0\] has no numeric length/],
  ];
  for (const [x, re] of cases) {
    assert.throws(() => checkEvalRecord(x, 'runs/a.json'), (e) => e instanceof FormatError && /^runs\/a\.json: /.test(e.message) && re.test(e.message), String(re));
  }
});
