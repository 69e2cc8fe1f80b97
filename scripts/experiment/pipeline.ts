/**
 * The RecurFormer experiment as a sequence of CLI steps, shared by `npm run demo` (stories260K, one budget, brief
 * training) and the end-to-end script (scripts/experiment/e2e.ts: both models, three budgets); what runs for a model
 * is its recipe (recipes/*.json, read by scripts/experiment/recipe.ts, written up in docs/recipes.md):
 *
 *   analyze -> convert at each budget -> align + distill -> every eval task on the original, each converted model
 *   and both baselines sized to the converted model's cache (--equal-cache) -> records -> table and report.
 *
 * Every step runs `recurformer` in this process (src/cli/main.ts) and writes its output under OUT; a step whose
 * output already exists is skipped, so an interrupted run resumes where it stopped (`--force` redoes everything).
 * OUT/steps.json records each step's command and the modification time and size of every input path it names
 * (models, data, the previous stage's output). A step whose command or inputs changed since then runs again, and
 * so, through their inputs, do the steps after it. Outputs without a record (written before records existed) are
 * kept and recorded. A training stage that was interrupted (its checkpoint.bin written, its model not) continues
 * exactly where it stopped (`recurformer train --resume`) if OUT/started.json says it was started with the same
 * command and inputs; otherwise it starts again from scratch.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join, sep } from 'node:path';
import { writeFileAtomic } from '../../src/io/tensor-file.js';
import { main } from '../../src/cli/main.js';
import type { EvalRecord } from '../../src/eval/record.js';
import type { ReplacedKind } from '../../src/model/layout.js';
import { CONTROL_LABEL } from '../../src/eval/summary.js';
import type { HashAlphabet } from '../../src/eval/synthetic.js';
import { TRAIN_OPTION_DEFAULTS, TRAIN_OPTION_KEYS, trainOption, type TrainOptionKey, type TrainOptions } from '../../src/train/options.js';

/** The training options the pipeline sets itself: the models, the data, the stage, the seed, the cache, the run folder. */
export const PIPELINE_KEYS = ['model', 'teacher', 'init', 'tokenizer', 'data', 'stage', 'seed', 'cacheDir', 'out'] as const satisfies readonly TrainOptionKey[];
export type StageKey = Exclude<TrainOptionKey, (typeof PIPELINE_KEYS)[number]>;
/** The keys a recipe's training stage may set: every other training option (src/train/options.ts). */
export const STAGE_KEYS = TRAIN_OPTION_KEYS.filter((k): k is StageKey => !(PIPELINE_KEYS as readonly string[]).includes(k));

/** A training stage's settings: any training options of STAGE_KEYS; the ones it leaves out take the schema's defaults. */
export type TrainSettings = Partial<Pick<TrainOptions, StageKey>>;

/**
 * What the pipeline gives every stage unless its settings say otherwise: validation only at the ends (every `steps`),
 * on 4 batches, and a checkpoint only at the end.
 */
export const pipelineStageDefaults = (t: TrainSettings): Pick<TrainOptions, 'evalEvery' | 'evalBatches' | 'saveEvery'> =>
  ({ evalEvery: t.steps ?? TRAIN_OPTION_DEFAULTS.steps, evalBatches: 4, saveEvery: 0 });

/**
 * The training options a stage trains with: the schema's defaults < the pipeline's (pipelineStageDefaults) < its
 * settings (other keys of `t`, such as a further stage's data and seeds, are not training options of the stage).
 */
export function stageOptions(t: TrainSettings): Pick<TrainOptions, StageKey> {
  const defaults = Object.fromEntries(STAGE_KEYS.map((k) => [k, TRAIN_OPTION_DEFAULTS[k]])) as Pick<TrainOptions, StageKey>;
  const own = Object.fromEntries(STAGE_KEYS.filter((k) => t[k] !== undefined).map((k) => [k, t[k]]));
  return { ...defaults, ...pipelineStageDefaults(t), ...own };
}

