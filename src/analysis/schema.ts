/**
 * The analysis.json schema, version 1 (documented with an example in docs/analysis.md). Bump `version` on any
 * change that removes or renames a field; adding optional fields keeps version 1.
 */
import type { HeadEvidence, LayerEvidence } from './waiver.js';
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
  /** Per-group retrieval ablation (analyze --retrieval-probe; src/eval/retrieval-probe.ts), absent when not run. */
  retrieval?: RetrievalProbe;
}

// ---- the retrieval probe (src/eval/retrieval-probe.ts runs it: it scores the eval's passkey prompts) ----------

export interface ProbeSettings {
  /** Prompt length in tokens (BOS included, answer excluded). */
  length: number;
  /** Prompts per depth. */
  samples: number;
  /** Key depths in [0, 1); the key must lie beyond the window for the ablation to matter. */
  depths: number[];
  sinks: number;
  window: number;
  seed: number;
}

/** One KV group's ablation: nll and accuracy with only this group windowed; harm = nll - the baseline's. */
export interface GroupProbe {
  layer: number;
  kvGroup: number;
  nll: number;
  harm: number;
  accuracy: number;
}

export interface RetrievalProbe {
  task: 'passkey';
  settings: ProbeSettings;
  prompts: number;
  baseline: { nll: number; accuracy: number };
  /** Every KV group, in layer then group order. */
  groups: GroupProbe[];
}
