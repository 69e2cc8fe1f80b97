// reduce (Sum, Mean, Max, Min, LogSumExp) and cumsum along the middle axis of an (outer, n, inner) view.
//
// inner == 1 reduces contiguous rows with explicit AVX2 code. inner > 1 walks the n rows of a block of at most
// kCols columns, streaming through memory with one accumulator per column (a cache-friendly order instead of
// striding down each column). Sum, Mean and cumsum accumulate in double like the reference: they may cancel,
// and then float error would not be small relative to the result. LogSumExp sums positive terms and uses float.
#include "ew_simd.h"

namespace {

using rf::ArgReader;
using namespace rf::ew;

enum Reduce : int { kSum = 0, kMean = 1, kMax = 2, kLse = 3, kMin = 4 };

constexpr int64_t kCols = 512;  // columns per block when inner > 1 (accumulators stay in L1)

// The reference's update rule: m takes v when v is strictly better, and becomes (and stays) NaN on a NaN.
template <bool MAX>
inline float pick_s(float m, float v) {
  bool better = MAX ? v > m : v < m;
  return (better || v != v) ? v : m;
}

// ---- contiguous rows (inner == 1) --------------------------------------------------------------------------

double row_sum_scalar(const float* x, int64_t n) {
  double s0 = 0, s1 = 0;
  int64_t j = 0;
  for (; j + 2 <= n; j += 2) {
    s0 += x[j];
    s1 += x[j + 1];
  }
  if (j < n) s0 += x[j];
  return s0 + s1;
}

template <bool MAX>
float row_ext_scalar(const float* x, int64_t n) {
  float m = MAX ? -INFINITY : INFINITY;
  for (int64_t j = 0; j < n; ++j) m = pick_s<MAX>(m, x[j]);
  return m;
}

float row_lse_scalar(const float* x, int64_t n) {
  float m = row_ext_scalar<true>(x, n);
  if (m == -INFINITY || m != m) return m;
  double s = 0;
  for (int64_t j = 0; j < n; ++j) s += std::exp(x[j] - m);
  return static_cast<float>(m + std::log(s));
}

#if RF_X86
RF_AVX2 double row_sum_avx2(const float* x, int64_t n) {
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd();
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    __m256 v = _mm256_loadu_ps(x + j);
    s0 = _mm256_add_pd(s0, _mm256_cvtps_pd(_mm256_castps256_ps128(v)));
    s1 = _mm256_add_pd(s1, _mm256_cvtps_pd(_mm256_extractf128_ps(v, 1)));
  }
  double s = hsum_pd(_mm256_add_pd(s0, s1));
  for (; j < n; ++j) s += x[j];
  return s;
}

// Lane-wise max/min with the NaN rule of pick_s; `valid` masks off the lanes of a partial tail.
template <bool MAX>
RF_AVX2 inline __m256 pick_v(__m256 m, __m256 v, __m256 valid) {
  __m256 better = MAX ? _mm256_cmp_ps(v, m, _CMP_GT_OQ) : _mm256_cmp_ps(v, m, _CMP_LT_OQ);
  __m256 take = _mm256_and_ps(_mm256_or_ps(better, _mm256_cmp_ps(v, v, _CMP_UNORD_Q)), valid);
  return _mm256_blendv_ps(m, v, take);
}

template <bool MAX>
RF_AVX2 float row_ext_avx2(const float* x, int64_t n) {
  const __m256 all = _mm256_castsi256_ps(_mm256_set1_epi32(-1));
  __m256 m0 = _mm256_set1_ps(MAX ? -INFINITY : INFINITY), m1 = m0;
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    m0 = pick_v<MAX>(m0, _mm256_loadu_ps(x + j), all);
    m1 = pick_v<MAX>(m1, _mm256_loadu_ps(x + j + 8), all);
  }
  for (; j + 8 <= n; j += 8) m0 = pick_v<MAX>(m0, _mm256_loadu_ps(x + j), all);
  if (j < n) {
    __m256i k = tail_mask(n - j);
    m0 = pick_v<MAX>(m0, _mm256_maskload_ps(x + j, k), _mm256_castsi256_ps(k));
  }
  alignas(32) float l0[8], l1[8];
  _mm256_store_ps(l0, m0);
  _mm256_store_ps(l1, m1);
  float m = MAX ? -INFINITY : INFINITY;
  for (int i = 0; i < 8; ++i) m = pick_s<MAX>(pick_s<MAX>(m, l0[i]), l1[i]);
  return m;
}

