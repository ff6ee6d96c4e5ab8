"""One conversion for every batch that comes in: any table a user hands us becomes a polars DataFrame.

``EventLog.append``, ``Inventory.record`` and the file importers all read their input through
``as_frame``. Whatever exports the Arrow PyCapsule stream interface (``__arrow_c_stream__``:
pyarrow tables, record batches and readers, polars, pandas >= 2.2, DuckDB relations, arro3, ...)
is read through that interface, so none of those libraries is imported to recognise its
objects; a polars LazyFrame is collected; a sequence of mappings stays records, which the
validator type-checks value by value.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, TypeAlias

import polars as pl
import pyarrow as pa

from eventlog.errors import ValidationError

__all__ = ["ArrowStreamExportable", "Batch", "as_frame", "narrow_integers"]


class ArrowStreamExportable(Protocol):
    """An object that hands out its rows as an Arrow C stream (pandas, pyarrow, DuckDB, ...)."""

    def __arrow_c_stream__(self, requested_schema: object | None = None) -> object: ...


#: What every write accepts: a table of any library above, a LazyFrame, or records.
Batch: TypeAlias = pl.DataFrame | pl.LazyFrame | ArrowStreamExportable | Sequence[Mapping[str, Any]]

# pandas exports an unnamed index that is not a RangeIndex as a column of this name: never user data.
_PANDAS_INDEX = re.compile(r"__index_level_\d+__")

_ACCEPTED = (
    "a table (polars, pyarrow, pandas, DuckDB or anything with __arrow_c_stream__), "
    "a polars LazyFrame, or a list of dicts"
)


def as_frame(batch: object) -> pl.DataFrame | None:
    """The batch as a polars DataFrame, or None when it is records (a sequence of mappings).

    Raises:
        ValidationError: the batch is none of the accepted shapes, or its stream is not a table.

    Example:
        >>> import pyarrow as pa
        >>> as_frame(pa.table({"n": [1, 2]})).rows()
        [(1,), (2,)]
        >>> as_frame([{"n": 1}]) is None
        True
    """
    if isinstance(batch, pl.DataFrame):
        return batch
    if isinstance(batch, pl.LazyFrame):
        return batch.collect()
    if isinstance(batch, pa.Table):
        return _from_arrow(batch)
    if hasattr(type(batch), "__arrow_c_stream__"):
        try:
            table = pa.RecordBatchReader.from_stream(batch).read_all()
        except pa.ArrowInvalid as exc:  # a Series or an Array: one column with no names
            raise ValidationError(
                f"a {type(batch).__name__} is not a table of named columns; pass {_ACCEPTED}"
            ) from exc
        return _from_arrow(table)
    if isinstance(batch, Sequence) and not isinstance(batch, (str, bytes, bytearray)):
        return None
    raise ValidationError(f"a batch is {_ACCEPTED}, not {type(batch).__name__}")


def _from_arrow(table: pa.Table) -> pl.DataFrame:
    names = table.column_names
    twice = next((name for i, name in enumerate(names) if name in names[:i]), None)
    if twice is not None:
        raise ValidationError("the column occurs twice in the table; give each column once", row=0, field=twice)
    table = _offsets_as_utc(table)
    index = [name for name in table.column_names if _PANDAS_INDEX.fullmatch(name)]
    frame = pl.from_arrow(table.drop_columns(index) if index else table)
    if not isinstance(frame, pl.DataFrame):  # pl.from_arrow gives a DataFrame for every Table
        raise TypeError(f"polars read an Arrow table as {type(frame).__name__}")
    return frame


def _offsets_as_utc(table: pa.Table) -> pa.Table:
    """Timestamps zoned by a fixed offset (``+05:30``), which polars cannot read, as the same instants in UTC.

    Arrow keeps the instant in UTC whatever the zone: only the label changes.
    """
    fields = list(table.schema)
    zoned = [i for i, f in enumerate(fields) if pa.types.is_timestamp(f.type) and f.type.tz
             and re.fullmatch(r"[+-]\d{2}:?\d{2}", f.type.tz)]
    for i in zoned:
        utc = pa.timestamp(fields[i].type.unit, tz="UTC")
        table = table.set_column(i, fields[i].with_type(utc), table.column(i).cast(utc))
    return table


def narrow_integers(frame: pl.DataFrame) -> pl.DataFrame:
    """Whole-number columns DuckDB widened (a ``SUM`` of BIGINT is a HUGEINT, which arrives as
    ``Decimal(38, 0)``) as ``Int64`` again, when every value fits; wider values keep their type.

    Example:
        >>> import duckdb
        >>> narrow_integers(duckdb.sql("SELECT SUM(x) AS s FROM range(4) t(x)").pl()).dtypes
        [Int64]
    """
    wide = [
        name for name, dtype in zip(frame.columns, frame.dtypes)
        if dtype == pl.Int128 or (isinstance(dtype, pl.Decimal) and dtype.scale == 0)
    ]
    if not wide:
        return frame
    bounds = frame.select(
        pl.all_horizontal(pl.col(name).is_null() | pl.col(name).cast(pl.Int128).is_between(-(2**63), 2**63 - 1))
        .all()
        .alias(name)
        for name in wide
    ).row(0, named=True)
    return frame.with_columns(pl.col(name).cast(pl.Int64) for name, fits in bounds.items() if fits)
