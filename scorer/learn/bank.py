"""Many SGD learners stacked in one set of arrays, updated in lockstep: ``partial_fit`` for thousands of
segments at the cost of one numpy pass per step.

Within one learner updates are sequential (each sees the weights the previous one left), exactly as in
scikit-learn; across learners they are independent, so step k of every learner runs as one vectorised
update over all rows that have a k-th sample. Rows share the loss, penalty, schedule and input width
(the bank's key); the numeric hyperparameters are per row.

The state mirrors scikit-learn's ``WeightVector`` operation for operation (weights as ``w_data * wscale``,
the lazy average ``(aw + a * w_data) / b``, the same evaluation order, sequential dot products), so the
results agree with ``partial_fit`` to the last bits rather than drifting apart in long runs. scikit-learn
folds the lazy parts back at the end of each ``partial_fit`` call (and resets its L1 accumulators), which
is what :meth:`Bank.finish` does: call it where scikit-learn's call would end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from scorer.learn.sgd import MAX_DLOSS, WSCALE_MIN, SGDParams, gradient, learning_rate

_PER_ROW = ("alpha", "l1r", "eta0", "power_t", "eps", "avg_start", "fi", "opt_init")


@dataclass
class LearnerState:
    """One learner at a ``partial_fit`` boundary: what a checkpoint stores and a restart resumes from.

    ``coef`` (rows, n_inputs) and ``intercept`` are scikit-learn's ``_standard_coef``/``_standard_intercept``
    (the running weights), ``avg_*`` its averages (zeros without averaging), ``t`` its ``t_``.
    """

    coef: np.ndarray
    intercept: np.ndarray
    avg_coef: np.ndarray
    avg_intercept: np.ndarray
    t: float = 1.0

    @classmethod
    def fresh(cls, n_rows: int, n_inputs: int) -> LearnerState:
        return cls(np.zeros((n_rows, n_inputs)), np.zeros(n_rows), np.zeros((n_rows, n_inputs)), np.zeros(n_rows))

    def served(self, params: SGDParams) -> tuple[np.ndarray, np.ndarray]:
        """(coef, intercept) that scikit-learn exposes: the averages once ``average <= t - 1``."""
        if params.average and params.average <= self.t - 1:
            return self.avg_coef, self.avg_intercept
        return self.coef, self.intercept


def step_ranks(owner: np.ndarray) -> np.ndarray:
    """The position of each sample among its owner's samples, in arrival order (0 for each owner's first)."""
    n = owner.shape[0]
    if not n:
        return np.zeros(0, dtype=np.int64)
    order = np.argsort(owner, kind="stable")
    sorted_owner = owner[order]
    starts = np.flatnonzero(np.r_[True, sorted_owner[1:] != sorted_owner[:-1]])
    first = np.repeat(starts, np.diff(np.r_[starts, n]))
    ranks = np.empty(n, dtype=np.int64)
    ranks[order] = np.arange(n) - first
    return ranks


class Bank:
    """Rows of learners with one (loss, penalty, schedule, n_inputs), stacked. Not thread-safe."""

    def __init__(self, loss: str, penalty: str, schedule: str, n_inputs: int) -> None:
        self.loss, self.penalty, self.schedule, self.n_inputs = loss, penalty, schedule, n_inputs
        self.l1 = penalty in ("l1", "elasticnet")
        self.decay = penalty in ("l2", "elasticnet")
        self._size = 0
        self._free: list[int] = []
        self._alloc(16)

    def _alloc(self, capacity: int) -> None:
        def grow(name: str, shape: tuple[int, ...], fill: float = 0.0) -> None:
            new = np.full(shape, fill)
            old = getattr(self, name, None)
            if old is not None:
                new[: old.shape[0]] = old
            setattr(self, name, new)

        f = self.n_inputs
        for name in ("w", "aw", "q"):
            grow(name, (capacity, f))
        for name in ("b", "avg_b", "a", "u", *_PER_ROW):
            grow(name, (capacity,))
        for name in ("t", "ws", "bb"):
            grow(name, (capacity,), 1.0)
        self.capacity = capacity

    def __len__(self) -> int:
        return self._size - len(self._free)

    def add(self, params: SGDParams, state: LearnerState) -> np.ndarray:
        """Place a learner's rows (one per output of ``state``) and return their indices."""
        n = state.coef.shape[0]
        rows = [self._free.pop() for _ in range(min(n, len(self._free)))]
        while len(rows) < n:
            if self._size == self.capacity:
                self._alloc(self.capacity * 2)
            rows.append(self._size)
            self._size += 1
        idx = np.array(rows, dtype=np.int64)
        self.w[idx], self.b[idx] = state.coef, state.intercept
        self.aw[idx], self.avg_b[idx] = state.avg_coef, state.avg_intercept
        self.t[idx] = state.t
        self.a[idx], self.bb[idx], self.ws[idx], self.u[idx], self.q[idx] = 0.0, 1.0, 1.0, 0.0, 0.0
        self.alpha[idx], self.l1r[idx] = params.alpha, params.l1_share
        self.eta0[idx], self.power_t[idx], self.eps[idx] = params.eta0, params.power_t, params.epsilon
        self.avg_start[idx], self.fi[idx] = float(params.average), float(params.fit_intercept)
        self.opt_init[idx] = params.optimal_init()
        return idx

    def remove(self, rows: np.ndarray) -> None:
        self._free.extend(int(r) for r in rows)

    def finish(self, rows: np.ndarray) -> None:
        """End of a scikit-learn ``partial_fit`` call for these rows (``reset_wscale``, L1 accumulators cleared)."""
        self._reset_wscale(rows)
        self.u[rows], self.q[rows] = 0.0, 0.0

    def _reset_wscale(self, rows: np.ndarray) -> None:
        aw = self.aw[rows] + self.a[rows, None] * self.w[rows]
        self.aw[rows] = aw * (1.0 / self.bb[rows])[:, None]
        self.a[rows], self.bb[rows] = 0.0, 1.0
        self.w[rows] = self.w[rows] * self.ws[rows, None]
        self.ws[rows] = 1.0

    def state(self, rows: np.ndarray) -> LearnerState:
        """The rows' state after :meth:`finish` (copies)."""
        self.finish(rows)
        return LearnerState(self.w[rows].copy(), self.b[rows].copy(), self.aw[rows].copy(), self.avg_b[rows].copy(),
                            float(self.t[rows[0]]))

    def restart_schedule(self, rows: np.ndarray) -> None:
        """Start the learning-rate schedule (and the averages) over from the current weights."""
        self.finish(rows)
        self.t[rows], self.aw[rows], self.avg_b[rows] = 1.0, 0.0, 0.0

    def learn(self, rows: np.ndarray, X: np.ndarray, y: np.ndarray, ranks: np.ndarray) -> None:
        """Update ``rows[i]`` with sample ``(X[i], y[i])``; samples of one row are applied in ``ranks`` order
        (one vectorised step per rank), and a row appears at most once per rank."""
        if not rows.shape[0]:
            return
        order = np.argsort(ranks, kind="stable")
        r = ranks[order]
        cuts = np.flatnonzero(r[1:] != r[:-1]) + 1
        for part in np.split(order, cuts):
            self._step(rows[part], X[part], y[part])

    def _step(self, idx: np.ndarray, X: np.ndarray, y: np.ndarray) -> None:
        """One sample per row, as one iteration of ``_plain_sgd``'s inner loop."""
        wd, ws, b, t = self.w[idx], self.ws[idx], self.b[idx], self.t[idx]
        alpha, l1 = self.alpha[idx], self.l1r[idx]
        # WeightVector.dot: a sequential sum (cumsum keeps the order), then the scale.
        p = np.cumsum(X * wd, axis=1)[:, -1] * ws + b
        eta = learning_rate(self.schedule, t, alpha, self.eta0[idx], self.power_t[idx], self.opt_init[idx])
        eta = np.broadcast_to(eta, t.shape)
        update = -eta * np.clip(gradient(self.loss, y, p, self.eps[idx]), -MAX_DLOSS, MAX_DLOSS)
        if self.decay:
            ws = ws * np.maximum(0.0, 1.0 - (1.0 - l1) * eta * alpha)
            self.ws[idx] = ws
            small = ws < WSCALE_MIN
            if small.any():
                self.w[idx] = wd
                self._reset_wscale(idx[small])
                wd, ws = self.w[idx], self.ws[idx]
        wd = wd + X * (update / ws)[:, None]
        b = b + update * self.fi[idx]
        avg_start = self.avg_start[idx]
        on = (avg_start > 0) & (avg_start <= t)
        if on.any():
            seen = np.where(on, t - avg_start + 1, 1.0)
            a, bb = self.a[idx], self.bb[idx]
            aw_step = (a[:, None] * X) * (-update / ws)[:, None]
            self.aw[idx] = np.where(on[:, None], self.aw[idx] + aw_step, self.aw[idx])
            mu = 1.0 / seen
            bb = np.where(on & (seen > 1), bb / np.where(seen > 1, 1.0 - mu, 1.0), bb)
            self.bb[idx] = bb
            self.a[idx] = np.where(on, a + mu * bb * ws, a)
            avg_b = self.avg_b[idx]
            self.avg_b[idx] = np.where(on, avg_b + (b - avg_b) / seen, avg_b)
        if self.l1:
            u = self.u[idx] + l1 * eta * alpha
            q = self.q[idx]
            signed = wd * ws[:, None]
            shrunk = np.where(signed > 0, np.maximum(0.0, wd - (u[:, None] + q) / ws[:, None]),
                              np.where(signed < 0, np.minimum(0.0, wd + (u[:, None] - q) / ws[:, None]), wd))
            self.q[idx] = q + ws[:, None] * (shrunk - wd)
            self.u[idx] = u
            wd = shrunk
        self.w[idx], self.b[idx], self.t[idx] = wd, b, t + 1.0
