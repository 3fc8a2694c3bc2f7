"""The learner's pure pieces: label targets and reasons, the event cache, watermarks, checkpoints."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.linear_model import SGDClassifier
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from scorer.learn.labels import CachedEvent, EventCache, label_value, target_of
from scorer.learn.learner import Example, Learner
from scorer.learn.offsets import Watermarks
from scorer.learn.state import learnable
from scorer.models import build
from trainers import export
from trainers.sgd import with_learner


def test_targets_and_reasons():
    assert target_of(1, (0, 1)) == (1, None)
    assert target_of(1.0, (0, 1)) == (1, None)
    assert target_of("b", ("a", "b", "c")) == (1, None)
    assert target_of("1", (0, 1)) == (1, None)
    assert "unknown class" in target_of(7, (0, 1))[1]
    assert "wrong type" in target_of([1], (0, 1))[1]
    assert "NaN" in target_of(float("nan"), (0, 1))[1]
    assert "NaN" in target_of(float("inf"), None)[1]
    assert "wrong type" in target_of("3.5", None)[1]
    assert "wrong type" in target_of(True, None)[1]
    assert target_of(2, None) == (2.0, None)
    assert target_of(None, (0, 1))[1] == "missing label"
    assert label_value({"id": "x", "value": 3}) == ("x", 3)
    assert label_value({"label": 3}) == (None, None)


def test_watermarks_commit_the_oldest_unsafe_offset():
    marks = Watermarks()
    for offset in (5, 6, 7, 8):
        marks.add(("labels", 0), offset)
    marks.resolve(("labels", 0), 6)
    marks.resolve(("labels", 0), 8)
    assert marks.commit_points() == {("labels", 0): 5}
    marks.resolve(("labels", 0), 5)
    assert marks.commit_points() == {("labels", 0): 7}
    marks.resolve(("labels", 0), 7)
    assert marks.commit_points() == {("labels", 0): 9}
    assert marks.in_flight() == 0


def test_event_cache_is_bounded_by_age_and_count():
    now = [0.0]
    gone: list = []
    cache = EventCache(ttl=10, max_entries=3, on_evict=gone.append, clock=lambda: now[0])
    for i in range(5):
        cache.add(f"e{i}", CachedEvent("m", "s", {}, ("events", 0), i, now[0]))
    assert len(cache) == 3 and [e.offset for e in gone] == [0, 1]
    now[0] = 11
    cache.expire()
    assert len(cache) == 0 and len(gone) == 5


def test_checkpoints_every_n_labels_equal_partial_fit_on_those_batches():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(600, 3))
    y = (X @ np.array([1.0, -2.0, 0.5]) > 0).astype(int)
    pipe = make_pipeline(StandardScaler(), SGDClassifier(loss="log_loss", random_state=0, penalty="elasticnet"))
    pipe.fit(X[:200], y[:200])
    weights = with_learner(export(pipe, feature_names=["a", "b", "c"]), pipe[-1])
    learner = Learner(every_labels=50, every_seconds=1e9, clock=lambda: 0.0)
    seg = learner.add("m", "s", weights, 1, learnable(weights))
    cut = []
    for lo in range(200, 600, 30):  # arrival batches of 30, checkpoints every 50
        for i in range(lo, min(lo + 30, 600)):
            learner.learn([Example(seg, dict(zip("abc", X[i], strict=True)), int(y[i]), (("label", ("l", 0), i),))])
            for due in learner.due():
                cut.append(learner.cut(due, {"l/0": i + 1})[0])
    assert len(cut) == 8 and cut[-1].metadata["learner"]["offsets"] == {"l/0": 600}
    est = pipe[-1]
    est.set_params(shuffle=False)
    Xs = pipe[0].transform(X)
    for lo in range(200, 600, 50):
        est.partial_fit(Xs[lo:lo + 50], y[lo:lo + 50])
    # elasticnet: its L1 accumulators restart with every partial_fit call, so the batch boundaries matter
    np.testing.assert_allclose(np.asarray(cut[-1].arrays["coef"]), est.coef_, atol=1e-9, rtol=0)
    np.testing.assert_allclose(np.asarray(cut[-1].arrays["intercept"]), est.intercept_, atol=1e-9, rtol=0)
    np.testing.assert_allclose(build(cut[-1]).predict(X[:50]), pipe.predict_proba(X[:50]), atol=1e-9, rtol=0)
    assert cut[-1].metadata["learner"]["labels"] == 400


@pytest.mark.parametrize("n_segments", [10_000])
def test_ten_thousand_segments_stay_small(n_segments):
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 4))
    est = SGDClassifier(loss="log_loss", random_state=0).fit(X, X[:, 0] > 0)
    weights = with_learner(export(est, feature_names=list("abcd")), est)
    learner = Learner(every_labels=100, every_seconds=1e9, clock=lambda: 0.0)
    segs = [learner.add("m", f"s{i}", weights, 1, learnable(weights)) for i in range(n_segments)]
    examples = [Example(segs[i % n_segments], {"a": 1.0, "b": 0.0, "c": 2.0, "d": -1.0}, i % 2, ())
                for i in range(20_000)]
    learner.learn(examples)
    bank = segs[0].bank
    assert len(bank) == n_segments and bank.capacity < 2 * n_segments + 16
    state_bytes = sum(getattr(bank, name).nbytes for name in ("w", "aw", "q"))
    assert state_bytes < 10 * 1024 * 1024
    assert learner.learned == 20_000 and segs[0].labels == 2


def test_rows_a_numeric_model_cannot_take_are_rejected_with_reasons():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(200, 3))
    est = SGDClassifier(loss="log_loss", random_state=0).fit(X, X[:, 0] > 0)  # no imputer
    weights = with_learner(export(est, feature_names=["a", "b", "c"]), est)
    learner = Learner(every_labels=100, every_seconds=1e9, clock=lambda: 0.0)
    seg = learner.add("m", "s", weights, 1, learnable(weights))
    rejected = learner.learn([Example(seg, {"a": 1.0, "b": 2.0, "c": 3.0}, 1, ()),
                              Example(seg, {"a": "x", "b": 2.0, "c": 3.0}, 1, ()),
                              Example(seg, {"a": 1.0, "b": None, "c": 3.0}, 0, ()),
                              Example(seg, {"a": 0.5, "b": 0.5, "c": 0.5}, 0, ())])
    reasons = sorted(reason.split(" ")[0] for _, reason in rejected)
    assert reasons == ["feature", "missing"] and seg.labels == 2 and learner.learned == 2


def test_a_model_with_categorical_inputs_learns_behind_its_encoder():
    import pandas as pd
    from sklearn.compose import ColumnTransformer
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(2)
    frame = pd.DataFrame({"city": rng.choice(["a", "b", "c"], 300), "x": rng.normal(size=300)})
    y = ((frame["city"] == "a") ^ (frame["x"] > 0)).astype(int).to_numpy()
    pipe = Pipeline([("cols", ColumnTransformer([("onehot", OneHotEncoder(handle_unknown="ignore"), ["city"])],
                                                remainder=StandardScaler())),
                     ("model", SGDClassifier(loss="log_loss", random_state=0))]).fit(frame, y)
    try:
        weights = with_learner(export(pipe, feature_names=["city", "x"]), pipe[-1])
    except Exception as exc:  # noqa: BLE001 - this exporter does not take the pipeline: nothing to learn here
        pytest.skip(f"categorical pipeline not exportable here: {exc}")
    learner = Learner(every_labels=100, every_seconds=1e9, clock=lambda: 0.0)
    seg = learner.add("m", "s", weights, 1, learnable(weights))
    before = build(weights).predict(frame.iloc[:5]).copy()
    rejected = learner.learn([Example(seg, {"city": "b", "x": 0.3}, 1, ()),
                              Example(seg, {"city": 7, "x": 0.3}, 1, ())])
    assert len(rejected) == 1 and seg.labels == 1
    weights2, _ = learner.cut(seg, {})
    assert not np.allclose(build(weights2).predict(frame.iloc[:5]), before)
    est = pipe[-1].set_params(shuffle=False)
    est.partial_fit(pipe[:-1].transform(pd.DataFrame({"city": ["b"], "x": [0.3]})), [1])
    np.testing.assert_allclose(np.asarray(weights2.arrays["learn.coef"]), est.coef_, atol=1e-9, rtol=0)
    np.testing.assert_allclose(build(weights2).predict(frame.iloc[:5]), pipe.predict_proba(frame.iloc[:5]),
                               atol=1e-9, rtol=0)
