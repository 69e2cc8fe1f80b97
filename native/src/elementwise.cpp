// Element-wise kernels: unary, unaryGrad, binary (strided broadcast), affine, axpy, sumSquares.
// The reductions and data-movement kernels of the same family live in ew_reduce.cpp and ew_move.cpp; this file's
// register_elementwise registers all of them.
//
// Accuracy: the reference computes in float64 and rounds once. Add/Sub/Mul/Div/Max/Min in float32 give the same
// bits (double rounding is harmless for one IEEE operation when 53 >= 2 * 24 + 2). Transcendentals use the
// vector exp / log1p / tanh of ew_simd.h (1-2 ulp) and, for GELU-erf, the reference's own erfc fit; only log
// stays on libm. The scalar fallbacks use libm with the same cancellation-free formulas.
#include "ew_simd.h"

#include <utility>

namespace {

using rf::ArgReader;
using namespace rf::ew;

// UnaryOp codes, shared with src/tensor/kernels.ts.
enum Unary : int {
  kNeg = 0, kExp = 1, kLog = 2, kSqrt = 3, kRsqrt = 4, kSilu = 5, kGeluTanh = 6, kGeluErf = 7, kSigmoid = 8,
  kSoftplus = 9, kRelu = 10, kSquare = 11, kAbs = 12, kTanh = 13,
};
constexpr int kUnaryCount = 14;

// BinaryOp codes.
enum Binary : int { kAdd = 0, kSub = 1, kMul = 2, kDiv = 3, kMax = 4, kMin = 5 };
constexpr int kBinaryCount = 6;

// The family's kernel table (rf::pick, common.h): a scalar and an AVX2 instance, defined after the kernels.
struct EwKernels {
  // y[0:n] = f(x[0:n]) and gx[0:n] = gy * f'(x) (y = f(x)), one entry per UnaryOp code.
  void (*unary[kUnaryCount])(const float* x, float* y, int64_t n);
  void (*unary_grad[kUnaryCount])(const float* x, const float* y, const float* gy, float* gx, int64_t n);
  // The inner (last, after coalescing) axis of a binary op: out[i] = a[i * sa] (op) b[i * sb] for i < n, one entry
  // per BinaryOp code.
  void (*binary[kBinaryCount])(const float* a, int64_t sa, const float* b, int64_t sb, float* out, int64_t n);
  void (*affine)(const float* x, double m, double c, float* y, int64_t n);  // y = x m + c
  void (*axpy)(double alpha, const float* x, float* y, int64_t n);        // y += alpha x
  double (*sumsq)(const float* x, int64_t n);                              // sum of x^2 in double
};
const EwKernels& kernels();

// Splitting pays once each chunk outweighs the pool hand-off (a few µs when both cores are free; measured on the
// 2-core dev machine: silu breaks even near 8K elements, copy-like ops near 32K-64K).
constexpr int64_t kCheapGrain = 32768;
constexpr int64_t kTransGrain = 8192;

inline int64_t unary_grain(int op) {
  switch (op) {
    case kExp: case kLog: case kSilu: case kGeluTanh: case kGeluErf: case kSigmoid: case kSoftplus: case kTanh:
      return kTransGrain;
    default:
      return kCheapGrain;
  }
}

// ---- scalar unary ----------------------------------------------------------------------------------------------

template <int OP>
inline float un_s(float x) {
  if constexpr (OP == kNeg) return -x;
  if constexpr (OP == kExp) return std::exp(x);
  if constexpr (OP == kLog) return std::log(x);
  if constexpr (OP == kSqrt) return std::sqrt(x);
  if constexpr (OP == kRsqrt) return 1.f / std::sqrt(x);
  if constexpr (OP == kSilu) return x * sigmoid_s(x);
  // 0.5 x (1 + tanh(u)) = x sigmoid(2u): no cancellation in 1 + tanh for negative x.
  if constexpr (OP == kGeluTanh) return x / (1.f + std::exp(-2.f * kSqrt2OverPi * (x + kGeluC * x * x * x)));
  // 1 + erf as 2 - erfc / erfc: relative accuracy on the negative side, where 1 + erf would cancel.
  if constexpr (OP == kGeluErf) return 0.5f * x * two_phi_s(x);
  if constexpr (OP == kSigmoid) return sigmoid_s(x);
  if constexpr (OP == kSoftplus) return softplus_s(x);
  if constexpr (OP == kRelu) return x > 0.f ? x : 0.f;
  if constexpr (OP == kSquare) return x * x;
  if constexpr (OP == kAbs) return std::fabs(x);
  if constexpr (OP == kTanh) return std::tanh(x);
  return 0.f;
}

// d f / dx given x and y = f(x); the conventions (relu'(0) = 0, abs'(0) = 0) follow the reference.
template <int OP>
inline float dun_s(float x, float y) {
  if constexpr (OP == kNeg) return -1.f;
  if constexpr (OP == kExp) return y;
  if constexpr (OP == kLog) return 1.f / x;
  if constexpr (OP == kSqrt) return 0.5f / y;
  if constexpr (OP == kRsqrt) return -0.5f * y * y * y;
  if constexpr (OP == kSilu) {
    // 1 - s as e s (e = exp(-x)): the subtraction would lose all digits of 1 - s for large x. The exp argument is
    // capped at 88 so e stays finite and e s does not become inf * 0 for very negative x.
    const float e = std::exp(std::fmin(-x, 88.f)), s = 1.f / (1.f + e);
    return x != x ? x : s * (1.f + x * (e * s));
  }
  if constexpr (OP == kGeluTanh) {
    // Same form as the vector code: with s = sigmoid(2u) and e = exp(-2u), 0.5 (1 + tanh u) = s and
    // 1 - tanh^2 u = 4 s (1 - s) = 4 e s^2, so f' = s + 2 x e s^2 sqrt(2/pi) (1 + 3 c x^2): no cancellation in
    // 1 + tanh u (negative x) or in 1 - s (positive x). Clamped at |x| = 10, where the second term vanishes but
    // x^3 would overflow (0 * inf).
    const float xc = x != x ? x : std::fmin(10.f, std::fmax(-10.f, x));
    const float e = std::exp(-2.f * kSqrt2OverPi * (xc + kGeluC * xc * xc * xc)), s = 1.f / (1.f + e);
    return s + 2.f * xc * ((e * s) * s) * kSqrt2OverPi * (1.f + 3.f * kGeluC * xc * xc);
  }
  if constexpr (OP == kGeluErf) {
    return 0.5f * two_phi_s(x) + x * std::exp(-0.5f * x * x) * kInvSqrt2Pi;
  }
  if constexpr (OP == kSigmoid) return y * (1.f - y);
  if constexpr (OP == kSoftplus) return sigmoid_s(x);
  if constexpr (OP == kRelu) return x > 0.f ? 1.f : 0.f;
  if constexpr (OP == kSquare) return 2.f * x;
  if constexpr (OP == kAbs) return x > 0.f ? 1.f : (x < 0.f ? -1.f : 0.f);
  if constexpr (OP == kTanh) return 1.f - y * y;
  return 0.f;
}

template <int OP>
void unary_scalar(const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = un_s<OP>(x[i]);
}

template <int OP>
void unary_grad_scalar(const float* x, const float* y, const float* gy, float* gx, int64_t n) {
  for (int64_t i = 0; i < n; ++i) gx[i] = gy[i] * dun_s<OP>(x[i], y[i]);
}

#if RF_X86
// ---- AVX2 unary ------------------------------------------------------------------------------------------------

// Ops with a vector form; log runs the scalar loop even on AVX2 machines.
constexpr bool has_vec_fwd(int op) { return op != kLog; }
constexpr bool has_vec_grad(int op) { return op >= 0; }

template <int OP>
RF_AVX2 inline __m256 un_v(__m256 x) {
  const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.f);
  if constexpr (OP == kNeg) return _mm256_xor_ps(x, _mm256_set1_ps(-0.f));
  if constexpr (OP == kExp) return exp8(x);
  if constexpr (OP == kSqrt) return _mm256_sqrt_ps(x);
  if constexpr (OP == kRsqrt) return _mm256_div_ps(one, _mm256_sqrt_ps(x));
  // x * sigmoid(x) as x / (1 + exp(-x)): one rounding fewer and no 0 * inf for very negative x.
  if constexpr (OP == kSilu) return _mm256_div_ps(x, _mm256_add_ps(one, exp8(_mm256_sub_ps(zero, x))));
  // 0.5 x (1 + tanh(u)) = x / (1 + exp(-2u)): no cancellation in 1 + tanh for negative x.
  if constexpr (OP == kGeluTanh) return _mm256_div_ps(x, _mm256_add_ps(one, exp8(_mm256_sub_ps(zero, gelu_2u8(x)))));
  if constexpr (OP == kGeluErf) return _mm256_mul_ps(_mm256_mul_ps(_mm256_set1_ps(0.5f), x), two_phi8(x));
  if constexpr (OP == kTanh) return tanh8(x);
  if constexpr (OP == kSigmoid) return sigmoid8(x);
  if constexpr (OP == kSoftplus) return softplus8(x);
  // max(x, 0) returns its second operand for NaN, giving 0 like the reference's `x > 0 ? x : 0`.
  if constexpr (OP == kRelu) return _mm256_max_ps(x, zero);
  if constexpr (OP == kSquare) return _mm256_mul_ps(x, x);
  if constexpr (OP == kAbs) return _mm256_andnot_ps(_mm256_set1_ps(-0.f), x);
  return x;
}

