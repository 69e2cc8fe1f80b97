// Hardware probes for the benchmarks: the machine's real FMA throughput and streaming-read bandwidth, so kernel
// figures can be reported as a fraction of what this (virtual) machine actually delivers rather than of a
// datasheet number.
//
// Not part of the production addon: binding.gyp builds this file, with the runtime (thread pool, instruction-set
// detection) of native/src/runtime.cpp, into its own module, native/build/Release/recurformer_bench.node, which
// only bench/lib/hw.ts loads (loadProbes). The probes run on that module's own thread pool, sized like the
// production one (RECURFORMER_THREADS, else every core).
#include "../common.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// Result sink: the probes store their reductions here so the compiler cannot prove the work is dead.
volatile float g_sink = 0;

// ---- FMA throughput ------------------------------------------------------------------------------------------
// Twelve independent dependency chains: with a 4-cycle FMA latency and two FMA ports, at least 8 must be in
// flight to keep both ports busy; 12 leaves headroom for cores with a longer latency. The multiplier below 1 and
// the small addend make every chain converge to a normal number, so no denormal slow path and no overflow.
#if RF_X86
RF_AVX2 int64_t fma_burst_avx2(int64_t reps) {
  const __m256 m = _mm256_set1_ps(0.9999f), k = _mm256_set1_ps(1e-4f);
  __m256 a0 = _mm256_set1_ps(0.1f), a1 = _mm256_set1_ps(0.2f), a2 = _mm256_set1_ps(0.3f);
  __m256 a3 = _mm256_set1_ps(0.4f), a4 = _mm256_set1_ps(0.5f), a5 = _mm256_set1_ps(0.6f);
  __m256 a6 = _mm256_set1_ps(0.7f), a7 = _mm256_set1_ps(0.8f), a8 = _mm256_set1_ps(0.9f);
  __m256 a9 = _mm256_set1_ps(1.0f), a10 = _mm256_set1_ps(1.1f), a11 = _mm256_set1_ps(1.2f);
  for (int64_t r = 0; r < reps; ++r) {
    a0 = _mm256_fmadd_ps(a0, m, k);
    a1 = _mm256_fmadd_ps(a1, m, k);
    a2 = _mm256_fmadd_ps(a2, m, k);
    a3 = _mm256_fmadd_ps(a3, m, k);
    a4 = _mm256_fmadd_ps(a4, m, k);
    a5 = _mm256_fmadd_ps(a5, m, k);
    a6 = _mm256_fmadd_ps(a6, m, k);
    a7 = _mm256_fmadd_ps(a7, m, k);
    a8 = _mm256_fmadd_ps(a8, m, k);
    a9 = _mm256_fmadd_ps(a9, m, k);
    a10 = _mm256_fmadd_ps(a10, m, k);
    a11 = _mm256_fmadd_ps(a11, m, k);
  }
  __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)),
                           _mm256_add_ps(_mm256_add_ps(a4, a5), _mm256_add_ps(a6, a7)));
  s = _mm256_add_ps(s, _mm256_add_ps(_mm256_add_ps(a8, a9), _mm256_add_ps(a10, a11)));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, s);
  g_sink = lanes[0] + lanes[7];
  return reps * 12;  // FMAs of 8 lanes each
}
#endif

// Portable stand-in with the same shape (12 chains of 8 lanes); the compiler vectorizes it with what the
// baseline ISA offers, so on a machine without AVX2 the "peak" is the peak of the code we would actually run.
int64_t fma_burst_scalar(int64_t reps) {
  float a[12][8];
  for (int c = 0; c < 12; ++c)
    for (int l = 0; l < 8; ++l) a[c][l] = 0.1f * static_cast<float>(c + 1);
  for (int64_t r = 0; r < reps; ++r)
    for (int c = 0; c < 12; ++c)
      for (int l = 0; l < 8; ++l) a[c][l] = a[c][l] * 0.9999f + 1e-4f;
  float s = 0;
  for (int c = 0; c < 12; ++c) s += a[c][0] + a[c][7];
  g_sink = s;
  return reps * 12;
}

#if RF_X86
// The same twelve chains on zmm registers (16 lanes), for the AVX-512 GEMM kernels' yardstick.
__attribute__((target("avx512f"))) int64_t fma_burst_avx512(int64_t reps) {
  const __m512 m = _mm512_set1_ps(0.9999f), k = _mm512_set1_ps(1e-4f);
  __m512 a[12];
  for (int i = 0; i < 12; ++i) a[i] = _mm512_set1_ps(0.1f * static_cast<float>(i + 1));
  for (int64_t r = 0; r < reps; ++r) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) a[i] = _mm512_fmadd_ps(a[i], m, k);
  }
  __m512 s = a[0];
  for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, a[i]);
  alignas(64) float lanes[16];  // not _mm512_reduce_add_ps: GCC 12's header warns about it
  _mm512_store_ps(lanes, s);
  g_sink = lanes[0] + lanes[15];
  return reps * 24;  // in units of 8-lane FMAs, so every burst counts 16 flops per unit
}
#endif

