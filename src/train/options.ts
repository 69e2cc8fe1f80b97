/**
 * The training options, once: each option's type and range (a zod schema), its default, and its CLI flag and help.
 * Everything else is generated from TRAIN_OPTIONS: the TrainConfig type and its validation (config.ts), the flags and
 * help of `recurformer train` (src/cli/commands/train.ts, defaults shown by commander), the `--config FILE.json` and
 * `--set KEY=VALUE` readers below, and the stage settings of the experiment recipes (scripts/experiment/recipe.ts).
 *
 * Values are typed: a CLI string is parsed by its option's kind (numbers with Number, never with parseInt's
 * leniency), a JSON value must already have the option's type ("lr": "3e-4" is an error, not a coercion).
 */
import { existsSync, readFileSync } from 'node:fs';
import { z } from 'zod';
import { ArgumentError, FormatError } from '../tensor/errors.js';

/** How the option reads on the command line. `flag: null`: it is the command's MODEL argument, not a flag. */
interface Cli {
  /** The long flag without its dashes. */
  flag: string | null;
  /** The value's name in the help (`--steps <n>`). */
  value: string;
  help: string;
  /** A default worked out at run time, shown in the help instead of the stored value. */
  defaultHelp?: string;
}

export interface TrainOptionSpec<S extends z.ZodType = z.ZodType> extends Cli {
  readonly schema: S;
  /** undefined: no default (the option is required for a fresh run: data, out). */
  readonly default: z.output<S> | undefined;
  /** How a CLI or --set string becomes a value. */
  readonly kind: 'number' | 'string';
  /** What a bad value is told, after `KEY = VALUE`: "must be an integer >= 1", "is not stream or document". */
  readonly expect: string;
  /** Where the error's hint comes from for a bad value (optional). */
  readonly hint?: string;
}

const int = (min: number, dflt: number, cli: Cli): TrainOptionSpec<z.ZodInt> =>
  ({ schema: z.int().min(min), default: dflt, kind: 'number', expect: `must be an integer >= ${min}`, ...cli });
const num = (min: number, dflt: number, cli: Cli): TrainOptionSpec<z.ZodNumber> =>
  ({ schema: z.number().min(min), default: dflt, kind: 'number', expect: `must be a number >= ${min}`, ...cli });
const oneOf = <const T extends readonly [string, ...string[]]>(values: T, dflt: T[number], cli: Cli, hint?: string) =>
  ({
    schema: z.enum(values), default: dflt, kind: 'string', ...cli, ...(hint ? { hint } : {}),
    expect: `is not ${values.length > 1 ? `${values.slice(0, -1).join(', ')} or ${values.at(-1)!}` : values[0]}`,
  }) satisfies TrainOptionSpec;
/** A path that may be absent (null). */
const optPath = (cli: Cli): TrainOptionSpec<z.ZodNullable<z.ZodString>> =>
  ({ schema: z.string().min(1).nullable(), default: null, kind: 'string', expect: 'must be a non-empty path (or null)', ...cli });
/** A path without which a fresh run cannot start. */
const reqPath = (cli: Cli): TrainOptionSpec<z.ZodString> =>
  ({ schema: z.string().min(1), default: undefined, kind: 'string', expect: 'must be a non-empty path', ...cli });

/**
 * Every training option, in the order `train --help` lists them. Keys are the names used by the library
 * (makeTrainConfig), checkpoints, `--config` files, `--set` and the recipes; flags are the CLI's.
 */
