"""Input events: raw Kafka bytes -> validated events or a specific reason, then feature matrices.

This is the hot path of a worker, so it works on whole batches, decodes the common event with one msgspec call
(orjson names the problem of any other) and never builds a faust Record or a pydantic model per event.
:class:`EventFormat` documents the wire format (and is used at the edges, e.g. by tests and tools);
:func:`decode_batch` enforces the same rules fast.

Everything here is pure: no I/O, no clock, no global state. Both functions never raise on bad input:
every problem becomes an :class:`Invalid` whose ``reason`` is the dead letter's ``error`` text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from itertools import chain
from operator import itemgetter
from typing import Annotated, Any, Literal

import msgspec
import numpy as np
import orjson
from pydantic import BaseModel, ConfigDict, Field

_NUMBER_TYPES = frozenset({int, float, type(None)})
#: feature values an event may carry: numbers, null, and strings (categories; refused by numeric features)
_VALUE_TYPES = frozenset({int, float, str, type(None)})
_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError


class EventFormat(BaseModel):
    """The input event, for documentation and edge validation (the worker uses :func:`decode_batch`).

    ``{"id": "e-1", "model": "delay", "segment": "ORD", "features": {"dep_delay": 12.0, "carrier": "UA"}}``:
    feature values are JSON numbers, strings (categories) or null (missing); features the model does not use
    are ignored. A string in a numeric feature, or a category of the wrong type or unknown to a model whose
    encoder refuses unknowns, is a dead letter naming the feature and the value.
    """

    model_config = ConfigDict(extra="allow", strict=True)

    id: str = Field(min_length=1)
    """Unique event id: the prediction's Kafka key, and what canary selection hashes."""
    model: str = Field(min_length=1)
    segment: str = Field(min_length=1)
    features: dict[str, float | int | str | None]


@dataclass(frozen=True, slots=True)
class Limits:
    """Bounds on what a worker accepts; anything beyond becomes a dead letter, never an allocation."""

    max_message_bytes: int = 256 * 1024
    max_features: int = 1024
    max_id_chars: int = 256
    max_name_chars: int = 256
    """For ``model`` and ``segment``."""
    max_raw_chars: int = 16 * 1024
    """Dead letters quote the original message up to this many characters (a 1 MB message stays out)."""

    def __post_init__(self) -> None:
        for name in ("max_message_bytes", "max_features", "max_id_chars", "max_name_chars", "max_raw_chars"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"Limits.{name} must be a positive integer; got {value!r}")


DEFAULT_LIMITS = Limits()


class Event(msgspec.Struct, gc=False):
    """A decoded, schema-valid event; ``index`` is its position in the batch it came from.

    A msgspec struct, so that :func:`decode_batch` decodes the common event straight into it (type and length
    checks in C). It holds no references back to anything, hence ``gc=False``: a batch's events cost the cyclic
    GC nothing. ``index`` and ``text`` are the decoder's, never the sender's: the JSON fields of those names are
    ignored, and those of their hidden names are overwritten or refused.
    """

    id: str
    model: str
    segment: str
    features: dict[str, Any]
    index: int = msgspec.field(default=0, name="__scorer_index")
    #: some feature value is a string (a category): only models with categorical inputs read those
    text: bool = msgspec.field(default=False, name="__scorer_text")

    def __repr__(self) -> str:
        return f"Event({self.index}, id={self.id!r}, {self.model}/{self.segment}, {len(self.features)} features)"


@lru_cache(maxsize=8)
def _numeric_event_decoder(limits: Limits) -> msgspec.json.Decoder:
    """Decodes exactly the common event (usable id, model and segment; only numbers or null as feature values,
    within ``limits``) into an :class:`Event`; anything else fails and goes to :func:`decode_one`.

    What it accepts orjson accepts too, with the same values and types (both refuse NaN, Infinity, numbers beyond
    float64 and invalid UTF-8; an integer beyond int64, which orjson reads as a float, is left to orjson).
    """
    number = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)] | float | None
    name = Annotated[str, msgspec.Meta(min_length=1, max_length=limits.max_name_chars)]
    checked = msgspec.defstruct(
        "Event", [("id", Annotated[str, msgspec.Meta(min_length=1, max_length=limits.max_id_chars)]),
                  ("model", name), ("segment", name),
                  ("features", Annotated[dict[str, number], msgspec.Meta(max_length=limits.max_features)]),
                  # an event that names the hidden field gets the slow path, never a text mark it has not earned
                  ("text", Literal[False], msgspec.field(default=False, name="__scorer_text"))],
        bases=(Event,), gc=False)
    return msgspec.json.Decoder(checked)


