/**
 * Models for training: loading student and teacher, a fresh model from a config (pretraining), choosing the
 * trainable tensors, and writing the trained student back as a Hugging Face folder.
 */
import { readFileSync } from 'node:fs';
import { loadModel, type LoadedModel } from '../io/model-load.js';
import { storedFloatDtype, writeHfFolder } from '../io/model-save.js';
import type { RawTensor } from '../io/tensor-file.js';
import { loadTokenizer } from '../io/tokenizer-load.js';
import { conv1dLayout, weightTable } from '../io/weight-names.js';
import { buildModel } from '../io/build.js';
import { HalfWeight, isPacked, QuantWeight } from '../model/weights.js';
import { configFromHf, type ModelConfig } from '../model/config.js';
import type { DecoderLM } from '../model/transformer.js';
import { ArgumentError, FormatError } from '../tensor/errors.js';
import { Rng, type Tensor } from '../tensor/index.js';
import type { Trainable } from './config.js';

/** Projections writing into the residual stream: scaled down at init by 1/sqrt(2 L) (GPT-2). */
const RESIDUAL_OUT = /(o_proj|down_proj|attn\.c_proj|mlp\.c_proj)\.weight$/;

/** Reads an HF config.json (or a bare config object in that format) for a fresh model. */
export function readInitConfig(path: string): ModelConfig {
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(path, 'utf8'));
  } catch (e) {
    throw new FormatError(path, `cannot read the model config (${(e as Error).message})`, 'pass a Hugging Face style config.json to --init');
  }
  return configFromHf(json, path);
}

/**
 * A fresh model: N(0, 0.02) matrices and embeddings (residual output projections 0.02 / sqrt(2 L)), norm gains 1,
 * biases 0. Seeded, so a resumed pretraining run rebuilds the same frozen tensors (and then loads the trained ones).
 */
export function freshModel(cfg: ModelConfig, seed: number, tokenizerPath: string | null): LoadedModel {
  const rng = new Rng(seed);
  const tensors = new Map<string, RawTensor>();
  const std = 0.02, resStd = 0.02 / Math.sqrt(2 * cfg.nLayers);
  for (const e of weightTable(cfg)) {
    const n = e.shape.reduce((a, b) => a * b, 1);
    const data = new Float32Array(n);
    const vector = e.shape.length === 1;
    if (vector) {
      if (/(norm|ln_\d|ln_f)\.weight$/.test(e.hf)) data.fill(1);
    } else {
      const s = RESIDUAL_OUT.test(e.hf) ? resStd : std;
      for (let i = 0; i < n; i++) data[i] = rng.normal() * s;
    }
    tensors.set(e.hf, { name: e.hf, dtype: 'F32', shape: [...e.shape], data });
  }
  const tokenizer = tokenizerPath ? loadTokenizer(tokenizerPath) : null;
  if (tokenizer && tokenizer.vocabSize > cfg.vocabSize) {
    throw new ArgumentError('train', 'init', `vocab_size ${cfg.vocabSize} is smaller than the tokenizer's ${tokenizer.vocabSize}`,
      'raise vocab_size in the config');
  }
  return { source: '<init>', format: 'hf', config: cfg, tensors, tokenizer, tokenizerSource: tokenizerPath };
}

/**
 * A model to train, built once: float32 arrays are shared with the load (no second copy), 16-bit weights stay
 * 16-bit until selectTrainable widens the ones that train (frozen ones cost 2 bytes a weight), and `loaded` keeps
 * only what saving needs (the tokenizer).
 */
export function loadForTraining(path: string): ReturnType<typeof buildStudentModel> {
  return buildStudentModel(loadModel(path));
}

export function buildStudentModel(loaded: LoadedModel): { loaded: LoadedModel; model: DecoderLM; dtype: 'F32' | 'F16' | 'BF16' } {
  const dtype = storedFloatDtype(loaded.tensors); // what the trained model is saved as
  // frozen 16-bit weights stay 16-bit (selectTrainable widens the ones that train)
  const model = buildModel(loaded, { dtype: 'keep', share: true });
  return { loaded: { ...loaded, tensors: new Map() }, model, dtype };
}

/**
 * The frozen teacher: weights kept as stored (a BF16 teacher stays 16-bit, 2 bytes a weight instead of 4) and
 * never copied; its forward runs without a graph.
 */
export function loadTeacher(path: string): DecoderLM {
  return buildModel(loadModel(path), { dtype: 'keep', share: true });
}

function isNorm(name: string, t: Tensor): boolean {
  return t.rank === 1 && /(norm|ln_\d+|ln_f)\.weight$|(ln_\d+|ln_f)\.bias$|\.recurrent\.norm_w$/.test(name);
}

/** The tensors that train, by name, in the model's stable order; marks them (and only them) as requiring grad. */
export function selectTrainable(model: DecoderLM, which: Trainable): { names: string[]; params: Tensor[] } {
  const names: string[] = [], params: Tensor[] = [];
  for (const [name, w0] of model.weights) {
    const on0 = which === 'all' || name.includes('.recurrent.') || (which === 'recurrent+norms' && w0.shape.length === 1 && isNorm(name, w0 as Tensor));
    // a 16-bit or quantized weight that trains becomes float32 here; frozen ones stay as they are (packedLinearInGraph)
    if (isPacked(w0) && on0) model.setWeight(name, w0.toTensor());
    const w = model.weights.get(name)!;
    if (isPacked(w)) continue;
    const t = w;
    const on = on0;
    t.requiresGrad = on;
    if (on) {
      t.name = name;
      names.push(name);
      params.push(t);
    }
  }
  if (params.length === 0) {
    throw new ArgumentError('train', 'trainable', `= ${which} selects no tensors of this model`,
      which === 'all' ? 'the model has no float32 weights' : 'the model has no recurrent heads: convert it first, or use --trainable all');
  }
  return { names, params };
}

/**
 * Writes the model's current weights (with its tokenizer and recurformer section) as an HF folder, in the source's
 * float type (a BF16 checkpoint trains in float32 and is saved BF16 again; recurrent heads always F32).
 */
export function saveTrainedModel(dir: string, loaded: LoadedModel, model: DecoderLM, dtype: 'F32' | 'F16' | 'BF16' = 'F32'): void {
  const tensors = new Map<string, RawTensor>();
  for (const [name, w] of model.weights) {
    // the weights' own arrays, not copies (written at once; a 1B model's copy was 5 GB at the end of training)
    const stored: RawTensor = w instanceof HalfWeight
      ? { name, dtype: w.kind === 'bf16' ? 'BF16' : 'F16', shape: [...w.shape], data: w.data }
      : { name, dtype: 'F32', shape: [...w.shape], data: w instanceof QuantWeight ? w.toTensor().data : w.data };
    tensors.set(name, conv1dLayout(model.cfg.arch, name, stored)); // GPT-2: back to Conv1D's (in, out)
  }
  writeHfFolder(dir, {
    config: model.cfg, tensors, tokenizer: loaded.tokenizer, tokenizerSource: loaded.tokenizerSource,
    ...(model.spec ? { recurformer: model.spec } : {}),
  }, dtype);
}
