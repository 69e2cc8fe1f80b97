"""Loading and saving the folder layout the TypeScript side reads and writes (docs/formats.md, docs/convert.md):
config.json (Hugging Face keys plus a `recurformer` section), model.safetensors or shards with an index,
generation_config.json, the tokenizer files and plan.json.

Round trip: every tensor is loaded as float32 (F16 and BF16 widen exactly) and saved back in the dtype it was read
in (dtype='keep'), so TS -> PyTorch -> TS keeps every tensor's bits; recurrent tensors are never cast down (a
trained one that no longer fits its 16-bit type is written in F32, as the TypeScript trainer writes it). Tensors are written in the order they were read (new ones last), config.json keeps its
keys in order and numbers in JavaScript's notation, so an unchanged model is written byte for byte as it was read.
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Dict, List, Optional

import numpy as np
import torch

from .config import ModelConfig, RecurformerSpec, config_from_hf, parse_spec
from .model import RecurformerLM
from .safetensors_io import (DEFAULT_MAX_SHARD_BYTES, FormatError, RawTensor, f32_to_bf16_bits, read_safetensors_folder,
                             write_file_atomic, write_safetensors_folder)

# buffers some checkpoints carry that are not weights (dropped, as src/io/weight-names.ts IGNORED does)
IGNORED = (re.compile(r"\.attn\.(bias|masked_bias)$"), re.compile(r"rotary_emb\.inv_freq$"))
COPIED = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja", "plan.json")
TORCH_DTYPE = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}


@dataclass
class FolderInfo:
    """What saving needs to write a folder as it was read."""

    source: str
    config_json: dict
    order: List[str]
    dtypes: Dict[str, str]
    extra_files: Dict[str, str] = field(default_factory=dict)  # name -> source path


def js_number(x) -> str:
    """A number as JavaScript's JSON.stringify writes it (shortest round trip; decimal between 1e-7 and 1e21)."""
    if isinstance(x, bool):
        return "true" if x else "false"
    if isinstance(x, int):
        return str(x)
    if not math.isfinite(x):
        return "null"
    if x == int(x) and abs(x) < 1e21:
        return str(int(x))
    r = repr(float(x))
    if 1e-7 <= abs(x) < 1e21:
        s = format(Decimal(r), "f")
        return s.rstrip("0").rstrip(".") if "." in s else s
    m, e = r.split("e")
    return f"{m}e{'+' if int(e) > 0 else '-'}{abs(int(e))}"


