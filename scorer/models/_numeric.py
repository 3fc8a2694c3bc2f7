"""Numeric helpers shared by kernels, written to match scipy/scikit-learn's formulas operation for operation."""

from __future__ import annotations

import numpy as np


def expit_(z: np.ndarray) -> np.ndarray:
    """In-place logistic sigmoid ``1 / (1 + exp(-z))``: scipy.special.expit's own formula.

    Very negative z overflows exp(-z) to inf and gives exactly 0 (the true value is below 1e-300),
    so the overflow warning is silenced rather than clipping, which would cost a pass.
    """
    with np.errstate(over="ignore"):
        np.negative(z, out=z)
        np.exp(z, out=z)
    z += 1.0
    np.reciprocal(z, out=z)
    return z


def softmax_(z: np.ndarray) -> np.ndarray:
    """In-place row softmax as scikit-learn computes it: subtract the row max, exp, divide by the row sum."""
    z -= z.max(axis=1)[:, np.newaxis]
    np.exp(z, out=z)
    z /= z.sum(axis=1)[:, np.newaxis]
    return z


def ovr_normalise_(p: np.ndarray) -> np.ndarray:
    """One-vs-rest probabilities scaled to sum to 1 per row (scikit-learn's ``_predict_proba_lr``).

    A row whose sigmoids all underflowed to 0 becomes uniform, as in scikit-learn.
    """
    total = p.sum(axis=1)
    zero = total == 0
    if zero.any():
        p[zero, :] = 1.0
        total[zero] = p.shape[1]
    p /= total[:, np.newaxis]
    return p
