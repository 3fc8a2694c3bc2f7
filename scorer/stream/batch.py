"""A batch: one unit of work that decode -> resolve -> score -> deliver -> confirm each fill in.

A reader builds a :class:`Batch` from the messages it took (with whatever it needs to confirm them later:
offsets to commit, faust events to ack) and hands it to the worker; the worker fills in the decoded events,
the models that serve them, the outputs, and finally resolves ``delivered`` once every output is on the
broker. The reader watches ``delivered`` and confirms its input: nobody calls back into anybody.

Also here: the one place a prediction message is built (live predictions and shadow outputs share it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
import orjson

from scorer.stream.cache import LoadedModel, Serving, Unservable
from scorer.stream.events import Event, Invalid
from scorer.stream.serving import message_head

_dumps = orjson.dumps

Key = tuple[str, str]
ExtraMessage = tuple[str, bytes | None, bytes]
OutputMessage = tuple[bytes | None, bytes, int | None]
"""(key, value, partition or None) as :class:`~scorer.stream.sink.KafkaSink` sends it."""
"""(topic, key, value) a hook wants sent with the batch."""


class InputRecord(Protocol):
    """What the scorer reads from a Kafka message (faust's Message and aiokafka's ConsumerRecord both fit)."""

    key: bytes | None
    value: bytes | None
    topic: str
    partition: int
    offset: int
    timestamp: Any


@dataclass(slots=True, eq=False)
class Part:
    """Events of one (model, segment) scored by one version: one row slice of its layout's matrix."""

    key: Key
    serving: Serving
    scored_by: LoadedModel
    canary: bool
    events: list[Event]
    X: np.ndarray | None = None
    nonfinite: np.ndarray | None = None
    """Per-cell non-finite mask of ``X`` (None when every value is finite)."""
    output: np.ndarray | None = None
    """Set when a fused kernel already scored this part."""


@dataclass(slots=True)
class ModelFailure:
    """A part whose predict raised: retried with the batch, dead-lettered only when retries run out."""

    scored_by: LoadedModel
    error: BaseException
    indices: list[int]


@dataclass(slots=True)
class BatchResult:
    """Outputs of one batch, ready to send. ``predictions`` and ``dead_letters`` are (key, value, input index)."""

    predictions: list[tuple[bytes, bytes, int]] = field(default_factory=list)
    dead_letters: list[tuple[bytes | None, bytes, int]] = field(default_factory=list)
    extra: list[ExtraMessage] = field(default_factory=list)
    failures: list[ModelFailure] = field(default_factory=list)
    counts: dict[tuple[str, str, str, str], int] = field(default_factory=dict)
    reasons: dict[str, int] = field(default_factory=dict)


@dataclass(slots=True, eq=False)
class Batch:
    """Input messages and everything the worker learns about them on the way to the broker."""

    records: Sequence[InputRecord]
    sent_at: np.ndarray | None = None
    """The inputs' Kafka timestamps in seconds (for end-to-end latency)."""
    source: Any = None
    """The reader's own handle to confirm the batch (offsets to commit, or faust events to ack)."""
    sink: Any = None
    """Where the outputs go when the reader chooses (exactly-once: the input partition's transaction); a failed
    send then fails ``delivered`` and the reader retries from its last commit. None: the worker's own sink."""
    events: list[Event] = field(default_factory=list)
    invalid: list[Invalid] = field(default_factory=list)
    groups: dict[Key, list[Event]] = field(default_factory=dict)
    resolved: dict[Key, Serving | Unservable] = field(default_factory=dict)
    result: BatchResult = field(default_factory=BatchResult)
    started: float = field(default_factory=time.perf_counter)
    delivered: asyncio.Future[None] | None = None
    """Done once every output is acknowledged by the broker (batches of one worker finish in order)."""

    def __len__(self) -> int:
        return len(self.records)

    def outgoing(self, output_topic: str, dlq_topic: str, copartitioned: bool
                 ) -> list[tuple[str, list[OutputMessage]]]:
        """Every output as (topic, [(key, value, partition or None)]): predictions, dead letters, then hook
        messages per topic. ``copartitioned`` (output and input topics have as many partitions): an output keyed
        like its input goes to the input's partition number, so no hash is computed for it."""
        result, records = self.result, self.records
        out: list[tuple[str, list[OutputMessage]]] = []
        if result.predictions:
            if copartitioned:
                out.append((output_topic, [(key, value, record.partition if (record := records[index]).key == key
                                            else None) for key, value, index in result.predictions]))
            else:
                out.append((output_topic, [(key, value, None) for key, value, _ in result.predictions]))
        if result.dead_letters:
            out.append((dlq_topic, [(key, value, None) for key, value, _ in result.dead_letters]))
        if result.extra:
            extra: dict[str, list[OutputMessage]] = {}
            for topic, key, value in result.extra:
                extra.setdefault(topic, []).append((key, value, None))
            out += extra.items()
        return out


