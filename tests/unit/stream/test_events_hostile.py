"""Hostile input on the event path: fuzzed bytes, deep JSON, huge strings, NaN/Infinity, wrong types,
1 MB messages, unicode segments, too many features. Nothing raises, every bad message gets one specific,
bounded reason, and good events next to bad ones are still scored.

tests/unit/stream/test_stream_events.py covers the decoder's reasons one by one; this file attacks it.
"""

from __future__ import annotations

import asyncio
import sys
from dataclasses import dataclass
from functools import cache

import numpy as np
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.linear_model import LogisticRegression

from scorer.models import ModelWeights
from scorer.stream.batch import Batch
from scorer.stream.cache import ModelCache, Target, assemble, prepare
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
    Invalid,
    Limits,
    decode_batch,
    decode_one,
    raw_text,
    text_errors,
)
from scorer.stream.scoring import BatchScorer
from trainers import export

MAX_REASON = 400
"""A dead letter's reason stays this short whatever was sent (the raw message is quoted separately)."""

UNICODE_SEGMENTS = ["São Paulo", "東京", "Zürich", "Αθήνα", "القاهرة", "Ñuñoa 🚕", "e\u0301"]
"""Valid segment names; the last is NFD ("e" + combining acute) and must stay distinct from NFC "é"."""

FIVE_HUNDRED_KB = 500 * 1024
ONE_MB = 1024 * 1024


def good(event_id: str = "e-1", segment: str = "A", **features: object) -> dict:
    return {"id": event_id, "model": "m", "segment": segment, "features": features or {"a": 1.0, "b": 2, "c": None}}


def enc(value: object) -> bytes:
    return orjson.dumps(value)


def check(result: Event | Invalid) -> None:
    """What every decoder answer must satisfy, valid or not."""
    if isinstance(result, Invalid):
        assert result.kind in REASON_KINDS
        assert result.reason and len(result.reason) <= MAX_REASON, result.reason[:200]
        result.reason.encode("utf-8")  # goes into a JSON dead letter: must be encodable
    else:
        assert isinstance(result, Event)
        assert type(result.id) is str and result.id
        assert type(result.model) is str and type(result.segment) is str
        assert all(type(v) in (int, float, str, type(None)) for v in result.features.values())
        assert all(np.isfinite(v) for v in result.features.values() if v is not None and type(v) is not str)
        assert result.text == any(type(v) is str for v in result.features.values())


def nested(depth: int, inner: str = "1") -> str:
    return "[" * depth + inner + "]" * depth


def at_stack_depth(frames: int, fn, *args):  # test helper
    """Call ``fn`` under ``frames`` extra Python frames: a worker decodes deep inside faust and asyncio."""
    if frames <= 0:
        return fn(*args)
    return at_stack_depth(frames - 1, fn, *args)


# ------------------------------------------------------------------------------------------ deep JSON

POSITIONS = {
    "top": "%s",
    "feature value": '{"id":"e","model":"m","segment":"s","features":{"a":%s}}',
    "features": '{"id":"e","model":"m","segment":"s","features":%s}',
    "id": '{"id":%s,"model":"m","segment":"s","features":{}}',
    "model": '{"id":"e","model":%s,"segment":"s","features":{}}',
    "segment": '{"id":"e","model":"m","segment":%s,"features":{}}',
    "extra field": '{"id":"e","model":"m","segment":"s","features":{},"x":%s}',
}
"""Where a nested value goes in a message (``%s``)."""


def deep(position: str, depth: int, inner: str = "1") -> bytes:
    return (POSITIONS[position] % nested(depth, inner)).encode()
EXPECTED_KIND = {"top": NOT_OBJECT, "feature value": BAD_VALUE, "features": BAD_FEATURES, "id": BAD_FIELD,
                 "model": BAD_FIELD, "segment": BAD_FIELD, "extra field": None}


@pytest.mark.parametrize("position", sorted(POSITIONS))
@pytest.mark.parametrize("depth", [1, 500, 900, 995, 1000, 1020, 1024, 1100, 10_000])
def test_deep_json_anywhere_gets_a_specific_reason(position: str, depth: int) -> None:
    raw = deep(position, depth)
    limits = Limits(max_message_bytes=1_000_000)
    # Deep inside a worker's stack as well as at the top: repr of a 1,000-deep list overflowed repr's stack.
    for frames in (0, 300):
        result = at_stack_depth(frames, decode_one, 0, raw, limits)
        check(result)
        if isinstance(result, Invalid) and result.kind == NOT_JSON:
            assert "not JSON: " in result.reason and "depth" in result.reason  # orjson's nesting limit
        elif EXPECTED_KIND[position] is None:
            assert isinstance(result, Event)  # extra fields are ignored, however deep
        else:
            assert isinstance(result, Invalid) and result.kind == EXPECTED_KIND[position], result
            assert "array" in result.reason


