/**
 * The three objectives as functions of a batch: each returns the scalar loss to minimize (with a graph when grad is
 * enabled) and the numbers to log.
 *
 * align (stage 1), what exactly happens: the teacher (the original model) runs the batch once without grad, with taps
 *   on every replaced layer l: `blk.{l}.in` (the residual stream entering block l) and `blk.{l}.head_out` (per-head
 *   outputs before o_proj, (B, T, Hq, Dh)). For each replaced layer the student's recurrent heads are applied to
 *   norm_l(teacher's block input) (the student's own input_layernorm / ln_1 gain, which equals the teacher's unless
 *   norms train), and the loss is the MSE between their outputs and the teacher's outputs of the same (replaced)
 *   query heads, averaged over layers. A recurrent+window head's output adds its exact window's attention over the
 *   teacher's own queries, keys and values of that layer (taps `blk.{l}.q/k/v`, frozen) to mix times the read-out. Teacher forcing makes layers independent: an early layer's error never
 *   changes a later layer's input, and the student's full forward is never run. Only recurrent tensors get
 *   gradients (plus norms with --trainable recurrent+norms).
 * distill (stage 2): KL(teacher || student) at temperature tau on every position's next-token distribution, plus
 *   ceWeight * cross-entropy on the data's next tokens. With klFocus > 0 the positions are weighted by their own KL
 *   (losses.ts), and `parts.kl` still logs the plain mean. With hiddenWeight > 0 the residual streams are matched
 *   too (hiddenLoss): the input of every block after the first replaced one, as that block's attention sees it
 *   (through the student's input norm), against the teacher's. The logits alone say little about the kept heads'
 *   queries and keys at far positions; this term constrains them at every position.
 * pretrain: cross-entropy on the next tokens.
 */
import { recurrentChunked, zeroState } from '../model/recurrent-head.js';
import { maskOf, mixHeads } from '../model/attention.js';
import { attnScaleOf } from '../model/config.js';
import { TapRecorder } from '../model/taps.js';
import type { DecoderLM } from '../model/transformer.js';
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import { ArgumentError } from '../tensor/errors.js';
import type { Stage } from './config.js';
import type { Batch } from './data.js';
import { distillKL, distillKLWithMean, mse } from './losses.js';

export interface ObjectiveOpts {
  stage: Stage;
  temperature: number;
  ceWeight: number;
  /** Focal weighting of the KL over positions (0 = plain mean). */
  klFocus?: number;
  /** Weight of the residual-stream match added to distillation (0 = off). */
  hiddenWeight?: number;
}

export interface LossOut {
  loss: Tensor;
  /** Extra numbers for the log (already computed, no graph). */
  parts: Record<string, number>;
}

/** Stage 1 loss: mean over replaced layers of the teacher-forced per-head MSE (see the header). */
export function alignLoss(student: DecoderLM, teacher: DecoderLM, b: Batch): LossOut {
  const layers = [...student.recurrent.keys()].sort((x, y) => x - y);
  if (layers.length === 0) throw new ArgumentError('align', 'model', 'has no recurrent heads', 'convert the model first');
  const windowed = layers.filter((l) => student.layout.layers[l]!.headWindow);
  const wanted = new Set([...layers.flatMap((l) => [`blk.${l}.in`, `blk.${l}.head_out`]), ...windowed.flatMap((l) => ['q', 'k', 'v'].map((n) => `blk.${l}.${n}`))]);
  const taps = new TapRecorder((n) => wanted.has(n));
  T.noGrad(() => teacher.forward(b.inputs, b.B, b.T, { taps }));
  const parts: Record<string, number> = {};
  let total: Tensor | null = null;
  for (const l of layers) {
    const rl = student.recurrent.get(l)!;
    const x = taps.values.get(`blk.${l}.in`)!; // (B, T, D), constant
    const h = student.inputNorm(l, x);
    const r = recurrentChunked(h, rl.params, rl.dims, student.spec!.chunk, zeroState(rl.dims, b.B));
    let y = T.reshape(r.y, [b.B, b.T, rl.dims.nHeads, rl.dims.P]); // (B, T, replaced heads, P)
    // recurrent+window heads: their exact window's attention over the teacher's queries, keys and values (frozen)
    if (student.layout.layers[l]!.headWindow) y = mixHeads(T.noGrad(() => windowedHeads(student, teacher, l, taps)), y, rl.params.mix!);
    const target = T.gather(taps.values.get(`blk.${l}.head_out`)!, 2, rl.replacedHeads); // (B, T, replaced heads, Dh)
    const e = mse(y, target);
    parts[`mse.${l}`] = e.item();
    total = total ? T.add(total, e) : e;
  }
  return { loss: T.affine(total!, 1 / layers.length), parts };
}

