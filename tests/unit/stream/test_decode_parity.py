"""The batch decoder's fast path (one msgspec call per event) agrees exactly with the orjson path it replaces.

:func:`decode_one` is the reference: orjson, then the checks field by field. Whatever :func:`decode_batch` makes
of a message (an event with its values and their types, or a dead letter's reason) must be what ``decode_one``
makes of it, for well-formed, hostile and random messages alike.
"""

from __future__ import annotations

import msgspec
import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from scorer.stream.events import Event, Invalid, Limits, decode_batch, decode_one

LIMITS = Limits(max_id_chars=8, max_name_chars=6, max_features=5, max_message_bytes=4096)


def described(result: Event | Invalid) -> tuple:
    """What a decoded message is, with each feature value's type (1 and 1.0 must not be confused)."""
    if isinstance(result, Invalid):
        return ("invalid", result.index, result.reason, result.kind)
    return ("event", *msgspec.structs.astuple(result)[:3],
            sorted((name, type(value).__name__, value) for name, value in result.features.items()),
            result.index, result.text)


def assert_parity(values: list[bytes | None], limits: Limits = LIMITS) -> None:
    events, invalid = decode_batch(values, limits)
    decoded = {result.index: described(result) for result in [*events, *invalid]}
    assert len(decoded) == len(values) == len(events) + len(invalid)
    got = [decoded[i] for i in range(len(values))]
    want = [described(decode_one(i, raw, limits)) for i, raw in enumerate(values)]
    assert got == want


EDGES = [
    b'{"id":"e","model":"m","segment":"s","features":{"a":1,"b":1.0,"c":null,"d":-0,"e":-0.0}}',
    b'{"id":"e","model":"m","segment":"s","features":{"a":9223372036854775807,"b":-9223372036854775808}}',
    b'{"id":"e","model":"m","segment":"s","features":{"a":18446744073709551616}}',  # beyond int64: orjson's float
    b'{"id":"e","model":"m","segment":"s","features":{"a":1e308,"b":1E-320}}',
    b'{"id":"e","model":"m","segment":"s","features":{"a":1e400}}',
    b'{"id":"e","model":"m","segment":"s","features":{"a":NaN}}',
    b'{"id":"e","model":"m","segment":"s","features":{"a":true}}',
    b'{"id":"e","model":"m","segment":"s","features":{"a":"UA","b":2}}',  # a category: the slow path's event
    b'{"id":"e","model":"m","segment":"s","features":{"a":[1]}}',
    b'{"id":"e","model":"m","segment":"s","features":{"a":1,"a":2}}',
    b'{"id":"e","id":"f","model":"m","segment":"s","features":{}}',
    b'{"id":"e","model":"m","segment":"s","features":{"a":1,"b":2,"c":3,"d":4,"e":5,"f":6}}',  # 6 > 5
    b'{"id":"123456789","model":"m","segment":"s","features":{}}',  # id of 9 > 8
    b'{"id":"\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9\xc3\xa9","model":"m","segment":"s","features":{}}',
    b'{"id":"","model":"m","segment":"s","features":{}}',
    b'{"id":1,"model":"m","segment":"s","features":{}}',
    b'{"model":"m","segment":"s","features":{}}',
    b'{"id":"e","model":"m","segment":"s"}',
    b'{"id":"e","model":"m","segment":"s","features":[]}',
    b'{"id":"e","model":"m","segment":"s","features":{},"index":7,"text":"x","extra":{"deep":[[[1]]]}}',
    b'{"id":"e","model":"m","segment":"s","features":{},"__scorer_index":99,"__scorer_text":true}',
    b'{"id":"\\ud800","model":"m","segment":"s","features":{}}',
    b'{"id":"e","model":"m","segment":"s","features":{"\xff":1}}',
    b'\xef\xbb\xbf{"id":"e","model":"m","segment":"s","features":{}}',
    b' {"id":"e","model":"m","segment":"s","features":{}}\n',
    b'{"id":"e","model":"m","segment":"s","features":{}} x',
    b'[1, 2]', b'"text"', b'null', b'', b'{', b"not json", None,
    b'{"x":' + b"[" * 5000 + b"]" * 5000 + b',"id":"e","model":"m","segment":"s","features":{}}',
    b'{"id":"e","model":"m","segment":"s","features":{}}' + b" " * 5000,  # over max_message_bytes
]


def test_edge_cases_decode_as_orjson_does() -> None:
    assert_parity(EDGES)


def test_default_limits_too() -> None:
    assert_parity(EDGES, Limits())


def test_a_common_event_keeps_its_values_types_and_index() -> None:
    values = [orjson.dumps({"id": f"e{i}", "model": "m", "segment": "s", "features": {"a": i, "b": i / 2, "c": None}})
              for i in range(3)]
    events, invalid = decode_batch(values, LIMITS)
    assert not invalid
    assert [(e.index, e.id, e.features, e.text) for e in events] == [
        (i, f"e{i}", {"a": i, "b": i / 2, "c": None}, False) for i in range(3)]
    assert [type(e.features["a"]) for e in events] == [int] * 3


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**64 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8)
names = st.one_of(st.text(max_size=10), json_values)
events = st.fixed_dictionaries(
    {}, optional={"id": names, "model": names, "segment": names,
                  "features": st.dictionaries(st.text(max_size=4), json_values, max_size=7) | json_values,
                  "index": json_values, "extra": json_values})


@settings(max_examples=400, deadline=None)
@given(st.lists(events, min_size=1, max_size=6))
def test_random_events_decode_as_orjson_does(batch: list[dict]) -> None:
    assert_parity([orjson.dumps(event) for event in batch])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=80), min_size=1, max_size=4))
def test_random_bytes_decode_as_orjson_does(batch: list[bytes]) -> None:
    assert_parity(batch)
