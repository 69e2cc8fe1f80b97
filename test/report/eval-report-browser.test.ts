/**
 * The eval report renders in headless Chromium: no console errors or network requests, one main chart per task,
 * every heatmap cell drawn with a tooltip and each heat map with a color legend, no chart text drawn outside its SVG
 * (clipped), a screenshot under test-output/. Skips cleanly without Chromium or playwright-core (test/helpers/browser.ts).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { renderEvalReport } from '../../src/report/eval-report.js';
import { ARGS, browserOrSkip, CHROMIUM } from '../helpers/browser.js';
import { LABELS, syntheticRecords } from './synthetic-records.js';
import { clippedChartText } from './svg-checks.js';

test('the eval report renders in headless Chromium with one chart per task, a tooltip per heatmap cell, no clipped text', async (t) => {
  const pw = await browserOrSkip(t);
  if (!pw) return;
  const dir = mkdtempSync(join(tmpdir(), 'rf-evalreport-'));
  const profile = mkdtempSync(join(tmpdir(), 'rf-chromium-'));
  const ctx = await pw.chromium.launchPersistentContext(profile, { executablePath: CHROMIUM, headless: true, args: ARGS });
  try {
    const html = join(dir, 'report.html');
    writeFileSync(html, await renderEvalReport(syntheticRecords(), 'synthetic eval'));
    const page = await ctx.newPage();
    const errors: string[] = [], remote: string[] = [];
    page.on('console', (m) => { if (m.type() === 'error') errors.push(m.text()); });
    page.on('pageerror', (e) => errors.push(e.message));
    page.on('request', (r) => { if (!r.url().startsWith('file:')) remote.push(r.url()); });
    await page.goto(pathToFileURL(html).href);
    // Runs in the page (the suite has no DOM lib: the page's globals are reached through globalThis).
    const seen = await page.evaluate(() => {
      interface El { getAttribute(n: string): string | null; querySelectorAll(s: string): El[] & { length: number } }
      const doc = (globalThis as unknown as { document: { querySelectorAll(s: string): Iterable<El> } }).document;
      return {
        charts: [...doc.querySelectorAll('[data-chart]')].map((e) => e.getAttribute('data-chart')),
        heatmaps: [...doc.querySelectorAll('svg.chart.heatmap')].map((s) => ({
          cells: s.querySelectorAll('[aria-roledescription="cell"]').length, titles: s.querySelectorAll('[aria-roledescription="cell"] > title').length,
          legends: s.querySelectorAll('.role-legend-gradient').length,
        })),
      };
    });
    assert.deepEqual(seen.charts, ['passkey', 'hashhop', 'needle', 'ppl', 'agree', 'cost']);
    // per retrieval record: 3 lengths x 4 depths (passkey, needle) or x 3 hops (hashhop)
    const per = (n: number): number[] => LABELS.map(() => n);
    assert.deepEqual(seen.heatmaps.map((h) => h.cells), [...per(12), ...per(9), ...per(12)]);
    for (const h of seen.heatmaps) {
      assert.equal(h.titles, h.cells, 'one tooltip per cell');
      assert.equal(h.legends, 1, 'a color legend');
    }
    assert.deepEqual(await page.evaluate(clippedChartText), [], 'no chart text outside its SVG');
    assert.deepEqual(errors, [], 'no console errors');
    assert.deepEqual(remote, [], 'no network requests');
    mkdirSync('test-output', { recursive: true });
    await page.screenshot({ path: 'test-output/eval-report.png', fullPage: true });
    assert.ok(existsSync('test-output/eval-report.png'));
  } finally {
    await ctx.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(profile, { recursive: true, force: true });
  }
});