@dataclass(frozen=True, slots=True)
class Invalid:
    """An event that cannot be scored: its batch position, the reason, and the reason's class (a metric label)."""

    index: int
    reason: str
    kind: str


# Reason classes, used as a bounded metric label (the reason text itself names fields and values).
NOT_JSON = "not_json"
NOT_OBJECT = "not_object"
BAD_FIELD = "bad_field"
BAD_FEATURES = "bad_features"
BAD_VALUE = "bad_value"
UNKNOWN_CATEGORY = "unknown_category"
CATEGORY_TYPE = "category_type"
TOO_LARGE = "too_large"
TOO_MANY_FEATURES = "too_many_features"
MISSING_FEATURE = "missing_feature"
UNKNOWN_MODEL = "unknown_model"
UNKNOWN_SEGMENT = "unknown_segment"
MODEL_UNAVAILABLE = "model_unavailable"
MODEL_ERROR = "model_error"
REASON_KINDS = (NOT_JSON, NOT_OBJECT, BAD_FIELD, BAD_FEATURES, BAD_VALUE, TOO_LARGE, TOO_MANY_FEATURES,
                MISSING_FEATURE, UNKNOWN_MODEL, UNKNOWN_SEGMENT, MODEL_UNAVAILABLE, MODEL_ERROR, UNKNOWN_CATEGORY,
                CATEGORY_TYPE)


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return type(value).__name__


def _show(value: object, limit: int = 40) -> str:
    try:
        text = repr(value)
    except RecursionError:  # a value nested ~1,000 deep (orjson accepts up to 1,024) exhausts repr's stack
        return "(nested too deeply to show)"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _describe(value: object) -> str:
    """``null``, or the JSON type and a short repr: ``string '12'``, ``boolean True``, ``array [1]``."""
    return "null" if value is None else f"{_type_name(value)} {_show(value)}"


def _json_error(raw: bytes, exc: Exception) -> str:
    text = str(exc)
    if "infinity" in text:
        return f"not JSON: a number is out of the float64 range ({text})"
    if b"NaN" in raw or b"Infinity" in raw:
        return f"not JSON: NaN and Infinity are not JSON numbers (send null for a missing value) ({text})"
    return f"not JSON: {text}"


def _check_name(event: dict, field: str, limit: int) -> str | None:
    """None when ``event[field]`` is a usable non-empty string, else the reason."""
    value = event.get(field)
    if type(value) is str and 0 < len(value) <= limit:
        return None
    if field not in event:
        return f"missing field '{field}'"
    if type(value) is str:
        if not value:
            return f"field '{field}' must be a non-empty string; got ''"
        return f"field '{field}' is {len(value)} characters long; the limit is {limit}"
    return f"field '{field}' must be a non-empty string; got {_describe(value)}"


def _bad_feature_value(features: dict) -> str | None:
    """The reason for the first feature value that is not a finite number or null (slow path only).

    The name is cut short: it comes from the event, and a dead letter must stay small whatever was sent.
    """
    for name, value in features.items():
        kind = type(value)
        if kind is float:
            if not math.isfinite(value):
                return f"feature {_show(name, 80)} must be a finite number or null; got {value!r}"
        elif kind is not int and kind is not str and value is not None:
            return f"feature {_show(name, 80)} must be a number, a string or null; got {_describe(value)}"
    return None


