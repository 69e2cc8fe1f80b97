"""`recurformer export MODEL --format hf-torch --out DIR` (and `python -m recurformer_torch.hf_export MODEL --out DIR`):
a folder this project writes, made loadable by Hugging Face `transformers` with

    AutoModelForCausalLM.from_pretrained(DIR, trust_remote_code=True)

What is written (docs/scale.md, "Hugging Face transformers"):
  - every file of the model folder, byte for byte (weights, index, tokenizer, plan.json, generation_config.json);
  - config.json as read, plus an `auto_map` entry naming the classes in modeling_recurformer.py; `model_type` stays
    the base architecture's (llama, gpt2, ...), so the TypeScript side and `load_folder` read the folder unchanged;
  - the remote code, self-contained: modeling_recurformer.py (this package's hf.py) and the modules it imports
    (config.py, model.py, cache.py, recurrent.py, folder.py, safetensors_io.py, hf_export.py), copied verbatim from
    this package. transformers copies a modeling file's relative imports with it, so the folder needs torch, numpy
    and transformers only, not this package.

Needs neither transformers nor the weights in memory: a copy and one JSON edit.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from typing import Dict, List, Optional

from .safetensors_io import FormatError

MODELING_FILE = "modeling_recurformer.py"
AUTO_MAP = {
    "AutoConfig": "modeling_recurformer.RecurformerConfig",
    "AutoModelForCausalLM": "modeling_recurformer.RecurformerForCausalLM",
}
# the package modules the modeling file needs (its relative imports, transitively), copied under their own names
SUPPORT_FILES = ("config.py", "model.py", "cache.py", "recurrent.py", "folder.py", "safetensors_io.py", "hf_export.py")
# a folder holding any of these was written by an export (replaced on a new export)
REMOTE_CODE_FILES = (MODELING_FILE,) + SUPPORT_FILES
_HERE = os.path.dirname(os.path.abspath(__file__))


def remote_code_sources(here: str = _HERE) -> Dict[str, str]:
    """Folder file name -> source path. In the package the modeling file is hf.py; in an exported folder (where
    transformers runs this code from) it is modeling_recurformer.py itself, so a re-export from there works too."""
    hf = os.path.join(here, "hf.py")
    out = {MODELING_FILE: hf if os.path.exists(hf) else os.path.join(here, MODELING_FILE)}
    for f in SUPPORT_FILES:
        out[f] = os.path.join(here, f)
    missing = [p for p in out.values() if not os.path.exists(p)]
    if missing:
        raise FileNotFoundError(f"hf-torch export: the package files {missing} are missing (a broken install of recurformer_torch)")
    return out


def add_auto_map(config: dict) -> dict:
    """config.json's object with the auto_map entries (inserted after model_type, other keys in their order)."""
    out: dict = {}
    for k, v in config.items():
        if k == "auto_map":
            continue
        out[k] = v
        if k == "model_type":
            out["auto_map"] = dict(AUTO_MAP)
    if "auto_map" not in out:
        out["auto_map"] = dict(AUTO_MAP)
    return out


def write_remote_code(folder: str) -> List[str]:
    """Writes config.json's auto_map and the remote-code files into a model folder (in place). Returns the files."""
    from .folder import js_json  # JSON as the TypeScript side writes it (key order, number notation)
    from .safetensors_io import write_file_atomic

    cfile = os.path.join(folder, "config.json")
    with open(cfile, encoding="utf-8") as f:
        cj = json.load(f)
    if "recurformer" not in cj:
        print(f"hf-torch export: {folder} has no recurformer section (a plain Transformer): it loads, with every head "
              "attention", file=sys.stderr)
    write_file_atomic(cfile, [(js_json(add_auto_map(cj)) + "\n").encode("utf-8")])
    written = ["config.json"]
    for name, src in remote_code_sources().items():
        dst = os.path.join(folder, name)
        if os.path.abspath(src) != os.path.abspath(dst):
            shutil.copyfile(src, dst)
        written.append(name)
    return written


def export_hf_torch(model: str, out: Optional[str]) -> dict:
    """Copies the folder `model` to `out` (None: in place; an existing folder's files of the same names are
    replaced, nothing is deleted) and adds the remote code. Checks the config first (the model must be one this
    package loads), so a folder transformers cannot load is never written."""
    from .config import config_from_hf, parse_spec

    if os.path.isdir(os.path.join(model, "model")) and not os.path.exists(os.path.join(model, "config.json")):
        model = os.path.join(model, "model")  # a train run folder
    cfile = os.path.join(model, "config.json")
    if not os.path.isfile(cfile):
        raise FileNotFoundError(f"hf-torch export: {model} is not a model folder (no config.json)")
    with open(cfile, encoding="utf-8") as f:
        cj = json.load(f)
    cfg = config_from_hf(cj, cfile)
    if "recurformer" in cj:
        parse_spec(cj["recurformer"], cfg, cfile)
    if out is None or os.path.abspath(out) == os.path.abspath(model):
        out = model
    else:
        if os.path.exists(out) and not os.path.isdir(out):
            raise NotADirectoryError(f"hf-torch export: --out {out} is a file, not a folder")
        os.makedirs(out, exist_ok=True)
        for name in sorted(os.listdir(model)):
            src = os.path.join(model, name)
            if os.path.isfile(src) and name not in REMOTE_CODE_FILES:
                shutil.copyfile(src, os.path.join(out, name))
    files = write_remote_code(out)
    return {"out": out, "format": "hf-torch", "remoteCode": files[1:], "autoMap": AUTO_MAP,
            "load": f"AutoModelForCausalLM.from_pretrained({out!r}, trust_remote_code=True)"}


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="python -m recurformer_torch.hf_export",
                                description="Make a recurformer model folder loadable by transformers' AutoModelForCausalLM "
                                            "(trust_remote_code=True): copies it and adds auto_map and the modeling code.")
    p.add_argument("model", help="the model folder (or a train run folder)")
    p.add_argument("--out", help="the folder to write (default: add the files to MODEL in place)")
    p.add_argument("--json", action="store_true", help="print a JSON summary")
    a = p.parse_args(argv)
    try:
        r = export_hf_torch(a.model, a.out)
    except (OSError, ValueError, FormatError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    if a.json:
        print(json.dumps(r))
    else:
        print(f"wrote {r['out']} (hf-torch: {len(r['remoteCode'])} remote-code files); load it with {r['load']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
