/** A node of the autograd tape (autograd.ts): the op that made `outputs` from `inputs`, and its backward. */
export interface GradNode {
  readonly name: string;
  readonly inputs: readonly Tensor[];
  outputs: Tensor[];
  /** Gradients for each input (null where the input needs none), given one gradient per output (null if unused). */
  backward: ((gradOutputs: (Tensor | null)[]) => (Tensor | null)[]) | null;
}

/**
 * Tensor: a float32 view (shape, strides, offset) over a Storage, plus the autograd links.
 *
 * Views (reshape of contiguous data, transpose, slice, unsqueeze) share storage and cost no copy; kernels need
 * contiguous data, so ops call `contiguousData()` which copies only when the view is strided.
 */
import { ArgumentError, ShapeError } from './errors.js';
import { allocStorage, type Storage } from './memory.js';

export type Shape = readonly number[];

export function shapeSize(shape: Shape): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function contiguousStrides(shape: Shape): number[] {
  const s = new Array<number>(shape.length);
  let acc = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    s[i] = acc;
    acc *= shape[i]!;
  }
  return s;
}

export function shapeStr(shape: Shape): string {
  return `[${shape.join(', ')}]`;
}

export class Tensor {
  readonly shape: Shape;
  readonly strides: readonly number[];
  readonly offset: number;
  readonly storage: Storage;
  /** Set on leaves that should receive a gradient (parameters); propagated to op outputs. */
  requiresGrad = false;
  /** Accumulated gradient (contiguous, same shape), or null. */
  grad: Tensor | null = null;
  /** The op that produced this tensor (null for leaves and for tensors made under no-grad). */
  node: GradNode | null = null;
  /** Which output of `node` this tensor is. */
  outputIndex = 0;
  /** Keep `grad` on a non-leaf after backward (leaves always keep theirs). */
  retainGrad = false;
  /** Optional name for error messages and taps (parameters carry their checkpoint name). */
  name: string | undefined;
  /** Number of elements (computed once: decode creates hundreds of small tensors per token). */
  readonly size: number;
  /** isContiguous(), computed on first use (shape and strides never change). */
  private contig: boolean | undefined;

  constructor(storage: Storage, shape: Shape, strides?: readonly number[], offset = 0) {
    let n = 1;
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) {
        throw new ShapeError('Tensor', 'shape', 'non-negative integers', shape);
      }
      n *= d;
    }
    this.storage = storage;
    this.shape = Object.freeze([...shape]);
    this.strides = Object.freeze(strides ? [...strides] : contiguousStrides(shape));
    this.offset = offset;
    this.size = n;
    this.contig = strides ? undefined : true;
  }

  get rank(): number {
    return this.shape.length;
  }

  /** Size of an axis; negative axes count from the end. */
  dim(axis: number): number {
    return this.shape[normAxis(axis, this.rank, 'dim')]!;
  }

  isContiguous(): boolean {
    if (this.contig !== undefined) return this.contig;
    let acc = 1;
    let c = true;
    for (let i = this.rank - 1; i >= 0; i--) {
      if (this.shape[i] !== 1 && this.strides[i] !== acc) {
        c = false;
        break;
      }
      acc *= this.shape[i]!;
    }
    this.contig = c;
    return c;
  }

  /**
   * The elements as a contiguous Float32Array. Zero-copy for contiguous tensors (a subarray of the storage:
   * writes go through to the tensor); throws for strided views, use `contiguousData()` from ops instead.
   */
  get data(): Float32Array {
    if (!this.isContiguous()) {
      throw new ArgumentError('Tensor.data', 'tensor', `is a strided view of shape ${shapeStr(this.shape)}`,
        'call contiguous(t) first');
    }
    const d = this.storage.data;
    if (this.offset === 0 && this.size === d.length) return d;
    return d.subarray(this.offset, this.offset + this.size);
  }

  /** The single value of a one-element tensor. */
  item(): number {
    if (this.size !== 1) throw new ShapeError('item', 'tensor', 'one element', this.shape);
    return this.storage.data[this.offset]!;
  }

  /** A copy of the elements in row-major order (for tests and reports). */
  toArray(): number[] {
    const out: number[] = [];
    const idx = new Array<number>(this.rank).fill(0);
    const n = this.size;
    for (let k = 0; k < n; k++) {
      let o = this.offset;
      for (let d = 0; d < this.rank; d++) o += idx[d]! * this.strides[d]!;
      out.push(this.storage.data[o]!);
      for (let d = this.rank - 1; d >= 0; d--) {
        if (++idx[d]! < this.shape[d]!) break;
        idx[d] = 0;
      }
    }
    return out;
  }

  toString(): string {
    return `Tensor${shapeStr(this.shape)}${this.name ? ` "${this.name}"` : ''}`;
  }

  /** Marks this tensor as a trainable leaf and returns it. */
  param(name?: string): this {
    this.requiresGrad = true;
    if (name !== undefined) this.name = name;
    return this;
  }

  /** A leaf view of the same storage, detached from the graph. */
  detach(): Tensor {
    return new Tensor(this.storage, this.shape, this.strides, this.offset);
  }

  /** Drops the gradient (optimizers call this after a step). */
  zeroGrad(): void {
    this.grad = null;
  }
}

export function normAxis(axis: number, rank: number, op: string): number {
  const a = axis < 0 ? axis + rank : axis;
  if (!Number.isInteger(a) || a < 0 || a >= rank) {
    throw new ArgumentError(op, 'axis', `${axis} is out of range for rank ${rank}`);
  }
  return a;
}

/** A new contiguous tensor of the given shape; its contents are unspecified unless `fill` is given. */
export function empty(shape: Shape): Tensor {
  return new Tensor(allocStorage(shapeSize(shape)), shape);
}

export function zeros(shape: Shape): Tensor {
  const t = empty(shape);
  t.storage.data.fill(0);
  return t;
}

export function full(shape: Shape, value: number): Tensor {
  const t = empty(shape);
  t.storage.data.fill(value);
  return t;
}

export function ones(shape: Shape): Tensor {
  return full(shape, 1);
}

/** Wraps (without copying) or copies data into a tensor of the given shape. */
export function tensor(data: Float32Array | readonly number[], shape?: Shape): Tensor {
  const arr = data instanceof Float32Array ? data : Float32Array.from(data);
  const sh = shape ?? [arr.length];
  if (shapeSize(sh) !== arr.length) {
    throw new ShapeError('tensor', 'data', `${shapeSize(sh)} elements for shape ${shapeStr(sh)}`, `${arr.length} elements`);
  }
  return new Tensor({ data: arr }, sh);
}

export function scalar(v: number): Tensor {
  return tensor(Float32Array.of(v), []);
}
