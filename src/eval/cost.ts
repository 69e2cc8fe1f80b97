/**
 * Costs of one model with one memory (DESIGN, Evaluation: "KV bytes per token, constant bytes, total at 1k/4k/16k
 * tokens, prefill and decode tokens/s").
 *
 * Bytes are computed from the memory's layout (model/layout.ts: attention groups grow with the length, window groups
 * retain sinks + window - 1 keys between steps, recurrent heads hold a constant state), not measured, so lengths
 * beyond the model's context are fine.
 * Rates are measured: prefill = `prefill` tokens in prefill chunks (inference/prefill.ts); decode = `decodeTokens` single-token steps after a
 * prefill to position `decodeAt`, through the memory the layout describes.
 */
import { fullMemory } from '../inference/hybrid-memory.js';
import { prefillChunked } from '../inference/prefill.js';
import type { DecoderLM } from '../model/transformer.js';
import { ArgumentError } from '../tensor/errors.js';
import { noGrad, scope } from '../tensor/index.js';
import type { Layout } from '../model/layout.js';
import type { CacheProfile } from './budget.js';
import type { MemoryFactory } from './windows.js';

/**
 * The layout of the memory at a length (equal-cache baselines resize their windows with the length); its bytes
 * come from Layout.bytesAt, the one place cache bytes are counted.
 */
export type CacheLayout = (tokens: number) => Layout;

export interface CostOpts {
  lengths: readonly number[];
  prefill: number;
  decodeAt: number;
  decodeTokens: number;
  layout: CacheLayout;
  /** The memory timed (null: the model's own). */
  memory: MemoryFactory | null;
  onStep?: (done: number, total: number) => void;
}

export interface Rate {
  tokens: number;
  seconds: number;
  tokPerS: number;
}

export interface CostResult {
  /** The model's own cache profile (as `inspect` reports it). */
  kvBytesPerToken: number;
  constantBytes: number;
  fullKvBytesPerToken: number;
  /** Bytes of the memory in use at each length, next to full attention's. */
  lengths: { length: number; bytes: number; fullAttentionBytes: number }[];
  prefill: Rate;
  decode: Rate & { at: number; bytes: number };
}

/** Deterministic token ids for timing (contents do not change the cost): BOS, then a walk over the vocabulary. */
function timingIds(model: DecoderLM, n: number): Int32Array {
  const V = model.cfg.vocabSize;
  return Int32Array.from({ length: n }, (_, i) => (i === 0 ? model.cfg.bosId : (i * 7 + 3) % V));
}

/** Tokens/s of one forward over `prefill` tokens (the memory filled as during generation). */
export function prefillRate(model: DecoderLM, prefill: number, memory: MemoryFactory | null): Rate {
  const ids = timingIds(model, prefill);
  const mem = memory ? memory(model) : fullMemory(model);
  const t0 = performance.now();
  prefillChunked(model, ids, mem);
  const seconds = (performance.now() - t0) / 1000;
  return { tokens: prefill, seconds, tokPerS: prefill / seconds };
}

/** Tokens/s of `steps` decode steps after a prefill to position `at`; also the memory's bytes at the end. */
export function decodeRate(model: DecoderLM, at: number, steps: number, memory: MemoryFactory | null,
  onStep?: (done: number, total: number) => void): Rate & { at: number; bytes: number } {
  const ids = timingIds(model, at + steps);
  const mem = memory ? memory(model) : fullMemory(model);
  prefillChunked(model, ids.subarray(0, at), mem);
  const t0 = performance.now();
  for (let i = 0; i < steps; i++) {
    noGrad(() => scope(() => {
      model.forward(ids.subarray(at + i, at + i + 1), 1, 1, { memory: mem });
    }));
    onStep?.(i + 1, steps);
  }
  const seconds = (performance.now() - t0) / 1000;
  return { tokens: steps, seconds, tokPerS: steps / seconds, at, bytes: mem.bytes() };
}

/** Checks the timing settings against the model (typed errors naming the flag). */
export function checkCostArgs(model: DecoderLM, o: Pick<CostOpts, 'lengths' | 'prefill' | 'decodeAt' | 'decodeTokens'>): void {
  const ctx = model.cfg.maxPos;
  if (o.lengths.length === 0 || o.lengths.some((l) => !(Number.isInteger(l) && l >= 1))) {
    throw new ArgumentError('eval cost', '--lengths', `= ${o.lengths.join(',')} must be positive integers`, 'e.g. --lengths 1024,4096,16384');
  }
  if (!(Number.isInteger(o.prefill) && o.prefill >= 1 && o.prefill <= ctx)) {
    throw new ArgumentError('eval cost', '--prefill', `= ${o.prefill} must be in [1, ${ctx}] (the model context)`);
  }
  if (!(Number.isInteger(o.decodeTokens) && o.decodeTokens >= 1)) {
    throw new ArgumentError('eval cost', '--decode-tokens', `= ${o.decodeTokens} must be a positive integer`);
  }
  if (!(Number.isInteger(o.decodeAt) && o.decodeAt >= 1 && o.decodeAt + o.decodeTokens <= ctx)) {
    throw new ArgumentError('eval cost', '--decode-at', `= ${o.decodeAt} must be >= 1 with decode-at + decode-tokens <= ${ctx} (the model context)`,
      `use --decode-at ${Math.max(1, ctx - o.decodeTokens)} or less`);
  }
}

/** The default decode position: min(context, 2048) - decodeTokens. */
export function defaultDecodeAt(model: DecoderLM, decodeTokens: number): number {
  return Math.min(model.cfg.maxPos, 2048) - decodeTokens;
}

/** Bytes at each length and measured prefill / decode rates of `model` with the memory `o` describes. */
export function cost(model: DecoderLM, profile: CacheProfile, o: CostOpts): CostResult {
  checkCostArgs(model, o);
  const lengths = o.lengths.map((length) => ({ length, bytes: o.layout(length).bytesAt(length), fullAttentionBytes: length * profile.fullKvBytesPerToken }));
  const prefill = prefillRate(model, o.prefill, o.memory);
  const decode = decodeRate(model, o.decodeAt, o.decodeTokens, o.memory, o.onStep);
  return { kvBytesPerToken: profile.kvBytesPerToken, constantBytes: profile.constantBytes, fullKvBytesPerToken: profile.fullKvBytesPerToken, lengths, prefill, decode };
}