template <int OP>
RF_AVX2 inline __m256 dun_v(__m256 x, __m256 y) {
  const __m256 zero = _mm256_setzero_ps(), one = _mm256_set1_ps(1.f);
  if constexpr (OP == kNeg) return _mm256_set1_ps(-1.f);
  if constexpr (OP == kExp) return y;
  if constexpr (OP == kLog) return _mm256_div_ps(one, x);
  if constexpr (OP == kSqrt) return _mm256_div_ps(_mm256_set1_ps(0.5f), y);
  if constexpr (OP == kRsqrt) return _mm256_mul_ps(_mm256_set1_ps(-0.5f), _mm256_mul_ps(y, _mm256_mul_ps(y, y)));
  if constexpr (OP == kSilu) {
    // s (1 + x (1 - s)) with 1 - s = e s, e = exp(-x) (capped at exp(88) so that e s is never inf * 0); see dun_s.
    __m256 e = exp8(_mm256_min_ps(_mm256_set1_ps(88.f), _mm256_sub_ps(zero, x)));
    __m256 s = _mm256_div_ps(one, _mm256_add_ps(one, e));
    return _mm256_mul_ps(s, _mm256_fmadd_ps(x, _mm256_mul_ps(e, s), one));
  }
  if constexpr (OP == kGeluTanh) {
    // f' = s + 2 x e s^2 sqrt(2/pi) (1 + 3 c x^2) with e = exp(-2u), s = 1 / (1 + e); see dun_s. x is clamped to
    // +-10 first (NaN passes): beyond that the second term is below 1e-35 while x^3 would overflow.
    __m256 xc = _mm256_min_ps(_mm256_set1_ps(10.f), _mm256_max_ps(_mm256_set1_ps(-10.f), x));
    __m256 e = exp8(_mm256_sub_ps(zero, gelu_2u8(xc)));
    __m256 s = _mm256_div_ps(one, _mm256_add_ps(one, e));
    __m256 ss = _mm256_mul_ps(_mm256_mul_ps(e, s), s);
    __m256 poly = _mm256_fmadd_ps(_mm256_set1_ps(3.f * kGeluC), _mm256_mul_ps(xc, xc), one);
    __m256 t = _mm256_mul_ps(_mm256_mul_ps(xc, ss), _mm256_mul_ps(_mm256_set1_ps(2.f * kSqrt2OverPi), poly));
    return _mm256_add_ps(s, t);
  }
  if constexpr (OP == kGeluErf) {
    // Phi(x) + x phi(x)
    const __m256 pdf = _mm256_mul_ps(exp8(_mm256_mul_ps(_mm256_set1_ps(-0.5f), _mm256_mul_ps(x, x))),
                                     _mm256_set1_ps(kInvSqrt2Pi));
    return _mm256_fmadd_ps(x, pdf, _mm256_mul_ps(_mm256_set1_ps(0.5f), two_phi8(x)));
  }
  if constexpr (OP == kSigmoid) return _mm256_mul_ps(y, _mm256_sub_ps(one, y));
  if constexpr (OP == kSoftplus) return sigmoid8(x);
  // Masks select 1 / 0 / -1 so that gy * 0 stays NaN for NaN gy, as in the reference's multiplication.
  if constexpr (OP == kRelu) return _mm256_and_ps(_mm256_cmp_ps(x, zero, _CMP_GT_OQ), one);
  if constexpr (OP == kSquare) return _mm256_add_ps(x, x);
  if constexpr (OP == kAbs) {
    __m256 pos = _mm256_and_ps(_mm256_cmp_ps(x, zero, _CMP_GT_OQ), one);
    __m256 neg = _mm256_and_ps(_mm256_cmp_ps(x, zero, _CMP_LT_OQ), one);
    return _mm256_sub_ps(pos, neg);
  }
  if constexpr (OP == kTanh) return _mm256_fnmadd_ps(y, y, one);
  return zero;
}

