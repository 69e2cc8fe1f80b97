// Row-wise kernels: softmax, softmaxGrad, logSoftmax, logSoftmaxGrad, crossEntropy, rmsnorm, rmsnormGrad,
// layernorm, layernormGrad, rope.
//
// Rows run in parallel (a grain keeps decode-sized calls, one short row, on the calling thread). Within a row,
// sums are formed in float vector lanes over blocks of kBlock elements and the block totals added in double: as
// cheap as a float sum, while the error no longer grows with the row length (vocabulary-sized rows).
// Weight gradients (gw, gb) accumulate per chunk of rows into private buffers that are summed at the end, so
// no two threads ever add into the same element.
#include "ew_simd.h"

#include <algorithm>

namespace {

using rf::ArgReader;
using namespace rf::ew;

constexpr int64_t kBlock = 512;

// ---- scalar row helpers (double accumulation throughout) -------------------------------------------------------

float row_max_s(const float* x, int64_t n) {
  float m = -INFINITY;
  for (int64_t j = 0; j < n; ++j) m = std::max(m, x[j]);
  return m;
}

template <bool STORE>
double sumexp_s(const float* x, float m, float* y, int64_t n) {
  double s = 0;
  for (int64_t j = 0; j < n; ++j) {
    float e = std::exp(x[j] - m);
    if (STORE) y[j] = e;
    s += e;
  }
  return s;
}

double dot_s(const float* a, const float* b, int64_t n) {
  double s = 0;
  for (int64_t j = 0; j < n; ++j) s += static_cast<double>(a[j]) * b[j];
  return s;
}

double sum_s(const float* a, int64_t n) {
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
RF_AVX2 float row_max_v(const float* x, int64_t n) {
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
RF_AVX2 double sumexp_v(const float* x, float m, float* y, int64_t n) {
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
RF_AVX2 double dot_v(const float* a, const float* b, int64_t n) {
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

RF_AVX2 void scale_v(float* y, float s, int64_t n) {
  const __m256 sv = _mm256_set1_ps(s);
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) _mm256_storeu_ps(y + j, _mm256_mul_ps(_mm256_loadu_ps(y + j), sv));
  if (j < n) {
    __m256i k = tail_mask(n - j);
    _mm256_maskstore_ps(y + j, k, _mm256_mul_ps(_mm256_maskload_ps(y + j, k), sv));
  }
}
#endif

// ---- softmax family ------------------------------------------------------------------------------------------

// Rows are independent; exp-bound work splits at ~8K elements per chunk.
inline int64_t exp_grain(int64_t n) { return grain_rows(n, 8192); }

void softmax_rows(bool avx, const float* x, float* y, int64_t n, int64_t rb, int64_t re) {
  for (int64_t r = rb; r < re; ++r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
#if RF_X86
    if (avx) {
      float m = row_max_v(xr, n);
      double s = sumexp_v<true>(xr, m, yr, n);
      scale_v(yr, static_cast<float>(1.0 / s), n);
      continue;
    }
#endif
    (void)avx;
    float m = row_max_s(xr, n);
    double s = sumexp_s<true>(xr, m, yr, n);
    const float inv = static_cast<float>(1.0 / s);
    for (int64_t j = 0; j < n; ++j) yr[j] *= inv;
  }
}

#if RF_X86
RF_AVX2 void softmax_grad_row_v(const float* y, const float* gy, int64_t n, float* gx) {
  const __m256 d = _mm256_set1_ps(static_cast<float>(dot_v(gy, y, n)));
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    _mm256_storeu_ps(gx + j, _mm256_mul_ps(_mm256_loadu_ps(y + j), _mm256_sub_ps(_mm256_loadu_ps(gy + j), d)));
  }
  if (j < n) {
    __m256i k = tail_mask(n - j);
    _mm256_maskstore_ps(gx + j, k,
                        _mm256_mul_ps(_mm256_maskload_ps(y + j, k), _mm256_sub_ps(_mm256_maskload_ps(gy + j, k), d)));
  }
}

// y = (x - m) - log(s): cheaper in cancellation than x - lse when |lse| is large.
RF_AVX2 void log_softmax_row_v(const float* x, int64_t n, float* y) {
  const float m = row_max_v(x, n);
  const double s = sumexp_v<false>(x, m, nullptr, n);
  const __m256 mv = _mm256_set1_ps(m), ls = _mm256_set1_ps(static_cast<float>(std::log(s)));
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) _mm256_storeu_ps(y + j, _mm256_sub_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), mv), ls));
  if (j < n) {
    __m256i k = tail_mask(n - j);
    _mm256_maskstore_ps(y + j, k, _mm256_sub_ps(_mm256_sub_ps(_mm256_maskload_ps(x + j, k), mv), ls));
  }
}

RF_AVX2 void log_softmax_grad_row_v(const float* y, const float* gy, int64_t n, float* gx) {
  const __m256 s = _mm256_set1_ps(static_cast<float>(dot_v(gy, nullptr, n)));
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    _mm256_storeu_ps(gx + j, _mm256_fnmadd_ps(exp8(_mm256_loadu_ps(y + j)), s, _mm256_loadu_ps(gy + j)));
  }
  if (j < n) {
    __m256i k = tail_mask(n - j);
    _mm256_maskstore_ps(gx + j, k,
                        _mm256_fnmadd_ps(exp8(_mm256_maskload_ps(y + j, k)), s, _mm256_maskload_ps(gy + j, k)));
  }
}
#endif

void softmax_grad_rows(bool avx, const float* y, const float* gy, int64_t n, float* gx, int64_t rb, int64_t re) {
  for (int64_t r = rb; r < re; ++r) {
    const int64_t o = r * n;
#if RF_X86
    if (avx) {
      softmax_grad_row_v(y + o, gy + o, n, gx + o);
      continue;
    }
#endif
    (void)avx;
    const float d = static_cast<float>(dot_s(gy + o, y + o, n));
    for (int64_t j = 0; j < n; ++j) gx[o + j] = y[o + j] * (gy[o + j] - d);
  }
}

