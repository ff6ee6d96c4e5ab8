"""Snapshots: the state at a seq, kept on disk so reads replay only the tail; never trusted blindly.

Which base a read started from is observed by recording the ``after`` argument of every
fold the inventory runs (the fold replays events with after < seq <= cut). Every test runs
on every local engine: the store is written and read on the engine under test.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import warnings
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
import reference
from inventory_helpers import AWKWARD_ITEMS, events_of, store

from eventlog import Inventory, SnapshotWarning
from eventlog.engines import LOCAL_ENGINES
from eventlog.engines._duckdb import DuckDBEngine
from eventlog.engines._polars import PolarsEngine
from eventlog.engines.base import EventSlice
from eventlog.model.state import STATE_SCHEMA, STATE_VERSION
from eventlog.store.snapshots import SnapshotStore

UTC = dt.timezone.utc
T = dt.datetime(2024, 6, 1, tzinfo=UTC)


@pytest.fixture
def folds(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """The ``after`` of every fold of the log the inventory runs (on any engine), in call order."""
    calls: list[int] = []
    for engine in (DuckDBEngine, PolarsEngine):
        real = engine.fold

        def recording(self, definition, events, real=real):  # type: ignore[no-untyped-def]
            if isinstance(events, EventSlice):
                calls.append(events.after)
            return real(self, definition, events)

        monkeypatch.setattr(engine, "fold", recording)
    return calls


def _batch(n: int, *, start: int = 0) -> list[dict]:
    """n additions spread over the awkward names, one per hour of business time."""
    return [
        {"event_type": "item_added", "item": AWKWARD_ITEMS[(start + i) % len(AWKWARD_ITEMS)], "quantity": i % 3 + 1,
         "origin": f"o{i % 2}", "occurred_at": T + dt.timedelta(hours=start + i)}
        for i in range(n)
    ]


def _build(p: Path, engine: str) -> Path:
    """A store with 10 events, a snapshot at seq 4 and one at seq 8."""
    inv = Inventory.open(p, engine=engine)
    inv.record(_batch(4))
    inv.snapshot()
    inv.record(_batch(4, start=4))
    inv.snapshot()
    inv.record(_batch(2, start=8))
    return p


@pytest.fixture
def path(tmp_path: Path, engine: str) -> Path:
    """A store with 10 events, a snapshot at seq 4 and one at seq 8, written on the engine under test."""
    return _build(store(tmp_path), engine)


Fresh = Callable[..., Inventory]


@pytest.fixture
def fresh(engine: str) -> Fresh:
    """``fresh(path, **options)``: a new Inventory object on the engine under test, nothing cached
    in memory, like another process."""

    def open_fresh(path: Path, **options: int) -> Inventory:
        return Inventory.open(path, engine=engine, **options)

    return open_fresh


def _snapshot_store(path: Path, state_version: int = STATE_VERSION) -> SnapshotStore:
    return SnapshotStore(path / "snapshots", state_version=state_version)


def _seqs(path: Path) -> list[int]:
    return [s.seq for s in _snapshot_store(path).list()]


# --- writing -------------------------------------------------------------------------------


def test_snapshot_writes_a_manifest_describing_the_file(path: Path, fresh: Fresh) -> None:
    inv = fresh(path)
    info = inv.snapshot()
    manifest = json.loads((path / "snapshots" / f"{Path(info.file).stem}.json").read_text())
    assert manifest["seq"] == 10 == inv.log.head()
    assert manifest["delta_version"] == inv.log.version
    assert manifest["rows"] == len(reference.state(events_of(inv))) == pl.read_parquet(path / "snapshots" / info.file).height
    assert manifest["state_version"] == STATE_VERSION
    assert len(manifest["sha256"]) == 64


def test_snapshot_file_holds_the_full_state_at_its_seq(path: Path, fresh: Fresh) -> None:
    info = _snapshot_store(path).list()[0]
    stored = pl.read_parquet(path / "snapshots" / info.file)
    rows = stored.filter(pl.col("quantity") > 0).select(list(STATE_SCHEMA)).sort("item").rows()
    assert info.seq == 4
    assert rows == reference.stock(events_of(fresh(path)), seq=4)


def test_snapshot_at_head_twice_returns_the_existing_one(path: Path, fresh: Fresh) -> None:
    inv = fresh(path)
    first = inv.snapshot()
    assert inv.snapshot() == first
    assert _seqs(path) == [4, 8, 10]


# --- reading -------------------------------------------------------------------------------


def test_a_read_starts_from_the_newest_snapshot(path: Path, fresh: Fresh, folds: list[int]) -> None:
    inv = fresh(path)
    assert inv.stock().rows() == reference.stock(events_of(inv))
    assert folds == [8]


def test_a_seq_cut_starts_from_the_newest_snapshot_at_or_below_it(
    path: Path, fresh: Fresh, folds: list[int]
) -> None:
    inv = fresh(path)
    assert inv.stock(as_of=7).rows() == reference.stock(events_of(inv), seq=7)
    assert inv.stock(as_of=8).rows() == reference.stock(events_of(inv), seq=8)
    assert folds == [4, 8]


def test_a_business_cut_uses_only_snapshots_whose_events_all_happened_by_then(
    path: Path, fresh: Fresh, folds: list[int]
) -> None:
    inv = fresh(path)
    before_seq_8 = T + dt.timedelta(hours=6, minutes=30)  # after seq 1..7, before seq 8
    assert inv.stock(as_of=before_seq_8).rows() == reference.stock(events_of(inv), business=before_seq_8)
    assert folds == [4]


@pytest.mark.parametrize("writer", LOCAL_ENGINES)
def test_a_snapshot_written_on_any_engine_serves_every_engine(
    tmp_path: Path, writer: str, fresh: Fresh, folds: list[int]
) -> None:
    p = _build(store(tmp_path), writer)
    folds.clear()
    inv = fresh(p)
    assert inv.stock().rows() == reference.stock(events_of(inv))
    assert inv.stock(as_of=7).rows() == reference.stock(events_of(inv), seq=7)
    assert folds == [8, 4]


def test_a_read_that_folds_snapshot_every_events_writes_no_snapshot(path: Path, fresh: Fresh) -> None:
    fresh(path, snapshot_every=2).stock()  # folds seq 9 and 10 onto the seq-8 snapshot
    assert _seqs(path) == [4, 8]


def test_a_read_that_folds_more_than_snapshot_every_events_writes_a_snapshot(path: Path, fresh: Fresh) -> None:
    fresh(path, snapshot_every=1).stock()
    assert _seqs(path) == [4, 8, 10]


def test_events_folded_onto_a_state_in_memory_count_from_that_state(path: Path, fresh: Fresh) -> None:
    inv = fresh(path, snapshot_every=5)
    inv.stock()  # folds 9..10 onto the seq-8 snapshot: 2 events, no new snapshot
    inv.record(_batch(1, start=10))
    inv.stock()  # seq 11, from the state the append left in memory
    assert _seqs(path) == [4, 8]
    inv.record(_batch(3, start=11))  # seq 14 is 6 events past the newest snapshot (8)
    assert _seqs(path) == [4, 8, 14]


def test_a_long_running_writer_leaves_snapshots_for_the_next_process(path: Path, fresh: Fresh) -> None:
    writer = fresh(path, snapshot_every=2)
    for start in range(10, 16):
        writer.record(_batch(1, start=start))  # never folds from disk: each state is in memory
    assert max(_seqs(path)) >= 13


def test_business_time_reads_write_no_snapshot(path: Path, fresh: Fresh) -> None:
    fresh(path, snapshot_every=0).stock(as_of=T + dt.timedelta(days=30))
    assert _seqs(path) == [4, 8]


def test_prune_keeps_the_newest_few_and_a_ladder_of_ever_wider_gaps(tmp_path: Path, fresh: Fresh) -> None:
    p = store(tmp_path)
    inv = fresh(p, snapshot_every=0, keep_snapshots=100)
    inv.record(_batch(20))
    for seq in range(1, 21):
        inv.stock(as_of=seq)
    assert _seqs(p) == list(range(1, 21))
    removed = fresh(p, keep_snapshots=3).prune_snapshots()
    kept = _seqs(p)
    assert kept == [4, 12, 16, 18, 19, 20]
    assert sorted(s.seq for s in removed) == sorted(set(range(1, 21)) - set(kept))
    older_gaps = [b - a for a, b in zip(kept, kept[1:], strict=False)][::-1][2:]  # past the newest three
    assert all(later >= 2 * earlier for earlier, later in zip(older_gaps, older_gaps[1:], strict=False))


def test_prune_removes_snapshots_of_other_state_versions(path: Path, fresh: Fresh) -> None:
    state = pl.read_parquet(path / "snapshots" / _snapshot_store(path).list()[0].file)
    _snapshot_store(path, STATE_VERSION + 1).write(state, seq=4, delta_version=1)
    fresh(path).prune_snapshots()
    assert {s.state_version for s in _snapshot_store(path).list(all_versions=True)} == {STATE_VERSION}


# --- snapshots that must not be used -------------------------------------------------------


def _flip_bytes(file: Path) -> None:
    data = bytearray(file.read_bytes())
    middle = len(data) // 2
    data[middle : middle + 4] = bytes(b ^ 0xFF for b in data[middle : middle + 4])
    file.write_bytes(bytes(data))


def _truncate(file: Path) -> None:
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


def _delete(file: Path) -> None:
    file.unlink()


@pytest.mark.parametrize("damage", [_flip_bytes, _truncate, _delete], ids=["flipped", "truncated", "deleted"])
def test_a_damaged_snapshot_warns_and_the_read_is_still_right(  # type: ignore[no-untyped-def]
    path: Path, fresh: Fresh, damage, folds: list[int]
) -> None:
    damage(path / "snapshots" / _snapshot_store(path).list()[-1].file)
    inv = fresh(path)
    with pytest.warns(SnapshotWarning, match="seq000000000000008"):
        rows = inv.stock().rows()
    assert rows == reference.stock(events_of(inv))
    assert folds == [4]  # fell back to the older, intact snapshot


@pytest.mark.parametrize("damage", [_flip_bytes, _truncate, _delete], ids=["flipped", "truncated", "deleted"])
def test_a_damaged_snapshot_is_replaced_by_a_new_one(  # type: ignore[no-untyped-def]
    path: Path, fresh: Fresh, damage, folds: list[int]
) -> None:
    damage(path / "snapshots" / _snapshot_store(path).list()[-1].file)
    with pytest.warns(SnapshotWarning):
        fresh(path).stock()
    assert _seqs(path) == [4, 10]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        inv = fresh(path)
        assert inv.stock().rows() == reference.stock(events_of(inv))
    assert folds[-1] == 10


def test_a_damaged_snapshot_is_never_used_for_an_older_cut_either(path: Path, fresh: Fresh) -> None:
    _flip_bytes(path / "snapshots" / _snapshot_store(path).list()[0].file)
    inv = fresh(path)
    with pytest.warns(SnapshotWarning):
        assert inv.stock(as_of=5).rows() == reference.stock(events_of(inv), seq=5)


def test_an_unreadable_manifest_warns_and_is_ignored(path: Path, fresh: Fresh, folds: list[int]) -> None:
    manifest = sorted((path / "snapshots").glob("*.json"))[-1]
    manifest.write_text(manifest.read_text()[:20])
    inv = fresh(path)
    with pytest.warns(SnapshotWarning, match="manifest"):
        assert inv.stock().rows() == reference.stock(events_of(inv))
    assert folds == [4]


def test_a_snapshot_of_another_state_version_is_ignored(path: Path, fresh: Fresh, folds: list[int]) -> None:
    wrong = pl.read_parquet(path / "snapshots" / _snapshot_store(path).list()[-1].file).with_columns(quantity=pl.lit(999))
    _snapshot_store(path, STATE_VERSION - 1).write(wrong, seq=10, delta_version=3)
    inv = fresh(path)
    assert inv.stock().rows() == reference.stock(events_of(inv))
    assert folds == [8]


# --- the in-process cache ------------------------------------------------------------------


def test_a_repeated_read_does_not_fold_again(path: Path, fresh: Fresh, folds: list[int]) -> None:
    inv = fresh(path)
    first = inv.stock()
    assert inv.stock().equals(first)
    assert inv.get_count(AWKWARD_ITEMS[0]) == first.filter(pl.col("item") == AWKWARD_ITEMS[0])["quantity"].item()
    assert folds == [8]


def test_a_read_sees_an_event_appended_by_another_inventory_object(
    path: Path, fresh: Fresh, folds: list[int]
) -> None:
    first = fresh(path)
    before = first.get_count("late arrival")
    fresh(path).add_item("late arrival", 2)
    assert (before, first.get_count("late arrival")) == (0, 2)
    assert folds[-1] == 10  # only the new event was folded, onto the state held in memory


def test_a_cached_state_is_used_as_the_base_for_a_later_cut(path: Path, fresh: Fresh, folds: list[int]) -> None:
    inv = fresh(path)
    inv.stock(as_of=9)
    inv.stock(as_of=10)
    assert folds == [8, 9]


def test_retention_that_would_keep_no_snapshot_is_refused(path: Path, fresh: Fresh) -> None:
    with pytest.raises(ValueError, match="keep_snapshots"):
        fresh(path, keep_snapshots=0)


def test_a_snapshot_that_cannot_be_written_does_not_fail_the_read(path: Path, fresh: Fresh) -> None:
    """Snapshots only save time: a store whose snapshot folder cannot be written (read-only, full) still answers."""
    shutil.rmtree(path / "snapshots")
    (path / "snapshots").write_text("not a folder")  # any write under it fails
    inv = fresh(path, snapshot_every=0)
    with pytest.warns(SnapshotWarning, match="could not write"):
        assert inv.stock().rows() == reference.stock(events_of(inv))


def test_a_snapshot_that_cannot_be_written_does_not_fail_a_write(path: Path, fresh: Fresh) -> None:
    shutil.rmtree(path / "snapshots")
    (path / "snapshots").write_text("not a folder")
    inv = fresh(path, snapshot_every=0)
    with pytest.warns(SnapshotWarning, match="could not write"):
        inv.remove_item(AWKWARD_ITEMS[0])  # the stock check folds the log and tries to keep a snapshot
    assert inv.log.head() == 11


def test_an_explicit_snapshot_that_cannot_be_written_is_an_error(tmp_path: Path, fresh: Fresh) -> None:
    from eventlog.errors import SnapshotError

    p = store(tmp_path)
    inv = fresh(p)
    inv.add_item("sword")
    (p / "snapshots").write_text("not a folder")
    with pytest.raises(SnapshotError, match="could not write"):
        inv.snapshot()
