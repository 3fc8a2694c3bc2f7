"""Training data at the boundary: a CSV or Parquet file (or a pyarrow Table) to plain numpy arrays.

Everything after this module sees ``TrainingData``: segment labels, a float64 feature matrix with NaN for
missing values, and the target. Rows without a segment or a target cannot be trained on; they are
dropped and counted, never silently kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from scorer.errors import ConfigError
from scorer.tables import is_numeric_type, read_table


@dataclass(frozen=True)
class TrainingData:
    """Rows to train on, as arrays: ``segments`` (n,) str, ``X`` (n, p) float64 (NaN = missing), ``y`` (n,).

    With categorical columns (``categories``: name -> the levels seen in the whole file, sorted) ``X`` is an
    object array: numbers as floats, categories as str (or int for integer columns), NaN for missing.
    """

    segments: np.ndarray
    X: np.ndarray
    y: np.ndarray
    feature_names: tuple[str, ...]
    segment_col: str = "segment"
    target: str = "target"
    n_dropped: int = 0
    """Rows of the source left out because their segment or target was missing."""
    times: np.ndarray | None = None
    """(n,) epoch seconds of each row (NaN: unknown) when a time column was given: the lineage's time range."""
    categories: dict[str, tuple] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.segments.shape[0] if self.segments.ndim == 1 else -1
        if n < 0 or self.X.ndim != 2 or self.X.shape != (n, len(self.feature_names)) or self.y.shape != (n,):
            raise ConfigError(
                f"training arrays disagree: segments {self.segments.shape}, X {self.X.shape}, y {self.y.shape}, "
                f"{len(self.feature_names)} feature names")
        if self.times is not None and self.times.shape != (n,):
            raise ConfigError(f"training arrays disagree: {n} rows but {self.times.shape} times")
        unknown = set(self.categories) - set(self.feature_names)
        if unknown:
            raise ConfigError(f"categorical columns {sorted(unknown)} are not features")
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


def choose_features(table: pa.Table, segment_col: str, target: str,
                    features: Sequence[str] | None = None, categorical: Sequence[str] = ()) -> tuple[str, ...]:
    """The feature columns, in order: the given ones (checked numeric unless categorical), else every numeric
    or categorical column but segment/target."""
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
            if not is_numeric_type(dtype) and name not in categorical:
                raise ConfigError(f"feature {name!r} is not numeric (type {dtype}); features must be numbers "
                                  "(or list it in --categorical)")
        missing = [c for c in categorical if c not in chosen]
        if missing:
            raise ConfigError(f"categorical column {missing[0]!r} is not among the features")
        return tuple(chosen)
    for name in categorical:
        if name not in schema.names:
            raise ConfigError(f"categorical column {name!r} not in data; columns are: {', '.join(schema.names)}")
        if name in (segment_col, target):
            raise ConfigError(f"categorical column {name!r} is also the segment column or the target")
    chosen = [field.name for field in schema if field.name not in (segment_col, target)
              and (is_numeric_type(field.type) or field.name in categorical)]
    if not chosen:
        raise ConfigError(f"no numeric feature columns besides {segment_col!r} and {target!r}; "
                          f"columns are: {', '.join(schema.names)}")
    return tuple(chosen)


def table_to_training_data(table: pa.Table, *, segment_col: str, target: str,
                           features: Sequence[str] | None = None, categorical: Sequence[str] = (),
                           time_col: str | None = None) -> TrainingData:
    """Convert a table: drop rows without segment (null or "") or target, features to float64 with NaN for nulls
    (categorical ones to str or int values, see :class:`TrainingData`)."""
    if time_col is not None and time_col not in table.column_names:
        raise ConfigError(f"time column {time_col!r} is not in the data; columns: {', '.join(table.column_names)}")
    if time_col is not None and features is None:  # a time column is never a feature by default
        table_for_features = table.drop_columns([time_col])
    else:
        table_for_features = table
    feature_names = choose_features(table_for_features, segment_col, target, features, categorical)
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
    X = np.empty((table.num_rows, len(feature_names)), dtype=object if categorical else np.float64)
    categories: dict[str, tuple] = {}
    for j, name in enumerate(feature_names):
        if name in categorical:
            X[:, j], categories[name] = _categorical_column(table.column(name), name)
            continue
        column = pc.cast(table.column(name), pa.float64()).to_numpy(zero_copy_only=False)
        X[:, j] = column
        if np.isinf(column).any():
            raise ConfigError(f"feature {name!r} has {int(np.isinf(column).sum())} infinite values; "
                              "use empty cells (missing) or finite numbers")
    times = None if time_col is None else _epoch_seconds(table.column(time_col), time_col)
    return TrainingData(segments=segments, X=X, y=_target_array(table.column(target), target),
                        feature_names=feature_names, segment_col=segment_col, target=target,
                        n_dropped=int(n_dropped), times=times, categories=categories)


