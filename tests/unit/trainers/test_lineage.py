"""The training-data fingerprint: exact, order-sensitive, and the time range of the rows."""

from __future__ import annotations

import numpy as np

from trainers.lineage import fingerprint


def test_fingerprint_is_exact_and_changes_with_any_row() -> None:
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(50, 3)), rng.integers(0, 2, size=50)
    first = fingerprint(X, y)
    assert first == fingerprint(X.copy(), y.copy())
    assert first["rows"] == 50 and len(first["sha256"]) == 64 and first["scorer_version"]
    changed = X.copy()
    changed[17, 2] = np.nextafter(changed[17, 2], np.inf)
    assert fingerprint(changed, y)["sha256"] != first["sha256"]
    assert fingerprint(X[::-1], y[::-1])["sha256"] != first["sha256"]  # order is part of the data
    assert fingerprint(X, y.astype(str))["sha256"] != first["sha256"]  # text labels hash as text
    assert fingerprint(X[:, :2], y)["sha256"] != fingerprint(X[:, :2].reshape(-1, 1)[:50], y)["sha256"]


def test_time_range_ignores_unknown_times() -> None:
    X, y = np.zeros((3, 1)), np.zeros(3)
    lineage = fingerprint(X, y, np.array([1_767_225_600.0, np.nan, 1_767_312_000.0]))
    assert (lineage["time_from"], lineage["time_to"]) == ("2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z")
    assert "time_from" not in fingerprint(X, y, np.array([np.nan] * 3))


def test_categorical_rows_hash_by_type_and_text() -> None:
    X = np.empty((3, 2), dtype=object)
    X[:, 0] = [1.5, np.nan, 2.0]
    X[:, 1] = ["red", "blue", np.nan]
    y = np.array([0, 1, 0])
    first = fingerprint(X, y)
    assert first == fingerprint(X.copy(), y) and first["rows"] == 3
    other = X.copy()
    other[0, 1] = "Red"
    assert fingerprint(other, y)["sha256"] != first["sha256"]
    as_int = X.copy()
    as_int[1, 1] = 7  # an integer category differs from its text
    as_text = X.copy()
    as_text[1, 1] = "7"
    assert fingerprint(as_int, y)["sha256"] != fingerprint(as_text, y)["sha256"]
