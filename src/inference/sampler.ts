/**
 * Next-token sampling over a logits row: repetition penalty, temperature, top-k, top-p (nucleus), min-p, then a
 * seeded draw. Temperature 0 is greedy (ties go to the lowest id). The order of filters follows llama.cpp's
 * default chain so the same settings mean the same thing.
 */
import { ArgumentError } from '../tensor/errors.js';
import { Rng } from '../tensor/rng.js';

export interface SamplerOpts {
  temperature?: number;
  topK?: number;
  topP?: number;
  minP?: number;
  /** > 1 discourages tokens already in the context (CTRL-style: positive logits divided, negative multiplied). */
  repetitionPenalty?: number;
  seed?: number;
  /**
   * Ids at or above this are never drawn: the embedding rows past the tokenizer's vocabulary (Qwen pads 151,669
   * ids to 151,936 rows) are padding that no text decodes to.
   */
  vocabLimit?: number;
}

export class Sampler {
  readonly temperature: number;
  readonly topK: number;
  readonly topP: number;
  readonly minP: number;
  readonly repetitionPenalty: number;
  readonly vocabLimit: number;
  readonly rng: Rng;

  constructor(o: SamplerOpts = {}) {
    this.temperature = o.temperature ?? 0;
    this.topK = o.topK ?? 0;
    this.topP = o.topP ?? 1;
    this.minP = o.minP ?? 0;
    this.repetitionPenalty = o.repetitionPenalty ?? 1;
    this.vocabLimit = o.vocabLimit ?? Infinity;
    this.rng = new Rng(o.seed ?? 0);
    const bad = (name: string, v: number, hint: string): never => {
      throw new ArgumentError('Sampler', name, `= ${v} is invalid`, hint);
    };
    if (!(this.temperature >= 0)) bad('temperature', this.temperature, 'use a value >= 0 (0 = greedy)');
    if (!(Number.isInteger(this.topK) && this.topK >= 0)) bad('topK', this.topK, 'use an integer >= 0 (0 = off)');
    if (!(this.topP > 0 && this.topP <= 1)) bad('topP', this.topP, 'use a value in (0, 1]');
    if (!(this.minP >= 0 && this.minP < 1)) bad('minP', this.minP, 'use a value in [0, 1)');
    if (!(this.repetitionPenalty > 0)) bad('repetitionPenalty', this.repetitionPenalty, 'use a value > 0 (1 = off)');
  }

  /** Picks a token id from one row of logits; `history` feeds the repetition penalty. */
  sample(logits: Float32Array, history: ArrayLike<number> = []): number {
    const V = logits.length;
    const z = Float32Array.from(logits);
    for (let i = Math.max(0, this.vocabLimit); i < V; i++) z[i] = -Infinity;
    if (this.repetitionPenalty !== 1) {
      const seen = new Set<number>();
      for (let i = 0; i < history.length; i++) seen.add(history[i]!);
      for (const t of seen) if (t >= 0 && t < V) z[t] = z[t]! > 0 ? z[t]! / this.repetitionPenalty : z[t]! * this.repetitionPenalty;
    }
    if (this.temperature === 0) return argmax(z);
    // candidates sorted by logit, descending
    let ids = Array.from({ length: V }, (_, i) => i).sort((a, b) => z[b]! - z[a]! || a - b);
    if (this.topK > 0 && this.topK < ids.length) ids = ids.slice(0, this.topK);
    const m = z[ids[0]!]!;
    let probs = ids.map((i) => Math.exp((z[i]! - m) / this.temperature));
    let sum = probs.reduce((s, p) => s + p, 0);
    probs = probs.map((p) => p / sum);
    if (this.topP < 1) {
      let acc = 0, keep = 0;
      while (keep < probs.length) {
        acc += probs[keep]!;
        keep++;
        if (acc >= this.topP) break;
      }
      ids = ids.slice(0, keep);
      probs = probs.slice(0, keep);
    }
    if (this.minP > 0) {
      const cut = probs[0]! * this.minP;
      let keep = probs.findIndex((p) => p < cut);
      if (keep < 0) keep = probs.length;
      ids = ids.slice(0, Math.max(1, keep));
      probs = probs.slice(0, Math.max(1, keep));
    }
    sum = probs.reduce((s, p) => s + p, 0);
    let u = this.rng.next() * sum;
    for (let k = 0; k < ids.length; k++) {
      u -= probs[k]!;
      if (u < 0) return ids[k]!;
    }
    return ids[ids.length - 1]!;
  }
}

export function argmax(x: Float32Array): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}