export interface RetrievalSettings {
  lengths: number[];
  depths: number[];
  hops: number[];
  samples: number;
  /** What hashhop's hashes are made of (default letters). */
  alphabet?: HashAlphabet;
}

export interface ModelExperiment {
  /** Short name used for folders and tables. */
  name: string;
  /** The original model. */
  model: string;
  /** Text (or JSONL) the converted model trains on. */
  trainData: string;
  /** Calibration text for analysis and the conversion's output-scale fit. */
  calib: string;
  analyzeSeq: number;
  analyzeSamples: number;
  /** Run analyze --retrieval-probe, so the plans keep the groups retrieval needs (a model that retrieves). */
  retrievalProbe?: boolean;
  /** Layers the plans never replace (convert --never). */
  never?: number[];
  /** Held-out text for perplexity and agreement. */
  heldout: string;
  pplCtx: number;
  pplStride: number;
  budgets: number[];
  align: TrainSettings;
  distill: TrainSettings;
  /**
   * A second distillation stage on other data (long documents), continuing from the first; with `seeds`, one such
   * stage per seed (its data order), each continuing the one before (default: the experiment's seed, one stage).
   * `seedsByBudget` gives some budgets other seeds (keys are budgets, e.g. 0.25).
   */
  distillLong?: TrainSettings & { data: string; seeds?: number[]; seedsByBudget?: Record<number, number[]> };
  retrieval: RetrievalSettings;
  /**
   * Kinds of replaced group to convert to at every budget (default ['recurrent']); each kind gets its own conversion
   * and training under the same plan, data and seeds (recurrent+window folders end in `-rw`).
   */
  headKinds?: ReplacedKind[];
  /** recurrent+window: its exact window (convert --head-window / --head-sinks; default convert's). */
  headWindow?: number;
  headSinks?: number;
  /**
   * Train the original model through the same distillation stages (same data, steps, seeds, objective; the teacher is
   * itself): the control every perplexity change is measured against. Only when a stage trains more than recurrent
   * tensors: otherwise the original is unchanged by them and is its own control.
   */
  control?: boolean;
  /**
   * Trained checkpoints to evaluate instead of training them (unless RunOptions.train): keys `control`, `<budget %>`
   * (the recurrent kind, e.g. `75`) and `<budget %>-rw` (recurrent+window), as the stage folders are named. Each must
   * have been converted under the plan this run's conversion makes (its config.json's `recurformer` section equal).
   */
  trained?: Record<string, string>;
  /** Tasks to run (default all). */
  tasks?: readonly ('ppl' | 'passkey' | 'hashhop' | 'needle' | 'agree' | 'cost')[];
  /** Decode position for the cost task. */
  decodeAt: number;
  /** Lengths at which the cost task gives cache bytes (eval cost --lengths; default its own, up to 16384). */
  costLengths?: number[];
  seed: number;
}

export interface RunOptions {
  out: string;
  force?: boolean;
  /** Train every stage even where the experiment names a trained checkpoint (`trained`). */
  train?: boolean;
  log?: (line: string) => void;
}

/** One evaluated configuration: a model with a memory, labelled for the tables. */
export interface Config {
  label: string;
  kind: 'original' | 'control' | 'converted' | 'recurformer' | 'streaming' | 'streaming-heads';
  budget: number | null;
  model: string;
  memory: 'full' | 'streaming' | 'streaming-heads';
  equalCache: string | null;
}

export const pct = (b: number): string => `${Math.round(b * 100)}%`;

/** A kind's tag at a budget: its folders are conv<tag>, align<tag>, ...; it keys its trained checkpoint (`75`, `75-rw`). */
export const stageKey = (b: number, kind: ReplacedKind): string => `${Math.round(b * 100)}${kind === 'recurrent+window' ? '-rw' : ''}`;

