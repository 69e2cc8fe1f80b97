/**
 * Options shared by the eval tasks: --label / --out / --json (the EvalRecord envelope, record.ts) and --equal-cache
 * (a baseline on the original model sized to a converted model's cache, budget.ts).
 */
import { basename, join } from 'node:path';
import type { Command } from 'commander';
import { baselineAtEqualCache, cacheProfile, streamingAtEqualCache, streamingHeadsAtEqualCache, type CacheProfile } from '../eval/budget.js';
import { evalRecord, type EvalRecord, type EvalTask, type MemoryKind } from '../eval/record.js';
import type { MemoryFactory } from '../eval/windows.js';
import { parseSpec } from '../model/spec.js';
import { Layout } from '../model/layout.js';
import { configFromHf, type ModelConfig } from '../model/config.js';
import { writeFileAtomic } from '../io/tensor-file.js';
import type { DecoderLM } from '../model/transformer.js';
import { ArgumentError } from '../tensor/errors.js';
import { existsSync } from 'node:fs';
import { parseIntArg, printJson, progress, readJsonArg } from './common.js';
import { computedDefault } from './help.js';
import { memoryFactory, type MemoryFlags } from './memory-opts.js';
import { prepareOutFile, writingTo } from './output.js';

export interface RecordFlags {
  label?: string;
  out?: string;
  json?: boolean;
}

export interface EqualCacheFlags extends MemoryFlags {
  equalCache?: string;
}

/** The task's name for errors: "eval ppl". */
const opOf = (cmd: Command): string => `${cmd.parent?.name() ?? ''} ${cmd.name()}`.trim();

export function addRecordOptions(cmd: Command): Command {
  return cmd
    .addOption(computedDefault('--label <text>', 'label of this run in tables and charts', 'model name and memory'))
    .option('--out <file>', 'also write the EvalRecord JSON to FILE (atomically; missing folders are created)')
    .option('--json', 'print the EvalRecord JSON')
    // --out is checked before the task runs, not when its result is ready to be written
    .hook('preAction', (_, action) => {
      const out = (action.opts() as RecordFlags).out;
      if (out !== undefined) prepareOutFile(opOf(action), '--out', out);
    });
}

export function addEqualCacheOption(cmd: Command): Command {
  return cmd.option('--equal-cache <dir>', 'size the --memory baseline (streaming or streaming-heads) to the cache of this converted model');
}

/** The memory kind of the record (hybrid is the converted model's own memory: full). */
export function memoryKind(f: MemoryFlags): MemoryKind {
  return f.memory === 'streaming' || f.memory === 'streaming-heads' ? f.memory : 'full';
}

/** "stories260K", "stories260K streaming", "stories260K streaming-heads @ conv" ... */
export function defaultLabel(model: string, f: EqualCacheFlags): string {
  const kind = memoryKind(f);
  return `${basename(model)}${kind === 'full' ? '' : ` ${kind}`}${f.equalCache ? ` @ ${basename(f.equalCache)}` : ''}`;
}

/**
 * The cache profile of the converted model in DIR (from its config.json alone; no weights are read), checked
 * against the config of the original model it must come from.
 */
export function equalCacheProfile(op: string, dir: string, original: ModelConfig): CacheProfile {
  const file = join(dir, 'config.json');
  if (!existsSync(file)) throw new ArgumentError(op, '--equal-cache', `${dir} has no config.json`, 'pass a folder written by `recurformer convert`');
  const { recurformer, ...rest } = readJsonArg<Record<string, unknown>>(file, op, '--equal-cache');
  if (recurformer === undefined) throw new ArgumentError(op, '--equal-cache', `${dir} is not a converted model (no recurformer section)`, 'pass a folder written by `recurformer convert`');
  const cfg = configFromHf(rest, file);
  const p = cacheProfile(cfg, parseSpec(recurformer, cfg, file));
  const originalKv = Layout.of(original).kvBytesPerToken();
  if (p.fullKvBytesPerToken !== originalKv || cfg.nLayers !== original.nLayers) {
    throw new ArgumentError(op, '--equal-cache', `${dir} was not converted from this model (${p.fullKvBytesPerToken} KV bytes per token before conversion, the model has ${originalKv})`,
      'pass the original model the converted one was made from');
  }
  return p;
}

