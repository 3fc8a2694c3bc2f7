"""Trainers: fit scikit-learn estimators and export them to ModelWeights (this side imports sklearn)."""

# Exporter modules register themselves on import (one line each in trainers/exporters/__init__.py).
import trainers.exporters  # noqa: F401
from trainers.export import export

__all__ = ["export"]
