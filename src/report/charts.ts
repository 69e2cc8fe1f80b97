/**
 * The reports' charts: Vega-Lite specs compiled to Vega and rendered headless to an SVG string by vega's
 * View.toSVG() (no canvas, no DOM, no network), then inlined in the self-contained HTML pages. Every builder is async
 * (toSVG is) and returns one <svg> (or a short "no data" note).
 *
 * What the hand-drawn charts lacked and these have: a categorical palette of 20 distinct colors (tableau20, its dark
 * shades first), y axes with round ("nice") ticks and titles, heat maps with a color legend, long labels rotated and
 * thinned instead of clipped, and a hover tooltip on every bar, point and cell (an SVG <title>, so no script).
 *
 * The SVG is post-processed in two ways: each mark's aria-label (Vega-Lite's `description` channel) is copied into a
 * <title> child, which browsers show on hover; and ids (gradient legends, clip paths) get a per-chart prefix, as
 * every chart of a page shares one document and Vega numbers them from 0 in each.
 * vega and vega-lite are imported on first use: about half a second that commands drawing no chart do not pay.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { createHash } from 'node:crypto';
import type { TopLevelSpec } from 'vega-lite';
import { esc } from './svg.js';

/** Vega's tableau20 scheme, dark shades first: up to 10 series get 10 clearly different hues, up to 20 stay distinct. */
const TABLEAU20 = ['#4c78a8', '#9ecae9', '#f58518', '#ffbf79', '#54a24b', '#88d27a', '#b79a20', '#f2cf5b', '#439894', '#83bcb6',
  '#e45756', '#ff9d98', '#79706e', '#bab0ac', '#d67195', '#fcbfd2', '#b279a2', '#d6a5c9', '#9e765f', '#d8b5a5'];
export const PALETTE: readonly string[] = [...TABLEAU20.filter((_, i) => i % 2 === 0), ...TABLEAU20.filter((_, i) => i % 2 === 1)];

/** The color of series `i` (distinct for the first 20; repeats after that). */
export function seriesColor(i: number): string {
  return PALETTE[((i % PALETTE.length) + PALETTE.length) % PALETTE.length]!;
}

/** Head labels, spelled out: layer 0 head 2 is "L0 H2" (never "0.2"). */
export const headLabel = (layer: number, head: number): string => `L${layer} H${head}`;

/** The sequential scheme of every [0, 1] heat map (light yellow -> dark blue). */
const SEQUENTIAL = 'yellowgreenblue';
const NO_DATA = '#d9d9d9';

const CONFIG = {
  background: 'white',
  font: 'system-ui, sans-serif',
  view: { stroke: null },
  axis: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 'normal', labelLimit: 240, labelOverlap: 'greedy' },
  legend: { labelFontSize: 11, titleFontSize: 12, titleFontWeight: 'normal', labelLimit: 220 },
  title: { fontSize: 13, fontWeight: 'normal', anchor: 'start' },
} as const;

// ---- warnings -----------------------------------------------------------------------------------------------------

const warnSink = new AsyncLocalStorage<string[]>();

/** Runs `f`, returning what it returned and the warnings Vega-Lite and Vega gave for the charts it drew (tests). */
export async function captureChartWarnings<T>(f: () => Promise<T>): Promise<{ value: T; warnings: string[] }> {
  const warnings: string[] = [];
  const value = await warnSink.run(warnings, f);
  return { value, warnings };
}

interface Logger {
  level(): number;
  level(l: number): Logger;
  error(...a: readonly unknown[]): Logger;
  warn(...a: readonly unknown[]): Logger;
  info(...a: readonly unknown[]): Logger;
  debug(...a: readonly unknown[]): Logger;
}

/** Errors throw; warnings go to captureChartWarnings' list when one is open, else nowhere (a CLI prints none). */
function logger(): Logger {
  const sink = warnSink.getStore();
  const text = (a: readonly unknown[]): string => a.map((x) => (x instanceof Error ? x.message : String(x))).join(' ');
  const l: Logger = {
    level: ((x?: number) => (x === undefined ? 2 : l)) as Logger['level'],
    error: (...a) => { throw new Error(`chart: ${text(a)}`); },
    warn: (...a) => { sink?.push(text(a)); return l; },
    info: () => l,
    debug: () => l,
  };
  return l;
}

// ---- text widths --------------------------------------------------------------------------------------------------

