"""Group commit: appends that find the writer lock busy are committed together by its holder.

A writer that takes the lock at once appends as it always did, and with its own batch also
commits every batch queued meanwhile (``store/queue.py``): each is checked in order against
the head plus the batches before it — idempotency, expected versions, event ids, its domain
check — and all accepted ones go into one Delta commit, one link of the hash chain
(``WriteTxn.append_many``). Then each queued batch gets its reply: its ``AppendResult`` or
its own typed error. A writer that finds the lock busy queues its batch and waits for the
reply, probing the lock meanwhile: when it comes free first, it takes it and leads, its own
batch included. So 8 writers pay for about one commit per round instead of 8.

Crash safety. A batch is claimed by renaming its file and its id is recorded in the commit
(``eventlog.batches``). The claimer answers before it lets go of the lock; if it died, the
next lock holder finds the claimed file and first looks for the id in the commits made after
the claim: found, it answers with that result (never a second commit); not found, the batch
is committed with the next group. A waiting writer whose ``lock_timeout`` passes withdraws
its batch (deleting the file) and raises ``LockTimeoutError``; if a holder had claimed it
already, it waits for that answer instead.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import json
import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from filelock import BaseFileLock, Timeout

from eventlog import errors
from eventlog.errors import EventLogError, LockTimeoutError, StorageError
from eventlog.store.queue import Queued, WriterQueue
from eventlog.writer import AppendRequest, AppendResult, BatchCheck, WriteTxn

#: How often a waiting writer looks for its reply and probes the lock: every POLL_S at first, then every
#: eighth of the time it has waited so far, up to MAX_POLL_S. Polling every 2-4 ms cost a waiting writer
#: ~3% of a core; at load 10 on 2 cores with replies taking 0.5-1 s that was ~30 ms of CPU per append,
#: as much as a commit.
POLL_S = 0.002
MAX_POLL_S = 0.025
#: A holder that committed queued batches leads the next rounds too while batches keep coming within
#: LINGER_S of each other, for up to HOLD_S (its own caller waits that much longer at most).
LINGER_S = 0.02
HOLD_S = 0.3


class GroupCommit:
    """Submits appends through the writer lock of one store, grouping those that wait."""

    def __init__(self, store: Path, lock: BaseFileLock, *, timeout: float, begin: Callable[[], WriteTxn],
                 checks: Mapping[str, BatchCheck]) -> None:
        self.queue = WriterQueue(store)
        self._lock = lock
        self._lock_file = store / Path(lock.lock_file).name
        self._timeout = timeout
        self._begin = begin
        self._checks = checks

    def submit(self, request: AppendRequest) -> AppendResult:
        """Commit ``request`` (with whatever else is queued) and return its result, or raise its typed error.

        Raises:
            LockTimeoutError: no writer committed it within the lock timeout; nothing was written.
        """
        if self._try_lock():
            try:
                return _raise_or_return(self._lead(own=request))
            finally:
                self._lock.release()
        if request.check is not None and request.check not in self._checks or not self.queue.usable():
            return _raise_or_return(self._wait_for_lock(request))
        queued = self.queue.put(request.frame, _options(request), check=request.check)
        return _raise_or_return(self._wait(queued))

    # --- waiting -----------------------------------------------------------------------------

    def _wait(self, queued: Queued) -> AppendResult | EventLogError:
        start = time.monotonic()
        deadline: float | None = start + self._timeout
        probe = os.open(self._lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            while True:
                reply = self.queue.take_reply(queued.request_id)
                if reply is not None:
                    return _decode(reply)
                if _looks_free(probe) and self._try_lock():
                    try:
                        return self._lead(own=None, mine=queued)
                    finally:
                        self._lock.release()
                if deadline is not None and time.monotonic() > deadline:
                    if self.queue.withdraw(queued):
                        raise _timeout_error(self.queue.store, self._timeout)
                    deadline = None  # claimed: its claimer answers before it lets the lock go, or dies and frees it
                time.sleep(min(MAX_POLL_S, max(POLL_S, (time.monotonic() - start) / 8)))
        finally:
            os.close(probe)

    def _wait_for_lock(self, request: AppendRequest) -> AppendResult | EventLogError:
        """No queueing (a check this process cannot give a leader, or no usable queue folder): take turns."""
        try:
            self._lock.acquire(timeout=self._timeout)
        except Timeout:
            raise _timeout_error(self.queue.store, self._timeout) from None
        try:
            return self._lead(own=request)
        finally:
            self._lock.release()

    def _try_lock(self) -> bool:
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            return False
        return True

    # --- leading (under the lock) -------------------------------------------------------------

    def _lead(self, *, own: AppendRequest | None, mine: Queued | None = None) -> AppendResult | EventLogError:
        """Commit ``own`` (or this writer's queued batch ``mine``) with every batch waiting; answer the others.

        While other writers keep queueing, lead their next rounds too (up to ``HOLD_S``): this
        writer's view of the log (stream versions, chain tip, file list, stock bound) is current
        after its own commit, where a new holder would first have to catch up with it.
        """
        txn = self._begin()
        outcome, served = self._round(txn, own=own, mine=mine)
        until = time.monotonic() + HOLD_S
        while served and time.monotonic() < until and self._more_soon():
            try:
                served = self._round(txn, own=None, mine=None)[1]
            except Exception:  # noqa: BLE001 - this writer's own batch is committed; what it claimed in this
                break  # round stays claimed, and the next lock holder answers it from the log
        if outcome is None:
            raise StorageError("a lock holder without a batch of its own", store=str(self.queue.store))
        return outcome

    def _more_soon(self) -> bool:
        """Whether a batch this writer can commit is queued within ``LINGER_S``."""
        until = time.monotonic() + LINGER_S
        kinds = {None, *self._checks}
        while True:
            if self.queue.waiting(kinds):
                return True
            if time.monotonic() >= until:
                return False
            time.sleep(0.001)

    def _round(self, txn: WriteTxn, *, own: AppendRequest | None,
               mine: Queued | None) -> tuple[AppendResult | EventLogError | None, int]:
        """One group: claim what is queued, commit it with ``own``; the outcome of ``own`` or ``mine``, and
        how many queued batches it answered."""
        queue = self.queue
        version = txn.version
        group: list[tuple[Queued, AppendRequest | None]] = []
        answered: dict[str, AppendResult | EventLogError] = {}
        if queue.folder.is_dir():
            queue.prune()
            for queued in queue.abandoned():
                landed = committed_batch(txn, queued)
                if landed is not None:  # its claimer died after the commit, before answering
                    answered[queued.request_id] = landed
                    if mine is None or queued.request_id != mine.request_id:
                        queue.reply(queued.request_id, _encode(landed))
                    queue.done(queued)
                else:
                    group.append(self._read(queued, answered))
            for queued in queue.waiting({None, *self._checks}):
                claimed = queue.claim(queued, version)
                if claimed is not None:
                    group.append(self._read(claimed, answered))
        if mine is not None and mine.request_id not in answered and not any(
            q.request_id == mine.request_id for q, _ in group
        ):  # answered by the holder before us, between our last look and taking the lock
            reply = queue.take_reply(mine.request_id)
            if reply is None:
                raise StorageError(f"the queued batch {mine.path.name} vanished from {queue.folder} unanswered; "
                                   "it was not committed by this writer: check head() before retrying",
                                   store=str(queue.store), file=str(mine.path))
            return _decode(reply), 0
        requests = [r for _, r in group if r is not None]
        batches = [*requests, own] if own is not None else requests
        try:
            outcomes = txn.append_many(batches, checks=self._checks) if batches else []
        except EventLogError as exc:  # the commit failed as a whole: every batch of it gets the error
            outcomes = [exc] * len(batches)
        by_request = iter(outcomes)
        for queued, request in group:
            if request is None:  # answered already: it could not be read
                continue
            outcome = next(by_request)
            if mine is not None and queued.request_id == mine.request_id:
                answered[queued.request_id] = outcome
            else:
                queue.reply(queued.request_id, _encode(outcome))
            queue.done(queued)
        served = len(group)
        if own is not None:
            return outcomes[-1], served
        return (None if mine is None else answered[mine.request_id]), served

    def _read(self, queued: Queued,
              answered: dict[str, AppendResult | EventLogError]) -> tuple[Queued, AppendRequest | None]:
        """The claimed batch as a request; one that cannot be read is answered with a StorageError (None)."""
        try:
            frame, options = self.queue.read(queued)
            expected = options.get("expected_versions")
            request = AppendRequest(frame, expected_versions=expected, idempotency_key=options.get("idempotency_key"),
                                    schema_json=options.get("schema"), check=queued.check,
                                    request_id=queued.request_id)
        except (OSError, ValueError, KeyError, TypeError) as exc:  # ArrowInvalid is a ValueError
            error = StorageError(f"the queued batch {queued.path.name} cannot be read ({exc}); it was not committed",
                                 store=str(self.queue.store), file=str(queued.path))
            answered[queued.request_id] = error
            self.queue.reply(queued.request_id, _encode(error))
            self.queue.done(queued)
            return queued, None
        return queued, request


def committed_batch(txn: WriteTxn, queued: Queued) -> AppendResult | None:
    """The result of a claimed batch, if a commit after its claim holds its id (``eventlog.batches``)."""
    since = queued.claimed_after or 0
    newer = txn.version - since
    if newer <= 0:
        return None
    for entry in txn.history(newer):
        batches = entry.get("eventlog.batches")
        if entry.get("eventlog.operation") != "append" or batches is None:
            continue
        for first, last, _key, request_id in json.loads(batches):
            if request_id == queued.request_id:
                recorded = dt.datetime.fromisoformat(entry["eventlog.recorded_at"])
                return AppendResult(int(first), int(last), int(entry["version"]), recorded)
    return None


def _looks_free(fd: int) -> bool:
    """Whether the writer lock is free now (a cheap probe on our own descriptor; the lock is taken properly after)."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    fcntl.flock(fd, fcntl.LOCK_UN)
    return True


def _timeout_error(store: Path, timeout: float) -> LockTimeoutError:
    return LockTimeoutError(
        f"could not take the writer lock of {store} within {timeout}s; another writer is busy"
    )


def _options(request: AppendRequest) -> dict[str, Any]:
    return {"expected_versions": dict(request.expected_versions) if request.expected_versions else None,
            "idempotency_key": request.idempotency_key, "schema": request.schema_json}


def _raise_or_return(outcome: AppendResult | EventLogError) -> AppendResult:
    if isinstance(outcome, BaseException):
        raise outcome
    return outcome


def _encode(outcome: AppendResult | EventLogError) -> dict[str, Any]:
    if isinstance(outcome, AppendResult):
        return {"result": {"first_seq": outcome.first_seq, "last_seq": outcome.last_seq, "version": outcome.version,
                           "recorded_at": outcome.recorded_at.isoformat(), "duplicate": outcome.duplicate}}
    attributes = {k: v for k, v in vars(outcome).items() if _plain(v)}
    return {"error": {"type": type(outcome).__name__, "message": str(outcome), "attributes": attributes}}


def _decode(reply: dict[str, Any]) -> AppendResult | EventLogError:
    """The outcome a reply holds: an ``AppendResult``, or the typed error with its message and attributes."""
    if "result" in reply:
        r = reply["result"]
        return AppendResult(int(r["first_seq"]), int(r["last_seq"]), int(r["version"]),
                            dt.datetime.fromisoformat(r["recorded_at"]), duplicate=bool(r["duplicate"]))
    error = reply.get("error") or {}
    cls = getattr(errors, str(error.get("type")), None)
    message = str(error.get("message", "the writer that committed this batch gave no reason"))
    if not (isinstance(cls, type) and issubclass(cls, EventLogError)):  # only our own errors, never a name from a file
        return StorageError(f"a queued batch was answered with an unknown error: {message}")
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    exc.__dict__.update(error.get("attributes") or {})
    return exc


def _plain(value: object) -> bool:
    return value is None or isinstance(value, (str, int, float, bool))


__all__: Sequence[str] = ["GroupCommit", "committed_batch"]