def input_seconds(records: Sequence[Any], scale: float) -> np.ndarray:
    """The records' Kafka timestamps in seconds (faust Messages carry seconds, aiokafka records milliseconds)."""
    return np.fromiter((r.timestamp for r in records), np.float64, len(records)) * scale


# ------------------------------------------------------------------------------------------ prediction messages

def utc_stamp() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(frozen=True, slots=True)
class Scored:
    """What every prediction message of one part shares."""

    model: str
    segment: str
    """The event's own segment (a fallback-served event keeps its segment here)."""
    version: int
    canary: bool
    scored_at: str
    shadow: bool = False
    served_by: str | None = None
    """The segment whose model scored the events when it is not their own (the fallback segment)."""


def format_outputs(model: LoadedModel, output: np.ndarray) -> tuple[list[Any], list[Any]]:
    """Model output -> (prediction values, labels) as plain Python lists, in the prediction format.

    Binary: P(classes[1]) and the label of the larger column (ties go to the first, like argmax);
    multiclass: every class probability and the argmax label; regression: the value and no label.
    """
    n = output.shape[0]
    if model.kind == "regression":
        return np.asarray(output, dtype=np.float64).reshape(n).tolist(), [None] * n
    labels = model.labels or ()
    if model.kind == "binary":
        first, second = labels
        positive = output[:, 1]
        chosen = [second if win else first for win in (positive > output[:, 0]).tolist()]
        return positive.astype(np.float64, copy=False).tolist(), chosen
    winners = output.argmax(axis=1).tolist()
    return output.astype(np.float64, copy=False).tolist(), [labels[i] for i in winners]


def prediction_values(head: Scored, events: Sequence[Event], values: list[Any], labels: list[Any]) -> list[bytes]:
    """The JSON prediction message of each event (the public prediction format; shadows add ``"shadow": true``,
    fallback-served events ``"served_by"``: the segment whose model and version scored them)."""
    model, segment, version, canary, scored_at = head.model, head.segment, head.version, head.canary, head.scored_at
    extra: dict[str, Any] = {"served_by": head.served_by} if head.served_by is not None else {}
    if head.shadow:
        return [_dumps({"id": e.id, "model": model, "segment": segment, "version": version, "canary": False,
                        "shadow": True, "prediction": v, "label": label, "scored_at": scored_at, **extra})
                for e, v, label in zip(events, values, labels, strict=True)]
    if extra:
        return [_dumps({"id": e.id, "model": model, "segment": segment, "version": version, "canary": canary,
                        "prediction": v, "label": label, "scored_at": scored_at, **extra})
                for e, v, label in zip(events, values, labels, strict=True)]
    return [_dumps({"id": e.id, "model": model, "segment": segment, "version": version, "canary": canary,
                    "prediction": v, "label": label, "scored_at": scored_at})
            for e, v, label in zip(events, values, labels, strict=True)]


