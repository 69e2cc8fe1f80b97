/**
 * Tokenizers from a GGUF vocabulary (llama.cpp's tokenizer.ggml.* keys), and the inverse for our GGUF export.
 *
 * - tokenizer.ggml.model 'llama': SentencePiece BPE from tokens + scores + token_type. add_dummy_prefix comes from
 *   tokenizer.ggml.add_space_prefix (default true) and remove_extra_whitespaces from
 *   tokenizer.ggml.remove_extra_whitespaces (default false, as in llama.cpp).
 * - tokenizer.ggml.model 'gpt2': byte-level BPE from tokens + merges, with the split pattern named by
 *   tokenizer.ggml.pre ('gpt-2', 'llama-bpe'/'llama3', 'qwen2'); other pre-tokenizers are a TokenizerError.
 *
 * Export (the ggufMetadataFrom* functions) writes what llama.cpp's convert_hf_to_gguf.py writes: a vocabulary padded
 * to the embedding's rows with `[PAD{id}]` tokens of type UNUSED (score -10000 for SentencePiece), since llama.cpp
 * takes its vocabulary size from the token list and checks the embedding against it; and the chat template(s)
 * (ggufChatTemplateMetadata).
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { FormatError, TokenizerError } from '../tensor/errors.js';
import { GgufType, readGguf, type GgufFile, type GgufValue } from './gguf.js';
import { gv } from './gguf-write.js';
import { compileSplitPattern, GPT2_PATTERN, LLAMA3_PATTERN, QWEN2_PATTERN } from './split-pattern.js';
import { ByteLevelTokenizer } from './tokenizer-bytelevel.js';
import type { AddedVocab } from './tokenizer-added.js';
import { buildPreTokenizer, type Splitter } from './tokenizer-pretok.js';
import { PieceType, SpmTokenizer } from './tokenizer-spm.js';
import type { Tokenizer } from './tokenizer.js';

const PRE_PATTERNS: Record<string, string> = {
  'gpt-2': GPT2_PATTERN,
  default: GPT2_PATTERN,
  'llama-bpe': LLAMA3_PATTERN,
  llama3: LLAMA3_PATTERN,
  qwen2: QWEN2_PATTERN,
};

export function tokenizerFromGguf(f: Pick<GgufFile, 'file' | 'metadata'>): Tokenizer {
  const meta = (k: string) => f.metadata.get(k)?.value;
  const need = (k: string): unknown => {
    const v = meta(k);
    if (v === undefined) throw new TokenizerError(`metadata key '${k}' is missing`, 'the GGUF file has no (complete) vocabulary', f.file);
    return v;
  };
  const model = need('tokenizer.ggml.model');
  const tokens = need('tokenizer.ggml.tokens');
  if (!Array.isArray(tokens) || !tokens.every((t) => typeof t === 'string')) {
    throw new TokenizerError("'tokenizer.ggml.tokens' is not a string array", 'the file is corrupt', f.file);
  }
  const n = tokens.length;
  const types = (meta('tokenizer.ggml.token_type') as ArrayLike<number> | undefined) ?? new Int32Array(n).fill(PieceType.Normal);
  if (types.length !== n) throw new TokenizerError(`${n} tokens but ${types.length} token types`, 'the file is corrupt', f.file);
  const num = (k: string, fallback: number) => {
    const v = meta(k);
    return typeof v === 'number' ? v : fallback;
  };
  const flag = (k: string, fallback: boolean) => {
    const v = meta(k);
    return typeof v === 'boolean' ? v : fallback;
  };
  const bosId = num('tokenizer.ggml.bos_token_id', model === 'llama' ? 1 : 0);
  const eosId = num('tokenizer.ggml.eos_token_id', model === 'llama' ? 2 : 0);

  if (model === 'llama') {
    const scores = need('tokenizer.ggml.scores') as ArrayLike<number>;
    return new SpmTokenizer({
      pieces: tokens as string[], scores, types, bosId, eosId, unkId: num('tokenizer.ggml.unknown_token_id', 0),
      addBos: flag('tokenizer.ggml.add_bos_token', true), addDummyPrefix: flag('tokenizer.ggml.add_space_prefix', true),
      removeExtraWhitespaces: flag('tokenizer.ggml.remove_extra_whitespaces', false), source: f.file,
    });
  }
  if (model === 'gpt2') {
    const pre = (meta('tokenizer.ggml.pre') as string | undefined) ?? 'default';
    const pattern = pre === SMOLLM ? GPT2_PATTERN : PRE_PATTERNS[pre];
    if (!pattern) {
      throw new TokenizerError(`pre-tokenizer '${pre}' is not supported`, `supported tokenizer.ggml.pre values: ${Object.keys(PRE_PATTERNS).join(', ')}`, f.file);
    }
    const merges = need('tokenizer.ggml.merges') as string[];
    const controlIds = new Set<number>();
    // control tokens and the UNUSED [PAD{id}] entries of a padded vocabulary decode to nothing
    for (let id = 0; id < n; id++) if (types[id] === PieceType.Control || types[id] === PieceType.Unused) controlIds.add(id);
    return new ByteLevelTokenizer({
      tokens: tokens as string[], mergeRanks: new Map(merges.map((m, i) => [m, i])), pattern: compileSplitPattern(pattern, f.file), patternSource: pattern,
      bosId, eosId, addBos: flag('tokenizer.ggml.add_bos_token', false), controlIds, source: f.file,
      ...(pre === SMOLLM ? { preTokenizer: smollmSteps(f.file), ggufPre: SMOLLM } : {}),
    });
  }
  throw new TokenizerError(`tokenizer model '${String(model)}' is not supported`, "supported tokenizer.ggml.model values: 'llama', 'gpt2'", f.file);
}

/** llama.cpp's name for SmolLM2's pre-tokenizer: every digit alone, then GPT-2's split. */
const SMOLLM = 'smollm';
function smollmSteps(file: string): Splitter[] {
  return buildPreTokenizer({ type: 'Sequence', pretokenizers: [{ type: 'Digits', individual_digits: true }, { type: 'ByteLevel', add_prefix_space: false, use_regex: true }] }, file).steps;
}

