// Quantized weights read in their GGUF blocks: gemmQ (C (M, N) = A (M, K) . W^T) and dequantQ, for W (N, K) stored
// as llama.cpp's Q8_0, Q4_K, Q5_K or Q6_K blocks, one row after another (row r starts at w + r * row_bytes). The
// block layouts are documented in src/io/kquants.ts; in short (bytes of one block, values it holds):
//
//   Q8_0   34 B /  32: d (f16), q[32] int8                               x = d * q
//   Q4_K  144 B / 256: d, dmin (f16), 12 bytes of eight 6-bit scales sc[j] and mins m[j], qs[128] (two 4-bit quants a
//                      byte)                                              x = d * sc[j] * q - dmin * m[j]
//   Q5_K  176 B / 256: as Q4_K plus qh[32] (the fifth bit of each quant)
//   Q6_K  210 B / 256: ql[128] (low 4 bits), qh[64] (high 2 bits), sc[16] int8, d (f16)   x = d * sc[j] * (q - 32)
//
// Each activation row is first quantized to 8 bits, per block of 32 values for Q8_0 weights and of 256 for the
// K-quants (as llama.cpp rounds them, below; the same on every instruction set), then every weight row is dotted with
// it in integers: inside a block the products are summed exactly (int32; the K-quants' 6- and 8-bit sub-block scales
// multiply in there too) and each block's sum is scaled once in float (d_w * d_b). Q4_K/Q5_K's mins and Q6_K's
// offset of 32 enter through the activation sums of every 16 values. This is how llama.cpp computes these products
// (its Q8_K/Q8_0 activations), written here from the formats. The weight is read at its stored size (4.5 bits a
// value for Q4_K); the inner loop is integer multiply-adds (maddubs: unsigned weight codes by signed activation bytes
// into int16 pair sums, which cannot overflow: at most 2 * 63 * 128), and up to four (AVX2) or eight (AVX-512
// VNNI) activation rows share each unpacked piece of a weight row, so a prefill unpacks every weight once per 4-8
// tokens. On CPUs with AMX (quant_amx.inc) the K-quants' products of 16 or more activation rows run on the tile unit
// instead, with the same integers and float steps, so the same bits. The result differs from the product with exact
// activations by the activation rounding only (at most sum |w| * d_b / 2 per output).
#include "common.h"
#include "ew_simd.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace {

constexpr int kQ8_0 = 8, kQ4_K = 12, kQ5_K = 13, kQ6_K = 14;  // ggml type ids (the GGUF file's numbers)

struct Format {
  int64_t values, bytes;  // per block
};

Format format_of(int type) {
  switch (type) {
    case kQ8_0: return {32, 34};
    case kQ4_K: return {256, 144};
    case kQ5_K: return {256, 176};
    case kQ6_K: return {256, 210};
    default: return {0, 0};
  }
}

// One activation row quantized to 8 bits: per block of `block` values (32 for Q8_0 weights, 256 for the K-quants) a
// scale d[b]; for the K-quants also the exact sums s[j] of the quants of every 16 values (Q4_K/Q5_K's mins, Q6_K's
// offset of 32).
struct QRow {
  const int8_t* q;
  const float* d;
  const int16_t* s;
};

// The eight 6-bit scales (out[0..7]) and mins (out[8..15]) of a Q4_K/Q5_K super-block's 12 scale bytes b, four at a
// time in 32-bit words: sc[0..3] = b[0..3] & 63, m[0..3] = b[4..7] & 63, sc[4..7] = low nibbles of b[8..11] with
// the top two bits of b[0..3] above them, m[4..7] = high nibbles of b[8..11] with the top two bits of b[4..7].
inline void scales_mins(const uint8_t* b, uint8_t out[16]) {
  uint32_t w0, w1, w2;
  std::memcpy(&w0, b, 4);
  std::memcpy(&w1, b + 4, 4);
  std::memcpy(&w2, b + 8, 4);
  const uint32_t v[4] = {w0 & 0x3f3f3f3fu, ((w0 >> 6) & 0x03030303u) << 4 | (w2 & 0x0f0f0f0fu), w1 & 0x3f3f3f3fu,
                         ((w1 >> 6) & 0x03030303u) << 4 | ((w2 >> 4) & 0x0f0f0f0fu)};
  std::memcpy(out, v, 16);
}

