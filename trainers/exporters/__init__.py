"""Exporter modules, one per architecture family; importing each registers its exporters."""

# One import line per exporter module.
# isort: off
from trainers.exporters import ensemble  # noqa: F401
from trainers.exporters import lightgbm  # noqa: F401
from trainers.exporters import linear  # noqa: F401
from trainers.exporters import mlp  # noqa: F401
from trainers.exporters import trees  # noqa: F401
from trainers.exporters import xgboost  # noqa: F401
# isort: on
