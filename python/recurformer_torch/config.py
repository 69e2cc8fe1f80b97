"""ModelConfig from a Hugging Face config.json, the `recurformer` section, and the layout of KV-group kinds.

Mirrors src/model/config.ts (configFromHf), src/model/spec.ts (parseSpec) and src/model/layout.ts (Layout): the same
model types (llama, mistral, qwen2, qwen3, gemma3_text, gpt2), the same defaults, the same refusals for features
that change the computation and are not implemented.

Kinds of a KV group (its query heads follow it), as layout.ts defines them:
  attention  full KV: every key and value since the first token;
  recurrent  a Mamba-2 style recurrent head per query head, constant state (a converted model's replaced groups);
  window     sinks + the most recent `window` keys (StreamingLLM, or the streaming-heads baseline); chosen by the
             cache, never by the weights;
  recurrent+window  a converted model's replaced groups when its spec says kind "recurrent+window": each query head
             adds its recurrent head's output, scaled by a learned per-head `mix`, to its own softmax attention over
             the group's sinks + the most recent `window` keys (spec.window, spec.sinks: fixed by the weights).
"""
from __future__ import annotations

import math
import struct
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from .safetensors_io import FormatError

SUPPORTED_MODEL_TYPES = ("llama", "mistral", "qwen2", "gpt2", "qwen3", "gemma3_text")
KINDS = ("attention", "window", "recurrent", "recurrent+window")
# what a converted model's replaced groups may be (spec.kind)
REPLACED_KINDS = ("recurrent", "recurrent+window")


@dataclass(frozen=True)
class RopeScaling:
    type: str  # 'linear' | 'llama3'
    factor: float
    low_freq_factor: float = 0.0
    high_freq_factor: float = 0.0
    original_max_pos: float = 0.0


@dataclass(frozen=True)
class ModelConfig:
    """Field names follow src/model/config.ts ModelConfig (camelCase there, snake_case here)."""

    arch: str  # 'llama' | 'gpt2'
    vocab_size: int
    d_model: int
    n_layers: int
    n_heads: int
    n_kv_heads: int
    head_dim: int
    ffn_dim: int
    max_pos: int
    norm_eps: float
    norm: str  # 'rms' | 'layer'
    act: str  # 'silu' | 'gelu_tanh' | 'gelu_erf'
    rope_theta: float
    rope_style: str  # 'half' | 'none'
    rope_scaling: Optional[RopeScaling]
    sliding_window: Optional[int]
    qkv_bias: bool
    tied_embeddings: bool
    bos_id: int
    eos_id: Tuple[int, ...]
    qk_norm: bool = False
    norm_plus_one: bool = False
    post_norms: bool = False
    embed_scale: Optional[float] = None
    attn_scale: Optional[float] = None
    final_softcap: Optional[float] = None
    sliding_layers: Optional[Tuple[bool, ...]] = None
    rope_local_theta: Optional[float] = None

    @property
    def n_rep(self) -> int:
        return self.n_heads // self.n_kv_heads

    def layer_window(self, l: int) -> int:
        """Keys a query of layer l attends to at most (0: all of them)."""
        if self.sliding_window is None or (self.sliding_layers is not None and not self.sliding_layers[l]):
            return 0
        return self.sliding_window

    def uses_local_rope(self, l: int) -> bool:
        return self.rope_local_theta is not None and self.layer_window(l) > 0

    def scale(self) -> float:
        return self.attn_scale if self.attn_scale is not None else 1 / math.sqrt(self.head_dim)


def _num(j: dict, key: str, file: str, fallback=None):
    v = j.get(key)
    if v is None:
        if fallback is not None:
            return fallback
        raise FormatError(file, f'config key "{key}" is missing', "the config.json is incomplete")
    if isinstance(v, bool) or not isinstance(v, (int, float)):
        raise FormatError(file, f'config key "{key}" = {v!r} is not a number', "fix config.json")
    return v


def _reject(file: str, key: str, value, why: str):
    raise FormatError(file, f'config key "{key}" = {value!r} is not supported: {why}',
                      "recurformer implements the plain architecture only; use a checkpoint without this feature")


def _eos_list(v, file: str) -> Tuple[int, ...]:
    if v is None:
        return ()
    lst = v if isinstance(v, list) else [v]
    if not all(isinstance(x, int) for x in lst):
        raise FormatError(file, f"eos_token_id {v!r} is not a number or list", "fix config.json")
    return tuple(lst)


