// SIMD kernel sets for the GEMM driver: AVX2 / FMA / F16C (6 x 16 register block) and AVX-512F (12 x 32),
// which shares the AVX2 packers (templated on the panel width) and matrix-vector kernels. Every function here
// carries RF_AVX2 or RF_AVX512 and is only reached through a table rf::pick chose for this CPU, so the rest of
// the addon stays baseline x86-64.
#include "gemm_internal.h"

#if RF_X86
#include <cmath>
#include <cstdlib>
#include <cstring>

// Marks a function compiled for AVX-512F on top of AVX2; reached only through the AVX-512 set, which rf::pick
// chooses only when rf::cpu_isa() is Isa::kAvx512.
#define RF_AVX512 __attribute__((target("avx512f,avx2,fma,f16c")))

namespace rf::gemm {
namespace {

constexpr int MR = kMR256;
constexpr int NR = kNR256;
constexpr int MR512 = kMR512;
constexpr int NR512 = kNR512;

// ---- small helpers --------------------------------------------------------------------------------------------

RF_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Eight consecutive weights as floats; the half overload converts on the fly so one template serves both.
RF_AVX2 inline __m256 load8(const float* p) { return _mm256_loadu_ps(p); }
RF_AVX2 inline __m256 load8(const uint16_t* p) {
  return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline float to_f32(float v) { return v; }
inline float to_f32(uint16_t h) { return rf::half_to_float(h); }

// In-register 8x8 transpose: row i of the input becomes column i of the output.
RF_AVX2 inline void transpose8(__m256 r[8]) {
  __m256 t[8], u[8];
  for (int i = 0; i < 4; ++i) {
    t[2 * i] = _mm256_unpacklo_ps(r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm256_unpackhi_ps(r[2 * i], r[2 * i + 1]);
  }
  for (int h = 0; h < 2; ++h) {  // h selects rows 0-3 or 4-7
    __m256* tt = t + 4 * h;
    __m256* uu = u + 4 * h;
    uu[0] = _mm256_shuffle_ps(tt[0], tt[2], 0x44);
    uu[1] = _mm256_shuffle_ps(tt[0], tt[2], 0xEE);
    uu[2] = _mm256_shuffle_ps(tt[1], tt[3], 0x44);
    uu[3] = _mm256_shuffle_ps(tt[1], tt[3], 0xEE);
  }
  for (int i = 0; i < 4; ++i) {
    r[i] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x20);
    r[i + 4] = _mm256_permute2f128_ps(u[i], u[i + 4], 0x31);
  }
}

// ---- packing ----------------------------------------------------------------------------------------------------
// Every packer is templated on its panel width W (MR or NR of the set it serves) and T (float, or half for B).

// Slow but general packer for ragged edges and unusual strides: dst[k * W + i] = src(i, k), zero past `rows`.
template <int W, typename T>
inline void pack_panel_generic(View<T> v, int64_t rows, int64_t k0, int64_t k1, float* dst) {
  for (int64_t k = k0; k < k1; ++k)
    for (int i = 0; i < W; ++i) dst[k * W + i] = i < rows ? to_f32(*v.at(i, k)) : 0.0f;
}

// Stores the first n (4, 6 or 8) floats of v.
RF_AVX2 inline void store_first(float* d, __m256 v, int n) {
  if (n == 8) {
    _mm256_storeu_ps(d, v);
    return;
  }
  _mm_storeu_ps(d, _mm256_castps256_ps128(v));
  if (n == 6) _mm_storel_pi(reinterpret_cast<__m64*>(d + 4), _mm256_extractf128_ps(v, 1));
}

// A panel of W rows from row-major A (cs == 1): each row is contiguous along k, so read 8 k at a time from
// up to 8 rows, transpose in registers and write 8 groups of W. Missing rows of a group are zero dummies.
template <int W>
RF_AVX2 void pack_a_panel_rows(ViewF a, int64_t kc, float* dst) {
  int64_t k = 0;
  for (; k + 8 <= kc; k += 8) {
    for (int g = 0; g < W; g += 8) {
      const int n = W - g < 8 ? W - g : 8;
      __m256 r[8];
      for (int i = 0; i < 8; ++i) r[i] = i < n ? _mm256_loadu_ps(a.at(g + i, k)) : _mm256_setzero_ps();
      transpose8(r);
      for (int j = 0; j < 8; ++j) store_first(dst + (k + j) * W + g, r[j], n);
    }
  }
  pack_panel_generic<W>(a, W, k, kc, dst);
}

template <int W>
RF_AVX2 void pack_a_any(ViewF a, int64_t mc, int64_t kc, float* dst) {
  for (int64_t i = 0; i < mc; i += W, dst += W * kc) {
    const int64_t rows = mc - i < W ? mc - i : W;
    ViewF p{a.at(i, 0), a.rs, a.cs};
    if (rows == W && p.cs == 1) {
      pack_a_panel_rows<W>(p, kc, dst);
    } else if (rows == W && p.rs == 1) {  // transposed A: the W values of one k are contiguous
      for (int64_t k = 0; k < kc; ++k) std::memcpy(dst + k * W, p.at(0, k), W * sizeof(float));
    } else {
      pack_panel_generic<W>(p, rows, 0, kc, dst);
    }
  }
}

// B panel from a view whose columns are contiguous along k (rs == 1: the transposed (N, K) weight layout):
// W columns x 8 k are read as W short rows, transposed as W / 8 blocks of 8x8 and stored as 8 rows of W.
template <int W, typename T>
RF_AVX2 void pack_b_panel_cols(View<T> b, int64_t kc, float* dst) {
  int64_t k = 0;
  for (; k + 8 <= kc; k += 8) {
    for (int h = 0; h < W / 8; ++h) {
      __m256 r[8];
      for (int j = 0; j < 8; ++j) r[j] = load8(b.at(k, 8 * h + j));
      transpose8(r);
      for (int j = 0; j < 8; ++j) _mm256_store_ps(dst + (k + j) * W + 8 * h, r[j]);
    }
  }
  // View b as (column, k) so the generic packer's "row" index walks the W columns.
  pack_panel_generic<W>(View<T>{b.p, b.cs, b.rs}, W, k, kc, dst);
}

template <int W, typename T>
RF_AVX2 void pack_b_any(View<T> b, int64_t kc, int64_t nc, float* dst) {
  for (int64_t j = 0; j < nc; j += W, dst += W * kc) {
    const int64_t cols = nc - j < W ? nc - j : W;
    View<T> p{b.at(0, j), b.rs, b.cs};
    if (cols == W && p.rs == 1) {
      pack_b_panel_cols<W>(p, kc, dst);
    } else if (cols == W && p.cs == 1) {  // row-major B: each k row is W contiguous values
      for (int64_t k = 0; k < kc; ++k)
        for (int h = 0; h < W / 8; ++h) _mm256_store_ps(dst + k * W + 8 * h, load8(p.at(k, 8 * h)));
    } else {
      pack_panel_generic<W>(View<T>{p.p, p.cs, p.rs}, cols, 0, kc, dst);
    }
  }
}

RF_AVX2 void pack_a_avx2(ViewF a, int64_t mc, int64_t kc, float* dst) { pack_a_any<MR>(a, mc, kc, dst); }
RF_AVX2 void pack_b_avx2(ViewF b, int64_t kc, int64_t nc, float* dst) { pack_b_any<NR>(b, kc, nc, dst); }
RF_AVX2 void pack_b_h_avx2(ViewH b, int64_t kc, int64_t nc, float* dst) { pack_b_any<NR>(b, kc, nc, dst); }
RF_AVX2 void pack_a_512(ViewF a, int64_t mc, int64_t kc, float* dst) { pack_a_any<MR512>(a, mc, kc, dst); }
RF_AVX2 void pack_b_512(ViewF b, int64_t kc, int64_t nc, float* dst) { pack_b_any<NR512>(b, kc, nc, dst); }
RF_AVX2 void pack_b_h_512(ViewH b, int64_t kc, int64_t nc, float* dst) { pack_b_any<NR512>(b, kc, nc, dst); }

// ---- micro-kernel -----------------------------------------------------------------------------------------------

// C(6x16) = alpha * A(6 x kc) . B(kc x 16) + beta * C. Per k: two aligned B loads, six A broadcasts, twelve
// FMAs into twelve independent accumulators (enough chains to cover FMA latency on both ports).
RF_AVX2 void micro_avx2(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha,
                        float beta) {
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
  for (int i = 0; i < MR; ++i) _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
#pragma GCC unroll 4
  for (int64_t k = 0; k < kc; ++k) {
    __m256 b0 = _mm256_load_ps(b), b1 = _mm256_load_ps(b + 8);
    __m256 x = _mm256_broadcast_ss(a);
    c00 = _mm256_fmadd_ps(x, b0, c00);
    c01 = _mm256_fmadd_ps(x, b1, c01);
    x = _mm256_broadcast_ss(a + 1);
    c10 = _mm256_fmadd_ps(x, b0, c10);
    c11 = _mm256_fmadd_ps(x, b1, c11);
    x = _mm256_broadcast_ss(a + 2);
    c20 = _mm256_fmadd_ps(x, b0, c20);
    c21 = _mm256_fmadd_ps(x, b1, c21);
    x = _mm256_broadcast_ss(a + 3);
    c30 = _mm256_fmadd_ps(x, b0, c30);
    c31 = _mm256_fmadd_ps(x, b1, c31);
    x = _mm256_broadcast_ss(a + 4);
    c40 = _mm256_fmadd_ps(x, b0, c40);
    c41 = _mm256_fmadd_ps(x, b1, c41);
    x = _mm256_broadcast_ss(a + 5);
    c50 = _mm256_fmadd_ps(x, b0, c50);
    c51 = _mm256_fmadd_ps(x, b1, c51);
    a += MR;
    b += NR;
  }
  const __m256 va = _mm256_set1_ps(alpha), vb = _mm256_set1_ps(beta);
  __m256 acc[MR][2] = {{c00, c01}, {c10, c11}, {c20, c21}, {c30, c31}, {c40, c41}, {c50, c51}};
  for (int i = 0; i < MR; ++i) {
    float* row = c + i * ldc;
    for (int h = 0; h < 2; ++h) {
      __m256 v = _mm256_mul_ps(va, acc[i][h]);
      if (beta != 0.0f) v = _mm256_fmadd_ps(vb, _mm256_loadu_ps(row + 8 * h), v);
      _mm256_storeu_ps(row + 8 * h, v);
    }
  }
}

// C(12x32) = alpha * A(12 x kc) . B(kc x 32) + beta * C: per k two aligned 64-byte B loads, twelve A
// broadcasts, 24 FMAs into 24 zmm accumulators.
RF_AVX512 void micro_avx512(int64_t kc, const float* a, const float* b, float* c, int64_t ldc, float alpha,
                            float beta) {
  __m512 acc[MR512][2];
  for (int i = 0; i < MR512; ++i) acc[i][0] = acc[i][1] = _mm512_setzero_ps();
  for (int i = 0; i < MR512; ++i) _mm_prefetch(reinterpret_cast<const char*>(c + i * ldc), _MM_HINT_T0);
#pragma GCC unroll 2
  for (int64_t k = 0; k < kc; ++k) {
    const __m512 b0 = _mm512_load_ps(b), b1 = _mm512_load_ps(b + 16);
#pragma GCC unroll 12
    for (int i = 0; i < MR512; ++i) {
      const __m512 x = _mm512_set1_ps(a[i]);
      acc[i][0] = _mm512_fmadd_ps(x, b0, acc[i][0]);
      acc[i][1] = _mm512_fmadd_ps(x, b1, acc[i][1]);
    }
    a += MR512;
    b += NR512;
  }
  const __m512 va = _mm512_set1_ps(alpha), vb = _mm512_set1_ps(beta);
  for (int i = 0; i < MR512; ++i) {
    float* row = c + i * ldc;
    for (int h = 0; h < 2; ++h) {
      __m512 v = _mm512_mul_ps(va, acc[i][h]);
      if (beta != 0.0f) v = _mm512_fmadd_ps(vb, _mm512_loadu_ps(row + 16 * h), v);
      _mm512_storeu_ps(row + 16 * h, v);
    }
  }
}

// ---- matrix-vector ---------------------------------------------------------------------------------------------

// R weight rows against MX activation rows, 16 k per step. Sums land in s[m][r]; the k tail is finished in
// scalar code. With one activation row each weight row gets two accumulators so at least eight FMA chains are
// in flight; with more rows the MX * R accumulators already are.
template <int R, int MX, typename T>
RF_AVX2 inline void dot_block(int64_t K, const T* w, int64_t ldw, const float* x, int64_t ldx, float s[MX][R]) {
  __m256 acc[MX][R], acc2[R];
  for (int m = 0; m < MX; ++m)
    for (int r = 0; r < R; ++r) acc[m][r] = _mm256_setzero_ps();
  for (int r = 0; r < R; ++r) acc2[r] = _mm256_setzero_ps();
  // Software prefetch 1 KiB ahead in every row: the hardware streamer stops at each 4 KiB page boundary and
  // ramps up again, which costs bandwidth on rows spanning several pages. Within the last 1 KiB of a row the
  // prefetch moves on to the same place in the row R further down (the row this stream reads next), so the next
  // block of rows starts warm: with short rows (K = 768 halves is 1.5 KiB) a cold start per block cost a third of
  // the bandwidth. Prefetching past the end of the matrix is harmless (prefetches never fault).
  constexpr int64_t PF = 1024 / sizeof(T);
  const int64_t k_wrap = K - PF;  // from here on, prefetch in the next block
  auto prefetch = [&](int r, int64_t k) {
    _mm_prefetch(reinterpret_cast<const char*>(k < k_wrap ? w + r * ldw + k + PF : w + (r + R) * ldw + (k - k_wrap)),
                 _MM_HINT_T0);
  };
  int64_t k = 0;
  for (; k + 16 <= K; k += 16) {
    for (int r = 0; r < R; ++r) prefetch(r, k);
    if (MX == 1) {
      __m256 x0 = _mm256_loadu_ps(x + k), x1 = _mm256_loadu_ps(x + k + 8);
      for (int r = 0; r < R; ++r) {
        acc[0][r] = _mm256_fmadd_ps(load8(w + r * ldw + k), x0, acc[0][r]);
        acc2[r] = _mm256_fmadd_ps(load8(w + r * ldw + k + 8), x1, acc2[r]);
      }
    } else {
      for (int h = 0; h < 16; h += 8)
        for (int r = 0; r < R; ++r) {
          __m256 wv = load8(w + r * ldw + k + h);
          for (int m = 0; m < MX; ++m) acc[m][r] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + m * ldx + k + h), acc[m][r]);
        }
    }
  }
  for (; k + 8 <= K; k += 8)
    for (int r = 0; r < R; ++r) {
      __m256 wv = load8(w + r * ldw + k);
      for (int m = 0; m < MX; ++m) acc[m][r] = _mm256_fmadd_ps(wv, _mm256_loadu_ps(x + m * ldx + k), acc[m][r]);
    }
  for (int r = 0; r < R; ++r) acc[0][r] = _mm256_add_ps(acc[0][r], acc2[r]);
  for (int m = 0; m < MX; ++m)
    for (int r = 0; r < R; ++r) s[m][r] = hsum(acc[m][r]);
  for (; k < K; ++k)
    for (int r = 0; r < R; ++r) {
      float wv = to_f32(w[r * ldw + k]);
      for (int m = 0; m < MX; ++m) s[m][r] += wv * x[m * ldx + k];
    }
}

// alpha * sum + beta * y in one fixed order, v = alpha * sum then fma(beta, y, v), whatever the compiler would
// contract: every one-row kernel stores through this, so a row's value does not depend on which kernel computed it
// (gemv_streams against gemv_dot_rows, dot_block and dot_rows_h512).
RF_AVX2 inline float scaled_sum(float sum, float y, float alpha, float beta) {
  const float v = alpha * sum;
  return beta == 0.0f ? v : std::fma(beta, y, v);
}

template <int R, int MX>
RF_AVX2 inline void store_dots(const float s[MX][R], int rows, float* y, int64_t ldy, float alpha, float beta) {
  for (int m = 0; m < MX; ++m)
    for (int r = 0; r < rows; ++r) y[m * ldy + r] = scaled_sum(s[m][r], y[m * ldy + r], alpha, beta);
}

// Four weight rows per pass (four concurrent memory streams), three with four activation rows so the
// accumulators stay within the 16 ymm registers.
template <int MX, typename T>
RF_AVX2 void gemv_dot_mx(int64_t rows, int64_t K, const T* w, int64_t ldw, const float* x, int64_t ldx, float* y,
                         int64_t ldy, float alpha, float beta) {
  constexpr int R = MX <= 3 ? 4 : 3;
  int64_t r = 0;
  for (; r + R <= rows; r += R) {
    float s[MX][R];
    dot_block<R, MX>(K, w + r * ldw, ldw, x, ldx, s);
    store_dots<R, MX>(s, R, y + r, ldy, alpha, beta);
  }
  for (; r < rows; ++r) {
    float s[MX][1];
    dot_block<1, MX>(K, w + r * ldw, ldw, x, ldx, s);
    store_dots<1, MX>(s, 1, y + r, ldy, alpha, beta);
  }
}

// One activation row over rows shorter than a 4 KiB page: the rows are read one after another, one linear stream
// per thread with a 1 KiB software prefetch that runs on into the next row. Four interleaved row streams (the
// blocked kernel above) defeat the hardware prefetcher when a block of rows spans two or three pages; measured on
// the 2-core AMD EPYC this project runs on, with cold weights over two threads, the linear order reads 768-wide
// half rows at 75-80% of the streaming bandwidth against 60% blocked, while rows of a page or more go faster
// blocked (88-98% against 75%). Matrices of kStreamMinBytes and more take gemv_streams below instead.
template <typename T>
RF_AVX2 void gemv_dot_rows(int64_t rows, int64_t K, const T* w, int64_t ldw, const float* x, float* y, float alpha,
                           float beta) {
  constexpr int64_t PF = 1024 / sizeof(T);
  constexpr int64_t LINE = 64 / sizeof(T);  // weights per cache line: one prefetch each
  for (int64_t r = 0; r < rows; ++r) {
    const T* p = w + r * ldw;
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    int64_t k = 0;
    for (; k + 32 <= K; k += 32) {
      for (int64_t l = 0; l < 32; l += LINE) _mm_prefetch(reinterpret_cast<const char*>(p + k + l + PF), _MM_HINT_T0);
      a0 = _mm256_fmadd_ps(load8(p + k), _mm256_loadu_ps(x + k), a0);
      a1 = _mm256_fmadd_ps(load8(p + k + 8), _mm256_loadu_ps(x + k + 8), a1);
      a2 = _mm256_fmadd_ps(load8(p + k + 16), _mm256_loadu_ps(x + k + 16), a2);
      a3 = _mm256_fmadd_ps(load8(p + k + 24), _mm256_loadu_ps(x + k + 24), a3);
    }
    for (; k + 8 <= K; k += 8) a0 = _mm256_fmadd_ps(load8(p + k), _mm256_loadu_ps(x + k), a0);
    float sum = hsum(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
    for (; k < K; ++k) sum += to_f32(p[k]) * x[k];
    y[r] = scaled_sum(sum, y[r], alpha, beta);
  }
}

// Matrices of 256 KiB and more, one activation row: the rows split into kStreams contiguous chunks read side by
// side, one row of each at a time, so every thread keeps kStreams linear streams in different pages in flight (as
// the bandwidth probe does) instead of one. Each stream prefetches 2 KiB ahead and runs on into its next row. On
// the AVX-512 Intel Xeon host, float32 products of bench:decode's model went from 75-88% of the measured bandwidth
// (one stream: q/k/v and o lowest) to 84-100%. A row's sum keeps the arithmetic of the kernel it stands in for
// (Wide: gemv_dot_rows' four accumulators over 32 k; else dot_block's two over 16 k), so results do not change.
constexpr int kStreams = 4;
constexpr int64_t kStreamMinBytes = int64_t(1) << 18;

template <int NS, bool Wide, typename T>
RF_AVX2 inline void dot_streams(const T* const* p, int64_t K, const float* x, float* s) {
  constexpr int64_t PF = 2048 / sizeof(T);
  constexpr int64_t LINE = 64 / sizeof(T);  // weights per cache line: one prefetch each
  constexpr int A = Wide ? 4 : 2;
  constexpr int64_t STEP = 8 * A;
  __m256 a[NS][A];
  for (int j = 0; j < NS; ++j)
    for (int i = 0; i < A; ++i) a[j][i] = _mm256_setzero_ps();
  int64_t k = 0;
  for (; k + STEP <= K; k += STEP) {
    for (int j = 0; j < NS; ++j) {
      if (STEP >= LINE || (k & (LINE - 1)) == 0)
        for (int64_t l = 0; l < STEP; l += LINE) _mm_prefetch(reinterpret_cast<const char*>(p[j] + k + l + PF), _MM_HINT_T0);
      for (int i = 0; i < A; ++i) a[j][i] = _mm256_fmadd_ps(load8(p[j] + k + 8 * i), _mm256_loadu_ps(x + k + 8 * i), a[j][i]);
    }
  }
  for (; k + 8 <= K; k += 8)
    for (int j = 0; j < NS; ++j) a[j][0] = _mm256_fmadd_ps(load8(p[j] + k), _mm256_loadu_ps(x + k), a[j][0]);
  for (int j = 0; j < NS; ++j) {
    float sum;
    if constexpr (Wide) sum = hsum(_mm256_add_ps(_mm256_add_ps(a[j][0], a[j][1]), _mm256_add_ps(a[j][2], a[j][3])));
    else sum = hsum(_mm256_add_ps(a[j][0], a[j][1]));
    for (int64_t kk = k; kk < K; ++kk) {
      float wv = to_f32(p[j][kk]);
      sum += wv * x[kk];
    }
    s[j] = sum;
  }
}

// n (kStreams or 1) rows' sums: the kernel-set-specific part of the streams, called through a pointer.
template <typename T>
using StreamDots = void (*)(const T* const* p, int n, int64_t K, const float* x, float* s);

template <bool Wide, typename T>
RF_AVX2 void stream_dots(const T* const* p, int n, int64_t K, const float* x, float* s) {
  if (n == kStreams) dot_streams<kStreams, Wide>(p, K, x, s);
  else dot_streams<1, Wide>(p, K, x, s);
}

// Rows [0, rows) as kStreams contiguous chunks, one row of each per call of `dots`, then the rows left over one at
// a time.
template <typename T>
RF_AVX2 void gemv_streams(int64_t rows, int64_t K, const T* w, int64_t ldw, const float* x, float* y, float alpha,
                          float beta, StreamDots<T> dots) {
  const int64_t chunk = rows / kStreams;
  const T* p[kStreams];
  float sums[kStreams];
  for (int64_t i = 0; i < chunk; ++i) {
    for (int j = 0; j < kStreams; ++j) p[j] = w + (j * chunk + i) * ldw;
    dots(p, kStreams, K, x, sums);
    for (int j = 0; j < kStreams; ++j) y[j * chunk + i] = scaled_sum(sums[j], y[j * chunk + i], alpha, beta);
  }
  for (int64_t r = kStreams * chunk; r < rows; ++r) {
    p[0] = w + r * ldw;
    dots(p, 1, K, x, sums);
    y[r] = scaled_sum(sums[0], y[r], alpha, beta);
  }
}

// Whether a one-row product takes the streams.
inline bool use_streams(int64_t rows, int64_t K, int64_t elem) { return rows >= 4 * kStreams && rows * K * elem >= kStreamMinBytes; }

template <typename T>
RF_AVX2 void gemv_dot_any(int64_t rows, int64_t K, const T* w, int64_t ldw, const float* x, int64_t ldx, int mx,
                          float* y, int64_t ldy, float alpha, float beta) {
  const bool wide = K * int64_t(sizeof(T)) < 4096;  // rows under a page: gemv_dot_rows, else dot_block
  // the streams keep the per-row arithmetic of the kernel a lone row takes below
  if (mx == 1 && use_streams(rows, K, sizeof(T)))
    return gemv_streams(rows, K, w, ldw, x, y, alpha, beta, wide ? stream_dots<true, T> : stream_dots<false, T>);
  if (mx == 1 && wide) return gemv_dot_rows(rows, K, w, ldw, x, y, alpha, beta);
  switch (mx) {
    case 1: gemv_dot_mx<1>(rows, K, w, ldw, x, ldx, y, ldy, alpha, beta); break;
    case 2: gemv_dot_mx<2>(rows, K, w, ldw, x, ldx, y, ldy, alpha, beta); break;
    case 3: gemv_dot_mx<3>(rows, K, w, ldw, x, ldx, y, ldy, alpha, beta); break;
    default: gemv_dot_mx<4>(rows, K, w, ldw, x, ldx, y, ldy, alpha, beta); break;
  }
}

RF_AVX2 void gemv_dot_avx2(int64_t rows, int64_t K, const float* w, int64_t ldw, const float* x, int64_t ldx, int mx,
                           float* y, int64_t ldy, float alpha, float beta) {
  gemv_dot_any(rows, K, w, ldw, x, ldx, mx, y, ldy, alpha, beta);
}

RF_AVX2 void gemv_dot_h_avx2(int64_t rows, int64_t K, const uint16_t* w, int64_t ldw, const float* x, int64_t ldx,
                             int mx, float* y, int64_t ldy, float alpha, float beta) {
  gemv_dot_any(rows, K, w, ldw, x, ldx, mx, y, ldy, alpha, beta);
}

// y = alpha * x^T B + beta * y with B row-major (K, n). Columns go in chunks whose partial sums stay in L1
// while four rows of B stream past per pass, so each B element is read once and y is touched K/4 times in L1.
RF_AVX2 void gemv_axpy_avx2(int64_t K, int64_t n, const float* b, int64_t ldb, const float* x, float* y,
                            float alpha, float beta) {
  constexpr int64_t CH = 1024;
  alignas(64) float acc[CH];
  for (int64_t j0 = 0; j0 < n; j0 += CH) {
    const int64_t w = n - j0 < CH ? n - j0 : CH;
    const int64_t wv = w / 8 * 8;
    std::memset(acc, 0, sizeof(float) * static_cast<size_t>(w));
    int64_t p = 0;
    for (; p + 4 <= K; p += 4) {
      const float* b0 = b + p * ldb + j0;
      const float *b1 = b0 + ldb, *b2 = b1 + ldb, *b3 = b2 + ldb;
      __m256 x0 = _mm256_set1_ps(x[p]), x1 = _mm256_set1_ps(x[p + 1]);
      __m256 x2 = _mm256_set1_ps(x[p + 2]), x3 = _mm256_set1_ps(x[p + 3]);
      for (int64_t j = 0; j < wv; j += 8) {
        __m256 s = _mm256_fmadd_ps(x0, _mm256_loadu_ps(b0 + j), _mm256_load_ps(acc + j));
        s = _mm256_fmadd_ps(x1, _mm256_loadu_ps(b1 + j), s);
        s = _mm256_fmadd_ps(x2, _mm256_loadu_ps(b2 + j), s);
        s = _mm256_fmadd_ps(x3, _mm256_loadu_ps(b3 + j), s);
        _mm256_store_ps(acc + j, s);
      }
      for (int64_t j = wv; j < w; ++j) acc[j] += x[p] * b0[j] + x[p + 1] * b1[j] + x[p + 2] * b2[j] + x[p + 3] * b3[j];
    }
    for (; p < K; ++p) {
      const float* b0 = b + p * ldb + j0;
      __m256 x0 = _mm256_set1_ps(x[p]);
      for (int64_t j = 0; j < wv; j += 8)
        _mm256_store_ps(acc + j, _mm256_fmadd_ps(x0, _mm256_loadu_ps(b0 + j), _mm256_load_ps(acc + j)));
      for (int64_t j = wv; j < w; ++j) acc[j] += x[p] * b0[j];
    }
    for (int64_t j = 0; j < w; ++j) {
      float v = alpha * acc[j];
      y[j0 + j] = beta == 0.0f ? v : v + beta * y[j0 + j];
    }
  }
}

// AVX-512 matrix-vector product over half weights for one activation row (the decode case). F16 decode is the
// one matrix-vector product that is not purely memory-bound on AVX2: every 16 bytes of weights cost a two-uop
// conversion, a load and an FMA, plus the prefetches. 16-wide conversions halve those uops, and one prefetch per
// row per 64-byte line (instead of one per 32 bytes) trims the rest. Several activation rows keep the AVX2 kernel.
// The prefetches fill L2 only (T1), not L1: on the AVX-512 Intel Xeon host, with cold weights over two threads,
// the F16 decode step of bench:decode went from 64% to 72% of the bandwidth bound against T0, and the product
// sequence of one decode step from 76% to 80% (T0 fills with lines that the loads 1 KiB behind would bring in
// anyway evict the x vector and the accumulators' spills; NTA fell to 45%).
template <int R>
RF_AVX512 inline void dot_rows_h512(int64_t K, const uint16_t* w, int64_t ldw, const float* x, float s[R]) {
  __m512 acc[R], acc2[R];
  for (int r = 0; r < R; ++r) acc[r] = acc2[r] = _mm512_setzero_ps();
  constexpr int64_t PF = 1024 / sizeof(uint16_t);  // 1 KiB ahead in every row, then the next block, as the AVX2 kernel
  const int64_t k_wrap = K - PF;
  int64_t k = 0;
  for (; k + 32 <= K; k += 32) {
    const __m512 x0 = _mm512_loadu_ps(x + k), x1 = _mm512_loadu_ps(x + k + 16);
    for (int r = 0; r < R; ++r) {
      const uint16_t* p = w + r * ldw + k;
      _mm_prefetch(reinterpret_cast<const char*>(k < k_wrap ? p + PF : w + (r + R) * ldw + (k - k_wrap)), _MM_HINT_T1);
      acc[r] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))), x0, acc[r]);
      acc2[r] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + 16))), x1, acc2[r]);
    }
  }
  if (k + 16 <= K) {
    const __m512 x0 = _mm512_loadu_ps(x + k);
    for (int r = 0; r < R; ++r)
      acc[r] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(w + r * ldw + k))), x0, acc[r]);
    k += 16;
  }
  for (int r = 0; r < R; ++r) s[r] = _mm512_reduce_add_ps(_mm512_add_ps(acc[r], acc2[r]));
  for (; k < K; ++k)
    for (int r = 0; r < R; ++r) s[r] += rf::half_to_float(w[r * ldw + k]) * x[k];
}

