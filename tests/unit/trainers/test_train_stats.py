"""Training statistics: quantile edges, histograms over them, missing values, out-of-range values."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from trainers.stats import bin_counts, bin_shares, column_stats, feature_stats, quantile_edges


def test_edges_are_sorted_unique_training_quantiles(rng: np.random.Generator) -> None:
    values = rng.normal(size=1000)
    edges = quantile_edges(values, 10)
    assert edges.size == 11
    assert np.all(np.diff(edges) > 0)
    assert edges[0] == values.min() and edges[-1] == values.max()
    np.testing.assert_allclose(edges[5], np.median(values))


def test_edges_are_deduplicated_for_heavy_ties() -> None:
    values = np.array([0.0] * 90 + [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0])
    edges = quantile_edges(values, 10)
    assert np.all(np.diff(edges) > 0)
    assert edges[0] == 0.0 and edges[-1] == 10.0
    assert edges.size < 11


def test_histogram_of_training_data_sums_to_one_with_nothing_outside(rng: np.random.Generator) -> None:
    values = rng.exponential(size=500)
    stats = column_stats(values, 10)
    assert sum(stats["hist"]) == pytest.approx(1.0)
    assert stats["below"] == 0.0 and stats["above"] == 0.0
    assert len(stats["hist"]) == len(stats["edges"]) - 1
    # Quantile bins of continuous data hold about a tenth each.
    assert max(stats["hist"]) - min(stats["hist"]) <= 0.01


def test_missing_values_are_counted_apart_from_the_histogram() -> None:
    values = np.array([1.0, 2.0, np.nan, 3.0, np.nan, 4.0, 5.0, 6.0, 7.0, 8.0])
    stats = column_stats(values, 4)
    assert stats["count"] == 8 and stats["n_missing"] == 2
    assert stats["missing_rate"] == pytest.approx(0.2)
    assert sum(stats["hist"]) == pytest.approx(1.0)
    assert stats["mean"] == pytest.approx(4.5)
    assert stats["std"] == pytest.approx(np.std(np.arange(1.0, 9.0)))
    assert stats["min"] == 1.0 and stats["max"] == 8.0


def test_values_beyond_the_edges_land_below_and_above_not_in_the_end_bins() -> None:
    edges = np.array([0.0, 1.0, 2.0])
    counts, below, above, missing = bin_counts(np.array([-5.0, 0.0, 0.5, 1.0, 2.0, 2.5, np.nan]), edges)
    assert counts.tolist() == [2, 2]  # [0, 1) holds 0 and 0.5; the last bin [1, 2] is closed and holds 2
    assert (below, above, missing) == (1, 1, 1)
    shares = bin_shares(np.array([-5.0, 0.5, 1.5, 9.0]), edges)
    assert shares["hist"] == [0.25, 0.25] and shares["below"] == 0.25 and shares["above"] == 0.25
    assert shares["missing_rate"] == 0.0


def test_constant_and_empty_columns() -> None:
    constant = column_stats(np.full(20, 3.5), 10)
    assert constant["edges"] == [3.5, 3.5] and constant["hist"] == [1.0]
    assert constant["std"] == 0.0
    empty = column_stats(np.full(5, np.nan), 10)
    assert empty["edges"] == [] and empty["hist"] == [] and empty["missing_rate"] == 1.0
    assert empty["mean"] is None and empty["count"] == 0
    counts, below, above, missing = bin_counts(np.array([1.0, np.nan]), np.empty(0))
    assert counts.size == 0 and (below, above, missing) == (0, 1, 1)


def test_feature_stats_layout_is_ordered_and_json_able(rng: np.random.Generator) -> None:
    X = rng.normal(size=(100, 3))
    X[::7, 1] = np.nan
    y = rng.integers(0, 2, size=100)
    stats = feature_stats(X, ["b", "a", "c"], n_bins=5, y=y, classes=[0, 1])
    assert list(stats["features"]) == ["b", "a", "c"]
    assert stats["n_rows"] == 100 and stats["n_bins"] == 5 and stats["schema"] == 1
    assert stats["features"]["a"]["n_missing"] == 15
    assert stats["target"]["classes"] == [0, 1]
    assert sum(stats["target"]["shares"]) == pytest.approx(1.0)
    assert json.loads(json.dumps(stats, allow_nan=False)) == stats
    regression = feature_stats(X, ["b", "a", "c"], y=rng.normal(size=100))
    assert set(regression["target"]) == {"n", "mean", "std", "min", "max"}
    with pytest.raises(ValueError, match="3 columns"):
        feature_stats(X[:, :2], ["b", "a", "c"])


@settings(max_examples=60, deadline=None)
@given(
    values=arrays(np.float64, st.integers(1, 60),
                  elements=st.one_of(st.floats(-1e6, 1e6, allow_nan=False), st.just(np.nan))),
    n_bins=st.integers(1, 12),
)
def test_histogram_properties(values: np.ndarray, n_bins: int) -> None:
    stats = column_stats(values, n_bins)
    edges = np.asarray(stats["edges"])
    assert np.all(np.diff(edges) >= 0)
    assert len(edges) <= n_bins + 1
    assert stats["count"] + stats["n_missing"] == values.size
    if stats["count"]:
        assert sum(stats["hist"]) + stats["below"] + stats["above"] == pytest.approx(1.0)
        assert stats["below"] == 0.0 and stats["above"] == 0.0
    counts, below, above, missing = bin_counts(values, edges)
    assert int(counts.sum()) + below + above + missing == values.size
    # The sorted fast path agrees with the reference binning rule and with numpy's quantiles.
    assert stats["hist"] == pytest.approx(bin_shares(values, edges)["hist"], abs=1e-12)
    present = values[~np.isnan(values)]
    if present.size:
        assert edges[0] == present.min() and edges[-1] == present.max()
        expected = np.unique(np.quantile(present, np.linspace(0, 1, n_bins + 1)))
        if expected.size > 1:
            np.testing.assert_allclose(edges, expected, rtol=1e-12, atol=1e-9)


def test_feature_stats_matches_column_stats(rng: np.random.Generator) -> None:
    X = rng.normal(size=(200, 4))
    X[rng.random(X.shape) < 0.2] = np.nan
    X[:, 3] = np.nan
    stats = feature_stats(X, ["a", "b", "c", "d"], n_bins=7)
    for j, name in enumerate("abcd"):
        expected = column_stats(X[:, j], 7)
        got = stats["features"][name]
        assert got.keys() == expected.keys()
        for key in got:
            assert got[key] == (expected[key] if expected[key] is None else pytest.approx(expected[key])), key
