/** The shapes of a replacement plan and of the analysis it is made from (plan.ts makes plans, validate.ts checks them). */
import type { ModelShape } from '../analysis/schema.js';

export interface GroupScoreEntry {
  layer: number;
  kvGroup: number;
  groupScore: { rr: Record<string, number | null>; rrw: Record<string, number | null> };
}

/** The part of analysis.json (schema recurformer.analysis v1) the planner reads. */
export interface AnalysisLike {
  schema?: string;
  /** The analyzed model's shape (files from older versions may lack it or some of its fields). */
  model?: Partial<ModelShape>;
  groups: GroupScoreEntry[];
  heads?: { layer: number; head: number; kvGroup: number; meanDistance?: number | null }[];
  retrieval?: { groups: { layer: number; kvGroup: number; harm: number }[] };
}

export interface PlanLayer {
  layer: number;
  /** KV groups replaced by recurrent heads (sorted). */
  groups: number[];
}

export interface ReplacementPlan {
  schema: 'recurformer.plan';
  version: 1;
  /** The shape of the model the plan is for (plans from older versions record only nLayers and nKvGroups). */
  model?: ModelShape;
  score: 'rr' | 'rrw';
  window: number;
  selection: { budget: number } | { threshold: number };
  nLayers: number;
  nKvGroups: number;
  /** Groups made recurrent; in the plan.json convert writes, every recurrent group of its model, `earlier` included. */
  layers: PlanLayer[];
  /** Groups that were already recurrent in the model convert started from (kept as they were). */
  earlier?: PlanLayer[];
  /** Score of each replaced group, for the reader. */
  scores: { layer: number; kvGroup: number; score: number }[];
  /**
   * The kind of the replaced groups convert made (absent in plans convert did not write, and in older ones):
   * `convert --plan` takes it, and the window, unless --head-kind / --head-window / --head-sinks say otherwise.
   */
  head?: { kind: 'recurrent' | 'recurrent+window'; window?: number; sinks?: number };
  /** Groups kept because the retrieval probe says retrieval needs them (absent without a probe). */
  protected?: { threshold: number; groups: { layer: number; kvGroup: number; harm: number }[] };
}

