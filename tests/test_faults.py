"""Fault injection: a failure at any step of a write loses nothing committed and shows nothing partial.

For append, snapshot, projection materialisation, compact and vacuum, the call each step makes
into the file system is made to fail with an ``OSError``: our own steps (``tempfile.mkstemp``,
``DataFrame.write_parquet``, ``os.fsync``, ``os.replace``, the manifest write, ``Path.unlink``)
and deltalake's, whose own I/O happens in Rust and is reached through its Python wrapper
(failing before the call, or after it returned: the commit made, then an error). A few faults
are real ones from the file system, with no patching at all. The slow tests SIGKILL a process
doing the operation in a loop, at chosen steps and at random moments.

After every failure: the caller gets an ``OSError`` or a typed eventlog error (each case says
which); a fresh reader sees exactly the committed state from before, or exactly one whole
result more when the failure came after the commit point (each case says which); a reader
opened before gives the same answers; the next operation succeeds; ``verify`` passes.

Appends killed mid-write are covered by ``test_crash.py`` and projection builders killed
mid-build by ``test_projection_crash.py``; the kill tests here add snapshots, compact, vacuum,
and what those files do not check after a killed builder (verify, the next append, old readers).
"""

from __future__ import annotations

import datetime as dt
import errno
import json
import os
import pathlib
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow.parquet as pq
import pytest
import reference
from deltalake import DeltaTable
from inventory_helpers import AWKWARD_ITEMS, T0, events_of, store

import eventlog.projector
import eventlog.store.delta
import eventlog.store.tables
from eventlog import Inventory, SnapshotWarning
from eventlog.model.state import STATE, STATE_VERSION, empty_state
from eventlog.errors import CommitError, EventLogError, SnapshotError
from eventlog.store.snapshots import SnapshotStore

# --- the store every fault starts from ---------------------------------------------------------


def _batch(k: int, n: int = 4) -> list[dict[str, Any]]:
    """n additions over three business days, so a batch writes to several partitions."""
    return [
        {"event_type": "item_added", "item": AWKWARD_ITEMS[(k + i) % len(AWKWARD_ITEMS)], "quantity": 3,
         "origin": f"o{i % 2}", "occurred_at": T0 + dt.timedelta(days=k + i % 3, hours=i)}
        for i in range(n)
    ]


