// Module entry of the production addon: registers every kernel file's functions and a few informational ones.
// (The benchmark's hardware probes are a separate module, native/src/bench/probes.cpp.)
#include "attn_kernels.h"
#include "common.h"

static Napi::Value Info(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  o.Set("simd", rf::simd_name());
  o.Set("threads", rf::num_threads());
  o.Set("vnni", rf::cpu_has_avx512_vnni());
  o.Set("amx", quant_uses_amx());
  o.Set("attention", rf::attn::attn_kernels().name);
  return o;
}

static Napi::Value SetThreads(const Napi::CallbackInfo& info) {
  rf::ArgReader r(info, "setThreads");
  int n = static_cast<int>(r.num(0));
  if (!r.ok) return info.Env().Undefined();
  rf::set_num_threads(n);
  return Napi::Number::New(info.Env(), rf::num_threads());
}

static Napi::Object Init(Napi::Env env, Napi::Object exports) {
  rf::export_fn<Info>(env, exports, "info");
  rf::export_fn<SetThreads>(env, exports, "setThreads");
  register_gemm(env, exports);
  register_elementwise(env, exports);
  register_norms(env, exports);
  register_attention(env, exports);
  register_optim(env, exports);
  register_bf16(env, exports);
  register_ssd(env, exports);
  register_rope(env, exports);
  register_softmax(env, exports);
  register_quant(env, exports);
  return exports;
}

NODE_API_MODULE(recurformer, Init)
