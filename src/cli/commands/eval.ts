/** `recurformer eval <task>`: evaluation tasks (perplexity today). */
import { readFileSync, existsSync } from 'node:fs';
import type { Command } from 'commander';
import { ArgumentError, TokenizerError } from '../../tensor/errors.js';
import { perplexity } from '../../eval/perplexity.js';
import { load, parseIntArg, printJson, progress } from '../common.js';
import { addMemoryOptions, memoryFactory, type MemoryFlags } from '../memory-opts.js';
import { registerRetrievalEvals } from './eval-retrieval.js';

export function registerEval(program: Command): void {
  const ev = program.command('eval').description('evaluate a model');
  registerRetrievalEvals(ev);
  const ppl = ev.command('ppl')
    .description('perplexity of a text file in non-overlapping windows (BOS first)')
    .argument('[model]', 'model path (default: bundled stories260K)')
    .requiredOption('--data <file>', 'text file to score')
    .option('--ctx <n>', 'window length in tokens', '256')
    .option('--json', 'print {"nll", "ppl", "tokens"}');
  addMemoryOptions(ppl).action((model: string | undefined, o: { data: string; ctx: string; json?: boolean } & MemoryFlags) => {
      if (!existsSync(o.data)) throw new ArgumentError('eval ppl', '--data', `${o.data} does not exist`);
      const { loaded, model: lm } = load(model);
      if (!loaded.tokenizer) throw new TokenizerError('the model has no tokenizer', 'use a model folder with tokenizer.json', loaded.source);
      const ctx = parseIntArg('--ctx', o.ctx, 1);
      const text = readFileSync(o.data, 'utf8');
      let bar: ReturnType<typeof progress> | null = null;
      const r = perplexity(lm, loaded.tokenizer, text, ctx, (done, total) => {
        bar ??= progress('ppl', total);
        bar.update(done);
      }, memoryFactory(o));
      (bar as ReturnType<typeof progress> | null)?.stop();
      if (o.json) printJson({ nll: r.nll, ppl: r.ppl, tokens: r.tokens, memory: o.memory });
      else process.stdout.write(`nll ${r.nll.toFixed(4)}  ppl ${r.ppl.toFixed(3)}  over ${r.tokens} tokens (${r.windows} windows of ${ctx})\n`);
    });
}
