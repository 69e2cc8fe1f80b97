/**
 * The decoder-only Transformer: a family (llama.ts, gpt2.ts) supplies the embedding, the block and the head on
 * weights it resolved once; the attention core (attention.ts) runs each layer's heads as the layout (layout.ts) says:
 * full attention, a converted model's recurrent heads, or the memory's windows. The forward pass commits its own
 * tokens to the memory.
 *
 * Shapes: B batch, T new tokens, D = dModel, V vocab.
 */
import * as T from '../tensor/index.js';
import type { Tensor } from '../tensor/index.js';
import { ArgumentError, ShapeError } from '../tensor/errors.js';
import type { ModelConfig } from './config.js';
import { attend, type RecurrentLayer } from './attention.js';
import type { Family } from './family.js';
import { GraphOps } from './ops.js';
import { StepOps, stepApplies } from './step-ops.js';
import { WeightTable } from './family.js';
import { Gpt2 } from './gpt2.js';
import { isReplaced, Layout, type RecurformerSpec } from './layout.js';
import { Llama } from './llama.js';
import type { Projection, RecurrentParams } from './recurrent-head.js';
import type { ModelMemory } from './stores.js';
import type { TapSink } from './taps.js';
import { HalfWeight, isPacked, type Weight } from './weights.js';

export type { RecurrentLayer } from './attention.js';

export interface ForwardOpts {
  /** Memory to read and extend (the call commits its tokens); without one the call sees only its own tokens. */
  memory?: ModelMemory;
  taps?: TapSink;
  /** Override absolute positions (length T); default memory.length + [0, T). Used by the waiver position test. */
  positions?: Int32Array;
  /** Return logits only for the last position (generation). */
  lastOnly?: boolean;
  /**
   * Query positions (indices into this call's T tokens) that attend only to themselves, as the first token does
   * under a causal mask: the waiver "mask test". Inference only.
   */
  selfOnly?: Int32Array;
}

export class DecoderLM {
  /** Which KV groups of each layer are attention and which recurrent. */
  readonly layout: Layout;
  /** Recurrent layers of a converted model (empty for a plain Transformer). */
  readonly recurrent = new Map<number, RecurrentLayer>();
  family!: Family;
  /** Step mode (step-ops.ts) for single-token decode, built on first use. */
  private step: StepOps | null = null;

  constructor(readonly cfg: ModelConfig, readonly weights: Map<string, Weight>, readonly spec: RecurformerSpec | null = null) {
    this.layout = Layout.of(cfg, spec);
    this.resolve();
  }

  /** Reads every weight by name into the family's typed fields (at construction and after setWeight). */
  private resolve(): void {
    this.family = this.cfg.arch === 'gpt2' ? new Gpt2(this.cfg, this.weights) : new Llama(this.cfg, this.weights);
    const t = new WeightTable(this.weights);
    this.recurrent.clear();
    for (const L of this.layout.layers) {
      if (!L.recurrent) continue;
      const p = `${this.family.prefix(L.layer)}.recurrent`;
      // the projections as held (a 16-bit one is read directly); the small per-channel parameters in float32
      const proj = (n: string): Projection => {
        const w = t.w(n);
        return w instanceof HalfWeight ? w : t.f(n);
      };
      const params: RecurrentParams = {
        wx: proj(`${p}.wx`), wb: proj(`${p}.wb`), wc: proj(`${p}.wc`), convW: t.f(`${p}.conv_w`), convB: t.f(`${p}.conv_b`),
        wdt: proj(`${p}.wdt`), bdt: t.f(`${p}.bdt`), aLog: t.f(`${p}.a_log`), d: t.f(`${p}.d`),
        wz: this.weights.has(`${p}.wz`) ? proj(`${p}.wz`) : undefined, normW: t.opt(`${p}.norm_w`) ?? undefined,
        mix: L.headWindow ? t.f(`${p}.mix`) : undefined,
      };
      const replacedHeads = Int32Array.from([...L.heads.recurrent, ...L.heads['recurrent+window']]);
      this.recurrent.set(L.layer, { dims: L.recurrent, params, replacedHeads });
    }
    this.step = null;
  }

