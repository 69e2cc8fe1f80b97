/** Shared CLI helpers: the default model, model loading with a typed error, progress bars, output. */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import cliProgress from 'cli-progress';
import { loadModel, type LoadedModel } from '../io/model-load.js';
import { buildModel } from '../io/build.js';
import type { DecoderLM } from '../model/transformer.js';
import { ArgumentError } from '../tensor/errors.js';
import { CHECKPOINT_FILE } from '../train/checkpoint.js';

/** The package root (works from src/ under tsx and from dist/src/ when compiled). */
export function packageRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'package.json')) && existsSync(join(dir, 'models'))) return dir;
    dir = dirname(dir);
  }
  return process.cwd();
}

/** The bundled default model (stories260K, MIT), used when a command gets no MODEL argument. */
export function defaultModelPath(): string {
  return join(packageRoot(), 'models', 'stories260K');
}

/**
 * The model a MODEL argument names: the bundled default without one; for a `train` run folder (model/ beside
 * checkpoint.bin) the model it trained. A lone .safetensors file is refused with its folder as the hint: the loader
 * needs the folder's config.json and tokenizer (and every shard) too.
 */
export function modelPath(arg: string | undefined): string {
  if (arg === undefined) return defaultModelPath();
  if (existsSync(join(arg, CHECKPOINT_FILE)) && existsSync(join(arg, 'model', 'config.json'))) return join(arg, 'model');
  if (/\.safetensors$/i.test(arg) && existsSync(arg) && statSync(arg).isFile()) {
    throw new ArgumentError('cli', 'MODEL', `${arg} is one weights file, not a model`, `pass the folder holding it with its config.json: ${dirname(arg)}`);
  }
  return arg;
}

export interface Loaded {
  loaded: LoadedModel;
  model: DecoderLM;
}

export type WeightDtype = 'f32' | 'f16' | 'keep';

/**
 * Load a model for inference. Weights stay as stored by default ('keep'): a BF16/F16 checkpoint stays 16-bit in
 * memory (Llama-3.2-1B: 2.6 GB instead of 7.2 GB widened to F32), and every kernel reads 16-bit weights directly.
 */
export function load(path: string | undefined, dtype: WeightDtype = 'keep'): Loaded {
  const loaded = loadModel(modelPath(path));
  return { loaded, model: buildModel(loaded, { dtype, share: true }) };
}

/** `--dtype` for the inference commands: f32, f16 or keep; anything else is an error naming the flag. */
export function parseDtypeArg(v: string): WeightDtype {
  const d = v.toLowerCase();
  if (d === 'f32' || d === 'f16' || d === 'keep') return d;
  throw new ArgumentError('cli', '--dtype', `= ${v} is not a weight type for inference`,
    'use keep (as stored, the default), f16 (16-bit for decode; BF16 stays bf16) or f32 (widen everything)');
}

export function parseIntArg(name: string, v: string, min = 0): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min) throw new ArgumentError('cli', name, `= ${v} must be an integer >= ${min}`);
  return n;
}

export function parseFloatArg(name: string, v: string): number {
  const n = Number(v);
  if (!Number.isFinite(n)) throw new ArgumentError('cli', name, `= ${v} is not a number`);
  return n;
}

/** A progress bar on stderr when it is a terminal (silent otherwise, so pipes and JSON output stay clean). */
export function progress(label: string, total: number): { update(n: number): void; stop(): void } {
  if (!process.stderr.isTTY || process.env.RECURFORMER_QUIET) return { update() {}, stop() {} };
  const bar = new cliProgress.SingleBar({
    format: `${label} [{bar}] {value}/{total} | {duration_formatted} elapsed | eta {eta_formatted}`,
    stream: process.stderr,
  }, cliProgress.Presets.shades_classic);
  bar.start(total, 0);
  return { update: (n) => bar.update(n), stop: () => bar.stop() };
}

export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value)}\n`);
}

/** Parses a JSON file named by a CLI argument; a missing file or bad JSON is an ArgumentError naming both. */
export function readJsonArg<T>(path: string, op: string, arg: string): T {
  if (!existsSync(path)) throw new ArgumentError(op, arg, `${path} does not exist`);
  try {
    return JSON.parse(readFileSync(path, 'utf8')) as T;
  } catch (e) {
    throw new ArgumentError(op, arg, `${path} is not valid JSON (${(e as Error).message})`);
  }
}
