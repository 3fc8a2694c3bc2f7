"""The demo report's inputs: the stream file's labels, the swaps log, and topic records (Kafka or JSONL)."""

from __future__ import annotations

import asyncio
import csv
import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from scorer.config import Settings
from scorer.errors import ConfigError

KINDS = ("event", "prediction", "dead_letter")


# -- inputs -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Labels:
    """The stream's ground truth: ids in stream order with their segment and label."""

    ids: np.ndarray        # (n,) str
    segments: np.ndarray   # (n,) str
    y: np.ndarray          # (n,) int

    def __post_init__(self) -> None:
        if not (self.ids.shape == self.segments.shape == self.y.shape) or self.ids.ndim != 1:
            raise ConfigError(f"labels disagree: ids {self.ids.shape}, segments {self.segments.shape}, "
                              f"y {self.y.shape}")


@dataclass(frozen=True)
class Swap:
    """One live swap the demo made: which segment, to which version, how, and when the row was written."""

    segment: str
    version: int
    method: str
    at: float
    """Epoch seconds when the active_models row was written (its WRITETIME), else when the command ran."""
    model: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "swaps log") -> Swap:
        try:
            at = data.get("written_at") or data.get("requested_at") or data.get("at")
            at_s = to_epoch_seconds(at)
            if at_s is None:
                raise ValueError("no written_at/requested_at time")
            return cls(segment=str(data["segment"]), version=int(data["version"]), method=str(data.get("method", "?")),
                       at=at_s, model=data.get("model"))
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"{where}: a swap needs segment, version and a time; "
                              f"got {dict(data)!r} ({exc})") from None


@dataclass
class Records:
    """What the topics held: send times by event id, predictions and dead letters (parsed JSON)."""

    sent: dict[str, float] = field(default_factory=dict)
    """Event id -> first send time (epoch s) from the input topic's record timestamps."""
    n_events: int = 0
    predictions: list[dict[str, Any]] = field(default_factory=list)
    dead_letters: list[dict[str, Any]] = field(default_factory=list)
    unreadable: int = 0
    """Records of the output topics that were not JSON objects (a worker bug if ever non-zero)."""

    def add(self, kind: str, value: Any, timestamp_ms: float | None) -> None:
        """Add one record; ``value`` is the parsed JSON (or raw bytes/str to parse)."""
        if isinstance(value, bytes | str):
            try:
                value = orjson.loads(value)
            except orjson.JSONDecodeError:
                value = None
        if kind == "event":
            self.n_events += 1
            if isinstance(value, dict) and value.get("id") is not None and timestamp_ms is not None:
                self.sent.setdefault(str(value["id"]), float(timestamp_ms) / 1000.0)
            return
        if not isinstance(value, dict):
            self.unreadable += 1
            return
        if kind == "prediction":
            self.predictions.append(value)
        elif kind == "dead_letter":
            self.dead_letters.append(value)
        else:
            raise ConfigError(f"unknown record kind {kind!r}; expected one of {', '.join(KINDS)}")


