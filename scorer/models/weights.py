"""ModelWeights: an architecture name plus named numeric arrays, with a stable byte encoding.

Byte format (version 1), everything little-endian::

    b"SCORERW1"                     8-byte magic (the trailing digit is the format version)
    u32 header_length               length of the JSON header that follows
    header                          canonical JSON (sorted keys, no spaces, ASCII):
                                    {"format": 1, "arch": str, "feature_names": [str, ...],
                                     "classes": [scalar, ...] | null, "metadata": {...},
                                     "arrays": [{"name", "dtype", "shape", "offset", "nbytes"}, ...]}
    data                            the raw C-order bytes of each array, arrays sorted by name, each
                                    starting at an 8-byte aligned offset (zero padding), offsets relative
                                    to the start of data; data ends right after the last array

The layout is canonical (one valid encoding per value), so equal weights give equal bytes and the
sha256 of the bytes is a checksum the store can verify. Decoding checks every claimed size against the
blob before it allocates anything, so a corrupt or hostile blob raises ``InvalidWeights`` rather than
allocating gigabytes.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import struct
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

import numpy as np

from scorer.errors import InvalidWeights

MAGIC = b"SCORERW1"
FORMAT_VERSION = 1
_PREFIX = struct.Struct("<8sI")
_ALIGN = 8
#: dtypes an array may have; anything else (object, strings, complex, datetimes) is refused.
DTYPES: dict[str, np.dtype] = {
    name: np.dtype(name).newbyteorder("<")
    for name in ("float64", "float32", "int64", "int32", "int8", "uint8", "bool")
}
_NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:/-]{0,199}$")
_MAX_DIMS = 8
_NPZ_HEADER_KEY = "__header__"
_HEADER_KEYS = {"format", "arch", "feature_names", "classes", "metadata", "arrays"}


def _canonical_json(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode()


def _json_scalar(value: Any, what: str) -> int | float | str | bool:
    """Turn numpy scalars into plain Python ones; refuse anything that is not a JSON scalar."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int | str):
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise InvalidWeights(f"{what} must be finite; got {value!r}")
        return value
    raise InvalidWeights(f"{what} must be a JSON scalar (int, float, str or bool); got {type(value).__name__}")


def _json_roundtrip(value: Any, what: str) -> Any:
    """Normalise metadata to what decoding returns (lists, plain scalars) so equal means byte-equal."""
    try:
        return json.loads(_canonical_json(value))
    except (TypeError, ValueError) as exc:
        raise InvalidWeights(f"{what} must be JSON-able (finite numbers, str keys); {exc}") from None


def _freeze_array(name: str, value: Any) -> np.ndarray:
    if not isinstance(name, str) or not _NAME_RE.match(name) or ".." in name:
        raise InvalidWeights(
            f"array name {name!r} is not allowed (letters, digits and _ . : / -, at most 200, no '..')"
        )
    arr = np.asarray(value)
    dtype_name = arr.dtype.name
    if dtype_name not in DTYPES:
        raise InvalidWeights(
            f"array {name!r} has dtype {arr.dtype}; allowed: {', '.join(DTYPES)}"
        )
    if arr.ndim > _MAX_DIMS:
        raise InvalidWeights(f"array {name!r} has {arr.ndim} dimensions; at most {_MAX_DIMS}")
    # A private, C-ordered, native little-endian, read-only copy: callers cannot change weights afterwards.
    out = np.array(arr, dtype=DTYPES[dtype_name], order="C", copy=True)
    out.flags.writeable = False
    return out


def _align(n: int) -> int:
    return (n + _ALIGN - 1) // _ALIGN * _ALIGN


