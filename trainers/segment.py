"""Per-segment training: one scikit-learn pipeline per segment, exported to ModelWeights with its holdout
metrics and training statistics.

Library entry points (the CLI, the retraining worker and the demo use these):

- ``train_segments(data, config, progress=None) -> TrainReport``: every segment of a ``TrainingData``;
- ``fit_segment(X, y, config, segment=..., feature_names=...) -> SegmentResult``: one segment's arrays
  (raises ``SkipSegment`` with the reason when it cannot be trained);
- ``make_estimator(arch, task, seed, params)``, ``holdout_split(...)``, ``group_rows(segments)``.

Determinism: each segment's split and estimator seed derive from ``(config.seed, segment name)`` only,
so a segment trains to the same bytes whatever other segments the file holds and in whatever order.
Metrics are computed from the *exported* model (what will serve), after checking that it agrees with the
fitted estimator; a disagreement skips the segment instead of publishing a model that scores differently.
"""

from __future__ import annotations

import hashlib
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from contextlib import nullcontext
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

import numpy as np
from threadpoolctl import threadpool_limits

from scorer.errors import ConfigError
from trainers.data import TrainingData
from trainers.lineage import fingerprint
from trainers.metrics import classification_metrics, regression_metrics
from trainers.pipelines import categorical_pipeline, final_estimator
from trainers.stats import DEFAULT_BINS, feature_stats

if TYPE_CHECKING:
    from scorer.models import ModelWeights

ARCHS = ("logistic", "linear", "tree", "forest", "extra-trees", "gbt", "hgb", "mlp", "sgd", "lightgbm", "xgboost")
TASKS = ("auto", "classification", "regression")
#: ``--task auto``: an integer-valued target with at most this many distinct values is a class label.
MAX_AUTO_CLASSES = 10
#: the exported model must reproduce the estimator's outputs to this absolute tolerance.
PARITY_TOLERANCE = 1e-6
_PARITY_ROWS = 256

Progress = Callable[[int, int, str], None]
"""``progress(done, total, segment)`` after each segment (trained or skipped)."""


class SkipSegment(Exception):  # a control-flow signal carrying the reason, not a failure of ours
    """A segment that cannot be trained (too few rows, one class, ...); ``str(exc)`` is the reason."""


@dataclass(frozen=True)
class TrainConfig:
    """How every segment is trained. Invalid values raise ConfigError when the config is built."""

    arch: str | None = None
    """One of ARCHS; None picks logistic for classification and linear for regression."""
    task: str = "auto"
    """classification, regression, or auto (from the architecture, else from the target's values)."""
    min_rows: int = 50
    """Segments with fewer rows (after dropping rows without target) are skipped and reported."""
    test_size: float = 0.2
    """Share of each segment held out for metrics (stratified by class for classifiers); 0 = no holdout."""
    seed: int = 0
    n_bins: int = DEFAULT_BINS
    """Quantile bins per feature in the training statistics (drift reference)."""
    params: Mapping[str, Any] = field(default_factory=dict)
    """Keyword overrides for the final estimator, e.g. {"n_estimators": 50}."""
    threads: int | None = 1
    """BLAS and OpenMP threads while ``train_segments`` runs (None = leave as is); small segments train
    fastest on one. Segments are trained one after another either way."""

    def __post_init__(self) -> None:
        if self.arch is not None and self.arch not in ARCHS:
            raise ConfigError(f"unknown arch {self.arch!r}; choose one of {', '.join(ARCHS)}")
        if self.task not in TASKS:
            raise ConfigError(f"unknown task {self.task!r}; choose one of {', '.join(TASKS)}")
        if self.arch == "logistic" and self.task == "regression":
            raise ConfigError("arch logistic is a classifier; use linear (or another arch) for regression")
        if self.arch == "linear" and self.task == "classification":
            raise ConfigError("arch linear is a regressor; use logistic (or another arch) for classification")
        if isinstance(self.min_rows, bool) or not isinstance(self.min_rows, int) or self.min_rows < 2:
            raise ConfigError(f"min_rows must be an integer >= 2; got {self.min_rows!r}")
        if not 0.0 <= float(self.test_size) <= 0.9:
            raise ConfigError(f"test_size must be between 0 and 0.9; got {self.test_size!r}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0:
            raise ConfigError(f"seed must be a non-negative integer; got {self.seed!r}")
        if isinstance(self.n_bins, bool) or not isinstance(self.n_bins, int) or not 1 <= self.n_bins <= 1000:
            raise ConfigError(f"n_bins must be an integer in 1..1000; got {self.n_bins!r}")
        if self.threads is not None and (isinstance(self.threads, bool) or not isinstance(self.threads, int)
                                         or self.threads < 1):
            raise ConfigError(f"threads must be a positive integer or None; got {self.threads!r}")
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))


