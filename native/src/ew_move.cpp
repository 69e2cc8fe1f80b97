// Data movement and small stencils: copyStrided, gather, gatherGrad, embedding, embeddingGrad, conv1dCausal,
// conv1dCausalGrad.
//
// Indices coming from JS (gather idx, embedding ids) are checked before any memory is touched: the contract says
// the caller guarantees them, but a native out-of-bounds access would corrupt the process instead of throwing.
// Scatter-adds (gatherGrad, embeddingGrad) split the work by column blocks, so every output element is owned by
// one thread and repeated indices add up in the same order as in the reference.
#include "ew_simd.h"

namespace {

using rf::ArgReader;
using namespace rf::ew;

constexpr int kMaxRank = 8;

// The family's kernel table (rf::pick, common.h), defined after the kernels.
struct MoveKernels {
  // copyStrided tiles of a pure transpose (row stride 1): out0[r * n + i] = p0[r + i * is] for rows [r0, r1), i < n.
  void (*transpose_tile)(const float* p0, int64_t is, float* out0, int64_t n, int64_t r0, int64_t r1);
  // dst[0:w] += src[0:w] (the scatter-adds of gatherGrad and embeddingGrad).
  void (*add_row)(float* dst, const float* src, int64_t w);
  // conv1dCausal forward and backward over rows [rb, re) of the flattened (B * T) axis (see conv_*_body).
  void (*conv_fwd)(const float* x, const float* wt, const float* bias, int64_t T, int64_t C, int64_t K, float* y,
                   int64_t rb, int64_t re);
  void (*conv_bwd)(const float* x, const float* wt, const float* gy, int64_t T, int64_t C, int64_t K, float* gx,
                   float* acc, bool want_bias, int64_t rb, int64_t re);
};
const MoveKernels& kernels();

// Column block width for the scatter-adds: as wide as possible while still giving every thread work; multiples of
// 16 floats keep blocks on separate cache lines (no false sharing between threads).
int64_t column_block(int64_t tasks_outer, int64_t width, int64_t total_work) {
  const int64_t nt = rf::num_threads();
  int64_t w = width;
  if (total_work < 32768) return w;
  while (tasks_outer * ((width + w - 1) / w) < 2 * nt && w > 32) w = ((w / 2) + 15) / 16 * 16;
  return w;
}

// ---- copyStrided ---------------------------------------------------------------------------------------------

struct SDim {
  int64_t n, s;
};

// Tiled copies for a strided inner axis. dims[k-2] is the row axis (any stride), dims[k-1] the inner axis (stride
// != 1); the axes before them are "planes" located with an odometer. Tiles are narrow along the strided axis: with
// power-of-two strides all the lines a tile column reads fall into one L1 set, so a tile wider than the cache's
// associativity evicts its own lines.
constexpr int64_t kTileR = 32;  // rows (output rows) per task

// Scalar tiles of 8 (strided inner axis) x up to kTileR rows.
void copy_tile_scalar(const float* p0, int64_t rs, int64_t is, float* out0, int64_t n, int64_t r0, int64_t r1) {
  for (int64_t i0 = 0; i0 < n; i0 += 8) {
    const int64_t i1 = i0 + 8 < n ? i0 + 8 : n;
    for (int64_t r = r0; r < r1; ++r) {
      const float* p = p0 + r * rs;
      float* out = out0 + r * n;
      for (int64_t i = i0; i < i1; ++i) out[i] = p[i * is];
    }
  }
}

void transpose_tile_scalar(const float* p0, int64_t is, float* out0, int64_t n, int64_t r0, int64_t r1) {
  copy_tile_scalar(p0, 1, is, out0, n, r0, r1);
}

#if RF_X86
// Pure transposes (row stride 1): out[r][i] = p0[r + i * is]. Each 8 x 8 block is 8 contiguous loads along r,
// an in-register transpose, and 8 contiguous stores along i; leftovers go through the scalar tile.
RF_AVX2 void copy_tile_t8(const float* p0, int64_t is, float* out0, int64_t n, int64_t r0, int64_t r1) {
  const int64_t rv = r0 + (r1 - r0) / 8 * 8, nv = n / 8 * 8;
  for (int64_t i0 = 0; i0 < nv; i0 += 8) {
    for (int64_t r = r0; r < rv; r += 8) {
      const float* p = p0 + r + i0 * is;
      __m256 a0 = _mm256_loadu_ps(p), a1 = _mm256_loadu_ps(p + is), a2 = _mm256_loadu_ps(p + 2 * is),
             a3 = _mm256_loadu_ps(p + 3 * is), a4 = _mm256_loadu_ps(p + 4 * is), a5 = _mm256_loadu_ps(p + 5 * is),
             a6 = _mm256_loadu_ps(p + 6 * is), a7 = _mm256_loadu_ps(p + 7 * is);
      __m256 t0 = _mm256_unpacklo_ps(a0, a1), t1 = _mm256_unpackhi_ps(a0, a1), t2 = _mm256_unpacklo_ps(a2, a3),
             t3 = _mm256_unpackhi_ps(a2, a3), t4 = _mm256_unpacklo_ps(a4, a5), t5 = _mm256_unpackhi_ps(a4, a5),
             t6 = _mm256_unpacklo_ps(a6, a7), t7 = _mm256_unpackhi_ps(a6, a7);
      __m256 u0 = _mm256_shuffle_ps(t0, t2, 0x44), u1 = _mm256_shuffle_ps(t0, t2, 0xEE),
             u2 = _mm256_shuffle_ps(t1, t3, 0x44), u3 = _mm256_shuffle_ps(t1, t3, 0xEE),
             u4 = _mm256_shuffle_ps(t4, t6, 0x44), u5 = _mm256_shuffle_ps(t4, t6, 0xEE),
             u6 = _mm256_shuffle_ps(t5, t7, 0x44), u7 = _mm256_shuffle_ps(t5, t7, 0xEE);
      float* o = out0 + r * n + i0;
      _mm256_storeu_ps(o, _mm256_permute2f128_ps(u0, u4, 0x20));
      _mm256_storeu_ps(o + n, _mm256_permute2f128_ps(u1, u5, 0x20));
      _mm256_storeu_ps(o + 2 * n, _mm256_permute2f128_ps(u2, u6, 0x20));
      _mm256_storeu_ps(o + 3 * n, _mm256_permute2f128_ps(u3, u7, 0x20));
      _mm256_storeu_ps(o + 4 * n, _mm256_permute2f128_ps(u0, u4, 0x31));
      _mm256_storeu_ps(o + 5 * n, _mm256_permute2f128_ps(u1, u5, 0x31));
      _mm256_storeu_ps(o + 6 * n, _mm256_permute2f128_ps(u2, u6, 0x31));
      _mm256_storeu_ps(o + 7 * n, _mm256_permute2f128_ps(u3, u7, 0x31));
    }
  }
  // Leftover rows (all columns) and leftover columns (vector rows).
  if (rv < r1) copy_tile_scalar(p0, 1, is, out0, n, rv, r1);
  if (nv < n) {
    for (int64_t r = r0; r < rv; ++r)
      for (int64_t i = nv; i < n; ++i) out0[r * n + i] = p0[r + i * is];
  }
}
#endif

void copy_tiled(const float* base, const SDim* dims, int k, float* dst, int64_t total) {
  const SDim rd = dims[k - 2], in = dims[k - 1];
  const int64_t planes = total / (rd.n * in.n);
  const int64_t row_tiles = (rd.n + kTileR - 1) / kTileR;
  const auto transpose_tile = kernels().transpose_tile;
  pfor(planes * row_tiles, grain_rows(kTileR * in.n, 16384), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t plane = t / row_tiles, r0 = (t % row_tiles) * kTileR;
      const int64_t r1 = r0 + kTileR < rd.n ? r0 + kTileR : rd.n;
      int64_t so = 0, rem = plane;
      for (int d = k - 3; d >= 0; --d) {
        so += (rem % dims[d].n) * dims[d].s;
        rem /= dims[d].n;
      }
      float* out = dst + plane * rd.n * in.n;
      if (rd.s == 1)
        transpose_tile(base + so, in.s, out, in.n, r0, r1);
      else
        copy_tile_scalar(base + so, rd.s, in.s, out, in.n, r0, r1);
    }
  });
}

