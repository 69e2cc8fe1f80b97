/**
 * TrainConfig: one frozen, typed object describing a training run. Defaults <- (checkpoint on resume) <- overrides;
 * unknown keys are errors; derived values are computed once. A checkpoint carries the whole config, so `--resume`
 * needs nothing else.
 */
import { resolve } from 'node:path';
import { ArgumentError } from '../tensor/errors.js';
import type { Packing } from './data.js';

export type Stage = 'align' | 'distill' | 'pretrain';
export type Trainable = 'recurrent' | 'recurrent+norms' | 'all';

export interface TrainConfig {
  readonly stage: Stage;
  /** Student model path (a converted model for align/distill); null with `init` for pretraining. */
  readonly model: string | null;
  /** Teacher (the original model) for align/distill. */
  readonly teacher: string | null;
  /** Pretraining: an HF config.json for a fresh model, and the tokenizer to use (file or folder). */
  readonly init: string | null;
  readonly tokenizer: string | null;
  readonly data: string;
  readonly textKey: string;
  readonly cacheDir: string;
  readonly valFraction: number;
  /** Where training sequences start: anywhere in the token stream, or at document starts (src/train/data.ts). */
  readonly packing: Packing;
  readonly steps: number;
  readonly batch: number;
  readonly seq: number;
  readonly accum: number;
  readonly lr: number;
  readonly minLrRatio: number;
  readonly warmup: number;
  readonly weightDecay: number;
  readonly clip: number;
  readonly temperature: number;
  /** Weight of the data cross-entropy added to the distillation KL. */
  readonly ceWeight: number;
  /** Focal weighting of the distillation KL over positions (0 = plain mean; see distillKL). */
  readonly klFocus: number;
  /** Weight of the residual-stream match added to distillation (0 = off; see hiddenLoss). */
  readonly hiddenWeight: number;
  readonly trainable: Trainable;
  readonly evalEvery: number;
  readonly evalBatches: number;
  readonly saveEvery: number;
  readonly seed: number;
  readonly out: string;
}

export const TRAIN_DEFAULTS: Omit<TrainConfig, 'data' | 'out'> = {
  stage: 'distill', model: null, teacher: null, init: null, tokenizer: null, textKey: 'text', cacheDir: '',
  valFraction: 0.1, packing: 'stream', steps: 200, batch: 8, seq: 128, accum: 1, lr: 3e-3, minLrRatio: 0.1, warmup: 20,
  weightDecay: 0.0, clip: 1.0, temperature: 1.0, ceWeight: 0.0, klFocus: 0, hiddenWeight: 0, trainable: 'recurrent', evalEvery: 50, evalBatches: 8,
  saveEvery: 100, seed: 0,
};

const KEYS = new Set<string>([...Object.keys(TRAIN_DEFAULTS), 'data', 'out']);

function bad(key: string, msg: string, hint = ''): never {
  throw new ArgumentError('train config', key, msg, hint);
}

/** Merges defaults with the given values, validates and freezes. */
export function makeTrainConfig(values: Record<string, unknown>): TrainConfig {
  for (const k of Object.keys(values)) {
    if (!KEYS.has(k)) bad(k, 'is not a training option', `known options: ${[...KEYS].join(', ')}`);
  }
  const c = { ...TRAIN_DEFAULTS, ...Object.fromEntries(Object.entries(values).filter(([, v]) => v !== undefined)) } as Record<string, unknown>;
  if (typeof c.data !== 'string' || !c.data) bad('data', 'is required', 'pass --data PATH (a text file, .jsonl or folder)');
  if (typeof c.out !== 'string' || !c.out) bad('out', 'is required', 'pass --out DIR');
  if (!['align', 'distill', 'pretrain'].includes(c.stage as string)) bad('stage', `= ${String(c.stage)} is not align, distill or pretrain`);
  if (!['recurrent', 'recurrent+norms', 'all'].includes(c.trainable as string)) {
    bad('trainable', `= ${String(c.trainable)} is not recurrent, recurrent+norms or all`);
  }
  if (!['stream', 'document'].includes(c.packing as string)) {
    bad('packing', `= ${String(c.packing)} is not stream or document`, 'document starts every sequence at a document (long-range training)');
  }
  const posInt = ['steps', 'batch', 'seq', 'accum', 'evalBatches'];
  for (const k of posInt) if (!(Number.isInteger(c[k]) && (c[k] as number) >= 1)) bad(k, `= ${String(c[k])} must be an integer >= 1`);
  for (const k of ['warmup', 'evalEvery', 'saveEvery', 'seed']) {
    if (!(Number.isInteger(c[k]) && (c[k] as number) >= 0)) bad(k, `= ${String(c[k])} must be an integer >= 0`);
  }
  for (const k of ['lr', 'weightDecay', 'clip', 'ceWeight', 'klFocus', 'hiddenWeight', 'minLrRatio']) {
    if (!(typeof c[k] === 'number' && Number.isFinite(c[k]) && (c[k] as number) >= 0)) bad(k, `= ${String(c[k])} must be a number >= 0`);
  }
  if (!(typeof c.temperature === 'number' && c.temperature > 0)) bad('temperature', `= ${String(c.temperature)} must be > 0`);
  if (!(typeof c.valFraction === 'number' && c.valFraction > 0 && c.valFraction < 1)) bad('valFraction', `= ${String(c.valFraction)} must be in (0, 1)`);
  if (c.stage === 'pretrain') {
    if (!c.init && !c.model) bad('init', 'is required to pretrain (or pass a MODEL to continue pretraining)', 'pass --init CONFIG.json');
  } else {
    if (!c.model) bad('model', `is required for stage ${String(c.stage)}`, 'pass the converted model as MODEL');
    if (!c.teacher) bad('teacher', `is required for stage ${String(c.stage)}`, 'pass the original model with --teacher');
  }
  // pretraining trains everything unless told otherwise (a fresh model has no recurrent subset to train)
  if (values.trainable === undefined && c.stage === 'pretrain') c.trainable = 'all';
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