void log_softmax_rows(bool avx, const float* x, float* y, int64_t n, int64_t rb, int64_t re) {
  for (int64_t r = rb; r < re; ++r) {
    const int64_t o = r * n;
#if RF_X86
    if (avx) {
      log_softmax_row_v(x + o, n, y + o);
      continue;
    }
#endif
    (void)avx;
    const float m = row_max_s(x + o, n);
    const float ls = static_cast<float>(std::log(sumexp_s<false>(x + o, m, nullptr, n)));
    for (int64_t j = 0; j < n; ++j) y[o + j] = (x[o + j] - m) - ls;
  }
}

void log_softmax_grad_rows(bool avx, const float* y, const float* gy, int64_t n, float* gx, int64_t rb,
                           int64_t re) {
  for (int64_t r = rb; r < re; ++r) {
    const int64_t o = r * n;
#if RF_X86
    if (avx) {
      log_softmax_grad_row_v(y + o, gy + o, n, gx + o);
      continue;
    }
#endif
    (void)avx;
    const float s = static_cast<float>(sum_s(gy + o, n));
    for (int64_t j = 0; j < n; ++j) gx[o + j] = gy[o + j] - std::exp(y[o + j]) * s;
  }
}

// Shared argument handling of the four (rows, n) kernels: two inputs or one, one output, all rows * n long.
struct RowArgs {
  const float* a = nullptr;
  const float* b = nullptr;
  float* out = nullptr;
  int64_t rows = 0, n = 0;
};

bool read_rows(ArgReader& r, bool two_inputs, const char* an, const char* bn, const char* outn, RowArgs& ra) {
  size_t na = 0, nb = 0, no = 0;
  size_t i = 0;
  ra.a = r.f32(i++, &na);
  if (two_inputs) ra.b = r.f32(i++, &nb);
  ra.rows = size_arg(r, i++, "rows");
  ra.n = size_arg(r, i++, "n");
  ra.out = r.f32(i++, &no);
  if (!r.ok) return false;
  const int64_t total = mul(ra.rows, ra.n);
  need_len(r, an, na, total, "rows * n");
  if (two_inputs) need_len(r, bn, nb, total, "rows * n");
  need_len(r, outn, no, total, "rows * n");
  // n = 0 leaves nothing to do, however many rows are claimed (and does not loop over them).
  return r.ok && total > 0;
}

Napi::Value Softmax(const Napi::CallbackInfo& info) {
  ArgReader r(info, "softmax");
  RowArgs a;
  if (!read_rows(r, false, "x", "", "y", a)) return info.Env().Undefined();
  const bool avx = rf::has_avx2();
  pfor(a.rows, exp_grain(a.n), [&](int64_t b, int64_t e) { softmax_rows(avx, a.a, a.out, a.n, b, e); });
  return info.Env().Undefined();
}

Napi::Value SoftmaxGrad(const Napi::CallbackInfo& info) {
  ArgReader r(info, "softmaxGrad");
  RowArgs a;
  if (!read_rows(r, true, "y", "gy", "gx", a)) return info.Env().Undefined();
  const bool avx = rf::has_avx2();
  pfor(a.rows, grain_rows(a.n, 16384),
                   [&](int64_t b, int64_t e) { softmax_grad_rows(avx, a.a, a.b, a.n, a.out, b, e); });
  return info.Env().Undefined();
}

Napi::Value LogSoftmax(const Napi::CallbackInfo& info) {
  ArgReader r(info, "logSoftmax");
  RowArgs a;
  if (!read_rows(r, false, "x", "", "y", a)) return info.Env().Undefined();
  const bool avx = rf::has_avx2();
  pfor(a.rows, exp_grain(a.n), [&](int64_t b, int64_t e) { log_softmax_rows(avx, a.a, a.out, a.n, b, e); });
  return info.Env().Undefined();
}

Napi::Value LogSoftmaxGrad(const Napi::CallbackInfo& info) {
  ArgReader r(info, "logSoftmaxGrad");
  RowArgs a;
  if (!read_rows(r, true, "y", "gy", "gx", a)) return info.Env().Undefined();
  const bool avx = rf::has_avx2();
  pfor(a.rows, exp_grain(a.n),
                   [&](int64_t b, int64_t e) { log_softmax_grad_rows(avx, a.a, a.b, a.n, a.out, b, e); });
  return info.Env().Undefined();
}

// ---- crossEntropy ----------------------------------------------------------------------------------------------

// One row: pass 1 max, pass 2 sum of exp (stored into d when a gradient is wanted), pass 3 (gradient only)
// rescales the stored exps in place, which are still in L1/L2. x[t] is read first so d may alias x.
void ce_row(bool avx, const float* x, int32_t t, int64_t V, float gs, float* loss, float* d) {
  const float xt = x[t];
  float m;
  double s;
#if RF_X86
  if (avx) {
    m = row_max_v(x, V);
    s = d ? sumexp_v<true>(x, m, d, V) : sumexp_v<false>(x, m, nullptr, V);
  } else
#endif
  {
    m = row_max_s(x, V);
    s = d ? sumexp_s<true>(x, m, d, V) : sumexp_s<false>(x, m, nullptr, V);
  }
  (void)avx;
  // lse - x[t] = (m - x[t]) + log(s), formed in double: no cancellation against a large lse.
  *loss = static_cast<float>((static_cast<double>(m) - xt) + std::log(s));
  if (!d) return;
  const float et = d[t];
  const float scale = static_cast<float>(gs / s);
#if RF_X86
  if (avx) scale_v(d, scale, V);
  else
#endif
    for (int64_t j = 0; j < V; ++j) d[j] *= scale;
  // The target entry (softmax_t - 1) * gs, formed in double from the stored exp: softmax_t is often close to 1.
  d[t] = static_cast<float>((static_cast<double>(et) / s - 1.0) * gs);
}