Napi::Value CopyStrided(const Napi::CallbackInfo& info) {
  ArgReader r(info, "copyStrided");
  size_t nsrc = 0, nstr = 0, nshape = 0, ndst = 0;
  const float* src = r.f32(0, &nsrc);
  int64_t offset = size_arg(r, 1, "offset");
  const int32_t* strides = r.i32(2, &nstr);
  const int32_t* shape = r.i32(3, &nshape);
  float* dst = r.f32(4, &ndst);
  if (!r.ok) return info.Env().Undefined();
  const int rank = static_cast<int>(nshape);
  if (nshape > static_cast<size_t>(kMaxRank)) {
    range_error(r, "shape has rank " + std::to_string(nshape) + ", at most 8 is supported");
  }
  need_len(r, "strides", nstr, rank, "shape.length");
  if (!r.ok) return info.Env().Undefined();
  int64_t total = 1, lo = offset, hi = offset;
  for (int d = 0; d < rank; ++d) {
    if (shape[d] < 0) return range_error(r, "shape has a negative axis"), info.Env().Undefined();
    total = mul(total, shape[d]);
    int64_t span = static_cast<int64_t>(strides[d]) * (shape[d] > 0 ? shape[d] - 1 : 0);
    if (span < 0) lo += span; else hi += span;
  }
  if (!need_len(r, "dst", ndst, total, "product of shape") || total == 0) return info.Env().Undefined();
  if (lo < 0 || hi >= static_cast<int64_t>(nsrc)) {
    return range_error(r, "src (length " + std::to_string(nsrc) + ") is indexed from " + std::to_string(lo) +
                              " to " + std::to_string(hi) + " by offset and strides"),
           info.Env().Undefined();
  }
  // Coalesce: drop length-1 axes, merge neighbours that are contiguous with each other in src.
  SDim dims[kMaxRank];
  int k = 0;
  for (int d = 0; d < rank; ++d) {
    if (shape[d] == 1) continue;
    SDim cur{shape[d], strides[d]};
    if (k > 0 && dims[k - 1].s == cur.s * cur.n) dims[k - 1] = SDim{dims[k - 1].n * cur.n, cur.s};
    else dims[k++] = cur;
  }
  if (k == 0) dims[k++] = SDim{1, 0};
  const SDim in = dims[k - 1];
  const int outer_rank = k - 1;
  const int64_t rows = total / in.n;
  const float* base = src + offset;
  if (k >= 2 && in.s != 1 && in.s != 0 && in.n >= 8 && dims[k - 2].n >= 8) {
    // A strided inner axis (transposes): row by row, every element read sits on its own cache line, ~2 GB/s.
    // Copy in square tiles instead, so the lines a tile reads are reused from L1 by its next rows.
    copy_tiled(base, dims, k, dst, total);
    return info.Env().Undefined();
  }
  pfor(rows, grain_rows(in.n, 16384), [&](int64_t rb, int64_t re) {
    int64_t idx[kMaxRank] = {0};
    int64_t so = 0, rem = rb;
    for (int d = outer_rank - 1; d >= 0; --d) {
      idx[d] = rem % dims[d].n;
      rem /= dims[d].n;
      so += idx[d] * dims[d].s;
    }
    for (int64_t row = rb; row < re; ++row) {
      float* out = dst + row * in.n;
      const float* p = base + so;
      if (in.s == 1) {
        std::memcpy(out, p, static_cast<size_t>(in.n) * sizeof(float));
      } else if (in.s == 0) {
        const float v = *p;
        for (int64_t i = 0; i < in.n; ++i) out[i] = v;
      } else {
        for (int64_t i = 0; i < in.n; ++i) out[i] = p[i * in.s];
      }
      for (int d = outer_rank - 1; d >= 0; --d) {
        so += dims[d].s;
        if (++idx[d] < dims[d].n) break;
        so -= dims[d].s * dims[d].n;
        idx[d] = 0;
      }
    }
  });
  return info.Env().Undefined();
}

