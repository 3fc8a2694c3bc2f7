"""Corrupt and adversarial stored data: each case is refused with a specific error, nothing allocates without bound.

Rows are damaged by hand with raw CQL, as a disk fault, a bad restore or a hostile writer with table access
would. Hostile blobs get a *matching* checksum (whoever can write chunks can write the version row too), so
the decoder itself must refuse them, before it sizes anything by what they claim. Memory is measured with
tracemalloc: a blob that claims gigabytes must cost kilobytes.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
import tracemalloc
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
from cassandra.cluster import Session
from support.store import logistic, weights_for_arch

from scorer.config import Settings
from scorer.errors import ChecksumMismatch, InvalidWeights, NotFound, StoreError
from scorer.models import ModelWeights, build
from scorer.store import CassandraModelStore

MAGIC_AND_LENGTH = struct.Struct("<8sI")
SMALL = 16 * 1024 * 1024
"""Peak bytes any refusal here may allocate: a claimed size of gigabytes must never be honoured."""


@pytest.fixture(scope="module")
def store(ks: Settings) -> Iterator[CassandraModelStore]:
    # The smallest chunks allowed, so that a 300-feature logistic model spans several chunk rows.
    with CassandraModelStore(ks, chunk_size=1024) as opened:
        yield opened


@pytest.fixture
def cql(cassandra: Session, ks: Settings) -> Callable[..., Any]:
    """Run one statement against the module keyspace ({ks} is filled in), parameters bound by the driver."""
    def run(statement: str, params: tuple[Any, ...] = ()) -> Any:
        return cassandra.execute(statement.format(ks=ks.keyspace), params)
    return run


def peak_bytes(call: Callable[[], Any]) -> tuple[Any, int]:
    """(result or raised exception, peak traced allocation while ``call`` ran)."""
    tracemalloc.start()
    try:
        try:
            outcome: Any = call()
        except Exception as exc:  # noqa: BLE001 - the caller asserts on it
            outcome = exc
        return outcome, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def forge(weights: ModelWeights, mutate: Callable[[dict[str, Any]], None], body: bytes | None = None) -> bytes:
    """A blob in the store's format whose header says what ``mutate`` makes it say (framing kept valid)."""
    blob = weights.to_bytes()
    magic, head_len = MAGIC_AND_LENGTH.unpack_from(blob, 0)
    header = json.loads(blob[MAGIC_AND_LENGTH.size:MAGIC_AND_LENGTH.size + head_len])
    mutate(header)
    encoded = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    data = blob[MAGIC_AND_LENGTH.size + head_len:] if body is None else body
    return MAGIC_AND_LENGTH.pack(magic, len(encoded)) + encoded + data


def wide(seed: int) -> ModelWeights:
    return logistic(seed, 300)


def store_raw(cql: Callable[..., Any], model: str, segment: str, version: int, blob: bytes, arch: str,
              chunk_size: int = 1024) -> None:
    """What a hostile writer with table access does: chunks plus a complete version row with a matching sha256."""
    chunks = [blob[i:i + chunk_size] for i in range(0, len(blob), chunk_size)] or [b""]
    for number, chunk in enumerate(chunks):
        cql("INSERT INTO {ks}.model_chunks (model, segment, version, chunk, data) VALUES (%s, %s, %s, %s, %s)",
            (model, segment, version, number, chunk))
    cql("INSERT INTO {ks}.model_versions (model, segment, version, arch, feature_names, size_bytes, n_chunks, "
        "chunk_size, checksum, created_at, author, status, metadata, metrics, stats) VALUES "
        "(%s, %s, %s, %s, %s, %s, %s, %s, %s, toTimestamp(now()), 'mallory', 'complete', '{{}}', '{{}}', '{{}}')",
        (model, segment, version, arch, [], len(blob), len(chunks), chunk_size, hashlib.sha256(blob).hexdigest()))
    cql("UPDATE {ks}.active_models SET version = %s WHERE model = %s AND segment = %s", (version, model, segment))


# --------------------------------------------------------------------------------------------- chunks


def test_altered_chunk_is_refused_and_other_keys_still_load(store: CassandraModelStore, cql: Callable[..., Any],
                                                            model: str) -> None:
    good, bad = wide(1), wide(2)
    store.publish(model, "OK", good)
    version = store.publish(model, "BAD", bad, activate=True)
    row = cql("SELECT data FROM {ks}.model_chunks WHERE model = %s AND segment = 'BAD' AND version = %s "
              "AND chunk = 1", (model, version)).one()
    altered = bytes([row.data[0] ^ 0x40]) + row.data[1:]
    cql("UPDATE {ks}.model_chunks SET data = %s WHERE model = %s AND segment = 'BAD' AND version = %s AND chunk = 1",
        (altered, model, version))
    with pytest.raises(ChecksumMismatch, match=rf"^{model}/BAD version {version}: stored weights hash to sha256 "):
        store.load(model, "BAD")
    results = store.load_many([(model, "OK", 1), (model, "BAD", version)])
    assert results[(model, "OK", 1)] == good
    assert isinstance(results[(model, "BAD", version)], ChecksumMismatch)


