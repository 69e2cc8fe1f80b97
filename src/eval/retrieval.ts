/**
 * The retrieval evaluations (DESIGN, Evaluation): passkey, hashhop and needle accuracy on a grid of cells, length x
 * depth (passkey, needle) or length x hops (hashhop), `samples` seeded cases per cell.
 *
 * A case's prompt is sized to its cell's length (retrieval-cases.ts), the predictor decodes answer tokens + 2 tokens
 * greedily, and the case is correct iff the decoded continuation starts with the answer (which begins with a space).
 * The predictor is any function of the prompt's ids, so the same scoring runs the model under any memory, an oracle
 * that parses the prompt, or random guessing (the tests use all three).
 */
import type { Tokenizer } from '../io/tokenizer.js';
import type { DecoderLM } from '../model/transformer.js';
import { generateIds } from '../inference/generate.js';
import type { HybridMemory } from '../inference/hybrid-memory.js';
import { ArgumentError } from '../tensor/errors.js';
import type { RetrievalCell, RetrievalMiss, RetrievalResult } from './record.js';
import { sizedCase, type RetrievalTask, type SizedCase } from './retrieval-cases.js';
import type { HashAlphabet } from './synthetic.js';

export type { RetrievalTask } from './retrieval-cases.js';

/** Greedy continuation ids of `promptIds` (at most `maxNew`); `length` is the cell's target length. */
export type Predictor = (promptIds: readonly number[], maxNew: number, length: number) => number[];

/** A memory factory for a target length, or null for the model's own memory. */
export type MemoryForLength = (length: number) => ((m: DecoderLM) => HybridMemory) | null;

export interface RetrievalOpts {
  /** Target prompt lengths in tokens (BOS included, answer excluded). */
  lengths: number[];
  /** Needle depths in [0, 1] (passkey, needle; default [0, 0.25, 0.5, 0.75, 1]). */
  depths?: number[];
  /** Hops per query (hashhop; default [1, 2, 3]). */
  hops?: number[];
  samples: number;
  seed: number;
  /** The needle's text (required for needle). */
  haystack?: string;
  /** What hashhop's hashes are made of (default letters). */
  alphabet?: HashAlphabet;
  /** The model's context: a case needs length + answer tokens + 2 positions. */
  maxContext: number;
  onCase?: (done: number, total: number) => void;
}

export const DEFAULT_DEPTHS: readonly number[] = [0, 0.25, 0.5, 0.75, 1];
export const DEFAULT_HOPS: readonly number[] = [1, 2, 3];

/**
 * A predictor running `model` greedily (temperature 0, no stop strings, ending early only at EOS) with the memory
 * `memoryFor(length)` returns, null meaning the model's own (full KV, or the hybrid cache of a converted model).
 */
export function modelPredictor(model: DecoderLM, tok: Tokenizer, memoryFor?: MemoryForLength): Predictor {
  const factories = new Map<number, ((m: DecoderLM) => HybridMemory) | null>();
  return (ids, maxNew, length) => {
    if (!factories.has(length)) factories.set(length, memoryFor?.(length) ?? null);
    const memory = factories.get(length) ?? undefined;
    return generateIds(model, ids, tok, { temperature: 0, maxTokens: maxNew, memory }).ids;
  };
}

/**
 * The text `ids` add after the prompt: decode(prompt + ids) minus decode(prompt), so a SentencePiece word keeps its
 * leading space (decoding `ids` alone would drop it). Falls back to the ids alone if decoding is not prefix-stable.
 */
export function continuationText(tok: Tokenizer, prompt: readonly number[], ids: readonly number[]): string {
  const base = tok.decode(prompt), full = tok.decode([...prompt, ...ids]);
  return full.startsWith(base) ? full.slice(base.length) : tok.decode(ids);
}

/** The cells' second axis for a task, validated. */
function taskParams(task: RetrievalTask, opts: RetrievalOpts): number[] {
  const op = `eval ${task}`;
  if (task === 'hashhop') {
    const hops = [...(opts.hops ?? DEFAULT_HOPS)];
    for (const h of hops) if (!(Number.isInteger(h) && h >= 1)) throw new ArgumentError(op, 'hops', `= ${h} must be a positive integer`, 'use e.g. --hops 1,2,3');
    return hops;
  }
  const depths = [...(opts.depths ?? DEFAULT_DEPTHS)];
  for (const d of depths) if (!(d >= 0 && d <= 1)) throw new ArgumentError(op, 'depth', `= ${d} must be within [0, 1]`, 'use e.g. --depths 0,0.5,1');
  return depths;
}

function checkOpts(task: RetrievalTask, opts: RetrievalOpts): void {
  const op = `eval ${task}`;
  if (!(Number.isInteger(opts.samples) && opts.samples >= 1)) throw new ArgumentError(op, 'samples', `= ${opts.samples} must be a positive integer`);
  if (!Number.isInteger(opts.seed)) throw new ArgumentError(op, 'seed', `= ${opts.seed} must be an integer`);
  if (opts.lengths.length === 0) throw new ArgumentError(op, 'lengths', 'is empty', 'pass at least one length');
  for (const L of opts.lengths) {
    if (!(Number.isInteger(L) && L >= 2)) throw new ArgumentError(op, 'length', `= ${L} must be an integer >= 2`);
    if (L + 3 > opts.maxContext) throw beyondContext(task, L, 1, opts.maxContext);
  }
}

