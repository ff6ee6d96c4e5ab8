"""Test data and helpers shared by the suite: one schema covering every field type, a sample batch.

Names are awkward on purpose (spaces, quotes, semicolons, unicode, SQL reserved words):
nothing in the log may treat a stream id or an event type as anything but data.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl
import pyarrow as pa

from eventlog import EventLog, EventSchema, EventType, Field

UTC = dt.timezone.utc

#: Stream ids nothing may quote, split or interpret.
AWKWARD_STREAMS = [
    "cart 1",
    "o'brien",
    'say "hi"',
    "a;b; DROP TABLE events; --",
    "Ünïcødé ✓ 日本",
    "select",
    " leading and trailing ",
]
#: Event types: a plain one, a SQL reserved word, and one with spaces, punctuation and unicode.
ADDED, REMOVED, SELECT, CHECKED_OUT = "item_added", "item_removed", "select", "cart \"checked\"-out; ✓"

#: Payload columns in stored order, with the polars type the schema gives each.
PAYLOAD_TYPES: dict[str, pl.DataType] = {
    "sku": pl.String(),
    "quantity": pl.Int64(),
    "unit_price": pl.Float64(),
    "gift": pl.Boolean(),
    "expires_at": pl.Datetime("us", "UTC"),
    "delivery_on": pl.Date(),
    "größe": pl.Float64(),
    "note": pl.String(),
}
#: What a user may give: the user envelope plus the payload.
INPUT_TYPES: dict[str, pl.DataType] = {
    "event_id": pl.String(),
    "stream_id": pl.String(),
    "event_type": pl.String(),
    "occurred_at": pl.Datetime("us", "UTC"),
    **PAYLOAD_TYPES,
}


def make_schema() -> EventSchema:
    """Every field type; required, optional, defaults, min and max."""
    return EventSchema(
        [
            EventType(
                ADDED,
                (
                    Field("sku", "string"),
                    Field("quantity", "int64", min=1, max=1_000_000),
                    Field("unit_price", "float64", required=False, min=0),
                    Field("gift", "bool", default=False),
                    Field("expires_at", "timestamp", required=False),
                    Field("delivery_on", "date", required=False),
                    Field("größe", "float64", required=False),
                ),
            ),
            EventType(REMOVED, (Field("sku", "string"), Field("quantity", "int64", default=1, min=1))),
            EventType(SELECT, (Field("note", "string", required=False),)),
            EventType(CHECKED_OUT, ()),
        ],
        name="shop; \"awkward\"",
    )


def sample_records() -> list[dict[str, Any]]:
    """Five rows covering every column type, nulls, defaults and caller-given envelope values."""
    t = dt.datetime(2024, 3, 1, 12, 30, 0, 123456, tzinfo=UTC)
    return [
        {
            "event_id": "evt-1 'quoted'",
            "stream_id": AWKWARD_STREAMS[1],
            "event_type": ADDED,
            "occurred_at": t,
            "sku": 'lamp "deluxe"; ünï',
            "quantity": 3,
            "unit_price": 19.99,
            "gift": True,
            "expires_at": t + dt.timedelta(days=30),
            "delivery_on": dt.date(2024, 3, 5),
            "größe": 1.5,
            "note": None,
        },
        {
            "event_id": "evt-2",
            "stream_id": AWKWARD_STREAMS[3],
            "event_type": ADDED,
            "occurred_at": t + dt.timedelta(days=1),
            "sku": "select",
            "quantity": 1_000_000,
            "unit_price": None,
            "gift": None,  # default False
            "expires_at": None,
            "delivery_on": None,
            "größe": None,
            "note": None,
        },
        {
            "event_id": "evt-3",
            "stream_id": AWKWARD_STREAMS[1],
            "event_type": REMOVED,
            "occurred_at": t + dt.timedelta(hours=1),
            "sku": 'lamp "deluxe"; ünï',
            "quantity": None,  # default 1
            "unit_price": None,
            "gift": None,
            "expires_at": None,
            "delivery_on": None,
            "größe": None,
            "note": None,
        },
        {
            "event_id": "日本-4",
            "stream_id": AWKWARD_STREAMS[4],
            "event_type": SELECT,
            "occurred_at": t - dt.timedelta(days=400),
            "sku": None,
            "quantity": None,
            "unit_price": None,
            "gift": None,
            "expires_at": None,
            "delivery_on": None,
            "größe": None,
            "note": "from; where \"x\" = 'y'",
        },
        {
            "event_id": "evt-5",
            "stream_id": AWKWARD_STREAMS[1],
            "event_type": CHECKED_OUT,
            "occurred_at": t + dt.timedelta(hours=2),
            "sku": None,
            "quantity": None,
            "unit_price": None,
            "gift": None,
            "expires_at": None,
            "delivery_on": None,
            "größe": None,
            "note": None,
        },
    ]


def expected_payload(record: dict[str, Any]) -> dict[str, Any]:
    """A record's payload as stored: defaults filled for the fields its event type has."""
    out = {name: record.get(name) for name in PAYLOAD_TYPES}
    if record["event_type"] == ADDED and out["gift"] is None:
        out["gift"] = False
    if record["event_type"] == REMOVED and out["quantity"] is None:
        out["quantity"] = 1
    return out


def as_polars(records: list[dict[str, Any]]) -> pl.DataFrame:
    """The same rows as a typed polars DataFrame (column types from INPUT_TYPES)."""
    columns = {name for rec in records for name in rec}
    schema = {name: dtype for name, dtype in INPUT_TYPES.items() if name in columns}
    return pl.DataFrame(
        {name: pl.Series(name, [rec.get(name) for rec in records], dtype=dtype) for name, dtype in schema.items()}
    )


def as_arrow(records: list[dict[str, Any]]) -> pa.Table:
    """The same rows as an Arrow table, built by pyarrow itself (not converted from polars)."""
    arrow_types = {
        "string": pa.string(),
        "int64": pa.int64(),
        "float64": pa.float64(),
        "bool": pa.bool_(),
        "timestamp": pa.timestamp("us", tz="UTC"),
        "date": pa.date32(),
    }
    kinds = {"event_id": "string", "stream_id": "string", "event_type": "string", "occurred_at": "timestamp"}
    kinds |= {f.name: f.type for et in make_schema().event_types for f in et.fields}
    columns = {name for rec in records for name in rec}
    fields = [pa.field(name, arrow_types[kinds[name]]) for name in INPUT_TYPES if name in columns]
    rows = [{f.name: rec.get(f.name) for f in fields} for rec in records]
    return pa.Table.from_pylist(rows, schema=pa.schema(fields))


def read_all(log: EventLog) -> pl.DataFrame:
    """The whole committed log in seq order."""
    return log.scan().collect().sort("seq")


def added(stream: str, quantity: int = 1, **extra: Any) -> dict[str, Any]:
    """One valid item_added row."""
    return {"event_type": ADDED, "stream_id": stream, "sku": "sku", "quantity": quantity, **extra}
