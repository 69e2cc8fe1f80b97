// Internal interface between the GEMM driver (gemm.cpp) and its kernel sets: AVX-512 (gemm_avx2.cpp, used
// when the CPU has it), AVX2/FMA/F16C (gemm_avx2.cpp) and portable scalar (gemm_scalar.cpp). The driver picks
// one set with rf::pick (common.h), the dispatch every kernel family follows; each set packs into the panel layout
// of its own register block (mr x nr), and all sets produce the same results up to rounding.
#pragma once
#include "common.h"

namespace rf::gemm {

// The register blocks (rows x columns of C held in registers by one micro-kernel call) the sets use. The
// driver instantiates its tile walk for each, so a set must use one of these.
// AVX2 and scalar: 6 x 16 = 12 ymm accumulators, leaving registers for two B vectors and one A broadcast out
// of 16. AVX-512: 12 x 32 = 24 zmm accumulators plus two B vectors and a broadcast out of 32. Both keep more
// accumulators in flight than FMA latency x FMA ports, and load fewer operands than they multiply per step.
constexpr int kMR256 = 6, kNR256 = 16;
constexpr int kMR512 = 12, kNR512 = 32;

// A strided matrix view: element (i, j) lives at p[i * rs + j * cs]. Every operand the public API can describe
// has rs == 1 or cs == 1; the packers take fast paths for those and fall back to plain loops otherwise.
template <typename T>
struct View {
  const T* p;
  int64_t rs, cs;
  const T* at(int64_t i, int64_t j) const { return p + i * rs + j * cs; }
};
using ViewF = View<float>;
using ViewH = View<uint16_t>;

struct KernelSet {
  const char* name;
  // Register block of the micro-kernel, and the default cache blocking that goes with it: an MC x KC block of
  // A sits in L2, a KC x NR micro-panel of B in L1, the KC x NC panel of B in L3.
  int mr, nr;
  int64_t mc, kc, nc;
  // op(A) rows [0, mc) x cols [0, kc) of `a` -> MR-row panels, layout [panel][k][MR], rows past mc zeroed.
  void (*pack_a)(ViewF a, int64_t mc, int64_t kc, float* dst);
  // op(B) rows [0, kc) x cols [0, nc) -> NR-column panels, layout [panel][k][NR], columns past nc zeroed.
  void (*pack_b)(ViewF b, int64_t kc, int64_t nc, float* dst);
  // Same for a half-precision B, converted to float while packing.
  void (*pack_b_h)(ViewH b, int64_t kc, int64_t nc, float* dst);
  // C[0:MR, 0:NR] = alpha * Apanel . Bpanel + beta * C over kc steps; beta == 0 never reads C.
  void (*micro)(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha, float beta);
  // Dot-form matrix-vector for mx (1..4) activation rows: y[m * ldy + r] = alpha * <w_r, x_m> + beta * y[..]
  // for r < rows, where w_r = w + r * ldw and x_m = x + m * ldx are contiguous over K.
  void (*gemv_dot)(int64_t rows, int64_t K, const float* w, int64_t ldw, const float* x, int64_t ldx, int mx,
                   float* y, int64_t ldy, float alpha, float beta);
  void (*gemv_dot_h)(int64_t rows, int64_t K, const uint16_t* w, int64_t ldw, const float* x, int64_t ldx, int mx,
                     float* y, int64_t ldy, float alpha, float beta);
  // Axpy-form matrix-vector: y[0:n] = alpha * sum_k x[k] * b[k * ldb + 0:n] + beta * y[0:n].
  void (*gemv_axpy)(int64_t K, int64_t n, const float* b, int64_t ldb, const float* x, float* y, float alpha,
                    float beta);
  void (*f32_to_f16)(const float* src, uint16_t* dst, int64_t n);
  void (*f16_to_f32)(const uint16_t* src, float* dst, int64_t n);
};

const KernelSet& avx2_kernels();
const KernelSet& scalar_kernels();
// The AVX-512 set (nullptr in builds for other architectures); rf::pick uses it only where rf::cpu_isa() allows.
const KernelSet* avx512_kernels();

// Writes the mr x nr corner of a computed tile (row stride ldt) into C with alpha / beta.
inline void merge_tile(const float* t, int64_t ldt, int mr, int nr, float* c, int64_t ldc, float alpha,
                       float beta) {
  for (int i = 0; i < mr; ++i)
    for (int j = 0; j < nr; ++j) {
      float v = alpha * t[i * ldt + j];
      c[i * ldc + j] = beta == 0.0f ? v : v + beta * c[i * ldc + j];
    }
}

}  // namespace rf::gemm
