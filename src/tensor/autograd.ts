/**
 * Reverse-mode autograd on a tape of GradNodes.
 *
 * Each op that has an input requiring grad (and runs while grad is enabled) creates one node holding its inputs,
 * its outputs and a backward function mapping output gradients to input gradients. `backward(loss)` orders the
 * nodes reachable from the loss topologically and runs them once each, newest first, accumulating gradients into
 * `tensor.grad`. Backward functions run with grad disabled (no higher-order gradients). Gradients of non-leaf
 * tensors are dropped once consumed unless `retainGrad` is set, so peak memory stays near the forward's.
 */
import { AutogradError, ShapeError } from './errors.js';
import { K } from './backend.js';
import { Tensor, shapeStr, zeros } from './tensor.js';

export type { GradNode } from './tensor.js';
import type { GradNode } from './tensor.js';

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs fn without recording the tape (inference, optimizer steps, backward itself). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Runs fn with recording enabled even inside a noGrad region. */
export function enableGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = true;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** True when an op with these inputs must record a node. */
export function needsGrad(inputs: readonly (Tensor | null | undefined)[]): boolean {
  if (!gradEnabled) return false;
  for (const t of inputs) if (t && t.requiresGrad) return true;
  return false;
}

/**
 * Links outputs to a new node when any input requires grad. `backward` must return one entry per input,
 * each contiguous with that input's shape (or null).
 */
export function record(
  name: string,
  inputs: readonly Tensor[],
  outputs: Tensor[],
  backward: (gradOutputs: (Tensor | null)[]) => (Tensor | null)[],
): void {
  if (!needsGrad(inputs)) return;
  const node: GradNode = { name, inputs, outputs, backward };
  outputs.forEach((o, i) => {
    o.requiresGrad = true;
    o.node = node;
    o.outputIndex = i;
  });
}

function accumulate(t: Tensor, g: Tensor, owned: boolean, op: string): void {
  if (g.size !== t.size) {
    throw new ShapeError(`${op} backward`, 'gradient', shapeStr(t.shape), g.shape,
      'a backward function returned a gradient of the wrong shape');
  }
  if (t.grad === null) {
    // Take the buffer when nobody else holds it; otherwise copy so later accumulation cannot alias.
    if (owned && g.isContiguous()) {
      t.grad = g.shape.length === t.shape.length && g.shape.every((d, i) => d === t.shape[i])
        ? g : new Tensor(g.storage, t.shape, undefined, g.offset);
    } else {
      const c = zeros(t.shape);
      K().axpy(1, contiguousView(g), c.data);
      t.grad = c;
    }
  } else {
    K().axpy(1, contiguousView(g), t.grad.data);
  }
}

function contiguousView(g: Tensor): Float32Array {
  if (g.isContiguous()) return g.data;
  throw new AutogradError(`gradient of shape ${shapeStr(g.shape)} is not contiguous`,
    'backward functions must return contiguous gradients');
}

/** Nodes reachable from root, in an order where every node comes after the nodes consuming its outputs. */
function topoOrder(root: Tensor): GradNode[] {
  const order: GradNode[] = [];
  const visited = new Set<GradNode>();
  // Iterative DFS (models have thousands of nodes; recursion depth would overflow on long graphs).
  const stack: [GradNode, number][] = [];
  if (root.node) stack.push([root.node, 0]);
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    const [node, i] = top;
    if (i === 0 && visited.has(node)) {
      stack.pop();
      continue;
    }
    visited.add(node);
    if (i < node.inputs.length) {
      top[1] = i + 1;
      const child = node.inputs[i]!.node;
      if (child && !visited.has(child)) stack.push([child, 0]);
    } else {
      stack.pop();
      order.push(node);
    }
  }
  return order.reverse();
}

/**
 * Backpropagates from `root`. A scalar root gets gradient 1; a non-scalar root needs `grad` of its shape.
 */
export function backward(root: Tensor, grad?: Tensor): void {
  if (!root.requiresGrad) {
    throw new AutogradError('backward: the tensor does not require grad',
      'mark parameters with .param() (or requiresGrad = true) before the forward pass');
  }
  if (grad === undefined && root.size !== 1) {
    throw new AutogradError(`backward: root has shape ${shapeStr(root.shape)}; pass a gradient for non-scalar roots`);
  }
  noGrad(() => {
    const seed = grad ?? zeros(root.shape);
    if (grad === undefined) seed.data[0] = 1;
    accumulate(root, seed, grad === undefined, 'backward');
    const order = topoOrder(root);
    for (const node of order) {
      if (!node.backward) {
        throw new AutogradError(`backward: the graph through ${node.name} was already freed`,
          'call backward once per forward pass');
      }
      const gOut = node.outputs.map((o) => o.grad);
      if (gOut.every((g) => g === null)) continue;
      const gIn = node.backward(gOut);
      // Free consumed gradients of intermediates.
      for (const o of node.outputs) if (!o.retainGrad) o.grad = null;
      const seen = new Set<unknown>();
      for (const g of gOut) if (g) seen.add(g.storage);
      node.inputs.forEach((inp, k) => {
        const g = gIn[k];
        if (!g || !inp.requiresGrad) return;
        const owned = !seen.has(g.storage);
        seen.add(g.storage);
        accumulate(inp, g, owned, node.name);
      });
      node.backward = null;
    }
  });
}
