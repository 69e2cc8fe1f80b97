"""scripts/gpu/check.sh in its short CPU mode: trains, prints tokens/s and the loss curve, writes the trained folder
with every file under 16 MB, and the TypeScript loader reads that folder."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

from conftest import ROOT, TEXT, run_ts


def test_check_script_runs_on_cpu(demo50, tmp_path):
    cache = str(tmp_path / "cache")
    shard = json.loads(run_ts({"op": "shard", "model": demo50, "data": TEXT, "cacheDir": cache}, tmp_path))["path"]
    out = str(tmp_path / "run")
    r = subprocess.run(["bash", os.path.join(ROOT, "scripts", "gpu", "check.sh"), "--device", "cpu", "--steps", "1", "--batch", "2",
                        "--seq", "32", "--eval-every", "1", "--eval-batches", "1", "--model", demo50, "--shard", shard, "--out", out],
                       env={**os.environ, "RECURFORMER_PYTHON": sys.executable, "OMP_NUM_THREADS": "2"}, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert re.search(r"device cpu \(fp32\), 1 process\(es\): 1 steps, 64 tokens, \d+ tokens/s", r.stdout), r.stdout
    assert "loss curve" in r.stdout and re.search(r"validation: ppl [\d.]+ -> [\d.]+", r.stdout)
    files = os.listdir(os.path.join(out, "model"))
    assert "model.safetensors.index.json" in files  # split: the demo model is 25 MB in float32
    assert all(os.path.getsize(os.path.join(out, "model", f)) < 16_000_000 for f in files)
    t = os.path.join(str(tmp_path), "t.bin")
    run_ts({"op": "tensors", "model": os.path.join(out, "model"), "out": t}, tmp_path)
    assert len(json.load(open(t + ".json"))) > 50
    # the extra checks say what they did (here: no transformers, no FSDP in Debian's torch 1.13 on Python 3.11)
    import importlib.util
    if importlib.util.find_spec("transformers") is None:
        assert "SKIP hf: " in r.stdout
    else:
        assert "PASS hf: " in r.stdout, r.stdout
    assert re.search(r"^(SKIP|PASS) fsdp", r.stdout, flags=re.M), r.stdout
    assert "FAIL" not in r.stdout, r.stdout
