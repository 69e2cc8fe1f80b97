// Attention micro-kernels: AVX2+FMA versions and the scalar fallback (see attn_kernels.h for the contracts).
#include "attn_kernels.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "common.h"

namespace rf {
namespace attn {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// ---- scalar fallback -------------------------------------------------------------------------------------------

void dots_scalar(const float* A, int64_t lda, int M, const float* B, int64_t ldb, int N, int D, float* C,
                 int64_t ldc, const float*) {
  for (int m = 0; m < M; ++m) {
    const float* a = A + m * lda;
    for (int n = 0; n < N; ++n) {
      const float* b = B + n * ldb;
      // Four partial sums: shorter dependency chains, and closer to the SIMD summation order.
      float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
      int d = 0;
      for (; d + 4 <= D; d += 4) {
        s0 += a[d] * b[d];
        s1 += a[d + 1] * b[d + 1];
        s2 += a[d + 2] * b[d + 2];
        s3 += a[d + 3] * b[d + 3];
      }
      for (; d < D; ++d) s0 += a[d] * b[d];
      C[m * ldc + n] = (s0 + s1) + (s2 + s3);
    }
  }
}

void gemm_scalar(const float* A, int64_t ars, int64_t acs, int M, int N, const float* X, int64_t ldx, int D,
                 float* C, int64_t ldc, int accumulate, const float*) {
  for (int m = 0; m < M; ++m) {
    float* c = C + m * ldc;
    if (!accumulate) std::fill(c, c + D, 0.0f);
    for (int n = 0; n < N; ++n) {
      const float a = A[m * ars + n * acs];
      const float* x = X + n * ldx;
      for (int d = 0; d < D; ++d) c[d] += a * x[d];
    }
  }
}

float softmax_row_scalar(float* s, int n, float* m, float* l) {
  float mb = kNegInf;
  for (int j = 0; j < n; ++j) mb = std::max(mb, s[j]);
  if (mb == kNegInf) {
    std::fill(s, s + n, 0.0f);
    return 1.0f;
  }
  const float mnew = std::max(*m, mb);
  const float alpha = std::exp(*m - mnew);  // exp(-inf) = 0 on the first visible block
  float sum = 0;
  for (int j = 0; j < n; ++j) {
    const float p = std::exp(s[j] - mnew);
    s[j] = p;
    sum += p;
  }
  *l = *l * alpha + sum;
  *m = mnew;
  return alpha;
}

void softmax_cols_scalar(float* St, int64_t ld, int n, int cols, float* m, float* l, float* alpha) {
  for (int c = 0; c < cols; ++c) {
    float mx = kNegInf;
    for (int j = 0; j < n; ++j) mx = std::max(mx, St[j * ld + c]);
    const float mnew = std::max(m[c], mx);
    if (mnew == kNegInf) {  // nothing visible yet: p = 0, state unchanged
      for (int j = 0; j < n; ++j) St[j * ld + c] = 0.0f;
      alpha[c] = 1.0f;
      continue;
    }
    const float a = std::exp(m[c] - mnew);
    float sum = 0;
    for (int j = 0; j < n; ++j) {
      const float p = std::exp(St[j * ld + c] - mnew);
      St[j * ld + c] = p;
      sum += p;
    }
    l[c] = l[c] * a + sum;
    m[c] = mnew;
    alpha[c] = a;
  }
}

void bwd_elem_scalar(float* s, float* dp, int64_t ld, int rows, int cols, const float* lse, const float* dsum,
                     float scale) {
  for (int r = 0; r < rows; ++r) {
    float* sr = s + r * ld;
    float* dr = dp + r * ld;
    for (int c = 0; c < cols; ++c) {
      const float p = std::exp(sr[c] - lse[c]);
      sr[c] = p;
      dr[c] = scale * p * (dr[c] - dsum[c]);
    }
  }
}

void scale_scalar(float* x, int n, float a) {
  for (int i = 0; i < n; ++i) x[i] *= a;
}

void exp_shift_scalar(const float* s, int n, float c, float* out) {
  for (int i = 0; i < n; ++i) out[i] = std::exp(s[i] - c);
}

// ---- AVX2 + FMA ------------------------------------------------------------------------------------------------
#if RF_X86

// Lanes [0, rem) selected: for the Dh % 8 tail. Masked lanes are neither read (no fault past the row end) nor
// contribute (they load as 0).
RF_AVX2 inline __m256i tail_mask(int rem) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(rem), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Prefetches the cache lines of one row of D floats. The K / V rows of one KV head are Hkv * Dh floats apart,
// a pattern the hardware prefetchers follow poorly: a single thread decoding from a KV cache in L3 / DRAM ran at a
// third of the streaming bandwidth without this. Kernels prefetch row n of the next key block while consuming
// row n of the current one, so the distance is one block and the requests are spread evenly. The hint is L2
// (T1): a block (up to 64 keys x all KV heads of a decode tile) does not fit L1 next to the current one, and
// pulling it into L1 early cost 5-10% against T1 in every regime measured (L2-, L3- and DRAM-resident caches).
RF_AVX2 inline void prefetch_row(const float* p, int D) {
  for (int off = 0; off < D; off += 16) _mm_prefetch(reinterpret_cast<const char*>(p + off), _MM_HINT_T1);
}

// e^x in float with a Cody-Waite range reduction x = n ln2 + r, |r| <= ln2/2, and the classic degree-6 minimax
// polynomial for e^r (about 1-2 ulp on the range softmax uses). Inputs below -86.5 give exactly 0 (so exp(-inf) = 0
// for masked scores): the cut keeps n >= -125, so y * 2^n is always a normal float. Clamping at log(FLT_MIN)
// instead makes every masked lane produce a denormal product, and each one costs a microcode assist (that alone
// made the softmax step several times slower). e^-86.5 ~ 2.7e-38 is far below float resolution next to the row
// maximum's e^0 = 1. Inputs are capped at 88 (results stay finite; softmax only feeds values <= 0). NaN
// propagates: min/max return their second operand when it is NaN.
RF_AVX2 inline __m256 exp256(__m256 x) {
  const __m256 lo = _mm256_set1_ps(-86.5f);
  const __m256 under = _mm256_cmp_ps(x, lo, _CMP_LT_OQ);
  x = _mm256_min_ps(_mm256_set1_ps(88.0f), x);
  x = _mm256_max_ps(lo, x);
  const __m256 fx = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m256 r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(0.693359375f), x);
  r = _mm256_fnmadd_ps(fx, _mm256_set1_ps(-2.12194440e-4f), r);
  __m256 y = _mm256_set1_ps(1.9875691500e-4f);
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.3981999507e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(8.3334519073e-3f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(4.1665795894e-2f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(1.6666665459e-1f));
  y = _mm256_fmadd_ps(y, r, _mm256_set1_ps(5.0000001201e-1f));
  y = _mm256_fmadd_ps(y, _mm256_mul_ps(r, r), _mm256_add_ps(r, _mm256_set1_ps(1.0f)));
  const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(fx), _mm256_set1_epi32(127)), 23);
  y = _mm256_mul_ps(y, _mm256_castsi256_ps(e));
  return _mm256_andnot_ps(under, y);
}

