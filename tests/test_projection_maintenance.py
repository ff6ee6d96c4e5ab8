"""Compaction and vacuum of projection tables follow the log's policy (docs/retention.md).

``Inventory.compact()`` merges the small files updates leave in every projection table and
changes no answer; ``Inventory.vacuum(retention_hours=R)`` deletes only files no version
younger than R hours needs, so the current tables (Python and SQL) read the same, older
builds stay readable within the retention and fail with a typed error after it.
"""

from __future__ import annotations

import datetime as dt
import json
import signal
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from deltalake import DeltaTable
from inventory_helpers import AWKWARD_ITEMS, T0, store

from eventlog import Inventory
from eventlog.errors import StorageError
from eventlog.sql import query

NAMES = ["most_collected_items", "item_origins", "daily_flows", "daily_stock", "stockouts", "top_movers"]


@pytest.fixture
def updated(tmp_path: Path) -> Inventory:
    """Projections built, then updated three times: every table has several versions, and the keyed
    ones a small file per update (each round's items are new keys: Delta's MERGE adds a file for them)."""
    inventory = Inventory.open(store(tmp_path))
    for round_ in range(4):
        inventory.record([
            {"event_type": "item_added", "item": AWKWARD_ITEMS[round_], "quantity": 2 + i,
             "origin": "cave", "occurred_at": T0 + dt.timedelta(days=20 * round_ + i)}
            for i in range(3)
        ])
        inventory.update_projections()
    return inventory


def _answers(inventory: Inventory) -> dict[str, tuple[list[tuple], list[tuple]]]:
    """Every projection as Python reads it and as SQL shows it."""
    return {name: (inventory.projection(name).read().rows(),
                   query(inventory, f"SELECT * FROM {name}").rows()) for name in NAMES}


def _files(inventory: Inventory, name: str) -> set[Path]:
    return set(inventory.projector.tables.folder(name).rglob("*.parquet"))


def test_compact_merges_the_files_of_every_table_and_changes_no_answer(updated: Inventory) -> None:
    before = _answers(updated)
    builds = {name: updated.projection(name).status() for name in NAMES}
    keyed = DeltaTable(str(updated.projector.tables.folder("most_collected_items")))
    files_before = len(keyed.file_uris())
    report = updated.compact()["projections"]
    assert set(report) == set(NAMES)
    keyed.update_incremental()
    assert keyed.history(1)[0]["eventlog.operation"] == "compact"
    assert len(keyed.file_uris()) == 1 < files_before
    assert _answers(Inventory.open(updated.path)) == before
    for name in NAMES:  # the build's bookkeeping is the same: compaction is no build
        assert Inventory.open(updated.path).projection(name).status().checkpoint == builds[name].checkpoint


def test_updates_after_compaction_and_vacuum_still_merge_only_the_tail(updated: Inventory) -> None:
    updated.compact()
    updated.vacuum(retention_hours=0)
    updated.add_item("new ✓", 3, occurred_at=T0 + dt.timedelta(days=70))
    updated.update_projections()
    tables = updated.projector.tables
    for name in ("most_collected_items", "daily_flows"):
        assert not tables.manifest(name).full_build  # type: ignore[union-attr]
    incremental = {name: Inventory.open(updated.path).projection(name).read() for name in NAMES}
    updated.update_projections(rebuild=True)
    for name in NAMES:
        assert updated.projection(name).read().equals(incremental[name]), name


def test_vacuum_within_the_retention_deletes_nothing_an_older_build_reads(updated: Inventory) -> None:
    first = 0  # the first build of every table
    old = {name: updated.projection(name).read(version=first) for name in NAMES}
    updated.compact()
    assert updated.vacuum()["projections"] == {name: [] for name in NAMES}  # 168 h: all files are younger
    for name in NAMES:
        assert updated.projection(name).read(version=first).equals(old[name]), name


def test_vacuum_past_the_retention_keeps_the_current_tables_and_drops_older_builds(updated: Inventory) -> None:
    before = _answers(updated)
    updated.compact()
    planned = updated.vacuum(retention_hours=0, dry_run=True)["projections"]
    assert all(planned[name] for name in NAMES if name != "stockouts")  # no stockout: no file ever
    on_disk = {name: _files(updated, name) for name in NAMES}
    updated.vacuum(retention_hours=0)
    for name in NAMES:
        folder = updated.projector.tables.folder(name)
        assert {folder / f for f in planned[name]} == on_disk[name] - _files(updated, name), name
    assert _answers(Inventory.open(updated.path)) == before
    assert Inventory.open(updated.path).verify().ok
    with pytest.raises(StorageError, match="daily_stock"):
        updated.projection("daily_stock").read(version=0)


def test_a_dry_run_vacuum_deletes_nothing(updated: Inventory) -> None:
    updated.compact()
    on_disk = {name: _files(updated, name) for name in NAMES}
    updated.vacuum(retention_hours=0, dry_run=True)
    assert {name: _files(updated, name) for name in NAMES} == on_disk


def test_maintenance_of_a_store_without_projection_tables_does_nothing_to_them(tmp_path: Path) -> None:
    inventory = Inventory.open(store(tmp_path))
    inventory.add_item("sword")
    assert inventory.compact()["projections"] == {}
    assert inventory.vacuum(retention_hours=0)["projections"] == {}
    assert pl.DataFrame(inventory.projection("daily_stock").read()).height == 1


