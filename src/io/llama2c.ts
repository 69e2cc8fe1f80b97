/**
 * llama2.c checkpoints (the legacy "version 0" export of karpathy/llama2.c, as in run.c) and its tokenizer.bin.
 *
 * Checkpoint: 7 x int32 header (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len; a negative
 * vocab_size means the classifier is stored separately at the end), then float32 tensors, each stacked over layers:
 * tok_embeddings[V,D], rms_att[L,D], wq[L,D,D], wk[L,KV*hd,D], wv[L,KV*hd,D], wo[L,D,D], rms_ffn[L,D],
 * w1[L,H,D], w2[L,D,H], w3[L,H,D], rms_final[D], freq_cis_real[seq,hd/2], freq_cis_imag[seq,hd/2], wcls[V,D]?
 *
 * We return per-layer tensors under Hugging Face Llama names, but keep llama2.c's q/k row order: RoPE in llama2.c
 * rotates interleaved pairs (2i, 2i+1), so the config says ropeStyle 'interleaved'. `interleavedToHalfRows`
 * (weight-names.ts) converts to the HF rotate-half layout. The freq_cis tables are checked for size and dropped
 * (they are cos/sin of theta 10000, which the model recomputes).
 *
 * tokenizer.bin: int32 max_token_length, then per token: float32 score, int32 byte length, bytes. llama2.c writes
 * SentencePiece's '▁' as ' ' and BOS/EOS as "\n<s>\n" / "\n</s>\n"; `readTokenizerBin` returns the bytes as stored.
 */
import { readFileSync } from 'node:fs';
import { FormatError } from '../tensor/errors.js';
import { makeConfig, type ModelConfig } from '../model/config.js';
import { BinaryReader, bufferSource, fileSource, type ByteSource } from './binary-reader.js';
import { countNonFinite, fileTensor, numel, scanNonFinite, type RawTensor } from './tensor-file.js';

export interface Llama2cHeader {
  dim: number;
  hiddenDim: number;
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  vocabSize: number;
  seqLen: number;
  /** vocab_size was positive: the classifier is the embedding matrix. */
  sharedClassifier: boolean;
}

export interface Llama2cCheckpoint {
  file: string;
  header: Llama2cHeader;
  config: ModelConfig;
  /** HF names, in checkpoint order; q_proj/k_proj rows in llama2.c's interleaved order. */
  tensors: Map<string, RawTensor>;
  /** Always true: llama2.c/Meta RoPE rotates adjacent pairs. */
  ropeInterleaved: true;
}

/** The tensors are read from the file when first used (each layer's slice of a stacked tensor at its offset). */
export function readLlama2c(path: string): Llama2cCheckpoint {
  return parseSource(fileSource(path));
}

export function parseLlama2c(buf: Buffer, file: string): Llama2cCheckpoint {
  return parseSource(bufferSource(buf, file));
}

