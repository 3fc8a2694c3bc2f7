"""``scorer train --categorical``: per-arch pipelines over text and integer categories, stats and refusals."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest
from click.testing import CliRunner

from scorer.cli import main
from scorer.errors import CategoryError, ConfigError
from scorer.models import ModelWeights, build
from trainers.data import load_training_data
from trainers.segment import TrainConfig, train_segments


def _table(n: int = 1600, seed: int = 0) -> pa.Table:
    rng = np.random.default_rng(seed)
    carrier = rng.choice(["AA", "UA", "DL", None], n).tolist()
    day = rng.integers(1, 8, n)
    x = rng.normal(size=n)
    y = ((np.array(carrier) == "UA") ^ (x > 0.3) ^ (day > 5)).astype(int)
    return pa.table({"city": rng.choice(["ORD", "JFK"], n), "carrier": carrier, "day": day, "x": x, "label": y})


ARCHS = ["logistic", "mlp", "hgb", "tree", "forest", "extra-trees", "gbt", "lightgbm", "xgboost"]


@pytest.mark.parametrize("arch", ARCHS)
def test_each_arch_trains_exports_and_scores_strings(arch: str) -> None:
    data = load_training_data(_table(), segment_col="city", target="label", categorical=["carrier", "day"])
    assert data.categories == {"carrier": ("AA", "DL", "UA"), "day": (1, 2, 3, 4, 5, 6, 7)}
    report = train_segments(data, TrainConfig(arch=arch))
    assert len(report.results) == 2 and not report.skipped
    result = report.results[0]
    model = build(result.weights)
    cats = {c["feature"]: c for c in result.weights.metadata["categorical"]}
    assert set(cats) == {"carrier", "day"}
    rows = np.array([["UA", 6, 1.0], [None, 2, -1.0]], dtype=object)
    assert model.predict(rows).shape == (2, 2)
    stats = result.stats["features"]["carrier"]
    assert stats["kind"] == "categorical" and stats["missing_rate"] > 0.1
    if arch != "hgb":  # the encoders refuse levels the file never had; hgb maps them to missing (scikit-learn)
        with pytest.raises(CategoryError, match="feature 'carrier' has unknown category 'ZZ'"):
            model.predict(np.array([["ZZ", 6, 1.0]], dtype=object))


def test_cli_out_and_refusals(tmp_path: Path) -> None:
    path = tmp_path / "trips.csv"
    pacsv.write_csv(_table(), path)
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["train", "--data", str(path), "--model", "delay", "--segment-col", "city",
                                       "--target", "label", "--categorical", "carrier,day", "--arch", "forest",
                                       "--out", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    summary = json.loads((out / "summary.json").read_text())
    assert summary["features"] == ["carrier", "day", "x"]
    weights = ModelWeights.load(out / summary["segments"]["ORD"]["file"])
    assert [c["feature"] for c in weights.metadata["categorical"]] == ["carrier", "day"]
    bad = CliRunner().invoke(main, ["train", "--data", str(path), "--model", "delay", "--segment-col", "city",
                                    "--target", "label", "--categorical", "nope", "--out", str(out)])
    assert bad.exit_code != 0 and "categorical column 'nope' not in data" in bad.output
    assert "Traceback" not in bad.output
    with pytest.raises(ConfigError, match="categorical column 'x' has type double"):
        load_training_data(_table(), segment_col="city", target="label", categorical=["x"])
