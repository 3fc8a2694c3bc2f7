"""The ModelWeights codec: deterministic round trips, and corrupt or absurd blobs refused before allocating."""

from __future__ import annotations

import hashlib
import json
import struct
import zipfile
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from scorer.errors import InvalidWeights
from scorer.models import ModelWeights
from scorer.models.weights import MAGIC


def sample(**over) -> ModelWeights:
    fields = dict(
        arch="linear",
        feature_names=("a", "b", "c"),
        arrays={
            "coef": np.array([1.5, -2.0, 3.25]),
            "intercept": np.array([0.5]),
            "idx": np.array([[1, 2], [3, 4]], dtype=np.int32),
            "flags": np.array([True, False, True]),
            "small": np.arange(5, dtype=np.int8),
        },
        classes=None,
        metadata={"estimator": "LinearRegression", "preprocess": [], "nested": {"x": [1, 2.5, "s", None]}},
    )
    fields.update(over)
    return ModelWeights(**fields)


def split(blob: bytes) -> tuple[dict, bytes]:
    magic, n = struct.unpack_from("<8sI", blob, 0)
    assert magic == MAGIC
    return json.loads(blob[12 : 12 + n]), blob[12 + n :]


def join(header: dict, data: bytes) -> bytes:
    head = json.dumps(header, sort_keys=True, separators=(",", ":")).encode()
    return struct.pack("<8sI", MAGIC, len(head)) + head + data


def test_bytes_round_trip_is_exact_and_deterministic() -> None:
    w = sample()
    blob = w.to_bytes()
    assert blob == sample().to_bytes()
    back = ModelWeights.from_bytes(blob)
    assert back == w
    assert back.to_bytes() == blob
    assert back.checksum() == hashlib.sha256(blob).hexdigest() == w.checksum()
    for name, arr in w.arrays.items():
        assert back.arrays[name].dtype == arr.dtype
        assert back.arrays[name].shape == arr.shape
        np.testing.assert_array_equal(back.arrays[name], arr)
    assert dict(back.metadata) == dict(w.metadata)


def test_array_insertion_order_does_not_change_bytes() -> None:
    arrays = dict(sample().arrays)
    reordered = dict(reversed(list(arrays.items())))
    assert sample(arrays=reordered).to_bytes() == sample().to_bytes()


def test_changed_value_changes_checksum() -> None:
    arrays = dict(sample().arrays)
    arrays["coef"] = np.array([1.5, -2.0, 3.2500000000000004])
    assert sample(arrays=arrays).checksum() != sample().checksum()


@pytest.mark.parametrize(
    "classes",
    [(0, 1), (1, 2, 3), ("no", "yes"), (-1.5, 2.0), (False, True), (np.int64(3), np.int64(7)), (np.str_("a"), "b")],
)
def test_classes_keep_their_types(classes: tuple, tmp_path) -> None:
    w = sample(classes=classes)
    expected = tuple(c.item() if isinstance(c, np.generic) else c for c in classes)
    for back in (ModelWeights.from_bytes(w.to_bytes()), _saved(w, tmp_path)):
        assert back.classes == expected
        assert [type(c) for c in back.classes] == [type(c) for c in expected]


def _saved(w: ModelWeights, tmp_path) -> ModelWeights:
    path = tmp_path / "w.npz"
    w.save(path)
    return ModelWeights.load(path)


def test_npz_round_trip_bit_identical(tmp_path) -> None:
    w = sample(classes=("x", "y"))
    back = _saved(w, tmp_path)
    assert back == w
    assert back.checksum() == w.checksum()
    # plain numpy can read it with pickling disabled
    with np.load(tmp_path / "w.npz", allow_pickle=False) as npz:
        np.testing.assert_array_equal(npz["coef"], w.arrays["coef"])


def test_arrays_are_private_read_only_copies() -> None:
    coef = np.array([1.0, 2.0, 3.0])
    w = sample(arrays={"coef": coef})
    coef[0] = 99.0
    assert w.arrays["coef"][0] == 1.0
    with pytest.raises(ValueError):
        w.arrays["coef"][0] = 5.0
    with pytest.raises(TypeError):
        w.arrays["new"] = coef  # type: ignore[index]


def test_big_endian_and_fortran_inputs_are_normalised() -> None:
    a = np.asfortranarray(np.arange(6, dtype=">f8").reshape(2, 3))
    w = sample(arrays={"m": a})
    assert w.arrays["m"].dtype == np.dtype("<f8")
    assert w.arrays["m"].flags.c_contiguous
    assert ModelWeights.from_bytes(w.to_bytes()) == sample(arrays={"m": np.arange(6.0).reshape(2, 3)})