/** The kinds an experiment converts to at every budget (default: recurrent only). */
const kindsOf = (x: ModelExperiment): ReplacedKind[] => x.headKinds ?? ['recurrent'];

/** The keys `trained` may give for this experiment: `control` (if it trains one) and each budget's kinds. */
export const trainedKeys = (x: ModelExperiment): string[] =>
  [...(x.control ? ['control'] : []), ...x.budgets.flatMap((b) => kindsOf(x).map((k) => stageKey(b, k)))];

/**
 * The experiment with only `budgets` (and `kinds`) kept, each of which it must have, and `trained` narrowed to what
 * is left: a part of a long trial at a time (`--budgets`, `--kinds`). `what` names the recipe in errors.
 */
export function narrowExperiment<X extends ModelExperiment>(x: X, what: string, budgets?: number[], kinds?: ReplacedKind[]): X {
  const subset = <T>(flag: string, want: T[] | undefined, have: readonly T[]): T[] => {
    if (want === undefined) return [...have];
    const missing = want.filter((v) => !have.includes(v));
    if (missing.length > 0) throw new Error(`${flag} ${want.join(',')}: ${what} has no ${missing.join(', ')} (it has ${have.join(', ')})`);
    return want;
  };
  const y = { ...x, budgets: subset('--budgets', budgets, x.budgets) };
  if (kinds !== undefined || x.headKinds !== undefined) y.headKinds = subset('--kinds', kinds, kindsOf(x));
  if (x.trained) {
    const keep = new Set(trainedKeys(y));
    y.trained = Object.fromEntries(Object.entries(x.trained).filter(([k]) => keep.has(k)));
  }
  return y;
}

type Spec = Record<string, unknown> | undefined;
const specOf = (dir: string): Spec => (JSON.parse(readFileSync(join(dir, 'config.json'), 'utf8')) as { recurformer?: Spec }).recurformer;

/**
 * The trained checkpoint `dir` named by the experiment's `trained[key]`, checked: it exists and, when `conv` is given,
 * was converted under the same plan (its `recurformer` section equals that of this run's conversion `conv`; for the
 * control: it has none).
 */
function trainedCheckpoint(x: ModelExperiment, key: string, conv: string | null): string {
  const dir = x.trained![key]!;
  const retrain = 'train it instead with --train (npm run demo -- --train)';
  if (!existsSync(join(dir, 'config.json'))) {
    throw new Error(`${x.name}: the trained checkpoint ${dir} (trained.${key}) has no config.json; ${retrain}`);
  }
  const want = conv === null ? undefined : specOf(conv), have = specOf(dir);
  if (JSON.stringify(have) !== JSON.stringify(want)) {
    throw new Error(`${x.name}: the trained checkpoint ${dir} (trained.${key}) was not converted under this run's plan ` +
      `(${conv === null ? 'the control is the original model, with no recurrent groups' : `${conv}/config.json's recurformer section differs`}): ` +
      `the analysis, the conversion or the recipe changed since it was trained; ${retrain}`);
  }
  return dir;
}

async function run(args: string[], log: (s: string) => void): Promise<void> {
  log(`$ recurformer ${args.join(' ')}`);
  const code = await main(args);
  if (code !== 0) throw new Error(`recurformer ${args[0]} failed with exit code ${code}: recurformer ${args.join(' ')}`);
}

/** What OUT/steps.json keeps per step output: the command, and [mtime ms, size] of each input path it names. */
interface StepRecord {
  command: string[];
  inputs: Record<string, [number, number]>;
}

const registryPath = (o: RunOptions): string => join(o.out, 'steps.json');

/** The step records in file `p` ({} if there is none); a file that is not JSON is an error, or {} if `lenient`. */
function readRecords(p: string, lenient = false): Record<string, StepRecord> {
  if (!existsSync(p)) return {};
  try {
    return JSON.parse(readFileSync(p, 'utf8')) as Record<string, StepRecord>;
  } catch (e) {
    if (lenient) return {};
    throw new Error(`${p} is not valid JSON (${(e as Error).message}); delete it to record every step afresh`, { cause: e });
  }
}

