"""Lineage of a trained version: which rows it learned from, recorded in its metadata (``metadata["lineage"]``).

The fingerprint is exact, not a sample: the same rows in the same order give the same sha256 on any machine, so
"was version 7 trained on this extract?" is answered by hashing the extract again. Rows are the segment's rows
given to the fit (its training and holdout parts), numeric features as float64 (NaN for missing), categorical
ones by type and text, and labels as given.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any

import numpy as np

FORMAT = "scorer-rows-v1"


def fingerprint(X: np.ndarray, y: np.ndarray, times: np.ndarray | None = None) -> dict[str, Any]:
    """``{"rows", "sha256", "scorer_version"}`` plus ``time_from``/``time_to`` (ISO, UTC) when ``times`` (epoch
    seconds, NaN for missing) are given."""
    from scorer import __version__

    X = np.asarray(X)
    y = np.asarray(y)
    digest = hashlib.sha256(FORMAT.encode())
    digest.update(np.asarray(X.shape, dtype=np.int64).tobytes())
    if X.dtype == object:  # categorical columns: every cell as its type and text, column by column
        for column in X.T:
            digest.update("\x1f".join(_cell(value) for value in column.tolist()).encode())
            digest.update(b"\x1e")
    else:
        digest.update(np.ascontiguousarray(X, dtype=np.float64).tobytes())
    if y.dtype.kind in "biuf":
        digest.update(np.ascontiguousarray(y, dtype=np.float64).tobytes())
    else:
        digest.update("\x1f".join(map(str, y.tolist())).encode())
    out: dict[str, Any] = {"rows": int(X.shape[0]), "sha256": digest.hexdigest(), "format": FORMAT,
                           "scorer_version": __version__}
    if times is not None:
        known = np.asarray(times, dtype=np.float64)
        known = known[np.isfinite(known)]
        if known.size:
            out["time_from"] = _iso(float(known.min()))
            out["time_to"] = _iso(float(known.max()))
    return out


def _cell(value: Any) -> str:
    if isinstance(value, float) and value != value:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return repr(float(value))
    return f"{type(value).__name__}:{value}"


def _iso(seconds: float) -> str:
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")
