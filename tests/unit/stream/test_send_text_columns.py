"""``scorer send``: text columns named in --features go out as JSON strings (categories), nulls as null."""

from __future__ import annotations

from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from scorer.stream.send import read_rows


def test_text_columns_named_in_features_are_sent_as_strings(tmp_path: Path) -> None:
    csv = tmp_path / "f.csv"
    csv.write_text("city,carrier,day,dist,note\nORD,UA,3,1.5,x\nJFK,,5,,y\n")
    rows = read_rows(csv, "city", features=["carrier", "day", "dist"])
    sent = [orjson.loads(v) for _, v in rows.encode("m", 0, 2)]
    assert sent[0]["features"] == {"carrier": "UA", "day": 3.0, "dist": 1.5}
    assert sent[1]["features"] == {"carrier": None, "day": 5.0, "dist": None}
    assert read_rows(csv, "city").feature_names == ("day", "dist")  # default: numeric columns only
    parquet = tmp_path / "f.parquet"
    pq.write_table(pa.table({"city": ["ORD"], "carrier": pa.array(["DL"]).dictionary_encode(), "x": [1.0]}), parquet)
    sent = [orjson.loads(v) for _, v in read_rows(parquet, "city", features=["carrier", "x"]).encode("m", 0, 1)]
    assert sent[0]["features"] == {"carrier": "DL", "x": 1.0}
