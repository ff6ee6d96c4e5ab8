"""SQL literals and types for DuckDB, quoted here once for every generated statement."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import polars as pl


def ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def string_list(items: Sequence[str]) -> str:
    if len(items) < 2:
        return "[" + "".join(string(i) for i in items) + "]"
    return "[\n    " + ",\n    ".join(string(i) for i in items) + "\n]"


def literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int):
        return str(value)
    return string(str(value))


def timestamp(iso: str) -> str:
    return f"CAST({string(iso)} AS TIMESTAMPTZ)"


def duck_type(dtype: pl.DataType) -> str:
    if isinstance(dtype, pl.Datetime):
        return "TIMESTAMPTZ" if dtype.time_zone else "TIMESTAMP"
    if isinstance(dtype, pl.List) and isinstance(dtype.inner, pl.DataType):  # polars makes it an instance
        return f"{duck_type(dtype.inner)}[]"
    names = {pl.Int64: "BIGINT", pl.Float64: "DOUBLE", pl.String: "VARCHAR", pl.Boolean: "BOOLEAN", pl.Date: "DATE",
             pl.Int32: "INTEGER", pl.UInt32: "UINTEGER", pl.UInt64: "UBIGINT", pl.Int128: "HUGEINT",
             pl.Float32: "FLOAT"}
    for polars_type, name in names.items():
        if dtype == polars_type:
            return name
    raise TypeError(f"no DuckDB type for {dtype}")


def typed_nulls(columns: Mapping[str, pl.DataType]) -> str:
    if not columns:
        return "NULL AS empty"
    return ", ".join(f"CAST(NULL AS {duck_type(t)}) AS {ident(c)}" for c, t in columns.items())


def indent(text: str) -> str:
    return "\n".join("    " + line if line else line for line in text.splitlines())
