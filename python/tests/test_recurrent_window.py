"""The recurrent+window kind of converted KV group: each replaced query head outputs its own softmax attention over
its group's sinks + the last `window` keys plus mix * its recurrent head. The spec section parses and round-trips;
one prefill, a prefill split into calls and token-by-token decode agree; with a window covering the sequence and
mix = 0 the converted model is the original one; gradients of the chunked form agree with token-by-token decode and
with finite differences; the cache holds sinks + window - 1 keys per group plus the state; folders round-trip byte
for byte; the align objective sees the same head outputs as the forward."""
from __future__ import annotations

import json
import os

import pytest
import torch

from recurformer_torch import HybridCache, RecurformerLM, config_from_hf, load_folder, parse_spec, save_folder
from recurformer_torch.config import KINDS, RecurformerSpec, make_layout
from recurformer_torch.folder import FolderInfo
from recurformer_torch.objectives import align_loss, distill_loss
from recurformer_torch.safetensors_io import FormatError

# logits of the prefill / split / decode forms: max abs difference relative to the largest logit (the float32 rounding
# of chunked vs step forms; a pure recurrent model of the same size differs by as much, ~1e-5 at logits ~6)
TOL_FORMS = 1e-5
TOL_ORIGINAL = 1e-6  # converted (W >= T, mix = 0) vs original logits
TOL_GRAD_REL = 1e-4  # chunked vs token-by-token gradients, relative to the largest entry

