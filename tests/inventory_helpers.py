"""Shared helpers for the inventory and projection suites: awkward item names, log strategies, readers.

Hypothesis builds a log as a few batches for ``Inventory.record`` (each append costs about
15 ms, so an example's log is a handful of batches, not one append per event). Removals
never take an item below zero in log order; occurred_at is random, so business time is
often out of log order (backdated events), and sometimes missing (the append time).
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
from pathlib import Path
from typing import Any

import polars as pl
from hypothesis import strategies as st

from eventlog import Inventory

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


def events_of(inventory: Inventory) -> list[dict[str, Any]]:
    """Every committed event, in log order, as dicts (what the reference models read)."""
    return inventory.log.scan().collect().sort("seq").to_dicts()


# --- strategies ----------------------------------------------------------------------------

#: Mostly the awkward names (so items recur), sometimes any text at all.
item_names = st.sampled_from(AWKWARD_ITEMS) | st.text(min_size=1, max_size=6)


@st.composite
def item_events(draw: st.DrawFn, *, min_size: int = 1, max_size: int = 30, days: int = 20) -> list[dict[str, Any]]:
    """A valid sequence of item events for ``record``: stock never goes below zero in log order."""
    n = draw(st.integers(min_size, max_size))
    stock: dict[str, int] = {}
    out = []
    for _ in range(n):
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
        minutes = draw(st.integers(0, days * 24 * 60))
        occurred_at = draw(st.none() | st.just(T0 + dt.timedelta(minutes=minutes)))
        out.append({
            "event_type": "item_removed" if remove else "item_added",
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

    ``"table_written"``: the new table's Parquet file is complete but not yet renamed into place.
    ``"manifest_half_written"``: the table is in place, half of the new ``current.json`` is written.
    ``"anywhere"``: never stop; the parent kills at a random moment of the loop.
    """
    import json
    import time
    import types

    import eventlog.store.atomic as atomic

    def wait_for_the_kill() -> None:
        started.set()
        while True:
            time.sleep(1)

    if kill_point == "table_written":
        real_fsync = atomic._fsync

        def fsync_or_stop(path: Any) -> None:  # the table's temp file is complete; its rename comes next
            if path.name.startswith(f"{atomic.TEMP_PREFIX}t-"):
                wait_for_the_kill()
            real_fsync(path)

        atomic._fsync = fsync_or_stop  # type: ignore[assignment]
    elif kill_point == "manifest_half_written":
        def half_dump(obj: Any, fh: Any, **kwargs: Any) -> None:
            text = json.dumps(obj, **kwargs)
            fh.write(text[: len(text) // 2])
            fh.flush()
            wait_for_the_kill()

        atomic.json = types.SimpleNamespace(dump=half_dump, dumps=json.dumps, loads=json.loads)  # type: ignore[assignment]
    inventory = Inventory.open(path)
    if kill_point == "anywhere":
        started.set()
    while True:
        inventory.update_projections(rebuild=True)


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