FULL_DISK_CHILD = r"""
import resource, signal, sys
from eventlog import Inventory
from eventlog.errors import StorageError
inventory = Inventory.open(sys.argv[1])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (1024, resource.RLIM_INFINITY))
try:
    inventory.projector.compact()
    print("compacted", flush=True)
except StorageError as exc:
    print("refused", "nothing was committed" in str(exc), "projection" in str(exc), flush=True)
"""


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs RLIMIT_FSIZE")
def test_a_table_compaction_on_a_full_disk_is_a_storage_error_with_nothing_on_stderr_and_nothing_left(
    updated: Inventory,
) -> None:
    before = _answers(updated)
    on_disk = {name: _files(updated, name) for name in NAMES}
    child = subprocess.run([sys.executable, "-c", FULL_DISK_CHILD, str(updated.path)], capture_output=True,
                           text=True, check=False, timeout=120)
    assert child.stdout.splitlines() == ["refused True True"], (child.stdout, child.stderr)
    assert child.stderr == ""  # deltalake's optimize printed Rust panic traces here
    assert {name: _files(updated, name) for name in NAMES} == on_disk
    assert {p.name for p in updated.path.rglob("*#1")} == set()
    assert _answers(Inventory.open(updated.path)) == before
    report = Inventory.open(updated.path).compact()["projections"]  # with room on the disk
    assert report["most_collected_items"]["numFilesRemoved"] > 1
    assert _answers(Inventory.open(updated.path)) == before
    assert Inventory.open(updated.path).verify().ok


FULL_DISK_UPDATE_CHILD = r"""
import resource, signal, sys
from eventlog import Inventory
from eventlog.errors import StorageError
inventory = Inventory.open(sys.argv[1])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (1024, resource.RLIM_INFINITY))
try:
    inventory.update_projections(rebuild=sys.argv[2] == "rebuild")
    print("updated", flush=True)
except StorageError as exc:
    named = any(f"projection {name!r}" in str(exc) for name in inventory.projector.registry)
    print("refused", named, "nothing was committed" in str(exc), flush=True)
"""


def _stored(inventory: Inventory) -> dict[str, tuple[int, list[tuple]]]:
    """Every table's newest build as stored (reading through ``projection()`` would catch it up first)."""
    tables = inventory.projector.tables
    return {name: (m.checkpoint, tables.read(name, m).rows())
            for name in NAMES if (m := tables.manifest(name)) is not None}


def _log_files(inventory: Inventory) -> set[Path]:
    return set(inventory.projector.tables.root.rglob("_delta_log/*"))


def _added(inventory: Inventory, name: str) -> set[str]:
    """The file names every commit in the table's log added."""
    names = set()
    for commit in (inventory.projector.tables.folder(name) / "_delta_log").glob("*.json"):
        for line in commit.read_text().splitlines():
            if (add := json.loads(line).get("add")) is not None:
                names.add(Path(add["path"]).name)
    return names


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs RLIMIT_FSIZE")
@pytest.mark.parametrize("how", ["rebuild", "update"])
def test_a_projection_update_on_a_full_disk_is_a_storage_error_with_nothing_on_stderr_and_nothing_left(
    updated: Inventory, how: str,
) -> None:
    updated.record([{"event_type": "item_added", "item": AWKWARD_ITEMS[5], "quantity": 4, "origin": "mine",
                     "occurred_at": T0 + dt.timedelta(days=61)},
                    {"event_type": "item_removed", "item": AWKWARD_ITEMS[0], "quantity": 1,
                     "occurred_at": T0 + dt.timedelta(days=62)}])  # every table has rows to write
    built = {name: updated.projector.tables.manifest(name).checkpoint for name in NAMES}  # type: ignore[union-attr]
    before = _stored(Inventory.open(updated.path))
    on_disk = {name: _files(updated, name) for name in NAMES}
    log = _log_files(updated)
    child = subprocess.run([sys.executable, "-c", FULL_DISK_UPDATE_CHILD, str(updated.path), how],
                           capture_output=True, text=True, check=False, timeout=180)
    assert child.stdout.splitlines() == ["refused True True"], (child.stdout, child.stderr)
    assert child.stderr == ""  # deltalake's writer and MERGE printed Rust panic traces here
    # Tables commit on several threads: one under way when another failed may have finished. Each
    # table is whole at its old version (files and log as they were) or at its new one (every file
    # on disk is one its log added), and at least the table that failed did not move.
    stored, moved = _stored(Inventory.open(updated.path)), set()
    for name in NAMES:
        if {p for p in log if p.parent.parent.name == name} == {p for p in _log_files(updated)
                                                                 if p.parent.parent.name == name}:
            assert _files(updated, name) == on_disk[name], name
            assert stored[name] == before[name], name
        else:
            moved.add(name)
            assert {p.name for p in _files(updated, name)} <= _added(updated, name), name
    assert moved < set(NAMES)
    assert {p.name for p in updated.path.rglob("*#1")} == set()
    assert not [p for p in updated.path.rglob("*") if p.name.startswith(".tmp")]  # the old writer's leftovers
    with_room = Inventory.open(updated.path)
    with_room.update_projections(rebuild=how == "rebuild")  # with room on the disk
    after = _answers(Inventory.open(updated.path))
    moved = {name: Inventory.open(updated.path).projection(name).status().checkpoint for name in NAMES}
    assert all(moved[name] > built[name] for name in NAMES), (built, moved)  # the tail is in every table now
    Inventory.open(updated.path).update_projections(rebuild=True)
    assert _answers(Inventory.open(updated.path)) == after
    assert Inventory.open(updated.path).verify().ok
