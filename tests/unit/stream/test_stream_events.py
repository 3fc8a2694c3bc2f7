"""The event decoder and feature matrices: specific reasons for every kind of bad input, never an exception."""

from __future__ import annotations

import math

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scorer.stream.events import (
    BAD_FEATURES,
    BAD_FIELD,
    BAD_VALUE,
    NOT_JSON,
    NOT_OBJECT,
    REASON_KINDS,
    TOO_LARGE,
    TOO_MANY_FEATURES,
    Event,
    EventFormat,
    Invalid,
    Limits,
    decode_batch,
    decode_one,
    feature_matrix,
    raw_text,
)


def good(**overrides: object) -> dict:
    event = {"id": "e-1", "model": "delay", "segment": "ORD", "features": {"dep_delay": 12.0, "distance": 733,
                                                                            "hour": None}}
    event.update(overrides)
    return event


def enc(value: object) -> bytes:
    return orjson.dumps(value)


def test_valid_event_is_decoded_with_its_fields() -> None:
    result = decode_one(3, enc(good()))
    assert isinstance(result, Event)
    assert (result.index, result.id, result.model, result.segment) == (3, "e-1", "delay", "ORD")
    assert result.features == {"dep_delay": 12.0, "distance": 733, "hour": None}


def test_extra_top_level_fields_are_allowed() -> None:
    assert isinstance(decode_one(0, enc(good(source="web", ts=1))), Event)


@pytest.mark.parametrize(("raw", "kind", "reason"), [
    (None, NOT_JSON, "empty message (no value)"),
    (b"", NOT_JSON, "not JSON: "),
    (b"{not json", NOT_JSON, "not JSON: "),
    (b'{"id": "e", "features": {"a": NaN}}', NOT_JSON, "NaN and Infinity are not JSON numbers"),
    (b'{"id": "e", "features": {"a": 1e400}}', NOT_JSON, "out of the float64 range"),
    (b"\xff\xfe", NOT_JSON, "not JSON: "),
    (b"[1, 2]", NOT_OBJECT, "event must be a JSON object; got array"),
    (b'"text"', NOT_OBJECT, "event must be a JSON object; got string"),
    (b"42", NOT_OBJECT, "event must be a JSON object; got number"),
    (b"null", NOT_OBJECT, "event must be a JSON object; got null"),
])
def test_undecodable_messages(raw: bytes | None, kind: str, reason: str) -> None:
    result = decode_one(0, raw)
    assert isinstance(result, Invalid)
    assert result.kind == kind
    assert reason in result.reason


@pytest.mark.parametrize(("event", "kind", "reason"), [
    ({"model": "delay", "segment": "ORD", "features": {}}, BAD_FIELD, "missing field 'id'"),
    (good(id=""), BAD_FIELD, "field 'id' must be a non-empty string; got ''"),
    (good(id=7), BAD_FIELD, "field 'id' must be a non-empty string; got number 7"),
    (good(id=None), BAD_FIELD, "field 'id' must be a non-empty string; got null"),
    (good(model=["delay"]), BAD_FIELD, "field 'model' must be a non-empty string; got array ['delay']"),
    ({"id": "e", "segment": "ORD", "features": {}}, BAD_FIELD, "missing field 'model'"),
    (good(segment=""), BAD_FIELD, "field 'segment' must be a non-empty string; got ''"),
    (good(segment=True), BAD_FIELD, "field 'segment' must be a non-empty string; got boolean True"),
    ({"id": "e", "model": "m", "segment": "s"}, BAD_FEATURES, "missing field 'features'"),
    (good(features=[1, 2]), BAD_FEATURES, "field 'features' must be an object; got array"),
    (good(features=None), BAD_FEATURES, "field 'features' must be an object; got null"),
    (good(features={"a": 1.0, "b": True}), BAD_VALUE,
     "feature 'b' must be a number, a string or null; got boolean True"),
    (good(features={"a": [1]}), BAD_VALUE, "feature 'a' must be a number, a string or null; got array [1]"),
    (good(features={"a": {"x": 1}}), BAD_VALUE,
     "feature 'a' must be a number, a string or null; got object {'x': 1}"),
])
def test_schema_violations_name_the_field(event: dict, kind: str, reason: str) -> None:
    result = decode_one(0, enc(event))
    assert isinstance(result, Invalid)
    assert (result.kind, result.reason) == (kind, reason)


def test_limits_are_configurable() -> None:
    limits = Limits(max_message_bytes=200, max_features=3, max_id_chars=5, max_name_chars=5)
    big = enc(good(padding="x" * 300))
    result = decode_one(0, big, limits)
    assert isinstance(result, Invalid) and result.kind == TOO_LARGE
    assert f"message of {len(big)} bytes exceeds the limit of 200 bytes" == result.reason
    many = decode_one(0, enc(good(features={f"f{i}": i for i in range(4)})), limits)
    assert isinstance(many, Invalid) and many.kind == TOO_MANY_FEATURES
    assert many.reason == "4 features exceed the limit of 3"
    long_id = decode_one(0, enc(good(id="abcdef", features={})), limits)
    assert isinstance(long_id, Invalid) and long_id.reason == "field 'id' is 6 characters long; the limit is 5"
    long_segment = decode_one(0, enc(good(id="e", segment="ABCDEF", features={})), limits)
    assert isinstance(long_segment, Invalid)
    assert long_segment.reason == "field 'segment' is 6 characters long; the limit is 5"
    with pytest.raises(ValueError, match="max_features"):
        Limits(max_features=0)


