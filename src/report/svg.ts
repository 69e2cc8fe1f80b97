/**
 * Small inline-SVG chart builders for the self-contained HTML report (no scripts, no network). Every builder returns
 * an SVG string; values are escaped, colors come from one sequential scale.
 */
export function esc(s: string | number): string {
  return String(s).replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');
}

export function fmt(x: number | null | undefined, digits = 3): string {
  return x === null || x === undefined || !Number.isFinite(x) ? 'n/a' : x.toFixed(digits);
}

/** Light yellow (0) -> dark blue (1), a perceptually ordered ramp; null is grey. */
export function color(t: number | null): string {
  if (t === null || !Number.isFinite(t)) return '#ccc';
  const u = Math.min(1, Math.max(0, t));
  const stops = [[255, 255, 217], [127, 205, 187], [29, 145, 192], [37, 52, 148], [8, 29, 88]];
  const x = u * (stops.length - 1), i = Math.min(stops.length - 2, Math.floor(x)), f = x - i;
  const c = stops[i]!.map((a, k) => Math.round(a + (stops[i + 1]![k]! - a) * f));
  return `rgb(${c.join(',')})`;
}

export interface HeatCell {
  layer: number;
  head: number;
  value: number | null;
  title: string;
}

/** Layer (rows) x head (columns) heatmap, one rect.cell per head with data-layer / data-head and a title tooltip. */
export function heatmap(metric: string, cells: readonly HeatCell[], layers: number, heads: number): string {
  const cs = 30, left = 34, top = 18;
  const w = left + heads * cs + 4, h = top + layers * cs + 4;
  let s = `<svg class="heatmap" data-metric="${esc(metric)}" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img">`;
  for (let hd = 0; hd < heads; hd++) s += `<text x="${left + hd * cs + cs / 2}" y="12" class="ax">h${hd}</text>`;
  for (let l = 0; l < layers; l++) s += `<text x="${left - 4}" y="${top + l * cs + cs / 2 + 4}" class="ax" style="text-anchor:end">L${l}</text>`;
  for (const c of cells) {
    const x = left + c.head * cs, y = top + c.layer * cs;
    const txt = c.value === null ? '' : (c.value >= 0.995 ? '1' : c.value.toFixed(2).replace(/^0/, ''));
    s += `<g><rect class="cell" data-layer="${c.layer}" data-head="${c.head}" data-value="${c.value ?? ''}" x="${x}" y="${y}" ` +
      `width="${cs - 1}" height="${cs - 1}" fill="${color(c.value)}"><title>${esc(c.title)}</title></rect>` +
      `<text x="${x + cs / 2}" y="${y + cs / 2 + 3}" class="v" fill="${(c.value ?? 0) > 0.55 ? '#fff' : '#222'}">${txt}</text></g>`;
  }
  return `${s}</svg>`;
}

export interface Bar {
  label: string;
  value: number;
  title: string;
  color?: string;
}

/** Vertical bars with an optional reference line; `log` plots log10(value) (values <= 0 drawn empty). */
export function barChart(bars: readonly Bar[], opts: { height?: number; refLine?: number; log?: boolean; unit?: string; labelSpace?: number } = {}): string {
  // labelSpace: room below (and right of) the bars for long rotated labels
  const H = opts.height ?? 140, bw = Math.max(6, Math.min(28, Math.floor(640 / Math.max(1, bars.length)))), left = 44, bottom = opts.labelSpace ?? 34;
  const tr = (v: number): number => (opts.log ? (v > 0 ? Math.log10(v) : 0) : v);
  const vals = bars.map((b) => tr(b.value)).concat(opts.refLine !== undefined ? [tr(opts.refLine)] : []);
  const vmax = Math.max(1e-9, ...vals);
  const W = left + bars.length * bw + 8 + Math.max(0, bottom - 34);
  const y = (v: number): number => 6 + (H - 6) * (1 - Math.max(0, tr(v)) / vmax);
  let s = `<svg class="bars" width="${W}" height="${H + bottom}" viewBox="0 0 ${W} ${H + bottom}" role="img">`;
  s += `<text x="4" y="12" class="ax" style="text-anchor:start">${esc(opts.log ? `${fmt(10 ** vmax, 0)}${opts.unit ?? ''}` : fmt(vmax, 2))}</text>`;
  s += `<line x1="${left - 2}" y1="${H}" x2="${W}" y2="${H}" stroke="#888"/>`;
  bars.forEach((b, i) => {
    const top = y(b.value);
    s += `<rect x="${left + i * bw}" y="${top}" width="${bw - 1}" height="${Math.max(0, H - top)}" fill="${b.color ?? '#1d91c0'}"><title>${esc(b.title)}</title></rect>`;
    if (bars.length <= 24 || i % Math.ceil(bars.length / 24) === 0) {
      s += `<text x="${left + i * bw + bw / 2}" y="${H + 12}" class="ax" transform="rotate(45 ${left + i * bw + bw / 2} ${H + 12})" style="text-anchor:start">${esc(b.label)}</text>`;
    }
  });
  if (opts.refLine !== undefined) {
    const ry = y(opts.refLine);
    s += `<line x1="${left - 2}" y1="${ry}" x2="${W}" y2="${ry}" stroke="#c00" stroke-dasharray="4 3"><title>reference ${opts.refLine}</title></line>`;
  }
  return `${s}</svg>`;
}

