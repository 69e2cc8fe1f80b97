// Attention forward driver (overview in attention.cpp). Tiles of query rows sharing one KV head (prefill) or
// holding every KV head of a batch entry (decode) walk the key blocks they can see with an online softmax: the
// column path computes transposed score blocks for tiles of >= 16 rows, the row path dot products for the rest.
// With too few tiles for the threads, each tile's keys are split (split-K) and the partial results merged by
// log-sum-exp; probs, when requested, is a second pass against the final lse.
#include "attn_common.h"

#include <algorithm>
#include <cmath>
#include <vector>

namespace rf::attn_impl {
namespace {

struct FwdPlan {
  int64_t ngT, nqT;      // KV heads and queries per tile
  int64_t nGB, nQB;      // tiles along KV heads and queries
  int64_t nTiles, nSplit;
  int64_t keys;          // keys per block (kFwdKeys, fewer for short decode splits)
  bool decode;           // the decode layout: every KV head of a batch entry in one tile
  int64_t rowsMax() const { return ngT * nqT; }  // times nRep
};

struct Tile {
  int64_t b, g0, ng, i0, nq;
};

// Running state of a tile: max m, sum l and unnormalised output O (rows x Dp), plus work space.
struct TileState {
  float *Q, *O, *S, *m, *l, *alpha;
};

struct Fwd {
  const KernelTable& K;
  Geo g;
  const float *q, *k, *v;
  float *o, *lse, *probs;
  FwdPlan plan;

  static constexpr int64_t kLds = round8(kFwdKeys);  // row stride of a (rows x keys) score block

  Tile tile(int64_t t) const {
    // Last query blocks first: under a causal mask they see the most keys.
    const int64_t qb = plan.nQB - 1 - t % plan.nQB;
    const int64_t gb = (t / plan.nQB) % plan.nGB;
    const int64_t b = t / (plan.nQB * plan.nGB);
    Tile tl;
    tl.b = b;
    tl.g0 = gb * plan.ngT;
    tl.ng = std::min(plan.ngT, g.Hkv - tl.g0);
    tl.i0 = qb * plan.nqT;
    tl.nq = std::min(plan.nqT, g.T - tl.i0);
    return tl;
  }

  int64_t rows(const Tile& tl) const { return tl.ng * tl.nq * g.nRep; }
  // The column (transposed) path needs one KV head per tile and enough rows to fill two 8-lane chunks.
  bool column_path(const Tile& tl) const { return tl.ng == 1 && tl.nq * g.nRep >= 16; }

  // Scratch floats for one tile of the largest size.
  size_t state_floats() const {
    const int64_t R = plan.rowsMax() * g.nRep, Rp = round8(R);
    const int64_t Q = std::max(R * g.Dp, g.Dh * Rp);
    const int64_t S = std::max(R * kLds, int64_t(kFwdKeys) * Rp);
    return static_cast<size_t>(Q + R * g.Dp + S + 3 * Rp);
  }
  TileState state(float* base) const {
    const int64_t R = plan.rowsMax() * g.nRep, Rp = round8(R);
    TileState ts;
    ts.Q = base;
    ts.O = ts.Q + std::max(R * g.Dp, g.Dh * Rp);
    ts.S = ts.O + R * g.Dp;
    ts.m = ts.S + std::max(R * kLds, int64_t(kFwdKeys) * Rp);
    ts.l = ts.m + Rp;
    ts.alpha = ts.l + Rp;
    return ts;
  }

  // Rows of a tile: row = gg * (nq * nRep) + ii * nRep + r is query i0 + ii, head (g0 + gg) * nRep + r.
  // Copies the tile's queries, pre-multiplied by scale so scores come out scaled: row-major (rows x Dp) ...
  void load_q(const Tile& tl, float* Qt) const {
    const int64_t Rg = tl.nq * g.nRep;
    for (int64_t gg = 0; gg < tl.ng; ++gg)
      for (int64_t ii = 0; ii < tl.nq; ++ii)
        for (int64_t r = 0; r < g.nRep; ++r) {
          const float* src = q + g.qi(tl.b, tl.i0 + ii, (tl.g0 + gg) * g.nRep + r);
          float* dst = Qt + (gg * Rg + ii * g.nRep + r) * g.Dp;
          for (int64_t d = 0; d < g.Dh; ++d) dst[d] = src[d] * g.scale;
        }
  }
  // ... or transposed (Dh x Rp, padding columns zero) for the column path (one KV head per tile).
  void load_qT(const Tile& tl, float* QT, int64_t ld) const {
    const int64_t R = rows(tl);
    for (int64_t d = 0; d < g.Dh; ++d) std::fill(QT + d * ld + R, QT + d * ld + ld, 0.0f);
    for (int64_t ii = 0; ii < tl.nq; ++ii)
      for (int64_t r = 0; r < g.nRep; ++r) {
        const float* src = q + g.qi(tl.b, tl.i0 + ii, tl.g0 * g.nRep + r);
        const int64_t row = ii * g.nRep + r;
        for (int64_t d = 0; d < g.Dh; ++d) QT[d * ld + row] = src[d] * g.scale;
      }
  }

