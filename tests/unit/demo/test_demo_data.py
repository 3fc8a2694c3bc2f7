"""scorer demo-data: deterministic from the seed, drift confined to one city after one point, learnable truth."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from scorer.cli import main
from scorer.demo.data import CITIES, FEATURES, DemoConfig, make_retrain, make_stream, make_training, write_demo_data
from scorer.errors import ConfigError

SMALL = {"events": 3_000, "train_rows": 300, "retrain_rows": 300}


def _files(directory: Path) -> dict[str, bytes]:
    return {path.name: path.read_bytes() for path in sorted(directory.iterdir())}


def test_same_seed_same_bytes_and_another_seed_differs(tmp_path: Path) -> None:
    config = DemoConfig(seed=3, drift_city="SFO", retrain_cities=("ATL",), split_at=(0.4,), **SMALL)
    write_demo_data(config, tmp_path / "a")
    write_demo_data(config, tmp_path / "b")
    first, second = _files(tmp_path / "a"), _files(tmp_path / "b")
    assert set(first) == {"train.csv", "stream.csv", "stream_part1.csv", "stream_part2.csv", "retrain_SFO.csv",
                          "retrain_ATL.csv", "demo.json"}
    assert first == second
    write_demo_data(DemoConfig(seed=4, drift_city="SFO", retrain_cities=("ATL",), split_at=(0.4,), **SMALL),
                    tmp_path / "c")
    other = _files(tmp_path / "c")
    assert other["stream.csv"] != first["stream.csv"]
    assert other["train.csv"] != first["train.csv"]


def test_stream_shape_ids_order_and_nulls() -> None:
    table = make_stream(DemoConfig(seed=1, events=5_000, null_rate=0.05))
    assert table.column_names == ["id", "ts", "city", *FEATURES, "cancelled"]
    assert table.column("id").to_pylist() == [f"e-{i}" for i in range(5_000)]
    ts = table.column("ts").to_pylist()
    assert ts == sorted(ts) and ts[0].endswith("Z")
    assert set(table.column("city").to_pylist()) == set(CITIES)
    assert set(table.column("cancelled").to_pylist()) == {0, 1}
    for name in ("wait_minutes", "distance_km", "surge", "hour"):
        assert table.column(name).null_count == 0, name
    assert 0.03 < table.column("rating").null_count / 5_000 < 0.07
    assert 0.1 < np.mean(table.column("cancelled").to_numpy()) < 0.6


def test_drift_changes_only_the_drift_city_after_the_drift_point() -> None:
    base = make_stream(DemoConfig(seed=5, events=6_000))
    drifted = make_stream(DemoConfig(seed=5, events=6_000, drift_city="DEN", drift_at=0.5))
    cities = np.array(base.column("city").to_pylist())
    assert cities.tolist() == drifted.column("city").to_pylist()
    late_den = (cities == "DEN") & (np.arange(6_000) >= 3_000)
    for name in (*FEATURES, "cancelled", "id", "ts"):
        before = np.array(base.column(name).to_pylist(), dtype=object)
        after = np.array(drifted.column(name).to_pylist(), dtype=object)
        assert (before[~late_den] == after[~late_den]).all(), name
    surge_before = np.array(base.column("surge").to_pylist())[late_den]
    surge_after = np.array(drifted.column("surge").to_pylist())[late_den]
    assert surge_after.mean() > surge_before.mean() + 0.05  # the distribution shifts too


def _xy(table: pa.Table, city: str, rows: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    mask = np.array(table.column("city").to_pylist()) == city
    if rows is not None:
        mask &= rows
    X = np.column_stack([np.array(table.column(f).to_pylist(), dtype=float) for f in FEATURES])[mask]
    return X, np.array(table.column("cancelled").to_pylist())[mask]


def test_a_model_of_the_old_truth_fails_after_the_drift_and_one_of_the_retrain_file_recovers() -> None:
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    config = DemoConfig(seed=11, events=24_000, train_rows=1_500, retrain_rows=1_500, drift_city="SFO", drift_at=0.4)
    stream = make_stream(config)
    index = np.arange(config.events)

    def fit(X: np.ndarray, y: np.ndarray):
        return make_pipeline(SimpleImputer(strategy="median"), StandardScaler(), LogisticRegression()).fit(X, y)

    v1 = fit(*_xy(make_training(config), "SFO"))
    v2 = fit(*_xy(make_retrain(config, "SFO"), "SFO"))
    X_pre, y_pre = _xy(stream, "SFO", index < config.drift_index)
    X_post, y_post = _xy(stream, "SFO", index >= config.drift_index)
    before, after_v1, after_v2 = v1.score(X_pre, y_pre), v1.score(X_post, y_post), v2.score(X_post, y_post)
    assert before > 0.7
    assert after_v1 < before - 0.2
    assert after_v2 > after_v1 + 0.2
    # An undrifted city keeps its accuracy on the same model family.
    ord_model = fit(*_xy(make_training(config), "ORD"))
    assert abs(ord_model.score(*_xy(stream, "ORD", index < config.drift_index))
               - ord_model.score(*_xy(stream, "ORD", index >= config.drift_index))) < 0.06


def test_split_parts_are_the_stream_and_parquet_holds_the_same_rows(tmp_path: Path) -> None:
    config = DemoConfig(seed=2, split_at=(0.3, 0.65), **SMALL)
    meta = write_demo_data(config, tmp_path / "csv")
    stream = pcsv.read_csv(tmp_path / "csv" / "stream.csv")
    parts = [pcsv.read_csv(tmp_path / "csv" / f"stream_part{n}.csv") for n in (1, 2, 3)]
    assert [part.num_rows for part in parts] == [900, 1050, 1050]
    assert meta["split"]["first_id"] == ["e-900", "e-1950"]
    assert pa.concat_tables(parts).equals(stream)
    assert not (tmp_path / "csv" / "stream_part4.csv").exists()
    write_demo_data(DemoConfig(seed=2, split_at=(0.3,), fmt="parquet", **SMALL), tmp_path / "pq")
    from_parquet = pq.read_table(tmp_path / "pq" / "stream.parquet")
    assert from_parquet.column("id").to_pylist() == stream.column("id").to_pylist()
    assert from_parquet.column("rating").to_pylist() == stream.column("rating").to_pylist()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"drift_city": "XXX"}, "drift city 'XXX'"),
    ({"drift_city": "SFO", "drift_at": 1.0}, "drift_at"),
    ({"retrain_cities": ("NOPE",)}, "retrain city 'NOPE'"),
    ({"events": 0}, "events must be a positive integer"),
    ({"fmt": "xlsx"}, "format must be one of csv, parquet"),
    ({"split_at": (0.6, 0.3)}, "split_at must be increasing fractions"),
    ({"cities": ("A", "A")}, "cities must be unique"),
])
def test_bad_config_is_refused_with_the_field_named(kwargs: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        DemoConfig(**kwargs)


def test_cli_writes_files_and_reports_a_bad_city_in_one_line(tmp_path: Path) -> None:
    runner = CliRunner()
    result = runner.invoke(main, ["demo-data", "--out", str(tmp_path), "--events", "1000", "--train-rows", "100",
                                  "--drift-city", "BOS", "--retrain-city", "MIA", "--cities", "BOS,MIA,SEA",
                                  "--split-at", "0.5,0.75"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "retrain_BOS.csv").is_file() and (tmp_path / "retrain_MIA.csv").is_file()
    assert (tmp_path / "stream_part3.csv").read_text().count("\n") == 251  # header + events 750..999
    assert "drift: BOS from event e-250" in result.output
    bad = runner.invoke(main, ["demo-data", "--out", str(tmp_path), "--drift-city", "ZZZ"])
    assert bad.exit_code == 1
    assert bad.output.strip().splitlines()[-1].startswith("error: drift city 'ZZZ' is not one of the cities")