/** Histogram of values in [0, 1] with `bins` bins. */
export function histogram(values: readonly number[], bins: number, label: string): string {
  const counts = new Array<number>(bins).fill(0);
  for (const v of values) counts[Math.min(bins - 1, Math.max(0, Math.floor(v * bins)))]! += 1;
  return barChart(counts.map((c, i) => ({
    label: (i / bins).toFixed(1), value: c, title: `${label} in [${(i / bins).toFixed(2)}, ${((i + 1) / bins).toFixed(2)}): ${c} heads`,
  })), { height: 100 });
}

/** A causal attention map (size x size, row-major), lower triangle only; cells scaled by the row-max-free value. */
export function attentionMap(probs: readonly number[], size: number, title: string): string {
  const cs = Math.max(3, Math.floor(240 / size)), W = size * cs + 2;
  let s = `<svg class="amap" width="${W}" height="${W}" viewBox="0 0 ${W} ${W}" role="img"><title>${esc(title)}</title>`;
  s += `<rect width="${W}" height="${W}" fill="#f4f4f4"/>`;
  for (let i = 0; i < size; i++) {
    for (let j = 0; j <= i; j++) {
      const p = probs[i * size + j]!;
      if (p < 0.005) continue; // background is "about zero"
      s += `<rect x="${1 + j * cs}" y="${1 + i * cs}" width="${cs}" height="${cs}" fill="${color(Math.sqrt(p))}"/>`;
    }
  }
  return `${s}</svg>`;
}

export interface Series {
  name: string;
  color: string;
  points: [number, number][];
}

export interface LineOpts {
  w?: number;
  h?: number;
  /** Axis title under the x axis (default "step"). */
  xLabel?: string;
  /** Log-scale x axis (ticks at the data's x values), e.g. for lengths 1k..16k. */
  logX?: boolean;
  /** A fixed y range (e.g. [0, 1] for accuracies); default: the data's, log when positive and spanning > 10x. */
  yRange?: [number, number];
}

