/**
 * Hugging Face tokenizer.json normalizers and pre-tokenizers, as pure string functions.
 *
 * Glossary (the names of the `tokenizers` library, whose semantics these follow):
 * - normalizer: text -> text before splitting (NFC/NFKC/NFD/NFKD Unicode forms; the SentencePiece-style
 *   Prepend/Replace/Strip normalizers are handled by tokenizer-spm.ts and not here).
 * - pre-tokenizer: text -> pieces; the model (BPE) never merges across pieces. A Sequence applies each step to every
 *   piece the previous step produced.
 * - split behaviour: what happens to the matched delimiter. For "a1b" split on digits: Isolated [a][1][b],
 *   Removed [a][b], MergedWithPrevious [a1][b], MergedWithNext [a][1b], Contiguous: like Isolated but adjacent
 *   spans of the same kind (a run of delimiters) stay one piece. `invert` swaps the roles of matches and the text between them.
 *
 * Empty pieces are dropped, as in the library. Patterns run with V8's regex engine; split-pattern.ts's
 * compileSplitPattern rewrites the one Oniguruma construct real files use that V8 (Node 20) lacks.
 */
import { TokenizerError } from '../tensor/errors.js';
import { compileSplitPattern, GPT2_PATTERN } from './split-pattern.js';

type Json = Record<string, unknown>;
export type Splitter = (piece: string) => string[];
export type Behavior = 'Isolated' | 'Removed' | 'MergedWithPrevious' | 'MergedWithNext' | 'Contiguous';
const BEHAVIORS: readonly Behavior[] = ['Isolated', 'Removed', 'MergedWithPrevious', 'MergedWithNext', 'Contiguous'];

/** Unicode normalization forms a tokenizer.json may name. */
const UNICODE_FORMS = new Set(['NFC', 'NFD', 'NFKC', 'NFKD']);

/** The normalizer steps of a tokenizer.json (a Sequence flattened). */
export function normalizerSteps(normalizer: unknown): Json[] {
  const n = normalizer as Json | null | undefined;
  if (!n) return [];
  return n['type'] === 'Sequence' ? (n['normalizers'] as Json[]) : [n];
}

/** The pre-tokenizer steps of a tokenizer.json (a Sequence flattened). */
export function preTokenizerSteps(pre: unknown): Json[] {
  const p = pre as Json | null | undefined;
  if (!p) return [];
  return p['type'] === 'Sequence' ? (p['pretokenizers'] as Json[]) : [p];
}

/** True for a Unicode normalization step (NFC, NFKC, ...). */
export function isUnicodeForm(step: Json): boolean {
  return UNICODE_FORMS.has(step['type'] as string);
}

/** Apply the Unicode normalization steps in order (a no-op list gives the identity). */
export function unicodeNormalizer(steps: readonly Json[]): ((s: string) => string) | undefined {
  const forms = steps.filter(isUnicodeForm).map((s) => s['type'] as 'NFC' | 'NFD' | 'NFKC' | 'NFKD');
  if (forms.length === 0) return undefined;
  return (s) => {
    let t = s;
    for (const f of forms) t = t.normalize(f);
    return t;
  };
}

/**
 * Split `text` at the matches of `re` (a global regex) with the given behaviour. Written as one pass over the
 * matches; zero-length matches are skipped (they delimit nothing).
 */
export function splitWith(text: string, re: RegExp, behavior: Behavior, invert = false): string[] {
  // spans alternate between "between" text and matched text; mark which are delimiters.
  const spans: { s: string; delim: boolean }[] = [];
  let last = 0;
  re.lastIndex = 0;
  for (const m of text.matchAll(re)) {
    if (m[0].length === 0) continue;
    const at = m.index;
    if (at > last) spans.push({ s: text.slice(last, at), delim: invert });
    spans.push({ s: m[0], delim: !invert });
    last = at + m[0].length;
  }
  if (last < text.length) spans.push({ s: text.slice(last), delim: invert });

  const out: string[] = [];
  switch (behavior) {
    case 'Isolated':
      for (const sp of spans) out.push(sp.s);
      break;
    case 'Removed':
      for (const sp of spans) if (!sp.delim) out.push(sp.s);
      break;
    case 'MergedWithPrevious': {
      let cur = '';
      for (const sp of spans) {
        if (sp.delim) {
          out.push(cur + sp.s);
          cur = '';
        } else {
          if (cur) out.push(cur);
          cur = sp.s;
        }
      }
      if (cur) out.push(cur);
      break;
    }
    case 'MergedWithNext': {
      let pending = '';
      for (const sp of spans) {
        if (sp.delim) {
          if (pending) out.push(pending);
          pending = sp.s;
        } else {
          out.push(pending + sp.s);
          pending = '';
        }
      }
      if (pending) out.push(pending);
      break;
    }
    case 'Contiguous': {
      // adjacent spans of the same kind become one piece (with invert, that joins runs of the kept text)
      for (let i = 0; i < spans.length; i++) {
        const sp = spans[i]!;
        if (i > 0 && spans[i - 1]!.delim === sp.delim) out[out.length - 1] += sp.s;
        else out.push(sp.s);
      }
      break;
    }
  }
  return out.filter((s) => s.length > 0);
}

