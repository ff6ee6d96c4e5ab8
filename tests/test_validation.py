"""Rejected batches: a ValidationError naming the row and the field, and nothing written.

Each bad value sits in a row other than 0, so the row index in the message means something.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
from support import ADDED, CHECKED_OUT, REMOVED, SELECT, added, as_polars, read_all

from eventlog import EventLog
from eventlog.errors import DuplicateEventError, EventLogError, ValidationError

UTC = dt.timezone.utc
NAIVE = dt.datetime(2024, 5, 1, 12, 0)


def _frame(**columns: pl.Series | list[Any]) -> pl.DataFrame:
    """Three item_added rows, with the given columns replaced or added."""
    base: dict[str, Any] = {
        "event_type": [ADDED] * 3,
        "stream_id": ["a", "b", "c"],
        "sku": ["x", "y", "z"],
        "quantity": [1, 2, 3],
    }
    return pl.DataFrame({**base, **columns})


def _rows(bad: dict[str, Any], *, at: int = 1, drop: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Three valid item_added rows; row ``at`` updated with ``bad`` and without the ``drop`` keys."""
    rows = [added(f"s{i}", quantity=i + 1) for i in range(3)]
    rows[at] = {k: v for k, v in {**rows[at], **bad}.items() if k not in drop}
    return rows