RF_AVX2 float row_lse_avx2(const float* x, int64_t n) {
  float m = row_ext_avx2<true>(x, n);
  if (m == -INFINITY || m != m) return m;
  const __m256 mv = _mm256_set1_ps(m);
  __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
  int64_t j = 0;
  for (; j + 16 <= n; j += 16) {
    s0 = _mm256_add_ps(s0, exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j), mv)));
    s1 = _mm256_add_ps(s1, exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j + 8), mv)));
  }
  for (; j + 8 <= n; j += 8) s0 = _mm256_add_ps(s0, exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j), mv)));
  if (j < n) {
    __m256i k = tail_mask(n - j);
    __m256 e = exp8(_mm256_sub_ps(_mm256_maskload_ps(x + j, k), mv));
    s0 = _mm256_add_ps(s0, _mm256_and_ps(e, _mm256_castsi256_ps(k)));
  }
  return static_cast<float>(m + std::log(static_cast<double>(hsum(_mm256_add_ps(s0, s1)))));
}
#endif

// Sum and Mean of a row from a double row sum (the same wrappers for both instruction sets).
template <double (*SUM)(const float*, int64_t)>
float row_sum(const float* x, int64_t n) {
  return static_cast<float>(SUM(x, n));
}
template <double (*SUM)(const float*, int64_t)>
float row_mean(const float* x, int64_t n) {
  return static_cast<float>(SUM(x, n) / static_cast<double>(n));
}

// ---- column blocks (inner > 1) -------------------------------------------------------------------------------
// Plain loops written once and compiled twice: inlined into a default-target wrapper and into an RF_AVX2
// wrapper, where the auto-vectorizer then emits AVX2 (inlining a baseline function into an AVX2 one is allowed;
// the other direction is not). x points at column i0 of row j = 0; rows are `inner` apart; w columns.

__attribute__((always_inline)) inline void col_sum_body(const float* x, int64_t n, int64_t inner, int64_t w,
                                                         double* acc) {
  for (int64_t i = 0; i < w; ++i) acc[i] = 0;
  for (int64_t j = 0; j < n; ++j) {
    const float* row = x + j * inner;
    for (int64_t i = 0; i < w; ++i) acc[i] += row[i];
  }
}

template <bool MAX>
__attribute__((always_inline)) inline void col_ext_body(const float* x, int64_t n, int64_t inner, int64_t w,
                                                         float* m) {
  for (int64_t i = 0; i < w; ++i) m[i] = MAX ? -INFINITY : INFINITY;
  for (int64_t j = 0; j < n; ++j) {
    const float* row = x + j * inner;
    for (int64_t i = 0; i < w; ++i) m[i] = pick_s<MAX>(m[i], row[i]);
  }
}

void col_sum_scalar(const float* x, int64_t n, int64_t inner, int64_t w, double* acc) {
  col_sum_body(x, n, inner, w, acc);
}
template <bool MAX>
void col_ext_scalar(const float* x, int64_t n, int64_t inner, int64_t w, float* m) {
  col_ext_body<MAX>(x, n, inner, w, m);
}
void col_lse_scalar(const float* x, int64_t n, int64_t inner, int64_t w, const float* m, float* s) {
  for (int64_t i = 0; i < w; ++i) s[i] = 0;
  for (int64_t j = 0; j < n; ++j) {
    const float* row = x + j * inner;
    for (int64_t i = 0; i < w; ++i) s[i] += std::exp(row[i] - m[i]);
  }
}

