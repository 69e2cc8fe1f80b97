/**
 * analysis.json and plan.json as inputs: zod schemas for the fields convert and generate read (a missing or mistyped
 * field is a FormatError naming the file and the field, not a NaN weight later), and the check that a file was made
 * for the model at hand. Layer, head and KV-group indices mean nothing on another model, so both files record the
 * model's shape (`model`); files from older versions without it are checked by what they do record: a plan's
 * nLayers / nKvGroups, an analysis' group indices (analyze writes every group of every layer).
 */
import { z } from 'zod';
import type { ModelShape } from '../analysis/schema.js';
import type { ModelConfig } from '../model/config.js';
import { FormatError } from '../tensor/errors.js';
import type { AnalysisLike, ReplacementPlan } from './plan-types.js';

const index = z.int().min(0);
const count = z.int().min(1);
const shapeFields = { nLayers: count, nHeads: count, nKvHeads: count, headDim: count };
// convert builds a layer's recurrent tensors in group order and the loader sorts the groups: keep them sorted
const planLayer = z.object({ layer: index, groups: z.array(index).transform((g) => [...new Set(g)].sort((a, b) => a - b)) });
const groupAt = { layer: index, kvGroup: index };

const planSchema = z.object({
  schema: z.literal('recurformer.plan'),
  version: z.literal(1),
  model: z.object(shapeFields).optional(),
  score: z.enum(['rr', 'rrw']),
  window: count,
  selection: z.union([z.object({ budget: z.number() }), z.object({ threshold: z.number() })]),
  nLayers: count,
  nKvGroups: count,
  layers: z.array(planLayer),
  earlier: z.array(planLayer).optional(),
  scores: z.array(z.object({ ...groupAt, score: z.number() })),
  protected: z.object({ threshold: z.number(), groups: z.array(z.object({ ...groupAt, harm: z.number() })) }).optional(),
  head: z.object({ kind: z.enum(['recurrent', 'recurrent+window']), window: count.optional(), sinks: z.int().min(0).optional() }).optional(),
});

// only what convert reads; analysis.json has much more, and older files may lack `model` or some of its fields
const byWindow = z.record(z.string(), z.number().nullable());
const analysisSchema = z.looseObject({
  schema: z.literal('recurformer.analysis').optional(),
  model: z.looseObject({ nLayers: count.optional(), nHeads: count.optional(), nKvHeads: count.optional(), headDim: count.optional() }).optional(),
  groups: z.array(z.looseObject({ ...groupAt, groupScore: z.looseObject({ rr: byWindow, rrw: byWindow }) })).min(1),
  heads: z.array(z.looseObject({ layer: index, head: index, kvGroup: index, meanDistance: z.number().nullish() })).optional(),
  retrieval: z.looseObject({ groups: z.array(z.looseObject({ ...groupAt, harm: z.number() })) }).optional(),
});

/** `layers[0].groups[1]` for the path [layers, 0, groups, 1]. */
function fieldName(path: readonly PropertyKey[]): string {
  return path.map((p, i) => (typeof p === 'number' ? `[${p}]` : `${i > 0 ? '.' : ''}${String(p)}`)).join('') || 'the top level';
}

function parseWith<T>(schema: z.ZodType<T>, json: unknown, file: string, hint: string): T {
  const r = schema.safeParse(json);
  if (r.success) return r.data;
  const issue = r.error.issues[0]!;
  throw new FormatError(file, `${fieldName(issue.path)}: ${issue.message}`, hint);
}

export function parsePlan(json: unknown, file: string): ReplacementPlan {
  return parseWith(planSchema, json, file, 'convert writes plan.json with every field; fix this one (docs/convert.md, "The plan")');
}

export function parseAnalysis(json: unknown, file: string): AnalysisLike {
  return parseWith(analysisSchema, json, file, 'pass the analysis.json written by `recurformer analyze`');
}

export function modelShape(cfg: ModelConfig): ModelShape {
  return { nLayers: cfg.nLayers, nHeads: cfg.nHeads, nKvHeads: cfg.nKvHeads, headDim: cfg.headDim };
}

