/**
 * A slow, plain reference forward pass for the Llama family (Llama, Mistral, Qwen2, Qwen3) and Gemma 3 text,
 * written from the architectures' definitions (transformers' modeling files) and nothing of recurformer: it reads the
 * HF config.json keys itself, takes weights by their HF names, and computes in float64 with nested loops over
 * plain arrays, position by position. No tensor engine, no caches, no fused kernels: only what each model does.
 *
 *   x = embed[id] * embedScale                                     (Gemma: sqrt(hidden) in the checkpoint's dtype)
 *   per layer: a = attention(norm_in(x));  x += post ? norm_pa(a) : a
 *              m = mlp(norm_mlp(x));       x += post ? norm_pf(m) : m
 *   logits = head(norm(x)), softcapped when the config says so
 *   norm(v) = v / sqrt(mean(v^2) + eps) * g, with g = w (Llama, Qwen) or 1 + w (Gemma)
 *   attention: q, k, v projections (+ biases for Qwen2), q/k RMS-normalized per head (Qwen3, Gemma), rotate-half
 *              RoPE, softmax(scale * q.k) over the causal (and windowed) keys of the query head's KV group
 *   mlp: down(act(gate(v)) * up(v)), act = silu (Llama, Qwen) or gelu-tanh (Gemma)
 */

type Json = Record<string, unknown>;

export interface RefModel {
  /** The model's config.json (Hugging Face keys). */
  config: Json;
  /** A weight by its HF name, as the checkpoint stores its values (row-major, nn.Linear (out, in) layout). */
  weight(name: string): ArrayLike<number>;
}

interface Arch {
  gemma: boolean;
  D: number; L: number; Hq: number; Hkv: number; Dh: number; F: number; V: number; eps: number;
  bias: boolean; qkNorm: boolean; tied: boolean;
  embedScale: number; attnScale: number; softcap: number | null;
  /** Per layer: the key window (0: all keys) and the RoPE inverse frequencies. */
  window: number[]; invFreq: Float64Array[];
}

const n = (c: Json, key: string, fallback?: number): number => {
  const v = c[key] ?? fallback;
  if (typeof v !== 'number') throw new Error(`reference: config key ${key} is missing`);
  return v;
};

/** A number as float32, and then as bfloat16 for a bfloat16 checkpoint (round to nearest even). */
function inDtype(x: number, dtype: unknown): number {
  const f = Math.fround(x);
  if (dtype === 'float16') throw new Error('reference: float16 embedding scale not implemented');
  if (dtype !== 'bfloat16') return f;
  const u = new Uint32Array(new Float32Array([f]).buffer)[0]!;
  const r = ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) << 16; // keep the top 16 bits, rounded
  return new Float32Array(new Uint32Array([r]).buffer)[0]!;
}

/** theta^(-2i/d), scaled as transformers' "linear" and "llama3" rope types do. */
function inverseFrequencies(d: number, theta: number, scaling: Json | null): Float64Array {
  const f = Float64Array.from({ length: d / 2 }, (_, i) => 1 / theta ** ((2 * i) / d));
  const type = scaling ? scaling['rope_type'] ?? scaling['type'] : 'default';
  if (type === 'linear') return f.map((x) => x / n(scaling!, 'factor'));
  if (type === 'llama3') {
    const factor = n(scaling!, 'factor'), lo = n(scaling!, 'low_freq_factor'), hi = n(scaling!, 'high_freq_factor');
    const old = n(scaling!, 'original_max_position_embeddings');
    return f.map((x) => {
      const wavelen = (2 * Math.PI) / x;
      if (wavelen < old / hi) return x; // high frequencies: unchanged
      if (wavelen > old / lo) return x / factor; // low frequencies: interpolated
      const smooth = (old / wavelen - lo) / (hi - lo);
      return (1 - smooth) * (x / factor) + smooth * x;
    });
  }
  if (type !== 'default') throw new Error(`reference: rope type ${String(type)}`);
  return f;
}

