"""Drift kernels: binning agrees with the training histogram, PSI and KS behave, windows stay bounded."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from scorer.monitor.drift import (
    DriftConfig,
    DriftMonitor,
    DriftReference,
    bucket_counts,
    ks,
    psi,
)
from trainers.stats import bin_counts, feature_stats

FINITE = st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False)


def reference_for(X: np.ndarray, names: tuple[str, ...] = ("a", "b", "c"), n_bins: int = 10) -> DriftReference:
    return DriftReference.from_stats(names, feature_stats(X, names, n_bins=n_bins))


@settings(max_examples=60, deadline=None)
@given(train=hnp.arrays(np.float64, st.tuples(st.integers(1, 40), st.just(3)),
                        elements=st.one_of(FINITE, st.just(np.nan))),
       live=hnp.arrays(np.float64, st.tuples(st.integers(0, 40), st.just(3)),
                       elements=st.one_of(FINITE, st.just(np.nan), st.just(np.inf), st.just(-np.inf))),
       n_bins=st.integers(1, 12))
def test_bucket_counts_match_the_training_binning_rule(train: np.ndarray, live: np.ndarray, n_bins: int) -> None:
    names = ("a", "b", "c")
    stats = feature_stats(train, names, n_bins=n_bins)
    ref = DriftReference.from_stats(names, stats)
    counts = bucket_counts(live, ref)
    assert counts.shape == (3, ref.k + 3)
    assert (counts.sum(axis=1) == live.shape[0]).all()
    for j, name in enumerate(names):
        edges = np.asarray(stats["features"][name]["edges"])
        if edges.size == 0:
            assert not ref.valid[j]
            continue
        bins, below, above, missing = bin_counts(live[:, j], edges)
        assert counts[j, :bins.size].tolist() == bins.tolist()
        assert counts[j, bins.size:ref.k].sum() == 0  # padding bins stay empty
        assert (counts[j, ref.k], counts[j, ref.k + 1], counts[j, ref.k + 2]) == (below, above, missing)


def test_reference_shares_sum_to_one_and_include_missing() -> None:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1000, 3))
    X[:100, 1] = np.nan
    ref = reference_for(X)
    assert np.allclose(ref.expected.sum(axis=1), 1.0)
    assert ref.expected[1, ref.k + 2] == pytest.approx(0.1, abs=1e-3)  # plus the unseen tails
    assert ref.valid.all()


def test_feature_without_training_values_is_not_evaluated() -> None:
    X = np.column_stack([np.arange(50.0), np.full(50, np.nan), np.ones(50)])
    ref = reference_for(X)
    assert ref.valid.tolist() == [True, False, True]
    monitor = DriftMonitor(DriftConfig(every_events=10, min_events=1))
    monitor.set_reference(("m", "s", 1), ref)
    snapshot, _ = monitor.observe(("m", "s", 1), X[:20])
    assert snapshot is not None
    by_name = {f.name: f for f in snapshot.features}
    assert by_name["b"].psi is None and by_name["b"].ks is None
    assert by_name["c"].psi == pytest.approx(0.0)  # constant feature, same constant live


@settings(max_examples=80, deadline=None)
@given(e=hnp.arrays(np.float64, st.integers(2, 15), elements=st.floats(0, 1000)),
       a=hnp.arrays(np.float64, st.integers(2, 15), elements=st.floats(0, 1000)))
def test_psi_is_non_negative_and_zero_on_identical(e: np.ndarray, a: np.ndarray) -> None:
    size = min(e.size, a.size)
    e, a = e[:size], a[:size]
    if e.sum() == 0 or a.sum() == 0:
        return
    assert psi(e, a) >= 0.0
    assert psi(e, e) == pytest.approx(0.0, abs=1e-12)
    assert psi(e, e * 7.0) == pytest.approx(0.0, abs=1e-12)  # counts or shares alike


@settings(max_examples=80, deadline=None)
@given(e=hnp.arrays(np.float64, st.integers(4, 15), elements=st.floats(0, 1000)),
       a=hnp.arrays(np.float64, st.integers(4, 15), elements=st.floats(0, 1000)))
def test_ks_is_within_unit_interval(e: np.ndarray, a: np.ndarray) -> None:
    size = min(e.size, a.size)
    e, a = e[:size], a[:size]
    value = ks(e[None, :], a[None, :])[0]
    if e[:-1].sum() == 0 or a[:-1].sum() == 0:  # nothing present on one side (last bucket is missing)
        assert np.isnan(value)
    else:
        assert 0.0 <= value <= 1.0
        assert ks(e[None, :], e[None, :])[0] == pytest.approx(0.0, abs=1e-12)


def test_same_distribution_is_stable_shifted_one_is_flagged() -> None:
    rng = np.random.default_rng(1)
    ref = reference_for(rng.normal(size=(5000, 3)))
    same = bucket_counts(rng.normal(size=(2000, 3)), ref)
    shifted_data = rng.normal(size=(2000, 3))
    shifted_data[:, 2] += 1.0
    shifted = bucket_counts(shifted_data, ref)
    assert psi(ref.expected, same).max() < 0.05
    assert ks(ref.expected, same).max() < 0.05
    assert psi(ref.expected, shifted)[2] > 0.5
    assert ks(ref.expected, shifted)[2] > 0.3
    assert psi(ref.expected, shifted)[:2].max() < 0.05


def test_missing_values_move_the_psi() -> None:
    rng = np.random.default_rng(2)
    ref = reference_for(rng.normal(size=(5000, 3)))
    live = rng.normal(size=(2000, 3))
    live[:1000, 0] = np.nan
    values = psi(ref.expected, bucket_counts(live, ref))
    assert values[0] > 1.0 and values[1] < 0.05


def test_monitor_evaluates_every_n_events_and_alerts_on_the_way_up_only() -> None:
    rng = np.random.default_rng(3)
    ref = reference_for(rng.normal(size=(5000, 3)))
    monitor = DriftMonitor(DriftConfig(every_events=500, every_seconds=3600, min_events=100))
    key = ("m", "ORD", 3)
    monitor.set_reference(key, ref)
    snapshot, alerts = monitor.observe(key, rng.normal(size=(400, 3)))
    assert snapshot is None and alerts == []
    snapshot, alerts = monitor.observe(key, rng.normal(size=(100, 3)))
    assert snapshot is not None and snapshot.n == 500 and alerts == []
    shifted = rng.normal(size=(500, 3)) + np.array([0.0, 0.0, 2.0])
    snapshot, alerts = monitor.observe(key, shifted)
    assert {(a.feature, a.statistic) for a in alerts} == {("c", "psi"), ("c", "ks")}
    assert all(a.model == "m" and a.segment == "ORD" and a.version == 3 and a.window["n"] == 500 for a in alerts)
    # still drifted: no new alert for the same crossing
    _, alerts = monitor.observe(key, rng.normal(size=(500, 3)) + np.array([0.0, 0.0, 2.0]))
    assert alerts == []
    # back to normal, then drifted again: alerts again
    monitor.observe(key, rng.normal(size=(500, 3)))
    _, alerts = monitor.observe(key, rng.normal(size=(500, 3)) + np.array([0.0, 0.0, 2.0]))
    assert {a.feature for a in alerts} == {"c"}
    payload = snapshot.to_json()
    assert payload["features"]["c"]["psi"] > 0.2 and payload["window"]["n"] == 500


def test_monitor_evaluates_on_time_only_with_enough_events() -> None:
    now = [0.0]
    rng = np.random.default_rng(4)
    monitor = DriftMonitor(DriftConfig(every_events=10_000, every_seconds=10, min_events=50), clock=lambda: now[0])
    key = ("m", "s", 1)
    monitor.set_reference(key, reference_for(rng.normal(size=(1000, 3))))
    monitor.observe(key, rng.normal(size=(20, 3)))
    now[0] = 11.0
    assert list(monitor.due()) == []  # too few events: the window keeps growing
    monitor.observe(key, rng.normal(size=(40, 3)))  # due now: 60 events, 11 s -> evaluated right away
    now[0] = 15.0
    snapshot, _ = monitor.observe(key, rng.normal(size=(60, 3)))
    assert snapshot is None and list(monitor.due()) == []  # only 4 s old
    now[0] = 25.0
    (snapshot, _), = list(monitor.due())
    assert snapshot.n == 60 and snapshot.window_start == 11.0 and snapshot.window_end == 25.0


def test_unreferenced_rows_are_counted_and_windows_are_capped() -> None:
    rng = np.random.default_rng(5)
    ref = reference_for(rng.normal(size=(200, 3)))
    monitor = DriftMonitor(DriftConfig(max_keys=100))
    monitor.observe(("m", "x", 1), np.zeros((7, 3)))
    assert monitor.unreferenced == 7
    for i in range(10_000):
        monitor.set_reference(("m", f"s{i}", 1), ref)
    assert len(monitor) == 100 and monitor.evicted == 9_900
    assert monitor.has(("m", "s9999", 1)) and not monitor.has(("m", "s0", 1))


def test_bad_stats_are_refused_with_the_feature_named() -> None:
    with pytest.raises(ValueError, match="feature 'a'.*hist"):
        DriftReference.from_stats(("a",), {"features": {"a": {"edges": [0, 1, 2], "hist": [1.0]}}},
                                  where="m/s v1")
    with pytest.raises(ValueError, match="no 'features'"):
        DriftReference.from_stats(("a",), {})


def test_homogeneity_p_value_is_scipys_chi_square_test() -> None:
    from scipy.stats import chi2_contingency, chisquare

    from scorer.monitor.drift import homogeneity

    train_counts = np.array([30.0, 50.0, 15.0, 5.0])
    live = np.array([[20.0, 25.0, 10.0, 5.0]])
    # Two-sample (training rows known): the contingency test of the two count rows.
    p_two, _ = homogeneity(train_counts / train_counts.sum(), live, np.array([train_counts.sum()]))
    want = chi2_contingency(np.vstack([live[0], train_counts]), correction=False).pvalue
    assert p_two[0] == pytest.approx(want, rel=1e-12)
    # Goodness of fit (no training rows): the live counts against the training shares.
    p_fit, _ = homogeneity(train_counts / train_counts.sum(), live, np.array([0.0]))
    want = chisquare(live[0], train_counts / train_counts.sum() * live[0].sum()).pvalue
    assert p_fit[0] == pytest.approx(want, rel=1e-12)


def test_noise_does_not_alert_but_real_shifts_do() -> None:
    """Windows of 60 events against a 100-row reference: noise alone often crosses PSI 0.2."""
    rng = np.random.default_rng(7)
    ref = reference_for(rng.normal(size=(100, 3)))
    gated = DriftMonitor(DriftConfig(every_events=60, min_events=10))
    raw = DriftMonitor(DriftConfig(every_events=60, min_events=10, significance=None))
    key = ("m", "s", 1)
    gated.set_reference(key, ref)
    raw.set_reference(key, ref)
    gated_alerts = raw_alerts = 0
    p_values = []
    for _ in range(200):
        batch = rng.normal(size=(60, 3))
        snapshot, alerts = gated.observe(key, batch)
        gated_alerts += len(alerts)
        raw_alerts += len(raw.observe(key, batch)[1])
        p_values += [f.p_value for f in snapshot.features]
    assert raw_alerts >= 60 and gated_alerts <= 5, (raw_alerts, gated_alerts)
    assert 0.0 < np.mean(np.array(p_values) < 0.05) < 0.08  # calibrated: about 5% below 0.05 under no drift
    snapshot, alerts = gated.observe(key, rng.normal(size=(60, 3)) + np.array([2.0, 0.0, 0.0]))
    assert {(a.feature, a.statistic) for a in alerts} == {("a", "psi"), ("a", "ks")}
    assert {f.name: f.p_value for f in snapshot.features}["a"] < 1e-6
