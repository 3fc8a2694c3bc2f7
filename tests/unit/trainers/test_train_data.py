"""Reading CSV and Parquet into TrainingData: column choice, types, missing values, readable errors."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from scorer.errors import ConfigError
from trainers.data import TrainingData, load_training_data, read_table

CSV = "seg,x1,x2,label,name\n007,1.5,2,1,a\n007,,3,0,b\nB,2.5,4,1,c\nB,3.5,,0,d\n,1,1,1,e\nB,1,1,,f\n"


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_csv_picks_numeric_features_keeps_segment_text_and_drops_unusable_rows(tmp_path: Path) -> None:
    data = load_training_data(_write(tmp_path, "d.csv", CSV), segment_col="seg", target="label")
    assert data.feature_names == ("x1", "x2")  # the text column 'name' is not a feature
    assert data.segments.tolist() == ["007", "007", "B", "B"]  # '007' stays text, not 7
    assert data.n_dropped == 2  # no segment, no label
    np.testing.assert_array_equal(data.X, [[1.5, 2], [np.nan, 3], [2.5, 4], [3.5, np.nan]])
    assert data.y.tolist() == [1, 0, 1, 0]
    assert data.X.dtype == np.float64


def test_explicit_features_keep_their_order_and_read_only_those_columns(tmp_path: Path) -> None:
    data = load_training_data(_write(tmp_path, "d.csv", CSV), segment_col="seg", target="label",
                              features=["x2", "x1"])
    assert data.feature_names == ("x2", "x1")
    np.testing.assert_array_equal(data.X[0], [2.0, 1.5])


def test_parquet_and_gzipped_csv_read_the_same(tmp_path: Path) -> None:
    table = pa.table({"seg": ["a", "a", "b"], "x": [1.0, None, 3.0], "flag": [True, False, True],
                      "n": pa.array([1, 2, None], pa.int32()), "y": ["p", "q", "p"]})
    pq.write_table(table, tmp_path / "d.parquet")
    data = load_training_data(tmp_path / "d.parquet", segment_col="seg", target="y")
    assert data.feature_names == ("x", "flag", "n")
    np.testing.assert_array_equal(data.X, [[1, 1, 1], [np.nan, 0, 2], [3, 1, np.nan]])
    assert data.y.tolist() == ["p", "q", "p"]
    # Unknown suffix but Parquet magic bytes: still read as Parquet.
    (tmp_path / "d.bin").write_bytes((tmp_path / "d.parquet").read_bytes())
    assert load_training_data(tmp_path / "d.bin", segment_col="seg", target="y").feature_names == data.feature_names
    with gzip.open(tmp_path / "d.csv.gz", "wt") as handle:
        handle.write(CSV)
    zipped = load_training_data(tmp_path / "d.csv.gz", segment_col="seg", target="label", features=["x1"])
    assert zipped.segments.tolist() == ["007", "007", "B", "B"]


def test_table_source_and_from_arrays() -> None:
    table = pa.table({"s": [1, 2], "x": [0.5, 1.5], "y": [0.1, 0.2]})
    data = load_training_data(table, segment_col="s", target="y")
    assert data.segments.tolist() == ["1", "2"] and data.y.dtype == np.float64
    arrays = TrainingData.from_arrays(["a", "b"], [[1.0], [2.0]], np.array([0, 1]), ["x"])
    assert arrays.n_rows == 2 and arrays.segments.dtype.kind == "U"
    with pytest.raises(ConfigError, match="disagree"):
        TrainingData.from_arrays(["a"], [[1.0], [2.0]], np.array([0, 1]), ["x"])


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"segment_col": "nope", "target": "label"}, "segment column 'nope' not in data; columns are: seg, x1"),
    ({"segment_col": "seg", "target": "nope"}, "target 'nope' not in data"),
    ({"segment_col": "seg", "target": "label", "features": ["x1", "zz"]}, "column 'zz' not in d.csv; columns are"),
    ({"segment_col": "seg", "target": "label", "features": ["x1", "name"]}, "feature 'name' is not numeric"),
    ({"segment_col": "seg", "target": "label", "features": ["x1", "x1"]}, "feature 'x1' given more than once"),
    ({"segment_col": "seg", "target": "label", "features": ["label"]}, "feature 'label' is also the target"),
    ({"segment_col": "seg", "target": "seg"}, "segment column and target are both 'seg'"),
])
def test_column_errors_are_one_readable_line(tmp_path: Path, kwargs: dict, message: str) -> None:
    path = _write(tmp_path, "d.csv", CSV)
    with pytest.raises(ConfigError) as info:
        load_training_data(path, **kwargs)
    assert message in str(info.value)
    assert "\n" not in str(info.value)


def test_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="data file '.*missing.csv' not found"):
        read_table(tmp_path / "missing.csv")
    bad = _write(tmp_path, "bad.csv", "a,b\n1,2,3\n")
    with pytest.raises(ConfigError, match="cannot read '.*bad.csv'"):
        read_table(bad)
    broken = tmp_path / "broken.parquet"
    broken.write_bytes(b"PAR1 not really")
    with pytest.raises(ConfigError, match="cannot read"):
        read_table(broken)
    only_text = _write(tmp_path, "t.csv", "seg,label,name\na,1,x\n")
    with pytest.raises(ConfigError, match="no numeric feature columns"):
        load_training_data(only_text, segment_col="seg", target="label")
    infinite = _write(tmp_path, "i.csv", "seg,label,x\na,1,inf\na,0,1\n")
    with pytest.raises(ConfigError, match="feature 'x' has 1 infinite values"):
        load_training_data(infinite, segment_col="seg", target="label")
