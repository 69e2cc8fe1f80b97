// Runtime services shared by all kernels: CPU feature detection, the persistent thread pool, half floats.
#include "common.h"

#include <atomic>
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
// Workers wait for a new "generation"; each generation runs one task on every thread, the caller included.
// Workers spin briefly before sleeping so back-to-back kernels (a decode step issues dozens) do not pay a
// futex wake-up each time.
namespace {

struct Pool {
  std::vector<std::thread> workers;
  std::mutex mu;
  std::condition_variable cv;
  std::atomic<uint64_t> generation{0};
  std::atomic<int> remaining{0};
  const std::function<void(int, int)>* task = nullptr;
  int nthreads = 1;
  bool stop = false;

  void start(int n) {
    nthreads = n < 1 ? 1 : n;
    // New workers must treat the current generation as already seen: after set_num_threads restarts the
    // pool the counter is non-zero, and a worker starting from 0 would run a task that does not exist.
    const uint64_t current = generation.load(std::memory_order_acquire);
    for (int t = 1; t < nthreads; ++t) workers.emplace_back([this, t, current] { loop(t, current); });
  }

  void shutdown() {
    {
      std::lock_guard<std::mutex> lk(mu);
      stop = true;
      generation.fetch_add(1);
    }
    cv.notify_all();
    for (auto& w : workers) w.join();
    workers.clear();
    stop = false;
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
      seen = g;
      if (stop) return;
      (*task)(tid, nthreads);
      remaining.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  void run(const std::function<void(int, int)>& fn) {
    if (nthreads == 1) {
      fn(0, 1);
      return;
    }
    task = &fn;
    remaining.store(nthreads - 1, std::memory_order_release);
    {
      std::lock_guard<std::mutex> lk(mu);
      generation.fetch_add(1, std::memory_order_acq_rel);
    }
    cv.notify_all();
    fn(0, nthreads);
    while (remaining.load(std::memory_order_acquire) != 0) {
#if RF_X86
      __builtin_ia32_pause();
#endif
    }
    task = nullptr;
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

void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  int nt = in_parallel ? 1 : num_threads();
  int64_t max_chunks = (n + grain - 1) / grain;
  if (nt <= 1 || max_chunks <= 1) {
    fn(0, n);
    return;
  }
  parallel_run([&](int tid, int nthreads) {
    int64_t chunks = nthreads < max_chunks ? nthreads : max_chunks;
    if (tid >= chunks) return;
    int64_t begin = n * tid / chunks, end = n * (tid + 1) / chunks;
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
