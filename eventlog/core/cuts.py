"""Parse the ``as_of`` / ``known_at`` arguments into cuts of the log.

Two kinds of time, kept apart on purpose:
- a log position (an int): events with ``seq <= n``;
- business time (a datetime, a date or an ISO string): events with ``occurred_at <= t``;
  a date means the end of that UTC day.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass

from eventlog.errors import ValidationError

Cut = int | dt.datetime | dt.date | str | None

# --- the text grammar of a cut --------------------------------------------------------------
# One grammar for every surface: parse_point here, the CLI's --as-of/--known-at (which call
# parse_point) and the SQL macros as_of_seq/as_of_time (whose regexes are these strings). The
# patterns are written in the subset that Python's re and DuckDB's RE2 read alike: ASCII
# classes, no look-around, no shorthand classes (``\d`` and ``\s`` take Unicode in Python).
# The values they let through are then checked by each side's own parser (Python's
# fromisoformat, DuckDB's casts); the patterns exclude what those two disagree on: hour 24,
# year 0000, more than microseconds, a lower-case ``z``, offsets of 24 hours or more, and
# words such as 'infinity' or 'epoch', which DuckDB alone would take.

#: Characters stripped from both ends of a cut's text before it is matched.
BLANKS = " \t\n\r"
#: A seq: ASCII digits only (``'١٢'`` is no seq). Beyond int64 it is past every head.
SEQ_PATTERN = r"[0-9]+"
_YEAR = r"([0-9]{3}[1-9]|[0-9]{2}[1-9][0-9]|[0-9][1-9][0-9]{2}|[1-9][0-9]{3})"  # 0001..9999
#: An ISO date: the end of that UTC day.
DATE_PATTERN = _YEAR + r"-[0-9]{2}-[0-9]{2}"
_TIME = r"([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?"
#: A UTC offset: Z, or +/- hours under 24 with optional minutes (with or without a colon).
OFFSET_PATTERN = r"(Z|[+-]([01][0-9]|2[0-3])(:?[0-5][0-9])?)"
#: An ISO timestamp without an offset: refused with its own message (it would be ambiguous).
NAIVE_TIMESTAMP_PATTERN = DATE_PATTERN + r"[T ]" + _TIME
#: An ISO timestamp with an offset.
TIMESTAMP_PATTERN = NAIVE_TIMESTAMP_PATTERN + OFFSET_PATTERN

_SEQ_RE, _DATE_RE, _NAIVE_RE, _TIMESTAMP_RE = (
    re.compile(p) for p in (SEQ_PATTERN, DATE_PATTERN, NAIVE_TIMESTAMP_PATTERN, TIMESTAMP_PATTERN)
)
#: What a text that fits none of the patterns is told (the SQL macros say the same).
NOT_A_CUT = "is not a seq, an ISO date or an ISO timestamp"


@dataclass(frozen=True)
class TimeCut:
    """A resolved cut: at most ``seq`` (None = head) and, optionally, ``occurred_at <= business``."""

    seq: int | None = None
    business: dt.datetime | None = None


#: A seq beyond every possible head (seq is an int64).
_PAST_ANY_SEQ = 2**63 - 1


def parse_point(value: Cut, *, name: str) -> int | dt.datetime | None:
    """An int seq, an aware UTC datetime (dates become the end of their UTC day), or None.

    Text follows the grammar above: ``"12"`` (blanks around it ignored) is a seq, ``"2024-02-01"``
    the end of that UTC day, ``"2024-02-01T10:00:00+01:00"`` an instant. A seq beyond int64 is
    past every head.

    Example:
        >>> parse_point(" 12 ", name="as_of")
        12
        >>> parse_point("2024-02-01T10:00+01:00", name="as_of")
        datetime.datetime(2024, 2, 1, 9, 0, tzinfo=datetime.timezone.utc)
        >>> parse_point("2024-02-01", name="as_of").isoformat()
        '2024-02-01T23:59:59.999999+00:00'
        >>> parse_point("epoch", name="as_of")
        Traceback (most recent call last):
        ...
        eventlog.errors.ValidationError: field 'as_of': as_of='epoch' is not a seq, an ISO date or an ISO timestamp
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValidationError(f"{name} is a seq (int), a datetime, a date or an ISO string, not a bool", field=name)
    if isinstance(value, int):
        if value < 0:
            raise ValidationError(f"{name}={value}: a seq cut cannot be negative", field=name)
        return min(value, _PAST_ANY_SEQ)
    if isinstance(value, str):
        return _parse_text(value, name=name)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValidationError(
                f"{name}={value.isoformat()} has no time zone; pass e.g. datetime(..., tzinfo=timezone.utc)", field=name
            )
        return _to_utc(value)
    if isinstance(value, dt.date):
        return end_of_day(value)
    raise ValidationError(f"{name} is a seq, a datetime, a date or an ISO string, not {type(value).__name__}", field=name)


