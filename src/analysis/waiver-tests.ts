/**
 * The three waiver-mechanism tests (DESIGN.md; after "Unveiling and Controlling Anomalous Attention Distribution in
 * Transformers", arXiv 2407.01601): does the model pick its waiver element (the sink) by positional encoding or by
 * the feature distribution of the elements? Each test re-runs a few calibration samples with one change and
 * measures, per layer, the mean attention (over heads and over later queries) that a key position receives.
 *
 *   position/shift    same tokens, position ids + offset (no token sits at position 0). retention = mass on the
 *                     first element / baseline. Lost (< LOSE) -> positional; kept (within [KEEP, 1 / KEEP]) ->
 *                     feature; anything else, a grown mass included, is inconclusive: the position ids moved it,
 *                     but the sink did not need position 0.
 *   position/prepend  m other text tokens before BOS (BOS now at position m). follow = mass on BOS / baseline sink,
 *                     stay = mass on the new position 0 / baseline sink. follow >= LOSE and > stay -> feature (the
 *                     sink follows the token); stay -> inconclusive: the new first element sits at position 0 AND sees
 *                     only itself, so position and first-element features predict the same (the shift test decides).
 *   mask              a middle token c attends only to itself in every layer (a first-token-like view). It becomes a
 *                     new waiver element when its mass >= NEW_WAIVER_SHARE x baseline sink and >= NEW_WAIVER_GAIN x
 *                     its own baseline mass -> feature; otherwise inconclusive (a view alone is not enough).
 *   bos/drop, bos/replace   BOS removed, or replaced by the most frequent text token. retention = mass on position 0
 *                     / baseline. Lost (< LOSE) -> feature (the BOS token's identity carries the sink); kept ->
 *                     inconclusive (whatever comes first gets it: position or first-element features).
 * Layer verdict: no-sink when its baseline sink mass is below SINK_FACTOR x the mass a uniform causal head puts on
 * position 0 (mean over i > 0 of 1 / (i + 1), about ln(T) / T: a fixed absolute level would depend on T); else from the votes: only feature votes ->
 * feature-distribution, only positional -> positional-encoding, both -> mixed, none -> inconclusive. Overall: the
 * common verdict of the layers with a sink and a decided verdict, mixed when they differ.
 */
import type { DecoderLM } from '../model/transformer.js';
import { KeyMassAcc } from './sinks.js';
import { streamAttention } from './stream.js';

export const THRESHOLDS = {
  /** A layer "has a sink" when its mean (over heads) attention on the first element is at least this many times
   *  the uniform-head level. */
  SINK_FACTOR: 3,
  /** Retention at or above KEEP: the sink stayed. */
  KEEP: 0.8,
  /** Retention below LOSE: the sink is gone. Between the two: inconclusive. */
  LOSE: 0.5,
  NEW_WAIVER_SHARE: 0.5,
  NEW_WAIVER_GAIN: 3,
  /** Tokens prepended in the prepend test. */
  PREPEND: 8,
} as const;

export type Vote = 'positional' | 'feature' | 'inconclusive';
export type Mechanism = 'positional-encoding' | 'feature-distribution' | 'mixed' | 'inconclusive' | 'no-sink';

export interface TestResult {
  test: 'shift' | 'prepend' | 'mask' | 'bos-drop' | 'bos-replace';
  /** The numbers behind the vote, per layer (mean over heads and test samples). */
  perLayer: { layer: number; vote: Vote; values: Record<string, number> }[];
  note: string;
}

export interface WaiverTests {
  thresholds: typeof THRESHOLDS;
  samples: number;
  /** The uniform causal head's mass on position 0 at this T (the no-sink reference). */
  uniformMass: number;
  baseline: { layer: number; sinkMass: number; middleMass: number }[];
  tests: TestResult[];
  /** `lean`: what the votes say even when the layer has no sink worth explaining (verdict no-sink). */
  perLayer: { layer: number; verdict: Mechanism; lean: Mechanism; feature: number; positional: number }[];
  mechanism: Mechanism;
  /** The overall verdict of the leans (meaningful when `mechanism` is no-sink: which way the weak sinks lean). */
  lean: Mechanism;
}

/** Mean over seqs, heads and queries i > p of A[i, p], per layer and per requested key position. */
export function layerKeyMass(model: DecoderLM, seqs: readonly Int32Array[], keys: readonly number[],
  opts: { positions?: Int32Array; selfOnly?: Int32Array } = {}): number[][] {
  const L = model.cfg.nLayers;
  const acc = Array.from({ length: L }, () => keys.map((p) => new KeyMassAcc(p)));
  for (const ids of seqs) {
    streamAttention(model, ids, 1, ids.length, { forward: opts }, (b) => {
      for (let r = 0; r < b.B * b.Hq * b.qLen; r++) {
        for (const a of acc[b.layer]!) a.add(b.probs, b.qStart + (r % b.qLen), r * b.S);
      }
    });
  }
  return acc.map((ks) => ks.map((a) => a.value() ?? 0));
}

const ratio = (a: number, b: number): number => (b > 0 ? a / b : 0);

function retentionVote(r: number, lost: Vote, kept: Vote): Vote {
  return r < THRESHOLDS.LOSE ? lost : r >= THRESHOLDS.KEEP ? kept : 'inconclusive';
}

/** The shift test's vote: kept means unchanged (a ratio within KEEP of 1 either way), not merely not lost. */
export function shiftVote(r: number): Vote {
  return r < THRESHOLDS.LOSE ? 'positional' : r >= THRESHOLDS.KEEP && r <= 1 / THRESHOLDS.KEEP ? 'feature' : 'inconclusive';
}

