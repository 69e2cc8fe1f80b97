/**
 * `recurformer eval passkey|hashhop|needle [MODEL]`: retrieval accuracy by length x depth (or hops), under the
 * model's own memory or a baseline (--memory streaming|streaming-heads), optionally sized to a converted model's
 * cache at each length (--equal-cache DIR). Prints a table, or the EvalRecord with --json; --out writes it.
 */
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import type { RetrievalResult } from '../../eval/record.js';
import { HASH_ALPHABETS, plainText, type HashAlphabet } from '../../eval/synthetic.js';
import { answerRoom, DEFAULT_DEPTHS, DEFAULT_HOPS, defaultLengths, evalRetrieval, modelPredictor, type MemoryForLength, type RetrievalTask } from '../../eval/retrieval.js';
import type { ModelConfig } from '../../model/config.js';
import { TokenizerError } from '../../tensor/errors.js';
import { defaultModelPath, load, packageRoot, parseIntArg } from '../common.js';
import { computedDefault, modelArgument } from '../help.js';
import { addTextKeyOption, readTextData } from '../text-data.js';
import { addEqualCacheOption, addRecordOptions, emitRecord, lazyBar, memoryKind, parseNumberList, positiveInt, taskMemories,
  taskRecord, unitInterval, type EqualCacheFlags, type RecordFlags } from '../eval-opts.js';
import { addMemoryOptions } from '../memory-opts.js';

interface RetrievalFlags extends EqualCacheFlags, RecordFlags {
  lengths?: string;
  depths?: string;
  hops?: string;
  alphabet?: HashAlphabet;
  haystack?: string;
  textKey?: string;
  samples: string;
  seed: string;
}


interface MemoryPlan {
  memoryFor: MemoryForLength;
  /** Sinks and window per length for the streaming baselines (empty for the model's own memory). */
  windows: { length: number; sinks: number; window: number }[];
}

/** Which memory runs at each length: the model's own, a baseline from the flags, or a baseline at equal cache. */
function planMemory(o: RetrievalFlags, lengths: number[], cfg: ModelConfig): MemoryPlan {
  const mems = taskMemories('cli', o, cfg, lengths);
  const windows = memoryKind(o) === 'full' ? [] : lengths.map((length, i) => {
    const { sinks, window } = mems[i]!.settings as { sinks: number; window: number };
    return { length, sinks, window };
  });
  return { memoryFor: (length) => mems[lengths.indexOf(length)]!.factory, windows };
}

/** The needle's haystack: any --data-like path (a text file, a .jsonl file or a folder of them). */
function readHaystack(o: RetrievalFlags): string {
  const path = o.haystack ?? join(packageRoot(), 'data', 'gutenberg', 'frankenstein_pg84.txt');
  return plainText(readTextData('eval needle', '--haystack', path, { textKey: o.textKey }));
}

const pct = (x: number): string => `${(x * 100).toFixed(0)}%`;

/**
 * Accuracy by length (rows) and depth or hops (columns), with each row's mean prompt tokens and overall. Misses past
 * the first few point to the record file `out` when one is written, else say how to get one.
 */
export function formatRetrievalTable(task: RetrievalTask, r: RetrievalResult, out?: string): string {
  const axis = task === 'hashhop' ? 'hops' : 'depth';
  const cols = [...new Set(r.cells.map((c) => (task === 'hashhop' ? c.hops : c.depth)!))];
  const head = ['length', 'tokens', ...cols.map((c) => `${axis === 'hops' ? 'hops' : 'd'}=${c}`), 'all'];
  const rows = r.byLength.map((b) => {
    const cells = r.cells.filter((c) => c.length === b.length);
    const tokens = cells.reduce((s, c) => s + c.meanTokens * c.n, 0) / Math.max(1, b.n);
    return [String(b.length), tokens.toFixed(0), ...cols.map((v) => pct(cells.find((c) => (c.hops ?? c.depth) === v)?.accuracy ?? 0)), pct(b.accuracy)];
  });
  const width = head.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (row: string[]): string => row.map((s, i) => s.padStart(width[i]!)).join('  ');
  const shown = r.misses.slice(0, MISSES_SHOWN).map((m) => `  length ${m.length} ${axis} ${m.hops ?? m.depth}`
    + ` sample ${m.sample}: expected ${JSON.stringify(m.expected)}, got ${JSON.stringify(m.got)}`);
  const more = r.misses.length <= MISSES_SHOWN ? []
    : [`  ... ${r.misses.length - MISSES_SHOWN} more ${out ? `in ${out} (result.misses)` : '(pass --out FILE or --json for the record listing them all)'}`];
  return [line(head), ...rows.map(line), `overall ${pct(r.accuracy)} over ${r.cells.reduce((s, c) => s + c.n, 0)} cases (chance ${r.chance.toPrecision(2)})`,
    ...(shown.length ? ['misses:', ...shown, ...more] : [])].join('\n') + '\n';
}

