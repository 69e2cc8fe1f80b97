// Helpers shared by elementwise.cpp, norms.cpp and optim.cpp: size/length validation that throws a RangeError
// naming the kernel and the argument, the chunked "per-thread partial sums" runner, and the AVX2 vector math
// (exp, log1p, sigmoid, horizontal reductions, tail masks).
//
// SIMD rule of this addon: every function that uses AVX2 intrinsics carries RF_AVX2 (a per-function target
// attribute) and is reached only through the AVX2 instance of its family's kernel table, which rf::pick chooses
// only on a CPU that has AVX2 (common.h); lambdas do not inherit the attribute, so parallel bodies are plain
// lambdas that call table entries.
#pragma once
#include "common.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <string>

namespace rf {
namespace ew {

// ---- validation ----------------------------------------------------------------------------------------------

// Throws a RangeError "recurformer native <kernel>: <msg>" unless one is already pending.
inline void range_error(ArgReader& r, const std::string& msg) {
  if (!r.ok) return;
  r.ok = false;
  Napi::RangeError::New(r.info.Env(), std::string("recurformer native ") + r.kernel + ": " + msg)
      .ThrowAsJavaScriptException();
}

// A non-negative integer size argument. Rejects NaN, fractions, negatives and values above 2^40 (no typed array
// is that long, and the bound keeps every product of two sizes inside int64).
inline int64_t size_arg(ArgReader& r, size_t idx, const char* name) {
  double v = r.num(idx);
  if (!r.ok) return 0;
  if (!(v >= 0) || v != std::floor(v) || v > 1099511627776.0) {
    range_error(r, std::string(name) + " must be a non-negative integer, got " + std::to_string(v));
    return 0;
  }
  return static_cast<int64_t>(v);
}

// An integer argument that may be negative (ignoreIndex, op codes).
inline int64_t int_arg(ArgReader& r, size_t idx, const char* name) {
  double v = r.num(idx);
  if (!r.ok) return 0;
  if (!(std::fabs(v) <= 9007199254740992.0) || v != std::floor(v)) {
    range_error(r, std::string(name) + " must be an integer, got " + std::to_string(v));
    return 0;
  }
  return static_cast<int64_t>(v);
}

// Saturating product so that absurd sizes fail the length check instead of overflowing.
inline int64_t mul(int64_t a, int64_t b) {
  int64_t out;
  if (__builtin_mul_overflow(a, b, &out)) return std::numeric_limits<int64_t>::max();
  return out;
}

// Requires `have >= need` elements in argument `name`; `what` says where `need` comes from.
inline bool need_len(ArgReader& r, const char* name, size_t have, int64_t need, const char* what) {
  if (!r.ok) return false;
  if (static_cast<int64_t>(have) < need) {
    range_error(r, std::string(name) + " has length " + std::to_string(have) + ", needs at least " +
                       std::to_string(need) + " (" + what + ")");
    return false;
  }
  return true;
}

// Optional arrays (weights, biases, dlogits): empty means "absent", otherwise they must cover `need`.
inline bool opt_len(ArgReader& r, const char* name, size_t have, int64_t need, const char* what) {
  if (!r.ok) return false;
  if (have == 0) return true;
  return need_len(r, name, have, need, what);
}

// ---- threading ---------------------------------------------------------------------------------------------

// Work per parallel chunk below which splitting costs more than it saves (the pool wake-up is a few µs).
constexpr int64_t kGrainBytes = 64 * 1024;

inline int64_t grain_rows(int64_t row_elems, int64_t min_elems) {
  if (row_elems < 1) row_elems = 1;
  int64_t g = min_elems / row_elems;
  return g < 1 ? 1 : g;
}

// rf::parallel_for for work that may be tiny: below one grain it calls fn(0, n) directly, skipping the
// std::function (a heap allocation for lambdas with many captures) and the pool. Decode steps issue dozens of
// single-row calls where that overhead would be most of the cost.
template <class F>
inline void pfor(int64_t n, int64_t grain, const F& fn) {
  if (n <= 0) return;
  if (n <= grain || num_threads() <= 1) {
    fn(int64_t(0), n);
    return;
  }
  parallel_for(n, grain, fn);
}

// Runs fn(begin, end, acc) over [0, n) in contiguous chunks (one per pool thread at most, at least `grain`
// items each). Every chunk accumulates into its own zeroed buffer of `width` floats; the buffers are then summed
// in chunk order into `out` (`width` zeroed floats, which the caller adds to its destination). This keeps
// accumulations such as gw in the norm backward passes race-free without atomics, and deterministic for a given
// thread count.
template <class F>
void chunks_with_partials(int64_t n, int64_t grain, int64_t width, float* out, const F& fn) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  int64_t max_chunks = (n + grain - 1) / grain;
  int nt = num_threads();
  if (max_chunks <= 1 || nt <= 1) {
    fn(int64_t(0), n, out);
    return;
  }
  Buffer<float> parts(static_cast<size_t>(nt) * static_cast<size_t>(width));
  parallel_run([&](int tid, int nthreads) {
    int64_t chunks = nthreads < max_chunks ? nthreads : max_chunks;
    if (tid >= chunks) return;
    int64_t b = n * tid / chunks, e = n * (tid + 1) / chunks;
    if (b < e) fn(b, e, parts.data() + static_cast<size_t>(tid) * static_cast<size_t>(width));
  });
  for (int t = 0; t < nt; ++t) {
    const float* p = parts.data() + static_cast<size_t>(t) * static_cast<size_t>(width);
    for (int64_t i = 0; i < width; ++i) out[i] += p[i];
  }
}

// ---- scalar math -------------------------------------------------------------------------------------------

constexpr float kSqrt2OverPi = 0.7978845608028654f;
constexpr float kGeluC = 0.044715f;
constexpr float kInvSqrt2 = 0.7071067811865476f;
constexpr float kInvSqrt2Pi = 0.3989422804014327f;

// Scalar twin of erfc8_nonneg / two_phi8 (the reference's Numerical Recipes erfc).
inline float erfc_nr_s(float z) {
  const float t = 1.f / (1.f + 0.5f * z);
  const float p = -1.26551223f + t * (1.00002368f + t * (0.37409196f + t * (0.09678418f + t * (-0.18628806f +
                  t * (0.27886807f + t * (-1.13520398f + t * (1.48851587f + t * (-0.82215223f + t * 0.17087277f))))))));
  return t * std::exp(-z * z + p);
}
inline float two_phi_s(float x) {
  const float r = erfc_nr_s(std::fabs(x) * kInvSqrt2);
  return x >= 0.f ? 2.f - r : r;
}

inline float sigmoid_s(float x) { return 1.f / (1.f + std::exp(-x)); }
inline float softplus_s(float x) { return x > 20.f ? x : std::log1p(std::exp(x)); }

#if RF_X86
// ---- AVX2 vector math ----------------------------------------------------------------------------------------

// Mask with the first `rem` (0..8) lanes set, for masked loads/stores of a row's tail: the tail then goes through
// the same vector code as the body, so results do not depend on where an element falls.
RF_AVX2 static inline __m256i tail_mask(int64_t rem) {
  const __m256i lanes = _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7);
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(rem)), lanes);
}