/** Runs all tests on `seqs` (each BOS first, same length T >= 2 * PREPEND). */
export function runWaiverTests(model: DecoderLM, seqs: readonly Int32Array[]): WaiverTests {
  const cfg = model.cfg, L = cfg.nLayers;
  const Tn = seqs[0]!.length, c = Tn >> 1, m = Math.min(THRESHOLDS.PREPEND, Tn >> 2);
  const base = layerKeyMass(model, seqs, [0, c]);
  const tests: TestResult[] = [];
  const mk = (test: TestResult['test'], note: string, f: (l: number) => { vote: Vote; values: Record<string, number> }): void => {
    tests.push({ test, note, perLayer: Array.from({ length: L }, (_, l) => ({ layer: l, ...f(l) })) });
  };

  // Shift: absolute positions beyond the ones learned are impossible for GPT-2, so the offset is capped there.
  const offset = cfg.arch === 'gpt2' ? Math.min(Tn, cfg.maxPos - Tn) : Tn;
  if (offset > 0) {
    const shifted = layerKeyMass(model, seqs, [0], { positions: Int32Array.from({ length: Tn }, (_, i) => i + offset) });
    mk('shift', `position ids + ${offset}`, (l) => {
      const r = ratio(shifted[l]![0]!, base[l]![0]!);
      return { vote: shiftVote(r), values: { offset, mass: shifted[l]![0]!, retention: r } };
    });
  }

  // Prepend m text tokens taken from the next sample (cyclically), dropping the tail to keep length T.
  const pre = seqs.map((ids, n) => {
    const other = seqs[(n + 1) % seqs.length]!;
    const out = new Int32Array(Tn);
    out.set(other.subarray(1, 1 + m));
    out.set(ids.subarray(0, Tn - m), m);
    return out;
  });
  const prep = layerKeyMass(model, pre, [0, m]);
  mk('prepend', `${m} text tokens before BOS`, (l) => {
    const stay = ratio(prep[l]![0]!, base[l]![0]!), follow = ratio(prep[l]![1]!, base[l]![0]!);
    const vote: Vote = follow >= THRESHOLDS.LOSE && follow > stay ? 'feature' : 'inconclusive';
    return { vote, values: { m, stay, follow } };
  });

  const masked = layerKeyMass(model, seqs, [0, c], { selfOnly: Int32Array.of(c) });
  mk('mask', `token ${c} attends only to itself`, (l) => {
    const mc = masked[l]![1]!;
    const share = ratio(mc, base[l]![0]!), gain = ratio(mc, base[l]![1]!);
    const isNew = share >= THRESHOLDS.NEW_WAIVER_SHARE && gain >= THRESHOLDS.NEW_WAIVER_GAIN;
    return {
      vote: isNew ? 'feature' : 'inconclusive',
      values: { position: c, mass: mc, share, gain, sinkRetention: ratio(masked[l]![0]!, base[l]![0]!) },
    };
  });

  const dropped = layerKeyMass(model, seqs.map((ids) => ids.subarray(1)), [0]);
  mk('bos-drop', 'BOS removed', (l) => {
    const r = ratio(dropped[l]![0]!, base[l]![0]!);
    return { vote: retentionVote(r, 'feature', 'inconclusive'), values: { retention: r } };
  });
  const repl = mostFrequent(seqs);
  const replaced = layerKeyMass(model, seqs.map((ids) => Int32Array.from(ids, (t, i) => (i === 0 ? repl : t))), [0]);
  mk('bos-replace', `BOS replaced by token ${repl}`, (l) => {
    const r = ratio(replaced[l]![0]!, base[l]![0]!);
    return { vote: retentionVote(r, 'feature', 'inconclusive'), values: { token: repl, retention: r } };
  });

  let uniformMass = 0;
  for (let i = 1; i < Tn; i++) uniformMass += 1 / (i + 1) / (Tn - 1);
  const perLayer = Array.from({ length: L }, (_, l) => {
    const votes = tests.map((t) => t.perLayer[l]!.vote);
    const feature = votes.filter((v) => v === 'feature').length, positional = votes.filter((v) => v === 'positional').length;
    let lean: Mechanism;
    if (feature && positional) lean = 'mixed';
    else if (feature) lean = 'feature-distribution';
    else if (positional) lean = 'positional-encoding';
    else lean = 'inconclusive';
    const verdict: Mechanism = base[l]![0]! < THRESHOLDS.SINK_FACTOR * uniformMass ? 'no-sink' : lean;
    return { layer: l, verdict, lean, feature, positional };
  });
  return {
    thresholds: THRESHOLDS, samples: seqs.length, uniformMass,
    baseline: base.map((b, l) => ({ layer: l, sinkMass: b[0]!, middleMass: b[1]! })),
    tests, perLayer, mechanism: overall(perLayer.map((p) => p.verdict)), lean: overall(perLayer.map((p) => p.lean)),
  };
}

export function overall(verdicts: readonly Mechanism[]): Mechanism {
  const decided = verdicts.filter((v) => v !== 'no-sink' && v !== 'inconclusive');
  if (decided.length === 0) return verdicts.every((v) => v === 'no-sink') ? 'no-sink' : 'inconclusive';
  return decided.every((v) => v === decided[0]) ? decided[0]! : 'mixed';
}

/** The most frequent non-BOS token of the samples (ties: the smaller id), the BOS stand-in of the replace test. */
function mostFrequent(seqs: readonly Int32Array[]): number {
  const counts = new Map<number, number>();
  for (const ids of seqs) for (let i = 1; i < ids.length; i++) counts.set(ids[i]!, (counts.get(ids[i]!) ?? 0) + 1);
  let best = -1, bestN = -1;
  for (const [t, n] of counts) if (n > bestN || (n === bestN && t < best)) [best, bestN] = [t, n];
  return best;
}
