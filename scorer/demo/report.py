"""The demo's report: what happened to every event of the stream, from the topics the worker wrote.

Inputs:

- the stream file (``stream.csv``/``.parquet`` from ``scorer demo-data``): ids, cities, labels, order, plus
  ``demo.json`` beside it for the drift point;
- records of three topics, read from Kafka (from the beginning until the end offsets seen at start) or
  from a JSONL dump: the input events (their Kafka timestamp is the send time), the predictions and the
  dead letters;
- the swaps log the demo writes (one JSON object per line: segment, version, method and the time the
  row was written).

Reading them is :mod:`scorer.demo.inputs`; ``compute_summary`` is pure (arrays and dicts in, a JSON-able
dict out) and is what the tests exercise.
Times are epoch seconds (floats) inside; latencies and delays are reported in milliseconds.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import orjson

from scorer.demo.inputs import (  # noqa: F401 - re-exported: the report's inputs, as callers know them
    KINDS,
    Labels,
    Records,
    Swap,
    load_labels,
    load_swaps,
    read_jsonl,
    read_kafka,
    read_stream_table,
    to_epoch_seconds,
    write_dump,
)
from scorer.demo.output import render, write_summary  # noqa: F401 - re-exported

RECOVERY_MARGIN = 0.05
"""The drifted city counts as recovered when its accuracy on the new version beats the old version's
accuracy after the drift by at least this much."""


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
