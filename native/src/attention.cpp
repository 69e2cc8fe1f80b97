// Fused multi-head attention (forward and backward) for the contract in src/tensor/kernels.ts.
//
// Files: this one holds the overview below and the N-API bindings (attention, attentionGrad: argument and
// geometry validation, the mask parameters); the drivers are attn_forward.cpp and attn_backward.cpp, the pieces
// they share (tile sizes, mask, geometry, work-item runner, scratch) attn_common.h, and the micro-kernels
// attn_kernels.cpp.
//
// Forward: FlashAttention-style tiling with an online softmax. A tile is a set of "rows" (query x query-head)
// that share one KV head: the nRep query heads of a GQA group are processed together so every K/V block loaded
// serves all of them. For each tile we walk only the key blocks that some query of the tile can see (causal
// upper triangle, keys behind the sliding window except the sink keys are never touched), compute a block of
// scores, fold it into running max / sum / output, and normalise once at the end. No T x S matrix exists unless
// probs is requested, in which case a second pass recomputes the scores against the final lse.
//
// Prefill tiles (>= 16 rows) compute the score block transposed, S^T = K (scale Q)^T, with the same
// broadcast-FMA kernel as P @ V (Q^T is built once per tile), so there are no horizontal reductions, and the
// online softmax runs down the columns vectorised across query rows. Tiles with few rows (decode) use row dot
// products instead, where a transposed layout would leave most vector lanes empty.
//
// Decode (few query rows, long KV cache) is memory-bound: a tile then holds every KV head of the batch entry, so
// a key block is streamed once in address order (k is (B, S, Hkv, Dh), so one key position of all heads is
// contiguous), and the key range is split across threads (split-K) with a log-sum-exp merge of the partial
// results.
//
// Backward: FlashAttention-2 recomputation from lse. Work items are (batch, KV head, key chunk); an item owns
// the gk / gv rows of its keys, so it accumulates into them without synchronisation. Inside an item, query
// blocks are the outer loop (Q, dO and their transposes are built once per query block and dQ is accumulated
// locally) and only the key blocks the query block can see are visited. gq rows of a KV head's query
// heads belong to that (batch, KV head): written directly when each (batch, KV head) is one item, and through
// per-thread partial buffers summed at the end when the keys are split into several chunks.
//
// Threading: items are handed out from an atomic counter (rf::parallel_claim) rather than as the static
// halves rf::parallel_for would give, because causal tiles differ in cost by up to T / block; items are ordered
// most expensive first so the tail of the schedule is short.
#include "attn_common.h"

#include <algorithm>
#include <cmath>
#include <string>