inline float f16(const uint8_t* p) { return rf::half_to_float(static_cast<uint16_t>(p[0] | (p[1] << 8))); }

// ---- activation quantization (identical on every ISA: comparisons, one division, round half to even) -------------
//
// llama.cpp's conventions, so that our products (and greedy tokens) agree with its own: for the K-quants (its Q8_K)
// the value of largest magnitude m (the first one) sets iscale = -128 / m, q = round(x * iscale) capped at 127 (m
// itself becomes -128) and d = 1 / iscale; for Q8_0 weights (its Q8_0 activations) d = amax / 127 stored as an f16,
// q = round(x * 127 / amax).

void quantize_row(const float* x, int64_t K, int64_t block, int8_t* q, float* d, int16_t* s) {
  for (int64_t b = 0; b < K / block; ++b) {
    const float* xb = x + block * b;
    int8_t* qb = q + block * b;
    float amax = 0, m = 0;
    for (int64_t i = 0; i < block; ++i) {
      if (std::fabs(xb[i]) > amax) amax = std::fabs(xb[i]), m = xb[i];
    }
    if (amax == 0) {
      std::memset(qb, 0, static_cast<size_t>(block));
      d[b] = 0;
      continue;
    }
    if (block == 32) {
      const float id = 127.0f / amax;
      for (int64_t i = 0; i < block; ++i) qb[i] = static_cast<int8_t>(std::nearbyint(xb[i] * id));
      d[b] = rf::half_to_float(rf::float_to_half(amax / 127.0f));
    } else {
      const float iscale = -128.0f / m;
      for (int64_t i = 0; i < block; ++i) qb[i] = static_cast<int8_t>(std::min(127, static_cast<int>(std::nearbyint(iscale * xb[i]))));
      d[b] = 1.0f / iscale;
    }
  }
  if (s == nullptr) return;
  for (int64_t j = 0; j < K / 16; ++j) {
    int sum = 0;
    for (int i = 0; i < 16; ++i) sum += q[16 * j + i];
    s[j] = static_cast<int16_t>(sum);
  }
}

// ---- exact dequantization (one row of K values) ------------------------------------------------------------------