function beyondContext(task: RetrievalTask, length: number, answerTokens: number, ctx: number): ArgumentError {
  return new ArgumentError(`eval ${task}`, 'length', `= ${length} leaves no room in the context of ${ctx} tokens`
    + ` for the answer (${answerTokens} tokens) and 2 more`, `use lengths up to ${ctx - answerTokens - 2}`);
}

interface Planned {
  cell: number;
  length: number;
  sample: number;
  c: SizedCase;
}

/** Every case of the run, sized and checked against the context before anything is decoded. */
function planCases(tok: Tokenizer, task: RetrievalTask, opts: RetrievalOpts, params: number[]): { cells: RetrievalCell[]; cases: Planned[] } {
  const cells: RetrievalCell[] = [];
  const cases: Planned[] = [];
  for (const length of opts.lengths) {
    for (const param of params) {
      const cell = cells.length;
      cells.push({ length, ...(task === 'hashhop' ? { hops: param } : { depth: param }), n: 0, correct: 0, accuracy: 0, meanTokens: 0 });
      for (let sample = 0; sample < opts.samples; sample++) {
        const c = sizedCase(tok, { task, length, param, seed: opts.seed, sample, haystack: opts.haystack, alphabet: opts.alphabet });
        if (length + c.answerTokens + 2 > opts.maxContext) throw beyondContext(task, length, c.answerTokens, opts.maxContext);
        cases.push({ cell, length, sample, c });
      }
    }
  }
  return { cells, cases };
}

/** Per-length and overall accuracy from the filled cells. */
function summarize(cells: RetrievalCell[], misses: RetrievalMiss[], chance: number): RetrievalResult {
  const lengths = [...new Set(cells.map((c) => c.length))];
  const pool = (cs: RetrievalCell[]): { n: number; accuracy: number } => {
    const n = cs.reduce((s, c) => s + c.n, 0), correct = cs.reduce((s, c) => s + c.correct, 0);
    return { n, accuracy: n ? correct / n : 0 };
  };
  const byLength = lengths.map((length) => ({ length, ...pool(cells.filter((c) => c.length === length)) }));
  return { cells, misses, byLength, accuracy: pool(cells).accuracy, chance };
}

/**
 * Runs a retrieval task: for every length and depth (or hops) `samples` seeded cases, each decoded for answer
 * tokens + 2 tokens by `predict` and scored by prefix match. `chance` is the mean over the cases of a guess's
 * probability of being right (retrieval-cases.ts `caseChance`).
 */
export function evalRetrieval(predict: Predictor, tok: Tokenizer, task: RetrievalTask, opts: RetrievalOpts): RetrievalResult {
  checkOpts(task, opts);
  const params = taskParams(task, opts);
  const { cells, cases } = planCases(tok, task, opts, params);
  const tokens = new Array<number>(cells.length).fill(0);
  const misses: RetrievalMiss[] = [];
  let chance = 0;
  cases.forEach(({ cell, length, sample, c }, i) => {
    const ids = predict(c.ids, c.answerTokens + 2, length);
    const target = cells[cell]!;
    target.n++;
    const got = continuationText(tok, c.ids, ids);
    if (got.startsWith(c.answer)) target.correct++;
    else {
      const { depth, hops } = target;
      misses.push({ length, ...(depth !== undefined ? { depth } : {}), ...(hops !== undefined ? { hops } : {}), sample, expected: c.answer, got });
    }
    tokens[cell]! += c.ids.length;
    chance += c.chance / cases.length;
    opts.onCase?.(i + 1, cases.length);
  });
  cells.forEach((cell, i) => {
    cell.accuracy = cell.n ? cell.correct / cell.n : 0;
    cell.meanTokens = cell.n ? tokens[i]! / cell.n : 0;
  });
  return summarize(cells, misses, chance);
}

/**
 * Default lengths: 256, 512, 1024, ... below the context, topped by the longest length that leaves `room` tokens
 * for the answer (e.g. [256, 480] for a 512-token context and room 32).
 */
export function defaultLengths(maxContext: number, room: number): number[] {
  const top = maxContext - room;
  if (top < 2) throw new ArgumentError('eval', 'context', `= ${maxContext} leaves no room for a prompt and a ${room}-token answer`);
  const out: number[] = [];
  for (let L = 256; L < top; L *= 2) out.push(L);
  out.push(top);
  return out;
}

/** Room for the answer in default lengths: answer tokens + 2, generously (hashhop answers grow with the hops). */
export function answerRoom(task: RetrievalTask, hops: readonly number[] = DEFAULT_HOPS): number {
  return task === 'hashhop' ? 16 + 10 * Math.max(...hops) : 32;
}
