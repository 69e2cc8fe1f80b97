/**
 * Teacher agreement (DESIGN, Evaluation): how closely a student (a converted model, or a baseline memory on the
 * original) follows a teacher (usually the original model with full attention), teacher-forced over the same text.
 *
 * Per scored position i, with teacher logits z_t and student logits z_s over the vocabulary:
 *   match      argmax z_s == argmax z_t (greedy token match; ties go to the lowest id);
 *   KL         KL(p || q) = sum_v p_v (log p_v - log q_v), p = softmax(z_t), q = softmax(z_s), natural log;
 *   top-1      argmax == the data's next token, for the student and for the teacher.
 * All are means over positions. Windows are non-overlapping, ctx inputs each, BOS first (windows.ts); the teacher
 * runs one parallel forward per window, the student optionally through a baseline memory fed in blocks.
 */
import type { DecoderLM } from '../model/transformer.js';
import { ArgumentError } from '../tensor/errors.js';
import { contiguousData, rowLogSumExp } from '../tensor/index.js';
import { forwardWindow, checkWindowArgs, slidingWindows, type MemoryFactory } from './windows.js';

export interface AgreeResult {
  /** Positions scored. */
  tokens: number;
  windows: number;
  /** Fraction of positions where the student's and the teacher's argmax agree. */
  match: number;
  /** Mean KL(teacher || student) per position, nats. */
  kl: number;
  /** Largest per-position KL, nats. */
  maxKl: number;
  /** Fraction of positions where the argmax is the data's next token. */
  studentTop1: number;
  teacherTop1: number;
}

export interface AgreeOpts {
  ctx: number;
  /** The student's baseline memory (null: its own memory, one parallel forward per window). */
  memory?: MemoryFactory | null;
  block?: number;
  onWindow?: (done: number, total: number) => void;
}

/** Index of the largest of row[o, o + V) (the first on ties). */
export function argmaxRow(row: Float32Array, o: number, V: number): number {
  let best = 0, bv = -Infinity;
  for (let v = 0; v < V; v++) {
    const x = row[o + v]!;
    if (x > bv) {
      bv = x;
      best = v;
    }
  }
  return best;
}

/** KL(softmax(t) || softmax(s)) of one position's logits, float64; exactly 0 when the rows are equal. */
export function klRow(t: Float32Array, to: number, s: Float32Array, so: number, V: number): number {
  const lt = rowLogSumExp(t, to, V), ls = rowLogSumExp(s, so, V);
  let kl = 0;
  for (let v = 0; v < V; v++) {
    const logP = t[to + v]! - lt, logQ = s[so + v]! - ls;
    kl += Math.exp(logP) * (logP - logQ);
  }
  // rounding can leave a tiny negative value for near-identical rows; KL is non-negative
  return Math.max(0, kl);
}

/** Teacher-forced agreement of `student` with `teacher` over ids (see the module comment). */
export function agreement(student: DecoderLM, teacher: DecoderLM, ids: readonly number[], o: AgreeOpts): AgreeResult {
  const V = student.cfg.vocabSize;
  if (teacher.cfg.vocabSize !== V) {
    throw new ArgumentError('eval agree', 'teacher', `has a vocabulary of ${teacher.cfg.vocabSize}, the student ${V}`,
      'compare models that share a tokenizer');
  }
  checkWindowArgs('eval agree', student, ids.length, o.ctx, o.ctx);
  checkWindowArgs('eval agree', teacher, ids.length, o.ctx, o.ctx);
  const windows = slidingWindows(ids.length, o.ctx, o.ctx);
  let tokens = 0, match = 0, kl = 0, maxKl = 0, sTop = 0, tTop = 0;
  windows.forEach((w, i) => {
    const input = Int32Array.from(ids.slice(w.start, w.start + w.n));
    const tLogits = new Float32Array(w.n * V);
    forwardWindow(teacher, input, null, w.n, (logits, s) => tLogits.set(contiguousData(logits), s * V));
    forwardWindow(student, input, o.memory, o.block ?? 64, (logits, s, e) => {
      const sd = contiguousData(logits);
      for (let p = s; p < e; p++) {
        const so = (p - s) * V, to = p * V;
        const target = ids[w.start + p + 1]!;
        const sa = argmaxRow(sd, so, V), ta = argmaxRow(tLogits, to, V);
        const k = klRow(tLogits, to, sd, so, V);
        match += sa === ta ? 1 : 0;
        sTop += sa === target ? 1 : 0;
        tTop += ta === target ? 1 : 0;
        kl += k;
        maxKl = Math.max(maxKl, k);
      }
    });
    tokens += w.n;
    o.onWindow?.(i + 1, windows.length);
  });
  return { tokens, windows: windows.length, match: match / tokens, kl: kl / tokens, maxKl, studentTop1: sTop / tokens, teacherTop1: tTop / tokens };
}
