/**
 * Experiment recipes: the data files under recipes/ that say what `npm run demo` and the end-to-end experiment
 * (scripts/experiment/e2e.ts) run for a model. A recipe is one JSON object, checked by recipeSchema: the model and its
 * data, analysis, conversion budgets, the training stages and the evaluation settings. Each training stage is a set of
 * training options, checked by the same schema `recurformer train` reads (src/train/options.ts), so a recipe can only
 * name options that exist, with values of their type and range; a stage may take them from a `train --config` file
 * (`"config": "file.json"`, relative to the recipe), its own keys overriding the file's. Why each recipe is what it is (the trials behind it):
 * docs/recipes.md.
 *
 * Paths are relative to the repository root; `{out}` in a path stands for the experiment's output folder (where the
 * recipe's `prepare` step writes its data).
 */
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { z } from 'zod';
import { FormatError } from '../../src/tensor/errors.js';
import { readTrainOptionsFile, trainOption, TRAIN_OPTIONS, unknownOptionHint, type TrainOptionKey } from '../../src/train/options.js';
import { PREPARATIONS, type Preparation } from './data.js';
import { REPLACED_KINDS, type ReplacedKind } from '../../src/model/layout.js';
import { HASH_ALPHABETS, type HashAlphabet } from '../../src/eval/synthetic.js';
import { PIPELINE_KEYS, STAGE_KEYS, type ModelExperiment, type StageKey } from './pipeline.js';

/** A stage's training options: any of STAGE_KEYS, each checked by its option's schema. */
const stageShape = Object.fromEntries(STAGE_KEYS.map((k) => [k, TRAIN_OPTIONS[k].schema.optional()])) as
  { [K in StageKey]: z.ZodOptional<(typeof TRAIN_OPTIONS)[K]['schema']> };
/** `config`: a `train --config` file (relative to the recipe) whose options the stage's own keys override. */
const stageSchema = z.strictObject({ ...stageShape, config: z.string().min(1).optional() });
const budget = z.number().gt(0).lt(1);
const budgetKey = z.string().refine((s) => budget.safeParse(Number(s)).success, 'a budget in (0, 1), e.g. "0.25"');
const seeds = z.array(z.int().min(0)).min(1).refine((a) => new Set(a).size === a.length, 'seeds must be distinct');
const path = z.string().min(1);
const posInt = z.int().min(1);

export const recipeSchema = z.strictObject({
  /** What the recipe is for, and where its trials are written up. */
  description: z.string().optional(),
  /** Short name used for folders and tables. */
  name: z.string().regex(/^[A-Za-z0-9._-]+$/, 'letters, digits, ".", "_" or "-" (it names a folder)'),
  /** The data preparation that writes the recipe's {out} files (scripts/experiment/data.ts). */
  prepare: z.enum(Object.keys(PREPARATIONS) as [Preparation, ...Preparation[]]).optional(),
  model: path,
  trainData: path,
  calib: path,
  analyzeSeq: posInt,
  analyzeSamples: posInt,
  retrievalProbe: z.boolean().optional(),
  never: z.array(z.int().min(0)).optional(),
  heldout: path,
  pplCtx: posInt,
  pplStride: posInt,
  budgets: z.array(budget).min(1),
  align: stageSchema,
  distill: stageSchema,
  distillLong: stageSchema.extend({ data: path, seeds: seeds.optional(), seedsByBudget: z.record(budgetKey, seeds).optional() }).optional(),
  retrieval: z.strictObject({
    lengths: z.array(posInt).min(1), depths: z.array(z.number().min(0).max(1)).min(1), hops: z.array(posInt).min(1), samples: posInt,
    /** eval hashhop --alphabet (default letters). */
    alphabet: z.enum(HASH_ALPHABETS as [HashAlphabet, ...HashAlphabet[]]).optional(),
  }),
  /** Kinds of replaced group converted to at every budget (default ["recurrent"]). */
  headKinds: z.array(z.enum(REPLACED_KINDS as [ReplacedKind, ...ReplacedKind[]])).min(1).refine((a) => new Set(a).size === a.length, 'kinds must be distinct').optional(),
  headWindow: posInt.optional(),
  headSinks: z.int().min(0).optional(),
  /** Train the original through the same distillation stages: the control of every perplexity change. */
  control: z.boolean().optional(),
  /**
   * Trained checkpoints evaluated instead of training (unless --train): `control`, `<budget %>` (recurrent) and
   * `<budget %>-rw` (recurrent+window) -> a model folder.
   */
  trained: z.record(z.string().regex(/^(control|\d+(-rw)?)$/, '"control", a budget in percent ("75") or one with -rw ("75-rw")'), path).optional(),
  tasks: z.array(z.enum(['ppl', 'passkey', 'hashhop', 'needle', 'agree', 'cost'])).min(1).optional(),
  decodeAt: posInt,
  /** eval cost --lengths: where the table's cache column is read (its last length). */
  costLengths: z.array(posInt).min(1).optional(),
  seed: z.int().min(0),
});

