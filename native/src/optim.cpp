// AdamW step over a flat parameter: one streaming pass over p, g, m, v (16 bytes read + 12 written per
// parameter), vectorized and split across the pool.
//   m = b1 m + (1 - b1) g;  v = b2 v + (1 - b2) g^2;  p -= lr (m / bc1 / (sqrt(v / bc2) + eps) + wd p).
//
// Precision split: the moment recurrences run in double with the double hyperparameters and round once when
// stored, like the reference. In float, b1 m + (1 - b1) g cancels when m and g have opposite signs, and the
// stored moments then drift from the reference's step after step. The update ratio m / (sqrt(v) + eps) is formed
// in 8-wide float from the stored moments: a few ulp there move p by a few ulp of lr * update, far below an ulp
// of p. All-double arithmetic (two divides and a square root per 4 parameters) measured about 2x slower here,
// where the float-ratio version runs at memory speed.
#include "ew_simd.h"

namespace {

using rf::ArgReader;
using namespace rf::ew;

struct AdamConsts {
  double b1, c1, b2, c2;    // moment recurrences, in double
  float lr, eps, wd, ib1, ib2;  // update ratio, in float (ib = 1 / bias correction)
};

void adamw_scalar(float* p, const float* g, float* m, float* v, int64_t n, const AdamConsts& k) {
  for (int64_t i = 0; i < n; ++i) {
    const double gi = g[i];
    const float mi = static_cast<float>(k.b1 * m[i] + k.c1 * gi);
    const float vi = static_cast<float>(k.b2 * v[i] + k.c2 * gi * gi);
    m[i] = mi;
    v[i] = vi;
    p[i] -= k.lr * (mi * k.ib1 / (std::sqrt(vi * k.ib2) + k.eps) + k.wd * p[i]);
  }
}

#if RF_X86
// b * x + c * y for 8 floats x, y in double, rounded back to 8 floats (y2 = true squares y first).
template <bool SQUARE>
RF_AVX2 inline __m256 moment8(__m256d b, __m256 x, __m256d c, __m256 y) {
  __m256d ylo = _mm256_cvtps_pd(_mm256_castps256_ps128(y)), yhi = _mm256_cvtps_pd(_mm256_extractf128_ps(y, 1));
  if (SQUARE) {
    ylo = _mm256_mul_pd(ylo, ylo);
    yhi = _mm256_mul_pd(yhi, yhi);
  }
  const __m256d lo = _mm256_fmadd_pd(b, _mm256_cvtps_pd(_mm256_castps256_ps128(x)), _mm256_mul_pd(c, ylo));
  const __m256d hi = _mm256_fmadd_pd(b, _mm256_cvtps_pd(_mm256_extractf128_ps(x, 1)), _mm256_mul_pd(c, yhi));
  return _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo));
}

RF_AVX2 void adamw_avx2(float* p, const float* g, float* m, float* v, int64_t n, const AdamConsts& k) {
  const __m256d b1 = _mm256_set1_pd(k.b1), c1 = _mm256_set1_pd(k.c1), b2 = _mm256_set1_pd(k.b2),
                c2 = _mm256_set1_pd(k.c2);
  const __m256 lr = _mm256_set1_ps(k.lr), eps = _mm256_set1_ps(k.eps), wd = _mm256_set1_ps(k.wd),
               ib1 = _mm256_set1_ps(k.ib1), ib2 = _mm256_set1_ps(k.ib2);
  for (int64_t i = 0; i < n; i += 8) {
    // Full vectors with an all-ones mask, then one masked tail: the same instructions for every element.
    const __m256i mk = i + 8 <= n ? _mm256_set1_epi32(-1) : tail_mask(n - i);
    const __m256 gi = _mm256_maskload_ps(g + i, mk);
    const __m256 mi = moment8<false>(b1, _mm256_maskload_ps(m + i, mk), c1, gi);
    const __m256 vi = moment8<true>(b2, _mm256_maskload_ps(v + i, mk), c2, gi);
    const __m256 pi = _mm256_maskload_ps(p + i, mk);
    const __m256 den = _mm256_add_ps(_mm256_sqrt_ps(_mm256_mul_ps(vi, ib2)), eps);
    const __m256 upd = _mm256_fmadd_ps(wd, pi, _mm256_div_ps(_mm256_mul_ps(mi, ib1), den));
    _mm256_maskstore_ps(m + i, mk, mi);
    _mm256_maskstore_ps(v + i, mk, vi);
    _mm256_maskstore_ps(p + i, mk, _mm256_fnmadd_ps(lr, upd, pi));
  }
}
#endif

// The family's kernel table (rf::pick, common.h).
struct OptimKernels {
  // One AdamW step on n contiguous parameters with their gradients and moments.
  void (*adamw)(float* p, const float* g, float* m, float* v, int64_t n, const AdamConsts& k);
};

const OptimKernels kScalar = {adamw_scalar};
#if RF_X86
const OptimKernels kAvx2 = {adamw_avx2};
#endif

const OptimKernels& kernels() {
  static const OptimKernels& t = rf::pick(kScalar, RF_X86_TABLE(kAvx2));
  return t;
}

Napi::Value Adamw(const Napi::CallbackInfo& info) {
  ArgReader r(info, "adamw");
  size_t np = 0, ng = 0, nm = 0, nv = 0;
  float* p = r.f32(0, &np);
  const float* g = r.f32(1, &ng);
  float* m = r.f32(2, &nm);
  float* v = r.f32(3, &nv);
  const double lr = r.num(4), b1 = r.num(5), b2 = r.num(6), eps = r.num(7), wd = r.num(8), bc1 = r.num(9),
               bc2 = r.num(10);
  if (!r.ok) return info.Env().Undefined();
  const int64_t n = static_cast<int64_t>(np);
  need_len(r, "g", ng, n, "p.length");
  need_len(r, "m", nm, n, "p.length");
  need_len(r, "v", nv, n, "p.length");
  if (!r.ok) return info.Env().Undefined();
  const AdamConsts k{b1, 1.0 - b1, b2, 1.0 - b2, static_cast<float>(lr), static_cast<float>(eps),
                     static_cast<float>(wd), static_cast<float>(1.0 / bc1), static_cast<float>(1.0 / bc2)};
  const auto step = kernels().adamw;
  pfor(n, 16384, [&](int64_t b, int64_t e) { step(p + b, g + b, m + b, v + b, e - b, k); });
  return info.Env().Undefined();
}

}  // namespace

void register_optim(Napi::Env env, Napi::Object exports) {
  rf::export_fn<Adamw>(env, exports, "adamw");
}
