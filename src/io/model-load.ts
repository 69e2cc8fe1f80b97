/**
 * Load a model from disk in any supported format into one shape: a ModelConfig, tensors under Hugging Face names
 * (checked against the config: none missing, none extra, every shape right) and the tokenizer when one is found.
 *
 * - a folder: Hugging Face (config.json + model.safetensors or a sharded index + tokenizer.json); of a Gemma 3
 *   vision-language checkpoint, the text model (its vision tower is never read);
 * - *.gguf: llama.cpp (tensors renamed and q/k un-permuted by weight-names.ts; tokenizer from the GGUF vocab);
 * - *.bin: llama2.c legacy v0 (tokenizer from `tok{vocab}.bin` or `tokenizer.bin` beside it, or `opts.tokenizer`).
 *
 * The tensors keep the layout the config's ropeStyle names: llama2.c checkpoints stay 'interleaved' unless
 * `opts.ropeStyle: 'half'` asks for the HF layout (then q/k rows are permuted as the HF conversion script does).
 *
 * Loading reads headers only: every tensor (renamed, relaid out or not) is read from its file when its data is first
 * used, so `inspect` reads no weights and a command reads only the weights it touches.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { FormatError } from '../tensor/errors.js';
import { configFromHf, isGemma3VisionLanguage, makeConfig, type ModelConfig } from '../model/config.js';
import { readGguf } from './gguf.js';
import { configFromGgufMetadata } from './gguf-config.js';
import { readLlama2c } from './llama2c.js';
import { readSafetensors, readSafetensorsFolder, safetensorsShards } from './safetensors.js';
import { deferredTensor, nonFiniteCount, numel, type RawTensor } from './tensor-file.js';
import { parseSpec, recurrentTensorShapes, type RecurformerSpec } from '../model/spec.js';
import type { Tokenizer } from './tokenizer.js';
import { tokenizerFromGguf } from './tokenizer-gguf.js';
import { loadTokenizer } from './tokenizer-load.js';
import { checkHfTensors, gemma3TextTensors, ggufToHf, interleavedToHalfRows } from './weight-names.js';

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
  if (opts.tokenizer !== undefined) {
    const tokPath = opts.tokenizer;
    lazyTokenizer(model, () => loadTokenizer(tokPath));
    model.tokenizerSource = tokPath;
  }
  return opts.ropeStyle === 'half' ? toHalfRope(model) : model;
}

/**
 * Makes `model.tokenizer` load on first use: a Llama 3 or Qwen tokenizer.json takes a second or more to read, and
 * `inspect` (headers only) never needs it. The first use also checks it against the model and pads it to the
 * embedding's rows (Qwen: 151,669 ids, 151,936 rows: the ids in between decode to nothing).
 */
function lazyTokenizer(model: LoadedModel, make: () => Tokenizer | null): void {
  let tok: Tokenizer | null | undefined;
  Object.defineProperty(model, 'tokenizer', {
    enumerable: true,
    configurable: true,
    get(): Tokenizer | null {
      if (tok !== undefined) return tok;
      const t = make();
      if (t && t.vocabSize > model.config.vocabSize) {
        throw new FormatError(model.tokenizerSource ?? model.source, `tokenizer has ${t.vocabSize} tokens, the model only ${model.config.vocabSize}`,
          'the tokenizer belongs to another model');
      }
      t?.padTo(model.config.vocabSize);
      return (tok = t);
    },
    set(v: Tokenizer | null) {
      tok = v;
    },
  });
}

/**
 * The head counts must be possible for the stored weights: nHeads x head_dim values per row of a q projection
 * cannot exceed everything the files hold (headers only; a converted layer may have no q projection at all).
 */
function checkHeadCounts(config: ModelConfig, tensors: ReadonlyMap<string, RawTensor>, cfgPath: string): void {
  let stored = 0;
  for (const t of tensors.values()) stored += numel(t.shape);
  for (const [key, heads] of [['num_attention_heads', config.nHeads], ['num_key_value_heads', config.nKvHeads]] as const) {
    if (heads * config.headDim > stored) {
      throw new FormatError(cfgPath, `${key} = ${heads} heads of ${config.headDim} is more than the ${stored} values the weights hold`,
        'the config does not belong to these weights', key);
    }
  }
}

/** config.json without our own section (the HF config parser rejects keys it does not know that matter). */
function stripRecurformer(json: unknown): unknown {
  if (typeof json !== 'object' || json === null) return json;
  const { recurformer: _drop, ...rest } = json as Record<string, unknown>;
  return rest;
}

const noted = new Set<string>();

/** One line on stderr per model and process (honours RECURFORMER_QUIET, like the loaders' warnings). */
function noteOnce(key: string, message: string): void {
  if (noted.has(key) || process.env.RECURFORMER_QUIET) return;
  noted.add(key);
  process.stderr.write(`recurformer: note: ${message}\n`);
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
  if (isGemma3VisionLanguage(json)) {
    // Gemma3ForConditionalGeneration: its text model, renamed; the vision tower and projector are never read
    const { text, vision } = gemma3TextTensors(st.tensors, st.file);
    st.tensors = text;
    if (vision.length > 0) noteOnce(dir, `${dir}: a Gemma 3 vision-language checkpoint: loading its text model; the vision tower (${vision.length} tensor${vision.length === 1 ? '' : 's'}) is ignored`);
  }
  const gpt2 = config.arch === 'gpt2';
  checkLayerCount(config.nLayers, st.tensors.keys(), gpt2 ? /^(?:transformer\.)?h\.(\d+)\./ : /^model\.layers\.(\d+)\./,
    cfgPath, `config key "${gpt2 ? 'n_layer' : 'num_hidden_layers'}"`, st.file);
  if (gpt2) prefixLegacyGpt2Names(st.tensors);
  const rfJson = (json as Record<string, unknown>).recurformer;
  // the recurrent heads' shapes grow with the head counts: check those against the stored embedding width first,
  // so a corrupt config cannot make the loader build billions of entries (found by test/fuzz/config-json)
  if (rfJson !== undefined) checkHeadCounts(config, st.tensors, cfgPath);
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
  const out: LoadedModel = { source: dir, format: 'hf', config, tensors, tokenizer: null, tokenizerSource: hasTok ? dir : null };
  if (hasTok) lazyTokenizer(out, () => loadTokenizer(dir));
  if (spec) out.recurformer = spec;
  return out;
}