  // Statuses of the tile's queries for [j0, j1); returns the active range [qa, qb] (qa = -1 if none).
  void status(const Tile& tl, int64_t j0, int64_t j1, signed char* st, int64_t& qa, int64_t& qb) const {
    qa = -1;
    qb = -1;
    for (int64_t ii = 0; ii < tl.nq; ++ii) {
      st[ii] = static_cast<signed char>(g.mask.status(tl.i0 + ii, j0, j1));
      if (st[ii]) {
        if (qa < 0) qa = ii;
        qb = ii;
      }
    }
  }

  // Row path: scores (rows x keys, stride kLds) of key block [j0, j1) for the active queries [qa, qb], masked
  // (-inf) where invisible. jn >= 0 is the start of the next key block, whose K rows are prefetched meanwhile.
  void scores_rows(const Tile& tl, const float* Qt, int64_t j0, int64_t j1, int64_t jn, int64_t qa, int64_t qb,
                   const signed char* st, float* Sb) const {
    const int64_t Rg = tl.nq * g.nRep;
    const int nk = static_cast<int>(j1 - j0);
    const int nr = static_cast<int>((qb - qa + 1) * g.nRep);
    for (int64_t gg = 0; gg < tl.ng; ++gg) {
      const int64_t r0 = gg * Rg + qa * g.nRep;
      K.dots(Qt + r0 * g.Dp, g.Dp, nr, k + g.ki(tl.b, j0, tl.g0 + gg), g.Hkv * g.Dh, nk, static_cast<int>(g.Dh),
             Sb + r0 * kLds, kLds, jn >= 0 ? k + g.ki(tl.b, jn, tl.g0 + gg) : nullptr);
    }
    for (int64_t ii = qa; ii <= qb; ++ii) {
      if (st[ii] == 2) continue;
      int64_t hr[2][2];
      const int nh = st[ii] == 0 ? (hr[0][0] = j0, hr[0][1] = j1, 1) : g.mask.hidden(tl.i0 + ii, j0, j1, hr);
      for (int64_t gg = 0; gg < tl.ng; ++gg)
        for (int64_t r = 0; r < g.nRep; ++r) {
          float* s = Sb + (gg * Rg + ii * g.nRep + r) * kLds - j0;
          for (int t = 0; t < nh; ++t) std::fill(s + hr[t][0], s + hr[t][1], kNegInf);
        }
    }
  }

  void run_tile_rows(const Tile& tl, int64_t kb0, int64_t kb1, const TileState& ts) const {
    const int64_t Rg = tl.nq * g.nRep;
    const auto& blocks = scratch_blocks();
    const int64_t nb = static_cast<int64_t>(blocks.size());
    signed char* st = scratch_status(static_cast<size_t>(tl.nq));
    load_q(tl, ts.Q);
    for (int64_t kb = kb0; kb < kb1; ++kb) {
      const int64_t j0 = blocks[kb].first, j1 = blocks[kb].second;
      // Prefetching only pays when the next block's rows are not already cached: long key ranges, and decode
      // tiles (a decode step streams every weight between two visits of a layer's cache, which evicts it).
      const int64_t jn = kb + 1 < kb1 && (nb > 4 || plan.decode) ? blocks[kb + 1].first : -1;
      int64_t qa, qb;
      status(tl, j0, j1, st, qa, qb);
      if (qa < 0) continue;
      scores_rows(tl, ts.Q, j0, j1, jn, qa, qb, st, ts.S);
      const int nk = static_cast<int>(j1 - j0);
      const int nr = static_cast<int>((qb - qa + 1) * g.nRep);
      for (int64_t gg = 0; gg < tl.ng; ++gg) {
        const int64_t r0 = gg * Rg + qa * g.nRep;
        for (int64_t row = r0; row < r0 + nr; ++row) {
          const float alpha = K.softmax_row(ts.S + row * kLds, nk, ts.m + row, ts.l + row);
          if (alpha != 1.0f) K.scale(ts.O + row * g.Dp, static_cast<int>(g.Dp), alpha);
        }
        K.gemm(ts.S + r0 * kLds, kLds, 1, nr, nk, v + g.ki(tl.b, j0, tl.g0 + gg), g.Hkv * g.Dh,
               static_cast<int>(g.Dh), ts.O + r0 * g.Dp, g.Dp, 1,
               jn >= 0 ? v + g.ki(tl.b, jn, tl.g0 + gg) : nullptr);
      }
    }
  }

