// Portable kernel set: same packed layouts and blocking as the AVX2 set, written as plain loops the compiler
// can vectorize for the baseline ISA. Used when the CPU lacks AVX2/FMA/F16C or RECURFORMER_SIMD=scalar.
#include "gemm_internal.h"

#include <cstring>

namespace rf::gemm {
namespace {

constexpr int MR = kMR256;
constexpr int NR = kNR256;

inline float to_f32(float v) { return v; }
inline float to_f32(uint16_t h) { return rf::half_to_float(h); }

// dst[k * W + i] = src(i, k) for i < rows, zero for rows <= i < W.
template <int W, typename T>
void pack_panels(View<T> v, int64_t rows, int64_t kc, float* dst) {
  for (int64_t i0 = 0; i0 < rows; i0 += W, dst += W * kc) {
    const int64_t n = rows - i0 < W ? rows - i0 : W;
    for (int64_t k = 0; k < kc; ++k)
      for (int i = 0; i < W; ++i) dst[k * W + i] = i < n ? to_f32(*v.at(i0 + i, k)) : 0.0f;
  }
}

void pack_a_scalar(ViewF a, int64_t mc, int64_t kc, float* dst) { pack_panels<MR>(a, mc, kc, dst); }
// B is viewed as (column, k) so the shared packer walks columns as its "rows".
void pack_b_scalar(ViewF b, int64_t kc, int64_t nc, float* dst) {
  pack_panels<NR>(ViewF{b.p, b.cs, b.rs}, nc, kc, dst);
}
void pack_b_h_scalar(ViewH b, int64_t kc, int64_t nc, float* dst) {
  pack_panels<NR>(ViewH{b.p, b.cs, b.rs}, nc, kc, dst);
}

void micro_scalar(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha, float beta) {
  float acc[MR][NR];
  std::memset(acc, 0, sizeof(acc));
  for (int64_t k = 0; k < kc; ++k, a += MR, b += NR)
    for (int i = 0; i < MR; ++i)
      for (int j = 0; j < NR; ++j) acc[i][j] += a[i] * b[j];
  merge_tile(&acc[0][0], NR, MR, NR, c, ldc, alpha, beta);
}

// Eight partial sums per dot product keep the dependency chain short and let the compiler use SIMD lanes.
template <typename T>
float dot(const T* w, const float* x, int64_t K) {
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t k = 0;
  for (; k + 8 <= K; k += 8)
    for (int l = 0; l < 8; ++l) s[l] += to_f32(w[k + l]) * x[k + l];
  float r = ((s[0] + s[1]) + (s[2] + s[3])) + ((s[4] + s[5]) + (s[6] + s[7]));
  for (; k < K; ++k) r += to_f32(w[k]) * x[k];
  return r;
}

template <typename T>
void gemv_dot_t(int64_t rows, int64_t K, const T* w, int64_t ldw, const float* x, int64_t ldx, int mx, float* y,
                int64_t ldy, float alpha, float beta) {
  for (int m = 0; m < mx; ++m)
    for (int64_t r = 0; r < rows; ++r) {
      float v = alpha * dot(w + r * ldw, x + m * ldx, K);
      float* out = y + m * ldy + r;
      *out = beta == 0.0f ? v : v + beta * *out;
    }
}

void gemv_dot_scalar(int64_t rows, int64_t K, const float* w, int64_t ldw, const float* x, int64_t ldx, int mx,
                     float* y, int64_t ldy, float alpha, float beta) {
  gemv_dot_t(rows, K, w, ldw, x, ldx, mx, y, ldy, alpha, beta);
}

void gemv_dot_h_scalar(int64_t rows, int64_t K, const uint16_t* w, int64_t ldw, const float* x, int64_t ldx, int mx,
                       float* y, int64_t ldy, float alpha, float beta) {
  gemv_dot_t(rows, K, w, ldw, x, ldx, mx, y, ldy, alpha, beta);
}

void gemv_axpy_scalar(int64_t K, int64_t n, const float* b, int64_t ldb, const float* x, float* y, float alpha,
                      float beta) {
  constexpr int64_t CH = 1024;
  float acc[CH];
  for (int64_t j0 = 0; j0 < n; j0 += CH) {
    const int64_t w = n - j0 < CH ? n - j0 : CH;
    std::memset(acc, 0, sizeof(float) * static_cast<size_t>(w));
    for (int64_t p = 0; p < K; ++p) {
      const float* row = b + p * ldb + j0;
      const float xp = x[p];
      for (int64_t j = 0; j < w; ++j) acc[j] += xp * row[j];
    }
    for (int64_t j = 0; j < w; ++j) {
      float v = alpha * acc[j];
      y[j0 + j] = beta == 0.0f ? v : v + beta * y[j0 + j];
    }
  }
}

void f32_to_f16_scalar(const float* src, uint16_t* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = rf::float_to_half(src[i]);
}

void f16_to_f32_scalar(const uint16_t* src, float* dst, int64_t n) {
  for (int64_t i = 0; i < n; ++i) dst[i] = rf::half_to_float(src[i]);
}

}  // namespace

const KernelSet& scalar_kernels() {
  static const KernelSet ks = [] {
    KernelSet k{};
    k.name = "scalar";
    k.mr = MR;
    k.nr = NR;
    k.mc = 192;
    k.kc = 384;
    k.nc = 3072;
    k.pack_a = pack_a_scalar;
    k.pack_b = pack_b_scalar;
    k.pack_b_h = pack_b_h_scalar;
    k.micro = micro_scalar;
    k.gemv_dot = gemv_dot_scalar;
    k.gemv_dot_h = gemv_dot_h_scalar;
    k.gemv_axpy = gemv_axpy_scalar;
    k.f32_to_f16 = f32_to_f16_scalar;
    k.f16_to_f32 = f16_to_f32_scalar;
    return k;
  }();
  return ks;
}

}  // namespace rf::gemm
