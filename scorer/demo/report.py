"""The demo's report: what happened to every event of the stream, from the topics the worker wrote.

Inputs:

- the stream file (``stream.csv``/``.parquet`` from ``scorer demo-data``): ids, cities, labels, order, plus
  ``demo.json`` beside it for the drift point;
- records of three topics, read from Kafka (from the beginning until the end offsets seen at start) or
  from a JSONL dump: the input events (their Kafka timestamp is the send time), the predictions and the
  dead letters;
- the swaps log the demo writes (one JSON object per line: segment, version, method and the time the
  row was written).

``compute_summary`` is pure (arrays and dicts in, a JSON-able dict out) and is what the tests exercise.
Times are epoch seconds (floats) inside; latencies and delays are reported in milliseconds.
"""

from __future__ import annotations

import asyncio
import csv
import json
import math
import time
from collections import Counter, defaultdict
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
RECOVERY_MARGIN = 0.05
"""The drifted city counts as recovered when its accuracy on the new version beats the old version's
accuracy after the drift by at least this much."""


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
                                auto_offset_reset="earliest", max_partition_fetch_bytes=4 << 20)
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


# -- computations -------------------------------------------------------------------------------------
def percentile(values: Sequence[float] | np.ndarray, q: float) -> float | None:
    """The q-th percentile (linear interpolation), None for no values."""
    array = np.asarray(values, dtype=np.float64)
    array = array[np.isfinite(array)]
    return float(np.percentile(array, q)) if array.size else None


def roc_auc(y: np.ndarray, score: np.ndarray) -> float | None:
    """Area under the ROC curve; None when only one class is present."""
    from scorer.monitor.accuracy import auc

    return auc(np.asarray(y).astype(bool), score)


def _probability(prediction: Any) -> float:
    if isinstance(prediction, list):  # multiclass: the last class's probability (the demo is binary)
        prediction = prediction[-1] if prediction else None
    try:
        return float(prediction)
    except (TypeError, ValueError):
        return float("nan")


def _predicted_class(label: Any, probability: float) -> int:
    if isinstance(label, bool):
        return int(label)
    if isinstance(label, int | float) and math.isfinite(label):
        return int(round(label))
    if isinstance(label, str):
        try:
            return int(round(float(label)))
        except ValueError:
            pass
    return int(probability >= 0.5)


@dataclass(frozen=True)
class Joined:
    """One row per stream event that got a prediction (its first one), in stream order."""

    index: np.ndarray      # position in the stream
    segments: np.ndarray
    y: np.ndarray
    version: np.ndarray
    probability: np.ndarray
    predicted: np.ndarray
    sent: np.ndarray       # epoch s, NaN when the input topic was not read
    scored: np.ndarray     # epoch s, NaN when scored_at was unreadable

    @property
    def correct(self) -> np.ndarray:
        return self.predicted == self.y

    @property
    def latency_ms(self) -> np.ndarray:
        return (self.scored - self.sent) * 1000.0


