"""A GGUF file memory-mapped: its metadata and its tensors as views into the mapping.

Nothing is copied or dequantized: a tensor is a uint8 view [rows, row bytes] of the file's
bytes in its own block format (`ggufblocks.py` multiplies by it), and the operating system
reads a page of the file when a pass first touches it. The mapping is private
(copy-on-write), so views are writable tensors for torch while the pages stay those of the
file's cache, shared with every process that maps it.

The reader parses only the header (the format is GGUF v2/v3: magic, counts, key/value
pairs, tensor descriptions, aligned data). Array values (the tokenizer's vocabulary and
merges) are skipped, not decoded: the tokenizer is read by transformers once, when the
model is first described (`gguf.described_folder`).
"""

from __future__ import annotations

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

import torch

_SCALARS: dict[int, str] = {
    0: "<B",
    1: "<b",
    2: "<H",
    3: "<h",
    4: "<I",
    5: "<i",
    6: "<f",
    7: "<?",
    10: "<Q",
    11: "<q",
    12: "<d",
}
_STRING, _ARRAY = 8, 9
Value = int | float | bool | str | None
"""A metadata value; arrays are None (skipped)."""


class GgufFormatError(ValueError):
    """The file is not a GGUF file this reader understands; the message says where."""


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple[int, ...]
    """GGUF's order: the number of inputs first (ggml's ne0), rows after."""
    kind: int
    """ggml's type number (`ggufblocks.FORMATS`)."""
    offset: int
    """From the start of the file."""


class _Cursor:
    def __init__(self, buf: mmap.mmap) -> None:
        self.buf = buf
        self.at = 0

    def take(self, fmt: str) -> int | float | bool:
        size = struct.calcsize(fmt)
        if self.at + size > len(self.buf):
            raise GgufFormatError(f"the header ends early (at byte {self.at})")
        (value,) = struct.unpack_from(fmt, self.buf, self.at)
        self.at += size
        return value

    def count(self) -> int:
        return int(self.take("<Q"))

    def string(self) -> str:
        n = self.count()
        if n > len(self.buf) - self.at:
            raise GgufFormatError(f"a string runs past the end of the file (at byte {self.at})")
        raw = self.buf[self.at : self.at + n]
        self.at += n
        return raw.decode("utf-8", "replace")

    def skip_string(self) -> None:
        n = self.count()
        if n > len(self.buf) - self.at:
            raise GgufFormatError(f"a string runs past the end of the file (at byte {self.at})")
        self.at += n

    def value(self, kind: int) -> Value:
        if kind in _SCALARS:
            return self.take(_SCALARS[kind])
        if kind == _STRING:
            return self.string()
        if kind == _ARRAY:
            inner, n = int(self.take("<I")), self.count()
            if inner in _SCALARS:
                size = struct.calcsize(_SCALARS[inner])
                if n * size > len(self.buf) - self.at:
                    raise GgufFormatError(f"an array runs past the end (at byte {self.at})")
                self.at += n * size
            elif inner == _STRING:
                for _ in range(n):
                    self.skip_string()
            else:
                for _ in range(n):
                    self.value(inner)
            return None
        raise GgufFormatError(f"unknown value type {kind} at byte {self.at}")


class GgufMap:
    """The mapped file: `metadata` (scalars and strings), `tensors` by name, and `tensor()`
    views. Keep the object alive while any view is used."""

    def __init__(self, path: Path) -> None:
        self.path = path
        with path.open("rb") as f:
            try:
                self._map = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_COPY)
            except ValueError as exc:  # an empty file
                raise GgufFormatError(f"{path.name} is empty") from exc
        cur = _Cursor(self._map)
        if self._map[:4] != b"GGUF":
            raise GgufFormatError(f"{path.name} is not a GGUF file (no GGUF magic)")
        cur.at = 4
        version = int(cur.take("<I"))
        if version not in (2, 3):
            raise GgufFormatError(f"{path.name}: GGUF version {version} is not read (2 and 3 are)")
        n_tensors, n_kv = cur.count(), cur.count()
        self.metadata: dict[str, Value] = {}
        for _ in range(n_kv):
            key = cur.string()
            self.metadata[key] = cur.value(int(cur.take("<I")))
        infos = []
        for _ in range(n_tensors):
            name = cur.string()
            dims = int(cur.take("<I"))
            if dims > 4:
                raise GgufFormatError(f"tensor {name} has {dims} dimensions")
            shape = tuple(cur.count() for _ in range(dims))
            kind, offset = int(cur.take("<I")), cur.count()
            infos.append((name, shape, kind, offset))
        align = self.metadata.get("general.alignment", 32)
        align = align if isinstance(align, int) and align > 0 else 32
        start = (cur.at + align - 1) // align * align
        self.tensors = {
            name: TensorInfo(name, shape, kind, start + offset)
            for name, shape, kind, offset in infos
        }

    def string(self, key: str) -> str | None:
        value = self.metadata.get(key)
        return value if isinstance(value, str) else None

    def number(self, key: str) -> float | None:
        value = self.metadata.get(key)
        return (
            float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None
        )

    def tensor(self, name: str, row_bytes: int) -> torch.Tensor:
        """The tensor's bytes as a uint8 view [rows, row_bytes] (rows: every dimension after
        the first)."""
        info = self.tensors[name]
        rows = 1
        for d in info.shape[1:]:
            rows *= d
        size = rows * row_bytes
        if info.offset + size > len(self._map):
            raise GgufFormatError(f"tensor {name} runs past the end of {self.path.name}")
        flat = torch.frombuffer(self._map, dtype=torch.uint8, count=size, offset=info.offset)
        return flat.view(rows, row_bytes)