Napi::Value CrossEntropy(const Napi::CallbackInfo& info) {
  ArgReader r(info, "crossEntropy");
  size_t nx = 0, nt = 0, nl = 0, nd = 0;
  const float* x = r.f32(0, &nx);
  const int32_t* targets = r.i32(1, &nt);
  int64_t rows = size_arg(r, 2, "rows"), V = size_arg(r, 3, "V");
  int64_t ignore = int_arg(r, 4, "ignoreIndex");
  float* losses = r.f32(5, &nl);
  float* d = r.f32(6, &nd);
  double gs = r.num(7);
  if (!r.ok) return info.Env().Undefined();
  const int64_t total = mul(rows, V);
  need_len(r, "logits", nx, total, "rows * V");
  need_len(r, "targets", nt, rows, "rows");
  need_len(r, "losses", nl, rows, "rows");
  opt_len(r, "dlogits", nd, total, "rows * V");
  if (!r.ok) return info.Env().Undefined();
  for (int64_t i = 0; i < rows; ++i) {
    if (targets[i] != ignore && (targets[i] < 0 || targets[i] >= V)) {
      range_error(r, "targets[" + std::to_string(i) + "] = " + std::to_string(targets[i]) + " is outside [0, " +
                         std::to_string(V) + ") and is not ignoreIndex " + std::to_string(ignore));
      return info.Env().Undefined();
    }
  }
  float* dl = nd ? d : nullptr;
  const bool avx = rf::has_avx2();
  const float gsf = static_cast<float>(gs);
  pfor(rows, exp_grain(V), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      float* di = dl ? dl + i * V : nullptr;
      if (targets[i] == ignore) {
        losses[i] = 0.f;
        if (di) std::memset(di, 0, static_cast<size_t>(V) * sizeof(float));
        continue;
      }
      ce_row(avx, x + i * V, targets[i], V, gsf, losses + i, di);
    }
  });
  return info.Env().Undefined();
}


// ---- rmsnorm -----------------------------------------------------------------------------------------------------
// `w == nullptr` means "no weight" (the empty Float32Array of the contract).

void rmsnorm_row_s(const float* x, const float* w, int64_t D, float eps, float* y, float* rstd) {
  const float rs = static_cast<float>(1.0 / std::sqrt(dot_s(x, x, D) / static_cast<double>(D) + eps));
  *rstd = rs;
  for (int64_t j = 0; j < D; ++j) y[j] = x[j] * rs * (w ? w[j] : 1.f);
}

// gx = g rs - x c with g = gy w and c = mean(g x) rs^3; acc (when given) += gy x rs.
void rmsnorm_grad_row_s(const float* x, const float* w, float rs, const float* gy, int64_t D, float* gx,
                        float* acc) {
  double dot = 0;
  for (int64_t j = 0; j < D; ++j) dot += static_cast<double>(gy[j]) * (w ? w[j] : 1.f) * x[j];
  const float c = static_cast<float>(dot / static_cast<double>(D) * rs * rs * rs);
  for (int64_t j = 0; j < D; ++j) {
    gx[j] = gy[j] * (w ? w[j] : 1.f) * rs - x[j] * c;
    if (acc) acc[j] += gy[j] * x[j] * rs;
  }
}

#if RF_X86
RF_AVX2 void rmsnorm_row_v(const float* x, const float* w, int64_t D, float eps, float* y, float* rstd) {
  const float rs = static_cast<float>(1.0 / std::sqrt(dot_v(x, x, D) / static_cast<double>(D) + eps));
  *rstd = rs;
  const __m256 rv = _mm256_set1_ps(rs), one = _mm256_set1_ps(1.f);
  int64_t j = 0;
  for (; j + 8 <= D; j += 8) {
    __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + j), rv);
    _mm256_storeu_ps(y + j, _mm256_mul_ps(v, w ? _mm256_loadu_ps(w + j) : one));
  }
  if (j < D) {
    __m256i k = tail_mask(D - j);
    __m256 v = _mm256_mul_ps(_mm256_maskload_ps(x + j, k), rv);
    _mm256_maskstore_ps(y + j, k, _mm256_mul_ps(v, w ? _mm256_maskload_ps(w + j, k) : one));
  }
}

// sum_j a_j b_j c_j (c == nullptr: sum_j a_j b_j), block-wise in float, blocks added in double.
RF_AVX2 double dot3_v(const float* a, const float* b, const float* c, int64_t n) {
  if (!c) return dot_v(a, b, n);
  __m256d acc = _mm256_setzero_pd();
  int64_t j = 0;
  while (j < n) {
    const int64_t end = std::min(n, j + kBlock);
    __m256 s0 = _mm256_setzero_ps();
    for (; j + 8 <= end; j += 8) {
      s0 = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_loadu_ps(a + j), _mm256_loadu_ps(b + j)), _mm256_loadu_ps(c + j), s0);
    }
    if (j < end) {
      __m256i k = tail_mask(end - j);
      s0 = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_maskload_ps(a + j, k), _mm256_maskload_ps(b + j, k)),
                           _mm256_maskload_ps(c + j, k), s0);
      j = end;
    }
    acc = widen_add(acc, s0);
  }
  return hsum_pd(acc);
}