template <int OP>
RF_AVX2 void unary_avx2(const float* x, float* y, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256 a = _mm256_loadu_ps(x + i), b = _mm256_loadu_ps(x + i + 8);
    _mm256_storeu_ps(y + i, un_v<OP>(a));
    _mm256_storeu_ps(y + i + 8, un_v<OP>(b));
  }
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(y + i, un_v<OP>(_mm256_loadu_ps(x + i)));
  if (i < n) {
    __m256i m = tail_mask(n - i);
    _mm256_maskstore_ps(y + i, m, un_v<OP>(_mm256_maskload_ps(x + i, m)));
  }
}

template <int OP>
RF_AVX2 void unary_grad_avx2(const float* x, const float* y, const float* gy, float* gx, int64_t n) {
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256 d = dun_v<OP>(_mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i));
    _mm256_storeu_ps(gx + i, _mm256_mul_ps(_mm256_loadu_ps(gy + i), d));
  }
  if (i < n) {
    __m256i m = tail_mask(n - i);
    __m256 d = dun_v<OP>(_mm256_maskload_ps(x + i, m), _mm256_maskload_ps(y + i, m));
    _mm256_maskstore_ps(gx + i, m, _mm256_mul_ps(_mm256_maskload_ps(gy + i, m), d));
  }
}

