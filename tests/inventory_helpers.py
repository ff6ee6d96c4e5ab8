"""Shared helpers for the inventory and projection suites: awkward item names, log strategies, readers.

Hypothesis builds a log as a few batches (each append costs about 15 ms, so an example's
log is a handful of batches, not one append per event). Removals never take an item below
zero in log order; occurred_at is random, so business time is often out of log order
(backdated events), and sometimes missing (the append time).

In about half the examples some events are of other types than item_added/item_removed
(:data:`OTHER_TYPES`): they move no stock, but are events of their item all the same.
``Inventory.record`` takes item events only, so :func:`write` appends those through
``inventory.log.append``, after evolving the store's schema to :data:`WITH_OTHER_TYPES`.
"""

from __future__ import annotations

import datetime as dt
import itertools
import multiprocessing
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest
from hypothesis import strategies as st

import eventlog.writer as eventlog_writer
from eventlog import INVENTORY_SCHEMA, EventSchema, EventType, Field, Inventory

UTC = dt.timezone.utc
T0 = dt.datetime(2024, 1, 1, tzinfo=UTC)

#: Item names nothing may quote, split or interpret.
AWKWARD_ITEMS = [
    "sword",
    "healing potion",
    "o'brien's axe",
    'the "one" ring',
    "a;b; DROP TABLE events; --",
    "Ünïcødé ✓ 日本",
    "select",
]
RARITIES = ["common", "rare", "épique; 'x'"]
ORIGINS = ["castle", "dungeon", "village \"north\"", "森"]

ADDED, REMOVED = "item_added", "item_removed"
#: Event types that move no stock: one with the inventory's own fields (its quantity,
#: 1 by default, must not count), and one with none of them (quantity, rarity and origin null).
COUNTED, INSPECTED = "item_counted", "item inspected; 'ü'"
OTHER_TYPES = [COUNTED, INSPECTED]
#: The inventory schema grown by the other event types.
WITH_OTHER_TYPES = EventSchema(
    (
        *INVENTORY_SCHEMA.event_types,
        EventType(COUNTED, INVENTORY_SCHEMA.event_type(ADDED).fields),
        EventType(INSPECTED, (Field("inspector", "string", required=False),)),
    ),
    name=INVENTORY_SCHEMA.name,
)


def events_of(inventory: Inventory) -> list[dict[str, Any]]:
    """Every committed event, in log order, as dicts (what the reference models read)."""
    return inventory.log.scan().collect().sort("seq").to_dicts()


# --- strategies ----------------------------------------------------------------------------

#: Mostly the awkward names (so items recur), sometimes any text at all.
item_names = st.sampled_from(AWKWARD_ITEMS) | st.text(min_size=1, max_size=6)


def _other_event(draw: st.DrawFn) -> dict[str, Any]:
    """An event of one of OTHER_TYPES, on any item (held, gone, or never added)."""
    event_type = draw(st.sampled_from(OTHER_TYPES))
    if event_type == COUNTED:
        payload = {
            "quantity": draw(st.none() | st.integers(1, 5)),  # None: the schema's default, 1
            "rarity": draw(st.none() | st.sampled_from(RARITIES)),
            "origin": draw(st.none() | st.sampled_from(ORIGINS)),
        }
    else:
        payload = {"inspector": draw(st.none() | st.sampled_from(AWKWARD_ITEMS))}
    return {"event_type": event_type, "item": draw(item_names), **payload}


@st.composite
def item_events(
    draw: st.DrawFn, *, min_size: int = 1, max_size: int = 30, days: int = 20, others: bool | None = None
) -> list[dict[str, Any]]:
    """A valid sequence of item events: stock never goes below zero in log order.

    ``others``: whether some events are of OTHER_TYPES (None: in about half the examples,
    True: in every one, at least one event), which only :func:`write` can append.
    """
    n = draw(st.integers(min_size, max_size))
    if others is None:
        others = draw(st.booleans(), label="with other event types")
    forced = draw(st.integers(0, n - 1)) if others else None
    stock: dict[str, int] = {}
    out = []
    for i in range(n):
        minutes = draw(st.integers(0, days * 24 * 60))
        occurred_at = draw(st.none() | st.just(T0 + dt.timedelta(minutes=minutes)))
        if others and (i == forced or draw(st.integers(0, 3)) == 0):
            out.append({**_other_event(draw), "occurred_at": occurred_at})
            continue
        held = sorted(k for k, v in stock.items() if v > 0)
        remove = bool(held) and draw(st.booleans())
        if remove:
            item = draw(st.sampled_from(held))
            quantity = draw(st.integers(1, stock[item]))
            stock[item] -= quantity
        else:
            item = draw(item_names)
            quantity = draw(st.integers(1, 5))
            stock[item] = stock.get(item, 0) + quantity
        out.append({
            "event_type": REMOVED if remove else ADDED,
            "item": item,
            "quantity": quantity,
            "rarity": draw(st.none() | st.sampled_from(RARITIES)),
            "origin": draw(st.none() | st.sampled_from(ORIGINS)),
            "occurred_at": occurred_at,
        })
    return out