/**
 * Without a canvas Vega guesses every character at 0.8 em, which leaves wide gaps under rotated labels. This guess
 * follows a common sans-serif's (DejaVu Sans, the widest usual one) character classes, 4% generous; Vega calls it for
 * layout and truncation (its textMetrics.width hook, meant for this).
 */
function charEm(c: string): number {
  if ('ijl.,:;\'|!'.includes(c)) return 0.3;
  if ('ftr()[]{}-/\\ '.includes(c)) return 0.41;
  if ('mwMW%@'.includes(c)) return 0.99;
  if (c >= 'A' && c <= 'Z') return 0.74;
  return c.charCodeAt(0) > 0x2000 ? 1 : 0.64;
}

interface TextItem { fontSize?: number | string; fontWeight?: string | number; limit?: number }

function textWidth(item: TextItem, text: unknown): number {
  const s = text === null || text === undefined ? '' : String(text).trim();
  const size = item.fontSize !== undefined && item.fontSize !== null ? Number(item.fontSize) || 0 : 11;
  const bold = item.fontWeight === 'bold' || Number(item.fontWeight) >= 600;
  let em = 0;
  for (const c of s) em += charEm(c);
  const w = em * size * (bold ? 1.08 : 1) * 1.04;
  const limit = Number(item.limit);
  return limit > 0 ? Math.min(w, limit) : w; // a truncated label (with its ellipsis) fits its limit
}

// ---- rendering ----------------------------------------------------------------------------------------------------

/** How a chart's root <svg> is marked for the page's CSS and the tests: a class and data-* attributes. */
export interface ChartTag {
  kind: string;
  data?: Record<string, string | number>;
}

/** Compiles and renders one Vega-Lite spec to an SVG string (see the file comment for the post-processing). */
export async function renderChart(spec: TopLevelSpec, tag: ChartTag): Promise<string> {
  const [vega, vl] = await Promise.all([import('vega'), import('vega-lite')]);
  (vega as unknown as { textMetrics: { width: typeof textWidth } }).textMetrics.width = textWidth;
  const log = logger();
  const full = { ...spec, config: { ...CONFIG, ...(spec.config ?? {}) } } as TopLevelSpec;
  const compiled = vl.compile(full, { logger: log as never }).spec;
  const view = new vega.View(vega.parse(compiled), { renderer: 'none', logger: log as never, logLevel: vega.Warn });
  let svg: string;
  try {
    svg = await view.toSVG();
  } finally {
    view.finalize();
  }
  return tagSvg(titledMarks(prefixIds(svg, JSON.stringify(tag))), tag);
}

/** Mark items with an aria-label (the `description` channel) get it as a <title> child too: the hover tooltip. */
function titledMarks(svg: string): string {
  return svg.replace(/<(path|line|text|circle|rect)(\s(?:[^>]*?\s)?aria-label="([^"]*)"[^>]*?)\/>/g,
    (_, el: string, attrs: string, label: string) => `<${el}${attrs}><title>${label}</title></${el}>`);
}

/** Per-chart ids: Vega numbers gradients and clip paths from 0 in every chart, and a page holds many charts. */
function prefixIds(svg: string, salt: string): string {
  const ids = [...svg.matchAll(/\sid="([^"]+)"/g)].map((m) => m[1]!);
  if (ids.length === 0) return svg;
  // from the content, so that a page renders the same each time
  const p = `c${createHash('sha1').update(salt).update(svg).digest('hex').slice(0, 10)}-`;
  let out = svg;
  for (const id of new Set(ids)) {
    const q = id.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    out = out.replace(new RegExp(`(\\sid=")${q}"`, 'g'), `$1${p}${id}"`).replace(new RegExp(`url\\(#${q}\\)`, 'g'), `url(#${p}${id})`);
  }
  return out;
}

function tagSvg(svg: string, tag: ChartTag): string {
  const data = Object.entries(tag.data ?? {}).map(([k, v]) => ` data-${k}="${esc(v)}"`).join('');
  const out = svg.replace(/^<svg([^>]*?) class="marks"/, `<svg$1 class="chart ${esc(tag.kind)}"${data}`);
  if (out === svg) throw new Error('chart: unexpected SVG from vega (no root <svg class="marks">)');
  return out;
}

const noData = (title: string): string => `<p class="note">${esc(title)}: no data</p>`;

// ---- colors shared across a page ---------------------------------------------------------------------------------

