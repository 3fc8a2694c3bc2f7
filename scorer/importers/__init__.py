"""Readers for other libraries' model files (pure Python/numpy, no library needed, no code executed)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from scorer.errors import UnsupportedModel

if TYPE_CHECKING:
    from scorer.models import ModelWeights

SUFFIXES = (".txt", ".json", ".ubj")


def read_model_file(path: Path) -> ModelWeights:
    """A LightGBM ``.txt`` or XGBoost ``.json``/``.ubj`` file -> ModelWeights (refused with one line)."""
    from scorer.importers.lightgbm import read_lightgbm_text
    from scorer.importers.xgboost import read_xgboost_json, read_xgboost_ubj
    from scorer.models import ModelWeights

    data = path.read_bytes()
    suffix = path.suffix.lower()
    reader = {".txt": read_lightgbm_text, ".json": read_xgboost_json, ".ubj": read_xgboost_ubj}.get(suffix)
    if reader is None:
        raise UnsupportedModel(f"{path}: not a model file ({', '.join(SUFFIXES)})")
    got = reader(data)
    return ModelWeights(
        arch=got.arch, feature_names=got.feature_names, arrays=got.arrays, classes=got.classes, metadata=got.metadata
    )