def js_json(v, indent: int = 2, level: int = 0) -> str:
    """JSON.stringify(v, null, indent)."""
    pad, inner = " " * (indent * level), " " * (indent * (level + 1))
    if v is None:
        return "null"
    if isinstance(v, (bool, int, float)):
        return js_number(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        if not v:
            return "[]"
        return "[\n" + ",\n".join(inner + js_json(e, indent, level + 1) for e in v) + "\n" + pad + "]"
    if isinstance(v, dict):
        if not v:
            return "{}"
        return "{\n" + ",\n".join(f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {js_json(e, indent, level + 1)}"
                                  for k, e in v.items()) + "\n" + pad + "}"
    raise TypeError(f"js_json: cannot write {type(v).__name__}")


def _canonical(cfg: ModelConfig, name: str) -> str:
    if cfg.arch == "gpt2" and not name.startswith("transformer.") and name != "lm_head.weight":
        return f"transformer.{name}"  # old GPT-2 names
    return name


def load_folder(path: str, device: Optional[str] = None) -> RecurformerLM:
    """The model of a folder this project writes (or a plain Hugging Face folder of a supported family). The returned
    module carries `.info` (FolderInfo) for save_folder."""
    if os.path.isdir(os.path.join(path, "model")) and not os.path.exists(os.path.join(path, "config.json")):
        path = os.path.join(path, "model")  # a train run folder
    cfile = os.path.join(path, "config.json")
    with open(cfile, encoding="utf-8") as f:
        cj = json.load(f)
    cfg = config_from_hf(cj, cfile)
    spec = parse_spec(cj["recurformer"], cfg, cfile) if "recurformer" in cj else None
    raw = read_safetensors_folder(path)
    by_name: Dict[str, RawTensor] = {}
    for name, t in raw.items():
        if any(r.search(name) for r in IGNORED):
            continue
        by_name[_canonical(cfg, name)] = t
    model = RecurformerLM(cfg, spec)
    sd = model.state_dict()
    head_key = "lm_head.weight"
    if cfg.tied_embeddings and head_key in by_name:
        emb = by_name["transformer.wte.weight" if cfg.arch == "gpt2" else "model.embed_tokens.weight"]
        if not np.array_equal(emb.to_f32(), by_name[head_key].to_f32()):
            raise FormatError(path, "lm_head.weight present but the config says tie_word_embeddings", "set tie_word_embeddings to false", head_key)
        del by_name[head_key]
    missing = [k for k in sd if k not in by_name]
    extra = [k for k in by_name if k not in sd]
    if missing or extra:
        raise FormatError(path, f"tensors do not match the config: missing {missing[:6]}, extra {extra[:6]}",
                          "the config and the weights come from different models")
    with torch.no_grad():
        for k, p in sd.items():
            t = by_name[k]
            if list(p.shape) != list(t.shape):
                raise FormatError(path, f"shape {t.shape} does not match the config's {list(p.shape)}", "the config and the weights differ", k)
            p.copy_(torch.from_numpy(np.ascontiguousarray(t.to_f32())))
    extra_files = {f: os.path.join(path, f) for f in COPIED if os.path.exists(os.path.join(path, f))}
    gen = os.path.join(path, "generation_config.json")
    if os.path.exists(gen):
        extra_files["generation_config.json"] = gen
    model.info = FolderInfo(path, cj, list(by_name.keys()), {k: t.dtype for k, t in by_name.items()}, extra_files)
    return model.to(device) if device else model


def _stored(name: str, t: torch.Tensor, dtype: str) -> RawTensor:
    a = t.detach().to("cpu", torch.float32).contiguous().numpy()
    if dtype == "F32":
        data = a.astype(np.float32, copy=True)
    elif dtype == "F16":
        data = a.astype(np.float16)
    else:
        data = f32_to_bf16_bits(a)
    return RawTensor(name, dtype, list(a.shape), data)


def _exact_in(t: torch.Tensor, dtype: str) -> bool:
    """Whether every value of t is a value of the 16-bit dtype (so writing it there loses nothing)."""
    x = t.detach().cpu().float()
    return bool(torch.equal(x.to(torch.bfloat16 if dtype == "BF16" else torch.float16).float(), x))


def save_folder(model: RecurformerLM, path: str, dtype: str = "keep", max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
                state_dict: Optional[Dict[str, torch.Tensor]] = None) -> List[str]:
    """Writes the model as a folder the TypeScript side loads: `dtype` 'keep' (each tensor as read), or F32, F16, BF16
    for every non-recurrent tensor (recurrent tensors keep their type while unchanged, else F32). `state_dict`: the
    tensors to write instead of model.state_dict() (a sharded model's gathered full state dict). Returns the weight
    files written."""
    os.makedirs(path, exist_ok=True)
    info: Optional[FolderInfo] = getattr(model, "info", None)
    sd = state_dict if state_dict is not None else model.state_dict()
    order = [k for k in (info.order if info else []) if k in sd] + [k for k in sd if not info or k not in info.order]
    tensors = []
    for k in order:
        read = info.dtypes.get(k, "F32") if info else "F32"
        if ".recurrent." in k:
            # as the TypeScript writer: recurrent tensors are never cast; one read in 16 bits stays 16-bit while its
            # values are still 16-bit values (unchanged), and a trained one is written in float32 (nothing rounded)
            dt = read if read == "F32" or _exact_in(sd[k], read) else "F32"
        else:
            dt = read if dtype == "keep" else dtype
        tensors.append(_stored(k, sd[k], dt))
    cj = dict(info.config_json) if info else {}
    if not info:
        raise ValueError("save_folder: the model was not loaded from a folder (load_folder), so its config.json is unknown")
    if model.spec is not None:
        cj["recurformer"] = model.spec.to_json()
    if dtype != "keep":
        cj["torch_dtype"] = TORCH_DTYPE[dtype]
    write_file_atomic(os.path.join(path, "config.json"), [(js_json(cj) + "\n").encode("utf-8")])
    files = write_safetensors_folder(path, tensors, {"format": "pt"}, max_shard_bytes)
    for name, src in info.extra_files.items():
        dst = os.path.join(path, name)
        if os.path.abspath(src) != os.path.abspath(dst):
            shutil.copyfile(src, dst)
    if "generation_config.json" not in info.extra_files:
        c = model.cfg
        gen = {"bos_token_id": c.bos_id, "eos_token_id": c.eos_id[0] if len(c.eos_id) == 1 else list(c.eos_id)}
        write_file_atomic(os.path.join(path, "generation_config.json"), [(js_json(gen) + "\n").encode("utf-8")])
    return files
