"""Group commit: appends that wait for the writer lock are committed together by the writer that gets it.

Each batch of a group is checked as a lone append would be, against the head plus the batches
before it in the group; a batch that fails gets its own typed error and the others commit; a
batch is acknowledged only once its commit is durable, exactly once, even when the writer that
committed it is killed before answering.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from support import added, read_all

from eventlog import EventLog, Inventory
from eventlog.errors import (
    ConcurrencyError,
    DuplicateEventError,
    IdempotencyConflictError,
    InsufficientStockError,
    LockTimeoutError,
)
from eventlog.store.atomic import TEMP_PREFIX
from eventlog.writer import AppendResult

Outcome = AppendResult | BaseException


def _queued(store: Path) -> list[Path]:
    """The queued batches (a batch is written under a temp name, ending in .req too, then renamed)."""
    return sorted(p for p in (store / ".writer-queue").glob("*.req") if not p.name.startswith(TEMP_PREFIX))


def _wait_until(condition: Callable[[], bool], what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"{what} never happened"
        time.sleep(0.002)


def queue_behind_the_lock(log: EventLog, calls: list[Callable[[], AppendResult]]) -> list[Outcome]:
    """Run ``calls`` on threads, in this order, while this thread holds the writer lock; then let go.

    Each call finds the lock busy and queues its batch; the first to take the lock afterwards
    commits them all in one group.
    """
    outcomes: list[Outcome | None] = [None] * len(calls)

    def run(i: int) -> None:
        try:
            outcomes[i] = calls[i]()
        except BaseException as exc:  # the outcome under test
            outcomes[i] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    with log.writing():
        for i, thread in enumerate(threads):
            thread.start()
            _wait_until(lambda: len(_queued(log.path)) == i + 1 or outcomes[i] is not None,  # noqa: B023
                        f"call {i} queued")
    for thread in threads:
        thread.join(timeout=120)
    assert all(o is not None for o in outcomes)
    return outcomes  # type: ignore[return-value]


def _append_commits(log: EventLog) -> list[dict[str, Any]]:
    return [e for e in log.history() if e.get("eventlog.operation") == "append"]


def test_appends_waiting_for_the_lock_are_committed_in_one_commit(empty_log: EventLog) -> None:
    empty_log.append([added("before")])
    outcomes = queue_behind_the_lock(empty_log, [
        lambda: empty_log.append([added("a"), added("b")]),
        lambda: empty_log.append([added("a")], expected_versions={"a": 1}),
        lambda: empty_log.append([added("c")], idempotency_key="key c"),
    ])
    assert [(o.first_seq, o.last_seq) for o in outcomes if isinstance(o, AppendResult)] == [(2, 3), (4, 4), (5, 5)]
    commits = _append_commits(EventLog.open(empty_log.path))
    assert len(commits) == 2 and commits[0]["eventlog.count"] == "4"  # newest first: the group is one commit
    assert json.loads(commits[0]["eventlog.batches"])[2][:3] == [5, 5, "key c"]
    got = read_all(empty_log)
    assert got.select("seq", "stream_id", "stream_version").rows() == [
        (1, "before", 1), (2, "a", 1), (3, "b", 1), (4, "a", 2), (5, "c", 1)]
    assert empty_log.verify(deep=True).ok
    assert _queued(empty_log.path) == [] and not list((empty_log.path / ".writer-queue").glob("*.reply"))


def test_a_batch_failing_its_check_in_a_group_gets_its_error_and_the_others_commit(empty_log: EventLog) -> None:
    empty_log.append([added("s", event_id="taken id")])
    outcomes = queue_behind_the_lock(empty_log, [
        lambda: empty_log.append([added("s")], expected_versions={"s": 1}),
        lambda: empty_log.append([added("s")], expected_versions={"s": 1}),  # the one before moved s to 2
        lambda: empty_log.append([added("t", event_id="taken id")]),
        lambda: empty_log.append([added("u", event_id="new id")]),
        lambda: empty_log.append([added("v", event_id="new id")]),  # given by the batch before, in this group
        lambda: empty_log.append([added("w")]),
    ])
    assert isinstance(outcomes[1], ConcurrencyError)
    assert (outcomes[1].stream, outcomes[1].expected, outcomes[1].actual) == ("s", 1, 2)
    assert isinstance(outcomes[2], DuplicateEventError) and "already in the log at seq 1" in str(outcomes[2])
    assert isinstance(outcomes[4], DuplicateEventError) and outcomes[4].field == "event_id"
    ok = [o for o in outcomes if isinstance(o, AppendResult)]
    assert [(o.first_seq, o.version) for o in ok] == [(2, ok[0].version), (3, ok[0].version), (4, ok[0].version)]
    assert read_all(empty_log)["stream_id"].to_list() == ["s", "s", "u", "w"]
    assert empty_log.verify(deep=True).ok


def test_the_stock_check_of_a_group_counts_the_batches_before_it(tmp_path: Path) -> None:
    inv = Inventory.open(tmp_path / "store")
    inv.add_item("sword", 2)
    outcomes = queue_behind_the_lock(inv.log, [
        lambda: inv.remove_item("sword"),
        lambda: inv.add_item("shield"),
        lambda: inv.remove_item("sword", 2),  # only 1 left after the first removal
        lambda: inv.remove_item("sword"),
        lambda: inv.remove_item("shield"),  # added earlier in the group
    ])
    assert isinstance(outcomes[2], InsufficientStockError)
    assert (outcomes[2].item, outcomes[2].requested, outcomes[2].available) == ("sword", 2, 1)
    assert all(isinstance(o, AppendResult) for i, o in enumerate(outcomes) if i != 2)
    assert Inventory.open(inv.path).get_items() == []
    assert Inventory.open(inv.path).verify().ok
    with pytest.raises(InsufficientStockError):  # and the writer's state after the group is right
        inv.remove_item("sword")


def test_an_idempotency_key_twice_in_a_group_commits_once_and_a_retry_returns_the_same(empty_log: EventLog) -> None:
    batch = [added("a"), added("b")]
    outcomes = queue_behind_the_lock(empty_log, [
        lambda: empty_log.append(batch, idempotency_key="k"),
        lambda: empty_log.append(batch, idempotency_key="k"),
        lambda: empty_log.append([added("other")], idempotency_key="k"),
    ])
    first, second, conflict = outcomes
    assert isinstance(first, AppendResult) and isinstance(second, AppendResult)
    assert (first.first_seq, first.last_seq, first.duplicate) == (1, 2, False)
    assert (second.first_seq, second.last_seq, second.duplicate) == (1, 2, True)
    assert isinstance(conflict, IdempotencyConflictError) and (conflict.first_seq, conflict.last_seq) == (1, 2)
    retry = EventLog.open(empty_log.path).append(batch, idempotency_key="k")
    assert (retry.first_seq, retry.last_seq, retry.duplicate, retry.recorded_at) == (1, 2, True, first.recorded_at)
    assert empty_log.head() == 2


def test_a_queued_append_that_times_out_is_withdrawn_and_never_committed(empty_log: EventLog) -> None:
    impatient = EventLog.open(empty_log.path, lock_timeout=0.3)
    with empty_log.writing():
        with pytest.raises(LockTimeoutError):
            impatient.append([added("late")])
        assert _queued(empty_log.path) == []
    assert empty_log.append([added("next")]).first_seq == 1
    assert read_all(empty_log)["stream_id"].to_list() == ["next"]


# --- processes --------------------------------------------------------------------------------

# Appends N single events, alternating add_item and log.append with an expected version and an
# idempotency key (every key retried once); prints each acknowledged (first_seq, stream, kind).
WRITER = r"""
import json, sys, time
from pathlib import Path
from eventlog import Inventory

