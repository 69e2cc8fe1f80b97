/**
 * SentencePiece BPE (the Llama 1/2, Mistral, TinyLlama, llama2.c tokenizers), written to match the reference C++
 * implementation (google/sentencepiece bpe_model.cc, normalizer.cc, sentencepiece_processor.cc Decode).
 *
 * Encode: normalize (with remove_extra_whitespaces: drop leading/trailing U+0020 and collapse runs of them; with
 * add_dummy_prefix: put one space in front of non-empty text; then every ' ' becomes '▁'), split into code points,
 * merge by BPE, then map each symbol to its id, falling back to <0xXX> byte pieces (or <unk>) for symbols not in
 * the vocabulary. Only U+0020 counts as whitespace here, so '\n' and '\t' survive, as in SentencePiece.
 *
 * Merge priority: by piece score (SentencePiece's model, llama2.c's tokenizer.bin, GGUF 'llama' vocab), or by the
 * rank of the pair in a merges list (a tokenizer.json converted from a SentencePiece model; its merges are ordered
 * by score, so both give the same result on the reference set).
 *
 * Decode: control pieces are invisible, byte pieces are collected into UTF-8 (one U+FFFD per invalid byte), '▁'
 * becomes ' ', and the dummy-prefix space is removed from the start: SentencePiece strips one leading '▁' per piece
 * while nothing has been output yet, and with remove_extra_whitespaces it keeps stripping until a piece yields text.
 */
import { TokenizerError } from '../tensor/errors.js';
import { bpeMerge, type PairPriority } from './bpe-merge.js';
import type { TokenizerBin } from './llama2c.js';
import type { AddedVocab } from './tokenizer-added.js';
import { preTokenize, type Splitter } from './tokenizer-pretok.js';
import { checkId, decodeUtf8Lenient, type EncodeOptions, type Tokenizer } from './tokenizer.js';

/** SentencePiece piece types (sentencepiece_model.proto ModelProto.SentencePiece.Type), also used by GGUF. */
export enum PieceType {
  Normal = 1,
  Unknown = 2,
  Control = 3,
  UserDefined = 4,
  Unused = 5,
  Byte = 6,
}

export interface SpmOptions {
  pieces: readonly string[];
  scores: ArrayLike<number>;
  types: ArrayLike<number>;
  bosId: number;
  eosId: number;
  unkId: number;
  addBos: boolean;
  addDummyPrefix: boolean;
  removeExtraWhitespaces: boolean;
  /** Rank-based merging (tokenizer.json): "left right" -> rank. Without it pieces merge by score. */
  mergeRanks?: Map<string, number>;
  /** tokenizer.json: Unicode normalization before the '▁' handling. */
  unicode?: (text: string) => string;
  /** tokenizer.json: pre-tokenizer steps run on the '▁'-normalized text (BPE never merges across pieces). */
  preTokenizer?: readonly Splitter[];
  /** tokenizer.json: added tokens cut out of the text first; each stretch between them is normalized alone. */
  added?: AddedVocab;
  /** Names the source in errors. */
  source: string;
}

const SPACE = '▁';
const BYTE_PIECE = /^<0x([0-9A-Fa-f]{2})>$/;


export class SpmTokenizer implements Tokenizer {
  readonly vocabSize: number;
  readonly bosId: number;
  readonly eosId: number;
  readonly addBos: boolean;
  private readonly pieceToId = new Map<string, number>();
  private readonly byteIds = new Int32Array(256).fill(-1);
  private readonly byteOf: Int16Array;
  private readonly priority: PairPriority;
  /** Characters after which a '▁' does not start an independent word (see the constructor). */
  private readonly crossers = new Set<string>();
  /** Words merge independently; their ids are cached, as running text repeats its words. */
  private readonly cache = new Map<string, number[]>();