RF_AVX2 inline float hsum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

RF_AVX2 inline float hmax(__m256 v) {
  __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_max_ps(s, _mm_movehl_ps(s, s));
  s = _mm_max_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Reduces two rows x four columns of 8-lane accumulators to [row0 col0..3 | row1 col0..3]. hadd pairs the
// columns up so one shuffle tree serves all eight dot products instead of eight separate horizontal sums.
RF_AVX2 inline __m256 reduce_2x4(__m256 a0, __m256 a1, __m256 a2, __m256 a3, __m256 b0, __m256 b1, __m256 b2,
                                 __m256 b3) {
  const __m256 ua = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));
  const __m256 ub = _mm256_hadd_ps(_mm256_hadd_ps(b0, b1), _mm256_hadd_ps(b2, b3));
  return _mm256_add_ps(_mm256_permute2f128_ps(ua, ub, 0x20), _mm256_permute2f128_ps(ua, ub, 0x31));
}

// dots: the register block is 2 rows of A x 4 rows of B (8 independent FMA chains, enough to cover the FMA
// latency on two ports; 6 loads per 8 FMAs). A single leftover row of A uses 1 x 8. Missing B rows at the end
// of N reuse the last valid row and their results are dropped, which keeps a single code path.
RF_AVX2 void dots_avx2(const float* A, int64_t lda, int M, const float* B, int64_t ldb, int N, int D, float* C,
                       int64_t ldc, const float* pfB) {
  const int Dv = D & ~7;
  const int rem = D & 7;
  const __m256i tm = tail_mask(rem);
  int m = 0;
  for (; m + 2 <= M; m += 2) {
    const float* a0 = A + m * lda;
    const float* a1 = a0 + lda;
    for (int n = 0; n < N; n += 4) {
      const int nn = std::min(4, N - n);
      const float* b0 = B + n * ldb;
      const float* b1 = nn > 1 ? b0 + ldb : b0;
      const float* b2 = nn > 2 ? b0 + 2 * ldb : b0;
      const float* b3 = nn > 3 ? b0 + 3 * ldb : b0;
      if (pfB && m == 0)
        for (int i = 0; i < nn; ++i) prefetch_row(pfB + (n + i) * ldb, D);
      __m256 c00 = _mm256_setzero_ps(), c01 = c00, c02 = c00, c03 = c00;
      __m256 c10 = c00, c11 = c00, c12 = c00, c13 = c00;
      for (int d = 0; d < Dv; d += 8) {
        const __m256 x0 = _mm256_loadu_ps(a0 + d), x1 = _mm256_loadu_ps(a1 + d);
        __m256 y = _mm256_loadu_ps(b0 + d);
        c00 = _mm256_fmadd_ps(x0, y, c00);
        c10 = _mm256_fmadd_ps(x1, y, c10);
        y = _mm256_loadu_ps(b1 + d);
        c01 = _mm256_fmadd_ps(x0, y, c01);
        c11 = _mm256_fmadd_ps(x1, y, c11);
        y = _mm256_loadu_ps(b2 + d);
        c02 = _mm256_fmadd_ps(x0, y, c02);
        c12 = _mm256_fmadd_ps(x1, y, c12);
        y = _mm256_loadu_ps(b3 + d);
        c03 = _mm256_fmadd_ps(x0, y, c03);
        c13 = _mm256_fmadd_ps(x1, y, c13);
      }
      if (rem) {
        const __m256 x0 = _mm256_maskload_ps(a0 + Dv, tm), x1 = _mm256_maskload_ps(a1 + Dv, tm);
        __m256 y = _mm256_maskload_ps(b0 + Dv, tm);
        c00 = _mm256_fmadd_ps(x0, y, c00);
        c10 = _mm256_fmadd_ps(x1, y, c10);
        y = _mm256_maskload_ps(b1 + Dv, tm);
        c01 = _mm256_fmadd_ps(x0, y, c01);
        c11 = _mm256_fmadd_ps(x1, y, c11);
        y = _mm256_maskload_ps(b2 + Dv, tm);
        c02 = _mm256_fmadd_ps(x0, y, c02);
        c12 = _mm256_fmadd_ps(x1, y, c12);
        y = _mm256_maskload_ps(b3 + Dv, tm);
        c03 = _mm256_fmadd_ps(x0, y, c03);
        c13 = _mm256_fmadd_ps(x1, y, c13);
      }
      const __m256 r = reduce_2x4(c00, c01, c02, c03, c10, c11, c12, c13);
      if (nn == 4) {
        _mm_storeu_ps(C + m * ldc + n, _mm256_castps256_ps128(r));
        _mm_storeu_ps(C + (m + 1) * ldc + n, _mm256_extractf128_ps(r, 1));
      } else {
        alignas(32) float t[8];
        _mm256_store_ps(t, r);
        for (int i = 0; i < nn; ++i) {
          C[m * ldc + n + i] = t[i];
          C[(m + 1) * ldc + n + i] = t[4 + i];
        }
      }
    }
  }
  if (m < M) {
    const float* a0 = A + m * lda;
    for (int n = 0; n < N; n += 8) {
      const int nn = std::min(8, N - n);
      const float* b[8];
      for (int i = 0; i < 8; ++i) b[i] = B + (n + (i < nn ? i : 0)) * ldb;
      if (pfB && M == 1)
        for (int i = 0; i < nn; ++i) prefetch_row(pfB + (n + i) * ldb, D);
      __m256 c[8];
      for (int i = 0; i < 8; ++i) c[i] = _mm256_setzero_ps();
      for (int d = 0; d < Dv; d += 8) {
        const __m256 x = _mm256_loadu_ps(a0 + d);
        for (int i = 0; i < 8; ++i) c[i] = _mm256_fmadd_ps(x, _mm256_loadu_ps(b[i] + d), c[i]);
      }
      if (rem) {
        const __m256 x = _mm256_maskload_ps(a0 + Dv, tm);
        for (int i = 0; i < 8; ++i) c[i] = _mm256_fmadd_ps(x, _mm256_maskload_ps(b[i] + Dv, tm), c[i]);
      }
      // [c0..c3 | c4..c7] from two 4-column trees.
      const __m256 u0 = _mm256_hadd_ps(_mm256_hadd_ps(c[0], c[1]), _mm256_hadd_ps(c[2], c[3]));
      const __m256 u1 = _mm256_hadd_ps(_mm256_hadd_ps(c[4], c[5]), _mm256_hadd_ps(c[6], c[7]));
      const __m256 r =
          _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
      if (nn == 8) {
        _mm256_storeu_ps(C + m * ldc + n, r);
      } else {
        alignas(32) float t[8];
        _mm256_store_ps(t, r);
        for (int i = 0; i < nn; ++i) C[m * ldc + n + i] = t[i];
      }
    }
  }
}

