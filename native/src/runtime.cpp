// Runtime services shared by all kernels: instruction-set detection, scratch memory, the binding guard, the
// persistent thread pool, half floats.
#include "common.h"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <mutex>
#include <thread>
#include <vector>

// Waiting threads sleep on futexes on Linux; elsewhere (or built with -DRF_PORTABLE_WAIT, to test that path) on a
// mutex and condition variable.
#if defined(__linux__) && !defined(RF_PORTABLE_WAIT)
#define RF_FUTEX 1
#else
#define RF_FUTEX 0
#endif
#if RF_X86
#include <cpuid.h>
#endif
#if defined(__linux__)
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace rf {

// ---- instruction sets ------------------------------------------------------------------------------------------
// RECURFORMER_SIMD=v (scalar, avx2 or avx512: where the instruction sets stop).
static bool simd_env_is(const char* v) {
  const char* env = std::getenv("RECURFORMER_SIMD");
  return env && std::strcmp(env, v) == 0;
}

static Isa detect_isa() {
  if (simd_env_is("scalar")) return Isa::kScalar;
#if RF_X86
  __builtin_cpu_init();
  if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c")))
    return Isa::kScalar;
  // libgcc reports avx512f only when the OS saves zmm state (XCR0), so the kernels may use it.
  if (!simd_env_is("avx2") && __builtin_cpu_supports("avx512f")) return Isa::kAvx512;
  return Isa::kAvx2;
#else
  return Isa::kScalar;
#endif
}

Isa cpu_isa() {
  static const Isa v = detect_isa();
  return v;
}

const char* simd_name() { return cpu_isa() >= Isa::kAvx2 ? "avx2" : "scalar"; }

bool cpu_has_avx512_vnni() {
#if RF_X86
  static const bool v = cpu_isa() >= Isa::kAvx512 && __builtin_cpu_supports("avx512vnni") &&
                        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bw");
  return v;
#else
  return false;
#endif
}

bool cpu_has_amx_int8() {
#if RF_X86 && defined(__linux__)
  static const bool v = [] {
    if (!cpu_has_avx512_vnni()) return false;  // (RECURFORMER_SIMD=avx2 or scalar)
    if (simd_env_is("avx512")) return false;
    unsigned a = 0, b = 0, c = 0, d = 0;
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d) || !((d >> 24) & 1) || !((d >> 25) & 1)) return false;  // AMX-TILE, -INT8
    unsigned lo = 0, hi = 0;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if (((lo >> 17) & 3) != 3) return false;  // the OS saves the tile state (XTILECFG, XTILEDATA)
    // Linux hands the (8 KB) tile data state out per process on request: ARCH_REQ_XCOMP_PERM for XFEATURE_XTILEDATA
    return syscall(SYS_arch_prctl, 0x1023, 18) == 0;
  }();
  return v;
#else
  return false;
#endif
}

// ---- scratch memory --------------------------------------------------------------------------------------------
ScratchError::ScratchError(size_t bytes) : bytes_(bytes) {
  std::snprintf(msg_, sizeof(msg_), "out of memory: a %.1f MiB scratch buffer could not be allocated",
                static_cast<double>(bytes) / (1024.0 * 1024.0));
}

// RECURFORMER_SCRATCH_TEST_LIMIT (tests): requests above this many bytes fail; 0 = no limit.
static size_t scratch_test_limit() {
  static const size_t limit = [] {
    const char* env = std::getenv("RECURFORMER_SCRATCH_TEST_LIMIT");
    return env && *env ? static_cast<size_t>(std::strtoull(env, nullptr, 10)) : size_t(0);
  }();
  return limit;
}

void* scratch_alloc(size_t bytes) {
  const size_t limit = scratch_test_limit();
  if (limit > 0 && bytes > limit) throw ScratchError(bytes);
  // aligned_alloc wants a multiple of the alignment; the check also rejects sizes that would wrap around
  if (bytes > SIZE_MAX - 64) throw ScratchError(bytes);
  const size_t rounded = (bytes + 63) / 64 * 64;
  void* p = std::aligned_alloc(64, rounded == 0 ? 64 : rounded);
  if (!p) throw ScratchError(bytes);
  std::memset(p, 0, rounded);
  return p;
}

