/**
 * `npm run demo`: the whole RecurFormer loop on the bundled stories260K in about eight minutes. It analyzes the
 * heads, converts half of the KV groups (the most recency-aware) into recurrent heads and, under the same plan, into
 * recurrent+window groups (an exact window + a recurrent head), trains each briefly (align, then distill), evaluates
 * them against full attention and both eviction baselines at equal cache, prints the table and writes an HTML
 * report. What it runs is the recipe recipes/demo.json.
 *
 *   npm run demo [-- --out runs/demo] [--force]
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { markdownTable, summarize } from '../../src/eval/summary.js';
import { evaluate, prepare, report } from './pipeline.js';
import { loadRecipe } from './recipe.js';
import { prepareData } from './data.js';

const args = process.argv.slice(2);
const oi = args.indexOf('--out');
const out = oi >= 0 ? args[oi + 1]! : 'runs/demo';
const force = args.includes('--force');
mkdirSync(out, { recursive: true });
const t0 = Date.now();
const x = loadRecipe('recipes/demo.json', out);
if (x.prepare) prepareData(x.prepare, out);
const log = (s: string): void => {
  process.stderr.write(`[${((Date.now() - t0) / 1000).toFixed(0).padStart(4)} s] ${s}\n`);
};
const configs = await prepare(x, { out, force, log });
const { records, files } = await evaluate(x, configs, { out, force, log });
const page = join(out, 'report.html');
await report(files, 'recurformer demo: stories260K, half of the KV groups recurrent', page, log);
process.stdout.write(`\n${markdownTable(summarize(records))}\n\n`);
process.stdout.write(`report: ${page}\nattention analysis: ${join(out, x.name, 'analysis', 'report.html')}\n` +
  `converted models: ${join(out, x.name, 'distill50', 'model')} (recurrent), ${join(out, x.name, 'distill50-rw', 'model')} (recurrent+window)\n` +
  `  try: npx recurformer generate ${join(out, x.name, 'distill50-rw', 'model')} --prompt "Once upon a time"\n` +
  `done in ${((Date.now() - t0) / 60000).toFixed(1)} min\n`);
