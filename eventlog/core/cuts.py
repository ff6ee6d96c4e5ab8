"""Parse the ``as_of`` / ``known_at`` arguments into cuts of the log.

Two kinds of time, kept apart on purpose:
- a log position (an int): events with ``seq <= n``;
- business time (a datetime, a date or an ISO string): events with ``occurred_at <= t``;
  a date means the end of that UTC day.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from eventlog.errors import ValidationError

Cut = int | dt.datetime | dt.date | str | None

_ONE_US = dt.timedelta(microseconds=1)


@dataclass(frozen=True)
class TimeCut:
    """A resolved cut: at most ``seq`` (None = head) and, optionally, ``occurred_at <= business``."""

    seq: int | None = None
    business: dt.datetime | None = None


#: A seq beyond every possible head (seq is an int64).
_PAST_ANY_SEQ = 2**63 - 1


def parse_point(value: Cut, *, name: str) -> int | dt.datetime | None:
    """An int seq, an aware UTC datetime (dates become the end of their UTC day), or None."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValidationError(f"{name} is a seq (int), a datetime, a date or an ISO string, not a bool", field=name)
    if isinstance(value, int):
        if value < 0:
            raise ValidationError(f"{name}={value}: a seq cut cannot be negative", field=name)
        return value
    if isinstance(value, str):
        return _parse_text(value, name=name)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValidationError(
                f"{name}={value.isoformat()} has no time zone; pass e.g. datetime(..., tzinfo=timezone.utc)", field=name
            )
        return value.astimezone(dt.timezone.utc)
    if isinstance(value, dt.date):
        return end_of_day(value)
    raise ValidationError(f"{name} is a seq, a datetime, a date or an ISO string, not {type(value).__name__}", field=name)


def end_of_day(day: dt.date) -> dt.datetime:
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)
    return start + dt.timedelta(days=1) - _ONE_US


def _parse_text(text: str, *, name: str) -> int | dt.datetime:
    stripped = text.strip()
    if stripped.isascii() and stripped.isdigit():
        # More digits than any int64 seq: past every head (int() would refuse past 4300 digits).
        return int(stripped) if len(stripped) <= 19 else _PAST_ANY_SEQ
    try:
        if len(stripped) == 10:
            return end_of_day(dt.date.fromisoformat(stripped))
        value = dt.datetime.fromisoformat(stripped)
    except ValueError:
        raise ValidationError(f"{name}={text!r} is not a seq, an ISO date or an ISO timestamp", field=name) from None
    if value.tzinfo is None:
        raise ValidationError(
            f"{name}={text!r} has no time zone; add one, e.g. {stripped}+00:00 or {stripped}Z", field=name
        )
    return value.astimezone(dt.timezone.utc)
