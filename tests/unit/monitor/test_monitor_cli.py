"""Rendering of drift and metrics snapshots (pure functions behind `scorer drift` / `scorer metrics`)."""

from __future__ import annotations

from scorer.cli.monitor_cmds import drift_rows, feature_rows, flagged_features, metrics_rows


def snap(segment: str, version: int, psi: float, p_value: float | None, ks: float = 0.05) -> dict:
    return {"model": "m", "segment": segment, "version": version, "max_psi": psi, "max_ks": ks,
            "window": {"start": 0.0, "end": 1700000000.0, "n": 500},
            "features": {"x": {"psi": psi, "ks": ks, "p_value": p_value, "ks_critical": 0.1, "missing_rate": 0.0,
                               "expected_missing_rate": 0.0},
                         "y": {"psi": 0.01, "ks": 0.01, "p_value": 0.9, "ks_critical": 0.1, "missing_rate": 0.0,
                               "expected_missing_rate": 0.0}}}


def test_flagged_needs_a_large_and_significant_gap() -> None:
    assert flagged_features(snap("A", 1, 0.5, 1e-9), 0.2, 0.2) == ["x"]
    assert flagged_features(snap("A", 1, 0.5, 0.2), 0.2, 0.2) == []  # large but noise (tiny window)
    assert flagged_features(snap("A", 1, 0.5, 0.2), 0.2, 0.2, significance=None) == ["x"]
    assert flagged_features(snap("A", 1, 0.05, 1e-9, ks=0.3), 0.2, 0.2) == ["x"]


def test_rows_newest_version_per_segment_first() -> None:
    rows = drift_rows([snap("B", 1, 0.5, 1e-9), snap("B", 2, 0.01, 0.9), snap("A", 1, 0.01, 0.5)], 0.2, 0.2,
                      latest_only=True)
    assert [(r[0], r[1], r[-1]) for r in rows] == [("A", "1", "ok"), ("B", "2", "ok")]
    rows = drift_rows([snap("B", 1, 0.5, 1e-9)], 0.2, 0.2)
    assert rows[0][-1] == "DRIFT (x)" and rows[0][4] == "0.500" and rows[0][6] == "x"
    assert [r[0] for r in feature_rows(snap("B", 1, 0.5, 1e-9))] == ["x", "y"]


def test_metrics_rows_for_classifiers_and_regressors() -> None:
    rows = metrics_rows([
        {"segment": "A", "version": 1, "role": "live", "task": "binary", "total": 900, "at": 1.0,
         "metrics": {"n": 500, "roc_auc": 0.9, "log_loss": 0.3, "accuracy": 0.85}},
        {"segment": "A", "version": 2, "role": "canary", "task": "regression", "total": 10, "at": 1.0,
         "metrics": {"n": 10, "rmse": 1.5, "mae": 1.0}},
    ])
    assert rows[0][:7] == ["A", "2", "canary", "10/10", "rmse 1.500", "mae 1.000", ""]
    assert rows[1][:7] == ["A", "1", "live", "500/900", "0.900", "0.300", "0.850"]