#: The batch the append operation records: a new item on a new day, and a removal on a day the log has.
NEW_BATCH = [
    {"event_type": "item_added", "item": "new ✓ 'item'; --", "quantity": 2, "occurred_at": T0 + dt.timedelta(days=30)},
    {"event_type": "item_removed", "item": AWKWARD_ITEMS[0], "quantity": 1, "occurred_at": T0 + dt.timedelta(days=8)},
]
LEFTOVER = "occurred_on=2024-01-01/part-00000-killed-writer-c000.zstd.parquet#1"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store where every operation has work at every step.

    Snapshots: one current, plus one of an older state definition that prune removes.
    Projections: two generations of tables, built behind the head. Events: files that
    compaction replaced (vacuum deletes them), small files since (compaction merges them),
    and a half-written data file of a killed writer (vacuum deletes it).
    """
    path = store(tmp_path_factory.mktemp("template"))
    inventory = Inventory.open(path)
    for k in range(4):
        inventory.record(_batch(k))
    inventory.update_projections()
    inventory.snapshot()
    inventory.log.compact()
    inventory.record(_batch(4))
    inventory.update_projections()
    inventory.record(_batch(5))
    inventory.record(_batch(6))
    SnapshotStore(path / "snapshots", state_version=STATE_VERSION - 1).write(empty_state(), seq=1, delta_version=1)
    leftover = path / "events" / LEFTOVER
    leftover.write_bytes(b"PAR1 half a file")
    os.utime(leftover, (time.time() - 86_400,) * 2)
    return path


@pytest.fixture
def path(template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(template, tmp_path / template.name))


# --- operations and their faults ---------------------------------------------------------------

OPERATIONS: dict[str, Callable[[Inventory], object]] = {
    "append": lambda inv: inv.record(NEW_BATCH),
    "snapshot": lambda inv: inv.snapshot(),
    "projections": lambda inv: inv.update_projections(),
    "compact": lambda inv: inv.log.compact(),
    "vacuum": lambda inv: inv.log.vacuum(retention_hours=0),
}

#: Where each step's call can be made to fail: (owner, attribute).
SEAMS: dict[str, tuple[Any, str]] = {
    "mkstemp": (tempfile, "mkstemp"),
    "write_parquet": (pl.DataFrame, "write_parquet"),
    "fsync": (os, "fsync"),
    "replace": (os, "replace"),
    "json.dump": (json, "dump"),
    "unlink": (pathlib.Path, "unlink"),
    "refresh": (DeltaTable, "update_incremental"),
    "history": (DeltaTable, "history"),
    "write_table": (pq, "write_table"),
    "commit": (DeltaTable, "create_write_transaction"),
    "tables.commit_actions": (eventlog.store.tables, "commit_actions"),
    "merged.write_table": (pq.ParquetWriter, "write_table"),
    "vacuum": (DeltaTable, "vacuum"),
}


@dataclass(frozen=True)
class Fault:
    """The ``call``-th call of ``seam`` during ``op`` raises an OSError (after making the call, if ``after``).

    ``done`` is how many of the operation's commits were made when it failed (a projection
    update commits once per table); ``raises`` is what the caller sees (None: nothing), ``warns``
    a warning it sees instead.
    """

    op: str
    seam: str
    call: int = 1
    after: bool = False
    done: int = 0
    raises: type[BaseException] | None = OSError
    step: str = ""
    warns: type[Warning] | None = None
    #: What the seam raises: an OSError, or what polars raises for the same failure (a full disk).
    error: type[Exception] = OSError

    def __str__(self) -> str:
        return f"{self.op}: {self.step or self.seam} ({self.seam}#{self.call}{' after' if self.after else ''})"


FAULTS = [
    # append = catch up under the lock, read the chain tip, write each data file (NEW_BATCH: two) under a
    # staged name, fsync it, rename it into place, fsync the folders; then commit, fsync the commit file
    # and the log folder. A sync failing after the commit: committed, reported as not durable.
    Fault("append", "refresh", step="catch up with the table under the lock"),
    Fault("append", "history", step="read the previous commit's hash"),
    Fault("append", "write_table", raises=CommitError, step="write a data file"),
    Fault("append", "fsync", raises=CommitError, step="fsync a data file"),
    Fault("append", "replace", raises=CommitError, step="rename a data file into place"),
    Fault("append", "fsync", call=3, raises=CommitError, step="fsync a data file's folder"),
    Fault("append", "commit", raises=CommitError, step="commit the synced data files"),
    Fault("append", "commit", after=True, done=1, raises=None, step="after the commit (post-commit hooks)"),
    Fault("append", "fsync", call=6, done=1, raises=CommitError, step="fsync the commit file"),
    # snapshot = data to a temp file, fsync, rename, fsync the folder; manifest the same (its rename is the
    # commit); prune. A folder fsync failing after the manifest's rename: committed, reported as not durable.
    Fault("snapshot", "mkstemp", raises=SnapshotError, step="create the temp data file"),
    Fault("snapshot", "write_parquet", raises=SnapshotError, step="write the data"),
    Fault("snapshot", "write_parquet", raises=SnapshotError, error=pl.exceptions.ComputeError,
          step="write the data, polars reporting a full disk"),
    Fault("snapshot", "fsync", raises=SnapshotError, step="fsync the data"),
    Fault("snapshot", "replace", raises=SnapshotError, step="rename the data into place"),
    Fault("snapshot", "fsync", call=2, raises=SnapshotError, step="fsync the folder after placing the data"),
    Fault("snapshot", "mkstemp", call=2, raises=SnapshotError, step="create the temp manifest"),
    Fault("snapshot", "json.dump", raises=SnapshotError, step="write the manifest"),
    Fault("snapshot", "fsync", call=3, raises=SnapshotError, step="fsync the manifest"),
    Fault("snapshot", "replace", call=2, raises=SnapshotError, step="rename the manifest into place"),
    Fault("snapshot", "fsync", call=4, done=1, raises=SnapshotError, step="fsync the folder after the commit"),
    Fault("snapshot", "unlink", done=1, raises=None, warns=SnapshotWarning,
          step="prune old snapshots, the new one committed"),
    # projections: one Delta commit per table, its files written and synced by eventlog first. The update
    # of the built-ins rewrites the files holding the touched keys of the first two tables (copy-on-write),
    # replaces the tail's months of the two daily ones and rewrites the two function tables; each commit
    # is all or nothing, and a table's files written before a failed commit are removed.
    Fault("projections", "write_table", step="write the first table's new file"),
    Fault("projections", "fsync", step="fsync the first table's new file"),
    Fault("projections", "tables.commit_actions", step="commit the touched keys of the first table"),
    Fault("projections", "tables.commit_actions", after=True, done=1, step="after the first table's commit"),
    Fault("projections", "tables.commit_actions", call=2, done=1, step="commit the second table, the first committed"),
    Fault("projections", "tables.commit_actions", call=3, done=2, step="replace the months of the first daily table"),
    Fault("projections", "tables.commit_actions", call=5, done=4, step="rewrite the first function table"),
    # compact = each day's merged file (the template: four) written under a staged name, fsynced, renamed
    # into place, the four folders fsynced; then one commit of adds and removes, the commit file and the
    # log folder fsynced. Events never change; a failure before the commit leaves no file (see below).
    Fault("compact", "merged.write_table", raises=CommitError, step="write a merged file"),
    Fault("compact", "fsync", raises=CommitError, step="fsync a merged file"),
    Fault("compact", "replace", raises=CommitError, step="rename a merged file into place"),
    Fault("compact", "fsync", call=5, raises=CommitError, step="fsync a merged file's folder"),
    Fault("compact", "commit", raises=CommitError, step="commit the merged files and the removes"),
    Fault("compact", "commit", after=True, done=1, raises=CommitError, step="after the commit (post-commit hooks)"),
    Fault("compact", "fsync", call=9, done=1, raises=CommitError, step="fsync the commit file"),
    # vacuum is one Rust call (deletes, commit, checkpoint hook inside).
    Fault("vacuum", "vacuum", raises=CommitError, step="delete files and commit"),
    Fault("vacuum", "vacuum", after=True, done=1, raises=CommitError, step="after the commit"),
    Fault("vacuum", "unlink", done=1, step="delete a killed writer's half-written file, Delta's vacuum done"),
]


@contextmanager
def failing(fault: Fault) -> Iterator[list[Fault]]:
    """Inject ``fault`` for the duration of the block; the list it gives is non-empty once it fired."""
    owner, name = SEAMS[fault.seam]
    real = getattr(owner, name)
    calls, fired = [0], []

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] != fault.call:
            return real(*args, **kwargs)
        fired.append(fault)
        if fault.after:
            real(*args, **kwargs)
        if fault.error is OSError:
            raise OSError(errno.EIO, f"injected I/O error: {fault}")
        raise fault.error(f"injected: No space left on device (os error 28): {fault}")

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(owner, name, wrapper)
        yield fired


@contextmanager
def _one_commit_at_a_time() -> Iterator[None]:
    """Projection tables committed one after another, so that the n-th call of a seam is the n-th
    table's. With several commit threads the tables under way when one fails may finish as well,
    each whole (the projector's documented guarantee), and ``done`` would not be one number."""
    workers = eventlog.projector._Commits.WORKERS
    eventlog.projector._Commits.WORKERS = 1
    try:
        yield
    finally:
        eventlog.projector._Commits.WORKERS = workers


def _run_with(fault: Fault, inventory: Inventory) -> None:
    """Run the fault's operation with the fault injected; check it fired and what the caller saw."""
    with failing(fault) as fired, _one_commit_at_a_time():
        if fault.warns is not None:
            with pytest.warns(fault.warns):
                OPERATIONS[fault.op](inventory)
        elif fault.raises is None:
            OPERATIONS[fault.op](inventory)
        else:
            with pytest.raises(fault.raises):
                OPERATIONS[fault.op](inventory)
    assert fired, f"the operation never reached {fault}"


# --- what readers see ----------------------------------------------------------------------------


def observe(path: Path) -> dict[str, Any]:
    """Everything a fresh reader can see; reading a snapshot or table that is not whole fails."""
    inventory = Inventory.open(path)
    tables = inventory.projector.tables
    projections = {}
    for name in inventory.projector.registry:
        manifest = tables.manifest(name)
        assert manifest is not None
        stored = tables.read(name, manifest)
        assert stored.height == manifest.rows
        projections[name] = (manifest.checkpoint, stored.sort(stored.columns, nulls_last=True).rows())
    snapshots = inventory.snapshots.list()
    return {
        "events": events_of(inventory),
        "stock": inventory.stock().rows(),
        # a snapshot holds the stored form: finished, it is the stock at its seq
        "snapshots": [(s.seq, inventory.engine.finish(STATE, inventory.snapshots.load(s)).rows())  # type: ignore[arg-type]
                      for s in snapshots],
        "projections": projections,
    }


@dataclass
class OldReader:
    """A reader opened before the failure, and its answers at the head it saw."""

    inventory: Inventory
    head: int
    answers: dict[str, Any]

    @classmethod
    def open(cls, path: Path) -> OldReader:
        inventory = Inventory.open(path)
        head = inventory.log.head()
        return cls(inventory, head, cls.ask(inventory, head))

    @staticmethod
    def ask(inventory: Inventory, head: int) -> dict[str, Any]:
        return {
            "events": inventory.log.scan(as_of=head).collect().sort("seq").rows(),
            "stock": inventory.stock(as_of=head).rows(),
            "flows": inventory.projection("daily_flows").read(as_of=head).rows(),
        }


def expected_after(before: dict[str, Any], fault: Fault, after: dict[str, Any]) -> dict[str, Any]:
    """What a fresh reader must see after ``fault``: ``before``, plus the committed part of the operation."""
    want = dict(before)
    head = len(before["events"])
    if fault.done and fault.op == "append":
        assert [e["stream_id"] for e in after["events"][head:]] == [e["item"] for e in NEW_BATCH]  # one whole batch
        want["events"] = after["events"][: head + len(NEW_BATCH)]
        want["stock"] = reference.stock(want["events"])
    if fault.done and fault.op == "snapshot":
        want["snapshots"] = [*before["snapshots"], (head, before["stock"])]
    if fault.done and fault.op == "projections":
        moved = {n for n, (checkpoint, _) in after["projections"].items() if checkpoint == head}
        assert len(moved) == fault.done  # whole tables at the head, the others untouched
        want["projections"] = {n: after["projections"][n] if n in moved else t for n, t in before["projections"].items()}
    return want


# --- failures injected in-process -------------------------------------------------------------------


@pytest.mark.parametrize("fault", FAULTS, ids=str)
def test_a_failure_at_any_step_shows_readers_only_whole_committed_state(path: Path, fault: Fault) -> None:
    """A fresh reader sees the state from before, plus exactly the whole result if the failure came after
    the commit point; a reader opened before gets the same answers as before; verify passes."""
    before, old = observe(path), OldReader.open(path)
    inventory = Inventory.open(path)
    _run_with(fault, inventory)
    after = observe(path)
    assert after == expected_after(before, fault, after)
    assert OldReader.ask(old.inventory, old.head) == old.answers
    assert inventory.verify().ok


@pytest.mark.parametrize("fault", FAULTS, ids=str)
def test_after_a_failure_the_same_operation_succeeds(path: Path, fault: Fault) -> None:
    inventory = Inventory.open(path)
    head = inventory.log.head()
    _run_with(fault, inventory)
    OPERATIONS[fault.op](inventory)
    fresh = Inventory.open(path)
    if fault.op == "append":  # the retry adds one whole batch, on top of one that committed before the error
        assert fresh.log.head() == head + len(NEW_BATCH) * (1 + fault.done)
    if fault.op == "snapshot":
        assert fresh.snapshots.list()[-1].seq == head
    if fault.op == "projections":
        assert {s.checkpoint for s in fresh.projections_status()} == {head}
    assert fresh.verify().ok


# --- snapshots written by record() ---------------------------------------------------------------

#: With snapshot_every=1, record() writes a snapshot at the old head under the lock, then one at the new head.
RECORD_SNAPSHOT_FAULTS = [
    Fault("append", "write_parquet", step="the snapshot before the append"),
    Fault("append", "write_parquet", error=pl.exceptions.ComputeError,
          step="the snapshot before the append, polars reporting a full disk"),
    Fault("append", "unlink", step="pruning before the append"),
    Fault("append", "replace", call=6, step="the snapshot after the append"),  # 3 and 4: the data files
]


@pytest.mark.parametrize("fault", RECORD_SNAPSHOT_FAULTS, ids=str)
def test_a_snapshot_failing_inside_record_never_fails_the_record(path: Path, fault: Fault) -> None:
    """A snapshot only saves time: record() commits its batch and warns."""
    inventory = Inventory.open(path, snapshot_every=1)
    head = inventory.log.head()
    with failing(fault) as fired, pytest.warns(SnapshotWarning):
        result = inventory.record(NEW_BATCH)
    assert fired
    assert (result.first_seq, Inventory.open(path).log.head()) == (head + 1, head + len(NEW_BATCH))
    assert Inventory.open(path).verify().ok


# --- failures from the file system itself, no patching ----------------------------------------------


def _block_next_checkpoint(path: Path) -> None:
    """A directory where deltalake will write the checkpoint of the next commit: the commit lands, the hook fails."""
    table = DeltaTable(str(path / "events"))
    table.alter.set_table_properties({"delta.checkpointInterval": "1"})
    (path / "events" / "_delta_log" / f"{table.version() + 1:020d}.checkpoint.parquet").mkdir()


def test_a_checkpoint_failing_after_the_append_commit_is_no_failed_append(path: Path) -> None:
    """Reporting a committed batch as failed would make the caller append it twice."""
    _block_next_checkpoint(path)
    inventory = Inventory.open(path)
    head = inventory.log.head()
    result = inventory.record(NEW_BATCH)
    assert (result.first_seq, result.last_seq) == (head + 1, head + len(NEW_BATCH))
    assert result.version == DeltaTable(str(path / "events")).version()
    assert inventory.record(NEW_BATCH).first_seq == head + len(NEW_BATCH) + 1  # state in memory moved on too
    assert Inventory.open(path).verify().ok


@pytest.mark.parametrize("op", ["compact", "vacuum"])
def test_a_checkpoint_failing_after_maintenance_is_a_commit_error_and_changes_no_answer(path: Path, op: str) -> None:
    before = observe(path)
    _block_next_checkpoint(path)
    inventory = Inventory.open(path)
    with pytest.raises(CommitError, match="run it again"):
        OPERATIONS[op](inventory)
    assert observe(path) == before
    OPERATIONS[op](inventory)
    assert Inventory.open(path).verify().ok


def _files_on_disk(path: Path) -> set[str]:
    root = path / "events"
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and "_delta_log" not in p.parts}