  constructor(private readonly o: SpmOptions) {
    const n = o.pieces.length;
    if (o.scores.length !== n || o.types.length !== n) {
      throw new TokenizerError(`${n} pieces but ${o.scores.length} scores and ${o.types.length} types`, 'the vocabulary is corrupt', o.source);
    }
    this.vocabSize = n;
    this.bosId = o.bosId;
    this.eosId = o.eosId;
    this.addBos = o.addBos;
    for (const id of [o.bosId, o.eosId, o.unkId]) checkId(id, n, o.source);
    this.byteOf = new Int16Array(n).fill(-1);
    for (let id = 0; id < n; id++) {
      const p = o.pieces[id]!;
      const t = o.types[id]!;
      if (t === PieceType.Byte) {
        const m = BYTE_PIECE.exec(p);
        if (!m) throw new TokenizerError(`byte piece ${id} is ${JSON.stringify(p)}, not <0xXX>`, 'the vocabulary is corrupt', o.source, id);
        const b = parseInt(m[1]!, 16);
        this.byteIds[b] = id;
        this.byteOf[id] = b;
      } else if ((t === PieceType.Normal || t === PieceType.UserDefined) && !this.pieceToId.has(p)) {
        this.pieceToId.set(p, id);
      }
    }
    // BPE only ever produces vocabulary pieces, so a merge can cross the start of a word (a '▁' after character c)
    // only if some piece holds "c▁". SentencePiece's split_by_whitespace (its default) leaves almost none (Llama 2:
    // none; Gemma 3: '>▁</'): words are merged alone, and cached, everywhere else.
    for (const p of o.pieces) {
      for (let j = 1; j < p.length; j++) if (p[j] === SPACE && p[j - 1] !== SPACE) this.crossers.add(p[j - 1]!);
    }
    const ranks = o.mergeRanks;
    this.priority = ranks
      ? (l, r) => ranks.get(`${l} ${r}`)
      : (l, r) => {
        const id = this.pieceToId.get(l + r);
        return id === undefined ? undefined : -o.scores[id]!;
      };
  }

  /** The vocabulary and flags this tokenizer was built from (for writing it to another format). */
  get spec(): Readonly<SpmOptions> {
    return this.o;
  }

  normalize(text: string): string {
    let t = text;
    if (this.o.removeExtraWhitespaces) t = t.replace(/ {2,}/g, ' ').replace(/^ | $/g, '');
    if (t.length > 0 && this.o.addDummyPrefix) t = ' ' + t;
    return t.replaceAll(' ', SPACE);
  }

  encode(text: string, opts: EncodeOptions = {}): number[] {
    const ids: number[] = [];
    if (opts.bos ?? this.addBos) ids.push(this.bosId);
    const plain = opts.plain === true;
    const segments = this.o.added ? this.o.added.split(text, plain) : [{ text }];
    for (const seg of segments) {
      if ('id' in seg) {
        ids.push(seg.id);
        continue;
      }
      const norm = this.normalize(this.o.unicode ? this.o.unicode(seg.text) : seg.text);
      const parts = this.o.added ? this.o.added.matchNormalized(norm, plain) : [{ text: norm }];
      for (const part of parts) {
        if ('id' in part) ids.push(part.id);
        else if (this.o.preTokenizer) for (const piece of preTokenize(this.o.preTokenizer, part.text)) this.encodePiece(piece, ids);
        else this.encodePiece(part.text, ids);
      }
    }
    return ids;
  }

  private encodePiece(norm: string, ids: number[]): void {
    if (norm.length === 0) return;
    // words: a run of '▁' and what follows it, up to the next '▁' after a character no piece puts before a '▁'
    let start = 0;
    for (let i = 1; i <= norm.length; i++) {
      if (i < norm.length && !(norm[i] === SPACE && norm[i - 1] !== SPACE && !this.crossers.has(norm[i - 1]!))) continue;
      const word = norm.slice(start, i);
      const hit = this.cache.get(word);
      if (hit) for (const id of hit) ids.push(id);
      else {
        const out: number[] = [];
        this.encodeSymbols(word, out);
        if (this.cache.size < 100_000) this.cache.set(word, out);
        for (const id of out) ids.push(id);
      }
      start = i;
    }
  }