def _metrics(joined: Joined, mask: np.ndarray) -> dict[str, Any]:
    n = int(mask.sum())
    if n == 0:
        return {"n": 0, "accuracy": None, "auc": None}
    return {"n": n, "accuracy": round(float(joined.correct[mask].mean()), 4),
            "auc": _round(roc_auc(joined.y[mask], joined.probability[mask]), 4)}


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def join(labels: Labels, records: Records) -> tuple[Joined, dict[str, Any]]:
    """Match predictions and dead letters to the stream by id; count duplicates, lost and unexpected ids."""
    position = {event_id: i for i, event_id in enumerate(labels.ids.tolist())}
    first: dict[int, tuple[float, dict[str, Any]]] = {}
    per_id = Counter()
    unexpected = 0
    for prediction in records.predictions:
        event_id = str(prediction.get("id"))
        i = position.get(event_id)
        if i is None:
            unexpected += 1
            continue
        per_id[i] += 1
        scored = to_epoch_seconds(prediction.get("scored_at"))
        scored = float("nan") if scored is None else scored
        kept = first.get(i)
        if kept is None or (scored < kept[0]):
            first[i] = (scored, prediction)
    dead_ids: set[int] = set()
    dead_reasons: Counter[str] = Counter()
    for letter in records.dead_letters:
        dead_reasons[_reason_kind(str(letter.get("error", "")))] += 1
        raw = letter.get("raw")
        try:
            event = orjson.loads(raw) if isinstance(raw, str | bytes) else None
        except orjson.JSONDecodeError:
            event = None
        if isinstance(event, dict) and str(event.get("id")) in position:
            dead_ids.add(position[str(event["id"])])
    answered = set(first) | dead_ids
    lost_index = sorted(set(range(labels.ids.size)) - answered)
    sent_ids = set(records.sent)
    not_sent = [i for i in lost_index if labels.ids[i] not in sent_ids] if records.n_events else []

    order = np.array(sorted(first), dtype=np.int64)
    rows = [first[i][1] for i in order.tolist()]
    probability = np.array([_probability(row.get("prediction")) for row in rows], dtype=np.float64)
    joined = Joined(
        index=order,
        segments=labels.segments[order] if order.size else np.array([], dtype=str),
        y=labels.y[order] if order.size else np.array([], dtype=np.int64),
        version=np.array([_version(row.get("version")) for row in rows], dtype=np.int64),
        probability=probability,
        predicted=np.array([_predicted_class(row.get("label"), p) for row, p in zip(rows, probability, strict=True)],
                           dtype=np.int64),
        sent=np.array([records.sent.get(str(labels.ids[i]), np.nan) for i in order.tolist()], dtype=np.float64),
        scored=np.array([first[i][0] for i in order.tolist()], dtype=np.float64),
    )
    counts = {
        "stream_events": int(labels.ids.size),
        "events_sent": int(records.n_events),
        "predictions": len(records.predictions),
        "dead_letters": len(records.dead_letters),
        "dead_letters_by_reason": dict(dead_reasons.most_common()),
        "events_predicted": len(first),
        "duplicates": int(sum(count - 1 for count in per_id.values())),
        "predicted_and_dead_lettered": len(set(first) & dead_ids),
        "lost": len(lost_index),
        "lost_never_sent": len(not_sent),
        "lost_examples": [str(labels.ids[i]) for i in lost_index[:10]],
        "unexpected_ids": unexpected,
        "unreadable_records": records.unreadable,
    }
    return joined, counts


def _version(value: Any) -> int:
    try:
        return int(value)
    except (TypeError, ValueError):
        return -1


def _reason_kind(error: str) -> str:
    """A short class of a dead letter's reason, for counting (the text before the first colon)."""
    return (error.split(":", 1)[0].strip() or "unknown")[:60]


def swap_outcomes(joined: Joined, swaps: Sequence[Swap]) -> list[dict[str, Any]]:
    """Per swap: when its segment's first prediction on the new version came, and how long the old one lingered."""
    out = []
    for swap in swaps:
        in_segment = joined.segments == swap.segment
        new = in_segment & (joined.version == swap.version)
        old = in_segment & (joined.version != swap.version)
        first_new = float(np.nanmin(joined.scored[new])) if new.any() else None
        old_after = old & (joined.scored >= swap.at)
        sent_after = in_segment & (joined.sent >= swap.at)
        old_sent_after = old & (joined.sent >= swap.at)
        previous = Counter(joined.version[old & (joined.scored < swap.at)].tolist()).most_common(1)
        out.append({
            "segment": swap.segment, "method": swap.method, "to_version": swap.version,
            "from_version": previous[0][0] if previous else None, "at": swap.at,
            "observed": first_new is not None,
            "delay_ms": None if first_new is None else round((first_new - swap.at) * 1000.0, 1),
            "old_version_last_scored_ms": (round((float(np.nanmax(joined.scored[old_after])) - swap.at) * 1000.0, 1)
                                           if old_after.any() else None),
            "events_sent_after_swap_on_old_version": int(old_sent_after.sum()),
            "events_sent_after_swap": int(sent_after.sum()),
            "events_on_new_version": int(new.sum()),
        })
    return out


def drift_phases(joined: Joined, drift: Mapping[str, Any] | None, swaps: Sequence[Swap]) -> dict[str, Any] | None:
    """The drifted city's accuracy before the drift, after it on the old version, and on the swapped-in version."""
    if not drift:
        return None
    city = str(drift["city"])
    start = int(drift["first_index"])
    in_city = joined.segments == city
    city_swaps = [swap for swap in swaps if swap.segment == city]
    new_version = city_swaps[-1].version if city_swaps else None
    before = in_city & (joined.index < start)
    after = in_city & (joined.index >= start)
    on_new = after & (joined.version == new_version) if new_version is not None else np.zeros_like(after)
    on_old = after & ~on_new
    phases = {"city": city, "drift_first_id": drift.get("first_id"), "first_index": start, "new_version": new_version,
              "before_drift": _metrics(joined, before), "after_drift_old_version": _metrics(joined, on_old),
              "after_swap_new_version": _metrics(joined, on_new)}
    old_accuracy = phases["after_drift_old_version"]["accuracy"]
    new_accuracy = phases["after_swap_new_version"]["accuracy"]
    phases["recovered"] = (old_accuracy is not None and new_accuracy is not None
                           and new_accuracy >= old_accuracy + RECOVERY_MARGIN)
    return phases


