"""The hybrid cache for generation (src/inference/hybrid-memory.ts HybridMemory): per layer, the stores its layout
asks for, a KV store for the attention groups (every key), a window store for the window groups (sinks + the most
recent keys; the rest evicted), the recurrent heads' state (constant size) and, for recurrent+window groups, a
second window store with the model's own spec.sinks and spec.window (the cache's sinks/window do not apply to it).
No token is ever evicted from an attention group; a recurrent state cannot roll back.

Shapes: B batch, S keys held, G groups of a kind, Dh head dim.
"""
from __future__ import annotations

from typing import Dict, List, Optional, Sequence, Tuple

import torch

from .config import LayerLayout, make_layout


class KVStore:
    """Every key and value of a layer's attention groups: k, v (B, S, G, Dh)."""

    def __init__(self):
        self.k: Optional[torch.Tensor] = None
        self.v: Optional[torch.Tensor] = None

    def append(self, k: torch.Tensor, v: torch.Tensor, start: int):
        """Adds T keys at absolute positions start.. and returns (k, v, key positions) to attend over."""
        self.k = k if self.k is None else torch.cat([self.k, k], dim=1)
        self.v = v if self.v is None else torch.cat([self.v, v], dim=1)
        pos = torch.arange(self.k.shape[1], device=k.device)
        return self.k, self.v, pos, None

    def nbytes(self) -> int:
        return 0 if self.k is None else (self.k.numel() + self.v.numel()) * 4


class WindowStore:
    """Sinks + the most recent keys of a layer's window groups. A query at position p sees key j when j < sinks or
    j > p - window; after each append the store keeps the sinks and the last window - 1 keys (the next query adds
    itself), exactly what any later query can still see."""

    def __init__(self, sinks: int, window: int):
        self.sinks, self.window = sinks, window
        self.k: Optional[torch.Tensor] = None
        self.v: Optional[torch.Tensor] = None
        self.pos: Optional[torch.Tensor] = None  # absolute positions of the held keys

    def append(self, k: torch.Tensor, v: torch.Tensor, start: int):
        T = k.shape[1]
        pos = torch.arange(start, start + T, device=k.device)
        if self.k is None:
            self.k, self.v, self.pos = k, v, pos
        else:
            self.k, self.v = torch.cat([self.k, k], 1), torch.cat([self.v, v], 1)
            self.pos = torch.cat([self.pos, pos])
        view = (self.k, self.v, self.pos, (self.window, self.sinks))
        keep = (self.pos < self.sinks) | (self.pos > self.pos[-1] - self.window + 1)
        self.k, self.v, self.pos = self.k[:, keep], self.v[:, keep], self.pos[keep]
        return view

    def nbytes(self) -> int:
        return 0 if self.k is None else (self.k.numel() + self.v.numel()) * 4


class LayerStores:
    def __init__(self, lay: LayerLayout, sinks: int, window: int, spec=None):
        self.kv = KVStore() if lay.groups["attention"] else None
        self.window = WindowStore(sinks, window) if lay.groups["window"] else None
        # the recurrent+window groups' keys: sinks + window of the model's spec
        self.rwindow = WindowStore(spec.sinks, spec.window) if lay.groups["recurrent+window"] else None
        self.recurrent: Optional[Tuple[torch.Tensor, torch.Tensor]] = None


class HybridCache:
    """The memory of one generation: its layout (the model's, optionally with windows), stores per layer, length."""

    def __init__(self, model, windows: Optional[Dict[int, Sequence[int]] | str] = None, sinks: int = 4, window: int = 64):
        self.layout: List[LayerLayout] = model.layout if windows is None else make_layout(model.cfg, model.spec, windows)
        self.layers = [LayerStores(L, sinks, window, model.spec) for L in self.layout]
        self.length = 0

    def layer(self, l: int) -> LayerStores:
        return self.layers[l]

    def commit(self, T: int) -> None:
        self.length += T

    def nbytes(self) -> int:
        """Bytes held (float32), as HybridMemory.bytes() counts them."""
        n = 0
        for s in self.layers:
            for st in (s.kv, s.window, s.rwindow):
                if st is not None:
                    n += st.nbytes()
            if s.recurrent is not None:
                n += sum(t.numel() for t in s.recurrent) * 4
        return n
