"""`scorer publish --weights` model files: .txt/.json/.ubj read into the same arrays as trainers.export."""

from __future__ import annotations

import numpy as np
import pytest

from scorer.cli.store_cmds import _read_weights
from scorer.errors import UnsupportedModel
from trainers.export import export

lgb = pytest.importorskip("lightgbm")
xgb = pytest.importorskip("xgboost")


def test_files_match_the_python_export(tmp_path):
    rng = np.random.default_rng(1)
    X = rng.normal(size=(300, 4))
    y = (X[:, 0] > 0).astype(int)
    lm = lgb.LGBMClassifier(n_estimators=10, verbose=-1, n_jobs=1).fit(X, y)
    xm = xgb.XGBClassifier(n_estimators=10, max_depth=4, n_jobs=1).fit(X, y)
    lm.booster_.save_model(tmp_path / "m.txt")
    xm.get_booster().save_model(tmp_path / "m.json")
    xm.get_booster().save_model(tmp_path / "m.ubj")
    for path, est in (("m.txt", lm), ("m.json", xm), ("m.ubj", xm)):
        got, want = _read_weights(tmp_path / path), export(est)
        assert got.arch == want.arch and got.classes == want.classes
        for k, v in want.arrays.items():
            assert got.arrays[k].tobytes() == v.tobytes(), (path, k)


def test_a_truncated_file_is_one_error(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('{"learner": {')
    with pytest.raises(UnsupportedModel, match="not valid JSON"):
        _read_weights(p)
