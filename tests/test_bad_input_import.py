"""The bad-input matrix: every entry point against every kind of awkward input, one row a case.

Entry points: the inventory's Python API (``record``, ``add_item``, ``remove_item``),
``EventLog.append``, and ``eventlog import`` of CSV, Parquet and NDJSON files. Each row
names the input and what must happen to it:

- ``Rejected(error, *says)``: the Python API raises ``error`` (from ``eventlog.errors``)
  and its message holds every fragment (the row, the field, the value or the file);
- ``Fails(*says)``: the command prints one line ``error: ...`` holding every fragment on
  stderr, nothing on stdout, exits 1, and shows no traceback;
- ``Stored(*events)``: the input is valid; the events it appended read back with these
  values (only the columns given are compared), and in an inventory ``stock()`` equals a
  plain replay of the log.

Every case runs on a fresh copy of a template store. A rejected case leaves the store as
it was: same head seq, same Delta version, ``verify()`` ok. Rows count from 0 and a
CSV's header is not a row; the bad value sits in row 1, so the row number means something.
Both templates hold an event ``e-1`` (the inventory's came from an earlier import), so the
duplicate-id cases check ids across batches and across import files.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner, Result
from support import ADDED, REMOVED, added, make_schema

from eventlog import EventLog, Inventory, Item
from eventlog.cli import main
from eventlog.errors import DuplicateEventError, InsufficientStockError, ValidationError

UTC = dt.timezone.utc
IST = dt.timezone(dt.timedelta(hours=5, minutes=30))
MB = "x" * 2**20
MAX_INT64 = 2**63 - 1
#: 12:00 at +05:30 is this instant; stored in UTC.
NOON_IST_IN_UTC = dt.datetime(2024, 3, 1, 6, 30, tzinfo=UTC)
#: Item and stream names that are data, never paths, SQL or separators.
QUOTED = "o'brien \"the\" axe; DROP TABLE events; --"
DOTS = "../../etc/passwd"
SLASHES = "a/b\\c"
UNICODE = "Ōkami Charm 🐺 日本"
NEWLINE = "line one\nline two"
LONE_SURROGATE = "sw\udcfford"  # what bytes that are not UTF-8 become under errors="surrogateescape"


class Rejected:
    """The Python API raises ``error``; its message holds each of ``says``."""

    def __init__(self, error: type[Exception], *says: str) -> None:
        self.error, self.says = error, says


class Fails:
    """The command exits 1 with one error line on stderr holding each of ``says``."""

    def __init__(self, *says: str) -> None:
        self.says = says


class Stored:
    """The case appends these events, in order; only the given columns are compared (``{}``: none)."""

    def __init__(self, *events: dict[str, Any]) -> None:
        self.events = events


class Call:
    """Arguments for add_item / remove_item."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.args, self.kwargs = args, kwargs


def case(entry: str, kind: str, given: Any, expect: Rejected | Fails | Stored) -> Any:
    return pytest.param(entry, given, expect, id=f"{entry} | {kind}")


# --- inputs -----------------------------------------------------------------------------------


def item_row(**fields: Any) -> dict[str, Any]:
    return {"event_type": ADDED, "item": "a", "quantity": 1, **fields}


def items(**bad: Any) -> list[dict[str, Any]]:
    """Two item_added rows; row 1 updated with ``bad``."""
    return [item_row(), item_row(**bad)]


def items_without(key: str) -> list[dict[str, Any]]:
    return [item_row(), {k: v for k, v in item_row().items() if k != key}]


def shop(**bad: Any) -> list[dict[str, Any]]:
    """Two valid item_added rows of the shop schema (tests/support.py); row 1 updated with ``bad``."""
    return [added("s0"), {**added("s1"), **bad}]


def frame(**columns: Any) -> pl.DataFrame:
    """Two item rows as a polars frame, with the given columns replaced or added."""
    return pl.DataFrame({"event_type": [ADDED, ADDED], "item": ["a", "b"], "quantity": [1, 1], **columns})


def csv(*lines: str, header: str = "event_type,item,quantity") -> str:
    return "\n".join([header, *lines]) + "\n"


def ndjson(*objects: dict[str, Any]) -> str:
    return "".join(json.dumps(o, ensure_ascii=False) + "\n" for o in objects)


