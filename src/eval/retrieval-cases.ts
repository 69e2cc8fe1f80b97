/**
 * Retrieval cases sized to a target prompt length in tokens, for `evalRetrieval` (retrieval.ts).
 *
 * Glossary:
 *   length  - the target L: prompt tokens with BOS, the answer excluded;
 *   param   - a cell's second axis: the depth (passkey, needle) or the number of hops (hashhop);
 *   size    - what a format scales with: filler blocks (passkey), pairs (hashhop), haystack characters (needle);
 *   fit     - the largest size whose prompt has at most L tokens, found by re-tokenizing (see `largestFitting`).
 *
 * Every case draws from its own Rng, seeded from (seed, task, length, param, sample index) alone, so adding a length,
 * a depth or samples leaves the other cells' cases unchanged.
 */
import type { Tokenizer } from '../io/tokenizer.js';
import { promptIds } from '../inference/generate.js';
import { ArgumentError } from '../tensor/errors.js';
import { Rng } from '../tensor/rng.js';
import { hashhopCase, needleCase, NEEDLE_WORDS, passkeyCase, PASSKEY_KEYS, type HashAlphabet, type RetrievalCase } from './synthetic.js';

export type RetrievalTask = 'passkey' | 'hashhop' | 'needle';

/** One case ready to run: the prompt's ids and how many tokens its answer takes after the prompt. */
export interface SizedCase extends RetrievalCase {
  ids: number[];
  answerTokens: number;
  /** The size the fit chose (filler blocks, pairs or characters). */
  size: number;
  /** Probability that a guess is right (see `caseChance`). */
  chance: number;
}

export interface CaseSpec {
  task: RetrievalTask;
  length: number;
  /** Depth in [0, 1] (passkey, needle) or hops >= 1 (hashhop). */
  param: number;
  seed: number;
  sample: number;
  /** The needle's text (required for needle). */
  haystack?: string;
  /** What hashhop's hashes are made of (default letters; the case's seed does not depend on it). */
  alphabet?: HashAlphabet;
}

/** FNV-1a over the case's coordinates: a 32-bit seed that depends on nothing else. */
export function caseSeed(seed: number, task: RetrievalTask, length: number, param: number, sample: number): number {
  const key = `${seed}|${task}|${length}|${param}|${sample}`;
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193) >>> 0;
  return h;
}

/** Tokens the answer adds after the prompt (the prompt and the answer tokenized together, as the model sees them). */
export function answerTokenCount(tok: Tokenizer, ids: readonly number[], c: RetrievalCase): number {
  return Math.max(1, promptIds(tok, c.prompt + c.answer).length - ids.length);
}

interface Measured {
  c: RetrievalCase;
  ids: number[];
}

/**
 * The largest size in [lo, hi] whose prompt has at most `target` tokens, or null when even `lo` is too long.
 * Tokens grow with the size but not strictly (a hashhop pair or a needle sentence tokenizes differently each time),
 * so: two secant steps from `guess`, then a doubling bracket and bisection, every probe re-tokenized.
 */
export function largestFitting(make: (size: number) => RetrievalCase, tok: Tokenizer, target: number,
  lo: number, hi: number, guess: number): { size: number; fit: Measured } | null {
  const memo = new Map<number, Measured>();
  const measure = (n: number): Measured => {
    let m = memo.get(n);
    if (!m) {
      const c = make(n);
      m = { c, ids: promptIds(tok, c.prompt) };
      memo.set(n, m);
    }
    return m;
  };
  const fits = (n: number): boolean => measure(n).ids.length <= target;
  if (!fits(lo)) return null;
  const clamp = (n: number): number => Math.min(hi, Math.max(lo, Math.round(n)));
  let g = clamp(guess);
  for (let i = 0; i < 2 && g > lo; i++) {
    const t = measure(g).ids.length, base = measure(lo).ids.length;
    const slope = (t - base) / (g - lo);
    const next = slope > 0 ? clamp(g + (target - t) / slope) : clamp(g * 2);
    if (next === g) break;
    g = next;
  }
  let a: number, b: number;
  if (fits(g)) {
    a = g;
    for (let step = 1; ; step *= 2) {
      b = Math.min(hi + 1, a + step);
      if (b > hi || !fits(b)) break;
      a = b;
    }
  } else {
    b = g;
    for (let step = 1; ; step *= 2) {
      a = Math.max(lo, b - step);
      if (fits(a)) break;
      b = a;
    }
  }
  while (b - a > 1) {
    const m = Math.floor((a + b) / 2);
    if (fits(m)) a = m;
    else b = m;
  }
  return { size: a, fit: measure(a) };
}

/** Chance of a guess: 1 / keys (passkey), (1 / hashes in the prompt) ^ hops (hashhop), 1 / words (needle). */
export function caseChance(task: RetrievalTask, size: number, param: number): number {
  if (task === 'passkey') return 1 / PASSKEY_KEYS;
  if (task === 'needle') return 1 / NEEDLE_WORDS;
  const hashes = size + Math.ceil(size / param); // each chain of k links has k + 1 hashes
  return (1 / hashes) ** param;
}

function tooShort(spec: CaseSpec, min: number): ArgumentError {
  return new ArgumentError(`eval ${spec.task}`, 'length', `= ${spec.length} is too short for a ${spec.task} prompt`
    + `${spec.task === 'hashhop' ? ` with ${spec.param} hops` : ''} (it needs at least ${min} tokens)`, `use lengths of ${min} or more`);
}

/** The case generator for a spec at a given size, each call from a fresh Rng with the case's seed. */
function maker(spec: CaseSpec): { make: (n: number) => RetrievalCase; lo: number; hi: number; guess: number } {
  const s = caseSeed(spec.seed, spec.task, spec.length, spec.param, spec.sample);
  if (spec.task === 'passkey') return { make: (n) => passkeyCase(new Rng(s), n, spec.param), lo: 0, hi: spec.length, guess: 1 };
  if (spec.task === 'hashhop') {
    const hops = spec.param;
    return { make: (n) => hashhopCase(new Rng(s), n, hops, spec.alphabet), lo: hops, hi: Math.max(hops, spec.length), guess: hops + 4 };
  }
  const text = spec.haystack;
  if (text === undefined) throw new ArgumentError('eval needle', 'haystack', 'is required for the needle task', 'pass a text file with --haystack');
  return { make: (n) => needleCase(new Rng(s), text, n, spec.param), lo: 1, hi: text.length - 1, guess: spec.length };
}

/** Builds one case whose prompt is the largest of its format with at most `spec.length` tokens. */
export function sizedCase(tok: Tokenizer, spec: CaseSpec): SizedCase {
  const { make, lo, hi, guess } = maker(spec);
  const r = largestFitting(make, tok, spec.length, lo, hi, guess);
  if (!r) throw tooShort(spec, promptIds(tok, make(lo).prompt).length);
  if (spec.task === 'needle' && r.size === hi) {
    throw new ArgumentError('eval needle', 'haystack', `has ${hi + 1} characters, too few for ${spec.length} tokens`, 'use a longer text or shorter lengths');
  }
  const { c, ids } = r.fit;
  return { ...c, ids, answerTokens: answerTokenCount(tok, ids, c), size: r.size, chance: caseChance(spec.task, r.size, spec.param) };
}