RF_AVX2 void rmsnorm_grad_row_v(const float* x, const float* w, float rs, const float* gy, int64_t D, float* gx,
                                float* acc) {
  const double dot = dot3_v(gy, x, w, D);
  const __m256 c = _mm256_set1_ps(static_cast<float>(dot / static_cast<double>(D) * rs * rs * rs));
  const __m256 rv = _mm256_set1_ps(rs), one = _mm256_set1_ps(1.f);
  int64_t j = 0;
  for (; j + 8 <= D; j += 8) {
    __m256 g = _mm256_loadu_ps(gy + j), xv = _mm256_loadu_ps(x + j);
    __m256 gw = _mm256_mul_ps(g, w ? _mm256_loadu_ps(w + j) : one);
    _mm256_storeu_ps(gx + j, _mm256_fmsub_ps(gw, rv, _mm256_mul_ps(xv, c)));
    if (acc) _mm256_storeu_ps(acc + j, _mm256_fmadd_ps(_mm256_mul_ps(g, xv), rv, _mm256_loadu_ps(acc + j)));
  }
  if (j < D) {
    __m256i k = tail_mask(D - j);
    __m256 g = _mm256_maskload_ps(gy + j, k), xv = _mm256_maskload_ps(x + j, k);
    __m256 gw = _mm256_mul_ps(g, w ? _mm256_maskload_ps(w + j, k) : one);
    _mm256_maskstore_ps(gx + j, k, _mm256_fmsub_ps(gw, rv, _mm256_mul_ps(xv, c)));
    if (acc) {
      _mm256_maskstore_ps(acc + j, k, _mm256_fmadd_ps(_mm256_mul_ps(g, xv), rv, _mm256_maskload_ps(acc + j, k)));
    }
  }
}
#endif

Napi::Value Rmsnorm(const Napi::CallbackInfo& info) {
  ArgReader r(info, "rmsnorm");
  size_t nx = 0, nw = 0, ny = 0, nr = 0;
  const float* x = r.f32(0, &nx);
  const float* w = r.f32(1, &nw);
  int64_t rows = size_arg(r, 2, "rows"), D = size_arg(r, 3, "D");
  float eps = static_cast<float>(r.num(4));
  float* y = r.f32(5, &ny);
  float* rstd = r.f32(6, &nr);
  if (!r.ok) return info.Env().Undefined();
  const int64_t total = mul(rows, D);
  need_len(r, "x", nx, total, "rows * D");
  opt_len(r, "w", nw, D, "D");
  need_len(r, "y", ny, total, "rows * D");
  need_len(r, "rstd", nr, rows, "rows");
  if (!r.ok) return info.Env().Undefined();
  const float* wp = nw ? w : nullptr;
  const bool avx = rf::has_avx2();
  pfor(rows, grain_rows(D, 16384), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
#if RF_X86
      if (avx) {
        rmsnorm_row_v(x + i * D, wp, D, eps, y + i * D, rstd + i);
        continue;
      }
#endif
      (void)avx;
      rmsnorm_row_s(x + i * D, wp, D, eps, y + i * D, rstd + i);
    }
  });
  return info.Env().Undefined();
}

Napi::Value RmsnormGrad(const Napi::CallbackInfo& info) {
  ArgReader r(info, "rmsnormGrad");
  size_t nx = 0, nw = 0, nr = 0, ngy = 0, ngx = 0, ngw = 0;
  const float* x = r.f32(0, &nx);
  const float* w = r.f32(1, &nw);
  const float* rstd = r.f32(2, &nr);
  const float* gy = r.f32(3, &ngy);
  int64_t rows = size_arg(r, 4, "rows"), D = size_arg(r, 5, "D");
  float* gx = r.f32(6, &ngx);
  float* gw = r.f32(7, &ngw);
  if (!r.ok) return info.Env().Undefined();
  const int64_t total = mul(rows, D);
  need_len(r, "x", nx, total, "rows * D");
  opt_len(r, "w", nw, D, "D");
  need_len(r, "rstd", nr, rows, "rows");
  need_len(r, "gy", ngy, total, "rows * D");
  need_len(r, "gx", ngx, total, "rows * D");
  if (nw) need_len(r, "gw", ngw, D, "D, since w is given");
  if (!r.ok || total == 0) return info.Env().Undefined();
  const float* wp = nw ? w : nullptr;
  const bool avx = rf::has_avx2();
  std::vector<float> acc;
  chunks_with_partials(rows, grain_rows(D, 16384), wp ? D : 0, acc, [&](int64_t b, int64_t e, float* part) {
    float* ap = wp ? part : nullptr;
    for (int64_t i = b; i < e; ++i) {
#if RF_X86
      if (avx) {
        rmsnorm_grad_row_v(x + i * D, wp, rstd[i], gy + i * D, D, gx + i * D, ap);
        continue;
      }
#endif
      (void)avx;
      rmsnorm_grad_row_s(x + i * D, wp, rstd[i], gy + i * D, D, gx + i * D, ap);
    }
  });
  if (wp)
    for (int64_t j = 0; j < D; ++j) gw[j] += acc[static_cast<size_t>(j)];
  return info.Env().Undefined();
}

// ---- layernorm -------------------------------------------------------------------------------------------------

void layernorm_row_s(const float* x, const float* w, const float* b, int64_t D, float eps, float* y, float* mean,
                     float* rstd) {
  const float mu = static_cast<float>(sum_s(x, D) / static_cast<double>(D));
  double v = 0;
  for (int64_t j = 0; j < D; ++j) v += static_cast<double>(x[j] - mu) * (x[j] - mu);
  const float rs = static_cast<float>(1.0 / std::sqrt(v / static_cast<double>(D) + eps));
  *mean = mu;
  *rstd = rs;
  for (int64_t j = 0; j < D; ++j) y[j] = (x[j] - mu) * rs * (w ? w[j] : 1.f) + (b ? b[j] : 0.f);
}

