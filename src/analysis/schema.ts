/**
 * The analysis.json schema, version 1 (documented with an example in docs/analysis.md). Bump `version` on any
 * change that removes or renames a field; adding optional fields keeps version 1.
 */
import type { HeadEvidence, LayerEvidence } from './waiver.js';
import type { RetrievalProbe } from './retrieval-probe.js';
import type { Mechanism, WaiverTests } from './waiver-tests.js';

export const SCHEMA = 'recurformer.analysis';
export const SCHEMA_VERSION = 1;

export type ByWindow<V> = Record<string, V>;

export interface HeadRecord {
  layer: number;
  head: number;
  kvGroup: number;
  rr: ByWindow<number | null>;
  rrw: ByWindow<number | null>;
  rrwExcluded: ByWindow<number>;
  sink: number | null;
  sinkFirst4: number | null;
  entropy: number | null;
  meanDistance: number | null;
}

export interface GroupRecord {
  layer: number;
  kvGroup: number;
  heads: number[];
  groupScore: { rr: ByWindow<number | null>; rrw: ByWindow<number | null> };
}

export interface AttentionMap {
  layer: number;
  head: number;
  why: string;
  size: number;
  /** size x size row-major probabilities (sample 0, first `size` queries and keys), 4 decimals. */
  probs: number[];
}

/**
 * The shape a plan or an analysis is tied to: its layer, head and KV-group indices mean nothing on another model.
 * analysis.json records it under `model`, plan.json too (convert checks both against the model it converts).
 */
export interface ModelShape {
  nLayers: number;
  nHeads: number;
  nKvHeads: number;
  headDim: number;
}

export interface Analysis {
  schema: typeof SCHEMA;
  version: typeof SCHEMA_VERSION;
  model: ModelShape & { source: string; arch: string; dModel: number; positions: 'rope' | 'learned' };
  settings: {
    data: string; textTokens: number; wrapped: boolean; samples: number; seq: number; windows: number[]; seed: number;
    block: number; waiverTestSamples: number;
  };
  heads: HeadRecord[];
  groups: GroupRecord[];
  waiver: {
    mechanism: Mechanism;
    lean: Mechanism;
    perLayer: WaiverTests['perLayer'];
    evidence: { heads: HeadEvidence[]; layers: LayerEvidence[] };
    tests: Omit<WaiverTests, 'mechanism' | 'lean' | 'perLayer'>;
  };
  maps: AttentionMap[];
  /** Per-group retrieval ablation (analyze --retrieval-probe; retrieval-probe.ts), absent when not run. */
  retrieval?: RetrievalProbe;
}
