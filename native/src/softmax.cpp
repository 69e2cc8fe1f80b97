// Softmax-family kernels: softmax, softmaxGrad, logSoftmax, logSoftmaxGrad, and the fused crossEntropy.
// Rows run in parallel (a grain keeps decode-sized calls, one short row, on the calling thread); row sums use the
// block-wise float/double scheme of row_helpers.h.
#include "row_helpers.h"

namespace {

using rf::ArgReader;
using namespace rf::rows;

// ---- softmax family ------------------------------------------------------------------------------------------

// Rows are independent; exp-bound work splits at ~8K elements per chunk.
inline int64_t exp_grain(int64_t n) { return grain_rows(n, 8192); }

// The family's kernel table (rf::pick, common.h): each entry runs rows [rb, re) of a (rows, n) matrix, or one
// cross-entropy row; a scalar and an AVX2 form of each are defined below.
struct SoftmaxKernels {
  void (*softmax_rows)(const float* x, float* y, int64_t n, int64_t rb, int64_t re);
  void (*softmax_grad_rows)(const float* y, const float* gy, int64_t n, float* gx, int64_t rb, int64_t re);
  void (*log_softmax_rows)(const float* x, float* y, int64_t n, int64_t rb, int64_t re);
  void (*log_softmax_grad_rows)(const float* y, const float* gy, int64_t n, float* gx, int64_t rb, int64_t re);
  // One crossEntropy row of V logits with target t: the loss, and when d is given the gradient times gs (see ce_row).
  void (*ce_row)(const float* x, int32_t t, int64_t V, float gs, float* loss, float* d);
};
const SoftmaxKernels& kernels();

void softmax_rows_scalar(const float* x, float* y, int64_t n, int64_t rb, int64_t re) {
  for (int64_t r = rb; r < re; ++r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    float m = row_max_s(xr, n);
    double s = sumexp_s<true>(xr, m, yr, n);
    const float inv = static_cast<float>(1.0 / s);
    for (int64_t j = 0; j < n; ++j) yr[j] *= inv;
  }
}

#if RF_X86
RF_AVX2 void softmax_rows_avx2(const float* x, float* y, int64_t n, int64_t rb, int64_t re) {
  for (int64_t r = rb; r < re; ++r) {
    const float* xr = x + r * n;
    float* yr = y + r * n;
    float m = row_max_v(xr, n);
    double s = sumexp_v<true>(xr, m, yr, n);
    scale_v(yr, static_cast<float>(1.0 / s), n);
  }
}
#endif

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

void softmax_grad_rows_scalar(const float* y, const float* gy, int64_t n, float* gx, int64_t rb, int64_t re) {
  for (int64_t r = rb; r < re; ++r) {
    const int64_t o = r * n;
    const float d = static_cast<float>(dot_s(gy + o, y + o, n));
    for (int64_t j = 0; j < n; ++j) gx[o + j] = y[o + j] * (gy[o + j] - d);
  }
}

void log_softmax_rows_scalar(const float* x, float* y, int64_t n, int64_t rb, int64_t re) {
  for (int64_t r = rb; r < re; ++r) {
    const int64_t o = r * n;
    const float m = row_max_s(x + o, n);
    const float ls = static_cast<float>(std::log(sumexp_s<false>(x + o, m, nullptr, n)));
    for (int64_t j = 0; j < n; ++j) y[o + j] = (x[o + j] - m) - ls;
  }
}

void log_softmax_grad_rows_scalar(const float* y, const float* gy, int64_t n, float* gx, int64_t rb, int64_t re) {
  for (int64_t r = rb; r < re; ++r) {
    const int64_t o = r * n;
    const float s = static_cast<float>(sum_s(gy + o, n));
    for (int64_t j = 0; j < n; ++j) gx[o + j] = gy[o + j] - std::exp(y[o + j]) * s;
  }
}

#if RF_X86
RF_AVX2 void softmax_grad_rows_avx2(const float* y, const float* gy, int64_t n, float* gx, int64_t rb, int64_t re) {
  for (int64_t r = rb; r < re; ++r) softmax_grad_row_v(y + r * n, gy + r * n, n, gx + r * n);
}

RF_AVX2 void log_softmax_rows_avx2(const float* x, float* y, int64_t n, int64_t rb, int64_t re) {
  for (int64_t r = rb; r < re; ++r) log_softmax_row_v(x + r * n, n, y + r * n);
}

RF_AVX2 void log_softmax_grad_rows_avx2(const float* y, const float* gy, int64_t n, float* gx, int64_t rb,
                                        int64_t re) {
  for (int64_t r = rb; r < re; ++r) log_softmax_grad_row_v(y + r * n, gy + r * n, n, gx + r * n);
}
#endif

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
  const auto rows = kernels().softmax_rows;
  pfor(a.rows, exp_grain(a.n), [&](int64_t b, int64_t e) { rows(a.a, a.out, a.n, b, e); });
  return info.Env().Undefined();
}

