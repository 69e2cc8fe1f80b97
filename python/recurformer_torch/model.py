"""The decoder of a folder this project writes, in plain PyTorch: the Llama family (Llama 1/2/3, Mistral, Qwen2,
Qwen3, Gemma 3) and GPT-2, with every KV-group kind of the layout (attention, recurrent, window, recurrent+window).

Module and parameter names are the checkpoint's Hugging Face names, so `state_dict()` keys are the safetensors
names (GPT-2's Conv1D matrices stay in their (in, out) file layout, as in transformers).

Glossary (here -> src/model):
  RecurformerLM.forward      DecoderLM.forward (transformer.ts)
  LlamaBlock / Gpt2Block     Llama.block / Gpt2.block (llama.ts, gpt2.ts), one block written once
  attend()                   attend() (attention.ts): RoPE, each kind of group through its store, merge
  RecurrentHeads             recurrentChunked / recurrentStep (recurrent-head.ts)
  HybridCache                HybridMemory (inference/hybrid-memory.ts); KVStore / WindowStore / state
  layout (config.py)         Layout (layout.ts): per layer and KV group attention | window | recurrent | recurrent+window
  taps                       TapSink names `blk.{l}.in`, `blk.{l}.head_out`, `blk.{l}.rec_out` (taps.ts)

Shapes: B batch, T new tokens, S keys visible, D d_model, Hq / Hkv heads, Dh head dim, F ffn dim, V vocab.
"""
from __future__ import annotations

import math
from typing import Dict, List, Optional

import torch
import torch.nn.functional as F
from torch import nn

from .cache import HybridCache, LayerStores
from .config import LayerLayout, ModelConfig, RecurformerSpec, inv_freq, make_layout
from .recurrent import RecurrentHeads


class RMSNorm(nn.Module):
    """x / rms(x) * w, or * (1 + w) with Gemma's norm_plus_one; computed in float32."""

    def __init__(self, dim: int, eps: float, plus_one: bool = False):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps, self.plus_one = eps, plus_one

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        w = self.weight.float()
        y = xf * torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + self.eps) * (1 + w if self.plus_one else w)
        return y.to(x.dtype)


class Conv1D(nn.Module):
    """GPT-2's projection with the weight stored (in, out): y = x @ W + b."""

    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(x, self.weight.t(), self.bias)


def rope(x: torch.Tensor, positions: torch.Tensor, freq: torch.Tensor) -> torch.Tensor:
    """Rotate-half RoPE on x (B, T, H, Dh): dim i pairs with i + Dh/2. Angles in float64 like rope.ts."""
    half = x.shape[-1] // 2
    ang = positions.double().unsqueeze(-1) * freq.double()  # (T, Dh/2)
    cos = torch.cos(ang).to(x.dtype)[None, :, None, :]
    sin = torch.sin(ang).to(x.dtype)[None, :, None, :]
    a0, a1 = x[..., :half], x[..., half:]
    return torch.cat([a0 * cos - a1 * sin, a0 * sin + a1 * cos], dim=-1)


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, q_pos: torch.Tensor, k_pos: torch.Tensor,
              scale: float, window: int, sinks: int) -> torch.Tensor:
    """softmax(q k^T * scale + mask) v with GQA. q (B, T, Hq, Dh), k and v (B, S, G, Dh); key j is visible to query i
    when k_pos[j] <= q_pos[i] and (no window, or k_pos[j] > q_pos[i] - window, or k_pos[j] < sinks)."""
    rep = q.shape[2] // k.shape[2]
    if rep > 1:
        k, v = k.repeat_interleave(rep, dim=2), v.repeat_interleave(rep, dim=2)
    qp, kp = q_pos[:, None], k_pos[None, :]
    vis = kp <= qp
    if window > 0:
        vis = vis & ((kp > qp - window) | (kp < sinks))
    scores = torch.einsum("bthd,bshd->bhts", q, k) * scale  # (B, H, T, S)
    scores = scores.masked_fill(~vis, float("-inf"))
    probs = torch.softmax(scores.float(), dim=-1).to(q.dtype)
    return torch.einsum("bhts,bshd->bthd", probs, v)  # (B, T, H, Dh)