def compute_summary(labels: Labels, records: Records, swaps: Sequence[Swap] = (),
                    meta: Mapping[str, Any] | None = None) -> tuple[dict[str, Any], Joined]:
    """Every figure of the report (JSON-able), plus the joined rows the plot draws from."""
    joined, counts = join(labels, records)
    latency = joined.latency_ms
    per_version: dict[str, dict[str, int]] = defaultdict(dict)
    metrics: dict[str, dict[str, Any]] = defaultdict(dict)
    for segment in sorted(set(joined.segments.tolist())):
        in_segment = joined.segments == segment
        for version in sorted(set(joined.version[in_segment].tolist())):
            mask = in_segment & (joined.version == version)
            per_version[segment][str(version)] = int(mask.sum())
            metrics[segment][str(version)] = _metrics(joined, mask)
    swap_rows = swap_outcomes(joined, swaps)
    drift = drift_phases(joined, (meta or {}).get("drift"), swaps)
    sent = joined.sent[np.isfinite(joined.sent)]
    scored = joined.scored[np.isfinite(joined.scored)]
    span = float(sent.max() - sent.min()) if sent.size > 1 else None
    # The demo pauses between its two halves: the rate counts only the half-seconds in which events were sent.
    active = np.unique(np.floor(sent * 2.0)).size / 2.0 if sent.size else 0.0
    scoring = np.unique(np.floor(scored * 2.0)).size / 2.0 if scored.size else 0.0
    summary: dict[str, Any] = {
        **counts,
        "latency_ms": {"p50": _round(percentile(latency, 50), 2), "p99": _round(percentile(latency, 99), 2),
                       "max": _round(percentile(latency, 100), 2), "n": int(np.isfinite(latency).sum())},
        "send_seconds": _round(span, 2),
        "events_per_second": _round(sent.size / active, 1) if active else None,
        "predictions_per_second": _round(scored.size / scoring, 1) if scoring else None,
        "first_sent_at": float(sent.min()) if sent.size else None,
        "last_scored_at": float(scored.max()) if scored.size else None,
        "events_per_version": dict(per_version),
        "metrics": dict(metrics),
        "overall": _metrics(joined, np.ones(joined.index.size, dtype=bool)),
        "swaps": swap_rows,
        "drift": drift,
    }
    summary["checks"] = checks(summary, expect_swaps=len(swaps))
    summary["ok"] = all(check["ok"] for check in summary["checks"])
    return summary, joined


def checks(summary: Mapping[str, Any], expect_swaps: int = 0) -> list[dict[str, Any]]:
    """What must hold for the demo to pass: nothing lost, nothing failed, every swap seen, the drift fixed."""
    out = [
        {"name": "no event lost", "ok": summary["lost"] == 0,
         "detail": f"{summary['lost']} lost" + (f" (e.g. {', '.join(summary['lost_examples'][:3])})"
                                                  if summary["lost"] else "")},
        {"name": "no dead letter", "ok": summary["dead_letters"] == 0,
         "detail": f"{summary['dead_letters']} dead letters {summary['dead_letters_by_reason'] or ''}".strip()},
        {"name": "every output readable", "ok": summary["unreadable_records"] == 0 and summary["unexpected_ids"] == 0,
         "detail": f"{summary['unreadable_records']} unreadable, {summary['unexpected_ids']} unknown ids"},
    ]
    for swap in summary["swaps"]:
        out.append({"name": f"swap {swap['segment']} -> v{swap['to_version']} ({swap['method']}) observed",
                    "ok": bool(swap["observed"]),
                    "detail": f"first new-version prediction after {swap['delay_ms']} ms" if swap["observed"]
                    else "no prediction on the new version"})
    if expect_swaps and len(summary["swaps"]) < expect_swaps:
        out.append({"name": "swaps logged", "ok": False, "detail": f"{len(summary['swaps'])} of {expect_swaps}"})
    drift = summary.get("drift")
    if drift and drift.get("new_version") is not None:
        out.append({"name": f"{drift['city']} accuracy recovers after the swap", "ok": bool(drift["recovered"]),
                    "detail": f"{drift['after_drift_old_version']['accuracy']} on the old version after the drift, "
                              f"{drift['after_swap_new_version']['accuracy']} on v{drift['new_version']}"})
    return out


