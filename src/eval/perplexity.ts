/**
 * Perplexity over a text: tokenized once with BOS first, scored in non-overlapping windows of `ctx` inputs (each
 * window predicts its next ctx tokens from a fresh context). The last partial window is scored too.
 */
import type { Tokenizer } from '../io/tokenizer.js';
import type { DecoderLM } from '../model/transformer.js';
import type { AttentionMemory } from '../inference/memory.js';
import { ArgumentError } from '../tensor/errors.js';
import { crossEntropy, noGrad, scope } from '../tensor/index.js';

export interface PplResult {
  nll: number;
  ppl: number;
  tokens: number;
  windows: number;
}

/**
 * With `memory` (a baseline such as StreamingLLM), each window is fed through that memory in blocks of `block`
 * tokens so eviction happens as it would during generation; without it, one parallel forward per window.
 */
export function perplexityOfIds(model: DecoderLM, ids: readonly number[], ctx: number,
  onWindow?: (done: number, total: number) => void, memory?: ((m: DecoderLM) => AttentionMemory) | null, block = 64): PplResult {
  if (!(Number.isInteger(ctx) && ctx >= 1)) throw new ArgumentError('eval ppl', 'ctx', `= ${ctx} must be a positive integer`);
  if (ctx > model.cfg.maxPos) {
    throw new ArgumentError('eval ppl', 'ctx', `= ${ctx} exceeds the model context of ${model.cfg.maxPos}`, `use --ctx ${model.cfg.maxPos} or less`);
  }
  if (ids.length < 2) throw new ArgumentError('eval ppl', 'data', 'has fewer than 2 tokens', 'pass a longer text');
  const total = Math.ceil((ids.length - 1) / ctx);
  let sum = 0, count = 0;
  for (let w = 0; w < total; w++) {
    const start = w * ctx;
    const n = Math.min(ctx, ids.length - 1 - start);
    const input = Int32Array.from(ids.slice(start, start + n));
    const target = Int32Array.from(ids.slice(start + 1, start + 1 + n));
    if (memory) {
      const mem = memory(model);
      for (let s = 0; s < n; s += block) {
        const e = Math.min(n, s + block);
        sum += noGrad(() => scope(() => crossEntropy(model.forward(input.subarray(s, e), 1, e - s, { memory: mem }),
          target.subarray(s, e), { reduction: 'sum' }).item()));
        mem.advance(e - s);
      }
    } else {
      sum += noGrad(() => scope(() => crossEntropy(model.forward(input, 1, n), target, { reduction: 'sum' }).item()));
    }
    count += n;
    onWindow?.(w + 1, total);
  }
  const nll = sum / count;
  return { nll, ppl: Math.exp(nll), tokens: count, windows: total };
}

export function perplexity(model: DecoderLM, tok: Tokenizer, text: string, ctx: number,
  onWindow?: (done: number, total: number) => void, memory?: ((m: DecoderLM) => AttentionMemory) | null): PplResult {
  return perplexityOfIds(model, tok.encode(text, { bos: true }), ctx, onWindow, memory);
}
