// Rotary position embedding (the `rope` kernel), forward and inverse rotation, interleaved and rotate-half layouts.
// Rows (batch, time, head) run in parallel; a grain keeps decode-sized calls on the calling thread.
#include "ew_simd.h"

#include <algorithm>

namespace {

using rf::ArgReader;
using namespace rf::ew;

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

// The family's kernel table (rf::pick, common.h).
struct RopeKernels {
  // One time step's cos / sin table row for position pos (layout above).
  void (*table_row)(double pos, const float* invFreq, int64_t half, double sign, bool inter, float* ct, float* st);
  // Rotates the first 2 * half features of one row x into y (y may be x).
  void (*rotate_row)(const float* x, float* y, const float* cs, const float* sn, int64_t half, bool inter);
};

void rope_table_row_scalar(double pos, const float* invFreq, int64_t half, double sign, bool inter, float* ct,
                           float* st) {
  rope_table_row_s(pos, invFreq, half, sign, inter, ct, st);
}

const RopeKernels kScalar = {rope_table_row_scalar, rope_row_s};
#if RF_X86
const RopeKernels kAvx2 = {rope_table_row_v, rope_row_v};
#endif

const RopeKernels& kernels() {
  static const RopeKernels& t = rf::pick(kScalar, RF_X86_TABLE(kAvx2));
  return t;
}

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
  rf::Buffer<float> cs(static_cast<size_t>(T * rotDim)), sn(static_cast<size_t>(T * rotDim));
  const RopeKernels& K = kernels();
  pfor(T, grain_rows(half * 8, 16384), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      K.table_row(static_cast<double>(pos[t]), invFreq, half, sign, inter, cs.data() + t * rotDim,
                  sn.data() + t * rotDim);
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
      K.rotate_row(xr, yr, ct, st, half, inter);
      // memmove: y may alias x (in-place rope), in which case this is a no-op copy onto itself.
      if (tail && xr != yr) std::memmove(yr + rotDim, xr + rotDim, tail);
    }
  });
  return info.Env().Undefined();
}

}  // namespace

void register_rope(Napi::Env env, Napi::Object exports) {
  rf::export_fn<Rope>(env, exports, "rope");
}