def test_ten_thousand_nested_arrays_are_refused_as_json() -> None:
    result = decode_one(0, nested(10_000).encode(), Limits(max_message_bytes=1_000_000))
    assert isinstance(result, Invalid) and result.kind == NOT_JSON and "depth limit" in result.reason


@settings(max_examples=60, deadline=None)
@given(st.sampled_from(sorted(POSITIONS)), st.integers(0, 1_100), st.sampled_from(["1", "{}", '"x"', "null"]))
def test_deep_json_property(position: str, depth: int, inner: str) -> None:
    check(decode_one(0, deep(position, depth, inner), Limits(max_message_bytes=1_000_000)))


def test_a_decoder_failure_costs_one_dead_letter_not_the_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    import scorer.stream.events as events

    real = events.decode_one

    def flaky(index: int, raw: bytes | None, limits: Limits = events.DEFAULT_LIMITS) -> Event | Invalid:
        if raw == b"boom":
            raise MemoryError("simulated")
        return real(index, raw, limits)

    monkeypatch.setattr(events, "decode_one", flaky)
    good_events, invalid = decode_batch([enc(good("a")), b"boom", enc(good("b"))])
    assert [e.id for e in good_events] == ["a", "b"]
    assert len(invalid) == 1 and invalid[0].index == 1 and invalid[0].kind == NOT_JSON
    assert invalid[0].reason == "event could not be decoded: MemoryError: simulated"


# ------------------------------------------------------------------------------------ huge strings, 1 MB


def test_huge_strings_are_refused_with_short_reasons() -> None:
    limits = Limits(max_message_bytes=4 * ONE_MB)
    big = "x" * FIVE_HUNDRED_KB
    cases = {
        "id": (good(event_id=big), BAD_FIELD, f"field 'id' is {len(big)} characters long; the limit is 256"),
        "segment": (good(segment=big), BAD_FIELD, f"field 'segment' is {len(big)} characters long; the limit is 256"),
        "name": ({**good(), "features": {big: [1]}}, BAD_VALUE, "feature 'xxxxxxxxxxxxxxx"),
    }
    for what, (value, kind, reason) in cases.items():
        result = decode_one(0, enc(value), limits)
        assert isinstance(result, Invalid) and result.kind == kind, what
        assert result.reason.startswith(reason), (what, result.reason[:120])
        check(result)
    # A string value is a category for the models that read it (a dead letter with a short reason for the others).
    event = decode_one(0, enc(good(a=big)), limits)
    assert isinstance(event, Event) and event.text
    kept, bad = text_errors([event], ["a"], "m/A v1")
    assert not kept and bad[0][1].startswith("feature 'a' for m/A v1 must be a number or null; got string 'xxx")
    assert len(bad[0][1]) < 200
    # A huge feature name with a good value is just a feature the model does not read.
    assert isinstance(decode_one(0, enc({**good(), "features": {big: 1.0}}), limits), Event)


def test_one_megabyte_messages() -> None:
    padded = enc({**good(), "padding": "p" * ONE_MB})
    assert len(padded) > ONE_MB
    refused = decode_one(0, padded)  # default limit: 256 KiB
    assert isinstance(refused, Invalid) and refused.kind == TOO_LARGE
    assert refused.reason == f"message of {len(padded)} bytes exceeds the limit of {256 * 1024} bytes"
    assert isinstance(decode_one(0, padded, Limits(max_message_bytes=2 * ONE_MB)), Event)  # configurable
    garbage = b"\xff" * ONE_MB
    assert decode_one(0, garbage).kind == TOO_LARGE  # refused before any parsing
    assert decode_one(0, garbage, Limits(max_message_bytes=2 * ONE_MB)).kind == NOT_JSON
    # The dead letter quotes at most max_raw_chars of it, as text.
    quoted = raw_text(garbage)
    assert len(quoted) < 16 * 1024 + 40 and quoted.endswith(f"[{ONE_MB} bytes, cut]")
    assert set(quoted[: 16 * 1024]) == {"\ufffd"}


# ------------------------------------------------------------------------------------- NaN and infinity


