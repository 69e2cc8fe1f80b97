/**
 * The reports' Vega-Lite charts (src/report/charts.ts) as SVG strings: distinct colors for many series, round y
 * ticks with titles, heat maps with a color legend, "L0 H2" head labels, a tooltip per mark, no warnings from
 * Vega-Lite or Vega, and pages (analysis, eval, training) with no script or remote URL.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { analyze } from '../../src/analysis/analyze.js';
import type { Analysis } from '../../src/analysis/schema.js';
import { load } from '../../src/cli/common.js';
import { barChart, captureChartWarnings, groupedBarChart, heatmap, histogram, lineChart, logTicks, PALETTE } from '../../src/report/charts.js';
import { renderEvalReport } from '../../src/report/eval-report.js';
import { renderReport } from '../../src/report/html.js';
import { renderTrainReport } from '../../src/report/train-report.js';
import type { ValidationRecord as TrainEval, StepRecord } from '../../src/train/loop.js';
import { evalRecord, type EvalRecord } from '../../src/eval/record.js';
import { assertRoundTicks, assertSelfContained, axisLabels, axisTitle, charts, lineColors } from './svg-checks.js';

const count = (s: string, sub: string): number => s.split(sub).length - 1;

/** Runs `f` and checks that Vega-Lite and Vega gave no warning while it drew. */
async function quiet<T>(f: () => Promise<T>): Promise<T> {
  const { value, warnings } = await captureChartWarnings(f);
  assert.deepEqual(warnings, [], 'no Vega-Lite / Vega warnings');
  return value;
}

const NAMES = ['original', ...[5, 10, 15, 20, 25, 30, 35, 40, 50, 60, 70, 75].map((p) => `RecurFormer ${p}%`)];

test('the palette: vega\'s tableau20, 20 distinct colors, dark shades first', async () => {
  assert.equal(PALETTE.length, 20);
  assert.equal(new Set(PALETTE).size, 20);
  const { scheme } = await import('vega');
  const t20 = scheme('tableau20') as string[];
  assert.deepEqual([...PALETTE], [...t20.filter((_, i) => i % 2 === 0), ...t20.filter((_, i) => i % 2 === 1)]);
});

test('a line chart of 13 series draws 13 distinct colors, one legend entry each', async () => {
  assert.equal(NAMES.length, 13);
  const series = NAMES.map((name, k) => ({ name, points: [[1024, 1 - k * 0.05], [4096, 0.9 - k * 0.05], [16384, 0.6 - k * 0.04]] as [number, number][] }));
  const svg = await quiet(() => lineChart(series, { xTitle: 'length (tokens)', yTitle: 'accuracy', logX: true, yDomain: [0, 1] }));
  const colors = lineColors(svg);
  assert.equal(colors.length, 13, `13 distinct line colors: ${colors.join(' ')}`);
  assert.equal(count(svg, 'role-legend-symbol'), 13);
  for (const n of NAMES) assert.ok(svg.includes(`>${n}</text>`), `legend names ${n}`);
  assert.deepEqual(axisLabels(svg, 'X'), ['1,024', '4,096', '16,384'], 'log length axis: a tick at each length');
  assert.equal(axisTitle(svg, 'Y'), 'accuracy');
  assert.deepEqual(axisLabels(svg, 'Y'), ['0.0', '0.2', '0.4', '0.6', '0.8', '1.0']);
  // a tooltip per dot: 13 series x 3 lengths
  assert.equal(count(svg, '<title>'), 39);
  // and 20 series stay distinct
  const twenty = Array.from({ length: 20 }, (_, k) => ({ name: `s${k}`, points: [[0, k], [1, k + 1]] as [number, number][] }));
  assert.equal(lineColors(await quiet(() => lineChart(twenty, { xTitle: 'step', yTitle: 'loss' }))).length, 20);
});

test('the eval page gives 13 labels 13 colors ("original" and "RecurFormer 75%" differ), in charts and swatches', async () => {
  const recs: EvalRecord[] = NAMES.map((label, k) => evalRecord({
    task: 'passkey', model: 'm', memory: 'full', equalCache: null, label, seed: 0, settings: {}, seconds: 1,
    result: {
      cells: [{ length: 1024, depth: 0.5, n: 4, correct: 4 - (k % 4), accuracy: 1 - (k % 4) / 4, meanTokens: 1000 }], misses: [],
      byLength: [{ length: 1024, n: 4, accuracy: 1 - (k % 4) / 4 }, { length: 4096, n: 4, accuracy: 0.5 - k / 40 }], accuracy: 0.5, chance: 1e-5,
    },
  }));
  const page = await quiet(() => renderEvalReport(recs, '13 labels'));
  const line = charts(page).find((s) => s.includes('class="chart line"'))!;
  assert.equal(lineColors(line).length, 13);
  const swatch = (label: string): string => new RegExp(`background:(#[0-9a-f]{6})"></span>${label}<`).exec(page)![1]!;
  assert.notEqual(swatch('original'), swatch('RecurFormer 75%'));
  assert.equal(new Set(NAMES.map(swatch)).size, 13, 'the table swatches are distinct too');
  assertSelfContained(page);
});

