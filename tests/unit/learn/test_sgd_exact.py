"""The bank's updates equal scikit-learn's SGDClassifier/SGDRegressor.partial_fit within 1e-9."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from sklearn.linear_model import SGDClassifier, SGDRegressor
from sklearn.linear_model._stochastic_gradient import fit_binary

from scorer.errors import ConfigError
from scorer.learn.bank import Bank, LearnerState, step_ranks
from scorer.learn.sgd import SGDParams, encode_targets

TOL = 1e-9


def _data(seed: int, n: int, f: int, classes: int | None):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, f)) * rng.uniform(0.5, 2.0, size=f)
    z = X @ rng.normal(size=f)
    if classes is None:
        return X, z + rng.normal(scale=0.3, size=n) + 0.5
    cuts = np.quantile(z + rng.normal(scale=0.5, size=n), np.linspace(0, 1, classes + 1)[1:-1])
    return X, np.searchsorted(cuts, z + rng.normal(scale=0.5, size=n))


def _sklearn_averaged_classifier(params: SGDParams, X, y, batches, classes):
    """scikit-learn's own kernel (``fit_binary`` -> ``_plain_sgd``) with the running intercept carried from
    call to call: ``SGDClassifier.partial_fit`` with averaging drops it (see
    ``test_sklearn_partial_fit_drops_the_running_intercept_when_averaging``)."""
    est = SGDClassifier(**params.estimator_params())
    est.partial_fit(X[:1], y[:1], classes=np.arange(classes))  # sets up classes_, the loss object, ...
    rows = 1 if classes == 2 else classes
    est._allocate_parameter_mem(n_classes=classes, n_features=X.shape[1], input_dtype=np.float64)
    est.t_ = 1.0
    running = np.zeros(rows)
    for lo, hi in batches:
        for r in range(rows):
            est._standard_intercept[r] = running[r]
            _, running[r], _ = fit_binary(est, 1 if classes == 2 else r, X[lo:hi], y[lo:hi], params.alpha,
                                          params.learning_rate, 1, 1.0, 1.0, np.ones(hi - lo))
        est.t_ += hi - lo
    shape = (rows, X.shape[1])
    if params.average <= est.t_ - 1:
        est.coef_, est.intercept_ = est._average_coef.reshape(shape), est._average_intercept
    else:
        est.coef_, est.intercept_ = est._standard_coef.reshape(shape), running
    return est


def _sklearn(params: SGDParams, X, y, batches, classes):
    kw = params.estimator_params()
    if params.average and classes is not None:
        return _sklearn_averaged_classifier(params, X, y, batches, classes)
    if classes is None:
        est = SGDRegressor(**kw)
        for lo, hi in batches:
            est.partial_fit(X[lo:hi], y[lo:hi])
    else:
        est = SGDClassifier(**kw)
        for lo, hi in batches:
            est.partial_fit(X[lo:hi], y[lo:hi], classes=np.arange(classes))
    return est


def _ours(params: SGDParams, X, y, batches, classes):
    rows_n = 1 if classes in (None, 2) else classes
    bank = Bank(params.loss, params.penalty, params.learning_rate, X.shape[1])
    rows = bank.add(params, LearnerState.fresh(rows_n, X.shape[1]))
    for lo, hi in batches:
        targets = encode_targets(params.loss, y[lo:hi], None if classes is None else rows_n)
        n = hi - lo
        rr = np.tile(rows, n)
        xi = np.repeat(np.arange(lo, hi), rows_n)
        bank.learn(rr, X[xi], targets.ravel(), np.repeat(np.arange(n), rows_n))
        bank.finish(rows)
    return bank.state(rows)


def _batches(n: int, sizes: list[int]):
    out, lo = [], 0
    for size in itertools.cycle(sizes):
        if lo >= n:
            return out
        out.append((lo, min(n, lo + size)))
        lo += size


def _check(params, classes, sizes, seed=0, n=300, f=6):
    X, y = _data(seed, n, f, classes)
    batches = _batches(n, sizes)
    est = _sklearn(params, X, y, batches, classes)
    state = _ours(params, X, y, batches, classes)
    coef, intercept = state.served(params)
    assert state.t == est.t_
    assert np.abs(est.coef_).max() < 1e4, "diverged: the comparison would say nothing"
    np.testing.assert_allclose(coef.reshape(est.coef_.shape), est.coef_, rtol=0, atol=TOL)
    np.testing.assert_allclose(intercept, est.intercept_, rtol=0, atol=TOL)
    if params.average:
        np.testing.assert_allclose(state.coef.reshape(est.coef_.shape), est._standard_coef.reshape(est.coef_.shape),
                                   rtol=0, atol=TOL)
        np.testing.assert_allclose(state.avg_coef.reshape(est.coef_.shape), est._average_coef.reshape(est.coef_.shape),
                                   rtol=0, atol=TOL)


SIZES = [[1], [7, 1, 30], [300]]


@pytest.mark.parametrize("loss", ["log_loss", "hinge", "modified_huber", "squared_hinge", "perceptron"])
@pytest.mark.parametrize("penalty", ["l2", "l1", "elasticnet", "none"])
@pytest.mark.parametrize("classes", [2, 3])
def test_classifier_losses_and_penalties(loss, penalty, classes):
    for sizes in SIZES:
        _check(SGDParams(loss=loss, penalty=penalty, alpha=0.5 if loss == "squared_hinge" else 0.01), classes, sizes)


@pytest.mark.parametrize("schedule,eta0", [("optimal", 0.01), ("constant", 0.05), ("invscaling", 0.5),
                                           ("adaptive", 0.05)])
@pytest.mark.parametrize("average", [0, 1, 25])
@pytest.mark.parametrize("penalty", ["l2", "elasticnet"])
def test_classifier_schedules_and_averaging(schedule, eta0, average, penalty):
    for sizes in SIZES:
        _check(SGDParams(loss="log_loss", penalty=penalty, learning_rate=schedule, eta0=eta0, average=average,
                         alpha=1e-3), 3, sizes, seed=1)
        _check(SGDParams(loss="hinge", penalty=penalty, learning_rate=schedule, eta0=eta0, average=average), 2,
               sizes, seed=2)


@pytest.mark.parametrize("loss", ["squared_error", "huber", "epsilon_insensitive", "squared_epsilon_insensitive"])
@pytest.mark.parametrize("penalty", ["l2", "l1", "elasticnet"])
@pytest.mark.parametrize("average", [0, 10])
def test_regressor(loss, penalty, average):
    for sizes in SIZES:
        _check(SGDParams(loss=loss, penalty=penalty, learning_rate="invscaling", power_t=0.25, average=average),
               None, sizes, seed=3)
        _check(SGDParams(loss=loss, penalty=penalty, learning_rate="optimal", alpha=1.0, average=average),
               None, sizes, seed=4)


@pytest.mark.parametrize("schedule", ["constant", "adaptive"])
@pytest.mark.parametrize("classes", [2, 3])
@pytest.mark.parametrize("fit_intercept", [True, False])
def test_plain_sgd_at_a_fixed_eta(schedule, classes, fit_intercept):
    """The log loss without penalty at a fixed eta: the bank's padded fast step (River's plain SGD rule)."""
    for sizes in SIZES:
        _check(SGDParams(loss="log_loss", penalty="none", learning_rate=schedule, eta0=0.05,
                         fit_intercept=fit_intercept), classes, sizes, seed=6)


def test_classifier_with_a_regression_loss():
    _check(SGDParams(loss="squared_error", learning_rate="constant", eta0=0.01), 2, [5])


def test_sklearn_partial_fit_drops_the_running_intercept_when_averaging():
    """Why the averaged classifiers are compared with ``fit_binary`` driven by hand: ``partial_fit`` keeps
    the intercept from when averaging began (0 here) instead of the running one. Our learner carries it."""
    X, y = _data(0, 100, 3, 2)
    est = SGDClassifier(**SGDParams(average=1).estimator_params())
    for lo in range(0, 100, 25):
        est.partial_fit(X[lo:lo + 25], y[lo:lo + 25], classes=[0, 1])
    assert est._standard_intercept[0] == 0.0


def test_warm_start_from_given_weights_matches_coef_init():
    X, y = _data(5, 200, 4, 2)
    params = SGDParams(loss="log_loss", average=5)
    start = np.array([[0.5, -0.25, 1.0, 0.0]]), np.array([0.3])
    est = SGDClassifier(**params.estimator_params())
    est.partial_fit(X[:50], y[:50], classes=[0, 1])  # allocate, then overwrite as coef_init would
    est = SGDClassifier(**params.estimator_params())
    est._allocate_parameter_mem(2, 4, np.float64, coef_init=start[0].copy(), intercept_init=start[1].copy())
    est.partial_fit(X, y, classes=[0, 1])
    bank = Bank("log_loss", "l2", "optimal", 4)
    state = LearnerState(start[0].copy(), start[1].copy(), np.zeros((1, 4)), np.zeros(1))
    rows = bank.add(params, state)
    bank.learn(np.repeat(rows, 200), X, encode_targets("log_loss", y, 1).ravel(), np.arange(200))
    coef, intercept = bank.state(rows).served(params)
    np.testing.assert_allclose(coef, est.coef_, atol=TOL, rtol=0)
    np.testing.assert_allclose(intercept, est.intercept_, atol=TOL, rtol=0)


@pytest.mark.parametrize("penalty,schedule", [("elasticnet", "optimal"), ("none", "constant")])
def test_many_segments_in_lockstep_equal_each_alone(penalty, schedule):
    """Interleaved labels of 40 learners (binary and 3-class, different alphas or etas, label counts from
    a handful to a hundred) in one bank equal 40 separate scikit-learn estimators fed each learner's own
    labels in order."""
    rng = np.random.default_rng(9)
    f = 5
    bank = Bank("log_loss", penalty, schedule, f)
    specs = []
    for s in range(40):
        classes = 2 if s % 2 else 3
        if schedule == "optimal":
            params = SGDParams(alpha=10.0 ** -rng.integers(2, 5), average=int(rng.integers(0, 3)), penalty=penalty)
        else:  # the padded fast step: no decay, no averaging
            params = SGDParams(penalty=penalty, learning_rate=schedule, eta0=float(rng.uniform(0.01, 0.2)),
                               fit_intercept=bool(s % 3))
        rows = bank.add(params, LearnerState.fresh(1 if classes == 2 else classes, f))
        specs.append((params, classes, rows))
    owner = rng.choice(40, size=2000, p=np.r_[np.full(20, 0.04), np.full(20, 0.01)])  # uneven counts
    X = rng.normal(size=(2000, f))
    y = np.array([rng.integers(0, specs[o][1]) for o in owner])
    for lo, hi in ((0, 700), (700, 701), (701, 2000)):
        o = owner[lo:hi]
        ranks = step_ranks(o)
        rows_l, xi, ys, rk = [], [], [], []
        for i, seg in enumerate(o):
            params, classes, rows = specs[seg]
            targets = encode_targets("log_loss", np.array([y[lo + i]]), len(rows) if classes > 2 else 1)[0]
            rows_l.extend(rows)
            xi.extend([lo + i] * len(rows))
            ys.extend(targets)
            rk.extend([ranks[i]] * len(rows))
        bank.learn(np.array(rows_l), X[xi], np.array(ys), np.array(rk))
        for _, _, rows in specs:
            bank.finish(rows)
    for s, (params, classes, rows) in enumerate(specs):
        parts = [np.flatnonzero(owner[lo:hi] == s) + lo for lo, hi in ((0, 700), (700, 701), (701, 2000))]
        parts = [p for p in parts if p.size]
        ends = np.cumsum([p.size for p in parts])
        mine = np.concatenate(parts)
        est = _sklearn(params, X[mine], y[mine], list(zip(np.r_[0, ends[:-1]], ends, strict=True)), classes)
        coef, intercept = bank.state(rows).served(params)
        np.testing.assert_allclose(coef.reshape(est.coef_.shape), est.coef_, atol=TOL, rtol=0)
        np.testing.assert_allclose(intercept, est.intercept_, atol=TOL, rtol=0)


def test_step_ranks_count_within_each_owner():
    assert step_ranks(np.array([3, 1, 3, 3, 1, 7])).tolist() == [0, 0, 1, 2, 1, 0]
    assert step_ranks(np.array([], dtype=np.int64)).tolist() == []


def test_params_refuse_nonsense():
    with pytest.raises(ConfigError, match="loss"):
        SGDParams(loss="nope")
    with pytest.raises(ConfigError, match="needs eta0"):
        SGDParams(learning_rate="constant", eta0=0.0)
    with pytest.raises(ConfigError, match="unknown sgd parameter"):
        SGDParams.from_json({"alpah": 1.0})
    assert SGDParams.from_json(SGDParams(penalty=None).to_json()) == SGDParams(penalty="none")


def test_restarting_the_schedule_equals_a_fresh_estimator_from_the_current_weights():
    """What ``--reset-on-drift`` does: t back to 1 and the averages cleared, the weights kept."""
    X, y = _data(11, 300, 4, 2)
    params = SGDParams(loss="log_loss", average=5, alpha=1e-3)
    bank = Bank("log_loss", "l2", "optimal", 4)
    rows = bank.add(params, LearnerState.fresh(1, 4))
    targets = encode_targets("log_loss", y, 1).ravel()
    bank.learn(np.repeat(rows, 150), X[:150], targets[:150], np.arange(150))
    bank.restart_schedule(rows)
    before = bank.state(rows)
    assert before.t == 1.0 and not before.avg_coef.any()
    ref = SGDClassifier(**params.estimator_params())
    ref.partial_fit(X[:1], y[:1], classes=[0, 1])
    ref._allocate_parameter_mem(n_classes=2, n_features=4, input_dtype=np.float64,
                                coef_init=before.coef.ravel().copy(), intercept_init=before.intercept.copy())
    ref.t_ = 1.0
    _, running, _ = fit_binary(ref, 1, X[150:], y[150:], params.alpha, params.learning_rate, 1, 1.0, 1.0,
                               np.ones(150))
    bank.learn(np.repeat(rows, 150), X[150:], targets[150:], np.arange(150))
    after = bank.state(rows)
    np.testing.assert_allclose(after.coef.ravel(), ref._standard_coef.ravel(), atol=TOL, rtol=0)
    np.testing.assert_allclose(after.intercept, [running], atol=TOL, rtol=0)
    np.testing.assert_allclose(after.avg_coef.ravel(), ref._average_coef.ravel(), atol=TOL, rtol=0)


@pytest.mark.parametrize("penalty,schedule", [("none", "constant"), ("l2", "optimal")])
@pytest.mark.parametrize("classes", [2, 3])
def test_one_busy_learner_among_many_quiet_ones(penalty, schedule, classes):
    """300 labels for one learner and one for each of 149 others: the ragged step layout (a dense one would
    be 300 steps x 150 learners), still equal to scikit-learn per learner."""
    rng = np.random.default_rng(12)
    f, n_rows = 4, 1 if classes == 2 else classes
    params = SGDParams(penalty=penalty, learning_rate=schedule, eta0=0.05, alpha=1e-3)
    bank = Bank("log_loss", penalty, schedule, f)
    learners = [bank.add(params, LearnerState.fresh(n_rows, f)) for _ in range(150)]
    owner = np.r_[np.zeros(300, dtype=np.int64), np.arange(1, 150)]
    rng.shuffle(owner)
    X, y = rng.normal(size=(owner.size, f)), rng.integers(0, classes, owner.size)
    bank.learn(np.concatenate([learners[o] for o in owner]), np.repeat(X, n_rows, axis=0),
               encode_targets("log_loss", y, n_rows).ravel(), np.repeat(step_ranks(owner), n_rows))
    for s in (0, 1, 77, 149):
        mine = np.flatnonzero(owner == s)
        est = _sklearn(params, X[mine], y[mine], [(0, mine.size)], classes)
        coef, intercept = bank.state(learners[s]).served(params)
        np.testing.assert_allclose(coef.reshape(est.coef_.shape), est.coef_, atol=TOL, rtol=0)
        np.testing.assert_allclose(intercept, est.intercept_, atol=TOL, rtol=0)