/** Rejects --equal-cache without a baseline memory. */
export function checkEqualCacheKind(op: string, f: EqualCacheFlags): 'streaming' | 'streaming-heads' {
  const kind = memoryKind(f);
  if (kind === 'full') {
    throw new ArgumentError(op, '--equal-cache', `needs a baseline memory, not --memory ${f.memory}`, 'add --memory streaming or --memory streaming-heads');
  }
  return kind;
}

export interface TaskMemory {
  /** null = the model's own memory. */
  factory: MemoryFactory | null;
  /** What the record's settings keep about it (the baseline's sinks / window / plan). */
  settings: Record<string, unknown>;
}

/**
 * The memory a task runs the model (config `cfg`) with at each of `lengths`: --equal-cache sizes the baseline to the
 * converted model's cache at that many tokens (the converted model's config is read once); otherwise --memory with
 * its own --sinks / --window / --plan, the same at every length.
 */
export function taskMemories(op: string, f: EqualCacheFlags, cfg: ModelConfig, lengths: readonly number[]): TaskMemory[] {
  const kind = memoryKind(f);
  if (!f.equalCache) {
    const settings = kind === 'full' ? {} : { sinks: Number(f.sinks), window: Number(f.window), ...(kind === 'streaming-heads' ? { plan: f.plan } : {}) };
    const factory = memoryFactory(f);
    return lengths.map(() => ({ factory, settings }));
  }
  const base = checkEqualCacheKind(op, f);
  const p = equalCacheProfile(op, f.equalCache, cfg);
  const sinks = parseIntArg('--sinks', f.sinks);
  return lengths.map((tokens) => {
    const budget = base === 'streaming' ? streamingAtEqualCache(p, tokens, sinks) : streamingHeadsAtEqualCache(p, sinks);
    return { factory: baselineAtEqualCache(base, p, tokens, sinks), settings: { ...budget, sizedAt: tokens } };
  });
}

/** taskMemories for one length. */
export function taskMemory(op: string, f: EqualCacheFlags, model: DecoderLM, tokens: number): TaskMemory {
  return taskMemories(op, f, model.cfg, [tokens])[0]!;
}

/** The EvalRecord of a task run on `model` with the memory and label the flags chose; `started` is performance.now(). */
export function taskRecord<R>(task: EvalTask, model: string, f: EqualCacheFlags & RecordFlags, seed: number | null,
  settings: Record<string, unknown>, result: R, started: number): EvalRecord<R> {
  return evalRecord({
    task, model, memory: memoryKind(f), equalCache: f.equalCache ?? null, label: f.label ?? defaultLabel(model, f),
    seed, settings, result, seconds: (performance.now() - started) / 1000,
  });
}

/**
 * Prints the record (--json) or the human summary, then writes the record to --out (atomically). Printing first means
 * a write that fails after all (the disk filled up during the task) still leaves the result on stdout.
 */
export function emitRecord(rec: EvalRecord, o: RecordFlags, summary: string): void {
  if (o.json) printJson(rec);
  else process.stdout.write(`${summary}\n`);
  const out = o.out;
  if (out) writingTo(`eval ${rec.task}`, '--out', out, () => writeFileAtomic(out, new TextEncoder().encode(`${JSON.stringify(rec, null, 1)}\n`)));
}

/** A progress bar created on the first callback (its total is known only then). */
export function lazyBar(label: string): { tick: (done: number, total: number) => void; stop: () => void } {
  let bar: ReturnType<typeof progress> | null = null;
  return {
    tick: (done, total) => {
      bar ??= progress(label, total);
      bar.update(done);
    },
    stop: () => bar?.stop(),
  };
}

/** A comma-separated list of numbers; each must pass `check` (which returns what is wrong, or null). */
export function parseNumberList(flag: string, value: string, check: (n: number) => string | null, example = '1,2'): number[] {
  const hint = `pass a comma-separated list, e.g. ${flag} ${example}`;
  const parts = value.split(',').map((s) => s.trim()).filter((s) => s.length > 0);
  if (parts.length === 0) throw new ArgumentError('cli', flag, 'is empty', hint);
  return parts.map((p) => {
    const n = Number(p);
    const problem = Number.isFinite(n) ? check(n) : 'is not a number';
    if (problem) throw new ArgumentError('cli', flag, `= ${value}: ${p} ${problem}`, hint);
    return n;
  });
}

export const positiveInt = (n: number): string | null => (Number.isInteger(n) && n >= 1 ? null : 'must be a positive integer');
export const unitInterval = (n: number): string | null => (n >= 0 && n <= 1 ? null : 'must be within [0, 1]');