// The AVX2 table's entry for an op: the vector form where there is one.
template <int OP>
constexpr auto unary_avx2_entry() {
  if constexpr (has_vec_fwd(OP)) return &unary_avx2<OP>;
  else return &unary_scalar<OP>;
}
template <int OP>
constexpr auto unary_grad_avx2_entry() {
  if constexpr (has_vec_grad(OP)) return &unary_grad_avx2<OP>;
  else return &unary_grad_scalar<OP>;
}
#endif

Napi::Value Unary(const Napi::CallbackInfo& info) {
  ArgReader r(info, "unary");
  int64_t op = int_arg(r, 0, "op");
  size_t nx = 0, ny = 0;
  const float* x = r.f32(1, &nx);
  float* y = r.f32(2, &ny);
  if (!r.ok) return info.Env().Undefined();
  if (op < 0 || op >= kUnaryCount) range_error(r, "unknown UnaryOp " + std::to_string(op));
  need_len(r, "y", ny, static_cast<int64_t>(nx), "x.length");
  if (!r.ok) return info.Env().Undefined();
  const auto f = kernels().unary[op];
  pfor(static_cast<int64_t>(nx), unary_grain(static_cast<int>(op)), [&](int64_t b, int64_t e) { f(x + b, y + b, e - b); });
  return info.Env().Undefined();
}

Napi::Value UnaryGrad(const Napi::CallbackInfo& info) {
  ArgReader r(info, "unaryGrad");
  int64_t op = int_arg(r, 0, "op");
  size_t nx = 0, ny = 0, ngy = 0, ngx = 0;
  const float* x = r.f32(1, &nx);
  const float* y = r.f32(2, &ny);
  const float* gy = r.f32(3, &ngy);
  float* gx = r.f32(4, &ngx);
  if (!r.ok) return info.Env().Undefined();
  if (op < 0 || op >= kUnaryCount) range_error(r, "unknown UnaryOp " + std::to_string(op));
  int64_t n = static_cast<int64_t>(nx);
  need_len(r, "y", ny, n, "x.length");
  need_len(r, "gy", ngy, n, "x.length");
  need_len(r, "gx", ngx, n, "x.length");
  if (!r.ok) return info.Env().Undefined();
  const auto g = kernels().unary_grad[op];
  pfor(n, unary_grain(static_cast<int>(op)), [&](int64_t b, int64_t e) { g(x + b, y + b, gy + b, gx + b, e - b); });
  return info.Env().Undefined();
}

// ---- binary --------------------------------------------------------------------------------------------------

template <int OP>
inline float bin_s(float a, float b) {
  if constexpr (OP == kAdd) return a + b;
  if constexpr (OP == kSub) return a - b;
  if constexpr (OP == kMul) return a * b;
  if constexpr (OP == kDiv) return a / b;
  if constexpr (OP == kMax) return a >= b ? a : b;
  if constexpr (OP == kMin) return a <= b ? a : b;
  return 0.f;
}

