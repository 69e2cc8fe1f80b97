/**
 * The kernel interface: the only contract between the tensor front end (Tensor, autograd, ops) and a backend.
 *
 * Every kernel works on flat, contiguous, row-major typed arrays plus explicit sizes. Positional arguments only
 * (typed arrays and numbers), so the native addon exports functions with exactly these names and signatures and
 * backend.ts puts them in the kernel table as they are, without adapters. A backend may leave a kernel out; the
 * table then holds the reference implementation (see backend.ts). Unless a kernel says "accumulates", it
 * overwrites its outputs.
 *
 * Glossary of sizes used below:
 *   rows, n      a (rows, n) matrix: `n` is the contiguous (last) axis
 *   outer, n, inner   a tensor viewed as (outer, n, inner); the kernel works along the middle axis
 *   B, T, S      batch, query length, key length
 *   Hq, Hkv, Dh  query heads, key/value heads (GQA: Hq % Hkv == 0, nRep = Hq / Hkv), head dimension
 */

export type F32 = Float32Array;
export type I32 = Int32Array;
/** IEEE half floats, bit patterns in a Uint16Array. */
export type F16 = Uint16Array;
/** Raw bytes: quantized weight blocks (gemmQ, dequantQ). */
export type U8 = Uint8Array;

/** Unary element-wise functions. The numbering is shared with the native addon (native/src/elementwise.cpp). */
export enum UnaryOp {
  Neg = 0,
  Exp = 1,
  Log = 2,
  Sqrt = 3,
  Rsqrt = 4,
  Silu = 5,
  GeluTanh = 6,
  GeluErf = 7,
  Sigmoid = 8,
  Softplus = 9,
  Relu = 10,
  Square = 11,
  Abs = 12,
  Tanh = 13,
}

/** Binary element-wise functions (broadcasting is expressed with strides, see `binary`). */
export enum BinaryOp {
  Add = 0,
  Sub = 1,
  Mul = 2,
  Div = 3,
  Max = 4,
  Min = 5,
}

/** Reductions along the middle axis of an (outer, n, inner) view. */
export enum ReduceOp {
  Sum = 0,
  Mean = 1,
  Max = 2,
  LogSumExp = 3,
  Min = 4,
}

export interface Kernels {
  /**
   * Batched GEMM. For b in [0, batch): C_b = alpha * op(A_b) @ op(B_b) + beta * C_b, with
   * op(A_b) of shape (M, K) and op(B_b) of shape (K, N), C_b of shape (M, N) row-major.
   * A_b starts at a[b * strideA] and is stored (M, K) row-major, or (K, M) row-major when transA = 1.
   * B_b starts at b[b * strideB] and is stored (K, N) row-major, or (N, K) row-major when transB = 1.
   * C_b starts at c[b * strideC]. A stride of 0 broadcasts that operand over the batch.
   * beta = 0 means C is not read (NaNs in C do not propagate).
   */
  gemm(
    transA: number, transB: number, M: number, N: number, K: number, alpha: number,
    a: F32, strideA: number, b: F32, strideB: number, beta: number, c: F32, strideC: number, batch: number,
  ): void;

  /**
   * C = A @ W^T + beta * C with W stored in half precision as (N, K) row-major (the nn.Linear layout), A (M, K)
   * float32, C (M, N). With M = 1 this is the decode matrix-vector product reading 2 bytes per weight.
   */
  gemmF16(M: number, N: number, K: number, a: F32, w: F16, beta: number, c: F32): void;

  /**
   * C = A @ W^T + beta * C with W (N, K) stored as bfloat16 bit patterns (the top half of an IEEE float), for
   * decode with BF16 checkpoints kept 16-bit in memory.
   */
  gemmBF16(M: number, N: number, K: number, a: F32, w: F16, beta: number, c: F32): void;
  /**
   * Up to three products of one activation in one call (decode: q/k/v, gate/up): C_i (M, N_i) = A (M, K) @ W_i^T
   * for every slot with N_i > 0, W_i (N_i, K) row-major, as float32 (dtype 0, F32 arrays) or as F16 (1) / BF16
   * (2) bit patterns (Uint16Array). Unused slots pass N_i = 0 (their arrays are not read). Results equal those of separate
   * gemm (transB) / gemmF16 / gemmBF16 calls; the native kernel splits the rows of all the weights over its
   * threads in one hand-off instead of one per product.
   */
  gemmMulti(M: number, K: number, a: F32, dtype: number, w0: F32 | F16, n0: number, c0: F32, w1: F32 | F16, n1: number,
    c1: F32, w2: F32 | F16, n2: number, c2: F32): void;