// gx = rs (g - mean(g) - xh mean(g xh)) with g = gy w, xh = (x - mu) rs; accw += gy xh, accb += gy.
void layernorm_grad_row_s(const float* x, const float* w, float mu, float rs, const float* gy, int64_t D,
                          float* gx, float* accw, float* accb) {
  double sg = 0, sgx = 0;
  for (int64_t j = 0; j < D; ++j) {
    const float g = gy[j] * (w ? w[j] : 1.f), xh = (x[j] - mu) * rs;
    sg += g;
    sgx += static_cast<double>(g) * xh;
    if (accw) accw[j] += gy[j] * xh;
    if (accb) accb[j] += gy[j];
  }
  const float a = static_cast<float>(sg / static_cast<double>(D)), c = static_cast<float>(sgx / static_cast<double>(D));
  for (int64_t j = 0; j < D; ++j) {
    const float g = gy[j] * (w ? w[j] : 1.f), xh = (x[j] - mu) * rs;
    gx[j] = rs * (g - a - xh * c);
  }
}

#if RF_X86
RF_AVX2 void layernorm_row_v(const float* x, const float* w, const float* b, int64_t D, float eps, float* y,
                             float* mean, float* rstd) {
  const float mu = static_cast<float>(dot_v(x, nullptr, D) / static_cast<double>(D));
  const __m256 mv = _mm256_set1_ps(mu);
  // Second pass over (x - mu)^2: the textbook E[x^2] - mu^2 would cancel for rows with a large mean.
  __m256d acc = _mm256_setzero_pd();
  int64_t j = 0;
  while (j < D) {
    const int64_t end = std::min(D, j + kBlock);
    __m256 s0 = _mm256_setzero_ps();
    for (; j + 8 <= end; j += 8) {
      __m256 d = _mm256_sub_ps(_mm256_loadu_ps(x + j), mv);
      s0 = _mm256_fmadd_ps(d, d, s0);
    }
    if (j < end) {
      __m256i k = tail_mask(end - j);
      __m256 d = _mm256_and_ps(_mm256_sub_ps(_mm256_maskload_ps(x + j, k), mv), _mm256_castsi256_ps(k));
      s0 = _mm256_fmadd_ps(d, d, s0);
      j = end;
    }
    acc = widen_add(acc, s0);
  }
  const float rs = static_cast<float>(1.0 / std::sqrt(hsum_pd(acc) / static_cast<double>(D) + eps));
  *mean = mu;
  *rstd = rs;
  const __m256 rv = _mm256_set1_ps(rs), one = _mm256_set1_ps(1.f), zero = _mm256_setzero_ps();
  j = 0;
  for (; j + 8 <= D; j += 8) {
    __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), mv), rv);
    _mm256_storeu_ps(y + j, _mm256_fmadd_ps(xh, w ? _mm256_loadu_ps(w + j) : one, b ? _mm256_loadu_ps(b + j) : zero));
  }
  if (j < D) {
    __m256i k = tail_mask(D - j);
    __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_maskload_ps(x + j, k), mv), rv);
    _mm256_maskstore_ps(y + j, k,
                        _mm256_fmadd_ps(xh, w ? _mm256_maskload_ps(w + j, k) : one,
                                        b ? _mm256_maskload_ps(b + j, k) : zero));
  }
}

RF_AVX2 void layernorm_grad_row_v(const float* x, const float* w, float mu, float rs, const float* gy, int64_t D,
                                  float* gx, float* accw, float* accb) {
  const __m256 mv = _mm256_set1_ps(mu), rv = _mm256_set1_ps(rs), one = _mm256_set1_ps(1.f);
  __m256d asg = _mm256_setzero_pd(), asgx = _mm256_setzero_pd();
  int64_t j = 0;
  while (j < D) {
    const int64_t end = std::min(D, j + kBlock);
    __m256 sg = _mm256_setzero_ps(), sgx = _mm256_setzero_ps();
    for (; j < end; j += 8) {
      // Full vectors, then one masked tail; masked-off lanes load as 0 and add nothing.
      const bool full = j + 8 <= end;
      __m256i k = full ? _mm256_set1_epi32(-1) : tail_mask(end - j);
      __m256 gyv = _mm256_maskload_ps(gy + j, k);
      __m256 xh = _mm256_and_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_maskload_ps(x + j, k), mv), rv),
                                _mm256_castsi256_ps(k));
      __m256 g = opaque(_mm256_mul_ps(gyv, w ? _mm256_maskload_ps(w + j, k) : one));
      sg = _mm256_add_ps(sg, g);
      sgx = _mm256_fmadd_ps(g, xh, sgx);
      if (accw) _mm256_maskstore_ps(accw + j, k, _mm256_fmadd_ps(gyv, xh, _mm256_maskload_ps(accw + j, k)));
      if (accb) _mm256_maskstore_ps(accb + j, k, _mm256_add_ps(gyv, _mm256_maskload_ps(accb + j, k)));
      if (!full) j = end - 8;  // leaves j == end after the increment
    }
    asg = widen_add(asg, sg);
    asgx = widen_add(asgx, sgx);
  }
  const __m256 a = _mm256_set1_ps(static_cast<float>(hsum_pd(asg) / static_cast<double>(D)));
  const __m256 c = _mm256_set1_ps(static_cast<float>(hsum_pd(asgx) / static_cast<double>(D)));
  j = 0;
  for (; j < D; j += 8) {
    const bool full = j + 8 <= D;
    __m256i k = full ? _mm256_set1_epi32(-1) : tail_mask(D - j);
    __m256 xh = _mm256_mul_ps(_mm256_sub_ps(_mm256_maskload_ps(x + j, k), mv), rv);
    __m256 g = opaque(_mm256_mul_ps(_mm256_maskload_ps(gy + j, k), w ? _mm256_maskload_ps(w + j, k) : one));
    _mm256_maskstore_ps(gx + j, k, _mm256_mul_ps(rv, _mm256_fnmadd_ps(xh, c, _mm256_sub_ps(g, a))));
  }
}
#endif

