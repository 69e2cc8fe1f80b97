/** `recurformer eval cost [MODEL]`: cache bytes at several lengths and measured prefill / decode tokens/s (src/eval/cost.ts). */
import type { Command } from 'commander';
import { cacheProfile, streamingAtEqualCache, streamingHeadsAtEqualCache } from '../../eval/budget.js';
import { cost, defaultDecodeAt, type CacheLayout } from '../../eval/cost.js';
import type { DecoderLM } from '../../model/transformer.js';
import { ArgumentError } from '../../tensor/errors.js';
import { load, parseIntArg } from '../common.js';
import { computedDefault, modelArgument } from '../help.js';
import { addMemoryOptions, planGroups } from '../memory-opts.js';
import { addEqualCacheOption, addRecordOptions, checkEqualCacheKind, emitRecord, equalCacheProfile, lazyBar, memoryKind,
  parseNumberList, positiveInt, taskMemory, taskRecord, type EqualCacheFlags, type RecordFlags } from '../eval-opts.js';

interface CostFlags extends EqualCacheFlags, RecordFlags {
  lengths: string;
  prefill: string;
  decodeAt?: string;
  decodeTokens: string;
}

/** The chosen memory's layout at a length (cost.ts counts its bytes). */
function layoutFor(o: CostFlags, model: DecoderLM): CacheLayout {
  const kind = memoryKind(o), own = model.layout;
  if (kind === 'full') return () => own;
  if (kind === 'streaming-heads' && model.recurrent.size > 0) {
    throw new ArgumentError('eval cost', '--memory', 'streaming-heads runs on the original model', 'pass the unconverted model');
  }
  const sinks = parseIntArg('--sinks', o.sinks);
  if (o.equalCache) {
    checkEqualCacheKind('eval cost', o);
    const p = equalCacheProfile('eval cost', o.equalCache, model.cfg);
    if (kind === 'streaming') return (L) => own.withWindows('all', streamingAtEqualCache(p, L, sinks));
    const fixed = own.withWindows(p.groups, streamingHeadsAtEqualCache(p, sinks));
    return () => fixed;
  }
  const budget = { sinks, window: parseIntArg('--window', o.window, 1) };
  const fixed = own.withWindows(kind === 'streaming' ? 'all' : planGroups(o, model.cfg), budget);
  return () => fixed;
}

const mb = (b: number): string => `${(b / 2 ** 20).toFixed(3)} MiB`;

export function registerCost(ev: Command): void {
  const cmd = ev.command('cost')
    .description('cache bytes at several lengths (computed) and prefill / decode tokens/s (measured) of one model with one memory')
    .addArgument(modelArgument())
    .option('--lengths <list>', 'comma-separated lengths in tokens for the cache bytes', '1024,4096,16384')
    .option('--prefill <n>', 'tokens of the timed prefill forward', '512')
    .addOption(computedDefault('--decode-at <n>', 'position the decode is timed at', 'min(context, 2048) - decode tokens'))
    .option('--decode-tokens <n>', 'decode steps timed', '32');
  addRecordOptions(addEqualCacheOption(addMemoryOptions(cmd))).action((model: string | undefined, o: CostFlags) => {
    const started = performance.now();
    const { loaded, model: lm } = load(model);
    const own = cacheProfile(loaded.config, loaded.recurformer);
    const lengths = parseNumberList('--lengths', o.lengths, positiveInt, '1024,4096,16384');
    const decodeTokens = parseIntArg('--decode-tokens', o.decodeTokens, 1);
    const decodeAt = o.decodeAt === undefined ? defaultDecodeAt(lm, decodeTokens) : parseIntArg('--decode-at', o.decodeAt, 1);
    const prefill = parseIntArg('--prefill', o.prefill, 1);
    const layout = layoutFor(o, lm);
    const mem = taskMemory('eval cost', o, lm, decodeAt);
    const bar = lazyBar('decode');
    const r = cost(lm, own, { lengths, prefill, decodeAt, decodeTokens, layout, memory: mem.factory, onStep: bar.tick });
    bar.stop();
    const name = model ?? loaded.source;
    const rec = taskRecord('cost', name, o, null, { lengths, prefill, decodeAt, decodeTokens, ...mem.settings }, r, started);
    const lines = [
      `KV bytes per token ${r.kvBytesPerToken} (full attention ${r.fullKvBytesPerToken}), constant ${r.constantBytes}`,
      ...r.lengths.map((l) => `  at ${String(l.length).padStart(6)} tokens: ${mb(l.bytes)} (full attention ${mb(l.fullAttentionBytes)})`),
      `prefill ${r.prefill.tokPerS.toFixed(1)} tok/s over ${prefill} tokens; decode ${r.decode.tokPerS.toFixed(1)} tok/s at position ${decodeAt}`,
    ];
    emitRecord(rec, o, lines.join('\n'));
  });
}
