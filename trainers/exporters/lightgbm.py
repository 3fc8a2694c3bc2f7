"""Exporter for fitted LightGBM models: the booster's own text dump read by scorer's file reader.

Going through ``model_to_string`` means a Python object and a saved ``.txt`` file give identical arrays.
Imported lazily: lightgbm is an optional extra (``scorer[lightgbm]``).
"""

from __future__ import annotations

from typing import Any

from scorer.importers.lightgbm import read_lightgbm_text
from trainers.export import Exported, register_exporter

try:
    import lightgbm
except ImportError:  # the extra is not installed: nothing to register
    lightgbm = None


def export_lightgbm(est: Any) -> Exported:
    """LGBMClassifier / LGBMRegressor / Booster -> arch ``hist_boosted`` (best iteration when there is one)."""
    booster = est if isinstance(est, lightgbm.Booster) else est.booster_
    classes = tuple(est.classes_.tolist()) if isinstance(est, lightgbm.LGBMClassifier) else None
    got = read_lightgbm_text(booster.model_to_string(num_iteration=None), classes)
    return Exported(arch=got.arch, arrays=got.arrays, classes=got.classes, metadata=got.metadata)


if lightgbm is not None:
    register_exporter(lightgbm.LGBMClassifier, lightgbm.LGBMRegressor, lightgbm.Booster)(export_lightgbm)
