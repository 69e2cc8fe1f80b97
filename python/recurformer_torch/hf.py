"""Hugging Face `transformers` wrapper of a recurformer model: a `PretrainedConfig` and a `PreTrainedModel` +
`GenerationMixin` around RecurformerLM, so that a folder written by `recurformer export --format hf-torch` loads with

    AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True)

and `generate()` works (greedy, sampling, beam-free strategies; not assisted or contrastive decoding: the recurrent
state cannot roll back).

This module imports transformers at the top; the rest of the package never imports it (recurformer_torch works
without transformers). In an exported folder this file is modeling_recurformer.py and its relative imports are the
package's own modules copied beside it (hf_export.py), so the folder needs torch, numpy and transformers only.

Glossary (transformers -> here):
  RecurformerConfig.arch_model_type   config.json's model_type (llama, gpt2, ...); the HF model_type is "recurformer"
  RecurformerForCausalLM.lm           RecurformerLM (model.py): parameter names are the checkpoint's, under `lm.`
  past_key_values                     HybridCache (cache.py): KV store, window store, recurrent state per layer
  from_pretrained / save_pretrained   load_folder / save_folder (folder.py): bit-exact, the TypeScript layout

Weights are loaded by load_folder, not by transformers' loader: the folder's tensor names are RecurformerLM's
(GPT-2's legacy names, tied heads, BF16/F16 widening and the recurrent tensors are handled there), and a model
saved with save_pretrained is the same folder layout the TypeScript side reads.
"""
from __future__ import annotations

import os
from typing import Optional

import torch
import torch.nn.functional as F
from transformers import GenerationConfig, GenerationMixin, PretrainedConfig, PreTrainedModel
from transformers.modeling_outputs import CausalLMOutputWithPast

# Every module of the remote code is a direct relative import here: for a local folder transformers copies only the
# modeling file's own relative imports into its module cache (the Hub path follows them recursively).
from .cache import HybridCache
from .config import config_from_hf, parse_spec
from .folder import load_folder, save_folder
from .hf_export import write_remote_code
from .model import RecurformerLM
from .recurrent import RecurrentHeads  # noqa: F401 (imported by model.py)
from .safetensors_io import DEFAULT_MAX_SHARD_BYTES


class RecurformerConfig(PretrainedConfig):
    """config.json as read. `model_type` there is the base architecture's; it is kept in `arch_model_type` (the
    TypeScript side and config_from_hf read the architecture from it), and written back under model_type by to_dict."""

    model_type = "recurformer"

    def __init__(self, arch_model_type: Optional[str] = None, **kwargs):
        base = kwargs.pop("model_type", None)
        if base == self.model_type:
            base = None
        self.arch_model_type = arch_model_type or base
        super().__init__(**kwargs)

    def to_dict(self):
        d = super().to_dict()
        if self.arch_model_type:
            d["model_type"] = d.pop("arch_model_type")
        return d

    def hf_json(self) -> dict:
        """The config as config_from_hf / parse_spec read it."""
        d = self.to_dict()
        if not self.arch_model_type:
            raise ValueError("RecurformerConfig: the base model_type (llama, gpt2, ...) is unknown; load the config "
                             "from a folder's config.json")
        return d


