"""Many SGD learners stacked in one set of arrays, updated in lockstep: ``partial_fit`` for thousands of
segments at the cost of one numpy pass per step.

Within one learner updates are sequential (each sees the weights the previous one left), exactly as in
scikit-learn; across learners they are independent, so step k of every learner runs as one vectorised
update over all rows that have a k-th sample. Rows share the loss, penalty, schedule and input width
(the bank's key); the numeric hyperparameters are per row.

The state mirrors scikit-learn's ``WeightVector`` operation for operation (weights as ``w_data * wscale``,
the lazy average ``(aw + a * w_data) / b``, the same evaluation order, sequential dot products; only the
log-loss gradient is one fused ``expit``, a few ulps from scikit-learn's formula), so the results agree with
``partial_fit`` to within rounding rather than drifting apart in long runs. scikit-learn
folds the lazy parts back at the end of each ``partial_fit`` call (and resets its L1 accumulators), which
is what :meth:`Bank.finish` does: call it where scikit-learn's call would end.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import expit

from scorer.learn.layout import lay_out
from scorer.learn.sgd import BOUNDED_LOSSES, MAX_DLOSS, WSCALE_MIN, SGDParams, gradient, learning_rate

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


def stable_order(keys: np.ndarray) -> np.ndarray:
    """``argsort(keys, kind="stable")``, ten times faster when the keys span fewer than 65,536 values (numpy
    radix-sorts 16-bit keys): the common case of a batch's segment keys."""
    if keys.shape[0] and int(keys.max()) - int(keys.min()) < 1 << 16:
        return np.argsort((keys - keys.min()).astype(np.uint16), kind="stable")
    return np.argsort(keys, kind="stable")


