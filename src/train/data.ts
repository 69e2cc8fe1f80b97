/**
 * Training data: text files, folders of them and JSONL, tokenized once into a cached binary shard, packed into
 * fixed-length sequences that start with BOS, split into train / held-out validation, and served in a seeded
 * shuffled order whose position can be saved and restored exactly.
 *
 * Glossary:
 *   document   one text file, or one JSONL record's text field. Each document is encoded with BOS in front.
 *   stream     all documents' tokens concatenated (BOS separates them) and stored in the shard.
 *   sequence   T + 1 tokens: BOS, then the next T tokens of the stream (inputs are the first T, targets the last T).
 *   packing    where sequences start. `stream` (the default): sequence i covers stream[i * T, (i + 1) * T), so it
 *              starts anywhere in a document; packing never pads and never drops a token except the final partial
 *              sequence. `document`: every sequence starts at a document's first token, so a document that fits in
 *              T tokens is seen whole, from position 1 (after BOS) as at inference, in one sequence; the document a
 *              sequence's end cuts through starts the next sequence again (its head is read twice), and a document
 *              longer than T continues in the next sequence. Stream packing almost never shows a long-range
 *              dependency whole (a passkey 2,000 tokens before its question sits in one 2,048-token window about
 *              3% of the time); document packing always does, for about half a document of repeated tokens per
 *              sequence.
 *   split      the last `valFraction` of the sequences (the end of the stream) is held out for validation.
 *
 * The shard file (`tokens-<key>.bin` in the cache dir): magic "RFTOKENS", u32 version, u32 bytes per token (2 or 4),
 * u32 count, u32 reserved, then the tokens little-endian. `<key>` hashes the sources' contents and the tokenizer's
 * identity, so a changed file or tokenizer gets a fresh shard and an unchanged one is reused without re-tokenizing.
 * The shard is read straight into one typed array (Uint16Array when the vocabulary fits); the corpus is never held
 * as a JS number array (only each piece while it is encoded) and never twice.
 */
import { createHash } from 'node:crypto';
import { closeSync, existsSync, fstatSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';
import type { Tokenizer } from '../io/tokenizer.js';
import { writeFileAtomic } from '../io/tensor-file.js';
import { ArgumentError, FormatError } from '../tensor/errors.js';
import { Rng } from '../tensor/index.js';

const MAGIC = 'RFTOKENS';
const VERSION = 1;
const HEADER = 24;
const TEXT_EXT = /\.(txt|md|text)$/i;
const JSONL_EXT = /\.jsonl$/i;
/** Text files are encoded in pieces of about this many characters, cut at blank lines (encoding cost stays linear). */
const PIECE_CHARS = 1 << 16;

export interface SourceOptions {
  /** JSONL field holding the text (default "text"). */
  textKey?: string;
}

/** The files a data path names: itself, or every .txt/.md/.jsonl file below a folder, sorted. */
export function listSources(path: string): string[] {
  if (!existsSync(path)) throw new ArgumentError('data', 'path', `${path} does not exist`, 'pass a text file, a .jsonl file or a folder of them');
  if (!statSync(path).isDirectory()) return [resolve(path)];
  const out: string[] = [];
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name);
      if (statSync(p).isDirectory()) walk(p);
      else if (TEXT_EXT.test(name) || JSONL_EXT.test(name)) out.push(resolve(p));
    }
  };
  walk(path);
  if (out.length === 0) throw new ArgumentError('data', 'path', `${path} holds no .txt, .md or .jsonl files`);
  return out;
}

/** The documents of one source file. */
export function* documents(file: string, opts: SourceOptions = {}): Generator<string> {
  const text = readFileSync(file, 'utf8');
  if (!JSONL_EXT.test(file)) {
    yield text;
    return;
  }
  const key = opts.textKey ?? 'text';
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i]!.trim();
    if (!line) continue;
    let rec: unknown;
    try {
      rec = JSON.parse(line);
    } catch (e) {
      throw new FormatError(file, `line ${i + 1} is not JSON (${(e as Error).message})`, 'one JSON object per line');
    }
    const v = (rec as Record<string, unknown> | null)?.[key];
    if (typeof v !== 'string') {
      throw new FormatError(file, `line ${i + 1} has no string field "${key}"`, 'choose the field with --text-key');
    }
    yield v;
  }
}