export function loadGgufModel(path: string): LoadedModel {
  const f = readGguf(path);
  const config = configFromGgufMetadata(f);
  checkLayerCount(config.nLayers, f.tensors.keys(), /^blk\.(\d+)\./, path, `metadata key '${String(f.metadata.get('general.architecture')?.value)}.block_count'`, 'the file');
  const weights = new Map(f.tensors);
  weights.delete('rope_freqs.weight'); // llama3 scaling: read into the config (gguf-config.ts), not a weight
  const tensors = ggufToHf(config, weights, path);
  const hasTok = f.metadata.has('tokenizer.ggml.model');
  const out: LoadedModel = { source: path, format: 'gguf', config, tensors, tokenizer: null, tokenizerSource: hasTok ? path : null };
  if (hasTok) lazyTokenizer(out, () => tokenizerFromGguf(f));
  return out;
}

export function loadLlama2cModel(path: string): LoadedModel {
  const ckpt = readLlama2c(path);
  const tensors = checkHfTensors(ckpt.config, ckpt.tensors, path);
  const dir = dirname(path);
  const tokPath = [join(dir, `tok${ckpt.header.vocabSize}.bin`), join(dir, 'tokenizer.bin')].find((p) => existsSync(p)) ?? null;
  const out: LoadedModel = { source: path, format: 'llama2c', config: ckpt.config, tensors, tokenizer: null, tokenizerSource: tokPath };
  if (tokPath) lazyTokenizer(out, () => loadTokenizer(tokPath));
  return out;
}

/** Interleaved-RoPE weights (llama2.c, Meta) -> rotate-half (HF): permute q_proj/k_proj rows per head. */
export function toHalfRope(m: LoadedModel): LoadedModel {
  if (m.config.ropeStyle !== 'interleaved') return m;
  const config = makeConfig({ ...m.config, ropeStyle: 'half' }, m.source);
  const tensors = new Map<string, RawTensor>();
  for (const [name, t] of m.tensors) {
    const heads = name.endsWith('self_attn.q_proj.weight') ? config.nHeads : name.endsWith('self_attn.k_proj.weight') ? config.nKvHeads : 0;
    tensors.set(name, heads === 0 ? t : deferredTensor(name, t.dtype, t.shape, () => interleavedToHalfRows(t, heads).data));
  }
  return { ...m, config, tensors };
}

/**
 * The config's layer count must be the number of layers the weights have. Checked before anything is built per
 * layer: a corrupt count (4294967295 in a GGUF, 1e9 in a config.json) would otherwise allocate until memory ran out.
 */
function checkLayerCount(n: number, names: Iterable<string>, layerOf: RegExp, file: string, key: string, where: string): void {
  const layers = new Set<string>();
  for (const name of names) {
    const m = layerOf.exec(name);
    if (m) layers.add(m[1]!);
  }
  if (layers.size !== n) {
    throw new FormatError(file, `${key} = ${n}, but ${where} has tensors for ${layers.size} layers`,
      'the config and the weights come from different models, or the file is corrupt');
  }
}

/**
 * Old GPT-2 checkpoints (openai-community/gpt2) omit the "transformer." prefix. checkHfTensors accepts them too, but
 * renames by copying the tensor, which would read its data; renaming here keeps loading header-only.
 */
function prefixLegacyGpt2Names(tensors: Map<string, RawTensor>): void {
  for (const [name, t] of [...tensors]) {
    if (!/^(wte|wpe|h\.|ln_f)/.test(name)) continue;
    const canon = `transformer.${name}`;
    tensors.delete(name);
    tensors.set(canon, deferredTensor(canon, t.dtype, t.shape, () => t.data));
  }
}

// ---- finite check -------------------------------------------------------------------------------------------

export interface NonFiniteTensor {
  /** The file holding the tensor, and its name there. */
  file: string;
  tensor: string;
  /** NaN and +-Inf values, of `total`. */
  count: number;
  total: number;
}

/**
 * Every tensor of a model's files that holds NaN or Inf, under its name in the file. Each tensor is scanned in its
 * file, 16 MiB at a time (a quantized one: its packed blocks), and nothing is kept.
 */
export function findNonFiniteWeights(path: string): { checked: number; bad: NonFiniteTensor[] } {
  const files = statSync(path).isDirectory() ? safetensorsShards(path).map(readSafetensors)
    : path.endsWith('.gguf') ? [readGguf(path)]
      : path.endsWith('.bin') ? [readLlama2c(path)]
        : fail(path);
  let checked = 0;
  const bad: NonFiniteTensor[] = [];
  for (const { file, tensors } of files) {
    for (const t of tensors.values()) {
      checked++;
      const count = nonFiniteCount(t);
      if (count > 0) bad.push({ file, tensor: t.name, count, total: numel(t.shape) });
    }
  }
  return { checked, bad };
}
