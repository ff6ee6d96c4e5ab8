"""What survives a power loss: an append's data files are on disk before a commit names them.

The order of an append's calls into the file system is recorded (``os.fsync`` of each file and
folder, ``os.replace``, Delta's commit): a commit file must never reach the disk while a data
file it adds, or that file's folder entry, could still be lost; and the commit file and the
log folder are synced before the caller is told the batch is committed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import urllib.parse
from pathlib import Path
from typing import Any

import pytest
from deltalake import DeltaTable
from support import added

import eventlog.store.datafiles as datafiles
from eventlog import EventLog
from eventlog.errors import CommitError

T0 = dt.datetime(2024, 3, 1, tzinfo=dt.timezone.utc)


def _path_of(fd: int) -> str:
    return os.readlink(f"/proc/self/fd/{fd}")


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, str]]:
    """(what, path) of every fsync, rename and Delta commit, in the order they happened."""
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to name the file of an fsync")
    seen: list[tuple[str, str]] = []
    real_fsync, real_replace = os.fsync, os.replace
    real_commit = DeltaTable.create_write_transaction

    def fsync(fd: int) -> None:
        seen.append(("fsync", _path_of(fd)))
        real_fsync(fd)

    def replace(src: Any, dst: Any, *args: Any, **kwargs: Any) -> None:
        real_replace(src, dst, *args, **kwargs)
        seen.append(("rename", str(dst)))

    def commit(self: DeltaTable, *args: Any, **kwargs: Any) -> None:
        seen.append(("commit", ""))
        real_commit(self, *args, **kwargs)
        seen.append(("committed", ""))

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "replace", replace)
    monkeypatch.setattr(DeltaTable, "create_write_transaction", commit)
    return seen


def _added_files(events: Path, version: int) -> list[Path]:
    lines = (events / "_delta_log" / f"{version:020d}.json").read_text().splitlines()
    return [events / json.loads(line)["add"]["path"] for line in lines if '"add"' in line]


def _batch() -> list[dict[str, Any]]:
    """Three business days, one of them new to the table: three files, one new partition folder."""
    return [added(f"item {i}", occurred_at=T0 + dt.timedelta(days=i % 3)) for i in range(6)]


def test_data_files_and_their_folders_are_synced_before_the_commit(empty_log: EventLog,
                                                                   calls: list[tuple[str, str]]) -> None:
    empty_log.append([added("first", occurred_at=T0)])
    calls.clear()
    result = empty_log.append(_batch())
    events = empty_log.path / "events"
    files = _added_files(events, result.version)
    assert len(files) == 3
    commit_at = calls.index(("commit", ""))
    before = calls[:commit_at]
    for file in files:
        assert ("fsync", str(file) + "#1") in before, f"{file.name} was not synced before the commit"
        assert ("rename", str(file)) in before
        synced_folder = before.index(("fsync", str(file.parent)))
        assert synced_folder > before.index(("rename", str(file))), "its folder was synced before the rename"
    assert ("fsync", str(events)) in before  # the new partition folder's entry
    after = calls[calls.index(("committed", "")):]
    commit_file = events / "_delta_log" / f"{result.version:020d}.json"
    assert ("fsync", str(commit_file)) in after
    assert after.index(("fsync", str(events / "_delta_log"))) > after.index(("fsync", str(commit_file)))


def test_a_failed_commit_removes_the_files_it_wrote(empty_log: EventLog, monkeypatch: pytest.MonkeyPatch) -> None:
    empty_log.append([added("first", occurred_at=T0)])
    events = empty_log.path / "events"
    before = {p for p in events.rglob("*.parquet*")}

    def refuse(self: DeltaTable, *args: Any, **kwargs: Any) -> None:
        assert {p for p in events.rglob("*.parquet")} > before  # the files are in place, synced
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(DeltaTable, "create_write_transaction", refuse)
    with pytest.raises(CommitError, match="nothing was committed"):
        empty_log.append(_batch())
    assert {p for p in events.rglob("*.parquet*")} == before
    assert EventLog.open(empty_log.path).head() == 1


def _removed_files(events: Path, version: int) -> list[Path]:
    lines = (events / "_delta_log" / f"{version:020d}.json").read_text().splitlines()
    return [events / json.loads(line)["remove"]["path"] for line in lines if '"remove"' in line]


@pytest.fixture
def fragmented(empty_log: EventLog) -> EventLog:
    """Four single-day appends over two days: two small files per day, merged into one each."""
    for i in range(4):
        empty_log.append([added(f"item {i}", occurred_at=T0 + dt.timedelta(days=i % 2))])
    return empty_log


def test_merged_files_and_their_folders_are_synced_before_the_compaction_commits(
    fragmented: EventLog, calls: list[tuple[str, str]]
) -> None:
    calls.clear()
    fragmented.compact()
    events = fragmented.path / "events"
    version = fragmented.version
    files, replaced = _added_files(events, version), _removed_files(events, version)
    assert (len(files), len(replaced)) == (2, 4)
    before = calls[:calls.index(("commit", ""))]
    for file in files:
        assert ("fsync", str(file) + "#1") in before, f"{file.name} was not synced before the commit"
        synced_folder = before.index(("fsync", str(file.parent)))
        assert synced_folder > before.index(("rename", str(file))), "its folder was synced before the rename"
    after = calls[calls.index(("committed", "")):]
    commit_file = events / "_delta_log" / f"{version:020d}.json"
    assert after.index(("fsync", str(events / "_delta_log"))) > after.index(("fsync", str(commit_file)))
    assert all(path.exists() for path in replaced)  # older versions still read them, until vacuum


def test_a_compaction_commit_is_marked_as_no_data_change(fragmented: EventLog) -> None:
    """A Delta reader following the log (streaming, change feed) must not take merged files for new rows."""
    fragmented.compact()
    lines = (fragmented.path / "events" / "_delta_log" / f"{fragmented.version:020d}.json").read_text().splitlines()
    actions = [json.loads(line) for line in lines]
    changes = [a[kind]["dataChange"] for a in actions for kind in ("add", "remove") if kind in a]
    assert len(changes) == 6 and not any(changes)
    assert next(a["commitInfo"] for a in actions if "commitInfo" in a)["eventlog.operation"] == "compact"


def test_a_failed_compaction_commit_removes_the_merged_files(fragmented: EventLog,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    events = fragmented.path / "events"
    before = {p for p in events.rglob("*.parquet*")}
    scan = fragmented.scan().collect()

    def refuse(self: DeltaTable, *args: Any, **kwargs: Any) -> None:
        assert len({p for p in events.rglob("*.parquet")} - before) == 2  # the merged files are in place
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(DeltaTable, "create_write_transaction", refuse)
    with pytest.raises(CommitError, match="nothing was committed"):
        fragmented.compact()
    assert {p for p in events.rglob("*.parquet*")} == before
    assert EventLog.open(fragmented.path).scan().collect().equals(scan)
@pytest.mark.parametrize("failure", [OSError(28, "No space left on device"), RuntimeError("a bug in building the rows")],
                         ids=["disk full", "any other error"])
def test_a_failure_in_a_later_file_removes_the_files_written_before_it(
        empty_log: EventLog, monkeypatch: pytest.MonkeyPatch, failure: Exception) -> None:
    """A batch is written a file at a time (each built from its rows as it is written): when the
    third fails, the first two are in place already, and are removed; nothing is committed."""
    empty_log.append([added("first", occurred_at=T0)])
    events = empty_log.path / "events"
    before = set(events.rglob("*.parquet*"))
    monkeypatch.setattr(datafiles, "ROWS_PER_FILE", 2)  # six rows of one day: three files
    real = datafiles.place_file
    started: list[int] = []

    def place(root: Path, day: dt.date, write: Any, **kwargs: Any) -> Any:
        started.append(1)
        if len(started) == 3:
            raise failure
        return real(root, day, write, **kwargs)

    monkeypatch.setattr(datafiles, "place_file", place)
    with pytest.raises(CommitError if isinstance(failure, OSError) else RuntimeError):
        empty_log.append([added(f"item {i}", occurred_at=T0) for i in range(6)])
    assert len(started) == 3
    assert set(events.rglob("*.parquet*")) == before
    reopened = EventLog.open(empty_log.path)
    assert reopened.head() == 1 and reopened.version == empty_log.version
    monkeypatch.undo()
    assert reopened.append([added(f"item {i}", occurred_at=T0) for i in range(6)]).last_seq == 7
    assert reopened.verify().ok


def test_projection_tables_sync_their_files_before_each_commit_and_the_commit_after(
    tmp_path: Path, calls: list[tuple[str, str]], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A build and an update of every projection table: each commit's new files and their folders are
    synced before the commit, its commit file and log folder after, before update_projections returns."""
    import threading

    from inventory_helpers import store

    import eventlog.store.tables as tables
    from eventlog import Inventory

    inventory = Inventory.open(store(tmp_path))
    def item(name: str, day: int) -> dict[str, Any]:
        return {"event_type": "item_added", "item": name, "quantity": 2, "occurred_at": T0 + dt.timedelta(days=day)}

    inventory.record([item(f"item {i}", 20 * i) for i in range(4)])
    real, lock = tables.commit_actions, threading.Lock()

    def commit(target: Any, *args: Any, **kwargs: Any) -> None:  # tables commit on several threads
        folder = urllib.parse.unquote(target.table_uri.removeprefix("file://")) if isinstance(target, DeltaTable) else target
        with lock:
            calls.append(("commit", os.path.realpath(folder)))
        real(target, *args, **kwargs)
        with lock:
            calls.append(("committed", os.path.realpath(folder)))

    monkeypatch.setattr(tables, "commit_actions", commit)
    for rebuild in (True, False):
        calls.clear()
        if not rebuild:
            inventory.record([item("late", 70), item("item 0", 71)])
        inventory.update_projections(rebuild=rebuild)
        seen = list(calls)
        committed = [path for what, path in seen if what == "committed" and path]  # "": the events' own commits
        assert committed, "no projection table was committed"
        for folder in map(Path, committed):
            version = DeltaTable(str(folder)).version()
            lines = (folder / "_delta_log" / f"{version:020d}.json").read_text().splitlines()
            files = [folder / json.loads(line)["add"]["path"] for line in lines if '"add"' in line]
            commit_at, done_at = seen.index(("commit", str(folder))), seen.index(("committed", str(folder)))
            for file in files:
                assert ("fsync", f"{file}#1") in seen[:commit_at] or ("fsync", str(file)) in seen[:commit_at], file
                assert ("fsync", str(file.parent)) in seen[:commit_at], file.parent
            after = seen[done_at:]
            assert ("fsync", str(folder / "_delta_log" / f"{version:020d}.json")) in after, folder
            assert ("fsync", str(folder / "_delta_log")) in after, folder
