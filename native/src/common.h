// Shared helpers for every kernel file: instruction-set dispatch, checked scratch memory, guarded bindings, the
// thread pool, argument extraction with typed errors, half floats.
#pragma once
#include <napi.h>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <exception>
#include <functional>
#include <new>
#include <string>

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#define RF_X86 1
// Marks a function compiled for AVX2 + FMA + F16C; only functions in an AVX2 kernel table (or called from one) carry it.
#define RF_AVX2 __attribute__((target("avx2,fma,f16c")))
#include <immintrin.h>
#else
#define RF_X86 0
#define RF_AVX2
#endif

// A table that exists only in x86 builds, for rf::pick: its address there, nullptr elsewhere.
#if RF_X86
#define RF_X86_TABLE(t) (&(t))
#else
#define RF_X86_TABLE(t) nullptr
#endif

namespace rf {

// ---- instruction-set dispatch ------------------------------------------------------------------------------
// One style for every kernel family, modelled on the GEMM's KernelSet (gemm_internal.h): the functions that exist
// once per instruction set are gathered in a struct of function pointers, the family's kernel table; the family
// defines one constant table per instruction set it is written for (always a portable scalar one) and rf::pick()
// chooses one, once, at first use. Drivers and bindings call only through the chosen table: nothing else tests CPU
// features, and code that is the same for every instruction set (argument checks, threading, tiling) is compiled
// once, for the baseline ISA. The tables: gemm (rf::gemm::KernelSet), attention (rf::attn::KernelTable), and one
// per file in bf16.cpp, elementwise.cpp, ew_reduce.cpp, ew_move.cpp, norms.cpp, softmax.cpp, rope.cpp and
// optim.cpp. ssdStep has a single portable implementation and no table.
enum class Isa : int { kScalar = 0, kAvx2 = 1, kAvx512 = 2 };

// The widest instruction set this process uses: AVX-512F (when the OS saves zmm state) over AVX2 + FMA + F16C over
// scalar. RECURFORMER_SIMD=scalar forces the portable tables, RECURFORMER_SIMD=avx2 stops at AVX2. Detected once.
Isa cpu_isa();
// "avx2" or "scalar": the element-wise tables in use (AVX-512 only changes the GEMM; gemmInfo() reports its set).
const char* simd_name();
// AVX-512 VNNI with VL and BW (dpwssd on ymm), when cpu_isa() is kAvx512 (so RECURFORMER_SIMD=avx2 turns it off).
bool cpu_has_avx512_vnni();
// AMX-INT8 tiles, usable by this process (Linux granted the tile state), when cpu_has_avx512_vnni() and
// RECURFORMER_SIMD is not avx512 (which stops at the AVX-512 kernels). Only gemmQ's K-quant prefill uses them.
bool cpu_has_amx_int8();

// The table of the widest instruction set that both the CPU allows and the family has (nullptr: not written for it).
template <class Table>
const Table& pick(const Table& scalar, const Table* avx2, const Table* avx512 = nullptr) {
  const Isa isa = cpu_isa();
  if (avx512 != nullptr && isa >= Isa::kAvx512) return *avx512;
  if (avx2 != nullptr && isa >= Isa::kAvx2) return *avx2;
  return scalar;
}

// ---- scratch memory ------------------------------------------------------------------------------------------
// Every temporary a kernel sizes from its arguments comes from Buffer or Scratch, so that running out of memory is an
// error the caller sees, not a crash: a failed allocation throws ScratchError, the thread pool carries an exception
// from a worker over to the calling thread, and the binding guard (export_fn) turns it into a JS Error naming the
// kernel. The kernel's outputs are then partly written. RECURFORMER_SCRATCH_TEST_LIMIT=<bytes> (tests only) makes
// every request larger than that fail as if memory had run out.
class ScratchError : public std::bad_alloc {
 public:
  explicit ScratchError(size_t bytes);
  size_t bytes() const { return bytes_; }
  const char* what() const noexcept override { return msg_; }

