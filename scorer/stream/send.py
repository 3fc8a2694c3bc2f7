"""``scorer send``: turn rows of a CSV or Parquet file into input events on a Kafka topic.

Each row becomes ``{"id", "model", "segment", "features"}`` keyed by its id (``--id-col`` or the
deterministic ``e-<row>``), with NaN/empty cells sent as null. ``rate`` paces sending (events per second).
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from scorer.config import Settings
from scorer.errors import ConfigError

Progress = Callable[[int], None]
"""Called with the number of events acknowledged since the last call."""


@dataclass(frozen=True)
class EventRows:
    """Rows ready to send: ids, segments and feature columns: float (NaN = missing) or, for text columns
    (categories), object arrays of str (None = missing), sent as JSON strings."""

    ids: list[str]
    segments: list[str]
    feature_names: tuple[str, ...]
    columns: list[np.ndarray]

    def __len__(self) -> int:
        return len(self.ids)

    def encode(self, model: str, start: int, stop: int) -> list[tuple[bytes, bytes]]:
        """(key, value) of rows [start, stop)."""
        names = self.feature_names
        cols = [c[start:stop].tolist() if c.dtype == object else np.where(np.isnan(c[start:stop]), None,
                c[start:stop]).tolist() for c in self.columns]
        out = []
        for offset, i in enumerate(range(start, stop)):
            event_id = self.ids[i]
            features = {name: col[offset] for name, col in zip(names, cols, strict=True)}
            value = orjson.dumps({"id": event_id, "model": model, "segment": self.segments[i], "features": features})
            out.append((event_id.encode(), value))
        return out


def _is_text(dtype: Any) -> bool:
    import pyarrow as pa

    if pa.types.is_dictionary(dtype):
        dtype = dtype.value_type
    return bool(pa.types.is_string(dtype) or pa.types.is_large_string(dtype))


def read_rows(path: Path, segment_col: str, features: Sequence[str] | None = None, id_col: str | None = None,
              limit: int | None = None) -> EventRows:
    """Read the file; ``features`` default to every numeric column but the segment and id columns. Text
    columns named in ``features`` (categories) are sent as strings."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from scorer.tables import is_numeric_type, read_table

    text = [segment_col] + ([id_col] if id_col else [])
    columns = None if features is None else list(dict.fromkeys([*text, *features]))
    table = read_table(path, columns=columns, text_columns=text)
    names = table.column_names
    for col in text:
        if col not in names:
            raise ConfigError(f"column {col!r} not in {path.name}; columns are: {', '.join(names)}")
    if limit is not None:
        table = table.slice(0, limit)
    if features is None:
        features = [n for n in names if n not in text and is_numeric_type(table.schema.field(n).type)]
        if not features:
            raise ConfigError(f"{path.name} has no numeric feature columns besides {', '.join(text)}")
    feature_cols = []
    for name in features:
        column = table.column(name)
        if _is_text(column.type):
            feature_cols.append(np.array(pc.cast(column, pa.string()).to_pylist(), dtype=object))
            continue
        if not is_numeric_type(column.type) and not pa.types.is_null(column.type):
            raise ConfigError(f"feature column {name!r} of {path.name} is {column.type}, not numeric or text")
        feature_cols.append(np.asarray(pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False),
                                       dtype=np.float64))
    segments = table.column(segment_col).cast(pa.string()).to_pylist()
    missing = [i for i, s in enumerate(segments) if not s]
    if missing:
        raise ConfigError(f"row {missing[0]} of {path.name} has no {segment_col!r} value ({len(missing)} such rows)")
    if id_col:
        ids = table.column(id_col).cast(pa.string()).to_pylist()
        if any(not i for i in ids):
            raise ConfigError(f"some rows of {path.name} have no {id_col!r} value")
    else:
        ids = [f"e-{i}" for i in range(table.num_rows)]
    return EventRows(ids, segments, tuple(features), feature_cols)


def _chunks(n: int, size: int) -> Iterator[tuple[int, int]]:
    for start in range(0, n, size):
        yield start, min(n, start + size)


async def send_rows(settings: Settings, rows: EventRows, model: str, topic: str, *, rate: float | None = None,
                    progress: Progress | None = None, chunk: int = 500) -> int:
    """Produce every row (keyed by id) and wait for all acknowledgements; returns the count sent."""
    from scorer.kafka import new_producer, start_producer

    if rate is not None and not (rate > 0 and math.isfinite(rate)):
        raise ConfigError(f"--rate must be a positive number of events per second; got {rate}")
    if rate is not None:
        chunk = max(1, min(chunk, int(rate / 20) or 1))  # about 20 sends a second keeps pacing smooth
    producer = new_producer(settings, linger_ms=5, max_batch_size=1 << 20)
    await start_producer(producer)
    sent = 0
    try:
        started = time.perf_counter()
        pending: list[asyncio.Future] = []
        for start, stop in _chunks(len(rows), chunk):
            if rate is not None:
                due = started + start / rate
                delay = due - time.perf_counter()
                if delay > 0:
                    await asyncio.sleep(delay)
            for key, value in rows.encode(model, start, stop):
                pending.append(await producer.send(topic, value, key=key))
            if len(pending) >= 5000 or rate is not None:
                await _settle(pending, progress)
                sent += len(pending)
                pending = []
        await _settle(pending, progress)
        sent += len(pending)
    finally:
        await producer.stop()
    return sent


async def _settle(pending: list[Any], progress: Progress | None) -> None:
    if pending:
        await asyncio.gather(*pending)
        if progress is not None:
            progress(len(pending))