@dataclass(frozen=True)
class SegmentResult:
    """A trained segment: weights for the store plus the metrics and stats that go beside them."""

    segment: str
    weights: ModelWeights
    metrics: dict[str, Any]
    stats: dict[str, Any]
    n_rows: int


@dataclass(frozen=True)
class SkippedSegment:
    segment: str
    n_rows: int
    reason: str


@dataclass(frozen=True)
class TrainReport:
    """What ``train_segments`` did: results in segment order, skipped segments with reasons."""

    task: str
    arch: str
    feature_names: tuple[str, ...]
    results: tuple[SegmentResult, ...]
    skipped: tuple[SkippedSegment, ...]
    n_dropped: int = 0
    seconds: float = 0.0


# -- task and target ----------------------------------------------------------------------------------
def resolve_task(y: np.ndarray, task: str = "auto", arch: str | None = None, target: str = "target") -> str:
    """classification or regression: explicit, implied by the arch, else read from the target's values."""
    if task != "auto":
        return task
    if arch == "logistic":
        return "classification"
    if arch == "linear":
        return "regression"
    if y.dtype.kind in "USOb":
        return "classification"
    if y.dtype.kind in "iu":
        return "classification" if np.unique(y).size <= MAX_AUTO_CLASSES else "regression"
    if y.dtype.kind == "f":
        finite = y[np.isfinite(y)]
        integral = bool(np.all(finite == np.round(finite)))
        return "classification" if integral and np.unique(finite).size <= MAX_AUTO_CLASSES else "regression"
    raise ConfigError(f"target {target!r} has dtype {y.dtype}; cannot tell classification from regression")


def prepare_target(y: np.ndarray, task: str, target: str = "target") -> np.ndarray:
    """Labels for classification (integral floats become ints so classes read 1, not 1.0), floats for regression."""
    if task == "regression":
        if y.dtype.kind not in "iuf" or y.dtype.kind == "b":
            raise ConfigError(f"regression needs a numeric target; {target!r} holds {y.dtype} values")
        return y.astype(np.float64)
    if y.dtype.kind == "f":
        if not np.all(y == np.round(y)):
            raise ConfigError(f"classification needs class labels; target {target!r} has non-integer values "
                              "(pass --task regression?)")
        return y.astype(np.int64)
    if y.dtype.kind == "O":
        return y.astype(str)
    return y


# -- estimators ---------------------------------------------------------------------------------------
def make_estimator(arch: str, task: str, seed: int = 0, params: Mapping[str, Any] | None = None,
                   categories: Mapping[int, Sequence[Any]] | None = None, n_features: int = 0) -> Any:
    """An unfitted scikit-learn pipeline for ``arch`` with the house defaults (every one exportable).

    linear, logistic and mlp get median imputation and standard scaling; tree ensembles get median
    imputation; hgb handles missing values itself. ``params`` override the final estimator's defaults.
    ``categories`` (column index -> levels; ``n_features`` in all): see :mod:`trainers.pipelines`.
    """
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    if arch not in ARCHS:
        raise ConfigError(f"unknown arch {arch!r}; choose one of {', '.join(ARCHS)}")
    classify = task == "classification"
    estimator = final_estimator(arch, classify, seed)
    if params:
        known = estimator.get_params(deep=False)
        for key in params:
            if key not in known:
                raise ConfigError(f"unknown parameter {key!r} for {type(estimator).__name__}; "
                                  f"known: {', '.join(sorted(known))}")
        estimator.set_params(**dict(params))
    # keep_empty_features: a column with no values in one segment still occupies its slot (imputed 0),
    # so the exported model keeps the feature order every other segment has.
    impute = ("impute", SimpleImputer(strategy="median", keep_empty_features=True))
    if categories:
        return categorical_pipeline(arch, estimator, categories, n_features)
    if arch in ("logistic", "linear", "sgd", "mlp"):
        return Pipeline([impute, ("scale", StandardScaler()), ("model", estimator)])
    if arch in ("hgb", "lightgbm", "xgboost"):
        return Pipeline([("model", estimator)])
    return Pipeline([impute, ("model", estimator)])


def default_arch(task: str) -> str:
    return "logistic" if task == "classification" else "linear"


