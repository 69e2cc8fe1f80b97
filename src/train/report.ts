/**
 * report.html for a training run: training loss and validation curves from metrics.jsonl, drawn as inline SVG in one
 * self-contained page (no scripts, fonts or network), plus the run's config.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../io/tensor-file.js';
import { esc, fmt } from '../report/svg.js';
import { loadCheckpoint } from './checkpoint.js';
import { readMetrics, type EvalRecord, type StepRecord } from './loop.js';

export interface Series {
  name: string;
  color: string;
  points: [number, number][];
}

/** A line chart of several series over steps (log y when every value is positive and they span > 10x). */
export function lineChart(title: string, series: readonly Series[], w = 560, h = 260): string {
  const all = series.flatMap((s) => s.points).filter(([, y]) => Number.isFinite(y));
  if (all.length === 0) return `<p>${esc(title)}: no data</p>`;
  const xs = all.map((p) => p[0]), ys = all.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1);
  const log = ys.every((y) => y > 0) && Math.max(...ys) / Math.min(...ys) > 10;
  const f = (y: number): number => (log ? Math.log10(y) : y);
  const y0 = Math.min(...ys.map(f)), y1 = Math.max(...ys.map(f), y0 + 1e-9);
  const L = 56, R = 12, Tp = 24, B = 30;
  const px = (x: number): number => L + ((x - x0) / (x1 - x0)) * (w - L - R);
  const py = (y: number): number => Tp + (1 - (f(y) - y0) / (y1 - y0)) * (h - Tp - B);
  let svg = `<svg xmlns="http://www.w3.org/2000/svg" width="${w}" height="${h}" role="img" aria-label="${esc(title)}">`;
  svg += `<text x="${w / 2}" y="14" class="t">${esc(title)}${log ? ' (log scale)' : ''}</text>`;
  svg += `<line x1="${L}" y1="${h - B}" x2="${w - R}" y2="${h - B}" stroke="#999"/><line x1="${L}" y1="${Tp}" x2="${L}" y2="${h - B}" stroke="#999"/>`;
  for (let i = 0; i <= 4; i++) {
    const yv = y0 + ((y1 - y0) * i) / 4;
    const yy = Tp + (1 - i / 4) * (h - Tp - B);
    svg += `<text x="${L - 4}" y="${yy + 3}" class="ax" text-anchor="end">${fmt(log ? 10 ** yv : yv)}</text>`;
    const xv = x0 + ((x1 - x0) * i) / 4;
    svg += `<text x="${px(xv)}" y="${h - B + 14}" class="ax">${Math.round(xv)}</text>`;
  }
  svg += `<text x="${w / 2}" y="${h - 2}" class="ax">step</text>`;
  series.forEach((s, k) => {
    const pts = s.points.filter(([, y]) => Number.isFinite(y));
    if (pts.length === 0) return;
    svg += `<polyline fill="none" stroke="${s.color}" stroke-width="1.5" points="${pts.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ')}"/>`;
    if (pts.length < 40) for (const [x, y] of pts) svg += `<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="2.5" fill="${s.color}"/>`;
    svg += `<text x="${w - R - 4}" y="${Tp + 12 + 13 * k}" class="ax" text-anchor="end" fill="${s.color}">${esc(s.name)}</text>`;
  });
  return `${svg}</svg>`;
}

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
