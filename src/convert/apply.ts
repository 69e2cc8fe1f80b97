/**
 * Conversion: a plan + a loaded model -> a converted model (base tensors + recurrent tensors + spec).
 *
 * Init from attention (default, the "reuse pretrained weights" claim): for each replaced head h of KV group g,
 * W_x <- W_v rows of g, W_B <- W_k rows of g, W_C <- W_q rows of h, N = head dim, so H_t C_t starts as a decayed
 * linear attention over the same keys and values. The conv starts as the identity (last tap 1), dt as 1, D as 0, and
 * the decay a = 1 - 1/m with m the head's measured effective window. A per-head output scale, fitted by least squares
 * against the original head's output on calibration tokens, is folded into W_x: without it the unnormalized linear
 * attention is several times too large (DESIGN.md). Random init (ablation) draws the projections from N(0, 0.02).
 *
 * With kind recurrent+window (docs/convert.md) the groups also keep an exact window of their keys and values, and
 * each head's recurrent read-out enters its output times a per-head `mix`, fitted by fitMix instead of the scale.
 *
 * A model that is already converted keeps its recurrent groups as they are (they may have been trained since): the
 * plan's groups are added to them, with the earlier heads' hyperparameters, and only the added heads are initialized.
 */
import type { LoadedModel } from '../io/model-load.js';
import { toF32, type RawTensor } from '../io/tensor-file.js';
import type { ModelConfig } from '../model/config.js';
import { buildModel } from '../io/build.js';
import type { TapSink } from '../model/taps.js';
import type { DecoderLM } from '../model/transformer.js';
import { ArgumentError } from '../tensor/errors.js';
import * as T from '../tensor/index.js';
import { Rng, noGrad } from '../tensor/index.js';
import type { ReplacementPlan } from './plan.js';
import { groupRows, headsOfGroups, layerDims, layerPrefix, recurrentTensorShapes, type RecurformerSpec } from '../model/spec.js';
import { REPLACED_KINDS, type ReplacedKind } from '../model/layout.js';
import { modelShape, planProblem } from './validate.js';

export interface ConvertOptions {
  init?: 'attention' | 'random';
  /** State dim N (default: the head dim, required by init from attention). */
  N?: number;
  convK?: number;
  gate?: boolean;
  norm?: boolean;
  chunk?: number;
  /** Effective memory (tokens) per replaced head, keyed "layer.head"; default: the plan's window. */
  memory?: Map<string, number>;
  /** Token ids (BOS first) for the output-scale fit; without them the scale stays 1. */
  calibration?: Int32Array;
  /**
   * Kind of the replaced groups (default 'recurrent'): recurrent+window groups keep an exact window of `headSinks` +
   * the last `headWindow` keys for softmax attention and add each head's recurrent read-out times its `mix`.
   */
  kind?: ReplacedKind;
  headWindow?: number;
  headSinks?: number;
  seed?: number;
}

export interface ConvertedModel extends LoadedModel {
  recurformer: RecurformerSpec;
}

/** Rows [start, start + count) of a row-major (rows, D) matrix. */
function rowsOf(w: Float32Array, start: number, count: number, D: number): Float32Array {
  return w.slice(start * D, (start + count) * D);
}

/** q, k, v weights (out, in) of layer l in the HF layout. GPT-2's fused c_attn is [in, 3 * out] (Conv1D). */
function qkvWeights(cfg: ModelConfig, m: LoadedModel, l: number): { q: Float32Array; k: Float32Array; v: Float32Array } {
  const D = cfg.dModel;
  const p = layerPrefix(cfg, l);
  if (cfg.arch === 'gpt2') {
    const w = toF32(m.tensors.get(`${p}.attn.c_attn.weight`)!); // (D, 3D): transpose to (3D, D)
    const t = new Float32Array(3 * D * D);
    for (let i = 0; i < D; i++) for (let j = 0; j < 3 * D; j++) t[j * D + i] = w[i * 3 * D + j]!;
    return { q: t.slice(0, D * D), k: t.slice(D * D, 2 * D * D), v: t.slice(2 * D * D) };
  }
  const g = (n: string): Float32Array => toF32(m.tensors.get(`${p}.self_attn.${n}_proj.weight`)!);
  return { q: g('q'), k: g('k'), v: g('v') };
}