void dequant_row(int type, const uint8_t* w, int64_t K, float* out) {
  if (type == kQ8_0) {
    for (int64_t b = 0; b < K / 32; ++b, w += 34) {
      const float d = f16(w);
      for (int i = 0; i < 32; ++i) out[32 * b + i] = d * static_cast<float>(static_cast<int8_t>(w[2 + i]));
    }
    return;
  }
  if (type == kQ6_K) {
    for (int64_t b = 0; b < K / 256; ++b, w += 210, out += 256) {
      const float d = f16(w + 208);
      for (int h = 0; h < 2; ++h) {
        const uint8_t* ql = w + 64 * h;
        const uint8_t* qh = w + 128 + 32 * h;
        const int8_t* sc = reinterpret_cast<const int8_t*>(w + 192 + 8 * h);
        for (int l = 0; l < 32; ++l) {
          const int s = l >> 4;
          float* o = out + 128 * h + l;
          o[0] = d * sc[s] * static_cast<float>(((ql[l] & 15) | ((qh[l] & 3) << 4)) - 32);
          o[32] = d * sc[s + 2] * static_cast<float>(((ql[l + 32] & 15) | (((qh[l] >> 2) & 3) << 4)) - 32);
          o[64] = d * sc[s + 4] * static_cast<float>(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
          o[96] = d * sc[s + 6] * static_cast<float>(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
        }
      }
    }
    return;
  }
  const bool five = type == kQ5_K;
  const int64_t bytes = five ? 176 : 144;
  for (int64_t b = 0; b < K / 256; ++b, w += bytes, out += 256) {
    const float d = f16(w), dmin = f16(w + 2);
    const uint8_t* qh = w + 16;
    const uint8_t* qs = w + (five ? 48 : 16);
    uint8_t sm[16];
    scales_mins(w + 4, sm);
    for (int c = 0; c < 4; ++c) {
      const float d1 = d * sm[2 * c], n1 = dmin * sm[8 + 2 * c], d2 = d * sm[2 * c + 1], n2 = dmin * sm[9 + 2 * c];
      for (int l = 0; l < 32; ++l) {
        int lo = qs[32 * c + l] & 15, hi = qs[32 * c + l] >> 4;
        if (five) {
          lo |= ((qh[l] >> (2 * c)) & 1) << 4;
          hi |= ((qh[l] >> (2 * c + 1)) & 1) << 4;
        }
        out[64 * c + l] = d1 * lo - n1;
        out[64 * c + 32 + l] = d2 * hi - n2;
      }
    }
  }
}

// ---- dot products of one weight row with one quantized activation row ---------------------------------------------
//
// Q8_0 weights meet activations with a scale per 32 values: each block's integer sum is scaled by d_w * d_x in float.
// The K-quants meet activations with one scale per 256 values (a super-block): inside a super-block the sub-block
// scales are integers, so sum_j sc_j * (sum of the sub-block's products) is exact in int32 and is scaled once, by
// d * d_x; Q4_K/Q5_K's mins need only the activation sums: dmin * d_x * sum_j m_j * s_j.

// Portable.
float dot_q8_0_scalar(const uint8_t* w, int64_t K, const QRow& x) {
  float acc = 0;
  for (int64_t b = 0; b < K / 32; ++b, w += 34) {
    int sum = 0;
    for (int i = 0; i < 32; ++i) sum += static_cast<int8_t>(w[2 + i]) * x.q[32 * b + i];
    acc += f16(w) * x.d[b] * static_cast<float>(sum);
  }
  return acc;
}

template <bool kFive>
float dot_qxk_scalar(const uint8_t* w, int64_t K, const QRow& x) {
  constexpr int64_t kBytes = kFive ? 176 : 144;
  float acc = 0;
  for (int64_t b = 0; b < K / 256; ++b, w += kBytes) {
    const uint8_t* qh = w + 16;
    const uint8_t* qs = w + (kFive ? 48 : 16);
    const int8_t* q = x.q + 256 * b;
    uint8_t sm[16];
    scales_mins(w + 4, sm);
    int isum = 0, msum = 0;
    for (int j = 0; j < 8; ++j) {
      const int c = j >> 1, hi = j & 1;
      int sum = 0;
      for (int l = 0; l < 32; ++l) {
        int v = hi ? qs[32 * c + l] >> 4 : qs[32 * c + l] & 15;
        if (kFive) v |= ((qh[l] >> j) & 1) << 4;
        sum += v * q[32 * j + l];
      }
      isum += sm[j] * sum;
      msum += sm[8 + j] * (x.s[16 * b + 2 * j] + x.s[16 * b + 2 * j + 1]);
    }
    acc = std::fma(static_cast<float>(isum), f16(w) * x.d[b], acc);  // the float steps of quant_kq_steps.inc
    acc = std::fma(-static_cast<float>(msum), f16(w + 2) * x.d[b], acc);
  }
  return acc;
}

float dot_q6_k_scalar(const uint8_t* w, int64_t K, const QRow& x) {
  float acc = 0;
  for (int64_t b = 0; b < K / 256; ++b, w += 210) {
    const int8_t* sc = reinterpret_cast<const int8_t*>(w + 192);
    int isum = 0;
    for (int h = 0; h < 2; ++h) {
      const uint8_t* ql = w + 64 * h;
      const uint8_t* qh = w + 128 + 32 * h;
      for (int k = 0; k < 4; ++k) {  // 32 values, two 16-value scale blocks
        const int8_t* q = x.q + 256 * b + 128 * h + 32 * k;
        int sum0 = 0, sum1 = 0;
        for (int l = 0; l < 32; ++l) {
          const int lo = (k < 2 ? ql[32 * (k & 1) + l] & 15 : ql[32 * (k & 1) + l] >> 4);
          const int v = (lo | (((qh[l] >> (2 * k)) & 3) << 4)) - 32;
          (l < 16 ? sum0 : sum1) += v * q[l];
        }
        const int j = 8 * h + 2 * k;
        isum += sc[j] * sum0 + sc[j + 1] * sum1;
      }
    }
    acc = std::fma(static_cast<float>(isum), f16(w + 208) * x.d[b], acc);
  }
  return acc;
}

// AVX2: 32 quants a vector; maddubs multiplies unsigned weight codes by signed activation bytes into 16 pair sums
// (int16), madd multiplies those by the sub-block scale and adds neighbours into eight int32 lanes. Q8_0's signed
// weights use |w| and x with w's sign (its activations stay within +-127, so the sign flip cannot overflow).
#if RF_X86
using rf::ew::hmax;
using rf::ew::hsum;

RF_AVX2 inline float f16c(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

RF_AVX2 inline __m256i load32(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

// Signed weights w (int8) by signed x: |w| times x with w's sign, as maddubs needs one unsigned side.
RF_AVX2 inline __m256i pairs_s8s8(__m256i w, __m256i x) {
  return _mm256_maddubs_epi16(_mm256_sign_epi8(w, w), _mm256_sign_epi8(x, w));
}

RF_AVX2 float dot_q8_0_avx2(const uint8_t* w, int64_t K, const QRow& x) {
  const __m256i ones = _mm256_set1_epi16(1);
  __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
  const int64_t nb = K / 32;
  int64_t b = 0;
  for (; b + 1 < nb; b += 2, w += 68) {
    const __m256i p0 = _mm256_madd_epi16(pairs_s8s8(load32(w + 2), load32(x.q + 32 * b)), ones);
    const __m256i p1 = _mm256_madd_epi16(pairs_s8s8(load32(w + 36), load32(x.q + 32 * b + 32)), ones);
    acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(f16c(w) * x.d[b]), acc0);
    acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p1), _mm256_set1_ps(f16c(w + 34) * x.d[b + 1]), acc1);
  }
  for (; b < nb; ++b, w += 34) {
    const __m256i p0 = _mm256_madd_epi16(pairs_s8s8(load32(w + 2), load32(x.q + 32 * b)), ones);
    acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p0), _mm256_set1_ps(f16c(w) * x.d[b]), acc0);
  }
  return hsum(_mm256_add_ps(acc0, acc1));
}

