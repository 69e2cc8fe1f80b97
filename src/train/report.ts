/**
 * report.html for a training run: training loss and validation curves from metrics.jsonl, drawn as inline SVG in one
 * self-contained page (no scripts, fonts or network), plus the run's config.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/tensor-file.js';
import { esc, lineChart } from '../report/svg.js';
import { loadCheckpoint } from './checkpoint.js';
import { readMetrics, type EvalRecord, type StepRecord } from './loop.js';

export { lineChart, type Series } from '../report/svg.js';

const CSS = `body{font:14px/1.45 system-ui,sans-serif;margin:24px;color:#222;max-width:1200px}h1{font-size:22px}
.row{display:flex;flex-wrap:wrap;gap:20px}.ax{font-size:10px;fill:#555;text-anchor:middle}.t{font-size:13px;text-anchor:middle}
pre{background:#f6f6f6;padding:8px;font-size:12px}`;

export function renderTrainReport(train: readonly StepRecord[], evals: readonly EvalRecord[], config: unknown): string {
  const charts = [
    lineChart('training loss', [{ name: 'train loss', color: '#2563eb', points: train.map((r) => [r.step, r.loss]) }]),
    lineChart('validation', [
      { name: 'val objective', color: '#dc2626', points: evals.map((e) => [e.step, e.loss]) },
      ...(evals.some((e) => e.kl !== undefined) ? [{ name: 'val KL (tau 1)', color: '#16a34a', points: evals.map((e): [number, number] => [e.step, e.kl ?? NaN]) }] : []),
    ]),
    lineChart('validation perplexity', [{ name: 'val ppl', color: '#9333ea', points: evals.map((e) => [e.step, e.ppl]) }]),
    lineChart('tokens/s', [{ name: 'tokens/s', color: '#ea580c', points: train.map((r) => [r.step, r.tokPerSec]) }]),
  ];
  return `<!doctype html><html><head><meta charset="utf-8"><title>recurformer training</title><style>${CSS}</style></head><body>
<h1>Training run</h1><div class="row">${charts.join('')}</div>
<h2>Config</h2><pre>${esc(JSON.stringify(config, null, 2))}</pre></body></html>\n`;
}

/** Writes DIR/report.html from DIR/metrics.jsonl (and the checkpoint's config); returns its path. */
export function writeTrainReport(dir: string): string {
  const metrics = readMetrics(dir);
  const train = metrics.filter((m): m is StepRecord => m.type === 'train');
  const evals = metrics.filter((m): m is EvalRecord => m.type === 'eval');
  const config = existsSync(join(dir, 'checkpoint.bin')) ? loadCheckpoint(dir).state.config : null;
  const path = join(dir, 'report.html');
  writeFileAtomic(path, Buffer.from(renderTrainReport(train, evals, config)));
  return path;
}