export function convert(m: LoadedModel, plan: ReplacementPlan, o: ConvertOptions = {}): ConvertedModel {
  const cfg = m.config;
  const prev = m.recurformer;
  const Dh = cfg.headDim, D = cfg.dModel;
  const init = o.init ?? 'attention';
  const N = o.N ?? prev?.N ?? Dh;
  if (init === 'attention' && N !== Dh) {
    throw new ArgumentError('convert', 'N', `= ${N} must equal the head dim ${Dh} for init from attention`, 'use --init random for another N');
  }
  const problem = planProblem(plan, modelShape(cfg));
  if (problem) throw new ArgumentError('convert', 'plan', problem, 'the plan was made from another model\'s analysis');
  // the decay init divides by it: a missing window would write NaN heads
  if (!(Number.isFinite(plan.window) && plan.window >= 1)) throw new ArgumentError('convert', 'plan.window', `= ${plan.window} must be a number >= 1`);
  for (const k of ['N', 'convK', 'gate', 'norm'] as const) {
    if (prev && o[k] !== undefined && o[k] !== prev[k]) {
      throw new ArgumentError('convert', k, `= ${o[k]} differs from the model's earlier recurrent heads (${prev[k]})`, 'added groups take the earlier heads\' settings');
    }
  }
  const kindOpts = headKind(o, prev ?? null);
  const before = new Map((prev?.layers ?? []).map((l) => [l.layer, l.groups]));
  const merged = new Map(before);
  for (const { layer, groups } of plan.layers) merged.set(layer, [...new Set([...(merged.get(layer) ?? []), ...groups])].sort((a, b) => a - b));
  const spec: RecurformerSpec = {
    version: 1, P: Dh, N, convK: o.convK ?? prev?.convK ?? 4, gate: o.gate ?? prev?.gate ?? false, norm: o.norm ?? prev?.norm ?? false,
    chunk: o.chunk ?? prev?.chunk ?? 64, ...kindOpts,
    layers: [...merged].filter(([, g]) => g.length > 0).sort((a, b) => a[0] - b[0]).map(([layer, groups]) => ({ layer, groups })),
  };
  const shapes = recurrentTensorShapes(cfg, spec);
  const rng = new Rng(o.seed ?? 0);
  const tensors = new Map(m.tensors);
  const put = (name: string, data: Float32Array): void => {
    const shape = shapes.get(name)!;
    tensors.set(name, { name, dtype: 'F32', shape, data });
  };
  /** Per layer, the groups this call makes recurrent (the others are kept from `prev`). */
  const added = new Map<number, number[]>();
  for (const { layer, groups } of spec.layers) {
    const old = before.get(layer) ?? [];
    const fresh = groups.filter((g) => !old.includes(g));
    if (fresh.length === 0) continue; // unchanged: its tensors came with m.tensors
    added.set(layer, fresh);
    const d = layerDims(cfg, spec, groups);
    const heads = headsOfGroups(cfg, groups);
    const p = `${layerPrefix(cfg, layer)}.recurrent`;
    const C = d.nHeads * d.P + d.nGroups * d.N + d.nHeads * d.N;
    const randn = (n: number, std: number): Float32Array => Float32Array.from({ length: n }, () => rng.normal() * std);
    if (init === 'attention') {
      const w = qkvWeights(cfg, m, layer);
      const nRep = cfg.nHeads / cfg.nKvHeads;
      const wx = new Float32Array(d.nHeads * Dh * D), wc = new Float32Array(d.nHeads * N * D), wb = new Float32Array(d.nGroups * N * D);
      heads.forEach((h, i) => {
        wx.set(rowsOf(w.v, Math.floor(h / nRep) * Dh, Dh, D), i * Dh * D);
        wc.set(rowsOf(w.q, h * Dh, Dh, D), i * N * D);
      });
      groups.forEach((g, i) => wb.set(rowsOf(w.k, g * Dh, Dh, D), i * N * D));
      put(`${p}.wx`, wx);
      put(`${p}.wb`, wb);
      put(`${p}.wc`, wc);
    } else {
      put(`${p}.wx`, randn(d.nHeads * Dh * D, 0.02));
      put(`${p}.wb`, randn(d.nGroups * N * D, 0.02));
      put(`${p}.wc`, randn(d.nHeads * N * D, 0.02));
    }
    const convW = new Float32Array(C * spec.convK);
    for (let c = 0; c < C; c++) convW[c * spec.convK + spec.convK - 1] = 1; // identity: the conv passes the current input
    put(`${p}.conv_w`, convW);
    put(`${p}.conv_b`, new Float32Array(C));
    put(`${p}.wdt`, new Float32Array(d.nHeads * D));
    put(`${p}.bdt`, new Float32Array(d.nHeads).fill(Math.log(Math.E - 1))); // softplus(b) = 1
    const aLog = new Float32Array(d.nHeads);
    heads.forEach((h, i) => {
      const mem = Math.max(1.5, o.memory?.get(`${layer}.${h}`) ?? plan.window);
      const a = 1 - 1 / mem; // effective memory 1 / (1 - a) = mem tokens
      aLog[i] = Math.log(-Math.log(a));
    });
    put(`${p}.a_log`, aLog);
    put(`${p}.d`, new Float32Array(d.nHeads));
    if (spec.gate) put(`${p}.wz`, randn(d.nHeads * Dh * D, 0.02));
    if (spec.norm) put(`${p}.norm_w`, new Float32Array(Dh).fill(1));
    // recurrent+window: the heads start as their exact window alone (streaming heads); the fit below sets mix
    if (spec.kind === 'recurrent+window') put(`${p}.mix`, new Float32Array(d.nHeads));
    if (old.length > 0) keepEarlier(cfg, spec, layer, old, groups, m.tensors, tensors);
  }
  const out: ConvertedModel = { ...m, tensors, recurformer: spec };
  if (o.calibration && spec.kind === 'recurrent+window') fitMix(m, out, o.calibration, added);
  else if (o.calibration && init === 'attention') fitOutputScales(m, out, o.calibration, added);
  return out;
}