store, writer, n, go = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4])
inv = Inventory.open(store)
print("ready", flush=True)
while not go.exists():
    time.sleep(0.002)
acks, version = [], 0
for i in range(n):
    if i % 2 == 0:
        item = f"item {writer} ✓"
        acks.append((inv.add_item(item, 2).first_seq, item, "add"))
    else:
        stream = f"own {writer}"
        batch = [{"event_type": "item_added", "stream_id": stream, "quantity": 1}]
        key = f"{writer}:{i}"
        first = inv.log.append(batch, expected_versions={stream: version}, idempotency_key=key)
        retry = inv.log.append(batch, expected_versions={stream: version}, idempotency_key=key)
        assert (retry.first_seq, retry.duplicate) == (first.first_seq, True), (first, retry)
        version += 1
        acks.append((first.first_seq, stream, "append"))
print(json.dumps(acks), flush=True)
"""


def _python(code: str, *args: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_eight_writing_processes_have_every_acknowledged_event_committed_exactly_once(tmp_path: Path) -> None:
    store, go, writers, n = tmp_path / "store", tmp_path / "go", 8, 12
    Inventory.open(store)
    procs = [_python(WRITER, store, w, n, go) for w in range(writers)]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready", p.stderr and p.stderr.read()
    go.touch()
    acks = []
    for p in procs:
        out, err = p.communicate(timeout=600)
        assert p.returncode == 0, err
        acks.extend(tuple(a) for a in json.loads(out.strip().splitlines()[-1]))
    inv = Inventory.open(store)
    got = read_all(inv.log)
    assert inv.log.head() == len(acks) == writers * n
    assert sorted((seq, stream) for seq, stream, _ in acks) == got.select("seq", "stream_id").rows()
    want = Counter({f"item {w} ✓": 2 * ((n + 1) // 2) for w in range(writers)})
    want.update({f"own {w}": n // 2 for w in range(writers)})
    assert dict(inv.get_items()) == dict(want)
    assert inv.verify(deep=True).ok
    counts = [int(c["eventlog.count"]) for c in _append_commits(inv.log)]
    assert max(counts) > 1  # the writers did commit together
    assert sum(counts) == len(acks)


# The writer lock is held while a follower queues; then this process appends (it re-enters its
# own lock, so it leads) with the follower's batch in its group, and stops at a point: "commit"
# (the data files are written, the Delta commit not made) or "reply" (committed, nobody answered).
LEADER = r"""
import sys, time
from pathlib import Path
from deltalake import DeltaTable
from eventlog import EventLog
from eventlog.store.atomic import TEMP_PREFIX
from eventlog.store.queue import WriterQueue

