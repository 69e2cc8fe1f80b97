"""`recurformer train --engine torch`: the same command line trains through this package (and writes the run
folder the TypeScript side reads); without torch it says how to install it."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import CLI, ROOT, TEXT


def test_engine_torch_without_torch_says_how_to_install(stories50, tmp_path):
    args = ["train", stories50, "--teacher", os.path.join(ROOT, "models", "stories260K"), "--data", TEXT, "--engine", "torch",
            "--stage", "align", "--out", str(tmp_path / "run")]
    bad = subprocess.run(CLI + args, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "RECURFORMER_PYTHON": "false"})
    assert bad.returncode == 1
    assert "cannot import torch" in bad.stderr and "pip install torch numpy" in bad.stderr


def test_both_engines_train_the_same_run(stories50, tmp_path):
    """The same command line on both engines: the same batches in the same order (the shared shard, packing and
    xoshiro128** shuffle), so the same losses step by step within TOL_TRAJECTORY, and the same validation."""
    TOL_TRAJECTORY = 1e-3  # relative; AdamW's float32 rounding differs between the engines
    runs = {}
    for engine in ("ts", "torch"):
        out = str(tmp_path / engine)
        # the torch run goes through --torch-launcher (as torchrun would start it): a script that notes it ran
        launch = tmp_path / "launch.sh"
        launch.write_text(f'#!/bin/sh\ntouch "{tmp_path}/launched"\nexec {sys.executable} "$@"\n')
        launch.chmod(0o755)
        launcher = ["--torch-launcher", str(launch)] if engine == "torch" else []
        args = ["train", stories50, "--teacher", os.path.join(ROOT, "models", "stories260K"), "--data", TEXT, "--engine", engine,
                "--stage", "distill", "--ce-weight", "0.3", "--steps", "4", "--batch", "2", "--seq", "32", "--eval-batches", "2",
                "--packing", "document", "--seed", "5", "--lr", "1e-3", "--warmup", "1", "--out", out, "--torch-args", "--threads 1 --quiet"] + launcher
        r = subprocess.run(CLI + args, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "RECURFORMER_PYTHON": sys.executable})
        assert r.returncode == 0, r.stdout + r.stderr
        runs[engine] = [json.loads(l) for l in open(os.path.join(out, "metrics.jsonl"))]
    assert os.path.exists(tmp_path / "launched")
    torch_out = str(tmp_path / "torch")
    run = json.load(open(os.path.join(torch_out, "torch-run.json")))
    assert run["options"]["engine"] == "torch" and run["options"]["steps"] == 4 and os.path.exists(run["shard"])
    for f in ("model/model.safetensors", "report.html", "checkpoint.pt"):
        assert os.path.exists(os.path.join(torch_out, f)), f
    ts, pt = runs["ts"], runs["torch"]
    assert [(r["type"], r["step"]) for r in ts] == [(r["type"], r["step"]) for r in pt]
    for a, b in zip(ts, pt):
        for k in ("loss", "ce", "kl", "lr"):
            if k in a:
                assert abs(a[k] - b[k]) <= TOL_TRAJECTORY * abs(a[k]) + 1e-7, (a["type"], a["step"], k, a[k], b[k])
    assert ts[-1]["loss"] != ts[0]["loss"]