  void run_tile_cols(const Tile& tl, int64_t kb0, int64_t kb1, const TileState& ts) const {
    const int64_t R = rows(tl), Rp = round8(R), ldk = g.Hkv * g.Dh;
    const int Dh = static_cast<int>(g.Dh);
    const auto& blocks = scratch_blocks();
    const int64_t nb = static_cast<int64_t>(blocks.size());
    signed char* st = scratch_status(static_cast<size_t>(tl.nq));
    load_qT(tl, ts.Q, Rp);
    for (int64_t kb = kb0; kb < kb1; ++kb) {
      const int64_t j0 = blocks[kb].first, j1 = blocks[kb].second;
      const int64_t jn = kb + 1 < kb1 && nb > 4 ? blocks[kb + 1].first : -1;
      int64_t qa, qb;
      status(tl, j0, j1, st, qa, qb);
      if (qa < 0) continue;
      const int nk = static_cast<int>(j1 - j0);
      // Active columns [c0, c1), c0 aligned to 8 so the kernels' padded column chunks stay inside Rp. Every real
      // column of those chunks is masked below unless its query sees keys of this block.
      const int64_t c0 = (qa * g.nRep) & ~int64_t(7), c1 = (qb + 1) * g.nRep;
      const int64_t cEnd = std::min(R, round8(c1));
      const float* kblk = k + g.ki(tl.b, j0, tl.g0);
      K.gemm(kblk, ldk, 1, nk, Dh, ts.Q + c0, Rp, static_cast<int>(c1 - c0), ts.S + c0, Rp, 0, nullptr);
      for (int64_t ii = c0 / g.nRep; ii * g.nRep < cEnd; ++ii) {
        const int s = ii <= qb ? st[ii] : 0;
        if (s == 2) continue;
        int64_t hr[2][2];
        const int nh = s == 0 ? (hr[0][0] = j0, hr[0][1] = j1, 1) : g.mask.hidden(tl.i0 + ii, j0, j1, hr);
        const int64_t ca = std::max(c0, ii * g.nRep), cb = std::min(cEnd, (ii + 1) * g.nRep);
        for (int t = 0; t < nh; ++t)
          for (int64_t j = hr[t][0]; j < hr[t][1]; ++j) {
            float* s_ = ts.S + (j - j0) * Rp;
            for (int64_t c = ca; c < cb; ++c) s_[c] = kNegInf;
          }
      }
      K.softmax_cols(ts.S + c0, Rp, nk, static_cast<int>(c1 - c0), ts.m + c0, ts.l + c0, ts.alpha + c0);
      for (int64_t row = c0; row < c1; ++row)
        if (ts.alpha[row] != 1.0f) K.scale(ts.O + row * g.Dp, static_cast<int>(g.Dp), ts.alpha[row]);
      K.gemm(ts.S + c0, 1, Rp, static_cast<int>(c1 - c0), nk, v + g.ki(tl.b, j0, tl.g0), ldk, Dh,
             ts.O + c0 * g.Dp, g.Dp, 1, jn >= 0 ? v + g.ki(tl.b, jn, tl.g0) : nullptr);
    }
  }

  // Runs split `split` of the tile's key blocks, leaving m, l and the unnormalised output in ts.
  void run_tile(const Tile& tl, int64_t split, const TileState& ts) const {
    const int64_t R = rows(tl);
    std::fill(ts.O, ts.O + R * g.Dp, 0.0f);
    std::fill(ts.m, ts.m + round8(R), kNegInf);
    std::fill(ts.l, ts.l + round8(R), 0.0f);
    auto& blocks = scratch_blocks();
    g.mask.blocks(tl.i0, tl.i0 + tl.nq - 1, plan.keys, blocks);
    const int64_t nb = static_cast<int64_t>(blocks.size());
    const int64_t kb0 = nb * split / plan.nSplit, kb1 = nb * (split + 1) / plan.nSplit;
    if (column_path(tl))
      run_tile_cols(tl, kb0, kb1, ts);
    else
      run_tile_rows(tl, kb0, kb1, ts);
  }