@dataclass(frozen=True, eq=False)
class ModelWeights:
    """A fixed architecture's parameters: what the store keeps and what ``build`` turns into a Model.

    Construction normalises the fields (arrays become read-only C-ordered copies, numpy scalars in
    ``classes`` become Python scalars, ``metadata`` becomes plain JSON values), so a value compares equal
    to its own decoded bytes. Equality is byte equality of ``to_bytes()``.
    """

    arch: str
    feature_names: tuple[str, ...]
    arrays: Mapping[str, np.ndarray]
    classes: tuple | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.arch, str) or not self.arch:
            raise InvalidWeights(f"arch must be a non-empty str; got {self.arch!r}")
        if isinstance(self.feature_names, str) or not hasattr(self.feature_names, "__iter__"):
            raise InvalidWeights(f"feature_names must be a sequence of str; got {type(self.feature_names).__name__}")
        names = tuple(self.feature_names)
        for i, name in enumerate(names):
            if isinstance(name, np.str_):
                continue
            if not isinstance(name, str):
                raise InvalidWeights(f"feature_names[{i}] must be a str; got {type(name).__name__} {name!r}")
        names = tuple(str(n) for n in names)
        classes = self.classes
        if classes is not None:
            if isinstance(classes, str) or not hasattr(classes, "__iter__"):
                raise InvalidWeights(f"classes must be a sequence of labels or None; got {type(classes).__name__}")
            classes = tuple(_json_scalar(c, f"classes[{i}]") for i, c in enumerate(classes))
        if not isinstance(self.arrays, Mapping):
            raise InvalidWeights(f"arrays must be a mapping of name -> array; got {type(self.arrays).__name__}")
        arrays = {name: _freeze_array(name, self.arrays[name]) for name in sorted(self.arrays)}
        if not isinstance(self.metadata, Mapping):
            raise InvalidWeights(f"metadata must be a mapping; got {type(self.metadata).__name__}")
        metadata = _json_roundtrip(dict(self.metadata), "metadata")
        object.__setattr__(self, "feature_names", names)
        object.__setattr__(self, "classes", classes)
        object.__setattr__(self, "arrays", MappingProxyType(arrays))
        object.__setattr__(self, "metadata", MappingProxyType(metadata))

    # -- identity -------------------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, ModelWeights):
            return NotImplemented
        return self.to_bytes() == other.to_bytes()

    __hash__ = None  # type: ignore[assignment]  (arrays are not hashable; use checksum())

    def __repr__(self) -> str:
        sizes = ", ".join(f"{k}{list(v.shape)}" for k, v in self.arrays.items())
        return (
            f"ModelWeights(arch={self.arch!r}, n_features={len(self.feature_names)}, "
            f"classes={self.classes!r}, arrays=[{sizes}])"
        )

    @property
    def nbytes(self) -> int:
        """Total size of the arrays' data."""
        return sum(a.nbytes for a in self.arrays.values())

    def checksum(self) -> str:
        """sha256 hex digest of ``to_bytes()``."""
        return hashlib.sha256(self.to_bytes()).hexdigest()

    # -- byte codec -----------------------------------------------------------------------------------
    def _header(self, with_layout: bool) -> tuple[dict[str, Any], int]:
        entries = []
        offset = 0
        for name, arr in self.arrays.items():
            entry: dict[str, Any] = {"name": name, "dtype": arr.dtype.name, "shape": list(arr.shape)}
            if with_layout:
                offset = _align(offset)
                entry["offset"] = offset
                entry["nbytes"] = arr.nbytes
                offset += arr.nbytes
            entries.append(entry)
        header = {
            "format": FORMAT_VERSION,
            "arch": self.arch,
            "feature_names": list(self.feature_names),
            "classes": None if self.classes is None else list(self.classes),
            "metadata": dict(self.metadata),
            "arrays": entries,
        }
        return header, offset

    def to_bytes(self) -> bytes:
        """The canonical encoding described in the module docstring (same weights -> same bytes)."""
        header, end = self._header(with_layout=True)
        head = _canonical_json(header)
        data = bytearray(end)
        for entry, arr in zip(header["arrays"], self.arrays.values(), strict=True):
            data[entry["offset"] : entry["offset"] + entry["nbytes"]] = arr.tobytes(order="C")
        return _PREFIX.pack(MAGIC, len(head)) + head + bytes(data)

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview) -> ModelWeights:
        """Decode ``to_bytes()`` output; any framing, size or type problem raises InvalidWeights."""
        if not isinstance(data, bytes | bytearray | memoryview):
            raise InvalidWeights(f"weights blob must be bytes; got {type(data).__name__}")
        blob = memoryview(data).cast("B")
        if len(blob) < _PREFIX.size:
            raise InvalidWeights(f"weights blob too short ({len(blob)} bytes) to hold the {_PREFIX.size}-byte prefix")
        magic, head_len = _PREFIX.unpack_from(blob, 0)
        if magic != MAGIC:
            raise InvalidWeights(f"weights blob does not start with {MAGIC!r}; got {bytes(magic)!r}")
        if head_len > len(blob) - _PREFIX.size:
            raise InvalidWeights(f"weights header claims {head_len} bytes but only "
                                 f"{len(blob) - _PREFIX.size} follow the prefix")
        header = _parse_header(bytes(blob[_PREFIX.size : _PREFIX.size + head_len]))
        body = blob[_PREFIX.size + head_len :]
        expected_offset = 0
        specs = []
        for i, entry in enumerate(_array_entries(header)):
            name, dtype, shape = _check_entry(entry, i)
            offset, nbytes = entry.get("offset"), entry.get("nbytes")
            for key, val in (("offset", offset), ("nbytes", nbytes)):
                if type(val) is not int or val < 0:
                    raise InvalidWeights(f"array {name!r}: {key} must be a non-negative int; got {val!r}")
            expected_offset = _align(expected_offset)
            if offset != expected_offset:
                raise InvalidWeights(f"array {name!r}: offset {offset} is not the canonical {expected_offset}")
            _check_size(name, dtype, shape, nbytes)
            if offset + nbytes > len(body):
                raise InvalidWeights(
                    f"array {name!r} claims bytes {offset}..{offset + nbytes} but the data section has {len(body)}"
                )
            expected_offset = offset + nbytes
            specs.append((name, dtype, shape, offset, nbytes))
        if expected_offset != len(body):
            raise InvalidWeights(f"weights data section has {len(body)} bytes; the header accounts for "
                                 f"{expected_offset}")
        arrays = {
            name: np.frombuffer(body, dtype=dtype, count=nbytes // dtype.itemsize, offset=offset).reshape(shape)
            for name, dtype, shape, offset, nbytes in specs
        }
        weights = _from_header(header, arrays)
        # Padding bytes must be zero, otherwise two different blobs would decode to the same weights.
        if weights.to_bytes() != bytes(blob):
            raise InvalidWeights("weights blob is not in canonical form (non-zero padding or non-canonical header)")
        return weights

    # -- npz files ------------------------------------------------------------------------------------
    def save(self, path: str | os.PathLike[str]) -> None:
        """Write an uncompressed ``.npz``: each array under its name plus the JSON header as uint8."""
        header, _ = self._header(with_layout=False)
        payload = dict(self.arrays)
        payload[_NPZ_HEADER_KEY] = np.frombuffer(_canonical_json(header), dtype=np.uint8)
        with open(path, "wb") as fh:
            np.savez(fh, allow_pickle=False, **payload)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> ModelWeights:
        """Read a file written by ``save``; sizes are checked against the file before any array is read."""
        path = Path(path)
        try:
            zf = zipfile.ZipFile(path)
        except (zipfile.BadZipFile, OSError) as exc:
            raise InvalidWeights(f"{path}: not a readable .npz file ({exc})") from None
        with zf:
            file_size = path.stat().st_size
            members = {}
            for info in zf.infolist():
                if not info.filename.endswith(".npy"):
                    raise InvalidWeights(f"{path}: unexpected member {info.filename!r}")
                if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
                    raise InvalidWeights(f"{path}: member {info.filename!r} uses unsupported compression")
                limit = file_size if info.compress_type == zipfile.ZIP_STORED else 1100 * max(info.compress_size, 1)
                if info.file_size > limit:
                    raise InvalidWeights(f"{path}: member {info.filename!r} claims {info.file_size} bytes")
                members[info.filename[: -len(".npy")]] = info
            if _NPZ_HEADER_KEY not in members:
                raise InvalidWeights(f"{path}: no {_NPZ_HEADER_KEY!r} entry; not written by ModelWeights.save")
            head = _read_npy(zf, members[_NPZ_HEADER_KEY], path)
            if head.dtype != np.uint8 or head.ndim != 1:
                raise InvalidWeights(f"{path}: header entry must be a 1-D uint8 array; got {head.dtype} {head.shape}")
            header = _parse_header(head.tobytes())
            arrays = {}
            for i, entry in enumerate(_array_entries(header)):
                name, dtype, shape = _check_entry(entry, i)
                if name not in members:
                    raise InvalidWeights(f"{path}: header lists array {name!r} but the file has no such entry")
                arr = _read_npy(zf, members[name], path)
                if arr.dtype.name != dtype.name or arr.shape != shape:
                    raise InvalidWeights(
                        f"{path}: array {name!r} is {arr.dtype.name}{list(arr.shape)}; header says "
                        f"{dtype.name}{list(shape)}"
                    )
                arrays[name] = arr
            extra = set(members) - set(arrays) - {_NPZ_HEADER_KEY}
            if extra:
                raise InvalidWeights(f"{path}: entries not listed in the header: {sorted(extra)}")
        return _from_header(header, arrays)


# -- decoding helpers ---------------------------------------------------------------------------------
def _parse_header(raw: bytes) -> dict[str, Any]:
    try:
        header = json.loads(raw.decode("ascii"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise InvalidWeights(f"weights header is not valid JSON: {exc}") from None
    if not isinstance(header, dict):
        raise InvalidWeights(f"weights header must be a JSON object; got {type(header).__name__}")
    if set(header) != _HEADER_KEYS:
        raise InvalidWeights(
            f"weights header keys must be {sorted(_HEADER_KEYS)}; got {sorted(map(str, header))}"
        )
    if header["format"] != FORMAT_VERSION:
        raise InvalidWeights(f"weights format {header['format']!r} is not supported (this code reads {FORMAT_VERSION})")
    return header


def _reject_constant(name: str) -> Any:
    raise ValueError(f"non-finite number {name} in header")


def _array_entries(header: dict[str, Any]) -> list[dict[str, Any]]:
    entries = header["arrays"]
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise InvalidWeights("weights header 'arrays' must be a list of objects")
    names = [e.get("name") for e in entries]
    if any(not isinstance(n, str) for n in names):
        raise InvalidWeights("every array entry needs a str 'name'")
    if names != sorted(set(names)):
        raise InvalidWeights("array entries must be unique and sorted by name")
    return entries


def _check_entry(entry: dict[str, Any], index: int) -> tuple[str, np.dtype, tuple[int, ...]]:
    name = entry["name"]
    if not _NAME_RE.match(name) or ".." in name:
        raise InvalidWeights(f"array entry {index}: name {name!r} is not allowed")
    dtype_name = entry.get("dtype")
    if dtype_name not in DTYPES:
        raise InvalidWeights(f"array {name!r}: dtype {dtype_name!r} not allowed; allowed: {', '.join(DTYPES)}")
    shape = entry.get("shape")
    if (
        not isinstance(shape, list)
        or len(shape) > _MAX_DIMS
        or not all(type(d) is int and d >= 0 for d in shape)
    ):
        raise InvalidWeights(f"array {name!r}: shape must be a list of at most {_MAX_DIMS} ints >= 0; got {shape!r}")
    return name, DTYPES[dtype_name], tuple(shape)


def _check_size(name: str, dtype: np.dtype, shape: tuple[int, ...], nbytes: int) -> None:
    # Python ints: a product of absurd dimensions cannot overflow, it just fails to match nbytes.
    claimed = math.prod(shape) * dtype.itemsize
    if claimed != nbytes:
        raise InvalidWeights(f"array {name!r}: shape {list(shape)} of {dtype.name} needs {claimed} bytes, not {nbytes}")


def _from_header(header: dict[str, Any], arrays: dict[str, np.ndarray]) -> ModelWeights:
    arch, features, classes, metadata = (header[k] for k in ("arch", "feature_names", "classes", "metadata"))
    if not isinstance(features, list):
        raise InvalidWeights(f"weights header 'feature_names' must be a list; got {type(features).__name__}")
    if classes is not None and not isinstance(classes, list):
        raise InvalidWeights(f"weights header 'classes' must be a list or null; got {type(classes).__name__}")
    if not isinstance(metadata, dict):
        raise InvalidWeights(f"weights header 'metadata' must be an object; got {type(metadata).__name__}")
    return ModelWeights(
        arch=arch,
        feature_names=tuple(features),
        arrays=arrays,
        classes=None if classes is None else tuple(classes),
        metadata=metadata,
    )


def _read_npy(zf: zipfile.ZipFile, info: zipfile.ZipInfo, path: Path) -> np.ndarray:
    """Read one member, refusing (before allocating) a shape its byte size cannot hold."""
    fmt = np.lib.format
    try:
        with zf.open(info) as fh:
            version = fmt.read_magic(fh)
            if version not in ((1, 0), (2, 0)):
                raise InvalidWeights(f"{path}: entry {info.filename!r} uses .npy format {version}; expected 1.0 or 2.0")
            reader = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, _fortran, dtype = reader(fh)
            header_end = fh.tell()
        if dtype.name not in DTYPES or dtype.hasobject:
            raise InvalidWeights(f"{path}: entry {info.filename!r} has dtype {dtype}; allowed: {', '.join(DTYPES)}")
        if math.prod(shape) * dtype.itemsize != info.file_size - header_end:
            raise InvalidWeights(
                f"{path}: entry {info.filename!r} claims shape {list(shape)} of {dtype} but holds "
                f"{info.file_size - header_end} bytes"
            )
        with zf.open(info) as fh:
            arr = fmt.read_array(fh, allow_pickle=False)
    except InvalidWeights:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise InvalidWeights(f"{path}: entry {info.filename!r} is unreadable ({exc})") from None
    return arr
