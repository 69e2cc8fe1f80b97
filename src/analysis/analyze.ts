/**
 * analyze(): the whole head analysis of one model on one text, as the versioned analysis.json object (schema.ts).
 * calibration (collect.ts) -> per-head records and GQA group scores -> waiver evidence and tests -> attention maps.
 */
import type { DecoderLM } from '../model/transformer.js';
import { ArgumentError } from '../tensor/errors.js';
import { calibrate, sampleSequences, type Calibration } from './collect.js';
import { groupScore } from './recency.js';
import { SCHEMA, SCHEMA_VERSION, type Analysis, type AttentionMap, type GroupRecord } from './schema.js';
import { DEFAULT_BLOCK } from './stream.js';
import { runWaiverTests } from './waiver-tests.js';

export interface AnalyzeSettings {
  samples: number;
  seq: number;
  windows: number[];
  seed: number;
  block?: number;
  /** Samples re-run by each waiver test (default min(samples, 4)). */
  waiverTestSamples?: number;
  /** Shown in settings.data. */
  dataName?: string;
  source?: string;
}

/** Parses "4,16,64": positive integers, strictly increasing after sorting, no duplicates. */
export function parseWindows(s: string): number[] {
  const parts = s.split(',').map((p) => p.trim()).filter((p) => p.length > 0);
  const ws = parts.map(Number);
  if (ws.length === 0 || ws.some((w) => !Number.isInteger(w) || w < 1)) {
    throw new ArgumentError('analyze', '--windows', `= "${s}" must be a comma-separated list of positive integers`, 'e.g. --windows 4,16,64');
  }
  const sorted = [...ws].sort((a, b) => a - b);
  if (sorted.some((w, i) => i > 0 && w === sorted[i - 1])) throw new ArgumentError('analyze', '--windows', `= "${s}" repeats a window`);
  return sorted;
}

export function checkSettings(model: DecoderLM, s: AnalyzeSettings): void {
  // a converted layer's recurrent heads have no attention probabilities to score
  if (model.recurrent.size > 0) {
    const groups = [...model.recurrent.values()].reduce((n, r) => n + r.dims.nGroups, 0);
    throw new ArgumentError('analyze', 'model', `is a converted model (${groups} KV groups are already recurrent)`,
      'analyze the original model; `convert` of the converted model with that analysis adds groups and keeps these');
  }
  if (!Number.isInteger(s.samples) || s.samples < 1) throw new ArgumentError('analyze', 'samples', `= ${s.samples} must be a positive integer`);
  if (!Number.isInteger(s.seq) || s.seq < 16) throw new ArgumentError('analyze', 'seq', `= ${s.seq} must be an integer >= 16`, 'the waiver tests need room to prepend and mask tokens');
  if (s.seq > model.cfg.maxPos) {
    throw new ArgumentError('analyze', 'seq', `= ${s.seq} is longer than the model context of ${model.cfg.maxPos}`, `use --seq ${model.cfg.maxPos} or less`);
  }
  const bad = s.windows.find((w) => !Number.isInteger(w) || w < 1 || w >= s.seq - 1);
  if (bad !== undefined || s.windows.length === 0) {
    throw new ArgumentError('analyze', 'windows', `[${s.windows.join(', ')}] must be integers in [1, seq - 2 = ${s.seq - 2}]`, 'a window needs queries beyond it; shorten the windows or lengthen --seq');
  }
}

function round4(x: number): number {
  return Math.round(x * 1e4) / 1e4;
}

/** A few telling heads for the report's attention maps: most local, strongest sink, most global. */
function pickMaps(cal: Calibration, windows: number[]): AttentionMap[] {
  const k = String(windows[0]);
  const picks: { why: string; score: (h: Calibration['heads'][number]) => number }[] = [
    { why: `highest RR(${k})`, score: (h) => h.rr[k] ?? -1 },
    { why: 'highest sink mass', score: (h) => h.sink ?? -1 },
    { why: 'largest mean distance', score: (h) => h.meanDistance ?? -1 },
    { why: `lowest RR(${k})`, score: (h) => -(h.rr[k] ?? 2) },
  ];
  const used = new Set<string>();
  const out: AttentionMap[] = [];
  for (const p of picks) {
    let best: Calibration['heads'][number] | null = null;
    for (const h of cal.heads) if (!used.has(`${h.layer}.${h.head}`) && (!best || p.score(h) > p.score(best))) best = h;
    if (!best) continue;
    used.add(`${best.layer}.${best.head}`);
    out.push({ layer: best.layer, head: best.head, why: p.why, size: cal.mapSize, probs: Array.from(cal.maps[best.layer]![best.head]!, round4) });
  }
  return out;
}

export function analyze(model: DecoderLM, textIds: readonly number[], s: AnalyzeSettings,
  onProgress?: (done: number, total: number) => void): Analysis {
  checkSettings(model, s);
  const cfg = model.cfg;
  const block = s.block ?? DEFAULT_BLOCK;
  const { seqs, wrapped } = sampleSequences(textIds, cfg.bosId, s);
  const nTest = Math.min(seqs.length, s.waiverTestSamples ?? 4);
  const total = seqs.length + 1;
  const cal = calibrate(model, seqs, { ...s, block }, (d) => onProgress?.(d, total));
  const tests = runWaiverTests(model, seqs.slice(0, nTest));
  onProgress?.(total, total);
  const groups: GroupRecord[] = [];
  const nRep = cfg.nHeads / cfg.nKvHeads;
  for (let l = 0; l < cfg.nLayers; l++) {
    for (let g = 0; g < cfg.nKvHeads; g++) {
      const hs = cal.heads.filter((h) => h.layer === l && h.kvGroup === g);
      const rr: Record<string, number | null> = {}, rrw: Record<string, number | null> = {};
      for (const k of s.windows) {
        rr[k] = groupScore(hs.map((h) => h.rr[k] ?? null));
        rrw[k] = groupScore(hs.map((h) => h.rrw[k] ?? null));
      }
      groups.push({ layer: l, kvGroup: g, heads: Array.from({ length: nRep }, (_, i) => g * nRep + i), groupScore: { rr, rrw } });
    }
  }
  const { mechanism, lean, perLayer, ...testRest } = tests;
  return {
    schema: SCHEMA, version: SCHEMA_VERSION,
    model: {
      source: s.source ?? '', arch: cfg.arch, nLayers: cfg.nLayers, nHeads: cfg.nHeads, nKvHeads: cfg.nKvHeads,
      headDim: cfg.headDim, dModel: cfg.dModel, positions: cfg.ropeStyle === 'none' ? 'learned' : 'rope',
    },
    settings: {
      data: s.dataName ?? '', textTokens: textIds.length, wrapped, samples: s.samples, seq: s.seq, windows: s.windows,
      seed: s.seed, block, waiverTestSamples: nTest,
    },
    heads: cal.heads,
    groups,
    waiver: { mechanism, lean, perLayer, evidence: cal.evidence, tests: testRest },
    maps: pickMaps(cal, s.windows),
  };
}
