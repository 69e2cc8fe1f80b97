"""Training data: the token shards the TypeScript data pipeline writes (src/train/data.ts; tokenize once, there),
packed into the same sequences, split the same way and served in the same seeded order, so both engines see the
same batches for the same options and a saved position resumes exactly.

Shard file: magic "RFTOKENS", u32 version (1), u32 bytes per token (2 or 4), u32 count, u32 reserved, then the
tokens little-endian.  A sequence is BOS + the next T tokens; inputs are its first T, targets its last T.
"""
from __future__ import annotations

import os
import struct
from typing import Iterator, List, Optional, Tuple

import numpy as np

MAGIC = b"RFTOKENS"
HEADER = 24
M32 = 0xFFFFFFFF


def read_shard(path: str) -> np.ndarray:
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(HEADER)
        if len(head) < HEADER or head[:8] != MAGIC:
            raise ValueError(f"{path}: is not a token shard (bad magic); make it with `recurformer train --engine torch`")
        version, width, n = struct.unpack("<III", head[8:20])
        if version != 1:
            raise ValueError(f"{path}: shard version {version}, expected 1")
        if width not in (2, 4) or size != HEADER + n * width:
            raise ValueError(f"{path}: has {size} bytes, expected {HEADER + n * width} ({n} tokens of {width} bytes)")
        return np.frombuffer(f.read(n * width), dtype="<u2" if width == 2 else "<i4").astype(np.int64)


class Rng:
    """xoshiro128** seeded by splitmix32: src/tensor/rng.ts, bit for bit (the data order of both engines)."""

    def __init__(self, seed=0):
        if isinstance(seed, (list, tuple)):
            self.s = [int(w) & M32 for w in seed]
            return
        s, x = [], seed & M32
        for _ in range(4):
            x = (x + 0x9E3779B9) & M32
            z = x
            z = ((z ^ (z >> 16)) * 0x85EBCA6B) & M32
            z = ((z ^ (z >> 13)) * 0xC2B2AE35) & M32
            s.append((z ^ (z >> 16)) & M32)
        if all(w == 0 for w in s):
            s[0] = 1
        self.s = s

    @staticmethod
    def _rotl(x: int, k: int) -> int:
        return ((x << k) | (x >> (32 - k))) & M32

    def next_u32(self) -> int:
        s = self.s
        result = (self._rotl((s[1] * 5) & M32, 7) * 9) & M32
        t = (s[1] << 9) & M32
        s[2] ^= s[0]
        s[3] ^= s[1]
        s[1] ^= s[2]
        s[0] ^= s[3]
        s[2] ^= t
        s[3] = self._rotl(s[3], 11)
        return result

    def int(self, n: int) -> int:
        return int((self.next_u32() / 4294967296) * n)

    def shuffle(self, a: List[int]) -> List[int]:
        for i in range(len(a) - 1, 0, -1):
            j = self.int(i + 1)
            a[i], a[j] = a[j], a[i]
        return a

    def get_state(self) -> List[int]:
        return list(self.s)


def document_bases(tokens: np.ndarray, T: int, bos: int) -> np.ndarray:
    """Document packing: each sequence's first stream offset (data.ts documentBases)."""
    n = len(tokens)
    starts = np.flatnonzero(tokens == bos).tolist()
    out = []
    b = 1 if starts and starts[0] == 0 else 0
    k = 0
    while b + T <= n:
        out.append(b)
        e = b + T
        while k + 1 < len(starts) and starts[k + 1] <= e:
            k += 1
        s = starts[k] if k < len(starts) else None
        b = s + 1 if s is not None and b <= s <= e else e
    return np.array(out, dtype=np.int64)


class PackedData:
    """Fixed-length sequences over a token stream; the last val_fraction of them is the validation split."""

    def __init__(self, tokens: np.ndarray, seq: int, bos: int, val_fraction: float = 0.1, packing: str = "stream"):
        self.tokens, self.seq, self.bos = tokens, seq, bos
        self.bases = document_bases(tokens, seq, bos) if packing == "document" else None
        self.n_seq = len(self.bases) if self.bases is not None else len(tokens) // seq
        # Math.round: half away from zero for positive values (Python's round() is half to even)
        self.n_val = max(1, int(np.floor(self.n_seq * val_fraction + 0.5))) if val_fraction > 0 else 0
        self.n_train = self.n_seq - self.n_val
        if self.n_train < 1:
            raise ValueError(f"data: {len(tokens)} tokens make {self.n_seq} sequences of {seq}, too few to train on")

    def fill(self, i: int, inputs: np.ndarray, targets: np.ndarray, row: int) -> None:
        T = self.seq
        base = int(self.bases[i]) if self.bases is not None else i * T
        s = self.tokens[base: base + T]
        inputs[row, 0] = self.bos
        inputs[row, 1:] = s[: T - 1]
        targets[row] = s

    def val_batches(self, B: int, max_batches: int) -> Iterator[Tuple[np.ndarray, np.ndarray]]:
        i, b = self.n_train, 0
        while b < max_batches and i < self.n_seq:
            rows = min(B, self.n_seq - i)
            x, y = np.zeros((rows, self.seq), np.int64), np.zeros((rows, self.seq), np.int64)
            for r in range(rows):
                self.fill(i + r, x, y, r)
            i += rows
            b += 1
            yield x, y


class Batcher:
    """Seeded shuffled training batches, a fresh permutation per epoch (data.ts Batcher); position() / the `at`
    argument save and restore the exact place."""

    def __init__(self, data: PackedData, batch: int, seed: int, at: Optional[dict] = None):
        self.data, self.batch = data, batch
        if at is not None:
            self.rng = Rng(at["epochRng"])
            self.pos = {"epoch": at["epoch"], "cursor": at["cursor"], "epochRng": list(at["epochRng"])}
        else:
            self.rng = Rng(seed)
            self.pos = {"epoch": 0, "cursor": 0, "epochRng": self.rng.get_state()}
        self._draw()

    def _draw(self) -> None:
        self.perm = self.rng.shuffle(list(range(self.data.n_train)))

    def position(self) -> dict:
        return {"epoch": self.pos["epoch"], "cursor": self.pos["cursor"], "epochRng": list(self.pos["epochRng"])}

    def next(self) -> Tuple[np.ndarray, np.ndarray]:
        T, B = self.data.seq, self.batch
        x, y = np.zeros((B, T), np.int64), np.zeros((B, T), np.int64)
        for r in range(B):
            if self.pos["cursor"] >= len(self.perm):
                self.pos = {"epoch": self.pos["epoch"] + 1, "cursor": 0, "epochRng": self.rng.get_state()}
                self._draw()
            self.data.fill(self.perm[self.pos["cursor"]], x, y, r)
            self.pos["cursor"] += 1
        return x, y