@st.composite
def batches_of(draw: st.DrawFn, events: list[dict[str, Any]], *, max_batches: int = 4) -> list[list[dict[str, Any]]]:
    """``events`` split into 1..max_batches consecutive non-empty batches."""
    k = draw(st.integers(1, min(max_batches, len(events))))
    cuts = sorted(draw(st.sets(st.integers(1, len(events) - 1), min_size=k - 1, max_size=k - 1))) if k > 1 else []
    bounds = [0, *cuts, len(events)]
    return [events[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


def write(inventory: Inventory, batch: list[dict[str, Any]]) -> None:
    """Append ``batch`` in log order: runs of item events through ``record``, runs of other
    types through ``inventory.log.append`` (evolving the schema first, the first time)."""
    for other, run in itertools.groupby(batch, key=lambda e: e["event_type"] in OTHER_TYPES):
        events = list(run)
        if not other:
            inventory.record(events)
            continue
        if COUNTED not in inventory.log.schema.event_type_names:
            inventory.log.evolve(WITH_OTHER_TYPES)
        inventory.log.append([{"stream_id": e["item"], **{k: v for k, v in e.items() if k != "item"}} for e in events])


def as_frame(batch: list[dict[str, Any]]) -> pl.DataFrame:
    """A record() batch as a typed polars DataFrame."""
    return pl.DataFrame(
        batch,
        schema={"event_type": pl.String, "item": pl.String, "quantity": pl.Int64, "rarity": pl.String,
                "origin": pl.String, "occurred_at": pl.Datetime("us", "UTC")},
    )


# --- other processes (spawned: module-level so they can be pickled by reference) -------------


def remove_last_unit(path: str, item: str, ready: Any, go: Any, results: Any) -> None:
    """Wait for the starting signal, then try to take one unit of ``item``; report the outcome."""
    from eventlog.errors import InsufficientStockError

    inventory = Inventory.open(path)
    inventory.get_count(item)  # warm up: imports and the first read are not part of the race
    ready.set()
    go.wait()
    try:
        inventory.remove_item(item)
    except InsufficientStockError:
        results.put("insufficient")
    else:
        results.put("removed")


def spawn_context() -> Any:
    return multiprocessing.get_context("spawn")


def store(tmp: str | Path) -> Path:
    """A store path with awkward characters in it."""
    return Path(tmp) / "inv store; 'q' ✓"


def rebuild_until_killed(path: str, kill_point: str, started: Any) -> None:
    """Rebuild every projection until killed; ``kill_point`` says where to stop and wait for the kill.

    ``"before_first_commit"``: the first table's Delta write is about to start.
    ``"after_first_commit"``: the first table's rebuild is committed, the second's about to start.
    ``"anywhere"``: never stop; the parent kills at a random moment of the loop.
    """
    import time

    import eventlog.store.tables as tables

    def wait_for_the_kill() -> None:
        started.set()
        while True:
            time.sleep(1)

    if kill_point in ("before_first_commit", "after_first_commit"):
        import threading

        real_write, calls, lock = tables.commit_actions, [0], threading.Lock()
        stop_at = 1 if kill_point == "before_first_commit" else 2
        committed = threading.Event()  # the first write has returned (tables commit on several threads)
        if stop_at == 1:
            committed.set()

        def write_or_stop(*args: Any, **kwargs: Any) -> Any:
            with lock:
                calls[0] += 1
                call = calls[0]
            if call >= stop_at:  # every later write too
                committed.wait()
                wait_for_the_kill()
            out = real_write(*args, **kwargs)
            committed.set()
            return out

        tables.commit_actions = write_or_stop  # type: ignore[assignment]
    inventory = Inventory.open(path)
    if kill_point == "anywhere":
        started.set()
    while True:
        inventory.update_projections(rebuild=True)


def update_until_killed_at_touch(path: str, started: Any) -> None:
    """Update the projections, stopping for the kill at the first commit that only moves a checkpoint
    (an append of no rows: a from_day function whose window did not change)."""
    import time

    import eventlog.store.tables as tables

    real_write = tables.commit_actions

    def write_or_stop(*args: Any, **kwargs: Any) -> Any:
        if not args[1]:  # a commit of no action: the checkpoint alone moves
            started.set()
            while True:
                time.sleep(1)
        return real_write(*args, **kwargs)

    tables.commit_actions = write_or_stop  # type: ignore[assignment]
    Inventory.open(path).update_projections()


def append_and_update(path: str, worker: int, rounds: int, go: Any) -> None:
    """Append a small batch and update every projection, ``rounds`` times, after the go signal."""
    inventory = Inventory.open(path)
    go.wait()
    for i in range(rounds):
        inventory.record([
            {"event_type": "item_added", "item": AWKWARD_ITEMS[(worker + i) % len(AWKWARD_ITEMS)], "quantity": 2,
             "origin": ORIGINS[i % len(ORIGINS)], "occurred_at": T0 + dt.timedelta(days=i % 9, hours=worker)},
            {"event_type": "item_removed", "item": AWKWARD_ITEMS[(worker + i) % len(AWKWARD_ITEMS)], "quantity": 1,
             "occurred_at": T0 + dt.timedelta(days=i % 9, hours=worker + 1)},
        ])
        inventory.update_projections()


def commit_with_a_broken_envelope(monkeypatch: pytest.MonkeyPatch, inv: Inventory, **columns: pl.Expr) -> int:
    """Record one add through a writer whose envelope assignment overwrites ``columns``."""
    original = eventlog_writer.AssignedRows._table

    def broken(self: eventlog_writer.AssignedRows, *args: Any) -> pa.Table:
        table = original(self, *args)
        return pl.DataFrame(table).with_columns(**columns).to_arrow().cast(table.schema)

    with monkeypatch.context() as patch:  # the rows written and the rows hashed, alike
        patch.setattr(eventlog_writer.AssignedRows, "_table", broken)
        patch.setattr(eventlog_writer.AssignedRows, "column", lambda self, name: self.slice(0, self.num_rows).column(name))
        result = inv.log.append([{"event_type": "item_added", "stream_id": "sword", "quantity": 1}])
    return result.first_seq
