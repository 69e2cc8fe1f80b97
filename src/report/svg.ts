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
  for (let l = 0; l < layers; l++) s += `<text x="${left - 4}" y="${top + l * cs + cs / 2 + 4}" class="ax" text-anchor="end">L${l}</text>`;
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
export function barChart(bars: readonly Bar[], opts: { height?: number; refLine?: number; log?: boolean; unit?: string } = {}): string {
  const H = opts.height ?? 140, bw = Math.max(6, Math.min(28, Math.floor(640 / Math.max(1, bars.length)))), left = 44, bottom = 34;
  const tr = (v: number): number => (opts.log ? (v > 0 ? Math.log10(v) : 0) : v);
  const vals = bars.map((b) => tr(b.value)).concat(opts.refLine !== undefined ? [tr(opts.refLine)] : []);
  const vmax = Math.max(1e-9, ...vals);
  const W = left + bars.length * bw + 8;
  const y = (v: number): number => 6 + (H - 6) * (1 - Math.max(0, tr(v)) / vmax);
  let s = `<svg class="bars" width="${W}" height="${H + bottom}" viewBox="0 0 ${W} ${H + bottom}" role="img">`;
  s += `<text x="4" y="12" class="ax" text-anchor="start">${esc(opts.log ? `${fmt(10 ** vmax, 0)}${opts.unit ?? ''}` : fmt(vmax, 2))}</text>`;
  s += `<line x1="${left - 2}" y1="${H}" x2="${W}" y2="${H}" stroke="#888"/>`;
  bars.forEach((b, i) => {
    const top = y(b.value);
    s += `<rect x="${left + i * bw}" y="${top}" width="${bw - 1}" height="${Math.max(0, H - top)}" fill="${b.color ?? '#1d91c0'}"><title>${esc(b.title)}</title></rect>`;
    if (bars.length <= 24 || i % Math.ceil(bars.length / 24) === 0) {
      s += `<text x="${left + i * bw + bw / 2}" y="${H + 12}" class="ax" transform="rotate(45 ${left + i * bw + bw / 2} ${H + 12})" text-anchor="start">${esc(b.label)}</text>`;
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