#if RF_X86
RF_AVX2 void col_sum_avx2(const float* x, int64_t n, int64_t inner, int64_t w, double* acc) {
  col_sum_body(x, n, inner, w, acc);
}
template <bool MAX>
RF_AVX2 void col_ext_avx2(const float* x, int64_t n, int64_t inner, int64_t w, float* m) {
  col_ext_body<MAX>(x, n, inner, w, m);
}
RF_AVX2 void col_lse_avx2(const float* x, int64_t n, int64_t inner, int64_t w, const float* m, float* s) {
  int64_t i = 0;
  for (; i + 8 <= w; i += 8) {
    const __m256 mv = _mm256_loadu_ps(m + i);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t j = 0; j < n; ++j) {
      acc = _mm256_add_ps(acc, exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j * inner + i), mv)));
    }
    _mm256_storeu_ps(s + i, acc);
  }
  if (i < w) {
    __m256i k = tail_mask(w - i);
    const __m256 mv = _mm256_maskload_ps(m + i, k);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t j = 0; j < n; ++j) {
      acc = _mm256_add_ps(acc, exp8(_mm256_sub_ps(_mm256_maskload_ps(x + j * inner + i, k), mv)));
    }
    _mm256_maskstore_ps(s + i, k, acc);
  }
}
#endif

// ---- cumsum --------------------------------------------------------------------------------------------------

__attribute__((always_inline)) inline void cumsum_body(const float* x, float* y, int64_t n, int64_t inner, int64_t w,
                                                        bool reverse, double* acc) {
  for (int64_t i = 0; i < w; ++i) acc[i] = 0;
  for (int64_t jj = 0; jj < n; ++jj) {
    const int64_t off = (reverse ? n - 1 - jj : jj) * inner;
    for (int64_t i = 0; i < w; ++i) {
      acc[i] += x[off + i];
      y[off + i] = static_cast<float>(acc[i]);
    }
  }
}

void cumsum_scalar(const float* x, float* y, int64_t n, int64_t inner, int64_t w, bool reverse, double* acc) {
  cumsum_body(x, y, n, inner, w, reverse, acc);
}
#if RF_X86
RF_AVX2 void cumsum_avx2(const float* x, float* y, int64_t n, int64_t inner, int64_t w, bool reverse, double* acc) {
  cumsum_body(x, y, n, inner, w, reverse, acc);
}
#endif

// ---- the kernel tables -----------------------------------------------------------------------------------------

struct ReduceKernels {
  // One contiguous row (inner == 1): the reduction of x[0:n], one entry per ReduceOp code.
  float (*row[5])(const float* x, int64_t n);
  // A block of w columns (inner > 1): x points at the block's first column of row 0, rows are `inner` apart.
  void (*col_sum)(const float* x, int64_t n, int64_t inner, int64_t w, double* acc);
  void (*col_max)(const float* x, int64_t n, int64_t inner, int64_t w, float* m);
  void (*col_min)(const float* x, int64_t n, int64_t inner, int64_t w, float* m);
  void (*col_lse)(const float* x, int64_t n, int64_t inner, int64_t w, const float* m, float* s);  // sum exp(x - m)
  // Inclusive cumulative sum of a block of w columns, accumulated in acc (w doubles).
  void (*cumsum)(const float* x, float* y, int64_t n, int64_t inner, int64_t w, bool reverse, double* acc);
};

const ReduceKernels kScalar = {
    {row_sum<row_sum_scalar>, row_mean<row_sum_scalar>, row_ext_scalar<true>, row_lse_scalar, row_ext_scalar<false>},
    col_sum_scalar, col_ext_scalar<true>, col_ext_scalar<false>, col_lse_scalar, cumsum_scalar};
#if RF_X86
const ReduceKernels kAvx2 = {
    {row_sum<row_sum_avx2>, row_mean<row_sum_avx2>, row_ext_avx2<true>, row_lse_avx2, row_ext_avx2<false>},
    col_sum_avx2, col_ext_avx2<true>, col_ext_avx2<false>, col_lse_avx2, cumsum_avx2};
#endif

const ReduceKernels& kernels() {
  static const ReduceKernels& t = rf::pick(kScalar, RF_X86_TABLE(kAvx2));
  return t;
}

// ---- reduce ------------------------------------------------------------------------------------------------------

