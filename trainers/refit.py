"""The retrain worker's fit function (``scorer.retrain.refit.RefitFn``), handed to it by ``scorer retrain-worker``."""

from __future__ import annotations

from scorer.retrain.refit import RefitRequest, RefitSkipped
from trainers.segment import SegmentResult, SkipSegment, TrainConfig, fit_segment, prepare_target


def refit(request: RefitRequest) -> SegmentResult:
    """Fit one segment's recent rows with the live version's architecture (or the one asked for)."""
    config = TrainConfig(arch=request.arch, task=request.task, min_rows=request.min_rows,
                         test_size=request.test_size, seed=request.seed, params=dict(request.params))
    try:
        return fit_segment(request.X, prepare_target(request.y, request.task), config, segment=request.segment,
                           feature_names=request.feature_names, task=request.task)
    except SkipSegment as exc:
        raise RefitSkipped(str(exc)) from exc