// The side-by-side streams of gemv_streams for half weights on AVX-512, with dot_rows_h512's arithmetic per
// row (so results do not change). On the Xeon host the F16 products of bench:decode's model went from 67-89% of
// the measured bandwidth to 82-100% (T0 and T1 prefetches alike; T0 as for float32).
template <int NS>
RF_AVX512 inline void dot_streams_h512(const uint16_t* const* p, int64_t K, const float* x, float* s) {
  constexpr int64_t PF = 2048 / sizeof(uint16_t);
  __m512 acc[NS], acc2[NS];
  for (int j = 0; j < NS; ++j) acc[j] = acc2[j] = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 32 <= K; k += 32) {
    const __m512 x0 = _mm512_loadu_ps(x + k), x1 = _mm512_loadu_ps(x + k + 16);
    for (int j = 0; j < NS; ++j) {
      _mm_prefetch(reinterpret_cast<const char*>(p[j] + k + PF), _MM_HINT_T0);
      acc[j] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p[j] + k))), x0, acc[j]);
      acc2[j] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p[j] + k + 16))), x1, acc2[j]);
    }
  }
  if (k + 16 <= K) {
    const __m512 x0 = _mm512_loadu_ps(x + k);
    for (int j = 0; j < NS; ++j)
      acc[j] = _mm512_fmadd_ps(_mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p[j] + k))), x0, acc[j]);
    k += 16;
  }
  for (int j = 0; j < NS; ++j) s[j] = _mm512_reduce_add_ps(_mm512_add_ps(acc[j], acc2[j]));
  for (; k < K; ++k)
    for (int j = 0; j < NS; ++j) s[j] += rf::half_to_float(p[j][k]) * x[k];
}

