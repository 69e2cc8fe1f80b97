/**
 * Text generation: parallel prefill of the prompt into the memory, then one token per step from the sampler
 * until max tokens, an end token, or a stop string. Each step runs under noGrad and a buffer scope, so the decode
 * loop reuses its buffers instead of allocating.
 */
import type { Tokenizer } from '../io/tokenizer.js';
import type { DecoderLM } from '../model/transformer.js';
import { DecodeSession, type GenerateOpts, type GenerateResult } from './session.js';

export { fullMemory } from './hybrid-memory.js';

export type { GenerateOpts, GenerateResult } from './session.js';

/** Token ids for a prompt: BOS plus the encoded text (an empty prompt is BOS alone). */
export function promptIds(tok: Tokenizer, prompt: string): number[] {
  const ids = tok.encode(prompt, { bos: true });
  return ids.length ? ids : [tok.bosId];
}

/**
 * Runs a DecodeSession (session.ts, the one implementation of the decode loop) to the end synchronously, handing
 * each token and the text it completes to onToken.
 */
export function generateIds(model: DecoderLM, prompt: readonly number[], tok: Tokenizer | null,
  opts: GenerateOpts = {}): GenerateResult {
  const { onToken, ...rest } = opts;
  const session = new DecodeSession(model, tok, prompt, rest);
  while (!session.done) {
    const ev = session.step();
    // the final flush of held-back text comes with no new token: report it with the last one
    if (ev.id >= 0 || ev.delta) onToken?.(ev.id >= 0 ? ev.id : session.ids[session.ids.length - 1] ?? -1, ev.delta);
  }
  return session.result();
}

export function generate(model: DecoderLM, tok: Tokenizer, prompt: string, opts: GenerateOpts = {}): GenerateResult {
  return generateIds(model, promptIds(tok, prompt), tok, opts);
}
