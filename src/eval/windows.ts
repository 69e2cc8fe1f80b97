/**
 * Evaluation windows over a token stream, shared by perplexity and teacher agreement.
 *
 * Glossary:
 *   ctx     inputs per window (the model sees at most ctx tokens of context);
 *   stride  how far the next window starts after the previous one (stride = ctx: non-overlapping windows);
 *   from    the first input position of a window whose target is scored: 0 for the first window, and for a later
 *           one the positions whose targets no earlier window scored (the last `stride` of a full window), so every
 *           target is scored exactly once, with at least ctx - stride tokens of context (the sliding-window protocol).
 */
import { fullMemory, type HybridMemory } from '../inference/hybrid-memory.js';
import { PREFILL_CHUNK } from '../inference/prefill.js';
import type { DecoderLM } from '../model/transformer.js';
import { ArgumentError } from '../tensor/errors.js';
import { noGrad, scope, type Tensor } from '../tensor/index.js';

/** Builds the memory a window runs through (a baseline such as StreamingLLM); null means one parallel forward. */
export type MemoryFactory = (m: DecoderLM) => HybridMemory;

export interface EvalWindow {
  /** Index of the window's first input token. */
  start: number;
  /** Inputs in the window: ids[start, start + n) predict ids[start + 1, start + n + 1). */
  n: number;
  /** First window position whose target is scored. */
  from: number;
}

/** Checks ctx and stride against the model and the data (typed errors naming `op` and the argument). */
export function checkWindowArgs(op: string, model: DecoderLM, tokens: number, ctx: number, stride: number): void {
  if (!(Number.isInteger(ctx) && ctx >= 1)) throw new ArgumentError(op, 'ctx', `= ${ctx} must be a positive integer`);
  if (ctx > model.cfg.maxPos) {
    throw new ArgumentError(op, 'ctx', `= ${ctx} exceeds the model context of ${model.cfg.maxPos}`, `use --ctx ${model.cfg.maxPos} or less`);
  }
  if (!(Number.isInteger(stride) && stride >= 1 && stride <= ctx)) {
    throw new ArgumentError(op, 'stride', `= ${stride} must be an integer in [1, ctx = ${ctx}]`, 'use --stride <= --ctx');
  }
  if (tokens < 2) throw new ArgumentError(op, 'data', 'has fewer than 2 tokens', 'pass a longer text');
}

/** The windows over `tokens` ids (tokens - 1 targets), each target scored by exactly one window. */
export function slidingWindows(tokens: number, ctx: number, stride: number): EvalWindow[] {
  const targets = tokens - 1;
  const out: EvalWindow[] = [];
  let scored = 0; // targets [0, scored) are done
  for (let start = 0; scored < targets; start += stride) {
    const n = Math.min(ctx, targets - start);
    out.push({ start, n, from: scored - start });
    scored = start + n;
  }
  return out;
}

/**
 * Runs one window's inputs through `model` and hands the logits (1, e - s, V) of positions [s, e) to `visit`, inside
 * noGrad and a buffer scope. Without a memory factory: one parallel forward (s = 0, e = n) up to PREFILL_CHUNK
 * tokens, chunks of it through the model's own memory beyond. With one: a fresh memory fed in blocks of `block`
 * tokens, so eviction happens as it would during generation.
 */
export function forwardWindow(model: DecoderLM, input: Int32Array, memory: MemoryFactory | null | undefined, block: number,
  visit: (logits: Tensor, s: number, e: number) => void): void {
  const n = input.length;
  if (!memory && n <= PREFILL_CHUNK) {
    noGrad(() => scope(() => visit(model.forward(input, 1, n), 0, n)));
    return;
  }
  // A long window without a baseline runs through the model's own memory (full KV, or the hybrid) in prefill
  // chunks, each freed before the next: activations stay O(chunk) whatever the context.
  const mem = memory ? memory(model) : fullMemory(model);
  const step = memory ? block : PREFILL_CHUNK;
  for (let s = 0; s < n; s += step) {
    const e = Math.min(n, s + step);
    noGrad(() => scope(() => visit(model.forward(input.subarray(s, e), 1, e - s, { memory: mem }), s, e)));
  }
  mem.reset();
}
