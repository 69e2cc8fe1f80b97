"""The training objectives with the meaning of src/train/objectives.ts and losses.ts.

align (stage 1): the teacher runs the batch without grad, tapping `blk.{l}.in` (the residual stream entering block l)
  and `blk.{l}.head_out` (per-head outputs before o_proj, (B, T, Hq, Dh)) of every replaced layer. The student's
  recurrent heads read norm_l(teacher's block input) (the student's own input norm), and the loss is the MSE between
  their outputs and the teacher's outputs of the same query heads, averaged over layers. Teacher forcing makes the
  layers independent. A recurrent+window head's output is its windowed softmax attention over the teacher's own q, k,
  v of that layer (frozen, no gradient) + mix * its recurrent head (RecurformerLM.replaced_heads), as
  src/train/objectives.ts computes it from the teacher's `blk.{l}.q/k/v` taps.
distill (stage 2): tau^2 KL(teacher || student) per position, mean over positions (klFocus > 0: rows weighted by
  (KL_r / mean KL)^gamma scaled to mean 1, held constant), + ceWeight * CE on the data, + hiddenWeight * the relative
  squared error of every block input after the first replaced one (through the student's input norm).
pretrain: cross-entropy on the next tokens.
"""
from __future__ import annotations

from typing import Dict, Tuple

import torch
import torch.nn.functional as F

from .model import RecurformerLM


