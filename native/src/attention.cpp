// Fused multi-head attention (forward and backward) for the contract in src/tensor/kernels.ts.
//
// Forward: FlashAttention-style tiling with an online softmax. A tile is a set of "rows" (query x query-head)
// that share one KV head: the nRep query heads of a GQA group are processed together so every K/V block loaded
// serves all of them. For each tile we walk only the key blocks that some query of the tile can see (causal
// upper triangle, keys behind the sliding window except the sink keys are never touched), compute a block of
// scores, fold it into running max / sum / output, and normalise once at the end. No T x S matrix exists unless
// probs is requested, in which case a second pass recomputes the scores against the final lse.
//
// Prefill tiles (>= 16 rows) compute the score block transposed, S^T = K (scale Q)^T, with the same
// broadcast-FMA kernel as P @ V (Q^T is built once per tile), so there are no horizontal reductions, and the
// online softmax runs down the columns vectorised across query rows. Tiles with few rows (decode) use row dot
// products instead, where a transposed layout would leave most vector lanes empty.
//
// Decode (few query rows, long KV cache) is memory-bound: a tile then holds every KV head of the batch entry, so
// a key block is streamed once in address order (k is (B, S, Hkv, Dh), so one key position of all heads is
// contiguous), and the key range is split across threads (split-K) with a log-sum-exp merge of the partial
// results.
//
// Backward: FlashAttention-2 recomputation from lse. Work items are (batch, KV head, key chunk); an item owns
// the gk / gv rows of its keys, so it accumulates into them without synchronisation. Inside an item, query
// blocks are the outer loop (Q, dO and their transposes are built once per query block and dQ is accumulated
// locally) and only the key blocks the query block can see are visited. gq rows of a KV head's query
// heads belong to that (batch, KV head): written directly when each (batch, KV head) is one item, and through
// per-thread partial buffers summed at the end when the keys are split into several chunks.
//
// Threading: items are handed out from an atomic counter (rf::parallel_claim) rather than as the static
// halves rf::parallel_for would give, because causal tiles differ in cost by up to T / block; items are ordered
// most expensive first so the tail of the schedule is short.
#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "attn_kernels.h"
#include "common.h"

namespace {

using rf::attn::KernelTable;

constexpr float kNegInf = -std::numeric_limits<float>::infinity();
constexpr float kPosInf = std::numeric_limits<float>::infinity();

// Tile geometry. 64 query rows x 64 keys keeps the score block (16 KB) and, up to Dh = 128, the Q and O tiles in
// L1/L2 while giving the register kernels long enough loops; the per-block softmax bookkeeping (rescaling O by
// alpha) then costs 1/64 of the P @ V work.
constexpr int kFwdRows = 64;
constexpr int kFwdKeys = 64;
constexpr int kBwdRows = 64;
constexpr int kBwdKeys = 64;
// A forward tile holds every KV head (decode layout) when a single KV head has at most this many query rows.
constexpr int64_t kDecodeRows = 16;

constexpr int64_t round8(int64_t x) { return (x + 7) & ~int64_t(7); }

// Visibility of key j to query i (absolute position p = qOffset + i), kernels.ts:
//   (!causal || j <= p) && (window <= 0 || j > p - window || j < sinks).
// For a query this is the key interval [lo, hi] plus the sink prefix [0, sinks) clipped to hi.
struct Mask {
  int64_t S;
  int64_t hiBase;  // causal: query i sees keys j <= hiBase + i  (hiBase = floor(qOffset))
  int64_t loBase;  // window: query i sees keys j >= loBase + i  (loBase = floor(qOffset - window) + 1)
  int64_t sinks;   // keys j < sinks ignore the window
  bool causal, windowed;

  int64_t hi(int64_t i) const { return causal ? std::min(hiBase + i, S - 1) : S - 1; }
  int64_t lo(int64_t i) const { return windowed ? std::max<int64_t>(0, loBase + i) : 0; }
  // Query i sees key j iff j <= hi(i) && (j >= lo(i) || j < sinks).

  // Number of keys in [j0, j1) that query i sees.
  int64_t count(int64_t i, int64_t j0, int64_t j1) const {
    const int64_t h = hi(i), l = lo(i);
    const int64_t e = std::min(j1 - 1, h);
    if (e < j0) return 0;
    const int64_t main = std::max<int64_t>(0, e - std::max(j0, l) + 1);          // [max(j0, lo), e]
    const int64_t sink = std::max<int64_t>(0, std::min({e + 1, sinks, l}) - j0);  // sinks below lo
    return main + sink;
  }