def decode_one(index: int, raw: bytes | None, limits: Limits = DEFAULT_LIMITS) -> Event | Invalid:
    """Decode and validate one message; never raises on bad input."""
    if raw is None:
        return Invalid(index, "empty message (no value)", NOT_JSON)
    size = len(raw)
    if size > limits.max_message_bytes:
        return Invalid(index, f"message of {size} bytes exceeds the limit of {limits.max_message_bytes} bytes",
                       TOO_LARGE)
    try:
        event = _loads(raw)
    except _JSONDecodeError as exc:
        return Invalid(index, _json_error(raw, exc), NOT_JSON)
    except Exception as exc:  # noqa: BLE001 - anything orjson raises is a decoding failure of this message
        return Invalid(index, f"not JSON: {type(exc).__name__}: {exc}", NOT_JSON)
    if type(event) is not dict:
        return Invalid(index, f"event must be a JSON object; got {_type_name(event)}", NOT_OBJECT)
    event_id = event.get("id")
    model = event.get("model")
    segment = event.get("segment")
    features = event.get("features")
    if not (type(event_id) is str and 0 < len(event_id) <= limits.max_id_chars):
        return Invalid(index, _check_name(event, "id", limits.max_id_chars) or "bad id", BAD_FIELD)
    if not (type(model) is str and 0 < len(model) <= limits.max_name_chars):
        return Invalid(index, _check_name(event, "model", limits.max_name_chars) or "bad model", BAD_FIELD)
    if not (type(segment) is str and 0 < len(segment) <= limits.max_name_chars):
        return Invalid(index, _check_name(event, "segment", limits.max_name_chars) or "bad segment", BAD_FIELD)
    if type(features) is not dict:
        if "features" not in event:
            return Invalid(index, "missing field 'features'", BAD_FEATURES)
        return Invalid(index, f"field 'features' must be an object; got {_type_name(features)}", BAD_FEATURES)
    if len(features) > limits.max_features:
        return Invalid(index, f"{len(features)} features exceed the limit of {limits.max_features}",
                       TOO_MANY_FEATURES)
    # One C-level pass over the value types; bool is its own type, so True/False fail here as they should.
    # orjson never yields NaN/inf (they are not JSON), so int/float values are finite numbers.
    types = set(map(type, features.values()))
    if not _NUMBER_TYPES.issuperset(types):
        if not _VALUE_TYPES.issuperset(types):
            return Invalid(index, _bad_feature_value(features) or "bad feature value", BAD_VALUE)
        return Event(event_id, model, segment, features, index, True)
    return Event(event_id, model, segment, features, index)


def decode_batch(values: Sequence[bytes | None], limits: Limits = DEFAULT_LIMITS) -> tuple[list[Event], list[Invalid]]:
    """Decode a batch: the valid events and the invalid ones, each carrying its index in ``values``.

    The common event (a JSON object with a usable id, model, segment and only numeric or null feature values) is
    decoded and checked in one msgspec call, with no Python per field; anything else goes through
    :func:`decode_one`, which names the problem (and builds the event of one carrying categories).
    """
    events: list[Event] = []
    invalid: list[Invalid] = []
    add_event = events.append
    add_invalid = invalid.append
    decode = _numeric_event_decoder(limits).decode
    max_bytes = limits.max_message_bytes
    for index, raw in enumerate(values):
        if raw is not None and len(raw) <= max_bytes:
            try:
                event = decode(raw)
            except Exception:  # noqa: BLE001, S110 - decode_one below names the problem
                pass
            else:
                event.index = index
                add_event(event)
                continue
        try:
            result = decode_one(index, raw, limits)
        except Exception as exc:  # noqa: BLE001 - a decoder bug must cost one dead letter, never the batch
            result = Invalid(index, f"event could not be decoded: {type(exc).__name__}: {str(exc)[:200]}", NOT_JSON)
        if isinstance(result, Event):
            add_event(result)
        else:
            add_invalid(result)
    return events, invalid


def raw_text(raw: bytes | None, limits: Limits = DEFAULT_LIMITS) -> str:
    """The original message as text for a dead letter (invalid UTF-8 replaced, long ones cut)."""
    if raw is None:
        return ""
    cut = raw[: limits.max_raw_chars * 4] if len(raw) > limits.max_raw_chars else raw
    text = cut.decode("utf-8", errors="replace")
    if len(text) > limits.max_raw_chars:
        text = text[: limits.max_raw_chars] + f"... [{len(raw)} bytes, cut]"
    return text