test('a bar chart has a titled y axis with round tick labels, every bar label whole, a tooltip per bar', async () => {
  const bars = [
    { label: 'original', value: 11145.426, title: 'original: 11145.426' },
    { label: 'RecurFormer 75% (streaming @ conv)', value: 8000.5, title: 'long <label> & more' },
    { label: 'x', value: 3.2, title: 'x: 3.2' },
  ];
  const svg = await quiet(() => barChart(bars, { xTitle: 'label', yTitle: 'perplexity', refLine: { value: 5000, title: 'reference' } }));
  const ys = axisLabels(svg, 'Y');
  assertRoundTicks(ys);
  assert.ok(!ys.some((l) => l.includes('11145')), `no unrounded tick: ${ys.join(' ')}`);
  assert.equal(axisTitle(svg, 'Y'), 'perplexity');
  assert.deepEqual(axisLabels(svg, 'X'), ['original', 'RecurFormer 75% (streaming @ conv)', 'x'], 'labels are not clipped or dropped');
  assert.equal(count(svg, 'aria-roledescription="bar"'), 3);
  assert.ok(svg.includes('<title>long &lt;label&gt; &amp; more</title></path>'), 'the tooltip, escaped');
  assert.ok(svg.includes('<title>reference</title>'), 'the reference line has a tooltip');
  // labels that could break the axis' label expression: quotes, backslashes, line separators
  const odd = ['it\'s "q"', 'back\\slash', 'sep\u2028x', 'ünï'];
  const oddSvg = await quiet(() => barChart(odd.map((label, i) => ({ label, value: i + 1, title: label })), { xTitle: 'x', yTitle: 'y' }));
  assert.equal(axisLabels(oddSvg, 'X').length, 4);
  assert.ok(oddSvg.includes('>it\'s "q"</text>') && oddSvg.includes('>ünï</text>'), 'odd labels drawn as given');
  // log scale: ticks at powers of ten (1-2-5 over short spans), the title says so
  const log = await quiet(() => barChart([3, 40, 2000].map((v, i) => ({ label: `L${i}`, value: v, title: '' })),
    { xTitle: 'layer', yTitle: 'ratio', log: true, refLine: { value: 100, title: '100x' } }));
  assert.deepEqual(axisLabels(log, 'Y'), ['1', '10', '100', '1000', '10000']);
  assert.equal(axisTitle(log, 'Y'), 'ratio (log scale)');
  assert.deepEqual(logTicks(9.9, 20), [5, 10, 20]);
  // grouped bars and histograms: round ticks too, integer counts
  const grouped = await quiet(() => groupedBarChart([1024, 4096].flatMap((L) => ['a', 'b'].map((s, k) => ({ group: String(L), series: s, value: L * (k + 1) / 777, title: s }))),
    { xTitle: 'length', yTitle: 'MiB' }));
  assertRoundTicks(axisLabels(grouped, 'Y'));
  assert.ok(grouped.includes('role-legend'), 'a legend names the series');
  const hist = await quiet(() => histogram([0.05, 0.1, 0.11, 0.5, 0.97, 0.99, 1], 10, { xTitle: 'RR(4)', what: 'heads' }));
  assertRoundTicks(axisLabels(hist, 'Y'));
  assert.ok(axisLabels(hist, 'Y').every((l) => /^\d+$/.test(l)), 'integer counts');
});

test('a heat map has a color legend (its own gradient id), a tooltip per cell, printed values, grey for no data', async () => {
  const cells = [0, 1].flatMap((l) => [0, 1, 2].map((h) => ({ row: `L${l}`, col: `H${h}`, value: l === 1 && h === 2 ? null : (l * 3 + h) / 6, title: `L${l} H${h}` })));
  const opts = { rows: ['L0', 'L1'], cols: ['H0', 'H1', 'H2'], rowTitle: 'layer', colTitle: 'head', valueTitle: 'RR(4)', data: { metric: 'rr4' } };
  const svg = await quiet(() => heatmap(cells, opts));
  assert.ok(svg.startsWith('<svg') && svg.includes('class="chart heatmap" data-cells="6" data-metric="rr4"'));
  assert.ok(svg.includes('role-legend-gradient'), 'a gradient legend');
  assert.ok(/aria-label="Gradient legend titled 'RR\(4\)'/.test(svg), 'the legend is titled with the metric');
  const id = /<linearGradient id="([^"]+)"/.exec(svg)?.[1];
  assert.ok(id && /^c[0-9a-f]{10}-/.test(id), `a per-chart gradient id: ${id}`);
  assert.ok(svg.includes(`url(#${id})`));
  assert.equal(count(svg, 'aria-roledescription="cell"'), 6);
  assert.equal(count(svg, '"><title>L'), 6, 'one tooltip per cell');
  assert.ok(svg.includes('fill="#d9d9d9"'), 'the cell with no data is grey');
  assert.ok(svg.includes('>.17</text>') && !svg.includes('null'), 'values printed, none for no data');
  // another heat map's gradient has another id: a page holds both
  const other = await quiet(() => heatmap(cells, { ...opts, scale: 'sqrt', data: { metric: 'sink' } }));
  assert.notEqual(/<linearGradient id="([^"]+)"/.exec(other)?.[1], id);
});

