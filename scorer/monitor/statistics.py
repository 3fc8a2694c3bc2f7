"""Drift statistics over bucket counts: PSI, KS, and a chi-square test of homogeneity (p-values from scipy).

Inputs are per-feature bucket arrays laid out as in :mod:`scorer.monitor.drift` (``[bins.., below, above,
missing]``), one row per feature, so a whole model is computed at once.
"""

from __future__ import annotations

import math

import numpy as np

PSI_EPSILON = 1e-4
"""Floor for a bucket share inside the PSI's logarithm (an empty bucket would make it infinite)."""
KS_ALPHA = 0.001
"""KS alerts need the statistic above its two-sample critical value at this level (as well as the threshold)."""


def psi(expected: np.ndarray, actual: np.ndarray, epsilon: float = PSI_EPSILON) -> np.ndarray:
    """Population stability index per row: sum over buckets of (a - e) * ln(a / e), shares floored at ``epsilon``.

    ``expected`` and ``actual`` are shares (rows summing to 1) or counts (normalised here). Each term is
    >= 0 because (a - e) and ln(a / e) share their sign, so the PSI is >= 0 and 0 for equal distributions.
    A row of zero counts gives NaN (nothing to compare).
    """
    e = _shares(expected)
    a = _shares(actual)
    e = np.maximum(e, epsilon)
    a = np.maximum(a, epsilon)
    return np.sum((a - e) * np.log(a / e), axis=-1)


def ks(expected: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """Kolmogorov-Smirnov statistic per row between two binned distributions of the present values.

    Takes the full bucket layout (bins, below, above, missing); missing is left out and the rest is
    ordered below, bins, above, so the CDFs are over the value axis. The result is the largest CDF gap at
    a bucket boundary, in [0, 1] (a lower bound of the exact KS of the raw values); NaN when either side has
    no present values.
    """
    expected = np.atleast_2d(np.asarray(expected, dtype=np.float64))
    actual = np.atleast_2d(np.asarray(actual, dtype=np.float64))
    k = expected.shape[1] - 3
    order = np.r_[k, np.arange(k), k + 1]
    e = _shares(expected[:, order])
    a = _shares(actual[:, order])
    gap = np.abs(np.cumsum(a, axis=1) - np.cumsum(e, axis=1)).max(axis=1)
    return np.clip(gap, 0.0, 1.0)


def homogeneity(expected: np.ndarray, counts: np.ndarray, n_train: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per feature: the p-value of a chi-square test that the live counts and the training sample share one
    distribution, and the KS value that two such samples exceed with probability ``alpha`` = 0.001.

    PSI measures how far apart two histograms are, not whether the gap is more than sampling noise: a window
    of 60 events over 10 bins reaches PSI 0.5 by chance. Alerts need both (a large PSI and a small p-value),
    so small windows and small training sets do not cry wolf. With m training rows the test is the two-sample
    one over the pooled counts; without (m = 0) it is a goodness of fit against the training shares.
    """
    counts = np.atleast_2d(np.asarray(counts, dtype=np.float64))
    expected = np.atleast_2d(np.asarray(expected, dtype=np.float64))
    n = counts.sum(axis=1, keepdims=True)
    m = np.asarray(n_train, dtype=np.float64).reshape(-1, 1)
    reference = expected * m
    pooled = reference + counts
    total = n + m
    with np.errstate(divide="ignore", invalid="ignore"):
        two_sample = np.where(
            pooled > 0,
            (counts - pooled * n / total) ** 2 / (pooled * n / total)
            + (reference - pooled * m / total) ** 2 / (pooled * m / total),
            0.0)
        fit = n * np.maximum(expected, PSI_EPSILON)
        one_sample = np.where((expected > 0) | (counts > 0), (counts - fit) ** 2 / fit, 0.0)
    statistic = np.where(m > 0, np.nan_to_num(two_sample), one_sample).sum(axis=1)
    used = np.where(m[:, 0] > 0, (pooled > 0).sum(axis=1), ((expected > 0) | (counts > 0)).sum(axis=1))
    from scipy.stats import chi2

    p_value = np.where(n[:, 0] > 0, chi2.sf(statistic, np.maximum(used - 1, 1)), 1.0)
    inverse = 1.0 / np.maximum(n[:, 0], 1.0) + np.where(m[:, 0] > 0, 1.0 / np.maximum(m[:, 0], 1.0), 0.0)
    ks_critical = math.sqrt(-math.log(KS_ALPHA / 2.0) / 2.0) * np.sqrt(inverse)
    return p_value, ks_critical


def _shares(values: np.ndarray) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64)
    total = values.sum(axis=-1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, values / np.where(total > 0, total, 1.0), np.nan)

"""(model, segment, version)."""
