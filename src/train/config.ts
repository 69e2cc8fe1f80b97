/**
 * TrainConfig: one frozen, typed object describing a training run. Defaults <- (checkpoint on resume) <- overrides;
 * unknown keys are errors; derived values are computed once. A checkpoint carries the whole config, so `--resume`
 * needs nothing else. The options themselves (types, ranges, defaults, flags) are declared once, in options.ts.
 */
import { resolve } from 'node:path';
import { ArgumentError } from '../tensor/errors.js';
import { findOptionProblem, TRAIN_OPTION_DEFAULTS, type TrainOptions } from './options.js';

export type TrainConfig = Readonly<TrainOptions>;
export type Stage = TrainOptions['stage'];
export type Trainable = TrainOptions['trainable'];

/** Every option's default (from TRAIN_OPTIONS); data and out have none. */
export const TRAIN_DEFAULTS: Readonly<Omit<TrainConfig, 'data' | 'out'>> = TRAIN_OPTION_DEFAULTS;

function bad(key: string, msg: string, hint = ''): never {
  throw new ArgumentError('train config', key, msg, hint);
}

/**
 * Merges defaults with the given values (undefined ones count as not given), validates and freezes. Without a stage,
 * `init` implies pretraining; pretraining trains every weight unless `trainable` is given.
 */
export function makeTrainConfig(values: Record<string, unknown>): TrainConfig {
  const given = Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined));
  const p = findOptionProblem(given);
  if (p) bad(p.key, p.message, p.hint);
  const c = { ...TRAIN_DEFAULTS, ...given } as Record<string, unknown>;
  if (given.stage === undefined && given.init) c.stage = 'pretrain';
  if (typeof c.data !== 'string' || !c.data) bad('data', 'is required', 'pass --data PATH (a text file, .jsonl or folder)');
  if (typeof c.out !== 'string' || !c.out) bad('out', 'is required', 'pass --out DIR');
  if (c.stage === 'pretrain') {
    if (!c.init && !c.model) bad('init', 'is required to pretrain (or pass a MODEL to continue pretraining)', 'pass --init CONFIG.json');
  } else {
    if (!c.model) bad('model', `is required for stage ${String(c.stage)}`, 'pass the converted model as MODEL');
    if (!c.teacher) bad('teacher', `is required for stage ${String(c.stage)}`, 'pass the original model with --teacher');
  }
  // pretraining trains everything unless told otherwise (a fresh model has no recurrent subset to train)
  if (given.trainable === undefined && c.stage === 'pretrain') c.trainable = 'all';
  if (!c.cacheDir) c.cacheDir = `${c.out as string}/cache`;
  return Object.freeze(c) as unknown as TrainConfig;
}

const PATH_KEYS = ['model', 'teacher', 'init', 'tokenizer', 'data', 'cacheDir', 'out'] as const;

/** The config with every path absolute: what a checkpoint stores, so `--resume` works from any working directory. */
export function absolutePaths(cfg: TrainConfig): TrainConfig {
  const c: Record<string, unknown> = { ...cfg };
  for (const k of PATH_KEYS) if (typeof c[k] === 'string') c[k] = resolve(c[k]);
  return Object.freeze(c) as unknown as TrainConfig;
}