/** The token ids [from, to) as llama.cpp's converter pads a vocabulary to the embedding: `[PAD{id}]`. */
const padTokens = (from: number, to: number): string[] => Array.from({ length: Math.max(0, to - from) }, (_, i) => `[PAD${from + i}]`);

/**
 * GGUF vocabulary keys for a byte-level BPE tokenizer; its split pattern must be one llama.cpp names. `vocabSize`
 * (the embedding's rows) pads the token list with `[PAD{id}]` tokens of type UNUSED.
 */
export function ggufMetadataFromByteLevel(v: {
  tokens: readonly string[]; mergeRanks: Map<string, number>; patternSource: string; controlIds: ReadonlySet<number>;
  bosId: number; eosId: number; addBos: boolean; source: string; ggufPre?: string; added?: AddedVocab;
}, vocabSize = v.tokens.length): Map<string, GgufValue> {
  const pre = v.ggufPre ?? Object.entries(PRE_PATTERNS).find(([, p]) => p === v.patternSource)?.[0];
  if (pre === undefined) {
    throw new TokenizerError('this split pattern has no llama.cpp pre-tokenizer name', `supported: ${Object.keys(PRE_PATTERNS).join(', ')}, ${SMOLLM}`, v.source);
  }
  const merges = [...v.mergeRanks.entries()].sort((a, b) => a[1] - b[1]).map(([m]) => m);
  // special added tokens are CONTROL, the other added tokens USER_DEFINED: llama.cpp parses both out of text.
  const tokens = [...v.tokens, ...padTokens(v.tokens.length, vocabSize)];
  const types = Int32Array.from(tokens, (_, id) => (id >= v.tokens.length ? PieceType.Unused : v.controlIds.has(id) ? PieceType.Control
    : v.added?.textOf.has(id) ? PieceType.UserDefined : PieceType.Normal));
  return new Map<string, GgufValue>([
    ['tokenizer.ggml.model', gv.str('gpt2')],
    ['tokenizer.ggml.pre', gv.str(pre)],
    ['tokenizer.ggml.tokens', gv.strs(tokens)],
    ['tokenizer.ggml.token_type', gv.i32s(types)],
    ['tokenizer.ggml.merges', gv.strs(merges)],
    ['tokenizer.ggml.bos_token_id', gv.u32(v.bosId)],
    ['tokenizer.ggml.eos_token_id', gv.u32(v.eosId)],
    ['tokenizer.ggml.add_bos_token', gv.bool(v.addBos)],
  ]);
}

/**
 * Scores for a SentencePiece vocabulary that only has a merges list (tokenizer.json): the piece produced by merge
 * rank r scores -r, so score order is merge order; pieces no merge produces (single characters, bytes, specials)
 * never win a merge, and score below every merged piece. Exact when the merges list is complete and ordered by the
 * original scores, which is how Hugging Face converts SentencePiece models.
 */
export function scoresFromMergeRanks(pieces: readonly string[], mergeRanks: Map<string, number>): Float32Array {
  const best = new Map<string, number>();
  for (const [pair, rank] of mergeRanks) {
    const merged = pair.replace(' ', '');
    if (!best.has(merged) || rank < best.get(merged)!) best.set(merged, rank);
  }
  return Float32Array.from(pieces, (p, id) => -(best.get(p) ?? mergeRanks.size + id));
}

