"""PyTorch logits equal the TypeScript logits (float32, max abs diff <= TOL_LOGITS_F32) on converted folders, for a
batched prefill and for step-by-step greedy generation with the hybrid cache; greedy tokens are identical."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from conftest import TOL_LOGITS_F32, generate_both, greedy, prefill_both, read_f32, run_ts
from recurformer_torch import HybridCache, load_folder

STEPS = 64


def _ids(model, B: int, T: int, seed: int) -> np.ndarray:
    g = np.random.default_rng(seed)
    ids = g.integers(3, model.cfg.vocab_size, size=(B, T))
    ids[:, 0] = model.cfg.bos_id
    return ids


@pytest.mark.parametrize("fixture", ["stories50", "demo50", "gpt2_50"])
def test_prefill_logits_match_typescript(fixture, request, tmp_path):
    folder = request.getfixturevalue(fixture)
    model = load_folder(folder)
    assert model.recurrent_layers(), "the fixture must be a converted model"
    py, ts = prefill_both(model, folder, _ids(model, 2, 80, seed=1), tmp_path)  # 80 > the SSD chunk (64): state passing
    diff = float(np.abs(py - ts).max())
    assert py.shape == ts.shape
    assert diff <= TOL_LOGITS_F32, f"max |logits_torch - logits_ts| = {diff:.3g} > {TOL_LOGITS_F32}"
    assert float(np.abs(ts).max()) > 1.0  # real logits, not zeros


@pytest.mark.parametrize("fixture", ["stories50", "demo50", "gpt2_50"])
def test_greedy_generation_matches_typescript(fixture, request, tmp_path):
    folder = request.getfixturevalue(fixture)
    model = load_folder(folder)
    py, py_ids, ts, ts_ids = generate_both(model, folder, _ids(model, 1, 9, seed=2)[0].tolist(), STEPS, tmp_path)
    assert py_ids == ts_ids
    assert len(set(py_ids)) > 3  # a real continuation, not one repeated token
    diff = float(np.abs(py - ts).max())
    assert diff <= TOL_LOGITS_F32, f"step logits differ by {diff:.3g} > {TOL_LOGITS_F32}"


def test_streaming_window_cache_matches_typescript(demo50, tmp_path):
    """The window kind: StreamingLLM over the attention groups (4 sinks + 8 recent) of a converted model."""
    model = load_folder(demo50)
    prompt = _ids(model, 1, 12, seed=3)[0].tolist()
    out = os.path.join(str(tmp_path), "win.bin")
    w = {"sinks": 4, "window": 8}
    ts_ids = json.loads(run_ts({"op": "generate", "model": demo50, "prompt": prompt, "steps": 24, "windows": w, "out": out}, tmp_path))["ids"]
    ts = read_f32(out).reshape(25, -1)
    py, py_ids = greedy(model, prompt, 24, HybridCache(model, windows="all", sinks=4, window=8))
    assert py_ids == ts_ids
    assert float(np.abs(py - ts).max()) <= TOL_LOGITS_F32
    full, _ = greedy(model, prompt, 24, HybridCache(model))
    assert float(np.abs(full - py).max()) > 1e-3  # the window really evicts (differs from full attention)


# ---- recurrent+window groups (`convert --head-kind recurrent+window`) ----------------------------------------

HEAD_WINDOW, HEAD_SINKS = 8, 2


def _ts_has_head_kind() -> bool:
    """Whether the compiled CLI converts to recurrent+window groups (checked, never built, here)."""
    import subprocess
    from conftest import CLI, ROOT
    r = subprocess.run(CLI + ["convert", "--help"], cwd=ROOT, capture_output=True, text=True)
    return r.returncode == 0 and "--head-kind" in r.stdout


@pytest.fixture(scope="module")
def ts_head_kind():
    if not _ts_has_head_kind():
        pytest.skip("the compiled CLI has no `convert --head-kind` yet (`node bin/recurformer.js convert --help` does not "
                    "list it): recurrent+window parity with TypeScript needs a build with it")


@pytest.fixture(scope="module")
def demo_rw(ts_head_kind, tmp_path_factory):
    """demo-llama converted by the CLI with recurrent+window groups, and a copy (written by PyTorch) whose mix
    scalars are random, so the mixed recurrent term counts whatever convert initializes mix to."""
    from conftest import converted_folder
    from recurformer_torch import save_folder
    folder = converted_folder("demo-llama", extra=["--head-kind", "recurrent+window", "--head-window", str(HEAD_WINDOW),
                                                   "--head-sinks", str(HEAD_SINKS)])
    model = load_folder(folder)
    assert (model.spec.kind, model.spec.window, model.spec.sinks) == ("recurrent+window", HEAD_WINDOW, HEAD_SINKS)
    g = torch.Generator().manual_seed(11)
    with torch.no_grad():
        for l in model.recurrent_layers():
            mix = model.recurrent_of(l).mix
            mix.copy_(torch.randn(mix.shape, generator=g) * 0.5)
    mixed = str(tmp_path_factory.mktemp("rw") / "mixed")
    save_folder(model, mixed)
    return {"converted": folder, "mixed": mixed}


@pytest.mark.parametrize("which", ["converted", "mixed"])
def test_recurrent_window_prefill_matches_typescript(demo_rw, which, tmp_path):
    folder = demo_rw[which]
    model = load_folder(folder)
    # 80 tokens > window + sinks: keys leave the window; and > the SSD chunk
    py, ts = prefill_both(model, folder, _ids(model, 2, 80, seed=4), tmp_path)
    diff = float(np.abs(py - ts).max())
    assert diff <= TOL_LOGITS_F32, f"max |logits_torch - logits_ts| = {diff:.3g} > {TOL_LOGITS_F32}"


@pytest.mark.parametrize("which", ["converted", "mixed"])
def test_recurrent_window_generation_matches_typescript(demo_rw, which, tmp_path):
    folder = demo_rw[which]
    model = load_folder(folder)
    cache = HybridCache(model)
    # 32 steps: past window + sinks, the window store evicts during decode
    py, py_ids, ts, ts_ids = generate_both(model, folder, _ids(model, 1, 9, seed=5)[0].tolist(), 32, tmp_path, cache)
    assert py_ids == ts_ids
    assert float(np.abs(py - ts).max()) <= TOL_LOGITS_F32
    l = model.recurrent_layers()[0]
    assert cache.layer(l).rwindow.k.shape[1] == HEAD_SINKS + HEAD_WINDOW - 1


@pytest.mark.parametrize("name,window,sinks", [("gemma3", 12, 2), ("llama3.2", 5, 1)])
def test_recurrent_window_family_matches_typescript(ts_head_kind, name, window, sinks, tmp_path):
    """A PyTorch-built recurrent+window model read by TypeScript: Gemma 3's local layers (own window 8) narrow a
    window of 12 and keep the sinks; Llama 3.2 with a window of 5."""
    from test_families import build
    folder = str(tmp_path / name)
    build(name, folder, {"kind": "recurrent+window", "window": window, "sinks": sinks})
    model = load_folder(folder)
    assert model.spec.kind == "recurrent+window"
    ids = np.random.default_rng(6).integers(3, 512, size=(2, 40))
    py, ts = prefill_both(model, folder, ids, tmp_path)
    assert float(np.abs(py - ts).max()) <= TOL_LOGITS_F32
    pg, py_ids, tg, ts_ids = generate_both(model, folder, ids[0, :10].tolist(), 20, tmp_path)
    assert py_ids == ts_ids
    assert float(np.abs(pg - tg).max()) <= TOL_LOGITS_F32


def test_recurrent_window_folder_from_typescript_round_trips(demo_rw, tmp_path):
    """The CLI's recurrent+window folder through PyTorch: byte for byte (config.json with kind/window/sinks, mix)."""
    from recurformer_torch import save_folder
    src = demo_rw["converted"]
    model = load_folder(src)
    assert any(float(model.recurrent_of(l).mix.abs().max()) > 0 for l in model.recurrent_layers())  # fitted by convert
    dst = str(tmp_path / "py")
    save_folder(model, dst)
    for f in ("config.json", "model.safetensors"):
        assert open(os.path.join(src, f), "rb").read() == open(os.path.join(dst, f), "rb").read(), f