// ---- streaming sums (the bandwidth probe) -------------------------------------------------------------------
// Reads 64 KiB blocks as four concurrent 16 KiB streams with a 1 KiB software prefetch, the access pattern of
// the matrix-vector kernels (four weight rows at a time): one sequential stream per core leaves memory-level
// parallelism unused, and the probe must not be beaten by the kernels it is the yardstick for. Eight
// independent sums keep the add latency off the critical path.
#if RF_X86
RF_AVX2 float sum_avx2(const float* p, int64_t n) {
  constexpr int64_t kRow = 4096;  // floats per stream within a block
  __m256 s0 = _mm256_setzero_ps(), s1 = s0, s2 = s0, s3 = s0, s4 = s0, s5 = s0, s6 = s0, s7 = s0;
  int64_t b = 0;
  for (; b + 4 * kRow <= n; b += 4 * kRow) {
    const float *p0 = p + b, *p1 = p0 + kRow, *p2 = p1 + kRow, *p3 = p2 + kRow;
    for (int64_t i = 0; i < kRow; i += 16) {
      _mm_prefetch(reinterpret_cast<const char*>(p0 + i + 256), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(p1 + i + 256), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(p2 + i + 256), _MM_HINT_T0);
      _mm_prefetch(reinterpret_cast<const char*>(p3 + i + 256), _MM_HINT_T0);
      s0 = _mm256_add_ps(s0, _mm256_load_ps(p0 + i));
      s1 = _mm256_add_ps(s1, _mm256_load_ps(p0 + i + 8));
      s2 = _mm256_add_ps(s2, _mm256_load_ps(p1 + i));
      s3 = _mm256_add_ps(s3, _mm256_load_ps(p1 + i + 8));
      s4 = _mm256_add_ps(s4, _mm256_load_ps(p2 + i));
      s5 = _mm256_add_ps(s5, _mm256_load_ps(p2 + i + 8));
      s6 = _mm256_add_ps(s6, _mm256_load_ps(p3 + i));
      s7 = _mm256_add_ps(s7, _mm256_load_ps(p3 + i + 8));
    }
  }
  __m256 s = _mm256_add_ps(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)),
                           _mm256_add_ps(_mm256_add_ps(s4, s5), _mm256_add_ps(s6, s7)));
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, s);
  float r = 0;
  for (float v : lanes) r += v;
  for (; b < n; ++b) r += p[b];
  return r;
}
#endif

float sum_scalar(const float* p, int64_t n) {
  float s[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int l = 0; l < 8; ++l) s[l] += p[i + l];
  float r = 0;
  for (float v : s) r += v;
  for (; i < n; ++i) r += p[i];
  return r;
}

// The yardstick of the AVX-512 GEMM kernels exists whenever the CPU and OS have AVX-512F and AVX2 is in use, even
// under RECURFORMER_SIMD=avx2 (which only keeps the GEMM itself on AVX2).
bool avx512_available() {
#if RF_X86
  __builtin_cpu_init();
  return rf::cpu_isa() >= rf::Isa::kAvx2 && __builtin_cpu_supports("avx512f");
#else
  return false;
#endif
}

enum class Isa { Avx2, Avx512 };

// The probes' kernel table (rf::pick, common.h): the AVX2 yardsticks, or their portable stand-ins.
struct ProbeKernels {
  int64_t (*fma_burst)(int64_t reps);     // 12 chains of 8-lane FMAs, reps times; returns the FMA count / 8 lanes
  float (*sum)(const float* p, int64_t n);  // streaming sum of n floats (64-byte aligned)
};

const ProbeKernels kScalar = {fma_burst_scalar, sum_scalar};
#if RF_X86
const ProbeKernels kAvx2 = {fma_burst_avx2, sum_avx2};
#endif

const ProbeKernels& kernels() {
  static const ProbeKernels& t = rf::pick(kScalar, RF_X86_TABLE(kAvx2));
  return t;
}

int64_t fma_burst(int64_t reps, Isa isa) {
#if RF_X86
  if (isa == Isa::Avx512) return fma_burst_avx512(reps);
#endif
  (void)isa;
  return kernels().fma_burst(reps);
}

int clamp_threads(double requested) {
  int t = static_cast<int>(requested);
  return std::max(1, std::min(t, rf::num_threads()));
}

