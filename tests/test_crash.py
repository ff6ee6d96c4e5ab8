"""A writer killed in the middle of an append: the store keeps whole batches only and stays usable."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from support import added

from eventlog import EventLog

BATCH = 1_000_000

# Appends BATCH-row batches until killed; prints each committed last_seq.
WRITER = r"""
import sys
import polars as pl
from eventlog import EventLog

log = EventLog.open(sys.argv[1])
n = int(sys.argv[2])
batch = pl.DataFrame({
    "event_type": pl.repeat("item_added", n, eager=True),
    "stream_id": (pl.int_range(n, eager=True) % 1000).cast(pl.String),
    "sku": pl.repeat("crash; 'test' ✓", n, eager=True),
    "quantity": pl.int_range(1, n + 1, eager=True),
})
while True:
    print(log.append(batch).last_seq, flush=True)
"""


def _files_on_disk(log: EventLog) -> set[str]:
    """Every file in the table outside the commit log, relative to the table."""
    root = log.path / "events"
    return {
        p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file() and "_delta_log" not in p.parts
    }


def _staged_file(log: EventLog) -> Path | None:
    """A data file being written right now (deltalake writes ``<name>#<n>``, then renames it)."""
    return next((p for p in (log.path / "events").rglob("*.parquet#*")), None)


def _kill_writer(log: EventLog, when: Callable[[float], object]) -> None:
    """Start a writer, let it commit one batch, SIGKILL it once ``when(seconds since then)`` is truthy."""
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(log.path), str(BATCH)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None
        assert int(writer.stdout.readline()) == BATCH  # the first batch is in
        committed = time.monotonic()
        while not when(time.monotonic() - committed):
            assert time.monotonic() < committed + 60, "the moment to kill never came"
            time.sleep(0.0005)
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=10)
    finally:
        if writer.poll() is None:
            writer.kill()
        _, err = writer.communicate()
    assert writer.returncode == -signal.SIGKILL, err


def _assert_whole_batches_and_usable(log: EventLog) -> int:
    head = log.head()
    assert head >= BATCH
    assert head % BATCH == 0
    got = log.scan().select("seq", "quantity").collect().sort("seq")
    assert got["seq"].equals(pl.int_range(1, head + 1, eager=True, dtype=pl.Int64).alias("seq"))
    assert got.select((pl.col("seq") - 1) % BATCH + 1 == pl.col("quantity")).to_series().all()
    assert log.append([added("after the crash")]).first_seq == head + 1
    return head


def _assert_vacuum_removes_orphans_and_keeps_reads(log: EventLog) -> None:
    before = log.scan().collect().sort("seq")
    log.vacuum(retention_hours=0)
    assert _files_on_disk(log) == {str(p) for p in log.files()["path"]}  # orphans gone, live files kept
    assert log.scan().collect().sort("seq").equals(before)
    assert EventLog.open(log.path).append([added("after vacuum")]).first_seq == before.height + 1


@pytest.mark.slow
@pytest.mark.parametrize("seed", [1, 2])
def test_writer_killed_at_a_random_moment_leaves_whole_batches(empty_log: EventLog, seed: int) -> None:
    delay = random.Random(seed).uniform(0.05, 1.5)  # somewhere inside the next append
    _kill_writer(empty_log, lambda elapsed: elapsed >= delay)
    log = EventLog.open(empty_log.path)
    _assert_whole_batches_and_usable(log)
    _assert_vacuum_removes_orphans_and_keeps_reads(log)


@pytest.mark.slow
def test_writer_killed_while_writing_a_data_file_leaves_an_orphan_that_vacuum_removes(empty_log: EventLog) -> None:
    _kill_writer(empty_log, lambda _: _staged_file(empty_log))
    log = EventLog.open(empty_log.path)
    assert _files_on_disk(log) > {str(p) for p in log.files()["path"]}  # the half-written file is left behind
    _assert_whole_batches_and_usable(log)
    _assert_vacuum_removes_orphans_and_keeps_reads(log)


# Appends one batch with the commit blocked: its data files are written and synced, then it waits.
BLOCKED_AT_COMMIT = r"""
import sys, time
from deltalake import DeltaTable
from eventlog import EventLog

def blocked(*args, **kwargs):
    print("files written", flush=True)
    time.sleep(600)

DeltaTable.create_write_transaction = blocked
EventLog.open(sys.argv[1]).append([{"event_type": "item_added", "stream_id": "s", "sku": "x", "quantity": 1}])
"""


@pytest.mark.slow
def test_a_writer_killed_between_its_data_files_and_its_commit_leaves_orphans_readers_ignore(
    empty_log: EventLog,
) -> None:
    empty_log.append([added("before")])
    writer = subprocess.Popen([sys.executable, "-c", BLOCKED_AT_COMMIT, str(empty_log.path)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "files written"
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait(timeout=10)
    finally:
        if writer.poll() is None:
            writer.kill()
        writer.communicate()
    log = EventLog.open(empty_log.path)
    live = {str(p) for p in log.files()["path"]}
    orphans = _files_on_disk(log) - live
    assert orphans and all(name.endswith(".parquet") for name in orphans)  # whole files, in place, never committed
    assert log.head() == 1
    assert log.verify().ok  # verify reads what the log commits, never a file it does not name
    _assert_vacuum_removes_orphans_and_keeps_reads(log)
