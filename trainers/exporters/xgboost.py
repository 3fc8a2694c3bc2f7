"""Exporter for fitted XGBoost models: the booster's own JSON dump read by scorer's file reader.

Going through ``save_raw("json")`` means a Python object and a saved ``.json`` file give identical arrays.
Imported lazily: xgboost is an optional extra (``scorer[xgboost]``).
"""

from __future__ import annotations

import math
from typing import Any

from scorer.errors import UnsupportedModel
from scorer.importers.xgboost import read_xgboost_json
from trainers.export import Exported, register_exporter

try:
    import xgboost
except ImportError:  # the extra is not installed: nothing to register
    xgboost = None


def export_xgboost(est: Any) -> Exported:
    """XGBClassifier / XGBRegressor / Booster -> arch ``hist_boosted`` (best iteration when there is one)."""
    booster = est if isinstance(est, xgboost.Booster) else est.get_booster()
    missing = getattr(est, "missing", math.nan)
    if not (isinstance(missing, float) and math.isnan(missing)):
        raise UnsupportedModel(f"cannot export {type(est).__name__} with missing={missing!r}; only NaN is supported")
    got = read_xgboost_json(bytes(booster.save_raw("json")))
    classes = got.classes
    if isinstance(est, xgboost.XGBClassifier):
        classes = tuple(est.classes_.tolist())
    return Exported(arch=got.arch, arrays=got.arrays, classes=classes, metadata=got.metadata)


if xgboost is not None:
    register_exporter(xgboost.XGBClassifier, xgboost.XGBRegressor, xgboost.Booster)(export_xgboost)
