/**
 * report.html for a training run: training loss and validation curves from metrics.jsonl, drawn as inline SVG
 * (Vega-Lite line charts, src/report/charts.ts) in one self-contained page (no scripts, fonts or network), plus the
 * run's config.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/tensor-file.js';
import { colorsFor, lineChart } from './charts.js';
import { esc } from './svg.js';
import { loadCheckpoint } from '../train/checkpoint.js';
import { readMetrics, type ValidationRecord, type StepRecord } from '../train/loop.js';

const CSS = `body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}h1{font-size:22px}
.row{display:flex;flex-wrap:wrap;gap:20px}.fig h3{font-size:14px;margin:4px 0}svg.chart{max-width:100%;height:auto}
pre{background:#f6f6f6;padding:8px;font-size:12px}`;

const fig = (title: string, body: string): string => `<div class="fig"><h3>${esc(title)}</h3>${body}</div>`;

/** The page. Async: the charts render through vega's View.toSVG(). */
export async function renderTrainReport(train: readonly StepRecord[], evals: readonly ValidationRecord[], config: unknown): Promise<string> {
  // one color per curve across the page
  const colors = colorsFor(['train loss', 'val objective', 'val KL (tau 1)', 'val ppl', 'tokens/s']);
  const hasKl = evals.some((e) => e.kl !== undefined);
  const charts = [
    fig('training loss', await lineChart([{ name: 'train loss', points: train.map((r) => [r.step, r.loss]) }],
      { xTitle: 'step', yTitle: 'loss', colors, data: { chart: 'train-loss' } })),
    fig('validation', await lineChart([
      { name: 'val objective', points: evals.map((e) => [e.step, e.loss]) },
      ...(hasKl ? [{ name: 'val KL (tau 1)', points: evals.map((e): [number, number] => [e.step, e.kl ?? NaN]) }] : []),
    ], { xTitle: 'step', yTitle: hasKl ? 'objective, KL (nats)' : 'objective', colors, data: { chart: 'validation' } })),
    fig('validation perplexity', await lineChart([{ name: 'val ppl', points: evals.map((e) => [e.step, e.ppl]) }],
      { xTitle: 'step', yTitle: 'perplexity', colors, data: { chart: 'val-ppl' } })),
    fig('tokens/s', await lineChart([{ name: 'tokens/s', points: train.map((r) => [r.step, r.tokPerSec]) }],
      { xTitle: 'step', yTitle: 'tokens/s', colors, data: { chart: 'tokens-per-s' } })),
  ];
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>recurformer training</title><style>${CSS}</style></head><body>
<h1>Training run</h1><div class="row">${charts.join('')}</div>
<h2>Config</h2><pre>${esc(JSON.stringify(config, null, 2))}</pre></body></html>\n`;
}

/** Writes DIR/report.html from DIR/metrics.jsonl (and the checkpoint's config); returns its path. */
export async function writeTrainReport(dir: string): Promise<string> {
  const metrics = readMetrics(dir);
  const train = metrics.filter((m): m is StepRecord => m.type === 'train');
  const evals = metrics.filter((m): m is ValidationRecord => m.type === 'eval');
  const config = existsSync(join(dir, 'checkpoint.bin')) ? loadCheckpoint(dir).state.config : null;
  const path = join(dir, 'report.html');
  writeFileAtomic(path, Buffer.from(await renderTrainReport(train, evals, config)));
  return path;
}
