/**
 * `npm run demo`: what RecurFormer does, shown on the Llama demo model that learned HashHop (models/demo-llama-hh) in
 * a few minutes. It analyzes the heads, converts 75% of the KV groups (the most recency-aware) into recurrent heads
 * and, under the same plan, into recurrent+window groups (to show the steps), then evaluates the trained checkpoints of
 * both that ship in models/demo-llama-hh-75 against the original, the control (the original trained the same) and both eviction baselines
 * at equal cache; it prints the table and where each method's retrieval breaks, and writes an HTML report. `--train`
 * trains the checkpoints again instead (about two hours on two cores). What it runs is the recipe recipes/demo.json.
 *
 *   npm run demo [-- --train] [--out runs/demo] [--force] [--recipe recipes/demo.json]
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { markdownTable, summarize, whereItBreaks } from '../../src/eval/summary.js';
import { evaluate, prepare, report } from './pipeline.js';
import { loadRecipe } from './recipe.js';
import { prepareData } from './data.js';

const HELP = `npm run demo [-- options]

  Analyzes models/demo-llama-hh, converts 75% of its KV groups (recurrent, and recurrent+window), evaluates the
  trained checkpoints shipped in models/demo-llama-hh-75 against the original, the control and StreamingLLM /
  streaming heads at equal cache (perplexity, passkey, needle, HashHop), and prints the table (about 2 minutes on
  2 cores).

  --train          train the converted models and the control again (about 2 hours on 2 cores) instead of
                   evaluating the shipped checkpoints
  --out DIR        where everything is written (default runs/demo); a run resumes where it stopped
  --force          redo every step, even those whose outputs exist
  --recipe FILE    another experiment recipe (default recipes/demo.json; e.g. recipes/demo-stories260K.json)
  -h, --help       this text

  Examples:
    npm run demo
    npm run demo -- --train --out runs/demo-train
`;

function fail(msg: string): never {
  process.stderr.write(`demo: ${msg}\n\n${HELP}`);
  process.exit(2);
}
// node's own parser: unknown options, stray arguments and options without their value are errors
let opts: { train?: boolean; force?: boolean; out?: string; recipe?: string; help?: boolean };
try {
  opts = parseArgs({
    options: { train: { type: 'boolean' }, force: { type: 'boolean' }, out: { type: 'string' }, recipe: { type: 'string' }, help: { type: 'boolean', short: 'h' } },
    strict: true, allowPositionals: false,
  }).values;
} catch (e) {
  fail((e as Error).message);
}
if (opts.help) {
  process.stdout.write(HELP);
  process.exit(0);
}
const out = opts.out ?? 'runs/demo', recipe = opts.recipe ?? 'recipes/demo.json';
const force = opts.force ?? false, train = opts.train ?? false;

mkdirSync(out, { recursive: true });
const t0 = Date.now();
const log = (s: string): void => {
  process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${s}\n`);
};
const x = loadRecipe(recipe, out);
if (x.prepare) prepareData(x.prepare, out);
const configs = await prepare(x, { out, force, train, log });
const { records, files } = await evaluate(x, configs, { out, force, log });
const page = join(out, x.name, 'report.html');
await report(files, `recurformer demo: ${x.name} (${recipe})`, page, log);
const shown = configs.filter((c) => c.kind === 'recurformer'), last = shown.at(-1);
const summary = summarize(records);
process.stdout.write(`\n${markdownTable(summary)}\n\nwhere retrieval breaks (more than one prompt below the original):\n` +
  `${whereItBreaks(records, summary).map((l) => `  ${l}`).join('\n')}\n\n` +
  `report: ${page}\nattention analysis: ${join(out, x.name, 'analysis', 'report.html')}\n` +
  `converted models: ${shown.map((c) => `${c.model} (${c.label})`).join(', ')}\n` +
  (last ? `  try: npx recurformer generate ${last.model} --prompt "Once upon a time"\n` : '') +
  `done in ${((Date.now() - t0) / 60000).toFixed(1)} min\n`);