  /** Replaces a weight (a 16-bit weight widened to train, say) and re-resolves the typed fields. */
  setWeight(name: string, w: Weight): void {
    if (!this.weights.has(name)) throw new ArgumentError('DecoderLM.setWeight', 'name', `"${name}" is not a weight of this model`);
    this.weights.set(name, w);
    this.resolve();
  }

  /** Trainable float32 parameters in a stable order. */
  parameters(): Tensor[] {
    return [...this.weights.values()].filter((w): w is Tensor => !isPacked(w));
  }

  /** The norm block l applies to its input (what its attention and recurrent heads read). */
  inputNorm(l: number, x: Tensor): Tensor {
    return this.family.inputNorm(l, x);
  }

  /** Logits (B, T, V) for token ids (B * T, row-major). */
  forward(ids: Int32Array, B: number, Tn: number, opts: ForwardOpts = {}): Tensor {
    const cfg = this.cfg, mem = opts.memory;
    if (ids.length !== B * Tn) throw new ShapeError('forward', 'ids', `${B * Tn} ids (B=${B}, T=${Tn})`, [ids.length]);
    const layout = mem?.layout ?? this.layout;
    if (mem) this.checkLayout(layout);
    const start = mem?.length ?? 0;
    const positions = opts.positions ?? Int32Array.from({ length: Tn }, (_, i) => start + i);
    if (positions.length !== Tn) throw new ShapeError('forward', 'positions', `[${Tn}]`, [positions.length]);
    const fam = this.family;
    let x = fam.embed(ids, positions, B, Tn); // (B, T, D)
    if (stepApplies(B, Tn, mem, !opts.taps && !opts.selfOnly?.length)) {
      // one token of batch 1: the same blocks in step mode, on preallocated rows
      this.step ??= new StepOps(cfg, this.recurrent, (l) => fam.ropeFreq(l));
      x = this.step.run(x, positions[0]!, mem!, (o, h) => {
        for (let l = 0; l < cfg.nLayers; l++) h = fam.block(o, l, h);
        return h;
      });
    } else {
      const chunk = this.spec?.chunk ?? 64;
      const o = new GraphOps(cfg, B, Tn, (l, h, q, k, v) =>
        attend(cfg, layout.layers[l]!, this.recurrent.get(l), mem?.layer(l), h, q, k, v,
          { positions, invFreq: fam.ropeFreq(l), taps: opts.taps, selfOnly: opts.selfOnly, chunk }));
      for (let l = 0; l < cfg.nLayers; l++) {
        if (opts.taps?.wants(`blk.${l}.in`)) opts.taps.put(`blk.${l}.in`, x); // the block's input (teacher forcing)
        // Without a graph to keep (no grad, no taps), each block runs in its own buffer scope: its intermediates go
        // back to the pool for the next block, so a prefill chunk holds one block's activations, not every layer's.
        const l0 = l, x0 = x;
        x = !T.isGradEnabled() && !opts.taps ? T.scope(() => fam.block(o, l0, x0)) : fam.block(o, l, x);
        if (opts.taps?.wants(`blk.${l}.resid`)) opts.taps.put(`blk.${l}.resid`, x);
      }
    }
    mem?.commit(Tn);
    if (opts.lastOnly && Tn > 1) x = T.slice(x, 1, Tn - 1, Tn);
    return fam.head(x);
  }

  /** A memory's layout must keep this model's recurrent groups and shapes (it may window attention groups). */
  private checkLayout(layout: Layout): void {
    if (layout === this.layout || this.checked.has(layout)) return;
    const c = layout.cfg, m = this.cfg;
    const same = c.nLayers === m.nLayers && c.nKvHeads === m.nKvHeads && c.headDim === m.headDim &&
      layout.layers.every((L, l) => L.kinds.every((k, g) => {
        const own = this.layout.layers[l]!.kinds[g]!;
        return isReplaced(k) || isReplaced(own) ? k === own : true;
      }));
    if (!same) {
      throw new ArgumentError('forward', 'memory', 'was made for another model or layout (its recurrent groups differ from this model\'s)',
        'make the memory from this model: fullMemory(model), streamingMemory(model, ...)');
    }
    this.checked.add(layout);
  }

  /** Memory layouts already checked against this model's (a decode step checks its memory's once, not per call). */
  private readonly checked = new WeakSet<Layout>();
}