// gemm register block: MR rows of C x NC chunks of 8 columns (MR * NC <= 8 accumulators), accumulated in
// registers over all N. Per n: NC loads of X, MR broadcasts of A, MR * NC FMAs. Blocks are chosen so that every
// row count keeps ~8 independent FMA chains (4x2, 3x2, 2x4, 1x8): with fewer the loop waits on FMA latency
// (decode has 1-2 rows per KV head, and a 2x2 block ran at half speed). Accumulators are named and every index
// is a compile-time constant, so they live in registers (GCC kept a loop-indexed acc[MR][NC] array in memory and
// stored it every iteration). TAIL masks the last chunk's X load (Dh % 8 != 0).
#define RF_ATTN_EACH8(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7)

template <int MR, int NC, bool TAIL>
RF_AVX2 inline void gacc_block(const float* A, int64_t ars, int64_t acs, int N, const float* X, int64_t ldx,
                               __m256i tm, float* C, int64_t ldc, bool acc, const float* pf, int pfD) {
  static_assert(MR >= 1 && NC >= 1 && MR * NC <= 8 && MR <= 4, "register block");
  constexpr int K = MR * NC;
  const __m256 z = _mm256_setzero_ps();
  __m256 c0 = z, c1 = z, c2 = z, c3 = z, c4 = z, c5 = z, c6 = z, c7 = z;
  // The tail chunk of C is loaded and stored under the mask, so C rows are touched up to element D-1 only.
  if (acc) {
#define RF_INIT(k)                                                                                 \
  if (k < K) {                                                                                     \
    float* cp = C + (k / NC) * ldc + 8 * (k % NC);                                                 \
    c##k = (TAIL && k % NC == NC - 1) ? _mm256_maskload_ps(cp, tm) : _mm256_loadu_ps(cp);          \
  }
    RF_ATTN_EACH8(RF_INIT)
#undef RF_INIT
  }
  const float* a = A;
  const float* x = X;
  for (int n = 0; n < N; ++n, a += acs, x += ldx) {
    if (pf) prefetch_row(pf + n * ldx, pfD);
    __m256 xv[NC];
    for (int c = 0; c < NC; ++c)
      xv[c] = (TAIL && c == NC - 1) ? _mm256_maskload_ps(x + 8 * c, tm) : _mm256_loadu_ps(x + 8 * c);
    __m256 bv[MR];
    for (int r = 0; r < MR; ++r) bv[r] = _mm256_broadcast_ss(a + r * ars);
#define RF_FMA(k) \
  if (k < K) c##k = _mm256_fmadd_ps(bv[(k / NC) % MR], xv[k % NC], c##k);
    RF_ATTN_EACH8(RF_FMA)
#undef RF_FMA
  }
#define RF_STORE(k)                                                                                \
  if (k < K) {                                                                                     \
    float* cp = C + (k / NC) * ldc + 8 * (k % NC);                                                 \
    if (TAIL && k % NC == NC - 1)                                                                  \
      _mm256_maskstore_ps(cp, tm, c##k);                                                           \
    else                                                                                           \
      _mm256_storeu_ps(cp, c##k);                                                                  \
  }
  RF_ATTN_EACH8(RF_STORE)
#undef RF_STORE
}

// Walks the column chunks of MR rows NCMAX chunks at a time (fewer for the last group).
template <int MR, int NCMAX>
RF_AVX2 inline void gacc_rows(const float* A, int64_t ars, int64_t acs, int N, const float* X, int64_t ldx, int nch,
                              int rem, __m256i tm, float* C, int64_t ldc, bool acc, const float* pf, int pfD) {
  for (int c = 0; c < nch; c += NCMAX) {
    const float* pfc = c == 0 ? pf : nullptr;  // the first column pass prefetches whole rows
    const int nc = std::min(NCMAX, nch - c);
    const bool tail = rem != 0 && c + nc == nch;
    const float* Xc = X + 8 * c;
    float* Cc = C + 8 * c;
#define RF_CASE(w)                                                            \
  case w:                                                                     \
    if constexpr (w <= NCMAX) {                                               \
      if (tail)                                                               \
        gacc_block<MR, (w <= NCMAX ? w : 1), true>(A, ars, acs, N, Xc, ldx, tm, Cc, ldc, acc, pfc, pfD);  \
      else                                                                    \
        gacc_block<MR, (w <= NCMAX ? w : 1), false>(A, ars, acs, N, Xc, ldx, tm, Cc, ldc, acc, pfc, pfD); \
    }                                                                         \
    break;
    switch (nc) {
      RF_CASE(1) RF_CASE(2) RF_CASE(3) RF_CASE(4) RF_CASE(5) RF_CASE(6) RF_CASE(7) RF_CASE(8)
      default: break;
    }
#undef RF_CASE
  }
}

RF_AVX2 void gemm_avx2(const float* A, int64_t ars, int64_t acs, int M, int N, const float* X, int64_t ldx, int D,
                       float* C, int64_t ldc, int accumulate, const float* pfX) {
  const bool acc = accumulate != 0;
  if (M <= 0 || N <= 0 || D <= 0) return;
  const int nch = (D + 7) / 8;
  const int rem = D & 7;
  const __m256i tm = tail_mask(rem);
  int m = 0;
  for (; m + 4 <= M; m += 4) {
    gacc_rows<4, 2>(A + m * ars, ars, acs, N, X, ldx, nch, rem, tm, C + m * ldc, ldc, acc, m == 0 ? pfX : nullptr, D);
  }
  const float* pf = m == 0 ? pfX : nullptr;
  switch (M - m) {
    case 3: gacc_rows<3, 2>(A + m * ars, ars, acs, N, X, ldx, nch, rem, tm, C + m * ldc, ldc, acc, pf, D); break;
    case 2: gacc_rows<2, 4>(A + m * ars, ars, acs, N, X, ldx, nch, rem, tm, C + m * ldc, ldc, acc, pf, D); break;
    case 1: gacc_rows<1, 8>(A + m * ars, ars, acs, N, X, ldx, nch, rem, tm, C + m * ldc, ldc, acc, pf, D); break;
    default: break;
  }
}

RF_AVX2 float softmax_row_avx2(float* s, int n, float* m, float* l) {
  const int np = (n + 7) & ~7;
  for (int j = n; j < np; ++j) s[j] = kNegInf;  // padding lanes: max-neutral, exp to 0
  __m256 mx = _mm256_set1_ps(kNegInf);
  for (int j = 0; j < np; j += 8) mx = _mm256_max_ps(mx, _mm256_loadu_ps(s + j));
  const float mb = hmax(mx);
  if (mb == kNegInf) {
    std::memset(s, 0, sizeof(float) * np);
    return 1.0f;
  }
  const float mnew = std::max(*m, mb);
  const float alpha = std::exp(*m - mnew);
  const __m256 sub = _mm256_set1_ps(mnew);
  __m256 sum = _mm256_setzero_ps();
  for (int j = 0; j < np; j += 8) {
    const __m256 p = exp256(_mm256_sub_ps(_mm256_loadu_ps(s + j), sub));
    _mm256_storeu_ps(s + j, p);
    sum = _mm256_add_ps(sum, p);
  }
  *l = *l * alpha + hsum(sum);
  *m = mnew;
  return alpha;
}

RF_AVX2 void softmax_cols_avx2(float* St, int64_t ld, int n, int cols, float* m, float* l, float* alpha) {
  const __m256 ninf = _mm256_set1_ps(kNegInf);
  for (int c = 0; c < cols; c += 8) {
    __m256 mx = ninf;
    for (int j = 0; j < n; ++j) mx = _mm256_max_ps(mx, _mm256_loadu_ps(St + j * ld + c));
    const __m256 mo = _mm256_loadu_ps(m + c);
    const __m256 mn = _mm256_max_ps(mo, mx);
    // Columns with nothing visible yet keep m = -inf; subtracting 0 instead makes their p = exp(-inf) = 0
    // rather than NaN, and their alpha is forced to 1.
    const __m256 none = _mm256_cmp_ps(mn, ninf, _CMP_EQ_OQ);
    const __m256 sub = _mm256_andnot_ps(none, mn);
    const __m256 a = _mm256_blendv_ps(exp256(_mm256_sub_ps(mo, sub)), _mm256_set1_ps(1.0f), none);
    __m256 sum = _mm256_setzero_ps();
    for (int j = 0; j < n; ++j) {
      const __m256 p = exp256(_mm256_sub_ps(_mm256_loadu_ps(St + j * ld + c), sub));
      _mm256_storeu_ps(St + j * ld + c, p);
      sum = _mm256_add_ps(sum, p);
    }
    _mm256_storeu_ps(l + c, _mm256_fmadd_ps(_mm256_loadu_ps(l + c), a, sum));
    _mm256_storeu_ps(m + c, mn);
    _mm256_storeu_ps(alpha + c, a);
  }
}

RF_AVX2 void bwd_elem_avx2(float* s, float* dp, int64_t ld, int rows, int cols, const float* lse,
                           const float* dsum, float scale) {
  const int cv = cols & ~7;
  const __m256 sc = _mm256_set1_ps(scale);
  for (int r = 0; r < rows; ++r) {
    float* sr = s + r * ld;
    float* dr = dp + r * ld;
    int c = 0;
    for (; c < cv; c += 8) {
      const __m256 p = exp256(_mm256_sub_ps(_mm256_loadu_ps(sr + c), _mm256_loadu_ps(lse + c)));
      _mm256_storeu_ps(sr + c, p);
      const __m256 d = _mm256_sub_ps(_mm256_loadu_ps(dr + c), _mm256_loadu_ps(dsum + c));
      _mm256_storeu_ps(dr + c, _mm256_mul_ps(_mm256_mul_ps(sc, p), d));
    }
    for (; c < cols; ++c) {
      const float p = std::exp(sr[c] - lse[c]);
      sr[c] = p;
      dr[c] = scale * p * (dr[c] - dsum[c]);
    }
  }
}

RF_AVX2 void scale_avx2(float* x, int n, float a) {
  const __m256 av = _mm256_set1_ps(a);
  int i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_loadu_ps(x + i), av));
  for (; i < n; ++i) x[i] *= a;
}

