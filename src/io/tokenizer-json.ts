/**
 * Hugging Face tokenizer.json (+ optional tokenizer_config.json) -> a Tokenizer.
 *
 * Only BPE models are supported, in the two shapes real checkpoints use:
 * - byte-level: pre_tokenizer ByteLevel (GPT-2), or Sequence[Split(regex), ByteLevel(use_regex false)] (Llama 3,
 *   Qwen2) -> ByteLevelTokenizer with that split pattern;
 * - SentencePiece-converted: a '▁' space marker from the normalizer (Prepend '▁' + Replace ' ' -> '▁', optionally
 *   preceded by Strip and a collapse of repeated spaces) or from a Metaspace pre-tokenizer -> SpmTokenizer with
 *   rank-based merges.
 *
 * For SentencePiece-converted files we follow SentencePiece where the tokenizers library deviates from it (the
 * reference data is SentencePiece's): a Strip normalizer strips only U+0020 (SentencePiece's
 * remove_extra_whitespaces) rather than all Unicode whitespace; text that normalizes to nothing gets no '▁';
 * decoding strips the dummy-prefix space the SentencePiece way; special tokens are not matched inside the text.
 * Anything else (WordPiece, Unigram, unknown normalizers) is a TokenizerError naming the component.
 */
import { readFileSync, existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { TokenizerError } from '../tensor/errors.js';
import { ByteLevelTokenizer, compileSplitPattern, GPT2_PATTERN } from './tokenizer-bytelevel.js';
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
  for (const [p, id] of Object.entries(vocab)) pieceOf.set(id, p);
  const added = (Array.isArray(tj['added_tokens']) ? tj['added_tokens'] : []) as Json[];
  const special = new Set<number>();
  for (const a of added) {
    const id = a['id'] as number;
    if (!pieceOf.has(id)) pieceOf.set(id, a['content'] as string);
    if (a['special'] === true) special.add(id);
  }
  if (pieceOf.size === 0) fail('the vocabulary is empty', 'the file is corrupt');
  const vocabSize = Math.max(...pieceOf.keys()) + 1;
  const tokens: string[] = [];
  for (let id = 0; id < vocabSize; id++) tokens.push(pieceOf.get(id) ?? fail(`no token has id ${id}`, 'the vocabulary has holes; the file is corrupt'));

  const mergeList = (model['merges'] ?? []) as (string | [string, string])[];
  const mergeRanks = new Map<string, number>();
  mergeList.forEach((m, i) => {
    const key = typeof m === 'string' ? m : `${m[0]} ${m[1]}`;
    if (!mergeRanks.has(key)) mergeRanks.set(key, i);
  });

  const idOf = (name: unknown): number | undefined => {
    const content = typeof name === 'string' ? name : (name as Json | null)?.['content'];
    return typeof content === 'string' ? (vocab[content] ?? added.find((a) => a['content'] === content)?.['id'] as number | undefined) : undefined;
  };
  const templateBos = firstTemplateSpecial(tj['post_processor'], (n) => idOf(n));
  const bosId = idOf(config['bos_token']) ?? templateBos ?? idOf('<s>') ?? idOf('<|endoftext|>') ?? 0;
  const eosId = idOf(config['eos_token']) ?? idOf('</s>') ?? idOf('<|endoftext|>') ?? bosId;
  const addBos = typeof config['add_bos_token'] === 'boolean' ? config['add_bos_token'] : templateBos !== undefined;

  const pre = tj['pre_tokenizer'] as Json | null;
  const preList = pre ? (pre['type'] === 'Sequence' ? (pre['pretokenizers'] as Json[]) : [pre]) : [];
  const byteLevel = preList.find((p) => p['type'] === 'ByteLevel');
  if (byteLevel) {
    if (tj['normalizer'] && (tj['normalizer'] as Json)['type'] !== 'NFC') fail(`normalizer ${(tj['normalizer'] as Json)['type']} with ByteLevel is not supported`);
    let pattern = byteLevel['use_regex'] === false ? undefined : GPT2_PATTERN;
    for (const p of preList) {
      if (p === byteLevel) continue;
      const regex = (p['pattern'] as Json | undefined)?.['Regex'];
      if (p['type'] !== 'Split' || typeof regex !== 'string' || p['behavior'] !== 'Isolated' || p['invert'] === true) {
        fail(`pre-tokenizer ${JSON.stringify(p['type'])} (${JSON.stringify(p['behavior'] ?? '')}) is not supported with ByteLevel`);
      }
      pattern = regex as string;
    }
    return new ByteLevelTokenizer({
      tokens, mergeRanks, pattern: compileSplitPattern(pattern ?? GPT2_PATTERN, source), patternSource: pattern ?? GPT2_PATTERN, bosId, eosId, addBos,
      controlIds: special, addPrefixSpace: byteLevel['add_prefix_space'] === true, source,
    });
  }

  // SentencePiece-converted: read the '▁' handling off the normalizer / Metaspace pre-tokenizer.
  const spm = spmFlags(tj['normalizer'] as Json | null, preList, fail);
  const unkId = idOf(model['unk_token']) ?? 0;
  const types = tokens.map((p, id) => (id === unkId ? PieceType.Unknown : special.has(id) ? PieceType.Control : BYTE_PIECE.test(p) ? PieceType.Byte : PieceType.Normal));
  return new SpmTokenizer({
    pieces: tokens, scores: new Float32Array(vocabSize), types, bosId, eosId, unkId, addBos,
    addDummyPrefix: spm.addDummyPrefix, removeExtraWhitespaces: spm.removeExtraWhitespaces, mergeRanks, source,
  });
}

function spmFlags(normalizer: Json | null, preList: Json[], fail: (m: string) => never): { addDummyPrefix: boolean; removeExtraWhitespaces: boolean } {
  const norms = normalizer ? (normalizer['type'] === 'Sequence' ? (normalizer['normalizers'] as Json[]) : [normalizer]) : [];
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
  for (const p of preList) {
    if (p['type'] !== 'Metaspace' || p['replacement'] !== '▁') fail(`pre-tokenizer ${JSON.stringify(p['type'])} is not supported for a SentencePiece-style BPE`);
    if (p['split'] === true) fail('Metaspace with split=true is not supported (SentencePiece does not split on spaces)');
    marker = true;
    const scheme = p['prepend_scheme'] ?? (p['add_prefix_space'] === false ? 'never' : 'always');
    if (scheme !== 'never') addDummyPrefix = true;
  }
  if (!marker) fail("no '▁' space handling: neither a Replace(' ', '▁') normalizer nor a Metaspace pre-tokenizer");
  return { addDummyPrefix, removeExtraWhitespaces };
}

/** The first SpecialToken of a TemplateProcessing post-processor's "single" template (the BOS it adds). */
function firstTemplateSpecial(pp: unknown, idOf: (name: string) => number | undefined): number | undefined {
  const single = (pp as Json | null)?.['single'];
  if (!Array.isArray(single) || single.length === 0) return undefined;
  const first = (single[0] as Json)['SpecialToken'] as Json | undefined;
  return first ? idOf(first['id'] as string) : undefined;
}
