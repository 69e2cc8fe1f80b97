/**
 * Optimizers and schedules: AdamW with per-parameter weight-decay masks (fused kernel), global-norm gradient
 * clipping, linear warmup + cosine decay. Optimizer state is plain arrays so checkpoints can save and restore it.
 */
import { K } from './backend.js';
import { ArgumentError } from './errors.js';
import { Tensor } from './tensor.js';

export interface AdamWOpts {
  lr: number;
  beta1?: number;
  beta2?: number;
  eps?: number;
  weightDecay?: number;
  /**
   * Which parameters decay. Default: tensors of rank >= 2 (matrices, embeddings) decay; vectors (norm gains,
   * biases) do not, as in GPT-2 / nanoGPT.
   */
  decay?: (p: Tensor) => boolean;
}

export interface AdamWState {
  step: number;
  m: Float32Array[];
  v: Float32Array[];
}

export class AdamW {
  readonly params: readonly Tensor[];
  readonly beta1: number;
  readonly beta2: number;
  readonly eps: number;
  readonly weightDecay: number;
  lr: number;
  private readonly decayMask: boolean[];
  state: AdamWState;

  constructor(params: readonly Tensor[], opts: AdamWOpts) {
    this.params = params;
    this.lr = opts.lr;
    this.beta1 = opts.beta1 ?? 0.9;
    this.beta2 = opts.beta2 ?? 0.95;
    this.eps = opts.eps ?? 1e-8;
    this.weightDecay = opts.weightDecay ?? 0.1;
    if (!(this.lr >= 0) || !(this.beta1 >= 0 && this.beta1 < 1) || !(this.beta2 >= 0 && this.beta2 < 1)) {
      throw new ArgumentError('AdamW', 'options', `lr=${this.lr} beta1=${this.beta1} beta2=${this.beta2} are invalid`,
        'lr >= 0 and betas in [0, 1)');
    }
    const decay = opts.decay ?? ((p: Tensor) => p.rank >= 2);
    this.decayMask = params.map(decay);
    params.forEach((p, i) => {
      if (!p.isContiguous()) throw new ArgumentError('AdamW', `params[${i}]`, 'is a strided view', 'pass leaf tensors');
    });
    this.state = { step: 0, m: params.map((p) => new Float32Array(p.size)), v: params.map((p) => new Float32Array(p.size)) };
  }

  /** Applies one update from the accumulated gradients (parameters without a gradient are skipped). */
  step(lr = this.lr): void {
    this.state.step++;
    const t = this.state.step;
    const bc1 = 1 - Math.pow(this.beta1, t), bc2 = 1 - Math.pow(this.beta2, t);
    this.params.forEach((p, i) => {
      if (!p.grad) return;
      K().adamw(p.data, p.grad.data, this.state.m[i]!, this.state.v[i]!, lr, this.beta1, this.beta2, this.eps,
        this.decayMask[i] ? this.weightDecay : 0, bc1, bc2);
    });
  }

  zeroGrad(): void {
    for (const p of this.params) p.grad = null;
  }
}

/** Global L2 norm of all gradients. */
export function gradNorm(params: readonly Tensor[]): number {
  let s = 0;
  for (const p of params) if (p.grad) s += K().sumSquares(p.grad.data);
  return Math.sqrt(s);
}

/** Scales gradients so their global norm is at most maxNorm; returns the norm before clipping. */
export function clipGradNorm(params: readonly Tensor[], maxNorm: number): number {
  const norm = gradNorm(params);
  if (Number.isFinite(norm) && norm > maxNorm && maxNorm > 0) {
    const f = maxNorm / (norm + 1e-6);
    for (const p of params) if (p.grad) K().affine(p.grad.data, f, 0, p.grad.data);
  }
  return norm;
}

export interface ScheduleOpts {
  lr: number;
  warmupSteps: number;
  totalSteps: number;
  /** Final learning rate as a fraction of lr (default 0.1). */
  minRatio?: number;
}

/** Linear warmup to lr over warmupSteps, then cosine decay to minRatio * lr at totalSteps (constant after). */
export function cosineSchedule(o: ScheduleOpts): (step: number) => number {
  const minLr = o.lr * (o.minRatio ?? 0.1);
  return (step: number) => {
    if (step < o.warmupSteps) return (o.lr * (step + 1)) / o.warmupSteps;
    if (step >= o.totalSteps) return minLr;
    const p = (step - o.warmupSteps) / Math.max(1, o.totalSteps - o.warmupSteps);
    return minLr + 0.5 * (o.lr - minLr) * (1 + Math.cos(Math.PI * p));
  };
}
