/**
 * The vector execution mode of the tensor ops: the same kernels with the same arguments as the ops in ops/, on flat
 * float32 rows the caller owns (preallocated, no Tensor, no tape, no shape objects). A single-token decode step runs
 * the model's block in this mode (model/step-ops.ts); each function here equals the op named in its comment for a
 * contiguous input of that shape, bit for bit (test/model/decode-step.test.ts checks the whole step).
 */
import { K } from './backend.js';
import { BinaryOp, UnaryOp } from './kernels.js';

const ONE = Int32Array.of(1);
const N1 = new Int32Array(1);
const NONE = new Float32Array(0);

/** out = a + b (add, equal shapes). */
export function vAdd(a: Float32Array, b: Float32Array, out: Float32Array): void {
  N1[0] = out.length;
  K().binary(BinaryOp.Add, a, ONE, b, ONE, N1, out);
}

/** out = a * b (mul, equal shapes). */
export function vMul(a: Float32Array, b: Float32Array, out: Float32Array): void {
  N1[0] = out.length;
  K().binary(BinaryOp.Mul, a, ONE, b, ONE, N1, out);
}

export type VecUnary = 'silu' | 'gelu_tanh' | 'gelu_erf' | 'softplus';
const UNARY: Record<VecUnary, UnaryOp> = { silu: UnaryOp.Silu, gelu_tanh: UnaryOp.GeluTanh, gelu_erf: UnaryOp.GeluErf, softplus: UnaryOp.Softplus };

/** out = f(x) (silu, gelu, geluErf, softplus). */
export function vUnary(f: VecUnary, x: Float32Array, out: Float32Array): void {
  K().unary(UNARY[f], x, out);
}

/** out = x * mul + add (affine). */
export function vAffine(x: Float32Array, mul: number, add: number, out: Float32Array): void {
  K().affine(x, mul, add, out);
}

/** rmsnorm over rows of `width` values (x.length / width rows), gain w (empty: none); rstd: one float per row. */
export function vRmsnorm(x: Float32Array, w: Float32Array, width: number, eps: number, out: Float32Array, rstd: Float32Array): void {
  K().rmsnorm(x, w, x.length / width, width, eps, out, rstd);
}

/** layernorm over rows of w.length values; mean and rstd: one float per row. */
export function vLayernorm(x: Float32Array, w: Float32Array, b: Float32Array | null, eps: number, out: Float32Array,
  mean: Float32Array, rstd: Float32Array): void {
  K().layernorm(x, w, b ?? NONE, x.length / w.length, w.length, eps, out, mean, rstd);
}

/** y (N) = W x for a float32 W (N, K) (linear's product, matmul with transB). */
export function vMatvec(w: Float32Array, N: number, Kd: number, x: Float32Array, y: Float32Array): void {
  K().gemm(0, 1, 1, N, Kd, 1, x, 0, w, 0, 0, y, N, 1);
}

/** y (M, N) = x (M, K) W^T for W (N, K) of 16-bit patterns: 'f16' IEEE half, 'bf16' bfloat16. */
export function vMatvec16(kind: 'f16' | 'bf16', w: Uint16Array, N: number, Kd: number, x: Float32Array, y: Float32Array, M = 1): void {
  if (kind === 'bf16') K().gemmBF16(M, N, Kd, x, w, 0, y);
  else K().gemmF16(M, N, Kd, x, w, 0, y);
}

/** y (M, N) = x (M, K) W^T for W (N, K) in GGUF blocks of ggml type `type` (gemmQ). */
export function vMatvecQ(type: number, w: Uint8Array, N: number, Kd: number, x: Float32Array, y: Float32Array, M = 1): void {
  K().gemmQ(M, N, Kd, x, type, w, y);
}

/** One operand of vMatvecMulti: a weight (N, K) and its output (M, N). */
export interface MultiSlot {
  w: Float32Array | Uint16Array;
  N: number;
  y: Float32Array;
}

/** ys_i = x (M, K) W_i^T for two or three weights of one type (0 float32, 1 f16, 2 bf16) in one kernel call. */
export function vMatvecMulti(M: number, Kd: number, x: Float32Array, dtype: 0 | 1 | 2, slots: readonly MultiSlot[]): void {
  const s = (i: number): [Float32Array | Uint16Array, number, Float32Array] => {
    const o = slots[i];
    return o ? [o.w, o.N, o.y] : [NONE, 0, NONE];
  };
  K().gemmMulti(M, Kd, x, dtype, ...s(0), ...s(1), ...s(2));
}

/** RoPE of one token's heads (rope with B = T = 1). */
export interface RopeArgs {
  heads: number;
  headDim: number;
  /** One absolute position. */
  position: Int32Array;
  invFreq: Float32Array;
  interleaved: boolean;
}

export function vRope(x: Float32Array, out: Float32Array, a: RopeArgs): void {
  K().rope(x, 1, 1, a.heads, a.headDim, a.invFreq.length * 2, a.position, a.invFreq, a.interleaved ? 1 : 0, 1, out);
}

/** Causal attention of one token's Hq query heads over S cached keys of Hkv heads (attention with B = T = 1). */
export interface AttentionArgs {
  S: number;
  Hq: number;
  Hkv: number;
  headDim: number;
  scale: number;
  qOffset: number;
  window: number;
  sinks: number;
  /** Scratch: Hq floats. */
  lse: Float32Array;
}

export function vAttention(q: Float32Array, k: Float32Array, v: Float32Array, out: Float32Array, a: AttentionArgs): void {
  K().attention(q, k, v, 1, 1, a.S, a.Hq, a.Hkv, a.headDim, a.scale, 1, a.qOffset, a.window, a.sinks, out, a.lse, NONE);
}

/** One fused decode step of a layer's recurrent heads for batch 1 (see the ssdStep kernel); win and state in place. */
export interface SsdStepArgs {
  xbc: Float32Array;
  dt: Float32Array;
  win: Float32Array;
  convW: Float32Array;
  convB: Float32Array;
  state: Float32Array;
  aLog: Float32Array;
  d: Float32Array;
  groupOf: Int32Array;
  H: number;
  G: number;
  P: number;
  N: number;
  convK: number;
}

export function vSsdStep(a: SsdStepArgs, y: Float32Array): void {
  K().ssdStep(a.xbc, a.dt, a.win, a.convW, a.convB, a.state, a.aLog, a.d, a.groupOf, 1, a.H, a.G, a.P, a.N, a.convK, y);
}

/** dst row i = src row idx[i], rows of w values (gather along one axis). */
export function vGatherRows(src: Float32Array, idx: Int32Array, w: number, dst: Float32Array): void {
  for (let i = 0; i < idx.length; i++) dst.set(src.subarray(idx[i]! * w, (idx[i]! + 1) * w), i * w);
}