class PredictionEncoder:
    """Prediction messages of many parts at once, byte for byte what :func:`prediction_values` writes.

    One ``orjson.dumps`` per message (a dict built per event) was the worker's largest per-event cost after
    parsing. Here the ids of a whole batch are serialised in one call and split (a JSON string holds no
    unescaped ``"``, so ``","`` occurs only between elements), the values likewise (floats hold no comma), and the
    parts between them come from a few cached templates: each message is one ``%`` format.
    """

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._heads: dict[tuple[str, str, int, bool], bytes] = {}

    def head(self, model: str, segment: str, version: int, canary: bool) -> bytes:
        """``","model":...,"prediction":``: what follows the id up to the value (cached: names come from events)."""
        key = (model, segment, version, canary)
        head = self._heads.get(key)
        if head is None:
            if len(self._heads) >= self.capacity:
                self._heads.clear()
            head = self._heads[key] = message_head(model, segment, version, canary)
        return head

    @staticmethod
    def tail(scored_at: str, served_by: str | None) -> bytes:
        if served_by is None:
            return b',"scored_at":' + _dumps(scored_at) + b"}"
        return b',"scored_at":' + _dumps(scored_at) + b',"served_by":' + _dumps(served_by) + b"}"

    @staticmethod
    def simple(loaded: LoadedModel, output: np.ndarray, n: int) -> bool:
        """True when ``output`` of ``n`` rows has the shape ``encode`` takes for this model (binary or regression);
        anything else goes through :func:`format_outputs`, which formats multiclass rows or raises."""
        if type(output) is not np.ndarray:
            return False
        if loaded.kind == "binary":
            return output.shape == (n, 2) and len(loaded.label_json) == 2
        return loaded.kind == "regression" and output.shape[0] == n and output.size == n and output.ndim <= 2

    def encode(self, parts: Sequence[tuple[bytes, bytes, LoadedModel, Sequence[Event], np.ndarray]]
               ) -> list[bytes]:
        """Messages of (head, tail, model, events, output) parts, in order: every output passed ``simple`` and every
        model is of one kind (binary or regression)."""
        heads: list[bytes] = []
        tails: list[bytes] = []
        for head, tail, _, events, _ in parts:
            n = len(events)
            heads += [head] * n
            tails += [tail] * n
        outputs = [output for *_, output in parts]
        loaded = [(model, len(events)) for _, _, model, events, _ in parts]
        if parts[0][2].kind == "binary":
            output = outputs[0] if len(outputs) == 1 else np.concatenate(outputs)
        else:
            output = np.concatenate([output.reshape(-1) for output in outputs])
        return self.encode_rows([e.id for _, _, _, events, _ in parts for e in events], heads, tails, loaded, output)

    @staticmethod
    def encode_rows(ids: list[str], heads: list[bytes], tails: list[bytes], loaded: list[tuple[LoadedModel, int]],
                    output: np.ndarray, same_labels: bool = False) -> list[bytes]:
        """Messages of rows: their ids, heads and tails, ``loaded`` the models that scored consecutive runs of them
        (model, rows; all of one kind), and ``output`` the rows' outputs ((n, 2) binary, (n,) regression);
        ``same_labels`` when the caller knows every model has the labels of the first."""
        if not ids:
            return []
        id_json = _dumps(ids)[2:-2].split(b'","')
        if len(id_json) != len(ids):  # cannot happen (see the class docstring); kept honest anyway
            id_json = [_dumps(i)[1:-1] for i in ids]
        if loaded[0][0].kind == "binary":
            values = output[:, 1]
            wins = (values > output[:, 0]).tolist()
            first, second = loaded[0][0].label_json
            if same_labels or all(model.label_json == (first, second) for model, _ in loaded):
                labels = [second if win else first for win in wins]
            else:
                firsts: list[bytes] = []
                seconds: list[bytes] = []
                for model, n in loaded:
                    firsts += [model.label_json[0]] * n
                    seconds += [model.label_json[1]] * n
                labels = [b if win else a for a, b, win in zip(firsts, seconds, wins, strict=True)]
        else:
            values = output
            labels = [b"null"] * len(ids)
        value_json = _dumps(values.astype(np.float64, copy=False).tolist())[1:-1].split(b",")
        return [b'{"id":"%b%b%b,"label":%b%b' % row for row in zip(id_json, heads, value_json, labels, tails,
                                                                      strict=True)]
