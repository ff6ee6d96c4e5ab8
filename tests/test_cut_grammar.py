"""One grammar for a cut's text: Python, the command line and the SQL macros read every text alike.

The grammar lives in ``eventlog.core.cuts``; ``parse_point`` reads it, the CLI's ``--as-of`` /
``--known-at`` type calls ``parse_point``, and the SQL macros ``as_of_seq`` / ``as_of_time`` are
generated from its patterns. Each row is a text and what it means: a seq, an instant (UTC), the
head (no cut), or a refusal (not a cut, or a timestamp without a time zone).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import duckdb
import pytest

from eventlog import Inventory
from eventlog.cli import _CUT
from eventlog.core.cuts import parse_point
from eventlog.errors import ValidationError
from eventlog.sql import connect

UTC = dt.timezone.utc
HEAD = ("head",)
NOT_A_CUT = ("refused", "not a cut")
NO_ZONE = ("refused", "no time zone")
MAX_SEQ = 2**63 - 1


def seq(n: int) -> tuple[str, int]:
    return ("seq", n)


def at(*parts: int, hours: float = 0) -> tuple[str, dt.datetime]:
    """The instant given in local time at UTC offset ``hours``, in UTC."""
    local = dt.datetime(*parts, tzinfo=dt.timezone(dt.timedelta(hours=hours)))  # type: ignore[misc]
    return ("time", local.astimezone(UTC))


END_OF_2024_02_01 = ("time", dt.datetime(2024, 2, 1, 23, 59, 59, 999_999, tzinfo=UTC))

TEXTS = [
    # seqs: ASCII digits, blanks around them ignored
    ("12", seq(12)),
    (" 12 ", seq(12)),
    ("\t12\n", seq(12)),
    ("0", seq(0)),
    ("00012", seq(12)),
    ("20240201", seq(20240201)),  # digits only: a seq, not a date
    (str(MAX_SEQ), HEAD),
    ("99999999999999999999", HEAD),  # beyond int64: past every head
    ("9" * 5000, HEAD),
    ("-1", NOT_A_CUT),
    ("+1", NOT_A_CUT),
    ("1.5", NOT_A_CUT),
    ("1 2", NOT_A_CUT),
    ("１２", NOT_A_CUT),  # fullwidth digits
    ("١٢", NOT_A_CUT),  # Arabic-Indic digits
    ("\u00a012", NOT_A_CUT),  # a no-break space is no blank
    ("", NOT_A_CUT),
    ("   ", NOT_A_CUT),
    # dates: the end of that UTC day
    ("2024-02-01", END_OF_2024_02_01),
    (" 2024-02-01 ", END_OF_2024_02_01),
    ("9999-12-31", ("time", dt.datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC))),
    ("0001-01-01", ("time", dt.datetime(1, 1, 1, 23, 59, 59, 999_999, tzinfo=UTC))),
    ("0000-01-01", NOT_A_CUT),
    ("2024-02-30", NOT_A_CUT),
    ("2024-13-01", NOT_A_CUT),
    ("2024-2-1", NOT_A_CUT),
    ("2024-W05-4", NOT_A_CUT),
    ("２０２４-02-01", NOT_A_CUT),
    ("2024-02-01+05:00", NOT_A_CUT),
    # timestamps with an offset
    ("2024-02-01T10:00:00+00:00", at(2024, 2, 1, 10)),
    ("2024-02-01T10:00:00Z", at(2024, 2, 1, 10)),
    ("2024-02-01 10:00Z", at(2024, 2, 1, 10)),
    ("2024-02-01T14:30:00.5+05:30", ("time", dt.datetime(2024, 2, 1, 9, 0, 0, 500_000, tzinfo=UTC))),
    ("2024-02-01T10:00:00.123456-01:00", ("time", dt.datetime(2024, 2, 1, 11, 0, 0, 123_456, tzinfo=UTC))),
    ("2024-02-01T10:00+0530", at(2024, 2, 1, 10, hours=5.5)),
    ("2024-02-01T10:00-05", at(2024, 2, 1, 10, hours=-5)),
    ("2024-02-01T10:00:00+23:59", at(2024, 2, 1, 10, hours=23 + 59 / 60)),
    ("2024-02-01T10:00:00-23:59", at(2024, 2, 1, 10, hours=-(23 + 59 / 60))),
    ("2024-02-01T10:00:00+24:00", NOT_A_CUT),
    ("2024-02-01T10:00:00-24:00", NOT_A_CUT),
    ("2024-02-01T10:00:00+25", NOT_A_CUT),
    ("2024-02-01T10:00:00+05:60", NOT_A_CUT),
    ("2024-02-01T10:00:00+05:30:15", NOT_A_CUT),
    ("2024-02-01T10:00z", NOT_A_CUT),
    ("2024-02-01t10:00Z", NOT_A_CUT),
    ("2024-02-01T24:00Z", NOT_A_CUT),
    ("2024-02-01T23:59:60Z", NOT_A_CUT),
    ("2024-02-01T10:00:00.1234567Z", NOT_A_CUT),
    ("2024-02-01T10:00:00,5Z", NOT_A_CUT),
    ("2024-02-01T10Z", NOT_A_CUT),
    ("2024-02-30T10:00Z", NOT_A_CUT),
    ("2024-02-01T10:00 Europe/Paris", NOT_A_CUT),
    ("2024-02-01T10:00:00 +01:00", NOT_A_CUT),
    ("2024-02-01T１０:00Z", NOT_A_CUT),
    # timestamps without one
    ("2024-02-01T10:00", NO_ZONE),
    ("2024-02-01 10:00:00.123456", NO_ZONE),
    ("2024-02-30T10:00", NOT_A_CUT),  # no such day: not a timestamp at all
    # words DuckDB alone would read as times
    ("infinity", NOT_A_CUT),
    ("-infinity", NOT_A_CUT),
    ("epoch", NOT_A_CUT),
    ("now", NOT_A_CUT),
    ("today", NOT_A_CUT),
    ("nan", NOT_A_CUT),
    ("allballs", NOT_A_CUT),
]


def outcome_of_point(point: int | dt.datetime | None) -> tuple[Any, ...]:
    if point is None or (isinstance(point, int) and point >= MAX_SEQ):
        return HEAD
    if isinstance(point, int):
        return seq(point)
    return ("time", point.astimezone(UTC))


def outcome_of_error(message: str) -> tuple[str, str]:
    if "has no time zone" in message:
        return NO_ZONE
    if "is not a seq, an ISO date or an ISO timestamp" in message:
        return NOT_A_CUT
    raise AssertionError(f"an unexpected refusal: {message}")


def python_reads(text: str) -> tuple[Any, ...]:
    try:
        return outcome_of_point(parse_point(text, name="as_of"))
    except ValidationError as exc:
        return outcome_of_error(str(exc))


def cli_reads(text: str) -> tuple[Any, ...]:
    try:
        return outcome_of_point(_CUT.convert(text, click.Option(["--as-of"]), None))
    except ValidationError as exc:
        assert exc.field == "as_of"
        return outcome_of_error(str(exc))


def sql_reads(con: duckdb.DuckDBPyConnection, text: str, *, literal: bool) -> tuple[Any, ...]:
    argument = "'" + text.replace("'", "''") + "'" if literal else "$x"
    params = {} if literal else {"x": text}
    try:
        [(point_seq, point_time)] = con.execute(f"SELECT as_of_seq({argument}), as_of_time({argument})", params).fetchall()
    except duckdb.InvalidInputException as exc:
        return outcome_of_error(str(exc))
    assert point_seq is None or point_time is None, "a text is one kind of cut"
    return outcome_of_point(point_seq if point_seq is not None else point_time)


@pytest.fixture(scope="module")
def con(tmp_path_factory: pytest.TempPathFactory) -> Iterator[duckdb.DuckDBPyConnection]:
    inventory = Inventory.open(Path(tmp_path_factory.mktemp("cuts")) / "store")
    inventory.add_item("sword")
    connection = connect(inventory)
    yield connection
    connection.close()


@pytest.mark.parametrize(("text", "meaning"), TEXTS, ids=[repr(t)[:40] for t, _ in TEXTS])
def test_python_cli_and_sql_read_a_cut_text_alike(con: duckdb.DuckDBPyConnection, text: str, meaning: Any) -> None:
    assert python_reads(text) == meaning
    assert cli_reads(text) == meaning
    assert sql_reads(con, text, literal=False) == meaning
    assert sql_reads(con, text, literal=True) == meaning


def test_a_negative_int_is_refused_alike_by_python_and_sql(con: duckdb.DuckDBPyConnection) -> None:
    with pytest.raises(ValidationError, match="as_of=-1: a seq cut cannot be negative"):
        parse_point(-1, name="as_of")
    with pytest.raises(duckdb.InvalidInputException, match="as_of=-1: a seq cut cannot be negative"):
        con.execute("SELECT as_of_seq(-1)").fetchall()