// Every participating thread runs bursts until a shared deadline; the rate is the FMA total over the slowest
// thread's wall time, so a straggler lowers the figure instead of hiding behind the others.
double fma_peak_gflops(double seconds, int threads, Isa isa) {
  fma_burst(1 << 20, isa);  // let the clock ramp up before timing
  std::vector<int64_t> fmas(threads, 0);
  std::vector<double> elapsed(threads, 0);
  auto t0 = Clock::now();
  rf::parallel_run([&](int tid, int) {
    if (tid >= threads) return;
    int64_t n = 0;
    double dt = 0;
    do {
      n += fma_burst(1 << 16, isa);
      dt = seconds_since(t0);
    } while (dt < seconds);
    fmas[tid] = n;
    elapsed[tid] = dt;
  });
  int64_t total = 0;
  double wall = 0;
  for (int t = 0; t < threads; ++t) {
    total += fmas[t];
    wall = std::max(wall, elapsed[t]);
  }
  return static_cast<double>(total) * 16.0 / wall / 1e9;  // 8 lanes x (mul + add)
}

// ---- streaming read bandwidth ----------------------------------------------------------------------------------
float sum_floats(const float* p, int64_t n) { return kernels().sum(p, n); }

// Each pass splits the buffer into one contiguous slice per thread (64-byte aligned cuts), so every thread
// streams its own pages; passes repeat until the time budget is spent.
double bandwidth_gbs(double bytes, double seconds, int threads) {
  int64_t n = static_cast<int64_t>(bytes / sizeof(float)) / 16 * 16;
  if (n < 16) n = 16;
  float* buf = static_cast<float*>(std::aligned_alloc(64, static_cast<size_t>(n) * sizeof(float)));
  if (!buf) return 0;
  auto slice = [&](int tid, int64_t* b, int64_t* e) {
    *b = n * tid / threads / 16 * 16;
    *e = tid + 1 == threads ? n : n * (tid + 1) / threads / 16 * 16;
  };
  // First touch from the thread that will read the slice, with values that keep the sums finite.
  rf::parallel_run([&](int tid, int) {
    if (tid >= threads) return;
    int64_t b, e;
    slice(tid, &b, &e);
    for (int64_t i = b; i < e; ++i) buf[i] = 1e-3f;
  });
  std::vector<float> sums(threads, 0);
  auto pass = [&] {
    rf::parallel_run([&](int tid, int) {
      if (tid >= threads) return;
      int64_t b, e;
      slice(tid, &b, &e);
      sums[tid] += sum_floats(buf + b, e - b);
    });
  };
  pass();  // warm-up: page tables and clocks
  // The fastest pass is reported, the same best-of-repetitions rule the benchmark applies to the kernels, so
  // a neighbour's burst on a shared host lowers neither figure more than the other.
  double best = 1e30;
  auto t0 = Clock::now();
  do {
    auto p0 = Clock::now();
    pass();
    best = std::min(best, seconds_since(p0));
  } while (seconds_since(t0) < seconds);
  float total = 0;
  for (float s : sums) total += s;
  g_sink = total;
  std::free(buf);
  return static_cast<double>(n) * sizeof(float) / best / 1e9;
}

// measureFmaPeak(seconds, threads, isa = 'avx2') -> GFLOPS. isa 'avx512' measures zmm FMAs instead (NaN when
// the CPU lacks AVX-512F), the yardstick for the AVX-512 GEMM kernels.
Napi::Value MeasureFmaPeak(const Napi::CallbackInfo& info) {
  rf::ArgReader r(info, "measureFmaPeak");
  double seconds = r.num(0);
  double threads = r.num(1);
  if (!r.ok) return info.Env().Undefined();
  Isa isa = Isa::Avx2;
  if (info.Length() > 2 && info[2].IsString() && info[2].As<Napi::String>().Utf8Value() == "avx512") {
    if (!avx512_available()) return Napi::Number::New(info.Env(), std::nan(""));
    isa = Isa::Avx512;
  }
  return Napi::Number::New(info.Env(), fma_peak_gflops(std::max(seconds, 0.01), clamp_threads(threads), isa));
}

// measureBandwidth(bytes, seconds, threads) -> GB/s (1e9 bytes per second)
Napi::Value MeasureBandwidth(const Napi::CallbackInfo& info) {
  rf::ArgReader r(info, "measureBandwidth");
  double bytes = r.num(0);
  double seconds = r.num(1);
  double threads = r.num(2);
  if (!r.ok) return info.Env().Undefined();
  if (!(bytes >= 1024)) bytes = 1024;
  double gbs = bandwidth_gbs(bytes, std::max(seconds, 0.01), clamp_threads(threads));
  if (gbs <= 0) {
    Napi::Error::New(info.Env(), "measureBandwidth: could not allocate the buffer").ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  return Napi::Number::New(info.Env(), gbs);
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  rf::export_fn<MeasureFmaPeak>(env, exports, "measureFmaPeak");
  rf::export_fn<MeasureBandwidth>(env, exports, "measureBandwidth");
  return exports;
}

}  // namespace

NODE_API_MODULE(recurformer_bench, Init)
