"""Turn a user batch into a typed frame that fits the schema, or say exactly what is wrong.

Vectorised for DataFrames and Arrow tables. A list of dicts is already Python objects,
so its values are type-checked while its columns are built (once per value).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import polars as pl

from eventlog.core.frames import Batch, as_frame
from eventlog.core.text import is_utf8
from eventlog.errors import DuplicateEventError, ValidationError
from eventlog.core.schema import LOG_OWNED, PARTITION_COLUMN, EventSchema


#: Envelope columns a user may give. event_type and stream_id are required.
USER_ENVELOPE: dict[str, pl.DataType] = {
    "event_id": pl.String(),
    "stream_id": pl.String(),
    "event_type": pl.String(),
    "occurred_at": pl.Datetime("us", "UTC"),
}
MAX_ID_LENGTH = 1024


def normalize(batch: Batch, schema: EventSchema) -> pl.DataFrame:
    """Validate ``batch`` against ``schema``; return it with the user envelope + payload columns.

    Raises:
        ValidationError: naming the first offending row in batch order, and its field.
    """
    frame = as_frame(batch)  # every table shape, through one conversion (core/frames.py)
    rows: pl.DataFrame | Sequence[Mapping[str, Any]] = batch if frame is None else frame  # type: ignore[assignment]
    try:
        return _validate(rows, schema)
    except ValidationError as exc:
        raise _earliest(rows, schema, exc) from exc.__cause__


def _earliest(rows: pl.DataFrame | Sequence[Mapping[str, Any]], schema: EventSchema,
              error: ValidationError) -> ValidationError:
    """The error of the first offending row in batch order, whichever check finds it.

    The checks run in stages (types, identifiers, event types...), each naming its own first row;
    a later row failing an early stage must not hide an earlier row failing a later one. So the
    rows before the one named are validated again, alone: if they fail, that error is earlier.
    Each round clears at least the stage that failed, so it ends after a few vectorised passes,
    and it only runs for a batch that is refused anyway.
    """
    while error.row:
        try:
            _validate(rows[: error.row], schema, prefix=True)
        except ValidationError as earlier:
            if earlier.row is not None and earlier.row < error.row:
                error = earlier
                continue
        return error
    return error


def _validate(rows: pl.DataFrame | Sequence[Mapping[str, Any]], schema: EventSchema, *,
              prefix: bool = False) -> pl.DataFrame:
    """``normalize`` of a frame or records; ``prefix``: of the first rows of a refused batch, where a
    column that holds only nulls there offends in no row."""
    df = rows if isinstance(rows, pl.DataFrame) else _frame_from_records(rows, schema, prefix=prefix)
    if df.height == 0:
        raise ValidationError("the batch is empty; there is nothing to append")
    if prefix:
        df = df.select(c for c in df.columns if df.get_column(c).null_count() < df.height or c in _REQUIRED)
    _reject_unknown_columns(df, schema)
    for name in _REQUIRED:
        if name not in df.columns:
            raise ValidationError("required column is missing", row=0, field=name)
    expected = {**USER_ENVELOPE, **schema.payload}
    df = df.with_columns(_each_or_first_error(lambda name: _cast_column(df, name, expected[name], schema), df.columns))
    _check_identifiers(df)
    df = _apply_event_types(df, schema)
    return df.select(
        [pl.col(c) if c in df.columns else pl.lit(None, dtype=t).alias(c) for c, t in expected.items()]
    )


_REQUIRED = ("event_type", "stream_id")


def first_row(df: pl.DataFrame, mask: pl.Expr) -> int | None:
    """Index of the first row where ``mask`` is true, or None."""
    hit = df.select(mask.fill_null(False).arg_true().first()).item()
    return None if hit is None else int(hit)


_TEXT_FORMS: dict[type[pl.DataType], tuple[str, Callable[[pl.Series], pl.Series]]] = {
    pl.Int64: ("a whole number that fits in int64", lambda s: s.cast(pl.Int64, strict=False).is_not_null()),
    pl.Float64: ("a number", lambda s: s.cast(pl.Float64, strict=False).is_not_null()),
    pl.Boolean: ("true or false", lambda s: s.str.to_lowercase().is_in(["true", "false"])),
    pl.Date: ("an ISO 8601 date (e.g. 2024-03-01)", lambda s: s.str.to_date("%Y-%m-%d", strict=False).is_not_null()),
}


def check_text_columns(text: pl.DataFrame, types: Mapping[str, pl.DataType]) -> None:
    """Name the first value of ``text`` (every column read as strings) that is not text for its type.

    For a typed CSV read that failed: the reader names the column, not the row.

    Raises:
        ValidationError: naming the row and field, when a value does not parse.
    """
    for name, dtype in types.items():
        form = _TEXT_FORMS.get(type(dtype))
        if form is None or name not in text.columns:
            continue
        s = text.get_column(name).str.strip_chars()
        bad = (s.is_not_null() & ~form[1](s)).arg_true()
        if bad.len():
            row = int(bad[0])
            raise ValidationError(f"{s[row]!r} is not {form[0]}", row=row, field=name)


def _value_at(df: pl.DataFrame, column: str, row: int) -> str:
    return repr(df.get_column(column)[row])


# --- input shapes -------------------------------------------------------------------------


def _frame_from_records(records: Sequence[Mapping[str, Any]], schema: EventSchema, *,
                        prefix: bool = False) -> pl.DataFrame:
    columns: dict[str, list[Any]] = {}
    for i, rec in enumerate(records):
        if not isinstance(rec, Mapping):
            raise ValidationError(f"expected a dict, got {type(rec).__name__}", row=i)
        for key in rec:
            if key not in columns:
                columns[key] = [None] * i
        for key, values in columns.items():
            values.append(rec.get(key))
    types = {**USER_ENVELOPE, **schema.payload}
    if prefix:  # a key with only None values in these rows offends in none of them
        columns = {k: v for k, v in columns.items() if k in _REQUIRED or any(x is not None for x in v)}
    for name, values in columns.items():
        if name not in types:
            row = next((i for i, v in enumerate(values) if v is not None), 0)
            raise _unknown_column(name, row, schema)
    return pl.DataFrame(_each_or_first_error(lambda name: _series_from_python(name, columns[name], types[name]),
                                             list(columns)))


def _each_or_first_error(convert: Callable[[str], pl.Series], names: list[str]) -> list[pl.Series]:
    """``convert`` every column; if some fail, raise the error of the earliest row (columns go one by one)."""
    out, errors = [], []
    for name in names:
        try:
            out.append(convert(name))
        except ValidationError as exc:
            errors.append(exc)
    if errors:
        raise min(errors, key=lambda e: e.row if e.row is not None else -1)
    return out


_PY_TYPES: dict[type[pl.DataType], tuple[type, ...]] = {
    pl.Int64: (int,),
    pl.Float64: (int, float),
    pl.String: (str,),
    pl.Boolean: (bool,),
    pl.Date: (dt.date,),
}


def _series_from_python(name: str, values: list[Any], dtype: pl.DataType) -> pl.Series:
    if isinstance(dtype, pl.Datetime):
        return _timestamps_from_python(name, values)
    if isinstance(dtype, pl.Date):
        values = [_parse_date_text(v, row=i, field=name) if isinstance(v, str) else v for i, v in enumerate(values)]
    allowed = _PY_TYPES[type(dtype)]
    for i, v in enumerate(values):
        if v is None:
            continue
        bad_bool = isinstance(v, bool) and not isinstance(dtype, pl.Boolean)
        bad_date = isinstance(dtype, pl.Date) and isinstance(v, dt.datetime)
        if not isinstance(v, allowed) or bad_bool or bad_date:
            raise ValidationError(f"expected {dtype}, got {v!r} ({type(v).__name__})", row=i, field=name)
        if isinstance(dtype, pl.Int64) and isinstance(v, int) and not -(2**63) <= v < 2**63:
            raise ValidationError(f"{v} does not fit in int64", row=i, field=name)
    try:
        return pl.Series(name, values, dtype=dtype)
    except UnicodeEncodeError:  # a str with lone surrogates, e.g. bytes decoded with errors="surrogateescape"
        row = next(i for i, v in enumerate(values) if isinstance(v, str) and not is_utf8(v))
        raise ValidationError(f"{values[row]!r} is not valid Unicode text (it has a lone surrogate)",
                              row=row, field=name) from None


def _timestamps_from_python(name: str, values: list[Any]) -> pl.Series:
    out: list[Any] = []
    for i, v in enumerate(values):
        if isinstance(v, dt.datetime):
            if v.tzinfo is None or v.tzinfo.utcoffset(v) is None:
                raise ValidationError(_NAIVE_HINT, row=i, field=name)
            out.append(_in_utc(v, row=i, field=name))
        elif isinstance(v, str):
            out.append(_parse_timestamp_text(v, row=i, field=name))
        elif v is None:
            out.append(None)
        else:
            raise ValidationError(f"expected a timestamp, got {v!r} ({type(v).__name__})", row=i, field=name)
    return pl.Series(name, out, dtype=pl.Datetime("us", "UTC"))


_NAIVE_HINT = "timestamp has no time zone; give an aware datetime (e.g. tzinfo=timezone.utc) or an ISO string with an offset"


def _parse_timestamp_text(text: str, *, row: int, field: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"{text!r} is not an ISO 8601 timestamp", row=row, field=field) from None
    if value.tzinfo is None:
        raise ValidationError(_NAIVE_HINT, row=row, field=field)
    return _in_utc(value, row=row, field=field)


def _in_utc(value: dt.datetime, *, row: int, field: str) -> dt.datetime:
    try:
        return value.astimezone(dt.timezone.utc)
    except OverflowError:  # e.g. 0001-01-01T00:00+05:00 is in the year 0 in UTC
        raise ValidationError(f"{value.isoformat()} is outside the years {MIN_YEAR}..{MAX_YEAR} in UTC",
                              row=row, field=field) from None


def _parse_date_text(text: str, *, row: int, field: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise ValidationError(f"{text!r} is not an ISO 8601 date (e.g. 2024-03-01)", row=row, field=field) from None


# --- columns ------------------------------------------------------------------------------


def _unknown_column(name: str, row: int, schema: EventSchema) -> ValidationError:
    if name in LOG_OWNED:
        return ValidationError("is set by the log and cannot be given", row=row, field=name)
    if name == PARTITION_COLUMN:
        return ValidationError("is derived from occurred_at and cannot be given", row=row, field=name)
    known = sorted({*USER_ENVELOPE, *schema.payload})
    return ValidationError(f"unknown column; known columns: {known}", row=row, field=name)


def _reject_unknown_columns(df: pl.DataFrame, schema: EventSchema) -> None:
    for name in df.columns:
        if name not in USER_ENVELOPE and name not in schema.payload:
            row = first_row(df, pl.col(name).is_not_null())
            raise _unknown_column(name, row or 0, schema)


def _cast_column(df: pl.DataFrame, name: str, target: pl.DataType, schema: EventSchema) -> pl.Series:
    """Cast one column to its schema type, naming the first row that does not fit."""
    s = df.get_column(name)
    src = s.dtype
    if src == target:
        out = s
    elif src == pl.Null:
        out = s.cast(target)
    elif isinstance(target, pl.Datetime):
        out = _cast_timestamps(s, name)
    elif isinstance(target, pl.Date) and src == pl.String:
        out = _parse_date_column(s, name)
    elif isinstance(target, pl.String) and isinstance(src, (pl.Categorical, pl.Enum)):
        out = s.cast(pl.String)
    elif _compatible(src, target):
        out = s.cast(target, strict=False)
        lost = first_row(pl.DataFrame([s, out.alias("__out")]), pl.col(name).is_not_null() & pl.col("__out").is_null())
        if lost is not None:
            raise ValidationError(f"{s[lost]!r} does not fit in {target}", row=lost, field=name)
    else:
        row = first_row(df, pl.col(name).is_not_null()) or 0
        example = s.slice(row, 1).to_list()[0]  # a plain value even for a list or struct column
        raise ValidationError(f"expected {target}, got {src} (e.g. {example!r})", row=row, field=name)
    if isinstance(target, pl.Float64):
        bad = first_row(out.to_frame(), ~pl.col(name).is_finite())
        if bad is not None:
            raise ValidationError(f"{out[bad]} is not a finite number", row=bad, field=name)
    if isinstance(target, (pl.Datetime, pl.Date)):
        _check_years(out, name)
    return out


#: Business time (and every date or timestamp field) is kept within the years Python's datetime,
#: ISO 8601 and the partition folder names (``occurred_on=YYYY-MM-DD``) all spell the same way.
MIN_YEAR, MAX_YEAR = 1, 9999


def _check_years(s: pl.Series, name: str) -> None:
    bad = first_row(s.to_frame(), ~pl.col(name).dt.year().is_between(MIN_YEAR, MAX_YEAR))
    if bad is not None:
        year = s.dt.year()[bad]
        raise ValidationError(f"year {year} is outside the years {MIN_YEAR}..{MAX_YEAR} a date or timestamp may have",
                              row=bad, field=name)


def _compatible(src: pl.DataType, target: pl.DataType) -> bool:
    if isinstance(target, pl.Int64):
        return src.is_integer()
    if isinstance(target, pl.Float64):
        return src.is_numeric() and not isinstance(src, pl.Decimal)
    return False


def _parse_date_column(s: pl.Series, name: str) -> pl.Series:
    """ISO dates, parsed vectorised; values in another form go through the Python parser (as timestamps do)."""
    parsed = s.str.to_date("%Y-%m-%d", strict=False)
    failed = (s.is_not_null() & parsed.is_null()).arg_true()
    if failed.len():
        redo = [_parse_date_text(s[i], row=i, field=name) for i in failed]
        parsed = parsed.scatter(failed, pl.Series(name, redo, dtype=pl.Date))
    return parsed


def _cast_timestamps(s: pl.Series, name: str) -> pl.Series:
    if isinstance(s.dtype, pl.Datetime):
        if s.dtype.time_zone is None:
            row = first_row(s.to_frame(), pl.col(name).is_not_null()) or 0
            raise ValidationError(_NAIVE_HINT, row=row, field=name)
        if s.dtype.time_unit == "ns":  # stored in microseconds: never drop the nanoseconds silently
            lost = first_row(s.to_frame(), pl.col(name).dt.nanosecond() % 1000 != 0)
            if lost is not None:
                shown = s.dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S%.9f+00:00")[lost]
                raise ValidationError(
                    f"{shown} has nanoseconds, and timestamps are stored in microseconds; round the column "
                    "first (e.g. .dt.truncate('1us'))", row=lost, field=name)
        return s.dt.convert_time_zone("UTC").cast(pl.Datetime("us", "UTC"))
    if s.dtype == pl.String:
        return _parse_timestamp_column(s, name)
    row = first_row(s.to_frame(), pl.col(name).is_not_null()) or 0
    raise ValidationError(f"expected a UTC timestamp, got {s.dtype} (e.g. {s[row]!r})", row=row, field=name)


def _parse_timestamp_column(s: pl.Series, name: str) -> pl.Series:
    """ISO strings with an offset, parsed vectorised; a string without one is an error, never UTC.

    Polars infers one format from the first value: ``time_zone="UTC"`` would read strings
    without an offset as UTC, and values in another format come back null. Only those
    rows go through the Python parser, which accepts them or names the precise problem.
    """
    utc = pl.Datetime("us", "UTC")
    try:
        parsed = s.str.to_datetime(time_unit="us", strict=False)
    except pl.exceptions.ComputeError:  # no value gave polars a format to infer
        parsed = None
    if parsed is None or not isinstance(parsed.dtype, pl.Datetime) or parsed.dtype.time_zone is None:  # or inferred from a naive value
        parsed = pl.repeat(None, s.len(), dtype=utc, eager=True)
    parsed = parsed.dt.convert_time_zone("UTC").cast(utc).alias(name)
    failed = (s.is_not_null() & parsed.is_null()).arg_true()
    if failed.len():
        redo = [_parse_timestamp_text(s[i], row=i, field=name) for i in failed]
        parsed = parsed.scatter(failed, pl.Series(name, redo, dtype=utc))
    return parsed


def _check_identifiers(df: pl.DataFrame) -> None:
    checks = [
        ("stream_id", pl.col("stream_id").is_null(), "stream_id is null; every event belongs to a stream"),
        ("stream_id", pl.col("stream_id").str.len_chars() == 0, "stream_id is empty"),
        ("stream_id", pl.col("stream_id").str.len_bytes() > MAX_ID_LENGTH, f"stream_id is longer than {MAX_ID_LENGTH} bytes"),
        ("event_type", pl.col("event_type").is_null(), "event_type is null"),
    ]
    if "event_id" in df.columns:
        checks += [
            ("event_id", pl.col("event_id").str.len_chars() == 0, "event_id is empty"),
            ("event_id", pl.col("event_id").str.len_bytes() > MAX_ID_LENGTH, f"event_id is longer than {MAX_ID_LENGTH} bytes"),
        ]
    _fail_at_first(df, [(mask, field_name, message, False) for field_name, mask, message in checks])
    if "event_id" in df.columns:
        # Name the row that repeats an id, and the earlier row it repeats.
        dup = first_row(df, pl.col("event_id").is_not_null() & ~pl.col("event_id").is_first_distinct())
        if dup is not None:
            event_id = df["event_id"][dup]
            first = first_row(df, pl.col("event_id") == event_id)
            raise DuplicateEventError(
                f"event_id {event_id!r} occurs twice in the batch (also in row {first})", row=dup, field="event_id"
            )


def _apply_event_types(df: pl.DataFrame, schema: EventSchema) -> pl.DataFrame:
    """Check each row against its event type's fields; fill defaults."""
    names = schema.event_type_names
    row = first_row(df, ~pl.col("event_type").is_in(names))
    if row is not None:
        raise ValidationError(f"unknown event type {df['event_type'][row]!r}; known: {names}", row=row, field="event_type")
    fills = []
    problems: list[tuple[pl.Expr, str, str, bool]] = []  # (mask, field, message, show the value)
    for name in schema.payload:
        present = name in df.columns
        fill = pl.col(name) if present else pl.lit(None, dtype=schema.payload[name])
        for et in schema.event_types:
            is_et = pl.col("event_type") == et.name
            f = et.field(name)
            if f is None:
                if present:
                    problems.append((is_et & pl.col(name).is_not_null(), name,
                                     f"is not a field of event type {et.name!r}", False))
                continue
            if f.default is not None:
                fill = pl.when(is_et & fill.is_null()).then(pl.lit(f.default, dtype=f.dtype)).otherwise(fill)
            elif f.required:
                missing = is_et & (pl.col(name).is_null() if present else pl.lit(True))
                problems.append((missing, name, f"is required by event type {et.name!r} and is missing", False))
            if present and f.min is not None:
                problems.append((is_et & (pl.col(name) < f.min), name, f"must be at least {f.min}", True))
            if present and f.max is not None:
                problems.append((is_et & (pl.col(name) > f.max), name, f"must be at most {f.max}", True))
        fills.append(fill.alias(name))
    _fail_at_first(df, problems)
    return df.with_columns(fills)


def _fail_at_first(df: pl.DataFrame, problems: list[tuple[pl.Expr, str, str, bool]]) -> None:
    """Raise for the first row in batch order that any check fails (every check runs in one pass).

    Checks are built one event type at a time; taking the first failing check instead would
    name a later row when an earlier one of another type also fails.
    """
    if not problems:
        return
    firsts = df.select(
        mask.fill_null(False).arg_true().first().alias(str(i)) for i, (mask, *_rest) in enumerate(problems)
    ).row(0)
    hits = [(row, i) for i, row in enumerate(firsts) if row is not None]
    if not hits:
        return
    row, i = min(hits)
    _mask, field_name, message, show = problems[i]
    detail = f" (got {_value_at(df, field_name, row)})" if show else ""
    raise ValidationError(f"{message}{detail}", row=row, field=field_name)