/** Wrong cases the text table lists (all are in the JSON record). */
const MISSES_SHOWN = 5;

function runTask(task: RetrievalTask, model: string | undefined, o: RetrievalFlags): void {
  const started = performance.now();
  const { loaded, model: lm } = load(model);
  const tok = loaded.tokenizer;
  if (!tok) throw new TokenizerError('the model has no tokenizer', 'use a model folder with tokenizer.json', loaded.source);
  const depths = task === 'hashhop' ? undefined : o.depths === undefined ? [...DEFAULT_DEPTHS] : parseNumberList('--depths', o.depths, unitInterval, '0,0.5,1');
  const hops = task === 'hashhop' ? (o.hops === undefined ? [...DEFAULT_HOPS] : parseNumberList('--hops', o.hops, positiveInt)) : undefined;
  const maxContext = lm.cfg.maxPos;
  const lengths = o.lengths === undefined ? defaultLengths(maxContext, answerRoom(task, hops)) : parseNumberList('--lengths', o.lengths, positiveInt, '256,512');
  const samples = parseIntArg('--samples', o.samples, 1), seed = parseIntArg('--seed', o.seed);
  const haystack = task === 'needle' ? readHaystack(o) : undefined;
  const mem = planMemory(o, lengths, lm.cfg);
  const bar = lazyBar(task);
  const result = evalRetrieval(modelPredictor(lm, tok, mem.memoryFor), tok, task, {
    lengths, depths, hops, samples, seed, haystack, alphabet: o.alphabet, maxContext, onCase: bar.tick,
  });
  bar.stop();
  const record = taskRecord(task, model ?? defaultModelPath(), o, seed, {
    lengths, ...(hops ? { hops, alphabet: o.alphabet ?? 'letters' } : { depths }), samples, maxContext,
    ...(task === 'needle' ? { haystack: o.haystack ?? 'data/gutenberg/frankenstein_pg84.txt' } : {}),
    ...(mem.windows.length ? { windows: mem.windows } : {}),
  }, result, started);
  emitRecord(record, o, `${task}  ${record.label}  seed ${seed}, ${samples} samples per cell\n${formatRetrievalTable(task, result, o.out).trimEnd()}`);
}

/** The options every retrieval task shares. */
function addCommon(cmd: Command): Command {
  return addRecordOptions(addEqualCacheOption(addMemoryOptions(cmd
    .addArgument(modelArgument())
    .addOption(computedDefault('--lengths <list>', 'target prompt lengths in tokens, BOS included', '256, 512, ... up to the context minus room for the answer'))
    .option('--samples <n>', 'cases per cell', '5')
    .option('--seed <n>', 'seed of the cases', '0'))));
}

/** Adds `passkey`, `hashhop` and `needle` to the `eval` command. */
export function registerRetrievalEvals(ev: Command): void {
  const depthsHelp = 'depths of the key in [0, 1]';
  addCommon(ev.command('passkey').description('passkey retrieval: a 5-digit key hidden in filler text, accuracy by length x depth')
    .option('--depths <list>', depthsHelp, DEFAULT_DEPTHS.join(',')))
    .action((model: string | undefined, o: RetrievalFlags) => runTask('passkey', model, o));
  addCommon(ev.command('hashhop').description('multi-hop retrieval over random hash pairs, accuracy by length x hops')
    .option('--hops <list>', 'hops per query', DEFAULT_HOPS.join(','))
    .addOption(new Option('--alphabet <a>', 'what the 6-character hashes are made of (digits suit a tokenizer that splits digits)')
      .choices(HASH_ALPHABETS).default('letters')))
    .action((model: string | undefined, o: RetrievalFlags) => runTask('hashhop', model, o));
  addCommon(addTextKeyOption(ev.command('needle').description('needle in real text: a secret word in a book, accuracy by length x depth')
    .option('--depths <list>', depthsHelp, DEFAULT_DEPTHS.join(','))
    .addOption(computedDefault('--haystack <path>', 'the text: a text file, a .jsonl file or a folder of them', 'data/gutenberg/frankenstein_pg84.txt'))))
    .action((model: string | undefined, o: RetrievalFlags) => runTask('needle', model, o));
}
