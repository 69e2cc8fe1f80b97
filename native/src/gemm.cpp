// GEMM driver and N-API bindings: gemm, gemmF16, f32ToF16, f16ToF32 (contract in src/tensor/kernels.ts).
//
// Large products follow the GotoBLAS / BLIS scheme: B is packed KC x NC at a time into NR-wide panels (shared by
// all threads), each thread packs MC x KC blocks of A into MR-high panels in its own buffer, and the micro-kernel
// walks the packed panels so that a B micro-panel stays in L1 and the A block in L2. Decode-sized problems
// (one row of A, one column of B, up to eight rows against an (N, K) weight) skip packing and use streaming
// matrix-vector kernels that read every weight exactly once; small products run on the calling thread with
// its reused buffers, never touching the pool.
#include "gemm_internal.h"

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <string>
#include <thread>

namespace {

using namespace rf::gemm;

// ---- tuning -----------------------------------------------------------------------------------------------------

struct Blocking {
  int64_t mc, kc, nc;
};

// The kernel set's cache blocking (see KernelSet), or RECURFORMER_GEMM_BLOCKS="mc,kc,nc" for tuning runs;
// MC and NC are rounded to whole register blocks.
Blocking blocking(const KernelSet& ks) {
  static const Blocking override = [] {
    Blocking b{0, 0, 0};
    if (const char* env = std::getenv("RECURFORMER_GEMM_BLOCKS")) {
      long mc = 0, kc = 0, nc = 0;
      if (std::sscanf(env, "%ld,%ld,%ld", &mc, &kc, &nc) == 3 && mc > 0 && kc > 0 && nc > 0) b = {mc, kc, nc};
    }
    return b;
  }();
  Blocking b = override.mc > 0 ? override : Blocking{ks.mc, ks.kc, ks.nc};
  b.mc = std::max<int64_t>(ks.mr, b.mc / ks.mr * ks.mr);
  b.nc = std::max<int64_t>(ks.nr, b.nc / ks.nr * ks.nr);
  return b;
}

// Thresholds measured on the 2-core reference VM (waking the pool and meeting at barriers costs a few
// microseconds). One packed product is split across threads from about 100^3 multiply-adds; independent
// batch items, which need no barriers, from a quarter of that in total; a matrix-vector product from 64K
// weights. Smaller products run on the calling thread with its reused buffers and no synchronization at all,
// which measured faster than a non-packing loop down to 8^3 (the N-API call itself dominates below that).
constexpr int64_t kParallelMacs = int64_t(1) << 20;
constexpr int64_t kParallelBatchMacs = int64_t(1) << 18;
constexpr int64_t kParallelGemvElems = int64_t(1) << 16;
// Up to this many rows of A against an (N, K) weight, blocked dot products beat packing (measured crossover
// between 8 and 12 rows for 4096 x 4096 weights in f32 and f16).
constexpr int64_t kSmallM = 8;

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }
inline int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

// Splits n into equal blocks of at most `cap` (rounded up to `unit`) so the last block is not a sliver.
inline int64_t balanced_block(int64_t n, int64_t cap, int64_t unit) {
  if (n <= cap) return round_up(n, unit);
  return round_up(ceil_div(n, ceil_div(n, cap)), unit);
}

// ---- scratch ----------------------------------------------------------------------------------------------------

// Per-thread aligned buffers that only grow (rf::Scratch): the pool threads live for the whole process, so after the
// first few calls no GEMM allocates. A failed allocation throws rf::ScratchError.
thread_local rf::Scratch<float> tl_apack, tl_bpack, tl_row;

// ---- one product ------------------------------------------------------------------------------------------------

// C (M x N, row stride ldc) = alpha * op(A) . op(B) + beta * C, op(B) in float (b) or half (bh.p != nullptr).
struct Problem {
  int64_t M, N, K;
  ViewF a;   // op(A): M x K
  ViewF b;   // op(B): K x N
  ViewH bh;  // half op(B): K x N, or bh.p == nullptr
  float* c;
  int64_t ldc;
  float alpha, beta;
};

void pack_b_block(const Problem& P, const KernelSet& ks, int64_t k0, int64_t j0, int64_t kc, int64_t nc,
                  float* dst) {
  if (P.bh.p)
    ks.pack_b_h(ViewH{P.bh.at(k0, j0), P.bh.rs, P.bh.cs}, kc, nc, dst);
  else
    ks.pack_b(ViewF{P.b.at(k0, j0), P.b.rs, P.b.cs}, kc, nc, dst);
}

