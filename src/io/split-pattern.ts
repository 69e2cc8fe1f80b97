/**
 * Pre-tokenizer split patterns: the regexes byte-level BPE tokenizers split text with before merging, and their
 * compilation for V8 (with a refusal of patterns that can backtrack catastrophically). Used by the byte-level
 * tokenizers (tokenizer-bytelevel.ts, tokenizer-gguf.ts) and by tokenizer.json's Split pre-tokenizers
 * (tokenizer-pretok.ts).
 */
import { TokenizerError } from '../tensor/errors.js';

/** GPT-2's split pattern (openai/gpt-2 encoder.py), also llama.cpp's 'gpt-2' pre-tokenizer. */
export const GPT2_PATTERN = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";
/** Llama 3 (llama.cpp 'llama-bpe'). */
export const LLAMA3_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
/** Qwen2 (llama.cpp 'qwen2'): as Llama 3 but digits one at a time. */
export const QWEN2_PATTERN = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";

/**
 * Compile a tokenizer regex for JavaScript. Node 20's V8 has no inline modifier groups, so `(?i:...)` (used by
 * Llama 3 and Qwen2, only around ASCII contractions) is rewritten as a group with each letter as a [xX] class.
 */
export function compileSplitPattern(pattern: string, source: string): RegExp {
  const rewritten = pattern.replace(/\(\?i:([^()]*)\)/g, (_, body: string) =>
    `(?:${body.replace(/[a-zA-Z]/g, (ch) => `[${ch.toLowerCase()}${ch.toUpperCase()}]`)})`);
  let re: RegExp;
  try {
    re = new RegExp(rewritten, 'gu');
  } catch (e) {
    throw new TokenizerError(`pre-tokenizer pattern cannot be compiled (${(e as Error).message})`,
      'this split pattern is not supported yet', source);
  }
  // V8's backtracking engine takes exponential time on such patterns and cannot be interrupted: refuse them here,
  // at load, rather than hang the first encode of an unlucky text (a tokenizer.json is untrusted input)
  const risk = backtrackingRisk(rewritten);
  if (risk !== null) {
    throw new TokenizerError(`pre-tokenizer pattern ${JSON.stringify(pattern)} can backtrack catastrophically (${risk})`,
      'rewrite the repeated group without nested or overlapping repetition (e.g. (a+)+ as a+, (a|b)* as [ab]*); real Llama 3, Qwen and GPT-2 patterns have none',
      source);
  }
  return re;
}

/** A quantifier's bounds; `max` is Infinity for *, + and {n,}. */
interface Quant {
  min: number;
  max: number;
}

/** What a parsed piece of a pattern contains, as far as backtracking goes. */
interface PieceInfo {
  /** Largest max of a variable quantifier (min < max, max > 1) inside; 0 when there is none. */
  varMax: number;
  /** Contains an alternation whose branches may match the same first character (or nothing). */
  ambiguousAlt: boolean;
  /**
   * The literal first character of every match; null when it is not one known character (a class, an optional
   * start, a branch that may match nothing); undefined when the piece only matches the empty string (anchors).
   */
  first: string | null | undefined;
}

/** A repeated group whose inner repetition multiplies beyond this many ways to split a run is refused. */
const MAX_BOUNDED_NESTING = 64;

/**
 * Why `pattern` (valid for `new RegExp(pattern, 'u')`) can backtrack catastrophically, or null. A static check of
 * the two classic shapes, each a group repeated by a quantifier with max > 1:
 * - nested repetition: the group holds a variable quantifier, and one of the two is unbounded (`(a+)+`, `(\s*x*)*`,
 *   `(.*a){12}`), or both bounded with a product over 64 (`(a{1,10}){1,10}`);
 * - repeated ambiguous alternation: the group holds an alternation whose branches can start with the same character
 *   or match nothing (`(a|ab)*`, `(\w|\d)+`); branches starting with distinct literal characters pass (`(?:\r\n|\n)+`).
 * Not detected: super-linear patterns without a repeated group (`a*a*a*b` is polynomial).
 */
