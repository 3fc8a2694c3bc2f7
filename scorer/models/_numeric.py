"""Numeric helpers shared by kernels, written to match scipy/scikit-learn's formulas operation for operation."""

from __future__ import annotations

import numpy as np


def expit_(z: np.ndarray) -> np.ndarray:
    """In-place logistic sigmoid ``1 / (1 + exp(-z))``: scipy.special.expit's own formula.

    ``-z`` is capped at 709 so exp never overflows (no warning, and no ``np.errstate``, which costs
    more than the cap on small batches); below z = -709 the result is ~1e-308 instead of the true
    smaller value, an absolute difference under 1e-307.
    """
    np.negative(z, out=z)
    np.minimum(z, 709.0, out=z)
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


_EXP_LIMIT = 709.782712893384  # log of the largest float64: exp(-z) overflows to inf beyond it


def ovr_proba_(z: np.ndarray) -> np.ndarray:
    """One-vs-rest probabilities from decisions ``z`` (overwritten), as scikit-learn's ``_predict_proba_lr``.

    scipy's expit is exactly 0 where exp(-z) overflows; ``expit_``'s cap leaves ~1e-308 there, harmless
    alone but not after normalising a row whose every sigmoid is that small, so those entries are zeroed.
    """
    dead = z < -_EXP_LIMIT
    expit_(z)
    if dead.any():
        z[dead] = 0.0
    return ovr_normalise_(z)


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