Napi::Value Layernorm(const Napi::CallbackInfo& info) {
  ArgReader r(info, "layernorm");
  size_t nx = 0, nw = 0, nb = 0, ny = 0, nm = 0, nr = 0;
  const float* x = r.f32(0, &nx);
  const float* w = r.f32(1, &nw);
  const float* b = r.f32(2, &nb);
  int64_t rows = size_arg(r, 3, "rows"), D = size_arg(r, 4, "D");
  float eps = static_cast<float>(r.num(5));
  float* y = r.f32(6, &ny);
  float* mean = r.f32(7, &nm);
  float* rstd = r.f32(8, &nr);
  if (!r.ok) return info.Env().Undefined();
  const int64_t total = mul(rows, D);
  need_len(r, "x", nx, total, "rows * D");
  opt_len(r, "w", nw, D, "D");
  opt_len(r, "b", nb, D, "D");
  need_len(r, "y", ny, total, "rows * D");
  need_len(r, "mean", nm, rows, "rows");
  need_len(r, "rstd", nr, rows, "rows");
  if (!r.ok) return info.Env().Undefined();
  const float* wp = nw ? w : nullptr;
  const float* bp = nb ? b : nullptr;
  const bool avx = rf::has_avx2();
  pfor(rows, grain_rows(D, 16384), [&](int64_t rb, int64_t re) {
    for (int64_t i = rb; i < re; ++i) {
#if RF_X86
      if (avx) {
        layernorm_row_v(x + i * D, wp, bp, D, eps, y + i * D, mean + i, rstd + i);
        continue;
      }
#endif
      (void)avx;
      layernorm_row_s(x + i * D, wp, bp, D, eps, y + i * D, mean + i, rstd + i);
    }
  });
  return info.Env().Undefined();
}

Napi::Value LayernormGrad(const Napi::CallbackInfo& info) {
  ArgReader r(info, "layernormGrad");
  size_t nx = 0, nw = 0, nm = 0, nr = 0, ngy = 0, ngx = 0, ngw = 0, ngb = 0;
  const float* x = r.f32(0, &nx);
  const float* w = r.f32(1, &nw);
  const float* mean = r.f32(2, &nm);
  const float* rstd = r.f32(3, &nr);
  const float* gy = r.f32(4, &ngy);
  int64_t rows = size_arg(r, 5, "rows"), D = size_arg(r, 6, "D");
  float* gx = r.f32(7, &ngx);
  float* gw = r.f32(8, &ngw);
  float* gb = r.f32(9, &ngb);
  if (!r.ok) return info.Env().Undefined();
  const int64_t total = mul(rows, D);
  need_len(r, "x", nx, total, "rows * D");
  opt_len(r, "w", nw, D, "D");
  need_len(r, "mean", nm, rows, "rows");
  need_len(r, "rstd", nr, rows, "rows");
  need_len(r, "gy", ngy, total, "rows * D");
  need_len(r, "gx", ngx, total, "rows * D");
  if (nw) need_len(r, "gw", ngw, D, "D, since w is given");
  opt_len(r, "gb", ngb, D, "D");
  if (!r.ok || total == 0) return info.Env().Undefined();
  const float* wp = nw ? w : nullptr;
  const bool want_w = nw > 0, want_b = ngb > 0;
  const bool avx = rf::has_avx2();
  std::vector<float> acc;
  // Partial layout: [gw (D) | gb (D)].
  chunks_with_partials(rows, grain_rows(D, 16384), 2 * D, acc, [&](int64_t b, int64_t e, float* part) {
    float* aw = want_w ? part : nullptr;
    float* ab = want_b ? part + D : nullptr;
    for (int64_t i = b; i < e; ++i) {
#if RF_X86
      if (avx) {
        layernorm_grad_row_v(x + i * D, wp, mean[i], rstd[i], gy + i * D, D, gx + i * D, aw, ab);
        continue;
      }
#endif
      (void)avx;
      layernorm_grad_row_s(x + i * D, wp, mean[i], rstd[i], gy + i * D, D, gx + i * D, aw, ab);
    }
  });
  if (want_w)
    for (int64_t j = 0; j < D; ++j) gw[j] += acc[static_cast<size_t>(j)];
  if (want_b)
    for (int64_t j = 0; j < D; ++j) gb[j] += acc[static_cast<size_t>(D + j)];
  return info.Env().Undefined();
}

// ---- rope ------------------------------------------------------------------------------------------------------
// cos/sin depend only on (t, i): they are computed once per call, in double from the exact angle pos * invFreq
// (positions reach 1e5+ radians, where a float angle would be off by whole radians' worth of ulps), and stored
// as float tables of rotDim entries per time step laid out for the vector loops:
//   interleaved:  cs = [c0 c0 c1 c1 ...], sn = [-s0 +s0 -s1 +s1 ...]  so y = x * cs + swap_pairs(x) * sn;
//   rotate-half:  cs = [c0 c1 ... c_{h-1}], sn = [s0 ... s_{h-1}] (first half of each row used).

void rope_row_s(const float* x, float* y, const float* cs, const float* sn, int64_t half, bool inter) {
  for (int64_t i = 0; i < half; ++i) {
    if (inter) {
      const float a0 = x[2 * i], a1 = x[2 * i + 1], c = cs[2 * i], s = sn[2 * i + 1];
      y[2 * i] = a0 * c - a1 * s;
      y[2 * i + 1] = a0 * s + a1 * c;
    } else {
      const float a0 = x[i], a1 = x[i + half], c = cs[i], s = sn[i];
      y[i] = a0 * c - a1 * s;
      y[i + half] = a0 * s + a1 * c;
    }
  }
}