export const TRAIN_OPTIONS = {
  /** Student model path (a converted model for align/distill); null with `init` for pretraining. */
  model: optPath({ flag: null, value: 'model', help: 'the student: a converted model (align/distill) or a model to keep pretraining' }),
  /** Teacher (the original model) for align/distill. */
  teacher: optPath({ flag: 'teacher', value: 'model', help: 'the original model (align/distill)' }),
  data: reqPath({ flag: 'data', value: 'path', help: 'a text file, a .jsonl file or a folder of them' }),
  stage: oneOf(['align', 'distill', 'pretrain'], 'distill',
    { flag: 'stage', value: 's', help: 'align | distill | pretrain', defaultHelp: 'distill, or pretrain with --init' }),
  /** Pretraining: an HF config.json for a fresh model. */
  init: optPath({ flag: 'init', value: 'config', help: 'pretrain a fresh model with this HF config.json' }),
  /** The tokenizer to pretrain with (file or folder). */
  tokenizer: optPath({ flag: 'tokenizer', value: 'path', help: 'tokenizer for --init', defaultHelp: 'MODEL\'s' }),
  steps: int(1, 200, { flag: 'steps', value: 'n', help: 'optimizer steps' }),
  batch: int(1, 8, { flag: 'batch', value: 'b', help: 'sequences per micro-batch' }),
  seq: int(1, 128, { flag: 'seq', value: 't', help: 'tokens per sequence' }),
  accum: int(1, 1, { flag: 'accum', value: 'n', help: 'micro-batches per step' }),
  lr: num(0, 3e-3, { flag: 'lr', value: 'x', help: 'peak learning rate' }),
  minLrRatio: num(0, 0.1, { flag: 'min-lr', value: 'r', help: 'final learning rate as a fraction of --lr' }),
  warmup: int(0, 20, { flag: 'warmup', value: 'n', help: 'linear warmup steps' }),
  clip: num(0, 1.0, { flag: 'clip', value: 'x', help: 'global gradient-norm clip, 0 = off' }),
  weightDecay: num(0, 0.0, { flag: 'weight-decay', value: 'x', help: 'AdamW weight decay on matrices' }),
  temperature: {
    schema: z.number().gt(0), default: 1.0, kind: 'number', expect: 'must be a number > 0',
    flag: 'temperature', value: 'x', help: 'distillation temperature',
  } satisfies TrainOptionSpec,
  /** Weight of the data cross-entropy added to the distillation KL. */
  ceWeight: num(0, 0.0, { flag: 'ce-weight', value: 'x', help: 'weight of the data cross-entropy added to distillation' }),
  /** Focal weighting of the distillation KL over positions (0 = plain mean; see distillKL). */
  klFocus: num(0, 0, {
    flag: 'kl-focus', value: 'gamma',
    help: 'weight each position\'s KL by (KL / mean KL)^gamma, so the worst-imitated tokens count most (0: plain mean)',
  }),
  /** Weight of the residual-stream match added to distillation (0 = off; see hiddenLoss). */
  hiddenWeight: num(0, 0, {
    flag: 'hidden-weight', value: 'x',
    help: 'weight of the residual-stream match added to distillation: each block after the first converted one gets the teacher\'s input (relative squared error)',
  }),
  trainable: oneOf(['recurrent', 'recurrent+norms', 'all'], 'recurrent',
    { flag: 'trainable', value: 'set', help: 'recurrent | recurrent+norms | all', defaultHelp: 'recurrent; all for pretrain' }),
  evalEvery: int(0, 50, { flag: 'eval-every', value: 'n', help: 'validate every n steps, 0 = only at the ends' }),
  evalBatches: int(1, 8, { flag: 'eval-batches', value: 'n', help: 'validation batches' }),
  saveEvery: int(0, 100, { flag: 'save-every', value: 'n', help: 'checkpoint every n steps, 0 = only at the end' }),
  valFraction: {
    schema: z.number().gt(0).lt(1), default: 0.1, kind: 'number', expect: 'must be a number in (0, 1)',
    flag: 'val-fraction', value: 'f', help: 'held-out fraction at the end of the data',
  } satisfies TrainOptionSpec,
  /** Where training sequences start: anywhere in the token stream, or at document starts (src/train/data.ts). */
  packing: oneOf(['stream', 'document'], 'stream', {
    flag: 'packing', value: 'p',
    help: 'stream | document: sequences start anywhere, or at document starts so long documents are seen whole',
  }, 'document starts every sequence at a document (long-range training)'),
  textKey: {
    schema: z.string().min(1), default: 'text', kind: 'string', expect: 'must be a non-empty field name',
    flag: 'text-key', value: 'k', help: 'JSONL text field',
  } satisfies TrainOptionSpec,
  /** The token shard cache ('' = OUT/cache). */
  cacheDir: {
    schema: z.string(), default: '', kind: 'string', expect: 'must be a path',
    flag: 'cache', value: 'dir', help: 'token shard cache', defaultHelp: 'OUT/cache',
  } satisfies TrainOptionSpec,
  seed: int(0, 0, { flag: 'seed', value: 'n', help: 'data order and init seed' }),
  /**
   * Which engine trains: this project's CPU engine, or the PyTorch package in python/ (GPUs, torchrun; docs/scale.md).
   * The options, the data (the same token shards) and the folder format are the same for both.
   */
  engine: oneOf(['ts', 'torch'], 'ts', {
    flag: 'engine', value: 'e',
    help: 'ts | torch: this CPU engine, or PyTorch (python/, GPUs and torchrun; see docs/scale.md)',
  }, 'torch needs python3 with torch and numpy: pip install torch numpy'),
  out: reqPath({ flag: 'out', value: 'dir', help: 'run folder: checkpoint.bin, metrics.jsonl, report.html, model/' }),
} as const;