export function backtrackingRisk(pattern: string): string | null {
  let i = 0;
  let risk: string | null = null;
  const n = pattern.length;

  const quantifier = (): Quant | null => {
    const c = pattern[i];
    let q: Quant | null = null;
    if (c === '*') q = { min: 0, max: Infinity };
    else if (c === '+') q = { min: 1, max: Infinity };
    else if (c === '?') q = { min: 0, max: 1 };
    else if (c === '{') {
      const m = /^\{(\d+)(,(\d*))?\}/.exec(pattern.slice(i));
      if (!m) return null;
      const min = Number(m[1]);
      q = { min, max: m[2] === undefined ? min : m[3] === '' ? Infinity : Number(m[3]) };
      i += m[0].length - 1;
    }
    if (q === null) return null;
    i++;
    if (pattern[i] === '?') i++; // lazy: the same backtracking, in another order
    return q;
  };

  /** One atom: an escape, a class, a group, or a character; its info before any quantifier. */
  const atom = (): PieceInfo => {
    const c = pattern[i]!;
    if (c === '(') {
      i++;
      let lookaround = false;
      if (pattern[i] === '?') {
        const m = /^\?(?:<([=!])|([=!])|<[^>]*>|[a-zA-Z-]*:)/.exec(pattern.slice(i));
        lookaround = m !== null && (m[1] !== undefined || m[2] !== undefined);
        i += m ? m[0].length : 1;
      }
      const inner = alternation();
      i++; // ')'
      return lookaround ? { ...inner, first: undefined } : inner;
    }
    if (c === '[') {
      i++;
      if (pattern[i] === '^') i++;
      while (i < n && pattern[i] !== ']') i += pattern[i] === '\\' ? 2 : 1;
      i++;
      return { varMax: 0, ambiguousAlt: false, first: null };
    }
    if (c === '\\') {
      const e = pattern[i + 1] ?? '';
      i += 2;
      if ((e === 'p' || e === 'P' || e === 'u' || e === 'x') && pattern[i] === '{') {
        const close = pattern.indexOf('}', i);
        const body = pattern.slice(i + 1, close);
        i = close + 1;
        return { varMax: 0, ambiguousAlt: false, first: e === 'u' ? String.fromCodePoint(parseInt(body, 16)) : null };
      }
      if (e === 'u' && /^[0-9a-fA-F]{4}/.test(pattern.slice(i))) {
        i += 4;
        return { varMax: 0, ambiguousAlt: false, first: String.fromCharCode(parseInt(pattern.slice(i - 4, i), 16)) };
      }
      if (e === 'x' && /^[0-9a-fA-F]{2}/.test(pattern.slice(i))) {
        i += 2;
        return { varMax: 0, ambiguousAlt: false, first: String.fromCharCode(parseInt(pattern.slice(i - 2, i), 16)) };
      }
      if (e === 'b' || e === 'B') return { varMax: 0, ambiguousAlt: false, first: undefined };
      if (e === 'k' && pattern[i] === '<') i = pattern.indexOf('>', i) + 1;
      const literal: Record<string, string> = { n: '\n', r: '\r', t: '\t', f: '\f', v: '\v', 0: '\0' };
      const known = literal[e] ?? (/[A-Za-z0-9]/.test(e) ? null : e); // \d \s \w \1 \k<x> \cX: not one character
      return { varMax: 0, ambiguousAlt: false, first: known };
    }
    i++;
    if (c === '^' || c === '$') return { varMax: 0, ambiguousAlt: false, first: undefined };
    return { varMax: 0, ambiguousAlt: false, first: c === '.' ? null : c };
  };

  /** A sequence of quantified atoms, up to '|' or ')'. */
  const sequence = (): PieceInfo => {
    const info: PieceInfo = { varMax: 0, ambiguousAlt: false, first: undefined };
    while (i < n && pattern[i] !== '|' && pattern[i] !== ')') {
      const start = i;
      const a = atom();
      const q = quantifier();
      if (q !== null && q.max > 1 && risk === null) {
        const group = pattern.slice(start, i);
        if (a.varMax > 0 && (q.max === Infinity || a.varMax === Infinity || q.max * a.varMax > MAX_BOUNDED_NESTING)) {
          risk = `nested repetition in ${group}`;
        } else if (a.ambiguousAlt) {
          risk = `repeated alternatives that can match the same text in ${group}`;
        }
      }
      info.varMax = Math.max(info.varMax, a.varMax, q !== null && q.min < q.max && q.max > 1 ? q.max : 0);
      info.ambiguousAlt ||= a.ambiguousAlt;
      // the first atom that is not zero-width decides; an optional one (min 0) makes the first character unknown
      if (info.first === undefined) info.first = q !== null && q.min === 0 && a.first !== undefined ? null : a.first;
    }
    return info;
  };

  const alternation = (): PieceInfo => {
    const branches = [sequence()];
    while (pattern[i] === '|') {
      i++;
      branches.push(sequence());
    }
    const firsts = branches.map((b) => b.first);
    const overlap = branches.length > 1 && (firsts.some((f) => typeof f !== 'string') || new Set(firsts).size < firsts.length);
    return {
      varMax: Math.max(...branches.map((b) => b.varMax)),
      ambiguousAlt: overlap || branches.some((b) => b.ambiguousAlt),
      first: branches.length === 1 ? branches[0]!.first : firsts.every((f) => f === undefined) ? undefined : null,
    };
  };

  while (i < n) {
    alternation();
    i++; // an unbalanced ')' cannot compile; skip it anyway
  }
  return risk;
}
