/**
 * The replacement plan: which KV groups of which layers become recurrent. A group is replaced with all its query
 * heads (its KV cache is freed only then), so decisions are per group, using the group score of analysis.json
 * (the minimum over the group's query heads of RR or waiver-adjusted RR at one window). When the analysis carries a
 * retrieval probe (analyze --retrieval-probe), groups whose windowing costs passkey retrieval at least
 * `protectRetrieval` nats are kept as attention whatever their recency score: they are the retrieval heads a recency
 * score cannot see. The plan is a JSON file a user can read and edit before converting.
 */
import { ArgumentError } from '../tensor/errors.js';
import { analysisProblem } from './validate.js';

export type { AnalysisLike, GroupScoreEntry, PlanLayer, ReplacementPlan } from './plan-types.js';
import type { AnalysisLike, PlanLayer, ReplacementPlan } from './plan-types.js';

/** Default protection threshold (nats of passkey answer NLL) when the analysis has a retrieval probe. */
export const DEFAULT_PROTECT_NATS = 0.1;

export interface PlanOptions {
  score?: 'rr' | 'rrw';
  /** Window k whose score decides (default 16). */
  window?: number;
  /** Fraction of all KV groups to replace, highest recency score first. */
  budget?: number;
  /** Replace every group whose score is at least this. */
  threshold?: number;
  /** Keep at least this many attention groups in every layer (default 0). */
  minKeepPerLayer?: number;
  /** Layers never touched. */
  neverLayers?: readonly number[];
  /**
   * Keep groups whose retrieval-probe harm is at least this (nats); null disables. Default DEFAULT_PROTECT_NATS when
   * the analysis has a probe.
   */
  protectRetrieval?: number | null;
}

export function planFromAnalysis(a: AnalysisLike, nLayers: number, nKvGroups: number, o: PlanOptions): ReplacementPlan {
  const score = o.score ?? 'rr';
  const window = o.window ?? 16;
  const problem = analysisProblem(a, { nLayers, nKvHeads: nKvGroups });
  if (problem) throw new ArgumentError('plan', 'analysis', problem, 'plan from an analysis of the model you convert');
  if ((o.budget === undefined) === (o.threshold === undefined)) {
    throw new ArgumentError('plan', 'selection', 'needs exactly one of budget or threshold', 'pass --budget F or --threshold X');
  }
  if (o.budget !== undefined && !(o.budget >= 0 && o.budget <= 1)) {
    throw new ArgumentError('plan', 'budget', `= ${o.budget} must be a fraction in [0, 1]`);
  }
  const key = String(window);
  const protect = a.retrieval ? (o.protectRetrieval === undefined ? DEFAULT_PROTECT_NATS : o.protectRetrieval) : null;
  if (protect !== null && !(Number.isFinite(protect) && protect >= 0)) {
    throw new ArgumentError('plan', 'protectRetrieval', `= ${protect} must be a number of nats >= 0`, 'e.g. --protect-retrieval 0.1, or none');
  }
  if (o.protectRetrieval != null && !a.retrieval) {
    throw new ArgumentError('plan', 'protectRetrieval', 'needs an analysis with a retrieval probe', 'run `recurformer analyze --retrieval-probe`');
  }
  const harm = new Map((a.retrieval?.groups ?? []).map((g) => [`${g.layer}.${g.kvGroup}`, g.harm]));
  const kept: { layer: number; kvGroup: number; harm: number }[] = [];
  const candidates: { layer: number; kvGroup: number; score: number }[] = [];
  for (const g of a.groups) {
    const v = g.groupScore[score][key];
    if (v === undefined) {
      throw new ArgumentError('plan', 'window', `${window} is not in the analysis (group scores have ${Object.keys(g.groupScore[score]).join(', ')})`,
        'analyze with --windows including it, or pick one of those');
    }
    if (v === null || !Number.isFinite(v)) continue; // undefined RRw (pure sink group): never replaced automatically
    if (o.neverLayers?.includes(g.layer)) continue;
    const h = harm.get(`${g.layer}.${g.kvGroup}`);
    if (protect !== null && h !== undefined && h >= protect) {
      kept.push({ layer: g.layer, kvGroup: g.kvGroup, harm: h });
      continue;
    }
    candidates.push({ layer: g.layer, kvGroup: g.kvGroup, score: v });
  }
  // highest recency first; ties by layer then group so plans are deterministic
  candidates.sort((x, y) => y.score - x.score || x.layer - y.layer || x.kvGroup - y.kvGroup);
  const total = nLayers * nKvGroups;
  const want = o.budget !== undefined ? Math.round(o.budget * total) : Infinity;
  const perLayer = new Map<number, number[]>();
  const chosen: typeof candidates = [];
  const maxPerLayer = nKvGroups - (o.minKeepPerLayer ?? 0);
  for (const c of candidates) {
    if (chosen.length >= want) break;
    if (o.threshold !== undefined && c.score < o.threshold) break;
    const list = perLayer.get(c.layer) ?? [];
    if (list.length >= maxPerLayer) continue;
    list.push(c.kvGroup);
    perLayer.set(c.layer, list);
    chosen.push(c);
  }
  if (o.budget !== undefined && chosen.length < want) {
    throw new ArgumentError('plan', 'budget', `${o.budget} asks for ${want} groups but only ${chosen.length} are eligible`,
      `lower the budget or relax minKeepPerLayer / neverLayers${kept.length ? ` (${kept.length} groups are kept for retrieval: raise or disable protectRetrieval)` : ''}`);
  }
  const layers = [...perLayer.entries()].sort((x, y) => x[0] - y[0]).map(([layer, groups]) => ({ layer, groups: groups.sort((x, y) => x - y) }));
  return {
    schema: 'recurformer.plan', version: 1, score, window,
    selection: o.budget !== undefined ? { budget: o.budget } : { threshold: o.threshold! },
    nLayers, nKvGroups, layers, scores: chosen,
    ...(protect !== null ? { protected: { threshold: protect, groups: kept } } : {}),
  };
}

/** Replaced groups of one layer (empty when the layer keeps all its attention). */
export function replacedGroups(plan: { layers: PlanLayer[] }, layer: number): number[] {
  return plan.layers.find((l) => l.layer === layer)?.groups ?? [];
}
