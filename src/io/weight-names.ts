/**
 * The one table of weight names: Hugging Face name <-> GGUF name, with the shape each tensor must have (in the
 * Hugging Face layout) and the layout change between the two formats. Loaders check a checkpoint against it, so a
 * missing, extra or mis-shaped tensor is reported by name before any model code runs.
 *
 * Layout changes:
 * - llama (not qwen2, qwen3, gemma3) in GGUF: llama.cpp's convert script permutes the rows of q_proj and k_proj from
 *   rotate-half order (HF: dim i pairs with i + hd/2) to interleaved order (Meta: dims 2i, 2i+1), because llama.cpp
 *   applies RoPE to adjacent pairs for this architecture. We do the same on write and the inverse on read, so in
 *   memory a model always has the HF layout. Qwen2, Qwen3 and Gemma 3 use rotate-half ("NEOX") RoPE in llama.cpp and
 *   are not permuted.
 * - Gemma's RMSNorm gains: HF stores w and computes x * (1 + w); convert_hf_to_gguf.py stores 1 + w (every tensor
 *   named *norm.weight) and llama.cpp computes x * w. We add 1 on write and subtract it on read, in float32: for the
 *   gains Gemma has (|w| < 1), 1 + (s - 1) gives back s exactly, so the model runs with the stored gains.
 * - gpt2: HF stores c_attn/c_proj/c_fc as Conv1D weights [in, out]; GGUF (like nn.Linear) stores [out, in].
 *
 * Gemma 3 vision-language checkpoints (Gemma3ForConditionalGeneration) keep the text model under
 * `language_model.model.*` (transformers < 4.52; `model.language_model.*` since) beside a vision tower and a
 * projector: `gemma3TextTensors` renames the text tensors and leaves the others out, unread.
 */
import { FormatError } from '../tensor/errors.js';
import type { ModelConfig } from '../model/config.js';
import { CONV1D } from '../model/gpt2.js';
import { deferredTensor, numel, toF32, type QuantBlocks, type RawTensor } from './tensor-file.js';

type Layout = 'same' | 'permute-q' | 'permute-k' | 'transpose' | 'plus-one';

/** llama.cpp's architecture for a config (general.architecture). Mistral is 'llama'. */
export type GgufArch = 'llama' | 'qwen2' | 'qwen3' | 'gemma3' | 'gpt2';

/** The GGUF architecture of a config, from its switches (gguf-config.ts checks the rest of the combination). */
export function ggufArchOf(cfg: ModelConfig): GgufArch {
  if (cfg.arch === 'gpt2') return 'gpt2';
  return cfg.postNorms ? 'gemma3' : cfg.qkNorm ? 'qwen3' : cfg.qkvBias ? 'qwen2' : 'llama';
}

interface Entry {
  hf: string;
  gguf: string;
  /** Shape in the HF layout. */
  shape: number[];
  layout: Layout;
}

/** Every tensor a model with this config has, in a stable order (embeddings, layers, final norm, head). */
export function weightTable(cfg: ModelConfig): Entry[] {
  return cfg.arch === 'gpt2' ? gpt2Table(cfg) : llamaTable(cfg);
}