/** Default exact window of recurrent+window heads: 4 sinks + 64 recent keys (the streaming-heads defaults). */
export const DEFAULT_HEAD_WINDOW = 64;
export const DEFAULT_HEAD_SINKS = 4;

/** kind / window / sinks of the spec: the options', which must agree with an already converted model's. */
function headKind(o: ConvertOptions, prev: RecurformerSpec | null): Pick<RecurformerSpec, 'kind' | 'window' | 'sinks'> {
  const kind = o.kind ?? prev?.kind ?? 'recurrent';
  if (!REPLACED_KINDS.includes(kind)) throw new ArgumentError('convert', '--head-kind', `"${kind}" is not one of ${REPLACED_KINDS.join(', ')}`);
  if (prev && kind !== (prev.kind ?? 'recurrent')) {
    throw new ArgumentError('convert', '--head-kind', `= ${kind} differs from the model's earlier replaced groups (${prev.kind ?? 'recurrent'})`,
      'one model has one kind of replaced group: convert the original model instead');
  }
  if (kind === 'recurrent') {
    if (o.headWindow !== undefined || o.headSinks !== undefined) {
      throw new ArgumentError('convert', o.headWindow !== undefined ? '--head-window' : '--head-sinks', 'belongs to --head-kind recurrent+window',
        'add --head-kind recurrent+window, or drop the flag');
    }
    return {};
  }
  const window = o.headWindow ?? prev?.window ?? DEFAULT_HEAD_WINDOW, sinks = o.headSinks ?? prev?.sinks ?? DEFAULT_HEAD_SINKS;
  if (!(Number.isInteger(window) && window >= 1)) throw new ArgumentError('convert', '--head-window', `= ${window} must be an integer >= 1`);
  if (!(Number.isInteger(sinks) && sinks >= 0)) throw new ArgumentError('convert', '--head-sinks', `= ${sinks} must be an integer >= 0`);
  if (prev && (window !== (prev.window ?? window) || sinks !== (prev.sinks ?? sinks))) {
    throw new ArgumentError('convert', '--head-window', `${sinks} sinks + ${window} differ from the model's earlier groups (${prev.sinks} + ${prev.window})`,
      'added groups take the earlier groups\' window');
  }
  return { kind, window, sinks };
}

/** Copies the recurrent weights of the groups a layer already had (`old`) into the layer's new tensors (`groups`). */
function keepEarlier(cfg: ModelConfig, spec: RecurformerSpec, layer: number, old: number[], groups: number[],
  from: Map<string, RawTensor>, to: Map<string, RawTensor>): void {
  const p = `${layerPrefix(cfg, layer)}.recurrent.`;
  for (const [name, shape] of recurrentTensorShapes(cfg, { ...spec, layers: [{ layer, groups }] })) {
    const src = toF32(from.get(name)!), dst = to.get(name)!.data as Float32Array;
    const param = name.slice(p.length);
    if (param === 'norm_w') {
      dst.set(src); // one gain shared by the layer's heads
      continue;
    }
    const row = shape.slice(1).reduce((a, b) => a * b, 1);
    old.forEach((g, i) => {
      const want = groupRows(cfg, spec, param, groups.indexOf(g), groups.length);
      groupRows(cfg, spec, param, i, old.length).forEach(([s, e], r) => dst.set(src.subarray(s * row, e * row), want[r]![0] * row));
    });
  }
}