void scratch_free(void* p) noexcept { std::free(p); }

// ---- binding guard ---------------------------------------------------------------------------------------------
Napi::Value throw_js(const Napi::CallbackInfo& info, std::exception_ptr e) {
  Napi::Env env = info.Env();
  const char* name = static_cast<const char*>(info.Data());
  std::string what;
  try {
    std::rethrow_exception(e);
  } catch (const ScratchError& x) {
    what = x.what();
  } catch (const std::bad_alloc&) {
    what = "out of memory: a temporary buffer could not be allocated";
  } catch (const std::exception& x) {
    what = x.what();
  } catch (...) {
    what = "unknown C++ exception";
  }
  // a JS exception already pending (an argument error raised before the C++ one) is the one the caller sees
  if (!env.IsExceptionPending()) {
    Napi::Error::New(env, std::string("recurformer native ") + (name ? name : "addon") + ": " + what)
        .ThrowAsJavaScriptException();
  }
  return env.Undefined();
}

// ---- waiting ---------------------------------------------------------------------------------------------------
namespace {

inline void cpu_relax() {
#if RF_X86
  __builtin_ia32_pause();
#elif defined(__aarch64__)
  asm volatile("yield");
#endif
}

// Spin budget of Event::wait in nanoseconds; Pool::start sets it (0 when the pool has more threads than cores).
std::atomic<int64_t> g_spin_ns{0};

// RECURFORMER_POOL_SPIN_US (microseconds, 0: sleep at once) when set, for every pool size; otherwise 20 us, or none
// when the pool has more threads than cores: then some thread is always off a core, and a spinning waiter only
// delays it.
int64_t spin_ns_for(int nthreads, int cores) {
  const char* env = std::getenv("RECURFORMER_POOL_SPIN_US");
  if (env && *env) {
    const double us = std::atof(env);
    return us > 0 ? static_cast<int64_t>(us * 1000) : 0;
  }
  return nthreads > cores ? 0 : 20000;
}

// Cores this process may run on (its affinity mask), which may be fewer than the machine has.
int available_cores() {
#if defined(__linux__)
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
#endif
  const unsigned hc = std::thread::hardware_concurrency();
  return hc == 0 ? 1 : static_cast<int>(hc);
}

#if RF_FUTEX
static_assert(sizeof(std::atomic<uint32_t>) == sizeof(uint32_t), "a futex word is a plain 32-bit integer");

// Sleeps while *word == expected (the kernel compares and queues atomically); returns on a wake-up, a signal, or
// at once when the word already differs. The caller re-checks its condition in every case.
void sleep_while(std::atomic<uint32_t>* word, uint32_t expected) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, nullptr, nullptr, 0);
}
void wake_all(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr, nullptr, 0);
}
#else
// One mutex and condition variable for every word: the word changes before wake_all takes the mutex, and
// sleep_while checks it under the mutex, so no wake-up is lost; the few extra wake-ups are harmless. Leaked like
// the pool: workers still sleep on them while static destructors run at exit.
struct Sleep {
  std::mutex mu;
  std::condition_variable cv;
};
Sleep& sleep_state() {
  static Sleep* s = new Sleep();
  return *s;
}
void sleep_while(std::atomic<uint32_t>* word, uint32_t expected) {
  Sleep& s = sleep_state();
  std::unique_lock<std::mutex> lk(s.mu);
  if (word->load(std::memory_order_acquire) == expected) s.cv.wait(lk);
}
void wake_all(std::atomic<uint32_t>*) {
  Sleep& s = sleep_state();
  std::lock_guard<std::mutex> lk(s.mu);
  s.cv.notify_all();
}
#endif

}  // namespace

