// Fused decode step of a layer's recurrent (SSD) heads: conv window + SiLU, decay, state update and readout in one
// call instead of ~30 small engine ops per layer and token (see kernels.ts `ssdStep` for the exact semantics).
// Decode states are small (heads x P x N floats), so one thread per call. One portable implementation (plain loops
// the compiler vectorizes for the baseline ISA), so ssdStep has no per-instruction-set kernel table.
#include "common.h"

#include <cmath>
#include <vector>

namespace {

inline float silu(float s) { return s / (1.0f + std::exp(-s)); }

Napi::Value SsdStep(const Napi::CallbackInfo& info) {
  rf::ArgReader r(info, "ssdStep");
  size_t nx = 0, ndt = 0, nwin = 0, ncw = 0, ncb = 0, ns = 0, nal = 0, nd = 0, ng = 0, ny = 0;
  const float* xbc = r.f32(0, &nx);
  const float* dt = r.f32(1, &ndt);
  float* win = r.f32(2, &nwin);
  const float* convW = r.f32(3, &ncw);
  const float* convB = r.f32(4, &ncb);
  float* S = r.f32(5, &ns);
  const float* aLog = r.f32(6, &nal);
  const float* dskip = r.f32(7, &nd);
  const int32_t* groupOf = r.i32(8, &ng);
  const int64_t B = r.i64(9), H = r.i64(10), G = r.i64(11), P = r.i64(12), N = r.i64(13), K = r.i64(14);
  float* y = r.f32(15, &ny);
  if (!r.ok) return info.Env().Undefined();
  const int64_t C = H * P + G * N + H * N;
  const bool sizes_ok = B >= 0 && H >= 0 && G >= 1 && P >= 0 && N >= 0 && K >= 1 &&
      nx >= static_cast<size_t>(B * C) && ndt >= static_cast<size_t>(B * H) &&
      nwin >= static_cast<size_t>(B * (K - 1) * C) && ncw >= static_cast<size_t>(C * K) &&
      (ncb == 0 || ncb >= static_cast<size_t>(C)) && ns >= static_cast<size_t>(B * H * P * N) &&
      nal >= static_cast<size_t>(H) && nd >= static_cast<size_t>(H) && ng >= static_cast<size_t>(H) &&
      ny >= static_cast<size_t>(B * H * P);
  if (!sizes_ok) {
    Napi::RangeError::New(info.Env(), "recurformer native ssdStep: arrays are shorter than B, H, G, P, N, K require")
        .ThrowAsJavaScriptException();
    return info.Env().Undefined();
  }
  for (int64_t h = 0; h < H; ++h) {
    if (groupOf[h] < 0 || groupOf[h] >= G) {
      Napi::RangeError::New(info.Env(), "recurformer native ssdStep: groupOf[" + std::to_string(h) + "] is not a group")
          .ThrowAsJavaScriptException();
      return info.Env().Undefined();
    }
  }
  rf::Buffer<float> conv(static_cast<size_t>(C));
  for (int64_t b = 0; b < B; ++b) {
    float* wb = win + b * (K - 1) * C;
    const float* xb = xbc + b * C;
    for (int64_t c = 0; c < C; ++c) {
      const float* wc = convW + c * K;
      float s = ncb ? convB[c] : 0.0f;
      for (int64_t k = 0; k < K - 1; ++k) s += wc[k] * wb[k * C + c];
      s += wc[K - 1] * xb[c];
      conv[c] = silu(s);
    }
    // slide the window: drop the oldest input, append the current one
    for (int64_t k = 0; k + 1 < K - 1; ++k) {
      for (int64_t c = 0; c < C; ++c) wb[k * C + c] = wb[(k + 1) * C + c];
    }
    if (K > 1) {
      for (int64_t c = 0; c < C; ++c) wb[(K - 2) * C + c] = xb[c];
    }
    const float* x = conv.data();
    for (int64_t h = 0; h < H; ++h) {
      const float dth = dt[b * H + h];
      const float a = std::exp(-std::exp(aLog[h]) * dth);
      const float* xh = x + h * P;
      const float* bg = x + H * P + groupOf[h] * N;
      const float* ch = x + H * P + G * N + h * N;
      float* Sh = S + (b * H + h) * P * N;
      float* yh = y + (b * H + h) * P;
      for (int64_t p = 0; p < P; ++p) {
        float* row = Sh + p * N;
        const float dx = dth * xh[p];
        float acc = 0.0f;
        for (int64_t n = 0; n < N; ++n) {
          const float v = a * row[n] + dx * bg[n];
          row[n] = v;
          acc += v * ch[n];
        }
        yh[p] = acc + dskip[h] * xh[p];
      }
    }
  }
  return info.Env().Undefined();
}

}  // namespace

void register_ssd(Napi::Env env, Napi::Object exports) {
  rf::export_fn<SsdStep>(env, exports, "ssdStep");
}