  /**
   * C (M, N) = A (M, K) @ W^T with W (N, K) stored in GGUF blocks of `type` (ggml's type ids: 8 Q8_0, 12 Q4_K,
   * 13 Q5_K, 14 Q6_K; layouts in src/io/kquants.ts), rows one after another, K a multiple of the block (32 or 256
   * values). W is the exact dequantized weight (dequantQ); each row of A is first rounded to 8 bits as the integer
   * dot products read it, in llama.cpp's activation formats: per block of 32 values for Q8_0 weights,
   * d = f16(amax / 127) and q = round(x * 127 / amax); per block of 256 for the K-quants, with m the first value of
   * largest magnitude, iscale = -128 / m, q = min(127, round(x * iscale)), d = 1 / iscale (float32, rounding half
   * to even); A's row is taken as q * d. Rows of C do not depend on how many rows are computed together. Overwrites C.
   */
  gemmQ(M: number, N: number, K: number, a: F32, type: number, w: U8, c: F32): void;

  /** Rows [r0, r0 + n) of a weight in blocks of `type` (gemmQ), rows of K values, dequantized exactly into dst. */
  dequantQ(type: number, w: U8, K: number, r0: number, n: number, dst: F32): void;

  /** bfloat16 bits -> float32 (exact). */
  bf16ToF32(src: F16, dst: F32): void;

  /** Convert float32 -> half (round to nearest even) and back. */
  f32ToF16(src: F32, dst: F16): void;
  f16ToF32(src: F16, dst: F32): void;

  /** y[i] = f(x[i]) for i < x.length. y may alias x. */
  unary(op: UnaryOp, x: F32, y: F32): void;
  /** gx[i] = gy[i] * f'(x[i]); `y` holds f(x) (kernels may use it, e.g. exp, sigmoid). */
  unaryGrad(op: UnaryOp, x: F32, y: F32, gy: F32, gx: F32): void;

  /**
   * out[idx] = a[aIdx] (op) b[bIdx] over an N-d index space `shape` (rank <= 8); aStrides / bStrides give the
   * element stride of each axis in a / b (0 on broadcast axes). out is contiguous with that shape.
   */
  binary(op: BinaryOp, a: F32, aStrides: I32, b: F32, bStrides: I32, shape: I32, out: F32): void;
  /** y[i] = x[i] * mul + add. y may alias x. */
  affine(x: F32, mul: number, add: number, y: F32): void;
  /** y[i] += alpha * x[i] (accumulates). */
  axpy(alpha: number, x: F32, y: F32): void;
  /** Sum of x[i]^2 in float64, returned as a number (gradient-norm clipping). */
  sumSquares(x: F32): number;

  /** y[o, i] = reduce over j < n of x[o, j, i]; y has outer * inner elements. */
  reduce(op: ReduceOp, x: F32, outer: number, n: number, inner: number, y: F32): void;

  /**
   * Copies an arbitrary strided view into a contiguous array: dst[idx] = src[offset + sum_d idx_d * strides_d]
   * for every index of `shape` (rank <= 8).
   */
  copyStrided(src: F32, offset: number, strides: I32, shape: I32, dst: F32): void;

  /** Row softmax of a (rows, n) matrix. */
  softmax(x: F32, rows: number, n: number, y: F32): void;
  /** gx = y * (gy - sum(gy * y)) per row. */
  softmaxGrad(y: F32, gy: F32, rows: number, n: number, gx: F32): void;
  /** Row log-softmax. */
  logSoftmax(x: F32, rows: number, n: number, y: F32): void;
  /** gx = gy - exp(y) * sum(gy) per row (y = log-softmax output). */
  logSoftmaxGrad(y: F32, gy: F32, rows: number, n: number, gx: F32): void;