// Prefetches the cache lines of `rows` rows of a tile NR floats wide.
template <int NR>
inline void prefetch_tile(const float* c, int64_t ldc, int64_t rows) {
  for (int64_t i = 0; i < rows; ++i) {
    for (int j = 0; j < NR; j += 16) __builtin_prefetch(c + i * ldc + j, 1, 3);
    __builtin_prefetch(c + i * ldc + NR - 1, 1, 3);  // the row may straddle one more line
  }
}

// Runs the micro-kernel over an mc x nc block of C from packed A (mc x kc) and packed B (kc x nc). Ragged tiles
// are computed into a local tile (the packed panels are zero-padded) and merged, so the kernel never branches.
// MR and NR are template parameters so the tile walk compiles to constant strides (measurably faster at 2048).
template <int MR, int NR>
void macro_kernel_t(const KernelSet& ks, const float* ap, const float* bp, int64_t mc, int64_t nc, int64_t kc,
                    float* c, int64_t ldc, float alpha, float beta) {
  alignas(64) float tile[MR * NR];
  for (int64_t jr = 0; jr < nc; jr += NR) {
    const int nr = static_cast<int>(std::min<int64_t>(NR, nc - jr));
    for (int64_t ir = 0; ir < mc; ir += MR) {
      const int mr = static_cast<int>(std::min<int64_t>(MR, mc - ir));
      float* cc = c + ir * ldc + jr;
      // C usually comes from L3 or memory (it is revisited once per K block); fetching the next tile while
      // this one computes hides that latency, which a prefetch at the start of the same tile cannot.
      if (ir + MR < mc)
        prefetch_tile<NR>(c + (ir + MR) * ldc + jr, ldc, std::min<int64_t>(MR, mc - ir - MR));
      else if (jr + NR < nc)
        prefetch_tile<NR>(c + jr + NR, ldc, std::min<int64_t>(MR, mc));
      if (mr == MR && nr == NR) {
        ks.micro(kc, ap + ir * kc, bp + jr * kc, cc, ldc, alpha, beta);
      } else {
        ks.micro(kc, ap + ir * kc, bp + jr * kc, tile, NR, 1.0f, 0.0f);
        merge_tile(tile, NR, mr, nr, cc, ldc, alpha, beta);
      }
    }
  }
}

void macro_kernel(const KernelSet& ks, const float* ap, const float* bp, int64_t mc, int64_t nc, int64_t kc,
                  float* c, int64_t ldc, float alpha, float beta) {
  if (ks.mr == kMR512 && ks.nr == kNR512)
    return macro_kernel_t<kMR512, kNR512>(ks, ap, bp, mc, nc, kc, c, ldc, alpha, beta);
  if (ks.mr == kMR256 && ks.nr == kNR256)
    return macro_kernel_t<kMR256, kNR256>(ks, ap, bp, mc, nc, kc, c, ldc, alpha, beta);
  std::fprintf(stderr, "recurformer: gemm kernel set %s has an unknown register block\n", ks.name);
  std::abort();
}

// Floats of the packed-A buffer compute_rows needs for rows [m0, m1) and K blocks of at most kc.
size_t a_pack_floats(const KernelSet& ks, int64_t m0, int64_t m1, int64_t kc) {
  return static_cast<size_t>(balanced_block(m1 - m0, blocking(ks).mc, ks.mr) * kc + 64);
}

// rows [m0, m1) against the already packed B block (k0, kc) x (j0, nc); A is packed MC rows at a time.
void compute_rows(const Problem& P, const KernelSet& ks, const float* bp, int64_t m0, int64_t m1, int64_t k0,
                  int64_t kc, int64_t j0, int64_t nc) {
  if (m1 <= m0) return;
  const int64_t mc_step = balanced_block(m1 - m0, blocking(ks).mc, ks.mr);
  float* ap = tl_apack.get(a_pack_floats(ks, m0, m1, kc));
  const float beta = k0 == 0 ? P.beta : 1.0f;
  for (int64_t ic = m0; ic < m1; ic += mc_step) {
    const int64_t mc = std::min(mc_step, m1 - ic);
    ks.pack_a(ViewF{P.a.at(ic, k0), P.a.rs, P.a.cs}, mc, kc, ap);
    macro_kernel(ks, ap, bp, mc, nc, kc, P.c + ic * P.ldc + j0, P.ldc, P.alpha, beta);
  }
}