template <int OP>
void inner_scalar(const float* a, int64_t sa, const float* b, int64_t sb, float* out, int64_t n) {
  if (sa == 1 && sb == 1) {
    for (int64_t i = 0; i < n; ++i) out[i] = bin_s<OP>(a[i], b[i]);
  } else if (sa == 1 && sb == 0) {
    const float bv = b[0];
    for (int64_t i = 0; i < n; ++i) out[i] = bin_s<OP>(a[i], bv);
  } else if (sa == 0 && sb == 1) {
    const float av = a[0];
    for (int64_t i = 0; i < n; ++i) out[i] = bin_s<OP>(av, b[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) out[i] = bin_s<OP>(a[i * sa], b[i * sb]);
  }
}

#if RF_X86
template <int OP>
RF_AVX2 inline __m256 bin_v(__m256 a, __m256 b) {
  if constexpr (OP == kAdd) return _mm256_add_ps(a, b);
  if constexpr (OP == kSub) return _mm256_sub_ps(a, b);
  if constexpr (OP == kMul) return _mm256_mul_ps(a, b);
  if constexpr (OP == kDiv) return _mm256_div_ps(a, b);
  // Compare-and-blend instead of max_ps/min_ps: same NaN and signed-zero choices as `a >= b ? a : b`.
  if constexpr (OP == kMax) return _mm256_blendv_ps(b, a, _mm256_cmp_ps(a, b, _CMP_GE_OQ));
  if constexpr (OP == kMin) return _mm256_blendv_ps(b, a, _mm256_cmp_ps(a, b, _CMP_LE_OQ));
  return a;
}

// Contiguous / broadcast-scalar forms of the inner loop; anything else goes to the scalar strided loop.
template <int OP, int SA, int SB>
RF_AVX2 void inner_avx2_fixed(const float* a, const float* b, float* out, int64_t n) {
  const __m256 av0 = SA == 0 ? _mm256_set1_ps(a[0]) : _mm256_setzero_ps();
  const __m256 bv0 = SB == 0 ? _mm256_set1_ps(b[0]) : _mm256_setzero_ps();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256 a0 = SA ? _mm256_loadu_ps(a + i) : av0, a1 = SA ? _mm256_loadu_ps(a + i + 8) : av0;
    __m256 b0 = SB ? _mm256_loadu_ps(b + i) : bv0, b1 = SB ? _mm256_loadu_ps(b + i + 8) : bv0;
    _mm256_storeu_ps(out + i, bin_v<OP>(a0, b0));
    _mm256_storeu_ps(out + i + 8, bin_v<OP>(a1, b1));
  }
  for (; i + 8 <= n; i += 8) {
    __m256 a0 = SA ? _mm256_loadu_ps(a + i) : av0;
    __m256 b0 = SB ? _mm256_loadu_ps(b + i) : bv0;
    _mm256_storeu_ps(out + i, bin_v<OP>(a0, b0));
  }
  if (i < n) {
    __m256i m = tail_mask(n - i);
    __m256 a0 = SA ? _mm256_maskload_ps(a + i, m) : av0;
    __m256 b0 = SB ? _mm256_maskload_ps(b + i, m) : bv0;
    _mm256_maskstore_ps(out + i, m, bin_v<OP>(a0, b0));
  }
}

template <int OP>
RF_AVX2 void inner_avx2(const float* a, int64_t sa, const float* b, int64_t sb, float* out, int64_t n) {
  if (sa == 1 && sb == 1) return inner_avx2_fixed<OP, 1, 1>(a, b, out, n);
  if (sa == 1 && sb == 0) return inner_avx2_fixed<OP, 1, 0>(a, b, out, n);
  if (sa == 0 && sb == 1) return inner_avx2_fixed<OP, 0, 1>(a, b, out, n);
  inner_scalar<OP>(a, sa, b, sb, out, n);
}
#endif

constexpr int kMaxRank = 8;

struct BDim {
  int64_t n, sa, sb;
};

// Drops length-1 axes and merges neighbours that are jointly contiguous in both operands (outer stride = inner
// stride * inner length), so "same shape", "row", "column" and "scalar" broadcasts all reduce to one or two axes
// whose innermost one hits a vector fast path.
int coalesce(const int32_t* shape, const int32_t* as, const int32_t* bs, int rank, BDim* out) {
  int k = 0;
  for (int d = 0; d < rank; ++d) {
    if (shape[d] == 1) continue;
    BDim cur{shape[d], as[d], bs[d]};
    if (k > 0 && out[k - 1].sa == cur.sa * cur.n && out[k - 1].sb == cur.sb * cur.n) {
      out[k - 1] = BDim{out[k - 1].n * cur.n, cur.sa, cur.sb};
    } else {
      out[k++] = cur;
    }
  }
  if (k == 0) out[k++] = BDim{1, 0, 0};
  return k;
}