/** A tokenizer's identity for the cache key: vocabulary size, BOS and the ids of a probe string. */
function tokenizerSignature(tok: Tokenizer): string {
  return JSON.stringify([tok.vocabSize, tok.bosId, tok.encode('Once upon a time, 1234 "Hello" — ünïcode!\n\n\tend')]);
}

/** Cache key of (sources, tokenizer): hashes file contents, so a touched but unchanged file still hits. */
export function shardKey(files: readonly string[], tok: Tokenizer, opts: SourceOptions = {}): string {
  const h = createHash('sha256');
  h.update(`v${VERSION}\0${tokenizerSignature(tok)}\0${opts.textKey ?? 'text'}\0`);
  for (const f of files) {
    h.update(f);
    h.update('\0');
    h.update(readFileSync(f));
    h.update('\0');
  }
  return h.digest('hex').slice(0, 20);
}

/** Splits a long text into pieces of about PIECE_CHARS, cut after a blank line when there is one. */
function pieces(text: string): string[] {
  const out: string[] = [];
  let at = 0;
  while (at < text.length) {
    let end = Math.min(text.length, at + PIECE_CHARS);
    if (end < text.length) {
      const cut = text.lastIndexOf('\n\n', end);
      if (cut > at) end = cut + 2;
    }
    out.push(text.slice(at, end));
    at = end;
  }
  return out;
}

/** Growable typed buffer of token ids. */
class TokenBuffer {
  data: Uint16Array | Int32Array;
  length = 0;
  constructor(readonly wide: boolean) {
    this.data = wide ? new Int32Array(1 << 16) : new Uint16Array(1 << 16);
  }
  push(ids: readonly number[]): void {
    if (this.length + ids.length > this.data.length) {
      const n = Math.max(this.data.length * 2, this.length + ids.length);
      const d = this.wide ? new Int32Array(n) : new Uint16Array(n);
      d.set(this.data.subarray(0, this.length));
      this.data = d;
    }
    this.data.set(ids, this.length);
    this.length += ids.length;
  }
}

/** Tokenizes the sources into one stream (BOS before each document). */
export function tokenizeSources(files: readonly string[], tok: Tokenizer, opts: SourceOptions = {}): Uint16Array | Int32Array {
  const buf = new TokenBuffer(tok.vocabSize > 65535);
  for (const f of files) {
    for (const doc of documents(f, opts)) {
      pieces(doc).forEach((p, i) => buf.push(tok.encode(p, { bos: i === 0 })));
    }
  }
  return buf.data.subarray(0, buf.length); // a view: no second copy of the stream
}

export function writeShard(path: string, tokens: Uint16Array | Int32Array): void {
  const head = Buffer.alloc(HEADER);
  head.write(MAGIC, 0, 'latin1');
  head.writeUInt32LE(VERSION, 8);
  head.writeUInt32LE(tokens.BYTES_PER_ELEMENT, 12);
  head.writeUInt32LE(tokens.length, 16);
  writeFileAtomic(path, [head, new Uint8Array(tokens.buffer, tokens.byteOffset, tokens.byteLength)]);
}

