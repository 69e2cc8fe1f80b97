// Runtime services shared by all kernels: CPU feature detection, the persistent thread pool, half floats.
#include "common.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

namespace rf {

// ---- CPU features --------------------------------------------------------------------------------------------
static bool detect_avx2() {
  const char* env = std::getenv("RECURFORMER_SIMD");
  if (env && std::strcmp(env, "scalar") == 0) return false;
#if RF_X86
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c");
#else
  return false;
#endif
}

bool has_avx2() {
  static const bool v = detect_avx2();
  return v;
}

const char* simd_name() { return has_avx2() ? "avx2" : "scalar"; }

// ---- thread pool ---------------------------------------------------------------------------------------------
// Workers wait for a new "generation"; workers spin briefly before sleeping so back-to-back kernels (a decode step
// issues dozens) do not pay a futex wake-up each time. A generation is one of two kinds of job:
//   strict (parallel_run): one task on every thread, the caller included, all of them running at once (the packed
//     GEMM meets at barriers inside it). The caller waits until every worker has run it.
//   claimed (parallel_claim, and parallel_for on top of it): independent items taken from a shared counter by
//     whichever threads arrive. The caller takes items too, and once none are left it closes the job and waits
//     only for the workers that joined before that: a worker the OS has not scheduled yet (another process on its
//     core) is skipped instead of waited for. On a shared 2-core host that wait used to be a scheduler time slice
//     per kernel call, dozens of times per decoded token.
namespace {

constexpr int64_t kClosed = INT64_MIN / 2;  // gate value once a claimed job stops admitting workers

struct Pool {
  std::vector<std::thread> workers;
  std::mutex mu;
  std::condition_variable cv;
  // (job number << 1) | kind, kind 1 = claimed: a worker learns which job and what kind of job from one load. (A
  // separate kind flag let a worker that read a claimed generation late see the flag of the next, strict job before
  // that job was published, run its task early, and later run a task pointer that was already gone.)
  std::atomic<uint64_t> generation{0};
  uint64_t jobs = 0;  // jobs published so far (the caller's thread only)
  int nthreads = 1;
  bool stop = false;
  // RECURFORMER_POOL_TEST_DELAY_US (tests only): a worker sleeps this long between seeing a new job and acting on
  // it, and the caller as long before publishing a job it has set up, which widens every window in which one side
  // moves on without the other (test/native/pool.test.ts).
  int test_delay_us = 0;
  // strict jobs
  std::atomic<int> remaining{0};
  const std::function<void(int, int)>* task = nullptr;
  // claimed jobs: items [0, items) handed out by `next`; `gate` counts the workers that joined (negative once
  // closed), `done` the joined workers that have finished
  const std::function<void(int64_t, int)>* item_task = nullptr;
  int64_t items = 0;
  std::atomic<int64_t> next{0};
  std::atomic<int64_t> gate{kClosed};
  std::atomic<int64_t> done{0};

  void start(int n) {
    nthreads = n < 1 ? 1 : n;
    const char* delay = std::getenv("RECURFORMER_POOL_TEST_DELAY_US");
    test_delay_us = delay ? std::atoi(delay) : 0;
    // New workers must treat the current generation as already seen: after set_num_threads restarts the
    // pool the counter is non-zero, and a worker starting from 0 would run a task that does not exist.
    const uint64_t current = generation.load(std::memory_order_acquire);
    for (int t = 1; t < nthreads; ++t) workers.emplace_back([this, t, current] { loop(t, current); });
  }

  void shutdown() {
    {
      std::lock_guard<std::mutex> lk(mu);
      stop = true;
      generation.store(++jobs << 1, std::memory_order_release);
    }
    cv.notify_all();
    for (auto& w : workers) w.join();
    workers.clear();
    stop = false;
  }

  // Takes items until none are left.
  void drain(int tid) {
    for (;;) {
      const int64_t i = next.fetch_add(1, std::memory_order_relaxed);
      if (i >= items) return;
      (*item_task)(i, tid);
    }
  }

  void loop(int tid, uint64_t seen) {
    for (;;) {
      uint64_t g = generation.load(std::memory_order_acquire);
      int spins = 0;
      while (g == seen && spins < 20000) {
#if RF_X86
        __builtin_ia32_pause();
#endif
        ++spins;
        g = generation.load(std::memory_order_acquire);
      }
      if (g == seen) {
        std::unique_lock<std::mutex> lk(mu);
        cv.wait(lk, [&] { return generation.load(std::memory_order_acquire) != seen; });
        g = generation.load(std::memory_order_acquire);
      }
      if (stop) return;
      if (test_delay_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(test_delay_us));
      seen = g;
      if ((g & 1) == 0) {
        // A strict job cannot be replaced before this worker has run it, so g is the current job and `task` its task.
        (*task)(tid, nthreads);
        remaining.fetch_sub(1, std::memory_order_acq_rel);
        continue;
      }
      // Join the claimed job that is open now (possibly a newer one than g: joining it is just as valid, and a
      // second join of the same job finds no items left). Closed: nothing to do, and nothing of the job is read.
      if (gate.fetch_add(1, std::memory_order_acq_rel) < 0) continue;
      drain(tid);
      done.fetch_add(1, std::memory_order_acq_rel);
    }
  }

  void publish(bool is_claimed) {
    if (test_delay_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(test_delay_us));
    {
      std::lock_guard<std::mutex> lk(mu);
      generation.store((++jobs << 1) | (is_claimed ? 1 : 0), std::memory_order_release);
    }
    cv.notify_all();
  }