// quantize_row for the K-quants (blocks of 256) in AVX2, the same bits: the largest magnitude and the first value that
// has it, then round(x * iscale) (cvtps_epi32 rounds to nearest even, as nearbyint does), capped at 127; and the
// exact sums of every 16 quants. A prefill quantizes every activation row before each product, which on the AMX
// tiles would otherwise cost as much as the product itself.
RF_AVX2 void quantize_row_k_avx2(const float* x, int64_t K, int8_t* q, float* d, int16_t* s) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256i order = _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7), ones8 = _mm256_set1_epi8(1), ones16 = _mm256_set1_epi16(1);
  for (int64_t b = 0; b < K / 256; ++b) {
    const float* xb = x + 256 * b;
    int8_t* qb = q + 256 * b;
    __m256 mx = _mm256_setzero_ps();
    for (int i = 0; i < 256; i += 8) mx = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(xb + i), abs_mask), mx);  // NaN: skipped
    const float amax = hmax(mx);
    if (!(amax > 0)) {
      std::memset(qb, 0, 256);
      std::memset(s + 16 * b, 0, 16 * sizeof(int16_t));
      d[b] = 0;
      continue;
    }
    float m = 0;
    for (int i = 0; i < 256; i += 8) {
      const int hit = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_and_ps(_mm256_loadu_ps(xb + i), abs_mask), _mm256_set1_ps(amax), _CMP_EQ_OQ));
      if (hit) {
        m = xb[i + __builtin_ctz(static_cast<unsigned>(hit))];
        break;
      }
    }
    const float iscale = -128.0f / m;
    const __m256 vs = _mm256_set1_ps(iscale);
    const __m256i cap = _mm256_set1_epi32(127);
    __m256i sums[8];
    for (int i = 0; i < 256; i += 32) {
      __m256i r[4];
      for (int k = 0; k < 4; ++k) r[k] = _mm256_min_epi32(_mm256_cvtps_epi32(_mm256_mul_ps(vs, _mm256_loadu_ps(xb + i + 8 * k))), cap);
      const __m256i bytes = _mm256_permutevar8x32_epi32(
          _mm256_packs_epi16(_mm256_packs_epi32(r[0], r[1]), _mm256_packs_epi32(r[2], r[3])), order);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(qb + i), bytes);
      sums[i / 32] = _mm256_madd_epi16(_mm256_maddubs_epi16(ones8, bytes), ones16);  // sums of 4 quants
    }
    // lane sums of 16 quants: s[2k] = low half of sums[k], s[2k + 1] = high half
    const __m256i u0 = _mm256_hadd_epi32(_mm256_hadd_epi32(sums[0], sums[1]), _mm256_hadd_epi32(sums[2], sums[3]));
    const __m256i u1 = _mm256_hadd_epi32(_mm256_hadd_epi32(sums[4], sums[5]), _mm256_hadd_epi32(sums[6], sums[7]));
    const __m256i s16 = _mm256_permute4x64_epi64(_mm256_packs_epi32(_mm256_permutevar8x32_epi32(u0, order), _mm256_permutevar8x32_epi32(u1, order)), 0xD8);
    _mm256_storeu_si256(reinterpret_cast<__m256i*>(s + 16 * b), s16);
    d[b] = 1.0f / iscale;
  }
}