def test_truncated_chunk_is_refused(store: CassandraModelStore, cql: Callable[..., Any], model: str) -> None:
    weights = wide(3)
    version = store.publish(model, "ORD", weights)
    size = len(weights.to_bytes())
    row = cql("SELECT data FROM {ks}.model_chunks WHERE model = %s AND segment = 'ORD' AND version = %s AND "
              "chunk = 0", (model, version)).one()
    cql("UPDATE {ks}.model_chunks SET data = %s WHERE model = %s AND segment = 'ORD' AND version = %s AND chunk = 0",
        (row.data[:100], model, version))
    with pytest.raises(ChecksumMismatch, match=rf"stored weights are {size - len(row.data) + 100} bytes, "
                                               rf"published {size}$"):
        store.load(model, "ORD", version)


def test_missing_and_extra_chunks_are_refused(store: CassandraModelStore, cql: Callable[..., Any], model: str) -> None:
    version = store.publish(model, "ORD", wide(4))
    n_chunks = store.version_info(model, "ORD", version).n_chunks
    assert n_chunks >= 3
    where = "WHERE model = %s AND segment = 'ORD' AND version = %s AND chunk = %s"
    cql("INSERT INTO {ks}.model_chunks (model, segment, version, chunk, data) VALUES (%s, 'ORD', %s, %s, 0x00)",
        (model, version, n_chunks))
    with pytest.raises(ChecksumMismatch, match=rf"found more \(unexpected chunk {n_chunks}\)"):
        store.load(model, "ORD", version)
    cql("DELETE FROM {ks}.model_chunks " + where, (model, version, n_chunks))
    cql("DELETE FROM {ks}.model_chunks " + where, (model, version, 1))
    with pytest.raises(ChecksumMismatch, match=rf"expected chunks 0..{n_chunks - 1}, found {n_chunks - 1} "
                                               r"\(missing \[1\]\)"):
        store.load(model, "ORD", version)


# ---------------------------------------------------------------------------------------- version rows


def test_version_row_whose_checksum_does_not_match(store: CassandraModelStore, cql: Callable[..., Any],
                                                   model: str) -> None:
    version = store.publish(model, "ORD", wide(5))
    other = hashlib.sha256(b"some other weights").hexdigest()
    cql("UPDATE {ks}.model_versions SET checksum = %s WHERE model = %s AND segment = 'ORD' AND version = %s",
        (other, model, version))
    with pytest.raises(ChecksumMismatch, match=rf"published {other[:16]}\.\.\.$"):
        store.load(model, "ORD", version)
    cql("UPDATE {ks}.model_versions SET checksum = 'not-a-digest' WHERE model = %s AND segment = 'ORD' "
        "AND version = %s", (model, version))
    with pytest.raises(ChecksumMismatch, match="version row has checksum 'not-a-digest'; expected 64 hex digits"):
        store.load(model, "ORD", version)


@pytest.mark.parametrize(("column", "value", "message"), [
    ("n_chunks", 2**31 - 1, r"version row has n_chunks 2147483647 for \d+ bytes$"),
    ("n_chunks", 2, r"expected chunks 0\.\.1, found more \(unexpected chunk 2\)$"),
    ("size_bytes", 2**62, rf"stored weights are \d+ bytes, published {2**62}$"),
    ("size_bytes", 10, "stored chunks exceed the 10 bytes published"),
    ("n_chunks", -5, "version row has n_chunks -5; expected a whole number >= 0"),
    ("n_chunks", None, "version row has n_chunks None; expected a whole number >= 0"),
])
def test_version_row_with_absurd_sizes_allocates_nothing(store: CassandraModelStore, cql: Callable[..., Any],
                                                         model: str, column: str, value: int | None,
                                                         message: str) -> None:
    version = store.publish(model, "ORD", wide(6))
    cql(f"UPDATE {{ks}}.model_versions SET {column} = %s WHERE model = %s AND segment = 'ORD' AND version = %s",
        (value, model, version))
    outcome, peak = peak_bytes(lambda: store.load(model, "ORD", version))
    assert isinstance(outcome, ChecksumMismatch), outcome
    assert str(outcome).startswith(f"{model}/ORD version {version}: ")
    assert re.search(message, str(outcome)), str(outcome)
    assert peak < SMALL, f"refusing a row claiming {column}={value} allocated {peak} bytes"


def test_active_pointer_to_a_missing_version(store: CassandraModelStore, cql: Callable[..., Any], model: str) -> None:
    store.publish(model, "ORD", wide(7), activate=True)
    cql("UPDATE {ks}.active_models SET version = 99, canary_version = 98, canary_fraction = 0.1 "
        "WHERE model = %s AND segment = 'ORD'", (model,))
    pointer = store.active(model)["ORD"]  # the pointer is reported as it is: the truth, not a guess
    assert (pointer.version, pointer.canary_version) == (99, 98)
    with pytest.raises(NotFound, match=rf"^{model}/ORD version 99 does not exist or is not complete$"):
        store.load(model, "ORD")
    results = store.load_many([(model, "ORD", 99), (model, "ORD", 98), (model, "ORD", 1)])
    assert isinstance(results[(model, "ORD", 99)], NotFound) and isinstance(results[(model, "ORD", 98)], NotFound)
    assert isinstance(results[(model, "ORD", 1)], ModelWeights)
    with pytest.raises(NotFound, match="version 99"):  # rollback/activate never land on a missing version
        store.activate(model, "ORD", 99)