function llamaTable(c: ModelConfig): Entry[] {
  const q = c.nHeads * c.headDim;
  const kv = c.nKvHeads * c.headDim;
  const permute = ggufArchOf(c) === 'llama'; // see the header: qwen2, qwen3 and gemma3 keep rotate-half in GGUF
  const gain: Layout = c.normPlusOne ? 'plus-one' : 'same'; // Gemma: GGUF stores 1 + w
  const out: Entry[] = [{ hf: 'model.embed_tokens.weight', gguf: 'token_embd.weight', shape: [c.vocabSize, c.dModel], layout: 'same' }];
  for (let l = 0; l < c.nLayers; l++) {
    const hf = `model.layers.${l}.`;
    const g = `blk.${l}.`;
    out.push(
      { hf: `${hf}input_layernorm.weight`, gguf: `${g}attn_norm.weight`, shape: [c.dModel], layout: gain },
      { hf: `${hf}self_attn.q_proj.weight`, gguf: `${g}attn_q.weight`, shape: [q, c.dModel], layout: permute ? 'permute-q' : 'same' },
      { hf: `${hf}self_attn.k_proj.weight`, gguf: `${g}attn_k.weight`, shape: [kv, c.dModel], layout: permute ? 'permute-k' : 'same' },
      { hf: `${hf}self_attn.v_proj.weight`, gguf: `${g}attn_v.weight`, shape: [kv, c.dModel], layout: 'same' },
    );
    if (c.qkvBias) {
      out.push(
        { hf: `${hf}self_attn.q_proj.bias`, gguf: `${g}attn_q.bias`, shape: [q], layout: 'same' },
        { hf: `${hf}self_attn.k_proj.bias`, gguf: `${g}attn_k.bias`, shape: [kv], layout: 'same' },
        { hf: `${hf}self_attn.v_proj.bias`, gguf: `${g}attn_v.bias`, shape: [kv], layout: 'same' },
      );
    }
    if (c.qkNorm) {
      out.push(
        { hf: `${hf}self_attn.q_norm.weight`, gguf: `${g}attn_q_norm.weight`, shape: [c.headDim], layout: gain },
        { hf: `${hf}self_attn.k_norm.weight`, gguf: `${g}attn_k_norm.weight`, shape: [c.headDim], layout: gain },
      );
    }
    out.push({ hf: `${hf}self_attn.o_proj.weight`, gguf: `${g}attn_output.weight`, shape: [c.dModel, q], layout: 'same' });
    if (c.postNorms) {
      // Gemma: post_attention_layernorm normalizes the attention output; the MLP has a norm before and after
      out.push(
        { hf: `${hf}post_attention_layernorm.weight`, gguf: `${g}post_attention_norm.weight`, shape: [c.dModel], layout: gain },
        { hf: `${hf}pre_feedforward_layernorm.weight`, gguf: `${g}ffn_norm.weight`, shape: [c.dModel], layout: gain },
        { hf: `${hf}post_feedforward_layernorm.weight`, gguf: `${g}post_ffw_norm.weight`, shape: [c.dModel], layout: gain },
      );
    } else {
      out.push({ hf: `${hf}post_attention_layernorm.weight`, gguf: `${g}ffn_norm.weight`, shape: [c.dModel], layout: gain });
    }
    out.push(
      { hf: `${hf}mlp.gate_proj.weight`, gguf: `${g}ffn_gate.weight`, shape: [c.ffnDim, c.dModel], layout: 'same' },
      { hf: `${hf}mlp.up_proj.weight`, gguf: `${g}ffn_up.weight`, shape: [c.ffnDim, c.dModel], layout: 'same' },
      { hf: `${hf}mlp.down_proj.weight`, gguf: `${g}ffn_down.weight`, shape: [c.dModel, c.ffnDim], layout: 'same' },
    );
  }
  out.push({ hf: 'model.norm.weight', gguf: 'output_norm.weight', shape: [c.dModel], layout: gain });
  if (!c.tiedEmbeddings) out.push({ hf: 'lm_head.weight', gguf: 'output.weight', shape: [c.vocabSize, c.dModel], layout: 'same' });
  return out;
}

