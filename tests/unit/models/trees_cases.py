"""Tree-ensemble cases for the conformance suite (collected by model_cases.py). Small ensembles keep it fast."""

from __future__ import annotations

from model_cases import Case
from sklearn.ensemble import (
    ExtraTreesClassifier,
    ExtraTreesRegressor,
    GradientBoostingClassifier,
    GradientBoostingRegressor,
    HistGradientBoostingClassifier,
    HistGradientBoostingRegressor,
    RandomForestClassifier,
    RandomForestRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor

CASES: list[Case] = [
    Case("tree-clf-multi", lambda: DecisionTreeClassifier(random_state=0), "multiclass", "forest", missing=True),
    Case("tree-reg", lambda: DecisionTreeRegressor(max_depth=6, random_state=0), "regression", "forest"),
    Case(
        "rf-binary-str",
        lambda: RandomForestClassifier(n_estimators=7, random_state=0),
        "binary",
        "forest",
        missing=True,
        labels="str",
    ),
    Case("rf-reg", lambda: RandomForestRegressor(n_estimators=5, random_state=0), "regression", "forest", missing=True),
    Case("et-multi", lambda: ExtraTreesClassifier(n_estimators=6, random_state=0),
         "multiclass", "forest", missing=True),
    Case("et-reg", lambda: ExtraTreesRegressor(n_estimators=4, max_depth=5, random_state=0), "regression", "forest"),
    Case("gbt-binary", lambda: GradientBoostingClassifier(n_estimators=15, random_state=0), "binary", "boosted"),
    Case(
        "gbt-multi-str",
        lambda: GradientBoostingClassifier(n_estimators=8, max_depth=2, random_state=0),
        "multiclass",
        "boosted",
        labels="str",
    ),
    Case(
        "gbt-exponential",
        lambda: GradientBoostingClassifier(loss="exponential", n_estimators=10, random_state=0),
        "binary",
        "boosted",
    ),
    Case("gbt-reg-huber", lambda: GradientBoostingRegressor(loss="huber", n_estimators=12, random_state=0),
         "regression", "boosted"),
    Case(
        "impute-scale-gbt",
        lambda: make_pipeline(
            SimpleImputer(), StandardScaler(), GradientBoostingRegressor(n_estimators=10, random_state=0)
        ),
        "regression",
        "boosted",
        missing=True,
    ),
    Case(
        "hgb-binary",
        lambda: HistGradientBoostingClassifier(max_iter=15, random_state=0),
        "binary",
        "hist_boosted",
        missing=True,
    ),
    Case(
        "hgb-multi-str",
        lambda: HistGradientBoostingClassifier(max_iter=8, max_leaf_nodes=7, random_state=0),
        "multiclass",
        "hist_boosted",
        missing=True,
        labels="str",
    ),
    Case(
        "hgb-reg",
        lambda: HistGradientBoostingRegressor(max_iter=15, random_state=0),
        "regression",
        "hist_boosted",
        missing=True,
    ),
    Case(
        "hgb-poisson",
        lambda: HistGradientBoostingRegressor(loss="poisson", max_iter=10, random_state=0),
        "poisson",
        "hist_boosted",
    ),
]
