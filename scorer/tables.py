"""Tables at the boundary: a CSV or Parquet file read with pyarrow, for training and for ``scorer send``.

Lives in the runtime (not ``trainers``) because ``scorer send`` reads the same files and the runtime never
imports the trainers.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import pyarrow as pa

from scorer.errors import ConfigError

PARQUET_SUFFIXES = (".parquet", ".pq")
# pyarrow fixes CSV column types from the first block; a large block keeps a late "1.5" from breaking an int column.
_CSV_BLOCK_SIZE = 1 << 26


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
