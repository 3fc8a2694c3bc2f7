"""Training data at the boundary: a CSV or Parquet file (or a pyarrow Table) to plain numpy arrays.

Everything after this module sees ``TrainingData``: segment labels, a float64 feature matrix with NaN for
missing values, and the target. Rows without a segment or a target cannot be trained on; they are
dropped and counted, never silently kept.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from scorer.errors import ConfigError

PARQUET_SUFFIXES = (".parquet", ".pq")
# pyarrow fixes CSV column types from the first block; a large block keeps a late "1.5" from breaking an int column.
_CSV_BLOCK_SIZE = 1 << 26


@dataclass(frozen=True)
class TrainingData:
    """Rows to train on, as arrays: ``segments`` (n,) str, ``X`` (n, p) float64 (NaN = missing), ``y`` (n,)."""

    segments: np.ndarray
    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    segment_col: str = "segment"
    target: str = "target"
    n_dropped: int = 0
    """Rows of the source left out because their segment or target was missing."""

    def __post_init__(self) -> None:
        n = self.segments.shape[0] if self.segments.ndim == 1 else -1
        if n < 0 or self.X.ndim != 2 or self.X.shape != (n, len(self.feature_names)) or self.y.shape != (n,):
            raise ConfigError(
                f"training arrays disagree: segments {self.segments.shape}, X {self.X.shape}, y {self.y.shape}, "
                f"{len(self.feature_names)} feature names")
        if len(set(self.feature_names)) != len(self.feature_names):
            raise ConfigError(f"feature names must be unique; got {list(self.feature_names)}")

    @classmethod
    def from_arrays(cls, segments: Sequence[str] | np.ndarray, X: np.ndarray, y: np.ndarray,
                    feature_names: Sequence[str], **kwargs: object) -> TrainingData:
        """Arrays from elsewhere (a retraining window, a test): segments as str, X as float64."""
        return cls(segments=np.asarray(segments).astype(str), X=np.asarray(X, dtype=np.float64),
                   y=np.asarray(y), feature_names=tuple(str(name) for name in feature_names), **kwargs)  # type: ignore[arg-type]

    @property
    def n_rows(self) -> int:
        return int(self.X.shape[0])


def read_table(path: str | Path, columns: Sequence[str] | None = None, text_columns: Sequence[str] = ()) -> pa.Table:
    """Read a CSV (``.csv``, ``.tsv``, optionally compressed) or Parquet (``.parquet``/``.pq``) file.

    ``columns`` limits what is read; CSV ``text_columns`` are not type-guessed (a segment ``007`` stays ``007``).
    Raises ConfigError for a missing, unreadable or malformed file.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"data file {str(path)!r} not found")
    try:
        if _is_parquet(path):
            import pyarrow.parquet as pq

            if columns is not None:
                _check_columns(path, pq.read_schema(path).names, columns)
            return pq.read_table(path, columns=list(columns) if columns is not None else None)
        return _read_csv(path, columns, text_columns)
    except (pa.ArrowException, OSError) as exc:
        raise ConfigError(f"cannot read {str(path)!r}: {_first_line(exc)}") from None


def _is_parquet(path: Path) -> bool:
    if path.suffix.lower() in PARQUET_SUFFIXES:
        return True
    with path.open("rb") as handle:
        return handle.read(4) == b"PAR1"


def _read_csv(path: Path, columns: Sequence[str] | None, text_columns: Sequence[str]) -> pa.Table:
    import pyarrow.csv as pcsv

    delimiter = "\t" if path.name.lower().removesuffix(".gz").endswith(".tsv") else ","
    header = _csv_header(path, delimiter)
    if columns is not None:
        _check_columns(path, header, columns)
    return pcsv.read_csv(
        path,
        read_options=pcsv.ReadOptions(block_size=_CSV_BLOCK_SIZE),
        parse_options=pcsv.ParseOptions(delimiter=delimiter),
        convert_options=pcsv.ConvertOptions(
            include_columns=list(columns) if columns is not None else None,
            column_types={name: pa.string() for name in text_columns if name in header},
            strings_can_be_null=True,  # an empty cell is a missing segment or label, not the text ""
        ),
    )


def _csv_header(path: Path, delimiter: str) -> list[str]:
    """Column names from the first line (pyarrow reads compressed files too, so open the same way)."""
    head = b""
    with pa.input_stream(str(path), compression="detect") as raw:
        while b"\n" not in head:
            block = raw.read(1 << 16)
            if not block:
                break
            head += block
    first = head.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8-sig", errors="replace")
    return next(csv.reader([first], delimiter=delimiter), [])


def _check_columns(path: Path, names: Sequence[str], wanted: Sequence[str]) -> None:
    absent = [name for name in wanted if name not in names]
    if absent:
        raise ConfigError(f"column {absent[0]!r} not in {path.name}; columns are: {', '.join(names)}")


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]


