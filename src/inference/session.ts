/**
 * A decode session: the decode loop, cut into synchronous steps so a caller can interleave many sessions token by
 * token, yield to the event loop between tokens, and cancel one at once. `generateIds` (generate.ts) runs one to the
 * end; the server interleaves many.
 *
 * Glossary:
 *   prefill  - one parallel forward pass over the prompt that fills the memory and samples the first token;
 *   step     - emit the pending token (stop checks first), then run one decode forward for the next one;
 *   delta    - the text that token completes, minus any suffix that may still turn into a stop string;
 *   dispose  - drop the memory (the KV cache) so its buffers can be collected; the session is finished after.
 *
 */
import type { Tokenizer } from '../io/tokenizer.js';
import type { DecoderLM } from '../model/transformer.js';
import { ArgumentError } from '../tensor/errors.js';
import { noGrad, scope } from '../tensor/index.js';
import type { SamplerOpts } from './sampler.js';
import { fullMemory, type HybridMemory } from './hybrid-memory.js';
import { PREFILL_CHUNK, prefillChunked } from './prefill.js';
import { Sampler } from './sampler.js';

export { PREFILL_CHUNK } from './prefill.js';

export interface GenerateOpts extends SamplerOpts {
  maxTokens?: number;
  /** Stop when the generated text contains one of these (the stop string is cut from the text). */
  stop?: readonly string[];
  /** Called with each new token and the text it completes (may be '' while a UTF-8 sequence is incomplete). */
  onToken?: (id: number, textDelta: string) => void;
  /** Memory factory (default: the full KV cache). */
  memory?: (model: DecoderLM) => HybridMemory;
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

export interface SessionOpts extends Omit<GenerateOpts, 'onToken'> {
  /**
   * Text is what the new tokens add to the prompt's text (decode(prompt + ids) minus decode(prompt)), as an
   * OpenAI completion is, so `prompt + text` reads right: a SentencePiece word after the prompt keeps its leading
   * space. Default false: text = decode(ids), exactly as generateIds (which drops that space).
   */
  continuation?: boolean;
}

export interface StepEvent {
  /** The token emitted by this step, or -1 when the step only finished the session. */
  id: number;
  /** Text this step adds to the output ('' while a UTF-8 sequence or a possible stop string is pending). */
  delta: string;
  done: boolean;
}

export class DecodeSession {
  readonly prompt: readonly number[];
  readonly maxTokens: number;
  readonly ids: number[] = [];
  text = '';
  stopReason: GenerateResult['stopReason'] | 'cancelled' | null = null;
  private memory: HybridMemory | null = null;
  private readonly sampler: Sampler;
  private readonly eos: Set<number>;
  private readonly stops: string[];
  private readonly history: number[];
  private next = -1;
  private emitted = 0;
  private readonly prefillChunk: number;

  constructor(readonly model: DecoderLM, readonly tok: Tokenizer | null, prompt: readonly number[],
    private readonly opts: SessionOpts = {}) {
    this.maxTokens = opts.maxTokens ?? 256;
    if (!(Number.isInteger(this.maxTokens) && this.maxTokens >= 0)) {
      throw new ArgumentError('DecodeSession', 'maxTokens', `= ${this.maxTokens} must be a non-negative integer`);
    }
    if (prompt.length === 0) throw new ArgumentError('DecodeSession', 'prompt', 'is empty', 'start from the BOS token');
    const ctx = model.cfg.maxPos;
    if (prompt.length > ctx) {
      throw new ArgumentError('DecodeSession', 'prompt', `has ${prompt.length} tokens, more than the context of ${ctx}`,
        'shorten the prompt');
    }
    this.prefillChunk = opts.prefillChunk ?? PREFILL_CHUNK;
    if (!(Number.isInteger(this.prefillChunk) && this.prefillChunk >= 1)) {
      throw new ArgumentError('DecodeSession', 'prefillChunk', `= ${this.prefillChunk} must be a positive integer`, `the default is ${PREFILL_CHUNK}`);
    }
    prompt.forEach((id, i) => {
      if (!Number.isInteger(id) || id < 0 || id >= model.cfg.vocabSize) {
        throw new ArgumentError('DecodeSession', `prompt[${i}]`, `= ${id} is outside the vocabulary [0, ${model.cfg.vocabSize})`);
      }
    });
    this.prompt = [...prompt];
    this.history = [...prompt];
    // validates the sampling options before any memory is allocated; never samples the embedding's padding rows
    this.sampler = new Sampler(tok && tok.vocabSize < model.cfg.vocabSize ? { ...opts, vocabLimit: tok.vocabSize } : opts);
    this.eos = new Set<number>(model.cfg.eosId);
    if (tok) this.eos.add(tok.eosId);
    this.stops = (opts.stop ?? []).filter((s) => s.length > 0);
  }

  get started(): boolean {
    return this.memory !== null || this.stopReason !== null;
  }

  get done(): boolean {
    return this.stopReason !== null;
  }