// ---- gather / gatherGrad -------------------------------------------------------------------------------------

// Every index in [0, bound); names the first offender.
bool check_indices(ArgReader& r, const char* name, const int32_t* idx, size_t m, int64_t bound, const char* what) {
  for (size_t j = 0; j < m; ++j) {
    if (idx[j] < 0 || idx[j] >= bound) {
      range_error(r, std::string(name) + "[" + std::to_string(j) + "] = " + std::to_string(idx[j]) +
                         " is outside [0, " + std::to_string(bound) + ") (" + what + ")");
      return false;
    }
  }
  return true;
}

Napi::Value Gather(const Napi::CallbackInfo& info) {
  ArgReader r(info, "gather");
  size_t nx = 0, nidx = 0, nout = 0;
  const float* x = r.f32(0, &nx);
  int64_t outer = size_arg(r, 1, "outer"), n = size_arg(r, 2, "n"), inner = size_arg(r, 3, "inner");
  const int32_t* idx = r.i32(4, &nidx);
  float* out = r.f32(5, &nout);
  if (!r.ok) return info.Env().Undefined();
  const int64_t m = static_cast<int64_t>(nidx);
  need_len(r, "x", nx, mul(mul(outer, n), inner), "outer * n * inner");
  need_len(r, "out", nout, mul(mul(outer, m), inner), "outer * idx.length * inner");
  if (!r.ok || !check_indices(r, "idx", idx, nidx, n, "n")) return info.Env().Undefined();
  // Nothing to move (and outer * m alone could be huge when inner is 0).
  if (mul(mul(outer, m), inner) == 0) return info.Env().Undefined();
  pfor(outer * m, grain_rows(inner, 16384), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t o = t / m, j = t % m;
      std::memcpy(out + t * inner, x + (o * n + idx[j]) * inner, static_cast<size_t>(inner) * sizeof(float));
    }
  });
  return info.Env().Undefined();
}

