"""The store's pure rules: names, fractions, chunking, what rollback undoes, what prune may delete.

No I/O here, so every rule is unit-tested without a database.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from scorer.errors import ChecksumMismatch, ConfigError

from .base import Activation, default_actor

DEFAULT_CHUNK_SIZE = 256 * 1024
MAX_CHUNK_SIZE = 1024 * 1024
"""Larger cells strain Cassandra (its docs: blobs in practice well under 1 MB)."""
MAX_VERSION = 2**31 - 1
MAX_TEXT = 2000
"""Longest reason/actor/author accepted into the log."""

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MODEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
MAX_SEGMENT = 128

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

PRIMARY_CHANGES = frozenset({"activate", "rollback", "promote", "release", "external"})
"""Log actions that change a segment's primary version (a canary does not)."""


def check_model(model: object) -> str:
    """Model names show up in metric labels, topics and file names, so they stay plain."""
    if not isinstance(model, str) or not _MODEL.match(model):
        raise ConfigError(
            f"model name must be 1-64 characters of letters, digits, '_', '.', '-' starting with a letter or digit; "
            f"got {model!r}"
        )
    return model


def check_segment(segment: object) -> str:
    """Segments come from event fields, so any printable text is allowed, bounded and without '/'."""
    if (
        not isinstance(segment, str)
        or not 0 < len(segment) <= MAX_SEGMENT
        or segment != segment.strip()
        or "/" in segment
        or not segment.isprintable()
    ):
        raise ConfigError(
            f"segment must be 1-{MAX_SEGMENT} printable characters without '/' or surrounding spaces; got {segment!r}"
        )
    return segment


def check_version(version: object, what: str = "version") -> int:
    if isinstance(version, bool) or not isinstance(version, int) or not 1 <= version <= MAX_VERSION:
        raise ConfigError(f"{what} must be a whole number from 1 to {MAX_VERSION}; got {version!r}")
    return version


def check_fraction(fraction: object) -> float:
    """A canary's share of traffic: strictly between 0 and 1 (0 is no canary, 1 is a promotion)."""
    if isinstance(fraction, bool) or not isinstance(fraction, int | float):
        raise ConfigError(f"canary fraction must be a number strictly between 0 and 1; got {fraction!r}")
    value = float(fraction)
    if not (math.isfinite(value) and 0.0 < value < 1.0):
        raise ConfigError(f"canary fraction must be strictly between 0 and 1; got {fraction!r}")
    return value


