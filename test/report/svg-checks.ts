/** Reading the charts' SVG (vega's output, src/report/charts.ts) in tests: axis labels, line colors, self-containment. */
import assert from 'node:assert/strict';

/** The text of one axis' tick labels ('X' or 'Y': the first such axis in `svg`). */
export function axisLabels(svg: string, axis: 'X' | 'Y'): string[] {
  const at = svg.indexOf(`aria-label="${axis}-axis`);
  assert.ok(at >= 0, `the chart has a${axis === 'X' ? 'n' : ''} ${axis} axis`);
  const from = svg.indexOf('role-axis-label', at);
  const group = svg.slice(from, svg.indexOf('</g>', from));
  return [...group.matchAll(/>([^<>]*)<\/text>/g)].map((m) => m[1]!);
}

/** The axis' title, as Vega's aria-label names it. */
export function axisTitle(svg: string, axis: 'X' | 'Y'): string | null {
  return new RegExp(`aria-label="${axis}-axis titled '([^']*)'`).exec(svg)?.[1] ?? null;
}

/** The distinct stroke colors of the lines drawn (legend swatches not counted). */
export function lineColors(svg: string): string[] {
  const colors = new Set<string>();
  for (const m of svg.matchAll(/<g class="mark-line role-mark[^"]*"[^>]*>(.*?)<\/g>/g)) {
    for (const c of m[1]!.matchAll(/stroke="([^"]+)"/g)) colors.add(c[1]!);
  }
  return [...colors];
}

/** Each chart's root <svg ...> ... </svg> in a page. */
export function charts(page: string): string[] {
  return [...page.matchAll(/<svg [^>]*class="chart[^"]*"[^>]*>.*?<\/svg>/gs)].map((m) => m[0]);
}

/** No script, no stylesheet or font from elsewhere, no http(s) URL in src/href/url() (XML namespace names are not fetched). */
export function assertSelfContained(page: string): void {
  assert.ok(!/<script/i.test(page), 'no <script>');
  assert.ok(!/\b(src|href|xlink:href)\s*=\s*["']?\s*(https?:)?\/\//i.test(page), 'no http(s) URL in src or href');
  assert.ok(!/url\(\s*["']?\s*(https?:)?\/\//i.test(page) && !/@import/i.test(page), 'no remote url() or @import');
  const urls = [...page.matchAll(/https?:\/\/[^\s"'<>)]+/g)].map((m) => m[0]);
  assert.deepEqual(urls.filter((u) => u !== 'http://www.w3.org/2000/svg' && u !== 'http://www.w3.org/1999/xlink'), [], 'no other URLs');
}

/** Tick labels read as round numbers: evenly spaced by 1, 2 or 5 times a power of ten, 3 significant digits at most. */
export function assertRoundTicks(labels: readonly string[]): void {
  const xs = labels.map((l) => Number(l.replace(/,/g, '')));
  assert.ok(xs.length >= 3, `at least 3 ticks: ${labels.join(' ')}`);
  assert.ok(xs.every((x) => Number.isFinite(x)), `numeric labels: ${labels.join(' ')}`);
  const step = xs[1]! - xs[0]!;
  const mant = step / 10 ** Math.floor(Math.log10(step));
  assert.ok([1, 2, 5].some((m) => Math.abs(mant - m) < 1e-9), `step ${step} is 1, 2 or 5 x 10^n`);
  for (let i = 1; i < xs.length; i++) assert.ok(Math.abs(xs[i]! - xs[i - 1]! - step) < step * 1e-9, `even steps: ${labels.join(' ')}`);
  for (const x of xs) assert.ok(Math.abs(x / step - Math.round(x / step)) < 1e-9, `${x} is a multiple of ${step}`);
}

/**
 * Runs in a browser page (pass it to page.evaluate; the suite has no DOM lib, so the page's globals are reached
 * through globalThis): the text of every chart label that pokes out of its <svg>'s box, where the SVG clips it.
 */
export const clippedChartText = (): string[] => {
  interface Box { left: number; right: number; top: number; bottom: number }
  interface El { querySelectorAll(s: string): El[]; getBoundingClientRect(): Box; textContent: string | null }
  const doc = (globalThis as unknown as { document: { querySelectorAll(s: string): Iterable<El> } }).document;
  return [...doc.querySelectorAll('svg.chart')].flatMap((svg) => {
    const b = svg.getBoundingClientRect();
    return [...svg.querySelectorAll('text')].filter((tx) => {
      const r = tx.getBoundingClientRect();
      return r.right > r.left && (r.left < b.left - 1 || r.right > b.right + 1 || r.top < b.top - 1 || r.bottom > b.bottom + 1);
    }).map((tx) => tx.textContent ?? '');
  });
};