 private:
  size_t bytes_;
  char msg_[96];
};

// `bytes` of zeroed memory aligned to 64 bytes, or ScratchError. Release with scratch_free.
void* scratch_alloc(size_t bytes);
void scratch_free(void* p) noexcept;

// An owned array of n zero-initialised elements (T trivially copyable), freed when it goes out of scope.
template <class T>
class Buffer {
 public:
  Buffer() = default;
  explicit Buffer(size_t n) : p_(n ? static_cast<T*>(scratch_alloc(n * sizeof(T))) : nullptr), n_(n) {}
  Buffer(const Buffer&) = delete;
  Buffer& operator=(const Buffer&) = delete;
  ~Buffer() { scratch_free(p_); }
  T* data() const { return p_; }
  size_t size() const { return n_; }
  T& operator[](size_t i) const { return p_[i]; }

 private:
  T* p_ = nullptr;
  size_t n_ = 0;
};

// A buffer that only grows, for thread_local scratch (pool threads live as long as the process, so after the first
// calls nothing is allocated): get(n) returns room for n elements; growing discards the contents (the new memory is
// zeroed).
template <class T>
class Scratch {
 public:
  Scratch() = default;
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  ~Scratch() { scratch_free(p_); }
  T* get(size_t n) {
    if (n > cap_) {
      const size_t cap = n > cap_ + cap_ / 2 ? n : cap_ + cap_ / 2;
      T* p = static_cast<T*>(scratch_alloc(cap * sizeof(T)));  // throws before the old buffer is released
      scratch_free(p_);
      p_ = p;
      cap_ = cap;
    }
    return p_;
  }

 private:
  T* p_ = nullptr;
  size_t cap_ = 0;
};

// ---- bindings -------------------------------------------------------------------------------------------------
// Every exported function is registered with export_fn<F>(env, exports, "name"): F runs inside a guard that turns a
// C++ exception leaving it (ScratchError, std::bad_alloc, std::system_error from a thread start, ...) into a thrown JS
// Error "recurformer native <name>: ..." instead of terminating the process. (The addon is built with
// NAPI_DISABLE_CPP_EXCEPTIONS: argument errors are thrown as JS exceptions directly, see ArgReader.)
Napi::Value throw_js(const Napi::CallbackInfo& info, std::exception_ptr e);

template <Napi::Function::Callback F>
Napi::Value guarded(const Napi::CallbackInfo& info) {
  try {
    return F(info);
  } catch (...) {
    return throw_js(info, std::current_exception());
  }
}

template <Napi::Function::Callback F>
void export_fn(Napi::Env env, Napi::Object exports, const char* name) {
  exports.Set(name, Napi::Function::New<guarded<F>>(env, name, const_cast<char*>(name)));
}

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
// Exceptions: a task that throws (on any thread) does not take the process down: the first exception is rethrown on
// the calling thread once every thread has left the job. A job whose threads meet at a Barrier must not throw
// between barriers (a thread that left would never arrive); the packed GEMM reserves its scratch before the first.
//
// Runs fn(tid, nthreads) once on each of nthreads threads (tid 0 is the caller) and waits for all of them.
// Nested calls from inside a task run serially on the calling thread.
void parallel_run(const std::function<void(int tid, int nthreads)>& fn);
// Runs fn(item, tid) once for every item in [0, n), items handed out in order from a shared counter to whichever
// threads are running (tid: the pool thread, 0 for the caller; a thread runs its items one after another). The
// caller does not wait for a worker that has not started, so a worker descheduled by other load costs nothing.
// After an item throws, no further items start.
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
  uint8_t* u8(size_t idx, size_t* len = nullptr) {
    return static_cast<uint8_t*>(typed(idx, napi_uint8_array, "a Uint8Array", len));
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
void register_bf16(Napi::Env env, Napi::Object exports);
void register_ssd(Napi::Env env, Napi::Object exports);
void register_rope(Napi::Env env, Napi::Object exports);
void register_softmax(Napi::Env env, Napi::Object exports);
void register_quant(Napi::Env env, Napi::Object exports);
// Whether gemmQ's chosen table sends the K-quants' prefill products to the AMX tiles (info().amx).
bool quant_uses_amx();
