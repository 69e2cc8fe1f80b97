/**
 * Text generation: parallel prefill of the prompt into the memory, then one token per step from the sampler
 * until max tokens, an end token, or a stop string. Each step runs under noGrad and a buffer scope, so the decode
 * loop reuses its buffers instead of allocating.
 */
import type { Tokenizer } from '../io/tokenizer.js';
import type { DecoderLM } from '../model/transformer.js';
import type { AttentionMemory } from './memory.js';
import type { SamplerOpts } from './sampler.js';
import { DecodeSession } from './session.js';

export { fullMemory } from './memory.js';

export interface GenerateOpts extends SamplerOpts {
  maxTokens?: number;
  /** Stop when the generated text contains one of these (the stop string is cut from the text). */
  stop?: readonly string[];
  /** Called with each new token and the text it completes (may be '' while a UTF-8 sequence is incomplete). */
  onToken?: (id: number, textDelta: string) => void;
  /** Memory factory (default: the full KV cache). */
  memory?: (model: DecoderLM) => AttentionMemory;
  /**
   * Prefill the prompt this many tokens at a time (default PREFILL_CHUNK), freeing each chunk's activations before
   * the next: peak memory is weights + cache + one chunk's activations, whatever the prompt length.
   */
  prefillChunk?: number;
}


export interface GenerateResult {
  promptIds: number[];
  /** Generated ids (without the prompt). */
  ids: number[];
  text: string;
  stopReason: 'length' | 'eos' | 'stop' | 'context';
}

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