  /**
   * Fused cross-entropy over logits (rows, V) with integer targets: losses[r] = logsumexp(x_r) - x_r[t_r], or 0
   * where t_r == ignoreIndex. When dlogits has length > 0 it receives (softmax(x_r) - onehot(t_r)) * gradScale
   * (zero rows for ignored targets). Targets outside [0, V) other than ignoreIndex must be rejected by the caller.
   */
  crossEntropy(logits: F32, targets: I32, rows: number, V: number, ignoreIndex: number, losses: F32,
    dlogits: F32, gradScale: number): void;

  /** out[r, :] = w[ids[r], :] for a (V, D) table. Caller guarantees 0 <= ids[r] < V. */
  embedding(w: F32, ids: I32, D: number, out: F32): void;
  /** gw[ids[r], :] += gout[r, :] (accumulates; repeated ids add up). */
  embeddingGrad(gout: F32, ids: I32, D: number, gw: F32): void;

  /** y = x * rstd * w per row of (rows, D), rstd[r] = 1 / sqrt(mean(x_r^2) + eps) is written out. */
  rmsnorm(x: F32, w: F32, rows: number, D: number, eps: number, y: F32, rstd: F32): void;
  /** gx overwritten; gw accumulates. `w` may be an empty array meaning "no weight" (gw ignored). */
  rmsnormGrad(x: F32, w: F32, rstd: F32, gy: F32, rows: number, D: number, gx: F32, gw: F32): void;
  /** y = (x - mean) * rstd * w + b per row; mean and rstd written out. Empty w / b mean none. */
  layernorm(x: F32, w: F32, b: F32, rows: number, D: number, eps: number, y: F32, mean: F32, rstd: F32): void;
  /** gx overwritten; gw and gb accumulate. */
  layernormGrad(x: F32, w: F32, mean: F32, rstd: F32, gy: F32, rows: number, D: number, gx: F32, gw: F32,
    gb: F32): void;

  /**
   * Rotary position embedding on x of shape (B, T, H, Dh), positions[t] (length T) the absolute position of
   * each time step, invFreq (length rotDim / 2) the angular frequency of each pair (theta and any rope scaling
   * are folded into it by the caller). Only the first rotDim features rotate; the rest are copied.
   * interleaved = 1: pairs (2i, 2i+1) (llama2.c / GGUF / Meta layout); 0: rotate-half pairs (i, i + rotDim/2)
   * (Hugging Face layout). sign = +1 rotates forward, -1 applies the inverse rotation (the backward pass).
   * y may alias x.
   */
  rope(x: F32, B: number, T: number, H: number, Dh: number, rotDim: number, positions: I32, invFreq: F32,
    interleaved: number, sign: number, y: F32): void;

  /**
   * Fused causal multi-head attention with online softmax (no T x S matrix unless probs is requested).
   * q: (B, T, Hq, Dh); k, v: (B, S, Hkv, Dh); o: (B, T, Hq, Dh); lse: (B, Hq, T) log-sum-exp of each row's
   * scaled scores (needed by the backward pass). Query i sits at absolute key position qOffset + i.
   * Key j is visible to query i iff (causal == 0 or j <= qOffset + i) and
   *   (window <= 0 or j > qOffset + i - window or j < sinks).
   * A query that sees no key gets o = 0 and lse = -Infinity.
   * probs: empty, or (B, Hq, T, S) receiving the attention probabilities (0 where masked).
   */
  attention(q: F32, k: F32, v: F32, B: number, T: number, S: number, Hq: number, Hkv: number, Dh: number,
    scale: number, causal: number, qOffset: number, window: number, sinks: number, o: F32, lse: F32, probs: F32): void;