/** A fixed name -> color map: a page passes the same one to every chart, so a label keeps its color throughout. */
export interface Colors {
  domain: readonly string[];
  range: readonly string[];
}

export function colorsFor(names: readonly string[]): Colors {
  const domain = [...new Set(names)];
  return { domain, range: domain.map((_, i) => seriesColor(i)) };
}

// ---- line charts --------------------------------------------------------------------------------------------------

export interface Series {
  name: string;
  points: readonly (readonly [number, number])[];
}

export interface LineOpts {
  title?: string;
  xTitle: string;
  yTitle: string;
  /** Log x axis with a tick at each x in the data (e.g. lengths 1k..16k). */
  logX?: boolean;
  /** A fixed y domain (e.g. [0, 1] for accuracies); default: the data's, log when positive and spanning over 10x. */
  yDomain?: [number, number];
  /** The page's label colors; default: the series in order. */
  colors?: Colors;
  width?: number;
  height?: number;
  /** data-* attributes on the <svg> (data-chart etc.). */
  data?: Record<string, string | number>;
}

/** Lines of several series (dots on short ones), a legend when there are several, a tooltip per dot. */
export async function lineChart(series: readonly Series[], o: LineOpts): Promise<string> {
  const rows = series.flatMap((s, k) => s.points.filter(([x, y]) => Number.isFinite(x) && Number.isFinite(y) && (!o.logX || x > 0))
    .map(([x, y]) => ({ series: s.name, k, x, y })));
  if (rows.length === 0) return noData(o.title ?? o.yTitle);
  const ys = rows.map((r) => r.y);
  const logY = !o.yDomain && ys.every((y) => y > 0) && Math.max(...ys) / Math.min(...ys) > 10;
  const yt = logY ? logTicks(Math.min(...ys), Math.max(...ys)) : [];
  const present = [...new Set(rows.map((r) => r.series))];
  const colors = o.colors ?? colorsFor(series.map((s) => s.name));
  const dots = Math.max(...present.map((n) => rows.filter((r) => r.series === n).length)) < 40;
  const xs = [...new Set(rows.map((r) => r.x))].sort((a, b) => a - b);
  const values = rows.map((r) => ({ ...r, d: `${r.series}: ${fmtNum(r.y)} at ${o.xTitle} ${fmtNum(r.x)}` }));
  const color = {
    field: 'series', type: 'nominal' as const, title: null,
    scale: { domain: [...colors.domain], range: [...colors.range] },
    legend: present.length > 1 ? { values: present, orient: 'right' as const, symbolType: 'stroke' } : null,
  };
  const spec = {
    ...(o.title ? { title: o.title } : {}),
    width: o.width ?? 460, height: o.height ?? 220,
    data: { values },
    encoding: {
      x: {
        field: 'x', type: 'quantitative' as const, title: o.xTitle,
        scale: o.logX ? { type: 'log' as const, nice: false, padding: 8 } : { zero: false, nice: true },
        axis: o.logX ? { values: xs, format: ',', labelAngle: xs.length > 6 ? -40 : 0 } : { tickMinStep: 1, tickCount: 8 },
      },
      y: {
        field: 'y', type: 'quantitative' as const, title: logY ? `${o.yTitle} (log scale)` : o.yTitle,
        scale: o.yDomain ? { domain: o.yDomain, nice: false } : logY ? { type: 'log' as const, domain: [yt[0]!, yt[yt.length - 1]!], nice: false } : { zero: false, nice: true },
        axis: logY ? { values: yt, format: '~g' } : { tickCount: 6 },
      },
      color,
    },
    layer: [
      { mark: { type: 'line', strokeWidth: 1.6, aria: false }, encoding: { detail: { field: 'series' } } },
      ...(dots ? [{ mark: { type: 'point', filled: true, size: 28, ariaRoleDescription: 'point' }, encoding: { description: { field: 'd' } } }] : []),
    ],
  };
  return renderChart(spec as TopLevelSpec, { kind: 'line', data: { series: present.length, ...o.data } });
}

// ---- bar charts ---------------------------------------------------------------------------------------------------

export interface Bar {
  label: string;
  value: number;
  /** Tooltip. */
  title: string;
  /** A fixed color for this bar (default: one color for all). */
  color?: string;
}