  /** Tokens in the memory now (prompt + decoded), 0 before prefill and after dispose. */
  get length(): number {
    return this.memory?.length ?? 0;
  }

  /** Bytes the memory holds now. */
  bytes(): number {
    return this.memory?.bytes() ?? 0;
  }

  /** The memory's kind ('full' for the KV cache), known before prefill. */
  get memoryKind(): string {
    return this.memory?.kind ?? 'full';
  }

  /** Allocates the memory and runs the prompt through it (the expensive first call). */
  prefill(): void {
    if (this.started) return;
    const memory = this.opts.memory ? this.opts.memory(this.model) : fullMemory(this.model);
    this.memory = memory;
    const p = this.prompt;
    memory.reserve(p.length + this.maxTokens);
    const last = prefillChunked(this.model, p, memory, this.prefillChunk);
    this.next = this.sampler.sample(last, this.history);
  }

  /** Emits one token (prefilling first if needed). After `done`, returns a finished empty event. */
  step(): StepEvent {
    if (this.done) return { id: -1, delta: '', done: true };
    if (!this.memory) this.prefill();
    const out = this.ids;
    const next = this.next;
    if (out.length >= this.maxTokens) return this.finish('length', -1, '');
    if (this.eos.has(next) || (next === this.model.cfg.bosId && out.length + this.prompt.length > 1)) {
      return this.finish('eos', -1, '');
    }
    // prompt + generated tokens never exceed the context the model was trained for
    if (this.prompt.length + out.length >= this.model.cfg.maxPos) return this.finish('context', -1, '');
    out.push(next);
    this.history.push(next);
    let delta = '';
    if (this.tok) {
      this.text = this.decodeOut();
      const hit = this.stops.find((s) => this.text.includes(s));
      if (hit !== undefined) {
        this.text = this.text.slice(0, this.text.indexOf(hit));
        return this.finish('stop', next, '');
      }
      const safe = this.text.length - this.pending(this.text);
      if (safe > this.emitted) {
        delta = this.text.slice(this.emitted, safe);
        this.emitted = safe;
      }
    }
    if (out.length >= this.maxTokens) return this.finish('length', next, delta);
    const memory = this.memory!;
    this.next = noGrad(() => scope(() => {
      const logits = this.model.forward(Int32Array.of(next), 1, 1, { memory });
      return this.sampler.sample(logits.data, this.history);
    }));
    return { id: next, delta, done: false };
  }

  /** Stops the session and frees its memory now; a no-op on a finished session. */
  cancel(): void {
    if (!this.done) this.stopReason = 'cancelled';
    this.dispose();
  }

  /** Drops the memory (the session keeps its ids and text). */
  dispose(): void {
    this.memory?.reset();
    this.memory = null;
  }

  result(): GenerateResult {
    const r = this.stopReason;
    return { promptIds: [...this.prompt], ids: [...this.ids], text: this.text,
      stopReason: r === null || r === 'cancelled' ? 'length' : r };
  }

  /** Ends the session: flushes held-back text (as generateIds does at the end) and frees the memory. */
  private finish(reason: GenerateResult['stopReason'], id: number, delta: string): StepEvent {
    this.stopReason = reason;
    if (this.tok && this.text.length > this.emitted) {
      delta += this.text.slice(this.emitted);
      this.emitted = this.text.length;
    }
    this.dispose();
    return { id, delta, done: true };
  }

  private promptText: string | null = null;

  private decodeOut(): string {
    const tok = this.tok!;
    if (!this.opts.continuation) return tok.decode(this.ids);
    this.promptText ??= tok.decode(this.prompt);
    const full = tok.decode([...this.prompt, ...this.ids]);
    // decoding is prefix-stable for text-made prompts; fall back to the ids alone if a tokenizer ever is not
    return full.startsWith(this.promptText) ? full.slice(this.promptText.length) : tok.decode(this.ids);
  }

  /** Length of the longest suffix of t that begins some stop string (held back until it is resolved). */
  private pending(t: string): number {
    let hold = 0;
    for (const s of this.stops) {
      for (let k = Math.min(s.length - 1, t.length); k > hold; k--) {
        if (t.endsWith(s.slice(0, k))) {
          hold = k;
          break;
        }
      }
    }
    return hold;
  }
}

export { fullAttentionBytes } from './hybrid-memory.js';

/**
 * Runs a session to the end, yielding to the event loop after every token (so timers, sockets and other sessions
 * get their turn) and calling onToken like generateIds does. `signal` cancels it between tokens.
 */
export async function generateAsync(session: DecodeSession,
  onToken?: (id: number, delta: string) => void, signal?: AbortSignal): Promise<GenerateResult> {
  while (!session.done) {
    if (signal?.aborted) {
      session.cancel();
      break;
    }
    const ev = session.step();
    if (ev.id >= 0 || ev.delta) onToken?.(ev.id, ev.delta);
    await new Promise<void>((resolve) => setImmediate(resolve));
  }
  return session.result();
}