def resolve_cut(as_of: Cut, known_at: Cut, last_seq_recorded_by: Callable[[dt.datetime], int]) -> TimeCut:
    """``as_of`` / ``known_at`` as one seq cut and an optional business-time cut.

    A seq in either bounds the seq; a ``known_at`` time becomes the last seq recorded by
    then, which only the engine reading the log can find (``last_seq_recorded_by``), so
    every engine resolves a cut the same way.

    Example:
        >>> resolve_cut(12, 10, lambda t: 0)
        TimeCut(seq=10, business=None)
        >>> resolve_cut("2024-02-01", None, lambda t: 0).business.isoformat()
        '2024-02-01T23:59:59.999999+00:00'
    """
    point = parse_point(as_of, name="as_of")
    known = parse_point(known_at, name="known_at")
    seq = point if isinstance(point, int) else None
    business = point if isinstance(point, dt.datetime) else None
    if isinstance(known, int):
        seq = known if seq is None else min(seq, known)
    elif isinstance(known, dt.datetime):
        recorded = last_seq_recorded_by(known)
        seq = recorded if seq is None else min(seq, recorded)
    return TimeCut(seq=seq, business=business)


def end_of_day(day: dt.date) -> dt.datetime:
    """The last microsecond of ``day`` in UTC."""
    return dt.datetime.combine(day, dt.time.max, tzinfo=dt.timezone.utc)


def _parse_text(text: str, *, name: str) -> int | dt.datetime:
    stripped = text.strip(BLANKS)
    if _SEQ_RE.fullmatch(stripped):
        # More digits than any int64 seq: past every head (int() would refuse past 4300 digits).
        return min(int(stripped), _PAST_ANY_SEQ) if len(stripped) <= 19 else _PAST_ANY_SEQ
    try:
        if _DATE_RE.fullmatch(stripped):
            return end_of_day(dt.date.fromisoformat(stripped))
        if _TIMESTAMP_RE.fullmatch(stripped):
            return _to_utc(dt.datetime.fromisoformat(stripped))
        naive = bool(_NAIVE_RE.fullmatch(stripped)) and dt.datetime.fromisoformat(stripped) is not None
    except ValueError:  # fits a pattern, but no such day or time (2024-02-30)
        naive = False
    if naive:
        raise ValidationError(
            f"{name}={text!r} has no time zone; add one, e.g. {stripped}+00:00 or {stripped}Z", field=name
        )
    raise ValidationError(f"{name}={text!r} {NOT_A_CUT}", field=name)


def _to_utc(value: dt.datetime) -> dt.datetime:
    try:
        return value.astimezone(dt.timezone.utc)
    except OverflowError:  # within a day of year 1 or 9999: the nearest instant Python can hold
        edge = dt.datetime.max if value.year == dt.MAXYEAR else dt.datetime.min
        return edge.replace(tzinfo=dt.timezone.utc)