const readRegistry = (o: RunOptions): Record<string, StepRecord> => readRecords(registryPath(o));

/** Values that name no input: outputs, and the token cache (it grows as later stages add their data). */
const NOT_INPUTS = new Set(['--out', '--cache']);

/** The existing paths among `command`'s arguments, except the step's own outputs, with their mtime and size. */
function inputsOf(command: readonly string[], outputs: readonly string[]): Record<string, [number, number]> {
  const own = (a: string): boolean => outputs.some((out) => a === out || a.startsWith(out + sep) || out.startsWith(a + sep));
  const inputs: Record<string, [number, number]> = {};
  for (const [i, a] of command.entries()) {
    if (a.startsWith('-') || (i > 0 && NOT_INPUTS.has(command[i - 1]!)) || own(a) || !existsSync(a)) continue;
    const st = statSync(a);
    inputs[a] = [st.mtimeMs, st.size];
  }
  return inputs;
}

/** A command as compared with its record: convert's deprecated `--calib` (recorded by earlier runs) is its `--data`. */
const canonical = (c: readonly string[]): readonly string[] => (c[0] === 'convert' ? c.map((a) => (a === '--calib' ? '--data' : a)) : c);

/** Why a recorded step must run again ('' if it need not). */
function staleReason(rec: StepRecord, command: readonly string[], outputs: readonly string[]): string {
  if (JSON.stringify(canonical(rec.command)) !== JSON.stringify(canonical(command))) return 'its command changed';
  const now = inputsOf(command, outputs);
  for (const [path, was] of Object.entries(rec.inputs)) {
    const is = now[path];
    if (!is || is[0] !== was[0] || is[1] !== was[1]) return `${path} changed`;
  }
  return '';
}

const startedPath = (o: RunOptions): string => join(o.out, 'started.json');

/** OUT/started.json: the command each training stage folder was last started with (unreadable: resume nothing). */
const readStarted = (o: RunOptions): Record<string, StepRecord> => readRecords(startedPath(o), true);

/**
 * Runs a training `command` writing into `out`: resumes the run in `out` when it was interrupted after a checkpoint
 * and was started with this same command and inputs, else starts it afresh (recording what it started).
 */
async function runTrainStage(out: string, done: string, o: RunOptions, command: readonly string[], log: (s: string) => void): Promise<void> {
  const all = readStarted(o), started = all[out];
  if (started && existsSync(join(out, 'checkpoint.bin')) && !staleReason(started, command, [done, out])) {
    log(`- ${out} was interrupted: resuming it from its checkpoint`);
    await run(['train', '--resume', out], log);
    return;
  }
  rmSync(out, { recursive: true, force: true });
  all[out] = { command: [...command], inputs: inputsOf(command, [done, out]) };
  mkdirSync(o.out, { recursive: true });
  writeFileAtomic(startedPath(o), new TextEncoder().encode(`${JSON.stringify(all, null, 1)}\n`));
  await run([...command], log);
}

/**
 * Runs `fn` (which runs `command`, writing `done` and the paths after --out) unless `done` exists with the same
 * command and unchanged inputs (or --force), then records the step in OUT/steps.json.
 */
async function step(done: string, o: RunOptions, command: readonly string[], fn: () => Promise<void>): Promise<void> {
  const outIdx = command.indexOf('--out');
  const outputs = [done, ...(outIdx >= 0 && command[outIdx + 1] ? [command[outIdx + 1]!] : [])];
  const record = (): void => {
    const reg = readRegistry(o);
    reg[done] = { command: [...command], inputs: inputsOf(command, outputs) };
    mkdirSync(o.out, { recursive: true });
    writeFileAtomic(registryPath(o), new TextEncoder().encode(`${JSON.stringify(reg, null, 1)}\n`));
  };
  if (existsSync(done) && !o.force) {
    const rec = readRegistry(o)[done];
    const why = rec ? staleReason(rec, command, outputs) : '';
    if (!why) {
      if (!rec) record();
      o.log?.(`- ${done} exists, skipped`);
      return;
    }
    o.log?.(`- ${done} exists but ${why}: running again`);
  }
  await fn();
  record();
}