# -- splitting and grouping ---------------------------------------------------------------------------
def segment_seed(seed: int, segment: str) -> int:
    """A 32-bit seed from the run seed and the segment name alone (independent of the other segments)."""
    digest = hashlib.sha256(f"{seed}\x00{segment}".encode()).digest()
    return int.from_bytes(digest[:4], "little")


def holdout_split(y: np.ndarray, test_size: float, seed: int, *, stratify: bool) -> tuple[np.ndarray, np.ndarray]:
    """Sorted train and holdout row indices; stratified by label when ``stratify``.

    Stratified: each class gives ``round(test_size * n_class)`` rows to the holdout but keeps at least one
    for training, so the model knows every class of its segment. At least one row always stays in training.
    """
    n = int(y.shape[0])
    if test_size <= 0 or n < 2:
        return np.arange(n), np.empty(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    if stratify:
        _, inverse = np.unique(y, return_inverse=True)
        order = np.argsort(inverse, kind="stable")
        bounds = np.cumsum(np.bincount(inverse))
        test_parts = []
        for members in np.split(order, bounds[:-1]):
            n_test = min(int(np.floor(test_size * members.size + 0.5)), members.size - 1)
            test_parts.append(rng.permutation(members)[:n_test])
        test = np.sort(np.concatenate(test_parts)) if test_parts else np.empty(0, dtype=np.int64)
    else:
        n_test = min(max(int(np.floor(test_size * n + 0.5)), 1), n - 1)
        test = np.sort(rng.permutation(n)[:n_test])
    mask = np.ones(n, dtype=bool)
    mask[test] = False
    return np.flatnonzero(mask), test.astype(np.int64)


def group_rows(segments: np.ndarray) -> list[tuple[str, np.ndarray]]:
    """(segment, row indices) for every segment, sorted by name; one sort of the whole column, no per-segment scan.

    Row indices keep their original order inside each segment.
    """
    if segments.size == 0:
        return []
    names, inverse = np.unique(segments, return_inverse=True)
    order = np.argsort(inverse, kind="stable")
    bounds = np.cumsum(np.bincount(inverse, minlength=names.size))
    return [(str(name), rows) for name, rows in zip(names, np.split(order, bounds[:-1]), strict=True)]


# -- training -----------------------------------------------------------------------------------------
def fit_segment(X: np.ndarray, y: np.ndarray, config: TrainConfig | None = None, *, segment: str = "",
                feature_names: Sequence[str] | None = None, task: str | None = None,
                times: np.ndarray | None = None,
                categories: Mapping[str, Sequence[Any]] | None = None) -> SegmentResult:
    """Fit, export and evaluate one segment. ``y`` should come from ``prepare_target`` for the task.

    Raises SkipSegment (with the reason) when the segment cannot be trained, ConfigError for settings
    that can never work (unknown parameter, arch and task that do not fit). Limits BLAS/OpenMP threads to
    ``config.threads`` while it runs; the limit is process-wide, as threadpoolctl's limits are.
    """
    config = config or TrainConfig()
    with threadpool_limits(limits=config.threads) if config.threads is not None else nullcontext():
        return _fit_segment(X, y, config, segment=segment, feature_names=feature_names, task=task,
                            categories=categories, times=times)


def _fit_segment(X: np.ndarray, y: np.ndarray, config: TrainConfig, *, segment: str,
                 feature_names: Sequence[str] | None, task: str | None,
                 times: np.ndarray | None = None,
                 categories: Mapping[str, Sequence[Any]] | None = None) -> SegmentResult:
    """fit_segment without the thread limit (train_segments sets it once: setting it costs milliseconds)."""
    from scorer.models import build
    from trainers.export import export

    X = np.asarray(X, dtype=object if categories else np.float64)
    y = np.asarray(y)
    names = tuple(feature_names) if feature_names is not None else tuple(f"x{j}" for j in range(X.shape[1]))
    by_index = {names.index(c): tuple(levels) for c, levels in (categories or {}).items()}
    if X.ndim != 2 or X.shape != (y.shape[0], len(names)):
        raise ConfigError(f"segment {segment!r}: X {X.shape} does not match y {y.shape} and {len(names)} features")
    task = task or resolve_task(y, config.task, config.arch)
    arch = config.arch or default_arch(task)
    classify = task == "classification"
    n_rows = int(y.shape[0])
    if n_rows < config.min_rows:
        raise SkipSegment(f"{n_rows} rows < min_rows {config.min_rows}")
    if classify:
        labels = np.unique(y)
        if labels.size < 2:
            raise SkipSegment(f"only one class ({_label(labels[0])}) in {n_rows} rows")

    seed = segment_seed(config.seed, segment)
    train, holdout = holdout_split(y, config.test_size, seed, stratify=classify)
    estimator = make_estimator(arch, task, seed, config.params, by_index, len(names))
    caught: list[str] = []
    with warnings.catch_warnings(record=True) as records:
        warnings.simplefilter("always")
        try:
            estimator.fit(X[train], y[train])
        except ValueError as exc:  # scikit-learn's way of refusing this segment's data
            raise SkipSegment(f"fit failed: {_first_line(exc)}") from None
    for record in records:
        message = f"{record.category.__name__}: {_first_line(record.message)}"[:200]
        if message not in caught:
            caught.append(message)

    weights = export(estimator, feature_names=list(names))
    weights = replace(weights, metadata={**weights.metadata, "lineage": fingerprint(X, y, times)})
    if arch == "sgd":
        from trainers.sgd import with_learner

        weights = with_learner(weights, estimator[-1])
    model = build(weights)
    X_eval = X[holdout] if holdout.size else X[train[:_PARITY_ROWS]]
    served = model.predict(X_eval)
    reference = estimator.predict_proba(X_eval) if classify else estimator.predict(X_eval)
    # relative beyond 1: XGBoost sums in float32, so large regression targets differ in the 7th digit
    gap = float(np.max(np.abs(served - reference) / np.maximum(1.0, np.abs(reference)))) if served.size else 0.0
    if not np.isfinite(gap) or gap > PARITY_TOLERANCE:
        raise SkipSegment(f"exported model disagrees with the fitted {type(estimator[-1]).__name__} "
                          f"by {gap:.3g} (> {PARITY_TOLERANCE:g})")

    metrics: dict[str, Any] = {"task": task, "arch": arch, "n_train": int(train.size), "n_holdout": int(holdout.size)}
    if holdout.size:
        held = (classification_metrics(y[holdout], served, model.classes) if classify
                else regression_metrics(y[holdout], served))
        held.pop("n")
        metrics.update(held)
    else:
        metrics.update(dict.fromkeys(("roc_auc", "log_loss", "accuracy") if classify else ("rmse", "mae", "r2")))
    if caught:
        metrics["warnings"] = caught
    stats = feature_stats(X[train], names, n_bins=config.n_bins, y=y[train],
                          classes=model.classes if classify else None,
                          categories=model.categorical.levels() if model.categorical is not None else None)
    return SegmentResult(segment=segment, weights=weights, metrics=metrics, stats=stats, n_rows=n_rows)


def train_segments(data: TrainingData, config: TrainConfig | None = None, *,
                   progress: Progress | None = None) -> TrainReport:
    """Train every segment of ``data`` (sorted by name); segments that cannot be trained are reported, not fatal.

    Raises ConfigError for settings that fail every segment alike (task, arch, params). A report with no
    results is not an error here; callers decide whether that is a failure (the CLI says it is).
    """
    config = config or TrainConfig()
    started = time.perf_counter()
    task = resolve_task(data.y, config.task, config.arch, data.target)
    arch = config.arch or default_arch(task)
    y = prepare_target(data.y, task, data.target)
    make_estimator(arch, task, 0, config.params)  # refuse a bad arch/task/params once, before any segment
    groups = group_rows(data.segments)
    results: list[SegmentResult] = []
    skipped: list[SkippedSegment] = []
    # One BLAS/OpenMP thread: segments are small, and threads on tiny problems spend more time waking and
    # spinning than computing (measured on a busy 2-core machine: logistic ~3x, hgb ~5x less CPU per segment).
    with threadpool_limits(limits=config.threads):
        for done, (segment, rows) in enumerate(groups, start=1):
            try:
                if rows.size < config.min_rows:
                    raise SkipSegment(f"{rows.size} rows < min_rows {config.min_rows}")
                results.append(_fit_segment(data.X[rows], y[rows], config, segment=segment,
                                            feature_names=data.feature_names, task=task,
                                            categories=data.categories,
                                            times=None if data.times is None else data.times[rows]))
            except SkipSegment as exc:
                skipped.append(SkippedSegment(segment=segment, n_rows=int(rows.size), reason=str(exc)))
            if progress is not None:
                progress(done, len(groups), segment)
    return TrainReport(task=task, arch=arch, feature_names=data.feature_names, results=tuple(results),
                       skipped=tuple(skipped), n_dropped=data.n_dropped, seconds=time.perf_counter() - started)


def _label(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


def _first_line(exc: object) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
