"""A small, safe UBJSON decoder for XGBoost ``.ubj`` models: plain values only, bounded depth and sizes.

Only data comes out (dicts, lists, numbers, strings, booleans, None); nothing is looked up or executed.
Typed numeric arrays (``[$d#...``) decode straight to lists via numpy.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from scorer.errors import UnsupportedModel

MAX_DEPTH = 64
_INT = {b"i": ">i1", b"U": ">u1", b"I": ">i2", b"l": ">i4", b"L": ">i8", b"d": ">f4", b"D": ">f8"}


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise _fail("truncated file")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def marker(self) -> bytes:
        m = self.take(1)
        while m == b"N":  # no-op
            m = self.take(1)
        return m

    def number(self, m: bytes) -> int | float:
        fmt = _INT.get(m)
        if fmt is None:
            raise _fail(f"unexpected marker {m!r} where a number belongs")
        size = np.dtype(fmt).itemsize
        return np.frombuffer(self.take(size), dtype=fmt)[0].item()

    def length(self) -> int:
        n = self.number(self.marker())
        if not isinstance(n, int) or n < 0 or n > len(self.data):
            raise _fail(f"invalid length {n}")
        return n

    def string(self) -> str:
        try:
            return self.take(self.length()).decode("utf-8")
        except UnicodeDecodeError:
            raise _fail("a string is not UTF-8") from None

    def value(self, m: bytes, depth: int) -> Any:
        if depth > MAX_DEPTH:
            raise _fail(f"nested deeper than {MAX_DEPTH}")
        if m in _INT:
            return self.number(m)
        if m == b"S" or m == b"H":
            return self.string()
        if m == b"C":
            return self.take(1).decode("latin-1")
        if m in (b"T", b"F"):
            return m == b"T"
        if m == b"Z":
            return None
        if m == b"[":
            return self.array(depth)
        if m == b"{":
            return self.object(depth)
        raise _fail(f"unknown marker {m!r} at byte {self.pos - 1}")

    def container(self) -> tuple[bytes | None, int | None]:
        kind = count = None
        if self.data[self.pos : self.pos + 1] == b"$":
            self.pos += 1
            kind = self.take(1)
        if self.data[self.pos : self.pos + 1] == b"#":
            self.pos += 1
            count = self.length()
        elif kind is not None:
            raise _fail("typed container without a count")
        return kind, count

    def array(self, depth: int) -> list:
        kind, count = self.container()
        if kind in _INT and count is not None:
            fmt = _INT[kind]
            raw = self.take(count * np.dtype(fmt).itemsize)
            return np.frombuffer(raw, dtype=fmt).tolist()
        out = []
        while count is None or len(out) < count:
            m = kind or self.marker()
            if count is None and m == b"]":
                break
            out.append(self.value(m, depth + 1))
        return out

    def object(self, depth: int) -> dict:
        kind, count = self.container()
        out: dict[str, Any] = {}
        while count is None or len(out) < count:
            if count is None and self.data[self.pos : self.pos + 1] == b"}":
                self.pos += 1
                break
            key = self.string()
            out[key] = self.value(kind or self.marker(), depth + 1)
        return out


def _fail(why: str) -> UnsupportedModel:
    return UnsupportedModel(f"cannot read UBJSON model: {why}")


def loads(data: bytes) -> Any:
    """Decode one UBJSON value; trailing bytes or any malformation raise UnsupportedModel."""
    r = _Reader(bytes(data))
    try:
        out = r.value(r.marker(), 0)
    except struct.error:
        raise _fail("truncated file") from None
    if r.pos != len(r.data):
        raise _fail(f"{len(r.data) - r.pos} bytes after the model")
    return out
