/**
 * Retrieval probe: which KV groups does long-range retrieval need? These are DuoAttention's "retrieval heads"
 * (arXiv 2410.10819), measured here by ablation instead of by optimizing a gate per head. Recency statistics on
 * calibration text (recency.ts) cannot see them: a head that copies from far back only when the context holds a
 * match looks local on ordinary text, so RR ranks it among the first to replace.
 *
 * Per KV group g (layer l), teacher-forced over synthetic passkey prompts (the eval format, synthetic.ts,
 * fresh keys, depths below 1 so the key lies beyond the window):
 *
 *   baseline   every group attends over the whole prompt (the model's full KV cache);
 *   ablated    group g alone keeps `sinks` + `window` keys (streamingHeadsMemory), every other group full;
 *   nll        mean over prompts of the answer's NLL (nats, summed over the answer's tokens);
 *   harm_g     nll(ablated g) - nll(baseline): what retrieval loses when g cannot see past its window;
 *   accuracy   share of prompts whose every answer token is still the argmax (teacher-forced greedy match).
 *
 * A streaming window keeps a head's local behaviour exactly, so the harm isolates the group's long-range role; it
 * does not measure how well a recurrent head would imitate the group (that is what training recovers). Cost: one
 * prefill per prompt for the baseline and per prompt and group, (1 + layers x groups) x prompts in all.
 *
 * It runs here, in eval/, because its prompts are the eval's (retrieval-cases.ts); `analyze --retrieval-probe` stores
 * the result in analysis.json (the types are analysis/schema.ts's), where convert's plan reads it.
 */
import type { Tokenizer } from '../io/tokenizer.js';
import { promptIds } from '../inference/generate.js';
import { streamingHeadsMemory, type HybridMemory } from '../inference/hybrid-memory.js';
import type { DecoderLM } from '../model/transformer.js';
import { ArgumentError } from '../tensor/errors.js';
import { contiguousData, noGrad, rowLogSumExp, scope } from '../tensor/index.js';
import type { ProbeSettings, RetrievalProbe, GroupProbe } from '../analysis/schema.js';
import { sizedCase } from './retrieval-cases.js';

export type { ProbeSettings, RetrievalProbe, GroupProbe };

export const DEFAULT_PROBE: Omit<ProbeSettings, 'length' | 'seed'> = { samples: 3, depths: [0, 0.25, 0.5], sinks: 4, window: 64 };

/** The default prompt length: 1024 tokens, or the context less room for the answer when that is shorter. */
export function defaultProbeLength(maxPos: number): number {
  return Math.min(1024, maxPos - 16);
}

export function checkProbeSettings(model: DecoderLM, s: ProbeSettings): void {
  const op = 'analyze --retrieval-probe';
  if (model.recurrent.size > 0) {
    throw new ArgumentError(op, 'model', 'is a converted model', 'probe the original model the plan is made for');
  }
  if (!(Number.isInteger(s.samples) && s.samples >= 1)) throw new ArgumentError(op, 'samples', `= ${s.samples} must be a positive integer`);
  if (!(Number.isInteger(s.sinks) && s.sinks >= 0)) throw new ArgumentError(op, 'sinks', `= ${s.sinks} must be an integer >= 0`);
  if (!(Number.isInteger(s.window) && s.window >= 1)) throw new ArgumentError(op, 'window', `= ${s.window} must be a positive integer`);
  if (s.depths.length === 0 || s.depths.some((d) => !(d >= 0 && d < 1))) {
    throw new ArgumentError(op, 'depths', `[${s.depths.join(', ')}] must be non-empty, each in [0, 1)`, 'depth 1 puts the key inside the window');
  }
  // the key must be able to sit beyond sinks + window, and prompt + answer must fit the context
  if (!(Number.isInteger(s.length) && s.length >= 2 * (s.sinks + s.window) + 32)) {
    throw new ArgumentError(op, 'length', `= ${s.length} must be an integer >= ${2 * (s.sinks + s.window) + 32} (twice sinks + window, plus the question)`,
      'lengthen --probe-length or shorten --probe-window');
  }
  if (s.length + 16 > model.cfg.maxPos) {
    throw new ArgumentError(op, 'length', `= ${s.length} leaves no room for the answer in the context of ${model.cfg.maxPos}`,
      `use --probe-length ${defaultProbeLength(model.cfg.maxPos)} or less`);
  }
}

interface ProbeCase {
  /** Prompt and answer, tokenized together (as the model sees them). */
  ids: Int32Array;
  /** Answer tokens at the end of ids. */
  answer: number;
}

/** The prompts: `samples` per depth, each drawn from its own seed (retrieval-cases.ts). */
function probeCases(tok: Tokenizer, s: ProbeSettings): ProbeCase[] {
  const out: ProbeCase[] = [];
  for (const depth of s.depths) {
    for (let sample = 0; sample < s.samples; sample++) {
      const c = sizedCase(tok, { task: 'passkey', length: s.length, param: depth, seed: s.seed, sample });
      const ids = promptIds(tok, c.prompt + c.answer);
      out.push({ ids: Int32Array.from(ids), answer: ids.length - c.ids.length });
    }
  }
  return out;
}

/** Answer NLL (nats) and whether every answer token is the argmax, for one teacher-forced forward. */
function scoreCase(model: DecoderLM, c: ProbeCase, memory: HybridMemory | undefined): { nll: number; hit: boolean } {
  return noGrad(() => scope(() => {
    const T = c.ids.length, V = model.cfg.vocabSize;
    const logits = contiguousData(model.forward(c.ids, 1, T, memory ? { memory } : {}));
    let nll = 0, hit = true;
    for (let t = T - c.answer - 1; t < T - 1; t++) {
      const o = t * V, target = c.ids[t + 1]!;
      nll += rowLogSumExp(logits, o, V) - logits[o + target]!;
      for (let v = 0; v < V; v++) {
        if (logits[o + v]! > logits[o + target]!) {
          hit = false;
          break;
        }
      }
    }
    return { nll, hit };
  }));
}

/** Runs the probe; `onProgress(done, total)` counts prefills. */
export function probeRetrieval(model: DecoderLM, tok: Tokenizer, s: ProbeSettings,
  onProgress?: (done: number, total: number) => void): RetrievalProbe {
  checkProbeSettings(model, s);
  const cfg = model.cfg;
  const cases = probeCases(tok, s);
  const total = cases.length * (1 + cfg.nLayers * cfg.nKvHeads);
  let done = 0;
  const run = (memory: (c: ProbeCase) => HybridMemory | undefined): { nll: number; accuracy: number } => {
    let nll = 0, hits = 0;
    for (const c of cases) {
      const r = scoreCase(model, c, memory(c));
      nll += r.nll;
      if (r.hit) hits++;
      onProgress?.(++done, total);
    }
    return { nll: nll / cases.length, accuracy: hits / cases.length };
  };
  const baseline = run(() => undefined);
  const groups: GroupProbe[] = [];
  for (let layer = 0; layer < cfg.nLayers; layer++) {
    for (let g = 0; g < cfg.nKvHeads; g++) {
      const only = new Map([[layer, [g]]]);
      const r = run((c) => streamingHeadsMemory(model, only, { sinks: s.sinks, window: s.window }, { maxLen: c.ids.length }));
      groups.push({ layer, kvGroup: g, nll: r.nll, harm: r.nll - baseline.nll, accuracy: r.accuracy });
    }
  }
  return { task: 'passkey', settings: { ...s, depths: [...s.depths] }, prompts: cases.length, baseline, groups };
}
