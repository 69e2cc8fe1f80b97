/**
 * The end-to-end experiment (issue 7, issue 27): for stories260K and demo-llama-hh (the demo model that learned 1- and
 * 2-hop HashHop), analyze, convert at 25%, 50% and 75% of KV groups to both kinds of replaced group (recurrent, as
 * RecurFormer; recurrent+window), train (align + distill) or load the recipe's shipped trained checkpoints, run every
 * eval task on the original, the control (the original trained through the same stages), each converted model and
 * both baselines at equal cache; then regenerate the tables in docs/results.md and README.md and the report pages
 * (docs/results/<model>.html). What runs for each model is its recipe, recipes/stories260K.json and
 * recipes/demo-llama-hh.json; the trials behind them are in docs/recipes.md.
 *
 *   node --import tsx scripts/experiment/e2e.ts [--out runs/e2e] [--only stories260K|demo-llama-hh] [--prepare-only]
 *     [--force] [--train] [--budgets 0.5,0.75]
 *
 * Steps whose outputs exist under --out are skipped, so the command resumes; --force recomputes everything.
 * demo-llama-hh's recipe names trained checkpoints (models/demo-llama-hh-{25,50,75}, the control in -75): they are
 * evaluated as they are, unless --train trains them again (about six hours on two cores).
 * --only reruns one model and rewrites only its sections of docs/results.md (results and waiver) and its README
 * rows (it refuses to start while the other models' README rows have an older table's columns). --budgets keeps
 * only those of each model's budgets (a trial of one budget, with --out elsewhere and --prepare-only: the tables of a
 * partial run would drop the other budgets' rows).
 */
import { copyFileSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { formatChange, formatCounts, markdownTable, summarize, whereItBreaks } from '../../src/eval/summary.js';
import { analyze, evaluate, narrowExperiment, prepare, report } from './pipeline.js';
import { loadRecipe } from './recipe.js';
import { waiverSection } from './waiver.js';
import { demoData, prepareData } from './data.js';

const args = process.argv.slice(2);
const opt = (name: string): string | undefined => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : undefined;
};
const out = opt('--out') ?? 'runs/e2e';
const only = opt('--only');
const force = args.includes('--force');
/** Train every stage, also those a recipe's `trained` names a checkpoint for. */
const train = args.includes('--train');
/** Only analyze, convert and train (no eval, no tables). */
const prepareOnly = args.includes('--prepare-only');
const budgetsOpt = opt('--budgets');
const onlyBudgets = budgetsOpt === undefined ? null : budgetsOpt.split(',').map(Number);
if (onlyBudgets && !onlyBudgets.every((b) => b > 0 && b < 1)) {
  throw new Error(`--budgets ${budgetsOpt}: give fractions of KV groups in (0, 1), comma-separated (e.g. 0.5,0.75)`);
}
mkdirSync(out, { recursive: true });

/** The recipes (recipes/*.json, checked by scripts/experiment/recipe.ts; why they are what they are: docs/recipes.md). */
const RECIPES = ['recipes/stories260K.json', 'recipes/demo-llama-hh.json'];
const experiments = RECIPES.map((f) => narrowExperiment(loadRecipe(f, out), f, onlyBudgets ?? undefined));
if (only !== undefined && !experiments.some((x) => x.name === only)) {
  throw new Error(`--only ${only}: no such model (the models: ${experiments.map((x) => x.name).join(', ')})`);
}

function replaceBetween(file: string, begin: string, end: string, body: string): void {
  const text = readFileSync(file, 'utf8');
  const a = text.indexOf(begin), b = text.indexOf(end);
  if (a < 0 || b < a) throw new Error(`${file} lacks the markers ${begin} ... ${end}`);
  writeFileSync(file, `${text.slice(0, a + begin.length)}\n${body}\n${text.slice(b)}`);
}

/** The text between two markers of a file. */
function between(file: string, begin: string, end: string): string {
  const text = readFileSync(file, 'utf8');
  return text.slice(text.indexOf(begin) + begin.length, text.indexOf(end));
}

/** The README results table's header: every row has its columns. */
const README_HEAD = '| model | configuration | KV bytes/token | Δ perplexity | Δ vs control | passkey by length | hashhop by hops and length | needle by length |\n'
  + '|---|---|---:|---:|---:|---:|---:|---:|';
const columns = (row: string): number => row.split('|').length;
// --only keeps the other models' README rows as they are: they must have this header's columns, or the table breaks
if (only && !prepareOnly) {
  const want = columns(README_HEAD.split('\n')[0]!);
  const stale = between('README.md', '<!-- results:begin -->', '<!-- results:end -->').split('\n')
    .filter((r) => r.startsWith('| ') && !r.startsWith('| model |') && !r.startsWith(`| ${only} |`) && columns(r) !== want);
  if (stale.length > 0) {
    throw new Error(`--only ${only}: README.md's other rows have the columns of an older table (e.g. "${stale[0]}"); `
      + 'run without --only to regenerate every model\'s rows');
  }
}

