/**
 * The calibration runner: N seeded samples of T tokens (BOS first) from a tokenized text, one forward pass each,
 * attention probabilities streamed block by block from the q/k/v taps (stream.ts) into per-head accumulators
 * (recency.ts, sinks.ts) and the waiver evidence (waiver.ts). Nothing holds a full T x T map per head except the
 * small corner kept for the report's attention maps (the first MAP_SIZE queries of sample 0).
 */
import type { DecoderLM } from '../model/transformer.js';
import { ArgumentError } from '../tensor/errors.js';
import { Rng } from '../tensor/index.js';
import { RecencyAcc, type RecencySummary } from './recency.js';
import { SinkAcc, type SinkSummary } from './sinks.js';
import { streamAttention } from './stream.js';
import { WaiverEvidenceAcc, type HeadEvidence, type LayerEvidence } from './waiver.js';

export const MAP_SIZE = 48;

export interface CalibrationSettings {
  samples: number;
  seq: number;
  windows: number[];
  seed: number;
  block?: number;
}

/**
 * Seeded samples: start offsets drawn uniformly over the tokenized text (without BOS), each sample = BOS followed by
 * seq - 1 text tokens. Texts shorter than a sample wrap around (the tokens repeat; a warning-level fact the caller
 * reports through `wrapped`).
 */
export function sampleSequences(textIds: readonly number[], bosId: number, s: CalibrationSettings): { seqs: Int32Array[]; wrapped: boolean } {
  if (textIds.length < 2) throw new ArgumentError('analyze', 'data', 'has fewer than 2 tokens', 'pass a longer text file');
  const rng = new Rng(s.seed);
  const n = s.seq - 1;
  const wrapped = textIds.length < n;
  const seqs: Int32Array[] = [];
  for (let i = 0; i < s.samples; i++) {
    const span = Math.max(1, textIds.length - n);
    const start = rng.int(span);
    const seq = new Int32Array(s.seq);
    seq[0] = bosId;
    for (let t = 0; t < n; t++) seq[t + 1] = textIds[(start + t) % textIds.length]!;
    seqs.push(seq);
  }
  return { seqs, wrapped };
}

export interface HeadStats extends RecencySummary, SinkSummary {
  layer: number;
  head: number;
  kvGroup: number;
}

export interface Calibration {
  heads: HeadStats[];
  evidence: { heads: HeadEvidence[]; layers: LayerEvidence[] };
  /** The first MAP_SIZE x MAP_SIZE probabilities of every head on sample 0 ([layer][head] row-major). */
  maps: Float32Array[][];
  mapSize: number;
}

/** Runs the calibration; `onSample(done, total)` reports progress. */
export function calibrate(model: DecoderLM, seqs: readonly Int32Array[], s: CalibrationSettings,
  onSample?: (done: number, total: number) => void): Calibration {
  const { nLayers: L, nHeads: Hq, nKvHeads: Hkv } = model.cfg;
  const rec = Array.from({ length: L }, () => Array.from({ length: Hq }, () => new RecencyAcc(s.windows)));
  const sink = Array.from({ length: L }, () => Array.from({ length: Hq }, () => new SinkAcc()));
  const ev = new WaiverEvidenceAcc(model);
  const mapSize = Math.min(MAP_SIZE, s.seq);
  const maps = Array.from({ length: L }, () => Array.from({ length: Hq }, () => new Float32Array(mapSize * mapSize)));
  seqs.forEach((ids, n) => {
    const a0 = Array.from({ length: L }, () => new Float64Array(Hq));
    streamAttention(model, ids, 1, ids.length, {
      block: s.block, extraTaps: (name) => /\.(resid|head_out)$/.test(name),
    }, (b) => {
      for (let h = 0; h < Hq; h++) {
        for (let r = 0; r < b.qLen; r++) {
          const i = b.qStart + r, off = (h * b.qLen + r) * b.S;
          rec[b.layer]![h]!.add(b.probs, i, off);
          sink[b.layer]![h]!.add(b.probs, i, off);
          if (i > 0) a0[b.layer]![h]! += b.probs[off]!;
          if (n === 0 && i < mapSize) maps[b.layer]![h]!.set(b.probs.subarray(off, off + mapSize), i * mapSize);
        }
      }
    }, (l, taps) => ev.addLayer(l, taps, a0[l]!));
    onSample?.(n + 1, seqs.length);
  });
  const nRep = Hq / Hkv;
  const heads: HeadStats[] = [];
  for (let l = 0; l < L; l++) {
    for (let h = 0; h < Hq; h++) {
      heads.push({ layer: l, head: h, kvGroup: Math.floor(h / nRep), ...rec[l]![h]!.summary(), ...sink[l]![h]!.summary() });
    }
  }
  return { heads, evidence: ev.summary(), maps, mapSize };
}
