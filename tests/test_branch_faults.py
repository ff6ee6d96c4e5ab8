"""A branch or a promote failing (OSError) or killed (SIGKILL) at any step: both stores stay readable and verify.

A branch's commit point is its ``eventlog.json``, written last: before it the folder is no
store (a failed branch removes what it wrote, a killed one leaves a marked folder that the
next ``branch`` at that path clears); after it the branch is whole. A promote is one commit
to the origin: all of it or nothing.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl
import pytest
import reference
from deltalake import DeltaTable
from inventory_helpers import T0, events_of, store

import eventlog.store.fork
from eventlog import EventLog, Inventory
from eventlog.errors import CommitError

SEAMS: dict[str, tuple[Any, str]] = {
    "os.link": (os, "link"),
    "os.replace": (os, "replace"),
    "os.fsync": (os, "fsync"),
    "write_parquet": (pl.DataFrame, "write_parquet"),
    "create_table": (eventlog.store.fork, "create_table_with_add_actions"),
    "commit": (DeltaTable, "create_write_transaction"),  # an append's commit, its data files written and synced
}

#: (seam, call): every step of a branch at a seq inside a commit, with a snapshot to take along.
BRANCH_STEPS = [
    ("os.replace", 1),  # the .branching marker
    ("write_parquet", 1),  # the inherited commits
    ("os.replace", 2),  # ... put in place
    ("os.link", 1),  # the data file before the cut shared
    ("write_parquet", 2),  # the first file across the cut rewritten
    ("write_parquet", 4),  # the last one
    ("create_table", 1),  # the fork commit
    ("os.fsync", 4),  # syncing the new table
    ("os.replace", 3),  # branch.json
    ("os.link", 2),  # the snapshot shared
    ("os.replace", 4),  # its manifest
    ("os.replace", 5),  # eventlog.json: the commit point
]


@pytest.fixture
def origin(tmp_path: Path) -> Inventory:
    inv = Inventory.open(store(tmp_path))
    inv.record([{"event_type": "item_added", "item": "sword", "quantity": 3, "occurred_at": T0}])
    inv.snapshot()
    inv.record([{"event_type": "item_added", "item": f"item {i}", "occurred_at": T0 + dt.timedelta(days=i % 3)}
                for i in range(6)])
    return inv


@contextmanager
def failing(seam: str, call: int) -> Iterator[list[int]]:
    """The ``call``-th call of ``seam`` raises an OSError; the list it gives is non-empty once it fired."""
    owner, name = SEAMS[seam]
    real, calls, fired = getattr(owner, name), [0], []

    def wrapper(*args: Any, **kwargs: Any) -> Any:
        calls[0] += 1
        if calls[0] == call:
            fired.append(call)
            raise OSError(errno.EIO, f"injected I/O error at {seam}#{call}")
        return real(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(owner, name, wrapper)
        yield fired


def _observe(inv: Inventory) -> tuple[int, int, list[tuple]]:
    fresh = Inventory.open(inv.path)
    return fresh.log.head(), fresh.log.version, fresh.stock().rows()


def _assert_whole(origin: Inventory, before: tuple[int, int, list[tuple]], target: Path) -> None:
    """The origin is as it was and verifies; the target is no store, or a whole branch that verifies."""
    assert _observe(origin) == before
    assert Inventory.open(origin.path).verify().ok
    if EventLog.exists(target):
        branch = Inventory.open(target)
        assert branch.verify().ok
        assert branch.stock().rows() == reference.stock(events_of(branch))


@pytest.mark.parametrize(("seam", "call"), BRANCH_STEPS, ids=[f"{s}#{c}" for s, c in BRANCH_STEPS])
def test_a_branch_failing_at_any_step_leaves_both_stores_whole_and_can_be_retried(
        origin: Inventory, tmp_path: Path, seam: str, call: int) -> None:
    before, target = _observe(origin), tmp_path / "what if"
    with failing(seam, call) as fired, pytest.raises((OSError, CommitError)):
        origin.branch(target, at=4)
    assert fired, f"the branch never reached {seam}#{call}"
    assert not target.exists()  # what a failed branch wrote is gone
    _assert_whole(origin, before, target)
    branch = origin.branch(target, at=4)
    assert branch.verify().ok and [s.seq for s in branch.snapshots.list()] == [1]


def test_a_promote_whose_commit_fails_writes_nothing_and_a_retry_appends_once(origin: Inventory, tmp_path: Path) -> None:
    branch = origin.branch(tmp_path / "b")
    branch.add_item("shield", 2)
    before = _observe(origin)
    with failing("commit", 1) as fired, pytest.raises(CommitError):
        origin.promote(branch)
    assert fired
    _assert_whole(origin, before, branch.path)
    assert origin.promote(branch).count == 1
    assert origin.promote(branch).duplicate and origin.get_count("shield") == 2


# --- SIGKILL at a step ----------------------------------------------------------------------------

# Branches (or promotes) once, stopping at a step ("os.replace#2": before its second call;
# "create_table#1+": right after the first returned) to say "blocked" and wait for the kill.
CHILD = r"""
import os, sys, time
import eventlog.store.fork
from deltalake import DeltaTable
from eventlog import Inventory