  // o = O / l, lse = m + log l; rows that saw no key get o = 0, lse = -inf.
  void finalize_row(const Tile& tl, int64_t row, float mr, float lr, const float* Or) const {
    const int64_t Rg = tl.nq * g.nRep;
    const int64_t gg = row / Rg, ii = (row % Rg) / g.nRep, r = row % g.nRep;
    const int64_t h = (tl.g0 + gg) * g.nRep + r;
    float* dst = o + g.qi(tl.b, tl.i0 + ii, h);
    if (!(lr > 0.0f)) {
      std::fill(dst, dst + g.Dh, 0.0f);
      lse[g.li(tl.b, h, tl.i0 + ii)] = kNegInf;
      return;
    }
    const float inv = 1.0f / lr;
    for (int64_t d = 0; d < g.Dh; ++d) dst[d] = Or[d] * inv;
    lse[g.li(tl.b, h, tl.i0 + ii)] = mr + std::log(lr);
  }

  // probs = exp(score - lse) for visible keys, 0 elsewhere, one tile at a time (after lse is final). Uses the
  // row path: this is an analysis output, not a hot one.
  void probs_tile(const Tile& tl, const TileState& ts) const {
    const int64_t Rg = tl.nq * g.nRep;
    load_q(tl, ts.Q);
    for (int64_t gg = 0; gg < tl.ng; ++gg)
      for (int64_t ii = 0; ii < tl.nq; ++ii)
        for (int64_t r = 0; r < g.nRep; ++r) {
          const int64_t h = (tl.g0 + gg) * g.nRep + r;
          float* pr = probs + g.li(tl.b, h, tl.i0 + ii) * g.S;
          std::fill(pr, pr + g.S, 0.0f);
        }
    auto& blocks = scratch_blocks();
    g.mask.blocks(tl.i0, tl.i0 + tl.nq - 1, kFwdKeys, blocks);
    signed char* st = scratch_status(static_cast<size_t>(tl.nq));
    for (size_t kb = 0; kb < blocks.size(); ++kb) {
      const int64_t j0 = blocks[kb].first, j1 = blocks[kb].second;
      const int64_t jn = kb + 1 < blocks.size() ? blocks[kb + 1].first : -1;
      int64_t qa, qb;
      status(tl, j0, j1, st, qa, qb);
      if (qa < 0) continue;
      scores_rows(tl, ts.Q, j0, j1, jn, qa, qb, st, ts.S);
      for (int64_t gg = 0; gg < tl.ng; ++gg)
        for (int64_t ii = qa; ii <= qb; ++ii)
          for (int64_t r = 0; r < g.nRep; ++r) {
            const int64_t h = (tl.g0 + gg) * g.nRep + r;
            const int64_t li = g.li(tl.b, h, tl.i0 + ii);
            if (lse[li] == kNegInf) continue;
            K.exp_shift(ts.S + (gg * Rg + ii * g.nRep + r) * kLds, static_cast<int>(j1 - j0), lse[li],
                        probs + li * g.S + j0);
          }
    }
  }