void Event::wait(uint32_t seen) {
  const int64_t budget = g_spin_ns.load(std::memory_order_relaxed);
  if (budget > 0) {
    // The clock is read once per 16 pauses (a pause takes 10-150 cycles depending on the CPU), so the bound is a
    // time, not an iteration count.
    const auto start = std::chrono::steady_clock::now();
    for (;;) {
      for (int i = 0; i < 16; ++i) {
        if (value() != seen) return;
        cpu_relax();
      }
      if (std::chrono::steady_clock::now() - start >= std::chrono::nanoseconds(budget)) break;
    }
  }
  for (;;) {
    uint32_t cur = word_.load(std::memory_order_acquire);
    if ((cur & kCount) != seen) return;
    // Announce the sleeper in the word itself: a bump() after this sees the flag and wakes; one before it made
    // the exchange fail (the count changed), and the loop returns.
    if (!(cur & kSleepers) &&
        !word_.compare_exchange_weak(cur, cur | kSleepers, std::memory_order_acq_rel, std::memory_order_acquire))
      continue;
    sleep_while(&word_, cur | kSleepers);
  }
}

void Event::bump() {
  uint32_t old = word_.load(std::memory_order_relaxed);
  while (!word_.compare_exchange_weak(old, (old + 1) & kCount, std::memory_order_acq_rel, std::memory_order_relaxed)) {
  }
  if (old & kSleepers) wake_all(&word_);
}

// ---- thread pool ---------------------------------------------------------------------------------------------
// Workers wait for a new "generation" on the Event `posted`: a short spin, so that back-to-back kernels (a decode
// step issues dozens) do not pay a wake-up each time, then a sleep. A generation is one of two kinds of job:
//   strict (parallel_run): one task on every thread, the caller included, all of them running at once (the packed
//     GEMM meets at barriers inside it). The caller waits until every worker has run it.
//   claimed (parallel_claim, and parallel_for on top of it): independent items taken from a shared counter by
//     whichever threads arrive. The caller takes items too, and once none are left it closes the job and waits
//     only for the workers that joined before that: a worker the OS has not scheduled yet (another process on its
//     core) is skipped instead of waited for. On a shared 2-core host that wait used to be a scheduler time slice
//     per kernel call, dozens of times per decoded token.
// The caller waits for workers on the Event `finished` (bumped by the last worker of a strict job, by every worker
// of a claimed job), again spinning briefly and then sleeping: a caller that spun without bound kept the core that
// a descheduled worker needed, and a pool with more threads than free cores ran several times slower.
// A task that throws is caught on its thread; the first exception of a job is kept and rethrown on the calling thread
// after the job, once no thread runs any part of it (a claimed job starts no further items once one has thrown).
namespace {

constexpr int64_t kClosed = INT64_MIN / 2;  // gate value once a claimed job stops admitting workers

struct Pool {
  std::vector<std::thread> workers;
  // (job number << 1) | kind, kind 1 = claimed: a worker learns which job and what kind of job from one load. (A
  // separate kind flag let a worker that read a claimed generation late see the flag of the next, strict job before
  // that job was published, run its task early, and later run a task pointer that was already gone.)
  std::atomic<uint64_t> generation{0};
  Event posted;    // bumped after every change of `generation`
  Event finished;  // bumped when a worker finishes its part of a job
  uint64_t jobs = 0;  // jobs published so far (the caller's thread only)
  int nthreads = 1;
  std::atomic<bool> stop{false};
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
  // the first exception a task of the current job threw, on any thread
  std::mutex error_mu;
  std::exception_ptr error;

  void record(std::exception_ptr e) {
    std::lock_guard<std::mutex> lk(error_mu);
    if (!error) error = e;
  }

  // Rethrows (and clears) the job's exception; the caller's thread only, after the job.
  void rethrow_error() {
    std::exception_ptr e;
    {
      std::lock_guard<std::mutex> lk(error_mu);
      e = error;
      error = nullptr;
    }
    if (e) std::rethrow_exception(e);
  }