__attribute__((always_inline)) inline void add_row_body(float* dst, const float* src, int64_t w) {
  for (int64_t i = 0; i < w; ++i) dst[i] += src[i];
}
void add_row_scalar(float* dst, const float* src, int64_t w) { add_row_body(dst, src, w); }
#if RF_X86
RF_AVX2 void add_row_avx2(float* dst, const float* src, int64_t w) { add_row_body(dst, src, w); }
#endif

Napi::Value GatherGrad(const Napi::CallbackInfo& info) {
  ArgReader r(info, "gatherGrad");
  size_t ngout = 0, nidx = 0, ngx = 0;
  const float* gout = r.f32(0, &ngout);
  int64_t outer = size_arg(r, 1, "outer"), n = size_arg(r, 2, "n"), inner = size_arg(r, 3, "inner");
  const int32_t* idx = r.i32(4, &nidx);
  float* gx = r.f32(5, &ngx);
  if (!r.ok) return info.Env().Undefined();
  const int64_t m = static_cast<int64_t>(nidx);
  need_len(r, "gout", ngout, mul(mul(outer, m), inner), "outer * idx.length * inner");
  need_len(r, "gx", ngx, mul(mul(outer, n), inner), "outer * n * inner");
  if (!r.ok || !check_indices(r, "idx", idx, nidx, n, "n")) return info.Env().Undefined();
  if (mul(mul(outer, m), inner) == 0) return info.Env().Undefined();
  const auto add_row = kernels().add_row;
  const int64_t w = column_block(outer, inner, outer * m * inner);
  const int64_t blocks = (inner + w - 1) / w;
  pfor(outer * blocks, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t o = t / blocks, i0 = (t % blocks) * w, wi = inner - i0 < w ? inner - i0 : w;
      for (int64_t j = 0; j < m; ++j) {
        add_row(gx + (o * n + idx[j]) * inner + i0, gout + (o * m + j) * inner + i0, wi);
      }
    }
  });
  return info.Env().Undefined();
}