def test_a_data_file_that_cannot_be_created_fails_the_append_and_commits_nothing(path: Path) -> None:
    """A file where a new partition's directory must go: deltalake's own write fails, after other files were written."""
    blocked = path / "events" / "occurred_on=2024-01-31"  # NEW_BATCH's new day; its other day's file gets written
    blocked.write_text("not a directory")
    before = observe(path)
    inventory = Inventory.open(path)
    with pytest.raises(CommitError, match="nothing was committed"):
        inventory.record(NEW_BATCH)
    assert observe(path) == before
    blocked.unlink()
    assert inventory.record(NEW_BATCH).first_seq == len(before["events"]) + 1
    inventory.log.vacuum(retention_hours=0)  # the half-batch's files, never referenced, go
    assert _files_on_disk(path) == set(inventory.log.files()["path"])
    assert Inventory.open(path).verify().ok


# --- what a failed write leaves behind ---------------------------------------------------------------

LEAVES_TEMP_FILES = [f for f in FAULTS if f.op in ("snapshot", "projections") and not f.done]


@pytest.mark.parametrize("fault", LEAVES_TEMP_FILES, ids=str)
def test_a_failed_snapshot_or_table_write_removes_its_temp_files(path: Path, fault: Fault) -> None:
    _run_with(fault, Inventory.open(path))
    assert [p.name for p in path.rglob(".tmp-*")] == []


