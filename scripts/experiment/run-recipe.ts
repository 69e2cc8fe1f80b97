/**
 * One recipe, run on its own: its data preparation, analyze, convert, train and every eval task, then the table and
 * where each configuration's retrieval breaks (printed and written to OUT/NAME/table.md) and the report page. For
 * trials of a recipe that is not (yet) part of `npm run experiment`, such as recipes/demo-llama-rw.json.
 *
 *   node --import tsx scripts/experiment/run-recipe.ts RECIPE [--out runs/trial] [--prepare-only] [--force] [--train]
 *     [--budgets 0.5,0.75] [--kinds recurrent+window]
 *
 * Steps whose outputs exist under --out are skipped (OUT/steps.json, as in the end-to-end script), so it resumes.
 * --budgets and --kinds keep only those of the recipe's budgets and head kinds (one part of a long trial at a time;
 * the table then has only their rows, beside the original and the control); the recipe's `trained` checkpoints of the
 * other budgets and kinds are then left out too. The configurations the recipe's `trained` names a checkpoint for are
 * evaluated from it, not trained, unless --train.
 */
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { markdownTable, summarize, whereItBreaks } from '../../src/eval/summary.js';
import { evaluate, narrowExperiment, prepare, report } from './pipeline.js';
import { loadRecipe } from './recipe.js';
import { prepareData } from './data.js';
import type { ReplacedKind } from '../../src/model/layout.js';

const args = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const file = args[0];
if (!file || file.startsWith('-')) throw new Error('usage: run-recipe.ts RECIPE [--out DIR] [--prepare-only] [--force] [--train] [--budgets B,B] [--kinds K,K]');
const out = opt('--out') ?? 'runs/trial';
const force = args.includes('--force');
/** Train every stage, also those the recipe's `trained` names a checkpoint for. */
const train = args.includes('--train');
mkdirSync(out, { recursive: true });
const t0 = Date.now();
const log = (s: string): void => {
  process.stderr.write(`[${((Date.now() - t0) / 60000).toFixed(1).padStart(5)} min] ${s}\n`);
};
const budgets = opt('--budgets'), kinds = opt('--kinds');
const x = narrowExperiment(loadRecipe(file, out), file, budgets?.split(',').map(Number), kinds?.split(',') as ReplacedKind[] | undefined);
if (x.prepare) prepareData(x.prepare, out);
const configs = await prepare(x, { out, force, train, log });
if (!args.includes('--prepare-only')) {
  const { records, files } = await evaluate(x, configs, { out, force, log });
  const summary = summarize(records);
  const breaks = whereItBreaks(records, summary).map((l) => `- ${l}`).join('\n');
  const table = `${markdownTable(summary)}\n\nWhere retrieval breaks (more than one prompt below the original):\n${breaks}`;
  writeFileSync(join(out, x.name, 'table.md'), `${table}\n`);
  await report(files, `${x.name} (${file})`, join(out, x.name, 'report.html'), log);
  process.stdout.write(`\n${table}\n\nreport: ${join(out, x.name, 'report.html')}\ndone in ${((Date.now() - t0) / 60000).toFixed(1)} min\n`);
}