export interface BarOpts {
  title?: string;
  xTitle: string;
  yTitle: string;
  /** Log y axis (bars <= 0 are left out). */
  log?: boolean;
  /** A dashed red reference line at this y, named in the tooltip. */
  refLine?: { value: number; title: string };
  /** y tick labels as integers (counts). */
  integer?: boolean;
  height?: number;
  data?: Record<string, string | number>;
}

/** Room per bar and label angle: short labels stand upright, long or many are rotated; very many bars get a fixed width. */
function xLayout(labels: readonly string[]): { width: number | { step: number }; axis: object } {
  const longest = Math.max(0, ...labels.map((l) => l.length));
  // very many bars: a fixed width, labels upright-rotated (-90, narrow boxes) and thinned so none overlap
  if (labels.length > 60) return { width: 900, axis: { labelAngle: -90, labelOverlap: 'greedy' } };
  const step = longest <= 3 || labels.length <= 4 ? Math.max(22, Math.min(60, 7 * longest + 8)) : 20;
  // all labels shown: upright when short, else at -40 degrees (their boxes overlap, the text does not)
  return { width: { step }, axis: { labelAngle: longest <= 3 ? 0 : -40, labelOverlap: false } };
}

/** A bar chart's y: from zero with round ticks, or log with ticks at 1-2-5 or powers of 10; always titled. */
function yEncoding(o: Pick<BarOpts, 'log' | 'integer' | 'yTitle'>, values: readonly number[]): object {
  if (o.log) {
    const pos = values.filter((v) => v > 0);
    const ticks = logTicks(Math.min(...pos), Math.max(...pos));
    return {
      field: 'value', type: 'quantitative', title: `${o.yTitle} (log scale)`, stack: null,
      scale: { type: 'log', domain: [ticks[0]!, ticks[ticks.length - 1]!], nice: false }, axis: { values: ticks, format: '~g' },
    };
  }
  return {
    field: 'value', type: 'quantitative', title: o.yTitle, stack: null, scale: { zero: true, nice: true },
    axis: { tickCount: 6, ...(o.integer ? { tickMinStep: 1, format: ',d' } : {}) },
  };
}

/** One bar per label (in the given order), y from zero with round ticks, an optional reference line. */
export async function barChart(bars: readonly Bar[], o: BarOpts): Promise<string> {
  const kept = bars.filter((b) => Number.isFinite(b.value) && (!o.log || b.value > 0));
  if (kept.length === 0) return noData(o.title ?? o.yTitle);
  const lay = xLayout(kept.map((b) => b.label));
  const values = kept.map((b, i) => ({ key: `${i}`, label: b.label, value: b.value, d: b.title, c: b.color ?? PALETTE[0]! }));
  // a Vega expression: an object literal of the labels (U+2028/9 escaped: JSON keeps them raw, the parser would not)
  const labelOf = JSON.stringify(Object.fromEntries(values.map((v) => [v.key, v.label]))).replace(/[\u2028\u2029]/g, (c) => `\\u${c.charCodeAt(0).toString(16)}`);
  const y = yEncoding(o, [...kept.map((b) => b.value), ...(o.refLine ? [o.refLine.value] : [])]);
  const spec = {
    ...(o.title ? { title: o.title } : {}),
    width: lay.width, height: o.height ?? 180,
    layer: [
      {
        data: { values },
        mark: { type: 'bar', ariaRoleDescription: 'bar' },
        encoding: {
          // keyed by index (labels may repeat), shown by label
          x: {
            field: 'key', type: 'nominal' as const, sort: null, title: o.xTitle,
            axis: { ...lay.axis, labelExpr: `${labelOf}[datum.value]` },
          },
          y, color: { field: 'c', type: 'nominal' as const, scale: null }, description: { field: 'd' },
        },
      },
      ...(o.refLine ? [{
        data: { values: [{ r: o.refLine.value, d: o.refLine.title }] },
        mark: { type: 'rule', color: '#c0392b', strokeDash: [4, 3], strokeWidth: 1.5, ariaRoleDescription: 'reference line' },
        encoding: { y: { field: 'r', type: 'quantitative' as const }, description: { field: 'd' } },
      }] : []),
    ],
  };
  return renderChart(spec as TopLevelSpec, { kind: 'bars', data: { bars: kept.length, ...o.data } });
}

export interface GroupedBar {
  group: string;
  series: string;
  value: number;
  title: string;
}