class RecurformerForCausalLM(PreTrainedModel, GenerationMixin):
    config_class = RecurformerConfig
    base_model_prefix = "lm"
    main_input_name = "input_ids"
    supports_gradient_checkpointing = False
    _no_split_modules = ["LlamaBlock", "Gpt2Block"]
    # the recurrent state is a running summary that cannot roll back or be rebuilt from a KV cache: generate() must not
    # build transformers' DynamicCache for it (_is_stateful: 4.5x; _supports_cache_class: 4.4x) and must not use
    # assisted or contrastive decoding
    _is_stateful = True
    _supports_cache_class = False
    _supports_static_cache = False
    _supports_sdpa = False
    _supports_flash_attn_2 = False

    def __init__(self, config: RecurformerConfig, lm: Optional[RecurformerLM] = None):
        super().__init__(config)
        if lm is None:
            j = config.hf_json()
            cfg = config_from_hf(j)
            lm = RecurformerLM(cfg, parse_spec(j["recurformer"], cfg, "config") if "recurformer" in j else None)
        self.lm = lm
        self.post_init()

    def _init_weights(self, module):
        """No initialization: the weights come from the folder (RecurformerLM's own init otherwise)."""

    def get_input_embeddings(self):
        return self.lm.transformer.wte if self.lm.cfg.arch == "gpt2" else self.lm.model.embed_tokens

    def get_output_embeddings(self):
        # None: transformers never re-ties the head (a tied head already reads the embedding, see RecurformerLM.head)
        return None

    # ---- loading and saving: the folder layout (load_folder / save_folder) -----------------------------------------

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, *model_args, config=None, torch_dtype=None, device_map=None,
                        **kwargs):
        """Loads a folder (or a Hub repository, downloaded first) with load_folder. `torch_dtype` (or `dtype`): the
        parameters' dtype (default float32; "auto": config.json's torch_dtype); `device_map`: one device ("cuda",
        "cpu", 0, "auto" = cuda when available); other keyword arguments of transformers' loader are ignored."""
        path = str(pretrained_model_name_or_path)
        if not os.path.isdir(path):
            from huggingface_hub import snapshot_download
            path = snapshot_download(path, revision=kwargs.get("revision"), cache_dir=kwargs.get("cache_dir"),
                                     token=kwargs.get("token"), local_files_only=bool(kwargs.get("local_files_only")))
        if config is None or not isinstance(config, RecurformerConfig):
            config = RecurformerConfig.from_pretrained(path)
        lm = load_folder(path)
        model = cls(config, lm=lm)
        gen = os.path.join(path, "generation_config.json")
        if os.path.exists(gen):
            try:
                model.generation_config = GenerationConfig.from_pretrained(path)
            except (OSError, ValueError, TypeError):
                pass
        dtype = torch_dtype if torch_dtype is not None else kwargs.get("dtype")
        if dtype == "auto":
            dtype = getattr(config, "torch_dtype", None) or "float32"
        if isinstance(dtype, str):
            dtype = getattr(torch, dtype)
        if dtype is not None and dtype != torch.float32:
            model = model.to(dtype)
        if device_map is not None:
            if isinstance(device_map, dict):
                devices = set(device_map.values())
                if len(devices) != 1:
                    raise ValueError("RecurformerForCausalLM: a device_map over several devices is not supported; "
                                     "pass one device")
                device_map = devices.pop()
            if device_map == "auto":
                device_map = "cuda" if torch.cuda.is_available() else "cpu"
            model = model.to(torch.device(device_map) if not isinstance(device_map, int) else torch.device("cuda", device_map))
        model.eval()
        return model

    def save_pretrained(self, save_directory, *args, max_shard_size=None, **kwargs):
        """Writes the folder layout the TypeScript side reads (save_folder: each tensor in the dtype it was read in)
        plus the remote code, so the result loads here, in transformers and in `recurformer` alike."""
        limit = DEFAULT_MAX_SHARD_BYTES
        if isinstance(max_shard_size, int):
            limit = max_shard_size
        elif isinstance(max_shard_size, str):
            units = {"KB": 10 ** 3, "MB": 10 ** 6, "GB": 10 ** 9, "KIB": 2 ** 10, "MIB": 2 ** 20, "GIB": 2 ** 30}
            s = max_shard_size.strip().upper()
            unit = next((u for u in sorted(units, key=len, reverse=True) if s.endswith(u)), None)
            limit = int(float(s[: -len(unit)]) * units[unit]) if unit else int(s)
        save_folder(self.lm, str(save_directory), dtype="keep", max_shard_bytes=limit)
        write_remote_code(str(save_directory))

    # ---- forward and generation ------------------------------------------------------------------------------------

    def forward(self, input_ids: Optional[torch.LongTensor] = None, attention_mask: Optional[torch.Tensor] = None,
                past_key_values=None, use_cache: Optional[bool] = None, labels: Optional[torch.LongTensor] = None,
                logits_to_keep: int = 0, return_dict: Optional[bool] = None, inputs_embeds=None, **kwargs):
        """input_ids (B, T): the tokens after those `past_key_values` (a HybridCache) holds, as in transformers.
        Returns CausalLMOutputWithPast(loss, logits (B, T or logits_to_keep, V), past_key_values). Another kind of
        cache object (transformers' own) is ignored, so a caller that passes one recomputes from the full input_ids."""
        if inputs_embeds is not None:
            raise ValueError("RecurformerForCausalLM: inputs_embeds is not supported; pass input_ids")
        if input_ids is None:
            raise ValueError("RecurformerForCausalLM: input_ids is required")
        cache = past_key_values if isinstance(past_key_values, HybridCache) else None
        if cache is None and attention_mask is not None and bool((attention_mask == 0).any()):
            raise ValueError("RecurformerForCausalLM: padded batches are not supported (a recurrent state cannot skip "
                             "pad tokens); generate prompts of equal length, or one at a time")
        if use_cache is None:
            use_cache = labels is None and not self.training and getattr(self.config, "use_cache", True) is not False
        if cache is None and use_cache:
            cache = HybridCache(self.lm)
        x = self.lm(input_ids, cache=cache, hidden_only=True)  # (B, T, D)
        if isinstance(logits_to_keep, int) and logits_to_keep > 0:
            x = x[:, -logits_to_keep:]
        elif isinstance(logits_to_keep, torch.Tensor):
            x = x[:, logits_to_keep]
        logits = self.lm.head(x)  # (B, T', V)
        loss = None
        if labels is not None:
            V = logits.shape[-1]
            loss = F.cross_entropy(logits[:, :-1].float().reshape(-1, V), labels[:, 1:].reshape(-1).to(logits.device),
                                   ignore_index=-100)
        if return_dict is False:
            out = (logits, cache if use_cache else None)
            return (loss,) + out if loss is not None else out
        return CausalLMOutputWithPast(loss=loss, logits=logits, past_key_values=cache if use_cache else None)

    def prepare_inputs_for_generation(self, input_ids, past_key_values=None, attention_mask=None, use_cache=True,
                                      **kwargs):
        """The tokens the cache has not seen (all of them on the first call, or with a cache that is not ours)."""
        if isinstance(past_key_values, HybridCache) and past_key_values.length > 0:
            input_ids = input_ids[:, past_key_values.length:]
        else:
            past_key_values = None
        inputs = {"input_ids": input_ids, "past_key_values": past_key_values, "use_cache": use_cache,
                  "attention_mask": attention_mask}
        if "logits_to_keep" in kwargs:
            inputs["logits_to_keep"] = kwargs["logits_to_keep"]
        return inputs

    def _reorder_cache(self, past_key_values, beam_idx):
        raise NotImplementedError("RecurformerForCausalLM: beam search is not supported (generate with num_beams=1)")