def test_corrupt_json_in_a_version_row_is_a_store_error(store: CassandraModelStore, cql: Callable[..., Any],
                                                        model: str) -> None:
    version = store.publish(model, "ORD", wide(8))
    cql("UPDATE {ks}.model_versions SET metadata = '{{not json' WHERE model = %s AND segment = 'ORD' "
        "AND version = %s", (model, version))
    with pytest.raises(StoreError, match=rf"{model}/ORD version {version}: .*metadata"):
        store.versions(model, "ORD")


# ------------------------------------------------------------------------------------- hostile blobs


def test_blob_claiming_a_billion_node_array_is_refused_before_allocating(store: CassandraModelStore,
                                                                         cql: Callable[..., Any],
                                                                         model: str) -> None:
    forest = weights_for_arch("forest")

    def billion_nodes(header: dict[str, Any]) -> None:
        for entry in header["arrays"]:
            if entry["name"] == "threshold":
                entry["shape"] = [1_000_000_000]
                entry["nbytes"] = 8_000_000_000

    store_raw(cql, model, "ORD", 1, forge(forest, billion_nodes), "forest")
    outcome, peak = peak_bytes(lambda: store.load(model, "ORD"))
    assert isinstance(outcome, InvalidWeights), outcome
    assert str(outcome).startswith(f"{model}/ORD version 1: stored weights do not decode: ")
    assert re.search(r"array 'threshold' claims bytes (\d+)\.\.(\d+) but the data section has \d+$", str(outcome))
    assert peak < SMALL, f"decoding a blob claiming 8 GB allocated {peak} bytes"


def test_tree_offsets_claiming_a_billion_nodes_are_refused_by_build(store: CassandraModelStore,
                                                                    cql: Callable[..., Any], model: str) -> None:
    """Framing fine, meaning absurd: offsets say one tree of a billion nodes over arrays of a few dozen."""
    forest = weights_for_arch("forest")
    arrays = dict(forest.arrays)
    arrays["offsets"] = np.array([0, 1_000_000_000], dtype=np.int64)
    hostile = ModelWeights(forest.arch, forest.feature_names, arrays, forest.classes, forest.metadata)
    store_raw(cql, model, "ORD", 1, hostile.to_bytes(), "forest")
    loaded = store.load(model, "ORD")  # the bytes are what was written: the checksum cannot catch this
    outcome, peak = peak_bytes(lambda: build(loaded))
    assert isinstance(outcome, InvalidWeights), outcome
    assert "1000000000" in str(outcome)
    assert peak < SMALL, f"validating a tree claiming 1e9 nodes allocated {peak} bytes"


def test_matrix_shape_that_does_not_fit_the_blob(store: CassandraModelStore, cql: Callable[..., Any],
                                                 model: str) -> None:
    weights = wide(9)
    name = next(entry for entry in json.loads(
        weights.to_bytes()[12:12 + MAGIC_AND_LENGTH.unpack_from(weights.to_bytes(), 0)[1]])["arrays"]
        if entry["shape"] and len(entry["shape"]) >= 1)["name"]

    def bigger(header: dict[str, Any]) -> None:
        for entry in header["arrays"]:
            if entry["name"] == name:
                entry["shape"] = [4096, 4096]  # 128 MiB of float64 claimed over a few bytes

    store_raw(cql, model, "A", 1, forge(weights, bigger), weights.arch)
    outcome, peak = peak_bytes(lambda: store.load(model, "A"))
    assert isinstance(outcome, InvalidWeights) and f"{name!r}" in str(outcome), outcome
    assert peak < SMALL

    # Consistent framing, inconsistent model: a coefficient row too short for the feature names.
    arrays = {key: np.asarray(value)[..., :-1] if np.asarray(value).ndim else value
              for key, value in weights.arrays.items()}
    short = ModelWeights(weights.arch, weights.feature_names, arrays, weights.classes, weights.metadata)
    store_raw(cql, model, "B", 1, short.to_bytes(), weights.arch)
    with pytest.raises(InvalidWeights):
        build(store.load(model, "B"))


def test_random_bytes_with_a_matching_checksum_are_refused(store: CassandraModelStore, cql: Callable[..., Any],
                                                           model: str) -> None:
    rng = np.random.default_rng(0)
    for index, blob in enumerate([rng.bytes(3000), b"SCORERW1" + struct.pack("<I", 2**31) + rng.bytes(64), b""]):
        store_raw(cql, model, f"S{index}", 1, blob, "logistic")
        outcome, peak = peak_bytes(lambda seg=f"S{index}": store.load(model, seg))
        assert isinstance(outcome, InvalidWeights), outcome
        assert str(outcome).startswith(f"{model}/S{index} version 1: stored weights do not decode: ")
        assert peak < SMALL