function parseSource(src: ByteSource): Llama2cCheckpoint {
  const file = src.file;
  const r = new BinaryReader(src);
  const names = ['dim', 'hidden_dim', 'n_layers', 'n_heads', 'n_kv_heads', 'vocab_size', 'seq_len'] as const;
  const h = names.map((n) => r.i32(`header field ${n}`));
  const [dim, hiddenDim, nLayers, nHeads, nKvHeads, rawVocab, seqLen] = h as [number, number, number, number, number, number, number];
  const header: Llama2cHeader = {
    dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize: Math.abs(rawVocab), seqLen, sharedClassifier: rawVocab > 0,
  };
  names.forEach((n, i) => {
    if (!(h[i]! !== 0 && Math.abs(h[i]!) <= 1 << 24 && (i === 5 || h[i]! > 0))) {
      throw new FormatError(file, `header field ${n} = ${h[i]} is out of range`, 'this is not a llama2.c legacy (version 0) checkpoint');
    }
  });
  if (dim % nHeads !== 0 || nHeads % nKvHeads !== 0 || (dim / nHeads) % 2 !== 0) {
    throw new FormatError(file, `dim ${dim}, n_heads ${nHeads}, n_kv_heads ${nKvHeads} do not form whole, even-sized heads`,
      'this is not a llama2.c legacy (version 0) checkpoint');
  }
  const hd = dim / nHeads;
  const kv = nKvHeads * hd;
  const V = header.vocabSize;
  const L = nLayers;

  // The exact size is known from the header: anything else is truncation, a newer export version, or another file.
  const floats = V * dim + L * dim * 2 + L * dim * dim * 2 + L * kv * dim * 2 + L * hiddenDim * dim * 3 + dim
    + seqLen * hd + (header.sharedClassifier ? 0 : V * dim);
  const expected = 28 + floats * 4;
  if (src.size !== expected) {
    throw new FormatError(file, `${src.size} bytes, but the header (${h.join(', ')}) implies ${expected}`,
      src.size < expected ? 'the file is truncated' : 'the file is not a legacy v0 export (llama2.c export.py --version 0)');
  }

  // The size check above makes every offset below valid. `at` walks the file; each tensor is read when first used.
  let at = 28;
  const skip = (floats: number) => {
    const start = at;
    at += floats * 4;
    return start;
  };
  const tensors = new Map<string, RawTensor>();
  const put = (name: string, shape: number[], offset: number) => tensors.set(name, fileTensor(file, name, 'F32', shape, () => {
    const data = new Float32Array(numel(shape));
    src.read(offset, data);
    return { data, nonFinite: countNonFinite('F32', data) };
  }, () => scanNonFinite(src, offset, numel(shape) * 4, 'F32')));
  const layer = (l: number, s: string) => `model.layers.${l}.${s}`;
  put('model.embed_tokens.weight', [V, dim], skip(V * dim));
  // llama2.c groups by tensor kind, stacked over layers; we emit per layer in HF order.
  const kinds: [number, number, string][] = [
    [1, dim, 'input_layernorm.weight'], // rms_att
    [dim, dim, 'self_attn.q_proj.weight'], // wq
    [kv, dim, 'self_attn.k_proj.weight'], // wk
    [kv, dim, 'self_attn.v_proj.weight'], // wv
    [dim, dim, 'self_attn.o_proj.weight'], // wo
    [1, dim, 'post_attention_layernorm.weight'], // rms_ffn
    [hiddenDim, dim, 'mlp.gate_proj.weight'], // w1
    [dim, hiddenDim, 'mlp.down_proj.weight'], // w2
    [hiddenDim, dim, 'mlp.up_proj.weight'], // w3
  ];
  const starts = kinds.map(([rows, cols]) => skip(L * rows * cols));
  for (let l = 0; l < L; l++) {
    kinds.forEach(([rows, cols, suffix], k) => put(layer(l, suffix), rows === 1 ? [cols] : [rows, cols], starts[k]! + l * rows * cols * 4));
  }
  put('model.norm.weight', [dim], skip(dim));
  skip(seqLen * hd); // freq_cis_real and freq_cis_imag, [seq, hd/2] each: recomputed by the model
  if (!header.sharedClassifier) put('lm_head.weight', [V, dim], skip(V * dim));

  return { file, header, config: configFromLlama2c(header, file), tensors, ropeInterleaved: true };
}

/** llama2.c's fixed hyperparameters: RMSNorm eps 1e-5, RoPE theta 10000 on interleaved pairs, SwiGLU, BOS 1, EOS 2. */
export function configFromLlama2c(h: Llama2cHeader, file: string): ModelConfig {
  return makeConfig({
    arch: 'llama', vocabSize: h.vocabSize, dModel: h.dim, nLayers: h.nLayers, nHeads: h.nHeads, nKvHeads: h.nKvHeads,
    headDim: h.dim / h.nHeads, ffnDim: h.hiddenDim, maxPos: h.seqLen, normEps: 1e-5, norm: 'rms', act: 'silu',
    ropeTheta: 10000, ropeStyle: 'interleaved', ropeScaling: null, slidingWindow: null, qkvBias: false,
    tiedEmbeddings: h.sharedClassifier, bosId: 1, eosId: [2],
  }, file);
}

// ---- tokenizer.bin ------------------------------------------------------------------------------------------

export interface TokenizerBin {
  file: string;
  maxTokenLength: number;
  /** Raw bytes of each token as stored (' ' for '▁', "\n<s>\n" for BOS). */
  pieces: Uint8Array[];
  scores: Float32Array;
}

/**
 * Read a llama2.c tokenizer.bin. The file does not store the vocabulary size: pass it (from the checkpoint header)
 * to check that the file ends exactly after that many tokens, or omit it to read tokens until the end of the file.
 */
export function readTokenizerBin(path: string, vocabSize?: number): TokenizerBin {
  const r = new BinaryReader(bufferSource(readFileSync(path), path));
  const maxTokenLength = r.i32('max_token_length');
  if (maxTokenLength <= 0 || maxTokenLength > 1 << 16) {
    throw new FormatError(path, `max_token_length ${maxTokenLength} is out of range`, 'this is not a llama2.c tokenizer.bin');
  }
  const pieces: Uint8Array[] = [];
  const scores: number[] = [];
  for (let i = 0; vocabSize === undefined ? r.remaining > 0 : i < vocabSize; i++) {
    scores.push(r.f32(`score of token ${i}`));
    const len = r.i32(`length of token ${i}`);
    if (len < 0 || len > maxTokenLength) {
      throw new FormatError(path, `token ${i} has length ${len} (max_token_length ${maxTokenLength})`, 'the file is corrupt');
    }
    pieces.push(new Uint8Array(r.bytes(len, `bytes of token ${i}`)));
  }
  if (r.remaining !== 0) {
    throw new FormatError(path, `${r.remaining} bytes left after ${vocabSize} tokens`,
      'the tokenizer has more tokens than the model vocabulary: is it the tokenizer for this checkpoint?');
  }
  return { file: path, maxTokenLength, pieces, scores: Float32Array.from(scores) };
}