  // The keys of [j0, j1) that query i does NOT see, as at most two ranges: keys after hi, and keys below lo that
  // are not sinks. Returns the number of ranges written to r.
  int hidden(int64_t i, int64_t j0, int64_t j1, int64_t r[2][2]) const {
    const int64_t h = hi(i), l = lo(i);
    int n = 0;
    const int64_t a0 = std::max(j0, h + 1);
    if (a0 < j1) r[n][0] = a0, r[n][1] = j1, ++n;
    const int64_t b0 = std::max(j0, std::max<int64_t>(sinks, 0)), b1 = std::min({j1, l, h + 1});
    if (b0 < b1) r[n][0] = b0, r[n][1] = b1, ++n;
    return n;
  }

  // 0: the query sees none of [j0, j1); 2: all of it; 1: some.
  int status(int64_t i, int64_t j0, int64_t j1) const {
    const int64_t c = count(i, j0, j1);
    return c == 0 ? 0 : (c == j1 - j0 ? 2 : 1);
  }

  // Key blocks (at most bk keys) covering every key visible to some query in [ia, ib]: the union of the sink
  // prefix and [lo(ia), hi(ib)] (lo and hi are non-decreasing in i). Blocks may still be invisible to a given
  // query; callers check status(). Keys seen by every query of the range, [lo(ib), hi(ia)], get full blocks; the
  // staircases on either side (the causal diagonal, the trailing edge of the window) get bk / 4 blocks, so the
  // queries that see none of a small block can be skipped: on a causal diagonal this cuts the work by ~35%.
  void blocks(int64_t ia, int64_t ib, int64_t bk, std::vector<std::pair<int64_t, int64_t>>& out) const {
    out.clear();
    const int64_t h = hi(ib);
    if (h < 0) return;
    int64_t ivs[2][2];
    int n = 0;
    const int64_t sinkEnd = std::min(sinks, h + 1);
    const int64_t l = lo(ia);
    if (sinkEnd > 0) ivs[n][0] = 0, ivs[n][1] = sinkEnd, ++n;
    if (l <= h) {
      if (n == 1 && l <= ivs[0][1]) {
        ivs[0][1] = h + 1;  // the window reaches back into the sinks: one interval
      } else {
        ivs[n][0] = l, ivs[n][1] = h + 1, ++n;
      }
    }
    const int64_t sb = std::max<int64_t>(1, bk / 4);
    auto cut = [&](int64_t a, int64_t e, int64_t size) {
      for (int64_t j = a; j < e; j += size) out.emplace_back(j, std::min(e, j + size));
    };
    const int64_t full0 = lo(ib), full1 = hi(ia) + 1;  // keys every query of the range sees (bar the sinks)
    for (int t = 0; t < n; ++t) {
      const int64_t a = ivs[t][0], e = ivs[t][1];
      const int64_t p1 = std::min(std::max(full0, a), e), p2 = std::min(std::max(full1, p1), e);
      cut(a, p1, sb);
      cut(p1, p2, bk);
      cut(p2, e, sb);
    }
  }
};

struct Geo {
  int64_t B, T, S, Hq, Hkv, Dh, nRep, Dp;
  float scale;
  Mask mask;
  int64_t qi(int64_t b, int64_t i, int64_t h) const { return ((b * T + i) * Hq + h) * Dh; }  // q, o, go, gq
  int64_t ki(int64_t b, int64_t j, int64_t g) const { return ((b * S + j) * Hkv + g) * Dh; }  // k, v, gk, gv
  int64_t li(int64_t b, int64_t h, int64_t i) const { return (b * Hq + h) * T + i; }           // lse
};

// Flush-to-zero / denormals-are-zero for the duration of a scope on this thread, restored afterwards. Softmax
// weights far below the row maximum times small values produce denormal products; each costs a microcode assist
// of ~100 cycles on x86. Anything that small (< 1.2e-38) is far below float resolution of the results.
struct FlushDenormals {
#if RF_X86
  unsigned int saved;
  FlushDenormals() : saved(_mm_getcsr()) { _mm_setcsr(saved | 0x8040u); }  // FTZ (bit 15) | DAZ (bit 6)
  ~FlushDenormals() { _mm_setcsr(saved); }
#endif
};

// Runs f(item, tid) for every item in [0, n), items handed out in order from a shared counter.
template <class F>
void run_items(int64_t n, const F& f) {
  if (n <= 0) return;
  if (n == 1 || rf::num_threads() <= 1) {
    [[maybe_unused]] FlushDenormals ftz;
    for (int64_t t = 0; t < n; ++t) f(t, 0);
    return;
  }
  rf::parallel_claim(n, [&](int64_t t, int tid) {
    [[maybe_unused]] FlushDenormals ftz;
    f(t, tid);
  });
}

void zero_parallel(float* x, int64_t n) {
  rf::parallel_for(n, int64_t(1) << 16, [&](int64_t b, int64_t e) { std::memset(x + b, 0, sizeof(float) * (e - b)); });
}

// Per-thread scratch, grown on demand and kept: decode calls this dozens of times per token, and large fresh
// allocations would come back as page faults every time.
float* scratch_f(size_t n) {
  thread_local std::vector<float> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}
signed char* scratch_status(size_t n) {
  thread_local std::vector<signed char> buf;
  if (buf.size() < n) buf.resize(n);
  return buf.data();
}
std::vector<std::pair<int64_t, int64_t>>& scratch_blocks() {
  thread_local std::vector<std::pair<int64_t, int64_t>> v;
  return v;
}

// ============================================ forward ============================================================

struct FwdPlan {
  int64_t ngT, nqT;      // KV heads and queries per tile
  int64_t nGB, nQB;      // tiles along KV heads and queries
  int64_t nTiles, nSplit;
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
      // Prefetching only pays when the next block's rows are not already cached, i.e. long key ranges.
      const int64_t jn = kb + 1 < kb1 && nb > 4 ? blocks[kb + 1].first : -1;
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
    g.mask.blocks(tl.i0, tl.i0 + tl.nq - 1, kFwdKeys, blocks);
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
      std::vector<float> partials(static_cast<size_t>(plan.nTiles * plan.nSplit * part));
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
      run_items(pp.plan.nTiles, [&](int64_t t, int) {
        pp.probs_tile(pp.tile(t), pp.state(scratch_f(pp.state_floats())));
      });
    }
  }
};

