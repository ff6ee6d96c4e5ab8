"""Peers: how the same inventory is kept without eventlog.

- The original example's approach: one small Python object per event, replayed in a loop
  into a ``collections.Counter``. Loading the objects from the same Parquet files is timed
  apart from the replay.
- The ``eventsourcing`` library (PyPI) on its SQLite backend: one aggregate per item with
  ``ItemAdded`` / ``ItemRemoved`` events carrying quantity, rarity and origin.
"""

from __future__ import annotations

import datetime as dt
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from uuid import NAMESPACE_URL, UUID, uuid5

import polars as pl

from benchmarks._limits import ADDED, delta_files
from benchmarks._sqlite_state import read_state, write_state

_COLUMNS = ["seq", "event_type", "stream_id", "quantity", "rarity", "origin", "occurred_at"]


# --- the original example: Python objects and a Counter -----------------------------------


@dataclass(slots=True)
class Event:
    """One inventory event as a plain Python object."""

    seq: int
    event_type: str
    item: str
    quantity: int
    rarity: str | None
    origin: str | None
    occurred_at: dt.datetime  # naive, UTC: tz-aware conversion costs 2-5x more per value


def _read(events_dir: Path, limit: int) -> pl.DataFrame:
    return (
        pl.scan_parquet(delta_files(events_dir))
        .filter(pl.col("seq") <= limit)
        .select(_COLUMNS)
        .with_columns(pl.col("occurred_at").dt.replace_time_zone(None))
        .sort("seq")
        .collect()
    )


def load_events(events_dir: Path, limit: int) -> list[Event]:
    """The events with seq <= limit as Python objects, in log order (read with Polars)."""
    frame = _read(events_dir, limit)
    columns = [frame.get_column(c).to_list() for c in _COLUMNS]
    return [Event(*row) for row in zip(*columns, strict=True)]


def replay(events: Iterable[Event]) -> Counter[str]:
    """The original example's loop: a Counter of stock per item."""
    stock: Counter[str] = Counter()
    for e in events:
        if e.event_type == ADDED:
            stock[e.item] += e.quantity
        else:
            stock[e.item] -= e.quantity
    return stock


def in_stock(counter: Counter[str]) -> dict[str, int]:
    return {k: v for k, v in counter.items() if v > 0}


# --- the eventsourcing library --------------------------------------------------------------


def _item_class() -> Any:
    """Defined on first use so that importing this module does not need eventsourcing."""
    from eventsourcing.domain import Aggregate, event

    class InventoryItem(Aggregate):
        @event("Created")
        def __init__(self, name: str) -> None:
            self.name = name
            self.quantity = 0
            self.rarity: str | None = None
            self.origin: str | None = None

        @staticmethod
        def create_id(name: str) -> UUID:
            return item_id(name)

        @event("ItemAdded")
        def add(self, quantity: int, rarity: str | None, origin: str | None) -> None:
            self.quantity += quantity
            if rarity is not None:
                self.rarity = rarity
            if origin is not None:
                self.origin = origin

        @event("ItemRemoved")
        def remove(self, quantity: int, rarity: str | None, origin: str | None) -> None:
            self.quantity -= quantity

    return InventoryItem


_ITEM: Any = None


def item_class() -> Any:
    global _ITEM
    if _ITEM is None:
        _ITEM = _item_class()
    return _ITEM


def item_id(name: str) -> UUID:
    return uuid5(NAMESPACE_URL, "/eventlog-benchmark/items/" + name)


def es_app(db_path: Path) -> Any:
    from eventsourcing.application import Application

    return Application(env={"PERSISTENCE_MODULE": "eventsourcing.sqlite", "SQLITE_DBNAME": str(db_path)})


def es_rows(events_dir: Path, limit: int) -> list[tuple[str, str, int, str | None, str | None]]:
    """(event_type, item, quantity, rarity, origin) with seq <= limit, in log order (untimed input)."""
    return _read(events_dir, limit).select("event_type", "stream_id", "quantity", "rarity", "origin").rows()


#: Events per SQLite transaction when appending: the library's fast path is to save many
#: pending aggregates in one call (one transaction); per-event saves are measured apart.
ES_SAVE_EVERY = 1000


def es_append(app: Any, rows: list[tuple[str, str, int, str | None, str | None]]) -> dict[str, Any]:
    """Run the events through aggregates held in memory, saving every ES_SAVE_EVERY events."""
    cls = item_class()
    aggregates: dict[str, Any] = {}
    pending: dict[str, Any] = {}
    for i, (event_type, name, quantity, rarity, origin) in enumerate(rows, 1):
        agg = aggregates.get(name)
        if agg is None:
            agg = aggregates[name] = cls(name)
        if event_type == ADDED:
            agg.add(quantity, rarity, origin)
        else:
            agg.remove(quantity, rarity, origin)
        pending[name] = agg
        if i % ES_SAVE_EVERY == 0:
            app.save(*pending.values())
            pending.clear()
    if pending:
        app.save(*pending.values())
    return aggregates


def es_reconstruct(app: Any, names: list[str]) -> dict[str, int]:
    """Every item's aggregate rebuilt from its stored events; quantities of those in stock."""
    out = {}
    for name in names:
        quantity = app.repository.get(item_id(name)).quantity
        if quantity > 0:
            out[name] = quantity
    return out


def es_single_saves(app: Any, aggregate: Any, count: int) -> list[float]:
    """Latency of saving one new event (one transaction each), aggregate held in memory."""
    out = []
    for _ in range(count):
        start = time.perf_counter()
        aggregate.add(1, None, None)
        app.save(aggregate)
        out.append(time.perf_counter() - start)
    return out


# --- the database that overwrites the row: the current state in a SQLite table ---------------
# (benchmarks/_sqlite_state.py, importable by a new process without this module's imports)

sqlite_write_state = write_state
sqlite_read_state = read_state
