// Shared pieces of the attention drivers (attn_forward.cpp, attn_backward.cpp) and their bindings (attention.cpp,
// which also has the overview): tile sizes, the visibility mask, the tensor geometry, the work-item runner and
// the per-thread scratch buffers, plus the entry points of the two drivers. The drivers see the micro-kernels
// only through rf::attn::KernelTable (attn_kernels.h).
#pragma once
#include "attn_kernels.h"
#include "common.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <utility>
#include <vector>

namespace rf::attn_impl {

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
inline void run_items(int64_t n, const F& f) {
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

inline void zero_parallel(float* x, int64_t n) {
  rf::parallel_for(n, int64_t(1) << 16,
                   [&](int64_t b, int64_t e) { std::memset(x + b, 0, sizeof(float) * (e - b)); });
}

// Per-thread scratch, grown on demand and kept: decode calls this dozens of times per token, and large fresh
// allocations would come back as page faults every time. A failed allocation throws rf::ScratchError.
inline float* scratch_f(size_t n) {
  thread_local rf::Scratch<float> buf;
  return buf.get(n);
}
inline signed char* scratch_status(size_t n) {
  thread_local rf::Scratch<signed char> buf;
  return buf.get(n);
}
inline std::vector<std::pair<int64_t, int64_t>>& scratch_blocks() {
  thread_local std::vector<std::pair<int64_t, int64_t>> v;
  return v;
}

// ---- drivers -------------------------------------------------------------------------------------------------
// Both take a geometry the bindings have validated, and buffers of at least the sizes the contract gives.

// Forward (attn_forward.cpp): o and lse, and probs unless it is null. Needs B, T >= 1.
void forward(const Geo& g, const float* q, const float* k, const float* v, float* o, float* lse, float* probs);

// Backward (attn_backward.cpp): gq, gk and gv, overwritten (gk / gv rows of keys no query sees come out zero).
void backward(const Geo& g, const float* q, const float* k, const float* v, const float* o, const float* lse,
              const float* go, float* gq, float* gk, float* gv);

}  // namespace rf::attn_impl