#if RF_X86
RF_AVX2 void rope_row_v(const float* x, float* y, const float* cs, const float* sn, int64_t half, bool inter) {
  int64_t i = 0;
  if (inter) {
    const int64_t rot = 2 * half;
    for (; i + 8 <= rot; i += 8) {
      __m256 v = _mm256_loadu_ps(x + i);
      __m256 sw = _mm256_permute_ps(v, 0xB1);  // (a1, a0, a3, a2, ...)
      _mm256_storeu_ps(y + i, _mm256_fmadd_ps(v, _mm256_loadu_ps(cs + i), _mm256_mul_ps(sw, _mm256_loadu_ps(sn + i))));
    }
    for (int64_t p = i / 2; p < half; ++p) {
      const float a0 = x[2 * p], a1 = x[2 * p + 1], c = cs[2 * p], s = sn[2 * p + 1];
      y[2 * p] = a0 * c - a1 * s;
      y[2 * p + 1] = a0 * s + a1 * c;
    }
    return;
  }
  for (; i + 8 <= half; i += 8) {
    __m256 a0 = _mm256_loadu_ps(x + i), a1 = _mm256_loadu_ps(x + i + half);
    __m256 c = _mm256_loadu_ps(cs + i), s = _mm256_loadu_ps(sn + i);
    __m256 y0 = _mm256_fmsub_ps(a0, c, _mm256_mul_ps(a1, s));
    __m256 y1 = _mm256_fmadd_ps(a0, s, _mm256_mul_ps(a1, c));
    _mm256_storeu_ps(y + i, y0);
    _mm256_storeu_ps(y + i + half, y1);
  }
  for (; i < half; ++i) {
    const float a0 = x[i], a1 = x[i + half], c = cs[i], s = sn[i];
    y[i] = a0 * c - a1 * s;
    y[i + half] = a0 * s + a1 * c;
  }
}
#endif

// One time step's table row: (c_i, sign * s_i) for i < half, written in the layout described above.
void rope_table_row_s(double pos, const float* invFreq, int64_t half, double sign, bool inter, float* ct,
                      float* st, int64_t i0 = 0) {
  for (int64_t i = i0; i < half; ++i) {
    const double ang = pos * static_cast<double>(invFreq[i]);
    const float c = static_cast<float>(std::cos(ang)), s = static_cast<float>(sign * std::sin(ang));
    if (inter) {
      ct[2 * i] = ct[2 * i + 1] = c;
      st[2 * i] = -s;
      st[2 * i + 1] = s;
    } else {
      ct[i] = c;
      st[i] = s;
    }
  }
}