/**
 * The model the output-scale fit runs: the weights as loaded, shared and not copied (a BF16 checkpoint stays 16-bit,
 * each product widens one matrix at a time), so a convert holds the model's bytes once, not a float32 copy of it.
 * Exported for the test that checks this by the weights' types.
 */
export function calibrationModel(lm: LoadedModel, spec: RecurformerSpec | null): DecoderLM {
  return buildModel(lm, { dtype: 'keep', share: true }, spec);
}

type HeadsByLayer = ReadonlyMap<number, readonly number[]>;

/**
 * Per tap name of `wants` (head_out, whose head axis is the model's query heads; rec_out, whose head axis is the
 * layer's replaced heads), the outputs (T, heads.length * Dh) of the listed heads of each listed layer, for the token
 * ids, from one forward pass. A tap sink keeps them: only those heads' columns are copied out, so a long calibration
 * text holds a few of the model's heads per layer, not every head of every layer twice.
 */
function headOutputs(model: DecoderLM, ids: Int32Array, wants: Readonly<Record<string, HeadsByLayer>>): Record<string, Map<number, Float32Array>> {
  const Dh = model.cfg.headDim;
  const Tn = ids.length;
  const out: Record<string, Map<number, Float32Array>> = Object.fromEntries(Object.keys(wants).map((tap) => [tap, new Map()]));
  const parse = (name: string): { tap: string; l: number } | null => {
    const m = /^blk\.(\d+)\.(\w+)$/.exec(name);
    return m && wants[m[2]!]?.has(Number(m[1])) ? { tap: m[2]!, l: Number(m[1]) } : null;
  };
  const sink: TapSink = {
    wants: (name) => parse(name) !== null,
    put: (name, value) => {
      const { tap, l } = parse(name)!, hs = wants[tap]!.get(l)!;
      const H = value.shape[2]!, v = T.contiguous(value).data; // (1, T, H, Dh)
      const y = new Float32Array(Tn * hs.length * Dh);
      for (let t = 0; t < Tn; t++) {
        hs.forEach((h, i) => y.set(v.subarray((t * H + h) * Dh, (t * H + h + 1) * Dh), (t * hs.length + i) * Dh));
      }
      out[tap]!.set(l, y);
    },
  };
  // only the taps are read: the logits of the last position alone, so the head is one row, not (T, V)
  noGrad(() => model.forward(ids, 1, Tn, { taps: sink, lastOnly: true }));
  return out;
}

/**
 * Least-squares scale per added head: alpha = <y_orig, y_rec> / <y_rec, y_rec> over the calibration tokens, folded
 * into W_x (y is linear in x when D = 0 and the gate and norm are off). The reference is the model as convert got
 * it (with its earlier recurrent heads, if any), whose attention heads the added ones replace. The two models run
 * one after the other; each shares the loaded weights (calibrationModel).
 */
function fitOutputScales(orig: LoadedModel, conv: ConvertedModel, ids: Int32Array, added: Map<number, number[]>): void {
  const cfg = orig.config;
  const spec = conv.recurformer;
  if (spec.gate || spec.norm) return;
  const fresh = new Map<number, number[]>();
  for (const [layer, groups] of added) if (groups.length > 0) fresh.set(layer, [...headsOfGroups(cfg, groups)]);
  const a = headOutputs(calibrationModel(orig, orig.recurformer ?? null), ids, { head_out: fresh }).head_out!;
  const b = headOutputs(calibrationModel(conv, spec), ids, { head_out: fresh }).head_out!;
  const Dh = cfg.headDim, D = cfg.dModel;
  for (const { layer, groups } of spec.layers) {
    const hs = fresh.get(layer);
    if (!hs) continue;
    const ya = a.get(layer)!, yb = b.get(layer)!;
    const heads = headsOfGroups(cfg, groups);
    const wx = conv.tensors.get(`${layerPrefix(cfg, layer)}.recurrent.wx`)!.data as Float32Array;
    hs.forEach((h, j) => {
      let num = 0, den = 0;
      for (let t = 0; t < ids.length; t++) {
        for (let k = 0; k < Dh; k++) {
          const o = (t * hs.length + j) * Dh + k;
          num += ya[o]! * yb[o]!;
          den += yb[o]! * yb[o]!;
        }
      }
      const alpha = den > 0 ? num / den : 1;
      const i = heads.indexOf(h); // the head's rows in this layer's W_x
      for (let r = i * Dh * D; r < (i + 1) * Dh * D; r++) wx[r] = wx[r]! * alpha;
    });
  }
}