RF_AVX2 void exp_shift_avx2(const float* s, int n, float c, float* out) {
  const __m256 cv = _mm256_set1_ps(c);
  int i = 0;
  for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, exp256(_mm256_sub_ps(_mm256_loadu_ps(s + i), cv)));
  for (; i < n; ++i) out[i] = std::exp(s[i] - c);
}

// ---- AVX-512 ----------------------------------------------------------------------------------------------------
// The products of 4 or more rows and the column softmax with 16 lanes: per lane the same operations in the same order
// as the AVX2 kernels (each output an FMA chain over n; exp512 is exp256's polynomial), so the outputs have the same
// bits; twice the work per instruction where the cores run 512-bit FMAs at full rate (Intel server cores). (The
// zero-masked forms: GCC 12's plain ones carry an "undefined" operand it warns about, -Wmaybe-uninitialized.)
#define RF_AVX512 __attribute__((target("avx512f,avx2,fma,f16c")))
#define RF_ATTN_EACH16(X) RF_ATTN_EACH8(X) X(8) X(9) X(10) X(11) X(12) X(13) X(14) X(15)

RF_AVX512 inline __m512 exp512(__m512 x) {
  const __m512 lo = _mm512_set1_ps(-86.5f);
  const __mmask16 under = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
  x = _mm512_maskz_min_ps(0xFFFF, _mm512_set1_ps(88.0f), x);
  x = _mm512_maskz_max_ps(0xFFFF, lo, x);
  const __m512 fx = _mm512_maskz_roundscale_ps(0xFFFF, _mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)),
                                         _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
  __m512 r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(0.693359375f), x);
  r = _mm512_fnmadd_ps(fx, _mm512_set1_ps(-2.12194440e-4f), r);
  __m512 y = _mm512_set1_ps(1.9875691500e-4f);
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.3981999507e-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(8.3334519073e-3f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(4.1665795894e-2f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(1.6666665459e-1f));
  y = _mm512_fmadd_ps(y, r, _mm512_set1_ps(5.0000001201e-1f));
  y = _mm512_fmadd_ps(y, _mm512_mul_ps(r, r), _mm512_add_ps(r, _mm512_set1_ps(1.0f)));
  const __m512i e = _mm512_maskz_slli_epi32(0xFFFF, _mm512_add_epi32(_mm512_maskz_cvtps_epi32(0xFFFF, fx), _mm512_set1_epi32(127)), 23);
  y = _mm512_mul_ps(y, _mm512_castsi512_ps(e));
  return _mm512_maskz_mov_ps(static_cast<__mmask16>(~under), y);
}