def text_errors(events: Sequence[Event], feature_names: Sequence[str], what: str
                ) -> tuple[list[Event], list[tuple[Event, str]]]:
    """Events whose used numeric features hold strings, for a model without categorical inputs:
    (the others, [(event, reason)])."""
    if not any(e.text for e in events):
        return list(events), []
    keep, bad = [], []
    for e in events:
        if e.text:
            name = next((n for n in feature_names if type(e.features.get(n)) is str), None)
            if name is not None:
                value = _show(e.features[name])
                bad.append((e, f"feature '{name}' for {what} must be a number or null; got string {value}"))
                continue
        keep.append(e)
    return keep, bad


def object_block(features: Sequence[Mapping[str, Any]], feature_names: Sequence[str]) -> np.ndarray:
    """Rows of ``features`` as an (n, len(feature_names)) object array (strings kept), missing as None."""
    X = np.empty((len(features), len(feature_names)), dtype=object)
    for i, row in enumerate(features):
        X[i] = [row.get(n) for n in feature_names]
    return X


def feature_block(features: Sequence[Mapping[str, Any]], feature_names: Sequence[str]
                  ) -> tuple[np.ndarray, np.ndarray | None]:
    """Rows of ``features`` as one (n, len(feature_names)) float64 matrix in that order, missing/null as NaN.

    Also returns the mask of non-finite entries, or None when every entry is finite (the common case, checked
    with one vectorised pass). Values must already be validated numbers or None (see :func:`decode_batch`).
    """
    n_features = len(feature_names)
    if not features or n_features == 0:
        return np.empty((len(features), n_features), dtype=np.float64), None
    getter = itemgetter(*feature_names)
    n = len(features)
    try:  # the common case, no value missing: one C pass from the dicts into the matrix
        if n_features == 1:
            X = np.fromiter(map(getter, features), np.float64, n).reshape(n, 1)
        else:
            X = np.fromiter(chain.from_iterable(map(getter, features)), np.float64, n * n_features).reshape(
                n, n_features)
    except (KeyError, TypeError):  # a feature absent or null: NaN
        try:
            rows = [getter(row) for row in features]
        except KeyError:
            rows = [tuple(row.get(name) for name in feature_names) for row in features]
        X = np.array(rows, dtype=np.float64)
        if n_features == 1:
            X = X.reshape(-1, 1)
    finite = np.isfinite(X)
    if finite.all():
        return X, None
    return X, ~finite


def row_errors(X: np.ndarray, nonfinite: np.ndarray | None, feature_names: Sequence[str], accepts_missing: bool,
               what: str) -> tuple[np.ndarray | None, list[tuple[int, str]]]:
    """Rows of X a model cannot score: (mask of bad rows or None, [(row, reason)]).

    NaN (missing) is bad unless ``accepts_missing``; infinities are always bad. ``what`` names the model in
    reasons, e.g. ``"delay/ORD v3"``.
    """
    if nonfinite is None:
        return None, []
    bad = np.isinf(X) if accepts_missing else nonfinite
    rows_bad = bad.any(axis=1)
    if not rows_bad.any():
        return None, []
    errors: list[tuple[int, str]] = []
    for position in np.flatnonzero(rows_bad).tolist():
        column = int(np.argmax(bad[position]))
        name = feature_names[column]
        value = X[position, column]
        if np.isnan(value):
            errors.append((position, f"missing feature '{name}' for {what} (model cannot impute)"))
        else:
            errors.append((position, f"feature '{name}' for {what} is not finite ({value!r})"))
    return rows_bad, errors


def feature_matrix(
    features: Sequence[Mapping[str, Any]],
    feature_names: Sequence[str],
    accepts_missing: bool,
    what: str = "model",
) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Rows of ``features`` as an (n, len(feature_names)) float64 matrix in the model's order.

    A missing or null feature becomes NaN. Unless ``accepts_missing``, a row with one is an error for that
    row only: the result then holds just the good rows (in order) and ``errors`` lists
    ``(position in features, reason)`` for the others. ``what`` names the model in reasons
    (e.g. ``"delay/ORD v3"``). Values must already be validated numbers or None (see :func:`decode_batch`).
    """
    X, nonfinite = feature_block(features, feature_names)
    rows_bad, errors = row_errors(X, nonfinite, feature_names, accepts_missing, what)
    if rows_bad is None:
        return X, errors
    return np.ascontiguousarray(X[~rows_bad]), errors