// ---- embedding / embeddingGrad -------------------------------------------------------------------------------

Napi::Value Embedding(const Napi::CallbackInfo& info) {
  ArgReader r(info, "embedding");
  size_t nw = 0, nids = 0, nout = 0;
  const float* w = r.f32(0, &nw);
  const int32_t* ids = r.i32(1, &nids);
  int64_t D = size_arg(r, 2, "D");
  float* out = r.f32(3, &nout);
  if (!r.ok) return info.Env().Undefined();
  const int64_t rows = static_cast<int64_t>(nids);
  if (!need_len(r, "out", nout, mul(rows, D), "ids.length * D") || D == 0) return info.Env().Undefined();
  const int64_t V = static_cast<int64_t>(nw) / D;
  if (!check_indices(r, "ids", ids, nids, V, "rows of w = w.length / D")) return info.Env().Undefined();
  pfor(rows, grain_rows(D, 16384), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      std::memcpy(out + t * D, w + static_cast<int64_t>(ids[t]) * D, static_cast<size_t>(D) * sizeof(float));
    }
  });
  return info.Env().Undefined();
}

Napi::Value EmbeddingGrad(const Napi::CallbackInfo& info) {
  ArgReader r(info, "embeddingGrad");
  size_t ngout = 0, nids = 0, ngw = 0;
  const float* gout = r.f32(0, &ngout);
  const int32_t* ids = r.i32(1, &nids);
  int64_t D = size_arg(r, 2, "D");
  float* gw = r.f32(3, &ngw);
  if (!r.ok) return info.Env().Undefined();
  const int64_t rows = static_cast<int64_t>(nids);
  if (!need_len(r, "gout", ngout, mul(rows, D), "ids.length * D") || D == 0) return info.Env().Undefined();
  const int64_t V = static_cast<int64_t>(ngw) / D;
  if (!check_indices(r, "ids", ids, nids, V, "rows of gw = gw.length / D")) return info.Env().Undefined();
  if (rows == 0) return info.Env().Undefined();
  const auto add_row = kernels().add_row;
  const int64_t w = column_block(1, D, rows * D);
  const int64_t blocks = (D + w - 1) / w;
  pfor(blocks, 1, [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) {
      const int64_t i0 = t * w, wi = D - i0 < w ? D - i0 : w;
      for (int64_t row = 0; row < rows; ++row) {
        add_row(gw + static_cast<int64_t>(ids[row]) * D + i0, gout + row * D + i0, wi);
      }
    }
  });
  return info.Env().Undefined();
}

// ---- conv1dCausal ----------------------------------------------------------------------------------------------
// Depthwise over channels, so every loop runs along c (contiguous in x, y) with the filter transposed once to
// (K, C) so that its taps are contiguous too.

void transpose_filter(const float* w, int64_t C, int64_t K, float* wt) {
  for (int64_t c = 0; c < C; ++c)
    for (int64_t k = 0; k < K; ++k) wt[k * C + c] = w[c * K + k];
}

