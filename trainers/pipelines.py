"""Final estimators per arch, and the pipelines for data with categorical columns (``--categorical``).

One-hot for linear, logistic and MLP; ordinal codes for the tree ensembles; native categorical splits for
HistGradientBoosting. The encoders know every level of the training file (not only the segment's), a
missing category is a level of its own, and a level never seen is refused (a dead letter when streaming).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sklearn import ensemble, linear_model, neural_network, tree
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from scorer.errors import ConfigError


def categorical_pipeline(arch: str, estimator: Any, categories: Mapping[int, Sequence[Any]],
                          n_features: int) -> Any:
    """The per-arch pipeline for data with categorical columns (see ``make_estimator``)."""
    cat = sorted(categories)
    num = [j for j in range(n_features) if j not in categories]
    if arch == "hgb":
        estimator.set_params(categorical_features=cat)
        return Pipeline([("model", estimator)])
    fills = [_missing_level(categories[j]) for j in cat]
    levels = [[*categories[j], fill] for j, fill in zip(cat, fills, strict=True)]
    imputers = [("fill", SimpleImputer(strategy="constant", fill_value=fill), [k]) for k, fill in enumerate(fills)]
    if arch in ("logistic", "linear", "sgd", "mlp"):
        encoder: Any = OneHotEncoder(categories=levels, handle_unknown="error")
        numeric: Any = Pipeline([("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                                 ("scale", StandardScaler())])
    else:
        encoder = OrdinalEncoder(categories=levels, handle_unknown="error")
        numeric = SimpleImputer(strategy="median", keep_empty_features=True)
    if arch in ("lightgbm", "xgboost"):  # codes after the numeric columns, split natively; NaN handled natively
        numeric = "passthrough"
        codes = list(range(len(num), len(num) + len(cat)))
        if arch == "lightgbm":
            estimator.set_params(categorical_feature=codes)
        else:
            estimator.set_params(enable_categorical=True, max_cat_to_onehot=1,
                                 feature_types=["q"] * len(num) + ["c"] * len(cat))
    branches: list[tuple[str, Any, list[int]]] = [("num", numeric, num)] if num else []
    for k, j in enumerate(cat):
        _, imputer, _ = imputers[k]
        branches.append((f"cat{j}", Pipeline([("fill", imputer), ("encode", _one(encoder, k))]), [j]))
    return Pipeline([("columns", ColumnTransformer(branches, remainder="drop")), ("model", estimator)])


def _one(encoder: Any, k: int) -> Any:
    """The encoder for the k-th categorical column alone."""
    one = clone(encoder)
    return one.set_params(categories=[encoder.categories[k]])


def _missing_level(levels: Sequence[Any]) -> Any:
    """The level a missing category becomes: "(missing)" for text, an unused negative integer for integers."""
    if levels and isinstance(levels[0], str):
        return "(missing)" if "(missing)" not in levels else "(missing)" + "_" * len(levels)
    return min([0, *levels]) - 1


def final_estimator(arch: str, classify: bool, seed: int) -> Any:
    """The final estimator of ``arch`` with the house defaults (before any ``--param``)."""
    if arch == "logistic":
        if not classify:
            raise ConfigError("arch logistic is a classifier; use linear (or another arch) for regression")
        return linear_model.LogisticRegression(max_iter=1000)
    if arch == "linear":
        if classify:
            raise ConfigError("arch linear is a regressor; use logistic (or another arch) for classification")
        return linear_model.LinearRegression()
    if arch == "sgd":  # served as logistic/linear, with the learner state that online learning resumes from
        if classify:
            return linear_model.SGDClassifier(loss="log_loss", random_state=seed)
        return linear_model.SGDRegressor(random_state=seed)
    if arch == "tree":
        cls = tree.DecisionTreeClassifier if classify else tree.DecisionTreeRegressor
        return cls(max_depth=8, min_samples_leaf=5, random_state=seed)
    if arch in ("forest", "extra-trees"):
        if arch == "forest":
            cls = ensemble.RandomForestClassifier if classify else ensemble.RandomForestRegressor
        else:
            cls = ensemble.ExtraTreesClassifier if classify else ensemble.ExtraTreesRegressor
        return cls(n_estimators=100, max_depth=10, min_samples_leaf=2, n_jobs=1, random_state=seed)
    if arch == "gbt":
        cls = ensemble.GradientBoostingClassifier if classify else ensemble.GradientBoostingRegressor
        return cls(n_estimators=100, max_depth=3, learning_rate=0.1, random_state=seed)
    if arch == "lightgbm":
        lightgbm = _extra("lightgbm")
        cls = lightgbm.LGBMClassifier if classify else lightgbm.LGBMRegressor
        return cls(n_estimators=100, num_leaves=31, learning_rate=0.1, n_jobs=1, random_state=seed, verbose=-1)
    if arch == "xgboost":
        xgboost = _extra("xgboost")
        cls = xgboost.XGBClassifier if classify else xgboost.XGBRegressor
        return cls(n_estimators=100, max_depth=6, learning_rate=0.1, tree_method="hist", n_jobs=1,
                   random_state=seed)
    if arch == "hgb":
        cls = ensemble.HistGradientBoostingClassifier if classify else ensemble.HistGradientBoostingRegressor
        return cls(max_iter=100, random_state=seed)
    cls = neural_network.MLPClassifier if classify else neural_network.MLPRegressor
    return cls(hidden_layer_sizes=(32,), max_iter=500, random_state=seed)


def _extra(name: str) -> Any:
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError:
        raise ConfigError(f"arch {name} needs the {name} package: pip install 'scorer[{name}]'") from None