#if RF_X86
// Four angles at a time in double, ~10x faster than libm sin + cos. The angle pos * invFreq is formed exactly as
// the reference does (one double multiply), reduced by k = round(ang / (pi/2)) with pi/2 split in two parts and
// FMAs (error ~1e-16 for |ang| < 2^30), then sin and cos of r in [-pi/4, pi/4] by Taylor polynomials to r^9 and
// r^10 (truncation below 3e-9, far under a float ulp) and the quadrant k mod 4 swaps and negates them.
// Larger angles (k would not fit the int32 quadrant) take the libm path.
RF_AVX2 void rope_table_row_v(double pos, const float* invFreq, int64_t half, double sign, bool inter, float* ct,
                              float* st) {
  const __m256d pv = _mm256_set1_pd(pos), two_over_pi = _mm256_set1_pd(0.63661977236758134308);
  const __m256d pio2_hi = _mm256_set1_pd(1.5707963267948966), pio2_lo = _mm256_set1_pd(6.123233995736766e-17);
  const __m256d sg = _mm256_set1_pd(sign), one = _mm256_set1_pd(1.0), big = _mm256_set1_pd(1073741824.0);
  const __m256d absmask = _mm256_castsi256_pd(_mm256_set1_epi64x(0x7fffffffffffffffLL));
  int64_t i = 0;
  for (; i + 4 <= half; i += 4) {
    const __m256d ang = _mm256_mul_pd(pv, _mm256_cvtps_pd(_mm_loadu_ps(invFreq + i)));
    if (_mm256_movemask_pd(_mm256_cmp_pd(_mm256_and_pd(ang, absmask), big, _CMP_NLT_UQ))) break;
    const __m256d k = _mm256_round_pd(_mm256_mul_pd(ang, two_over_pi), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256d r = _mm256_fnmadd_pd(k, pio2_hi, ang);
    r = _mm256_fnmadd_pd(k, pio2_lo, r);
    const __m256d z = _mm256_mul_pd(r, r);
    __m256d ps = _mm256_set1_pd(1.0 / 362880.0);
    ps = _mm256_fmadd_pd(ps, z, _mm256_set1_pd(-1.0 / 5040.0));
    ps = _mm256_fmadd_pd(ps, z, _mm256_set1_pd(1.0 / 120.0));
    ps = _mm256_fmadd_pd(ps, z, _mm256_set1_pd(-1.0 / 6.0));
    const __m256d sr = _mm256_fmadd_pd(_mm256_mul_pd(r, z), ps, r);
    __m256d pc = _mm256_set1_pd(-1.0 / 3628800.0);
    pc = _mm256_fmadd_pd(pc, z, _mm256_set1_pd(1.0 / 40320.0));
    pc = _mm256_fmadd_pd(pc, z, _mm256_set1_pd(-1.0 / 720.0));
    pc = _mm256_fmadd_pd(pc, z, _mm256_set1_pd(1.0 / 24.0));
    pc = _mm256_fmadd_pd(pc, z, _mm256_set1_pd(-0.5));
    const __m256d cr = _mm256_fmadd_pd(z, pc, one);
    // Quadrant q = k mod 4: sin(r + q pi/2) = (s, c, -s, -c)[q], cos(r + q pi/2) = (c, -s, -c, s)[q].
    const __m256i q = _mm256_cvtepi32_epi64(_mm256_cvtpd_epi32(k));
    const __m256d swap = _mm256_castsi256_pd(_mm256_cmpeq_epi64(_mm256_and_si256(q, _mm256_set1_epi64x(1)),
                                                                _mm256_set1_epi64x(1)));
    const __m256i sbit = _mm256_slli_epi64(_mm256_and_si256(q, _mm256_set1_epi64x(2)), 62);
    const __m256i cbit = _mm256_slli_epi64(_mm256_and_si256(_mm256_add_epi64(q, _mm256_set1_epi64x(1)),
                                                            _mm256_set1_epi64x(2)), 62);
    __m256d sv = _mm256_xor_pd(_mm256_blendv_pd(sr, cr, swap), _mm256_castsi256_pd(sbit));
    __m256d cv = _mm256_xor_pd(_mm256_blendv_pd(cr, sr, swap), _mm256_castsi256_pd(cbit));
    const __m128 c4 = _mm256_cvtpd_ps(cv), s4 = _mm256_cvtpd_ps(_mm256_mul_pd(sg, sv));
    if (inter) {
      // (c0 c0 c1 c1 ...) and (-s0 s0 -s1 s1 ...)
      _mm_storeu_ps(ct + 2 * i, _mm_unpacklo_ps(c4, c4));
      _mm_storeu_ps(ct + 2 * i + 4, _mm_unpackhi_ps(c4, c4));
      const __m128 ns4 = _mm_xor_ps(s4, _mm_set1_ps(-0.f));
      _mm_storeu_ps(st + 2 * i, _mm_unpacklo_ps(ns4, s4));
      _mm_storeu_ps(st + 2 * i + 4, _mm_unpackhi_ps(ns4, s4));
    } else {
      _mm_storeu_ps(ct + i, c4);
      _mm_storeu_ps(st + i, s4);
    }
  }
  rope_table_row_s(pos, invFreq, half, sign, inter, ct, st, i);
}
#endif

Napi::Value Rope(const Napi::CallbackInfo& info) {
  ArgReader r(info, "rope");
  size_t nx = 0, npos = 0, nf = 0, ny = 0;
  const float* x = r.f32(0, &nx);
  int64_t B = size_arg(r, 1, "B"), T = size_arg(r, 2, "T"), H = size_arg(r, 3, "H"), Dh = size_arg(r, 4, "Dh");
  int64_t rotDim = size_arg(r, 5, "rotDim");
  const int32_t* pos = r.i32(6, &npos);
  const float* invFreq = r.f32(7, &nf);
  const bool inter = r.num(8) != 0;
  const double sign = r.num(9);
  float* y = r.f32(10, &ny);
  if (!r.ok) return info.Env().Undefined();
  if (rotDim > Dh || rotDim % 2 != 0) {
    range_error(r, "rotDim = " + std::to_string(rotDim) + " must be even and at most Dh = " + std::to_string(Dh));
    return info.Env().Undefined();
  }
  const int64_t half = rotDim / 2;
  const int64_t total = mul(mul(mul(B, T), H), Dh);
  need_len(r, "x", nx, total, "B * T * H * Dh");
  need_len(r, "positions", npos, T, "T");
  need_len(r, "invFreq", nf, half, "rotDim / 2");
  need_len(r, "y", ny, total, "B * T * H * Dh");
  if (!r.ok || total == 0) return info.Env().Undefined();
  std::vector<float> cs(static_cast<size_t>(T * rotDim)), sn(static_cast<size_t>(T * rotDim));
  const bool avx = rf::has_avx2();
  pfor(T, grain_rows(half * 8, 16384), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      float* ct = cs.data() + t * rotDim;
      float* st = sn.data() + t * rotDim;
#if RF_X86
      if (avx) {
        rope_table_row_v(static_cast<double>(pos[t]), invFreq, half, sign, inter, ct, st);
        continue;
      }
#endif
      rope_table_row_s(static_cast<double>(pos[t]), invFreq, half, sign, inter, ct, st);
    }
  });
  const size_t tail = static_cast<size_t>(Dh - rotDim) * sizeof(float);
  pfor(B * T * H, grain_rows(Dh, 16384), [&](int64_t b, int64_t e) {
    for (int64_t row = b; row < e; ++row) {
      const int64_t t = (row / H) % T;
      const float* xr = x + row * Dh;
      float* yr = y + row * Dh;
      const float* ct = cs.data() + t * rotDim;
      const float* st = sn.data() + t * rotDim;
#if RF_X86
      if (avx) rope_row_v(xr, yr, ct, st, half, inter); else
#endif
      rope_row_s(xr, yr, ct, st, half, inter);
      // memmove: y may alias x (in-place rope), in which case this is a no-op copy onto itself.
      if (tail && xr != yr) std::memmove(yr + rotDim, xr + rotDim, tail);
    }
  });
  (void)avx;
  return info.Env().Undefined();
}

}  // namespace

void register_norms(Napi::Env env, Napi::Object exports) {
  exports.Set("softmax", Napi::Function::New(env, Softmax, "softmax"));
  exports.Set("softmaxGrad", Napi::Function::New(env, SoftmaxGrad, "softmaxGrad"));
  exports.Set("logSoftmax", Napi::Function::New(env, LogSoftmax, "logSoftmax"));
  exports.Set("logSoftmaxGrad", Napi::Function::New(env, LogSoftmaxGrad, "logSoftmaxGrad"));
  exports.Set("crossEntropy", Napi::Function::New(env, CrossEntropy, "crossEntropy"));
  exports.Set("rmsnorm", Napi::Function::New(env, Rmsnorm, "rmsnorm"));
  exports.Set("rmsnormGrad", Napi::Function::New(env, RmsnormGrad, "rmsnormGrad"));
  exports.Set("layernorm", Napi::Function::New(env, Layernorm, "layernorm"));
  exports.Set("layernormGrad", Napi::Function::New(env, LayernormGrad, "layernormGrad"));
  exports.Set("rope", Napi::Function::New(env, Rope, "rope"));
}