# -- output -------------------------------------------------------------------------------------------
def write_summary(summary: Mapping[str, Any], path: str | Path) -> None:
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(summary, indent=2, sort_keys=False, default=_jsonable) + "\n")


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    raise TypeError(f"not JSON-able: {type(value).__name__}")


def _fmt(value: Any, suffix: str = "") -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.3f}{suffix}" if abs(value) < 10 else f"{value:,.1f}{suffix}"
    if isinstance(value, int):
        return f"{value:,}{suffix}"
    return f"{value}{suffix}"


def render(summary: Mapping[str, Any], console: Any = None) -> None:
    """Print the summary as rich tables: totals, swaps, the drifted city, then per city and version."""
    from rich.console import Console
    from rich.table import Table

    if console is None:
        console = Console()
        if not console.is_terminal:  # a log file or a pipe: wide enough that no column wraps
            console = Console(width=140)
    totals = Table(title="scorer demo: summary", show_header=False, title_justify="left")
    totals.add_column("figure", style="bold")
    totals.add_column("value", justify="right")
    latency = summary["latency_ms"]
    for name, value in (
        ("events in the stream", _fmt(summary["stream_events"])),
        ("events sent to Kafka", _fmt(summary["events_sent"])),
        ("predictions", _fmt(summary["predictions"])),
        ("dead letters", _fmt(summary["dead_letters"])),
        ("duplicates (re-scored after a restart)", _fmt(summary["duplicates"])),
        ("lost (no prediction, no dead letter)", _fmt(summary["lost"])),
        ("send rate (events/s, while sending)", _fmt(summary["events_per_second"])),
        ("scoring rate (predictions/s, while scoring)", _fmt(summary.get("predictions_per_second"))),
        ("end-to-end latency p50", _fmt(latency["p50"], " ms")),
        ("end-to-end latency p99", _fmt(latency["p99"], " ms")),
        ("accuracy, all cities", _fmt(summary["overall"]["accuracy"])),
    ):
        totals.add_row(name, value)
    machine = summary.get("environment")
    if machine:
        totals.add_row("machine", f"{machine['cpus']} CPUs, load {machine['load_1m']:.1f} (1 min)")
    console.print(totals)

    if summary["swaps"]:
        swaps = Table(title="live swaps", title_justify="left")
        for column in ("city", "how", "from", "to", "seen", "first on new", "last on old", "old after swap"):
            swaps.add_column(column, justify="left" if column in ("city", "how") else "right")
        for swap in summary["swaps"]:
            swaps.add_row(swap["segment"], swap["method"], _fmt(swap["from_version"]), _fmt(swap["to_version"]),
                          "yes" if swap["observed"] else "[red]NO[/red]", _fmt(swap["delay_ms"], " ms"),
                          _fmt(swap["old_version_last_scored_ms"], " ms"),
                          _fmt(swap["events_sent_after_swap_on_old_version"]))
        console.print(swaps)
        console.print("  first on new: the city's first prediction on the new version, after the row was written; "
                      "last on old: its last prediction on the old one;\n  old after swap: events sent after the "
                      "write but still scored by the old version.", style="dim")

    drift = summary.get("drift")
    if drift:
        title = f"drifted city {drift['city']} (drift from {drift['drift_first_id']})"
        table = Table(title=title, title_justify="left")
        for column in ("phase", "events", "accuracy", "AUC"):
            table.add_column(column, justify="left" if column == "phase" else "right")
        for label, key in (("before the drift", "before_drift"),
                           ("after the drift, old version", "after_drift_old_version"),
                           (f"after the swap, v{drift['new_version']}", "after_swap_new_version")):
            row = drift[key]
            table.add_row(label, _fmt(row["n"]), _fmt(row["accuracy"]), _fmt(row["auc"]))
        console.print(table)

    per_city = Table(title="per city and version", title_justify="left")
    for column in ("city", "version", "events", "accuracy", "AUC"):
        per_city.add_column(column, justify="left" if column == "city" else "right")
    for segment, versions in summary["metrics"].items():
        for version, row in versions.items():
            per_city.add_row(segment, version, _fmt(row["n"]), _fmt(row["accuracy"]), _fmt(row["auc"]))
    console.print(per_city)

    checks_table = Table(title="checks", title_justify="left")
    checks_table.add_column("check")
    checks_table.add_column("result")
    checks_table.add_column("detail")
    for check in summary["checks"]:
        result = "[green]ok[/green]" if check["ok"] else "[red]FAILED[/red]"
        checks_table.add_row(check["name"], result, check["detail"])
    console.print(checks_table)
