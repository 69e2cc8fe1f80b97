"""Folders go TS -> PyTorch -> TS with every tensor intact: BF16, F16 and F32, single file and sharded."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest
import torch

from conftest import ROOT, run_cli, run_ts
from recurformer_torch import load_folder, save_folder
from recurformer_torch.safetensors_io import read_safetensors_folder


def ts_tensors(folder: str, tmp_path) -> dict:
    """Every tensor as the TypeScript loader reads it: {name: (dtype, shape, raw stored bytes)}."""
    out = os.path.join(str(tmp_path), f"tensors-{abs(hash(folder))}.bin")
    run_ts({"op": "tensors", "model": folder, "out": out}, tmp_path)
    with open(out + ".json") as f:
        index = json.load(f)
    blob = open(out, "rb").read()
    return {k: (e["dtype"], e["shape"], blob[e["offset"]: e["offset"] + e["bytes"]]) for k, e in index.items()}


def py_tensors(folder: str) -> dict:
    return {k: (t.dtype, t.shape, t.data.tobytes()) for k, t in read_safetensors_folder(folder).items()}


@pytest.fixture(scope="module", params=["F32", "BF16", "F16"])
def typed_folder(request, demo50, tmp_path_factory):
    """The converted demo-llama written by the TypeScript side in each dtype (its recurrent projections too)."""
    if request.param == "F32":
        return demo50, "F32"
    out = str(tmp_path_factory.mktemp(f"demo-{request.param}"))
    run_cli(["convert", demo50, "--plan", os.path.join(demo50, "plan.json"), "--calib-tokens", "256", "--dtype", request.param,
             "--out", out, "--force"])
    return out, request.param


def test_ts_folder_through_torch_is_byte_identical(typed_folder, tmp_path):
    src, dtype = typed_folder
    model = load_folder(src)
    dst = os.path.join(str(tmp_path), "py")
    save_folder(model, dst)
    a, b = py_tensors(src), py_tensors(dst)
    assert list(a) == list(b)
    assert {t[0] for k, t in a.items() if ".recurrent." not in k} == {dtype}
    for k in a:
        assert a[k] == b[k], f"{k} changed"
    # unchanged model: the very same bytes, config included
    for f in ("model.safetensors", "config.json"):
        assert open(os.path.join(src, f), "rb").read() == open(os.path.join(dst, f), "rb").read(), f
    # and the TypeScript loader reads the PyTorch-written folder to the same bits
    ts = ts_tensors(dst, tmp_path)
    assert set(ts) == set(a)
    for k, (dt, shape, data) in a.items():
        assert ts[k] == (dt, shape, data), f"TS reads {k} differently"
    # a trained recurrent tensor is never rounded to 16 bits on save; an untouched one keeps its type
    name = next(k for k in a if k.endswith(".recurrent.wx"))
    with torch.no_grad():
        dict(model.named_parameters())[name].add_(1e-3 * torch.randn(model.state_dict()[name].shape))
    save_folder(model, os.path.join(str(tmp_path), "trained"))
    c = py_tensors(os.path.join(str(tmp_path), "trained"))
    assert c[name][0] == "F32" and c[name][2] == model.state_dict()[name].numpy().tobytes()
    other = next(k for k in a if k.endswith(".recurrent.wc"))
    assert c[other] == a[other]


def test_torch_changes_survive_typescript_roundtrip(demo50, tmp_path):
    """PyTorch writes changed weights (BF16 and F32, sharded); TS loads them bit-exactly and writes them back."""
    model = load_folder(demo50)
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if ".recurrent." in name or name.endswith("layers.0.mlp.up_proj.weight"):
                p.add_(torch.randn(p.shape, generator=g) * 1e-3)
    py_dir = os.path.join(str(tmp_path), "py-bf16")
    files = save_folder(model, py_dir, dtype="BF16", max_shard_bytes=4_000_000)
    assert "model.safetensors.index.json" in files and len(files) > 2
    mine = py_tensors(py_dir)
    sd = model.state_dict()
    for k, (dt, _, data) in mine.items():
        assert dt == ("F32" if ".recurrent." in k else "BF16")
        if dt == "F32":
            assert data == sd[k].numpy().tobytes(), k  # recurrent tensors exactly as trained
    ts = ts_tensors(py_dir, tmp_path)
    assert {k: v for k, v in ts.items()} == {k: (d, s, b) for k, (d, s, b) in mine.items()}
    # TS writes the folder again; PyTorch reads the same bits
    back = os.path.join(str(tmp_path), "ts-back")
    run_ts({"op": "roundtrip", "model": py_dir, "dest": back}, tmp_path)
    assert py_tensors(back) == mine
    again = load_folder(back)
    for k, v in again.state_dict().items():
        ref = sd[k] if ".recurrent." in k else sd[k].to(torch.bfloat16).float()
        assert torch.equal(v, ref), k
