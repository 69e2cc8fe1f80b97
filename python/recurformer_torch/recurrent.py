"""The recurrent head (Mamba-2 / SSD style) that replaces a recency-aware attention head, in plain PyTorch.

Glossary (code name -> paper symbol -> src/model/recurrent-head.ts), per replaced query head h of a layer, time t:
  u      u_t    the layer's normalized input (d_model), what attention saw        u
  x      x_t    W_x u_t, head dim P (fills the head's slot in front of o_proj)       x
  b      B_t    W_B u_t, state dim N, shared by the heads of one KV group            bIn
  c      C_t    W_C u_t, state dim N, per head                                       cIn
  conv          short causal depthwise conv (kernel K) + SiLU on x, B and C          conv
  dt     dt_t   softplus(w_dt . u_t + b_dt), a positive step size per head           dt
  a_log  A_log  per-head decay rate: a_t = exp(-exp(A_log) dt_t) in (0, 1)           aLog
  H      H_t    state P x N: H_t = a_t H_{t-1} + dt_t x_t B_t^T                      H
  y      y_t    H_t C_t + D x_t, optionally gated by silu(z_t), RMS-normalized       y

Parameters (names as stored in the checkpoint under `<layer prefix>.recurrent.`, nn.Linear (out, in) layout):
  wx (H*P, D), wb (G*N, D), wc (H*N, D), conv_w (Cch, K), conv_b (Cch), wdt (H, D), bdt (H), a_log (H), d (H),
  wz (H*P, D) with the gate, norm_w (P) with the norm; Cch = H*P + G*N + H*N conv channels in that order;
  mix (H) with kind recurrent+window: the scale of y_t added to the head's own windowed attention (model.py).

Two forms, one semantics (tests/test_recurrent.py checks them against each other):
  chunked (prefill, training): chunks of length L; inside a chunk a masked matmul (C B^T * decay) (dt x), across
    chunks the state passes sequentially (the SSD algorithm);
  step (decode): the recurrence above, one token at a time, the conv's last K-1 inputs kept as state.
"""
from __future__ import annotations

from typing import Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from .config import RecurrentDims

State = Tuple[torch.Tensor, torch.Tensor]  # (H (B, Hh, P, N), conv window (B, K-1, Cch))