export function readShard(path: string): Uint16Array | Int32Array {
  // read straight into the typed array's (aligned) buffer: the file's bytes are never held twice
  const fd = openSync(path, 'r');
  try {
    const size = fstatSync(fd).size;
    const head = Buffer.alloc(HEADER);
    if (size < HEADER || readSync(fd, head, 0, HEADER, 0) !== HEADER || head.toString('latin1', 0, 8) !== MAGIC) {
      throw new FormatError(path, 'is not a token shard (bad magic)', 'delete it; it is rebuilt from the sources');
    }
    const version = head.readUInt32LE(8), width = head.readUInt32LE(12), n = head.readUInt32LE(16);
    if (version !== VERSION) throw new FormatError(path, `shard version ${version}, expected ${VERSION}`, 'delete it; it is rebuilt');
    if ((width !== 2 && width !== 4) || size !== HEADER + n * width) {
      throw new FormatError(path, `has ${size} bytes, expected ${HEADER + n * width} (${n} tokens of ${width} bytes)`,
        'the shard is truncated; delete it');
    }
    const out = width === 2 ? new Uint16Array(n) : new Int32Array(n);
    const bytes = new Uint8Array(out.buffer);
    let off = 0;
    while (off < bytes.length) {
      const got = readSync(fd, bytes, off, bytes.length - off, HEADER + off);
      if (got === 0) throw new FormatError(path, `ended after ${off} of ${bytes.length} token bytes`, 'the shard is truncated; delete it');
      off += got;
    }
    return out;
  } finally {
    closeSync(fd);
  }
}

export interface Shard {
  tokens: Uint16Array | Int32Array;
  path: string;
  key: string;
  /** True when an existing shard was reused. */
  cached: boolean;
}

/** Tokenizes a data path once into `cacheDir`, or reuses the shard when sources and tokenizer are unchanged. */
export function loadShard(dataPath: string, tok: Tokenizer, cacheDir: string, opts: SourceOptions = {}): Shard {
  const files = listSources(dataPath);
  const key = shardKey(files, tok, opts);
  const path = join(cacheDir, `tokens-${key}.bin`);
  if (existsSync(path)) return { tokens: readShard(path), path, key, cached: true };
  mkdirSync(cacheDir, { recursive: true });
  const tokens = tokenizeSources(files, tok, opts);
  writeShard(path, tokens);
  return { tokens, path, key, cached: false };
}

/** Saved position of a Batcher: resume reproduces the same batches from here on. */
export interface DataPosition {
  epoch: number;
  /** Next index into this epoch's permutation. */
  cursor: number;
  /** RNG state from which this epoch's permutation was drawn. */
  epochRng: number[];
}

export type Packing = 'stream' | 'document';

export interface PackOptions {
  seq: number;
  bos: number;
  /** Fraction of sequences (the end of the stream) held out (default 0.1). */
  valFraction?: number;
  /** Where sequences start (default `stream`; see the glossary). */
  packing?: Packing;
}

/**
 * Document packing: the stream offset of each sequence's first target. `tokens[b - 1]` is a document's BOS for
 * every base b except the continuations of documents longer than T.
 */
export function documentBases(tokens: Uint16Array | Int32Array, T: number, bos: number): Float64Array {
  const n = tokens.length;
  const starts: number[] = []; // BOS offsets: document k's tokens are [starts[k] + 1, starts[k + 1])
  for (let i = 0; i < n; i++) if (tokens[i] === bos) starts.push(i);
  const out: number[] = [];
  let b = starts[0] === 0 ? 1 : 0;
  let k = 0; // the document holding offset b
  while (b + T <= n) {
    out.push(b);
    const e = b + T;
    while (k + 1 < starts.length && starts[k + 1]! <= e) k++;
    // the document holding e began inside this sequence: it starts the next one whole; else (a long document that
    // began at or before b) the next sequence continues it
    const s = starts[k];
    b = s !== undefined && s >= b && s <= e ? s + 1 : e;
  }
  return Float64Array.from(out);
}

