"""Shadow and drift hooks on real built models (no services): same events, separate topic, never raising."""

from __future__ import annotations

import numpy as np
import orjson
from sklearn.linear_model import LogisticRegression

from scorer.monitor.drift import DriftConfig
from scorer.monitor.hooks import DriftHook, ShadowHook
from scorer.monitor.observer import DriftObserver
from scorer.stream.cache import Target, assemble, prepare
from scorer.stream.events import Event
from scorer.stream.scoring import ScoredGroup
from trainers import export
from trainers.stats import feature_stats

NAMES = ("a", "b")


def loaded(version: int, flip: bool = False, names: tuple[str, ...] = NAMES):
    rng = np.random.default_rng(version)
    X = rng.normal(size=(300, len(names)))
    y = (X[:, 0] > 0).astype(int)
    estimator = LogisticRegression().fit(X, 1 - y if flip else y)
    return prepare("delay", "ORD", version, export(estimator, feature_names=list(names)))


def group_for(serving, scored_by, X: np.ndarray, canary: bool = False) -> ScoredGroup:
    events = [Event(f"e-{i}", "delay", "ORD", dict(zip(NAMES, row.tolist(), strict=True)), i)
              for i, row in enumerate(X)]
    return ScoredGroup("delay", "ORD", serving, scored_by, canary, events, X, scored_by.predictor.predict(X))


def test_shadow_scores_the_same_events_into_its_own_topic() -> None:
    live, shadow = loaded(1), loaded(2, flip=True)
    serving = assemble("delay", "ORD", Target(1, shadow_version=2), {1: live, 2: shadow})
    X = np.random.default_rng(0).normal(size=(50, 2))
    hook = ShadowHook("shadow-topic")
    messages = hook(group_for(serving, live, X))
    assert len(messages) == 50 and {topic for topic, _, _ in messages} == {"shadow-topic"}
    first = orjson.loads(messages[0][2])
    assert messages[0][1] == b"e-0"
    assert first["version"] == 2 and first["shadow"] is True and first["canary"] is False
    expected = shadow.predictor.predict(X[:1])[0, 1]
    assert abs(first["prediction"] - expected) < 1e-12
    assert first["label"] in (0, 1)


def test_no_shadow_no_messages_and_other_feature_order_is_respected() -> None:
    live = loaded(1)
    plain = assemble("delay", "ORD", Target(1), {1: live})
    X = np.random.default_rng(1).normal(size=(5, 2))
    assert ShadowHook()(group_for(plain, live, X)) == []
    reordered = loaded(3, names=("b", "a"))
    serving = assemble("delay", "ORD", Target(1, shadow_version=3), {1: live, 3: reordered})
    messages = ShadowHook()(group_for(serving, live, X))
    values = [orjson.loads(m[2])["prediction"] for m in messages]
    assert np.allclose(values, reordered.predictor.predict(X[:, ::-1])[:, 1])


def test_shadow_that_cannot_impute_drops_only_its_rows() -> None:
    live, shadow = loaded(1), loaded(2)
    serving = assemble("delay", "ORD", Target(1, shadow_version=2), {1: live, 2: shadow})
    X = np.random.default_rng(2).normal(size=(4, 2))
    group = group_for(serving, live, X)
    group.X = X.copy()
    group.X[1, 0] = np.nan  # as if the live pipeline imputed it
    hook = ShadowHook()
    messages = hook(group)
    assert [m[1] for m in messages] == [b"e-0", b"e-2", b"e-3"] and hook.failures == 1


def test_drift_hook_counts_under_the_scoring_version() -> None:
    live = loaded(1)
    serving = assemble("delay", "ORD", Target(1), {1: live})
    stats = feature_stats(np.random.default_rng(5).normal(size=(500, 2)), NAMES)
    observer = DriftObserver(lambda *key: (NAMES, stats), _never_called, config=DriftConfig(every_events=10_000))
    observer.monitor.set_reference(("delay", "ORD", 1), _reference(stats))
    hook = DriftHook(observer)
    for _ in range(3):
        hook(group_for(serving, live, np.random.default_rng(3).normal(size=(10, 2))))
    window = observer.monitor._windows[("delay", "ORD", 1)]
    assert window.n == 0 and observer._held_rows[("delay", "ORD", 1)] == 30  # held until the flush bins them
    observer._bin_all()
    assert window.n == 30 and observer._held_total == 0


async def _never_called(messages: list) -> None:
    raise AssertionError("nothing is due")


def _reference(stats: dict):
    from scorer.monitor.drift import DriftReference

    return DriftReference.from_stats(NAMES, stats)
