"""safetensors read and write with numpy and json only (the `safetensors` package is optional).

The format: u64 little-endian header length, a JSON header {name: {dtype, shape, data_offsets: [begin, end]},
"__metadata__"?: {str: str}}, then the tensors' bytes. The writer here produces the same bytes as the TypeScript
writer (src/io/safetensors.ts `serializeSafetensors`): compact JSON in the given tensor order, metadata first,
padded with spaces so the data starts 8-byte aligned. BF16 has no numpy dtype: it is held as uint16 bit patterns
and widened to float32 exactly (a bf16 is the upper half of a float32).

Loaders trust nothing: the header length, dtypes, shapes and offsets are checked, and the tensors must tile the
data region exactly (as the TypeScript reader checks).
"""
from __future__ import annotations

import json
import os
import struct
import tempfile
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

ITEM_SIZE = {"F32": 4, "F16": 2, "BF16": 2}
NP_DTYPE = {"F32": np.dtype("<f4"), "F16": np.dtype("<f2"), "BF16": np.dtype("<u2")}
MAX_HEADER = 100_000_000
DEFAULT_MAX_SHARD_BYTES = 2_000_000_000


class FormatError(Exception):
    """A file that is not what it claims: names the file, the tensor or key, and a hint."""

    def __init__(self, file: str, message: str, hint: str = "", name: Optional[str] = None):
        where = f"{file}" + (f" (tensor {name})" if name else "")
        super().__init__(f"{where}: {message}" + (f" (hint: {hint})" if hint else ""))


@dataclass
class RawTensor:
    """A tensor as stored: dtype 'F32' | 'F16' | 'BF16', row-major shape, numpy data (BF16 as uint16 bits)."""

    name: str
    dtype: str
    shape: List[int]
    data: np.ndarray

    def to_f32(self) -> np.ndarray:
        if self.dtype == "F32":
            return self.data.astype(np.float32, copy=False)
        if self.dtype == "F16":
            return self.data.astype(np.float32)
        return (self.data.astype(np.uint32) << 16).view(np.float32)


def f32_to_bf16_bits(x: np.ndarray) -> np.ndarray:
    """float32 -> bfloat16 bit patterns, round to nearest even (as the TypeScript f32ArrayToBf16)."""
    u = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32).astype(np.uint64)
    nan = np.isnan(x)
    r = ((u + 0x7FFF + ((u >> 16) & 1)) >> 16).astype(np.uint16)
    if nan.any():
        r[nan] = ((u[nan] >> 16) | 0x40).astype(np.uint16)
    return r