@pytest.mark.parametrize("token", ["NaN", "-NaN", "Infinity", "-Infinity", "inf", "nan", "1e400", "-1e400",
                                   "1e309", "2e308", "-1.8e308", "9" * 400])
@pytest.mark.parametrize("where", ["feature", "id", "top"])
def test_nan_and_infinity_tokens_are_not_json(token: str, where: str) -> None:
    raw = {"feature": '{"id":"e","model":"m","segment":"s","features":{"a":%s}}',
           "id": '{"id":%s,"model":"m","segment":"s","features":{}}',
           "top": "%s"}[where] % token
    result = decode_one(0, raw.encode())
    assert isinstance(result, Invalid) and result.kind == NOT_JSON, (raw, result)
    if token.lstrip("-")[:1].isdigit():
        assert "a number is out of the float64 range" in result.reason
    elif "NaN" in token or "Infinity" in token:
        assert "NaN and Infinity are not JSON numbers (send null for a missing value)" in result.reason
    check(result)


def test_numbers_at_the_edges_of_float64_are_accepted() -> None:
    raw = b'{"id":"e","model":"m","segment":"s","features":{"a":1e-400,"b":1.7976931348623157e308,' \
          b'"c":-1.7976931348623157e308,"d":18446744073709551616,"e":-0.0}}'
    result = decode_one(0, raw)
    assert isinstance(result, Event)
    assert result.features["a"] == 0.0 and result.features["b"] == sys.float_info.max
    assert result.features["d"] == 2.0**64


# ------------------------------------------------------------------------------------------ wrong types

json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | \
    st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
json_values = st.recursive(json_scalars, lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=8), c,
                                                                                             max_size=4),
                           max_leaves=12)


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(["id", "model", "segment", "features"]), json_values)
def test_any_value_in_any_field_is_decided_with_a_reason_naming_it(field: str, value: object) -> None:
    event = good()
    event[field] = value
    result = decode_one(0, enc(event))
    check(result)
    if isinstance(result, Invalid):
        assert f"'{field}'" in result.reason or (field == "features" and result.reason.startswith("feature "))
    else:
        valid_name = type(value) is str and 0 < len(value) <= 256
        assert valid_name or (field == "features" and type(value) is dict)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=12), json_values, max_size=8))
def test_feature_values_of_every_type(features: dict) -> None:
    result = decode_one(0, enc({**good(), "features": features}))
    check(result)
    scalar = all(type(v) in (int, float, str, type(None)) for v in features.values())
    assert isinstance(result, Event) == scalar
    if not scalar:
        assert result.kind == BAD_VALUE
    else:
        assert result.text == any(type(v) is str for v in features.values())


# --------------------------------------------------------------------------------------- feature count


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 64), st.integers(0, 130))
def test_feature_count_limit(limit: int, count: int) -> None:
    result = decode_one(0, enc(good(**{f"f{i}": i for i in range(count)}) if count else
                               {**good(), "features": {}}), Limits(max_features=limit))
    if count <= limit:
        assert isinstance(result, Event) and len(result.features) == count
    else:
        assert isinstance(result, Invalid) and result.kind == TOO_MANY_FEATURES
        assert result.reason == f"{count} features exceed the limit of {limit}"


# ------------------------------------------------------------------------------------------ unicode


@pytest.mark.parametrize("segment", UNICODE_SEGMENTS)
def test_unicode_segments_decode_exactly(segment: str) -> None:
    result = decode_one(0, enc(good(segment=segment)))
    assert isinstance(result, Event) and result.segment == segment
    assert decode_one(0, segment.encode()).kind == NOT_JSON  # the bare name is not an event


def test_nfc_and_nfd_segments_stay_distinct() -> None:
    nfc, nfd = decode_one(0, enc(good(segment="\u00e9"))), decode_one(1, enc(good(segment="e\u0301")))
    assert nfc.segment != nfd.segment


def test_lone_surrogates_and_invalid_utf8_are_not_json() -> None:
    for raw in (b'{"id":"\\ud800","model":"m","segment":"s","features":{}}',
                b'{"id":"e","model":"m","segment":"\xed\xa0\x80","features":{}}',
                b'{"id":"e","model":"m","segment":"\xff","features":{}}'):
        result = decode_one(0, raw)
        assert isinstance(result, Invalid) and result.kind == NOT_JSON, raw
        assert raw_text(raw).encode("utf-8")  # the dead letter can still quote it


# ------------------------------------------------------------------------------------------ byte fuzzing