class RecurrentHeads(nn.Module):
    """All replaced heads of one layer."""

    def __init__(self, d_model: int, dims: RecurrentDims):
        super().__init__()
        self.dims = dims
        H, G, P, N = dims.n_heads, dims.n_groups, dims.P, dims.N
        self.wx = nn.Parameter(torch.zeros(H * P, d_model))
        self.wb = nn.Parameter(torch.zeros(G * N, d_model))
        self.wc = nn.Parameter(torch.zeros(H * N, d_model))
        self.conv_w = nn.Parameter(torch.zeros(dims.channels, dims.conv_k))
        self.conv_b = nn.Parameter(torch.zeros(dims.channels))
        self.wdt = nn.Parameter(torch.zeros(H, d_model))
        self.bdt = nn.Parameter(torch.zeros(H))
        self.a_log = nn.Parameter(torch.zeros(H))
        self.d = nn.Parameter(torch.zeros(H))
        self.wz = nn.Parameter(torch.zeros(H * P, d_model)) if dims.gate else None
        self.norm_w = nn.Parameter(torch.ones(P)) if dims.norm else None
        self.mix = nn.Parameter(torch.zeros(H)) if dims.kind == "recurrent+window" else None
        self.register_buffer("group_of", torch.tensor(dims.group_of, dtype=torch.long), persistent=False)

    def zero_state(self, B: int, device=None) -> State:
        d = self.dims
        dev = device or self.wx.device
        return (torch.zeros(B, d.n_heads, d.P, d.N, device=dev), torch.zeros(B, max(0, d.conv_k - 1), d.channels, device=dev))

    # ---- shared pieces ---------------------------------------------------------------------------------------

    def _project(self, u: torch.Tensor):
        """u (B, T, D) -> xbc (B, T, Cch) = [x | B | C], dt (B, T, H) in float32, z (B, T, H*P) or None."""
        xbc = torch.cat([F.linear(u, self.wx), F.linear(u, self.wb), F.linear(u, self.wc)], dim=2)
        dt = F.softplus((F.linear(u, self.wdt) + self.bdt).float(), threshold=20.0)
        z = F.linear(u, self.wz) if self.wz is not None else None
        return xbc, dt, z

    def _split(self, xbc: torch.Tensor):
        """conv output (B, T, Cch) -> x (B, T, H, P), B expanded to heads (B, T, H, N), C (B, T, H, N)."""
        d = self.dims
        Bn, T = xbc.shape[:2]
        H, G, P, N = d.n_heads, d.n_groups, d.P, d.N
        x = xbc[:, :, : H * P].reshape(Bn, T, H, P)
        bg = xbc[:, :, H * P: H * P + G * N].reshape(Bn, T, G, N)
        b = bg.index_select(2, self.group_of)  # each head reads its group's B
        c = xbc[:, :, H * P + G * N:].reshape(Bn, T, H, N)
        return x, b, c

    def _finish(self, y: torch.Tensor, z: Optional[torch.Tensor]) -> torch.Tensor:
        """Output gate and per-head RMSNorm, then flatten heads: (B, T, H, P) -> (B, T, H*P)."""
        d = self.dims
        Bn, T = y.shape[:2]
        if d.gate and z is not None:
            y = y * F.silu(z.reshape(Bn, T, d.n_heads, d.P))
        if d.norm:
            yf = y.float()
            y = (yf * torch.rsqrt(yf.pow(2).mean(-1, keepdim=True) + d.norm_eps) * self.norm_w.float()).to(y.dtype)
        return y.reshape(Bn, T, d.n_heads * d.P)

    # ---- chunked SSD form ------------------------------------------------------------------------------------

    def chunked(self, u: torch.Tensor, chunk: int, state: Optional[State] = None) -> Tuple[torch.Tensor, State]:
        """u (B, T, D) -> y (B, T, H*P) and the state after the last token; `state` is the one before the first."""
        d = self.dims
        Bn, T, _ = u.shape
        H, P, N = d.n_heads, d.P, d.N
        h0, conv0 = state if state is not None else self.zero_state(Bn, u.device)
        xbc, dt, z = self._project(u)
        # causal depthwise conv with the carried-in window prepended, then SiLU
        km1 = max(0, d.conv_k - 1)
        past = torch.cat([conv0.to(xbc.dtype), xbc], dim=1) if km1 > 0 else xbc  # (B, K-1+T, Cch)
        conv = F.silu(F.conv1d(past.transpose(1, 2), self.conv_w.unsqueeze(1).to(xbc.dtype), self.conv_b.to(xbc.dtype),
                               groups=d.channels).transpose(1, 2))  # (B, T, Cch)
        new_conv = past[:, T: T + km1] if km1 > 0 else conv0
        x, b, c = self._split(conv)
        x, b, c = x.float(), b.float(), c.float()  # the scan runs in float32 (exp and cumsum of decays)

        # pad time to a multiple of the chunk: dt = 0 there, so a = 1 and nothing enters the state
        L = min(chunk, max(1, T))
        nC = -(-T // L)
        Tp = nC * L

        def pad(t: torch.Tensor) -> torch.Tensor:
            return t if Tp == T else F.pad(t, [0, 0] * (t.dim() - 2) + [0, Tp - T])

        def to_chunks(t: torch.Tensor) -> torch.Tensor:  # (B, Tp, H, k) -> (B, H, nC, L, k)
            return pad(t).reshape(Bn, nC, L, H, t.shape[-1]).permute(0, 3, 1, 2, 4)

        xc, bc, cc = to_chunks(x), to_chunks(b), to_chunks(c)
        dtc = to_chunks(dt.unsqueeze(-1)).squeeze(-1)  # (B, H, nC, L)
        la = -torch.exp(self.a_log.float()).view(1, H, 1, 1) * dtc  # log a_t
        cs = torch.cumsum(la, dim=3)  # within-chunk cumulative log decay
        dtx = xc * dtc.unsqueeze(-1)  # (B, H, nC, L, P)

        # intra-chunk: y_t += sum_{s<=t} (C_t . B_s) exp(cs_t - cs_s) dt_s x_s
        diff = cs.unsqueeze(-1) - cs.unsqueeze(-2)  # (B, H, nC, L, L): cs_t - cs_s
        mask = torch.full((L, L), float("-inf"), device=u.device).triu(1)
        scores = (cc @ bc.transpose(-1, -2)) * torch.exp(diff + mask)  # (B, H, nC, L, L)
        y_intra = scores @ dtx  # (B, H, nC, L, P)

        # chunk summaries: S_c = sum_s exp(cs_last - cs_s) dt_s x_s B_s^T  (B, H, nC, P, N)
        last = cs[..., L - 1: L]  # (B, H, nC, 1)
        s_c = (dtx * torch.exp(last - cs).unsqueeze(-1)).transpose(-1, -2) @ bc
        chunk_decay = torch.exp(last)  # (B, H, nC, 1)

        # inter-chunk recurrence (sequential over chunks): h_in[c] is the state entering chunk c
        h = h0.float()  # (B, H, P, N)
        h_ins = []
        for ci in range(nC):
            h_ins.append(h)
            h = h * chunk_decay[:, :, ci].unsqueeze(-1) + s_c[:, :, ci]
        h_in = torch.stack(h_ins, dim=2)  # (B, H, nC, P, N)
        y_inter = (cc @ h_in.transpose(-1, -2)) * torch.exp(cs).unsqueeze(-1)  # (B, H, nC, L, P)

        y = (y_intra + y_inter).permute(0, 2, 3, 1, 4).reshape(Bn, Tp, H, P)[:, :T]  # (B, T, H, P)
        y = y + x * self.d.float().view(1, 1, H, 1)  # D skip
        return self._finish(y.to(u.dtype), z), (h, new_conv)

    # ---- step form -------------------------------------------------------------------------------------------

    def step(self, u: torch.Tensor, state: State) -> Tuple[torch.Tensor, State]:
        """One token u (B, 1, D) and the previous state -> y (B, 1, H*P) and the next state."""
        d = self.dims
        Bn = u.shape[0]
        H, P, N = d.n_heads, d.P, d.N
        h0, conv0 = state
        xbc, dt, z = self._project(u)
        km1 = max(0, d.conv_k - 1)
        window = torch.cat([conv0.to(xbc.dtype), xbc], dim=1) if km1 > 0 else xbc  # (B, K, Cch): exactly the kernel
        conv = F.silu((window * self.conv_w.t().unsqueeze(0)).sum(1, keepdim=True) + self.conv_b)  # (B, 1, Cch)
        new_conv = window[:, 1:] if km1 > 0 else conv0
        x, b, c = self._split(conv)
        x2, b2, c2 = x.float().reshape(Bn, H, P, 1), b.float().reshape(Bn, H, 1, N), c.float().reshape(Bn, H, N, 1)
        dt2 = dt.reshape(Bn, H, 1, 1)
        a = torch.exp(-torch.exp(self.a_log.float()).view(1, H, 1, 1) * dt2)  # (B, H, 1, 1)
        h = h0.float() * a + (x2 @ b2) * dt2  # a H + dt x B^T
        y = (h @ c2).reshape(Bn, 1, H, P)  # H C
        y = y + x.float().reshape(Bn, 1, H, P) * self.d.float().view(1, 1, H, 1)
        return self._finish(y.to(u.dtype), z), (h, new_conv)
