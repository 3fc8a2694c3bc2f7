"""The ``ensemble`` architecture beyond the conformance suite: hard voting, refusals, binding, fused scoring."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.ensemble import StackingClassifier, VotingClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

from scorer.errors import InvalidWeights, UnsupportedModel
from scorer.models import ModelWeights, build
from scorer.models.ensemble import EnsembleModel, MemberRef
from trainers import export

FEATURES = ("a", "b", "c")


def data(seed: int = 0, n: int = 300, k: int = 2) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 3))
    z = X @ np.array([1.0, -2.0, 0.5]) + rng.normal(scale=0.7, size=n)
    return X, np.digitize(z, np.quantile(z, np.linspace(0, 1, k + 1)[1:-1]))


def logistic(seed: int, k: int = 2) -> ModelWeights:
    X, y = data(seed, k=k)
    return export(LogisticRegression().fit(X, y), feature_names=FEATURES)


def embedded(members: list[ModelWeights], combine: str = "mean", weights: list[float] | None = None) -> ModelWeights:
    arrays = {f"m{i}/{k}": v for i, w in enumerate(members) for k, v in w.arrays.items()}
    arrays["weights"] = np.ones(len(members)) if weights is None else np.asarray(weights, dtype=float)
    specs = [{"kind": "embedded", "arch": w.arch, "metadata": dict(w.metadata)} for w in members]
    return ModelWeights("ensemble", FEATURES, arrays, members[0].classes, {"combine": combine, "members": specs})


@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("weights", [None, [3.0, 1.0, 1.0], [1.0, 1.0, 1.0]])
def test_hard_vote_predicts_what_scikit_learn_predicts(k: int, weights: list[float] | None) -> None:
    X, y = data(1, k=k)
    est = VotingClassifier([("lr", LogisticRegression()), ("t1", DecisionTreeClassifier(max_depth=2, random_state=0)),
                            ("t2", DecisionTreeClassifier(max_depth=5, random_state=1))], voting="hard",
                           weights=weights).fit(X, y)
    model = build(export(est))
    shares = model.predict(X)
    np.testing.assert_allclose(shares.sum(axis=1), 1.0)
    np.testing.assert_array_equal(np.asarray(model.classes)[shares.argmax(axis=1)], est.predict(X))


def test_unsupported_members_and_stack_methods_are_refused_naming_them() -> None:
    X, y = data(2)
    voting = VotingClassifier([("lr", LogisticRegression()), ("svc", SVC())]).fit(X, y)
    with pytest.raises(UnsupportedModel, match="member 1: cannot export SVC"):
        export(voting)
    stacking = StackingClassifier([("lr", LogisticRegression())], stack_method="decision_function").fit(X, y)
    with pytest.raises(UnsupportedModel, match="stack_method 'decision_function'"):
        export(stacking)
    tree_meta = StackingClassifier([("lr", LogisticRegression())], final_estimator=DecisionTreeClassifier()).fit(X, y)
    with pytest.raises(UnsupportedModel, match="meta-model must be one of linear, logistic"):
        export(tree_meta)


def test_weights_must_match_the_members_and_mean_equals_the_weighted_average() -> None:
    members = [logistic(s) for s in (1, 2, 3)]
    X, _ = data(9, n=50)
    model = build(embedded(members, weights=[1.0, 2.0, 5.0]))
    expected = np.average([build(w).predict(X) for w in members], axis=0, weights=[1.0, 2.0, 5.0])
    np.testing.assert_allclose(model.predict(X), expected, rtol=0, atol=1e-12)
    with pytest.raises(InvalidWeights, match=r"array 'weights' must have shape \[3\]; got \[2\]"):
        build(embedded(members, weights=[1.0, 2.0]))
    with pytest.raises(InvalidWeights, match="weights must be >= 0 with a positive sum"):
        build(embedded(members, weights=[1.0, -2.0, 1.0]))
    with pytest.raises(InvalidWeights, match="needs classifiers"):
        Xr, yr = data(3)
        reg = export(LinearRegression().fit(Xr, yr.astype(float)), feature_names=FEATURES)
        build(embedded([reg, reg], combine="soft-vote"))


def test_a_bad_member_array_is_refused_naming_the_member() -> None:
    w = embedded([logistic(1), logistic(2)])
    arrays = dict(w.arrays)
    arrays["m1/coef"] = np.zeros((1, 4))
    with pytest.raises(InvalidWeights, match=r"member 1: .*coef"):
        build(ModelWeights(w.arch, w.feature_names, arrays, w.classes, w.metadata))
    arrays = dict(w.arrays, stray=np.zeros(2))
    with pytest.raises(InvalidWeights, match=r"unexpected arrays \['stray'\]"):
        build(ModelWeights(w.arch, w.feature_names, arrays, w.classes, w.metadata))


def referenced(members: list[ModelWeights], names: tuple[str, ...] = FEATURES) -> ModelWeights:
    specs = [{"kind": "ref", "model": "m", "segment": f"S{i}", "version": 1, "checksum": w.checksum()}
             for i, w in enumerate(members)]
    return ModelWeights("ensemble", names, {"weights": np.ones(len(members))}, members[0].classes,
                        {"combine": "mean", "members": specs})


def test_referenced_members_score_only_once_bound_and_must_fit() -> None:
    members = [logistic(1), logistic(2)]
    model = build(referenced(members))
    assert isinstance(model, EnsembleModel) and not model.is_bound
    X, _ = data(4, n=20)
    with pytest.raises(ValueError, match="referenced members are not loaded"):
        model.predict(X)
    refs = {r: build(w) for r, w in zip(model.references, members, strict=True)}
    bound = model.bind(refs)
    np.testing.assert_allclose(bound.predict(X), (refs[model.references[0]].predict(X)
                                                  + refs[model.references[1]].predict(X)) / 2, atol=1e-12)
    assert not model.is_bound  # binding returns a copy
    three = build(logistic(5, k=3))
    with pytest.raises(InvalidWeights, match="has classes"):
        model.bind({model.references[0]: three, model.references[1]: refs[model.references[1]]})
    with pytest.raises(InvalidWeights, match="was not loaded"):
        model.bind({model.references[0]: refs[model.references[0]]})
    with pytest.raises(InvalidWeights, match="has features"):
        other = export(LogisticRegression().fit(*data(1)), feature_names=("x", "y", "z"))
        model.bind({model.references[0]: build(other), model.references[1]: refs[model.references[1]]})
    assert MemberRef("m", "S0", 1, members[0].checksum()) == model.references[0]


def test_ensembles_of_fusable_members_fuse_across_segments_with_the_same_scores() -> None:
    X, _ = data(6, n=40)
    a = build(embedded([logistic(1), logistic(2), logistic(3)], weights=[1, 2, 3]))
    b = build(embedded([logistic(4), logistic(5), logistic(6)]))
    vote = build(embedded([logistic(1), logistic(2), logistic(3)], combine="vote", weights=[1, 1, 3]))
    assert a.fuse_key() == b.fuse_key() is not None
    owner = np.repeat([0, 1], 20)
    fused = EnsembleModel.predict_fused([a, b], X, owner)
    np.testing.assert_allclose(fused, np.vstack([a.predict(X[:20]), b.predict(X[20:])]), rtol=0, atol=1e-12)
    assert vote.fuse_key() != a.fuse_key()
    np.testing.assert_allclose(EnsembleModel.predict_fused([vote], X, np.zeros(40, dtype=int)), vote.predict(X))