SEED_EVENTS = [enc(good()), enc(good("e-2", "São Paulo", a=1.5, b=-3, c=None)), enc(good("東", "東京", x=1e300))]


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A valid event with random byte edits: flips, deletions, insertions, truncation."""
    data = bytearray(draw(st.sampled_from(SEED_EVENTS)))
    for _ in range(draw(st.integers(1, 6))):
        op = draw(st.sampled_from(["flip", "delete", "insert", "truncate", "splice"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if op == "flip" and data:
            data[at] ^= draw(st.integers(1, 255))
        elif op == "delete" and data:
            del data[at: at + draw(st.integers(1, 8))]
        elif op == "insert":
            data[at:at] = draw(st.sampled_from([b"[", b"{", b'"', b"NaN", b"1e999", b"\\u0000", b"\xff",
                                                b"\xf0\x9f\x9a\x95", b"null", b",", b":"]))
        elif op == "truncate":
            del data[at:]
        elif op == "splice":
            data[at:at] = draw(st.sampled_from(SEED_EVENTS))
    return bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated())
def test_mutated_events_never_raise(raw: bytes) -> None:
    check(decode_one(0, raw))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=0, max_size=4_000))
def test_random_bytes_never_raise(raw: bytes) -> None:
    check(decode_one(0, raw))


# ------------------------------------------------------------------------ a hostile batch through the scorer


@cache
def weights() -> ModelWeights:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 2))
    return export(LogisticRegression().fit(X, (X[:, 0] > 0).astype(int)), feature_names=["a", "b"])


@dataclass
class Msg:
    key: bytes | None
    value: bytes | None
    topic: str = "events"
    partition: int = 0
    offset: int = 0


def scorer_for(segments: list[str]) -> BatchScorer:
    """A scorer whose cache holds one built model per segment (state set directly; no store involved)."""
    cache_ = ModelCache(None, models=("m",), fallback_segment=None)
    rows = {}
    for seg in segments:
        loaded = prepare("m", seg, 1, weights())
        cache_._install(("m", seg), assemble("m", seg, Target(1), {1: loaded}))
        rows[seg] = type("Row", (), {"version": 1, "canary_version": None, "canary_fraction": None,
                                     "shadow_version": None})()
    cache_._rows["m"] = rows
    return BatchScorer(cache_, Limits(max_features=16))


hostile = st.one_of(
    mutated(),
    st.binary(max_size=200),
    st.integers(0, 1_100).map(lambda d: deep("feature value", d)),
    st.sampled_from([b"NaN", b'{"id":"n","model":"m","segment":"A","features":{"a":Infinity,"b":1}}',
                     enc(good("big", "A", **{f"f{i}": i for i in range(40)})), enc(good("t", "A", a="1", b=2)),
                     enc(good("u", "nowhere", a=1, b=2)), enc(good("w", "A", a=None, b=1)), None, b""]),
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.booleans(), st.sampled_from(UNICODE_SEGMENTS + ["A"]), hostile), min_size=1,
                max_size=30))
def test_hostile_batch_every_message_gets_exactly_one_output(items: list[tuple[bool, str, bytes | None]]) -> None:
    scorer = scorer_for(UNICODE_SEGMENTS + ["A"])
    values: list[bytes | None] = []
    good_ids: dict[int, tuple[str, str]] = {}
    for i, (is_good, segment, bad) in enumerate(items):
        if is_good:
            values.append(enc(good(f"g-{i}", segment, a=float(i), b=-1.0)))
            good_ids[i] = (f"g-{i}", segment)
        else:
            values.append(bad)
    records = [Msg(None, v, offset=i) for i, v in enumerate(values)]
    batch = Batch(records)
    scorer.decode(batch)
    asyncio.run(scorer.resolve(batch))
    result = scorer.score(batch)

    outputs = [i for _, _, i in result.predictions] + [i for _, _, i in result.dead_letters]
    assert sorted(outputs) == list(range(len(values))), "each message has exactly one output"
    predicted = {i: orjson.loads(v) for _, v, i in result.predictions}
    for i, (event_id, segment) in good_ids.items():
        assert predicted[i]["id"] == event_id and predicted[i]["segment"] == segment and predicted[i]["version"] == 1
    for _key, value, i in result.dead_letters:
        letter = orjson.loads(value)
        assert set(letter) == {"error", "raw", "topic", "partition", "offset"} and letter["offset"] == i
        assert letter["error"] and len(letter["error"]) <= MAX_REASON
        assert len(value) < 80_000  # bounded: a short reason plus at most max_raw_chars of the message