def mix_heads(a: torch.Tensor, r: torch.Tensor, mix: torch.Tensor) -> torch.Tensor:
    """A recurrent+window head's output: its windowed attention a plus mix * its recurrent head r, both (B, T, H, Dh),
    mix (H); in float32, the product first (a + (r * mix)), then back to a's dtype."""
    return (a.float() + r.float() * mix.float().view(1, 1, -1, 1)).to(a.dtype)


class Attend:
    """The attention core of one layer (attention.ts `attend`), bound to a call's positions and cache."""

    def __init__(self, model: "RecurformerLM", layout: List[LayerLayout], positions: torch.Tensor,
                 cache: Optional[HybridCache], taps: Optional[Dict[str, torch.Tensor]], wanted):
        self.m, self.layout, self.positions, self.cache, self.taps, self.wanted = model, layout, positions, cache, taps, wanted

    def __call__(self, l: int, h: torch.Tensor, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        lay = self.layout[l]
        stores: Optional[LayerStores] = self.cache.layer(l) if self.cache is not None else None
        start = self.cache.length if self.cache is not None else 0
        parts = []
        for kind in ("attention", "window"):
            if lay.groups[kind]:
                store = (stores.kv if kind == "attention" else stores.window) if stores is not None else None
                parts.append(self.m.attend_groups(l, lay, kind, q, k, v, self.positions, store, start))
        rec = self.m.recurrent_of(l)
        if rec is not None:
            B, T = h.shape[:2]
            prev = stores.recurrent if stores is not None else None
            if T == 1 and stores is not None:
                y, st = rec.step(h, prev if prev is not None else rec.zero_state(B, h.device))
            else:
                y, st = rec.chunked(h, self.m.chunk, prev)
            if stores is not None:
                stores.recurrent = st
            y = y.reshape(B, T, rec.dims.n_heads, rec.dims.P)
            if self.taps is not None and self.wanted(f"blk.{l}.rec_out"):
                self.taps[f"blk.{l}.rec_out"] = y  # the recurrent read-out (B, T, replaced heads, P), before mix
            if lay.replaced_kind == "recurrent+window":
                a = self.m.attend_groups(l, lay, "recurrent+window", q, k, v, self.positions,
                                         stores.rwindow if stores is not None else None, start)
                y = mix_heads(a, y, rec.mix)
            parts.append(y)
        heads = torch.cat(parts, dim=2) if len(parts) > 1 else parts[0]
        if lay.merge is not None:
            heads = heads[:, :, list(lay.merge)]
        if self.taps is not None and self.wanted(f"blk.{l}.head_out"):
            self.taps[f"blk.{l}.head_out"] = heads
        return heads  # (B, T, Hq, Dh)


def _act(cfg: ModelConfig, x: torch.Tensor) -> torch.Tensor:
    if cfg.act == "silu":
        return F.silu(x)
    if cfg.act == "gelu_tanh":
        return F.gelu(x, approximate="tanh")
    return F.gelu(x)


class LlamaAttn(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        Dh = cfg.head_dim
        self.q_proj = nn.Linear(cfg.d_model, cfg.n_heads * Dh, bias=cfg.qkv_bias)
        self.k_proj = nn.Linear(cfg.d_model, cfg.n_kv_heads * Dh, bias=cfg.qkv_bias)
        self.v_proj = nn.Linear(cfg.d_model, cfg.n_kv_heads * Dh, bias=cfg.qkv_bias)
        self.o_proj = nn.Linear(cfg.n_heads * Dh, cfg.d_model, bias=False)
        if cfg.qk_norm:
            self.q_norm = RMSNorm(Dh, cfg.norm_eps, cfg.norm_plus_one)
            self.k_norm = RMSNorm(Dh, cfg.norm_eps, cfg.norm_plus_one)


class LlamaMLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.d_model, cfg.ffn_dim, bias=False)
        self.up_proj = nn.Linear(cfg.d_model, cfg.ffn_dim, bias=False)
        self.down_proj = nn.Linear(cfg.ffn_dim, cfg.d_model, bias=False)


class LlamaBlock(nn.Module):
    """x + attn(norm(x)), then + mlp(norm(x)); with Gemma's post-norms each branch is normalized before its add."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        eps, p1 = cfg.norm_eps, cfg.norm_plus_one
        self.input_layernorm = RMSNorm(cfg.d_model, eps, p1)
        self.post_attention_layernorm = RMSNorm(cfg.d_model, eps, p1)
        if cfg.post_norms:
            self.pre_feedforward_layernorm = RMSNorm(cfg.d_model, eps, p1)
            self.post_feedforward_layernorm = RMSNorm(cfg.d_model, eps, p1)
        self.self_attn = LlamaAttn(cfg)
        self.mlp = LlamaMLP(cfg)

    def input_norm(self, x: torch.Tensor) -> torch.Tensor:
        return self.input_layernorm(x)

    def qkv(self, h: torch.Tensor):
        """The attention's q (B, T, Hq, Dh), k and v (B, T, Hkv, Dh) of the normalized input h, before RoPE."""
        c, a = self.cfg, self.self_attn
        B, T, _ = h.shape
        q = a.q_proj(h).view(B, T, c.n_heads, c.head_dim)  # (B, T, Hq, Dh)
        k = a.k_proj(h).view(B, T, c.n_kv_heads, c.head_dim)  # (B, T, Hkv, Dh)
        v = a.v_proj(h).view(B, T, c.n_kv_heads, c.head_dim)
        if c.qk_norm:
            q, k = a.q_norm(q), a.k_norm(k)  # per head
        return q, k, v

    def forward(self, l: int, x: torch.Tensor, attend: Attend) -> torch.Tensor:
        c, a = self.cfg, self.self_attn
        B, T, _ = x.shape
        h = self.input_layernorm(x)  # (B, T, D)
        q, k, v = self.qkv(h)
        heads = attend(l, h, q, k, v)  # (B, T, Hq, Dh)
        o = a.o_proj(heads.reshape(B, T, c.n_heads * c.head_dim))  # (B, T, D)
        if c.post_norms:
            x = x + self.post_attention_layernorm(o)
            m = self.mlp
            h2 = self.pre_feedforward_layernorm(x)
            return x + self.post_feedforward_layernorm(m.down_proj(_act(c, m.gate_proj(h2)) * m.up_proj(h2)))
        x = x + o
        h2 = self.post_attention_layernorm(x)
        m = self.mlp
        return x + m.down_proj(_act(c, m.gate_proj(h2)) * m.up_proj(h2))  # (B, T, D)


class Gpt2Attn(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.c_attn = Conv1D(cfg.d_model, 3 * cfg.d_model)
        self.c_proj = Conv1D(cfg.d_model, cfg.d_model)


class Gpt2MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.c_fc = Conv1D(cfg.d_model, cfg.ffn_dim)
        self.c_proj = Conv1D(cfg.ffn_dim, cfg.d_model)


class Gpt2Block(nn.Module):
    """x + attn(ln_1(x)), then + mlp(ln_2(x))."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.ln_1 = nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)
        self.ln_2 = nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)
        self.attn = Gpt2Attn(cfg)
        self.mlp = Gpt2MLP(cfg)

    def input_norm(self, x: torch.Tensor) -> torch.Tensor:
        return self.ln_1(x)

    def qkv(self, h: torch.Tensor):
        """q, k, v (B, T, H, Dh) of the normalized input h."""
        c = self.cfg
        B, T, D = h.shape
        q, k, v = self.attn.c_attn(h).split(D, dim=2)  # (B, T, D) each
        shape = (B, T, c.n_heads, c.head_dim)
        return q.reshape(shape), k.reshape(shape), v.reshape(shape)

    def forward(self, l: int, x: torch.Tensor, attend: Attend) -> torch.Tensor:
        B, T, D = x.shape
        h = self.ln_1(x)
        heads = attend(l, h, *self.qkv(h))
        x = x + self.attn.c_proj(heads.reshape(B, T, D))
        return x + self.mlp.c_proj(_act(self.cfg, self.mlp.c_fc(self.ln_2(x))))


class RecurformerLM(nn.Module):
    """A (converted) decoder LM. `spec` is config.json's recurformer section (None: a plain Transformer)."""

    def __init__(self, cfg: ModelConfig, spec: Optional[RecurformerSpec] = None):
        super().__init__()
        self.cfg, self.spec = cfg, spec
        self.layout = make_layout(cfg, spec)
        self.chunk = spec.chunk if spec else 64
        if cfg.arch == "gpt2":
            self.transformer = nn.Module()
            self.transformer.wte = nn.Embedding(cfg.vocab_size, cfg.d_model)
            self.transformer.wpe = nn.Embedding(cfg.max_pos, cfg.d_model)
            self.transformer.h = nn.ModuleList([Gpt2Block(cfg) for _ in range(cfg.n_layers)])
            self.transformer.ln_f = nn.LayerNorm(cfg.d_model, eps=cfg.norm_eps)
            blocks = self.transformer.h
        else:
            self.model = nn.Module()
            self.model.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.d_model)
            self.model.layers = nn.ModuleList([LlamaBlock(cfg) for _ in range(cfg.n_layers)])
            self.model.norm = RMSNorm(cfg.d_model, cfg.norm_eps, cfg.norm_plus_one)
            blocks = self.model.layers
        if not cfg.tied_embeddings:
            self.lm_head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        for L in self.layout:
            if L.recurrent is not None:
                blocks[L.layer].recurrent = RecurrentHeads(cfg.d_model, L.recurrent)
        if cfg.rope_style != "none":
            g = torch.tensor(inv_freq(cfg), dtype=torch.float32)
            loc = torch.tensor(inv_freq(cfg, local=True), dtype=torch.float32) if cfg.rope_local_theta is not None else g
            self.register_buffer("freq_global", g, persistent=False)
            self.register_buffer("freq_local", loc, persistent=False)

    @property
    def blocks(self) -> nn.ModuleList:
        return self.transformer.h if self.cfg.arch == "gpt2" else self.model.layers

    def layer_prefix(self, l: int) -> str:
        return f"transformer.h.{l}" if self.cfg.arch == "gpt2" else f"model.layers.{l}"

    def freq(self, l: int) -> torch.Tensor:
        return self.freq_local if self.cfg.uses_local_rope(l) else self.freq_global

    def recurrent_of(self, l: int) -> Optional[RecurrentHeads]:
        return getattr(self.blocks[l], "recurrent", None)

    def recurrent_layers(self) -> List[int]:
        return [L.layer for L in self.layout if L.recurrent is not None]

    def attend_groups(self, l: int, lay: LayerLayout, kind: str, q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
                      positions: torch.Tensor, store=None, start: int = 0) -> torch.Tensor:
        """Softmax attention of the query heads of layer l's `kind` groups over those groups' keys (RoPE applied
        here): through `store` when given (a cache's KV or window store, which holds the earlier keys), else over the
        T keys of this call. The layer's own sliding window applies; a window store's, or the spec's for
        recurrent+window groups, narrows it and keeps its sinks visible. q (B, T, Hq, Dh), k and v (B, T, Hkv, Dh)
        -> (B, T, heads of the kind, Dh)."""
        cfg = self.cfg
        groups = lay.groups[kind]
        whole = len(groups) == cfg.n_kv_heads
        qk = q if whole else q[:, :, list(lay.heads[kind])]  # (B, T, Hk, Dh)
        kk = k if whole else k[:, :, list(groups)]  # (B, T, Gk, Dh)
        vk = v if whole else v[:, :, list(groups)]
        if cfg.rope_style != "none":
            f = self.freq(l)
            qk, kk = rope(qk, positions, f), rope(kk, positions, f)
        win = (self.spec.window, self.spec.sinks) if kind == "recurrent+window" else None
        if store is not None:
            kv_k, kv_v, k_pos, win = store.append(kk, vk, start)
        else:
            kv_k, kv_v, k_pos = kk, vk, positions
        window, sinks = lay.own_window, 0
        if win is not None:  # a window narrows the layer's own window
            window = min(lay.own_window, win[0]) if lay.own_window > 0 else win[0]
            sinks = win[1]
        return attention(qk, kv_k, kv_v, positions, k_pos, cfg.scale(), window, sinks)

    def replaced_heads(self, l: int, h: torch.Tensor, qkv=None) -> torch.Tensor:
        """Outputs (B, T, replaced heads, P) of layer l's replaced heads for its normalized input h (B, T, D) from
        position 0, without a cache (the align objective's student): the recurrent heads (chunked), and with kind
        recurrent+window their windowed attention + mix * the recurrent heads. The attention reads `qkv` (q, k, v of
        the whole layer before RoPE: align passes the teacher's), by default this model's q/k/v of h."""
        rec, lay = self.recurrent_of(l), self.layout[l]
        B, T = h.shape[:2]
        y, _ = rec.chunked(h, self.chunk)
        y = y.reshape(B, T, rec.dims.n_heads, rec.dims.P)
        if lay.replaced_kind == "recurrent+window":
            q, k, v = qkv if qkv is not None else self.blocks[l].qkv(h)
            positions = torch.arange(T, device=h.device)
            y = mix_heads(self.attend_groups(l, lay, "recurrent+window", q, k, v, positions), y, rec.mix)
        return y

    def input_norm(self, l: int, x: torch.Tensor) -> torch.Tensor:
        return self.blocks[l].input_norm(x)

    def embed(self, ids: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        if c.arch == "gpt2":
            if int(positions.max()) >= c.max_pos:
                raise ValueError(f"forward: positions reach {int(positions.max())}, beyond the {c.max_pos} learned positions")
            return self.transformer.wte(ids) + self.transformer.wpe(positions)[None]
        x = self.model.embed_tokens(ids)
        return x if c.embed_scale is None else x * c.embed_scale

    def head(self, x: torch.Tensor) -> torch.Tensor:
        c = self.cfg
        if c.arch == "gpt2":
            w = self.transformer.wte.weight if c.tied_embeddings else self.lm_head.weight
            return F.linear(self.transformer.ln_f(x), w)
        w = self.model.embed_tokens.weight if c.tied_embeddings else self.lm_head.weight
        logits = F.linear(self.model.norm(x), w)
        if c.final_softcap is not None:
            logits = torch.tanh(logits / c.final_softcap) * c.final_softcap
        return logits

    def forward(self, ids: torch.Tensor, cache: Optional[HybridCache] = None, taps: Optional[Dict[str, torch.Tensor]] = None,
                wanted=None, last_only: bool = False, hidden_only: bool = False) -> torch.Tensor:
        """Logits (B, T, V) for token ids (B, T). With a cache the call reads and extends it (and commits its tokens).
        `taps` (a dict) receives `blk.{l}.in`, `blk.{l}.head_out` and (replaced layers) `blk.{l}.rec_out` for the names
        `wanted(name)` accepts."""
        B, T = ids.shape
        start = cache.length if cache is not None else 0
        positions = torch.arange(start, start + T, device=ids.device)
        layout = cache.layout if cache is not None else self.layout
        want = wanted or (lambda n: True)
        attend = Attend(self, layout, positions, cache, taps, want)
        x = self.embed(ids, positions)  # (B, T, D)
        for l, blk in enumerate(self.blocks):
            if taps is not None and want(f"blk.{l}.in"):
                taps[f"blk.{l}.in"] = x
            x = blk(l, x, attend)
        if cache is not None:
            cache.commit(T)
        if hidden_only:
            return x
        if last_only and T > 1:
            x = x[:, -1:]
        return self.head(x)


@torch.no_grad()
def greedy(model: RecurformerLM, prompt: List[int], steps: int, cache: Optional[HybridCache] = None):
    """Greedy generation with the hybrid cache: the prompt in one forward, then `steps` tokens one at a time (the
    reference the Hugging Face wrapper's generate() is checked against). Returns (new token ids, the last logits of
    each forward (steps + 1, V))."""
    dev = next(model.parameters()).device
    cache = cache if cache is not None else HybridCache(model)
    last = model(torch.tensor([prompt], device=dev), cache=cache, last_only=True)[0, -1]
    rows, ids = [last], []
    for _ in range(steps):
        nxt = int(torch.argmax(last))
        ids.append(nxt)
        last = model(torch.tensor([[nxt]], device=dev), cache=cache)[0, -1]
        rows.append(last)
    return ids, torch.stack(rows)
