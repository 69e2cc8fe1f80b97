/** `recurformer eval <task>`: evaluation tasks; each prints an EvalRecord with --json (src/eval/record.ts). */
import type { Command } from 'commander';
import { ArgumentError, TokenizerError } from '../../tensor/errors.js';
import { perplexity } from '../../eval/perplexity.js';
import { load, parseIntArg } from '../common.js';
import { computedDefault, modelArgument } from '../help.js';
import { addTextKeyOption, readTextData } from '../text-data.js';
import { addMemoryOptions } from '../memory-opts.js';
import { addEqualCacheOption, addRecordOptions, emitRecord, lazyBar, taskMemory, taskRecord, type EqualCacheFlags,
  type RecordFlags } from '../eval-opts.js';
import { registerAgree } from './eval-agree.js';
import { registerCost } from './eval-cost.js';
import { registerEvalReport } from './eval-report.js';
import { registerRetrievalEvals } from './eval-retrieval.js';

interface PplFlags extends EqualCacheFlags, RecordFlags {
  data: string;
  textKey: string;
  ctx: string;
  stride?: string;
}

function registerPpl(ev: Command): void {
  const ppl = ev.command('ppl')
    .description('perplexity of a text (BOS first) in windows of --ctx tokens advancing by --stride')
    .addArgument(modelArgument())
    .requiredOption('--data <path>', 'text to score: a text file, a .jsonl file or a folder of them (as for train)')
    .option('--ctx <n>', 'window length in tokens', '256')
    .addOption(computedDefault('--stride <n>', 'how far each window advances; later windows score only their last <n> targets', '--ctx, non-overlapping'));
  addRecordOptions(addEqualCacheOption(addMemoryOptions(addTextKeyOption(ppl)))).action((model: string | undefined, o: PplFlags) => {
    const started = performance.now();
    const text = readTextData('eval ppl', '--data', o.data, { textKey: o.textKey });
    const { loaded, model: lm } = load(model);
    if (!loaded.tokenizer) throw new TokenizerError('the model has no tokenizer', 'use a model folder with tokenizer.json', loaded.source);
    const ctx = parseIntArg('--ctx', o.ctx, 1);
    const stride = o.stride === undefined ? ctx : parseIntArg('--stride', o.stride, 1);
    if (stride > ctx) throw new ArgumentError('eval ppl', '--stride', `= ${stride} is larger than --ctx ${ctx}`, 'use --stride <= --ctx');
    const mem = taskMemory('eval ppl', o, lm, ctx);
    const bar = lazyBar('ppl');
    const r = perplexity(lm, loaded.tokenizer, text, ctx, bar.tick, mem.factory, stride);
    bar.stop();
    const name = model ?? loaded.source;
    const rec = taskRecord('ppl', name, o, null, { data: o.data, ctx, stride, ...mem.settings }, r, started);
    emitRecord(rec, o, `nll ${r.nll.toFixed(4)}  ppl ${r.ppl.toFixed(3)}  over ${r.tokens} tokens (${r.windows} windows of ${ctx}, stride ${stride})`);
  });
}

export function registerEval(program: Command): void {
  const ev = program.command('eval').description('evaluate a model');
  registerRetrievalEvals(ev);
  registerPpl(ev);
  registerAgree(ev);
  registerCost(ev);
  registerEvalReport(ev);
}
