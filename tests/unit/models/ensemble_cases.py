"""Voting and stacking cases for the conformance suite (collected by model_cases.py): arch ``ensemble``.

Hard voting has no ``predict_proba`` in scikit-learn, so it is checked in test_ensemble.py instead.
"""

from __future__ import annotations

from model_cases import Case
from sklearn.ensemble import (
    GradientBoostingRegressor,
    RandomForestClassifier,
    StackingClassifier,
    StackingRegressor,
    VotingClassifier,
    VotingRegressor,
)
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.tree import DecisionTreeClassifier, DecisionTreeRegressor


def _classifiers() -> list:
    return [("lr", make_pipeline(SimpleImputer(), StandardScaler(), LogisticRegression())),
            ("tree", DecisionTreeClassifier(max_depth=4, random_state=0)),
            ("rf", RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0))]


def _regressors() -> list:
    return [("lin", LinearRegression()), ("tree", DecisionTreeRegressor(max_depth=4, random_state=0)),
            ("gb", GradientBoostingRegressor(n_estimators=8, max_depth=2, random_state=0))]


CASES: list[Case] = [
    Case("voting-soft-binary-str", lambda: VotingClassifier(_classifiers(), voting="soft", weights=[2, 1, 0.5]),
         "binary", "ensemble", missing=True, labels="str"),
    Case("voting-soft-multi", lambda: VotingClassifier(
        [("lr", LogisticRegression()), ("mlp", MLPClassifier((6,), max_iter=80, random_state=0))], voting="soft"),
         "multiclass", "ensemble"),
    Case("stacking-binary", lambda: StackingClassifier(_classifiers(), final_estimator=LogisticRegression()),
         "binary", "ensemble", missing=True),
    Case("stacking-multi-passthrough", lambda: StackingClassifier(
        [("lr", LogisticRegression()), ("tree", DecisionTreeClassifier(max_depth=3, random_state=0))],
        final_estimator=make_pipeline(StandardScaler(), LogisticRegression()), passthrough=True),
         "multiclass", "ensemble", labels="str"),
    Case("voting-reg", lambda: VotingRegressor(_regressors(), weights=[1, 2, 3]), "regression", "ensemble"),
    Case("stacking-reg-passthrough", lambda: StackingRegressor(_regressors(), final_estimator=Ridge(),
                                                               passthrough=True), "regression", "ensemble"),
]
