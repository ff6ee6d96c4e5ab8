"""The inventory's state: one declarative definition, folded by any engine.

State per item: quantity (adds minus removes; other event types leave it alone), latest
non-null rarity and origin, first add and last change in business time, stream version.
Every column merges: ``state(≤ b) = merge(state(≤ a), fold(a < seq ≤ b))``, which is what
lets a snapshot (or an in-memory state) stand in for the prefix of the log. That one
definition, :data:`STATE`, gives ``Inventory.stock()`` at every cut (on DuckDB or Polars),
the snapshot merge, the SQL ``inventory`` view and macros, verify's recomputation and
Spark's stock; the signed quantity it sums is also the running stock of ``history()``,
the writer's stock check and verify's "never below zero".

Rarity and origin are "last by stream_version": within one stream it orders events as seq
does, and the fold reads it anyway (seq need not be read when the files lie inside the cut).

Schema evolution: when upcasters (or read defaults) change what the fold reads (quantity,
rarity, origin), the engines read the events through the same rules, and the rules enter
the state's fingerprint, so snapshots made under other rules are not used.
"""

from __future__ import annotations

from typing import TypeVar

import polars as pl

from eventlog.core.definitions import Agg, Projection
from eventlog.engines._polars import stored_schema
from eventlog.model.schema import ADDED, INVENTORY_SCHEMA, REMOVED
from eventlog.log import EventLog

#: Bump when the state's definition changes: snapshots of another version are not used.
#: 3: the state is the declarative STATE; its stored form carries the order keys of rarity/origin.
STATE_VERSION = 3
#: The payload fields the fold reads: upcasters of these change the state's definition.
STATE_FIELDS = ("quantity", "rarity", "origin")

#: +quantity for an addition, -quantity for a removal, 0 for any other event type.
SIGNED_QUANTITY = f"CASE event_type WHEN '{ADDED}' THEN quantity WHEN '{REMOVED}' THEN -quantity ELSE 0 END"

STATE = Projection(
    "inventory",
    keys={"item": "stream_id"},
    aggregates={
        "quantity": Agg.sum(SIGNED_QUANTITY),
        "rarity": Agg.last("rarity", where="rarity IS NOT NULL", by="stream_version"),
        "origin": Agg.last("origin", where="origin IS NOT NULL", by="stream_version"),
        "first_added_at": Agg.min("occurred_at", where=f"event_type = '{ADDED}'"),
        "last_changed_at": Agg.max("occurred_at"),
        "stream_version": Agg.max("stream_version"),
    },
    having="quantity > 0",
    description="Items in stock: the inventory's state.",
)

#: Only the quantity of STATE: what one item's count needs when there is no state to start from
#: (three columns read instead of seven).
QUANTITY = Projection("inventory_quantity", keys=STATE.keys, aggregates={"quantity": STATE.aggregates["quantity"]})

#: The stored form (snapshots, in-memory states): every item, zero stock included, with the
#: order keys that let rarity and origin merge.
STORED_SCHEMA: dict[str, pl.DataType] = dict(stored_schema(STATE, pl.Schema(INVENTORY_SCHEMA.columns())))
#: What ``stock()`` and the SQL ``inventory`` view show.
STATE_SCHEMA: dict[str, pl.DataType] = {c: STORED_SCHEMA[c] for c in [*STATE.keys, *STATE.aggregates]}


def state_fingerprint(log: EventLog) -> str:
    """The state's definition: ``v<STATE_VERSION>``, plus a hash of the read rules it goes through."""
    rules = log.schema_history.fingerprint(STATE_FIELDS)
    return f"v{STATE_VERSION}" if rules is None else f"v{STATE_VERSION}-{rules}"


def empty_state() -> pl.DataFrame:
    return pl.DataFrame(schema=STORED_SCHEMA)


Frame = TypeVar("Frame", pl.DataFrame, pl.LazyFrame)


def with_running_stock(events: Frame, *, start: str | None = None) -> Frame:
    """``events`` (in log order) with ``change``, the signed quantity, and ``stock``, each item's
    running stock after the event (from the column ``start``, 0 where it is null or not given).

    Summed in Int128: a batch that would take a stock past int64 must be seen, not wrap around.
    """
    change = pl.sql_expr(SIGNED_QUANTITY).cast(pl.Int128)
    opening = pl.col(start).fill_null(0).cast(pl.Int128) if start else pl.lit(0, pl.Int128)
    return events.with_columns(change=change).with_columns(
        stock=opening + pl.col("change").cum_sum().over("stream_id")
    )