RF_AVX2 static inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

RF_AVX2 static inline double hsum_pd(__m256d v) {
  __m128d s = _mm_add_pd(_mm256_castpd256_pd128(v), _mm256_extractf128_pd(v, 1));
  s = _mm_add_sd(s, _mm_unpackhi_pd(s, s));
  return _mm_cvtsd_f64(s);
}

RF_AVX2 static inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// exp(x) for 8 floats, within ~1 ulp (about 17 instructions).
//  * Cody-Waite reduction x = n ln2 + r, |r| <= ln2/2, with n = round(x log2 e) taken from the low bits of
//    x log2 e + 1.5 * 2^23 (one FMA rounds to the nearest integer and leaves it in the mantissa).
//  * exp(r) by a degree-6 polynomial 1 + r + r^2 (c2 + ... + c6 r^4) fitted for minimax relative error on
//    [-ln2/2, ln2/2] (3.8e-9 with these float coefficients, well under half an ulp), evaluated as 2 exp(r) so
//    that the scale factor can be 2^(n-1): exponent fields 0..254 then cover n = -126..128 without overflow.
//  * The input is clamped to [-87.3, 88.73]. At the top, n = 128 makes 2 exp(r) 2^127 overflow to inf as it
//    should. At the bottom, n = -126 gives the bit pattern of +0: results below ~1.8e-38 (x < -86.99) are
//    flushed to 0, no subnormals are produced, -inf gives 0. max/min are ordered so that NaN passes the clamp.
//  Measured: at most 0.87 ulp against exp in double over the whole normal output range.
RF_AVX2 static inline __m256 exp8(__m256 x) {
  x = _mm256_min_ps(_mm256_set1_ps(88.73f), _mm256_max_ps(_mm256_set1_ps(-87.3f), x));
  const __m256 magic = _mm256_set1_ps(12582912.f);  // 1.5 * 2^23
  const __m256 t = _mm256_fmadd_ps(x, _mm256_set1_ps(1.4426950408889634f), magic);
  const __m256 n = _mm256_sub_ps(t, magic);
  // ln2 split into a high part with few mantissa bits (n * hi is exact) and the remainder.
  __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 p = _mm256_set1_ps(2.f * 0.0013814611593261361f);
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(2.f * 0.008368710055947304f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(2.f * 0.04166838899254799f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(2.f * 0.1666652113199234f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(2.f * 0.4999999403953552f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(2.f));
  p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(2.f));
  // n - 1 + 127 in the exponent field: t's integer bits minus magic's are n.
  const __m256i e = _mm256_add_epi32(_mm256_sub_epi32(_mm256_castps_si256(t), _mm256_castps_si256(magic)),
                                     _mm256_set1_epi32(126));
  return _mm256_mul_ps(p, _mm256_castsi256_ps(_mm256_slli_epi32(e, 23)));
}

// log1p(u) for u in [0, 1] (what softplus needs), about 1-2 ulp: log(1+u) = 2 atanh(s) with s = u / (2 + u) in
// [0, 1/3], an odd series in s whose terms fall by 9x each; tiny u gives s = u/2 and the result u exactly.
RF_AVX2 static inline __m256 log1p8_unit(__m256 u) {
  __m256 s = _mm256_div_ps(u, _mm256_add_ps(_mm256_set1_ps(2.f), u));
  __m256 z = _mm256_mul_ps(s, s);
  __m256 p = _mm256_set1_ps(2.f / 19.f);
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(2.f / 17.f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(2.f / 15.f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(2.f / 13.f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(2.f / 11.f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(2.f / 9.f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(2.f / 7.f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(2.f / 5.f));
  p = _mm256_fmadd_ps(p, z, _mm256_set1_ps(2.f / 3.f));
  // 2s + s * z * p: the leading term is added last so it is not rounded together with the small ones.
  return _mm256_fmadd_ps(_mm256_mul_ps(s, z), p, _mm256_add_ps(s, s));
}

// Forces v to be materialized as a rounded float vector. GCC contracts a separate multiply and add written with
// intrinsics into one FMA; where a value must cancel exactly against a copy of itself computed elsewhere (g - mean(g)
// with one element), the product has to be rounded the same way on both sides.
RF_AVX2 static inline __m256 opaque(__m256 v) {
  __asm__("" : "+x"(v));
  return v;
}

// 1 / (1 + exp(-x)). Very negative x gives exp(-x) = inf and a clean 0.
RF_AVX2 static inline __m256 sigmoid8(__m256 x) {
  const __m256 one = _mm256_set1_ps(1.f);
  return _mm256_div_ps(one, _mm256_add_ps(one, exp8(_mm256_sub_ps(_mm256_setzero_ps(), x))));
}

// softplus(x) = max(x, 0) + log1p(exp(-|x|)): no overflow, no cancellation for very negative x.
RF_AVX2 static inline __m256 softplus8(__m256 x) {
  __m256 ax = _mm256_andnot_ps(_mm256_set1_ps(-0.f), x);
  __m256 l = log1p8_unit(exp8(_mm256_sub_ps(_mm256_setzero_ps(), ax)));
  return _mm256_add_ps(_mm256_max_ps(x, _mm256_setzero_ps()), l);
}

// tanh(x), about 1-2 ulp. |x| < 0.625: x + x^3 P(x^2) with P of degree 4 fitted for minimax relative error
// (8.7e-9); beyond, sign(x) (1 - 2 / (exp(2|x|) + 1)), whose cancellation costs under an ulp from 0.625 up.
// Large |x| gives exp = inf and exactly +-1; NaN takes the second branch and stays NaN.
RF_AVX2 static inline __m256 tanh8(__m256 x) {
  const __m256 sign = _mm256_set1_ps(-0.f), one = _mm256_set1_ps(1.f);
  const __m256 ax = _mm256_andnot_ps(sign, x);
  const __m256 x2 = _mm256_mul_ps(x, x);
  __m256 p = _mm256_set1_ps(-0.005704978480935097f);
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(0.020639078691601753f));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-0.05373971164226532f));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(0.13331441581249237f));
  p = _mm256_fmadd_ps(p, x2, _mm256_set1_ps(-0.3333328068256378f));
  const __m256 small = _mm256_fmadd_ps(_mm256_mul_ps(x, x2), p, x);
  const __m256 e = exp8(_mm256_add_ps(ax, ax));
  const __m256 big = _mm256_sub_ps(one, _mm256_div_ps(_mm256_set1_ps(2.f), _mm256_add_ps(e, one)));
  const __m256 signed_big = _mm256_or_ps(big, _mm256_and_ps(sign, x));
  return _mm256_blendv_ps(signed_big, small, _mm256_cmp_ps(ax, _mm256_set1_ps(0.625f), _CMP_LT_OQ));
}

// erfc(z) for z >= 0 with the Numerical Recipes Chebyshev fit the reference uses (fractional error < 1.2e-7):
// t = 1 / (1 + z/2), erfc = t exp(-z^2 + poly(t)). Using the oracle's own formula keeps the two within float
// rounding of each other.
RF_AVX2 static inline __m256 erfc8_nonneg(__m256 z) {
  const __m256 t = _mm256_div_ps(_mm256_set1_ps(1.f), _mm256_fmadd_ps(_mm256_set1_ps(0.5f), z, _mm256_set1_ps(1.f)));
  __m256 p = _mm256_set1_ps(0.17087277f);
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.82215223f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.48851587f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.13520398f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.27886807f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-0.18628806f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.09678418f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(0.37409196f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(1.00002368f));
  p = _mm256_fmadd_ps(p, t, _mm256_set1_ps(-1.26551223f));
  return _mm256_mul_ps(t, exp8(_mm256_fnmadd_ps(z, z, p)));
}

// 1 + erf(x / sqrt 2) = 2 Phi(x): 2 - erfc(|x|/sqrt 2) for x >= 0, erfc(|x|/sqrt 2) below (no cancellation).
RF_AVX2 static inline __m256 two_phi8(__m256 x) {
  const __m256 r = erfc8_nonneg(_mm256_mul_ps(_mm256_andnot_ps(_mm256_set1_ps(-0.f), x), _mm256_set1_ps(kInvSqrt2)));
  return _mm256_blendv_ps(r, _mm256_sub_ps(_mm256_set1_ps(2.f), r), _mm256_cmp_ps(x, _mm256_setzero_ps(), _CMP_GE_OQ));
}

// 2u for the tanh-form GELU: 0.5 (1 + tanh(u)) = sigmoid(2u) with u = sqrt(2/pi) (x + c x^3).
RF_AVX2 static inline __m256 gelu_2u8(__m256 x) {
  __m256 x2 = _mm256_mul_ps(x, x);
  __m256 inner = _mm256_fmadd_ps(_mm256_mul_ps(_mm256_set1_ps(kGeluC), x2), x, x);
  return _mm256_mul_ps(_mm256_set1_ps(2.f * kSqrt2OverPi), inner);
}
#endif

}  // namespace ew
}  // namespace rf