origin, target, op, step = sys.argv[1:5]
import polars as pl
SEAMS = {"os.link": (os, "link"), "os.replace": (os, "replace"), "write_parquet": (pl.DataFrame, "write_parquet"),
         "create_table": (eventlog.store.fork, "create_table_with_add_actions"),
         "commit": (DeltaTable, "create_write_transaction")}
name, call = step.split("#")
after, call = call.endswith("+"), int(call.rstrip("+"))
owner, attr = SEAMS[name]
real, calls = getattr(owner, attr), [0]

def blocking(*args, **kwargs):
    calls[0] += 1
    if calls[0] == call and not after:
        print("blocked", flush=True); time.sleep(600)
    out = real(*args, **kwargs)
    if calls[0] == call:
        print("blocked", flush=True); time.sleep(600)
    return out

inventory = Inventory.open(origin)
setattr(owner, attr, blocking)
if op == "branch":
    inventory.branch(target, at=4)
else:
    inventory.promote(Inventory.open(target))
print("done", flush=True)
"""

KILL_STEPS = [
    ("branch", "write_parquet#3"),  # a file shared, files across the cut being rewritten, no table yet
    ("branch", "create_table#1+"),  # the fork commit made, no branch.json
    ("branch", "os.replace#4"),  # branch.json in place, the snapshot's manifest not
    ("branch", "os.replace#5+"),  # eventlog.json in place: the branch exists, its marker not yet removed
    ("promote", "commit#1"),  # about to commit to the origin
    ("promote", "commit#1+"),  # committed, not yet reported
]


def _kill_at(origin: Path, target: Path, op: str, step: str) -> None:
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(origin), str(target), op, step],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert child.stdout is not None
        line = child.stdout.readline().strip()
        assert line == "blocked", f"the child ended before {step}: {line!r} {child.stderr.read() if child.stderr else ''}"
        os.kill(child.pid, signal.SIGKILL)
        child.communicate(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.communicate()
    assert child.returncode == -signal.SIGKILL


@pytest.mark.slow
@pytest.mark.parametrize(("op", "step"), KILL_STEPS, ids=[f"{op}-{step}" for op, step in KILL_STEPS])
def test_a_branch_or_promote_killed_at_a_step_leaves_both_stores_whole(
        origin: Inventory, tmp_path: Path, op: str, step: str) -> None:
    target = tmp_path / "what if"
    if op == "promote":
        origin.branch(target).add_item("shield", 2)
    before = _observe(origin)
    _kill_at(origin.path, target, op, step)
    fresh = Inventory.open(origin.path)
    assert fresh.verify().ok
    if op == "branch":
        assert _observe(origin) == before
        _assert_whole(origin, before, target)
        if not EventLog.exists(target):
            assert Inventory.open(origin.path).branch(target, at=4).verify().ok  # the retry clears the leftover
    else:
        assert fresh.log.head() in (before[0], before[0] + 1)  # all of the promote or nothing
        assert fresh.stock().rows() == reference.stock(events_of(fresh))
        fresh.promote(Inventory.open(target))
        assert fresh.log.head() == before[0] + 1 and fresh.get_count("shield") == 2  # a retry appends once
        assert Inventory.open(origin.path).verify().ok
    shutil.rmtree(target, ignore_errors=True)