# (batch, row, field) for every way a batch can be wrong.
BAD_BATCHES: dict[str, tuple[Callable[[], Any], int, str]] = {
    "unknown event type": (lambda: _rows({"event_type": "item_addded"}, at=2), 2, "event_type"),
    "unknown event type (frame)": (lambda: _frame(event_type=[ADDED, ADDED, "nope"]), 2, "event_type"),
    "null event type": (lambda: _rows({"event_type": None}), 1, "event_type"),
    "unknown column": (lambda: _rows({"colour": "red"}), 1, "colour"),
    "unknown column (frame)": (lambda: _frame(colour=[None, "red", None]), 1, "colour"),
    "required column absent": (
        lambda: [{"event_type": SELECT, "stream_id": "a"}, {"event_type": CHECKED_OUT, "stream_id": "a"},
                 {"event_type": ADDED, "stream_id": "a", "quantity": 1}],
        2,
        "sku",
    ),
    "required column absent (frame)": (
        lambda: _frame(event_type=[SELECT, ADDED, ADDED]).drop("sku").with_columns(quantity=pl.lit(None, pl.Int64)),
        1,
        "sku",
    ),
    "required field null": (lambda: _rows({"sku": None}), 1, "sku"),
    "required key missing in one row": (lambda: _rows({}, drop=("sku",)), 1, "sku"),
    "required field null (frame)": (lambda: _frame(sku=["x", None, "z"]), 1, "sku"),
    "required field without default null": (
        lambda: [added("a"), {"event_type": REMOVED, "stream_id": "a", "sku": None}], 1, "sku"
    ),
    "string in int column": (lambda: _rows({"quantity": "3"}), 1, "quantity"),
    "string in int column (frame)": (
        lambda: _frame(event_type=[SELECT, ADDED, ADDED], quantity=[None, "2", "3"], sku=[None, "y", "z"]),
        1,
        "quantity",
    ),
    "float in int column": (lambda: _rows({"quantity": 2.5}), 1, "quantity"),
    "whole float in int column": (lambda: _rows({"quantity": 2.0}), 1, "quantity"),
    "float in int column (frame)": (
        lambda: _frame(event_type=[SELECT, ADDED, ADDED], quantity=[None, 2.0, 3.5], sku=[None, "y", "z"]),
        1,
        "quantity",
    ),
    "bool in int column": (lambda: _rows({"quantity": True}), 1, "quantity"),
    "int in string column": (lambda: _rows({"sku": 5}), 1, "sku"),
    "int in string column (frame)": (
        lambda: _frame(event_type=[SELECT, ADDED, ADDED], sku=[None, 5, 6], quantity=[None, 1, 1]), 1, "sku"
    ),
    "int in bool column": (lambda: _rows({"gift": 1}), 1, "gift"),
    "string in float column": (lambda: _rows({"unit_price": "9.99"}), 1, "unit_price"),
    "datetime in date column": (lambda: _rows({"delivery_on": dt.datetime(2024, 1, 1, tzinfo=UTC)}), 1, "delivery_on"),
    "int stream_id": (lambda: _rows({"stream_id": 7}), 1, "stream_id"),
    "null stream_id": (lambda: _rows({"stream_id": None}), 1, "stream_id"),
    "null stream_id (frame)": (lambda: _frame(stream_id=["a", None, "c"]), 1, "stream_id"),
    "stream_id column absent": (lambda: _frame().drop("stream_id"), 0, "stream_id"),
    "empty stream_id": (lambda: _rows({"stream_id": ""}), 1, "stream_id"),
    "empty stream_id (frame)": (lambda: _frame(stream_id=["a", "", "c"]), 1, "stream_id"),
    "too long stream_id": (lambda: _rows({"stream_id": "x" * 1025}), 1, "stream_id"),
    "too long stream_id in bytes": (lambda: _rows({"stream_id": "é" * 513}), 1, "stream_id"),
    "empty event_id": (lambda: _rows({"event_id": ""}), 1, "event_id"),
    "naive datetime": (lambda: _rows({"occurred_at": NAIVE}), 1, "occurred_at"),
    "naive datetime in payload": (lambda: _rows({"expires_at": NAIVE}), 1, "expires_at"),
    "naive datetime (frame)": (
        lambda: _frame(occurred_at=pl.Series([None, NAIVE, NAIVE], dtype=pl.Datetime("us"))), 1, "occurred_at"
    ),
    "naive ISO string": (lambda: _rows({"occurred_at": "2024-05-01T12:00:00"}), 1, "occurred_at"),
    "naive ISO string (frame)": (
        lambda: _frame(occurred_at=[None, "2024-05-01T12:00:00", "2024-05-01T13:00:00"]), 1, "occurred_at"
    ),
    "naive ISO string after an aware one (frame)": (
        lambda: _frame(occurred_at=["2024-05-01T12:00:00Z", "2024-05-01T12:00:00", None]), 1, "occurred_at"
    ),
    "date-only string (frame)": (lambda: _frame(expires_at=[None, "2024-05-01", None]), 1, "expires_at"),
    "unparsable timestamp": (lambda: _rows({"occurred_at": "yesterday"}), 1, "occurred_at"),
    "unparsable timestamp (frame)": (lambda: _frame(occurred_at=[None, "yesterday", None]), 1, "occurred_at"),
    "unparsable timestamp after a good one (frame)": (
        lambda: _frame(occurred_at=["2024-05-01T12:00:00+00:00", "2024-13-45T99:00:00+00:00", None]),
        1,
        "occurred_at",
    ),
    "date in timestamp column": (lambda: _rows({"occurred_at": dt.date(2024, 1, 1)}), 1, "occurred_at"),
    "int timestamp (frame)": (lambda: _frame(occurred_at=[None, 1_700_000_000, None]), 1, "occurred_at"),
    "NaN": (lambda: _rows({"unit_price": math.nan}), 1, "unit_price"),
    "inf": (lambda: _rows({"größe": math.inf}), 1, "größe"),
    "-inf (frame)": (lambda: _frame(unit_price=[1.0, -math.inf, 2.0]), 1, "unit_price"),
    "NaN (frame)": (lambda: _frame(größe=[1.0, math.nan, None]), 1, "größe"),
    "below min": (lambda: _rows({"quantity": 0}), 1, "quantity"),
    "below min (frame)": (lambda: _frame(quantity=[1, -5, 3]), 1, "quantity"),
    "below float min": (lambda: _rows({"unit_price": -0.01}), 1, "unit_price"),
    "above max": (lambda: _rows({"quantity": 1_000_001}), 1, "quantity"),
    "int overflow": (lambda: _rows({"quantity": 2**70}), 1, "quantity"),
    "int overflow negative": (lambda: _rows({"quantity": -(2**63) - 1}), 1, "quantity"),
    "UInt64 overflow (frame)": (
        lambda: _frame(quantity=pl.Series([1, 2**63 + 1, 3], dtype=pl.UInt64)), 1, "quantity"
    ),
    "field of another event type": (lambda: _rows({"event_type": SELECT, "sku": None, "quantity": 4}), 1, "quantity"),
    "field of another event type (frame)": (
        lambda: _frame(event_type=[ADDED, REMOVED, ADDED], unit_price=[None, 1.0, None]), 1, "unit_price"
    ),
    "seq given": (lambda: _rows({"seq": 10}), 1, "seq"),
    "stream_version given": (lambda: _rows({"stream_version": 1}), 1, "stream_version"),
    "recorded_at given": (lambda: _rows({"recorded_at": dt.datetime(2024, 1, 1, tzinfo=UTC)}), 1, "recorded_at"),
    "seq given (frame)": (lambda: _frame(seq=[None, 5, None]), 1, "seq"),
    "partition column given": (lambda: _rows({"occurred_on": dt.date(2024, 1, 1)}), 1, "occurred_on"),
    "duplicate event_id in batch": (
        lambda: [added("a", event_id="e1"), added("a", event_id="e2"), added("b", event_id="e1")], 2, "event_id"
    ),
    "duplicate event_id in batch (frame)": (lambda: _frame(event_id=["e1", "e1", None]), 1, "event_id"),
}