@pytest.mark.parametrize(
    "arrays, match",
    [
        ({"s": np.array(["a", "b"])}, "dtype"),
        ({"o": np.array([object()], dtype=object)}, "dtype"),
        ({"c": np.array([1j])}, "dtype"),
        ({"bad name": np.zeros(2)}, "name"),
        ({"../x": np.zeros(2)}, "name"),
    ],
)
def test_construction_refuses_bad_arrays(arrays: dict, match: str) -> None:
    with pytest.raises(InvalidWeights, match=match):
        sample(arrays=arrays)


@pytest.mark.parametrize(
    "over, match",
    [
        ({"arch": ""}, "arch"),
        ({"feature_names": "abc"}, "feature_names"),
        ({"feature_names": ("a", 1)}, "feature_names"),
        ({"classes": (1, object())}, "classes"),
        ({"classes": (1.0, float("nan"))}, "finite"),
        ({"metadata": {"x": float("nan")}}, "metadata"),
        ({"metadata": {"x": object()}}, "metadata"),
    ],
)
def test_construction_refuses_bad_fields(over: dict, match: str) -> None:
    with pytest.raises(InvalidWeights, match=match):
        sample(**over)


# -- corrupt blobs ------------------------------------------------------------------------------------
def test_refuses_wrong_magic_and_truncation() -> None:
    blob = sample().to_bytes()
    with pytest.raises(InvalidWeights, match="does not start with"):
        ModelWeights.from_bytes(b"NOTMAGIC" + blob[8:])
    with pytest.raises(InvalidWeights, match="too short"):
        ModelWeights.from_bytes(blob[:5])
    for cut in (13, len(blob) // 2, len(blob) - 1):
        with pytest.raises(InvalidWeights):
            ModelWeights.from_bytes(blob[:cut])
    with pytest.raises(InvalidWeights, match="accounts for"):
        ModelWeights.from_bytes(blob + b"\0" * 8)
    with pytest.raises(InvalidWeights, match="must be bytes"):
        ModelWeights.from_bytes("text")  # type: ignore[arg-type]


def test_refuses_header_length_beyond_blob() -> None:
    blob = sample().to_bytes()
    bad = struct.pack("<8sI", MAGIC, 2**32 - 1) + blob[12:]
    with pytest.raises(InvalidWeights, match="header claims"):
        ModelWeights.from_bytes(bad)


def test_refuses_a_billion_nodes_without_allocating() -> None:
    header, data = split(sample().to_bytes())
    entry = header["arrays"][0]
    entry["shape"] = [10**9]
    entry["nbytes"] = 10**9 * 8
    with pytest.raises(InvalidWeights, match="claims bytes"):
        ModelWeights.from_bytes(join(header, data))


def test_refuses_shape_that_does_not_match_nbytes() -> None:
    header, data = split(sample().to_bytes())
    coef = next(e for e in header["arrays"] if e["name"] == "coef")
    coef["shape"] = [10**6, 10**6]
    with pytest.raises(InvalidWeights, match="needs"):
        ModelWeights.from_bytes(join(header, data))


@pytest.mark.parametrize(
    "mutate, match",
    [
        (lambda h: h["arrays"][0].update(dtype="object"), "dtype"),
        (lambda h: h["arrays"][0].update(dtype="complex128"), "dtype"),
        (lambda h: h["arrays"][0].update(shape=[-1]), "shape"),
        (lambda h: h["arrays"][0].update(shape=[1.5]), "shape"),
        (lambda h: h["arrays"][0].update(shape="3"), "shape"),
        (lambda h: h["arrays"][0].update(offset=-8), "offset"),
        (lambda h: h["arrays"][1].update(offset=0), "offset"),
        (lambda h: h["arrays"][0].update(nbytes="24"), "nbytes"),
        (lambda h: h["arrays"].reverse(), "sorted"),
        (lambda h: h.update(format=2), "format"),
        (lambda h: h.update(extra=1), "keys"),
        (lambda h: h.pop("arch"), "keys"),
        (lambda h: h.update(feature_names="abc"), "feature_names"),
        (lambda h: h.update(classes="ab"), "classes"),
        (lambda h: h.update(arrays={}), "arrays"),
    ],
)
def test_refuses_corrupt_headers(mutate, match: str) -> None:
    header, data = split(sample().to_bytes())
    mutate(header)
    with pytest.raises(InvalidWeights, match=match):
        ModelWeights.from_bytes(join(header, data))


def test_refuses_non_json_header_and_nonzero_padding() -> None:
    blob = sample().to_bytes()
    _, n = struct.unpack_from("<8sI", blob, 0)
    garbage = blob[:12] + b"{" * n + blob[12 + n :]
    with pytest.raises(InvalidWeights, match="JSON"):
        ModelWeights.from_bytes(garbage)
    header, data = split(blob)
    flags = next(e for e in header["arrays"] if e["name"] == "flags")  # 3 bools, then 5 bytes of padding
    pad = flags["offset"] + flags["nbytes"]
    padded = join(header, data[:pad] + b"\x01" + data[pad + 1 :])
    with pytest.raises(InvalidWeights, match="canonical"):
        ModelWeights.from_bytes(padded)


@settings(max_examples=25, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_crash_otherwise(data: bytes) -> None:
    for blob in (data, MAGIC + data, sample().to_bytes()[:40] + data):
        try:
            ModelWeights.from_bytes(blob)
        except InvalidWeights:
            pass


@settings(max_examples=25, deadline=None)
@given(
    st.dictionaries(
        st.from_regex(r"[a-z][a-z0-9_.]{0,8}", fullmatch=True).filter(lambda name: ".." not in name),
        hnp.arrays(
            st.sampled_from([np.float64, np.float32, np.int64, np.int32, np.int8, np.uint8, np.bool_]),
            hnp.array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=4),
        ),
        max_size=5,
    ),
    st.lists(st.text(min_size=1, max_size=5), min_size=1, max_size=4, unique=True),
)
def test_property_round_trip(arrays: dict, names: list[str]) -> None:
    w = ModelWeights(arch="x", feature_names=tuple(names), arrays=arrays, metadata={"n": len(arrays)})
    blob = w.to_bytes()
    back = ModelWeights.from_bytes(blob)
    assert back.to_bytes() == blob
    assert back.feature_names == tuple(names)
    for k, v in arrays.items():
        np.testing.assert_array_equal(back.arrays[k], v)  # NaN-aware, bit patterns checked via bytes above


# -- npz files ----------------------------------------------------------------------------------------
def test_load_refuses_non_npz_and_foreign_npz(tmp_path) -> None:
    junk = tmp_path / "junk.npz"
    junk.write_bytes(b"not a zip")
    with pytest.raises(InvalidWeights, match="not a readable"):
        ModelWeights.load(junk)
    plain = tmp_path / "plain.npz"
    np.savez(plain, a=np.zeros(3))
    with pytest.raises(InvalidWeights, match="__header__"):
        ModelWeights.load(plain)


def _tampered(tmp_path, coef: Callable[[bytes], bytes] | None = None, extra: dict[str, bytes] | None = None):
    """A saved sample .npz with its coef.npy member rewritten by ``coef`` and ``extra`` members added."""
    path = tmp_path / "w.npz"
    sample().save(path)
    evil = tmp_path / "evil.npz"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(evil, "w") as dst:
        for info in src.infolist():
            data = src.read(info)
            if coef is not None and info.filename == "coef.npy":
                data = coef(data)
            dst.writestr(info, data)
        for name, data in (extra or {}).items():
            dst.writestr(name, data)
    return evil


def test_load_refuses_pickled_member(tmp_path) -> None:
    evil = _tampered(tmp_path, coef=lambda _: _npy_bytes(np.array([{"x": 1}, 2, 3], dtype=object)))
    with pytest.raises(InvalidWeights, match="dtype"):
        ModelWeights.load(evil)
    extra = _tampered(tmp_path, extra={"obj.npy": _npy_bytes(np.array([{"x": 1}], dtype=object))})
    with pytest.raises(InvalidWeights, match="not listed"):
        ModelWeights.load(extra)


def test_load_refuses_shape_larger_than_member(tmp_path) -> None:
    evil = _tampered(tmp_path, coef=lambda data: data.replace(b"(3,)", b"(999999999,)".ljust(4)))
    with pytest.raises(InvalidWeights, match="claims shape|unreadable"):
        ModelWeights.load(evil)


def test_load_refuses_header_mismatch(tmp_path) -> None:
    evil = _tampered(tmp_path, coef=lambda _: _npy_bytes(np.zeros(4)))
    with pytest.raises(InvalidWeights, match="header says"):
        ModelWeights.load(evil)


def _npy_bytes(arr: np.ndarray) -> bytes:
    import io

    buf = io.BytesIO()
    np.lib.format.write_array(buf, arr, allow_pickle=True)
    return buf.getvalue()