def truncated(data: pl.DataFrame) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        data.write_parquet(path)
        whole = path.read_bytes()
        path.write_bytes(whole[: len(whole) // 2])

    return write


def write_input(path: Path, given: Any) -> None:
    if isinstance(given, bytes):
        path.write_bytes(given)
    elif isinstance(given, str):
        path.write_text(given, encoding="utf-8", newline="")
    elif isinstance(given, pl.DataFrame):
        given.write_parquet(path)
    elif isinstance(given, pa.Table):
        pq.write_table(given, path)
    else:
        given(path)


# --- the Python API ---------------------------------------------------------------------------

Q = "'quantity'"
ITEM = "'item'"
NAIVE = dt.datetime(2024, 3, 1, 12, 0)
NOON_IST = dt.datetime(2024, 3, 1, 12, 0, tzinfo=IST)

API_CASES = [
    # wrong types
    case("record", "quantity as text", items(quantity="2"), Rejected(ValidationError, "row 1", Q, "'2'")),
    case("record", "quantity 1.5 (never truncated)", items(quantity=1.5), Rejected(ValidationError, "row 1", Q, "1.5")),
    case("record", "quantity 2.0 (a float)", items(quantity=2.0), Rejected(ValidationError, "row 1", Q, "2.0")),
    case("record", "quantity True", items(quantity=True), Rejected(ValidationError, "row 1", Q, "True")),
    case("record", "item as int", items(item=5), Rejected(ValidationError, "row 1", ITEM, "5")),
    case("record", "occurred_at as int", items(occurred_at=1_700_000_000),
         Rejected(ValidationError, "row 1", "'occurred_at'")),
    case("record", "float column for quantity (frame)", frame(quantity=[None, 1.5]),
         Rejected(ValidationError, "row 1", Q, "Float64")),
    case("record", "list column for item (frame)", frame(item=[["a"], ["b"]]),
         Rejected(ValidationError, "row 0", ITEM, "['a']")),
    case("record", "binary item column, not UTF-8 (Arrow)",
         pa.table({"event_type": [ADDED, ADDED], "item": pa.array([b"a", b"\xff\xfe"], pa.binary())}),
         Rejected(ValidationError, "row 0", ITEM, "Binary")),
    case("record", "UInt64 2**63 (Arrow)",
         pa.table({"event_type": [ADDED, ADDED], "item": ["a", "b"], "quantity": pa.array([1, 2**63], pa.uint64())}),
         Rejected(ValidationError, "row 1", Q, "does not fit")),
    case("record", "not a batch (one dict)", item_row(), Rejected(ValidationError, "a batch is")),
    # missing or extra columns, nulls
    case("record", "item column missing", [{"event_type": ADDED, "quantity": 1}] * 2,
         Rejected(ValidationError, "row 0", ITEM, "missing")),
    case("record", "item key missing in one row", items_without("item"),
         Rejected(ValidationError, "row 1", ITEM, "null")),
    case("record", "extra column", items(colour="red"),
         Rejected(ValidationError, "row 1", "'colour'", "unknown column")),
    case("record", "column the log sets (seq)", items(seq=7),
         Rejected(ValidationError, "row 1", "'seq'", "set by the log")),
    case("record", "stream_id instead of item", [{"event_type": ADDED, "stream_id": "a"}],
         Rejected(ValidationError, "row 0", "'stream_id'", "'item'")),
    case("record", "null item", items(item=None), Rejected(ValidationError, "row 1", ITEM, "null")),
    case("record", "null event_type", items(event_type=None), Rejected(ValidationError, "row 1", "'event_type'")),
    case("record", "null quantity takes the default 1", items(item="dflt", quantity=None),
         Stored({"stream_id": "a", "quantity": 1}, {"stream_id": "dflt", "quantity": 1})),
    # NaN, infinities, zero, negative, huge
    case("record", "quantity NaN", items(quantity=math.nan), Rejected(ValidationError, "row 1", Q, "nan")),
    case("record", "quantity inf", items(quantity=math.inf), Rejected(ValidationError, "row 1", Q, "inf")),
    case("record", "quantity -inf", items(quantity=-math.inf), Rejected(ValidationError, "row 1", Q, "-inf")),
    case("record", "quantity 0", items(quantity=0), Rejected(ValidationError, "row 1", Q, "at least 1 (got 0)")),
    case("record", "quantity -1", items(quantity=-1), Rejected(ValidationError, "row 1", Q, "at least 1 (got -1)")),
    case("record", "quantity 2**63", items(quantity=2**63),
         Rejected(ValidationError, "row 1", Q, "does not fit in int64")),
    case("record", "quantity 10**30", items(quantity=10**30), Rejected(ValidationError, "row 1", Q, "does not fit")),
    case("record", "quantity 1e300", items(quantity=1e300), Rejected(ValidationError, "row 1", Q, "1e+300")),
    case("record", "quantity 2**63-1 (the largest stock)", [item_row(item="max", quantity=MAX_INT64)],
         Stored({"stream_id": "max", "quantity": MAX_INT64})),
    case("record", "stock beyond int64", [item_row(item="max", quantity=MAX_INT64), item_row(item="max")],
         Rejected(ValidationError, "row 1", Q, "more than an int64 holds")),
    case("record", "removal beyond stock", [item_row(), {"event_type": REMOVED, "item": "sword", "quantity": 4}],
         Rejected(InsufficientStockError, "row 1", "'sword'", "only 3 in stock")),
    # empty
    case("record", "empty list", [], Rejected(ValidationError, "empty")),
    case("record", "empty frame", frame().head(0), Rejected(ValidationError, "empty")),
    case("record", "empty Arrow table", frame().head(0).to_arrow(), Rejected(ValidationError, "empty")),
    # strings: empty, long, not Unicode
    case("record", "empty item", items(item=""), Rejected(ValidationError, "row 1", ITEM, "empty")),
    case("record", "1 MB item", items(item=MB), Rejected(ValidationError, "row 1", ITEM, "longer than 1024 bytes")),
    case("record", "1024-byte item", [item_row(item="é" * 512)], Stored({"stream_id": "é" * 512})),
    case("record", "1 MB rarity", [item_row(item="long", rarity=MB)], Stored({"stream_id": "long", "rarity": MB})),
    case("record", "lone surrogate in item", items(item=LONE_SURROGATE),
         Rejected(ValidationError, "row 1", ITEM, "not valid Unicode")),
    case("record", "lone surrogate in rarity", items(rarity=LONE_SURROGATE),
         Rejected(ValidationError, "row 1", "'rarity'", "not valid Unicode")),
    # timestamps
    case("record", "naive datetime", items(occurred_at=NAIVE),
         Rejected(ValidationError, "row 1", "'occurred_at'", "no time zone")),
    case("record", "naive ISO string", items(occurred_at="2024-03-01T12:00:00"),
         Rejected(ValidationError, "row 1", "'occurred_at'", "no time zone")),
    case("record", "naive Arrow column",
         pa.table({"event_type": [ADDED], "item": ["a"], "occurred_at": pa.array([NAIVE], pa.timestamp("us"))}),
         Rejected(ValidationError, "row 0", "'occurred_at'", "no time zone")),
    case("record", "ISO string at +05:30", [item_row(occurred_at="2024-03-01T12:00:00+05:30")],
         Stored({"occurred_at": NOON_IST_IN_UTC})),
    case("record", "aware datetime at +05:30", [item_row(occurred_at=NOON_IST)],
         Stored({"occurred_at": NOON_IST_IN_UTC})),
    case("record", "occurred_at before year 1 (frame)",
         frame(occurred_at=pl.Series([NOON_IST_IN_UTC, NOON_IST_IN_UTC])).with_columns(
             pl.col("occurred_at").dt.offset_by(pl.Series(["0y", "-146000y"]))),
         Rejected(ValidationError, "row 1", "'occurred_at'", "outside the years 1..9999")),
    case("record", "occurred_at after year 9999 (frame)",
         frame(occurred_at=pl.Series([NOON_IST_IN_UTC, NOON_IST_IN_UTC])).with_columns(
             pl.col("occurred_at").dt.offset_by(pl.Series(["0y", "8000y"]))),
         Rejected(ValidationError, "row 1", "'occurred_at'", "year 10024")),
    case("record", "nanoseconds (never truncated)",
         frame(occurred_at=pl.Series([0, 1_709_274_600_000_000_001]).cast(pl.Datetime("ns", "UTC"))),
         Rejected(ValidationError, "row 1", "'occurred_at'", "nanoseconds", ".000000001")),
    case("record", "nanosecond column holding whole microseconds",
         frame(item=["ns", "ns"], occurred_at=pl.Series(
             [1_709_274_600_000_000_000, 1_709_274_600_000_001_000]).cast(pl.Datetime("ns", "UTC"))),
         Stored({"occurred_at": NOON_IST_IN_UTC}, {"occurred_at": NOON_IST_IN_UTC + dt.timedelta(microseconds=1)})),
    case("record", "Arrow timestamps zoned +05:30",
         pa.table({"event_type": [ADDED], "item": ["ist"],
                   "occurred_at": pa.array([NOON_IST_IN_UTC], pa.timestamp("us", tz="+05:30"))}),
         Stored({"stream_id": "ist", "occurred_at": NOON_IST_IN_UTC})),
    case("record", "Arrow table with one column twice",
         pa.Table.from_arrays([pa.array([ADDED]), pa.array(["a"]), pa.array(["b"])], names=["event_type", "item", "item"]),
         Rejected(ValidationError, "'item'", "twice")),
    case("record", "first offending row across event types",
         [{"event_type": REMOVED, "item": "sword", "quantity": 0}, item_row(quantity=0)],
         Rejected(ValidationError, "row 0", Q, "at least 1 (got 0)")),
    case("record", "first offending row across columns",
         [item_row(quantity="x"), item_row(item=5)],
         Rejected(ValidationError, "row 0", Q, "'x'")),
    case("record", "first offending row across identifier checks",
         [item_row(), item_row(event_type=None), item_row(item="")],
         Rejected(ValidationError, "row 1", "'event_type'", "null")),
    case("record", "null quantity on a removal takes the schema's default 1",
         [{"event_type": REMOVED, "item": "sword", "quantity": None}],
         Stored({"stream_id": "sword", "event_type": REMOVED, "quantity": 1})),
    # duplicate event ids
    case("record", "event_id twice in the batch", [item_row(event_id="x"), item_row(event_id="x")],
         Rejected(DuplicateEventError, "row 1", "'x'", "also in row 0")),
    case("record", "event_id of an earlier batch", [item_row(event_id="new"), item_row(event_id="e-1")],
         Rejected(DuplicateEventError, "row 1", "'e-1'", "already in the log at seq 1")),
    # names
    case("record", "quotes and semicolons", [item_row(item=QUOTED, origin=QUOTED)],
         Stored({"stream_id": QUOTED, "origin": QUOTED})),
    case("record", "'..' and slashes", [item_row(item=DOTS), item_row(item=SLASHES)],
         Stored({"stream_id": DOTS}, {"stream_id": SLASHES})),
    case("record", "unicode", [item_row(item=UNICODE, rarity="épique")],
         Stored({"stream_id": UNICODE, "rarity": "épique"})),
    case("record", "newline", [item_row(item=NEWLINE)], Stored({"stream_id": NEWLINE})),
    # add_item
    case("add_item", "quantity 1.5", Call("x", 1.5), Rejected(ValidationError, "row 0", Q, "1.5")),
    case("add_item", "quantity as text", Call("x", "2"), Rejected(ValidationError, "row 0", Q, "'2'")),
    case("add_item", "quantity NaN", Call("x", math.nan), Rejected(ValidationError, "row 0", Q, "nan")),
    case("add_item", "quantity inf", Call("x", math.inf), Rejected(ValidationError, "row 0", Q, "inf")),
    case("add_item", "quantity 0", Call("x", 0), Rejected(ValidationError, "row 0", Q, "at least 1")),
    case("add_item", "quantity -5", Call("x", -5), Rejected(ValidationError, "row 0", Q, "at least 1")),
    case("add_item", "quantity 2**63", Call("x", 2**63), Rejected(ValidationError, "row 0", Q, "does not fit")),
    case("add_item", "quantity 10**30", Call("x", 10**30), Rejected(ValidationError, "row 0", Q, "does not fit")),
    case("add_item", "quantity 1e300", Call("x", 1e300), Rejected(ValidationError, "row 0", Q, "1e+300")),
    case("add_item", "stock beyond int64", Call("sword", MAX_INT64), Rejected(ValidationError, "row 0", Q, "int64")),
    case("add_item", "item None", Call(None), Rejected(ValidationError, "row 0", ITEM, "NoneType")),
    case("add_item", "item as int", Call(5), Rejected(ValidationError, "row 0", ITEM, "int")),
    case("add_item", "empty item", Call(""), Rejected(ValidationError, "row 0", ITEM, "empty")),
    case("add_item", "1 MB item", Call(MB), Rejected(ValidationError, "row 0", ITEM, "longer than 1024 bytes")),
    case("add_item", "lone surrogate in item", Call(LONE_SURROGATE),
         Rejected(ValidationError, "row 0", ITEM, "Unicode")),
    case("add_item", "rarity as int", Call(Item("x", rarity=5)),
         Rejected(ValidationError, "row 0", "'rarity'")),  # type: ignore[arg-type]
    case("add_item", "naive occurred_at", Call("x", occurred_at=NAIVE),
         Rejected(ValidationError, "row 0", "'occurred_at'", "no time zone")),
    case("add_item", "occurred_at at +05:30", Call("x", occurred_at=NOON_IST),
         Stored({"stream_id": "x", "occurred_at": NOON_IST_IN_UTC})),
    case("add_item", "awkward names", Call(Item(QUOTED, rarity=UNICODE, origin=DOTS), 2),
         Stored({"stream_id": QUOTED, "quantity": 2, "rarity": UNICODE, "origin": DOTS})),
    # remove_item
    case("remove_item", "more than in stock", Call("sword", 4), Rejected(InsufficientStockError, "'sword'", "only 3")),
    case("remove_item", "an item never added", Call(UNICODE), Rejected(InsufficientStockError, "only 0 in stock")),
    case("remove_item", "quantity 1.5", Call("sword", 1.5), Rejected(ValidationError, "row 0", Q, "1.5")),
    case("remove_item", "quantity 0", Call("sword", 0), Rejected(ValidationError, "row 0", Q, "at least 1")),
    case("remove_item", "quantity -1 (an add in disguise)", Call("sword", -1),
         Rejected(ValidationError, "row 0", Q, "at least 1")),
    case("remove_item", "quantity 2**63", Call("sword", 2**63), Rejected(ValidationError, "row 0", Q, "does not fit")),
    case("remove_item", "quantity -inf", Call("sword", -math.inf), Rejected(ValidationError, "row 0", Q, "inf")),
    case("remove_item", "the whole stock", Call("sword", 3),
         Stored({"stream_id": "sword", "event_type": REMOVED, "quantity": 3})),
    # EventLog.append, on a store of the shop schema (every field type)
    case("append", "unit_price NaN", shop(unit_price=math.nan),
         Rejected(ValidationError, "row 1", "'unit_price'", "finite")),
    case("append", "unit_price inf (frame)", pl.DataFrame(shop(unit_price=math.inf)),
         Rejected(ValidationError, "row 1", "'unit_price'", "finite")),
    case("append", "unit_price 1e300", shop(unit_price=1e300), Stored({}, {"unit_price": 1e300})),
    case("append", "unit_price below min", shop(unit_price=-0.01),
         Rejected(ValidationError, "row 1", "'unit_price'", "at least 0")),
    case("append", "quantity above max", shop(quantity=1_000_001), Rejected(ValidationError, "row 1", Q, "at most")),
    case("append", "quantity 2**63", shop(quantity=2**63), Rejected(ValidationError, "row 1", Q, "does not fit")),
    case("append", "gift as text", shop(gift="yes"), Rejected(ValidationError, "row 1", "'gift'", "'yes'")),
    case("append", "ISO date string", shop(delivery_on="2024-03-05"), Stored({}, {"delivery_on": dt.date(2024, 3, 5)})),
    case("append", "ISO date strings (frame)", pl.DataFrame(shop(delivery_on="2024-03-05")).with_columns(
         delivery_on=pl.Series(["2024-02-29", "2024-03-05"])),
         Stored({"delivery_on": dt.date(2024, 2, 29)}, {"delivery_on": dt.date(2024, 3, 5)})),
    case("append", "impossible date", shop(delivery_on="2024-02-30"),
         Rejected(ValidationError, "row 1", "'delivery_on'", "'2024-02-30'")),
    case("append", "date in another format (frame)",
         pl.DataFrame(shop()).with_columns(delivery_on=pl.Series(["2024-03-05", "05/03/2024"])),
         Rejected(ValidationError, "row 1", "'delivery_on'", "'05/03/2024'")),
    case("append", "date after year 9999 (frame)",
         pl.DataFrame(shop()).with_columns(delivery_on=pl.Series([dt.date(2024, 3, 5), dt.date(9999, 12, 31)])
                                           .dt.offset_by(pl.Series(["0d", "1d"]))),
         Rejected(ValidationError, "row 1", "'delivery_on'", "outside the years")),
    case("append", "timestamp in a date field", shop(delivery_on="2024-03-05T00:00:00+00:00"),
         Rejected(ValidationError, "row 1", "'delivery_on'", "ISO 8601 date")),
    case("append", "naive payload timestamp", shop(expires_at=NAIVE),
         Rejected(ValidationError, "row 1", "'expires_at'", "no time zone")),
    case("append", "payload timestamp at +05:30", shop(expires_at="2024-03-01T12:00:00+05:30"),
         Stored({}, {"expires_at": NOON_IST_IN_UTC})),
    case("append", "event_type column missing", [{"stream_id": "s", "sku": "x"}],
         Rejected(ValidationError, "row 0", "'event_type'", "missing")),
    case("append", "extra column", shop(colour="red"),
         Rejected(ValidationError, "row 1", "'colour'", "unknown column")),
    case("append", "empty batch", [], Rejected(ValidationError, "empty")),
    case("append", "event_id of an earlier batch", shop(event_id="e-1"),
         Rejected(DuplicateEventError, "row 1", "'e-1'", "already in the log")),
    case("append", "lone surrogate in stream_id", shop(stream_id=LONE_SURROGATE),
         Rejected(ValidationError, "row 1", "'stream_id'", "Unicode")),
    case("append", "awkward stream names", [added(QUOTED), added(DOTS), added(UNICODE), added(NEWLINE)],
         Stored({"stream_id": QUOTED}, {"stream_id": DOTS}, {"stream_id": UNICODE}, {"stream_id": NEWLINE})),
    case("append", "1 MB note", [{"event_type": "select", "stream_id": "s", "note": MB}], Stored({"note": MB})),
]


@pytest.mark.parametrize(("entry", "given", "expect"), API_CASES)
def test_python_api(entry: str, given: Any, expect: Rejected | Stored, copy_of: Callable[[str], Path]) -> None:
    store = copy_of("shop" if entry == "append" else "inventory")
    before = position(store)
    if isinstance(expect, Stored):
        call_api(entry, store, given)
        assert_stored(store, before, expect)
        return
    with pytest.raises(expect.error) as caught:
        call_api(entry, store, given)
    for fragment in expect.says:
        assert fragment in str(caught.value)
    assert_untouched(store, before)


def call_api(entry: str, store: Path, given: Any) -> Any:
    if entry == "append":
        return EventLog.open(store).append(given)
    inventory = Inventory.open(store)
    if entry == "record":
        return inventory.record(given)
    return getattr(inventory, entry)(*given.args, **given.kwargs)


# --- eventlog import --------------------------------------------------------------------------

INV_TS = "event_type,item,quantity,occurred_at"
INV_ID = "event_id,event_type,item,quantity"
SHOP = "event_type,stream_id,sku,quantity,unit_price,gift,delivery_on"


def obj(**fields: Any) -> dict[str, Any]:
    return {"event_type": ADDED, "item": "a", "quantity": 1, **fields}


IMPORT_CASES = [
    # CSV: wrong types, the row named
    case("csv", "quantity 1.5", csv("item_added,a,1", "item_added,b,1.5"), Fails("events.csv", "row 1", Q, "'1.5'")),
    case("csv", "quantity as text", csv("item_added,a,1", "item_added,b,lots"), Fails("row 1", Q, "'lots'")),
    case("csv", "quantity true", csv("item_added,a,1", "item_added,b,true"), Fails("row 1", Q, "'true'")),
    case("csv", "ragged row (extra field)", csv("item_added,a,1", "item_added,b,1,9"),
         Fails("events.csv", "cannot read as CSV")),
    # CSV: columns and nulls
    case("csv", "item column missing", csv("item_added,1", header="event_type,quantity"),
         Fails("row 0", ITEM, "missing")),
    case("csv", "extra column", csv("item_added,a,1,red", header="event_type,item,quantity,colour"),
         Fails("row 0", "'colour'", "unknown column")),
    case("csv", "empty item", csv("item_added,a,1", "item_added,,1"), Fails("row 1", ITEM, "null")),
    case("csv", "empty quantity takes the default 1", csv("item_added,dflt,"),
         Stored({"stream_id": "dflt", "quantity": 1})),
    # CSV: NaN, infinities, zero, negative, huge
    case("csv", "quantity NaN", csv("item_added,a,1", "item_added,b,NaN"), Fails("row 1", Q, "'NaN'")),
    case("csv", "quantity inf", csv("item_added,a,1", "item_added,b,inf"), Fails("row 1", Q, "'inf'")),
    case("csv", "quantity 0", csv("item_added,a,1", "item_added,b,0"), Fails("row 1", Q, "at least 1")),
    case("csv", "quantity -3", csv("item_added,a,1", "item_added,b,-3"), Fails("row 1", Q, "at least 1")),
    case("csv", "quantity 2**63", csv("item_added,a,1", f"item_added,b,{2**63}"), Fails("row 1", Q, str(2**63))),
    case("csv", "quantity 10**30", csv("item_added,a,1", f"item_added,b,{10**30}"), Fails("row 1", Q, "int64")),
    case("csv", "quantity 1e300", csv("item_added,a,1", "item_added,b,1e300"), Fails("row 1", Q, "'1e300'")),
    case("csv", "stock beyond int64", csv(f"item_added,max,{MAX_INT64}", "item_added,max,1"),
         Fails("row 1", Q, "more than an int64 holds")),
    # CSV: empty
    case("csv", "empty file", b"", Fails("events.csv", "empty")),
    case("csv", "header only", csv(), Fails("events.csv", "empty", "nothing was imported")),
    # CSV: strings
    case("csv", "1 MB item", csv(f"item_added,{MB},1"), Fails("row 0", ITEM, "longer than 1024 bytes")),
    case("csv", "1 MB rarity", csv(f"item_added,long,{MB}", header="event_type,item,rarity"),
         Stored({"stream_id": "long", "rarity": MB})),
    case("csv", "invalid UTF-8", b"event_type,item,quantity\nitem_added,a,1\nitem_added,sw\xff\xfeord,1\n",
         Fails("events.csv", "line 3", "utf-8")),
    case("csv", "UTF-8 byte-order mark", "\ufeff" + csv("item_added,bom,1"), Stored({"stream_id": "bom"})),
    # CSV: timestamps
    case("csv", "naive timestamp", csv("item_added,a,1,2024-03-01T12:00:00+00:00", "item_added,a,1,2024-03-01T12:00:00",
                                       header=INV_TS), Fails("row 1", "'occurred_at'", "no time zone")),
    case("csv", "timestamp at +05:30", csv("item_added,a,1,2024-03-01T12:00:00+05:30", header=INV_TS),
         Stored({"occurred_at": NOON_IST_IN_UTC})),
    # CSV: duplicate ids
    case("csv", "event_id twice in the file", csv("x,item_added,a,1", "x,item_added,b,1", header=INV_ID),
         Fails("row 1", "'x'", "also in row 0")),
    case("csv", "event_id of an earlier import", csv("new,item_added,a,1", "e-1,item_added,a,1", header=INV_ID),
         Fails("row 1", "'e-1'", "already in the log at seq 1")),
    # CSV: names
    case("csv", "quotes, semicolons, '..', slashes", csv('item_added,"o\'brien ""the"" axe; DROP TABLE events; --",1',
                                                        f"item_added,{DOTS},1", f"item_added,{SLASHES},1"),
         Stored({"stream_id": QUOTED}, {"stream_id": DOTS}, {"stream_id": SLASHES})),
    case("csv", "unicode and a quoted newline", csv(f"item_added,{UNICODE},1", f'item_added,"{NEWLINE}",1'),
         Stored({"stream_id": UNICODE}, {"stream_id": NEWLINE})),
    # Parquet: not Parquet
    case("parquet", "zero-byte file", b"", Fails("events.parquet", "cannot read as Parquet")),
    case("parquet", "CSV text", csv("item_added,a,1"), Fails("events.parquet", "cannot read as Parquet")),
    case("parquet", "cut in half", truncated(frame(item=[f"item {i}" for i in range(2)])),
         Fails("events.parquet", "cannot read as Parquet")),
    # Parquet: wrong types
    case("parquet", "float quantity column", frame(quantity=[None, 1.5]), Fails("row 1", Q, "Float64")),
    case("parquet", "text quantity column", frame(quantity=["1", "2"]), Fails("row 0", Q, "String")),
    case("parquet", "UInt64 2**63", frame(quantity=pl.Series([1, 2**63], dtype=pl.UInt64)),
         Fails("row 1", Q, "does not fit")),
    case("parquet", "binary item column, not UTF-8",
         pa.table({"event_type": [ADDED, ADDED], "item": pa.array([b"a", b"\xff\xfe"], pa.binary())}),
         Fails("row 0", ITEM, "Binary")),
    case("parquet", "NaN quantity", frame(quantity=[1.0, math.nan]), Fails("row 0", Q, "Float64")),
    # Parquet: columns, nulls, empty
    case("parquet", "item column missing", frame().drop("item"), Fails("row 0", ITEM, "missing")),
    case("parquet", "extra column", frame(colour=[None, "red"]), Fails("row 1", "'colour'", "unknown column")),
    case("parquet", "null item", frame(item=["a", None]), Fails("row 1", ITEM, "null")),
    case("parquet", "no rows", frame().head(0), Fails("events.parquet", "empty")),
    case("parquet", "stock beyond int64", frame(item=["max", "max"], quantity=[MAX_INT64, 1]),
         Fails("row 1", Q, "more than an int64 holds")),
    # Parquet: timestamps
    case("parquet", "naive timestamp column", frame(occurred_at=[NAIVE, NAIVE]),
         Fails("row 0", "'occurred_at'", "no time zone")),
    case("parquet", "Asia/Kolkata timestamp column",
         frame(occurred_at=pl.Series([NAIVE, NAIVE]).dt.replace_time_zone("Asia/Kolkata")),
         Stored({"occurred_at": NOON_IST_IN_UTC}, {"occurred_at": NOON_IST_IN_UTC})),
    # Parquet: ids, names, long strings
    case("parquet", "event_id twice in the file", frame(event_id=["x", "x"]), Fails("row 1", "'x'", "also in row 0")),
    case("parquet", "event_id of an earlier import", frame(event_id=["new", "e-1"]),
         Fails("row 1", "'e-1'", "already in the log at seq 1")),
    case("parquet", "awkward names", frame(item=[QUOTED, NEWLINE], rarity=[DOTS, UNICODE]),
         Stored({"stream_id": QUOTED, "rarity": DOTS}, {"stream_id": NEWLINE, "rarity": UNICODE})),
    case("parquet", "1 MB item", frame(item=["a", MB]), Fails("row 1", ITEM, "longer than 1024 bytes")),
    case("parquet", "1 MB rarity", frame(rarity=[None, MB]), Stored({"rarity": None}, {"rarity": MB})),
    # NDJSON: wrong types keep their JSON type (never turned into text or floats)
    case("ndjson", "quantity 1.5", ndjson(obj(), obj(quantity=1.5)), Fails("row 1", Q, "1.5")),
    case("ndjson", "quantity as text", ndjson(obj(), obj(quantity="2")), Fails("row 1", Q, "'2'")),
    case("ndjson", "quantity true", ndjson(obj(), obj(quantity=True)), Fails("row 1", Q, "True")),
    case("ndjson", "item as number", ndjson(obj(), obj(item=5)), Fails("row 1", ITEM, "got 5")),
    case("ndjson", "item as list", ndjson(obj(), obj(item=["b"])), Fails("row 1", ITEM, "['b']")),
    case("ndjson", "item as object", ndjson(obj(), obj(item={"x": 1})), Fails("row 1", ITEM, "{'x': 1}")),
    # NDJSON: columns and nulls
    case("ndjson", "item key missing in one line", ndjson(obj(), {"event_type": ADDED}), Fails("row 1", ITEM, "null")),
    case("ndjson", "null item", ndjson(obj(), obj(item=None)), Fails("row 1", ITEM, "null")),
    case("ndjson", "extra key", ndjson(obj(), obj(colour="red")), Fails("row 1", "'colour'", "unknown column")),
    case("ndjson", "null quantity takes the default 1", ndjson(obj(item="dflt", quantity=None)),
         Stored({"stream_id": "dflt", "quantity": 1})),
    # NDJSON: NaN, infinities, zero, negative, huge
    case("ndjson", "quantity NaN", ndjson(obj(), obj(quantity=math.nan)), Fails("row 1", Q, "nan")),
    case("ndjson", "quantity Infinity", ndjson(obj(), obj(quantity=math.inf)), Fails("row 1", Q, "inf")),
    case("ndjson", "quantity 0", ndjson(obj(), obj(quantity=0)), Fails("row 1", Q, "at least 1")),
    case("ndjson", "quantity -2", ndjson(obj(), obj(quantity=-2)), Fails("row 1", Q, "at least 1")),
    case("ndjson", "quantity 2**63", ndjson(obj(), obj(quantity=2**63)), Fails("row 1", Q, "does not fit in int64")),
    case("ndjson", "quantity 10**30", ndjson(obj(), obj(quantity=10**30)), Fails("row 1", Q, "does not fit in int64")),
    case("ndjson", "quantity 1e300", ndjson(obj(), obj(quantity=1e300)), Fails("row 1", Q, "1e+300")),
    # NDJSON: not NDJSON, empty
    case("ndjson", "empty file", b"", Fails("events.ndjson", "empty", "nothing was imported")),
    case("ndjson", "blank lines only", "\n\n", Fails("events.ndjson", "empty")),
    case("ndjson", "broken JSON", ndjson(obj()) + '{"item": \n', Fails("events.ndjson", "line 2", "not JSON")),
    case("ndjson", "a line that is not an object", ndjson(obj()) + "[1, 2]\n",
         Fails("events.ndjson", "line 2", "not a JSON object")),
    case("ndjson", "invalid UTF-8", ndjson(obj()).encode() + b'{"event_type": "item_added", "item": "\xff"}\n',
         Fails("events.ndjson", "line 2", "utf-8")),
    case("ndjson", "escaped lone surrogate", ndjson(obj()) + '{"event_type": "item_added", "item": "sw\\udcfford"}\n',
         Fails("row 1", ITEM, "not valid Unicode")),
    # NDJSON: timestamps, ids, names, long strings
    case("ndjson", "naive timestamp",
         ndjson(obj(occurred_at="2024-03-01T12:00:00Z"), obj(occurred_at="2024-03-01T12:00:00")),
         Fails("row 1", "'occurred_at'", "no time zone")),
    case("ndjson", "timestamp at +05:30", ndjson(obj(occurred_at="2024-03-01T12:00:00+05:30")),
         Stored({"occurred_at": NOON_IST_IN_UTC})),
    case("ndjson", "event_id twice in the file", ndjson(obj(event_id="x"), obj(event_id="x")),
         Fails("row 1", "also in row 0")),
    case("ndjson", "event_id of an earlier import", ndjson(obj(event_id="e-1")),
         Fails("row 0", "'e-1'", "already in the log")),
    case("ndjson", "awkward names", ndjson(obj(item=QUOTED), obj(item=DOTS), obj(item=UNICODE), obj(item=NEWLINE)),
         Stored({"stream_id": QUOTED}, {"stream_id": DOTS}, {"stream_id": UNICODE}, {"stream_id": NEWLINE})),
    case("ndjson", "1 MB item", ndjson(obj(), obj(item=MB)), Fails("row 1", ITEM, "longer than 1024 bytes")),
    case("ndjson", "1 MB origin", ndjson(obj(item="long", origin=MB)), Stored({"stream_id": "long", "origin": MB})),
    # Into a store of the shop schema: dates, floats and booleans as text
    case("csv/shop", "ISO date", csv("item_added,s,x,1,,,2024-03-05", header=SHOP),
         Stored({"delivery_on": dt.date(2024, 3, 5)})),
    case("csv/shop", "impossible date",
         csv("item_added,s,x,1,,,2024-03-05", "item_added,s,x,1,,,2024-02-30", header=SHOP),
         Fails("row 1", "'delivery_on'", "'2024-02-30'")),
    case("csv/shop", "unit_price NaN", csv("item_added,s,x,1,1.5,,", "item_added,s,x,1,NaN,,", header=SHOP),
         Fails("row 1", "'unit_price'", "finite")),
    case("csv/shop", "unit_price as text", csv("item_added,s,x,1,1.5,,", "item_added,s,x,1,cheap,,", header=SHOP),
         Fails("row 1", "'unit_price'", "'cheap'")),
    case("csv/shop", "gift as yes", csv("item_added,s,x,1,,true,", "item_added,s,x,1,,yes,", header=SHOP),
         Fails("row 1", "'gift'", "'yes'")),
    case("ndjson/shop", "ISO date", ndjson(added("s", delivery_on="2024-03-05")),
         Stored({"delivery_on": dt.date(2024, 3, 5)})),
    case("ndjson/shop", "date in another format", ndjson(added("s"), added("s", delivery_on="05/03/2024")),
         Fails("row 1", "'delivery_on'", "'05/03/2024'")),
    case("ndjson/shop", "unit_price NaN", ndjson(added("s"), added("s", unit_price=math.nan)),
         Fails("row 1", "'unit_price'", "finite")),
    case("parquet/shop", "ISO date as text", pl.DataFrame([added("s", delivery_on="2024-03-05")]),
         Stored({"delivery_on": dt.date(2024, 3, 5)})),
    case("parquet/shop", "impossible date as text",
         pl.DataFrame([added("s", delivery_on="2024-03-05"), added("s", delivery_on="2024-02-30")]),
         Fails("row 1", "'delivery_on'", "'2024-02-30'")),
]


@pytest.mark.parametrize(("entry", "given", "expect"), IMPORT_CASES)
def test_import(entry: str, given: Any, expect: Fails | Stored, copy_of: Callable[[str], Path], tmp_path: Path) -> None:
    fmt, _, schema = entry.partition("/")
    store = copy_of(schema or "inventory")
    source = tmp_path / f"events.{fmt}"
    write_input(source, given)
    before = position(store)
    result = cli(store, "import", str(source))
    if isinstance(expect, Stored):
        assert result.exit_code == 0, result.output
        assert_stored(store, before, expect)
        return
    assert_one_error_line(result, *expect.says)
    assert_untouched(store, before)


def test_a_second_import_of_the_same_file_is_rejected_by_its_event_ids(
    copy_of: Callable[[str], Path], tmp_path: Path
) -> None:
    inventory_store = copy_of("inventory")
    source = tmp_path / "events.csv"
    write_input(source, csv("n-1,item_added,a,1", "n-2,item_added,b,2", header=INV_ID))
    assert cli(inventory_store, "import", str(source)).exit_code == 0
    before = position(inventory_store)
    assert_one_error_line(cli(inventory_store, "import", str(source)), "row 0", "'n-1'", "already in the log")
    assert_untouched(inventory_store, before)


# --- stores and checks --------------------------------------------------------------------------


@pytest.fixture(scope="module")
def templates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One inventory and one shop store, each holding an event e-1; cases run on copies."""
    root = tmp_path_factory.mktemp("templates")
    inventory = root / "inventory ✓ 'quoted'"
    seed = root / "seed.csv"
    seed.write_text(csv("e-1,item_added,sword,3", header=INV_ID), encoding="utf-8")
    for args in (["init"], ["import", str(seed)]):
        assert cli(inventory, *args).exit_code == 0
    shop_log = EventLog.create(root / "shop", make_schema())
    shop_log.append([added("s0", event_id="e-1")])
    return {"inventory": inventory, "shop": shop_log.path}


@pytest.fixture
def copy_of(templates: dict[str, Path], tmp_path: Path) -> Callable[[str], Path]:
    """A fresh copy of a template store (copying is about 20x faster than building one)."""

    def copy(name: str) -> Path:
        return Path(shutil.copytree(templates[name], tmp_path / name))

    return copy


def cli(store: Path, *args: str) -> Result:
    """``eventlog --store STORE ARGS`` in-process; an unexpected exception fails the test with its traceback."""
    return CliRunner().invoke(main, ["--store", str(store), *args], catch_exceptions=False)


def position(store: Path) -> tuple[int, int]:
    log = EventLog.open(store)
    return log.head(), log.version


def assert_one_error_line(result: Result, *fragments: str) -> None:
    assert result.exit_code == 1, result.output
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def assert_untouched(store: Path, before: tuple[int, int]) -> None:
    log = EventLog.open(store)
    assert (log.head(), log.version) == before
    assert log.verify().ok
    if log.schema.name == "inventory":
        assert Inventory.open(store).verify().ok


def assert_stored(store: Path, before: tuple[int, int], expect: Stored) -> None:
    """The appended events read back as expected, verify holds, and stock() equals a replay of the log."""
    log = EventLog.open(store)
    events = log.scan().filter(pl.col("seq") > before[0]).collect().sort("seq").to_dicts()
    assert len(events) == len(expect.events)
    for got, want in zip(events, expect.events):
        assert {k: got[k] for k in want} == want
    assert log.verify().ok
    if log.schema.name == "inventory":
        inventory = Inventory.open(store)
        assert inventory.verify().ok
        assert dict(inventory.stock().select("item", "quantity").rows()) == replayed_stock(log)


def replayed_stock(log: EventLog) -> dict[str, int]:
    """The reference model: a loop over every event."""
    stock: dict[str, int] = {}
    for event in log.scan().collect().sort("seq").iter_rows(named=True):
        sign = {ADDED: 1, REMOVED: -1}[event["event_type"]]
        stock[event["stream_id"]] = stock.get(event["stream_id"], 0) + sign * event["quantity"]
    return {item: n for item, n in stock.items() if n > 0}