def check_text(value: str | None, what: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise ConfigError(f"{what} must be text of at most {MAX_TEXT} characters; got {str(value)[:40]!r}...")
    return value


def check_chunk_size(chunk_size: object) -> int:
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or not 1024 <= chunk_size <= MAX_CHUNK_SIZE:
        raise ConfigError(f"chunk_size must be 1024..{MAX_CHUNK_SIZE} bytes; got {chunk_size!r}")
    return chunk_size


def to_json(value: dict[str, Any] | None, what: str) -> str:
    """Small JSON columns (metrics, stats, metadata): sorted keys so equal dicts store equal text."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ConfigError(f"{what} must be a dict; got {type(value).__name__}")
    try:
        return orjson.dumps(value, option=orjson.OPT_SORT_KEYS | orjson.OPT_SERIALIZE_NUMPY
                            | orjson.OPT_NON_STR_KEYS).decode()
    except TypeError as exc:
        raise ConfigError(f"{what} must be JSON-serialisable: {exc}") from None


def split_chunks(data: bytes, chunk_size: int) -> list[bytes]:
    """Cut the weights bytes into cells of at most ``chunk_size``; always at least one chunk."""
    if not data:
        return [b""]
    return [data[start:start + chunk_size] for start in range(0, len(data), chunk_size)]


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def check_version_row(*, n_chunks: object, size_bytes: object, checksum: object, where: str) -> None:
    """Refuse a version row whose claims cannot describe stored weights, before anything is sized by them."""
    for name, value in (("n_chunks", n_chunks), ("size_bytes", size_bytes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ChecksumMismatch(f"{where}: version row has {name} {value!r}; expected a whole number >= 0")
    if n_chunks > max(1, size_bytes):  # type: ignore[operator]  # both ints, checked above
        raise ChecksumMismatch(f"{where}: version row has n_chunks {n_chunks} for {size_bytes} bytes")
    if not isinstance(checksum, str) or not _SHA256.match(checksum):
        raise ChecksumMismatch(f"{where}: version row has checksum {str(checksum)[:24]!r}; expected 64 hex digits")


def assemble(chunks: Iterable[tuple[int, bytes]], *, n_chunks: int, size_bytes: int, checksum: str,
             where: str) -> bytes:
    """Join stored chunks and prove they are exactly what was published (count, order, size, sha256).

    The version row's claims are checked before anything is sized by them, and reading stops as soon as the
    stored chunks exceed them, so a row claiming a billion chunks or a terabyte allocates nothing extra.
    """
    check_version_row(n_chunks=n_chunks, size_bytes=size_bytes, checksum=checksum, where=where)
    ordered: list[tuple[int, bytes]] = []
    total = 0
    for number, blob in chunks:
        if len(ordered) == n_chunks:
            raise ChecksumMismatch(
                f"{where}: expected chunks 0..{n_chunks - 1}, found more (unexpected chunk {number})")
        part = bytes(blob or b"")
        total += len(part)
        if total > size_bytes:
            raise ChecksumMismatch(f"{where}: stored chunks exceed the {size_bytes} bytes published")
        ordered.append((number, part))
    numbers = [number for number, _ in ordered]
    if len(numbers) != n_chunks or any(number != index for index, number in enumerate(numbers)):
        present = set(numbers)
        missing = list(itertools.islice((i for i in range(n_chunks) if i not in present), 5))
        extra = sorted(number for number in present if not 0 <= number < n_chunks)[:5]
        detail = f"missing {missing}" if missing else f"unexpected {extra}" if extra else "out of order"
        raise ChecksumMismatch(f"{where}: expected chunks 0..{n_chunks - 1}, found {len(numbers)} ({detail})")
    data = b"".join(part for _, part in ordered)
    if len(data) != size_bytes:
        raise ChecksumMismatch(f"{where}: stored weights are {len(data)} bytes, published {size_bytes}")
    actual = sha256_hex(data)
    if actual != checksum:
        raise ChecksumMismatch(f"{where}: stored weights hash to sha256 {actual[:16]}..., published {checksum[:16]}...")
    return data


def rollback_target(log: Iterable[Activation]) -> Activation | None:
    """The primary change a rollback now undoes, reading the log newest first.

    Rollbacks stack: each rollback entry cancels the newest earlier change not yet cancelled, so two
    rollbacks after three activations land on the first version. Entries that changed nothing (a release
    that kept a segment's version) are skipped: rolling back never lands where the segment already is.
    """
    undone = 0
    for entry in log:
        if entry.action not in PRIMARY_CHANGES or entry.from_version == entry.to_version:
            continue
        if entry.action == "rollback":
            undone += 1
        elif undone:
            undone -= 1
        else:
            return entry
    return None


OUTSIDE = "external"
"""Log action of a pointer change made outside scorer (a raw CQL ``UPDATE``), recorded when first read."""
OUTSIDE_ACTOR = "outside scorer"


def outside_change(written: Sequence[int | None], updated_written: int | None,
                   updated_at: datetime | None) -> tuple[int, bool] | None:
    """Whether a pointer row's last change may have been written outside scorer: ``(its WRITETIME, certain)``.

    scorer writes each pointer change ``USING TIMESTAMP`` equal to its ``updated_at`` in microseconds, all
    columns at once. So a pointer column newer than ``updated_at`` is certainly someone else's write; an
    ``updated_at`` whose write time is not its own value is either someone else's write that set it too, or
    scorer's own from before it wrote its timestamps (the log, which has an entry at ``updated_at`` for
    scorer's writes, tells them apart). ``written``: WRITETIMEs of version, canary, fraction and shadow.
    """
    newest = max((w for w in written if w is not None), default=None)
    if newest is None:
        return None
    if updated_written is None or newest > updated_written:
        return newest, True
    if updated_at is None or updated_written != epoch_micros(updated_at):
        return updated_written, False
    return None


def epoch_micros(at: datetime) -> int:
    """A millisecond timestamp in microseconds since the epoch, exactly (a pointer change's write time)."""
    return (at - EPOCH) // timedelta(milliseconds=1) * 1000


def prune_plan(versions: Sequence[int], protected: Iterable[int | None], keep: int) -> list[int]:
    """Versions to delete: all but the newest ``keep`` (``versions`` newest first), never a protected one."""
    if isinstance(keep, bool) or not isinstance(keep, int) or keep < 1:
        raise ConfigError(f"keep must be a whole number of at least 1; got {keep!r}")
    guard = {version for version in protected if version is not None}
    ordered = sorted(set(versions), reverse=True)
    return [version for version in ordered[keep:] if version not in guard]


def now_ms() -> datetime:
    """UTC now at millisecond precision, so what a store returns equals what Cassandra stores."""
    now = datetime.now(UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def where(model: str, segment: str | None = None, version: int | None = None) -> str:
    """``model``, ``model/segment`` or ``model/segment version N``: how messages name what they concern."""
    text = model if segment is None else f"{model}/{segment}"
    return text if version is None else f"{text} version {version}"


def who_and_why(actor: str | None, reason: str | None) -> tuple[str, str | None]:
    """The actor (default: this process's user@host) and reason recorded with a pointer change, checked."""
    return check_text(actor, "actor") or default_actor(), check_text(reason, "reason")