RF_AVX512 void stream_dots_h512(const uint16_t* const* p, int n, int64_t K, const float* x, float* s) {
  if (n == kStreams) dot_streams_h512<kStreams>(p, K, x, s);
  else dot_streams_h512<1>(p, K, x, s);
}

RF_AVX512 void gemv_dot_h_512(int64_t rows, int64_t K, const uint16_t* w, int64_t ldw, const float* x, int64_t ldx,
                              int mx, float* y, int64_t ldy, float alpha, float beta) {
  if (mx != 1) return gemv_dot_any(rows, K, w, ldw, x, ldx, mx, y, ldy, alpha, beta);
  if (use_streams(rows, K, sizeof(uint16_t))) return gemv_streams(rows, K, w, ldw, x, y, alpha, beta, stream_dots_h512);
  int64_t r = 0;
  for (; r + 4 <= rows; r += 4) {
    float s[1][4];
    dot_rows_h512<4>(K, w + r * ldw, ldw, x, s[0]);
    store_dots<4, 1>(s, 4, y + r, ldy, alpha, beta);
  }
  for (; r < rows; ++r) {
    float s[1][1];
    dot_rows_h512<1>(K, w + r * ldw, ldw, x, s[0]);
    store_dots<1, 1>(s, 1, y + r, ldy, alpha, beta);
  }
}