export type TrainOptionKey = keyof typeof TRAIN_OPTIONS;

/** The value of every training option (what makeTrainConfig returns, frozen, as TrainConfig). */
export type TrainOptions = { -readonly [K in TrainOptionKey]: z.output<(typeof TRAIN_OPTIONS)[K]['schema']> };

export const TRAIN_OPTION_KEYS = Object.keys(TRAIN_OPTIONS) as TrainOptionKey[];

export const trainOption = (key: TrainOptionKey): TrainOptionSpec => TRAIN_OPTIONS[key] as TrainOptionSpec;

/** The schema of a whole, valid set of options (unknown keys rejected). */
export const trainOptionsSchema = z.strictObject(
  Object.fromEntries(TRAIN_OPTION_KEYS.map((k) => [k, trainOption(k).schema])) as { [K in TrainOptionKey]: (typeof TRAIN_OPTIONS)[K]['schema'] },
);

/** The schema of some of the options (a --config file, a recipe stage): any subset, unknown keys rejected. */
export const partialTrainOptionsSchema = trainOptionsSchema.partial();

/** The defaults of every option that has one (all but data and out). */
export const TRAIN_OPTION_DEFAULTS = Object.freeze(Object.fromEntries(
  TRAIN_OPTION_KEYS.filter((k) => trainOption(k).default !== undefined).map((k) => [k, trainOption(k).default]),
)) as Readonly<Omit<TrainOptions, 'data' | 'out'>>;

/** The option a `--set` key names: its key, or its flag (`min-lr`, `--min-lr`); undefined when it names none. */
export function optionKeyOf(name: string): TrainOptionKey | undefined {
  if (Object.hasOwn(TRAIN_OPTIONS, name)) return name as TrainOptionKey;
  const flag = name.replace(/^--/, '');
  return TRAIN_OPTION_KEYS.find((k) => trainOption(k).flag === flag);
}

/** Edit distance, for "did you mean". */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

/** The hint for a name that is no training option: the nearest key (or the key of the flag it names), then them all. */
export function unknownOptionHint(name: string): string {
  const lower = name.toLowerCase().replace(/^--/, '');
  const byFlag = TRAIN_OPTION_KEYS.find((k) => trainOption(k).flag === lower);
  const scored = TRAIN_OPTION_KEYS.map((k) => ({ k, d: Math.min(distance(lower, k.toLowerCase()), distance(lower, trainOption(k).flag ?? k)) }))
    .sort((a, b) => a.d - b.d);
  const near = byFlag ?? (scored[0] && scored[0].d <= Math.max(2, Math.floor(lower.length / 3)) ? scored[0].k : undefined);
  return `${near ? `did you mean ${near}? ` : ''}training options: ${TRAIN_OPTION_KEYS.join(', ')}`;
}

const show = (v: unknown, json: boolean): string => (json || (typeof v !== 'string' && typeof v !== 'number') ? JSON.stringify(v) ?? String(v) : String(v));

export interface OptionProblem {
  key: string;
  /** "is not a training option", "= 1.5 must be an integer >= 1". */
  message: string;
  hint: string;
}

