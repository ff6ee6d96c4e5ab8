"""The writer queue: batches that found the writer lock busy, waiting to be committed by its holder.

::

    <store>/.writer-queue/
      <ns>-<id>-<check>.req             a queued batch: Arrow IPC, the normalized frame, its options
                                         (expected versions, idempotency key, schema) in the schema metadata
      <ns>-<id>-<check>.req.taken-<v>   claimed by the lock holder, which had seen Delta version <v>
      <id>.reply                        the outcome (JSON), written once the commit is durable

Every file appears by a rename, so a reader sees all of it or nothing. None is fsynced: a
batch is acknowledged only by its reply, which follows the (synced) commit, and after a power
loss the waiting writer is gone as well. ``<ns>`` is the time of queueing in nanoseconds, so
that sorting the names gives the order of arrival; ``<check>`` names the domain check the
batch needs (``-`` for none), so that a lock holder that cannot run it leaves it queued.

The protocol (``eventlog/grouping.py``): the waiting writer withdraws its batch by deleting
the ``.req`` file; the lock holder claims it by renaming it. Exactly one of the two succeeds,
so a batch that timed out is never committed, and a claimed batch is always answered: by its
claimer, or — when that one died — by the next lock holder, which finds the ``.taken`` file
and first looks in the commits after ``<v>`` for the batch's id.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from eventlog.store.atomic import STALE_AFTER_S, TEMP_PREFIX, remove_stale, temp_files
from eventlog.store.paths import folder_outside

QUEUE_FOLDER = ".writer-queue"
_OPTIONS_KEY = b"eventlog.request"
_TAKEN = ".taken-"
_NO_CHECK = "-"


@dataclass(frozen=True)
class Queued:
    """One queued (or claimed) batch file."""

    path: Path
    request_id: str
    check: str | None
    #: For a claimed file: the Delta version its claimer had seen (its commit, if any, came after).
    claimed_after: int | None = None


class WriterQueue:
    """The queue folder of one store (made when first used)."""

    def __init__(self, store: Path) -> None:
        self.store = store
        self.folder = store / QUEUE_FOLDER

    def usable(self) -> bool:
        """False when the folder cannot be made, or is not a real folder inside the store (then writers wait
        for the lock instead of queueing: nothing is written through a symlink)."""
        try:
            self.folder.mkdir(exist_ok=True)
        except OSError:
            return False
        return folder_outside(self.store, self.folder) is None and self.folder.is_dir()

    # --- the waiting writer ---------------------------------------------------------------------

    def put(self, frame: pl.DataFrame, options: dict[str, Any], *, check: str | None) -> Queued:
        """Queue ``frame`` with its ``options`` (JSON); returns the file."""
        request_id = uuid.uuid4().hex
        name = f"{time.time_ns():020d}-{request_id}-{check or _NO_CHECK}.req"
        table = frame.to_arrow()
        table = table.replace_schema_metadata({_OPTIONS_KEY: json.dumps(options, default=str).encode()})
        path = self.folder / name
        tmp = self.folder / f"{TEMP_PREFIX}{name}"
        try:
            with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
                writer.write_table(table)
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise
        return Queued(path, request_id, check)

    def withdraw(self, queued: Queued) -> bool:
        """Take back a batch no lock holder has claimed; False when one has (it will be answered)."""
        try:
            queued.path.unlink()
        except FileNotFoundError:
            return False
        return True

    def take_reply(self, request_id: str) -> dict[str, Any] | None:
        """The reply to ``request_id``, removed from the folder; None while there is none."""
        path = self.folder / f"{request_id}.reply"
        try:
            data = json.loads(path.read_bytes())
        except FileNotFoundError:
            return None
        path.unlink(missing_ok=True)
        return data if isinstance(data, dict) else {}

    # --- the lock holder ------------------------------------------------------------------------

    def waiting(self, checks: set[str | None]) -> list[Queued]:
        """Unclaimed batches whose check is one of ``checks``, oldest first."""
        return [q for q in self._listing() if q.claimed_after is None and q.check in checks]

    def abandoned(self) -> list[Queued]:
        """Batches claimed by a lock holder that died before answering them, oldest first.

        Only the lock holder calls this: while it holds the lock no one else is answering.
        """
        return [q for q in self._listing() if q.claimed_after is not None]

    def claim(self, queued: Queued, version: int) -> Queued | None:
        """Claim a waiting batch (None: its writer withdrew it meanwhile)."""
        taken = queued.path.with_name(f"{queued.path.name}{_TAKEN}{version}")
        try:
            os.rename(queued.path, taken)
        except FileNotFoundError:
            return None
        return Queued(taken, queued.request_id, queued.check, version)

    def read(self, queued: Queued) -> tuple[pl.DataFrame, dict[str, Any]]:
        """The batch and its options.

        Raises:
            OSError, pa.ArrowInvalid, ValueError: the file is not a batch this queue wrote.
        """
        with pa.memory_map(str(queued.path), "r") as source:
            table = pa.ipc.open_file(source).read_all()
        options = json.loads((table.schema.metadata or {})[_OPTIONS_KEY])
        if not isinstance(options, dict):
            raise ValueError(f"{queued.path.name}: its options are not a JSON object")
        frame = pl.from_arrow(table.replace_schema_metadata(None))
        if not isinstance(frame, pl.DataFrame):
            raise ValueError(f"{queued.path.name}: not a table")
        return frame, options

    def reply(self, request_id: str, data: dict[str, Any]) -> None:
        """Answer ``request_id``: the file appears whole (a rename)."""
        path = self.folder / f"{request_id}.reply"
        tmp = self.folder / f"{TEMP_PREFIX}{request_id}.reply"
        tmp.write_text(json.dumps(data, default=str), encoding="utf-8")
        os.replace(tmp, path)

    def done(self, queued: Queued) -> None:
        queued.path.unlink(missing_ok=True)

    def prune(self) -> None:
        """Remove what crashed writers left: temp files, and replies no one came for within the hour."""
        remove_stale(temp_files(self.folder))
        remove_stale(self.folder.glob("*.reply"), older_than_s=STALE_AFTER_S)

    def _listing(self) -> list[Queued]:
        out = []
        try:
            entries = sorted(os.scandir(self.folder), key=lambda e: e.name)
        except FileNotFoundError:
            return []
        for entry in entries:
            if entry.name.startswith(TEMP_PREFIX) or not entry.is_file(follow_symlinks=False):
                continue  # a symlink planted in the queue is never read
            queued = _parse(self.folder / entry.name)
            if queued is not None:
                out.append(queued)
        return out


def _parse(path: Path) -> Queued | None:
    name = path.name
    claimed_after = None
    if _TAKEN in name:
        name, _, version = name.partition(_TAKEN)
        if not version.isdigit():
            return None
        claimed_after = int(version)
    if not name.endswith(".req"):
        return None
    parts = name.removesuffix(".req").split("-", 2)
    if len(parts) != 3 or not parts[0].isdigit() or len(parts[1]) != 32:
        return None
    return Queued(path, parts[1], None if parts[2] == _NO_CHECK else parts[2], claimed_after)
