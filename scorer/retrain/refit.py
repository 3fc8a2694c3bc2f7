"""What the retrain worker asks of a trainer: fit one segment's rows and hand back weights, metrics and stats.

The runtime never imports ``trainers`` (scikit-learn and the exporters are the trainer's business); the
command that starts a retrain worker passes a :data:`RefitFn`, e.g. ``trainers.refit.refit``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from scorer.errors import ScorerError
from scorer.models import ModelWeights


@dataclass(frozen=True)
class RefitRequest:
    """One segment's recent labelled rows and how to fit them (the live version's arch unless told)."""

    X: np.ndarray
    y: np.ndarray
    """Raw labels as joined from the label topic (the trainer prepares them for ``task``)."""
    task: str
    arch: str | None
    segment: str
    feature_names: tuple[str, ...]
    min_rows: int
    test_size: float
    seed: int
    params: Mapping[str, Any] = field(default_factory=dict)


class RefitResult(Protocol):
    weights: ModelWeights
    metrics: dict[str, Any]
    stats: dict[str, Any]


class RefitSkipped(ScorerError):  # a control-flow signal carrying the reason
    """The segment cannot be fitted now (too few rows, one class, ...); ``str(exc)`` is the reason."""


RefitFn = Callable[[RefitRequest], RefitResult]