store, point = Path(sys.argv[1]), sys.argv[2]

def stop(*args, **kwargs):
    print("stopped", flush=True)
    time.sleep(600)

if point == "commit":
    DeltaTable.create_write_transaction = stop
else:
    WriterQueue.reply = stop
log = EventLog.open(store)
with log.writing():
    print("locked", flush=True)
    while not [p for p in (store / ".writer-queue").glob("*.req") if not p.name.startswith(TEMP_PREFIX)]:
        time.sleep(0.002)
    log.append([{"event_type": "item_added", "stream_id": "leader", "sku": "x", "quantity": 1}])
"""

FOLLOWER = r"""
import json, sys
from eventlog import EventLog
r = EventLog.open(sys.argv[1]).append([{"event_type": "item_added", "stream_id": "follower", "sku": "x",
                                         "quantity": 1}], idempotency_key="follower's key")
print(json.dumps([r.first_seq, r.last_seq, r.version, r.duplicate]), flush=True)
"""


def _kill_leader_at(store: Path, point: str) -> list[Any]:
    """A leader SIGKILLed at ``point`` with a follower's batch in its group; the follower's result."""
    leader = _python(LEADER, store, point)
    follower = None
    try:
        assert leader.stdout is not None and leader.stdout.readline().strip() == "locked"
        follower = _python(FOLLOWER, store)
        assert leader.stdout.readline().strip() == "stopped"
        os.kill(leader.pid, signal.SIGKILL)
        leader.wait(timeout=10)
        out, err = follower.communicate(timeout=120)
        assert follower.returncode == 0, err
    finally:
        for p in (leader, follower):
            if p is not None and p.poll() is None:
                p.kill()
            if p is not None:
                p.communicate()  # closes its pipes
    assert leader.returncode == -signal.SIGKILL
    return list(json.loads(out.strip().splitlines()[-1]))


@pytest.mark.slow
def test_a_leader_killed_before_its_commit_leaves_the_follower_to_commit_its_own_batch(empty_log: EventLog) -> None:
    first, last, _, duplicate = _kill_leader_at(empty_log.path, "commit")
    log = EventLog.open(empty_log.path)
    assert (first, last, duplicate) == (1, 1, False)
    assert read_all(log)["stream_id"].to_list() == ["follower"]  # the leader's own batch was never committed
    assert log.verify(deep=True).ok
    assert list((log.path / ".writer-queue").iterdir()) == []


@pytest.mark.slow
def test_a_leader_killed_after_its_commit_is_answered_from_the_commit_never_twice(empty_log: EventLog) -> None:
    first, last, version, duplicate = _kill_leader_at(empty_log.path, "reply")
    log = EventLog.open(empty_log.path)
    got = read_all(log)
    assert sorted(got["stream_id"].to_list()) == ["follower", "leader"]  # each once: the group's one commit
    assert got.filter(got["stream_id"] == "follower")["seq"].to_list() == [first] and first == last
    assert (version, duplicate) == (log.version, False)
    assert log.verify(deep=True).ok
    retry = log.append([added("follower", sku="x")], idempotency_key="follower's key")
    assert (retry.first_seq, retry.duplicate) == (first, True)
    assert list((log.path / ".writer-queue").iterdir()) == []


def test_a_branch_keeps_the_idempotency_keys_of_a_group_commit(empty_log: EventLog, tmp_path: Path) -> None:
    queue_behind_the_lock(empty_log, [
        lambda: empty_log.append([added("a")], idempotency_key="one"),
        lambda: empty_log.append([added("b")], idempotency_key="two"),
    ])
    branch = empty_log.branch(tmp_path / "branch")
    retry = branch.append([added("b")], idempotency_key="two")
    assert (retry.first_seq, retry.duplicate, branch.head()) == (2, True, 2)
    assert branch.verify().ok
