"""Where a batch's outputs go: predictions (with the input's partition when keyed like the input), dead letters,
then hook messages per topic, each as (key, value, partition or None) for the sink."""

from __future__ import annotations

from dataclasses import dataclass

from scorer.stream.batch import Batch, BatchResult


@dataclass
class Record:
    key: bytes | None
    value: bytes
    partition: int


def batch() -> Batch:
    b = Batch(records=[Record(b"e-0", b"{}", 3), Record(b"other", b"{}", 1), Record(None, b"x", 2)])
    b.result = BatchResult(predictions=[(b"e-0", b"p0", 0), (b"e-1", b"p1", 1)],
                           dead_letters=[(None, b"d2", 2)],
                           extra=[("shadow", b"e-0", b"s0"), ("drift", None, b"w"), ("shadow", b"e-1", b"s1")])
    return b


def test_copartitioned_predictions_keep_the_inputs_partition_when_keyed_alike() -> None:
    assert batch().outgoing("out", "dlq", copartitioned=True) == [
        ("out", [(b"e-0", b"p0", 3), (b"e-1", b"p1", None)]),  # the second input is keyed otherwise: hashed
        ("dlq", [(None, b"d2", None)]),
        ("shadow", [(b"e-0", b"s0", None), (b"e-1", b"s1", None)]),
        ("drift", [(None, b"w", None)]),
    ]


def test_otherwise_every_partition_is_left_to_the_sink() -> None:
    topics = batch().outgoing("out", "out", copartitioned=False)
    assert topics[:2] == [("out", [(b"e-0", b"p0", None), (b"e-1", b"p1", None)]), ("out", [(None, b"d2", None)])]


def test_a_batch_without_outputs_sends_nothing() -> None:
    assert Batch(records=[]).outgoing("out", "dlq", copartitioned=True) == []
