/**
 * The tokenizer interface and the loader that picks an implementation from the files at hand.
 *
 * Implementations (all hand-written, exact against SentencePiece and the GPT-2 reference vectors; see
 * docs/formats.md for why no JS tokenizer library is used):
 * - SentencePiece BPE (tokenizer-spm.ts): Llama/Mistral-style vocabularies with byte fallback and the '▁' space
 *   marker, from tokenizer.json, llama2.c tokenizer.bin or a GGUF 'llama' vocab;
 * - byte-level BPE (tokenizer-bytelevel.ts): GPT-2, Llama 3 and Qwen2 style, from tokenizer.json or a GGUF 'gpt2'
 *   vocab.
 *
 * Special tokens: a tokenizer.json's added tokens are cut out of the text as Hugging Face `tokenizers` does
 * (tokenizer-added.ts), so a rendered chat template's "<|im_start|>" is one id. `encode(text, { plain: true })` keeps
 * special tokens as ordinary text (for untrusted user text; the library's `split_special_tokens`). llama2.c and GGUF
 * vocabularies carry no added-token list and never parse special tokens (as SentencePiece does).
 */
import { TokenizerError } from '../tensor/errors.js';

export interface EncodeOptions {
  /** Prepend BOS (when the tokenizer has one). Defaults to the tokenizer's own setting (`addBos`). */
  bos?: boolean;
  /** Treat special tokens written in the text as plain text instead of their ids. */
  plain?: boolean;
}

export interface Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  /** Whether this tokenizer's config asks for a BOS token in front of every sequence. */
  readonly addBos: boolean;
  encode(text: string, opts?: EncodeOptions): number[];
  /** Text of the ids. Control tokens (BOS, EOS) produce no text. Ids outside the vocabulary are TokenizerErrors. */
  decode(ids: readonly number[]): string;
  /** The vocabulary entry for `id`, as stored (with '▁' or GPT-2's byte-to-unicode characters). */
  idToPiece(id: number): string;
  /**
   * The model's embedding has `modelVocab` rows, more than the tokenizer has ids (Qwen pads 151,669 ids to
   * 151,936 rows): ids in between are padding, and decode gives them no text instead of an error.
   */
  padTo(modelVocab: number): void;
}

/** Append `src` to `dst` without spreading it into arguments (a spread of a huge array overflows the stack). */
export function pushAll(dst: number[], src: readonly number[]): void {
  for (let i = 0; i < src.length; i++) dst.push(src[i]!);
}

/** Throws a TokenizerError naming the id unless 0 <= id < vocabSize. */
export function checkId(id: number, vocabSize: number, source: string): void {
  if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
    throw new TokenizerError(`token id ${id} is outside the vocabulary (0..${vocabSize - 1})`,
      'the ids come from a different model or tokenizer', source, id);
  }
}

/**
 * Decode UTF-8 bytes the way SentencePiece does: each invalid byte becomes one U+FFFD and decoding resumes at the
 * next byte. (TextDecoder replaces maximal invalid subsequences instead, which differs on truncated sequences.)
 */
export function decodeUtf8Lenient(bytes: readonly number[] | Uint8Array): string {
  let out = '';
  let i = 0;
  const n = bytes.length;
  while (i < n) {
    const b = bytes[i]!;
    let len = 0;
    let cp = 0;
    let min = 0;
    if (b < 0x80) { len = 1; cp = b; }
    else if (b >= 0xc2 && b < 0xe0) { len = 2; cp = b & 0x1f; min = 0x80; }
    else if (b >= 0xe0 && b < 0xf0) { len = 3; cp = b & 0x0f; min = 0x800; }
    else if (b >= 0xf0 && b < 0xf5) { len = 4; cp = b & 0x07; min = 0x10000; }
    let ok = len > 0 && i + len <= n;
    for (let k = 1; ok && k < len; k++) {
      const c = bytes[i + k]!;
      if ((c & 0xc0) !== 0x80) ok = false;
      else cp = (cp << 6) | (c & 0x3f);
    }
    if (ok && len > 1 && (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))) ok = false;
    if (ok) {
      out += String.fromCodePoint(cp);
      i += len;
    } else {
      out += '\ufffd';
      i += 1;
    }
  }
  return out;
}
