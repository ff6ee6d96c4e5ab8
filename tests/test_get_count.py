"""get_count: one item's count, reading only that item's stream when no state is there to start from."""

from __future__ import annotations

from pathlib import Path

import pytest

from eventlog import Inventory
from eventlog.engines._duckdb import DuckDBEngine
from eventlog.engines._polars import PolarsEngine
from eventlog.engines.base import EventSlice


@pytest.fixture
def slices(monkeypatch: pytest.MonkeyPatch) -> list[EventSlice]:
    """Every slice of the log an engine folds, in call order."""
    calls: list[EventSlice] = []
    for engine in (DuckDBEngine, PolarsEngine):
        real = engine.fold

        def recording(self, definition, events, real=real):  # type: ignore[no-untyped-def]
            if isinstance(events, EventSlice):
                calls.append(events)
            return real(self, definition, events)

        monkeypatch.setattr(engine, "fold", recording)
    return calls


@pytest.fixture
def path(tmp_path: Path, engine: str) -> Path:
    inv = Inventory.open(tmp_path / "store", engine=engine, snapshot_every=10**9)
    inv.record([{"event_type": "item_added", "item": name, "quantity": 3} for name in ("sword", "shield", "the 'rope'")])
    inv.remove_item("the 'rope'", 2)
    return inv.path


def test_with_no_snapshot_only_the_items_stream_is_folded(path: Path, engine: str, slices: list[EventSlice]) -> None:
    inv = Inventory.open(path, engine=engine, snapshot_every=10**9)
    assert (inv.get_count("the 'rope'"), inv.get_count("sword"), inv.get_count("no such item")) == (1, 3, 0)
    assert [list(s.streams or []) for s in slices] == [["the 'rope'"], ["sword"], ["no such item"]]
    assert not inv.snapshots.list()  # a count alone writes no snapshot


def test_with_a_snapshot_the_state_is_brought_up_to_date_and_kept(path: Path, engine: str,
                                                                   slices: list[EventSlice]) -> None:
    Inventory.open(path, engine=engine).snapshot()
    Inventory.open(path, engine=engine).add_item("sword")
    inv = Inventory.open(path, engine=engine)
    slices.clear()
    assert (inv.get_count("sword"), inv.get_count("shield")) == (4, 3)
    assert len(slices) == 1 and slices[0].streams is None and slices[0].after == 4  # the tail, once


def test_a_count_at_a_cut_with_no_snapshot_reads_the_stream_up_to_it(path: Path, engine: str) -> None:
    inv = Inventory.open(path, engine=engine, snapshot_every=10**9)
    assert (inv.get_count("the 'rope'", as_of=3), inv.get_count("the 'rope'", as_of=4)) == (3, 1)