def _epoch_seconds(column: pa.ChunkedArray, name: str) -> np.ndarray:
    """A time column as float64 epoch seconds (NaN for nulls): timestamps, dates, ISO-8601 text or numbers."""
    dtype = column.type
    try:
        if pa.types.is_integer(dtype) or pa.types.is_floating(dtype):
            return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False)
        if pa.types.is_string(dtype) or pa.types.is_large_string(dtype) or pa.types.is_dictionary(dtype):
            text = pc.cast(column, pa.string())
            try:  # naive text is UTC; text with an offset is converted to UTC
                column = pc.cast(text, pa.timestamp("us"))
            except pa.ArrowInvalid:
                column = pc.cast(text, pa.timestamp("us", tz="UTC"))
        elif pa.types.is_date(dtype):
            column = pc.cast(column, pa.timestamp("us"))
        elif not pa.types.is_timestamp(dtype):
            raise ConfigError(f"time column {name!r} has type {dtype}; give timestamps, dates, ISO text or numbers")
        micros = pc.cast(pc.cast(column, pa.timestamp("us")), pa.int64())
    except pa.ArrowInvalid as exc:
        raise ConfigError(f"time column {name!r}: {str(exc).splitlines()[0]}") from None
    return pc.divide(pc.cast(micros, pa.float64()), 1e6).to_numpy(zero_copy_only=False)


#: most levels a categorical column may have (one-hot width, HistGradientBoosting's 255-bin limit)
MAX_LEVELS = 255


def _categorical_column(column: pa.ChunkedArray, name: str) -> tuple[np.ndarray, tuple]:
    """A categorical column as objects (str, or int for integer columns; NaN for missing) and its levels."""
    dtype = column.type
    if pa.types.is_dictionary(dtype):
        column, dtype = pc.cast(column, dtype.value_type), dtype.value_type
    if pa.types.is_integer(dtype) or pa.types.is_boolean(dtype):
        values = [np.nan if v is None else int(v) for v in column.to_pylist()]
    elif pa.types.is_string(dtype) or pa.types.is_large_string(dtype):
        values = [np.nan if v is None else v for v in column.to_pylist()]
    else:
        raise ConfigError(f"categorical column {name!r} has type {dtype}; it must hold text or integers")
    levels = sorted({v for v in values if not (isinstance(v, float) and v != v)})
    if len(levels) > MAX_LEVELS:
        raise ConfigError(f"categorical column {name!r} has {len(levels)} levels; at most {MAX_LEVELS}")
    out = np.empty(len(values), dtype=object)
    out[:] = values
    return out, tuple(levels)


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
                       features: Sequence[str] | None = None, categorical: Sequence[str] = (),
                       time_col: str | None = None) -> TrainingData:
    """Read ``source`` (a file path or a pyarrow Table) and convert it; reads only the columns it needs."""
    if isinstance(source, pa.Table):
        return table_to_training_data(source, segment_col=segment_col, target=target, features=features,
                                      categorical=categorical, time_col=time_col)
    # dict.fromkeys: a feature repeated or equal to the target is reported precisely by choose_features.
    extra = [time_col] if time_col else []
    columns = list(dict.fromkeys([segment_col, target, *features, *extra])) if features else None
    table = read_table(source, columns=columns, text_columns=(segment_col,))
    return table_to_training_data(table, segment_col=segment_col, target=target, features=features,
                                  categorical=categorical, time_col=time_col)