void reduce_cols(const ReduceKernels& K, int op, const float* x, int64_t n, int64_t inner, int64_t w, float* y) {
  double acc[kCols];
  float m[kCols], s[kCols];
  if (op == kSum || op == kMean) {
    K.col_sum(x, n, inner, w, acc);
    const double div = op == kMean ? static_cast<double>(n) : 1.0;
    for (int64_t i = 0; i < w; ++i) y[i] = static_cast<float>(op == kMean ? acc[i] / div : acc[i]);
    return;
  }
  (op != kMin ? K.col_max : K.col_min)(x, n, inner, w, m);
  if (op != kLse) {
    std::memcpy(y, m, static_cast<size_t>(w) * sizeof(float));
    return;
  }
  // Columns whose max is -inf or NaN keep it; the others exp against a finite max. A non-finite max would make
  // the exp pass produce NaN lanes, which are simply not used.
  K.col_lse(x, n, inner, w, m, s);
  for (int64_t i = 0; i < w; ++i) {
    y[i] = (m[i] == -INFINITY || m[i] != m[i]) ? m[i]
                                               : static_cast<float>(m[i] + std::log(static_cast<double>(s[i])));
  }
}

Napi::Value ReduceK(const Napi::CallbackInfo& info) {
  ArgReader r(info, "reduce");
  int64_t op = int_arg(r, 0, "op");
  size_t nx = 0, ny = 0;
  const float* x = r.f32(1, &nx);
  int64_t outer = size_arg(r, 2, "outer"), n = size_arg(r, 3, "n"), inner = size_arg(r, 4, "inner");
  float* y = r.f32(5, &ny);
  if (!r.ok) return info.Env().Undefined();
  if (op < 0 || op > 4) range_error(r, "unknown ReduceOp " + std::to_string(op));
  need_len(r, "x", nx, mul(mul(outer, n), inner), "outer * n * inner");
  need_len(r, "y", ny, mul(outer, inner), "outer * inner");
  if (!r.ok || outer * inner == 0) return info.Env().Undefined();
  const ReduceKernels& K = kernels();
  const int o = static_cast<int>(op);
  if (inner == 1) {
    const auto row_fn = K.row[o];
    pfor(outer, grain_rows(n, 16384), [&](int64_t b, int64_t e) {
      for (int64_t row = b; row < e; ++row) y[row] = row_fn(x + row * n, n);
    });
    return info.Env().Undefined();
  }
  const int64_t blocks = (inner + kCols - 1) / kCols;
  pfor(outer * blocks, grain_rows(n * (inner < kCols ? inner : kCols), 16384), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t oo = t / blocks, i0 = (t % blocks) * kCols;
      const int64_t w = inner - i0 < kCols ? inner - i0 : kCols;
      reduce_cols(K, o, x + oo * n * inner + i0, n, inner, w, y + oo * inner + i0);
    }
  });
  return info.Env().Undefined();
}

// ---- cumsum binding ----------------------------------------------------------------------------------------------

Napi::Value Cumsum(const Napi::CallbackInfo& info) {
  ArgReader r(info, "cumsum");
  size_t nx = 0, ny = 0;
  const float* x = r.f32(0, &nx);
  int64_t outer = size_arg(r, 1, "outer"), n = size_arg(r, 2, "n"), inner = size_arg(r, 3, "inner");
  const bool reverse = r.num(4) != 0;
  float* y = r.f32(5, &ny);
  if (!r.ok) return info.Env().Undefined();
  const int64_t total = mul(mul(outer, n), inner);
  need_len(r, "x", nx, total, "outer * n * inner");
  need_len(r, "y", ny, total, "outer * n * inner");
  if (!r.ok || total == 0) return info.Env().Undefined();
  const auto cumsum = kernels().cumsum;
  const int64_t blocks = (inner + kCols - 1) / kCols;
  pfor(outer * blocks, grain_rows(n * (inner < kCols ? inner : kCols), 16384), [&](int64_t b, int64_t e) {
    double acc[kCols];
    for (int64_t t = b; t < e; ++t) {
      const int64_t oo = t / blocks, i0 = (t % blocks) * kCols;
      const int64_t w = inner - i0 < kCols ? inner - i0 : kCols;
      const int64_t base = oo * n * inner + i0;
      cumsum(x + base, y + base, n, inner, w, reverse, acc);
    }
  });
  return info.Env().Undefined();
}

}  // namespace

void register_ew_reduce(Napi::Env env, Napi::Object exports) {
  rf::export_fn<ReduceK>(env, exports, "reduce");
  rf::export_fn<Cumsum>(env, exports, "cumsum");
}