function gpt2Table(c: ModelConfig): Entry[] {
  const d = c.dModel;
  const out: Entry[] = [
    { hf: 'transformer.wte.weight', gguf: 'token_embd.weight', shape: [c.vocabSize, d], layout: 'same' },
    { hf: 'transformer.wpe.weight', gguf: 'position_embd.weight', shape: [c.maxPos, d], layout: 'same' },
  ];
  const lin = (hf: string, gguf: string, inDim: number, outDim: number): Entry[] => [
    { hf: `${hf}.weight`, gguf: `${gguf}.weight`, shape: [inDim, outDim], layout: 'transpose' },
    { hf: `${hf}.bias`, gguf: `${gguf}.bias`, shape: [outDim], layout: 'same' },
  ];
  const norm = (hf: string, gguf: string): Entry[] => [
    { hf: `${hf}.weight`, gguf: `${gguf}.weight`, shape: [d], layout: 'same' },
    { hf: `${hf}.bias`, gguf: `${gguf}.bias`, shape: [d], layout: 'same' },
  ];
  for (let l = 0; l < c.nLayers; l++) {
    const hf = `transformer.h.${l}.`;
    const g = `blk.${l}.`;
    out.push(
      ...norm(`${hf}ln_1`, `${g}attn_norm`),
      ...lin(`${hf}attn.c_attn`, `${g}attn_qkv`, d, 3 * d),
      ...lin(`${hf}attn.c_proj`, `${g}attn_output`, d, d),
      ...norm(`${hf}ln_2`, `${g}ffn_norm`),
      ...lin(`${hf}mlp.c_fc`, `${g}ffn_up`, d, c.ffnDim),
      ...lin(`${hf}mlp.c_proj`, `${g}ffn_down`, c.ffnDim, d),
    );
  }
  out.push(...norm('transformer.ln_f', 'output_norm'));
  if (!c.tiedEmbeddings) out.push({ hf: 'lm_head.weight', gguf: 'output.weight', shape: [c.vocabSize, d], layout: 'same' });
  return out;
}

/** Gemma 3 vision-language checkpoints: where the text model lives (old and new transformers), and what is vision. */
const GEMMA3_TEXT_PREFIXES: [RegExp, string][] = [
  [/^language_model\.model\./, 'model.'], // transformers < 4.52
  [/^language_model\.lm_head\./, 'lm_head.'],
  [/^model\.language_model\./, 'model.'], // transformers >= 4.52 (lm_head.weight keeps its name)
];
const GEMMA3_VISION = /^(model\.)?(vision_tower|multi_modal_projector)\./;

/**
 * The text model of a Gemma 3 vision-language checkpoint (Gemma3ForConditionalGeneration): its tensors under
 * Gemma3ForCausalLM names, and the names of the vision tower and projector tensors left out. Nothing is read: a
 * renamed tensor reads its file when its data is first used, a left-out one never. Other names are kept as they are
 * (checkHfTensors then names them as extra).
 */
export function gemma3TextTensors(tensors: ReadonlyMap<string, RawTensor>, file: string): { text: Map<string, RawTensor>; vision: string[] } {
  const text = new Map<string, RawTensor>(), vision: string[] = [];
  for (const [name, t] of tensors) {
    if (GEMMA3_VISION.test(name)) {
      vision.push(name);
      continue;
    }
    const rule = GEMMA3_TEXT_PREFIXES.find(([re]) => re.test(name));
    const canon = rule ? name.replace(rule[0], rule[1]) : name;
    if (text.has(canon)) throw new FormatError(file, `holds the text tensor ${canon} twice (under two naming conventions)`, 'the checkpoint is corrupt', name);
    text.set(canon, canon === name ? t : deferredTensor(canon, t.dtype, t.shape, () => t.data));
  }
  return { text, vision };
}

/** Buffers some HF checkpoints carry that are not weights (recomputed by the model): dropped on load. */
const IGNORED = [/\.rotary_emb\.inv_freq$/, /^(transformer\.)?h\.\d+\.attn\.(masked_)?bias$/];

/** Old GPT-2 checkpoints (openai-community/gpt2) omit the "transformer." prefix. */
function canonicalHfName(cfg: ModelConfig, name: string): string {
  if (cfg.arch === 'gpt2' && /^(wte|wpe|h\.|ln_f)/.test(name)) return `transformer.${name}`;
  return name;
}

/**
 * Check a set of HF-named tensors against the config and return them keyed by canonical name, in table order.
 * Missing, extra and mis-shaped tensors are FormatErrors naming the tensor. A tied model may carry an lm_head.weight
 * equal to the embedding (some exporters save it); it is dropped. Any other lm_head on a tied model is an error.
 */