  /** Gradients of `attention` given go = dL/do; gq, gk, gv overwritten. Same masking parameters. */
  attentionGrad(q: F32, k: F32, v: F32, o: F32, lse: F32, go: F32, B: number, T: number, S: number, Hq: number,
    Hkv: number, Dh: number, scale: number, causal: number, qOffset: number, window: number, sinks: number,
    gq: F32, gk: F32, gv: F32): void;

  /** Inclusive cumulative sum along the middle axis of (outer, n, inner); reverse = 1 sums from the end. */
  cumsum(x: F32, outer: number, n: number, inner: number, reverse: number, y: F32): void;

  /** out[o, j, i] = x[o, idx[j], i] for x (outer, n, inner), out (outer, idx.length, inner). */
  gather(x: F32, outer: number, n: number, inner: number, idx: I32, out: F32): void;
  /** gx[o, idx[j], i] += gout[o, j, i] (accumulates). */
  gatherGrad(gout: F32, outer: number, n: number, inner: number, idx: I32, gx: F32): void;

  /**
   * Depthwise causal conv1d: x (B, T, C), w (C, K), bias (C) or empty;
   * y[b, t, c] = bias[c] + sum_{k<K} w[c, k] * x[b, t - (K-1) + k, c] (zero for negative time).
   */
  conv1dCausal(x: F32, w: F32, bias: F32, B: number, T: number, C: number, K: number, y: F32): void;
  /** gx overwritten; gw and gbias accumulate (gbias may be empty). */
  conv1dCausalGrad(x: F32, w: F32, gy: F32, B: number, T: number, C: number, K: number, gx: F32, gw: F32,
    gbias: F32): void;

  /**
   * One decode step of the recurrent (SSD) heads of a layer, fused (inference only). Channels C = H*P + G*N + H*N
   * hold [x | B (per group) | C (per head)] before the conv. For each batch item b:
   *   conv[c] = silu(bias[c] + sum_{k<K-1} w[c,k] * win[b,k,c] + w[c,K-1] * xbc[b,c]);  win' = last K-1 inputs
   *   per head h (group groupOf[h]): a = exp(-exp(aLog[h]) * dt[b,h]);
   *   S'[b,h] = a * S[b,h] + dt[b,h] * x_h B_g^T  (P x N);  y[b,h,:] = S'[b,h] C_h + d[h] * x_h
   * xbc (B, C), dt (B, H) (already softplus'd), win (B, K-1, C) read and written in place, S (B, H, P, N) in place,
   * y (B, H*P) written.
   */
  ssdStep(xbc: F32, dt: F32, win: F32, convW: F32, convB: F32, S: F32, aLog: F32, d: F32, groupOf: I32,
    B: number, H: number, G: number, P: number, N: number, K: number, y: F32): void;

  /**
   * One AdamW step on a flat parameter (decoupled weight decay): m = b1 m + (1-b1) g; v = b2 v + (1-b2) g^2;
   * p -= lr * (m / bc1 / (sqrt(v / bc2) + eps) + wd * p), with bc1 = 1 - b1^t and bc2 = 1 - b2^t given.
   */
  adamw(p: F32, g: F32, m: F32, v: F32, lr: number, b1: number, b2: number, eps: number, wd: number,
    bc1: number, bc2: number): void;
}

/** Names of all kernels, used to check that a backend (or the addon) is complete. */
export const KERNEL_NAMES = [
  'gemm', 'gemmF16', 'gemmBF16', 'gemmMulti', 'gemmQ', 'dequantQ', 'bf16ToF32', 'f32ToF16', 'f16ToF32', 'unary', 'unaryGrad', 'binary', 'affine', 'axpy', 'sumSquares',
  'reduce', 'copyStrided', 'softmax', 'softmaxGrad', 'logSoftmax', 'logSoftmaxGrad', 'crossEntropy', 'embedding',
  'embeddingGrad', 'rmsnorm', 'rmsnormGrad', 'layernorm', 'layernormGrad', 'rope', 'attention', 'attentionGrad',
  'cumsum', 'gather', 'gatherGrad', 'conv1dCausal', 'conv1dCausalGrad', 'ssdStep', 'adamw',
] as const satisfies readonly (keyof Kernels)[];