// y rows [rb, re) of the flattened (B * T) axis.
__attribute__((always_inline)) inline void conv_fwd_body(const float* x, const float* wt, const float* bias,
                                                          int64_t T, int64_t C, int64_t K, float* y, int64_t rb,
                                                          int64_t re) {
  for (int64_t row = rb; row < re; ++row) {
    const int64_t t = row % T;
    float* yr = y + row * C;
    if (bias) for (int64_t c = 0; c < C; ++c) yr[c] = bias[c];
    else for (int64_t c = 0; c < C; ++c) yr[c] = 0.f;
    for (int64_t k = 0; k < K; ++k) {
      const int64_t tt = t - (K - 1) + k;
      if (tt < 0) continue;
      const float* xr = x + (row - t + tt) * C;
      const float* wk = wt + k * C;
      for (int64_t c = 0; c < C; ++c) yr[c] += wk[c] * xr[c];
    }
  }
}
void conv_fwd_scalar(const float* x, const float* wt, const float* bias, int64_t T, int64_t C, int64_t K, float* y,
                     int64_t rb, int64_t re) {
  conv_fwd_body(x, wt, bias, T, C, K, y, rb, re);
}
#if RF_X86
RF_AVX2 void conv_fwd_avx2(const float* x, const float* wt, const float* bias, int64_t T, int64_t C, int64_t K,
                           float* y, int64_t rb, int64_t re) {
  conv_fwd_body(x, wt, bias, T, C, K, y, rb, re);
}
#endif

Napi::Value Conv1dCausal(const Napi::CallbackInfo& info) {
  ArgReader r(info, "conv1dCausal");
  size_t nx = 0, nw = 0, nb = 0, ny = 0;
  const float* x = r.f32(0, &nx);
  const float* w = r.f32(1, &nw);
  const float* bias = r.f32(2, &nb);
  int64_t B = size_arg(r, 3, "B"), T = size_arg(r, 4, "T"), C = size_arg(r, 5, "C"), K = size_arg(r, 6, "K");
  float* y = r.f32(7, &ny);
  if (!r.ok) return info.Env().Undefined();
  const int64_t total = mul(mul(B, T), C);
  need_len(r, "x", nx, total, "B * T * C");
  need_len(r, "w", nw, mul(C, K), "C * K");
  opt_len(r, "bias", nb, C, "C");
  need_len(r, "y", ny, total, "B * T * C");
  if (!r.ok || total == 0) return info.Env().Undefined();
  rf::Buffer<float> wt(static_cast<size_t>(K * C));
  transpose_filter(w, C, K, wt.data());
  const float* bp = nb ? bias : nullptr;
  const auto conv_fwd = kernels().conv_fwd;
  pfor(B * T, grain_rows(C * (K + 1), 16384),
       [&](int64_t b, int64_t e) { conv_fwd(x, wt.data(), bp, T, C, K, y, b, e); });
  return info.Env().Undefined();
}

// Rows [rb, re) of the backward pass: gx rows are written whole (each is a sum over the taps that read it, so no
// other row touches them), gw and gbias go to this chunk's partial buffer `acc` laid out as (K, C) then (C).
__attribute__((always_inline)) inline void conv_bwd_body(const float* x, const float* wt, const float* gy,
                                                          int64_t T, int64_t C, int64_t K, float* gx, float* acc,
                                                          bool want_bias, int64_t rb, int64_t re) {
  for (int64_t row = rb; row < re; ++row) {
    const int64_t s = row % T;
    float* gxr = gx + row * C;
    for (int64_t c = 0; c < C; ++c) gxr[c] = 0.f;
    // x[s] was read by output t = s + (K - 1) - k through tap k.
    for (int64_t k = 0; k < K; ++k) {
      const int64_t t = s + (K - 1) - k;
      if (t >= T) continue;
      const float* gyr = gy + (row - s + t) * C;
      const float* wk = wt + k * C;
      for (int64_t c = 0; c < C; ++c) gxr[c] += gyr[c] * wk[c];
    }
    // Output s read x[s - (K - 1) + k] through tap k.
    const float* gyr = gy + row * C;
    for (int64_t k = 0; k < K; ++k) {
      const int64_t tt = s - (K - 1) + k;
      if (tt < 0) continue;
      const float* xr = x + (row - s + tt) * C;
      float* ak = acc + k * C;
      for (int64_t c = 0; c < C; ++c) ak[c] += gyr[c] * xr[c];
    }
    if (want_bias) {
      float* ab = acc + K * C;
      for (int64_t c = 0; c < C; ++c) ab[c] += gyr[c];
    }
  }
}
void conv_bwd_scalar(const float* x, const float* wt, const float* gy, int64_t T, int64_t C, int64_t K, float* gx,
                     float* acc, bool want_bias, int64_t rb, int64_t re) {
  conv_bwd_body(x, wt, gy, T, C, K, gx, acc, want_bias, rb, re);
}
#if RF_X86
RF_AVX2 void conv_bwd_avx2(const float* x, const float* wt, const float* gy, int64_t T, int64_t C, int64_t K,
                           float* gx, float* acc, bool want_bias, int64_t rb, int64_t re) {
  conv_bwd_body(x, wt, gy, T, C, K, gx, acc, want_bias, rb, re);
}
#endif

