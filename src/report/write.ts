/** Writes DIR/analysis.json and DIR/report.html, each atomically (temp file + rename), creating DIR. */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Analysis } from '../analysis/schema.js';
import { writeFileAtomic } from '../io/tensor-file.js';
import { renderReport } from './html.js';

/** Renders the page (async: the charts render through vega), then writes both files. */
export async function writeAnalysis(dir: string, a: Analysis): Promise<{ json: string; html: string }> {
  return writeAnalysisFiles(dir, a, await renderReport(a));
}

/** Writes both files with a page already rendered by renderReport (synchronous: the CLI wraps it to name --out on errors). */
export function writeAnalysisFiles(dir: string, a: Analysis, page: string): { json: string; html: string } {
  mkdirSync(dir, { recursive: true });
  const json = join(dir, 'analysis.json'), html = join(dir, 'report.html');
  const enc = new TextEncoder();
  writeFileAtomic(json, enc.encode(`${JSON.stringify(a, null, 1)}\n`));
  writeFileAtomic(html, enc.encode(page));
  return { json, html };
}