namespace {

using rf::attn_impl::Geo;
using rf::attn_impl::Mask;
using rf::attn_impl::round8;

bool is_count(double x) { return x >= 0 && std::floor(x) == x && x < 9.007199254740992e15; }

// Validates sizes shared by both kernels; throws a RangeError naming the kernel and returns false on failure.
bool check_geometry(Napi::Env env, const char* kernel, const double* dims, Geo& g) {
  const char* names[6] = {"B", "T", "S", "Hq", "Hkv", "Dh"};
  for (int d = 0; d < 6; ++d) {
    if (!is_count(dims[d])) {
      Napi::RangeError::New(env, std::string("recurformer native ") + kernel + ": " + names[d] +
                                     " must be a non-negative integer, got " + std::to_string(dims[d]))
          .ThrowAsJavaScriptException();
      return false;
    }
  }
  g.B = static_cast<int64_t>(dims[0]);
  g.T = static_cast<int64_t>(dims[1]);
  g.S = static_cast<int64_t>(dims[2]);
  g.Hq = static_cast<int64_t>(dims[3]);
  g.Hkv = static_cast<int64_t>(dims[4]);
  g.Dh = static_cast<int64_t>(dims[5]);
  if (g.Hkv < 1 || g.Hq < 1 || g.Hq % g.Hkv != 0 || g.Dh < 1) {
    Napi::RangeError::New(env, std::string("recurformer native ") + kernel + ": need Hq, Hkv, Dh >= 1 and Hq % Hkv == 0, got Hq=" +
                                   std::to_string(g.Hq) + " Hkv=" + std::to_string(g.Hkv) + " Dh=" + std::to_string(g.Dh))
        .ThrowAsJavaScriptException();
    return false;
  }
  g.nRep = g.Hq / g.Hkv;
  g.Dp = round8(g.Dh);
  return true;
}

bool check_len(Napi::Env env, const char* kernel, const char* arg, size_t len, int64_t need) {
  if (static_cast<int64_t>(len) >= need) return true;
  Napi::RangeError::New(env, std::string("recurformer native ") + kernel + ": " + arg + " has " + std::to_string(len) +
                                 " elements, expected " + std::to_string(need))
      .ThrowAsJavaScriptException();
  return false;
}

// Mask parameters arrive as doubles. For integer positions j and i the reference's tests j <= qOffset + i,
// j > qOffset + i - window and j < sinks are the same as j <= floor(qOffset) + i,
// j >= floor(qOffset - window) + 1 + i and j < ceil(sinks), so fractional values behave identically. Values are
// clamped before converting (casting an out-of-range double is undefined) to a range wide enough that every
// comparison against positions < 2^53 comes out the same.
int64_t to_pos(double x) {
  if (std::isnan(x)) return 0;
  return static_cast<int64_t>(std::max(-1e17, std::min(1e17, x)));
}

Mask make_mask(const Geo& g, double causal, double qOffset, double window, double sinks) {
  Mask m;
  m.S = g.S;
  m.causal = causal != 0;
  m.windowed = window > 0;
  m.hiBase = to_pos(std::floor(qOffset));
  m.loBase = m.windowed ? to_pos(std::floor(qOffset - window)) + 1 : 0;
  m.sinks = to_pos(std::ceil(sinks));
  return m;
}

// Reads the six sizes (B, T, S, Hq, Hkv, Dh) at argument `first` and the scale and mask parameters after them
// (scale, causal, qOffset, window, sinks), validates the geometry and fills g. False once an error is thrown.
bool read_geometry(rf::ArgReader& a, Napi::Env env, const char* kernel, size_t first, Geo& g) {
  double dims[6];
  for (size_t d = 0; d < 6; ++d) dims[d] = a.num(first + d);
  const double scale = a.num(first + 6), causal = a.num(first + 7), qOffset = a.num(first + 8),
               window = a.num(first + 9), sinks = a.num(first + 10);
  if (!a.ok || !check_geometry(env, kernel, dims, g)) return false;
  g.scale = static_cast<float>(scale);
  g.mask = make_mask(g, causal, qOffset, window, sinks);
  return true;
}

Napi::Value Attention(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  rf::ArgReader a(info, "attention");
  size_t nq, nk, nv, no, nl, np;
  const float* q = a.f32(0, &nq);
  const float* k = a.f32(1, &nk);
  const float* v = a.f32(2, &nv);
  Geo g;
  if (!read_geometry(a, env, "attention", 3, g)) return env.Undefined();
  float* o = a.f32(14, &no);
  float* lse = a.f32(15, &nl);
  float* probs = a.f32(16, &np);
  if (!a.ok) return env.Undefined();
  const int64_t qn = g.B * g.T * g.Hq * g.Dh, kn = g.B * g.S * g.Hkv * g.Dh;
  if (!check_len(env, "attention", "q", nq, qn) || !check_len(env, "attention", "k", nk, kn) ||
      !check_len(env, "attention", "v", nv, kn) || !check_len(env, "attention", "o", no, qn) ||
      !check_len(env, "attention", "lse", nl, g.B * g.Hq * g.T))
    return env.Undefined();
  if (np != 0 && !check_len(env, "attention", "probs", np, g.B * g.Hq * g.T * g.S)) return env.Undefined();
  if (g.B == 0 || g.T == 0) return env.Undefined();
  rf::attn_impl::forward(g, q, k, v, o, lse, np ? probs : nullptr);
  return env.Undefined();
}

Napi::Value AttentionGrad(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  rf::ArgReader a(info, "attentionGrad");
  size_t nq, nk, nv, no, nl, ngo, ngq, ngk, ngv;
  const float* q = a.f32(0, &nq);
  const float* k = a.f32(1, &nk);
  const float* v = a.f32(2, &nv);
  const float* o = a.f32(3, &no);
  const float* lse = a.f32(4, &nl);
  const float* go = a.f32(5, &ngo);
  Geo g;
  if (!read_geometry(a, env, "attentionGrad", 6, g)) return env.Undefined();
  float* gq = a.f32(17, &ngq);
  float* gk = a.f32(18, &ngk);
  float* gv = a.f32(19, &ngv);
  if (!a.ok) return env.Undefined();
  const int64_t qn = g.B * g.T * g.Hq * g.Dh, kn = g.B * g.S * g.Hkv * g.Dh;
  const char* kn_ = "attentionGrad";
  if (!check_len(env, kn_, "q", nq, qn) || !check_len(env, kn_, "k", nk, kn) || !check_len(env, kn_, "v", nv, kn) ||
      !check_len(env, kn_, "o", no, qn) || !check_len(env, kn_, "lse", nl, g.B * g.Hq * g.T) ||
      !check_len(env, kn_, "go", ngo, qn) || !check_len(env, kn_, "gq", ngq, qn) ||
      !check_len(env, kn_, "gk", ngk, kn) || !check_len(env, kn_, "gv", ngv, kn))
    return env.Undefined();
  rf::attn_impl::backward(g, q, k, v, o, lse, go, gq, gk, gv);
  return env.Undefined();
}

}  // namespace

void register_attention(Napi::Env env, Napi::Object exports) {
  rf::export_fn<Attention>(env, exports, "attention");
  rf::export_fn<AttentionGrad>(env, exports, "attentionGrad");
}
