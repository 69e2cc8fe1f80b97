/**
 * Byte-level BPE (GPT-2, and with other split patterns Llama 3 and Qwen2).
 *
 * Encode: split the text with the pre-tokenizer regex, map each piece's UTF-8 bytes to printable characters with
 * GPT-2's bytes_to_unicode table (so that every byte is a vocabulary symbol and no byte is ever unknown), merge by
 * the rank of each pair in the merges list, and look the symbols up. Decode is the inverse: concatenate the pieces,
 * map characters back to bytes, decode UTF-8 (invalid bytes become U+FFFD, as in Hugging Face tokenizers).
 */
import { TokenizerError } from '../tensor/errors.js';
import { bpeMerge } from './bpe-merge.js';
import type { AddedVocab } from './tokenizer-added.js';
import { preTokenize, type Splitter } from './tokenizer-pretok.js';
import { checkId, pushAll, type EncodeOptions, type Tokenizer } from './tokenizer.js';

// the split patterns byte-level tokenizers use, where test/fuzz imports them from
export { backtrackingRisk, compileSplitPattern, GPT2_PATTERN, LLAMA3_PATTERN, QWEN2_PATTERN } from './split-pattern.js';

/** GPT-2's bytes_to_unicode: printable bytes map to themselves, the rest to code points from 256 upwards. */
function byteTables(): { toChar: string[]; toByte: Map<string, number> } {
  const toChar: string[] = new Array(256);
  let extra = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    toChar[b] = String.fromCodePoint(printable ? b : 256 + extra++);
  }
  return { toChar, toByte: new Map(toChar.map((c, b) => [c, b])) };
}
const BYTES = byteTables();

export interface ByteLevelOptions {
  /** Piece of each id (byte-level strings, e.g. 'Ġthe'). */
  tokens: readonly string[];
  /** "left right" -> rank (lower merges first). */
  mergeRanks: Map<string, number>;
  pattern: RegExp;
  /** The pattern's source string as given (before compileSplitPattern), to name it in other formats. */
  patternSource: string;
  bosId: number;
  eosId: number;
  addBos: boolean;
  /** Ids that decode to no text (special/control tokens). */
  controlIds: ReadonlySet<number>;
  /** Hugging Face ByteLevel add_prefix_space: put a space before text that does not start with one. */
  addPrefixSpace?: boolean;
  /**
   * A tokenizer.json's pre-tokenizer steps (tokenizer-pretok.ts). When given they replace `pattern` and
   * `addPrefixSpace` for splitting (the ByteLevel step in them splits and adds the prefix space itself).
   */
  preTokenizer?: readonly Splitter[];
  /** Unicode normalization applied to each segment before splitting (Qwen's NFC). */
  normalize?: (text: string) => string;
  /** BPE model `ignore_merges` (Llama 3): a word that is itself in the vocabulary is one token, unmerged. */
  ignoreMerges?: boolean;
  /** Added tokens cut out of the text before splitting (tokenizer.json). */
  added?: AddedVocab;
  /** llama.cpp's tokenizer.ggml.pre name, when the split is not one pattern (SmolLM2's Digits + ByteLevel: 'smollm'). */
  ggufPre?: string;
  /** False when the tokenizer has no BOS token at all (Qwen): `encode(..., { bos: true })` then adds nothing. */
  hasBos?: boolean;
  source: string;
}

export class ByteLevelTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly addBos: boolean;
  private readonly toId = new Map<string, number>();
  /** Pre-tokenized words recur constantly in running text; caching their ids is most of the speed. */
  private readonly cache = new Map<string, number[]>();

  constructor(private readonly o: ByteLevelOptions) {
    this.vocabSize = o.tokens.length;
    this.bosId = o.bosId;
    this.eosId = o.eosId;
    this.addBos = o.addBos;
    o.tokens.forEach((t, id) => {
      if (!this.toId.has(t)) this.toId.set(t, id);
    });
    for (const id of [o.bosId, o.eosId]) checkId(id, this.vocabSize, o.source);
  }

  /** The vocabulary and settings this tokenizer was built from (for writing it to another format). */
  get spec(): Readonly<ByteLevelOptions> {
    return this.o;
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const ids: number[] = [];
    if ((opts.bos ?? this.addBos) && this.o.hasBos !== false) ids.push(this.bosId);
    const segments = this.o.added ? this.o.added.split(text, opts.plain === true) : [{ text }];
    for (const seg of segments) {
      if ('id' in seg) ids.push(seg.id);
      else this.encodeSegment(seg.text, opts.plain === true, ids);
    }
    return ids;
  }

  /** One stretch of text between added tokens: normalize, split into words, BPE each word. */
  private encodeSegment(text: string, plain: boolean, ids: number[]): void {
    const o = this.o;
    const norm = o.normalize ? o.normalize(text) : text;
    const parts = o.added ? o.added.matchNormalized(norm, plain) : [{ text: norm }];
    for (const part of parts) {
      if ('id' in part) {
        ids.push(part.id);
      } else if (o.preTokenizer) {
        for (const word of preTokenize(o.preTokenizer, part.text)) pushAll(ids, this.encodeWord(word));
      } else {
        const t = o.addPrefixSpace && part.text.length > 0 && !part.text.startsWith(' ') ? ' ' + part.text : part.text;
        for (const m of t.matchAll(o.pattern)) pushAll(ids, this.encodeWord(m[0]));
      }
    }
  }

  private encodeWord(word: string): number[] {
    const hit = this.cache.get(word);
    if (hit) return hit;
    let chars = '';
    for (const b of Buffer.from(word, 'utf8')) chars += BYTES.toChar[b]!;
    const whole = this.o.ignoreMerges ? this.toId.get(chars) : undefined;
    if (whole !== undefined) return [whole];
    const ids = bpeMerge(Array.from(chars), (l, r) => this.o.mergeRanks.get(`${l} ${r}`)).map((sym) => {
      const id = this.toId.get(sym);
      if (id === undefined) {
        throw new TokenizerError(`merged symbol ${JSON.stringify(sym)} is not in the vocabulary`, 'the merges and vocabulary do not match', this.o.source);
      }
      return id;
    });
    if (this.cache.size < 100_000) this.cache.set(word, ids);
    return ids;
  }

  decode(ids: readonly number[]): string {
    const bytes: number[] = [];
    for (const id of ids) {
      if (id >= this.vocabSize && id < this.paddedSize && Number.isInteger(id)) continue; // embedding padding
      checkId(id, this.vocabSize, this.o.source);
      if (this.o.controlIds.has(id)) continue;
      const verbatim = this.o.added?.textOf.get(id);
      if (verbatim !== undefined) {
        for (const b of Buffer.from(verbatim, 'utf8')) bytes.push(b);
        continue;
      }
      for (const ch of this.o.tokens[id]!) {
        const b = BYTES.toByte.get(ch);
        if (b !== undefined) bytes.push(b);
        else for (const x of Buffer.from(ch, 'utf8')) bytes.push(x); // added tokens may hold plain text
      }
    }
    return new TextDecoder('utf-8', { ignoreBOM: true }).decode(new Uint8Array(bytes));
  }

  idToPiece(id: number): string {
    checkId(id, this.vocabSize, this.o.source);
    return this.o.tokens[id]!;
  }

  private paddedSize = 0;
  padTo(modelVocab: number): void {
    this.paddedSize = modelVocab;
  }
}
