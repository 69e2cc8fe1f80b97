/**
 * Hugging Face tokenizer.json (+ optional tokenizer_config.json) -> a Tokenizer.
 *
 * Only BPE models are supported, in the two families real checkpoints use:
 * - byte-level: a ByteLevel pre-tokenizer (GPT-2), alone or after Split / Digits steps (Llama 3, Qwen2/3, SmolLM2),
 *   with NFC/NFKC normalizers -> ByteLevelTokenizer running those steps (tokenizer-pretok.ts);
 * - SentencePiece-converted: a '▁' space marker from the normalizer (Prepend '▁' + Replace ' ' -> '▁', optionally
 *   preceded by Strip and a collapse of repeated spaces; Gemma: Replace only) or from a Metaspace pre-tokenizer,
 *   byte fallback -> SpmTokenizer with rank-based merges, and any Split steps run on the normalized text.
 * Added tokens are cut out of the text first, as the library does (tokenizer-added.ts); BOS and EOS are resolved
 * the way transformers does (tokenizer_config.json's tokens, then the post-processor's template).
 *
 * For SentencePiece-converted files we follow SentencePiece where the tokenizers library deviates from it (the
 * reference data is SentencePiece's): a Strip normalizer strips only U+0020 (SentencePiece's
 * remove_extra_whitespaces) rather than all Unicode whitespace; text that normalizes to nothing gets no '▁';
 * decoding strips the dummy-prefix space the SentencePiece way. Real Llama 2 and Gemma 3 files have no Strip and
 * encode exactly as the library (test/io/tokenizer-parity.test.ts).
 * Anything else (WordPiece, Unigram, unknown normalizers) is a TokenizerError naming the component.
 */
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { TokenizerError } from '../tensor/errors.js';
import { AddedVocab, type AddedToken } from './tokenizer-added.js';
import { compileSplitPattern, GPT2_PATTERN } from './split-pattern.js';
import { ByteLevelTokenizer } from './tokenizer-bytelevel.js';
import { buildPreTokenizer, isUnicodeForm, normalizerSteps, preTokenizerSteps, unicodeNormalizer } from './tokenizer-pretok.js';
import { PieceType, SpmTokenizer } from './tokenizer-spm.js';
import type { Tokenizer } from './tokenizer.js';
import { checkTokenizerJsonShape } from './tokenizer-json-shape.js';

type Json = Record<string, unknown>;

const BYTE_PIECE = /^<0x[0-9A-Fa-f]{2}>$/;

/** Load tokenizer.json, and tokenizer_config.json from the same folder when present. */
export function readTokenizerJson(path: string): Tokenizer {
  const parse = (p: string): Json => {
    try {
      return JSON.parse(readFileSync(p, 'utf8')) as Json;
    } catch (e) {
      throw new TokenizerError(`cannot read (${(e as Error).message})`, 'the file is missing or not JSON', p);
    }
  };
  const cfgPath = join(dirname(path), 'tokenizer_config.json');
  return tokenizerFromJson(parse(path), existsSync(cfgPath) ? parse(cfgPath) : {}, path);
}