// AMX needs GCC 11 / clang 12 or later (and Linux, which hands out the tile state on request: rf::cpu_has_amx_int8).
#if RF_X86 && defined(__linux__) && ((defined(__clang__) && __clang_major__ >= 12) || (!defined(__clang__) && __GNUC__ >= 11))
#define RF_AMX 1
#else
#define RF_AMX 0
#endif

// The K-quant kernels: AVX2 (quant_kq.inc), and AVX-512 VNNI where the CPU has it (quant_kq512.inc: the same
// integers in the same lanes, so the same bits as AVX2), each region with the shared end of a super-block
// (quant_kq_steps.inc).
#if defined(__clang__)
#define RF_TARGET_PUSH(t) _Pragma("clang attribute push") RF_TARGET_APPLY(t)
#define RF_TARGET_APPLY(t) _Pragma(RF_STR(clang attribute(__attribute__((target(t))), apply_to = function)))
#define RF_TARGET_POP _Pragma("clang attribute pop") _Pragma("clang attribute pop")
#else
#define RF_TARGET_PUSH(t) _Pragma("GCC push_options") _Pragma(RF_STR(GCC target(t)))
#define RF_TARGET_POP _Pragma("GCC pop_options")
#endif
#define RF_STR(x) RF_STR2(x)
#define RF_STR2(x) #x

namespace kq_avx2 {
RF_TARGET_PUSH("avx2,fma,f16c")
#include "quant_kq_steps.inc"
#include "quant_kq.inc"
RF_TARGET_POP
}  // namespace kq_avx2
namespace kq_vnni {
#if RF_AMX
RF_TARGET_PUSH("amx-tile,amx-int8,avx512vnni,avx512vl,avx512bw,avx512f,avx2,fma,f16c")
#else
RF_TARGET_PUSH("avx512vnni,avx512vl,avx512bw,avx512f,avx2,fma,f16c")
#endif
#include "quant_kq_steps.inc"
#include "quant_kq512.inc"
#if RF_AMX
#include "quant_amx.inc"
#endif
RF_TARGET_POP
}  // namespace kq_vnni
#endif

// A kernel for NX activation rows out of a one-row dot product (the scalar table, and Q8_0).
template <float (*Dot)(const uint8_t*, int64_t, const QRow&), int NX>
void rows_of(const uint8_t* w, int64_t K, const QRow* x, float* out) {
  for (int i = 0; i < NX; ++i) out[i] = Dot(w, K, x[i]);
}