/** Bars side by side within each group (x), one color per series with a legend. */
export async function groupedBarChart(bars: readonly GroupedBar[], o: Omit<BarOpts, 'refLine'> & { colors?: Colors; seriesTitle?: string }): Promise<string> {
  const kept = bars.filter((b) => Number.isFinite(b.value) && (!o.log || b.value > 0));
  if (kept.length === 0) return noData(o.title ?? o.yTitle);
  const groups = [...new Set(kept.map((b) => b.group))], series = [...new Set(kept.map((b) => b.series))];
  const colors = o.colors ?? colorsFor(series);
  const step = Math.max(10, Math.min(24, Math.floor(600 / Math.max(1, groups.length * series.length))));
  const longest = Math.max(0, ...groups.map((g) => g.length));
  const spec = {
    ...(o.title ? { title: o.title } : {}),
    width: { step }, height: o.height ?? 180, // with xOffset the step is per bar
    data: { values: kept.map((b) => ({ ...b, d: b.title })) },
    mark: { type: 'bar', ariaRoleDescription: 'bar' },
    encoding: {
      x: { field: 'group', type: 'nominal' as const, sort: groups, title: o.xTitle, axis: { labelAngle: longest > 6 ? -40 : 0, labelOverlap: false } },
      xOffset: { field: 'series', type: 'nominal' as const, sort: series },
      y: yEncoding(o, kept.map((b) => b.value)),
      color: {
        field: 'series', type: 'nominal' as const, title: o.seriesTitle ?? null,
        scale: { domain: [...colors.domain], range: [...colors.range] }, legend: { values: series },
      },
      description: { field: 'd' },
    },
  };
  return renderChart(spec as TopLevelSpec, { kind: 'bars', data: { bars: kept.length, ...o.data } });
}

/** A histogram of values in [0, 1]: `bins` equal bins, counts on y (integer ticks). */
export async function histogram(values: readonly number[], bins: number, o: { xTitle: string; what: string; data?: Record<string, string | number> }): Promise<string> {
  const counts = new Array<number>(bins).fill(0);
  for (const v of values) if (Number.isFinite(v)) counts[Math.min(bins - 1, Math.max(0, Math.floor(v * bins)))]! += 1;
  const rows = counts.map((c, i) => ({ lo: i / bins, hi: (i + 1) / bins, c, d: `${o.xTitle} in [${(i / bins).toFixed(2)}, ${((i + 1) / bins).toFixed(2)}): ${c} ${o.what}` }));
  const spec = {
    width: 260, height: 120,
    data: { values: rows },
    mark: { type: 'bar', ariaRoleDescription: 'bar', binSpacing: 1 },
    encoding: {
      x: { field: 'lo', bin: { binned: true, step: 1 / bins }, type: 'quantitative' as const, title: o.xTitle, scale: { domain: [0, 1] }, axis: { values: [0, 0.2, 0.4, 0.6, 0.8, 1], format: '.1f' } },
      x2: { field: 'hi' },
      y: { field: 'c', type: 'quantitative' as const, title: o.what, axis: { tickMinStep: 1, format: 'd', tickCount: 5 } },
      color: { value: PALETTE[0]! },
      description: { field: 'd' },
    },
  };
  return renderChart(spec as TopLevelSpec, { kind: 'bars', data: { bars: bins, ...o.data } });
}

// ---- heat maps ----------------------------------------------------------------------------------------------------

export interface HeatCell {
  row: string;
  col: string;
  /** null: no data (grey). */
  value: number | null;
  title: string;
}

export interface HeatOpts {
  rows: readonly string[];
  cols: readonly string[];
  rowTitle: string;
  colTitle: string;
  /** The legend's title: what the color means. */
  valueTitle: string;
  /** Color domain (default [0, 1]). */
  domain?: [number, number];
  /** 'sqrt' brightens small values (attention weights). */
  scale?: 'linear' | 'sqrt';
  /** Print each value in its cell (default: when the cells are big enough). */
  labels?: boolean;
  /** Cell size in px (default 30 x 24). */
  cell?: [number, number];
  /** Show every n-th row / column label (default: all). */
  every?: number;
  /** The plot's background where no cell is drawn (default white). */
  fill?: string;
  data?: Record<string, string | number>;
}

/** Five legend ticks over the domain (denser near 0 on a sqrt scale). */
function legendTicks([lo, hi]: [number, number], scale: 'linear' | 'sqrt'): number[] {
  const fr = scale === 'sqrt' ? [0, 0.05, 0.25, 0.5, 1] : [0, 0.25, 0.5, 0.75, 1];
  return fr.map((f) => Number((lo + (hi - lo) * f).toPrecision(3)));
}