def mse(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return (a - b).pow(2).mean()


@torch.no_grad()
def teacher_qkv(student: RecurformerLM, teacher: RecurformerLM, l: int, x_in: torch.Tensor):
    """The teacher's q, k, v (before RoPE) of layer l for its block input x_in (frozen: no gradient), what a
    recurrent+window head's windowed attention reads in align. Its replaced groups must be attention groups of the
    teacher (the model before this conversion)."""
    lay, tl = student.layout[l], teacher.layout[l]
    for g in lay.groups["recurrent+window"]:
        if tl.kinds[g] != "attention":
            raise ValueError(f"align: layer {l} KV group {g} is not an attention KV group of the teacher "
                             "(the teacher is the model before this conversion)")
    return teacher.blocks[l].qkv(teacher.input_norm(l, x_in))


def align_loss(student: RecurformerLM, teacher: RecurformerLM, x: torch.Tensor) -> Tuple[torch.Tensor, Dict[str, float]]:
    layers = student.recurrent_layers()
    if not layers:
        raise ValueError("align: the model has no recurrent heads (convert it first)")
    wanted = {f"blk.{l}.{n}" for l in layers for n in ("in", "head_out")}
    taps: Dict[str, torch.Tensor] = {}
    with torch.no_grad():
        teacher(x, taps=taps, wanted=lambda n: n in wanted, hidden_only=True)
    total, parts = None, {}
    for l in layers:
        x_in = taps[f"blk.{l}.in"]  # (B, T, D), constant
        h = student.input_norm(l, x_in)
        qkv = None
        if student.layout[l].replaced_kind == "recurrent+window":
            qkv = teacher_qkv(student, teacher, l, x_in)
        y = student.replaced_heads(l, h, qkv)  # (B, T, replaced heads, P)
        heads = student.layout[l].replaced_heads
        target = taps[f"blk.{l}.head_out"][:, :, list(heads)]  # (B, T, replaced heads, Dh)
        e = mse(y.float(), target.float())
        parts[f"mse.{l}"] = float(e.detach())
        total = e if total is None else total + e
    return total / len(layers), parts


def distill_kl(s: torch.Tensor, t: torch.Tensor, tau: float, focus: float) -> Tuple[torch.Tensor, float]:
    """tau^2 * mean_rows KL(softmax(t/tau) || softmax(s/tau)); the focused loss and the plain mean."""
    V = s.shape[-1]
    ls = F.log_softmax(s.float().reshape(-1, V) / tau, dim=-1)
    lt = F.log_softmax(t.float().reshape(-1, V) / tau, dim=-1)
    kl = (lt.exp() * (lt - ls)).sum(-1)  # (rows,)
    plain = float(kl.detach().mean()) * tau * tau
    if focus > 0:
        with torch.no_grad():
            m = kl.mean()
            w = torch.ones_like(kl) if not bool(m > 0) else (kl / m).clamp(min=0).pow(focus)
            w = w * len(w) / w.sum()
        return tau * tau * (w * kl).mean(), plain
    return tau * tau * kl.mean(), plain


def hidden_layers(student: RecurformerLM):
    rl = student.recurrent_layers()
    return [] if not rl else list(range(min(rl) + 1, student.cfg.n_layers))


def hidden_loss(student: RecurformerLM, layers, s_taps, t_taps) -> torch.Tensor:
    total = None
    for l in layers:
        a = student.input_norm(l, s_taps[f"blk.{l}.in"])
        with torch.no_grad():
            b = student.input_norm(l, t_taps[f"blk.{l}.in"])
            scale = float(b.float().pow(2).mean())
        e = mse(a.float(), b.float()) / max(scale, 1e-30)
        total = e if total is None else total + e
    return total / len(layers)


def distill_loss(student, teacher, x, y, o: dict) -> Tuple[torch.Tensor, Dict[str, float]]:
    hw = o.get("hiddenWeight", 0) or 0
    layers = hidden_layers(student) if hw > 0 else []
    wanted = {f"blk.{l}.in" for l in layers}
    s_taps: Dict[str, torch.Tensor] = {} if layers else None
    t_taps: Dict[str, torch.Tensor] = {} if layers else None
    with torch.no_grad():
        tl = teacher(x, taps=t_taps, wanted=lambda n: n in wanted)
    sl = student(x, taps=s_taps, wanted=lambda n: n in wanted)
    loss, plain = distill_kl(sl, tl, o["temperature"], o.get("klFocus", 0) or 0)
    parts = {"kl": plain}
    if o.get("ceWeight", 0) > 0:
        ce = F.cross_entropy(sl.float().reshape(-1, sl.shape[-1]), y.reshape(-1))
        parts["ce"] = float(ce.detach())
        loss = loss + o["ceWeight"] * ce
    if layers:
        e = hidden_loss(student, layers, s_taps, t_taps)
        parts["hidden"] = float(e.detach())
        loss = loss + hw * e
    return loss, parts


def objective(student, teacher, x, y, o: dict) -> Tuple[torch.Tensor, Dict[str, float]]:
    if o["stage"] == "pretrain":
        sl = student(x)
        return F.cross_entropy(sl.float().reshape(-1, sl.shape[-1]), y.reshape(-1)), {}
    if o["stage"] == "align":
        return align_loss(student, teacher, x)
    return distill_loss(student, teacher, x, y, o)


@torch.no_grad()
def evaluate(student, teacher, batches, o: dict, device) -> Dict[str, float]:
    """Validation: mean objective, student CE / perplexity and (with a teacher) KL at tau = 1, token-weighted."""
    loss = ce = kl = 0.0
    tokens = 0
    for xb, yb in batches:
        x, y = torch.as_tensor(xb, device=device), torch.as_tensor(yb, device=device)
        n = x.numel()
        sl = student(x)
        c = float(F.cross_entropy(sl.float().reshape(-1, sl.shape[-1]), y.reshape(-1)))
        ce += c * n
        if teacher is not None:
            tl = teacher(x)
            kl += distill_kl(sl, tl, 1.0, 0)[1] * n
            if o["stage"] == "distill" and (o.get("hiddenWeight", 0) or 0) > 0:
                loss += float(distill_loss(student, teacher, x, y, o)[0]) * n
            elif o["stage"] == "distill":  # the objective from the same two forwards
                loss += (float(distill_kl(sl, tl, o["temperature"], o.get("klFocus", 0) or 0)[0]) + o.get("ceWeight", 0) * c) * n
        if o["stage"] == "align":
            loss += float(align_loss(student, teacher, x)[0]) * n
        if o["stage"] == "pretrain":
            loss += c * n
        tokens += n
    out = {"loss": loss / tokens, "ce": ce / tokens, "ppl": float(torch.tensor(ce / tokens).exp()), "tokens": tokens}
    if teacher is not None:
        out["kl"] = kl / tokens
    return out