// Min / max element offset reached by a strided view with the given shape and strides (non-empty shape).
void offset_range(const int32_t* shape, const int32_t* strides, int rank, int64_t* lo, int64_t* hi) {
  *lo = 0;
  *hi = 0;
  for (int d = 0; d < rank; ++d) {
    int64_t span = static_cast<int64_t>(strides[d]) * (shape[d] - 1);
    if (span < 0) *lo += span; else *hi += span;
  }
}

Napi::Value BinaryK(const Napi::CallbackInfo& info) {
  ArgReader r(info, "binary");
  int64_t op = int_arg(r, 0, "op");
  size_t na = 0, nas = 0, nb = 0, nbs = 0, nshape = 0, nout = 0;
  const float* a = r.f32(1, &na);
  const int32_t* as = r.i32(2, &nas);
  const float* b = r.f32(3, &nb);
  const int32_t* bs = r.i32(4, &nbs);
  const int32_t* shape = r.i32(5, &nshape);
  float* out = r.f32(6, &nout);
  if (!r.ok) return info.Env().Undefined();
  if (op < 0 || op >= kBinaryCount) range_error(r, "unknown BinaryOp " + std::to_string(op));
  int rank = static_cast<int>(nshape);
  if (r.ok && nshape > static_cast<size_t>(kMaxRank)) {
    range_error(r, "shape has rank " + std::to_string(nshape) + ", at most 8 is supported");
  }
  need_len(r, "aStrides", nas, rank, "shape.length");
  need_len(r, "bStrides", nbs, rank, "shape.length");
  if (!r.ok) return info.Env().Undefined();
  int64_t total = 1;
  for (int d = 0; d < rank; ++d) {
    if (shape[d] < 0) return range_error(r, "shape has a negative axis"), info.Env().Undefined();
    total = mul(total, shape[d]);
  }
  if (!need_len(r, "out", nout, total, "product of shape")) return info.Env().Undefined();
  if (total == 0) return info.Env().Undefined();
  int64_t lo, hi;
  offset_range(shape, as, rank, &lo, &hi);
  if (lo < 0 || hi >= static_cast<int64_t>(na)) {
    return range_error(r, "a (length " + std::to_string(na) + ") is indexed from " + std::to_string(lo) + " to " +
                              std::to_string(hi) + " by aStrides"),
           info.Env().Undefined();
  }
  offset_range(shape, bs, rank, &lo, &hi);
  if (lo < 0 || hi >= static_cast<int64_t>(nb)) {
    return range_error(r, "b (length " + std::to_string(nb) + ") is indexed from " + std::to_string(lo) + " to " +
                              std::to_string(hi) + " by bStrides"),
           info.Env().Undefined();
  }

  BDim dims[kMaxRank];
  int k = coalesce(shape, as, bs, rank, dims);
  const BDim inner = dims[k - 1];
  const int outer_rank = k - 1;
  const int64_t rows = total / inner.n;
  const auto f = kernels().binary[op];
  pfor(rows, grain_rows(inner.n, kCheapGrain), [&](int64_t rb, int64_t re) {
    // Position the odometer of the outer axes at row rb.
    int64_t idx[kMaxRank] = {0};
    int64_t ao = 0, bo = 0, rem = rb;
    for (int d = outer_rank - 1; d >= 0; --d) {
      idx[d] = rem % dims[d].n;
      rem /= dims[d].n;
      ao += idx[d] * dims[d].sa;
      bo += idx[d] * dims[d].sb;
    }
    for (int64_t row = rb; row < re; ++row) {
      f(a + ao, inner.sa, b + bo, inner.sb, out + row * inner.n, inner.n);
      for (int d = outer_rank - 1; d >= 0; --d) {
        ao += dims[d].sa;
        bo += dims[d].sb;
        if (++idx[d] < dims[d].n) break;
        ao -= dims[d].sa * dims[d].n;
        bo -= dims[d].sb * dims[d].n;
        idx[d] = 0;
      }
    }
  });
  return info.Env().Undefined();
}

// ---- affine, axpy, sumSquares ----------------------------------------------------------------------------------