// Width of a packed B block for a thread that owns `rows` rows of C. With few rows each packed B element is
// used only a few times, so the block must stay in L2 between being written and read (otherwise the packed
// copy costs a round trip through L3 on top of the read of B itself); with many rows the NC of the blocking
// applies and B is reused from L1 micro-panel by micro-panel.
int64_t nc_cap(const KernelSet& ks, int64_t rows, int64_t kc) {
  constexpr int64_t kL2Floats = (int64_t(1) << 20) / sizeof(float);  // half of a 2 MiB L2
  const Blocking bl = blocking(ks);
  if (rows > bl.mc) return bl.nc;
  return std::min(bl.nc, std::max<int64_t>(4 * ks.nr, kL2Floats / kc / ks.nr * ks.nr));
}

// Single-threaded blocked product of the C block rows [m0, m1) x columns [n0, n1).
void run_region(const Problem& P, const KernelSet& ks, int64_t m0, int64_t m1, int64_t n0, int64_t n1) {
  if (m1 <= m0 || n1 <= n0) return;
  const int64_t kc_step = balanced_block(P.K, blocking(ks).kc, 8);
  const int64_t nc_step = balanced_block(n1 - n0, nc_cap(ks, m1 - m0, kc_step), ks.nr);
  float* bp = tl_bpack.get(static_cast<size_t>(kc_step * nc_step + 64));
  for (int64_t jc = n0; jc < n1; jc += nc_step) {
    const int64_t nc = std::min(nc_step, n1 - jc);
    for (int64_t pc = 0; pc < P.K; pc += kc_step) {
      const int64_t kc = std::min(kc_step, P.K - pc);
      pack_b_block(P, ks, pc, jc, kc, nc, bp);
      compute_rows(P, ks, bp, m0, m1, pc, kc, jc, nc);
    }
  }
}

// Multi-threaded product split over rows: the threads pack disjoint NR-panels of each B block into one shared
// buffer, meet at a barrier, then each multiplies its own rows (with its own packed A) against the whole block.
// Packing B once instead of once per thread matters: for square sizes it is a few percent of the work.
void run_split_rows(const Problem& P, const KernelSet& ks) {
  const int64_t kc_step = balanced_block(P.K, blocking(ks).kc, 8);
  const int64_t nc_step = balanced_block(P.N, nc_cap(ks, ceil_div(P.M, rf::num_threads()), kc_step), ks.nr);
  float* bp = tl_bpack.get(static_cast<size_t>(kc_step * nc_step + 64));
  rf::Barrier bar;  // spins briefly, then sleeps (common.h)
  std::atomic<bool> short_of_memory{false};
  const int64_t MR = ks.mr, NR = ks.nr;
  rf::parallel_run([&](int tid, int nt) {
    const int64_t row_panels = ceil_div(P.M, MR);
    const int64_t m0 = std::min(P.M, row_panels * tid / nt * MR);
    const int64_t m1 = std::min(P.M, row_panels * (tid + 1) / nt * MR);
    // Every thread reserves its packed-A buffer before the first barrier, and after it all of them know whether one
    // failed: a thread that threw between barriers would leave the others waiting for it forever.
    std::exception_ptr failed;
    if (m1 > m0) {
      try {
        tl_apack.get(a_pack_floats(ks, m0, m1, kc_step));
      } catch (...) {
        failed = std::current_exception();
        short_of_memory.store(true, std::memory_order_relaxed);
      }
    }
    bool first = true;
    for (int64_t jc = 0; jc < P.N; jc += nc_step) {
      const int64_t nc = std::min(nc_step, P.N - jc);
      const int64_t col_panels = ceil_div(nc, NR);
      const int64_t q0 = col_panels * tid / nt * NR, q1 = std::min(nc, col_panels * (tid + 1) / nt * NR);
      for (int64_t pc = 0; pc < P.K; pc += kc_step) {
        const int64_t kc = std::min(kc_step, P.K - pc);
        if (q1 > q0) pack_b_block(P, ks, pc, jc + q0, kc, q1 - q0, bp + q0 * kc);
        bar.wait(nt);
        if (first) {  // every thread takes the same loop, so all of them stop here together
          first = false;
          if (short_of_memory.load(std::memory_order_relaxed)) {
            if (failed) std::rethrow_exception(failed);
            return;
          }
        }
        compute_rows(P, ks, bp, m0, m1, pc, kc, jc, nc);
        bar.wait(nt);  // nobody may overwrite the shared panel while another thread still reads it
      }
    }
  });
}