def test_data_of_a_snapshot_whose_manifest_failed_is_pruned_once_stale(path: Path) -> None:
    inventory = Inventory.open(path)
    _run_with(Fault("snapshot", "replace", call=2, raises=SnapshotError), inventory)
    orphan = path / "snapshots" / f"v{STATE_VERSION}-seq{inventory.log.head():015d}.parquet"
    assert orphan.exists()
    listed = inventory.snapshots.list()
    inventory.prune_snapshots()
    assert orphan.exists()  # it could be a writer's that has not placed its manifest yet
    os.utime(orphan, (time.time() - 7200,) * 2)
    inventory.prune_snapshots()
    assert not orphan.exists()
    assert inventory.snapshots.list() == listed


def test_a_reader_holding_the_previous_build_can_read_it_after_a_failed_and_a_good_update(path: Path) -> None:
    """A build is a Delta version: the one a reader holds stays readable (until vacuum), whatever came after."""
    inventory = Inventory.open(path)
    tables = inventory.projector.tables
    _run_with(Fault("projections", "tables.commit_actions"), inventory)
    held = {name: tables.manifest(name) for name in inventory.projector.registry}
    inventory.update_projections()
    for name, manifest in held.items():
        assert tables.read(name, manifest).height == manifest.rows  # type: ignore[union-attr]