Napi::Value SoftmaxGrad(const Napi::CallbackInfo& info) {
  ArgReader r(info, "softmaxGrad");
  RowArgs a;
  if (!read_rows(r, true, "y", "gy", "gx", a)) return info.Env().Undefined();
  const auto rows = kernels().softmax_grad_rows;
  pfor(a.rows, grain_rows(a.n, 16384), [&](int64_t b, int64_t e) { rows(a.a, a.b, a.n, a.out, b, e); });
  return info.Env().Undefined();
}

Napi::Value LogSoftmax(const Napi::CallbackInfo& info) {
  ArgReader r(info, "logSoftmax");
  RowArgs a;
  if (!read_rows(r, false, "x", "", "y", a)) return info.Env().Undefined();
  const auto rows = kernels().log_softmax_rows;
  pfor(a.rows, exp_grain(a.n), [&](int64_t b, int64_t e) { rows(a.a, a.out, a.n, b, e); });
  return info.Env().Undefined();
}

Napi::Value LogSoftmaxGrad(const Napi::CallbackInfo& info) {
  ArgReader r(info, "logSoftmaxGrad");
  RowArgs a;
  if (!read_rows(r, true, "y", "gy", "gx", a)) return info.Env().Undefined();
  const auto rows = kernels().log_softmax_grad_rows;
  pfor(a.rows, exp_grain(a.n), [&](int64_t b, int64_t e) { rows(a.a, a.b, a.n, a.out, b, e); });
  return info.Env().Undefined();
}

// ---- crossEntropy ----------------------------------------------------------------------------------------------

// One row: pass 1 max, pass 2 sum of exp (stored into d when a gradient is wanted), pass 3 (gradient only)
// rescales the stored exps in place, which are still in L1/L2. x[t] is read first so d may alias x.
// lse - x[t] = (m - x[t]) + log(s) is formed in double: no cancellation against a large lse. The target entry
// (softmax_t - 1) * gs is formed in double from the stored exp: softmax_t is often close to 1.
void ce_row_scalar(const float* x, int32_t t, int64_t V, float gs, float* loss, float* d) {
  const float xt = x[t];
  const float m = row_max_s(x, V);
  const double s = d ? sumexp_s<true>(x, m, d, V) : sumexp_s<false>(x, m, nullptr, V);
  *loss = static_cast<float>((static_cast<double>(m) - xt) + std::log(s));
  if (!d) return;
  const float et = d[t];
  const float scale = static_cast<float>(gs / s);
  for (int64_t j = 0; j < V; ++j) d[j] *= scale;
  d[t] = static_cast<float>((static_cast<double>(et) / s - 1.0) * gs);
}

#if RF_X86
RF_AVX2 void ce_row_avx2(const float* x, int32_t t, int64_t V, float gs, float* loss, float* d) {
  const float xt = x[t];
  const float m = row_max_v(x, V);
  const double s = d ? sumexp_v<true>(x, m, d, V) : sumexp_v<false>(x, m, nullptr, V);
  *loss = static_cast<float>((static_cast<double>(m) - xt) + std::log(s));
  if (!d) return;
  const float et = d[t];
  const float scale = static_cast<float>(gs / s);
  scale_v(d, scale, V);
  d[t] = static_cast<float>((static_cast<double>(et) / s - 1.0) * gs);
}
#endif

// ---- the kernel tables -----------------------------------------------------------------------------------------

const SoftmaxKernels kScalar = {softmax_rows_scalar, softmax_grad_rows_scalar, log_softmax_rows_scalar,
                                log_softmax_grad_rows_scalar, ce_row_scalar};
#if RF_X86
const SoftmaxKernels kAvx2 = {softmax_rows_avx2, softmax_grad_rows_avx2, log_softmax_rows_avx2,
                              log_softmax_grad_rows_avx2, ce_row_avx2};
#endif

const SoftmaxKernels& kernels() {
  static const SoftmaxKernels& t = rf::pick(kScalar, RF_X86_TABLE(kAvx2));
  return t;
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
  const auto ce_row = kernels().ce_row;
  const float gsf = static_cast<float>(gs);
  pfor(rows, exp_grain(V), [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) {
      float* di = dl ? dl + i * V : nullptr;
      if (targets[i] == ignore) {
        losses[i] = 0.f;
        if (di) std::memset(di, 0, static_cast<size_t>(V) * sizeof(float));
        continue;
      }
      ce_row(x + i * V, targets[i], V, gsf, losses + i, di);
    }
  });
  return info.Env().Undefined();
}

}  // namespace

void register_softmax(Napi::Env env, Napi::Object exports) {
  rf::export_fn<Softmax>(env, exports, "softmax");
  rf::export_fn<SoftmaxGrad>(env, exports, "softmaxGrad");
  rf::export_fn<LogSoftmax>(env, exports, "logSoftmax");
  rf::export_fn<LogSoftmaxGrad>(env, exports, "logSoftmaxGrad");
  rf::export_fn<CrossEntropy>(env, exports, "crossEntropy");
}