// 4 rows of C x NC chunks of 16 columns (NC <= 4), accumulated in registers over all N; tm masks the last chunk
// (D % 16 != 0).
template <int NC, bool TAIL>
RF_AVX512 inline void gacc4_512(const float* A, int64_t ars, int64_t acs, int N, const float* X, int64_t ldx,
                                __mmask16 tm, float* C, int64_t ldc, bool acc, const float* pf, int pfD) {
  constexpr int K = 4 * NC;
  const __m512 z = _mm512_setzero_ps();
  __m512 c0 = z, c1 = z, c2 = z, c3 = z, c4 = z, c5 = z, c6 = z, c7 = z, c8 = z, c9 = z, c10 = z, c11 = z, c12 = z,
         c13 = z, c14 = z, c15 = z;
  if (acc) {
#define RF_INIT(k)                                                                             \
  if (k < K) {                                                                                 \
    const float* cp = C + (k / NC) * ldc + 16 * (k % NC);                                      \
    c##k = (TAIL && k % NC == NC - 1) ? _mm512_maskz_loadu_ps(tm, cp) : _mm512_loadu_ps(cp);   \
  }
    RF_ATTN_EACH16(RF_INIT)
#undef RF_INIT
  }
  const float* a = A;
  const float* x = X;
  for (int n = 0; n < N; ++n, a += acs, x += ldx) {
    if (pf) prefetch_row(pf + n * ldx, pfD);
    __m512 xv[NC];
    for (int c = 0; c < NC; ++c) xv[c] = (TAIL && c == NC - 1) ? _mm512_maskz_loadu_ps(tm, x + 16 * c) : _mm512_loadu_ps(x + 16 * c);
    __m512 bv[4];
    for (int r = 0; r < 4; ++r) bv[r] = _mm512_set1_ps(a[r * ars]);
#define RF_FMA(k) \
  if (k < K) c##k = _mm512_fmadd_ps(bv[(k / NC) % 4], xv[k % NC], c##k);
    RF_ATTN_EACH16(RF_FMA)
#undef RF_FMA
  }
#define RF_STORE(k)                                                                            \
  if (k < K) {                                                                                 \
    float* cp = C + (k / NC) * ldc + 16 * (k % NC);                                            \
    if (TAIL && k % NC == NC - 1)                                                              \
      _mm512_mask_storeu_ps(cp, tm, c##k);                                                     \
    else                                                                                       \
      _mm512_storeu_ps(cp, c##k);                                                              \
  }
  RF_ATTN_EACH16(RF_STORE)
#undef RF_STORE
}

RF_AVX512 void gemm_avx512(const float* A, int64_t ars, int64_t acs, int M, int N, const float* X, int64_t ldx, int D,
                           float* C, int64_t ldc, int accumulate, const float* pfX) {
  if (M <= 0 || N <= 0 || D <= 0) return;
  const bool acc = accumulate != 0;
  const int nch = (D + 15) / 16, rem = D & 15;
  const __mmask16 tm = rem ? static_cast<__mmask16>((1u << rem) - 1) : static_cast<__mmask16>(0xFFFF);
  int m = 0;
  for (; m + 4 <= M; m += 4) {
    const float* pf = m == 0 ? pfX : nullptr;
    for (int c = 0; c < nch; c += 4) {
      const int nc = std::min(4, nch - c);
      const bool tail = rem != 0 && c + nc == nch;
      const float* pfc = c == 0 ? pf : nullptr;
      const float* Am = A + m * ars;
      const float* Xc = X + 16 * c;
      float* Cc = C + m * ldc + 16 * c;
#define RF_CASE(w)                                                                                         \
  case w:                                                                                                  \
    if (tail)                                                                                              \
      gacc4_512<w, true>(Am, ars, acs, N, Xc, ldx, tm, Cc, ldc, acc, pfc, D);                              \
    else                                                                                                   \
      gacc4_512<w, false>(Am, ars, acs, N, Xc, ldx, tm, Cc, ldc, acc, pfc, D);                             \
    break;
      switch (nc) {
        RF_CASE(1) RF_CASE(2) RF_CASE(3) RF_CASE(4)
        default: break;
      }
#undef RF_CASE
    }
  }
  // fewer than 4 rows left: the AVX2 blocks (1 x 8, 2 x 4, 3 x 2 chunks keep enough FMA chains)
  if (m < M) gemm_avx2(A + m * ars, ars, acs, M - m, N, X, ldx, D, C + m * ldc, ldc, accumulate, m == 0 ? pfX : nullptr);
}

RF_AVX512 void softmax_cols_avx512(float* St, int64_t ld, int n, int cols, float* m, float* l, float* alpha) {
  const __m512 ninf = _mm512_set1_ps(kNegInf);
  const int c16 = ((cols + 7) & ~7) & ~15;  // whole 16-column groups inside the 8-rounded scratch
  for (int c = 0; c < c16; c += 16) {
    __m512 mx = ninf;
    for (int j = 0; j < n; ++j) mx = _mm512_maskz_max_ps(0xFFFF, mx, _mm512_loadu_ps(St + j * ld + c));
    const __m512 mo = _mm512_loadu_ps(m + c);
    const __m512 mn = _mm512_maskz_max_ps(0xFFFF, mo, mx);
    const __mmask16 none = _mm512_cmp_ps_mask(mn, ninf, _CMP_EQ_OQ);
    const __m512 sub = _mm512_maskz_mov_ps(static_cast<__mmask16>(~none), mn);
    const __m512 a = _mm512_mask_blend_ps(none, exp512(_mm512_sub_ps(mo, sub)), _mm512_set1_ps(1.0f));
    __m512 sum = _mm512_setzero_ps();
    for (int j = 0; j < n; ++j) {
      const __m512 p = exp512(_mm512_sub_ps(_mm512_loadu_ps(St + j * ld + c), sub));
      _mm512_storeu_ps(St + j * ld + c, p);
      sum = _mm512_add_ps(sum, p);
    }
    _mm512_storeu_ps(l + c, _mm512_fmadd_ps(_mm512_loadu_ps(l + c), a, sum));
    _mm512_storeu_ps(m + c, mn);
    _mm512_storeu_ps(alpha + c, a);
  }
  if (c16 < cols) softmax_cols_avx2(St + c16, ld, n, cols - c16, m + c16, l + c16, alpha + c16);
}

#endif  // RF_X86

const KernelTable kScalar = {dots_scalar,        gemm_scalar,  softmax_row_scalar, softmax_cols_scalar,
                             bwd_elem_scalar,    scale_scalar, exp_shift_scalar,   "scalar"};
#if RF_X86
const KernelTable kAvx2 = {dots_avx2,     gemm_avx2,  softmax_row_avx2, softmax_cols_avx2,
                           bwd_elem_avx2, scale_avx2, exp_shift_avx2,   "avx2"};
const KernelTable kAvx512 = {dots_avx2,     gemm_avx512, softmax_row_avx2, softmax_cols_avx512,
                             bwd_elem_avx2, scale_avx2,  exp_shift_avx2,   "avx512"};
#endif

}  // namespace

const KernelTable& attn_kernels() {
  static const KernelTable& t = pick(kScalar, RF_X86_TABLE(kAvx2), RF_X86_TABLE(kAvx512));
  return t;
}

}  // namespace attn
}  // namespace rf