def step_ranks(owner: np.ndarray) -> np.ndarray:
    """The position of each sample among its owner's samples, in arrival order (0 for each owner's first)."""
    n = owner.shape[0]
    if not n:
        return np.zeros(0, dtype=np.int64)
    order = stable_order(owner)
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
        return self.states([rows])[0]

    def states(self, learners: list[np.ndarray]) -> list[LearnerState]:
        """:meth:`state` of several learners (their rows each), finished and copied in one pass."""
        idx = np.concatenate(learners) if len(learners) > 1 else learners[0]
        self.finish(idx)
        w, b, aw, avg_b, t = self.w[idx], self.b[idx], self.aw[idx], self.avg_b[idx], self.t[idx].tolist()
        out, lo = [], 0
        for rows in learners:
            hi = lo + rows.shape[0]
            out.append(LearnerState(w[lo:hi], b[lo:hi], aw[lo:hi], avg_b[lo:hi], t[lo]))
            lo = hi
        return out

    def restart_schedule(self, rows: np.ndarray) -> None:
        """Start the learning-rate schedule (and the averages) over from the current weights."""
        self.finish(rows)
        self.t[rows], self.aw[rows], self.avg_b[rows] = 1.0, 0.0, 0.0

    def learn(self, rows: np.ndarray, X: np.ndarray, y: np.ndarray, ranks: np.ndarray) -> None:
        """Update ``rows[i]`` with sample ``(X[i], y[i])``; samples of one row are applied in ``ranks`` order
        (a row appears at most once per rank). Sorts by row, then :meth:`learn_grouped`."""
        if not rows.shape[0]:
            return
        top = int(ranks.max()) + 1
        key = rows.astype(np.int64) * top + np.asarray(ranks, dtype=np.int64)
        order = stable_order(key)  # by row, then rank (faster than lexsort)
        by_row = rows[order]
        starts = np.flatnonzero(np.r_[True, by_row[1:] != by_row[:-1]])
        counts = np.diff(np.r_[starts, by_row.shape[0]])
        Y = np.asarray(y, dtype=np.float64)[order, None]
        self.learn_grouped(by_row[starts].reshape(-1, 1), counts, X[order], Y)

    def learn_grouped(self, rows: np.ndarray, counts: np.ndarray, X: np.ndarray, Y: np.ndarray) -> None:
        """One ``partial_fit`` stretch for many learners at once, samples grouped by learner.

        ``rows`` (m, k): the bank rows of m learners (k outputs each: one-vs-rest classes see the same inputs);
        ``counts`` (m,): how many samples each has; ``X`` (n, n_inputs) and ``Y`` (n, k) their samples, learner
        by learner in ``rows`` order, each learner's in its own order. Step s updates every row whose learner
        has an s-th sample: learners are laid out by count, largest first, so step s works on a prefix
        (slices, not copies); their state is gathered once and scattered back at the end.
        """
        m, k = rows.shape
        n = X.shape[0]
        if not n:
            return
        starts = np.cumsum(counts) - counts
        step = np.arange(n) - np.repeat(starts, counts)
        by_count = stable_order(-counts)
        slot = np.empty(m, dtype=np.int64)
        slot[by_count] = np.arange(m) * k
        steps = int(counts.max())
        width = m * k
        local = _Local(self, rows[by_count].reshape(-1))
        log_loss = self.loss == "log_loss"
        fixed_eta = self.schedule in ("constant", "adaptive")
        # Plain SGD on the log loss at a fixed eta: a slot past its learner's last sample can take a step that
        # changes nothing (x = 0, eta = 0), so the tail runs on a few widths instead of one width per step;
        # and the intercept can ride along as the weight of a constant input 1 (the same sums, in the same
        # order: scikit-learn adds it after the dot product), two array operations fewer per step.
        padded = log_loss and fixed_eta and not (self.decay or self.l1 or local.averaging)
        folded = padded and local.all_intercepts
        f, g = self.n_inputs, self.n_inputs + folded
        sorted_counts = counts[by_count]
        live = k * np.searchsorted(-sorted_counts, -np.arange(steps), side="left")  # rows with an s-th sample
        if padded:  # halve the width only when the live rows fall to half of it
            wide = live.copy()
            for s in range(1, steps):
                wide[s] = wide[s - 1] if live[s] > wide[s - 1] // 2 else live[s]
        else:
            wide = live
        fixed_log = log_loss and fixed_eta  # -eta * dloss = -eta * sigmoid(p) + eta * y: the targets carry eta
        laid = lay_out(X, Y, step, np.repeat(slot, counts), live, wide, folded, padded,
                       local.eta0 if fixed_log else None)
        if folded:
            local.w = np.concatenate([local.w, local.b[None, :]])
            local.buf = np.empty((g, width))
        idx = rows[by_count].reshape(-1)
        # t only steers the optimal/invscaling schedules and averaging; otherwise it is counted at the end.
        local.count_t = self.schedule in ("optimal", "invscaling") or local.averaging
        names = _view_names(self, local)
        views = None
        for s in range(steps):
            n_rows = int(wide[s])
            if views is None or views.n != n_rows:
                views = _Views(local, n_rows, names)
            if padded:
                self._step_log_padded(local, views, laid.X[s], laid.y[s], laid.neg_eta[s], folded)
            else:
                self._step(local, views, laid.X[s], laid.y[s])
        if folded:
            local.w, local.b = local.w[:f], local.w[f].copy()
        if not local.count_t:
            local.t += np.repeat(sorted_counts, k)
        local.scatter(self, idx)

    def _step_log_padded(self, s: _Local, v: _Views, X: np.ndarray, eta_y: np.ndarray, neg_eta: np.ndarray,
                         folded: bool) -> None:
        """:meth:`_step` for the log loss at a fixed eta without decay, L1 or averaging, on ``v.n`` rows of which
        the live ones have ``neg_eta`` = -eta and the others 0 with x = 0 and ``eta_y`` = 0 (their update is 0).
        ``folded``: the last row of ``X`` and ``v.w`` is the constant input and the intercept."""
        n = v.n
        X = X[:, :n]
        buf = v.buf
        np.multiply(X, v.w, out=buf)
        p = np.add.reduce(buf, axis=0)  # sequential over the features, as WeightVector.dot
        if not folded:
            p += v.b
        update = expit(p, out=p)
        update *= neg_eta[:n]
        update += eta_y[:n]
        np.multiply(X, update, out=buf)
        v.w += buf
        if not folded:
            v.b += update if s.all_intercepts else update * v.fi

    def _step(self, s: _Local, v: _Views, X: np.ndarray, y: np.ndarray) -> None:
        """One sample for each of the first ``v.n`` rows, as one iteration of ``_plain_sgd``'s inner loop."""
        n = v.n
        X, y = X[:, :n], y[:n]  # (features, n): every row operation below is across the n learners
        buf = v.buf
        np.multiply(X, v.w, out=buf)
        p = np.add.reduce(buf, axis=0)  # sequential over the features, as WeightVector.dot
        if self.decay:
            p *= v.ws
        p += v.b
        if self.schedule in ("constant", "adaptive"):
            eta = v.eta0
        else:
            eta = learning_rate(self.schedule, v.t, v.alpha, v.eta0, v.power_t, v.opt_init)
        if self.loss == "log_loss":  # -eta * (sigmoid(p) - y), up to rounding; a fixed eta is in y already
            update = expit(p, out=p)
            if eta is v.eta0:
                update *= v.neg_eta0
                update += y
            else:
                update *= -eta
                update += eta * y
        else:
            update = gradient(self.loss, y, p, v.eps)
            if self.loss not in BOUNDED_LOSSES:
                np.minimum(update, MAX_DLOSS, out=update)
                np.maximum(update, -MAX_DLOSS, out=update)
            update *= -eta
        self._apply(s, v, X, update, eta)

    def _apply(self, s: _Local, v: _Views, X: np.ndarray, update: np.ndarray, eta: np.ndarray) -> None:
        """The rest of the iteration once ``update = -eta * dloss`` is known: decay, weights, intercept,
        averages, L1 truncation, step count."""
        wd, ws, b, t, buf = v.w, v.ws, v.b, v.t, v.buf
        if self.decay:
            ws *= np.maximum(0.0, 1.0 - (1.0 - v.l1r) * eta * v.alpha)
            small = ws < WSCALE_MIN
            if small.any():
                s.fold(np.flatnonzero(small))
            np.multiply(X, update / ws, out=buf)
        else:  # the scale stays 1: update / 1 is update
            np.multiply(X, update, out=buf)
        wd += buf
        b += update if s.all_intercepts else update * v.fi
        if s.averaging:
            avg_start = v.avg_start
            on = (avg_start > 0) & (avg_start <= t)
            if on.any():
                seen = np.where(on, t - avg_start + 1, 1.0)
                a, bb, aw, avg_b = v.a, v.bb, v.aw, v.avg_b
                aw_step = (a * X) * (-update / ws)
                aw[...] = np.where(on, aw + aw_step, aw)
                mu = 1.0 / seen
                bb[...] = np.where(on & (seen > 1), bb / np.where(seen > 1, 1.0 - mu, 1.0), bb)
                a[...] = np.where(on, a + mu * bb * ws, a)
                avg_b[...] = np.where(on, avg_b + (b - avg_b) / seen, avg_b)
        if self.l1:
            u, q = v.u, v.q
            u += v.l1r * eta * v.alpha
            signed = wd * ws
            shrunk = np.where(signed > 0, np.maximum(0.0, wd - (u + q) / ws),
                              np.where(signed < 0, np.minimum(0.0, wd + (u - q) / ws), wd))
            q += ws * (shrunk - wd)
            wd[...] = shrunk
        if s.count_t:
            t += 1.0


