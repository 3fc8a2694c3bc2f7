"""Whole-batch lookups of categorical values (the kernels behind :mod:`scorer.models.categorical`).

Each is a fast path for the usual batch, every value one of its column's categories: a column it cannot do
cleanly is left to the per-column code, which applies the missing and unknown rules and names the row.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from scorer.models.categorical import _Column


class DenseCodes:
    """Float values -> codes of every column with small non-negative integer categories, all at once.

    One gather through the columns' dense tables laid end to end. A column is done here only when every value
    is one of its categories exactly (the usual case); a column with a missing, unknown or fractional value
    is left alone for :meth:`_Column.encode_numbers`, which applies the rules and names the row.
    """

    def __init__(self, columns: list[_Column]) -> None:
        self.columns = columns
        self.index = np.array([c.index for c in columns], dtype=np.intp)
        sizes = [c.dense.size for c in columns]  # type: ignore[union-attr]
        self.last = np.array(sizes, dtype=np.uintp) - 1
        self.base = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
        self.table = np.concatenate([c.dense for c in columns]) if columns else np.zeros(0)  # type: ignore[misc]

    def encode(self, out: np.ndarray) -> set[int]:
        """Replace values by codes in ``out`` (float64, C order) for the columns found clean; their indices."""
        if not self.columns or not out.shape[0]:
            return set()
        block = out[:, self.index]
        with np.errstate(invalid="ignore"):  # NaN/inf cast to some integer: the equality below catches them
            i = block.astype(np.intp)
        exact = i == block
        u = i.view(np.uintp)  # negative values wrap to huge ones: one comparison for both bounds
        exact &= u <= self.last
        np.minimum(u, self.last, out=u)
        i += self.base
        codes = self.table[i]
        exact &= codes >= 0.0
        clean = exact.all(axis=0)
        if clean.all():
            out[:, self.index] = codes
            return set(self.index.tolist())
        keep = np.flatnonzero(clean)
        out[:, self.index[keep]] = codes[:, keep]
        return set(self.index[keep].tolist())


def arrow_codes(col: Any, c: _Column, out: np.ndarray) -> bool:
    """Codes of an Arrow-backed string column (pandas' default ``str`` with pyarrow) written to ``out``, matched
    in Arrow without a Python string per value; False (nothing written) when it is not one, or when a value is
    missing or unknown (the general path then applies the rules)."""
    dtype = col.dtype
    if getattr(dtype, "storage", None) != "pyarrow" and "string" not in str(getattr(dtype, "pyarrow_dtype", "")):
        return False
    import pyarrow as pa  # a dependency, imported only when such a frame arrives
    import pyarrow.compute as pc

    values = pa.array(col.array)  # the column's own Arrow array, not a copy
    if not pa.types.is_string(values.type) and not pa.types.is_large_string(values.type):
        return False
    if c.arrow is None:
        c.arrow = pa.array(c.categories, type=pa.string())
    codes = pc.index_in(values, value_set=c.arrow)
    if codes.null_count:
        return False
    out[:] = codes.to_numpy()
    return True