// Multi-threaded product split over columns, for short-and-wide C: each thread runs an independent blocked
// product on its own columns (A is small, so packing it once per thread is cheap).
void run_split_cols(const Problem& P, const KernelSet& ks) {
  const int64_t NR = ks.nr;
  rf::parallel_run([&](int tid, int nt) {
    const int64_t panels = ceil_div(P.N, NR);
    const int64_t n0 = std::min(P.N, panels * tid / nt * NR), n1 = std::min(P.N, panels * (tid + 1) / nt * NR);
    run_region(P, ks, 0, P.M, n0, n1);
  });
}

// ---- matrix-vector paths ----------------------------------------------------------------------------------------

// Returns a contiguous copy of the strided vector v[i * inc] (or v itself when inc == 1), in thread scratch.
const float* contiguous(const float* v, int64_t n, int64_t inc) {
  if (inc == 1) return v;
  float* t = tl_row.get(static_cast<size_t>(n + 16));
  for (int64_t i = 0; i < n; ++i) t[i] = v[i * inc];
  return t;
}

// Splits `rows` output elements, each costing `k` multiply-adds, over the pool when the work is worth it.
template <typename F>
void maybe_parallel(bool parallel, int64_t rows, int64_t k, F&& fn) {
  const int64_t work = rows * std::max<int64_t>(k, 1);
  if (!parallel || work < kParallelGemvElems || rf::num_threads() == 1) {
    fn(int64_t(0), rows);
    return;
  }
  const int64_t grain = std::max<int64_t>(8, ceil_div(kParallelGemvElems / 2, std::max<int64_t>(k, 1)));
  rf::parallel_for(rows, grain, [&](int64_t r0, int64_t r1) { fn(r0, r1); });
}

// y (contiguous, n) = alpha * op(B)^T x + beta * y for one activation row x (contiguous, K): dot form when the
// columns of op(B) are contiguous (the (N, K) weight layout), axpy form when its rows are.
void gemv_row(const Problem& P, const KernelSet& ks, const float* x, float* y, bool parallel) {
  const int64_t N = P.N, K = P.K;
  if (P.bh.p) {
    maybe_parallel(parallel, N, K, [&](int64_t r0, int64_t r1) {
      ks.gemv_dot_h(r1 - r0, K, P.bh.at(0, r0), P.bh.cs, x, K, 1, y + r0, N, P.alpha, P.beta);
    });
  } else if (P.b.rs == 1) {
    maybe_parallel(parallel, N, K, [&](int64_t r0, int64_t r1) {
      ks.gemv_dot(r1 - r0, K, P.b.at(0, r0), P.b.cs, x, K, 1, y + r0, N, P.alpha, P.beta);
    });
  } else {
    maybe_parallel(parallel, N, K, [&](int64_t j0, int64_t j1) {
      ks.gemv_axpy(K, j1 - j0, P.b.at(0, j0), P.b.rs, x, y + j0, P.alpha, P.beta);
    });
  }
}

// N == 1 with a float B: c[:, 0] = alpha * op(A) x + beta * c[:, 0], x = op(B)[:, 0], the mirror of gemv_row.
// C is (M, 1), so its single column is contiguous.
void gemv_col(const Problem& P, const KernelSet& ks, bool parallel) {
  const int64_t M = P.M, K = P.K;
  const float* x = contiguous(P.b.p, K, P.b.rs);
  if (P.a.cs == 1) {
    maybe_parallel(parallel, M, K, [&](int64_t r0, int64_t r1) {
      ks.gemv_dot(r1 - r0, K, P.a.at(r0, 0), P.a.rs, x, K, 1, P.c + r0, 1, P.alpha, P.beta);
    });
  } else {
    maybe_parallel(parallel, M, K, [&](int64_t i0, int64_t i1) {
      ks.gemv_axpy(K, i1 - i0, P.a.at(i0, 0), P.a.cs, x, P.c + i0, P.alpha, P.beta);
    });
  }
}