def _rope_scaling(v, file: str) -> Optional[RopeScaling]:
    if v is None:
        return None
    if not isinstance(v, dict):
        _reject(file, "rope_scaling", v, "not an object")
    t = v.get("rope_type", v.get("type"))
    if t == "default":
        return None
    if t == "linear":
        return RopeScaling("linear", _num(v, "factor", file))
    if t == "llama3":
        return RopeScaling("llama3", _num(v, "factor", file), _num(v, "low_freq_factor", file),
                           _num(v, "high_freq_factor", file), _num(v, "original_max_position_embeddings", file))
    _reject(file, "rope_scaling", v, f"rope type {t!r} (supported: linear, llama3)")


def _in_dtype(x: float, dtype) -> float:
    """A number as the checkpoint's dtype holds it (HF casts the Gemma embedding scale to the weights' dtype)."""
    f = struct.unpack("<f", struct.pack("<f", x))[0]
    if dtype == "float16":
        import numpy as np
        return float(np.float32(np.float16(f)))
    if dtype == "bfloat16":
        (u,) = struct.unpack("<I", struct.pack("<f", f))
        u = (u + 0x7FFF + ((u >> 16) & 1)) & 0xFFFF0000
        return struct.unpack("<f", struct.pack("<I", u))[0]
    return f


GEMMA3_DEFAULTS = dict(
    vocab_size=262208, hidden_size=2304, intermediate_size=9216, num_hidden_layers=26, num_attention_heads=8,
    num_key_value_heads=4, head_dim=256, max_position_embeddings=131072, rms_norm_eps=1e-6, rope_theta=1_000_000,
    rope_local_base_freq=10_000, query_pre_attn_scalar=256, sliding_window=4096, sliding_window_pattern=6,
    bos_token_id=2, eos_token_id=1,
)


def config_from_hf(j: dict, file: str = "config.json") -> ModelConfig:
    if not isinstance(j, dict):
        raise FormatError(file, "config is not a JSON object", "fix config.json")
    mt = j.get("model_type")
    if mt == "gpt2":
        return _gpt2(j, file)
    if mt in ("llama", "mistral", "qwen2", "qwen3"):
        return _llama(j, mt, file)
    if mt == "gemma3_text":
        return _gemma3(j, file)
    raise FormatError(file, f"unsupported architecture: model_type {mt!r}", f"supported: {', '.join(SUPPORTED_MODEL_TYPES)}")