// affine and axpy compute in double and round once, like the reference (alpha, mul and add stay doubles too):
// y + alpha x can cancel, and then a float product rounded on its own would be off by an ulp of alpha x. Both
// kernels are memory-bound, so the wider arithmetic costs nothing.
void affine_scalar(const float* x, double m, double c, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(x[i] * m + c);
}

void axpy_scalar(double alpha, const float* x, float* y, int64_t n) {
  for (int64_t i = 0; i < n; ++i) y[i] = static_cast<float>(y[i] + alpha * x[i]);
}

double sumsq_scalar(const float* x, int64_t n) {
  double s0 = 0, s1 = 0;
  int64_t i = 0;
  for (; i + 2 <= n; i += 2) {
    s0 += static_cast<double>(x[i]) * x[i];
    s1 += static_cast<double>(x[i + 1]) * x[i + 1];
  }
  if (i < n) s0 += static_cast<double>(x[i]) * x[i];
  return s0 + s1;
}

#if RF_X86
// 8 floats -> two 4-double halves, fma in double, back to 8 floats.
RF_AVX2 inline __m256 fma_pd8(__m256 a, __m256d m, __m256 c) {
  const __m256d alo = _mm256_cvtps_pd(_mm256_castps256_ps128(a)), ahi = _mm256_cvtps_pd(_mm256_extractf128_ps(a, 1));
  const __m256d clo = _mm256_cvtps_pd(_mm256_castps256_ps128(c)), chi = _mm256_cvtps_pd(_mm256_extractf128_ps(c, 1));
  const __m256d lo = _mm256_fmadd_pd(alo, m, clo), hi = _mm256_fmadd_pd(ahi, m, chi);
  return _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo));
}

RF_AVX2 void affine_avx2(const float* x, double m, double c, float* y, int64_t n) {
  const __m256d mv = _mm256_set1_pd(m), cv = _mm256_set1_pd(c);
  int64_t i = 0;
  for (; i < n; i += 8) {
    const __m256i k = i + 8 <= n ? _mm256_set1_epi32(-1) : tail_mask(n - i);
    __m256 a = _mm256_maskload_ps(x + i, k);
    __m256d lo = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(a)), mv, cv);
    __m256d hi = _mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(a, 1)), mv, cv);
    _mm256_maskstore_ps(y + i, k, _mm256_set_m128(_mm256_cvtpd_ps(hi), _mm256_cvtpd_ps(lo)));
  }
}

RF_AVX2 void axpy_avx2(double alpha, const float* x, float* y, int64_t n) {
  const __m256d av = _mm256_set1_pd(alpha);
  int64_t i = 0;
  for (; i < n; i += 8) {
    const __m256i k = i + 8 <= n ? _mm256_set1_epi32(-1) : tail_mask(n - i);
    _mm256_maskstore_ps(y + i, k, fma_pd8(_mm256_maskload_ps(x + i, k), av, _mm256_maskload_ps(y + i, k)));
  }
}

// Squares are exact in double (24-bit mantissas), so the only rounding is in the double additions; four
// accumulators hide the add latency.
RF_AVX2 double sumsq_avx2(const float* x, int64_t n) {
  __m256d s0 = _mm256_setzero_pd(), s1 = _mm256_setzero_pd(), s2 = _mm256_setzero_pd(), s3 = _mm256_setzero_pd();
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m256 v0 = _mm256_loadu_ps(x + i), v1 = _mm256_loadu_ps(x + i + 8);
    __m256d d0 = _mm256_cvtps_pd(_mm256_castps256_ps128(v0)), d1 = _mm256_cvtps_pd(_mm256_extractf128_ps(v0, 1));
    __m256d d2 = _mm256_cvtps_pd(_mm256_castps256_ps128(v1)), d3 = _mm256_cvtps_pd(_mm256_extractf128_ps(v1, 1));
    s0 = _mm256_fmadd_pd(d0, d0, s0);
    s1 = _mm256_fmadd_pd(d1, d1, s1);
    s2 = _mm256_fmadd_pd(d2, d2, s2);
    s3 = _mm256_fmadd_pd(d3, d3, s3);
  }
  double s = hsum_pd(_mm256_add_pd(_mm256_add_pd(s0, s1), _mm256_add_pd(s2, s3)));
  for (; i < n; ++i) s += static_cast<double>(x[i]) * x[i];
  return s;
}
#endif

// ---- the kernel tables -----------------------------------------------------------------------------------------