def is_numeric_type(dtype: pa.DataType) -> bool:
    """Types that become a float64 feature: integers, floats, decimals and booleans (as 0/1)."""
    return (pa.types.is_integer(dtype) or pa.types.is_floating(dtype) or pa.types.is_decimal(dtype)
            or pa.types.is_boolean(dtype))


def choose_features(table: pa.Table, segment_col: str, target: str,
                    features: Sequence[str] | None = None) -> tuple[str, ...]:
    """The feature columns, in order: the given ones (checked numeric), else every numeric column but segment/target."""
    schema = table.schema
    for role, name in (("segment column", segment_col), ("target", target)):
        if name not in schema.names:
            raise ConfigError(f"{role} {name!r} not in data; columns are: {', '.join(schema.names)}")
    if segment_col == target:
        raise ConfigError(f"segment column and target are both {target!r}")
    if features:
        chosen = [str(name) for name in features]
        duplicates = sorted({name for name in chosen if chosen.count(name) > 1})
        if duplicates:
            raise ConfigError(f"feature {duplicates[0]!r} given more than once")
        for name in chosen:
            if name not in schema.names:
                raise ConfigError(f"feature {name!r} not in data; columns are: {', '.join(schema.names)}")
            if name in (segment_col, target):
                role = "segment column" if name == segment_col else "target"
                raise ConfigError(f"feature {name!r} is also the {role}")
            dtype = schema.field(name).type
            if not is_numeric_type(dtype):
                raise ConfigError(f"feature {name!r} is not numeric (type {dtype}); features must be numbers")
        return tuple(chosen)
    chosen = [field.name for field in schema if field.name not in (segment_col, target)
              and is_numeric_type(field.type)]
    if not chosen:
        raise ConfigError(f"no numeric feature columns besides {segment_col!r} and {target!r}; "
                          f"columns are: {', '.join(schema.names)}")
    return tuple(chosen)


def table_to_training_data(table: pa.Table, *, segment_col: str, target: str,
                           features: Sequence[str] | None = None) -> TrainingData:
    """Convert a table: drop rows without segment (null or "") or target, features to float64 with NaN for nulls."""
    feature_names = choose_features(table, segment_col, target, features)
    segment_column = table.column(segment_col)
    target_column = table.column(target)
    segment_text = pc.cast(segment_column, pa.string())
    keep = pc.and_(pc.and_(pc.is_valid(segment_text), pc.not_equal(segment_text, "")), pc.is_valid(target_column))
    if pa.types.is_floating(target_column.type):
        keep = pc.and_(keep, pc.invert(pc.is_nan(target_column)))
    keep = pc.fill_null(keep, False)
    n_dropped = table.num_rows - pc.sum(keep).as_py() if table.num_rows else 0
    if n_dropped:
        table = table.filter(keep)

    segments = pc.cast(table.column(segment_col), pa.string()).to_numpy(zero_copy_only=False).astype(str)
    X = np.empty((table.num_rows, len(feature_names)), dtype=np.float64)
    for j, name in enumerate(feature_names):
        X[:, j] = pc.cast(table.column(name), pa.float64()).to_numpy(zero_copy_only=False)
        if np.isinf(X[:, j]).any():
            raise ConfigError(f"feature {name!r} has {int(np.isinf(X[:, j]).sum())} infinite values; "
                              "use empty cells (missing) or finite numbers")
    return TrainingData(segments=segments, X=X, y=_target_array(table.column(target), target),
                        feature_names=feature_names, segment_col=segment_col, target=target,
                        n_dropped=int(n_dropped))


def _target_array(column: pa.ChunkedArray, name: str) -> np.ndarray:
    dtype = column.type
    if pa.types.is_dictionary(dtype) or pa.types.is_large_string(dtype):
        column, dtype = pc.cast(column, pa.string()), pa.string()
    if pa.types.is_string(dtype):
        return column.to_numpy(zero_copy_only=False).astype(str)
    if pa.types.is_boolean(dtype):
        return column.to_numpy(zero_copy_only=False).astype(bool)
    if pa.types.is_integer(dtype):
        return pc.cast(column, pa.int64()).to_numpy(zero_copy_only=False)
    if pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
    raise ConfigError(f"target {name!r} has type {dtype}; it must be numbers, booleans or text labels")


def load_training_data(source: str | Path | pa.Table, *, segment_col: str, target: str,
                       features: Sequence[str] | None = None) -> TrainingData:
    """Read ``source`` (a file path or a pyarrow Table) and convert it; reads only the columns it needs."""
    if isinstance(source, pa.Table):
        return table_to_training_data(source, segment_col=segment_col, target=target, features=features)
    # dict.fromkeys: a feature repeated or equal to the target is reported precisely by choose_features.
    columns = list(dict.fromkeys([segment_col, target, *features])) if features else None
    table = read_table(source, columns=columns, text_columns=(segment_col,))
    return table_to_training_data(table, segment_col=segment_col, target=target, features=features)
