/** The reference backend: pure TypeScript, obviously correct, the oracle every native kernel is tested against. */
import type { Kernels } from '../kernels.js';
import { attention, attentionGrad } from './attention.js';
import {
  affine, axpy, binary, conv1dCausal, conv1dCausalGrad, copyStrided, cumsum, embedding, embeddingGrad, gather,
  gatherGrad, reduce, ssdStep, sumSquares, unary, unaryGrad,
} from './elementwise.js';
import { bf16ToF32, f16ToF32, f32ToF16, gemm, gemmBF16, gemmF16, gemmMulti } from './gemm.js';
import { dequantQ, gemmQ } from './quant.js';
import {
  adamw, crossEntropy, layernorm, layernormGrad, logSoftmax, logSoftmaxGrad, rmsnorm, rmsnormGrad, rope, softmax,
  softmaxGrad,
} from './rows.js';

export const referenceKernels: Kernels = Object.freeze({
  gemm, gemmF16, gemmBF16, gemmMulti, gemmQ, dequantQ, bf16ToF32, f32ToF16, f16ToF32, unary, unaryGrad, binary, affine, axpy, sumSquares, reduce, copyStrided,
  softmax, softmaxGrad, logSoftmax, logSoftmaxGrad, crossEntropy, embedding, embeddingGrad, rmsnorm, rmsnormGrad,
  layernorm, layernormGrad, rope, attention, attentionGrad, cumsum, gather, gatherGrad, conv1dCausal,
  conv1dCausalGrad, ssdStep, adamw,
});