// The family's kernel table (rf::pick, common.h): for each format, kernels for 1 to `rows` activation rows (4 with
// AVX2's 16 vector registers, 8 with AVX-512 VNNI's 32: the more rows share an unpacked weight piece, the less unpacking),
// and for Q4_K / Q5_K on AVX-512 VNNI one kernel for 16 rows (quant_kq512.inc), which a prefill's full groups use.
using RowsFn = void (*)(const uint8_t* w, int64_t K, const QRow* x, float* out);
constexpr int kMaxRows = 8;
using QuantizeFn = void (*)(const float* x, int64_t K, int8_t* q, float* d, int16_t* s);
struct QuantKernels {
  int rows;
  RowsFn q8_0[kMaxRows], q4_k[kMaxRows], q5_k[kMaxRows], q6_k[kMaxRows];
  QuantizeFn quantize_k;  // quantize_row for blocks of 256
  bool amx;               // the K-quants' products of 16+ rows go to the AMX tiles (quant_amx.inc)
  RowsFn q4_k16 = nullptr, q5_k16 = nullptr;  // for 16 rows at once, where the set has them
  const RowsFn* of(int type) const {
    return type == kQ8_0 ? q8_0 : type == kQ4_K ? q4_k : type == kQ5_K ? q5_k : q6_k;
  }
  RowsFn of16(int type) const { return type == kQ4_K ? q4_k16 : type == kQ5_K ? q5_k16 : nullptr; }
};

// The table entries for 1..4 (or 1..8) rows: of a row-kernel template f<NX>, or of a one-row dot product.
#define RF_Q4(f) f<1>, f<2>, f<3>, f<4>
#define RF_Q8(f) RF_Q4(f), f<5>, f<6>, f<7>, f<8>
#define RF_DOT4(dot) rows_of<dot, 1>, rows_of<dot, 2>, rows_of<dot, 3>, rows_of<dot, 4>
#define RF_DOT8(dot) RF_DOT4(dot), rows_of<dot, 5>, rows_of<dot, 6>, rows_of<dot, 7>, rows_of<dot, 8>
void quantize_row_k(const float* x, int64_t K, int8_t* q, float* d, int16_t* s) { quantize_row(x, K, 256, q, d, s); }
const QuantKernels kScalar = {4, {RF_DOT4(dot_q8_0_scalar)}, {RF_DOT4(dot_qxk_scalar<false>)},
                              {RF_DOT4(dot_qxk_scalar<true>)}, {RF_DOT4(dot_q6_k_scalar)}, quantize_row_k, false};
#if RF_X86
template <int NX> void q4_k_avx2(const uint8_t* w, int64_t K, const QRow* x, float* out) { kq_avx2::rows_qxk<false, NX>(w, K, x, out); }
template <int NX> void q5_k_avx2(const uint8_t* w, int64_t K, const QRow* x, float* out) { kq_avx2::rows_qxk<true, NX>(w, K, x, out); }
template <int NX> void q4_k_vnni(const uint8_t* w, int64_t K, const QRow* x, float* out) { kq_vnni::rows_qxk_512<false, NX>(w, K, x, out); }
template <int NX> void q5_k_vnni(const uint8_t* w, int64_t K, const QRow* x, float* out) { kq_vnni::rows_qxk_512<true, NX>(w, K, x, out); }
const QuantKernels kAvx2 = {4, {RF_DOT4(dot_q8_0_avx2)}, {RF_Q4(q4_k_avx2)}, {RF_Q4(q5_k_avx2)}, {RF_Q4(kq_avx2::rows_q6_k)},
                            quantize_row_k_avx2, false};
const QuantKernels kVnni = {8, {RF_DOT8(dot_q8_0_avx2)}, {RF_Q8(q4_k_vnni)}, {RF_Q8(q5_k_vnni)}, {RF_Q8(kq_vnni::rows_q6_k_512)},
                            quantize_row_k_avx2, false, kq_vnni::rows_qxk_512x16<false>, kq_vnni::rows_qxk_512x16<true>};
const QuantKernels kAmx = [] {  // kVnni, with the 16+ row K-quant products on the tiles
  QuantKernels k = kVnni;
  k.amx = RF_AMX != 0;
  return k;
}();
#endif

// AVX-512 VNNI (dpwssd) where the CPU has it and RECURFORMER_SIMD allows AVX-512 (with AMX for prefill where the CPU
// and OS have it and RECURFORMER_SIMD is not avx512), else AVX2, else portable.
const QuantKernels& kernels() {
  static const QuantKernels& t = rf::pick(kScalar, RF_X86_TABLE(kAvx2),
                                          !rf::cpu_has_avx512_vnni() ? nullptr
                                          : RF_AMX && rf::cpu_has_amx_int8() ? RF_X86_TABLE(kAmx)
                                                                             : RF_X86_TABLE(kVnni));
  return t;
}

