/**
 * Load a model from disk in any supported format into one shape: a ModelConfig, tensors under Hugging Face names
 * (checked against the config: none missing, none extra, every shape right) and the tokenizer when one is found.
 *
 * - a folder: Hugging Face (config.json + model.safetensors or a sharded index + tokenizer.json);
 * - *.gguf: llama.cpp (tensors renamed and q/k un-permuted by weight-names.ts; tokenizer from the GGUF vocab);
 * - *.bin: llama2.c legacy v0 (tokenizer from `tok{vocab}.bin` or `tokenizer.bin` beside it, or `opts.tokenizer`).
 *
 * The tensors keep the layout the config's ropeStyle names: llama2.c checkpoints stay 'interleaved' unless
 * `opts.ropeStyle: 'half'` asks for the HF layout (then q/k rows are permuted as the HF conversion script does).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { FormatError } from '../tensor/errors.js';
import { configFromHf, makeConfig, type ModelConfig } from '../model/config.js';
import { readGguf } from './gguf.js';
import { configFromGgufMetadata } from './gguf-config.js';
import { readLlama2c } from './llama2c.js';
import { readSafetensorsFolder } from './safetensors.js';
import type { RawTensor } from './tensor-file.js';
import { parseSpec, recurrentTensorShapes, type RecurformerSpec } from '../convert/spec.js';
import type { Tokenizer } from './tokenizer.js';
import { tokenizerFromGguf } from './tokenizer-gguf.js';
import { loadTokenizer } from './tokenizer-load.js';
import { checkHfTensors, ggufToHf, interleavedToHalfRows } from './weight-names.js';

export interface LoadedModel {
  source: string;
  format: 'hf' | 'gguf' | 'llama2c';
  config: ModelConfig;
  /** Hugging Face names, in the weight table's order. */
  tensors: Map<string, RawTensor>;
  tokenizer: Tokenizer | null;
  /** Where the tokenizer came from (a folder, tokenizer.json, .gguf or tokenizer.bin), for copying it on export. */
  tokenizerSource: string | null;
  /** A converted model's recurrent heads (config.json `recurformer` section); their tensors are in `tensors`. */
  recurformer?: RecurformerSpec;
}

export interface LoadOptions {
  /** A tokenizer file or folder to use instead of the one found beside the model. */
  tokenizer?: string;
  /** Convert a llama2.c model to rotate-half RoPE (the HF layout). */
  ropeStyle?: 'half';
}

export function loadModel(path: string, opts: LoadOptions = {}): LoadedModel {
  if (!existsSync(path)) throw new FormatError(path, 'does not exist', 'pass a Hugging Face folder, a .gguf file or a llama2.c .bin checkpoint');
  const model = statSync(path).isDirectory() ? loadHfFolder(path)
    : path.endsWith('.gguf') ? loadGgufModel(path)
      : path.endsWith('.bin') ? loadLlama2cModel(path)
        : fail(path);
  if (opts.tokenizer !== undefined) Object.assign(model, { tokenizer: loadTokenizer(opts.tokenizer), tokenizerSource: opts.tokenizer });
  if (model.tokenizer && model.tokenizer.vocabSize > model.config.vocabSize) {
    throw new FormatError(model.tokenizerSource ?? path, `tokenizer has ${model.tokenizer.vocabSize} tokens, the model only ${model.config.vocabSize}`,
      'the tokenizer belongs to another model');
  }
  return opts.ropeStyle === 'half' ? toHalfRope(model) : model;
}

/** config.json without our own section (the HF config parser rejects keys it does not know that matter). */
function stripRecurformer(json: unknown): unknown {
  if (typeof json !== 'object' || json === null) return json;
  const { recurformer: _drop, ...rest } = json as Record<string, unknown>;
  return rest;
}

function fail(path: string): never {
  throw new FormatError(path, 'unrecognized model file', 'pass a Hugging Face folder, a .gguf file or a llama2.c .bin checkpoint');
}

export function loadHfFolder(dir: string): LoadedModel {
  const cfgPath = join(dir, 'config.json');
  let json: unknown;
  try {
    json = JSON.parse(readFileSync(cfgPath, 'utf8'));
  } catch (e) {
    throw new FormatError(cfgPath, `cannot read (${(e as Error).message})`, 'a Hugging Face model folder needs a config.json');
  }
  const config = configFromHf(stripRecurformer(json), cfgPath);
  const st = readSafetensorsFolder(dir);
  const rfJson = (json as Record<string, unknown>).recurformer;
  const spec = rfJson === undefined ? undefined : parseSpec(rfJson, config, cfgPath);
  const recurrent = new Map<string, RawTensor>();
  if (spec) {
    const shapes = recurrentTensorShapes(config, spec);
    for (const [name, shape] of shapes) {
      const t = st.tensors.get(name);
      if (!t) throw new FormatError(st.file, 'recurrent tensor missing', `config.json's recurformer section lists its layer; re-run convert`, name);
      if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
        throw new FormatError(st.file, `has shape [${t.shape.join(', ')}], expected [${shape.join(', ')}]`, 'the recurformer section does not match the tensors', name);
      }
      recurrent.set(name, t);
      st.tensors.delete(name);
    }
  }
  const tensors = checkHfTensors(config, st.tensors, st.file);
  for (const [k, v] of recurrent) tensors.set(k, v);
  const hasTok = existsSync(join(dir, 'tokenizer.json'));
  const out: LoadedModel = { source: dir, format: 'hf', config, tensors, tokenizer: hasTok ? loadTokenizer(dir) : null, tokenizerSource: hasTok ? dir : null };
  if (spec) out.recurformer = spec;
  return out;
}

export function loadGgufModel(path: string): LoadedModel {
  const f = readGguf(path);
  const config = configFromGgufMetadata(f);
  const tensors = ggufToHf(config, f.tensors, path);
  const hasTok = f.metadata.has('tokenizer.ggml.model');
  return { source: path, format: 'gguf', config, tensors, tokenizer: hasTok ? tokenizerFromGguf(f) : null, tokenizerSource: hasTok ? path : null };
}

export function loadLlama2cModel(path: string): LoadedModel {
  const ckpt = readLlama2c(path);
  const tensors = checkHfTensors(ckpt.config, ckpt.tensors, path);
  const dir = dirname(path);
  const tokPath = [join(dir, `tok${ckpt.header.vocabSize}.bin`), join(dir, 'tokenizer.bin')].find((p) => existsSync(p)) ?? null;
  return { source: path, format: 'llama2c', config: ckpt.config, tensors, tokenizer: tokPath ? loadTokenizer(tokPath) : null, tokenizerSource: tokPath };
}

/** Interleaved-RoPE weights (llama2.c, Meta) -> rotate-half (HF): permute q_proj/k_proj rows per head. */
export function toHalfRope(m: LoadedModel): LoadedModel {
  if (m.config.ropeStyle !== 'interleaved') return m;
  const config = makeConfig({ ...m.config, ropeStyle: 'half' }, m.source);
  const tensors = new Map<string, RawTensor>();
  for (const [name, t] of m.tensors) {
    if (name.endsWith('self_attn.q_proj.weight')) tensors.set(name, interleavedToHalfRows(t, config.nHeads));
    else if (name.endsWith('self_attn.k_proj.weight')) tensors.set(name, interleavedToHalfRows(t, config.nKvHeads));
    else tensors.set(name, t);
  }
  return { ...m, config, tensors };
}
