// bfloat16 weights for decode: C = A @ W^T + beta * C with W (N, K) stored as bf16 bit patterns (the top 16 bits of
// an IEEE float), converted on the fly, so a BF16 checkpoint is read at 2 bytes per weight. Meant for small M
// (decode); the TypeScript side widens the weight once and uses the f32 GEMM for large M.
#include "common.h"

#include <cstring>

namespace {

inline float bf16_to_float(uint16_t h) {
  uint32_t bits = static_cast<uint32_t>(h) << 16;
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

void rows_scalar(int64_t n0, int64_t n1, int64_t M, int64_t K, const float* a, const uint16_t* w, float beta,
                 float* c, int64_t N) {
  for (int64_t j = n0; j < n1; ++j) {
    const uint16_t* wr = w + j * K;
    for (int64_t i = 0; i < M; ++i) {
      const float* ar = a + i * K;
      double s = 0;
      for (int64_t k = 0; k < K; ++k) s += static_cast<double>(ar[k]) * bf16_to_float(wr[k]);
      float* cp = c + i * N + j;
      *cp = beta == 0.0f ? static_cast<float>(s) : static_cast<float>(s) + beta * *cp;
    }
  }
}

#if RF_X86
RF_AVX2 inline __m256 load_bf16(const uint16_t* p) {
  __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

RF_AVX2 inline float hsum(__m256 v) {
  __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
  lo = _mm_add_ps(lo, hi);
  lo = _mm_hadd_ps(lo, lo);
  lo = _mm_hadd_ps(lo, lo);
  return _mm_cvtss_f32(lo);
}

// One weight row against every activation row, two accumulators per row to hide FMA latency.
RF_AVX2 void rows_avx2(int64_t n0, int64_t n1, int64_t M, int64_t K, const float* a, const uint16_t* w, float beta,
                       float* c, int64_t N) {
  const int64_t K16 = K & ~int64_t(15);
  for (int64_t j = n0; j < n1; ++j) {
    const uint16_t* wr = w + j * K;
    if (j + 2 < n1) _mm_prefetch(reinterpret_cast<const char*>(w + (j + 2) * K), _MM_HINT_T0);
    for (int64_t i = 0; i < M; ++i) {
      const float* ar = a + i * K;
      __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps();
      int64_t k = 0;
      for (; k < K16; k += 16) {
        s0 = _mm256_fmadd_ps(_mm256_loadu_ps(ar + k), load_bf16(wr + k), s0);
        s1 = _mm256_fmadd_ps(_mm256_loadu_ps(ar + k + 8), load_bf16(wr + k + 8), s1);
      }
      float s = hsum(_mm256_add_ps(s0, s1));
      for (; k < K; ++k) s += ar[k] * bf16_to_float(wr[k]);
      float* cp = c + i * N + j;
      *cp = beta == 0.0f ? s : s + beta * *cp;
    }
  }
}
#endif

// The family's kernel table (rf::pick, common.h).
struct Bf16Kernels {
  // Rows [n0, n1) of C (M, N) = A (M, K) . W^T + beta * C for a bfloat16 W (N, K).
  void (*rows)(int64_t n0, int64_t n1, int64_t M, int64_t K, const float* a, const uint16_t* w, float beta, float* c,
               int64_t N);
};

const Bf16Kernels kScalar = {rows_scalar};
#if RF_X86
const Bf16Kernels kAvx2 = {rows_avx2};
#endif

const Bf16Kernels& kernels() {
  static const Bf16Kernels& t = rf::pick(kScalar, RF_X86_TABLE(kAvx2));
  return t;
}

}  // namespace

// Rows [n0, n1) of C = A . W^T + beta * C for a bfloat16 W (N, K), on the calling thread.
void rf::bf16_rows(int64_t n0, int64_t n1, int64_t M, int64_t K, const float* a, const uint16_t* w, float beta,
                   float* c, int64_t N) {
  kernels().rows(n0, n1, M, K, a, w, beta, c, N);
}

namespace {

Napi::Value GemmBF16(const Napi::CallbackInfo& info) {
  rf::ArgReader r(info, "gemmBF16");
  int64_t M = r.i64(0), N = r.i64(1), K = r.i64(2);
  size_t na = 0, nw = 0, nc = 0;
  const float* a = r.f32(3, &na);
  const uint16_t* w = r.u16(4, &nw);
  float beta = static_cast<float>(r.num(5));
  float* c = r.f32(6, &nc);
  if (!r.ok) return info.Env().Undefined();
  if (M < 0 || N < 0 || K < 0 || na < static_cast<size_t>(M * K) || nw < static_cast<size_t>(N * K) ||
      nc < static_cast<size_t>(M * N)) {
    Napi::RangeError::New(info.Env(), "recurformer native gemmBF16: arrays are shorter than M, N, K require")
        .ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  rf::parallel_for(N, 64, [&](int64_t n0, int64_t n1) { rf::bf16_rows(n0, n1, M, K, a, w, beta, c, N); });
  return info.Env().Undefined();
}

Napi::Value BF16ToF32(const Napi::CallbackInfo& info) {
  rf::ArgReader r(info, "bf16ToF32");
  size_t ns = 0, nd = 0;
  const uint16_t* s = r.u16(0, &ns);
  float* d = r.f32(1, &nd);
  if (!r.ok) return info.Env().Undefined();
  if (nd < ns) {
    Napi::RangeError::New(info.Env(), "recurformer native bf16ToF32: dst is shorter than src").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  rf::parallel_for(static_cast<int64_t>(ns), 1 << 16, [&](int64_t b, int64_t e) {
    for (int64_t i = b; i < e; ++i) d[i] = bf16_to_float(s[i]);
  });
  return info.Env().Undefined();
}

}  // namespace

void register_bf16(Napi::Env env, Napi::Object exports) {
  rf::export_fn<GemmBF16>(env, exports, "gemmBF16");
  rf::export_fn<BF16ToF32>(env, exports, "bf16ToF32");
}