/**
 * The flags of a stage's settings. The first keys keep the order the pipeline always wrote them in (steps.json
 * compares commands, so an unchanged recipe keeps its recorded steps); any others follow in the schema's order. Then
 * the pipeline's own settings, unless the stage overrides them.
 */
const FLAG_ORDER: readonly StageKey[] = [...new Set<StageKey>(['steps', 'batch', 'seq', 'lr', 'warmup', 'trainable', 'packing', 'ceWeight', 'hiddenWeight',
  ...STAGE_KEYS])];
export function trainArgs(t: TrainSettings): string[] {
  const flag = (k: StageKey, v: unknown): string[] => [`--${trainOption(k).flag!}`, String(v)];
  const own = pipelineStageDefaults(t);
  return [...FLAG_ORDER.filter((k) => t[k] !== undefined && !(k in own)).flatMap((k) => flag(k, t[k])),
    ...(Object.keys(own) as (keyof typeof own)[]).flatMap((k) => flag(k, t[k] ?? own[k]))];
}

/** `recurformer analyze` into DIR (DIR/analysis.json, DIR/report.html) unless it was done. */
export async function analyze(model: string, data: string, samples: number, seq: number, seed: number, dir: string, o: RunOptions,
  probe = false): Promise<string> {
  const file = join(dir, 'analysis.json');
  const command = ['analyze', model, '--data', data, '--samples', String(samples), '--seq', String(seq),
    '--seed', String(seed), ...(probe ? ['--retrieval-probe'] : []), '--out', dir];
  await step(file, o, command, () => run(command, o.log ?? ((s: string) => process.stderr.write(`${s}\n`))));
  return file;
}

