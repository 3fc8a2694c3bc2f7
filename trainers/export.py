"""Turn fitted scikit-learn estimators (alone or ending a Pipeline) into ModelWeights.

Each supported estimator class has one exporter function, registered with ``@register_exporter(...)``,
that returns its architecture name and arrays (an ``Exported``). ``export`` adds what is common to all:
the Pipeline's preprocessing steps, feature names, class labels and provenance metadata, and then
builds the result once so a broken export fails here rather than in the scorer.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np
import sklearn
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import MinMaxScaler, StandardScaler
from sklearn.utils.validation import check_is_fitted

from scorer.errors import UnsupportedModel
from scorer.models import ModelWeights, build
from trainers.columns import export_front, is_column_front

SUPPORTED_STEPS = ("SimpleImputer", "StandardScaler", "MinMaxScaler", "ColumnTransformer", "OneHotEncoder",
                   "OrdinalEncoder")
IMPUTE_STRATEGIES = ("mean", "median", "most_frequent", "constant")


@dataclass(frozen=True)
class Exported:
    """What an exporter returns for the final estimator: its arch, arrays, class labels, extra metadata."""

    arch: str
    arrays: Mapping[str, np.ndarray]
    classes: tuple | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)
    #: categorical inputs the estimator encodes itself (HistGradientBoosting), with "column" indices
    categorical: Sequence[Mapping[str, Any]] = ()


Exporter = Callable[[Any], Exported]
F = TypeVar("F", bound=Exporter)
_EXPORTERS: dict[type, Exporter] = {}


def register_exporter(*estimator_classes: type) -> Callable[[F], F]:
    """Decorator: ``fn(estimator) -> Exported`` exports exactly these classes (not their subclasses).

    Exact classes only, because a subclass may change ``predict`` and break parity silently.
    """

    def deco(fn: F) -> F:
        for cls in estimator_classes:
            if cls in _EXPORTERS and _EXPORTERS[cls] is not fn:
                raise ValueError(f"an exporter for {cls.__name__} is already registered")
            _EXPORTERS[cls] = fn
        return fn

    return deco


def supported_estimators() -> list[str]:
    """Names of every estimator class with a registered exporter, sorted."""
    return sorted({cls.__name__ for cls in _EXPORTERS})


def export(estimator: Any, feature_names: Sequence[str] | None = None) -> ModelWeights:
    """Export a fitted estimator or Pipeline to ModelWeights with exact scoring parity.

    ``feature_names`` defaults to the estimator's ``feature_names_in_`` (fitted on a DataFrame), else
    ``x0..x{n-1}``. Unsupported estimators or steps raise UnsupportedModel naming them and listing
    what is supported; an unfitted one raises UnsupportedModel too.
    """
    steps, final = _unwrap(estimator)
    final_name = type(final).__name__
    exporter = _EXPORTERS.get(type(final))
    if exporter is None:
        raise UnsupportedModel(
            f"cannot export {final_name}: no exporter for it. Supported estimators: "
            f"{', '.join(supported_estimators())}; supported Pipeline steps before them: {', '.join(SUPPORTED_STEPS)}"
        )
    for est in (*steps, final):
        _check_fitted(est)
    first = steps[0] if steps else final
    n_features = getattr(first, "n_features_in_", None)
    if n_features is None and hasattr(first, "num_feature"):  # a bare lightgbm.Booster
        n_features = first.num_feature()
    if n_features is None and hasattr(first, "num_features"):  # a bare xgboost.Booster
        n_features = first.num_features()
    if not isinstance(n_features, int | np.integer):
        raise UnsupportedModel(f"cannot export {type(first).__name__}: it has no n_features_in_ (is it fitted?)")
    names = _feature_names(first, int(n_features), feature_names)

    arrays: dict[str, np.ndarray] = {}
    preprocess: list[dict[str, Any]] = []
    exported_steps: list[tuple[dict[str, Any], dict[str, np.ndarray]]] = []
    categorical: list[Mapping[str, Any]] = []
    rest = steps
    if steps and any(is_column_front(s) for s in steps):
        categorical, exported_steps, used = export_front(steps, int(n_features), _export_step)
        rest = steps[used:]
    exported_steps += [_export_step(step) for step in rest]
    for i, (spec, step_arrays) in enumerate(exported_steps):
        preprocess.append(spec)
        arrays.update({f"pre{i}.{k}": v for k, v in step_arrays.items()})

    out = exporter(final)
    if out.categorical:
        if steps:
            raise UnsupportedModel(
                f"cannot export {final_name} with categorical_features behind other steps; supported: "
                "categorical_features on the raw input columns (the model first in the Pipeline)"
            )
        categorical = list(out.categorical)
    clash = set(arrays) & set(out.arrays)
    if clash:
        raise ValueError(f"exporter for {final_name} used reserved array names {sorted(clash)}")
    arrays.update(out.arrays)
    metadata = {"estimator": final_name, "sklearn_version": sklearn.__version__, "preprocess": preprocess}
    metadata.update(out.metadata)
    unused = [names[c["column"]] for c in categorical if c.get("unused")]
    categorical = [c for c in categorical if not c.get("unused")]
    if categorical:
        metadata["categorical"] = sorted(
            ({"feature": names[c["column"]], **{k: v for k, v in c.items() if k != "column"}} for c in categorical),
            key=lambda c: names.index(c["feature"]),
        )
        if unused:
            metadata["unused_inputs"] = unused
    classes = out.classes
    if classes is not None:
        classes = tuple(_label(c, final_name) for c in classes)
    weights = ModelWeights(arch=out.arch, feature_names=names, arrays=arrays, classes=classes, metadata=metadata)
    build(weights)  # a broken export must fail here, not later in the scorer
    return weights


# -- helpers ------------------------------------------------------------------------------------------
def _unwrap(estimator: Any) -> tuple[list[Any], Any]:
    """Flatten (nested) Pipelines into preprocessing steps and the final estimator."""
    if not isinstance(estimator, Pipeline):
        if not isinstance(estimator, BaseEstimator) and type(estimator) not in _EXPORTERS:
            raise UnsupportedModel(f"cannot export {type(estimator).__name__}: not a scikit-learn estimator")
        return [], estimator
    flat: list[Any] = []
    for _name, step in estimator.steps:
        if step is None or step == "passthrough":
            continue
        if isinstance(step, Pipeline):
            inner, last = _unwrap(step)
            flat.extend([*inner, last])
        else:
            flat.append(step)
    if not flat:
        raise UnsupportedModel("cannot export a Pipeline with no estimator (every step is passthrough)")
    *steps, final = flat
    for i, step in enumerate(steps):
        if type(step) not in (SimpleImputer, StandardScaler, MinMaxScaler) and not (is_column_front(step)):
            raise UnsupportedModel(
                f"cannot export Pipeline step {i} ({type(step).__name__}): supported steps before the estimator "
                f"are {', '.join(SUPPORTED_STEPS)}"
            )
    return steps, final


def _check_fitted(est: Any) -> None:
    if not isinstance(est, BaseEstimator):  # a bare library booster is fitted by construction
        return
    try:
        check_is_fitted(est)
    except NotFittedError:
        raise UnsupportedModel(f"cannot export {type(est).__name__}: it is not fitted") from None


def _feature_names(first: Any, n_features: int, given: Sequence[str] | None) -> tuple[str, ...]:
    if given is not None:
        if isinstance(given, str):
            raise UnsupportedModel("feature_names must be a sequence of str, not one str")
        names = tuple(given)
        if len(names) != n_features:
            raise UnsupportedModel(f"feature_names has {len(names)} names but the estimator takes {n_features}")
        if not all(isinstance(n, str) for n in names):
            raise UnsupportedModel(f"feature_names must all be str; got {names!r}")
        return names
    fitted = getattr(first, "feature_names_in_", None)
    if fitted is not None:
        return tuple(str(n) for n in fitted)
    return tuple(f"x{i}" for i in range(n_features))


def _label(value: Any, est: str) -> int | float | str | bool:
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, bool | int | float | str):
        return value
    raise UnsupportedModel(
        f"cannot export {est}: class label {value!r} is a {type(value).__name__}, not int/float/str/bool"
    )


def _f64(a: Any) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float64)


def _export_step(step: Any) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    name = type(step).__name__
    if isinstance(step, SimpleImputer):
        if step.strategy not in IMPUTE_STRATEGIES:
            raise UnsupportedModel(
                f"cannot export SimpleImputer(strategy={step.strategy!r}); supported: {', '.join(IMPUTE_STRATEGIES)}"
            )
        mv = step.missing_values
        if not (isinstance(mv, float) and np.isnan(mv)):
            raise UnsupportedModel(f"cannot export SimpleImputer(missing_values={mv!r}); only missing_values=np.nan")
        if step.add_indicator:
            raise UnsupportedModel("cannot export SimpleImputer(add_indicator=True)")
        try:
            stats = _f64(step.statistics_)
        except (TypeError, ValueError):
            raise UnsupportedModel(
                f"cannot export SimpleImputer: statistics {step.statistics_!r} are not numeric"
            ) from None
        arrays: dict[str, np.ndarray] = {}
        empty = np.isnan(stats)
        if empty.any():
            if step.keep_empty_features:
                raise UnsupportedModel("cannot export SimpleImputer: NaN statistics with keep_empty_features=True")
            # scikit-learn drops columns that were entirely missing at fit time; record which it keeps.
            arrays["keep"] = np.flatnonzero(~empty).astype(np.int64)
            stats = np.where(empty, 0.0, stats)
            if arrays["keep"].size == 0:
                raise UnsupportedModel("cannot export SimpleImputer: every column was empty at fit time")
        arrays["fill"] = stats
        return {"kind": "impute"}, arrays
    if isinstance(step, StandardScaler):
        arrays = {}
        if step.with_mean:
            arrays["mean"] = _f64(step.mean_)
        if step.with_std:
            arrays["scale"] = _f64(step.scale_)
        return {"kind": "standard_scaler"}, arrays
    if isinstance(step, MinMaxScaler):
        lo, hi = step.feature_range
        spec = {"kind": "minmax_scaler", "clip": bool(step.clip), "feature_range": [float(lo), float(hi)]}
        return spec, {"scale": _f64(step.scale_), "min": _f64(step.min_)}
    raise UnsupportedModel(f"cannot export Pipeline step {name}; supported: {', '.join(SUPPORTED_STEPS)}")