def test_a_projection_table_whose_log_cannot_be_read_is_replaced_by_a_rebuild(path: Path) -> None:
    """The error says "rebuild it": a rebuild must not need the broken table."""
    commits = sorted((path / "projections" / "daily_flows" / "_delta_log").glob("*.json"))
    commits[-1].write_text('{"commitInfo": {')  # torn, as by a copy that stopped half-way
    inventory = Inventory.open(path)
    with pytest.raises(EventLogError, match="rebuild it"):
        inventory.projection("daily_flows").read()
    assert inventory.projection("daily_flows").rebuild().checkpoint == inventory.log.head()
    assert Inventory.open(path).verify().ok


# --- races with another process's cleanup, simulated at the moment they happen ----------------------


def test_a_snapshot_another_process_prunes_while_it_is_listed_is_skipped(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    inventory = Inventory.open(path)
    expected = inventory.stock().rows()
    real = pathlib.Path.read_text

    def pruned_first(self: pathlib.Path, *args: Any, **kwargs: Any) -> str:
        if self.parent.name == "snapshots" and self.suffix == ".json":  # the other process's prune gets there first
            self.unlink(missing_ok=True)
            self.with_suffix(".parquet").unlink(missing_ok=True)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "read_text", pruned_first)
    assert Inventory.open(path).stock().rows() == expected


