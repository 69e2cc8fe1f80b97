/** `recurformer eval agree STUDENT --teacher TEACHER --data FILE`: teacher-forced agreement (src/eval/agree.ts). */
import type { Command } from 'commander';
import { agreement } from '../../eval/agree.js';
import { TokenizerError } from '../../tensor/errors.js';
import { load, parseIntArg } from '../common.js';
import { modelArgument } from '../help.js';
import { addTextKeyOption, readTextData } from '../text-data.js';
import { addMemoryOptions } from '../memory-opts.js';
import { addEqualCacheOption, addRecordOptions, emitRecord, lazyBar, taskMemory, taskRecord, type EqualCacheFlags,
  type RecordFlags } from '../eval-opts.js';

interface AgreeFlags extends EqualCacheFlags, RecordFlags {
  teacher: string;
  data: string;
  textKey: string;
  ctx: string;
  maxTokens?: string;
}

export function registerAgree(ev: Command): void {
  const cmd = ev.command('agree')
    .description('teacher-forced agreement of STUDENT with TEACHER: greedy token match, mean KL(teacher || student), top-1 accuracy of both')
    .addArgument(modelArgument('student', 'the student model'))
    .requiredOption('--teacher <model>', 'teacher model path (shares the student\'s vocabulary)')
    .requiredOption('--data <path>', 'text (tokenized with the student\'s tokenizer, BOS first): a text file, a .jsonl file or a folder of them')
    .option('--ctx <n>', 'window length in tokens (non-overlapping windows)', '256')
    .option('--max-tokens <m>', 'score at most the first M positions of the text');
  addRecordOptions(addEqualCacheOption(addMemoryOptions(addTextKeyOption(cmd)))).action((student: string | undefined, o: AgreeFlags) => {
    const started = performance.now();
    const text = readTextData('eval agree', '--data', o.data, { textKey: o.textKey });
    const s = load(student);
    if (!s.loaded.tokenizer) throw new TokenizerError('the student has no tokenizer', 'use a model folder with tokenizer.json', s.loaded.source);
    const t = load(o.teacher);
    const ctx = parseIntArg('--ctx', o.ctx, 1);
    let ids = s.loaded.tokenizer.encode(text, { bos: true });
    if (o.maxTokens !== undefined) ids = ids.slice(0, parseIntArg('--max-tokens', o.maxTokens, 1) + 1);
    const mem = taskMemory('eval agree', o, s.model, ctx);
    const bar = lazyBar('agree');
    const r = agreement(s.model, t.model, ids, { ctx, memory: mem.factory, onWindow: bar.tick });
    bar.stop();
    const name = student ?? s.loaded.source;
    const rec = taskRecord('agree', name, o, null,
      { teacher: o.teacher, data: o.data, ctx, maxTokens: o.maxTokens === undefined ? null : Number(o.maxTokens), ...mem.settings }, r, started);
    emitRecord(rec, o, `match ${r.match.toFixed(4)}  KL ${r.kl.toExponential(3)} nats  top-1 student ${r.studentTop1.toFixed(4)} teacher ${r.teacherTop1.toFixed(4)}  over ${r.tokens} positions`);
  });
}