export function tokenizerFromJson(tj: Json, config: Json, source: string): Tokenizer {
  const fail = (msg: string, hint = 'this tokenizer.json layout is not supported'): never => {
    throw new TokenizerError(msg, hint, source);
  };
  checkTokenizerJsonShape(tj, source);
  const model = (tj['model'] ?? fail('no "model"')) as Json;
  if (model['type'] !== 'BPE') fail(`model type ${JSON.stringify(model['type'])} is not supported`, 'supported: BPE (GPT-2, Llama, Mistral, Qwen2 style)');
  const vocab = (model['vocab'] ?? fail('model has no vocab')) as Record<string, number>;

  // id -> piece, from the model vocabulary plus added tokens (which may extend it).
  const pieceOf = new Map<number, string>();
  let maxId = -1;
  for (const [p, id] of Object.entries(vocab)) {
    pieceOf.set(id, p);
    if (id > maxId) maxId = id;
  }
  const addedJson = (Array.isArray(tj['added_tokens']) ? tj['added_tokens'] : []) as Json[];
  const special = new Set<number>();
  const addedTokens: AddedToken[] = [];
  for (const a of addedJson) {
    const id = a['id'] as number;
    const content = a['content'] as string;
    if (!pieceOf.has(id)) pieceOf.set(id, content);
    if (id > maxId) maxId = id;
    if (a['special'] === true) special.add(id);
    addedTokens.push({
      id, content, special: a['special'] === true, singleWord: a['single_word'] === true,
      lstrip: a['lstrip'] === true, rstrip: a['rstrip'] === true, normalized: a['normalized'] === true,
    });
  }
  if (pieceOf.size === 0) fail('the vocabulary is empty', 'the file is corrupt');
  const vocabSize = maxId + 1;
  const tokens: string[] = [];
  for (let id = 0; id < vocabSize; id++) tokens.push(pieceOf.get(id) ?? fail(`no token has id ${id}`, 'the vocabulary has holes; the file is corrupt'));
  const added = addedTokens.length > 0 ? new AddedVocab(addedTokens) : undefined;

  const mergeList = (model['merges'] ?? []) as (string | [string, string])[];
  const mergeRanks = new Map<string, number>();
  mergeList.forEach((m, i) => {
    const key = typeof m === 'string' ? m : `${m[0]} ${m[1]}`;
    if (!mergeRanks.has(key)) mergeRanks.set(key, i);
  });

  const addedId = new Map(addedTokens.map((t) => [t.content, t.id]));
  const idOf = (name: unknown): number | undefined => {
    const content = typeof name === 'string' ? name : (name as Json | null)?.['content'];
    return typeof content === 'string' ? (addedId.get(content) ?? vocab[content]) : undefined;
  };
  const { bosId, hasBos, eosId, addBos } = resolveBosEos(config, tj['post_processor'], idOf, fail);

  const pre = buildPreTokenizer(tj['pre_tokenizer'], source, (p) => p['type'] === 'Metaspace');
  const norms = normalizerSteps(tj['normalizer']);
  const unicode = unicodeNormalizer(norms);
  if (pre.byteLevel) {
    const other = norms.find((n) => !isUnicodeForm(n));
    if (other) fail(`normalizer ${JSON.stringify(other['type'])} with ByteLevel is not supported`, 'supported with ByteLevel: NFC, NFD, NFKC, NFKD');
    const patternSource = pre.patternSource ?? GPT2_PATTERN;
    return new ByteLevelTokenizer({
      tokens, mergeRanks, pattern: compileSplitPattern(patternSource, source), patternSource, bosId, eosId, addBos, hasBos,
      controlIds: special, preTokenizer: pre.steps, normalize: unicode, ignoreMerges: model['ignore_merges'] === true,
      added, source, ...(pre.digitsThenByteLevel ? { ggufPre: 'smollm' } : {}),
    });
  }

  // SentencePiece-converted: read the '▁' handling off the normalizer / Metaspace pre-tokenizer.
  const preList = preTokenizerSteps(tj['pre_tokenizer']);
  const spm = spmFlags(norms.filter((n) => !isUnicodeForm(n)), preList.filter((p) => p['type'] === 'Metaspace'), fail);
  const unkId = idOf(model['unk_token']) ?? 0;
  const types = tokens.map((p, id) => (id === unkId ? PieceType.Unknown : special.has(id) ? PieceType.Control : BYTE_PIECE.test(p) ? PieceType.Byte : PieceType.Normal));
  return new SpmTokenizer({
    pieces: tokens, scores: new Float32Array(vocabSize), types, bosId, eosId, unkId, addBos: addBos && hasBos,
    addDummyPrefix: spm.addDummyPrefix, removeExtraWhitespaces: spm.removeExtraWhitespaces, mergeRanks, source,
    unicode, preTokenizer: pre.steps.length > 0 ? pre.steps : undefined, added,
  });
}

/**
 * BOS and EOS the way transformers resolves them: tokenizer_config.json's `bos_token` / `eos_token` (a string or
 * an AddedToken object); `bos_token: null` means the model has no BOS (Qwen), never a guessed '<s>'. Without a
 * config entry, the BOS of the post-processor's template, then the conventional names. `add_bos_token` decides
 * whether encode adds it; without that key, whether the template adds one.
 */