/** Fixed-length sequences over a token stream; the last ones are the validation split. */
export class PackedData {
  readonly seq: number;
  readonly nSeq: number;
  readonly nVal: number;
  readonly nTrain: number;
  /** Document packing: each sequence's first stream offset (stream packing: i * T, not stored). */
  private readonly bases: Float64Array | null;
  constructor(readonly tokens: Uint16Array | Int32Array, readonly opts: PackOptions) {
    this.seq = opts.seq;
    if (!(Number.isInteger(this.seq) && this.seq >= 1)) throw new ArgumentError('data', 'seq', `= ${this.seq} must be a positive integer`);
    const packing = opts.packing ?? 'stream';
    if (packing !== 'stream' && packing !== 'document') {
      throw new ArgumentError('data', 'packing', `= ${String(packing)} is not stream or document`);
    }
    this.bases = packing === 'document' ? documentBases(tokens, this.seq, opts.bos) : null;
    this.nSeq = this.bases ? this.bases.length : Math.floor(tokens.length / this.seq);
    const vf = opts.valFraction ?? 0.1;
    if (!(vf >= 0 && vf < 1)) throw new ArgumentError('data', 'valFraction', `= ${vf} must be in [0, 1)`);
    this.nVal = vf > 0 ? Math.max(1, Math.round(this.nSeq * vf)) : 0;
    this.nTrain = this.nSeq - this.nVal;
    if (this.nTrain < 1) {
      throw new ArgumentError('data', 'tokens', `${tokens.length} tokens make ${this.nSeq} sequences of ${this.seq}, too few to train on`,
        'pass more text or a shorter --seq');
    }
  }

  /** Writes sequence i (BOS + T tokens) as inputs (T) and targets (T) at row r of a batch. */
  fill(i: number, inputs: Int32Array, targets: Int32Array, row: number): void {
    const T = this.seq, s = this.tokens, o = row * T, base = this.bases ? this.bases[i]! : i * T;
    inputs[o] = this.opts.bos;
    for (let t = 0; t < T; t++) {
      const tok = s[base + t]!;
      if (t + 1 < T) inputs[o + t + 1] = tok;
      targets[o + t] = tok;
    }
  }

  /** Validation batches (in order; at most maxBatches). */
  *valBatches(B: number, maxBatches = Infinity): Generator<Batch> {
    for (let b = 0, i = this.nTrain; b < maxBatches && i < this.nSeq; b++) {
      const rows = Math.min(B, this.nSeq - i);
      const batch = { inputs: new Int32Array(rows * this.seq), targets: new Int32Array(rows * this.seq), B: rows, T: this.seq };
      for (let r = 0; r < rows; r++) this.fill(i + r, batch.inputs, batch.targets, r);
      i += rows;
      yield batch;
    }
  }
}

export interface Batch {
  inputs: Int32Array;
  targets: Int32Array;
  B: number;
  T: number;
}

/** Seeded shuffled training batches; every epoch draws a fresh permutation of the training sequences. */
export class Batcher {
  private rng: Rng;
  private perm: Int32Array = new Int32Array(0);
  private pos: DataPosition;

  constructor(readonly data: PackedData, readonly batch: number, seed: number, at?: DataPosition) {
    this.rng = new Rng(seed);
    if (at) {
      this.rng.setState(Uint32Array.from(at.epochRng));
      this.pos = { ...at, epochRng: [...at.epochRng] };
      this.drawPermutation();
    } else {
      this.pos = { epoch: 0, cursor: 0, epochRng: [...this.rng.getState()] };
      this.drawPermutation();
    }
  }

  private drawPermutation(): void {
    const p = Array.from({ length: this.data.nTrain }, (_, i) => i);
    this.rng.shuffle(p);
    this.perm = Int32Array.from(p);
  }

  position(): DataPosition {
    return { ...this.pos, epochRng: [...this.pos.epochRng] };
  }

  next(): Batch {
    const T = this.data.seq, B = this.batch;
    const batch = { inputs: new Int32Array(B * T), targets: new Int32Array(B * T), B, T };
    for (let r = 0; r < B; r++) {
      if (this.pos.cursor >= this.perm.length) {
        this.pos = { epoch: this.pos.epoch + 1, cursor: 0, epochRng: [...this.rng.getState()] };
        this.drawPermutation();
      }
      this.data.fill(this.perm[this.pos.cursor++]!, batch.inputs, batch.targets, r);
    }
    return batch;
  }
}