/** The model's shape, or the part of it a caller knows. */
export type KnownShape = Pick<ModelShape, 'nLayers' | 'nKvHeads'> & Partial<ModelShape>;

/** "was made for another model: nLayers 5 (the model has 6)" for the fields both know and disagree on, or null. */
function shapeDiff(recorded: Partial<ModelShape>, actual: KnownShape): string | null {
  const keys = ['nLayers', 'nHeads', 'nKvHeads', 'headDim'] as const;
  const diffs = keys.filter((k) => recorded[k] !== undefined && actual[k] !== undefined && recorded[k] !== actual[k])
    .map((k) => `${k} ${recorded[k]} (the model has ${actual[k]})`);
  return diffs.length > 0 ? `was made for another model: ${diffs.join(', ')}` : null;
}

function outOfRange(field: string, v: number, n: number, what: string): string | null {
  return v < n ? null : `${field} = ${v} is not ${what} of this model (0..${n - 1})`;
}

/** Why `plan` cannot be applied to a model of shape `s`, or null. */
export function planProblem(plan: ReplacementPlan, s: KnownShape): string | null {
  const diff = shapeDiff(plan.model ?? {}, s) ?? shapeDiff({ nLayers: plan.nLayers, nKvHeads: plan.nKvGroups }, s);
  if (diff) return diff;
  const seen = new Set<number>();
  for (const [i, l] of plan.layers.entries()) {
    const bad = outOfRange(`layers[${i}].layer`, l.layer, s.nLayers, 'a layer')
      ?? l.groups.map((g) => outOfRange(`layers[${i}].groups`, g, s.nKvHeads, 'a KV group')).find((x) => x !== null);
    if (bad) return bad;
    if (seen.has(l.layer)) return `layers[${i}].layer = ${l.layer} is listed twice`;
    seen.add(l.layer);
  }
  return null;
}

/** Why an analysis does not describe a model of shape `s`, or null. */
export function analysisProblem(a: AnalysisLike, s: KnownShape): string | null {
  const diff = shapeDiff(a.model ?? {}, s);
  if (diff) return diff;
  if (a.groups.length === 0) return 'has no group scores';
  for (const [i, g] of a.groups.entries()) {
    const bad = outOfRange(`groups[${i}].layer`, g.layer, s.nLayers, 'a layer') ?? outOfRange(`groups[${i}].kvGroup`, g.kvGroup, s.nKvHeads, 'a KV group');
    if (bad) return `was made for another model: ${bad}`;
  }
  // indices in range can still come from a smaller model: analyze covers every layer and group
  const layers = Math.max(...a.groups.map((g) => g.layer)) + 1, groups = Math.max(...a.groups.map((g) => g.kvGroup)) + 1;
  if (layers !== s.nLayers || groups !== s.nKvHeads) {
    return `was made for another model: it scores ${layers} layers x ${groups} KV groups, the model has ${s.nLayers} x ${s.nKvHeads}`;
  }
  if (s.nHeads !== undefined) {
    for (const [i, h] of (a.heads ?? []).entries()) {
      const bad = outOfRange(`heads[${i}].head`, h.head, s.nHeads, 'a query head');
      if (bad) return `was made for another model: ${bad}`;
    }
  }
  return null;
}

/** The plan file checked against the model it is applied to; a FormatError naming the file otherwise. */
export function checkPlanFile(plan: ReplacementPlan, cfg: ModelConfig, file: string): void {
  const problem = planProblem(plan, modelShape(cfg));
  if (problem) throw new FormatError(file, problem, 'pass the plan made for this model (convert writes it beside the converted model)');
}

export function checkAnalysisFile(a: AnalysisLike, cfg: ModelConfig, file: string): void {
  const problem = analysisProblem(a, modelShape(cfg));
  if (problem) throw new FormatError(file, problem, 'analyze this model (`recurformer analyze MODEL`) and convert from that analysis');
}