// A few activation rows against a weight stored (N, K) (the decode / small-batch case). Packing would copy
// every weight once more than it is used; instead the weight is walked in blocks of rows small enough to stay
// in L2 while every group of up to four activation rows is dotted against the block, so each weight comes
// from memory once. A half weight block is first widened into an L2-resident float copy, so the conversion
// is paid once rather than once per activation group. Computes columns [r0, r1) of C on the calling thread.
void few_rows_range(const Problem& P, const KernelSet& ks, int64_t r0, int64_t r1) {
  const int64_t N = P.N, K = P.K, M = P.M;
  const int64_t groups = ceil_div(M, 4), group = ceil_div(M, groups);  // balanced: 5 -> 3 + 2, not 4 + 1
  const int64_t block = std::max<int64_t>(4, std::min<int64_t>(N, (int64_t(256) << 10) / (K * 4) / 4 * 4));
  float* wide = P.bh.p && groups > 1 ? tl_bpack.get(static_cast<size_t>(block * K + 16)) : nullptr;
  for (int64_t r = r0; r < r1; r += block) {
    const int64_t rows = std::min(block, r1 - r);
    const float* w = P.bh.p ? wide : P.b.at(0, r);
    const int64_t ldw = P.bh.p ? K : P.b.cs;
    if (wide) ks.f16_to_f32(P.bh.at(0, r), wide, rows * K);  // rows are contiguous: (N, K) layout
    for (int64_t m = 0; m < M; m += group) {
      const int mx = static_cast<int>(std::min(group, M - m));
      const float* x = P.a.at(m, 0);
      float* y = P.c + m * P.ldc + r;
      if (P.bh.p && !wide)
        ks.gemv_dot_h(rows, K, P.bh.at(0, r), P.bh.cs, x, P.a.rs, mx, y, P.ldc, P.alpha, P.beta);
      else
        ks.gemv_dot(rows, K, w, ldw, x, P.a.rs, mx, y, P.ldc, P.alpha, P.beta);
    }
  }
}

void gemv_few_rows(const Problem& P, const KernelSet& ks, bool parallel) {
  maybe_parallel(parallel, P.N, P.K * P.M, [&](int64_t r0, int64_t r1) { few_rows_range(P, ks, r0, r1); });
}

// C = beta * C (K == 0: the product is empty); beta == 0 writes zeros without reading C.
void scale_c(const Problem& P) {
  for (int64_t i = 0; i < P.M; ++i)
    for (int64_t j = 0; j < P.N; ++j) {
      float* v = P.c + i * P.ldc + j;
      *v = P.beta == 0.0f ? 0.0f : P.beta * *v;
    }
}

// Picks the cheapest correct path for one product. `parallel` is false inside a batch-parallel loop.
void run_product(const Problem& P, const KernelSet& ks, bool parallel) {
  if (P.M == 0 || P.N == 0) return;
  if (P.K == 0) return scale_c(P);
  const int64_t macs = P.M * P.N * P.K;
  const bool dot_form_b = P.bh.p != nullptr || P.b.rs == 1;
  if (P.M == 1) return gemv_row(P, ks, contiguous(P.a.p, P.K, P.a.cs), P.c, parallel);
  if (P.N == 1 && !P.bh.p) return gemv_col(P, ks, parallel);
  if (P.M <= kSmallM && dot_form_b && P.a.cs == 1) return gemv_few_rows(P, ks, parallel);
  const int nt = rf::num_threads();
  if (!parallel || nt == 1 || macs < kParallelMacs) return run_region(P, ks, 0, P.M, 0, P.N);
  if (P.M >= int64_t(nt) * ks.mr * 4) return run_split_rows(P, ks);
  if (P.N >= int64_t(nt) * ks.nr * 2) return run_split_cols(P, ks);
  run_split_rows(P, ks);
}

// ---- several products of one activation ------------------------------------------------------------------------

// Weight encodings of gemmMulti.
enum WeightType { kF32 = 0, kF16 = 1, kBF16 = 2 };

struct Part {
  Problem P;  // P.bh.p set for F16; for BF16 `bf` is set instead
  const uint16_t* bf;
  int64_t begin;  // first row of this part in the concatenated rows of all parts
};

// Columns [r0, r1) of one decode-sized part on the calling thread, with exactly the arithmetic of the separate
// product (gemv_row / gemv_few_rows / gemmBF16), so fusing never changes a result.
void part_range(const Part& q, const KernelSet& ks, int64_t r0, int64_t r1) {
  const Problem& P = q.P;
  if (q.bf) return rf::bf16_rows(r0, r1, P.M, P.K, P.a.p, q.bf, P.beta, P.c, P.N);
  if (P.M == 1) {
    if (P.bh.p)
      ks.gemv_dot_h(r1 - r0, P.K, P.bh.at(0, r0), P.bh.cs, P.a.p, P.K, 1, P.c + r0, P.N, P.alpha, P.beta);
    else
      ks.gemv_dot(r1 - r0, P.K, P.b.at(0, r0), P.b.cs, P.a.p, P.K, 1, P.c + r0, P.N, P.alpha, P.beta);
    return;
  }
  few_rows_range(P, ks, r0, r1);
}