export type Recipe = z.infer<typeof recipeSchema>;

const STAGES = new Set(['align', 'distill', 'distillLong']);

/** A zod issue as a FormatError naming the file and the key; a training option's problem in that option's words. */
function recipeError(file: string, raw: unknown, issue: z.core.$ZodIssue): FormatError {
  const at = issue.path.map(String);
  const inStage = at.length >= 1 && STAGES.has(at[0]!);
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0]!;
    const where = [...at, key].join('.');
    return inStage && !(TRAIN_OPTIONS as Record<string, unknown>)[key]
      ? new FormatError(file, `${where} is not a training option`, unknownOptionHint(key))
      : new FormatError(file, `${where} is not a recipe key here`, inStage
        ? `a stage sets training options other than ${PIPELINE_KEYS.join(', ')}, which the pipeline sets`
        : `recipe keys: ${Object.keys(recipeSchema.shape).join(', ')}`);
  }
  if (issue.code === 'invalid_key') {
    return new FormatError(file, `${at.slice(0, -1).join('.')} has the key ${JSON.stringify(at.at(-1))}: a key is ${issue.issues[0]?.message ?? issue.message}`,
      'docs/recipes.md says what a recipe holds');
  }
  let v: unknown = raw;
  for (const k of at) v = v !== null && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined;
  const key = at[1];
  if (inStage && at.length === 2 && key && Object.hasOwn(TRAIN_OPTIONS, key)) {
    return new FormatError(file, `${at.join('.')} = ${JSON.stringify(v)} ${trainOption(key as TrainOptionKey).expect}`, trainOption(key as TrainOptionKey).hint ?? '');
  }
  const where = at.join('.') || '(top level)';
  return new FormatError(file, v === undefined ? `${where} is missing` : `${where} = ${JSON.stringify(v)}: ${issue.message}`,
    'docs/recipes.md says what a recipe holds');
}

/** Parses and checks a recipe (its text); a problem is a FormatError naming `file` and the key. */
export function parseRecipe(text: string, file: string): Recipe {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new FormatError(file, `is not valid JSON (${(e as Error).message})`, 'a recipe is one JSON object');
  }
  const r = recipeSchema.safeParse(raw);
  if (!r.success) throw recipeError(file, raw, r.error.issues[0]!);
  return r.data;
}

/** Every `{out}` in the recipe's strings replaced by `out`. */
function withOut<T>(v: T, out: string): T {
  if (typeof v === 'string') return (v.startsWith('{out}/') ? join(out, v.slice(6)) : v.replaceAll('{out}', out)) as T;
  if (Array.isArray(v)) return v.map((x: unknown) => withOut(x, out)) as T;
  if (v !== null && typeof v === 'object') return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, withOut(x, out)])) as T;
  return v;
}

type Stage = Recipe['align'];

/** A stage with its `config` file read: the file's options (checked as `train --config` checks them), then its own keys. */
function resolveStage<S extends Stage>(stage: S, recipeFile: string, name: string): Omit<S, 'config'> {
  const { config, ...own } = stage;
  if (config === undefined) return own;
  const file = join(dirname(recipeFile), config);
  const fromFile = readTrainOptionsFile(file);
  const pipelines = Object.keys(fromFile).find((k) => !(STAGE_KEYS as string[]).includes(k));
  if (pipelines) {
    throw new FormatError(file, `option ${pipelines} is set by the pipeline, not by a stage`,
      `${recipeFile} uses this file for its ${name} stage: remove ${pipelines} from it`);
  }
  return { ...fromFile, ...own };
}

/** A recipe file as the pipeline's experiment, its paths under `out`; `prepare` names the data preparation to run. */
export function loadRecipe(file: string, out: string): ModelExperiment & { prepare?: Preparation } {
  const { description: _d, ...recipe } = parseRecipe(readFileSync(file, 'utf8'), file);
  const resolved = {
    ...recipe, align: resolveStage(recipe.align, file, 'align'), distill: resolveStage(recipe.distill, file, 'distill'),
    ...(recipe.distillLong ? { distillLong: resolveStage(recipe.distillLong, file, 'distillLong') } : {}),
  };
  return withOut(resolved, out);
}
