// Shared helpers for every kernel file: argument extraction with typed errors, SIMD dispatch, the thread pool.
#pragma once
#include <napi.h>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define RF_X86 1
// Marks a function compiled for AVX2 + FMA + F16C; call it only when rf::has_avx2() is true.
#define RF_AVX2 __attribute__((target("avx2,fma,f16c")))
#include <immintrin.h>
#else
#define RF_X86 0
#define RF_AVX2
#endif

namespace rf {

// ---- run-time CPU features -------------------------------------------------------------------------------
// True when the CPU has AVX2, FMA and F16C and RECURFORMER_SIMD is not "scalar".
bool has_avx2();
const char* simd_name();

// ---- waiting ---------------------------------------------------------------------------------------------
// A counter that threads wait on until it changes. A waiter spins for a short bounded time (20 us; none when the pool
// has more threads than the process has cores; RECURFORMER_POOL_SPIN_US overrides), then sleeps in the kernel: a
// futex on Linux, one shared mutex and condition variable elsewhere. bump() makes a system call only when a thread
// sleeps on the counter (a flag bit in the same word says so), so back-to-back hand-offs between threads that are
// all running stay in user space, while a thread that waits for one the OS has not scheduled gives its core away
// instead of burning it (a pool with more threads than free cores spent most of its time spinning).
class Event {
 public:
  // The current count; read it before checking the condition it signals, then wait(count) if not yet true.
  uint32_t value() const { return word_.load(std::memory_order_acquire) & kCount; }
  // Returns once the count differs from `seen` (spinning first, then sleeping).
  void wait(uint32_t seen);
  // Adds one to the count (a release) and wakes every thread sleeping on it.
  void bump();

 private:
  static constexpr uint32_t kSleepers = 0x80000000u, kCount = 0x7fffffffu;
  std::atomic<uint32_t> word_{0};
};

// A reusable barrier for the threads of one parallel_run (the packed GEMM meets at one per packed panel): the last
// thread to arrive releases the others through an Event, so waiters spin briefly, then sleep.
class Barrier {
 public:
  void wait(int n) {
    if (n <= 1) return;
    const uint32_t ph = phase_.value();
    if (arrived_.fetch_add(1, std::memory_order_acq_rel) == n - 1) {
      arrived_.store(0, std::memory_order_relaxed);  // published to the waiters by the release in bump()
      phase_.bump();
      return;
    }
    phase_.wait(ph);
  }

 private:
  std::atomic<int> arrived_{0};
  Event phase_;
};

// ---- thread pool -----------------------------------------------------------------------------------------
// A persistent pool sized to the cores (RECURFORMER_THREADS overrides); the calling thread takes part. Idle workers
// and a caller waiting for workers wait on Events (above): bounded spinning, then sleep.
int num_threads();
void set_num_threads(int n);
// Runs fn(tid, nthreads) once on each of nthreads threads (tid 0 is the caller) and waits for all of them.
// Nested calls from inside a task run serially on the calling thread.
void parallel_run(const std::function<void(int tid, int nthreads)>& fn);
// Runs fn(item, tid) once for every item in [0, n), items handed out in order from a shared counter to whichever
// threads are running (tid: the pool thread, 0 for the caller; a thread runs its items one after another). The
// caller does not wait for a worker that has not started, so a worker descheduled by other load costs nothing.
void parallel_claim(int64_t n, const std::function<void(int64_t item, int tid)>& fn);
// Splits [0, n) into contiguous ranges of at least `grain` items (at most one per thread) and runs fn(begin, end)
// on them in parallel (through parallel_claim: any thread may take any range).
void parallel_for(int64_t n, int64_t grain, const std::function<void(int64_t begin, int64_t end)>& fn);

// ---- argument extraction ---------------------------------------------------------------------------------
// Each throws a JS TypeError naming the kernel and the argument position when the type is wrong.
struct ArgReader {
  const Napi::CallbackInfo& info;
  const char* kernel;
  bool ok = true;
  ArgReader(const Napi::CallbackInfo& i, const char* k) : info(i), kernel(k) {}
  void fail(size_t idx, const char* what) {
    if (!ok) return;
    ok = false;
    std::string msg = std::string("recurformer native ") + kernel + ": argument " + std::to_string(idx) +
                      " must be " + what;
    Napi::TypeError::New(info.Env(), msg).ThrowAsJavaScriptException();
  }
  // One napi_get_typedarray_info call per array (plus the type check): decode issues dozens of tiny kernels per
  // token, so argument reading is a visible part of their cost.
  void* typed(size_t idx, napi_typedarray_type want, const char* what, size_t* len) {
    if (len) *len = 0;
    if (idx >= info.Length()) {
      fail(idx, what);
      return nullptr;
    }
    napi_value v = info[idx];
    bool is = false;
    if (napi_is_typedarray(info.Env(), v, &is) != napi_ok || !is) {
      fail(idx, what);
      return nullptr;
    }
    napi_typedarray_type type;
    size_t length = 0;
    void* data = nullptr;
    if (napi_get_typedarray_info(info.Env(), v, &type, &length, &data, nullptr, nullptr) != napi_ok || type != want) {
      fail(idx, what);
      return nullptr;
    }
    if (len) *len = length;
    return data;
  }
  float* f32(size_t idx, size_t* len = nullptr) {
    return static_cast<float*>(typed(idx, napi_float32_array, "a Float32Array", len));
  }
  int32_t* i32(size_t idx, size_t* len = nullptr) {
    return static_cast<int32_t*>(typed(idx, napi_int32_array, "an Int32Array", len));
  }
  uint16_t* u16(size_t idx, size_t* len = nullptr) {
    return static_cast<uint16_t*>(typed(idx, napi_uint16_array, "a Uint16Array", len));
  }
  double num(size_t idx) {
    if (idx >= info.Length() || !info[idx].IsNumber()) {
      fail(idx, "a number");
      return 0;
    }
    return info[idx].As<Napi::Number>().DoubleValue();
  }
  int64_t i64(size_t idx) { return static_cast<int64_t>(num(idx)); }
};

// ---- half precision ----------------------------------------------------------------------------------------
float half_to_float(uint16_t h);
uint16_t float_to_half(float f);  // round to nearest even

// Rows [n0, n1) of C (M, N) = A (M, K) . W^T + beta * C for a bfloat16 W (N, K), serially (bf16.cpp; gemmBF16 and
// gemmMulti split rows over the pool with it).
void bf16_rows(int64_t n0, int64_t n1, int64_t M, int64_t K, const float* a, const uint16_t* w, float beta, float* c,
               int64_t N);

}  // namespace rf

// Registration hooks, one per kernel file (see addon.cpp).
void register_gemm(Napi::Env env, Napi::Object exports);
void register_elementwise(Napi::Env env, Napi::Object exports);
void register_norms(Napi::Env env, Napi::Object exports);
void register_attention(Napi::Env env, Napi::Object exports);
void register_optim(Napi::Env env, Napi::Object exports);
void register_hw(Napi::Env env, Napi::Object exports);
void register_bf16(Napi::Env env, Napi::Object exports);
void register_ssd(Napi::Env env, Napi::Object exports);
void register_rope(Napi::Env env, Napi::Object exports);
void register_softmax(Napi::Env env, Napi::Object exports);