test('lineChart: unplottable points dropped, log y for wide positive ranges, a note when there is nothing to draw', async () => {
  const svg = await quiet(() => lineChart([
    { name: 'a', points: [[0, 100], [1, 10], [2, 1]] },
    { name: 'b', points: [[0, NaN]] },
  ], { xTitle: 'step', yTitle: 'loss' }));
  assert.equal(axisTitle(svg, 'Y'), 'loss (log scale)');
  assert.deepEqual(axisLabels(svg, 'Y'), ['0.5', '1', '2', '5', '10', '20', '50', '100']);
  assert.equal(lineColors(svg).length, 1);
  assert.ok(svg.includes('data-series="1"'), 'the empty series is not drawn');
  assert.ok(!/NaN|undefined|Infinity/.test(svg));
  assert.match(await lineChart([], { xTitle: 'step', yTitle: 'loss' }), /loss: no data/);
  assert.match(await barChart([{ label: 'a', value: NaN, title: '' }], { xTitle: 'x', yTitle: 'y' }), /y: no data/);
});

let analysis: Analysis | null = null;
function stories260K(): Analysis {
  if (!analysis) {
    const { loaded, model } = load(undefined);
    const ids = loaded.tokenizer!.encode(readFileSync('data/tinystories-valid-excerpt/tinystories_val.txt', 'utf8').slice(0, 50_000), { bos: false });
    analysis = analyze(model, ids, { samples: 1, seq: 48, windows: [4, 16], seed: 0 });
  }
  return analysis;
}

test('the analysis page: head heat maps with legends, heads named "L0 H2", self-contained, no warnings', async () => {
  const a = stories260K();
  const page = await quiet(() => renderReport(a));
  const heads = a.model.nLayers * a.model.nHeads;
  const all = charts(page);
  const headMaps = all.filter((s) => /class="chart heatmap"[^>]*data-metric="(rr|rrw|sink)/.test(s));
  assert.equal(headMaps.length, 6, 'RR and RRw at 2 windows, sink, first-4 mass');
  for (const s of headMaps) {
    assert.equal(count(s, 'aria-roledescription="cell"'), heads, 'a cell per head');
    assert.ok(s.includes('role-legend-gradient'), 'a color legend');
    assert.ok(s.includes('<title>L0 H2 (layer 0, head 2, KV group'), 'tooltips name heads "L0 H2"');
  }
  assert.equal(all.filter((s) => /data-metric="map-/.test(s)).length, a.maps.length, 'an attention map per picked head');
  // the per-head bar charts label heads "L0 H2", never "0.2"
  const perHead = all.filter((s) => s.includes('class="chart bars"') && axisTitle(s, 'X') === 'head');
  assert.equal(perHead.length, 2);
  for (const s of perHead) {
    const xs = axisLabels(s, 'X');
    assert.equal(xs.length, heads);
    assert.ok(xs.includes('L0 H2') && xs.every((l) => /^L\d+ H\d+$/.test(l)), xs.slice(0, 4).join(' '));
    assertRoundTicks(axisLabels(s, 'Y'));
  }
  assert.ok(page.includes('L0 H') && !/\bL\d+h\d+\b/.test(page), 'the summary names heads "L0 H2" too');
  // ids are unique across the page (gradients, clip paths)
  const ids = [...page.matchAll(/\sid="([^"]+)"/g)].map((m) => m[1]!);
  assert.equal(new Set(ids).size, ids.length, 'no id repeats');
  assertSelfContained(page);
  assert.ok(!/NaN|undefined/.test(page));
});

test('the training page: four titled line charts, self-contained, no warnings', async () => {
  const train: StepRecord[] = Array.from({ length: 60 }, (_, i) => ({
    type: 'train', step: i + 1, loss: 5 / (i + 1) + 1, lr: 1e-3, gradNorm: 1, tokens: 512, tokPerSec: 11145.426 + i, parts: {},
  }));
  const evals: TrainEval[] = [0, 20, 40, 60].map((step) => ({ type: 'eval', step, loss: 2 - step / 100, ce: 2, ppl: Math.exp(2 - step / 100), kl: 0.5 - step / 200, tokens: 100 }));
  const page = await quiet(() => renderTrainReport(train, evals, { stage: 'distill' }));
  const all = charts(page);
  assert.deepEqual(all.map((s) => /data-chart="([^"]+)"/.exec(s)?.[1]), ['train-loss', 'validation', 'val-ppl', 'tokens-per-s']);
  for (const s of all) {
    assert.ok(axisTitle(s, 'Y'), 'a y title');
    assert.equal(axisTitle(s, 'X'), 'step');
  }
  assert.equal(lineColors(all[1]!).length, 2, 'objective and KL');
  const tps = axisLabels(all[3]!, 'Y');
  assert.ok(!tps.some((l) => l.includes('.')), `rounded tokens/s ticks: ${tps.join(' ')}`);
  assertSelfContained(page);
  assert.ok(page.includes('distill'));
});
