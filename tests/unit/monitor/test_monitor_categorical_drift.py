"""Categorical drift: training level frequencies stored with a version, live codes binned per level, PSI and
chi-square over them, categories never seen in training counted."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from scorer.models import build
from scorer.monitor.drift import DriftReference, DriftWindow
from trainers.data import load_training_data
from trainers.segment import TrainConfig, train_segments


def _trained():
    rng = np.random.default_rng(0)
    n = 1500
    carrier = rng.choice(["AA", "UA", "DL"], n, p=[0.5, 0.3, 0.2]).tolist()
    x = rng.normal(size=n)
    y = ((np.array(carrier) == "UA") ^ (x > 0)).astype(int)
    table = pa.table({"city": ["S"] * n, "carrier": carrier, "x": x, "label": y})
    data = load_training_data(table, segment_col="city", target="label", categorical=["carrier"])
    return train_segments(data, TrainConfig(arch="logistic")).results[0]


def _window(result, carriers: list[str | None]) -> DriftWindow:
    model = build(result.weights)
    reference = DriftReference.from_stats(model.feature_names, result.stats)
    rows = np.array([[c, 0.1] for c in carriers], dtype=object)
    window = DriftWindow(reference, started_at=0.0)
    window.add(model.categorical.drift_codes(rows))
    return window


def test_same_frequencies_no_drift_shifted_and_unseen_counted() -> None:
    result = _trained()
    stats = result.stats["features"]["carrier"]
    assert stats["kind"] == "categorical" and stats["levels"][:3] == ["AA", "DL", "UA"]
    rng = np.random.default_rng(1)
    same = _window(result, rng.choice(["AA", "UA", "DL"], 2000, p=[0.5, 0.3, 0.2]).tolist())
    features, _, n = same.evaluate(1.0)
    carrier = next(f for f in features if f.name == "carrier")
    assert n == 2000 and carrier.psi < 0.02 and carrier.p_value > 0.001 and carrier.unseen_rate == 0.0
    shifted = _window(result, [*(["DL"] * 1200), *(["AA"] * 500), *(["WN"] * 300)])
    features, _, _ = shifted.evaluate(1.0)
    carrier = next(f for f in features if f.name == "carrier")
    assert carrier.psi > 0.5 and carrier.p_value < 1e-6
    assert carrier.unseen_rate == 300 / 2000
    assert next(f for f in features if f.name == "x").unseen_rate is None  # numeric: not applicable