LLAMA = {"model_type": "llama", "vocab_size": 64, "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 8, "max_position_embeddings": 128,
         "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "bos_token_id": 1, "eos_token_id": 2, "tie_word_embeddings": False}
MISTRAL = {**LLAMA, "model_type": "mistral", "sliding_window": 6}
GPT2 = {"model_type": "gpt2", "vocab_size": 64, "n_embd": 32, "n_layer": 2, "n_head": 4, "n_positions": 128,
        "bos_token_id": 1, "eos_token_id": 2}


def section(window=5, sinks=2, chunk=4, kind="recurrent+window", P=8, layers=None):
    s = {"version": 1, "P": P, "N": 4, "convK": 4, "gate": True, "norm": True, "chunk": chunk}
    if kind is not None:
        s["kind"] = kind
    if kind == "recurrent+window":
        s.update(window=window, sinks=sinks)
    # layer 0: group 1 replaced (mixed with attention); layer 1: every group replaced
    s["layers"] = layers if layers is not None else [{"layer": 0, "groups": [1]}, {"layer": 1, "groups": [0, 1]}]
    return s


def build(base=LLAMA, seed=0, mix_zero=False, **kw):
    """A random converted model (no folder) and its config.json object."""
    cj = dict(base)
    hd = cj.get("head_dim", 8)
    if base is GPT2:
        kw.setdefault("layers", [{"layer": 0, "groups": [1, 3]}, {"layer": 1, "groups": [0, 1, 2, 3]}])
    cj["recurformer"] = section(P=hd, **kw)
    cfg = config_from_hf(cj)
    model = RecurformerLM(cfg, parse_spec(cj["recurformer"], cfg, "config.json"))
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n.endswith(".mix"):
                m = torch.randn(p.shape, generator=g) * 0.7  # drawn either way: the other weights do not depend on mix_zero
                p.copy_(torch.zeros(p.shape) if mix_zero else m)
            elif p.dim() == 1 and ("norm" in n or n.endswith("ln_1.weight") or n.endswith("ln_2.weight") or n.endswith("ln_f.weight")):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            elif n.endswith(".a_log"):
                p.copy_(torch.rand(p.shape, generator=g) * 2 - 1)
            else:
                p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model.eval(), cj


def ids_of(B, T, seed=1, vocab=64):
    return torch.randint(3, vocab, (B, T), generator=torch.Generator().manual_seed(seed))


def decode_all(model, ids, splits):
    """Logits of the calls of lengths `splits` (summing to T) through one cache, concatenated."""
    cache = HybridCache(model)
    out, at = [], 0
    for n in splits:
        out.append(model(ids[:, at: at + n], cache=cache))
        at += n
    assert at == ids.shape[1]
    return torch.cat(out, 1), cache


# ---- the spec ----------------------------------------------------------------------------------------------

def _cfg():
    return config_from_hf(dict(LLAMA))


@pytest.mark.parametrize("patch,needle", [
    ({"kind": "window"}, "recurformer.kind = 'window' is not one of 'recurrent', 'recurrent+window'"),
    ({"kind": None}, "recurformer.kind = None is not one of"),
    ({"kind": "recurrent+window", "sinks": 1}, "recurformer.window is missing"),
    ({"kind": "recurrent+window", "window": 4}, "recurformer.sinks is missing"),
    ({"kind": "recurrent+window", "window": 0, "sinks": 1}, "recurformer.window = 0 must be a positive integer"),
    ({"kind": "recurrent+window", "window": 2.5, "sinks": 1}, "recurformer.window = 2.5 must be a positive integer"),
    ({"kind": "recurrent+window", "window": True, "sinks": 1}, "recurformer.window = True must be a positive integer"),
    ({"kind": "recurrent+window", "window": 4, "sinks": -1}, "recurformer.sinks = -1 must be an integer >= 0"),
    ({"kind": "recurrent+window", "window": 4, "sinks": "2"}, "recurformer.sinks = '2' must be an integer >= 0"),
    ({"kind": "recurrent+window", "window": 4, "sinks": False}, "recurformer.sinks = False must be an integer >= 0"),
    ({"kind": "recurrent", "window": 4}, 'recurformer.window and recurformer.sinks belong to kind "recurrent+window", but the kind is "recurrent"'),
    ({"sinks": 0}, 'belong to kind "recurrent+window", but the kind is "recurrent"'),
])
def test_spec_errors(patch, needle):
    j = section(kind=None)
    j.update(patch)
    with pytest.raises(FormatError) as e:
        parse_spec(j, _cfg(), "config.json")
    assert needle in str(e.value), str(e.value)


def test_spec_parse_and_json_round_trip():
    cfg = _cfg()
    plain = section(kind=None)
    s = parse_spec(plain, cfg, "config.json")
    assert (s.kind, s.window, s.sinks) == ("recurrent", 0, 0)
    assert s.to_json() == plain and list(s.to_json()) == list(plain)  # no kind keys: as before the kind existed
    assert parse_spec(section(kind="recurrent"), cfg, "c").to_json() == plain  # explicit "recurrent" = absent
    rw = section(window=7, sinks=0)
    s = parse_spec(rw, cfg, "config.json")
    assert (s.kind, s.window, s.sinks) == ("recurrent+window", 7, 0)
    j = s.to_json()
    assert list(j) == ["version", "P", "N", "convK", "gate", "norm", "chunk", "kind", "window", "sinks", "layers"]
    assert j == rw and parse_spec(j, cfg, "c") == s


def test_layout_of_recurrent_window_groups():
    model, _ = build()
    assert KINDS == ("attention", "window", "recurrent", "recurrent+window")
    L0, L1 = model.layout
    assert L0.kinds == ("attention", "recurrent+window") and L1.kinds == ("recurrent+window",) * 2
    assert L0.groups["recurrent"] == () and L0.groups["recurrent+window"] == (1,)
    assert L0.replaced_heads == (2, 3) and L0.merge == (0, 1, 2, 3) and L1.merge is None
    assert L0.recurrent.n_heads == 2 and L1.recurrent.n_heads == 4 and L1.recurrent.kind == "recurrent+window"
    for l in (0, 1):
        mix = model.recurrent_of(l).mix
        assert mix.shape == (model.layout[l].recurrent.n_heads,) and mix.dtype == torch.float32
    assert f"{model.layer_prefix(0)}.recurrent.mix" in model.state_dict()
    # windows turn only attention groups into window groups
    lay = make_layout(model.cfg, model.spec, "all")
    assert lay[0].kinds == ("window", "recurrent+window") and lay[1].kinds == ("recurrent+window",) * 2
    with pytest.raises(ValueError, match="is recurrent\\+window, not attention"):
        make_layout(model.cfg, model.spec, {0: [1]})
    # a pure recurrent model has no mix
    plain, _ = build(kind=None)
    assert plain.recurrent_of(0).mix is None and plain.layout[0].kinds == ("attention", "recurrent")


# ---- forms agree ---------------------------------------------------------------------------------------------

CASES = [  # (base, window, sinks, T, chunk)
    (LLAMA, 5, 2, 17, 4),
    (LLAMA, 5, 2, 17, 1),
    (LLAMA, 3, 0, 13, 16),
    (LLAMA, 32, 4, 17, 4),  # W >= T
    (LLAMA, 17, 1, 17, 64),  # W == T
    (MISTRAL, 9, 2, 15, 4),  # the layer's own window (6) is the tighter one
    (MISTRAL, 3, 1, 15, 5),  # the spec's window is the tighter one
    (GPT2, 4, 1, 11, 3),
]


@pytest.mark.parametrize("base,W,S,T,chunk", CASES)
def test_prefill_split_and_decode_agree(base, W, S, T, chunk):
    model, _ = build(base, window=W, sinks=S, chunk=chunk)
    ids = ids_of(2, T)
    with torch.no_grad():
        full = model(ids)
        one, _ = decode_all(model, ids, [T])
        split, _ = decode_all(model, ids, [5, 1, T - 9, 3])
        steps, _ = decode_all(model, ids, [1] * T)
    scale = float(full.abs().max())
    assert scale > 0.5
    for name, other in (("one call", one), ("split", split), ("token by token", steps)):
        d = float((other - full).abs().max())
        assert d <= TOL_FORMS * scale, f"{name}: max |diff| {d:.3g} (largest logit {scale:.3g})"


def test_streaming_windows_leave_recurrent_window_groups_alone():
    """A StreamingLLM cache (windows 'all') windows the attention groups with its own sinks/window; the
    recurrent+window groups keep the spec's. Split prefill and token-by-token decode agree under it."""
    model, _ = build(window=6, sinks=1)
    T = 14
    ids = ids_of(1, T)
    with torch.no_grad():
        outs = []
        for splits in ([T], [4, 7, 3], [1] * T):
            cache = HybridCache(model, windows="all", sinks=2, window=3)
            outs.append(torch.cat([model(ids[:, a: a + n], cache=cache)
                                   for a, n in zip([sum(splits[:i]) for i in range(len(splits))], splits)], 1))
            assert cache.layer(0).window.k.shape[1] == 2 + 3 - 1  # the cache's window on the attention group
            assert cache.layer(0).rwindow.k.shape[1] == 1 + 6 - 1  # the spec's on the recurrent+window group
        full = model(ids)
    scale = float(outs[0].abs().max())
    for o in outs[1:]:
        assert float((o - outs[0]).abs().max()) <= TOL_FORMS * scale
    assert float((outs[0] - full).abs().max()) > 1e-3  # the streaming window changes layer 0's attention group


def test_window_really_limits_attention():
    """A short window differs from a long one (the mask is applied), and the sinks are used."""
    ids = ids_of(1, 16)
    with torch.no_grad():
        a = build(window=3, sinks=2)[0](ids)
        b = build(window=64, sinks=2)[0](ids)
        c = build(window=3, sinks=0)[0](ids)
    assert torch.equal(a[:, :4], b[:, :4])  # t - j < 3 or j < 2 covers every key of the first 4 queries
    assert float((a[:, 4:] - b[:, 4:]).abs().max()) > 1e-3
    assert torch.equal(a[:, :3], c[:, :3]) and float((a[:, 3:] - c[:, 3:]).abs().max()) > 1e-3


def test_head_output_is_windowed_attention_plus_mixed_recurrent():
    """y_h = A_h + mix_h * r_h for a replaced head, A_h computed by hand (RoPE, scale, sinks + window mask)."""
    from recurformer_torch.model import rope
    model, _ = build(window=4, sinks=1)
    T, l = 10, 0
    ids = ids_of(1, T)
    taps = {}
    with torch.no_grad():
        model(ids, taps=taps)
        h = model.input_norm(l, taps[f"blk.{l}.in"])
        q, k, v = model.blocks[l].qkv(h)
        pos = torch.arange(T)
        f = model.freq(l)
        qr, kr = rope(q, pos, f), rope(k, pos, f)
        rec = model.recurrent_of(l)
        r = rec.chunked(h, 4)[0].reshape(1, T, 2, 8)
        for i, hq in enumerate((2, 3)):  # the replaced heads of group 1
            s = torch.einsum("td,sd->ts", qr[0, :, hq], kr[0, :, 1]) * model.cfg.scale()
            t_, j_ = pos[:, None], pos[None, :]
            vis = (j_ <= t_) & ((j_ < 1) | (t_ - j_ < 4))
            a = torch.softmax(s.masked_fill(~vis, float("-inf")), -1) @ v[0, :, 1]
            want = a + r[0, :, i] * rec.mix[i]
            got = taps[f"blk.{l}.head_out"][0, :, hq]
            assert float((got - want).abs().max()) <= 1e-6


# ---- the original model is a special case ----------------------------------------------------------------

@pytest.mark.parametrize("base", [LLAMA, MISTRAL, GPT2])
def test_full_window_and_zero_mix_equal_the_original(base):
    T = 15
    model, cj = build(base, window=T, sinks=0, mix_zero=True)
    orig = RecurformerLM(model.cfg, None).eval()
    missing = orig.load_state_dict({k: v for k, v in model.state_dict().items() if ".recurrent." not in k}, strict=True)
    assert not missing.missing_keys
    ids = ids_of(2, T)
    with torch.no_grad():
        a, b = model(ids), orig(ids)
        steps, _ = decode_all(model, ids, [1] * T)
        ref_steps, _ = decode_all(orig, ids, [1] * T)
    assert float((a - b).abs().max()) <= TOL_ORIGINAL
    assert float((steps - ref_steps).abs().max()) <= TOL_ORIGINAL
    # and with mix != 0 it is not
    with torch.no_grad():
        model.recurrent_of(1).mix.fill_(0.5)
        assert float((model(ids) - b).abs().max()) > 1e-3


# ---- gradients ---------------------------------------------------------------------------------------------

def _loss(logits, w):
    return (logits * w).sum()


@pytest.mark.parametrize("W,S,T,chunk", [(4, 1, 11, 3), (16, 2, 11, 4)])
def test_gradients_chunked_equal_token_by_token(W, S, T, chunk):
    model, _ = build(window=W, sinks=S, chunk=chunk)
    ids = ids_of(1, T)
    w = torch.randn(1, T, 64, generator=torch.Generator().manual_seed(9))
    names = [f"{model.layer_prefix(l)}.recurrent.{p}" for l in (0, 1) for p in ("mix", "wx", "wc", "a_log")]
    params = dict(model.named_parameters())
    _loss(model(ids), w).backward()
    g_chunk = {n: params[n].grad.clone() for n in names}
    model.zero_grad()
    _loss(decode_all(model, ids, [1] * T)[0], w).backward()
    for n in names:
        scale = float(g_chunk[n].abs().max())
        assert scale > 1e-6, f"{n}: no gradient"
        err = float((params[n].grad - g_chunk[n]).abs().max()) / scale
        assert err <= TOL_GRAD_REL, f"{n}: chunked vs token-by-token gradient differs by {err:.2e}"


def test_gradient_of_mix_and_wx_by_finite_differences():
    """Directional central differences in float32 (the twin computes its norms and scan in float32)."""
    model, _ = build(window=4, sinks=1, chunk=3)
    ids = ids_of(1, 10)
    w = torch.randn(1, 10, 64, generator=torch.Generator().manual_seed(4))
    params = dict(model.named_parameters())
    _loss(model(ids), w).backward()
    g = torch.Generator().manual_seed(5)
    eps = 1e-3  # measured: the differences converge to the analytic value down to ~1e-4 relative here
    for n in ("model.layers.1.recurrent.mix", "model.layers.0.recurrent.mix", "model.layers.1.recurrent.wx",
              "model.layers.0.recurrent.wx"):
        p = params[n]
        d = torch.randn(p.shape, generator=g)
        analytic = float((p.grad * d).sum())
        with torch.no_grad():
            p.add_(eps * d)
            up = float(_loss(model(ids), w))
            p.sub_(2 * eps * d)
            down = float(_loss(model(ids), w))
            p.add_(eps * d)
        numeric = (up - down) / (2 * eps)
        assert abs(analytic) > 1e-2
        assert abs(numeric - analytic) <= 2e-3 * abs(analytic) + 2e-3, (n, numeric, analytic)


# ---- cache bytes -------------------------------------------------------------------------------------------

@pytest.mark.parametrize("W,S", [(5, 2), (3, 0), (1, 1)])
def test_cache_bytes(W, S):
    model, _ = build(window=W, sinks=S)
    cfg = model.cfg
    T = S + W + 6
    ids = ids_of(1, T)
    cache = HybridCache(model)
    Dh = cfg.head_dim
    with torch.no_grad():
        for t in range(T):
            model(ids[:, t: t + 1], cache=cache)
            n = t + 1
            held = min(n, S + W - 1)
            for l, L in enumerate(model.layout):
                st = cache.layer(l)
                d = L.recurrent
                state = (d.n_heads * d.P * d.N + (d.conv_k - 1) * d.channels) * 4
                G = len(L.groups["recurrent+window"])
                assert st.rwindow.nbytes() == held * 2 * Dh * 4 * G
                assert sum(x.numel() for x in st.recurrent) * 4 == state
                if n >= S + W - 1:
                    assert st.rwindow.nbytes() + state == (S + W - 1) * 2 * Dh * 4 * G + state
            # layer 0 keeps one attention group with every key
            assert cache.layer(0).kv.nbytes() == n * 2 * Dh * 4 * 1
    # a prefill in one call holds the same
    c2 = HybridCache(model)
    with torch.no_grad():
        model(ids, cache=c2)
    assert c2.nbytes() == cache.nbytes()


# ---- folders -----------------------------------------------------------------------------------------------

def _files(d):
    return {f: open(os.path.join(d, f), "rb").read() for f in sorted(os.listdir(d))}


@pytest.mark.parametrize("dtype", ["F32", "BF16"])
def test_folder_round_trip_is_byte_identical(dtype, tmp_path):
    model, cj = build(window=6, sinks=3)
    sd = model.state_dict()
    model.info = FolderInfo("", cj, list(sd), {k: ("F32" if ".recurrent." in k else dtype) for k in sd})
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    save_folder(model, a)
    saved = json.load(open(os.path.join(a, "config.json")))["recurformer"]
    assert list(saved) == ["version", "P", "N", "convK", "gate", "norm", "chunk", "kind", "window", "sinks", "layers"]
    assert (saved["kind"], saved["window"], saved["sinks"]) == ("recurrent+window", 6, 3)
    m2 = load_folder(a)
    assert m2.spec == model.spec
    assert torch.equal(m2.recurrent_of(1).mix, model.recurrent_of(1).mix)
    save_folder(m2, b)
    assert _files(a) == _files(b)
    ids = ids_of(1, 9)
    with torch.no_grad():
        m3 = load_folder(b)
        assert torch.equal(m2(ids), m3(ids))
    # a folder without mix is refused (the config says recurrent+window)
    from recurformer_torch.safetensors_io import read_safetensors_folder, write_safetensors_folder
    raw = read_safetensors_folder(a)
    c = str(tmp_path / "c")
    os.makedirs(c)
    open(os.path.join(c, "config.json"), "wb").write(open(os.path.join(a, "config.json"), "rb").read())
    write_safetensors_folder(c, [t for k, t in raw.items() if not k.endswith(".mix")], {"format": "pt"})
    with pytest.raises(FormatError, match="missing"):
        load_folder(c)


def test_pure_recurrent_folder_unchanged(tmp_path):
    model, cj = build(kind=None)
    sd = model.state_dict()
    assert not any(k.endswith(".mix") for k in sd)
    model.info = FolderInfo("", cj, list(sd), {k: "F32" for k in sd})
    save_folder(model, str(tmp_path / "a"))
    j = json.load(open(tmp_path / "a" / "config.json"))["recurformer"]
    assert "kind" not in j and "window" not in j and "sinks" not in j
    save_folder(load_folder(str(tmp_path / "a")), str(tmp_path / "b"))
    assert _files(str(tmp_path / "a")) == _files(str(tmp_path / "b"))


# ---- training objectives -----------------------------------------------------------------------------------

def test_align_student_is_the_forward_head_output_and_trains_mix():
    model, _ = build(window=4, sinks=1, chunk=4)
    T = 12
    ids = ids_of(2, T)
    # layer 0's input is the same for the student and the teacher: the align student output is the forward's head_out
    taps = {}
    with torch.no_grad():
        model(ids, taps=taps)
        y = model.replaced_heads(0, model.input_norm(0, taps["blk.0.in"]))
    assert float((y - taps["blk.0.head_out"][:, :, [2, 3]]).abs().max()) <= 1e-6
    # rec_out: the recurrent read-out before mix; head_out - rec_out * mix is the windowed attention alone, which is
    # the head_out of the same model with mix = 0
    assert taps["blk.0.rec_out"].shape == (2, T, 2, 8) and taps["blk.1.rec_out"].shape == (2, T, 4, 8)
    zero, _ = build(window=4, sinks=1, chunk=4, mix_zero=True)
    zt = {}
    with torch.no_grad():
        zero(ids, taps=zt, wanted=lambda n: n == "blk.0.head_out")
    mix0 = model.recurrent_of(0).mix.detach()
    assert float(mix0.abs().min()) > 0
    assert torch.equal(taps["blk.0.head_out"][:, :, :2], zt["blk.0.head_out"][:, :, :2])  # the attention heads
    windowed = taps["blk.0.head_out"][:, :, 2:] - taps["blk.0.rec_out"] * mix0.view(1, 1, 2, 1)
    assert float((windowed - zt["blk.0.head_out"][:, :, 2:]).abs().max()) <= 1e-6
    # the teacher: the original model (same weights, every head attention)
    teacher = RecurformerLM(model.cfg, None).eval()
    teacher.load_state_dict({k: v for k, v in model.state_dict().items() if ".recurrent." not in k})
    for n, p in model.named_parameters():
        p.requires_grad_(".recurrent." in n)
    loss, parts = align_loss(model, teacher, ids)
    loss.backward()
    assert float(loss) > 0 and set(parts) == {"mse.0", "mse.1"}
    for l in (0, 1):
        assert float(model.recurrent_of(l).mix.grad.abs().max()) > 0
        assert float(model.recurrent_of(l).wx.grad.abs().max()) > 0
    # the windowed attention reads the teacher's q/k/v (frozen): a student whose own q/k projections differ
    # gets the same loss, and nothing of the attention part has a gradient
    with torch.no_grad():
        model.blocks[0].self_attn.q_proj.weight.add_(0.5)
        model.blocks[1].self_attn.k_proj.weight.mul_(-1)
    for n, p in model.named_parameters():
        p.requires_grad_(True)
    model.zero_grad()
    again, _ = align_loss(model, teacher, ids)
    again.backward()
    assert float(again) == float(loss)
    assert model.blocks[0].self_attn.q_proj.weight.grad is None and model.blocks[1].self_attn.v_proj.weight.grad is None
    # the teacher must be the model before conversion
    with pytest.raises(ValueError, match="not an attention KV group of the teacher"):
        align_loss(model, build(window=4, sinks=1)[0], ids)
    # the student's windowed attention is exactly the teacher's head when the window covers the sequence: mix = 0
    # leaves nothing to align
    full, _ = build(window=T, sinks=0, mix_zero=True)
    teacher.load_state_dict({k: v for k, v in full.state_dict().items() if ".recurrent." not in k})
    loss0, _ = align_loss(full, teacher, ids)
    assert float(loss0) <= 1e-12


def test_distill_trains_mix():
    model, _ = build(window=4, sinks=1)
    teacher = RecurformerLM(model.cfg, None).eval()
    teacher.load_state_dict({k: v for k, v in model.state_dict().items() if ".recurrent." not in k})
    for n, p in model.named_parameters():
        p.requires_grad_(".recurrent." in n)
    x = ids_of(2, 10)
    loss, parts = distill_loss(model, teacher, x, ids_of(2, 10, seed=3),
                               {"temperature": 2.0, "ceWeight": 0.5, "hiddenWeight": 0.1})
    loss.backward()
    assert float(loss) > 0 and "hidden" in parts
    assert float(model.recurrent_of(0).mix.grad.abs().max()) > 0
