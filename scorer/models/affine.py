"""Preprocessing folded into a model's first layer: impute, then standard and min-max scalers, cost one product.

``(X * a + c) @ W + b == X @ (a[:, None] * W) + (c @ W + b)``, so a pipeline's scalers cost nothing at scoring
time once their ``a`` and ``c`` are folded into the weights at build time. Imputation costs nothing either
while the inputs are complete: a NaN input makes its row's decision NaN (IEEE arithmetic, whatever the
weight), and only those rows are imputed and computed again.

Exact up to floating-point association. Folding is skipped when an offset is large against its column's
spread (``|c| > MAX_OFFSET``, i.e. a mean a thousand standard deviations from zero), where re-associating
``x * a + c`` could lose more digits than scikit-learn parity (1e-9) allows.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

MAX_OFFSET = 1e3

Plan = Sequence[tuple]
"""What a model's preprocessing does, step by step: ("impute", fill, keep), ("affine", a, c) or ("other",)."""


@dataclass(frozen=True)
class AffineFront:
    """The preprocessing of a model as ``impute`` (optional, with dropped columns) then ``X * scale + offset``."""

    keep: np.ndarray | None
    """Input columns kept (scikit-learn drops columns that were empty at fit time); None: all."""
    fill: np.ndarray | None
    """Per kept column, the value a NaN becomes; None: no imputation (NaN rows are rejected)."""
    scale: np.ndarray
    offset: np.ndarray

    @classmethod
    def from_plan(cls, plan: Plan, width: int) -> AffineFront | None:
        """The front of ``plan`` (``width``: the model's feature count), or None when it cannot be folded."""
        keep = fill = None
        scale, offset = np.ones(width), np.zeros(width)
        for position, step in enumerate(plan):
            if step[0] == "impute" and position == 0:
                fill, keep = step[1], step[2]
                if keep is not None:
                    fill = np.ascontiguousarray(fill[keep])
                    scale, offset = np.ones(keep.size), np.zeros(keep.size)
                if not np.isfinite(fill).all():  # columns left unimputed: the plain steps handle them
                    return None
            elif step[0] == "affine":
                a, c = step[1], step[2]
                scale, offset = scale * a, offset * a + c
            else:
                return None
        if not plan or np.abs(offset).max(initial=0.0) > MAX_OFFSET:
            return None
        return cls(keep, fill, scale, offset)

    def fold(self, W: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``W`` (n_inputs, r) or (n_inputs,) and ``b`` (r,) of a first layer with this front folded in."""
        scale = self.scale if W.ndim == 1 else self.scale[:, None]
        return np.ascontiguousarray(scale * W), b + self.offset @ W

    def decide(self, X: np.ndarray, W: np.ndarray, b: np.ndarray,
               reject: Callable[[np.ndarray], None] | None) -> np.ndarray:
        """``front(X) @ W + b`` with folded ``W``, ``b``; rows with NaN imputed and computed again.

        ``reject(X)`` is called (and raises) when a row stays non-finite; None leaves such rows non-finite.
        """
        given = X
        if self.keep is not None:
            X = X[:, self.keep]
        z = X.dot(W)
        z += b
        if np.isfinite(z.sum()):
            return z
        bad = ~np.isfinite(z)
        rows = np.flatnonzero(bad if bad.ndim == 1 else bad.any(axis=1))
        if self.fill is not None:
            fixed = X[rows]
            np.copyto(fixed, np.broadcast_to(self.fill, fixed.shape), where=np.isnan(fixed))
            again = fixed.dot(W)
            again += b
            z[rows] = again
        if reject is not None and not np.isfinite(z.sum()):  # inf inputs (imputation fills NaN only)
            reject(np.where(np.isnan(given), 0.0, given) if self.fill is not None else given)
        return z