/** A line chart of several series, one polyline (and dots when short) per non-empty series, legend on the right. */
export function lineChart(title: string, series: readonly Series[], opts: LineOpts = {}): string {
  const w = opts.w ?? 560, h = opts.h ?? 260;
  const all = series.flatMap((s) => s.points).filter(([x, y]) => Number.isFinite(y) && (!opts.logX || x > 0));
  if (all.length === 0) return `<p>${esc(title)}: no data</p>`;
  const fx = (x: number): number => (opts.logX ? Math.log10(x) : x);
  const xs = all.map((p) => fx(p[0])), ys = all.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + (opts.logX ? 0.1 : 1));
  const log = !opts.yRange && ys.every((y) => y > 0) && Math.max(...ys) / Math.min(...ys) > 10;
  const f = (y: number): number => (log ? Math.log10(y) : y);
  const y0 = opts.yRange ? opts.yRange[0] : Math.min(...ys.map(f));
  const y1 = opts.yRange ? opts.yRange[1] : Math.max(...ys.map(f), y0 + 1e-9);
  const L = 56, R = 12, Tp = 24, B = 30;
  const px = (x: number): number => L + ((fx(x) - x0) / (x1 - x0)) * (w - L - R);
  const py = (y: number): number => Tp + (1 - (f(y) - y0) / (y1 - y0)) * (h - Tp - B);
  let svg = `<svg xmlns="http://www.w3.org/2000/svg" class="line" width="${w}" height="${h}" role="img" aria-label="${esc(title)}">`;
  svg += `<text x="${w / 2}" y="14" class="t">${esc(title)}${log ? ' (log scale)' : ''}</text>`;
  svg += `<line x1="${L}" y1="${h - B}" x2="${w - R}" y2="${h - B}" stroke="#999"/><line x1="${L}" y1="${Tp}" x2="${L}" y2="${h - B}" stroke="#999"/>`;
  for (let i = 0; i <= 4; i++) {
    const yv = y0 + ((y1 - y0) * i) / 4;
    const yy = Tp + (1 - i / 4) * (h - Tp - B);
    svg += `<text x="${L - 4}" y="${yy + 3}" class="ax" style="text-anchor:end">${fmt(log ? 10 ** yv : yv)}</text>`;
  }
  const xTicks = opts.logX ? [...new Set(all.map((p) => p[0]))].sort((a, b) => a - b)
    : [0, 1, 2, 3, 4].map((i) => x0 + ((x1 - x0) * i) / 4);
  for (const xv of xTicks) svg += `<text x="${px(xv)}" y="${h - B + 14}" class="ax">${Math.round(xv)}</text>`;
  svg += `<text x="${w / 2}" y="${h - 2}" class="ax">${esc(opts.xLabel ?? 'step')}</text>`;
  series.forEach((s, k) => {
    const pts = s.points.filter(([x, y]) => Number.isFinite(y) && (!opts.logX || x > 0));
    if (pts.length === 0) return;
    svg += `<polyline fill="none" stroke="${s.color}" stroke-width="1.5" points="${pts.map(([x, y]) => `${px(x).toFixed(1)},${py(y).toFixed(1)}`).join(' ')}"><title>${esc(s.name)}</title></polyline>`;
    if (pts.length < 40) for (const [x, y] of pts) svg += `<circle cx="${px(x).toFixed(1)}" cy="${py(y).toFixed(1)}" r="2.5" fill="${s.color}"><title>${esc(`${s.name}: ${fmt(y)} at ${x}`)}</title></circle>`;
    svg += `<text x="${w - R - 4}" y="${Tp + 12 + 13 * k}" class="ax" style="text-anchor:end;fill:${s.color}">${esc(s.name)}</text>`;
  });
  return `${svg}</svg>`;
}

/** A distinct color per series index (Tableau 10). */
export function seriesColor(i: number): string {
  const c = ['#1f77b4', '#ff7f0e', '#2ca02c', '#d62728', '#9467bd', '#8c564b', '#e377c2', '#7f7f7f', '#bcbd22', '#17becf'];
  return c[i % c.length]!;
}

/**
 * A generic rows x columns heatmap of values in [0, 1] (null = no data, grey): one rect.cell per value with
 * data-row / data-col and a title tooltip, the value printed in the cell, axis titles on both sides.
 */
export function gridHeatmap(metric: string, rows: readonly string[], cols: readonly string[], values: readonly (readonly (number | null)[])[],
  title: (r: number, c: number) => string, axes: { rows: string; cols: string }): string {
  const cs = 34, left = 64, top = 30;
  const w = left + cols.length * cs + 4, h = top + rows.length * cs + 4;
  let s = `<svg class="heatmap" data-metric="${esc(metric)}" width="${w}" height="${h}" viewBox="0 0 ${w} ${h}" role="img">`;
  s += `<text x="${left + (cols.length * cs) / 2}" y="10" class="ax">${esc(axes.cols)}</text>`;
  s += `<text x="4" y="10" class="ax" style="text-anchor:start">${esc(axes.rows)}</text>`;
  cols.forEach((c, j) => (s += `<text x="${left + j * cs + cs / 2}" y="24" class="ax">${esc(c)}</text>`));
  rows.forEach((r, i) => (s += `<text x="${left - 4}" y="${top + i * cs + cs / 2 + 4}" class="ax" style="text-anchor:end">${esc(r)}</text>`));
  rows.forEach((_, i) => cols.forEach((__, j) => {
    const v = values[i]?.[j] ?? null;
    const x = left + j * cs, y = top + i * cs;
    const txt = v === null ? '' : (v >= 0.995 ? '1' : v.toFixed(2).replace(/^0/, ''));
    s += `<g><rect class="cell" data-row="${i}" data-col="${j}" data-value="${v ?? ''}" x="${x}" y="${y}" width="${cs - 1}" height="${cs - 1}" ` +
      `fill="${color(v)}"><title>${esc(title(i, j))}</title></rect>` +
      `<text x="${x + cs / 2}" y="${y + cs / 2 + 3}" class="v" fill="${(v ?? 0) > 0.55 ? '#fff' : '#222'}">${txt}</text></g>`;
  }));
  return `${s}</svg>`;
}