  void run(const std::function<void(int, int)>& fn) {
    if (nthreads == 1) {
      fn(0, 1);
      return;
    }
    task = &fn;
    remaining.store(nthreads - 1, std::memory_order_release);
    publish(false);
    fn(0, nthreads);
    while (remaining.load(std::memory_order_acquire) != 0) {
#if RF_X86
      __builtin_ia32_pause();
#endif
    }
    task = nullptr;
  }

  void run_claimed(int64_t n, const std::function<void(int64_t, int)>& fn) {
    if (nthreads == 1 || n <= 1) {
      for (int64_t i = 0; i < n; ++i) fn(i, 0);
      return;
    }
    item_task = &fn;
    items = n;
    next.store(0, std::memory_order_relaxed);
    done.store(0, std::memory_order_relaxed);
    gate.store(0, std::memory_order_release);  // opens the job: everything above is visible to whoever joins
    publish(true);
    drain(0);
    // No item is left to start; stop admitting workers and wait for those that joined (they may still be running
    // their last item).
    const int64_t joined = gate.exchange(kClosed, std::memory_order_acq_rel);
    while (done.load(std::memory_order_acquire) != joined) {
#if RF_X86
      __builtin_ia32_pause();
#endif
    }
    item_task = nullptr;
  }
};

int default_threads() {
  const char* env = std::getenv("RECURFORMER_THREADS");
  if (env) {
    int n = std::atoi(env);
    if (n > 0) return n;
  }
  unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

Pool& pool() {
  static Pool* p = [] {
    Pool* q = new Pool();  // intentionally leaked: workers must outlive static destructors at exit
    q->start(default_threads());
    return q;
  }();
  return *p;
}

thread_local bool in_parallel = false;

}  // namespace

int num_threads() { return pool().nthreads; }

void set_num_threads(int n) {
  Pool& p = pool();
  if (n < 1) n = 1;
  if (n == p.nthreads) return;
  p.shutdown();
  p.start(n);
}

void parallel_run(const std::function<void(int, int)>& fn) {
  if (in_parallel) {
    fn(0, 1);
    return;
  }
  std::function<void(int, int)> wrapped = [&](int tid, int nt) {
    in_parallel = true;
    fn(tid, nt);
    in_parallel = false;
  };
  pool().run(wrapped);
}

void parallel_claim(int64_t n, const std::function<void(int64_t, int)>& fn) {
  if (n <= 0) return;
  if (in_parallel) {
    for (int64_t i = 0; i < n; ++i) fn(i, 0);
    return;
  }
  std::function<void(int64_t, int)> wrapped = [&](int64_t item, int tid) {
    in_parallel = true;
    fn(item, tid);
    in_parallel = false;
  };
  pool().run_claimed(n, wrapped);
}

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  int nt = in_parallel ? 1 : num_threads();
  int64_t max_chunks = (n + grain - 1) / grain;
  if (nt <= 1 || max_chunks <= 1) {
    fn(0, n);
    return;
  }
  // the same static ranges as one chunk per thread, but claimed: a thread that is not running takes none
  const int64_t chunks = nt < max_chunks ? nt : max_chunks;
  parallel_claim(chunks, [&](int64_t c, int) {
    const int64_t begin = n * c / chunks, end = n * (c + 1) / chunks;
    if (begin < end) fn(begin, end);
  });
}

// ---- half precision --------------------------------------------------------------------------------------------
float half_to_float(uint16_t h) {
  uint32_t sign = static_cast<uint32_t>(h & 0x8000) << 16;
  uint32_t exp = (h >> 10) & 0x1f;
  uint32_t mant = h & 0x3ff;
  uint32_t bits;
  if (exp == 0) {
    if (mant == 0) {
      bits = sign;
    } else {  // subnormal: renormalize
      int e = -1;
      do {
        ++e;
        mant <<= 1;
      } while ((mant & 0x400) == 0);
      bits = sign | static_cast<uint32_t>(127 - 15 - e) << 23 | (mant & 0x3ff) << 13;
    }
  } else if (exp == 31) {
    bits = sign | 0x7f800000u | mant << 13;
  } else {
    bits = sign | (exp + 112) << 23 | mant << 13;
  }
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

uint16_t float_to_half(float f) {
  uint32_t x;
  std::memcpy(&x, &f, 4);
  uint32_t sign = (x >> 16) & 0x8000;
  uint32_t absx = x & 0x7fffffff;
  if (absx >= 0x7f800000u) {  // inf or nan
    return static_cast<uint16_t>(sign | 0x7c00 | (absx > 0x7f800000u ? 0x200 | ((absx >> 13) & 0x3ff) : 0));
  }
  if (absx >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00);  // rounds to inf
  if (absx < 0x38800000u) {                                             // subnormal or zero in half
    if (absx < 0x33000000u) return static_cast<uint16_t>(sign);         // below half of the smallest subnormal
    uint32_t e = absx >> 23;
    uint32_t m = (absx & 0x7fffff) | 0x800000;
    uint32_t shift = 126 - e;  // 14 - (e - 127) + 13 - 1 ... total right shift to land in 10 mantissa bits
    uint32_t r = m >> shift;
    uint32_t rem = m & ((1u << shift) - 1);
    uint32_t half = 1u << (shift - 1);
    if (rem > half || (rem == half && (r & 1))) ++r;
    return static_cast<uint16_t>(sign | r);
  }
  uint32_t r = absx - 0x38000000u;  // rebias exponent 127 -> 15
  uint32_t out = r >> 13;
  uint32_t rem = r & 0x1fff;
  if (rem > 0x1000 || (rem == 0x1000 && (out & 1))) ++out;
  return static_cast<uint16_t>(sign | out);
}

}  // namespace rf