/**
 * recurrent+window heads: each added head's recurrent read-out r is fitted to what its exact window misses,
 * res = y_orig - y_w (y_w: the head's windowed attention), on the calibration tokens, in two steps:
 *   1. scale: without the per-head norm, W_x's rows of the head are multiplied by rms(res) / rms(r), so the read-out
 *      starts at the size of what it is to supply (the unnormalized linear attention is orders of magnitude larger,
 *      which would leave mix near 1e-4, where every optimizer step of a few 1e-4 is a jump);
 *   2. mix = <res, r> / <r, r> with the rescaled r: least squares, so the fitted head is never worse than the window
 *      alone (mix 0) on these tokens; after step 1 it is the cosine of res and r, in [-1, 1].
 * y_w and r come from the `head_out` and `rec_out` taps of the converted model with mix 0, whose outputs then do
 * not depend on the recurrent weights: one run for both taps, and (without the norm) one more after the rescale.
 */
function fitMix(orig: LoadedModel, conv: ConvertedModel, ids: Int32Array, added: Map<number, number[]>): void {
  const cfg = orig.config, spec = conv.recurformer;
  const fresh = new Map<number, number[]>(), slots = new Map<number, number[]>();
  for (const { layer, groups } of spec.layers) {
    const g = added.get(layer);
    if (!g?.length) continue;
    const all = headsOfGroups(cfg, groups), hs = headsOfGroups(cfg, g);
    fresh.set(layer, hs);
    slots.set(layer, hs.map((h) => all.indexOf(h))); // their places among the layer's replaced heads
  }
  const Dh = cfg.headDim, D = cfg.dModel, Tn = ids.length;
  const a = headOutputs(calibrationModel(orig, orig.recurformer ?? null), ids, { head_out: fresh }).head_out!;
  // the converted model with mix 0: the windowed attention and, before the rescale, the read-out, in one pass
  const first = headOutputs(calibrationModel(conv, spec), ids, { head_out: fresh, rec_out: slots });
  const w = first.head_out!;
  /** Sums over the calibration tokens of head j's (res . r) and (r . r), and of (res . res). */
  const sums = (res: Float32Array, r: Float32Array, n: number, j: number): { rr: number; er: number; ee: number } => {
    let rr = 0, er = 0, ee = 0;
    for (let t = 0; t < Tn; t++) {
      for (let k = 0; k < Dh; k++) {
        const o = (t * n + j) * Dh + k;
        rr += r[o]! * r[o]!;
        er += res[o]! * r[o]!;
        ee += res[o]! * res[o]!;
      }
    }
    return { rr, er, ee };
  };
  const res = new Map([...fresh.keys()].map((l) => {
    const ya = a.get(l)!, yw = w.get(l)!;
    return [l, ya.map((v, i) => v - yw[i]!)];
  }));
  if (!spec.norm) {
    const r = first.rec_out!;
    for (const [layer, hs] of fresh) {
      const wx = conv.tensors.get(`${layerPrefix(cfg, layer)}.recurrent.wx`)!.data as Float32Array;
      hs.forEach((_, j) => {
        const { rr, ee } = sums(res.get(layer)!, r.get(layer)!, hs.length, j);
        const scale = rr > 0 && ee > 0 ? Math.sqrt(ee / rr) : 1;
        const i = slots.get(layer)![j]!; // the head's rows in this layer's W_x
        for (let x = i * Dh * D; x < (i + 1) * Dh * D; x++) wx[x] = wx[x]! * scale;
      });
    }
  }
  const r = spec.norm ? first.rec_out! : headOutputs(calibrationModel(conv, spec), ids, { rec_out: slots }).rec_out!;
  for (const [layer, hs] of fresh) {
    const mix = conv.tensors.get(`${layerPrefix(cfg, layer)}.recurrent.mix`)!.data as Float32Array;
    hs.forEach((_, j) => {
      const { rr, er } = sums(res.get(layer)!, r.get(layer)!, hs.length, j);
      mix[slots.get(layer)![j]!] = rr > 0 ? er / rr : 0;
    });
  }
}
