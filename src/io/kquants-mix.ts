/**
 * Which ggml type each tensor of a GGUF export gets, per file type (`recurformer export --format gguf --dtype ...`).
 *
 * Only the tensors llama.cpp's llama-quantize quantizes are quantized: 2-D (or more) tensors whose name ends in
 * "weight", except norms (`*_norm.weight`) and GPT-2's learned positions (`position_embd.weight`). The others stay F32
 * (1-D norms, biases and rope_freqs, as in llama.cpp's own files; position_embd too, losslessly).
 *
 * - F32: everything F32. F16: matrices F16, the rest F32 (what convert_hf_to_gguf.py --outtype f16 writes).
 * - Q8_0: every quantizable matrix Q8_0 (llama.cpp's Q8_0 file type, general.file_type 7).
 * - Q6_K: every quantizable matrix Q6_K (file type 18; llama.cpp's Q6_K mix has no other rule).
 * - Q4_K: every quantizable matrix Q4_K, the output head included: what `llama-quantize --pure ... Q4_K_S` writes,
 *   labelled as llama.cpp labels it (file type 14, MOSTLY_Q4_K_S, the "mostly Q4_K" type; there is no pure one).
 * - Q4_K_M (file type 15), llama.cpp's rule (llama_tensor_get_type in src/llama-quant.cpp) for the tensors we have:
 *   - output.weight, and token_embd.weight when the embeddings are tied (no output.weight): Q6_K; Q8_0 when the row
 *     length is not a multiple of 256;
 *   - attn_v.weight (and GPT-2's fused attn_qkv.weight, which llama.cpp treats as attn_v): Q6_K for the i-th of n
 *     such tensors when use_more_bits(i, n), Q4_K otherwise;
 *   - ffn_down.weight of layer i of n: Q6_K when use_more_bits(i, n), Q4_K otherwise;
 *   - everything else (attn_q, attn_k, attn_output, ffn_gate, ffn_up, an untied token_embd): Q4_K;
 *   where use_more_bits(i, n) = i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2 (integer division): the first and last
 *   eighth of the layers and every third layer between, about half of them.
 *
 * Rows (ggml's ne[0], the last dim here) that are not a multiple of the chosen type's block fall back as
 * llama-quantize's tensor_type_fallback does: Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0; and when the row is not a
 * multiple of 32 either, F16. (llama.cpp has no fallback for a Q8_0 target and refuses such a tensor; we write F16.)
 */
import { GGML_BLOCK, GgmlType } from './ggml-quants.js';

export const GGUF_EXPORT_TYPES = ['F32', 'F16', 'Q8_0', 'Q4_K', 'Q6_K', 'Q4_K_M'] as const;
export type GgufExportType = (typeof GGUF_EXPORT_TYPES)[number];

/** llama.cpp's llama_ftype value for each export type: written as general.file_type. */
export const LLAMA_FTYPE: Readonly<Record<GgufExportType, number>> = Object.freeze({
  F32: 0, // LLAMA_FTYPE_ALL_F32
  F16: 1, // LLAMA_FTYPE_MOSTLY_F16
  Q8_0: 7, // LLAMA_FTYPE_MOSTLY_Q8_0
  Q4_K: 14, // LLAMA_FTYPE_MOSTLY_Q4_K_S
  Q4_K_M: 15, // LLAMA_FTYPE_MOSTLY_Q4_K_M
  Q6_K: 18, // LLAMA_FTYPE_MOSTLY_Q6_K
});

/** ggml's quantization format version (GGML_QNT_VERSION), written as general.quantization_version. */
export const GGML_QNT_VERSION = 2;

export function isGgufExportType(s: string): s is GgufExportType {
  return (GGUF_EXPORT_TYPES as readonly string[]).includes(s);
}

/** Whether llama-quantize would quantize this tensor (see the module comment). */
export function isQuantizable(name: string, shape: readonly number[]): boolean {
  return shape.length >= 2 && name.endsWith('weight') && !name.includes('_norm.weight') && name !== 'position_embd.weight';
}

/** llama.cpp's use_more_bits: the first and last eighth of the layers, and every third layer between. */
export function useMoreBits(i: number, n: number): boolean {
  const e = Math.floor(n / 8);
  return i < e || i >= Math.floor((7 * n) / 8) || (i - e) % 3 === 2;
}

/** The type after llama-quantize's fallback for a row of `cols` values. */
export function fallbackType(type: GgmlType, cols: number): GgmlType {
  const elems = GGML_BLOCK[type]?.elems ?? 1;
  if (cols % elems === 0) return type;
  const next = type === GgmlType.Q4_K ? GgmlType.Q5_0 : type === GgmlType.Q5_K ? GgmlType.Q5_1 : type === GgmlType.Q6_K ? GgmlType.Q8_0 : undefined;
  if (next === undefined || cols % GGML_BLOCK[next]!.elems !== 0) return GgmlType.F16;
  return next;
}

const DEFAULT_TYPE: Readonly<Record<Exclude<GgufExportType, 'F32' | 'F16'>, GgmlType>> = {
  Q8_0: GgmlType.Q8_0, Q4_K: GgmlType.Q4_K, Q6_K: GgmlType.Q6_K, Q4_K_M: GgmlType.Q4_K,
};

/**
 * The ggml type of every tensor (GGUF names, in file order, layers in order) for an export type: F32, F16 or a block
 * type. See the module comment for the rules.
 */
export function planGgufTypes(tensors: readonly { name: string; shape: readonly number[] }[], ftype: GgufExportType): Map<string, GgmlType> {
  const out = new Map<string, GgmlType>();
  const tied = !tensors.some((t) => t.name === 'output.weight');
  const isAttnV = (name: string) => /attn_v\.weight$|attn_qkv\.weight$|attn_kv_b\.weight$/.test(name);
  const nAttnV = tensors.filter((t) => isAttnV(t.name)).length;
  const layers = new Set(tensors.map((t) => /^blk\.(\d+)\./.exec(t.name)?.[1]).filter((x) => x !== undefined));
  let iAttnV = 0;
  for (const t of tensors) {
    if (!isQuantizable(t.name, t.shape)) {
      out.set(t.name, GgmlType.F32);
      continue;
    }
    if (ftype === 'F32' || ftype === 'F16') {
      out.set(t.name, ftype === 'F32' ? GgmlType.F32 : GgmlType.F16);
      continue;
    }
    const cols = t.shape[t.shape.length - 1]!;
    let type = DEFAULT_TYPE[ftype];
    if (ftype === 'Q4_K_M' || ftype === 'Q6_K' || ftype === 'Q8_0') {
      if (t.name === 'output.weight' || (tied && t.name === 'token_embd.weight')) {
        // llama.cpp: Q8_0 when the row does not fit the type's block, else Q6_K unless the file type is Q8_0
        if (cols % GGML_BLOCK[type]!.elems !== 0) type = GgmlType.Q8_0;
        else if (type !== GgmlType.Q8_0) type = GgmlType.Q6_K;
      } else if (ftype === 'Q4_K_M' && isAttnV(t.name)) {
        if (useMoreBits(iAttnV, nAttnV)) type = GgmlType.Q6_K;
      } else if (ftype === 'Q4_K_M' && /ffn_down/.test(t.name)) {
        const layer = Number(/^blk\.(\d+)\./.exec(t.name)?.[1] ?? 0);
        if (useMoreBits(layer, layers.size)) type = GgmlType.Q6_K;
      }
    }
    if (isAttnV(t.name)) iAttnV++;
    out.set(t.name, fallbackType(type, cols));
  }
  return out;
}