export function checkHfTensors(cfg: ModelConfig, tensors: Map<string, RawTensor>, file: string): Map<string, RawTensor> {
  const byName = new Map<string, RawTensor>();
  for (const [name, t] of tensors) {
    if (IGNORED.some((re) => re.test(name))) continue;
    const canon = canonicalHfName(cfg, name);
    byName.set(canon, canon === name ? t : { ...t, name: canon });
  }
  const embedName = cfg.arch === 'gpt2' ? 'transformer.wte.weight' : 'model.embed_tokens.weight';
  const head = byName.get('lm_head.weight');
  if (cfg.tiedEmbeddings && head) {
    const emb = byName.get(embedName);
    if (!emb || !sameData(emb, head)) {
      throw new FormatError(file, 'present but the config says tie_word_embeddings', 'set tie_word_embeddings to false, or drop lm_head.weight', 'lm_head.weight');
    }
    byName.delete('lm_head.weight');
  }
  return checkAgainstTable(weightTable(cfg).map((e) => ({ name: e.hf, shape: e.shape })), byName, file, 'Hugging Face');
}

function checkAgainstTable(expect: { name: string; shape: number[] }[], byName: Map<string, RawTensor>, file: string, what: string): Map<string, RawTensor> {
  const out = new Map<string, RawTensor>();
  for (const { name, shape } of expect) {
    const t = byName.get(name);
    if (!t) throw new FormatError(file, `missing (the config implies it)`, `the ${what} checkpoint does not match its config`, name);
    if (t.shape.length !== shape.length || t.shape.some((d, i) => d !== shape[i])) {
      throw new FormatError(file, `shape [${t.shape.join(', ')}] does not match the config's [${shape.join(', ')}]`,
        'the config and the weights come from different models', name);
    }
    out.set(name, t);
  }
  for (const name of byName.keys()) {
    if (!out.has(name)) throw new FormatError(file, 'extra: not part of this architecture', `the ${what} checkpoint does not match its config`, name);
  }
  return out;
}

/** HF-named tensors (checked) -> GGUF-named tensors in GGUF layout, in table order. */
export function hfToGguf(cfg: ModelConfig, tensors: Map<string, RawTensor>, file = '<memory>'): RawTensor[] {
  const checked = checkHfTensors(cfg, tensors, file);
  return weightTable(cfg).map((e) => relayout(cfg, { ...checked.get(e.hf)!, name: e.gguf }, e.layout, 'to-gguf'));
}

/**
 * GGUF-named tensors (as read) -> HF-named tensors in HF layout, checked against the config. Names and shapes are
 * checked now, from the headers; each tensor is renamed and relaid out (q/k un-permuted, GPT-2 Conv1D transposed)
 * when its data is first used, so loading a GGUF reads no weights.
 */
export function ggufToHf(cfg: ModelConfig, tensors: Map<string, RawTensor>, file = '<memory>'): Map<string, RawTensor> {
  const table = weightTable(cfg);
  const ggufShape = (e: Entry) => (e.layout === 'transpose' ? [e.shape[1]!, e.shape[0]!] : e.shape);
  const checked = checkAgainstTable(table.map((e) => ({ name: e.gguf, shape: ggufShape(e) })), new Map(tensors), file, 'GGUF');
  const out = new Map<string, RawTensor>();
  for (const e of table) {
    const t = checked.get(e.gguf)!;
    const dtype = e.layout === 'plus-one' ? 'F32' : t.dtype; // a gain is shifted in float32
    const hf = deferredTensor(e.hf, dtype, [...e.shape], () => relayout(cfg, t, e.layout, 'to-hf').data);
    const quant = quantToHf(cfg, t, e.layout);
    if (quant) hf.quant = quant;
    out.set(e.hf, hf);
  }
  return out;
}

/**
 * A GGUF tensor's quantized blocks under its HF layout, where the layout moves whole rows (a row is whole blocks):
 * as they are, or with q/k's rows permuted. Layouts that change values (transpose, the gain shift) keep none.
 */
function quantToHf(cfg: ModelConfig, t: RawTensor, layout: Layout): QuantBlocks | undefined {
  const q = t.quant;
  if (!q || layout === 'transpose' || layout === 'plus-one') return undefined;
  if (layout === 'same') return q;
  const heads = layout === 'permute-q' ? cfg.nHeads : cfg.nKvHeads;
  const rows = t.shape[0]!;
  return {
    ...q, read: () => {
      const raw = q.read(); // permuteRows moves rows as typed-array slices, whatever the element type
      const asRows = { name: t.name, dtype: 'F32', shape: [rows, raw.length / rows], data: raw as unknown as Float32Array } satisfies RawTensor;
      return interleavedToHalfRows(asRows, heads).data as unknown as Uint8Array;
    },
  };
}