/**
 * GGUF vocabulary keys for a SentencePiece tokenizer (what llama.cpp needs to tokenize like we do). `vocabSize` (the
 * embedding's rows) pads the pieces with `[PAD{id}]` of type UNUSED and score -10000, as the converter does.
 */
export function ggufMetadataFromSpm(v: {
  pieces: readonly string[]; scores: ArrayLike<number>; types: ArrayLike<number>; bosId: number; eosId: number; unkId: number;
  addBos: boolean; addDummyPrefix: boolean; removeExtraWhitespaces: boolean;
}, vocabSize = v.pieces.length): Map<string, GgufValue> {
  const n = v.pieces.length;
  const pad = padTokens(n, vocabSize);
  const scores = new Float32Array(n + pad.length).fill(-10000);
  scores.set(Float32Array.from(v.scores));
  const types = new Int32Array(n + pad.length).fill(PieceType.Unused);
  types.set(Int32Array.from(v.types));
  return new Map<string, GgufValue>([
    ['tokenizer.ggml.model', gv.str('llama')],
    ['tokenizer.ggml.pre', gv.str('default')],
    ['tokenizer.ggml.tokens', gv.strs([...v.pieces, ...pad])],
    ['tokenizer.ggml.scores', gv.f32s(scores)],
    ['tokenizer.ggml.token_type', gv.i32s(types)],
    ['tokenizer.ggml.bos_token_id', gv.u32(v.bosId)],
    ['tokenizer.ggml.eos_token_id', gv.u32(v.eosId)],
    ['tokenizer.ggml.unknown_token_id', gv.u32(v.unkId)],
    ['tokenizer.ggml.add_bos_token', gv.bool(v.addBos)],
    ['tokenizer.ggml.add_eos_token', gv.bool(false)],
    ['tokenizer.ggml.add_space_prefix', gv.bool(v.addDummyPrefix)],
    ['tokenizer.ggml.remove_extra_whitespaces', { type: GgufType.BOOL, value: v.removeExtraWhitespaces }],
  ]);
}

/**
 * The chat template keys for a GGUF export, from where the model's tokenizer came from: a GGUF file (its
 * tokenizer.chat_template* keys, copied), or a Hugging Face folder / tokenizer.json path (chat_template.jinja beside
 * it, else tokenizer_config.json's `chat_template`). As gguf-py's add_chat_template: a string is
 * `tokenizer.chat_template`; a list of {name, template} gives the one named "default" as `tokenizer.chat_template`,
 * each other as `tokenizer.chat_template.{name}` (name characters outside [A-Za-z0-9] become '_'), and their names
 * as the array `tokenizer.chat_templates`. No template: no keys.
 */
export function ggufChatTemplateMetadata(source: string | null): Map<string, GgufValue> {
  const out = new Map<string, GgufValue>();
  if (source === null || !existsSync(source)) return out;
  if (source.endsWith('.gguf')) {
    for (const [k, v] of readGguf(source, { tensors: false }).metadata) {
      if (k === 'tokenizer.chat_template' || k === 'tokenizer.chat_templates' || k.startsWith('tokenizer.chat_template.')) out.set(k, v);
    }
    return out;
  }
  const dir = statSync(source).isDirectory() ? source : dirname(source);
  const jinja = join(dir, 'chat_template.jinja');
  if (existsSync(jinja)) {
    out.set('tokenizer.chat_template', gv.str(readFileSync(jinja, 'utf8')));
    return out;
  }
  const cfgPath = join(dir, 'tokenizer_config.json');
  if (!existsSync(cfgPath)) return out;
  let cfg: { chat_template?: unknown };
  try {
    cfg = JSON.parse(readFileSync(cfgPath, 'utf8')) as { chat_template?: unknown };
  } catch (e) {
    throw new FormatError(cfgPath, `is not valid JSON (${(e as Error).message})`, 'fix or remove the file');
  }
  const t = cfg.chat_template;
  if (typeof t === 'string') {
    out.set('tokenizer.chat_template', gv.str(t));
  } else if (Array.isArray(t)) {
    const names: string[] = [];
    let def: string | undefined;
    for (const c of t as { name?: unknown; template?: unknown }[]) {
      if (typeof c?.name !== 'string' || typeof c.template !== 'string' || !c.name) continue;
      const name = c.name.replace(/[^A-Za-z0-9]/g, '_');
      if (name === 'default') def = c.template;
      else if (!names.includes(name)) {
        names.push(name);
        out.set(`tokenizer.chat_template.${name}`, gv.str(c.template));
      }
    }
    if (names.length) out.set('tokenizer.chat_templates', gv.strs(names));
    if (def !== undefined) out.set('tokenizer.chat_template', gv.str(def));
  } else if (t !== undefined && t !== null) {
    throw new FormatError(cfgPath, 'chat_template is neither a string nor a list of {name, template}', 'fix the file');
  }
  return out;
}