def read_safetensors(path: str) -> Dict[str, RawTensor]:
    """All tensors of one file, in file order (by data offset)."""
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        if size < 8:
            raise FormatError(path, f"has {size} bytes, fewer than the 8-byte header length", "the file is truncated")
        (n,) = struct.unpack("<Q", f.read(8))
        if n > MAX_HEADER or 8 + n > size:
            raise FormatError(path, f"header length {n} does not fit the file ({size} bytes)", "the file is corrupt")
        try:
            header = json.loads(f.read(n).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as e:
            raise FormatError(path, f"header is not JSON ({e})", "the file is corrupt") from None
        if not isinstance(header, dict):
            raise FormatError(path, "header is not a JSON object", "the file is corrupt")
        data_len = size - 8 - n
        entries = []
        for name, e in header.items():
            if name == "__metadata__":
                if not isinstance(e, dict) or not all(isinstance(v, str) for v in e.values()):
                    raise FormatError(path, "__metadata__ must be an object of string values", "the file is corrupt")
                continue
            if not isinstance(e, dict):
                raise FormatError(path, "entry is not an object", "the file is corrupt", name)
            dtype, shape, off = e.get("dtype"), e.get("shape"), e.get("data_offsets")
            if dtype not in ITEM_SIZE:
                raise FormatError(path, f"dtype {dtype!r} is not supported (F32, F16, BF16)", "convert the weights", name)
            if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
                raise FormatError(path, f"shape {shape!r} is not a list of non-negative integers", "the file is corrupt", name)
            if not (isinstance(off, list) and len(off) == 2 and all(isinstance(o, int) for o in off)
                    and 0 <= off[0] <= off[1] <= data_len):
                raise FormatError(path, f"data_offsets {off!r} are outside the data ({data_len} bytes)", "the file is corrupt", name)
            numel = int(np.prod(shape, dtype=np.int64)) if shape else 1
            if off[1] - off[0] != numel * ITEM_SIZE[dtype]:
                raise FormatError(path, f"holds {off[1] - off[0]} bytes, shape {shape} of {dtype} needs {numel * ITEM_SIZE[dtype]}",
                                  "the file is corrupt", name)
            entries.append((off[0], off[1], name, dtype, shape))
        entries.sort()
        at = 0
        for b, e_, name, _, _ in entries:
            if b != at:
                raise FormatError(path, f"data starts at {b}, expected {at} (tensors must tile the data)", "the file is corrupt", name)
            at = e_
        if at != data_len:
            raise FormatError(path, f"tensors cover {at} of {data_len} data bytes", "the file is corrupt")
        out: Dict[str, RawTensor] = {}
        base = 8 + n
        for b, e_, name, dtype, shape in entries:
            f.seek(base + b)
            buf = f.read(e_ - b)
            arr = np.frombuffer(buf, dtype=NP_DTYPE[dtype]).reshape(shape).copy()
            out[name] = RawTensor(name, dtype, list(shape), arr)
        return out


def serialize_safetensors(tensors: Sequence[RawTensor], metadata: Optional[Dict[str, str]] = None) -> List[bytes]:
    """Header and data chunks, byte-identical to the TypeScript writer for the same tensors in the same order."""
    header: Dict[str, object] = {}
    if metadata:
        header["__metadata__"] = metadata
    offset = 0
    chunks: List[bytes] = []
    for t in tensors:
        if t.name == "__metadata__" or t.name in header:
            raise FormatError("<memory>", "duplicate or reserved tensor name", "give every tensor a unique name", t.name)
        data = np.ascontiguousarray(t.data, dtype=NP_DTYPE[t.dtype])
        nbytes = int(np.prod(t.shape, dtype=np.int64) if t.shape else 1) * ITEM_SIZE[t.dtype]
        if data.nbytes != nbytes:
            raise FormatError("<memory>", f"shape {t.shape} of {t.dtype} needs {nbytes} bytes, data has {data.nbytes}",
                              "the tensor data does not match its shape", t.name)
        header[t.name] = {"dtype": t.dtype, "shape": list(t.shape), "data_offsets": [offset, offset + nbytes]}
        offset += nbytes
        chunks.append(data.tobytes())
    js = json.dumps(header, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    js += b" " * ((8 - ((8 + len(js)) % 8)) % 8)
    return [struct.pack("<Q", len(js)) + js] + chunks


def write_file_atomic(path: str, chunks: Sequence[bytes]) -> None:
    """A temp file in the same folder, fsync, rename, fsync of the folder (as the TypeScript writeFileAtomic)."""
    d = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "wb") as f:
            for c in chunks:
                f.write(c)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    try:
        dfd = os.open(d, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def write_safetensors(path: str, tensors: Sequence[RawTensor], metadata: Optional[Dict[str, str]] = None) -> None:
    write_file_atomic(path, serialize_safetensors(tensors, metadata))


SHARD_PREFIX = "model-"


def write_safetensors_folder(folder: str, tensors: Sequence[RawTensor], metadata: Optional[Dict[str, str]] = None,
                             max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES) -> List[str]:
    """One model.safetensors when the weights fit max_shard_bytes, else model-0000k-of-0000n shards and an index
    (the same grouping rule as the TypeScript writeSafetensorsFolder); stale files of the other layout are removed."""
    sizes = [int(np.prod(t.shape, dtype=np.int64) if t.shape else 1) * ITEM_SIZE[t.dtype] for t in tensors]
    total = sum(sizes)

    def stale(keep) -> None:
        for f in os.listdir(folder):
            is_weights = f in ("model.safetensors", "model.safetensors.index.json") or (
                f.startswith(SHARD_PREFIX) and f.endswith(".safetensors"))
            if is_weights and not keep(f):
                os.remove(os.path.join(folder, f))

    if total <= max_shard_bytes:
        write_safetensors(os.path.join(folder, "model.safetensors"), tensors, metadata)
        stale(lambda f: f == "model.safetensors")
        return ["model.safetensors"]
    groups: List[List[RawTensor]] = []
    nbytes = float("inf")
    for t, s in zip(tensors, sizes):
        if nbytes + s > max_shard_bytes:
            groups.append([])
            nbytes = 0
        groups[-1].append(t)
        nbytes += s
    names = [f"model-{k + 1:05d}-of-{len(groups):05d}.safetensors" for k in range(len(groups))]
    weight_map: Dict[str, str] = {}
    for g, nm in zip(groups, names):
        write_safetensors(os.path.join(folder, nm), g, metadata)
        for t in g:
            weight_map[t.name] = nm
    index = {"metadata": {"total_size": total}, "weight_map": weight_map}
    write_file_atomic(os.path.join(folder, "model.safetensors.index.json"),
                      [(json.dumps(index, indent=2, ensure_ascii=False) + "\n").encode("utf-8")])
    stale(lambda f: f == "model.safetensors.index.json" or f in names)
    return names + ["model.safetensors.index.json"]


def read_safetensors_folder(folder: str) -> Dict[str, RawTensor]:
    """model.safetensors, or the shards an index names (every tensor must be in the shard the index says)."""
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index, encoding="utf-8") as f:
            wm = json.load(f).get("weight_map")
        if not isinstance(wm, dict):
            raise FormatError(index, "has no weight_map object", "the index is corrupt")
        out: Dict[str, RawTensor] = {}
        for shard in sorted(set(wm.values())):
            got = read_safetensors(os.path.join(folder, shard))
            for name, t in got.items():
                if wm.get(name) != shard:
                    raise FormatError(os.path.join(folder, shard), "is not listed for this shard in the index", "the index is stale", name)
                out[name] = t
        missing = set(wm) - set(out)
        if missing:
            raise FormatError(index, f"names tensors no shard holds: {sorted(missing)[:4]}", "the index is stale")
        return out
    single = os.path.join(folder, "model.safetensors")
    if not os.path.exists(single):
        raise FormatError(folder, "holds no model.safetensors or model.safetensors.index.json", "pass a Hugging Face model folder")
    return read_safetensors(single)