thread_local rf::Scratch<int8_t> tl_q;
thread_local rf::Scratch<float> tl_scales;
thread_local rf::Scratch<int16_t> tl_sums;
thread_local rf::Scratch<QRow> tl_rows;

// C (M, N) = A (M, K) . W^T through the integer dot products, activation rows quantized once up front.
void product(int type, int64_t M, int64_t N, int64_t K, const float* a, const uint8_t* w, int64_t row_bytes,
            float* c) {
  const int64_t block = type == kQ8_0 ? 32 : 256;
  const bool sums = type != kQ8_0;
  int8_t* q = tl_q.get(static_cast<size_t>(M * K));
  float* ds = tl_scales.get(static_cast<size_t>(M * (K / block)));
  int16_t* ss = sums ? tl_sums.get(static_cast<size_t>(M * (K / 16))) : nullptr;
  QRow* rows = tl_rows.get(static_cast<size_t>(M));
  const QuantKernels& ks = kernels();
  const auto quantize = [&](int64_t m0, int64_t m1) {
    for (int64_t m = m0; m < m1; ++m) {
      int16_t* s = sums ? ss + m * (K / 16) : nullptr;
      if (sums)
        ks.quantize_k(a + m * K, K, q + m * K, ds + m * (K / block), s);
      else
        quantize_row(a + m * K, K, block, q + m * K, ds + m * (K / block), s);
      rows[m] = QRow{q + m * K, ds + m * (K / block), s};
    }
  };
  // a prefill's rows are quantized on every thread (serially they cost a tenth of a 768 x 768 product's time)
  if (M < 8)
    quantize(0, M);
  else
    rf::parallel_for(M, 4, quantize);
  int64_t first = 0;  // rows before it are done
#if RF_AMX
  // on AMX: the K-quants' whole 16-row tiles of activations (a prefill); the rows left over go through the table
  if (type != kQ8_0 && M >= 16 && ks.amx) {
    const int64_t T = M / 16;
    const kq_vnni::AmxActs acts = kq_vnni::amx_acts(rows, T, K);
    if (type == kQ4_K) kq_vnni::amx_product<kQ4_K>(acts, T, w, N, row_bytes, c);
    else if (type == kQ5_K) kq_vnni::amx_product<kQ5_K>(acts, T, w, N, row_bytes, c);
    else kq_vnni::amx_product<kQ6_K>(acts, T, w, N, row_bytes, c);
    first = 16 * T;
    if (first == M) return;
  }
#endif
  const RowsFn* fns = ks.of(type);
  const RowsFn f16 = ks.of16(type);
  const int64_t group = f16 != nullptr ? 16 : ks.rows;
  const int64_t grain = std::max<int64_t>(4, (int64_t(1) << 15) / std::max<int64_t>(K * M, 1));
  // activation rows in blocks of about 24 KB, which stay in L1 while the thread's weight rows pass over them (48 KB,
  // the whole L1 of recent cores, left no room for the weights: 10% slower at K = 768)
  const int64_t mblock = std::max<int64_t>(group, ((int64_t(24) << 10) / K) / group * group);
  rf::parallel_for(N, grain, [&](int64_t r0, int64_t r1) {
    float out[16];
    for (int64_t m0 = first; m0 < M; m0 += mblock) {
      const int64_t m1 = std::min(M, m0 + mblock);
      for (int64_t r = r0; r < r1; ++r) {
        const uint8_t* wr = w + r * row_bytes;
        if (r + 2 < r1) __builtin_prefetch(wr + 2 * row_bytes);
        for (int64_t m = m0; m < m1;) {  // groups of 16 where the set has the kernel, the rest by up to ks.rows
          const int nx = static_cast<int>(std::min<int64_t>(f16 != nullptr && m1 - m >= 16 ? 16 : ks.rows, m1 - m));
          if (nx == 16) f16(wr, K, rows + m, out);
          else fns[nx - 1](wr, K, rows + m, out);
          for (int i = 0; i < nx; ++i) c[(m + i) * N + r] = out[i];
          m += nx;
        }
      }
    }
  });
}

