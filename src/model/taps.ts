/**
 * Taps: named intermediates of the forward pass (`blk.{l}.attn_probs`, `blk.{l}.head_out`, `blk.{l}.resid`, ...)
 * handed to a sink when one asks for them. With no sink the forward pass checks one null and computes nothing extra.
 * Analysis and head-level distillation read taps; they never fork the model.
 */
import type { Tensor } from '../tensor/index.js';

export interface TapSink {
  /** True when the sink wants this intermediate (lets the model skip computing attention probabilities). */
  wants(name: string): boolean;
  put(name: string, value: Tensor): void;
}

/** A sink that records the named taps it is given. */
export class TapRecorder implements TapSink {
  readonly values = new Map<string, Tensor>();
  constructor(private readonly filter: (name: string) => boolean) {}
  wants(name: string): boolean {
    return this.filter(name);
  }
  put(name: string, value: Tensor): void {
    this.values.set(name, value);
  }
}