  void run() {
    const int64_t R = plan.rowsMax() * g.nRep;
    if (plan.nSplit == 1) {
      run_items(plan.nTiles, [&](int64_t t, int) {
        const TileState ts = state(scratch_f(state_floats()));
        const Tile tl = tile(t);
        run_tile(tl, 0, ts);
        for (int64_t row = 0; row < rows(tl); ++row) finalize_row(tl, row, ts.m[row], ts.l[row], ts.O + row * g.Dp);
      });
    } else {
      // Split-K: partial (m, l, O) per (tile, split), merged with the log-sum-exp rule
      // m = max_s m_s, l = sum_s l_s e^(m_s - m), O = sum_s O_s e^(m_s - m).
      const int64_t part = R * (g.Dh + 2);
      rf::Buffer<float> partials(static_cast<size_t>(plan.nTiles * plan.nSplit * part));
      run_items(plan.nTiles * plan.nSplit, [&](int64_t it, int) {
        // Split-major order: the threads start on different tiles' first splits.
        const int64_t t = it % plan.nTiles, s = it / plan.nTiles;
        const TileState ts = state(scratch_f(state_floats()));
        const Tile tl = tile(t);
        run_tile(tl, s, ts);
        float* P = partials.data() + (t * plan.nSplit + s) * part;
        const int64_t Rt = rows(tl);
        std::copy(ts.m, ts.m + Rt, P);
        std::copy(ts.l, ts.l + Rt, P + R);
        for (int64_t row = 0; row < Rt; ++row)
          std::copy(ts.O + row * g.Dp, ts.O + row * g.Dp + g.Dh, P + 2 * R + row * g.Dh);
      });
      run_items(plan.nTiles, [&](int64_t t, int) {
        const Tile tl = tile(t);
        float* acc = scratch_f(static_cast<size_t>(g.Dp));
        for (int64_t row = 0; row < rows(tl); ++row) {
          float mx = kNegInf;
          for (int64_t s = 0; s < plan.nSplit; ++s) mx = std::max(mx, partials[(t * plan.nSplit + s) * part + row]);
          if (mx == kNegInf) {
            finalize_row(tl, row, kNegInf, 0.0f, acc);
            continue;
          }
          std::fill(acc, acc + g.Dh, 0.0f);
          float lsum = 0;
          for (int64_t s = 0; s < plan.nSplit; ++s) {
            const float* P = partials.data() + (t * plan.nSplit + s) * part;
            if (P[row] == kNegInf) continue;
            const float w = std::exp(P[row] - mx);
            lsum += w * P[R + row];
            const float* Os = P + 2 * R + row * g.Dh;
            for (int64_t d = 0; d < g.Dh; ++d) acc[d] += w * Os[d];
          }
          finalize_row(tl, row, mx, lsum, acc);
        }
      });
    }
    if (probs) {
      // probs needs the final lse of each row, so it is a second pass over query tiles (one KV head per tile).
      Fwd pp = *this;
      pp.plan.ngT = 1;
      pp.plan.nqT = std::max<int64_t>(1, std::min<int64_t>(g.T, kFwdRows / g.nRep));
      pp.plan.nGB = g.Hkv;
      pp.plan.nQB = (g.T + pp.plan.nqT - 1) / pp.plan.nqT;
      pp.plan.nTiles = g.B * pp.plan.nGB * pp.plan.nQB;
      pp.plan.nSplit = 1;
      pp.plan.keys = kFwdKeys;
      pp.plan.decode = false;
      run_items(pp.plan.nTiles, [&](int64_t t, int) {
        pp.probs_tile(pp.tile(t), pp.state(scratch_f(pp.state_floats())));
      });
    }
  }
};

FwdPlan plan_forward(const Geo& g) {
  FwdPlan p;
  const int nt = rf::num_threads();
  p.decode = g.T * g.nRep <= kDecodeRows;
  if (p.decode) {
    // Decode / short chunks: all KV heads of a batch entry in one tile (up to ~kFwdRows rows) so K and V are read
    // in address order, once.
    p.nqT = g.T;
    p.ngT = std::min<int64_t>(g.Hkv, std::max<int64_t>(1, kFwdRows / (g.T * g.nRep)));
  } else {
    p.ngT = 1;
    p.nqT = std::max<int64_t>(1, std::min<int64_t>(g.T, kFwdRows / g.nRep));
  }
  p.nGB = (g.Hkv + p.ngT - 1) / p.ngT;
  p.nQB = (g.T + p.nqT - 1) / p.nqT;
  p.nTiles = g.B * p.nGB * p.nQB;
  p.nSplit = 1;
  p.keys = kFwdKeys;
  if (nt > 1 && p.nTiles < 2 * nt) {
    // Too few tiles to keep every thread busy: split each tile's keys, aiming at ~4 items per thread for load
    // balance, with at least 4 key blocks per split so the merge stays negligible.
    const int64_t keyBlocks = (g.S + kFwdKeys - 1) / kFwdKeys;
    const int64_t want = (4 * nt + p.nTiles - 1) / p.nTiles;
    p.nSplit = std::max<int64_t>(1, std::min(want, keyBlocks / 4));
    const int64_t kvBytes = g.S * g.Hkv * g.Dh * int64_t(2 * sizeof(float));
    if (p.decode && p.nSplit < nt && g.S >= 64 && kvBytes >= (int64_t(1) << 17)) {
      // Decode tiles read a cache that the weight stream has evicted, and one thread reaches about half the
      // bandwidth of two (decode with cold keys on the Xeon host, 12 heads: 40 -> 20-25 us at 128 keys, 50 ->
      // 28 us at 160). Splits of at least 32 keys, a multiple of the threads so they get equal shares; a cache
      // under 128 KB (small models, which keep it in L2) stays on one thread, where the hand-off would cost more.
      p.nSplit = std::max<int64_t>(std::min<int64_t>(nt, g.S / 32), (keyBlocks + nt - 1) / nt * nt);
      p.keys = std::min<int64_t>(kFwdKeys, round8((g.S + p.nSplit - 1) / p.nSplit));
    }
  }
  return p;
}

}  // namespace

void forward(const Geo& g, const float* q, const float* k, const float* v, float* o, float* lse, float* probs) {
  Fwd f{rf::attn::attn_kernels(), g, q, k, v, o, lse, probs, plan_forward(g)};
  f.run();
}

}  // namespace rf::attn_impl