def test_a_temp_file_another_writer_renames_while_prune_looks_at_it_is_no_error(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    other = path / "snapshots" / ".tmp-v9-seq000000000000001.parquet.abc"  # another writer's, being written
    other.write_bytes(b"PAR1")
    real = pathlib.Path.stat

    def renamed_first(self: pathlib.Path, *args: Any, **kwargs: Any) -> os.stat_result:
        if self == other and os.path.exists(self):
            os.replace(self, self.parent / "v9-seq000000000000001.parquet")  # the other writer places it
        return real(self, *args, **kwargs)

    monkeypatch.setattr(pathlib.Path, "stat", renamed_first)
    info = Inventory.open(path).snapshot()
    assert info.seq == Inventory.open(path).log.head()


# --- SIGKILL at a step or at a random moment ------------------------------------------------------

# Runs one operation in a loop until killed, printing what each round committed. With a step
# ("os.replace#2": the second call; "...#1+": right after the first call returned), it stops
# there instead, says "blocked" and waits for the kill. Each round appends a batch first, so
# that snapshot, compact and vacuum always have work.
CHILD = r"""
import datetime as dt, json, os, pathlib, sys, threading, time
from deltalake import DeltaTable
import eventlog.projector, eventlog.store.tables
from eventlog import Inventory

eventlog.projector._Commits.WORKERS = 1  # the n-th call of a seam is the n-th table's (see _one_commit_at_a_time)

path, op, step = sys.argv[1], sys.argv[2], sys.argv[3]
SEAMS = {"os.replace": (os, "replace"), "Path.unlink": (pathlib.Path, "unlink"), "json.dump": (json, "dump"),
         "DeltaTable.create_write_transaction": (DeltaTable, "create_write_transaction"),
         "DeltaTable.vacuum": (DeltaTable, "vacuum"),
         "tables.commit_actions": (eventlog.store.tables, "commit_actions")}

def wait_for_the_kill():
    print("blocked", flush=True)
    time.sleep(600)

if step != "-":
    name, call = step.split("#")
    after, call = call.endswith("+"), int(call.rstrip("+"))
    owner, attr = SEAMS[name]
    real, calls, counting = getattr(owner, attr), [0], threading.Lock()

    def blocking(*args, **kwargs):
        with counting:  # seams may be called from several threads: each call has its own number
            calls[0] += 1
            mine = calls[0]
        if mine == call and not after:
            wait_for_the_kill()
        out = real(*args, **kwargs)
        if mine == call:
            wait_for_the_kill()
        return out

    setattr(owner, attr, blocking)

inventory = Inventory.open(path)
t0 = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)
print("ready", flush=True)
for i in range(1_000_000):
    if i:
        print("round", flush=True)
    if op == "projections":
        inventory.update_projections(rebuild=True)
        continue
    batch = [{"event_type": "item_added", "item": f"item {i % 7}", "occurred_at": t0 + dt.timedelta(days=d)} for d in range(3)]
    print("appended", inventory.record(batch).last_seq, flush=True)
    if op == "snapshot":
        print("snapshot", inventory.snapshot().seq, flush=True)
    if op in ("compact", "vacuum"):
        inventory.log.compact()
        print("compacted", flush=True)
    if op == "vacuum":
        inventory.log.vacuum(retention_hours=0)
        print("vacuumed", flush=True)
"""


@pytest.fixture(scope="module")
def busy_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """20,000 events of 300 items over three days, projections built, one snapshot: a few ms per step."""
    path = store(tmp_path_factory.mktemp("busy"))
    inventory = Inventory.open(path)
    n = 20_000
    inventory.record(pl.DataFrame({
        "event_type": ["item_added"] * n,
        "item": [AWKWARD_ITEMS[i % len(AWKWARD_ITEMS)] + f" {i % 300}" for i in range(n)],
        "occurred_at": [T0 + dt.timedelta(days=i % 3) for i in range(n)],
    }))
    inventory.update_projections()
    inventory.snapshot()
    return path


@pytest.fixture
def busy(busy_template: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(busy_template, tmp_path / busy_template.name))


def _kill(path: Path, op: str, *, step: str = "-", delay: float = 0.0) -> list[str]:
    """Run the loop in a child, SIGKILL it at ``step`` (or ``delay`` s after it is ready); what it reported."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(path), op, step],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    reported: list[str] = []
    try:
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "ready"
        if step == "-":
            while (line := child.stdout.readline()) and line.strip() != "round":  # the first, cold round is done
                reported.append(line)
            time.sleep(delay)
        else:
            while (line := child.stdout.readline()) and line.strip() != "blocked":
                reported.append(line)
            assert line, "the child ended before it reached its step"
        os.kill(child.pid, signal.SIGKILL)
        out, err = child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == -signal.SIGKILL, err
    return [*reported, *out.splitlines()]


def _assert_recovered(path: Path, reported: list[str], reader: OldReader) -> None:
    """The store verifies, keeps all it reported committed, answers old questions alike, and takes new work."""
    fresh = Inventory.open(path)
    assert fresh.verify().ok
    appended = [int(line.split()[1]) for line in reported if line.startswith("appended")]
    snapshots = [int(line.split()[1]) for line in reported if line.startswith("snapshot")]
    head = fresh.log.head()
    assert head in (max(appended, default=reader.head), max(appended, default=reader.head) + 3)  # whole batches
    if snapshots:
        assert snapshots[-1] in [s.seq for s in fresh.snapshots.list()]
    assert fresh.stock().rows() == reference.stock(events_of(fresh))
    assert OldReader.ask(reader.inventory, reader.head) == reader.answers
    assert fresh.add_item("after the kill ✓").first_seq == head + 1
    assert fresh.snapshot().seq == head + 1
    fresh.update_projections()
    assert Inventory.open(path).verify().ok


KILL_STEPS = [
    ("snapshot", "os.replace#1"),  # data written and fsynced, not in place
    ("snapshot", "os.replace#2"),  # data in place, manifest written, not in place
    ("snapshot", "Path.unlink#1+"),  # committed; pruning an older one: its manifest gone, its data not yet
    # each round appends (commit #1) then compacts (commit #2)
    ("compact", "DeltaTable.create_write_transaction#2"),  # merged files in place and synced, not committed
    ("compact", "DeltaTable.create_write_transaction#2+"),  # committed, not yet synced nor seen by the process
    ("vacuum", "DeltaTable.vacuum#1+"),  # deleted and committed; a killed writer's staged files not yet
    ("projections", "tables.commit_actions#1"),  # a rebuild about to write its first table
    ("projections", "tables.commit_actions#2+"),  # one table committed, the next not begun
]


@pytest.mark.slow
@pytest.mark.parametrize(("op", "step"), KILL_STEPS, ids=[f"{op}-{step}" for op, step in KILL_STEPS])
def test_a_process_killed_at_a_step_leaves_a_store_that_verifies_and_takes_new_work(
    busy: Path, op: str, step: str
) -> None:
    reader = OldReader.open(busy)
    _assert_recovered(busy, _kill(busy, op, step=step), reader)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("op", ["snapshot", "projections", "compact", "vacuum"])
def test_a_process_killed_at_a_random_moment_leaves_a_store_that_verifies_and_takes_new_work(
    busy: Path, op: str, seed: int
) -> None:
    reader = OldReader.open(busy)
    _assert_recovered(busy, _kill(busy, op, delay=random.Random(seed).uniform(0.05, 0.6)), reader)


@pytest.mark.slow
def test_a_build_killed_before_its_commit_never_displaces_the_previous_version(busy: Path) -> None:
    inventory = Inventory.open(busy)
    tables = inventory.projector.tables
    held = {name: tables.manifest(name) for name in inventory.projector.registry}
    _kill(busy, "projections", step="tables.commit_actions#1")
    inventory.add_item("after the kill ✓")
    inventory.update_projections()
    for name, manifest in held.items():
        assert tables.read(name, manifest).height == manifest.rows  # type: ignore[union-attr]


# --- a full disk, for real: every write past a size fails (RLIMIT_FSIZE), no patching -------------------

FULL_DISK_CHILD = r"""
import resource, signal, sys
from eventlog import Inventory
from eventlog.errors import CommitError
inventory = Inventory.open(sys.argv[1])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (2048, resource.RLIM_INFINITY))
for _ in range(3):
    try:
        inventory.record([{"event_type": "item_added", "item": f"item {i}", "quantity": 1} for i in range(2000)])
    except CommitError as exc:
        print("refused", "nothing was committed" in str(exc), flush=True)