@pytest.mark.parametrize(("make", "row", "field"), list(BAD_BATCHES.values()), ids=list(BAD_BATCHES))
def test_bad_batch_names_row_and_field_and_writes_nothing(
    existing_log: EventLog, unchanged: Callable[[EventLog], Any], make: Callable[[], Any], row: int, field: str
) -> None:
    batch = make()
    with unchanged(existing_log), pytest.raises(ValidationError) as caught:
        existing_log.append(batch)
    assert (caught.value.row, caught.value.field) == (row, field)
    assert f"row {row}" in str(caught.value)
    assert repr(field) in str(caught.value)


def test_validation_error_is_a_value_error_and_an_eventlog_error() -> None:
    assert issubclass(ValidationError, ValueError)
    assert issubclass(ValidationError, EventLogError)
    assert issubclass(DuplicateEventError, ValidationError)


def test_duplicate_event_id_within_batch_is_a_duplicate_event_error(existing_log: EventLog) -> None:
    with pytest.raises(DuplicateEventError, match="e1"):
        existing_log.append([added("a", event_id="e1"), added("a", event_id="e1")])


def test_event_id_already_in_the_log_is_rejected_naming_its_seq(
    existing_log: EventLog, unchanged: Callable[[EventLog], Any]
) -> None:
    existing_log.append([added("a", event_id="once ✓")])
    seq = existing_log.head()
    with unchanged(existing_log), pytest.raises(DuplicateEventError) as caught:
        existing_log.append([added("a", event_id="new"), added("b", event_id="once ✓")])
    assert (caught.value.row, caught.value.field) == (1, "event_id")
    assert f"seq {seq}" in str(caught.value)


def test_event_id_already_in_the_log_is_found_by_a_fresh_log_object(existing_log: EventLog) -> None:
    existing_log.append([added("a", event_id="seen")])
    with pytest.raises(DuplicateEventError):
        EventLog.open(existing_log.path).append([added("a", event_id="seen")])


@pytest.mark.parametrize(
    "batch", [[], pl.DataFrame(), _frame().head(0), pa.table({"event_type": pa.array([], pa.string())})]
)
def test_empty_batch_is_rejected(existing_log: EventLog, unchanged: Callable[[EventLog], Any], batch: Any) -> None:
    with unchanged(existing_log), pytest.raises(ValidationError, match="empty"):
        existing_log.append(batch)


@pytest.mark.parametrize("batch", [{"event_type": ADDED}, "item_added", 42, [("a", 1)]])
def test_something_that_is_not_a_batch_is_rejected(
    existing_log: EventLog, unchanged: Callable[[EventLog], Any], batch: Any
) -> None:
    with unchanged(existing_log), pytest.raises(ValidationError):
        existing_log.append(batch)


