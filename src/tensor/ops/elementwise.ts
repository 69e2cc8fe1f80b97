/** Element-wise ops with broadcasting, and their gradients. */
import { record } from '../autograd.js';
import { K } from '../backend.js';
import { ShapeError } from '../errors.js';
import { BinaryOp, ReduceOp, UnaryOp } from '../kernels.js';
import { Tensor, empty, shapeStr, scalar, zeros, type Shape } from '../tensor.js';
import { contiguousData, reshape } from './view.js';

/** Numpy broadcasting of two shapes; throws a ShapeError naming the op. */
export function broadcastShapes(a: Shape, b: Shape, op: string): number[] {
  const r = Math.max(a.length, b.length);
  const out = new Array<number>(r);
  for (let i = 0; i < r; i++) {
    const da = a[a.length - r + i] ?? 1, db = b[b.length - r + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new ShapeError(op, 'b', `a shape broadcastable with ${shapeStr(a)}`, b);
    }
    out[i] = da === 1 ? db : da;
  }
  return out;
}

/** Strides of t viewed with `shape` (right-aligned), 0 on broadcast axes. */
function broadcastStrides(t: Tensor, shape: Shape): Int32Array {
  const r = shape.length;
  const s = new Int32Array(r);
  for (let i = 0; i < r; i++) {
    const k = t.rank - r + i;
    s[i] = k < 0 || t.shape[k] === 1 ? 0 : t.strides[k]!;
  }
  return s;
}

/** Sums a gradient of shape `g.shape` down to `shape` (undoing broadcasting). */
export function sumTo(g: Tensor, shape: Shape): Tensor {
  if (g.shape.length === shape.length && g.shape.every((d, i) => d === shape[i])) return g;
  let cur = g;
  const lead = g.rank - shape.length;
  // collapse leading axes that the target lacks
  if (lead > 0) {
    const outerN = g.shape.slice(0, lead).reduce((x, y) => x * y, 1);
    const rest = g.shape.slice(lead);
    const restN = rest.reduce((x, y) => x * y, 1);
    const out = empty(rest);
    K().reduce(ReduceOp.Sum, contiguousData(cur), 1, outerN, restN, out.data);
    cur = out;
  }
  for (let ax = 0; ax < shape.length; ax++) {
    if (shape[ax] === 1 && cur.shape[ax] !== 1) {
      const outer = cur.shape.slice(0, ax).reduce((x, y) => x * y, 1);
      const inner = cur.shape.slice(ax + 1).reduce((x, y) => x * y, 1);
      const nshape = [...cur.shape];
      nshape[ax] = 1;
      const out = empty(nshape);
      K().reduce(ReduceOp.Sum, contiguousData(cur), outer, cur.shape[ax]!, inner, out.data);
      cur = out;
    }
  }
  return cur;
}

const ONE = Int32Array.of(1);
/** The flat size of a same-shape binary op (kernels read it synchronously, so one array serves every call). */
const FLAT = new Int32Array(1);

function sameShape(a: Shape, b: Shape): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function binaryRaw(op: BinaryOp, a: Tensor, b: Tensor, name: string): Tensor {
  // the common case (residual adds, gates): equal shapes, both contiguous, no broadcasting to work out
  const shape = sameShape(a.shape, b.shape) ? a.shape : broadcastShapes(a.shape, b.shape, name);
  const out = empty(shape);
  const sameContig = a.isContiguous() && b.isContiguous() && a.size === out.size && b.size === out.size;
  if (sameContig) {
    FLAT[0] = out.size;
    K().binary(op, a.data, ONE, b.data, ONE, FLAT, out.data);
  } else {
    const rank0 = shape.length === 0;
    const aS = rank0 ? Int32Array.of(0) : broadcastStrides(a, shape);
    const bS = rank0 ? Int32Array.of(0) : broadcastStrides(b, shape);
    // Kernels index from the start of the array: pass subarrays that begin at each view's offset.
    K().binary(op, a.storage.data.subarray(a.offset), aS, b.storage.data.subarray(b.offset), bS,
      Int32Array.from(shape.length ? shape : [1]), out.data);
  }
  return out;
}

function asTensor(x: Tensor | number): Tensor {
  return typeof x === 'number' ? scalar(x) : x;
}

export function add(a: Tensor | number, b: Tensor | number): Tensor {
  const A = asTensor(a), B = asTensor(b);
  const out = binaryRaw(BinaryOp.Add, A, B, 'add');
  record('add', [A, B], [out], ([g]) => [
    A.requiresGrad ? sumTo(g!, A.shape) : null,
    B.requiresGrad ? sumTo(g!, B.shape) : null,
  ]);
  return out;
}

export function sub(a: Tensor | number, b: Tensor | number): Tensor {
  const A = asTensor(a), B = asTensor(b);
  const out = binaryRaw(BinaryOp.Sub, A, B, 'sub');
  record('sub', [A, B], [out], ([g]) => [
    A.requiresGrad ? sumTo(g!, A.shape) : null,
    B.requiresGrad ? sumTo(neg(g!), B.shape) : null,
  ]);
  return out;
}