def test_batch_keeps_indices_of_good_and_bad() -> None:
    values = [enc(good(id="a")), b"nope", None, enc(good(id="b")), enc([1])]
    events, invalid = decode_batch(values)
    assert [e.index for e in events] == [0, 3]
    assert [e.id for e in events] == ["a", "b"]
    assert [i.index for i in invalid] == [1, 2, 4]


def test_raw_text_is_bounded_and_always_text() -> None:
    limits = Limits(max_raw_chars=10)
    assert raw_text(b"short", limits) == "short"
    assert raw_text(None, limits) == ""
    cut = raw_text(b"x" * 1000, limits)
    assert cut.startswith("x" * 10) and "[1000 bytes, cut]" in cut and len(cut) < 40
    assert raw_text(b"\xff\xfeok", limits) == "\ufffd\ufffdok"


def test_event_format_documents_the_same_rules() -> None:
    EventFormat.model_validate_json(enc(good()))
    with pytest.raises(ValueError):
        EventFormat.model_validate_json(enc(good(features={"a": True})))
    with pytest.raises(ValueError):
        EventFormat.model_validate_json(enc(good(id="")))


# --------------------------------------------------------------------------------------- feature matrices


def test_matrix_follows_model_order_and_ignores_extras() -> None:
    rows = [{"b": 2, "a": 1.5, "zzz": 9}, {"a": -1, "b": 0.25}]
    X, errors = feature_matrix(rows, ("a", "b"), accepts_missing=False, what="m/s v1")
    assert errors == []
    assert X.dtype == np.float64 and X.flags.c_contiguous
    np.testing.assert_array_equal(X, [[1.5, 2.0], [-1.0, 0.25]])


def test_missing_or_null_is_an_error_for_that_row_only() -> None:
    rows = [{"a": 1, "b": 2}, {"a": 1}, {"a": None, "b": 3}, {"a": 4, "b": 5}]
    X, errors = feature_matrix(rows, ("a", "b"), accepts_missing=False, what="delay/ORD v3")
    np.testing.assert_array_equal(X, [[1, 2], [4, 5]])
    assert errors == [
        (1, "missing feature 'b' for delay/ORD v3 (model cannot impute)"),
        (2, "missing feature 'a' for delay/ORD v3 (model cannot impute)"),
    ]


def test_missing_becomes_nan_when_the_model_imputes() -> None:
    rows = [{"a": 1}, {"a": None, "b": 3}]
    X, errors = feature_matrix(rows, ("a", "b"), accepts_missing=True)
    assert errors == []
    assert X.shape == (2, 2)
    assert X[0, 0] == 1 and math.isnan(X[0, 1]) and math.isnan(X[1, 0]) and X[1, 1] == 3


def test_single_feature_and_empty_inputs() -> None:
    X, errors = feature_matrix([{"a": 1}, {"a": 2}], ("a",), accepts_missing=False)
    assert X.shape == (2, 1) and errors == []
    X, errors = feature_matrix([], ("a", "b"), accepts_missing=False)
    assert X.shape == (0, 2) and errors == []


def test_big_integers_become_floats() -> None:
    X, _ = feature_matrix([{"a": 2**63}], ("a",), accepts_missing=False)
    assert X[0, 0] == float(2**63)


# --------------------------------------------------------------------------------------- properties

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)


def _check(result: Event | Invalid) -> None:
    if isinstance(result, Invalid):
        assert result.reason and result.kind in REASON_KINDS
    else:
        assert isinstance(result, Event)
        assert isinstance(result.id, str) and result.id
        assert all(type(v) in (int, float, type(None)) for v in result.features.values())


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_never_raise(raw: bytes) -> None:
    _check(decode_one(0, raw))


@settings(max_examples=200, deadline=None)
@given(json_values)
def test_random_json_never_raises(value: object) -> None:
    _check(decode_one(0, enc(value)))


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["id", "model", "segment", "features", "x"]), json_values, max_size=5))
def test_random_event_shaped_objects_never_raise(value: dict) -> None:
    _check(decode_one(0, enc(value)))


@settings(max_examples=150, deadline=None)
@given(st.text(min_size=1, max_size=30), st.text(min_size=1, max_size=30),
       st.dictionaries(st.text(max_size=8), st.none() | st.integers(-10**9, 10**9)
                       | st.floats(allow_nan=False, allow_infinity=False), max_size=8))
def test_valid_events_round_trip(segment: str, event_id: str, features: dict) -> None:
    result = decode_one(0, enc({"id": event_id, "model": "m", "segment": segment, "features": features}))
    assert isinstance(result, Event)
    assert (result.id, result.segment, result.features) == (event_id, segment, features)
    names = tuple(features)
    if names:
        X, errors = feature_matrix([result.features], names, accepts_missing=True)
        assert X.shape == (1, len(names))
        assert errors == []