FwdPlan plan_forward(const Geo& g) {
  FwdPlan p;
  const int nt = rf::num_threads();
  if (g.T * g.nRep <= kDecodeRows) {
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
  if (nt > 1 && p.nTiles < 2 * nt) {
    // Too few tiles to keep every thread busy: split each tile's keys, aiming at ~4 items per thread for load
    // balance, with at least 4 key blocks per split so the merge stays negligible.
    const int64_t keyBlocks = (g.S + kFwdKeys - 1) / kFwdKeys;
    const int64_t want = (4 * nt + p.nTiles - 1) / p.nTiles;
    p.nSplit = std::max<int64_t>(1, std::min(want, keyBlocks / 4));
  }
  return p;
}

// ============================================ backward ===========================================================

struct Bwd {
  const KernelTable& K;
  Geo g;
  const float *q, *k, *v, *o, *lse, *go;
  float *gq, *gk, *gv;
  int64_t nChunks;             // key chunks per (batch, KV head)
  std::vector<float*> gqDest;  // per thread: where dQ accumulates (gq itself when nChunks == 1)

  // Key blocks of [kb0, kb1) (global grid of kBwdKeys) that some query of [i0, i1] may see: the sink prefix and
  // [lo(i0), hi(i1)], as at most two block ranges.
  int key_block_ranges(int64_t i0, int64_t i1, int64_t kb0, int64_t kb1, int64_t out[2][2]) const {
    const int64_t h = g.mask.hi(i1);
    if (h < 0) return 0;
    int n = 0;
    const int64_t sinkEnd = std::min(g.mask.sinks, h + 1);
    const int64_t a0 = kb0, a1 = std::min(kb1, (std::max<int64_t>(sinkEnd, 0) + kBwdKeys - 1) / kBwdKeys);
    const int64_t m0 = std::max(kb0, g.mask.lo(i0) / kBwdKeys), m1 = std::min(kb1, h / kBwdKeys + 1);
    if (sinkEnd > 0 && a0 < a1) out[n][0] = a0, out[n][1] = a1, ++n;
    if (m0 < m1) {
      if (n == 1 && m0 <= out[0][1]) {
        out[0][1] = std::max(out[0][1], m1);
      } else {
        out[n][0] = m0, out[n][1] = m1, ++n;
      }
    }
    return n;
  }

  void item(int64_t it, int tid) const {
    const int64_t nKB = (g.S + kBwdKeys - 1) / kBwdKeys;
    const int64_t c = it % nChunks;
    const int64_t bg = it / nChunks;
    const int64_t b = bg / g.Hkv, kvh = bg % g.Hkv;
    const int64_t kb0 = nKB * c / nChunks, kb1 = nKB * (c + 1) / nChunks;
    if (kb0 >= kb1) return;
    const int64_t ks = kb0 * kBwdKeys, ke = std::min(g.S, kb1 * kBwdKeys);
    float* dq = gqDest[tid];

    const int64_t nqB = std::max<int64_t>(1, std::min<int64_t>(g.T, kBwdRows / g.nRep));
    const int64_t Rmax = nqB * g.nRep, Rp = round8(Rmax), Dp = g.Dp, BK = kBwdKeys;
    // Per query block: Q and dO row-major (rows x Dp; X operands of dK and dV) and transposed (Dh x Rp; X operands
    // of S^T = K (scale Q)^T and dP^T = V dO^T), loaded once and reused across all key blocks of the chunk.
    float* Qt = scratch_f(static_cast<size_t>(3 * Rmax * Dp + 2 * g.Dh * Rp + 2 * BK * Rp + 2 * Rp));
    float* dOt = Qt + Rmax * Dp;
    float* dQt = dOt + Rmax * Dp;
    float* QT = dQt + Rmax * Dp;
    float* dOT = QT + g.Dh * Rp;
    float* St = dOT + g.Dh * Rp;  // (keys x rows): scores -> P
    float* dPt = St + BK * Rp;    // (keys x rows): dP -> dS (scaled)
    float* lseL = dPt + BK * Rp;
    float* Dl = lseL + Rp;
    signed char* st = scratch_status(static_cast<size_t>(nqB));
    const int64_t ldk = g.Hkv * g.Dh;
    const int Dh = static_cast<int>(g.Dh);

    // Queries that see some key of the chunk.
    int64_t ia = -1, ib = -1;
    for (int64_t i = 0; i < g.T; ++i)
      if (g.mask.count(i, ks, ke) > 0) {
        if (ia < 0) ia = i;
        ib = i;
      }
    if (ia < 0) return;  // gk / gv rows of the chunk stay zero

    for (int64_t i0 = ia; i0 <= ib; i0 += nqB) {
      const int64_t nq = std::min(nqB, ib - i0 + 1);
      int64_t kr[2][2];
      const int nkr = key_block_ranges(i0, i0 + nq - 1, kb0, kb1, kr);
      if (nkr == 0) continue;
      const int R = static_cast<int>(nq * g.nRep);
      // Row rho = ii * nRep + r is query i0 + ii of head kvh * nRep + r. lse = -inf (the row saw nothing)
      // becomes +inf so exp(s - lse) = 0 and the row contributes nothing.
      for (int64_t ii = 0; ii < nq; ++ii)
        for (int64_t r = 0; r < g.nRep; ++r) {
          const int64_t rho = ii * g.nRep + r, h = kvh * g.nRep + r, qo = g.qi(b, i0 + ii, h);
          float* qd = Qt + rho * Dp;
          float* gd = dOt + rho * Dp;
          float dsum = 0;
          for (int64_t d = 0; d < g.Dh; ++d) {
            const float qv = q[qo + d], gov = go[qo + d];
            qd[d] = qv;
            gd[d] = gov;
            QT[d * Rp + rho] = qv * g.scale;
            dOT[d * Rp + rho] = gov;
            dsum += gov * o[qo + d];
          }
          const float L = lse[g.li(b, h, i0 + ii)];
          lseL[rho] = L == kNegInf ? kPosInf : L;
          Dl[rho] = dsum;
        }
      std::fill(dQt, dQt + R * Dp, 0.0f);
      bool touched = false;
      // One key range [j0, j1) against the query block: only the columns (query rows) from the first to the last
      // query that sees some of its keys take part (c0 aligned to 8 so column chunks stay inside Rp).
      auto process = [&](int64_t j0, int64_t j1) {
        const int nk = static_cast<int>(j1 - j0);
        int64_t qa = -1, qb = -1;
        for (int64_t ii = 0; ii < nq; ++ii) {
          st[ii] = static_cast<signed char>(g.mask.status(i0 + ii, j0, j1));
          if (st[ii]) {
            if (qa < 0) qa = ii;
            qb = ii;
          }
        }
        if (qa < 0) return;
        const int64_t c0 = (qa * g.nRep) & ~int64_t(7), c1 = (qb + 1) * g.nRep;
        const int nc = static_cast<int>(c1 - c0);
        const float* kblk = k + g.ki(b, j0, kvh);
        const float* vblk = v + g.ki(b, j0, kvh);
        K.gemm(kblk, ldk, 1, nk, Dh, QT + c0, Rp, nc, St + c0, Rp, 0, nullptr);    // S^T = K (scale Q)^T
        K.gemm(vblk, ldk, 1, nk, Dh, dOT + c0, Rp, nc, dPt + c0, Rp, 0, nullptr);  // dP^T = V dO^T
        for (int64_t ii = c0 / g.nRep; ii * g.nRep < c1; ++ii) {
          const int s_ = st[ii];
          if (s_ == 2) continue;
          int64_t hr[2][2];
          const int nh = s_ == 0 ? (hr[0][0] = j0, hr[0][1] = j1, 1) : g.mask.hidden(i0 + ii, j0, j1, hr);
          const int64_t ca = std::max(c0, ii * g.nRep), cb = (ii + 1) * g.nRep;
          for (int u = 0; u < nh; ++u)
            for (int64_t j = hr[u][0]; j < hr[u][1]; ++j) {
              float* sr = St + (j - j0) * Rp;
              for (int64_t col = ca; col < cb; ++col) sr[col] = kNegInf;
            }
        }
        K.bwd_elem(St + c0, dPt + c0, Rp, nk, nc, lseL + c0, Dl + c0, g.scale);  // P and dS' = scale * dS
        // gk / gv rows of these keys belong to this item: accumulate in place.
        K.gemm(St + c0, Rp, 1, nk, nc, dOt + c0 * Dp, Dp, Dh, gv + g.ki(b, j0, kvh), ldk, 1, nullptr);  // dV += P^T dO
        K.gemm(dPt + c0, Rp, 1, nk, nc, Qt + c0 * Dp, Dp, Dh, gk + g.ki(b, j0, kvh), ldk, 1, nullptr);  // dK += dS'^T q
        K.gemm(dPt + c0, 1, Rp, nc, nk, kblk, ldk, Dh, dQt + c0 * Dp, Dp, 1, nullptr);  // dQ += dS' k
        touched = true;
      };
      for (int t = 0; t < nkr; ++t)
        for (int64_t kb = kr[t][0]; kb < kr[t][1]; ++kb) {
          const int64_t j0 = kb * BK, j1 = std::min(g.S, j0 + BK);
          bool all = true;
          for (int64_t ii = 0; ii < nq && all; ++ii) all = g.mask.status(i0 + ii, j0, j1) == 2;
          if (all) {
            process(j0, j1);
          } else {
            // A staircase block (causal diagonal, window edge): quarter blocks let queries that see none of a
            // quarter skip it, ~35% less work on a causal diagonal.
            for (int64_t a = j0; a < j1; a += BK / 4) process(a, std::min(j1, a + BK / 4));
          }
        }
      if (!touched) continue;
      for (int64_t ii = 0; ii < nq; ++ii)
        for (int64_t r = 0; r < g.nRep; ++r) {
          float* dst = dq + g.qi(b, i0 + ii, kvh * g.nRep + r);
          const float* src = dQt + (ii * g.nRep + r) * Dp;
          for (int64_t d = 0; d < g.Dh; ++d) dst[d] += src[d];
        }
    }
  }

  void run() {
    const int nt = rf::num_threads();
    const int64_t groups = g.B * g.Hkv;
    const int64_t nKB = (g.S + kBwdKeys - 1) / kBwdKeys;
    nChunks = 1;
    if (nt > 1 && groups < 2 * nt) nChunks = std::max<int64_t>(1, std::min(nKB, (4 * nt + groups - 1) / groups));
    const int64_t nGq = g.B * g.T * g.Hq * g.Dh;
    zero_parallel(gq, nGq);
    zero_parallel(gk, g.B * g.S * g.Hkv * g.Dh);
    zero_parallel(gv, g.B * g.S * g.Hkv * g.Dh);
    std::vector<float> partial;
    gqDest.assign(static_cast<size_t>(nt), gq);
    if (nChunks > 1) {
      // Several items of one (batch, KV head) may run at once: each thread accumulates its dQ privately.
      partial.assign(static_cast<size_t>((nt - 1) * nGq), 0.0f);
      for (int t = 1; t < nt; ++t) gqDest[t] = partial.data() + (t - 1) * nGq;
    }
    run_items(groups * nChunks, [&](int64_t it, int tid) { item(it, tid); });
    if (nChunks > 1) {
      rf::parallel_for(nGq, 1 << 14, [&](int64_t b, int64_t e) {
        for (int t = 1; t < nt; ++t) {
          const float* p = gqDest[t];
          for (int64_t x = b; x < e; ++x) gq[x] += p[x];
        }
      });
    }
  }
};

// ============================================ bindings ===========================================================

bool is_count(double x) { return x >= 0 && std::floor(x) == x && x < 9.007199254740992e15; }

// Validates sizes shared by both kernels; throws a RangeError naming the kernel and returns false on failure.
bool check_geometry(Napi::Env env, const char* kernel, const double* dims, Geo& g) {
  const char* names[6] = {"B", "T", "S", "Hq", "Hkv", "Dh"};
  for (int d = 0; d < 6; ++d) {
    if (!is_count(dims[d])) {
      Napi::RangeError::New(env, std::string("recurformer native ") + kernel + ": " + names[d] +
                                     " must be a non-negative integer, got " + std::to_string(dims[d]))
          .ThrowAsJavaScriptException();
      return false;
    }
  }
  g.B = static_cast<int64_t>(dims[0]);
  g.T = static_cast<int64_t>(dims[1]);
  g.S = static_cast<int64_t>(dims[2]);
  g.Hq = static_cast<int64_t>(dims[3]);
  g.Hkv = static_cast<int64_t>(dims[4]);
  g.Dh = static_cast<int64_t>(dims[5]);
  if (g.Hkv < 1 || g.Hq < 1 || g.Hq % g.Hkv != 0 || g.Dh < 1) {
    Napi::RangeError::New(env, std::string("recurformer native ") + kernel + ": need Hq, Hkv, Dh >= 1 and Hq % Hkv == 0, got Hq=" +
                                   std::to_string(g.Hq) + " Hkv=" + std::to_string(g.Hkv) + " Dh=" + std::to_string(g.Dh))
        .ThrowAsJavaScriptException();
    return false;
  }
  g.nRep = g.Hq / g.Hkv;
  g.Dp = round8(g.Dh);
  return true;
}

bool check_len(Napi::Env env, const char* kernel, const char* arg, size_t len, int64_t need) {
  if (static_cast<int64_t>(len) >= need) return true;
  Napi::RangeError::New(env, std::string("recurformer native ") + kernel + ": " + arg + " has " + std::to_string(len) +
                                 " elements, expected " + std::to_string(need))
      .ThrowAsJavaScriptException();
  return false;
}

// Mask parameters arrive as doubles. For integer positions j and i the reference's tests j <= qOffset + i,
// j > qOffset + i - window and j < sinks are the same as j <= floor(qOffset) + i,
// j >= floor(qOffset - window) + 1 + i and j < ceil(sinks), so fractional values behave identically. Values are
// clamped before converting (casting an out-of-range double is undefined) to a range wide enough that every
// comparison against positions < 2^53 comes out the same.
int64_t to_pos(double x) {
  if (std::isnan(x)) return 0;
  return static_cast<int64_t>(std::max(-1e17, std::min(1e17, x)));
}

Mask make_mask(const Geo& g, double causal, double qOffset, double window, double sinks) {
  Mask m;
  m.S = g.S;
  m.causal = causal != 0;
  m.windowed = window > 0;
  m.hiBase = to_pos(std::floor(qOffset));
  m.loBase = m.windowed ? to_pos(std::floor(qOffset - window)) + 1 : 0;
  m.sinks = to_pos(std::ceil(sinks));
  return m;
}

// Reads the six sizes (B, T, S, Hq, Hkv, Dh) at argument `first` and the scale and mask parameters after them
// (scale, causal, qOffset, window, sinks), validates the geometry and fills g. False once an error is thrown.
bool read_geometry(rf::ArgReader& a, Napi::Env env, const char* kernel, size_t first, Geo& g) {
  double dims[6];
  for (size_t d = 0; d < 6; ++d) dims[d] = a.num(first + d);
  const double scale = a.num(first + 6), causal = a.num(first + 7), qOffset = a.num(first + 8),
               window = a.num(first + 9), sinks = a.num(first + 10);
  if (!a.ok || !check_geometry(env, kernel, dims, g)) return false;
  g.scale = static_cast<float>(scale);
  g.mask = make_mask(g, causal, qOffset, window, sinks);
  return true;
}

Napi::Value Attention(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  rf::ArgReader a(info, "attention");
  size_t nq, nk, nv, no, nl, np;
  const float* q = a.f32(0, &nq);
  const float* k = a.f32(1, &nk);
  const float* v = a.f32(2, &nv);
  Geo g;
  if (!read_geometry(a, env, "attention", 3, g)) return env.Undefined();
  float* o = a.f32(14, &no);
  float* lse = a.f32(15, &nl);
  float* probs = a.f32(16, &np);
  if (!a.ok) return env.Undefined();
  const int64_t qn = g.B * g.T * g.Hq * g.Dh, kn = g.B * g.S * g.Hkv * g.Dh;
  if (!check_len(env, "attention", "q", nq, qn) || !check_len(env, "attention", "k", nk, kn) ||
      !check_len(env, "attention", "v", nv, kn) || !check_len(env, "attention", "o", no, qn) ||
      !check_len(env, "attention", "lse", nl, g.B * g.Hq * g.T))
    return env.Undefined();
  if (np != 0 && !check_len(env, "attention", "probs", np, g.B * g.Hq * g.T * g.S)) return env.Undefined();
  if (g.B == 0 || g.T == 0) return env.Undefined();
  Fwd f{rf::attn::attn_kernels(), g, q, k, v, o, lse, np ? probs : nullptr, plan_forward(g)};
  f.run();
  return env.Undefined();
}

Napi::Value AttentionGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  rf::ArgReader a(info, "attentionGrad");
  size_t nq, nk, nv, no, nl, ngo, ngq, ngk, ngv;
  const float* q = a.f32(0, &nq);
  const float* k = a.f32(1, &nk);
  const float* v = a.f32(2, &nv);
  const float* o = a.f32(3, &no);
  const float* lse = a.f32(4, &nl);
  const float* go = a.f32(5, &ngo);
  Geo g;
  if (!read_geometry(a, env, "attentionGrad", 6, g)) return env.Undefined();
  float* gq = a.f32(17, &ngq);
  float* gk = a.f32(18, &ngk);
  float* gv = a.f32(19, &ngv);
  if (!a.ok) return env.Undefined();
  const int64_t qn = g.B * g.T * g.Hq * g.Dh, kn = g.B * g.S * g.Hkv * g.Dh;
  const char* kn_ = "attentionGrad";
  if (!check_len(env, kn_, "q", nq, qn) || !check_len(env, kn_, "k", nk, kn) || !check_len(env, kn_, "v", nv, kn) ||
      !check_len(env, kn_, "o", no, qn) || !check_len(env, kn_, "lse", nl, g.B * g.Hq * g.T) ||
      !check_len(env, kn_, "go", ngo, qn) || !check_len(env, kn_, "gq", ngq, qn) ||
      !check_len(env, kn_, "gk", ngk, kn) || !check_len(env, kn_, "gv", ngv, kn))
    return env.Undefined();
  Bwd bw{rf::attn::attn_kernels(), g, q, k, v, o, lse, go, gq, gk, gv, 1, {}};
  bw.run();
  return env.Undefined();
}

}  // namespace

void register_attention(Napi::Env env, Napi::Object exports) {
  exports.Set("attention", Napi::Function::New(env, Attention, "attention"));
  exports.Set("attentionGrad", Napi::Function::New(env, AttentionGrad, "attentionGrad"));
}
