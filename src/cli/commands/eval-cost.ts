/** `recurformer eval cost [MODEL]`: cache bytes at several lengths and measured prefill / decode tokens/s (src/eval/cost.ts). */
import type { Command } from 'commander';
import { cacheProfile, streamingAtEqualCache, streamingHeadsAtEqualCache, type CacheProfile } from '../../eval/budget.js';
import { cost, defaultDecodeAt, ownLayout, streamingHeadsLayout, streamingLayout, type CacheLayout } from '../../eval/cost.js';
import { kvBytesPerToken } from '../../convert/spec.js';
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

/** How the chosen memory's bytes grow (cost.ts), for the model's own profile `own`. */
function layoutFor(o: CostFlags, model: DecoderLM, own: CacheProfile): CacheLayout {
  const kind = memoryKind(o);
  if (kind === 'full') return ownLayout(own);
  if (own.groups.size > 0) throw new ArgumentError('eval cost', '--memory', `${kind} runs on the original model`, 'pass the unconverted model');
  const sinks = parseIntArg('--sinks', o.sinks);
  if (o.equalCache) {
    checkEqualCacheKind('eval cost', o);
    const p = equalCacheProfile('eval cost', o.equalCache, model.cfg);
    return kind === 'streaming'
      ? streamingLayout(p.fullKvBytesPerToken, (L) => streamingAtEqualCache(p, L, sinks))
      : streamingHeadsLayout(p.kvBytesPerToken, p.fullKvBytesPerToken - p.kvBytesPerToken, streamingHeadsAtEqualCache(p, sinks));
  }
  const budget = { sinks, window: parseIntArg('--window', o.window, 1) };
  if (kind === 'streaming') return streamingLayout(own.fullKvBytesPerToken, () => budget);
  const replaced = [...planGroups(o).values()].reduce((s, g) => s + g.length, 0);
  const kept = kvBytesPerToken(model.cfg, model.cfg.nLayers * model.cfg.nKvHeads - replaced);
  return streamingHeadsLayout(kept, own.fullKvBytesPerToken - kept, budget);
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
    const layout = layoutFor(o, lm, own);
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