  private encodeSymbols(norm: string, ids: number[]): void {
    for (const sym of bpeMerge(Array.from(norm), this.priority)) {
      const id = this.pieceToId.get(sym);
      if (id !== undefined) {
        ids.push(id);
        continue;
      }
      const bytes = Buffer.from(sym, 'utf8');
      if (bytes.every((b) => this.byteIds[b]! >= 0)) for (const b of bytes) ids.push(this.byteIds[b]!);
      else ids.push(this.o.unkId);
    }
  }

  decode(ids: readonly number[]): string {
    let text = '';
    let bytes: number[] = [];
    let isBosWs = true;
    let bosWsSeen = false;
    for (const id of ids) {
      if (id >= this.vocabSize && id < this.paddedSize && Number.isInteger(id)) continue; // embedding padding
      checkId(id, this.vocabSize, this.o.source);
      const b = this.byteOf[id]!;
      if (b >= 0) {
        bytes.push(b);
        continue;
      }
      if (bytes.length > 0) {
        text += decodeUtf8Lenient(bytes);
        bytes = [];
      }
      if (bosWsSeen || text.length > 0) isBosWs = false;
      const type = this.o.types[id];
      if (type === PieceType.Control || type === PieceType.Unused) { // UNUSED: a padded vocabulary's [PAD{id}]
        bosWsSeen = false;
        continue;
      }
      if (type === PieceType.Unknown) {
        text += ' \u2047 ';
        bosWsSeen = false;
        continue;
      }
      let piece = this.o.pieces[id]!;
      bosWsSeen = false;
      if (isBosWs && (this.o.addDummyPrefix || this.o.removeExtraWhitespaces) && piece.startsWith(SPACE)) {
        piece = piece.slice(SPACE.length);
        bosWsSeen = !this.o.removeExtraWhitespaces;
      }
      text += piece.replaceAll(SPACE, ' ');
    }
    if (bytes.length > 0) text += decodeUtf8Lenient(bytes);
    return text;
  }

  idToPiece(id: number): string {
    checkId(id, this.vocabSize, this.o.source);
    return this.o.pieces[id]!;
  }

  private paddedSize = 0;
  padTo(modelVocab: number): void {
    this.paddedSize = modelVocab;
  }
}

/**
 * A SentencePiece tokenizer from llama2.c's tokenizer.bin. The file stores raw bytes with '▁' written as ' ' and
 * BOS/EOS as "\n<s>\n"/"\n</s>\n"; we restore the SentencePiece pieces and infer the types llama2.c's exporter
 * flattened away (0 = <unk>, 1 = <s>, 2 = </s>, <0xXX> = byte pieces). The file carries no normalizer flags: the
 * defaults are SentencePiece's (add_dummy_prefix and remove_extra_whitespaces on), which llama2.c's own trained
 * vocabularies use; Meta's Llama 2 tokenizer has remove_extra_whitespaces off, pass it explicitly for that one.
 */
export function spmFromTokenizerBin(bin: TokenizerBin, opts: { removeExtraWhitespaces?: boolean; addBos?: boolean } = {}): SpmTokenizer {
  const pieces = bin.pieces.map((b, id) => {
    const s = Buffer.from(b).toString('utf8');
    if (id === 1 || id === 2) return s.trim();
    return s.replaceAll(' ', SPACE);
  });
  const types = pieces.map((p, id) => (id === 0 ? PieceType.Unknown : id <= 2 ? PieceType.Control : BYTE_PIECE.test(p) ? PieceType.Byte : PieceType.Normal));
  return new SpmTokenizer({
    pieces, scores: bin.scores, types, bosId: 1, eosId: 2, unkId: 0, addBos: opts.addBos ?? true,
    addDummyPrefix: true, removeExtraWhitespaces: opts.removeExtraWhitespaces ?? true, source: bin.file,
  });
}
