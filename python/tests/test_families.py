"""Every Llama-family architecture (Llama 3.2 with llama3 RoPE scaling, SmolLM2, Qwen2.5 with q/k/v biases, Qwen3 with
q/k norms, Gemma 3 with (1 + w) norms, post-norms, sliding layers with their own RoPE base and scaled embeddings):
a random hybrid model built here (the real config of test/fixtures/families with a small vocabulary, BF16 weights,
recurrent heads with the gate and the norm) is saved by PyTorch, loaded by TypeScript, and both give the same logits
for a prefill and for greedy generation with the cache."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from conftest import ROOT, TOL_LOGITS_F32, generate_both, prefill_both
from recurformer_torch import RecurformerLM, config_from_hf, load_folder, parse_spec, save_folder
from recurformer_torch.folder import FolderInfo

FAMILIES = ["llama3.2", "smollm2", "qwen2.5", "qwen3", "gemma3"]


def build(name: str, folder: str, spec_extra: dict = None) -> None:
    """`spec_extra`: keys added to the recurformer section (e.g. kind recurrent+window, window, sinks)."""
    cj = json.load(open(os.path.join(ROOT, "test", "fixtures", "families", name, "config.json")))
    cj.update(vocab_size=512, bos_token_id=2, eos_token_id=1)
    kv = cj.get("num_key_value_heads", cj["num_attention_heads"])
    L = cj["num_hidden_layers"]
    # layer 0: the last group recurrent (mixed with attention when kv > 1); the last layer: group 0
    layers = [{"layer": 0, "groups": [kv - 1]}] + ([{"layer": L - 1, "groups": [0]}] if kv > 1 else [])
    hd = cj.get("head_dim", cj["hidden_size"] // cj["num_attention_heads"])
    cj["recurformer"] = {"version": 1, "P": hd, "N": 8, "convK": 4, "gate": True, "norm": True, "chunk": 16,
                         **(spec_extra or {}), "layers": layers}
    cfg = config_from_hf(cj)
    model = RecurformerLM(cfg, parse_spec(cj["recurformer"], cfg, "config.json"))
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if p.dim() == 1 and ("norm" in n):
                p.copy_((0.0 if cfg.norm_plus_one and ".recurrent." not in n else 1.0) + 0.1 * torch.randn(p.shape, generator=g))
            elif n.endswith(".a_log"):
                p.copy_(torch.rand(p.shape, generator=g) * 2 - 1)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.2)
    sd = model.state_dict()
    model.info = FolderInfo("", cj, list(sd), {k: ("F32" if ".recurrent." in k else "BF16") for k in sd})
    save_folder(model, folder)


@pytest.mark.parametrize("name", FAMILIES)
def test_family_hybrid_matches_typescript(name, tmp_path):
    folder = str(tmp_path / name)
    build(name, folder)
    model = load_folder(folder)  # BF16 weights as saved
    assert model.recurrent_layers()
    ids = np.random.default_rng(5).integers(3, 512, size=(2, 40))
    py, ts = prefill_both(model, folder, ids, tmp_path)
    assert float(np.abs(ts).max()) > 0.5
    assert float(np.abs(py - ts).max()) <= TOL_LOGITS_F32, float(np.abs(py - ts).max())
    pg, py_ids, tg, ts_ids = generate_both(model, folder, ids[0, :10].tolist(), 20, tmp_path)
    assert py_ids == ts_ids
    assert float(np.abs(pg - tg).max()) <= TOL_LOGITS_F32
