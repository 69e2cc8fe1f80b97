"""Fixtures of the parity tests: converted folders made with the CLI (cached in a temp dir) and the TypeScript side
(python/tests/ts_ref.ts through `node --import tsx`).

The cache key hashes the CLI's compiled convert/analyze code and the source model, so a changed converter makes
fresh folders. RECURFORMER_PYTEST_CACHE overrides the cache folder.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "python"))

TEXT = os.path.join(ROOT, "data", "tinystories-valid-excerpt", "tinystories_val.txt")
CLI = [ "node", os.path.join(ROOT, "bin", "recurformer.js")]

# Named tolerances (one place): float32 logits of the two engines on the same folder, and the training step's
# loss and gradients (relative to the largest gradient of each tensor).
TOL_LOGITS_F32 = 1e-4
TOL_LOSS_REL = 1e-4
TOL_GRAD_REL = 1e-3


def _hash_tree(h, path: str) -> None:
    for base, _, files in sorted(os.walk(path)):
        for f in sorted(files):
            with open(os.path.join(base, f), "rb") as fh:
                h.update(fh.read())


def cache_dir() -> str:
    d = os.environ.get("RECURFORMER_PYTEST_CACHE") or os.path.join(tempfile.gettempdir(), "recurformer-pytest")
    os.makedirs(d, exist_ok=True)
    return d


def run_cli(args, **kw) -> str:
    r = subprocess.run(CLI + args, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "RECURFORMER_QUIET": "1"}, **kw)
    if r.returncode != 0:
        raise RuntimeError(f"recurformer {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout


def converted_folder(src: str, budget: float = 0.5, extra=()) -> str:
    """models/<src> converted at `budget` by the CLI (analyze, then convert with the `extra` arguments), cached."""
    h = hashlib.sha256()
    for sub in ("convert", "analysis", "io", "model"):
        _hash_tree(h, os.path.join(ROOT, "dist", "src", sub))
    _hash_tree(h, os.path.join(ROOT, "models", src))
    key = f"{src}-{int(budget * 100)}-{h.hexdigest()[:12]}"
    if extra:
        key += "-" + hashlib.sha256("\0".join(extra).encode()).hexdigest()[:8]
    out = os.path.join(cache_dir(), key)
    if os.path.exists(os.path.join(out, "model.safetensors")):
        return out
    an = out + "-an"
    run_cli(["analyze", f"models/{src}", "--data", TEXT, "--samples", "2", "--seq", "64", "--windows", "4,16", "--out", an])
    run_cli(["convert", f"models/{src}", "--analysis", os.path.join(an, "analysis.json"), "--budget", str(budget),
             "--calib-tokens", "256", "--out", out + ".tmp", "--force", *extra])
    os.replace(out + ".tmp", out)
    return out


def run_ts(req: dict, tmp_path) -> str:
    """Runs python/tests/ts_ref.ts on a request; returns its stdout."""
    p = os.path.join(str(tmp_path), f"req-{req['op']}-{os.getpid()}.json")
    with open(p, "w") as f:
        json.dump(req, f)
    r = subprocess.run(["node", "--import", "tsx", os.path.join(ROOT, "python", "tests", "ts_ref.ts"), p], cwd=ROOT,
                       capture_output=True, text=True, env={**os.environ, "RECURFORMER_QUIET": "1"})
    if r.returncode != 0:
        raise RuntimeError(f"ts_ref {req['op']} failed:\n{r.stdout}\n{r.stderr}")
    return r.stdout


def read_f32(path: str) -> np.ndarray:
    return np.fromfile(path, dtype="<f4")


def prefill_both(model, folder: str, ids: np.ndarray, tmp_path):
    """The logits (B, T, V) of ids (B, T) in one forward: PyTorch's (model) and TypeScript's (folder)."""
    import torch
    B, T = ids.shape
    out = os.path.join(str(tmp_path), "prefill.bin")
    run_ts({"op": "prefill", "model": folder, "ids": ids.reshape(-1).tolist(), "B": B, "T": T, "out": out}, tmp_path)
    with torch.no_grad():
        py = model(torch.from_numpy(ids)).numpy()
    return py, read_f32(out).reshape(B, T, -1)


def greedy(model, prompt, steps, cache):
    """The prompt in one forward with the cache, then `steps` greedy tokens: (per-step last logits, ids)."""
    import torch
    with torch.no_grad():
        last = model(torch.tensor([prompt]), cache=cache, last_only=True)[0, -1]
        rows, ids = [last], []
        for _ in range(steps):
            nxt = int(torch.argmax(last))
            ids.append(nxt)
            last = model(torch.tensor([[nxt]]), cache=cache)[0, -1]
            rows.append(last)
    return torch.stack(rows).numpy(), ids


def generate_both(model, folder: str, prompt, steps: int, tmp_path, cache=None):
    """Greedy generation of `steps` tokens after `prompt` in PyTorch (with `cache`, default the model's hybrid cache)
    and in TypeScript: (py step logits, py ids, ts step logits, ts ids)."""
    from recurformer_torch import HybridCache
    out = os.path.join(str(tmp_path), "gen.bin")
    ts_ids = json.loads(run_ts({"op": "generate", "model": folder, "prompt": list(prompt), "steps": steps, "out": out}, tmp_path))["ids"]
    py, py_ids = greedy(model, list(prompt), steps, cache if cache is not None else HybridCache(model))
    return py, py_ids, read_f32(out).reshape(steps + 1, -1), ts_ids


@pytest.fixture(scope="session")
def stories50() -> str:
    return converted_folder("stories260K")


@pytest.fixture(scope="session")
def demo50() -> str:
    return converted_folder("demo-llama")


@pytest.fixture(scope="session")
def gpt2_50() -> str:
    return converted_folder("demo-gpt2")