template <int... U, int... B>
constexpr EwKernels scalar_table(std::integer_sequence<int, U...>, std::integer_sequence<int, B...>) {
  return EwKernels{{&unary_scalar<U>...}, {&unary_grad_scalar<U>...}, {&inner_scalar<B>...}, affine_scalar,
                   axpy_scalar, sumsq_scalar};
}
constexpr EwKernels kScalar = scalar_table(std::make_integer_sequence<int, kUnaryCount>{},
                                           std::make_integer_sequence<int, kBinaryCount>{});
#if RF_X86
template <int... U, int... B>
constexpr EwKernels avx2_table(std::integer_sequence<int, U...>, std::integer_sequence<int, B...>) {
  return EwKernels{{unary_avx2_entry<U>()...}, {unary_grad_avx2_entry<U>()...}, {&inner_avx2<B>...}, affine_avx2,
                   axpy_avx2, sumsq_avx2};
}
constexpr EwKernels kAvx2 = avx2_table(std::make_integer_sequence<int, kUnaryCount>{},
                                       std::make_integer_sequence<int, kBinaryCount>{});
#endif

const EwKernels& kernels() {
  static const EwKernels& t = rf::pick(kScalar, RF_X86_TABLE(kAvx2));
  return t;
}

Napi::Value Affine(const Napi::CallbackInfo& info) {
  ArgReader r(info, "affine");
  size_t nx = 0, ny = 0;
  const float* x = r.f32(0, &nx);
  const double m = r.num(1), c = r.num(2);
  float* y = r.f32(3, &ny);
  if (!r.ok || !need_len(r, "y", ny, static_cast<int64_t>(nx), "x.length")) return info.Env().Undefined();
  const auto f = kernels().affine;
  pfor(static_cast<int64_t>(nx), kCheapGrain, [&](int64_t b, int64_t e) { f(x + b, m, c, y + b, e - b); });
  return info.Env().Undefined();
}

Napi::Value Axpy(const Napi::CallbackInfo& info) {
  ArgReader r(info, "axpy");
  size_t nx = 0, ny = 0;
  const double alpha = r.num(0);
  const float* x = r.f32(1, &nx);
  float* y = r.f32(2, &ny);
  if (!r.ok || !need_len(r, "y", ny, static_cast<int64_t>(nx), "x.length")) return info.Env().Undefined();
  const auto f = kernels().axpy;
  pfor(static_cast<int64_t>(nx), kCheapGrain, [&](int64_t b, int64_t e) { f(alpha, x + b, y + b, e - b); });
  return info.Env().Undefined();
}

Napi::Value SumSquares(const Napi::CallbackInfo& info) {
  ArgReader r(info, "sumSquares");
  size_t nx = 0;
  const float* x = r.f32(0, &nx);
  if (!r.ok) return info.Env().Undefined();
  const int64_t n = static_cast<int64_t>(nx);
  const auto sumsq = kernels().sumsq;
  auto part = [&](int64_t b, int64_t e) { return sumsq(x + b, e - b); };
  // Fixed split into per-thread partials, added in thread order.
  const int64_t grain = 32768;
  double total = 0;
  int nt = rf::num_threads();
  if (n <= grain || nt <= 1) {
    total = part(0, n);
  } else {
    rf::Buffer<double> partial(static_cast<size_t>(nt));
    int64_t max_chunks = (n + grain - 1) / grain;
    rf::parallel_run([&](int tid, int nthreads) {
      int64_t chunks = nthreads < max_chunks ? nthreads : max_chunks;
      if (tid >= chunks) return;
      partial[static_cast<size_t>(tid)] = part(n * tid / chunks, n * (tid + 1) / chunks);
    });
    for (int t = 0; t < nt; ++t) total += partial[static_cast<size_t>(t)];
  }
  return Napi::Number::New(info.Env(), total);
}

}  // namespace

void register_ew_reduce(Napi::Env env, Napi::Object exports);
void register_ew_move(Napi::Env env, Napi::Object exports);

void register_elementwise(Napi::Env env, Napi::Object exports) {
  rf::export_fn<Unary>(env, exports, "unary");
  rf::export_fn<UnaryGrad>(env, exports, "unaryGrad");
  rf::export_fn<BinaryK>(env, exports, "binary");
  rf::export_fn<Affine>(env, exports, "affine");
  rf::export_fn<Axpy>(env, exports, "axpy");
  rf::export_fn<SumSquares>(env, exports, "sumSquares");
  register_ew_reduce(env, exports);
  register_ew_move(env, exports);
}