def to_epoch_seconds(value: Any) -> float | None:
    """Epoch seconds from a number (s, ms, us or ns: told apart by size, for dates after 1973) or ISO-8601 text."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        number = float(value)
    else:
        text = str(value).strip()
        try:
            number = float(text)
        except ValueError:
            try:
                moment = datetime.fromisoformat(text)
            except ValueError:
                return None
            if moment.tzinfo is None:
                return None  # a naive time could be any zone: refuse to guess
            return moment.timestamp()
    if not math.isfinite(number):
        return None
    for scale in (1e9, 1e6, 1e3):  # nanoseconds, microseconds (CQL WRITETIME), milliseconds (Kafka timestamps)
        if number > 1e8 * scale:
            return number / scale
    return number


def load_labels(path: str | Path, *, id_col: str = "id", segment_col: str = "city",
                target: str = "cancelled") -> Labels:
    """The ids, segments and labels of a stream file (CSV or Parquet), in file order."""
    table = read_stream_table(path, [id_col, segment_col, target], text_columns=(id_col, segment_col))
    ids = table.column(id_col).to_numpy(zero_copy_only=False).astype(str)
    segments = table.column(segment_col).to_numpy(zero_copy_only=False).astype(str)
    y = np.asarray(table.column(target).to_numpy(zero_copy_only=False))
    if y.dtype.kind == "f":
        if np.isnan(y).any():
            raise ConfigError(f"{Path(path).name}: target {target!r} has missing values; the report needs every label")
        y = y.astype(np.int64)
    return Labels(ids=ids, segments=segments, y=y.astype(np.int64))


def read_stream_table(path: str | Path, columns: Sequence[str], text_columns: Sequence[str] = ()) -> Any:
    """Some columns of a CSV or Parquet file as a pyarrow Table (ids and segments kept as text)."""
    import pyarrow as pa

    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"stream file {str(path)!r} not found")
    try:
        if path.suffix.lower() in (".parquet", ".pq"):
            import pyarrow.parquet as pq

            names = pq.read_schema(path).names
            _need(path, names, columns)
            return pq.read_table(path, columns=list(columns))
        import pyarrow.csv as pcsv

        with path.open(encoding="utf-8-sig", newline="") as handle:
            names = next(csv.reader(handle), [])
        _need(path, names, columns)
        return pcsv.read_csv(path, convert_options=pcsv.ConvertOptions(
            include_columns=list(columns), column_types={name: pa.string() for name in text_columns}))
    except (pa.ArrowException, OSError) as exc:
        raise ConfigError(f"cannot read {str(path)!r}: {str(exc).strip().splitlines()[0]}") from None


def _need(path: Path, names: Sequence[str], columns: Sequence[str]) -> None:
    absent = [name for name in columns if name not in names]
    if absent:
        raise ConfigError(f"column {absent[0]!r} not in {path.name}; columns are: {', '.join(names)}")


def load_swaps(path: str | Path | None) -> list[Swap]:
    """The swaps log (JSON lines); a missing file means no swaps."""
    if path is None or not Path(path).is_file():
        return []
    swaps = []
    for number, line in enumerate(Path(path).read_text().splitlines(), 1):
        if line.strip():
            try:
                data = json.loads(line)
            except ValueError as exc:
                raise ConfigError(f"{path}:{number}: not JSON ({exc})") from None
            swaps.append(Swap.from_dict(data, where=f"{path}:{number}"))
    return sorted(swaps, key=lambda swap: swap.at)


def _kind_of(line: Mapping[str, Any]) -> tuple[str, Any, Any]:
    """A dump line is ``{"kind", "timestamp", "value"}``; a bare prediction or dead letter is accepted too."""
    if "kind" in line and "value" in line:
        return str(line["kind"]), line["value"], line.get("timestamp")
    if "error" in line and "raw" in line:
        return "dead_letter", line, None
    if "version" in line and "id" in line:
        return "prediction", line, None
    if "features" in line and "id" in line:
        return "event", line, line.get("timestamp")
    raise ConfigError(f"cannot tell what this record is (no kind, not a prediction/dead letter/event): {line!r:.200}")


def read_jsonl(paths: Iterable[str | Path], records: Records | None = None) -> Records:
    """Records from JSONL dumps (as written by :func:`write_dump`, or bare prediction/dead-letter lines)."""
    records = records or Records()
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise ConfigError(f"JSONL file {str(path)!r} not found")
        with path.open("rb") as handle:
            for number, raw in enumerate(handle, 1):
                if not raw.strip():
                    continue
                try:
                    line = orjson.loads(raw)
                except orjson.JSONDecodeError as exc:
                    raise ConfigError(f"{path}:{number}: not JSON ({exc})") from None
                if not isinstance(line, dict):
                    raise ConfigError(f"{path}:{number}: expected a JSON object; got {type(line).__name__}")
                kind, value, timestamp = _kind_of(line)
                records.add(kind, value, timestamp)
    return records


def write_dump(path: str | Path, dump: Iterable[tuple[str, Any, float | None]]) -> int:
    """Write ``(kind, value, timestamp_ms)`` records as JSON lines; return how many."""
    count = 0
    with Path(path).open("wb") as handle:
        for kind, value, timestamp in dump:
            handle.write(orjson.dumps({"kind": kind, "timestamp": timestamp, "value": value}) + b"\n")
            count += 1
    return count


# -- Kafka --------------------------------------------------------------------------------------------
async def _read_topics(settings: Settings, topics: Mapping[str, str], idle_seconds: float,
                       timeout: float) -> list[tuple[str, Any, float | None]]:
    """Every record of ``topics`` (kind -> topic) from the beginning to the end offsets seen at start."""
    from aiokafka import AIOKafkaConsumer

    from scorer.kafka import aiokafka_options, partitions_of

    partitions = await partitions_of(settings, topics.values())
    kind_of = {topic: kind for kind, topic in topics.items()}
    out: list[tuple[str, Any, float | None]] = []
    if not partitions:
        return out
    consumer = AIOKafkaConsumer(**aiokafka_options(settings), group_id=None, enable_auto_commit=False,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=4 << 20,
                                isolation_level="read_committed")  # what downstream sees: no aborted output
    await consumer.start()
    try:
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        end = await consumer.end_offsets(partitions)
        remaining = {tp for tp in partitions if end[tp] > 0}
        deadline = time.monotonic() + timeout
        last_data = time.monotonic()
        while remaining and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=500, max_records=20_000)
            for tp, messages in batches.items():
                kind = kind_of[tp.topic]
                for message in messages:
                    if message.offset < end[tp]:
                        value = message.value if kind != "event" else _event_id_only(message.value)
                        out.append((kind, value, float(message.timestamp)))
                if messages:
                    last_data = time.monotonic()
            for tp in list(remaining):
                if await consumer.position(tp) >= end[tp]:
                    remaining.discard(tp)
            if remaining and time.monotonic() - last_data > idle_seconds:
                break
        if remaining:
            import logging

            logging.getLogger(__name__).warning(
                "stopped reading %d partition(s) before their end offset (idle %.0f s / timeout %.0f s): %s",
                len(remaining), idle_seconds, timeout, ", ".join(f"{tp.topic}[{tp.partition}]" for tp in remaining))
    finally:
        await consumer.stop()
    return [(kind, _parse(value), timestamp) for kind, value, timestamp in out]


def _event_id_only(value: bytes | None) -> Any:
    """Input events only matter for their id (the send time is the record's timestamp): keep them small."""
    try:
        parsed = orjson.loads(value) if value is not None else None
    except orjson.JSONDecodeError:
        return None
    return {"id": parsed.get("id")} if isinstance(parsed, dict) else None


def _parse(value: Any) -> Any:
    if isinstance(value, bytes):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value.decode("utf-8", "replace")
    return value


def read_kafka(settings: Settings, topics: Mapping[str, str], *, idle_seconds: float = 5.0,
               timeout: float = 300.0) -> list[tuple[str, Any, float | None]]:
    """Synchronous wrapper: ``(kind, value, timestamp_ms)`` for every record of the given topics."""
    for kind in topics:
        if kind not in KINDS:
            raise ConfigError(f"unknown record kind {kind!r}; expected one of {', '.join(KINDS)}")
    return asyncio.run(_read_topics(settings, topics, idle_seconds, timeout))