  void start(int n) {
    nthreads = n < 1 ? 1 : n;
    const char* delay = std::getenv("RECURFORMER_POOL_TEST_DELAY_US");
    test_delay_us = delay ? std::atoi(delay) : 0;
    g_spin_ns.store(spin_ns_for(nthreads, available_cores()), std::memory_order_relaxed);
    // New workers must treat the current generation as already seen: after set_num_threads restarts the
    // pool the counter is non-zero, and a worker starting from 0 would run a task that does not exist.
    const uint64_t current = generation.load(std::memory_order_acquire);
    for (int t = 1; t < nthreads; ++t) workers.emplace_back([this, t, current] { loop(t, current); });
  }

  void shutdown() {
    stop.store(true, std::memory_order_relaxed);
    generation.store(++jobs << 1, std::memory_order_release);
    posted.bump();
    for (auto& w : workers) w.join();
    workers.clear();
    stop.store(false, std::memory_order_relaxed);
  }

  // Takes items until none are left (or one has thrown: then no thread starts another).
  void drain(int tid) {
    for (;;) {
      const int64_t i = next.fetch_add(1, std::memory_order_relaxed);
      if (i >= items) return;
      try {
        (*item_task)(i, tid);
      } catch (...) {
        record(std::current_exception());
        next.store(items, std::memory_order_relaxed);
        return;
      }
    }
  }

  void loop(int tid, uint64_t seen) {
    for (;;) {
      uint64_t g = generation.load(std::memory_order_acquire);
      while (g == seen) {
        // The count is read before the generation is checked, so a job published after the check changes it.
        const uint32_t ev = posted.value();
        g = generation.load(std::memory_order_acquire);
        if (g != seen) break;
        posted.wait(ev);
        g = generation.load(std::memory_order_acquire);
      }
      if (stop.load(std::memory_order_relaxed)) return;
      if (test_delay_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(test_delay_us));
      seen = g;
      if ((g & 1) == 0) {
        // A strict job cannot be replaced before this worker has run it, so g is the current job and `task` its task.
        try {
          (*task)(tid, nthreads);
        } catch (...) {
          record(std::current_exception());
        }
        if (remaining.fetch_sub(1, std::memory_order_acq_rel) == 1) finished.bump();
        continue;
      }
      // Join the claimed job that is open now (possibly a newer one than g: joining it is just as valid, and a
      // second join of the same job finds no items left). Closed: nothing to do, and nothing of the job is read.
      if (gate.fetch_add(1, std::memory_order_acq_rel) < 0) continue;
      drain(tid);
      done.fetch_add(1, std::memory_order_acq_rel);
      finished.bump();  // the caller may wait for this worker (only the caller knows how many joined)
    }
  }

  void publish(bool is_claimed) {
    if (test_delay_us > 0) std::this_thread::sleep_for(std::chrono::microseconds(test_delay_us));
    generation.store((++jobs << 1) | (is_claimed ? 1 : 0), std::memory_order_release);
    posted.bump();
  }

  // Waits until ready() holds; each worker that may make it hold bumps `finished` afterwards.
  template <typename Ready>
  void wait_finished(Ready ready) {
    for (;;) {
      const uint32_t ev = finished.value();
      if (ready()) return;
      finished.wait(ev);
    }
  }

  void run(const std::function<void(int, int)>& fn) {
    if (nthreads == 1) {
      fn(0, 1);
      return;
    }
    task = &fn;
    remaining.store(nthreads - 1, std::memory_order_release);
    publish(false);
    try {
      fn(0, nthreads);
    } catch (...) {
      record(std::current_exception());  // the workers still run `fn`: wait for them before unwinding its frame
    }
    wait_finished([&] { return remaining.load(std::memory_order_acquire) == 0; });
    task = nullptr;
    rethrow_error();
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
    wait_finished([&] { return done.load(std::memory_order_acquire) == joined; });
    item_task = nullptr;
    rethrow_error();
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

// Marks the thread as inside a parallel task for a scope (cleared again when the task throws).
struct InParallel {
  InParallel() { in_parallel = true; }
  ~InParallel() { in_parallel = false; }
};

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
    InParallel inside;
    fn(tid, nt);
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
    InParallel inside;
    fn(item, tid);
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