function archOf(c: Json): Arch {
  const type = c['model_type'];
  if (!['llama', 'mistral', 'qwen2', 'qwen3', 'gemma3_text'].includes(type as string)) throw new Error(`reference: model_type ${String(type)}`);
  const gemma = type === 'gemma3_text';
  const D = n(c, 'hidden_size'), L = n(c, 'num_hidden_layers'), Hq = n(c, 'num_attention_heads');
  const Dh = n(c, 'head_dim', gemma ? 256 : D / Hq);
  const window: number[] = [], invFreq: Float64Array[] = [];
  const global = inverseFrequencies(Dh, n(c, 'rope_theta', gemma ? 1e6 : 10000), (c['rope_scaling'] as Json | null) ?? null);
  for (let l = 0; l < L; l++) {
    if (gemma) {
      const types = c['layer_types'] as string[] | undefined;
      const sliding = types ? types[l] === 'sliding_attention' : (l + 1) % n(c, 'sliding_window_pattern', 6) !== 0;
      window.push(sliding ? n(c, 'sliding_window', 4096) : 0);
      invFreq.push(sliding ? inverseFrequencies(Dh, n(c, 'rope_local_base_freq', 10000), null) : global);
    } else {
      window.push(type === 'mistral' ? n(c, 'sliding_window', 0) : 0);
      invFreq.push(global);
    }
  }
  const cap = c['final_logit_softcapping'];
  return {
    gemma, D, L, Hq, Hkv: n(c, 'num_key_value_heads', Hq), Dh, F: n(c, 'intermediate_size'), V: n(c, 'vocab_size'),
    eps: n(c, 'rms_norm_eps', 1e-6), bias: type === 'qwen2', qkNorm: type === 'qwen3' || gemma,
    tied: (c['tie_word_embeddings'] ?? gemma) === true,
    embedScale: gemma ? inDtype(Math.sqrt(D), c['torch_dtype'] ?? c['dtype']) : 1,
    attnScale: gemma ? n(c, 'query_pre_attn_scalar', 256) ** -0.5 : 1 / Math.sqrt(Dh),
    softcap: typeof cap === 'number' ? cap : null,
    window, invFreq,
  };
}

/** y = W x (+ b) for W (rows, x.length). */
function linear(w: ArrayLike<number>, x: Float64Array, rows: number, b?: ArrayLike<number>): Float64Array {
  const cols = x.length;
  const y = new Float64Array(rows);
  for (let r = 0; r < rows; r++) {
    let s = b ? b[r]! : 0;
    for (let i = 0; i < cols; i++) s += w[r * cols + i]! * x[i]!;
    y[r] = s;
  }
  return y;
}

/** RMSNorm of x[off, off + len) with gain g (1 + g when plusOne), written back in place. */
function rmsnormAt(x: Float64Array, off: number, len: number, g: ArrayLike<number>, eps: number, plusOne: boolean): void {
  let ss = 0;
  for (let i = 0; i < len; i++) ss += x[off + i]! ** 2;
  const r = 1 / Math.sqrt(ss / len + eps);
  for (let i = 0; i < len; i++) x[off + i] = x[off + i]! * r * (plusOne ? 1 + g[i]! : g[i]!);
}

/** Rotate-half RoPE on each head of x (heads x Dh) at position p: dim i pairs with i + Dh/2. */
function rope(x: Float64Array, heads: number, Dh: number, p: number, invFreq: Float64Array): void {
  const half = Dh / 2;
  for (let h = 0; h < heads; h++) {
    for (let i = 0; i < half; i++) {
      const a = x[h * Dh + i]!, b = x[h * Dh + half + i]!;
      const cos = Math.cos(p * invFreq[i]!), sin = Math.sin(p * invFreq[i]!);
      x[h * Dh + i] = a * cos - b * sin;
      x[h * Dh + half + i] = b * cos + a * sin;
    }
  }
}

const silu = (v: number): number => v / (1 + Math.exp(-v));
const geluTanh = (v: number): number => 0.5 * v * (1 + Math.tanh(Math.sqrt(2 / Math.PI) * (v + 0.044715 * v ** 3)));