/**
 * The windowed attention of layer l's recurrent+window heads (B, T, heads, Dh) on the teacher's taps: its q, k, v
 * after RoPE, of its attention groups (the replaced heads must be attention heads of the teacher).
 */
function windowedHeads(student: DecoderLM, teacher: DecoderLM, l: number, taps: TapRecorder): Tensor {
  const lay = student.layout.layers[l]!, tl = teacher.layout.layers[l]!;
  const at = (list: Int32Array, want: Int32Array, what: string): Int32Array => Int32Array.from(want, (x) => {
    const i = list.indexOf(x);
    if (i < 0) throw new ArgumentError('align', 'teacher', `layer ${l} ${what} ${x} is not an attention ${what} of the teacher`, 'the teacher is the model before this conversion');
    return i;
  });
  const q = T.gather(taps.values.get(`blk.${l}.q`)!, 2, at(tl.heads.attention, lay.heads['recurrent+window'], 'head'));
  const kv = at(tl.groups.attention, lay.groups['recurrent+window'], 'KV group');
  const k = T.gather(taps.values.get(`blk.${l}.k`)!, 2, kv), v = T.gather(taps.values.get(`blk.${l}.v`)!, 2, kv);
  const { window, sinks } = maskOf(lay, lay.headWindow!);
  return T.attention(q, k, v, { window, sinks, scale: attnScaleOf(student.cfg) }).out;
}

/** The blocks whose input hiddenLoss matches: every block after the first one with recurrent heads. */
export function hiddenLayers(student: DecoderLM): number[] {
  const first = Math.min(...student.recurrent.keys());
  if (!Number.isFinite(first)) return [];
  return Array.from({ length: student.cfg.nLayers - first - 1 }, (_, i) => first + 1 + i);
}

/**
 * Mean over `layers` of the relative squared error between the student's and the teacher's block inputs, both
 * through the student's input norm of that block: |norm(s) - norm(t)|^2 / |norm(t)|^2 over all positions.
 */
export function hiddenLoss(student: DecoderLM, layers: number[], s: TapRecorder, t: TapRecorder): Tensor {
  let total: Tensor | null = null;
  for (const l of layers) {
    const a = student.inputNorm(l, s.values.get(`blk.${l}.in`)!);
    const b = T.noGrad(() => student.inputNorm(l, t.values.get(`blk.${l}.in`)!));
    const scale = T.noGrad(() => T.mean(T.mul(b, b)).item());
    const e = T.affine(mse(a, b), 1 / Math.max(scale, 1e-30));
    total = total ? T.add(total, e) : e;
  }
  return T.affine(total!, 1 / layers.length);
}

/** The taps hiddenLoss reads, one recorder per model; null when the weight is 0 or no block follows a converted one. */
function hiddenTaps(student: DecoderLM, weight: number): { layers: number[]; s: TapRecorder; t: TapRecorder } | null {
  const layers = weight > 0 ? hiddenLayers(student) : [];
  if (!layers.length) return null;
  const wanted = new Set(layers.map((l) => `blk.${l}.in`));
  return { layers, s: new TapRecorder((n) => wanted.has(n)), t: new TapRecorder((n) => wanted.has(n)) };
}