export function mul(a: Tensor | number, b: Tensor | number): Tensor {
  const A = asTensor(a), B = asTensor(b);
  const out = binaryRaw(BinaryOp.Mul, A, B, 'mul');
  record('mul', [A, B], [out], ([g]) => [
    A.requiresGrad ? sumTo(binaryRaw(BinaryOp.Mul, g!, B, 'mul'), A.shape) : null,
    B.requiresGrad ? sumTo(binaryRaw(BinaryOp.Mul, g!, A, 'mul'), B.shape) : null,
  ]);
  return out;
}

export function div(a: Tensor | number, b: Tensor | number): Tensor {
  const A = asTensor(a), B = asTensor(b);
  const out = binaryRaw(BinaryOp.Div, A, B, 'div');
  record('div', [A, B], [out], ([g]) => [
    A.requiresGrad ? sumTo(binaryRaw(BinaryOp.Div, g!, B, 'div'), A.shape) : null,
    // d(a/b)/db = -(a/b)/b = -out/b
    B.requiresGrad ? sumTo(neg(binaryRaw(BinaryOp.Div, binaryRaw(BinaryOp.Mul, g!, out, 'div'), B, 'div')), B.shape) : null,
  ]);
  return out;
}

/** Element-wise maximum (gradient to the larger operand; ties go to a). */
export function maximum(a: Tensor, b: Tensor): Tensor {
  const out = binaryRaw(BinaryOp.Max, a, b, 'maximum');
  record('maximum', [a, b], [out], ([g]) => {
    const gd = g!.data;
    const ga = empty(out.shape), gb = empty(out.shape);
    const ab = binaryRaw(BinaryOp.Add, a, zeros(out.shape), 'maximum').data;
    const od = out.data;
    for (let i = 0; i < od.length; i++) {
      const isA = ab[i] === od[i];
      ga.data[i] = isA ? gd[i]! : 0;
      gb.data[i] = isA ? 0 : gd[i]!;
    }
    return [a.requiresGrad ? sumTo(ga, a.shape) : null, b.requiresGrad ? sumTo(gb, b.shape) : null];
  });
  return out;
}

function unaryOp(op: UnaryOp, name: string, x: Tensor): Tensor {
  const out = empty(x.shape);
  const xd = contiguousData(x);
  K().unary(op, xd, out.data);
  record(name, [x], [out], ([g]) => {
    const gx = empty(x.shape);
    K().unaryGrad(op, xd, out.data, g!.data, gx.data);
    return [gx];
  });
  return out;
}

export const neg = (x: Tensor): Tensor => unaryOp(UnaryOp.Neg, 'neg', x);
export const exp = (x: Tensor): Tensor => unaryOp(UnaryOp.Exp, 'exp', x);
export const log = (x: Tensor): Tensor => unaryOp(UnaryOp.Log, 'log', x);
export const sqrt = (x: Tensor): Tensor => unaryOp(UnaryOp.Sqrt, 'sqrt', x);
export const rsqrt = (x: Tensor): Tensor => unaryOp(UnaryOp.Rsqrt, 'rsqrt', x);
export const silu = (x: Tensor): Tensor => unaryOp(UnaryOp.Silu, 'silu', x);
/** GELU, tanh approximation (GPT-2's "gelu_new"). */
export const gelu = (x: Tensor): Tensor => unaryOp(UnaryOp.GeluTanh, 'gelu', x);
/** GELU with the exact erf form. */
export const geluErf = (x: Tensor): Tensor => unaryOp(UnaryOp.GeluErf, 'geluErf', x);
export const sigmoid = (x: Tensor): Tensor => unaryOp(UnaryOp.Sigmoid, 'sigmoid', x);
export const softplus = (x: Tensor): Tensor => unaryOp(UnaryOp.Softplus, 'softplus', x);
export const relu = (x: Tensor): Tensor => unaryOp(UnaryOp.Relu, 'relu', x);
export const square = (x: Tensor): Tensor => unaryOp(UnaryOp.Square, 'square', x);
export const abs = (x: Tensor): Tensor => unaryOp(UnaryOp.Abs, 'abs', x);
export const tanh = (x: Tensor): Tensor => unaryOp(UnaryOp.Tanh, 'tanh', x);

/** y = x * mul + add with scalar constants. */
export function affine(x: Tensor, mulBy: number, addTo = 0): Tensor {
  const out = empty(x.shape);
  K().affine(contiguousData(x), mulBy, addTo, out.data);
  record('affine', [x], [out], ([g]) => {
    const gx = empty(x.shape);
    K().affine(g!.data, mulBy, 0, gx.data);
    return [gx];
  });
  return out;
}

export const scale = (x: Tensor, s: number): Tensor => affine(x, s, 0);

/** Reshape helper re-exported for convenience in model code. */
export { reshape };