void throw_range(Napi::Env env, const std::string& msg) {
  Napi::RangeError::New(env, "recurformer native " + msg).ThrowAsJavaScriptException();
}

// The checks gemmQ and dequantQ share: a known type, K whole blocks, `rows` rows of W present. Returns the row size.
int64_t check_weight(Napi::Env env, const char* fn, int type, int64_t K, int64_t rows, size_t have) {
  const Format f = format_of(type);
  if (f.values == 0) {
    throw_range(env, std::string(fn) + ": type " + std::to_string(type) + " is not Q8_0 (8), Q4_K (12), Q5_K (13) or Q6_K (14)");
    return -1;
  }
  if (K <= 0 || K % f.values != 0) {
    throw_range(env, std::string(fn) + ": K = " + std::to_string(K) + " is not a positive multiple of the block (" +
                         std::to_string(f.values) + " values)");
    return -1;
  }
  const int64_t row_bytes = K / f.values * f.bytes;
  if (rows < 0 || static_cast<size_t>(rows * row_bytes) > have) {
    throw_range(env, std::string(fn) + ": the weight holds fewer bytes than its rows need");
    return -1;
  }
  return row_bytes;
}

// gemmQ(M, N, K, a, type, w, c): C (M, N) = A (M, K) . W^T, W (N, K) in blocks of `type`.
Napi::Value GemmQ(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  rf::ArgReader r(info, "gemmQ");
  const int64_t M = r.i64(0), N = r.i64(1), K = r.i64(2);
  size_t la = 0, lw = 0, lc = 0;
  const float* a = r.f32(3, &la);
  const int type = static_cast<int>(r.num(4));
  const uint8_t* w = r.u8(5, &lw);
  float* c = r.f32(6, &lc);
  if (!r.ok) return env.Undefined();
  if (M < 0 || N < 0) {
    throw_range(env, "gemmQ: sizes must be non-negative");
    return env.Undefined();
  }
  const int64_t row_bytes = check_weight(env, "gemmQ", type, K, N, lw);
  if (row_bytes < 0) return env.Undefined();
  if (static_cast<size_t>(M * K) > la || static_cast<size_t>(M * N) > lc) {
    throw_range(env, "gemmQ: an operand is shorter than M, N, K require");
    return env.Undefined();
  }
  if (M == 0 || N == 0) return env.Undefined();
  product(type, M, N, K, a, w, row_bytes, c);
  return env.Undefined();
}

// dequantQ(type, w, K, r0, n, dst): rows [r0, r0 + n) of W (blocks of `type`, rows of K values) -> dst (n * K).
Napi::Value DequantQ(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  rf::ArgReader r(info, "dequantQ");
  const int type = static_cast<int>(r.num(0));
  size_t lw = 0, ld = 0;
  const uint8_t* w = r.u8(1, &lw);
  const int64_t K = r.i64(2), r0 = r.i64(3), n = r.i64(4);
  float* dst = r.f32(5, &ld);
  if (!r.ok) return env.Undefined();
  if (r0 < 0 || n < 0) {
    throw_range(env, "dequantQ: rows must be non-negative");
    return env.Undefined();
  }
  const int64_t row_bytes = check_weight(env, "dequantQ", type, K, r0 + n, lw);
  if (row_bytes < 0) return env.Undefined();
  if (static_cast<size_t>(n * K) > ld) {
    throw_range(env, "dequantQ: dst is shorter than n * K");
    return env.Undefined();
  }
  rf::parallel_for(n, std::max<int64_t>(1, (int64_t(1) << 14) / K), [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) dequant_row(type, w + (r0 + i) * row_bytes, K, dst + i * K);
  });
  return env.Undefined();
}

}  // namespace

bool quant_uses_amx() { return kernels().amx; }

void register_quant(Napi::Env env, Napi::Object exports) {
  rf::export_fn<GemmQ>(env, exports, "gemmQ");
  rf::export_fn<DequantQ>(env, exports, "dequantQ");
}