def _llama(j: dict, mt: str, file: str) -> ModelConfig:
    act = j.get("hidden_act", "silu")
    if act != "silu":
        _reject(file, "hidden_act", act, "the Llama family uses SwiGLU with silu")
    if j.get("attention_bias") is True:
        _reject(file, "attention_bias", True, "biases on all attention projections")
    if j.get("mlp_bias") is True:
        _reject(file, "mlp_bias", True, "MLP biases")
    if j.get("partial_rotary_factor") not in (None, 1):
        _reject(file, "partial_rotary_factor", j["partial_rotary_factor"], "partial RoPE")
    if mt.startswith("qwen") and j.get("use_sliding_window") is True:
        _reject(file, "use_sliding_window", True, "Qwen's per-layer sliding window")
    d = _num(j, "hidden_size", file)
    nh = _num(j, "num_attention_heads", file)
    sw = j.get("sliding_window") if mt == "mistral" else None
    eos = j.get("eos_token_id")
    return ModelConfig(
        arch="llama", vocab_size=_num(j, "vocab_size", file), d_model=d, n_layers=_num(j, "num_hidden_layers", file),
        n_heads=nh, n_kv_heads=_num(j, "num_key_value_heads", file, nh), head_dim=int(_num(j, "head_dim", file, d // nh)),
        ffn_dim=_num(j, "intermediate_size", file), max_pos=_num(j, "max_position_embeddings", file),
        norm_eps=_num(j, "rms_norm_eps", file, 1e-6), norm="rms", act="silu", rope_theta=_num(j, "rope_theta", file, 10000),
        rope_style="half", rope_scaling=_rope_scaling(j.get("rope_scaling"), file),
        sliding_window=sw if isinstance(sw, int) else None, qkv_bias=mt == "qwen2",
        tied_embeddings=j.get("tie_word_embeddings") is True, bos_id=_num(j, "bos_token_id", file, 1),
        eos_id=_eos_list(2 if eos is None else eos, file), qk_norm=mt == "qwen3",
    )


def _gemma3(j0: dict, file: str) -> ModelConfig:
    if "sliding_window" in j0 and j0["sliding_window"] is None:
        _reject(file, "sliding_window", None, "Gemma 3's local layers need a window size")
    j = {**GEMMA3_DEFAULTS, **{k: v for k, v in j0.items() if v is not None}}
    act = j.get("hidden_activation", j.get("hidden_act", "gelu_pytorch_tanh"))
    if act != "gelu_pytorch_tanh":
        _reject(file, "hidden_activation", act, "Gemma 3 uses gelu_pytorch_tanh")
    for k in ("attn_logit_softcapping",):
        if k in j:
            _reject(file, k, j[k], "attention logit softcapping (Gemma 2)")
    n = _num(j, "num_hidden_layers", file)
    types = j.get("layer_types")
    if types is not None:
        if not isinstance(types, list) or len(types) != n:
            _reject(file, "layer_types", types, f"need {n} entries")
        sliding = tuple(t == "sliding_attention" for t in types)
    else:
        every = _num(j, "sliding_window_pattern", file)
        sliding = tuple((i + 1) % every != 0 for i in range(n))
    theta, local = _num(j, "rope_theta", file), _num(j, "rope_local_base_freq", file)
    scaling = _rope_scaling(j.get("rope_scaling"), file)
    rp = j.get("rope_parameters")
    if rp is not None:
        theta, local = _num(rp["full_attention"], "rope_theta", file), _num(rp["sliding_attention"], "rope_theta", file)
        scaling = _rope_scaling(rp["full_attention"], file)
    d = _num(j, "hidden_size", file)
    cap = j.get("final_logit_softcapping")
    return ModelConfig(
        arch="llama", vocab_size=_num(j, "vocab_size", file), d_model=d, n_layers=n,
        n_heads=_num(j, "num_attention_heads", file), n_kv_heads=_num(j, "num_key_value_heads", file),
        head_dim=_num(j, "head_dim", file), ffn_dim=_num(j, "intermediate_size", file),
        max_pos=_num(j, "max_position_embeddings", file), norm_eps=_num(j, "rms_norm_eps", file), norm="rms",
        act="gelu_tanh", rope_theta=theta, rope_style="half", rope_scaling=scaling,
        sliding_window=_num(j, "sliding_window", file), qkv_bias=False, tied_embeddings=j.get("tie_word_embeddings") is not False,
        bos_id=_num(j, "bos_token_id", file), eos_id=_eos_list(j.get("eos_token_id"), file), qk_norm=True,
        norm_plus_one=True, post_norms=True, embed_scale=_in_dtype(math.sqrt(d), j.get("torch_dtype", j.get("dtype"))),
        attn_scale=_num(j, "query_pre_attn_scalar", file) ** -0.5, final_softcap=cap if isinstance(cap, (int, float)) else None,
        sliding_layers=sliding, rope_local_theta=local,
    )


GPT2_ACT = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu_erf"}


def _gpt2(j: dict, file: str) -> ModelConfig:
    act = GPT2_ACT.get(j.get("activation_function", "gelu_new"))
    if act is None:
        _reject(file, "activation_function", j.get("activation_function"), "supported: gelu_new, gelu_pytorch_tanh, gelu")
    if j.get("scale_attn_weights") is False:
        _reject(file, "scale_attn_weights", False, "unscaled attention")
    if j.get("scale_attn_by_inverse_layer_idx") is True:
        _reject(file, "scale_attn_by_inverse_layer_idx", True, "per-layer attention scaling")
    if j.get("add_cross_attention") is True:
        _reject(file, "add_cross_attention", True, "cross-attention")
    d, nh = _num(j, "n_embd", file), _num(j, "n_head", file)
    return ModelConfig(
        arch="gpt2", vocab_size=_num(j, "vocab_size", file), d_model=d, n_layers=_num(j, "n_layer", file), n_heads=nh,
        n_kv_heads=nh, head_dim=d // nh, ffn_dim=_num(j, "n_inner", file, 4 * d), max_pos=_num(j, "n_positions", file),
        norm_eps=_num(j, "layer_norm_epsilon", file, 1e-5), norm="layer", act=act, rope_theta=10000, rope_style="none",
        rope_scaling=None, sliding_window=None, qkv_bias=True, tied_embeddings=j.get("tie_word_embeddings") is not False,
        bos_id=_num(j, "bos_token_id", file, 50256), eos_id=(_num(j, "eos_token_id", file, 50256),),
    )


def inv_freq(cfg: ModelConfig, local: bool = False) -> List[float]:
    """RoPE inverse frequencies as src/model/rope.ts computes them (float64, then rounded to float32 by the caller)."""
    d = cfg.head_dim
    theta = (cfg.rope_local_theta or cfg.rope_theta) if local else cfg.rope_theta
    f = [1 / math.pow(theta, (2 * i) / d) for i in range(d // 2)]
    s = None if local else cfg.rope_scaling
    if s is not None and s.type == "linear":
        f = [x / s.factor for x in f]
    elif s is not None and s.type == "llama3":
        low, high = s.original_max_pos / s.low_freq_factor, s.original_max_pos / s.high_freq_factor
        for i, x in enumerate(f):
            wl = 2 * math.pi / x
            if wl < high:
                continue
            if wl > low:
                f[i] = x / s.factor
            else:
                sm = (s.original_max_pos / wl - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor)
                f[i] = (1 - sm) * (x / s.factor) + sm * x
    return f


# ---- the recurformer section and the layout ------------------------------------------------------------------

@dataclass(frozen=True)
class RecurformerSpec:
    """config.json's `recurformer` section (src/model/spec.ts parseSpec). `kind` is what every replaced group of the
    model is: "recurrent" (the recurrent head alone; window and sinks 0) or "recurrent+window" (the head's own
    attention over `sinks` + the last `window` keys of its group, plus mix * the recurrent head)."""

    P: int
    N: int
    conv_k: int
    gate: bool
    norm: bool
    chunk: int
    layers: Tuple[Tuple[int, Tuple[int, ...]], ...]  # (layer, replaced KV groups sorted)
    kind: str = "recurrent"
    window: int = 0
    sinks: int = 0

    def to_json(self) -> dict:
        j = {"version": 1, "P": self.P, "N": self.N, "convK": self.conv_k, "gate": self.gate, "norm": self.norm,
             "chunk": self.chunk}
        if self.kind != "recurrent":  # pure recurrent folders are written as before the kind existed
            j.update(kind=self.kind, window=self.window, sinks=self.sinks)
        j["layers"] = [{"layer": l, "groups": list(g)} for l, g in self.layers]
        return j


def parse_spec(j, cfg: ModelConfig, file: str) -> RecurformerSpec:
    if not isinstance(j, dict):
        raise FormatError(file, "recurformer section is not an object", "fix config.json")
    if j.get("version") != 1:
        raise FormatError(file, f"recurformer.version {j.get('version')!r} is not supported", "this reads version 1")

    def is_int(v) -> bool:
        return isinstance(v, int) and not isinstance(v, bool)

    def pos(k: str) -> int:
        v = j.get(k)
        if not is_int(v) or v <= 0:
            raise FormatError(file, f"recurformer.{k} = {v!r} must be a positive integer", "fix the recurformer section")
        return v

    kind = j.get("kind", "recurrent")
    if kind not in REPLACED_KINDS:
        raise FormatError(file, f"recurformer.kind = {kind!r} is not one of {', '.join(repr(k) for k in REPLACED_KINDS)}",
                          "fix config.json (absent means recurrent)")
    window = sinks = 0
    if kind == "recurrent+window":
        if "window" not in j:
            raise FormatError(file, 'recurformer.window is missing (kind "recurrent+window" needs it)',
                              "give the window of recent keys each replaced head attends to")
        if "sinks" not in j:
            raise FormatError(file, 'recurformer.sinks is missing (kind "recurrent+window" needs it)',
                              "give the number of first tokens each replaced head keeps attending to (0 for none)")
        window = pos("window")
        sinks = j.get("sinks")
        if not is_int(sinks) or sinks < 0:
            raise FormatError(file, f"recurformer.sinks = {sinks!r} must be an integer >= 0", "fix the recurformer section")
    else:
        if "window" in j or "sinks" in j:
            raise FormatError(file, 'recurformer.window and recurformer.sinks belong to kind "recurrent+window", but the '
                              'kind is "recurrent"', 'remove them, or set "kind": "recurrent+window"')

    raw = j.get("layers")
    if not isinstance(raw, list):
        raise FormatError(file, "recurformer.layers is not a list", "fix config.json")
    layers = []
    for i, e in enumerate(raw):
        l = e.get("layer") if isinstance(e, dict) else None
        if not isinstance(l, int) or not 0 <= l < cfg.n_layers:
            raise FormatError(file, f"recurformer.layers[{i}].layer = {l!r} is not a layer of this model", "fix config.json")
        gs = e.get("groups")
        if not isinstance(gs, list) or not all(isinstance(g, int) and 0 <= g < cfg.n_kv_heads for g in gs):
            raise FormatError(file, f"recurformer.layers[{i}].groups must list KV groups in 0..{cfg.n_kv_heads - 1}", "fix config.json")
        layers.append((l, tuple(sorted(set(gs)))))
    return RecurformerSpec(pos("P"), pos("N"), pos("convK"), j.get("gate") is True, j.get("norm") is True, pos("chunk"),
                           tuple(layers), kind, window, sinks)


@dataclass(frozen=True)
class RecurrentDims:
    """Shapes of one layer's recurrent heads (layout.ts RecurrentDims)."""

    n_heads: int  # replaced query heads H
    n_groups: int  # their KV groups G (B is shared within a group)
    group_of: Tuple[int, ...]  # per head, its group index 0..G-1
    P: int
    N: int
    conv_k: int
    gate: bool
    norm: bool
    norm_eps: float
    kind: str = "recurrent"  # 'recurrent+window': the heads also attend to a window and carry `mix`

    @property
    def channels(self) -> int:
        return self.n_heads * self.P + self.n_groups * self.N + self.n_heads * self.N


@dataclass(frozen=True)
class LayerLayout:
    layer: int
    kinds: Tuple[str, ...]  # per KV group
    groups: Dict[str, Tuple[int, ...]]
    heads: Dict[str, Tuple[int, ...]]
    merge: Optional[Tuple[int, ...]]  # output slot h reads entry merge[h] of the heads concatenated in KINDS order
    recurrent: Optional[RecurrentDims]  # the replaced groups' recurrent heads (kind recurrent or recurrent+window)
    own_window: int

    @property
    def replaced_kind(self) -> Optional[str]:
        """'recurrent' or 'recurrent+window' when the layer has replaced groups, else None."""
        return self.recurrent.kind if self.recurrent is not None else None

    @property
    def replaced_heads(self) -> Tuple[int, ...]:
        """The replaced query heads, in the recurrent heads' order."""
        return self.heads[self.replaced_kind] if self.recurrent is not None else ()


def heads_of_groups(cfg: ModelConfig, groups: Sequence[int]) -> List[int]:
    return [g * cfg.n_rep + r for g in groups for r in range(cfg.n_rep)]


def make_layout(cfg: ModelConfig, spec: Optional[RecurformerSpec],
                windows: Optional[Dict[int, Sequence[int]] | str] = None) -> List[LayerLayout]:
    """The model's layout (attention + a converted model's replaced groups, of kind spec.kind); `windows` turns
    attention groups into window groups: 'all' (StreamingLLM) or {layer: groups} (streaming heads)."""
    kinds = [["attention"] * cfg.n_kv_heads for _ in range(cfg.n_layers)]
    for l, gs in (spec.layers if spec else ()):
        for g in gs:
            kinds[l][g] = spec.kind
    if windows == "all":
        kinds = [[("window" if k == "attention" else k) for k in row] for row in kinds]
    elif windows:
        for l, gs in windows.items():
            for g in gs:
                if kinds[l][g] != "attention":
                    raise ValueError(f"layer {l} group {g} is {kinds[l][g]}, not attention")
                kinds[l][g] = "window"
    out = []
    for l, row in enumerate(kinds):
        groups = {k: tuple(g for g, kk in enumerate(row) if kk == k) for k in KINDS}
        heads = {k: tuple(heads_of_groups(cfg, groups[k])) for k in KINDS}
        single = any(len(groups[k]) == len(row) for k in KINDS)
        merge = None
        if not single:
            order = [h for k in KINDS for h in heads[k]]
            m = [0] * cfg.n_heads
            for i, h in enumerate(order):
                m[h] = i
            merge = tuple(m)
        rec = None
        replaced = [k for k in REPLACED_KINDS if groups[k]]
        if replaced:  # one kind per model (spec.kind)
            G = len(groups[replaced[0]])
            rec = RecurrentDims(G * cfg.n_rep, G, tuple(i // cfg.n_rep for i in range(G * cfg.n_rep)), spec.P, spec.N,
                                spec.conv_k, spec.gate, spec.norm, cfg.norm_eps, replaced[0])
        out.append(LayerLayout(l, tuple(row), groups, heads, merge, rec, cfg.layer_window(l)))
    return out