def test_first_bad_row_is_reported_when_several_are_bad(existing_log: EventLog) -> None:
    rows = [added("a"), added("b"), added("c", quantity=0), added("d", quantity=0)]
    with pytest.raises(ValidationError) as caught:
        existing_log.append(rows)
    assert caught.value.row == 2


def test_one_bad_row_rejects_the_whole_batch(existing_log: EventLog, unchanged: Callable[[EventLog], Any]) -> None:
    rows = [added(f"s{i}") for i in range(100)] + [added("z", quantity=-1)]
    with unchanged(existing_log), pytest.raises(ValidationError):
        existing_log.append(rows)


# --- time zones -------------------------------------------------------------------------------

PLUS_0530 = dt.timezone(dt.timedelta(hours=5, minutes=30))
MINUS_0500 = dt.timezone(-dt.timedelta(hours=5))
PLUS_0200 = dt.timezone(dt.timedelta(hours=2))
EXPECTED = [dt.datetime(2024, 5, 1, 6, 30, tzinfo=UTC), dt.datetime(2024, 5, 1, 17, 0, tzinfo=UTC)]


@pytest.mark.parametrize(
    "occurred_at",
    [
        pytest.param(
            [dt.datetime(2024, 5, 1, 12, 0, tzinfo=PLUS_0530), dt.datetime(2024, 5, 1, 12, 0, tzinfo=MINUS_0500)],
            id="aware datetimes",
        ),
        pytest.param(["2024-05-01T12:00:00+05:30", "2024-05-01T12:00:00-05:00"], id="ISO strings"),
        pytest.param(["2024-05-01T06:30:00Z", "2024-05-01 12:00:00.000-0500"], id="ISO strings, mixed formats"),
    ],
)
@pytest.mark.parametrize("shape", ["dicts", "polars"])
def test_non_utc_aware_timestamps_are_stored_as_utc(empty_log: EventLog, occurred_at: list[Any], shape: str) -> None:
    rows = [added("a", occurred_at=t, expires_at=t) for t in occurred_at]
    batch = rows if shape == "dicts" else _frame_of(rows)
    empty_log.append(batch)
    got = read_all(empty_log)
    assert got["occurred_at"].to_list() == got["expires_at"].to_list() == EXPECTED


def _frame_of(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Rows to a frame: strings stay strings, datetimes become a column zoned outside UTC."""
    if isinstance(rows[0]["occurred_at"], str):
        return pl.DataFrame(rows)
    return as_polars(rows).with_columns(pl.col("occurred_at").dt.convert_time_zone("Asia/Kolkata"))


def test_zoned_datetime_columns_are_converted_to_utc(empty_log: EventLog) -> None:
    local = pl.Series([dt.datetime(2024, 7, 1, 2, 0)], dtype=pl.Datetime("ns")).dt.replace_time_zone("Europe/Paris")
    arrow = pa.table(
        {
            "event_type": [ADDED],
            "stream_id": ["a"],
            "sku": ["x"],
            "quantity": [1],
            "expires_at": pa.array([dt.datetime(2024, 7, 1, 2, 0, tzinfo=PLUS_0200)], pa.timestamp("ms", tz="+02:00")),
        }
    )
    empty_log.append(_frame().head(1).with_columns(occurred_at=local))
    empty_log.append(arrow)
    got = read_all(empty_log)
    assert got["occurred_at"][0] == dt.datetime(2024, 7, 1, 0, 0, tzinfo=UTC)
    assert got["expires_at"][1] == dt.datetime(2024, 7, 1, 0, 0, tzinfo=UTC)


def test_event_ids_already_in_the_log_name_the_first_clashing_row(existing_log: EventLog) -> None:
    existing_log.append([added("a", event_id="old 1"), added("a", event_id="old 2")])
    with pytest.raises(DuplicateEventError) as caught:
        existing_log.append([added("b", event_id="new"), added("b", event_id="old 2"), added("b", event_id="old 1")])
    assert caught.value.row == 1
    assert "'old 2'" in str(caught.value)