/**
 * The first problem with some option values (unknown key, wrong type, out of range), checked by
 * partialTrainOptionsSchema; null when there is none. `json`: show the bad value as JSON (a file's "200" is a string).
 */
export function findOptionProblem(values: Record<string, unknown>, json = false): OptionProblem | null {
  const r = partialTrainOptionsSchema.safeParse(values);
  if (r.success) return null;
  const issue = r.error.issues[0]!;
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0]!;
    return { key, message: 'is not a training option', hint: unknownOptionHint(key) };
  }
  const key = String(issue.path[0]);
  const spec = trainOption(key as TrainOptionKey);
  const v = values[key];
  const typeHint = json && typeof v === 'string' && spec.kind === 'number' ? 'write numbers without quotes' : '';
  return { key, message: `= ${show(v, json)} ${spec.expect}`, hint: spec.hint ?? typeHint };
}

/** A CLI or --set string as the option's value (numbers by Number: '' and '12abc' are not numbers). */
export function optionFromString(key: TrainOptionKey, s: string): unknown {
  if (trainOption(key).kind !== 'number') return s;
  return s.trim() === '' ? NaN : Number(s);
}

/**
 * One option given on the command line as a string: parsed by its kind and checked by its schema. `where` names it in
 * the error (`--lr`, `--set lr`).
 */
export function parseOptionString(key: TrainOptionKey, s: string, where: string): unknown {
  const v = optionFromString(key, s);
  const p = findOptionProblem({ [key]: v });
  if (p) throw new ArgumentError('train', where, `= ${s} ${trainOption(key).expect}`, p.hint);
  return v;
}

/** `--set KEY=VALUE` overrides, in order (a later one wins), as option values. Keys are option keys or flag names. */
export function parseSetOverrides(sets: readonly string[]): Partial<TrainOptions> {
  const out: Record<string, unknown> = {};
  for (const s of sets) {
    const eq = s.indexOf('=');
    if (eq <= 0) throw new ArgumentError('train', '--set', `${s} is not KEY=VALUE`, 'e.g. --set lr=3e-4 (keys are the training options: see `recurformer train --help`)');
    const name = s.slice(0, eq).trim();
    const key = optionKeyOf(name);
    if (!key) throw new ArgumentError('train', `--set ${name}`, 'is not a training option', unknownOptionHint(name));
    out[key] = parseOptionString(key, s.slice(eq + 1), `--set ${name}`);
  }
  return out as Partial<TrainOptions>;
}

/** Keys a --config file may hold besides the options: a description for its reader. */
const FILE_NOTES = ['description'] as const;

/**
 * Training options from a JSON file (`train --config FILE`): an object whose keys are option keys (as in
 * TRAIN_OPTIONS, e.g. "lr", "minLrRatio", "ceWeight") and, optionally, a "description". A missing file is an
 * ArgumentError; bad JSON, an unknown key or a bad value a FormatError naming the file and the key.
 */
export function readTrainOptionsFile(file: string): Partial<TrainOptions> {
  if (!existsSync(file)) throw new ArgumentError('train', '--config', `${file} does not exist`, 'pass a JSON file of training options');
  let raw: unknown;
  try {
    raw = JSON.parse(readFileSync(file, 'utf8'));
  } catch (e) {
    throw new FormatError(file, `is not valid JSON (${(e as Error).message})`, 'a --config file is one JSON object of training options');
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new FormatError(file, `holds ${Array.isArray(raw) ? 'an array' : JSON.stringify(raw)}, not an object of training options`,
      'e.g. {"steps": 400, "lr": 3e-4, "packing": "document"}');
  }
  const values: Record<string, unknown> = { ...raw };
  for (const k of FILE_NOTES) {
    if (k in values && typeof values[k] !== 'string') throw new FormatError(file, `${k} must be a string`, 'it is a note for readers');
    delete values[k];
  }
  const p = findOptionProblem(values, true);
  if (p) throw new FormatError(file, `option ${p.key} ${p.message}`, p.hint);
  return values as Partial<TrainOptions>;
}
