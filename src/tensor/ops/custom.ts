/**
 * Custom ops: user code supplies a forward on raw arrays and its own backward, and gets the same autograd
 * integration as built-in ops (its speed is that of the forward it supplies; distillKL's is plain TypeScript).
 */
import { noGrad, record } from '../autograd.js';
import { Tensor } from '../tensor.js';

export interface CustomOp<S> {
  name: string;
  /** Computes the outputs (no tape is recorded inside) and returns whatever backward needs as `saved`. */
  forward(inputs: readonly Tensor[]): { outputs: Tensor[]; saved: S };
  /** Gradients for every input (null where none is needed), given one gradient per output (null when unused). */
  backward(gradOutputs: readonly (Tensor | null)[], saved: S, inputs: readonly Tensor[]): (Tensor | null)[];
}

export function applyCustom<S>(op: CustomOp<S>, inputs: readonly Tensor[]): Tensor[] {
  const { outputs, saved } = noGrad(() => op.forward(inputs));
  record(op.name, inputs, outputs, (g) => op.backward(g, saved, inputs));
  return outputs;
}
