"""Where the samples of a grouped batch sit for the bank's lockstep steps: step s reads a (features, width)
block, feature-major (its sums run over rows of n values), holding the s-th sample of each of its rows.

Two layouts of the same blocks. Dense: one (steps, features, rows) array, filled by one scatter, when the
label counts are even enough that it is not much bigger than the batch. Ragged: the blocks end to end, each
only as wide as the step needs, when they are not (one hot segment among thousands of quiet ones would
otherwise cost steps x rows x features of memory): at most twice the batch, whatever the counts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Steps:
    """Per step s: ``X[s]`` (g, wide[s]) inputs (row f the constant 1 when the intercept is folded in), ``y[s]``
    targets (times eta for a fixed eta), ``neg_eta[s]`` -eta for live rows and 0 for padding (or None)."""

    X: list[np.ndarray]
    y: list[np.ndarray]
    neg_eta: list[np.ndarray] | None


def lay_out(X: np.ndarray, Y: np.ndarray, step: np.ndarray, column: np.ndarray, live: np.ndarray,
            wide: np.ndarray, folded: bool, padded: bool, eta0: np.ndarray | None) -> Steps:
    """Samples ``X`` (n, f), ``Y`` (n, k) at ``step``, in rows ``column + r`` (r < k); ``live[s]`` rows have an
    s-th sample, step s runs on ``wide[s] >= live[s]`` rows (the padding must then be neutral: zeros).
    ``eta0``: scale the targets by each row's fixed eta (None: leave them)."""
    n, f = X.shape
    k = Y.shape[1]
    g = f + folded
    steps, width = live.shape[0], int(wide[0])
    make = np.zeros if padded else np.empty
    if steps * width <= 2 * n + 4096:
        X3, Y2 = make((steps, g, width)), make((steps, width))
        for r in range(k):
            X3[step, :f, column + r] = X
            Y2[step, column + r] = Y[:, r]
        if folded:
            X3[:, f, :] = 1.0
        if eta0 is not None:
            Y2 *= eta0
        xs = [X3[s, :, :w] for s, w in enumerate(wide.tolist())]
        ys = [Y2[s, :w] for s, w in enumerate(wide.tolist())]
        if not padded:
            return Steps(xs, ys, None)
        NE = np.where(np.arange(width) < live[:, None], -eta0, 0.0)
        return Steps(xs, ys, [NE[s, :w] for s, w in enumerate(wide.tolist())])
    offset = np.cumsum(wide) - wide
    total = int(offset[-1] + wide[-1])
    flat, Ys = make(g * total), make(total)
    at, across = g * offset[step] + column, wide[step]
    for r in range(k):
        for j in range(f):
            flat[at + r + j * across] = X[:, j]
        Ys[offset[step] + column + r] = Y[:, r]
    bounds = list(zip(offset.tolist(), wide.tolist(), strict=True))
    xs = [flat[g * lo:g * (lo + w)].reshape(g, w) for lo, w in bounds]
    if folded:
        for block in xs:
            block[f] = 1.0
    position = np.arange(total) - np.repeat(offset, wide)  # each entry's row
    if eta0 is not None:
        Ys *= eta0[position]
    ys = [Ys[lo:lo + w] for lo, w in bounds]
    if not padded:
        return Steps(xs, ys, None)
    NE = np.where(position < np.repeat(live, wide), -eta0[position], 0.0)
    return Steps(xs, ys, [NE[lo:lo + w] for lo, w in bounds])