_STATE = ("w", "ws", "b", "t", "aw", "a", "bb", "avg_b", "q", "u")
_WIDE = ("w", "aw", "q")


class _Local:
    """The state of the rows one ``Bank.learn`` call touches, gathered into contiguous arrays (the weight-like
    ones feature-major, (n_inputs, rows), so that each operation runs across learners)."""

    def __init__(self, bank: Bank, idx: np.ndarray) -> None:
        for name in _STATE + _PER_ROW:
            value = getattr(bank, name)[idx]
            setattr(self, name, np.ascontiguousarray(value.T) if name in _WIDE else value)
        self.averaging = bool(self.avg_start.any())
        self.all_intercepts = bool((self.fi == 1.0).all())
        self.neg_eta0 = -self.eta0
        self.count_t = True
        self.buf = np.empty((bank.n_inputs, idx.shape[0]))

    def fold(self, rows: np.ndarray) -> None:
        """scikit-learn's ``reset_wscale`` for some rows (their scale became tiny)."""
        aw = self.aw[:, rows] + self.a[rows] * self.w[:, rows]
        self.aw[:, rows] = aw * (1.0 / self.bb[rows])
        self.a[rows], self.bb[rows] = 0.0, 1.0
        self.w[:, rows] = self.w[:, rows] * self.ws[rows]
        self.ws[rows] = 1.0

    def scatter(self, bank: Bank, idx: np.ndarray) -> None:
        for name in _STATE:
            value = getattr(self, name)
            getattr(bank, name)[idx] = value.T if name in _WIDE else value


def _view_names(bank: Bank, local: _Local) -> tuple[str, ...]:
    """The arrays a step of this bank reads (slicing the others too would cost more than some steps do)."""
    names = ["w", "b", "t", "ws", "buf", "eta0", "neg_eta0", "fi"]
    if bank.decay or bank.l1 or bank.schedule in ("optimal", "invscaling"):
        names += ["alpha", "l1r", "power_t", "opt_init"]
    if bank.l1:
        names += ["u", "q"]
    if local.averaging:
        names += ["avg_start", "a", "bb", "aw", "avg_b"]
    if bank.loss != "log_loss":
        names.append("eps")
    return tuple(names)


class _Views:
    """The first ``n`` rows of the arrays of a :class:`_Local` that a step reads (views), sliced once per
    live-row count rather than once per step."""

    def __init__(self, local: _Local, n: int, names: tuple[str, ...]) -> None:
        self.n = n
        for name in names:
            value = getattr(local, name)
            setattr(self, name, value[:, :n] if value.ndim == 2 else value[:n])