// ---- half <-> float ---------------------------------------------------------------------------------------------

// vcvtps2ph with round-to-nearest-even matches rf::float_to_half on every input (subnormals, inf, nan
// included); the scalar helper finishes the tails so the two paths agree bit for bit.
RF_AVX2 void f32_to_f16_avx2(const float* src, uint16_t* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    __m128i h0 = _mm256_cvtps_ph(_mm256_loadu_ps(src + i), _MM_FROUND_TO_NEAREST_INT);
    __m128i h1 = _mm256_cvtps_ph(_mm256_loadu_ps(src + i + 8), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i), h0);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(dst + i + 8), h1);
  }
  for (; i < n; ++i) dst[i] = rf::float_to_half(src[i]);
}

RF_AVX2 void f16_to_f32_avx2(const uint16_t* src, float* dst, int64_t n) {
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    _mm256_storeu_ps(dst + i, load8(src + i));
    _mm256_storeu_ps(dst + i + 8, load8(src + i + 8));
  }
  for (; i < n; ++i) dst[i] = rf::half_to_float(src[i]);
}

// The AVX2 set: AVX2 packers and micro-kernel, F16C matrix-vector kernels and conversions.
KernelSet make_avx2() {
  KernelSet k{};
  k.name = "avx2";
  k.mr = MR;
  k.nr = NR;
  k.mc = 192;
  k.kc = 384;
  k.nc = 3072;
  k.pack_a = pack_a_avx2;
  k.pack_b = pack_b_avx2;
  k.pack_b_h = pack_b_h_avx2;
  k.micro = micro_avx2;
  k.gemv_dot = gemv_dot_avx2;
  k.gemv_dot_h = gemv_dot_h_avx2;
  k.gemv_axpy = gemv_axpy_avx2;
  k.f32_to_f16 = f32_to_f16_avx2;
  k.f16_to_f32 = f16_to_f32_avx2;
  return k;
}

}  // namespace

const KernelSet& avx2_kernels() {
  static const KernelSet ks = make_avx2();
  return ks;
}

// The packed-GEMM pieces change, and the one-row half-precision matrix-vector product (see gemv_dot_h_512); the
// float32 matrix-vector products are memory-bound and keep the AVX2 kernels (wider vectors would not read memory
// any faster).
const KernelSet* avx512_kernels() {
  static const KernelSet* ks = [] () -> const KernelSet* {
    static KernelSet k = make_avx2();
    k.name = "avx512";
    k.mr = MR512;
    k.nr = NR512;
    k.mc = 192;
    k.kc = 256;
    k.nc = 3072;
    k.pack_a = pack_a_512;
    k.pack_b = pack_b_512;
    k.pack_b_h = pack_b_h_512;
    k.micro = micro_avx512;
    k.gemv_dot_h = gemv_dot_h_512;
    return &k;
  }();
  return ks;
}

}  // namespace rf::gemm

#else  // not x86: the scalar set stands in

namespace rf::gemm {
const KernelSet& avx2_kernels() { return scalar_kernels(); }
const KernelSet* avx512_kernels() { return nullptr; }
}  // namespace rf::gemm

#endif
