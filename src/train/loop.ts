/**
 * The training loop shared by all stages: AdamW, linear warmup + cosine decay, global-norm clipping, gradient
 * accumulation, a NaN/inf guard, periodic validation, a JSONL metrics log and atomic checkpoints that resume exactly.
 *
 * One optimizer step = `accum` micro-batches of B sequences of T tokens; each micro-batch's loss is scaled by
 * 1 / accum before backward so the accumulated gradient is the mean. A step whose loss or gradient norm is not finite
 * is skipped: no update, gradients dropped, a `skip` record in the log; it still consumes its data and advances the
 * schedule (so a resumed run and an uninterrupted one stay in lockstep).
 *
 * Exact resume: the checkpoint holds the trainable weights, AdamW's m, v and step, the data position (epoch, cursor
 * and the RNG state the epoch's permutation was drawn from), the step / token counters and the config. Nothing else
 * is random (no dropout), the frozen weights are rebuilt from the same files (or the same seeded init), and every
 * kernel is deterministic for a fixed thread count, so the resumed run computes the same bits.
 *
 * The run folder: a resumed run writes into the folder it resumes from (a copy of a run continues in the copy), or
 * into `out` when given again; one training at a time holds the folder (src/train/lock.ts); a fresh run refuses a
 * folder that already holds a checkpoint unless forced. The loop yields to the event loop between steps, so an abort
 * signal (the CLI's SIGINT / SIGTERM) ends the run after the current step with a checkpoint.
 */