Napi::Value Conv1dCausalGrad(const Napi::CallbackInfo& info) {
  ArgReader r(info, "conv1dCausalGrad");
  size_t nx = 0, nw = 0, ngy = 0, ngx = 0, ngw = 0, ngb = 0;
  const float* x = r.f32(0, &nx);
  const float* w = r.f32(1, &nw);
  const float* gy = r.f32(2, &ngy);
  int64_t B = size_arg(r, 3, "B"), T = size_arg(r, 4, "T"), C = size_arg(r, 5, "C"), K = size_arg(r, 6, "K");
  float* gx = r.f32(7, &ngx);
  float* gw = r.f32(8, &ngw);
  float* gb = r.f32(9, &ngb);
  if (!r.ok) return info.Env().Undefined();
  const int64_t total = mul(mul(B, T), C);
  need_len(r, "x", nx, total, "B * T * C");
  need_len(r, "w", nw, mul(C, K), "C * K");
  need_len(r, "gy", ngy, total, "B * T * C");
  need_len(r, "gx", ngx, total, "B * T * C");
  need_len(r, "gw", ngw, mul(C, K), "C * K");
  opt_len(r, "gbias", ngb, C, "C");
  if (!r.ok || total == 0) return info.Env().Undefined();
  rf::Buffer<float> wt(static_cast<size_t>(K * C));
  transpose_filter(w, C, K, wt.data());
  const bool want_bias = ngb > 0;
  const auto conv_bwd = kernels().conv_bwd;
  rf::Buffer<float> acc(static_cast<size_t>(K * C + C));
  chunks_with_partials(B * T, grain_rows(C * (2 * K + 1), 16384), K * C + C, acc.data(),
                       [&](int64_t b, int64_t e, float* part) {
                         conv_bwd(x, wt.data(), gy, T, C, K, gx, part, want_bias, b, e);
                       });
  for (int64_t c = 0; c < C; ++c)
    for (int64_t k = 0; k < K; ++k) gw[c * K + k] += acc[static_cast<size_t>(k * C + c)];
  if (want_bias)
    for (int64_t c = 0; c < C; ++c) gb[c] += acc[static_cast<size_t>(K * C + c)];
  return info.Env().Undefined();
}

// ---- the kernel tables -----------------------------------------------------------------------------------------

const MoveKernels kScalar = {transpose_tile_scalar, add_row_scalar, conv_fwd_scalar, conv_bwd_scalar};
#if RF_X86
const MoveKernels kAvx2 = {copy_tile_t8, add_row_avx2, conv_fwd_avx2, conv_bwd_avx2};
#endif

const MoveKernels& kernels() {
  static const MoveKernels& t = rf::pick(kScalar, RF_X86_TABLE(kAvx2));
  return t;
}

}  // namespace

void register_ew_move(Napi::Env env, Napi::Object exports) {
  rf::export_fn<CopyStrided>(env, exports, "copyStrided");
  rf::export_fn<Gather>(env, exports, "gather");
  rf::export_fn<GatherGrad>(env, exports, "gatherGrad");
  rf::export_fn<Embedding>(env, exports, "embedding");
  rf::export_fn<EmbeddingGrad>(env, exports, "embeddingGrad");
  rf::export_fn<Conv1dCausal>(env, exports, "conv1dCausal");
  rf::export_fn<Conv1dCausalGrad>(env, exports, "conv1dCausalGrad");
}