/** Analyze, convert and train at every budget; returns the configurations to evaluate. */
export async function prepare(x: ModelExperiment, o: RunOptions): Promise<Config[]> {
  const log = o.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  const dir = join(o.out, x.name);
  mkdirSync(dir, { recursive: true });
  const an = join(dir, 'analysis');
  await analyze(x.model, x.calib, x.analyzeSamples, x.analyzeSeq, x.seed, an, o, x.retrievalProbe ?? false);
  const configs: Config[] = [{ label: 'original', kind: 'original', budget: null, model: x.model, memory: 'full', equalCache: null }];
  const cache = join(dir, 'token-cache');
  /** One `recurformer train` stage into OUT unless its model exists; returns OUT/model. */
  const trainOne = async (student: string, data: string, stage: 'align' | 'distill', t: TrainSettings, out: string,
    seed = x.seed): Promise<string> => {
    const command = ['train', student, '--teacher', x.model, '--data', data, '--stage', stage, ...trainArgs(t),
      '--seed', String(seed), '--cache', cache, '--out', out];
    const done = join(out, 'model', 'config.json');
    await step(done, o, command, () => runTrainStage(out, done, o, command, log));
    return join(out, 'model');
  };
  /**
   * Whether a distillation stage can change the original distilled from itself: only if it trains every weight (the
   * original has no recurrent tensors) with cross-entropy or weight decay (the KL to itself has zero gradient).
   */
  const movesOriginal = (t: TrainSettings): boolean =>
    (t.trainable ?? TRAIN_OPTION_DEFAULTS.trainable) === 'all' && ((t.ceWeight ?? 0) > 0 || (t.weightDecay ?? 0) > 0);
  /**
   * The distillation stages after `first` (distill, then distillLong once per seed), each continuing the last, in
   * folders named with `tag` (stageKey's, or `-control`). For the control (the original, its own teacher; budget
   * null) a stage that cannot change it is skipped.
   */
  const distillStages = async (first: string, b: number | null, tag: string): Promise<string> => {
    const control = b === null;
    const trainStage = async (student: string, data: string, stage: 'align' | 'distill', t: TrainSettings, out: string, seed = x.seed): Promise<string> => {
      if (control && !movesOriginal(t)) {
        log(`- ${out}: skipped (it cannot change the original distilled from itself)`);
        return student;
      }
      return trainOne(student, data, stage, t, out, seed);
    };
    let trained = await trainStage(first, x.trainData, 'distill', x.distill, join(dir, `distill${tag}`));
    // a second distillation stage on other data continues the first
    // (more stages continue it, one per further seed: distill-long50-s2, ...)
    if (x.distillLong) {
      const { data, seedsByBudget = {} } = x.distillLong;
      const own = b === null ? undefined : seedsByBudget[b];
      const seeds = own ?? x.distillLong.seeds ?? [x.seed];
      if (seeds.length === 0 || new Set(seeds).size !== seeds.length) {
        const field = own ? `distillLong.seedsByBudget[${b}]` : 'distillLong.seeds';
        throw new Error(`${x.name}: ${field} [${seeds.join(', ')}] must be non-empty and distinct (one stage folder per seed)`);
      }
      for (const [k, seed] of seeds.entries()) {
        trained = await trainStage(trained, data, 'distill', x.distillLong, join(dir, `distill-long${tag}${k ? `-s${seed}` : ''}`), seed);
      }
    }
    return trained;
  };
  const kinds = kindsOf(x);
  const keys = trainedKeys(x);
  // the trained checkpoints this run evaluates instead of training them
  const bad = Object.keys(x.trained ?? {}).find((k) => !keys.includes(k));
  if (bad !== undefined) throw new Error(`${x.name}: trained.${bad} names no configuration this run trains (its keys: ${keys.join(', ')})`);
  const shipped = (key: string): boolean => !o.train && x.trained?.[key] !== undefined;
  const useTrained = (key: string, conv: string | null): string => {
    const dir = trainedCheckpoint(x, key, conv);
    log(`- ${dir}: the trained checkpoint (trained.${key}), not trained again (--train trains it)`);
    return dir;
  };
  if (x.control) {
    // the original through the same distillation stages, as its own teacher (the default seeds: the longest path)
    if (shipped('control')) {
      configs.push({ label: CONTROL_LABEL, kind: 'control', budget: null, model: useTrained('control', null), memory: 'full', equalCache: null });
    } else if ([x.distill, ...(x.distillLong ? [x.distillLong] : [])].some(movesOriginal)) {
      configs.push({ label: CONTROL_LABEL, kind: 'control', budget: null, model: await distillStages(x.model, null, '-control'), memory: 'full', equalCache: null });
    } else {
      log(`- ${x.name}: no distillation stage changes the original (recurrent tensors only, or no cross-entropy and no weight decay), so it is its own control`);
    }
  }
  for (const b of x.budgets) {
    const convs: string[] = [];
    for (const kind of kinds) {
      const rw = kind === 'recurrent+window', key = stageKey(b, kind);
      const conv = join(dir, `conv${key}`);
      const convert = ['convert', x.model, '--analysis', join(an, 'analysis.json'), '--budget', String(b), '--data', x.calib,
        ...(x.never?.length ? ['--never', x.never.join(',')] : []),
        ...(rw ? ['--head-kind', kind, ...(x.headWindow ? ['--head-window', String(x.headWindow)] : []), ...(x.headSinks !== undefined ? ['--head-sinks', String(x.headSinks)] : [])] : []),
        '--out', conv];
      await step(join(conv, 'config.json'), o, convert, () => run(convert, log));
      convs.push(conv);
      const trained = shipped(key) ? useTrained(key, conv)
        : await distillStages(await trainOne(conv, x.trainData, 'align', x.align, join(dir, `align${key}`)), b, key);
      const name = rw ? `recurrent+window ${pct(b)}` : `RecurFormer ${pct(b)}`;
      configs.push(
        { label: `converted ${pct(b)}${rw ? ' recurrent+window' : ''} (untrained)`, kind: 'converted', budget: b, model: conv, memory: 'full', equalCache: null },
        { label: name, kind: 'recurformer', budget: b, model: trained, memory: 'full', equalCache: null },
      );
    }
    // the baselines hold no more than the largest of the conversions (a recurrent+window group also keeps its window)
    const equal = convs[kinds.indexOf('recurrent+window')] ?? convs[0]!;
    configs.push(
      { label: `StreamingLLM @${pct(b)}`, kind: 'streaming', budget: b, model: x.model, memory: 'streaming', equalCache: equal },
      { label: `streaming heads @${pct(b)}`, kind: 'streaming-heads', budget: b, model: x.model, memory: 'streaming-heads', equalCache: equal },
    );
  }
  return configs;
}

