// Attention backward driver (overview in attention.cpp): FlashAttention-2 recomputation from lse. Work items are
// (batch, KV head, key chunk) and own the gk / gv rows of their keys; dQ goes straight into gq when each
// (batch, KV head) is one item, and through per-thread partial buffers summed at the end when its keys are split.
#include "attn_common.h"

#include <algorithm>
#include <vector>

namespace rf::attn_impl {
namespace {

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
    gqDest.assign(static_cast<size_t>(nt), gq);
    // Several items of one (batch, KV head) may run at once when its keys are split: each thread accumulates its
    // dQ privately (zeroed buffers).
    rf::Buffer<float> partial(nChunks > 1 ? static_cast<size_t>((nt - 1) * nGq) : 0);
    if (nChunks > 1) {
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

}  // namespace

void backward(const Geo& g, const float* q, const float* k, const float* v, const float* o, const float* lse,
              const float* go, float* gq, float* gk, float* gv) {
  Bwd bw{rf::attn::attn_kernels(), g, q, k, v, o, lse, go, gq, gk, gv, 1, {}};
  bw.run();
}

}  // namespace rf::attn_impl
