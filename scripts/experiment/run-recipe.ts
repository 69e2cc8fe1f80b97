/**
 * One recipe, run on its own: its data preparation, analyze, convert, train and every eval task, then the table
 * (printed and written to OUT/NAME/table.md) and the report page. For trials of a recipe that is not (yet) part of
 * `npm run experiment`, such as recipes/demo-llama-rw.json.
 *
 *   node --import tsx scripts/experiment/run-recipe.ts RECIPE [--out runs/trial] [--prepare-only] [--force]
 *
 * Steps whose outputs exist under --out are skipped (OUT/steps.json, as in the end-to-end script), so it resumes.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { markdownTable, summarize } from '../../src/eval/summary.js';
import { evaluate, prepare, report } from './pipeline.js';
import { loadRecipe } from './recipe.js';
import { prepareData } from './data.js';

const args = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const file = args[0];
if (!file || file.startsWith('-')) throw new Error('usage: run-recipe.ts RECIPE [--out DIR] [--prepare-only] [--force]');
const out = opt('--out') ?? 'runs/trial';
const force = args.includes('--force');
mkdirSync(out, { recursive: true });
const t0 = Date.now();
const log = (s: string): void => {
  process.stderr.write(`[${((Date.now() - t0) / 60000).toFixed(1).padStart(5)} min] ${s}\n`);
};
const x = loadRecipe(file, out);
if (x.prepare) prepareData(x.prepare, out);
const configs = await prepare(x, { out, force, log });
if (!args.includes('--prepare-only')) {
  const { records, files } = await evaluate(x, configs, { out, force, log });
  const table = markdownTable(summarize(records));
  writeFileSync(join(out, x.name, 'table.md'), `${table}\n`);
  await report(files, `${x.name} (${file})`, join(out, x.name, 'report.html'), log);
  process.stdout.write(`\n${table}\n\nreport: ${join(out, x.name, 'report.html')}\ndone in ${((Date.now() - t0) / 60000).toFixed(1)} min\n`);
}
