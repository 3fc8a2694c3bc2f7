"""``scorer train --arch sgd``: an SGDClassifier/SGDRegressor version that also carries its learner state,
so ``scorer learn-worker`` continues exactly where the fit stopped (see ``scorer.learn.state``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from scorer.learn.bank import LearnerState
from scorer.learn.sgd import SGDParams
from scorer.learn.state import Learnable, checkpoint
from scorer.models import ModelWeights


def with_learner(weights: ModelWeights, est: Any) -> ModelWeights:
    """``weights`` (exported from ``est``) plus the running weights, averages and ``t_`` of the fitted SGD.

    scikit-learn keeps no running intercept for an averaged classifier once averaging has begun (it serves
    the averaged one); the averaged intercept stands in for it then.
    """
    params = SGDParams.from_estimator(est)
    served = np.atleast_2d(np.asarray(est.coef_, dtype=np.float64))
    rows = served.shape[0]
    averaging = bool(params.average) and getattr(est, "_average_coef", None) is not None
    coef = np.asarray(est._standard_coef if averaging else est.coef_, dtype=np.float64).reshape(rows, -1)
    intercept = np.asarray(est.intercept_, dtype=np.float64).reshape(rows)
    if averaging and hasattr(est, "_standard_intercept") and not hasattr(est, "classes_"):
        intercept = np.asarray(est._standard_intercept, dtype=np.float64).reshape(rows)
    avg_coef = np.asarray(est._average_coef, dtype=np.float64).reshape(rows, -1) if averaging else np.zeros_like(coef)
    avg_intercept = (np.asarray(est._average_intercept, dtype=np.float64).reshape(rows) if averaging
                     else np.zeros(rows))
    state = LearnerState(coef, intercept, avg_coef, avg_intercept, float(est.t_))
    return checkpoint(weights, Learnable(params, state))
