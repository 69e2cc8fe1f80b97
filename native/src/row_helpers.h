// Row helpers shared by the row-wise kernels (softmax.cpp, norms.cpp): max, sum of exp, dot products and scaling
// over one row, in float vector lanes per block of kBlock elements with block totals added in double, so the error
// does not grow with the row length (vocabulary-sized rows).
#pragma once
#include "ew_simd.h"

#include <algorithm>
#include <cmath>

namespace rf {
namespace rows {

using namespace rf::ew;

constexpr int64_t kBlock = 512;

// ---- scalar row helpers (double accumulation throughout) -------------------------------------------------------

inline float row_max_s(const float* x, int64_t n) {
  float m = -INFINITY;
  for (int64_t j = 0; j < n; ++j) m = std::max(m, x[j]);
  return m;
}

template <bool STORE>
inline double sumexp_s(const float* x, float m, float* y, int64_t n) {
  double s = 0;
  for (int64_t j = 0; j < n; ++j) {
    float e = std::exp(x[j] - m);
    if (STORE) y[j] = e;
    s += e;
  }
  return s;
}

inline double dot_s(const float* a, const float* b, int64_t n) {
  double s = 0;
  for (int64_t j = 0; j < n; ++j) s += static_cast<double>(a[j]) * b[j];
  return s;
}

inline double sum_s(const float* a, int64_t n) {
  double s = 0;
  for (int64_t j = 0; j < n; ++j) s += a[j];
  return s;
}

#if RF_X86
// ---- AVX2 row helpers ----------------------------------------------------------------------------------------

RF_AVX2 inline __m256d widen_add(__m256d acc, __m256 v) {
  acc = _mm256_add_pd(acc, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
  return _mm256_add_pd(acc, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
}

// Row max. NaN handling is left to the callers' exp pass: a NaN anywhere makes the exp sum NaN, so the whole row
// comes out NaN like in the reference, whatever max_ps picked.
RF_AVX2 inline float row_max_v(const float* x, int64_t n) {
  __m256 m0 = _mm256_set1_ps(-INFINITY), m1 = m0;
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    m0 = _mm256_max_ps(m0, _mm256_loadu_ps(x + j));
    m1 = _mm256_max_ps(m1, _mm256_loadu_ps(x + j + 8));
  }
  for (; j + 8 <= n; j += 8) m0 = _mm256_max_ps(m0, _mm256_loadu_ps(x + j));
  if (j < n) {
    __m256i k = tail_mask(n - j);
    __m256 v = _mm256_blendv_ps(m0, _mm256_maskload_ps(x + j, k), _mm256_castsi256_ps(k));
    m0 = _mm256_max_ps(m0, v);
  }
  return hmax(_mm256_max_ps(m0, m1));
}

// sum_j exp(x_j - m), optionally storing the exps in y (which may be x).
template <bool STORE>
RF_AVX2 inline double sumexp_v(const float* x, float m, float* y, int64_t n) {
  const __m256 mv = _mm256_set1_ps(m);
  __m256d acc = _mm256_setzero_pd();
  int64_t j = 0;
  while (j < n) {
    const int64_t end = std::min(n, j + kBlock);
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    for (; j + 16 <= end; j += 16) {
      __m256 e0 = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j), mv));
      __m256 e1 = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j + 8), mv));
      if (STORE) {
        _mm256_storeu_ps(y + j, e0);
        _mm256_storeu_ps(y + j + 8, e1);
      }
      s0 = _mm256_add_ps(s0, e0);
      s1 = _mm256_add_ps(s1, e1);
    }
    for (; j + 8 <= end; j += 8) {
      __m256 e0 = exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j), mv));
      if (STORE) _mm256_storeu_ps(y + j, e0);
      s0 = _mm256_add_ps(s0, e0);
    }
    if (j < end) {
      __m256i k = tail_mask(end - j);
      __m256 e0 = _mm256_and_ps(exp8(_mm256_sub_ps(_mm256_maskload_ps(x + j, k), mv)), _mm256_castsi256_ps(k));
      if (STORE) _mm256_maskstore_ps(y + j, k, e0);
      s0 = _mm256_add_ps(s0, e0);
      j = end;
    }
    acc = widen_add(acc, _mm256_add_ps(s0, s1));
  }
  return hsum_pd(acc);
}

// sum_j a_j * b_j (b == nullptr: sum_j a_j).
RF_AVX2 inline double dot_v(const float* a, const float* b, int64_t n) {
  __m256d acc = _mm256_setzero_pd();
  const __m256 one = _mm256_set1_ps(1.f);
  int64_t j = 0;
  while (j < n) {
    const int64_t end = std::min(n, j + kBlock);
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
    for (; j + 16 <= end; j += 16) {
      s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j), b ? _mm256_loadu_ps(b + j) : one, s0);
      s1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j + 8), b ? _mm256_loadu_ps(b + j + 8) : one, s1);
    }
    for (; j + 8 <= end; j += 8) s0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + j), b ? _mm256_loadu_ps(b + j) : one, s0);
    if (j < end) {
      __m256i k = tail_mask(end - j);
      s0 = _mm256_fmadd_ps(_mm256_maskload_ps(a + j, k), b ? _mm256_maskload_ps(b + j, k) : one, s0);
      j = end;
    }
    acc = widen_add(acc, _mm256_add_ps(s0, s1));
  }
  return hsum_pd(acc);
}

RF_AVX2 inline void scale_v(float* y, float s, int64_t n) {
  const __m256 sv = _mm256_set1_ps(s);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_loadu_ps(y + j), sv));
  if (j < n) {
    __m256i k = tail_mask(n - j);
    _mm256_maskstore_ps(y + j, k, _mm256_mul_ps(_mm256_maskload_ps(y + j, k), sv));
  }
}
#endif

}  // namespace rows
}  // namespace rf
