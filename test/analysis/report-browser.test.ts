/**
 * The report renders in headless Chromium (Debian's chromium package; .ci/run installs it when apt is available):
 * no console errors or network requests, one heat map cell (with a tooltip naming the head "L0 H2") per head in every
 * head heat map, a color legend on each, no chart text drawn outside its SVG (clipped), a screenshot under
 * test-output/. Skips with a clear message when /usr/bin/chromium or playwright-core is missing.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { analyze } from '../../src/analysis/analyze.js';
import { load } from '../../src/cli/common.js';
import { writeAnalysis } from '../../src/report/write.js';
import { ARGS, browserOrSkip, CHROMIUM } from '../helpers/browser.js';
import { clippedChartText } from '../report/svg-checks.js';

test('report.html renders in headless Chromium with one heatmap cell per head and no clipped text', async (t) => {
  const pw = await browserOrSkip(t);
  if (!pw) return;
  const { loaded, model } = load(undefined);
  const ids = loaded.tokenizer!.encode(readFileSync('data/tinystories-valid-excerpt/tinystories_val.txt', 'utf8').slice(0, 100_000), { bos: false });
  const a = analyze(model, ids, { samples: 1, seq: 64, windows: [4, 16], seed: 0 });
  const dir = mkdtempSync(join(tmpdir(), 'rf-report-'));
  const profile = mkdtempSync(join(tmpdir(), 'rf-chromium-'));
  const ctx = await pw.chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: ARGS });
  try {
    const { html } = await writeAnalysis(dir, a);
    const page = await ctx.newPage();
    const errors: string[] = [], remote: string[] = [];
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('request', (r) => { if (!r.url().startsWith('file:')) remote.push(r.url()); });
    await page.goto(pathToFileURL(resolve(html)).href);
    // Runs in the page (the suite has no DOM lib: the page's globals are reached through globalThis).
    const seen = await page.evaluate(() => {
      interface El {
        getAttribute(n: string): string | null; querySelectorAll(s: string): El[] & { length: number }; textContent: string | null;
      }
      const doc = (globalThis as unknown as { document: { querySelectorAll(s: string): Iterable<El> } }).document;
      return {
        heatmaps: [...doc.querySelectorAll('svg.chart.heatmap')].filter((s) => !(s.getAttribute('data-metric') ?? '').startsWith('map-')).map((s) => ({
          metric: s.getAttribute('data-metric'),
          cells: s.querySelectorAll('[aria-roledescription="cell"]').length,
          titles: [...s.querySelectorAll('[aria-roledescription="cell"] > title')].map((x) => x.textContent ?? ''),
          legends: s.querySelectorAll('.role-legend-gradient').length,
        })),
      };
    });
    const heads = a.model.nLayers * a.model.nHeads;
    assert.deepEqual(seen.heatmaps.map((c) => c.metric), ['rr4', 'rr16', 'rrw4', 'rrw16', 'sink', 'sinkFirst4']);
    for (const c of seen.heatmaps) {
      assert.equal(c.cells, heads, `${c.metric}: one cell per head`);
      assert.equal(c.titles.length, heads, `${c.metric}: one tooltip per cell`);
      assert.ok(c.titles.some((x) => x.startsWith('L0 H2 ')), `${c.metric}: heads are named "L0 H2"`);
      assert.equal(c.legends, 1, `${c.metric}: a color legend`);
    }
    assert.deepEqual(await page.evaluate(clippedChartText), [], 'no chart text outside its SVG');
    assert.deepEqual(errors, [], 'no console errors');
    assert.deepEqual(remote, [], 'no network requests');
    mkdirSync('test-output', { recursive: true });
    await page.screenshot({ path: 'test-output/analysis-report.png', fullPage: true });
    assert.ok(existsSync('test-output/analysis-report.png'));
  } finally {
    await ctx.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(profile, { recursive: true, force: true });
  }
});
