"""The Hugging Face wrapper (recurformer_torch/hf.py) and `recurformer export --format hf-torch`.

Without transformers (this machine): the exported folder's files (weights byte for byte, config.json = the source +
auto_map, the remote code = this package's files), the TypeScript side still loading it, and the modeling file
imported the way transformers imports it (a package of the folder's .py files) against a stub `transformers`: its
from_pretrained / forward / prepare_inputs_for_generation give the plain model's logits and greedy tokens, its
save_pretrained writes the folder back byte for byte. With transformers (the GPU check): AutoModelForCausalLM loads
the folder with trust_remote_code and generate() gives our greedy tokens.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import types
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import pytest
import torch

from conftest import CLI, ROOT, run_ts
from recurformer_torch import hf_export, load_folder
from recurformer_torch.model import greedy

PY = os.path.join(ROOT, "python")
PKG = os.path.join(PY, "recurformer_torch")
STEPS = 16
TOL_WRAPPER = 0.0  # the wrapper runs the same module on the same input: identical logits


def _env():
    return {**os.environ, "PYTHONPATH": PY + os.pathsep + os.environ.get("PYTHONPATH", ""), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def exported(stories50, tmp_path_factory):
    out = str(tmp_path_factory.mktemp("hf") / "stories-hf")
    r = subprocess.run([sys.executable, "-m", "recurformer_torch.hf_export", stories50, "--out", out, "--json"], env=_env(),
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    summary = json.loads(r.stdout)
    assert summary["out"] == out and "modeling_recurformer.py" in summary["remoteCode"]
    return out


def _read(p):
    with open(p, "rb") as f:
        return f.read()


def test_export_writes_the_folder_auto_map_and_remote_code(stories50, exported, tmp_path):
    src_files = sorted(os.listdir(stories50))
    out_files = sorted(os.listdir(exported))
    assert set(src_files) <= set(out_files)
    for name in src_files:
        if name != "config.json":
            assert _read(os.path.join(stories50, name)) == _read(os.path.join(exported, name)), name
    src_cfg = json.load(open(os.path.join(stories50, "config.json")))
    out_cfg = json.load(open(os.path.join(exported, "config.json")))
    assert out_cfg["auto_map"] == {"AutoConfig": "modeling_recurformer.RecurformerConfig",
                                   "AutoModelForCausalLM": "modeling_recurformer.RecurformerForCausalLM"}
    assert {k: v for k, v in out_cfg.items() if k != "auto_map"} == src_cfg
    assert list(out_cfg)[: list(out_cfg).index("auto_map")][-1] == "model_type"  # right after model_type
    assert out_cfg["model_type"] == src_cfg["model_type"] == "llama"  # the TypeScript side reads the architecture
    # the remote code is this package's own files, verbatim; every relative import of it is in the folder
    assert _read(os.path.join(exported, "modeling_recurformer.py")) == _read(os.path.join(PKG, "hf.py"))
    for f in hf_export.SUPPORT_FILES:
        assert _read(os.path.join(exported, f)) == _read(os.path.join(PKG, f)), f
    import re
    # transformers copies a local folder's modeling file with its own relative imports only (not theirs): every
    # remote-code module must be one of them
    direct = set(re.findall(r"^\s*from\s+\.(\w+)\s+import", open(os.path.join(exported, "modeling_recurformer.py")).read(), flags=re.M))
    assert direct == {f[:-3] for f in hf_export.SUPPORT_FILES}, direct
    for f in ("modeling_recurformer.py",) + hf_export.SUPPORT_FILES:
        for mod in re.findall(r"^\s*from\s+\.(\w+)\s+import", open(os.path.join(exported, f)).read(), flags=re.M):
            assert os.path.exists(os.path.join(exported, mod + ".py")), f"{f} imports .{mod}, not in the folder"
    # the TypeScript side loads the exported folder: the same tensors, bit for bit
    a, b = str(tmp_path / "a.bin"), str(tmp_path / "b.bin")
    run_ts({"op": "tensors", "model": stories50, "out": a}, tmp_path)
    run_ts({"op": "tensors", "model": exported, "out": b}, tmp_path)
    assert _read(a) == _read(b) and _read(a + ".json") == _read(b + ".json")
    assert len(json.load(open(a + ".json"))) > 10
    # exporting again (in place) changes nothing
    before = {n: _read(os.path.join(exported, n)) for n in os.listdir(exported)}
    assert hf_export.main([exported]) == 0
    assert {n: _read(os.path.join(exported, n)) for n in os.listdir(exported)} == before


def test_export_refuses_what_it_cannot_load(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "config.json").write_text(json.dumps({"model_type": "bert"}))
    assert hf_export.main([str(bad), "--out", str(tmp_path / "o")]) == 1
    assert not os.path.exists(tmp_path / "o")
    assert hf_export.main([str(tmp_path / "missing"), "--out", str(tmp_path / "o")]) == 1


def test_cli_export_hf_torch(stories50, tmp_path):
    out = str(tmp_path / "cli-hf")
    r = subprocess.run(CLI + ["export", stories50, "--format", "hf-torch", "--out", out, "--json"], cwd=ROOT, capture_output=True,
                       text=True, env={**os.environ, "RECURFORMER_PYTHON": sys.executable})
    assert r.returncode == 0, r.stdout + r.stderr
    assert json.loads(r.stdout)["format"] == "hf-torch"
    assert "auto_map" in json.load(open(os.path.join(out, "config.json")))
    assert os.path.exists(os.path.join(out, "modeling_recurformer.py"))
    bad = subprocess.run(CLI + ["export", stories50, "--format", "hf-torch", "--out", str(tmp_path / "x")], cwd=ROOT,
                         capture_output=True, text=True, env={**os.environ, "RECURFORMER_PYTHON": "false"})
    assert bad.returncode != 0 and "pip install torch numpy" in bad.stderr


# ---- the modeling file against a stub transformers ------------------------------------------------------------------

def _stub_transformers():
    """The few names hf.py uses, with the contracts it relies on (not transformers' behaviour)."""
    tf = types.ModuleType("transformers")

    class PretrainedConfig:
        model_type = ""

        def __init__(self, **kwargs):
            self.bos_token_id = kwargs.pop("bos_token_id", None)
            self.eos_token_id = kwargs.pop("eos_token_id", None)
            self.tie_word_embeddings = kwargs.pop("tie_word_embeddings", True)
            for k, v in kwargs.items():
                setattr(self, k, v)

        @classmethod
        def from_pretrained(cls, path, **kw):
            with open(os.path.join(path, "config.json")) as f:
                return cls(**json.load(f))

        def to_dict(self):
            d = dict(self.__dict__)
            d["model_type"] = self.__class__.model_type
            return d

    class GenerationConfig:
        def __init__(self, **kw):
            self.__dict__.update(kw)

        @classmethod
        def from_pretrained(cls, path):
            with open(os.path.join(path, "generation_config.json")) as f:
                return cls(**json.load(f))

    class GenerationMixin:
        pass

    class PreTrainedModel(torch.nn.Module):
        def __init__(self, config, *a, **k):
            super().__init__()
            self.config = config

        def post_init(self):
            pass

    @dataclass
    class CausalLMOutputWithPast:
        loss: Optional[torch.Tensor] = None
        logits: Optional[torch.Tensor] = None
        past_key_values: Any = None

    tf.PretrainedConfig, tf.GenerationConfig, tf.GenerationMixin, tf.PreTrainedModel = (PretrainedConfig, GenerationConfig,
                                                                                         GenerationMixin, PreTrainedModel)
    outs = types.ModuleType("transformers.modeling_outputs")
    outs.CausalLMOutputWithPast = CausalLMOutputWithPast
    tf.modeling_outputs = outs
    return tf, outs


@pytest.fixture
def remote_module(exported, tmp_path, monkeypatch):
    """modeling_recurformer imported as transformers does: the folder's .py files as one package."""
    tf, outs = _stub_transformers()
    monkeypatch.setitem(sys.modules, "transformers", tf)
    monkeypatch.setitem(sys.modules, "transformers.modeling_outputs", outs)
    pkg = tmp_path / "mods" / "stories_hf_remote"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    for f in os.listdir(exported):
        if f.endswith(".py"):
            shutil.copyfile(os.path.join(exported, f), pkg / f)
    monkeypatch.syspath_prepend(str(tmp_path / "mods"))
    mod = importlib.import_module("stories_hf_remote.modeling_recurformer")
    yield mod
    for name in [n for n in sys.modules if n.startswith("stories_hf_remote")]:
        del sys.modules[name]


def test_remote_code_imports_without_the_package(remote_module):
    m = remote_module
    assert m.RecurformerForCausalLM.config_class is m.RecurformerConfig
    assert m.RecurformerConfig.model_type == "recurformer"
    # the folder's own copies, not this package (which would mean the folder needs it installed)
    assert m.HybridCache.__module__ == "stories_hf_remote.cache"
    assert m.load_folder.__module__ == "stories_hf_remote.folder"


def test_wrapper_forward_and_generation_equal_the_plain_model(remote_module, stories50, exported, tmp_path):
    m = remote_module
    cfg = m.RecurformerConfig.from_pretrained(exported)
    assert cfg.arch_model_type == "llama" and cfg.to_dict()["model_type"] == "llama" and "arch_model_type" not in cfg.to_dict()
    model = m.RecurformerForCausalLM.from_pretrained(exported, config=cfg, trust_remote_code=True, revision=None)
    assert not model.training
    plain = load_folder(stories50).eval()
    g = np.random.default_rng(7)
    ids = torch.from_numpy(g.integers(3, plain.cfg.vocab_size, size=(2, 70)))
    with torch.no_grad():
        ref = plain(ids)
        out = model(input_ids=ids, attention_mask=torch.ones_like(ids), use_cache=False)
        assert out.past_key_values is None
        diff = float((out.logits - ref).abs().max())
        assert out.logits.shape == ref.shape and diff <= TOL_WRAPPER, diff
        assert float(ref.abs().max()) > 1.0
        # the loss: next-token cross-entropy of the shifted labels, -100 ignored
        labels = ids.clone()
        labels[:, :5] = -100
        lo = model(input_ids=ids, labels=labels).loss
        V = ref.shape[-1]
        want = torch.nn.functional.cross_entropy(ref[:, :-1].reshape(-1, V), labels[:, 1:].reshape(-1), ignore_index=-100)
        assert abs(float(lo) - float(want)) <= 1e-6 * float(want)
        # a padded batch is refused (a recurrent state cannot skip pad tokens)
        mask = torch.ones_like(ids)
        mask[1, :3] = 0
        with pytest.raises(ValueError, match="padded"):
            model(input_ids=ids, attention_mask=mask)
        # greedy decoding the way generate() drives the model: prepare_inputs_for_generation, forward, the cache
        # carried in model_kwargs, logits_to_keep=1
        prompt = ids[:1, :9]
        want_ids, want_rows = greedy(plain, prompt[0].tolist(), STEPS)
        seq, kw, rows = prompt, {"attention_mask": torch.ones_like(prompt), "use_cache": True, "logits_to_keep": 1}, []
        for step in range(STEPS):
            inputs = model.prepare_inputs_for_generation(seq, **kw)
            assert inputs["input_ids"].shape[1] == (9 if step == 0 else 1)
            o = model(**inputs, return_dict=True)
            assert o.logits.shape[1] == 1
            rows.append(o.logits[0, -1])
            kw["past_key_values"] = o.past_key_values
            kw["attention_mask"] = torch.cat([kw["attention_mask"], torch.ones(1, 1, dtype=torch.long)], 1)
            seq = torch.cat([seq, o.logits[:, -1].argmax(-1, keepdim=True)], 1)
        assert seq[0, 9:].tolist() == want_ids
        assert len(set(want_ids)) > 3
        assert float((torch.stack(rows) - want_rows[:STEPS]).abs().max()) <= 1e-5
        # a cache that is not ours (transformers' DynamicCache) is ignored: the full sequence is recomputed
        inputs = model.prepare_inputs_for_generation(seq, past_key_values=object(), attention_mask=None)
        assert inputs["past_key_values"] is None and inputs["input_ids"].shape[1] == seq.shape[1]
    # save_pretrained writes the folder the TypeScript side reads: unchanged weights byte for byte, plus the remote code
    saved = str(tmp_path / "saved")
    model.save_pretrained(saved)
    for name in ("model.safetensors", "config.json", "modeling_recurformer.py", "plan.json"):
        if os.path.exists(os.path.join(exported, name)):
            assert _read(os.path.join(saved, name)) == _read(os.path.join(exported, name)), name


def test_wrapper_on_gpt2_from_the_package(gpt2_50, monkeypatch):
    """recurformer_torch.hf itself (an installed package, no export) on a converted GPT-2 (learned positions, tied
    head, Conv1D layout): the same logits and greedy tokens as the plain model."""
    tf, outs = _stub_transformers()
    monkeypatch.setitem(sys.modules, "transformers", tf)
    monkeypatch.setitem(sys.modules, "transformers.modeling_outputs", outs)
    monkeypatch.delitem(sys.modules, "recurformer_torch.hf", raising=False)
    try:
        hf = importlib.import_module("recurformer_torch.hf")
        model = hf.RecurformerForCausalLM.from_pretrained(gpt2_50)
        plain = load_folder(gpt2_50).eval()
        assert model.get_input_embeddings() is model.lm.transformer.wte and model.get_output_embeddings() is None
        ids = torch.from_numpy(np.random.default_rng(3).integers(3, plain.cfg.vocab_size, size=(1, 40)))
        with torch.no_grad():
            assert torch.equal(model(input_ids=ids).logits, plain(ids))
            want, _ = greedy(plain, ids[0, :6].tolist(), 12)
            seq, kw = ids[:, :6], {"use_cache": True}
            for _ in range(12):
                o = model(**model.prepare_inputs_for_generation(seq, **kw))
                kw["past_key_values"] = o.past_key_values
                seq = torch.cat([seq, o.logits[:, -1:].argmax(-1)], 1)
        assert seq[0, 6:].tolist() == want and len(set(want)) > 2
        assert kw["past_key_values"].length == 6 + 11
    finally:
        sys.modules.pop("recurformer_torch.hf", None)


def test_the_package_imports_without_transformers():
    if importlib.util.find_spec("transformers") is not None:
        pytest.skip("transformers is installed here")
    r = subprocess.run([sys.executable, "-c", "import recurformer_torch, recurformer_torch.hf_export, recurformer_torch.train; "
                        "import sys; assert 'transformers' not in sys.modules; import recurformer_torch.hf"],
                       env=_env(), capture_output=True, text=True)
    assert r.returncode == 1 and "No module named 'transformers'" in r.stderr  # only hf.py needs it


# ---- with transformers -----------------------------------------------------------------------------------------------

def test_transformers_automodel_generate(stories50, exported):
    """AutoModelForCausalLM.from_pretrained(folder, trust_remote_code=True).generate() = our greedy tokens."""
    if importlib.util.find_spec("transformers") is None:
        pytest.skip("transformers is not importable here (pip install transformers); scripts/gpu/check.sh runs this check")
    from transformers import AutoModelForCausalLM
    model = AutoModelForCausalLM.from_pretrained(exported, trust_remote_code=True)
    assert type(model).__name__ == "RecurformerForCausalLM"
    plain = load_folder(stories50).eval()
    prompt = [plain.cfg.bos_id, 100, 200, 300, 50]
    want, _ = greedy(plain, prompt, STEPS)
    got = model.generate(torch.tensor([prompt]), max_new_tokens=STEPS, do_sample=False, eos_token_id=None, pad_token_id=0)
    assert got[0, len(prompt):].tolist() == want