function relayout(cfg: ModelConfig, t: RawTensor, layout: Layout, dir: 'to-gguf' | 'to-hf'): RawTensor {
  if (layout === 'transpose') return transpose2d(t);
  if (layout === 'same') return t;
  if (layout === 'plus-one') {
    const shift = dir === 'to-gguf' ? 1 : -1;
    return { ...t, dtype: 'F32', data: toF32(t).map((w) => w + shift) };
  }
  const heads = layout === 'permute-q' ? cfg.nHeads : cfg.nKvHeads;
  return dir === 'to-gguf' ? halfToInterleavedRows(t, heads) : interleavedToHalfRows(t, heads);
}

// ---- layout transforms (any dtype: rows are moved as bit patterns) ---------------------------------------------

/**
 * Rows of a [heads * hd, cols] projection from interleaved (Meta, llama2.c, GGUF) to rotate-half (HF) order:
 * within each head, HF row j * hd/2 + i is interleaved row 2i + j (i < hd/2, j in {0, 1}). This is what the HF
 * conversion script's `permute` does, so a rotate-half RoPE on the result equals interleaved RoPE on the input.
 */
export function interleavedToHalfRows(t: RawTensor, heads: number): RawTensor {
  return permuteRows(t, heads, (h, i, j, hd) => [h * hd + j * (hd / 2) + i, h * hd + 2 * i + j]);
}

/** The inverse of interleavedToHalfRows (llama.cpp's convert-time permutation of q/k). */
export function halfToInterleavedRows(t: RawTensor, heads: number): RawTensor {
  return permuteRows(t, heads, (h, i, j, hd) => [h * hd + 2 * i + j, h * hd + j * (hd / 2) + i]);
}

/** `map` gives [destination row, source row] for head h, pair i, member j. */
function permuteRows(t: RawTensor, heads: number, map: (h: number, i: number, j: number, hd: number) => [number, number]): RawTensor {
  const rows = t.shape[0]!;
  const cols = t.shape.length > 1 ? numel(t.shape.slice(1)) : 1;
  const hd = rows / heads;
  if (!Number.isInteger(hd) || hd % 2 !== 0) {
    throw new FormatError('<permute>', `${rows} rows do not split into ${heads} heads of even size`, 'check nHeads / nKvHeads', t.name);
  }
  const src = t.data;
  const dst = new (src.constructor as Float32ArrayConstructor | Uint16ArrayConstructor)(src.length);
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < hd / 2; i++) {
      for (let j = 0; j < 2; j++) {
        const [to, from] = map(h, i, j, hd);
        dst.set(src.subarray(from * cols, (from + 1) * cols), to * cols);
      }
    }
  }
  return { ...t, data: dst };
}

/**
 * A stored tensor in the model's nn.Linear (out, in) layout, or back: GPT-2 files keep its Conv1D matrices
 * (c_attn, c_proj, c_fc) as (in, out). The transpose is its own inverse, so loading and saving both call this.
 */
export function conv1dLayout(arch: ModelConfig['arch'], name: string, t: RawTensor): RawTensor {
  return arch === 'gpt2' && CONV1D.test(name) ? transpose2d(t) : t;
}

/** [a, b] -> [b, a], any dtype. */
export function transpose2d(t: RawTensor): RawTensor {
  const [a, b] = t.shape as [number, number];
  const src = t.data;
  const dst = new (src.constructor as Float32ArrayConstructor | Uint16ArrayConstructor)(src.length);
  for (let i = 0; i < a; i++) for (let j = 0; j < b; j++) dst[j * a + i] = src[i * b + j]!;
  return { ...t, shape: [b, a], data: dst };
}

function sameData(a: RawTensor, b: RawTensor): boolean {
  if (a.dtype !== b.dtype || a.data.length !== b.data.length) return false;
  for (let i = 0; i < a.data.length; i++) if (a.data[i] !== b.data[i]) return false;
  return true;
}