// Up to kSmallM activation rows against several (N_i, K) weights: the rows of all weights are concatenated and
// split over the pool in one hand-off (decode issues q/k/v and gate/up this way), each weight read once.
void run_multi(Part* parts, int n, const KernelSet& ks) {
  int64_t total = 0;
  for (int i = 0; i < n; ++i) parts[i].begin = total, total += parts[i].P.N;
  const Problem& P0 = parts[0].P;
  const auto range = [&](int64_t r0, int64_t r1) {
    for (int i = 0; i < n; ++i) {
      const int64_t b = std::max(r0, parts[i].begin), e = std::min(r1, parts[i].begin + parts[i].P.N);
      if (b < e) part_range(parts[i], ks, b - parts[i].begin, e - parts[i].begin);
    }
  };
  maybe_parallel(true, total, P0.K * P0.M, range);
}

// ---- batches ----------------------------------------------------------------------------------------------------

struct Batched {
  Problem base;  // item 0
  int64_t strideA, strideB, strideC, batch;
  Problem item(int64_t i) const {
    Problem p = base;
    p.a.p += i * strideA;
    p.b.p += i * strideB;
    p.c += i * strideC;
    return p;
  }
};

// Many items split across threads whole (no packing is shared, so there is no synchronization); a few big
// items are run one after another, each using every thread. Overlapping outputs (strideC == 0 or smaller than
// one C) must be produced in order, so they never run in parallel.
void run_batched(const Batched& g, const KernelSet& ks) {
  const Problem& P = g.base;
  const int nt = rf::num_threads();
  const int64_t macs = P.M * P.N * std::max<int64_t>(P.K, 1);
  const bool disjoint = g.strideC >= P.M * P.N;
  const bool many = g.batch % nt == 0 || g.batch >= 4 * nt || macs < kParallelMacs;
  if (g.batch > 1 && nt > 1 && disjoint && many && macs * g.batch >= kParallelBatchMacs) {
    const int64_t grain = std::max<int64_t>(1, kParallelBatchMacs / 2 / macs);
    rf::parallel_for(g.batch, grain, [&](int64_t b0, int64_t b1) {
      for (int64_t i = b0; i < b1; ++i) run_product(g.item(i), ks, false);
    });
    return;
  }
  for (int64_t i = 0; i < g.batch; ++i) run_product(g.item(i), ks, true);
}

// AVX-512 when the CPU has it (unless RECURFORMER_SIMD=avx2), else AVX2, else the portable set (rf::pick).
const KernelSet& kernels() {
  static const KernelSet& ks = rf::pick(scalar_kernels(), &avx2_kernels(), avx512_kernels());
  return ks;
}

// ---- N-API ------------------------------------------------------------------------------------------------------

void throw_range(const Napi::Env& env, const std::string& msg) {
  Napi::RangeError::New(env, "recurformer native " + msg).ThrowAsJavaScriptException();
}

// Elements one operand needs: the last batch item's offset plus one item's extent.
int64_t needed(int64_t batch, int64_t stride, int64_t extent) { return (batch - 1) * stride + extent; }

