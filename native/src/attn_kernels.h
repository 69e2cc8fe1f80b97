// Micro-kernels of the attention forward and backward passes (the drivers: attn_forward.cpp, attn_backward.cpp).
//
// Every kernel exists twice with identical semantics: an AVX2+FMA version (compiled per function with RF_AVX2)
// and a portable scalar version. attn_kernels() picks the table once, at run time, with rf::pick (common.h), so
// the baseline build runs on any x86-64 and RECURFORMER_SIMD=scalar exercises the fallback. The drivers only see
// this table, which keeps the tiling / masking / online-softmax logic in one place for both instruction sets.
#pragma once
#include <cstdint>

namespace rf {
namespace attn {

struct KernelTable {
  // Dot products of rows: C[m*ldc + n] = sum_{d<D} A[m*lda + d] * B[n*ldb + d] for m < M, n < N.
  // Rows may be strided views into the original (B, T, H, Dh) tensors; reads never go past element D-1 of a row.
  // pfB (may be null): the first of N rows with stride ldb (the next key block) to prefetch while B is consumed.
  void (*dots)(const float* A, int64_t lda, int M, const float* B, int64_t ldb, int N, int D, float* C,
               int64_t ldc, const float* pfB);

  // Product: C[m*ldc + d] = (accumulate ? C[m*ldc + d] : 0) + sum_{n<N} a(m, n) * X[n*ldx + d] for m < M, d < D,
  // with a(m, n) = A[m*ars + n*acs] (so a transposed A is just swapped strides). X and C rows are accessed up to
  // element D-1 only, so C may be rows of a caller's tensor (the backward accumulates straight into gk / gv).
  // pfX (may be null): the first of N rows with stride ldx to prefetch while X is consumed.
  void (*gemm)(const float* A, int64_t ars, int64_t acs, int M, int N, const float* X, int64_t ldx, int D,
               float* C, int64_t ldc, int accumulate, const float* pfX);

  // One online-softmax step on a row of n scores (masked entries are -inf). s must have room for n rounded up
  // to 8. With m, l the running max and sum: turns s into p = exp(s - m_new), updates m and l, and returns
  // alpha = exp(m_old - m_new), the factor the running output must be rescaled by. A row with no finite score
  // is left as zeros with m, l unchanged and alpha = 1.
  float (*softmax_row)(float* s, int n, float* m, float* l);

  // Online-softmax step down the columns of a transposed score block St (n keys x cols query rows, row stride ld,
  // masked entries -inf), vectorised across query rows: for each column c, turns St[:, c] into
  // p = exp(s - m_new), updates m[c], l[c], and sets alpha[c] = exp(m_old - m_new) (1 for a column with no finite
  // score so far). m, l, alpha and the columns up to cols rounded up to 8 are read and written (padding scratch).
  void (*softmax_cols)(float* St, int64_t ld, int n, int cols, float* m, float* l, float* alpha);

  // Backward element-wise step on a (rows x cols) tile with row stride ld, column c belonging to query row c:
  // s <- p = exp(s - lse[c]), dp <- ds = scale * p * (dp - dsum[c]).
  void (*bwd_elem)(float* s, float* dp, int64_t ld, int rows, int cols, const float* lse, const float* dsum,
                   float scale);

  // x[i] *= a for i < n.
  void (*scale)(float* x, int n, float a);

  // out[i] = exp(s[i] - c) for i < n (exp(-inf) = 0).
  void (*exp_shift)(const float* s, int n, float c, float* out);

  const char* name;
};

const KernelTable& attn_kernels();

}  // namespace attn
}  // namespace rf
