/**
 * Text generation: parallel prefill of the prompt into the memory, then one token per step from the sampler
 * until max tokens, an end token, or a stop string. Each step runs under noGrad and a buffer scope, so the decode
 * loop reuses its buffers instead of allocating.
 */
import type { Tokenizer } from '../io/tokenizer.js';
import type { DecoderLM } from '../model/transformer.js';
import { ArgumentError } from '../tensor/errors.js';
import { noGrad, scope } from '../tensor/index.js';
import { KVCache, type AttentionMemory } from './memory.js';
import { Sampler, type SamplerOpts } from './sampler.js';

export interface GenerateOpts extends SamplerOpts {
  maxTokens?: number;
  /** Stop when the generated text contains one of these (the stop string is cut from the text). */
  stop?: readonly string[];
  /** Called with each new token and the text it completes (may be '' while a UTF-8 sequence is incomplete). */
  onToken?: (id: number, textDelta: string) => void;
  /** Memory factory (default: the full KV cache). */
  memory?: (model: DecoderLM) => AttentionMemory;
}

export interface GenerateResult {
  promptIds: number[];
  /** Generated ids (without the prompt). */
  ids: number[];
  text: string;
  stopReason: 'length' | 'eos' | 'stop' | 'context';
}

/** The model's native memory: the full KV cache, or for a converted model the hybrid (kept KV + recurrent state). */
export function fullMemory(model: DecoderLM, batch = 1): KVCache {
  const c = model.cfg;
  const m = new KVCache(c.nLayers, batch, model.kvHeadsPerLayer(), c.headDim, c.maxPos);
  m.hasRecurrent = model.recurrent.size > 0;
  return m;
}

/** Token ids for a prompt: BOS plus the encoded text (an empty prompt is BOS alone). */
export function promptIds(tok: Tokenizer, prompt: string): number[] {
  const ids = tok.encode(prompt, { bos: true });
  return ids.length ? ids : [tok.bosId];
}

export function generateIds(model: DecoderLM, prompt: readonly number[], tok: Tokenizer | null,
  opts: GenerateOpts = {}): GenerateResult {
  const maxTokens = opts.maxTokens ?? 256;
  if (!(Number.isInteger(maxTokens) && maxTokens >= 0)) {
    throw new ArgumentError('generate', 'maxTokens', `= ${maxTokens} must be a non-negative integer`);
  }
  if (prompt.length === 0) throw new ArgumentError('generate', 'prompt', 'is empty', 'start from the BOS token');
  const ctx = model.cfg.maxPos;
  if (prompt.length > ctx) {
    throw new ArgumentError('generate', 'prompt', `has ${prompt.length} tokens, more than the context of ${ctx}`,
      'shorten the prompt');
  }
  for (let i = 0; i < prompt.length; i++) {
    const id = prompt[i]!;
    if (!Number.isInteger(id) || id < 0 || id >= model.cfg.vocabSize) {
      throw new ArgumentError('generate', `prompt[${i}]`, `= ${id} is outside the vocabulary [0, ${model.cfg.vocabSize})`);
    }
  }
  const sampler = new Sampler(opts);
  const memory = opts.memory ? opts.memory(model) : fullMemory(model);
  const eos = new Set<number>(model.cfg.eosId);
  if (tok) eos.add(tok.eosId);
  const history: number[] = [...prompt];
  const out: number[] = [];
  let text = '';
  let emitted = 0; // characters of `text` already handed to onToken
  const stops = (opts.stop ?? []).filter((s) => s.length > 0);
  /** Length of the longest suffix of t that begins some stop string (held back until it is resolved). */
  const pending = (t: string): number => {
    let hold = 0;
    for (const s of stops) {
      for (let k = Math.min(s.length - 1, t.length); k > hold; k--) {
        if (t.endsWith(s.slice(0, k))) {
          hold = k;
          break;
        }
      }
    }
    return hold;
  };
  let stopReason: GenerateResult['stopReason'] = 'length';
  let next = noGrad(() => scope(() => {
    const logits = model.forward(Int32Array.from(prompt), 1, prompt.length, { memory, lastOnly: true });
    memory.advance(prompt.length);
    return sampler.sample(logits.data, history);
  }));
  while (out.length < maxTokens) {
    if (eos.has(next) || (next === model.cfg.bosId && out.length + prompt.length > 1)) {
      stopReason = 'eos';
      break;
    }
    if (prompt.length + out.length >= ctx) {
      // prompt + generated tokens never exceed the context the model was trained for
      stopReason = 'context';
      break;
    }
    out.push(next);
    history.push(next);
    if (tok) {
      text = tok.decode(out);
      const hit = stops.find((s) => text.includes(s));
      if (hit !== undefined) {
        text = text.slice(0, text.indexOf(hit));
        stopReason = 'stop';
        if (text.length > emitted) opts.onToken?.(next, text.slice(emitted));
        emitted = text.length;
        break;
      }
      // stream what can no longer turn into a stop string
      const safe = text.length - pending(text);
      opts.onToken?.(next, safe > emitted ? text.slice(emitted, safe) : '');
      if (safe > emitted) emitted = safe;
    } else {
      opts.onToken?.(next, '');
    }
    if (out.length >= maxTokens) break;
    const cur = next;
    next = noGrad(() => scope(() => {
      const logits = model.forward(Int32Array.of(cur), 1, 1, { memory });
      memory.advance(1);
      return sampler.sample(logits.data, history);
    }));
  }
  if (tok && text.length > emitted) opts.onToken?.(out[out.length - 1] ?? -1, text.slice(emitted));
  return { promptIds: [...prompt], ids: out, text, stopReason };
}

export function generate(model: DecoderLM, tok: Tokenizer, prompt: string, opts: GenerateOpts = {}): GenerateResult {
  return generateIds(model, promptIds(tok, prompt), tok, opts);
}