"""


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs RLIMIT_FSIZE")
def test_an_append_on_a_full_disk_is_a_commit_error_with_nothing_on_stderr_and_nothing_left(path: Path) -> None:
    before, files = observe(path), _files_on_disk(path)
    child = subprocess.run([sys.executable, "-c", FULL_DISK_CHILD, str(path)], capture_output=True, text=True,
                           check=False, timeout=120)
    assert child.stdout.split("\n")[:3] == ["refused True"] * 3, child.stderr
    assert child.stderr == ""  # deltalake's own writer printed Rust panic traces here
    assert observe(path) == before
    assert _files_on_disk(path) == files
    assert Inventory.open(path).record(NEW_BATCH).first_seq == len(before["events"]) + 1


FULL_DISK_COMPACT_CHILD = r"""
import resource, signal, sys
from eventlog import Inventory
from eventlog.errors import CommitError
inventory = Inventory.open(sys.argv[1])
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
resource.setrlimit(resource.RLIMIT_FSIZE, (int(sys.argv[2]), resource.RLIM_INFINITY))
try:
    inventory.log.compact()
    print("compacted", flush=True)
except CommitError as exc:
    print("refused", "nothing was committed" in str(exc), "events" in str(exc), "\n" not in str(exc), flush=True)
"""


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGXFSZ"), reason="needs RLIMIT_FSIZE")
@pytest.mark.parametrize(("limit", "where"), [(2048, "a merged file"), (5000, "the commit file")])
def test_a_compaction_on_a_full_disk_is_a_commit_error_with_nothing_on_stderr_and_nothing_left(
    path: Path, limit: int, where: str
) -> None:
    """The template's merged files are about 3.4 kB and its compaction's commit about 6 kB: at 2048 bytes
    the first merged file fails, at 5000 they are all written and the commit file fails."""
    before, files = observe(path), _files_on_disk(path)
    version = DeltaTable(str(path / "events")).version()
    child = subprocess.run([sys.executable, "-c", FULL_DISK_COMPACT_CHILD, str(path), str(limit)],
                           capture_output=True, text=True, check=False, timeout=120)
    assert child.stdout.splitlines() == ["refused True True True"], (where, child.stdout, child.stderr)
    assert child.stderr == ""  # deltalake's optimize printed Rust panic traces here
    assert DeltaTable(str(path / "events")).version() == version
    assert observe(path) == before
    assert _files_on_disk(path) == files  # no staged or merged file left
    inventory = Inventory.open(path)
    assert inventory.log.compact()["numFilesRemoved"] > 0  # with room on the disk
    assert observe(path) == before
    assert Inventory.open(path).verify().ok


def test_a_compaction_failing_before_its_commit_leaves_no_file(path: Path) -> None:
    files = _files_on_disk(path)
    for fault in [f for f in FAULTS if f.op == "compact" and not f.done]:
        _run_with(fault, Inventory.open(path))
        assert _files_on_disk(path) == files, fault


@pytest.mark.slow
def test_a_compaction_killed_before_its_commit_leaves_only_orphans_vacuum_removes(busy: Path) -> None:
    reader = OldReader.open(busy)
    reported = _kill(busy, "compact", step="DeltaTable.create_write_transaction#2")
    inventory = Inventory.open(busy)
    live = set(inventory.log.files()["path"])
    orphans = _files_on_disk(busy) - live
    assert orphans and all(o.endswith(".zstd.parquet") for o in orphans)  # merged and renamed, never committed
    _assert_recovered(busy, reported, reader)
    inventory = Inventory.open(busy)
    removed = set(inventory.log.vacuum(retention_hours=0))
    assert orphans <= removed
    assert _files_on_disk(busy) == set(inventory.log.files()["path"])
    assert Inventory.open(busy).verify().ok