/** Rust regex's Unicode \w (JavaScript's \w is ASCII-only even with the u flag). */
const WORD = '\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}';
const WORD_OR_SYMBOL_RUNS = new RegExp(`[${WORD}]+|[^${WORD}\\s]+`, 'gu');
/** Rust's is_ascii_punctuation or a Unicode P* category, one character at a time. */
const PUNCTUATION = /[\p{P}!-/:-@[-`{-~]/gu;

function escapeRegex(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');
}

export interface PreTokenizerSpec {
  /** The splitting steps in order (ByteLevel's own regex split included where use_regex is on). */
  steps: Splitter[];
  /** A ByteLevel step is present: pieces are mapped to GPT-2's byte alphabet before BPE. */
  byteLevel: boolean;
  /** The one Split regex of the file (or GPT-2's, for ByteLevel with use_regex), to name it in GGUF exports. */
  patternSource?: string;
  /** The llama.cpp pre-tokenizer name when the steps are Digits + ByteLevel (SmolLM2's shape). */
  digitsThenByteLevel?: boolean;
}

/**
 * Build the pre-tokenizer of a tokenizer.json. Supported steps: Split (String or Regex pattern, every behaviour,
 * invert), Digits (individual_digits or runs), ByteLevel (add_prefix_space, use_regex), Whitespace,
 * WhitespaceSplit, Punctuation, and Sequence of these. Anything else is a TokenizerError naming the step.
 */
export function buildPreTokenizer(pre: unknown, source: string, skip: (step: Json) => boolean = () => false): PreTokenizerSpec {
  const list = preTokenizerSteps(pre);
  const spec: PreTokenizerSpec = { steps: [], byteLevel: false };
  const fail = (msg: string): never => {
    throw new TokenizerError(msg, 'supported pre-tokenizers: Split, Digits, ByteLevel, Whitespace, WhitespaceSplit, Punctuation, Sequence', source);
  };
  const types: string[] = [];
  for (const step of list) {
    if (skip(step)) continue;
    const type = step['type'];
    types.push(String(type));
    if (type === 'Split') {
      const pat = step['pattern'] as Json | undefined;
      const behavior = step['behavior'] as Behavior;
      if (!BEHAVIORS.includes(behavior)) fail(`Split behavior ${JSON.stringify(behavior)} is not supported`);
      let re: RegExp;
      if (typeof pat?.['Regex'] === 'string') {
        re = compileSplitPattern(pat['Regex'], source);
        spec.patternSource ??= pat['Regex'];
      } else if (typeof pat?.['String'] === 'string') {
        re = new RegExp(escapeRegex(pat['String']), 'gu');
      } else {
        return fail('Split has neither a String nor a Regex pattern');
      }
      const invert = step['invert'] === true;
      spec.steps.push((s) => splitWith(s, re, behavior, invert));
    } else if (type === 'Digits') {
      // Rust's char::is_numeric is the Unicode N* categories.
      const individual = step['individual_digits'] === true;
      const re = individual ? /\p{N}/gu : /\p{N}+/gu;
      spec.steps.push((s) => splitWith(s, re, individual ? 'Isolated' : 'Contiguous'));
    } else if (type === 'ByteLevel') {
      spec.byteLevel = true;
      const prefix = step['add_prefix_space'] === true;
      const useRegex = step['use_regex'] !== false;
      const re = useRegex ? compileSplitPattern(GPT2_PATTERN, source) : undefined;
      if (useRegex) spec.patternSource ??= GPT2_PATTERN;
      spec.steps.push((s) => {
        const t = prefix && !s.startsWith(' ') ? ' ' + s : s;
        return re ? splitWith(t, re, 'Isolated') : [t];
      });
    } else if (type === 'Whitespace') {
      // keep runs of word characters and runs of other non-space characters; drop the whitespace between
      spec.steps.push((s) => splitWith(s, WORD_OR_SYMBOL_RUNS, 'Removed', true));
    } else if (type === 'WhitespaceSplit') {
      spec.steps.push((s) => splitWith(s, /\s+/gu, 'Removed'));
    } else if (type === 'Punctuation') {
      const behavior = (step['behavior'] as Behavior | undefined) ?? 'Isolated';
      if (!BEHAVIORS.includes(behavior)) fail(`Punctuation behavior ${JSON.stringify(behavior)} is not supported`);
      spec.steps.push((s) => splitWith(s, PUNCTUATION, behavior));
    } else {
      fail(`pre-tokenizer ${JSON.stringify(type)} is not supported`);
    }
  }
  spec.digitsThenByteLevel = types.length === 2 && types[0] === 'Digits' && types[1] === 'ByteLevel';
  return spec;
}

/** Run the steps over one text: each step splits every piece of the previous one. */
export function preTokenize(steps: readonly Splitter[], text: string): string[] {
  let pieces = [text];
  for (const step of steps) {
    const next: string[] = [];
    for (const piece of pieces) for (const s of step(piece)) next.push(s);
    pieces = next;
  }
  return pieces;
}