const slug = (label: string): string => label.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');

export interface Evaluated {
  records: EvalRecord[];
  /** The record files, in the same order. */
  files: string[];
}

/** Runs every task on every configuration (skipping records already written); returns all records. */
export async function evaluate(x: ModelExperiment, configs: Config[], o: RunOptions): Promise<Evaluated> {
  const log = o.log ?? ((s: string) => process.stderr.write(`${s}\n`));
  const dir = join(o.out, x.name, 'evals');
  mkdirSync(dir, { recursive: true });
  const tasks = x.tasks ?? ['ppl', 'passkey', 'hashhop', 'needle', 'agree', 'cost'];
  const records: EvalRecord[] = [];
  const files: string[] = [];
  const r = x.retrieval;
  for (const c of configs) {
    const mem = ['--memory', c.memory, ...(c.equalCache ? ['--equal-cache', c.equalCache] : []), '--label', c.label];
    for (const task of tasks) {
      // the untrained conversion only shows how much training recovers: perplexity and agreement
      if (c.kind === 'converted' && task !== 'ppl' && task !== 'agree') continue;
      if (c.kind === 'original' && task === 'agree') continue;
      if (c.kind === 'control' && task === 'cost') continue; // the original's cost
      const file = join(dir, `${task}-${slug(c.label)}.json`);
      const seed = ['--seed', String(x.seed)];
      const args: Record<string, string[]> = {
        ppl: ['--data', x.heldout, '--ctx', String(x.pplCtx), '--stride', String(x.pplStride)],
        passkey: ['--lengths', r.lengths.join(','), '--depths', r.depths.join(','), '--samples', String(r.samples), ...seed],
        hashhop: ['--lengths', r.lengths.join(','), '--hops', r.hops.join(','), '--samples', String(r.samples), ...seed,
          ...(r.alphabet ? ['--alphabet', r.alphabet] : [])],
        needle: ['--lengths', r.lengths.join(','), '--depths', r.depths.join(','), '--samples', String(r.samples), ...seed],
        agree: ['--teacher', x.model, '--data', x.heldout, '--ctx', String(x.pplCtx)],
        cost: ['--decode-at', String(x.decodeAt), ...(x.costLengths ? ['--lengths', x.costLengths.join(',')] : [])],
      };
      const command = ['eval', task, c.model, ...args[task]!, ...mem, '--out', file];
      await step(file, o, command, () => run(command, log));
      records.push(JSON.parse(readFileSync(file, 'utf8')) as EvalRecord);
      files.push(file);
    }
  }
  return { records, files };
}

/** Writes the eval report page for `records`. */
export async function report(records: string[], title: string, out: string, log?: (s: string) => void): Promise<void> {
  await run(['eval', 'report', ...records, '--title', title, '--out', out], log ?? ((s: string) => process.stderr.write(`${s}\n`)));
}