const sections: string[] = [];
const readmeRows: string[] = [];
for (const x of experiments) {
  if (only && x.name !== only) continue;
  if (x.prepare) prepareData(x.prepare, out);
  const t0 = Date.now();
  const configs = await prepare(x, { out, force, train });
  if (prepareOnly) continue;
  const { records, files } = await evaluate(x, configs, { out, force });
  const dir = join(out, x.name);
  const page = join(dir, 'report.html');
  await report(files, `RecurFormer end-to-end: ${x.name}`, page);
  mkdirSync('docs/results', { recursive: true });
  copyFileSync(page, `docs/results/${x.name}.html`);
  copyFileSync(join(dir, 'analysis', 'report.html'), `docs/results/${x.name}-analysis.html`);
  const s = summarize(records);
  const table = markdownTable(s); // no decode tok/s: see markdownTable
  const breaks = whereItBreaks(records, s).map((l) => `- ${l}`).join('\n');
  process.stdout.write(`\n${x.name}\n${table}\n\nWhere retrieval breaks:\n${breaks}\n`);
  sections.push(`### ${x.name}\n\n${table}\n\nWhere retrieval breaks (more than one prompt below the original):\n${breaks}\n\nReport: [results/${x.name}.html](results/${x.name}.html); attention analysis: ` +
    `[results/${x.name}-analysis.html](results/${x.name}-analysis.html).`);
  process.stderr.write(`${x.name}: ${((Date.now() - t0) / 60000).toFixed(1)} min (steps already done are skipped)\n`);
  for (const r of s.rows.filter((r) => !r.label.includes('untrained'))) {
    const hashhop = r.hashhopByHops.map((h) => `${h.hops} hop${h.hops === 1 ? '' : 's'}: ${formatCounts(h.counts)}`).join('; ');
    readmeRows.push(`| ${x.name} | ${r.label} | ${r.kvBytesPerToken?.toLocaleString('en-US') ?? '–'} | ${formatChange(r.pplChange)} | ` +
      `${formatChange(r.pplVsControl)} | ${formatCounts(r.passkey)} | ${hashhop || '–'} | ${formatCounts(r.needle)} |`);
  }
}
// The waiver contrast: both demo models (RoPE vs learned absolute positions) and stories260K on the same held-out
// text. With --only, just that model's block is recomputed; the others stay as they are.
if (!prepareOnly) {
  const waiverModels = [['demo-llama', 'models/demo-llama'], ['demo-gpt2', 'models/demo-gpt2'], ['stories260K', 'models/stories260K']] as const;
  const fresh = new Map<string, string>();
  demoData(out);
  for (const [name, model] of waiverModels) {
    if (only && name !== only) continue;
    const file = await analyze(model, join(out, 'frankenstein-heldout.txt'), 8, 256, 0, join(out, 'waiver', name), { out, force });
    fresh.set(name, waiverSection(name, file));
    copyFileSync(join(out, 'waiver', name, 'report.html'), `docs/results/${name}-waiver.html`);
  }
  const old = new Map(between('docs/results.md', '<!-- waiver:begin -->', '<!-- waiver:end -->').split(/^(?=\*\*)/m)
    .map((b) => b.trim()).filter((b) => b.startsWith('**')).map((b) => [b.slice(2, b.indexOf(':')), b]));
  const blocks = waiverModels.map(([name]) => fresh.get(name) ?? old.get(name)).filter((b): b is string => b !== undefined);
  replaceBetween('docs/results.md', '<!-- waiver:begin -->', '<!-- waiver:end -->', blocks.join('\n\n'));
}
if (!prepareOnly) writeTables();

/**
 * Writes the models' sections of docs/results.md and their rows of the README table. With --only, the other
 * models' sections and rows stay as they are, so one model can be rerun without redoing the other.
 */
function writeTables(): void {
  const names = experiments.map((x) => x.name);
  const ran = new Map(sections.map((body) => [body.slice(4, body.indexOf('\n')), body]));
  const old = new Map(between('docs/results.md', '<!-- e2e:begin -->', '<!-- e2e:end -->').split(/^(?=### )/m)
    .map((b) => b.trim()).filter((b) => b.startsWith('### ')).map((b) => [b.slice(4, b.indexOf('\n')), b]));
  const merged = names.map((n) => ran.get(n) ?? old.get(n)).filter((b): b is string => b !== undefined);
  replaceBetween('docs/results.md', '<!-- e2e:begin -->', '<!-- e2e:end -->', merged.join('\n\n'));
  const oldRows = between('README.md', '<!-- results:begin -->', '<!-- results:end -->').split('\n')
    .filter((r) => names.some((n) => r.startsWith(`| ${n} |`)));
  const rows = names.flatMap((n) => (ran.has(n) ? readmeRows : oldRows).filter((r) => r.startsWith(`| ${n} |`)));
  replaceBetween('README.md', '<!-- results:begin -->', '<!-- results:end -->', `${README_HEAD}\n${rows.join('\n')}`);
}

