"""Several writers at once: one total order, every event exactly once, no stale lock."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import pytest
from support import added, read_all

from eventlog import EventLog
from eventlog.errors import LockTimeoutError

WRITERS, BATCHES = 4, 30

# Each event's sku is "writer:batch:n", n counting that writer's events from 0.
WRITER = r"""
import sys, time
from pathlib import Path
from eventlog import EventLog

store, writer, batches, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
if len(sys.argv) > 5:  # the write policy's floor lowered: compactions run among the appends
    import eventlog.store.delta
    eventlog.store.delta.MIN_FILES = int(sys.argv[5])
log = EventLog.open(store)
streams = ["shared", "o'brien; select", f"own {writer} ✓"]
print("ready", flush=True)
while not go.exists():
    time.sleep(0.002)
n = 0
for b in range(batches):
    rows = []
    for _ in range(1 + (writer + b) % 3):
        stream = streams[(n * 7 + writer) % 3]
        rows.append({"event_type": "item_added", "stream_id": stream, "sku": f"{writer}:{b}:{n}", "quantity": 1})
        n += 1
    log.append(rows)
print(n, flush=True)
"""

HOLD_LOCK = r"""
import sys, time
from filelock import FileLock

lock = FileLock(sys.argv[1])
lock.acquire()
print("locked", flush=True)
time.sleep(300)
"""


def _python(code: str, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )


@pytest.mark.slow
@pytest.mark.parametrize("compacting", [False, True], ids=["appends", "appends-and-compactions"])
def test_concurrent_writers_produce_one_gapless_order_with_every_event_once(
    empty_log: EventLog, tmp_path: Path, compacting: bool
) -> None:
    go = tmp_path / "go"
    floor = [6] if compacting else []  # one day partition: compacted each time it holds more than 6 files
    procs = [_python(WRITER, empty_log.path, w, BATCHES, go, *floor) for w in range(WRITERS)]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    go.touch()
    written = 0
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
        written += int(out.split()[-1])

    got = read_all(EventLog.open(empty_log.path))
    assert got["seq"].to_list() == list(range(1, written + 1))
    skus = got["sku"].to_list()
    assert len(set(skus)) == len(skus) == written

    parsed = [tuple(map(int, s.split(":"))) for s in skus]  # (writer, batch, n) in seq order
    assert {w for w, _, _ in parsed} == set(range(WRITERS))
    for w in range(WRITERS):
        ns = [n for writer, _, n in parsed if writer == w]
        assert ns == list(range(len(ns)))  # each writer's events: all there, in its own order
    seqs_of_batch: dict[tuple[int, int], list[int]] = defaultdict(list)
    for seq, (w, b, _) in enumerate(parsed, start=1):
        seqs_of_batch[(w, b)].append(seq)
    for seqs in seqs_of_batch.values():  # a batch is never interleaved with another
        assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))

    versions: dict[str, int] = defaultdict(int)
    for stream, version in got.select("stream_id", "stream_version").rows():
        versions[stream] += 1
        assert version == versions[stream]
    order = [w for w, _, _ in parsed]
    switches = sum(a != b for a, b in zip(order, order[1:], strict=False))
    assert switches > WRITERS - 1  # the writers did run at the same time, not one after another
    if compacting:
        log = EventLog.open(empty_log.path)
        assert sum(e.get("eventlog.operation") == "compact" for e in log.history()) >= 3
        assert log.files().height <= 7 + WRITERS  # each writer compacts after its append when it can
        assert log.verify().ok


def test_threads_sharing_one_log_object_do_not_share_seqs(empty_log: EventLog) -> None:
    errors: list[BaseException] = []

    def write(stream: str) -> None:
        try:
            for _ in range(10):
                empty_log.append([added(stream)] * 2)
        except BaseException as exc:  # surfaced below: a thread's exception is otherwise lost
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(f"thread {i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    got = read_all(empty_log)
    assert got["seq"].to_list() == list(range(1, 81))
    assert got.group_by("stream_id").len()["len"].to_list() == [20] * 4
    for _, group in got.group_by("stream_id"):
        assert group["stream_version"].to_list() == list(range(1, 21))


@pytest.mark.slow
def test_lock_of_a_killed_process_does_not_block_the_next_writer(empty_log: EventLog) -> None:
    holder = _python(HOLD_LOCK, empty_log.path / ".writer.lock")
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockTimeoutError):  # the lock really is held
            EventLog.open(empty_log.path, lock_timeout=0.2).append([added("a")])
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait(timeout=10)
        start = time.monotonic()
        result = EventLog.open(empty_log.path, lock_timeout=10).append([added("a")])
        assert time.monotonic() - start < 5
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.communicate()
    assert (result.first_seq, empty_log.head()) == (1, 1)