function resolveBosEos(config: Json, postProcessor: unknown, idOf: (n: unknown) => number | undefined, fail: (m: string, h?: string) => never):
  { bosId: number; hasBos: boolean; eosId: number; addBos: boolean } {
  const templateBos = firstTemplateSpecial(postProcessor, idOf);
  const named = (key: string): number | undefined | null => {
    if (!(key in config)) return undefined;
    const v = config[key];
    if (v === null) return null;
    const id = idOf(v);
    if (id === undefined) fail(`tokenizer_config.json ${key} ${JSON.stringify(v)} is not a token of this vocabulary`, 'the tokenizer files do not belong together');
    return id;
  };
  const cfgBos = named('bos_token');
  const cfgEos = named('eos_token');
  const bos = cfgBos === null ? undefined : cfgBos ?? templateBos ?? idOf('<s>') ?? idOf('<|begin_of_text|>') ?? idOf('<bos>');
  const eosId = cfgEos ?? idOf('</s>') ?? idOf('<|endoftext|>') ?? idOf('<eos>') ?? idOf('<|end_of_text|>') ?? bos ?? 0;
  const hasBos = bos !== undefined;
  // Without a BOS the id still serves as the document separator of packed training data: <|endoftext|>, else EOS.
  const bosId = bos ?? idOf('<|endoftext|>') ?? eosId;
  const addBos = hasBos && (typeof config['add_bos_token'] === 'boolean' ? config['add_bos_token'] : templateBos !== undefined);
  return { bosId, hasBos, eosId, addBos };
}

function spmFlags(norms: Json[], metaspaces: Json[], fail: (m: string) => never): { addDummyPrefix: boolean; removeExtraWhitespaces: boolean } {
  let addDummyPrefix = false;
  let removeExtraWhitespaces = false;
  let marker = false;
  for (const n of norms) {
    const pat = n['pattern'] as Json | undefined;
    if (n['type'] === 'Strip') removeExtraWhitespaces = true;
    else if (n['type'] === 'Prepend' && n['prepend'] === '▁') addDummyPrefix = true;
    else if (n['type'] === 'Replace' && pat?.['String'] === ' ' && n['content'] === '▁') marker = true;
    else if (n['type'] === 'Replace' && pat?.['Regex'] === ' {2,}' && n['content'] === ' ') removeExtraWhitespaces = true;
    else fail(`normalizer ${JSON.stringify(n['type'])} ${JSON.stringify(pat ?? '')} is not supported for a SentencePiece-style BPE`);
  }
  for (const p of metaspaces) {
    if (p['replacement'] !== '▁') fail(`Metaspace replacement ${JSON.stringify(p['replacement'])} is not supported (only '▁')`);
    if (p['split'] === true) fail('Metaspace with split=true is not supported (SentencePiece does not split on spaces)');
    marker = true;
    const scheme = p['prepend_scheme'] ?? (p['add_prefix_space'] === false ? 'never' : 'always');
    if (scheme !== 'never') addDummyPrefix = true;
  }
  if (!marker) fail("no '▁' space handling: neither a Replace(' ', '▁') normalizer nor a Metaspace pre-tokenizer");
  return { addDummyPrefix, removeExtraWhitespaces };
}

/**
 * The first SpecialToken of a TemplateProcessing post-processor's "single" template (the BOS it adds), also inside
 * a Sequence of processors (Llama 3: Sequence[ByteLevel, TemplateProcessing]).
 */
function firstTemplateSpecial(pp: unknown, idOf: (name: string) => number | undefined): number | undefined {
  const p = pp as Json | null;
  if (p?.['type'] === 'Sequence' && Array.isArray(p['processors'])) {
    for (const inner of p['processors'] as unknown[]) {
      const id = firstTemplateSpecial(inner, idOf);
      if (id !== undefined) return id;
    }
    return undefined;
  }
  const single = p?.['single'];
  if (!Array.isArray(single) || single.length === 0) return undefined;
  const first = (single[0] as Json)['SpecialToken'] as Json | undefined;
  return first ? idOf(first['id'] as string) : undefined;
}
