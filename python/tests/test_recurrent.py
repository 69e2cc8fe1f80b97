"""Two forms, one semantics: the chunked SSD form equals token-by-token steps for any chunk length, values and
gradients, with gate and norm on and off; a prefill split in two passes the state exactly."""
from __future__ import annotations

import pytest
import torch

from recurformer_torch.config import RecurrentDims
from recurformer_torch.recurrent import RecurrentHeads

TOL_FORMS_F32 = 1e-5  # relative to the largest value compared


def rel(a, b) -> float:
    return float((a - b).abs().max()) / (float(b.abs().max()) + 1e-12)


def heads(gate: bool, norm: bool, seed: int = 0) -> RecurrentHeads:
    d = RecurrentDims(n_heads=4, n_groups=2, group_of=(0, 0, 1, 1), P=5, N=3, conv_k=4, gate=gate, norm=norm, norm_eps=1e-5)
    m = RecurrentHeads(12, d)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in m.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.5)
    return m


def steps(m: RecurrentHeads, u: torch.Tensor):
    st = m.zero_state(u.shape[0])
    ys = []
    for t in range(u.shape[1]):
        y, st = m.step(u[:, t: t + 1], st)
        ys.append(y)
    return torch.cat(ys, 1), st


@pytest.mark.parametrize("gate,norm", [(False, False), (True, True)])
@pytest.mark.parametrize("chunk", [1, 3, 7, 64])
def test_chunked_equals_steps(gate, norm, chunk):
    m = heads(gate, norm)
    u = torch.randn(2, 17, 12, generator=torch.Generator().manual_seed(1))
    yc, (hc, cc) = m.chunked(u, chunk)
    ys, (hs, cs) = steps(m, u)
    assert rel(yc, ys) <= TOL_FORMS_F32
    assert rel(hc, hs) <= TOL_FORMS_F32
    assert torch.equal(cc, cs)
    assert float(ys.abs().max()) > 0.1


def test_gradients_of_both_forms_agree():
    m = heads(True, False)
    u = torch.randn(1, 9, 12, generator=torch.Generator().manual_seed(2))
    m.chunked(u, 4)[0].pow(2).sum().backward()
    gc = {k: p.grad.clone() for k, p in m.named_parameters()}
    m.zero_grad()
    steps(m, u)[0].pow(2).sum().backward()
    for k, p in m.named_parameters():
        scale = float(gc[k].abs().max()) + 1e-12
        assert float((p.grad - gc[k]).abs().max()) / scale <= 1e-4, k


def test_state_carries_across_prefill_calls():
    m = heads(False, True)
    u = torch.randn(1, 20, 12, generator=torch.Generator().manual_seed(3))
    y, _ = m.chunked(u, 6)
    y1, st = m.chunked(u[:, :11], 6)
    y2, _ = m.chunked(u[:, 11:], 6, st)
    assert rel(torch.cat([y1, y2], 1), y) <= TOL_FORMS_F32