/** A rows x cols grid of colored cells with a color legend, a tooltip per cell, the value printed in big cells. */
export async function heatmap(cells: readonly HeatCell[], o: HeatOpts): Promise<string> {
  if (cells.length === 0 || o.rows.length === 0 || o.cols.length === 0) return noData(o.valueTitle);
  const [cw, ch] = o.cell ?? [30, 24];
  const domain = o.domain ?? [0, 1];
  const mid = (domain[0] + domain[1]) / 2;
  const labels = o.labels ?? (cw >= 26 && ch >= 16);
  const values = cells.map((c) => ({
    row: c.row, col: c.col, v: c.value !== null && Number.isFinite(c.value) ? c.value : null, d: c.title,
    t: c.value === null || !Number.isFinite(c.value) ? '' : c.value >= 0.995 && c.value <= 1 ? '1' : c.value.toFixed(2).replace(/^(-?)0\./, '$1.'),
  }));
  const every = o.every ?? 1;
  const thin = (xs: readonly string[]): string[] => xs.filter((_, i) => i % every === 0);
  const spec = {
    width: { step: cw }, height: { step: ch },
    ...(o.fill ? { view: { fill: o.fill } } : {}),
    data: { values },
    encoding: {
      x: {
        field: 'col', type: 'ordinal' as const, sort: [...o.cols], scale: { domain: [...o.cols] }, title: o.colTitle,
        axis: { orient: 'top' as const, labelAngle: 0, ticks: false, domain: false, values: thin(o.cols) },
      },
      y: {
        field: 'row', type: 'ordinal' as const, sort: [...o.rows], scale: { domain: [...o.rows] }, title: o.rowTitle,
        axis: { ticks: false, domain: false, values: thin(o.rows) },
      },
    },
    layer: [
      {
        mark: { type: 'rect', ariaRoleDescription: 'cell', invalid: 'show', stroke: 'white', strokeWidth: cw >= 10 ? 1 : 0 },
        encoding: {
          color: {
            condition: { test: 'datum.v === null', value: NO_DATA },
            field: 'v', type: 'quantitative' as const, title: o.valueTitle,
            scale: { domain, scheme: SEQUENTIAL, type: o.scale ?? 'linear', clamp: true },
            legend: { gradientLength: Math.max(100, Math.min(200, o.rows.length * ch)), values: legendTicks(domain, o.scale ?? 'linear'), format: '.2~f' },
          },
          description: { field: 'd' },
        },
      },
      ...(labels ? [{
        mark: { type: 'text', fontSize: 9, aria: false },
        encoding: {
          text: { field: 't' },
          color: { condition: { test: `datum.v !== null && datum.v > ${mid + (domain[1] - domain[0]) * 0.05}`, value: 'white' }, value: '#222' },
        },
      }] : []),
    ],
  };
  return renderChart(spec as TopLevelSpec, { kind: 'heatmap', data: { cells: cells.length, ...o.data } });
}

/**
 * Log-axis ticks: the powers of 10 around [lo, hi], with 2 and 5 between them when the data span 2 decades or less; the
 * first tick is below lo, so that the smallest bar still shows.
 */
export function logTicks(lo: number, hi: number): number[] {
  const a = Math.floor(Math.log10(lo) - 1e-9), b = Math.ceil(Math.log10(hi) - 1e-9);
  const steps = Math.log10(hi / lo) <= 2 + 1e-9 ? [1, 2, 5] : [1];
  const out: number[] = [];
  for (let e = a; e <= Math.max(b, a + 1); e++) for (const m of steps) out.push(Number((m * 10 ** e).toPrecision(3)));
  const first = out.filter((t) => t < lo).pop() ?? out[0]!, last = out.find((t) => t >= hi) ?? out[out.length - 1]!;
  return out.filter((t) => t >= first && t <= last);
}

/** 3 significant digits, no exponent for ordinary magnitudes, integers as they are ("16384", "0.123", "1.2e-5"). */
export function fmtNum(x: number): string {
  if (!Number.isFinite(x)) return 'n/a';
  if (Number.isInteger(x) && Math.abs(x) < 1e15) return String(x);
  const a = Math.abs(x);
  if (a !== 0 && (a < 1e-3 || a >= 1e6)) return x.toExponential(2);
  return String(Number(x.toPrecision(3)));
}