// gemm(transA, transB, M, N, K, alpha, a, strideA, b, strideB, beta, c, strideC, batch)
Napi::Value Gemm(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  rf::ArgReader r(info, "gemm");
  const bool ta = r.num(0) != 0, tb = r.num(1) != 0;
  const int64_t M = r.i64(2), N = r.i64(3), K = r.i64(4);
  const double alpha = r.num(5);
  size_t la = 0, lb = 0, lc = 0;
  float* a = r.f32(6, &la);
  const int64_t sa = r.i64(7);
  float* b = r.f32(8, &lb);
  const int64_t sb = r.i64(9);
  const double beta = r.num(10);
  float* c = r.f32(11, &lc);
  const int64_t sc = r.i64(12), batch = r.i64(13);
  if (!r.ok) return env.Undefined();
  if (M < 0 || N < 0 || K < 0 || batch < 0 || sa < 0 || sb < 0 || sc < 0) {
    throw_range(env, "gemm: sizes, strides and batch must be non-negative");
    return env.Undefined();
  }
  if (M == 0 || N == 0 || batch == 0) return env.Undefined();
  if (needed(batch, sc, M * N) > static_cast<int64_t>(lc) ||
      (K > 0 && (needed(batch, sa, M * K) > static_cast<int64_t>(la) ||
                 needed(batch, sb, K * N) > static_cast<int64_t>(lb)))) {
    throw_range(env, "gemm: an operand is shorter than M, N, K, its stride and batch require");
    return env.Undefined();
  }
  Batched g;
  g.base.M = M;
  g.base.N = N;
  g.base.K = K;
  g.base.a = ta ? ViewF{a, 1, M} : ViewF{a, K, 1};
  g.base.b = tb ? ViewF{b, 1, K} : ViewF{b, N, 1};
  g.base.bh = ViewH{nullptr, 0, 0};
  g.base.c = c;
  g.base.ldc = N;
  g.base.alpha = static_cast<float>(alpha);
  g.base.beta = static_cast<float>(beta);
  g.strideA = sa;
  g.strideB = sb;
  g.strideC = sc;
  g.batch = batch;
  run_batched(g, kernels());
  return env.Undefined();
}

// gemmF16(M, N, K, a, w, beta, c): C (M, N) = A (M, K) . W^T + beta * C with W (N, K) in half precision.
Napi::Value GemmF16(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  rf::ArgReader r(info, "gemmF16");
  const int64_t M = r.i64(0), N = r.i64(1), K = r.i64(2);
  size_t la = 0, lw = 0, lc = 0;
  float* a = r.f32(3, &la);
  uint16_t* w = r.u16(4, &lw);
  const double beta = r.num(5);
  float* c = r.f32(6, &lc);
  if (!r.ok) return env.Undefined();
  if (M < 0 || N < 0 || K < 0) {
    throw_range(env, "gemmF16: sizes must be non-negative");
    return env.Undefined();
  }
  if (M * N > static_cast<int64_t>(lc) || M * K > static_cast<int64_t>(la) || N * K > static_cast<int64_t>(lw)) {
    throw_range(env, "gemmF16: an operand is shorter than M, N, K require");
    return env.Undefined();
  }
  Problem P;
  P.M = M;
  P.N = N;
  P.K = K;
  P.a = ViewF{a, K, 1};
  P.b = ViewF{nullptr, 1, K};
  P.bh = ViewH{w, 1, K};  // op(B)(k, j) = W[j, k]
  P.c = c;
  P.ldc = N;
  P.alpha = 1.0f;
  P.beta = static_cast<float>(beta);
  run_product(P, kernels(), true);
  return env.Undefined();
}

// gemmMulti(M, K, a, dtype, w0, n0, c0, w1, n1, c1, w2, n2, c2): C_i (M, N_i) = A (M, K) . W_i^T for every slot
// with N_i > 0; W_i (N_i, K) float32 (dtype 0) or F16 / BF16 bits (1 / 2).
Napi::Value GemmMulti(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  rf::ArgReader r(info, "gemmMulti");
  const int64_t M = r.i64(0), K = r.i64(1);
  size_t la = 0;
  float* a = r.f32(2, &la);
  const int dtype = static_cast<int>(r.i64(3));
  if (!r.ok) return env.Undefined();
  if (M < 0 || K < 0 || M * K > static_cast<int64_t>(la) || dtype < kF32 || dtype > kBF16) {
    throw_range(env, "gemmMulti: sizes must be non-negative, a at least M * K long, dtype 0, 1 or 2");
    return env.Undefined();
  }
  Part parts[3];
  int n = 0;
  for (int i = 0; i < 3; ++i) {
    const size_t at = 4 + 3 * i;
    const int64_t N = r.i64(at + 1);
    if (!r.ok) return env.Undefined();
    if (N == 0) continue;  // an unused slot: its arrays are not read
    size_t lw = 0, lc = 0;
    float* wf = nullptr;
    uint16_t* wh = nullptr;
    if (dtype == kF32)
      wf = r.f32(at, &lw);
    else
      wh = r.u16(at, &lw);
    float* c = r.f32(at + 2, &lc);
    if (!r.ok) return env.Undefined();
    if (N < 0 || N * K > static_cast<int64_t>(lw) || M * N > static_cast<int64_t>(lc)) {
      throw_range(env, "gemmMulti: weight " + std::to_string(i) + " or its output is shorter than N, K, M require");
      return env.Undefined();
    }
    if (M == 0) continue;
    Part& q = parts[n++];
    q.P.M = M;
    q.P.N = N;
    q.P.K = K;
    q.P.a = ViewF{a, K, 1};
    q.P.b = ViewF{wf, 1, K};
    q.P.bh = ViewH{dtype == kF16 ? wh : nullptr, 1, K};
    q.P.c = c;
    q.P.ldc = N;
    q.P.alpha = 1.0f;
    q.P.beta = 0.0f;
    q.bf = dtype == kBF16 ? wh : nullptr;
  }
  if (n == 0) return env.Undefined();
  const KernelSet& ks = kernels();
  if (K == 0) {
    for (int i = 0; i < n; ++i) scale_c(parts[i].P);
  } else if (M <= kSmallM) {
    run_multi(parts, n, ks);
  } else {
    for (int i = 0; i < n; ++i) {
      if (parts[i].bf) {
        const Part& q = parts[i];
        rf::parallel_for(q.P.N, 64, [&](int64_t b, int64_t e) { rf::bf16_rows(b, e, M, K, a, q.bf, 0.0f, q.P.c, q.P.N); });
      } else {
        run_product(parts[i].P, ks, true);
      }
    }
  }
  return env.Undefined();
}

