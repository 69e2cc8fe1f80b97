// Normalization kernels: rmsnorm, rmsnormGrad, layernorm, layernormGrad (softmax and cross-entropy are in
// softmax.cpp, rope in rope.cpp).
//
// Rows run in parallel (a grain keeps decode-sized calls, one short row, on the calling thread). Within a row,
// sums are formed in float vector lanes over blocks of kBlock elements and the block totals added in double: as
// cheap as a float sum, while the error no longer grows with the row length (vocabulary-sized rows).
// Weight gradients (gw, gb) accumulate per chunk of rows into private buffers that are summed at the end, so
// no two threads ever add into the same element.
#include "row_helpers.h"

#include <algorithm>

namespace {

using rf::ArgReader;
using namespace rf::rows;

// The family's kernel table (rf::pick, common.h): the per-row kernels, defined below in a scalar and an AVX2 form
// with the same contracts. `w` / `b` == nullptr mean "no weight" / "no bias"; the gradient rows accumulate into
// acc / accw / accb when those are given.
struct NormKernels {
  void (*rmsnorm_row)(const float* x, const float* w, int64_t D, float eps, float* y, float* rstd);
  void (*rmsnorm_grad_row)(const float* x, const float* w, float rs, const float* gy, int64_t D, float* gx,
                           float* acc);
  void (*layernorm_row)(const float* x, const float* w, const float* b, int64_t D, float eps, float* y, float* mean,
                        float* rstd);
  void (*layernorm_grad_row)(const float* x, const float* w, float mu, float rs, const float* gy, int64_t D,
                             float* gx, float* accw, float* accb);
};
const NormKernels& kernels();

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
  const auto row = kernels().rmsnorm_row;
  pfor(rows, grain_rows(D, 16384), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) row(x + i * D, wp, D, eps, y + i * D, rstd + i);
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
  const auto row = kernels().rmsnorm_grad_row;
  rf::Buffer<float> acc(static_cast<size_t>(wp ? D : 0));
  chunks_with_partials(rows, grain_rows(D, 16384), wp ? D : 0, acc.data(), [&](int64_t b, int64_t e, float* part) {
    float* ap = wp ? part : nullptr;
    for (int64_t i = b; i < e; ++i) row(x + i * D, wp, rstd[i], gy + i * D, D, gx + i * D, ap);
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
  const auto row = kernels().layernorm_row;
  pfor(rows, grain_rows(D, 16384), [&](int64_t rb, int64_t re) {
    for (int64_t i = rb; i < re; ++i) row(x + i * D, wp, bp, D, eps, y + i * D, mean + i, rstd + i);
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
  const auto row = kernels().layernorm_grad_row;
  // Partial layout: [gw (D) | gb (D)].
  rf::Buffer<float> acc(static_cast<size_t>(2 * D));
  chunks_with_partials(rows, grain_rows(D, 16384), 2 * D, acc.data(), [&](int64_t b, int64_t e, float* part) {
    float* aw = want_w ? part : nullptr;
    float* ab = want_b ? part + D : nullptr;
    for (int64_t i = b; i < e; ++i) row(x + i * D, wp, mean[i], rstd[i], gy + i * D, D, gx + i * D, aw, ab);
  });
  if (want_w)
    for (int64_t j = 0; j < D; ++j) gw[j] += acc[static_cast<size_t>(j)];
  if (want_b)
    for (int64_t j = 0; j < D; ++j) gb[j] += acc[static_cast<size_t>(D + j)];
  return info.Env().Undefined();
}

// ---- the kernel tables -----------------------------------------------------------------------------------------

const NormKernels kScalar = {rmsnorm_row_s, rmsnorm_grad_row_s, layernorm_row_s, layernorm_grad_row_s};
#if RF_X86
const NormKernels kAvx2 = {rmsnorm_row_v, rmsnorm_grad_row_v, layernorm_row_v, layernorm_grad_row_v};
#endif

const NormKernels& kernels() {
  static const NormKernels& t = rf::pick(kScalar, RF_X86_TABLE(kAvx2));
  return t;
}

}  // namespace

void register_norms(Napi::Env env, Napi::Object exports) {
  rf::export_fn<Rmsnorm>(env, exports, "rmsnorm");
  rf::export_fn<RmsnormGrad>(env, exports, "rmsnormGrad");
  rf::export_fn<Layernorm>(env, exports, "layernorm");
  rf::export_fn<LayernormGrad>(env, exports, "layernormGrad");
}
