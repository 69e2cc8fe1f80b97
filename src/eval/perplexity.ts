/**
 * Perplexity over a text: tokenized once with BOS first, scored in windows of `ctx` inputs advancing by `stride`
 * (windows.ts). stride = ctx (the default) gives non-overlapping windows, each predicting its next ctx tokens from a
 * fresh context; a smaller stride scores each later window's last `stride` targets only, so every target keeps at
 * least ctx - stride tokens of context. The last partial window is scored too.
 */
import type { Tokenizer } from '../io/tokenizer.js';
import type { DecoderLM } from '../model/transformer.js';
import { crossEntropy } from '../tensor/index.js';
import { checkWindowArgs, forwardWindow, slidingWindows, type MemoryFactory } from './windows.js';

export interface PplResult {
  nll: number;
  ppl: number;
  tokens: number;
  windows: number;
}

export interface PplOpts {
  ctx: number;
  /** Default ctx (non-overlapping windows). */
  stride?: number;
  /** A baseline memory each window runs through in blocks of `block` tokens (default 64). */
  memory?: MemoryFactory | null;
  block?: number;
  onWindow?: (done: number, total: number) => void;
}

/** Targets a window does not score are ignored by the cross-entropy. */
const IGNORE = -100;

/** Mean negative log-likelihood of ids[1..] under sliding windows (see the module comment). */
export function slidingPerplexity(model: DecoderLM, ids: readonly number[], o: PplOpts): PplResult {
  const stride = o.stride ?? o.ctx;
  checkWindowArgs('eval ppl', model, ids.length, o.ctx, stride);
  const windows = slidingWindows(ids.length, o.ctx, stride);
  let sum = 0, count = 0;
  windows.forEach((w, i) => {
    const input = Int32Array.from(ids.slice(w.start, w.start + w.n));
    const target = Int32Array.from(ids.slice(w.start + 1, w.start + 1 + w.n));
    target.fill(IGNORE, 0, w.from);
    forwardWindow(model, input, o.memory, o.block ?? 64, (logits, s, e) => {
      if (e <= w.from) return;
      sum += crossEntropy(logits, target.subarray(s, e), { reduction: 'sum', ignoreIndex: IGNORE }).item();
    });
    count += w.n - w.from;
    o.onWindow?.(i + 1, windows.length);
  });
  const nll = sum / count;
  return { nll, ppl: Math.exp(nll), tokens: count, windows: windows.length };
}

/**
 * Non-overlapping windows (stride = ctx). With `memory` (a baseline such as StreamingLLM), each window is fed
 * through that memory in blocks of `block` tokens so eviction happens as it would during generation; without it,
 * one parallel forward per window.
 */
export function perplexityOfIds(model: DecoderLM, ids: readonly number[], ctx: number,
  onWindow?: (done: number, total: number) => void, memory?: MemoryFactory | null, block = 64): PplResult {
  return slidingPerplexity(model, ids, { ctx, onWindow, memory, block });
}

/** Perplexity of a text (BOS first) in windows of ctx advancing by stride (default ctx). */
export function perplexity(model: DecoderLM, tok: Tokenizer, text: string, ctx: number,
  onWindow?: (done: number, total: number) => void, memory?: MemoryFactory | null, stride = ctx): PplResult {
  return slidingPerplexity(model, tok.encode(text, { bos: true }), { ctx, stride, onWindow, memory });
}