import { appendFileSync, existsSync, mkdirSync, readdirSync, readFileSync, unlinkSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { LoadedModel } from '../io/model-load.js';
import type { Tokenizer } from '../io/tokenizer.js';
import type { DecoderLM } from '../model/transformer.js';
import { ArgumentError, FormatError } from '../tensor/errors.js';
import * as T from '../tensor/index.js';
import { AdamW, type Tensor } from '../tensor/index.js';
import { CHECKPOINT_FILE, loadCheckpoint, saveCheckpoint, type CheckpointState } from './checkpoint.js';
import { absolutePaths, makeTrainConfig, type TrainConfig } from './config.js';
import { Batcher, loadShard, PackedData, type DataPosition } from './data.js';
import { lockRunFolder } from './lock.js';
import { evaluate, objective, type EvalOut } from './objectives.js';
import { buildStudentModel, freshModel, loadForTraining, loadTeacher, readInitConfig, saveTrainedModel, selectTrainable } from './model-setup.js';

export const METRICS_FILE = 'metrics.jsonl';

export interface StepRecord {
  type: 'train';
  step: number;
  loss: number;
  lr: number;
  gradNorm: number;
  tokens: number;
  tokPerSec: number;
  parts: Record<string, number>;
}

export interface ValidationRecord extends EvalOut {
  type: 'eval';
  step: number;
}

export interface SkipRecord {
  type: 'skip';
  step: number;
  loss: number;
  gradNorm: number;
}

export type MetricRecord = StepRecord | ValidationRecord | SkipRecord;

export interface RunHooks {
  /** Called after every optimizer step (progress bar). */
  onStep?(r: StepRecord | SkipRecord, total: number): void;
  onEval?(r: ValidationRecord): void;
  /** Library-only: return after this many steps (a checkpoint is written there), as if the run were interrupted. */
  stopAfter?: number;
  /** Once aborted, the run ends after the current step with a checkpoint (result.interrupted). */
  signal?: AbortSignal;
  /** Non-fatal news, such as a stale lock taken over (default: process.emitWarning). */
  onWarn?(message: string): void;
}

export interface RunOptions extends RunHooks {
  /** Continue the run saved in this folder: the output folder too, unless the config names another `out`. */
  resume?: string;
  /** Start over in an `out` that already holds a run (its checkpoint is deleted first). */
  force?: boolean;
}

export interface TrainResult {
  config: TrainConfig;
  steps: number;
  skipped: number;
  tokens: number;
  firstEval: ValidationRecord | null;
  lastEval: ValidationRecord | null;
  checkpoint: string;
  modelDir: string;
  elapsedMs: number;
  resumedFrom: number | null;
  /** Ended early by the abort signal (a checkpoint holds the step it reached). */
  interrupted: boolean;
}

/** Everything a running session holds. */
export interface TrainingRun {
  cfg: TrainConfig;
  loaded: LoadedModel;
  /** The float type the trained model is written in: the source's. */
  saveDtype: 'F32' | 'F16' | 'BF16';
  student: DecoderLM;
  teacher: DecoderLM | null;
  tokenizer: Tokenizer;
  data: PackedData;
  dataKey: string;
  batcher: Batcher;
  names: string[];
  params: Tensor[];
  opt: AdamW;
  schedule: (step: number) => number;
  step: number;
  skipped: number;
  tokens: number;
}

function buildStudent(cfg: TrainConfig): ReturnType<typeof buildStudentModel> {
  if (cfg.init) {
    const mc = readInitConfig(cfg.init);
    const tokPath = cfg.tokenizer ?? cfg.model;
    return buildStudentModel(freshModel(mc, cfg.seed + 1, tokPath));
  }
  return loadForTraining(cfg.model!);
}

/** Builds the models, data and optimizer for a config, optionally restoring a checkpoint's state. */
export function openRun(cfg: TrainConfig, restore?: ReturnType<typeof loadCheckpoint>): TrainingRun {
  const { loaded, model: student, dtype: saveDtype } = buildStudent(cfg); // built once
  const teacher = cfg.stage === 'pretrain' ? null : loadTeacher(cfg.teacher!);
  if (teacher && teacher.cfg.vocabSize !== student.cfg.vocabSize) {
    throw new ArgumentError('train', 'teacher', `has vocabulary ${teacher.cfg.vocabSize}, the student ${student.cfg.vocabSize}`,
      'distill from the model the student was converted from');
  }
  const tokenizer = loaded.tokenizer;
  if (!tokenizer) throw new ArgumentError('train', 'tokenizer', 'none found beside the model', 'pass --tokenizer PATH');
  if (cfg.seq > student.cfg.maxPos && student.cfg.arch === 'gpt2') {
    throw new ArgumentError('train', 'seq', `= ${cfg.seq} exceeds the ${student.cfg.maxPos} learned positions`);
  }
  const shard = loadShard(cfg.data, tokenizer, cfg.cacheDir, { textKey: cfg.textKey });
  const data = new PackedData(shard.tokens, { seq: cfg.seq, bos: tokenizer.bosId, valFraction: cfg.valFraction, packing: cfg.packing });
  const { names, params } = selectTrainable(student, cfg.trainable);
  const decay = new Set(params.filter((p) => p.rank >= 2));
  const opt = new AdamW(params, { lr: cfg.lr, weightDecay: cfg.weightDecay, decay: (p) => decay.has(p) });
  const schedule = T.cosineSchedule({ lr: cfg.lr, warmupSteps: cfg.warmup, totalSteps: cfg.steps, minRatio: cfg.minLrRatio });
  let step = 0, skipped = 0, tokens = 0;
  let position: DataPosition | undefined;
  if (restore) {
    const { state, tensors, path } = restore;
    if (state.dataKey !== shard.key) {
      throw new FormatError(path, `was trained on data with key ${state.dataKey}, the data now hashes to ${shard.key}`,
        'resume with the same --data (files unchanged)');
    }
    names.forEach((n, i) => {
      const w = tensors.weights.get(n), m = tensors.m.get(n), v = tensors.v.get(n);
      if (!w || !m || !v) throw new FormatError(path, 'lacks a trainable tensor or its optimizer moments', 'the checkpoint belongs to another run', n);
      if (w.length !== params[i]!.size) throw new FormatError(path, `has ${w.length} values, the model ${params[i]!.size}`, '', n);
      params[i]!.data.set(w);
      opt.state.m[i]!.set(m);
      opt.state.v[i]!.set(v);
    });
    if (tensors.weights.size !== names.length) {
      throw new FormatError(path, `holds ${tensors.weights.size} trainable tensors, this run trains ${names.length}`, 'the --trainable set differs');
    }
    opt.state.step = state.optimizerStep;
    step = state.step;
    skipped = state.skipped;
    tokens = state.tokens;
    position = state.data;
  }
  const batcher = new Batcher(data, cfg.batch, cfg.seed, position);
  return { cfg, loaded, saveDtype, student, teacher, tokenizer, data, dataKey: shard.key, batcher, names, params, opt, schedule, step, skipped, tokens };
}

/** One optimizer step (accum micro-batches); returns the log record. */
export function trainStep(s: TrainingRun): StepRecord | SkipRecord {
  const { cfg } = s;
  const lr = s.schedule(s.step);
  let lossSum = 0;
  const parts: Record<string, number> = {};
  const t0 = performance.now();
  const norm = T.scope(() => {
    for (let a = 0; a < cfg.accum; a++) {
      const b = s.batcher.next();
      const out = objective(s.student, s.teacher, b, cfg);
      const l = out.loss.item();
      lossSum += l;
      for (const [k, v] of Object.entries(out.parts)) parts[k] = (parts[k] ?? 0) + v / cfg.accum;
      if (Number.isFinite(l)) T.backward(cfg.accum > 1 ? T.affine(out.loss, 1 / cfg.accum) : out.loss);
    }
    const n = cfg.clip > 0 ? T.clipGradNorm(s.params, cfg.clip) : T.gradNorm(s.params);
    if (Number.isFinite(lossSum) && Number.isFinite(n)) s.opt.step(lr);
    s.opt.zeroGrad();
    return n;
  });
  const loss = lossSum / cfg.accum;
  const stepTokens = cfg.accum * cfg.batch * cfg.seq;
  s.step++;
  s.tokens += stepTokens;
  if (!(Number.isFinite(loss) && Number.isFinite(norm))) {
    s.skipped++;
    return { type: 'skip', step: s.step, loss, gradNorm: norm };
  }
  const dt = (performance.now() - t0) / 1000;
  return { type: 'train', step: s.step, loss, lr, gradNorm: norm, tokens: s.tokens, tokPerSec: stepTokens / dt, parts };
}

export function validate(s: TrainingRun): ValidationRecord {
  const r = evaluate(s.student, s.teacher, s.data.valBatches(s.cfg.batch, s.cfg.evalBatches), s.cfg);
  return { type: 'eval', step: s.step, ...r };
}

export function checkpoint(s: TrainingRun, elapsedMs: number): string {
  const state: CheckpointState = {
    version: 2, config: absolutePaths(s.cfg), step: s.step, skipped: s.skipped, tokens: s.tokens, optimizerStep: s.opt.state.step,
    data: s.batcher.position(), dataKey: s.dataKey, elapsedMs,
  };
  const weights = new Map<string, Float32Array>(), m = new Map<string, Float32Array>(), v = new Map<string, Float32Array>();
  s.names.forEach((n, i) => {
    weights.set(n, s.params[i]!.data);
    m.set(n, s.opt.state.m[i]!);
    v.set(n, s.opt.state.v[i]!);
  });
  return saveCheckpoint(s.cfg.out, state, { weights, m, v });
}

/**
 * Writes the records of log `from` up to `step` to `to` (a resumed run rewrites what the interrupted run logged after
 * it; resumed into another folder, it starts from the original's log).
 */
function trimLog(from: string, to: string, step: number): void {
  const keep = (existsSync(from) ? readFileSync(from, 'utf8') : '').split('\n').filter((line) => {
    if (!line.trim()) return false;
    try {
      return (JSON.parse(line) as { step?: number }).step! <= step;
    } catch {
      return false;
    }
  });
  writeFileSync(to, keep.map((l) => `${l}\n`).join(''));
}

/** Reads a metrics log back (for reports and tests). */
export function readMetrics(dir: string): MetricRecord[] {
  const path = join(dir, METRICS_FILE);
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8').split('\n').filter((l) => l.trim()).map((l) => JSON.parse(l) as MetricRecord);
}

/** A resumed run's config: the saved one, written into the resumed folder unless `out` is overridden. */
function resumedConfig(saved: TrainConfig, dir: string, overrides: Record<string, unknown>): TrainConfig {
  const { cacheDir, out, ...rest } = saved;
  // a cache inside the run folder moves with it, so a copied run never writes into the original
  const ownCache = resolve(cacheDir) === resolve(out, 'cache');
  return makeTrainConfig({ ...rest, ...(ownCache ? {} : { cacheDir }), out: dir, ...overrides });
}

/**
 * Runs (or, with `resume`, continues) a training run to cfg.steps: validation every evalEvery steps and at both
 * ends, checkpoints every saveEvery steps and at the end, the trained model as an HF folder in DIR/model.
 */
export async function runTraining(cfgIn: Record<string, unknown> | TrainConfig | null, opts: RunOptions = {}): Promise<TrainResult> {
  let cfg: TrainConfig;
  let restore: ReturnType<typeof loadCheckpoint> | undefined;
  if (opts.resume) {
    restore = loadCheckpoint(opts.resume);
    cfg = resumedConfig(restore.state.config, opts.resume, { ...cfgIn });
  } else {
    if (!cfgIn) throw new ArgumentError('train', 'config', 'is required unless resuming');
    cfg = makeTrainConfig({ ...cfgIn });
  }
  mkdirSync(cfg.out, { recursive: true });
  const unlock = lockRunFolder(cfg.out, opts.onWarn ?? ((m) => process.emitWarning(m)));
  try {
    return await trainInFolder(cfg, restore, opts);
  } finally {
    unlock();
  }
}

async function trainInFolder(cfg: TrainConfig, restore: ReturnType<typeof loadCheckpoint> | undefined, opts: RunOptions): Promise<TrainResult> {
  const logPath = join(cfg.out, METRICS_FILE);
  const ckptPath = join(cfg.out, CHECKPOINT_FILE);
  const sameFolder = opts.resume !== undefined && resolve(opts.resume) === resolve(cfg.out);
  if (!sameFolder && existsSync(ckptPath)) {
    if (!opts.force) {
      throw new ArgumentError('train', '--out', `${cfg.out} already holds a training run (${CHECKPOINT_FILE})`,
        `pass --force to start over there (its checkpoint and log are replaced), or --resume ${cfg.out} to continue it`);
    }
    // a forced run killed before its first save must not leave the old run's checkpoint beside its own log
    unlinkSync(ckptPath);
  }
  // temp files of checkpoint writes that never finished (a killed run) are garbage
  for (const f of readdirSync(cfg.out)) if (f.startsWith(`.${CHECKPOINT_FILE}.`) && f.endsWith('.tmp')) unlinkSync(join(cfg.out, f));
  const s = openRun(cfg, restore);
  if (restore) trimLog(join(opts.resume!, METRICS_FILE), logPath, s.step);
  else writeFileSync(logPath, '');
  const log = (r: MetricRecord): void => appendFileSync(logPath, `${JSON.stringify(r)}\n`);
  const startMs = performance.now() - (restore?.state.elapsedMs ?? 0);
  const resumedFrom = restore ? s.step : null;
  let firstEval: ValidationRecord | null = null, lastEval: ValidationRecord | null = null;
  const doEval = (): void => {
    lastEval = validate(s);
    firstEval ??= lastEval;
    log(lastEval);
    opts.onEval?.(lastEval);
  };
  if (!restore) doEval();
  let ckpt = '', savedAt = -1, interrupted = false;
  const save = (): void => {
    ckpt = checkpoint(s, performance.now() - startMs);
    savedAt = s.step;
  };
  const stopAt = Math.min(cfg.steps, opts.stopAfter ?? Infinity);
  while (s.step < stopAt) {
    // a step is synchronous: signal handlers (which abort opts.signal) only run in this pause between steps
    await new Promise((r) => setImmediate(r));
    if (opts.signal?.aborted) {
      interrupted = true;
      break;
    }
    const r = trainStep(s);
    log(r);
    opts.onStep?.(r, cfg.steps);
    const last = s.step === cfg.steps;
    if ((cfg.evalEvery > 0 && s.step % cfg.evalEvery === 0) || last) doEval();
    if ((cfg.saveEvery > 0 && s.step % cfg.saveEvery === 0) || last || s.step === stopAt) save();
  }
  if (savedAt !== s.step) save();
  const modelDir = join(cfg.out, 'model');
  if (s.step === cfg.steps) saveTrainedModel(modelDir, s.loaded, s.student, s.saveDtype);
  return {
    config: cfg, steps: s.step, skipped: s.skipped, tokens: s.tokens, firstEval, lastEval, checkpoint: ckpt, modelDir,
    elapsedMs: performance.now() - startMs, resumedFrom, interrupted,
  };
}
