/** The tensor engine's public surface. Nothing outside src/tensor/ needs to know which backend runs. */
export { Tensor, empty, zeros, ones, full, tensor, scalar, shapeSize, shapeStr, type Shape } from './tensor.js';
export { backward, noGrad, enableGrad, isGradEnabled } from './autograd.js';
export { scope, keep, memoryStats, releasePool, setPoolLimit } from './memory.js';
export { backend, setBackend, getBackend, type Backend, type BackendName } from './backend.js';
export * from './errors.js';
export { Rng } from './rng.js';
export { AdamW, clipGradNorm, gradNorm, cosineSchedule, type AdamWOpts, type AdamWState } from './optim.js';
export * from './ops/view.js';
export * from './ops/elementwise.js';
export * from './ops/reduce.js';
export * from './ops/matmul.js';
export * from './ops/nn.js';
export * from './ops/attention.js';
export * from './ops/custom.js';
export { randn, uniform } from './init.js';
// Plain-number helpers the reference backend is built from, for code outside the engine: one row's log-sum-exp
// (a score from logits) and IEEE half bits <-> number (round to nearest even).
export { rowLogSumExp } from './reference/rows.js';
export { halfToFloat, floatToHalf } from './reference/gemm.js';