/** The final-normed hidden state of every position of ids (positions 0..T-1). */
export function referenceHidden(m: RefModel, ids: readonly number[]): Float64Array[] {
  const a = archOf(m.config);
  const { D, Hq, Hkv, Dh, F, eps, gemma } = a;
  const w = (name: string): ArrayLike<number> => m.weight(name);
  const norm = (x: Float64Array, name: string): Float64Array => {
    const y = Float64Array.from(x);
    rmsnormAt(y, 0, y.length, w(name), eps, gemma);
    return y;
  };
  const emb = w('model.embed_tokens.weight');
  let xs = ids.map((id) => Float64Array.from({ length: D }, (_, i) => emb[id * D + i]! * a.embedScale));
  for (let l = 0; l < a.L; l++) {
    const p = `model.layers.${l}`;
    const qs: Float64Array[] = [], ks: Float64Array[] = [], vs: Float64Array[] = [];
    xs.forEach((x, t) => {
      const h = norm(x, `${p}.input_layernorm.weight`);
      const b = (k: string) => (a.bias ? w(`${p}.self_attn.${k}_proj.bias`) : undefined);
      const q = linear(w(`${p}.self_attn.q_proj.weight`), h, Hq * Dh, b('q'));
      const k = linear(w(`${p}.self_attn.k_proj.weight`), h, Hkv * Dh, b('k'));
      if (a.qkNorm) {
        for (let hh = 0; hh < Hq; hh++) rmsnormAt(q, hh * Dh, Dh, w(`${p}.self_attn.q_norm.weight`), eps, gemma);
        for (let hh = 0; hh < Hkv; hh++) rmsnormAt(k, hh * Dh, Dh, w(`${p}.self_attn.k_norm.weight`), eps, gemma);
      }
      rope(q, Hq, Dh, t, a.invFreq[l]!);
      rope(k, Hkv, Dh, t, a.invFreq[l]!);
      qs.push(q);
      ks.push(k);
      vs.push(linear(w(`${p}.self_attn.v_proj.weight`), h, Hkv * Dh, b('v')));
    });
    xs = xs.map((x, t) => {
      const heads = new Float64Array(Hq * Dh);
      for (let hh = 0; hh < Hq; hh++) {
        const g = Math.floor(hh / (Hq / Hkv)); // the query head's KV group
        const first = a.window[l]! > 0 ? Math.max(0, t - a.window[l]! + 1) : 0;
        const scores: number[] = [];
        for (let j = first; j <= t; j++) {
          let s = 0;
          for (let i = 0; i < Dh; i++) s += qs[t]![hh * Dh + i]! * ks[j]![g * Dh + i]!;
          scores.push(s * a.attnScale);
        }
        const mx = Math.max(...scores);
        const e = scores.map((s) => Math.exp(s - mx));
        const z = e.reduce((u, v) => u + v, 0);
        for (let j = first; j <= t; j++) {
          for (let i = 0; i < Dh; i++) heads[hh * Dh + i] += (e[j - first]! / z) * vs[j]![g * Dh + i]!;
        }
      }
      const o = linear(w(`${p}.self_attn.o_proj.weight`), heads, D);
      const ao = gemma ? norm(o, `${p}.post_attention_layernorm.weight`) : o;
      const x1 = x.map((v, i) => v + ao[i]!);
      const h2 = norm(x1, gemma ? `${p}.pre_feedforward_layernorm.weight` : `${p}.post_attention_layernorm.weight`);
      const gate = linear(w(`${p}.mlp.gate_proj.weight`), h2, F), up = linear(w(`${p}.mlp.up_proj.weight`), h2, F);
      const act = gate.map((v, i) => (gemma ? geluTanh(v) : silu(v)) * up[i]!);
      const down = linear(w(`${p}.mlp.down_proj.weight`), act, D);
      const mo = gemma ? norm(down, `${p}.post_feedforward_layernorm.weight`) : down;
      return x1.map((v, i) => v + mo[i]!);
    });
  }
  return xs.map((x) => norm(x, 'model.norm.weight'));
}

/** Logits (vocab) of the given positions of ids (default: all). */
export function referenceLogits(m: RefModel, ids: readonly number[], positions?: readonly number[]): Float64Array[] {
  const a = archOf(m.config);
  const hs = referenceHidden(m, ids);
  const head = m.weight(a.tied ? 'model.embed_tokens.weight' : 'lm_head.weight');
  return (positions ?? ids.map((_, i) => i)).map((t) => {
    const z = linear(head, hs[t]!, a.V);
    return a.softcap === null ? z : z.map((v) => a.softcap! * Math.tanh(v / a.softcap!));
  });
}

/** The first index of the largest value. */
export function argmaxOf(x: ArrayLike<number>): number {
  let best = 0;
  for (let i = 1; i < x.length; i++) if (x[i]! > x[best]!) best = i;
  return best;
}

/** `steps` greedy tokens after the prompt, each from a full forward pass over the sequence so far. */
export function referenceGreedy(m: RefModel, prompt: readonly number[], steps: number): number[] {
  const seq = [...prompt];
  for (let s = 0; s < steps; s++) seq.push(argmaxOf(referenceLogits(m, seq, [seq.length - 1])[0]!));
  return seq.slice(prompt.length);
}
