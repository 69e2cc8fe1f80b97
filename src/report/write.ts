/** Writes DIR/analysis.json and DIR/report.html, each atomically (temp file + rename), creating DIR. */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Analysis } from '../analysis/schema.js';
import { writeFileAtomic } from '../io/tensor-file.js';
import { renderReport } from './html.js';

export function writeAnalysis(dir: string, a: Analysis): { json: string; html: string } {
  mkdirSync(dir, { recursive: true });
  const json = join(dir, 'analysis.json'), html = join(dir, 'report.html');
  const enc = new TextEncoder();
  writeFileAtomic(json, enc.encode(`${JSON.stringify(a, null, 1)}\n`));
  writeFileAtomic(html, enc.encode(renderReport(a)));
  return { json, html };
}
