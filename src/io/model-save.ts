/**
 * Write a model (config + HF-named tensors + tokenizer) as a Hugging Face folder or as a GGUF file, in F32, F16 or
 * (HF only) BF16, or (GGUF only) quantized: Q8_0, Q4_K, Q6_K or llama.cpp's Q4_K_M mix (kquants-mix.ts says which
 * tensor gets which type). The inverse of model-load.ts; `recurformer export` is a thin shell over these two functions.
 *
 * Tokenizers: an HF folder gets the source's tokenizer.json/tokenizer_config.json copied when the model came with
 * them (tokenizer.json cannot be regenerated faithfully from a GGUF or tokenizer.bin vocabulary yet, so exporting
 * such a model to HF writes no tokenizer and says so in the result). GGUF gets the tokenizer.ggml.* vocabulary
 * (padded with [PAD{id}] tokens to the embedding's rows) and the source's chat template.
 */
import { copyFileSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { FormatError } from '../tensor/errors.js';
import { configToHf, type ModelConfig } from '../model/config.js';
import { GgufType, type GgufValue } from './gguf.js';
import { GgmlType, quantize, type QuantType } from './ggml-quants.js';
import { ggufMetadataFromConfig, ropeFreqsTensor } from './gguf-config.js';
import { writeGguf, type GgufTensor } from './gguf-write.js';
import { GGML_QNT_VERSION, LLAMA_FTYPE, planGgufTypes, type GgufExportType } from './kquants-mix.js';
import { writeSafetensorsFolder } from './safetensors.js';
import { f32ArrayToBf16, f32ArrayToF16, toF32, writeFileAtomic, type RawDType, type RawTensor } from './tensor-file.js';
import type { Tokenizer } from './tokenizer.js';
import { ByteLevelTokenizer } from './tokenizer-bytelevel.js';
import { ggufChatTemplateMetadata, ggufMetadataFromByteLevel, ggufMetadataFromSpm, scoresFromMergeRanks } from './tokenizer-gguf.js';
import { SpmTokenizer } from './tokenizer-spm.js';
import { checkHfTensors, hfToGguf } from './weight-names.js';
import type { RecurformerSpec } from '../model/layout.js';

export interface SavableModel {
  config: ModelConfig;
  tensors: Map<string, RawTensor>;
  tokenizer: Tokenizer | null;
  tokenizerSource: string | null;
  recurformer?: RecurformerSpec;
}

/** The tensor in another storage dtype (the same object when it already has it). */
export function castTensor(t: RawTensor, dtype: RawDType): RawTensor {
  if (t.dtype === dtype) return t;
  const f = toF32(t);
  return { ...t, dtype, data: dtype === 'F32' ? f : dtype === 'F16' ? f32ArrayToF16(f) : f32ArrayToBf16(f) };
}

/** Write config.json, generation_config.json, model.safetensors and (when available) the tokenizer files. */
export function writeHfFolder(dir: string, m: SavableModel, dtype: RawDType = 'F32', o: { maxShardBytes?: number } = {}): { tokenizerWritten: boolean } {
  const base = new Map([...m.tensors].filter(([k]) => !k.includes('.recurrent.')));
  const tensors = checkHfTensors(m.config, base, dir);
  // a converted model's recurrent tensors ride along in the dtypes they carry (float32 from convert and training)
  for (const [k, v] of m.tensors) if (k.includes('.recurrent.')) tensors.set(k, v);
  mkdirSync(dir, { recursive: true });
  const hf: Record<string, unknown> = { ...configToHf(m.config), torch_dtype: { F32: 'float32', F16: 'float16', BF16: 'bfloat16' }[dtype] };
  if (m.recurformer) hf.recurformer = m.recurformer;
  const json = (name: string, v: unknown) => writeFileAtomic(join(dir, name), Buffer.from(JSON.stringify(v, null, 2) + '\n'));
  json('config.json', hf);
  json('generation_config.json', { bos_token_id: m.config.bosId, eos_token_id: m.config.eosId.length === 1 ? m.config.eosId[0] : m.config.eosId });
  writeSafetensorsFolder(dir, [...tensors.values()].map((t) => (t.name.includes('.recurrent.') ? t : castTensor(t, dtype))),
    { metadata: { format: 'pt' }, ...(o.maxShardBytes !== undefined ? { maxShardBytes: o.maxShardBytes } : {}) });
  const src = m.tokenizerSource;
  const srcDir = src === null ? null : existsSync(src) && statSync(src).isDirectory() ? src : src.endsWith('tokenizer.json') ? dirname(src) : null;
  if (srcDir === null) return { tokenizerWritten: false };
  for (const f of ['tokenizer.json', 'tokenizer_config.json']) {
    if (existsSync(join(srcDir, f))) copyFileSync(join(srcDir, f), join(dir, f));
  }
  return { tokenizerWritten: true };
}

/**
 * GGUF v3 with llama.cpp's names and layout (q/k permuted for llama), the tokenizer vocabulary and chat template, in
 * F32, F16 or quantized (`dtype`, see kquants-mix.ts for which tensor gets which type). general.file_type is
 * llama.cpp's llama_ftype for the choice; quantized files also get general.quantization_version. llama3 rope
 * scaling is written as llama.cpp's rope_freqs.weight tensor.
 */
export function writeGgufModel(path: string, m: SavableModel, dtype: GgufExportType = 'F32', name = 'recurformer model'): void {
  if (m.config.ropeStyle === 'interleaved') {
    throw new FormatError(path, 'the weights use interleaved RoPE', 'convert them with toHalfRope (model-load.ts) first; hfToGguf applies the GGUF layout');
  }
  const meta = ggufMetadataFromConfig(m.config, name, { ropeFreqs: true, file: path });
  meta.set('general.file_type', { type: GgufType.U32, value: LLAMA_FTYPE[dtype] });
  if (dtype !== 'F32' && dtype !== 'F16') meta.set('general.quantization_version', { type: GgufType.U32, value: GGML_QNT_VERSION });
  if (m.tokenizer) for (const [k, v] of tokenizerMetadata(m.tokenizer, path, m.config.vocabSize)) meta.set(k, v);
  for (const [k, v] of ggufChatTemplateMetadata(m.tokenizerSource)) meta.set(k, v);
  const named = hfToGguf(m.config, m.tensors, path);
  // convert_hf_to_gguf.py writes rope_freqs first (generate_extra_tensors); llama.cpp finds it by name
  if (m.config.ropeScaling?.type === 'llama3' || m.config.ropeScaling?.type === 'freqs') named.unshift(ropeFreqsTensor(m.config));
  const plan = planGgufTypes(named, dtype);
  // 1-D tensors (norms, biases) stay F32 in llama.cpp's F16 and quantized files; matrices get the planned type
  const tensors: GgufTensor[] = named.map((t) => {
    const type = plan.get(t.name)!;
    if (type === GgmlType.F32) return castTensor(t, 'F32');
    if (type === GgmlType.F16) return castTensor(t, 'F16');
    return { name: t.name, shape: t.shape, type, data: quantize(type as QuantType, toF32(t)) };
  });
  writeGguf(path, meta, tensors);
}

function tokenizerMetadata(tok: Tokenizer, path: string, vocabSize: number): Map<string, GgufValue> {
  if (tok instanceof SpmTokenizer) {
    const s = tok.spec;
    const scores = s.mergeRanks ? scoresFromMergeRanks(s.pieces, s.mergeRanks) : s.scores;
    return ggufMetadataFromSpm({ ...s, scores }, vocabSize);
  }
  if (tok instanceof ByteLevelTokenizer) return ggufMetadataFromByteLevel(tok.spec, vocabSize);
  throw new FormatError(path, 'this tokenizer cannot be written to GGUF', 'use a SentencePiece or byte-level BPE tokenizer');
}

/**
 * The float type a model's matrices are stored in (the first 2-D weight that is not a recurrent head's): F32, F16
 * or BF16; quantized sources (GGUF Q8_0, Q4_0) report F16, the closest float type. What `keep` writes.
 */
export function storedFloatDtype(tensors: ReadonlyMap<string, { dtype: string; shape: readonly number[] }>): 'F32' | 'F16' | 'BF16' {
  for (const [name, t] of tensors) {
    if (t.shape.length !== 2 || name.includes('.recurrent.')) continue;
    return t.dtype === 'F32' || t.dtype === 'BF16' ? t.dtype : 'F16';
  }
  return 'F32';
}