// Conversions are memory-bound; large arrays use both cores because one core cannot saturate the memory bus.
template <typename S, typename D>
void convert(const S* src, D* dst, int64_t n, void (*fn)(const S*, D*, int64_t)) {
  constexpr int64_t kGrain = int64_t(1) << 16;
  if (n < 2 * kGrain) return fn(src, dst, n);
  rf::parallel_for(n, kGrain, [&](int64_t b, int64_t e) { fn(src + b, dst + b, e - b); });
}

// f32ToF16(src, dst): dst[i] = half(src[i]) for i < src.length, round to nearest even.
Napi::Value F32ToF16(const Napi::CallbackInfo& info) {
  rf::ArgReader r(info, "f32ToF16");
  size_t ls = 0, ld = 0;
  float* s = r.f32(0, &ls);
  uint16_t* d = r.u16(1, &ld);
  if (!r.ok) return info.Env().Undefined();
  if (ld < ls) {
    throw_range(info.Env(), "f32ToF16: dst is shorter than src");
    return info.Env().Undefined();
  }
  convert(s, d, static_cast<int64_t>(ls), kernels().f32_to_f16);
  return info.Env().Undefined();
}

// f16ToF32(src, dst): dst[i] = float(src[i]) for i < src.length.
Napi::Value F16ToF32(const Napi::CallbackInfo& info) {
  rf::ArgReader r(info, "f16ToF32");
  size_t ls = 0, ld = 0;
  uint16_t* s = r.u16(0, &ls);
  float* d = r.f32(1, &ld);
  if (!r.ok) return info.Env().Undefined();
  if (ld < ls) {
    throw_range(info.Env(), "f16ToF32: dst is shorter than src");
    return info.Env().Undefined();
  }
  convert(s, d, static_cast<int64_t>(ls), kernels().f16_to_f32);
  return info.Env().Undefined();
}

// gemmInfo() -> { isa, mr, nr, mc, kc, nc }: the kernel set the packed GEMM uses and its blocking.
Napi::Value GemmInfo(const Napi::CallbackInfo& info) {
  const KernelSet& ks = kernels();
  const Blocking bl = blocking(ks);
  Napi::Object o = Napi::Object::New(info.Env());
  o.Set("isa", ks.name);
  o.Set("mr", ks.mr);
  o.Set("nr", ks.nr);
  o.Set("mc", static_cast<double>(bl.mc));
  o.Set("kc", static_cast<double>(bl.kc));
  o.Set("nc", static_cast<double>(bl.nc));
  return o;
}

}  // namespace

void register_gemm(Napi::Env env, Napi::Object exports) {
  rf::export_fn<GemmInfo>(env, exports, "gemmInfo");
  rf::export_fn<Gemm>(env, exports, "gemm");
  rf::export_fn<GemmF16>(env, exports, "gemmF16");
  rf::export_fn<GemmMulti>(env, exports, "gemmMulti");
  rf::export_fn<F32ToF16>(env, exports, "f32ToF16");
  rf::export_fn<F16ToF32>(env, exports, "f16ToF32");
}