/** Stage 2 loss: tau^2 KL(teacher || student) + ceWeight * CE + hiddenWeight * hiddenLoss. */
export function distillLoss(student: DecoderLM, teacher: DecoderLM, b: Batch, o: ObjectiveOpts): LossOut {
  const h = hiddenTaps(student, o.hiddenWeight ?? 0);
  const tl = T.noGrad(() => teacher.forward(b.inputs, b.B, b.T, { taps: h?.t }));
  const sl = student.forward(b.inputs, b.B, b.T, { taps: h?.s });
  const { loss: kl, mean } = distillKLWithMean(sl, tl, o.temperature, o.klFocus ?? 0);
  const parts: Record<string, number> = { kl: mean };
  let loss = kl;
  if (o.ceWeight > 0) {
    const ce = T.crossEntropy(sl, b.targets);
    parts.ce = ce.item();
    loss = T.add(loss, T.affine(ce, o.ceWeight));
  }
  if (h) {
    const e = hiddenLoss(student, h.layers, h.s, h.t);
    parts.hidden = e.item();
    loss = T.add(loss, T.affine(e, o.hiddenWeight!));
  }
  return { loss, parts };
}

export function pretrainLoss(student: DecoderLM, b: Batch): LossOut {
  const ce = T.crossEntropy(student.forward(b.inputs, b.B, b.T), b.targets);
  return { loss: ce, parts: {} };
}

export function objective(student: DecoderLM, teacher: DecoderLM | null, b: Batch, o: ObjectiveOpts): LossOut {
  if (o.stage === 'pretrain') return pretrainLoss(student, b);
  if (!teacher) throw new ArgumentError('train', 'teacher', `is required for stage ${o.stage}`);
  return o.stage === 'align' ? alignLoss(student, teacher, b) : distillLoss(student, teacher, b, o);
}

export interface EvalOut {
  /** The objective on the validation batches. */
  loss: number;
  /** Student cross-entropy (nats/token) and perplexity on the validation batches. */
  ce: number;
  ppl: number;
  /** KL(teacher || student) at temperature 1 (align/distill). */
  kl?: number;
  tokens: number;
}

/** Validation: mean objective, student CE / perplexity and (with a teacher) KL at tau = 1, token-weighted. */
export function evaluate(student: DecoderLM, teacher: DecoderLM | null, batches: Iterable<Batch>, o: ObjectiveOpts): EvalOut {
  let loss = 0, ce = 0, kl = 0, tokens = 0;
  T.noGrad(() => {
    for (const b of batches) {
      T.scope(() => {
        const n = b.B * b.T;
        const h = teacher && o.stage === 'distill' ? hiddenTaps(student, o.hiddenWeight ?? 0) : null;
        const sl = student.forward(b.inputs, b.B, b.T, { taps: h?.s });
        const c = T.crossEntropy(sl, b.targets).item();
        ce += c * n;
        if (teacher) {
          const tl = teacher.forward(b.inputs, b.B, b.T, { taps: h?.t });
          if (h) loss += o.hiddenWeight! * hiddenLoss(student, h.layers, h.s, h.t).item() * n;
          // the objective at tau and focus; at tau = 1 the same pass gives the plain KL
          const obj = o.stage === 'distill' ? distillKLWithMean(sl, tl, o.temperature, o.klFocus ?? 0) : null;
          const k = obj && o.temperature === 1 ? obj.mean : distillKL(sl, tl, 1).item();
          kl += k * n;
          if (obj) loss += obj.loss.item() * n + o.ceWeight * c * n;
        }
        if (o.stage === 'align') loss += alignLoss(student, teacher!, b).loss.item() * n;
        if (o.stage === 'pretrain') loss += c * n;
        tokens += n;
      });
    }
  });
  const out: EvalOut = { loss: loss / tokens, ce: ce / tokens, ppl: Math.exp(ce / tokens), tokens };
  if (teacher) out.kl = kl / tokens;
  return out;
}
