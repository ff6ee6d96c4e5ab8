"""Branches of a log, as in Git: fork at a cut, check a branch against its origin, promote it back.

A branch is a store of its own (its Delta log, schema history, snapshots, projections) whose
first ``fork_seq`` events are the origin's: its events table starts with one commit over the
origin's data files, hard-linked (``store/fork.py``), and its hash chain continues from the
origin's. What it inherited is kept beside it:

- ``branch.json``: where it came from (the origin's path and Delta table id, the fork seq and
  the chain hash at the fork) and how its files were made (linked, copied, rewritten);
- ``branch-commits.parquet``: the origin's append commits up to the fork (seq ranges and
  hashes), so the branch verifies its whole chain by itself. A fork inside a commit cuts that
  commit: its record covers the events up to the fork, hashed anew, linked to the one before.

Both are written before the fork commit, which records their digests, and ``eventlog.json``
comes last: until it exists the folder is no store, and a retried ``branch`` clears what the
failed one left (it marks the folder as its own with ``.branching`` first).

The module sits below ``EventLog`` (which calls it) and reads a log through ``BranchLog``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Protocol

import polars as pl

from eventlog.core.chain import commit_hash, events_hash
from eventlog.core.cuts import Cut, parse_point
from eventlog.core.evolution import SchemaHistory
from eventlog.core.validate import normalize
from eventlog.errors import (
    ConcurrencyError,
    DuplicateEventError,
    InsufficientStockError,
    PromoteConflictError,
    StorageError,
    StoreExistsError,
    ValidationError,
)
from eventlog.store.atomic import atomic_file, write_json_atomically
from eventlog.store.base import EventStore
from eventlog.store.damage import check_store_path
from eventlog.store.delta import DeltaEvents
from eventlog.store.fork import fork_table
from eventlog.verify.events import check_events
from eventlog.verify.report import Violation
from eventlog.writer import IDEMPOTENCY_APP, AppendResult, WriteTxn

BRANCH_FILE = "branch.json"
INHERITED_FILE = "branch-commits.parquet"
#: Written first into a branch being made: a folder holding it and no store is a failed branch's.
MARKER = ".branching"
STORE_FILE = "eventlog.json"

#: The columns of an inherited commit record (what verify's chain reads of an append commit).
COMMIT_SCHEMA = {"first_seq": pl.Int64, "last_seq": pl.Int64, "prev_hash": pl.String, "events_hash": pl.String,
                 "hash": pl.String, "schema_version": pl.Int64, "recorded_at": pl.String,
                 "idempotency_key": pl.String}
#: The idempotency key a promote commits under: the branch's newest commit hash it brings over.
PROMOTE_KEY = "promote:"


@dataclass(frozen=True)
class Lineage:
    """Where a branch came from: the origin store, the fork seq and the chain hash at the fork."""

    origin: str
    origin_table_id: str
    origin_version: int
    fork_seq: int
    fork_hash: str | None  # None: forked at seq 0
    base_seq: int  # the last whole origin commit at or before the fork
    base_hash: str | None
    inherited_sha256: str
    linked: int
    copied: int
    rewritten: int
    created_at: str


class BranchLog(Protocol):
    """What this module reads of a log (an ``EventLog``)."""

    @property
    def path(self) -> Path: ...

    @property
    def storage(self) -> EventStore: ...

    @property
    def schema_history(self) -> SchemaHistory: ...

    @property
    def lineage(self) -> Lineage | None: ...

    def head(self) -> int: ...

    def writing(self) -> AbstractContextManager[WriteTxn]: ...

    def head_hash(self) -> str | None: ...

    def history(self, limit: int | None = None) -> list[dict[str, Any]]: ...

    def inherited_commits(self) -> list[dict[str, Any]]: ...

    def scan_range(self, cut: int, *, after: int = 0, streams: list[str] | None = None,
                   event_types: list[str] | None = None, upcast: bool = True) -> pl.LazyFrame: ...


# --- reading a branch's record -----------------------------------------------------------------


def read_lineage(root: Path) -> Lineage | None:
    """The branch record of the store at ``root`` (None for a store that is no branch)."""
    path = root / BRANCH_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return Lineage(**data)
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        raise StorageError(f"{path} cannot be read ({exc}): the branch's record of its origin is lost; restore it "
                           "from a backup", store=str(root), file=str(path)) from exc


def read_inherited(root: Path) -> list[dict[str, Any]]:
    """The origin's commits a branch inherited, oldest first (verify links its own chain to them)."""
    path = root / INHERITED_FILE
    try:
        frame = pl.read_parquet(path)
        return frame.select(pl.col(c).cast(t) if c in frame.columns else pl.lit(None, dtype=t).alias(c)
                            for c, t in COMMIT_SCHEMA.items()).to_dicts()
    except (OSError, pl.exceptions.PolarsError) as exc:
        raise StorageError(f"{path} cannot be read ({exc}): the branch's inherited commits are lost; restore "
                           "the file from a backup", store=str(root), file=str(path)) from exc


# --- making a branch --------------------------------------------------------------------------


def fork_point(log: BranchLog, at: Cut) -> int:
    """The seq a branch forks at: ``at`` as a seq, or the longest prefix that happened by a business time.

    A branch is a prefix of the log (its chain and stream versions continue from there), so
    ``at`` a date or datetime ``t`` forks after the last event of the longest run from seq 1
    in which every event occurred by ``t``; for a log recorded in business-time order that is
    everything up to ``t``.
    """
    head = log.head()
    point = parse_point(at, name="at")
    if point is None:
        return head
    if isinstance(point, int):
        if point > head:
            raise ValidationError(f"at={point} is past the head of {log.path} (seq {head}); fork at a seq up to it",
                                  field="at")
        return point
    later = (log.scan_range(head, upcast=False).filter(pl.col("occurred_at") > point)
             .select(pl.col("seq").min()).collect().item())
    return head if later is None else int(later) - 1


def fork(log: BranchLog, target: Path, at: Cut, *,
         before_done: Callable[[Path, int], object] | None = None) -> Lineage:
    """Make the branch of ``log`` at ``target`` (see the module docstring); ``before_done(root, fork_seq)``
    adds what a domain keeps beside its log (an inventory's snapshots) before the store appears.

    Raises:
        StoreExistsError: ``target`` holds a store, or files that are not a failed branch's.
        ValidationError: ``at`` is no cut of this log, or ``target`` is inside the origin.
    """
    storage = log.storage
    if not isinstance(storage, DeltaEvents):
        raise ValidationError(f"{log.path} is not kept in Delta Lake: only a Delta store can be branched", field="path")
    root = Path(target).resolve()
    if root == log.path or root.is_relative_to(log.path) or log.path.is_relative_to(root):
        raise ValidationError(f"a branch is a store of its own: {root} cannot be inside {log.path} or hold it",
                              field="path")
    check_store_path(root)
    # Under the origin's writer lock: no compaction or vacuum of it removes a file being linked.
    with log.writing():
        cut = fork_point(log, at)
        records, base_seq, base_hash = _inherited(log, cut)
        made = not root.exists()
        _check_free(root)
        try:
            _claim(root, log.path)
            lineage = _make(log, storage, root, cut, records, base_seq, base_hash, before_done)
        except BaseException:  # re-raised: a failed branch leaves nothing behind, not even on Ctrl-C
            if not (root / STORE_FILE).exists():
                _abandon(root, made=made)
            raise
    (root / MARKER).unlink(missing_ok=True)
    return lineage


def _make(log: BranchLog, storage: DeltaEvents, root: Path, cut: int, records: list[dict[str, Any]], base_seq: int,
          base_hash: str | None, before_done: Callable[[Path, int], object] | None) -> Lineage:
    """The branch's files in the order that makes ``eventlog.json`` (written last) its commit point."""
    fork_hash = records[-1]["hash"] if records else None
    body = _records_frame(records)
    with atomic_file(root / INHERITED_FILE) as tmp:
        body.write_parquet(tmp)
    inherited_sha = hashlib.sha256((root / INHERITED_FILE).read_bytes()).hexdigest()
    table_id = storage.table_id()
    metadata = {"operation": "branch", "origin": str(log.path), "origin_table_id": table_id,
                "fork_seq": str(cut), "last_seq": str(cut), "inherited_sha256": inherited_sha}
    if fork_hash is not None:
        metadata["hash"] = fork_hash  # the chain tip a first append on the branch links to
    files = fork_table(storage, root / "events", cut=cut, metadata=metadata,
                       transactions=_idempotency_keys(storage, records[:-1] if cut > base_seq else records))
    lineage = Lineage(origin=str(log.path), origin_table_id=table_id, origin_version=storage.version,
                      fork_seq=cut, fork_hash=fork_hash, base_seq=base_seq, base_hash=base_hash,
                      inherited_sha256=inherited_sha, linked=files.linked, copied=files.copied,
                      rewritten=files.rewritten, created_at=dt.datetime.now(dt.timezone.utc).isoformat())
    write_json_atomically(root / BRANCH_FILE, asdict(lineage))
    kept = SchemaHistory([v for v in log.schema_history.versions if v.first_seq <= cut + 1])
    if before_done is not None:
        before_done(root, cut)
    write_json_atomically(root / STORE_FILE, {"format": 2 if len(kept.versions) > 1 else 1, **kept.to_meta()},
                          default=str)  # the store exists from here
    return lineage


def _idempotency_keys(storage: EventStore, whole: list[dict[str, Any]]) -> dict[str, int]:
    """The origin's idempotency keys of the whole commits the branch inherits, as Delta app transactions.

    A retry on the branch of a batch committed before the fork is then answered as on the
    origin. A commit the fork cuts keeps no key: the branch holds only part of its batch.
    """
    out: dict[str, int] = {}
    for commit in whole:
        # A group commit (several batches in one commit) lists each batch's key and seq range.
        grouped = commit.get("batches")
        keyed = [(commit.get("idempotency_key"), commit["first_seq"], commit["last_seq"])] if grouped is None else [
            (key, first, last) for first, last, key, _ in json.loads(grouped)]
        for key, first, last in keyed:
            if key is None:
                continue
            out[f"{IDEMPOTENCY_APP}.first:{key}"] = first
            out[f"{IDEMPOTENCY_APP}.last:{key}"] = last
            digest = storage.transaction_version(f"{IDEMPOTENCY_APP}.digest:{key}")
            if digest is not None:
                out[f"{IDEMPOTENCY_APP}.digest:{key}"] = digest
    return out


def _abandon(root: Path, *, made: bool) -> None:
    """Remove what a failed branch wrote (its own folder too when it made it); errors leave it to a retry."""
    try:
        _clear(root)
        (root / MARKER).unlink(missing_ok=True)
        if made:
            root.rmdir()
    except OSError:
        pass  # the marker stays: the next branch() at this path clears the rest


def _check_free(root: Path) -> None:
    """``root`` may take a branch: new or empty, or left by a failed branch (marked as such)."""
    if (root / STORE_FILE).exists():
        raise StoreExistsError(f"{root} already holds an event store; pick another path for the branch")
    if root.exists() and any(root.iterdir()) and not (root / MARKER).is_file():
        raise StoreExistsError(f"{root} is not empty and holds no store; a branch needs a new or empty folder")


def _claim(root: Path, origin: Path) -> None:
    """Make ``root`` ours, removing what a failed branch left there."""
    if root.exists():
        _clear(root)
    root.mkdir(parents=True, exist_ok=True)
    write_json_atomically(root / MARKER, {"origin": str(origin), "pid": os.getpid()})


def _clear(root: Path) -> None:
    """Remove the files a branch writes into ``root`` (the marker last): nothing else is touched."""
    for name in ("events", "snapshots"):
        if (root / name).is_dir() and not (root / name).is_symlink():
            shutil.rmtree(root / name)
    for name in (INHERITED_FILE, BRANCH_FILE, STORE_FILE):
        (root / name).unlink(missing_ok=True)
    for leftover in root.glob(".tmp-*"):
        if leftover.is_file():
            leftover.unlink()


def _inherited(log: BranchLog, cut: int) -> tuple[list[dict[str, Any]], int, str | None]:
    """The origin's append commits up to ``cut`` (the one holding it cut there), the last whole one's seq and hash."""
    commits = all_append_commits(log)
    whole = [c for c in commits if c["last_seq"] <= cut]
    base_seq, base_hash = (whole[-1]["last_seq"], whole[-1]["hash"]) if whole else (0, None)
    if base_seq == cut:
        return whole, base_seq, base_hash
    cut_commit = next(c for c in commits if c["first_seq"] == base_seq + 1)
    partial = _partial(log, cut_commit, base_hash, cut)
    return [*whole, partial], base_seq, base_hash


def _partial(log: BranchLog, commit: dict[str, Any], previous: str | None, cut: int) -> dict[str, Any]:
    """The record of ``commit`` cut at ``cut``: its events up to there, hashed with its schema version's columns."""
    first = commit["first_seq"]
    columns = log.schema_history.schema_of(commit["schema_version"])
    if columns is None:
        raise StorageError(f"{log.path}: commit at seq {first} names schema version {commit['schema_version']}, which "
                           "eventlog.json does not hold; run verify", store=str(log.path))
    events = log.scan_range(cut, after=first - 1, upcast=False).sort("seq").collect()
    digest = events_hash(events, columns.columns())
    return {**commit, "last_seq": cut, "events_hash": digest, "hash": commit_hash(previous, first, cut, digest)}


def all_append_commits(log: BranchLog) -> list[dict[str, Any]]:
    """Every append commit of ``log``, inherited ones first, oldest first, in the inherited records' shape."""
    own: list[dict[str, Any]] = []
    for entry in log.history():
        if entry.get("eventlog.operation") != "append":
            continue
        own.append({"first_seq": int(entry["eventlog.first_seq"]), "last_seq": int(entry["eventlog.last_seq"]),
                    "prev_hash": entry.get("eventlog.prev_hash"), "events_hash": entry.get("eventlog.events_hash"),
                    "hash": entry.get("eventlog.hash"), "schema_version": int(entry.get("eventlog.schema_version", 1)),
                    "recorded_at": entry.get("eventlog.recorded_at"),
                    "idempotency_key": entry.get("eventlog.idempotency_key"), "version": int(entry["version"]),
                    **({"batches": entry["eventlog.batches"]} if "eventlog.batches" in entry else {})})
    own.sort(key=lambda c: c["version"])
    return [*log.inherited_commits(), *({k: v for k, v in c.items() if k != "version"} for c in own)]


def _records_frame(records: list[dict[str, Any]]) -> pl.DataFrame:
    return pl.DataFrame([{k: r.get(k) for k in COMMIT_SCHEMA} for r in records], schema=COMMIT_SCHEMA)


# --- checking a branch -------------------------------------------------------------------------


def check_record(log: BranchLog, lineage: Lineage) -> Violation | None:
    """``branch.json`` and the inherited commits are what the fork commit recorded."""
    fork_entry = _fork_entry(log)
    if fork_entry is None:
        return Violation("origin", "branch.json names an origin, but the events table has no fork commit",
                         file=BRANCH_FILE)
    recorded = {"origin": fork_entry.get("eventlog.origin"), "fork_seq": fork_entry.get("eventlog.fork_seq"),
                "hash": fork_entry.get("eventlog.hash"), "inherited": fork_entry.get("eventlog.inherited_sha256")}
    claimed = {"origin": lineage.origin, "fork_seq": str(lineage.fork_seq), "hash": lineage.fork_hash,
               "inherited": lineage.inherited_sha256}
    if recorded != claimed:
        wrong = next(k for k in recorded if recorded[k] != claimed[k])
        return Violation("origin", f"branch.json's {wrong} is not what the fork commit recorded "
                         f"({claimed[wrong]!r} vs {recorded[wrong]!r}): it was edited", version=0, file=BRANCH_FILE)
    digest = hashlib.sha256((log.path / INHERITED_FILE).read_bytes()).hexdigest()
    if digest != lineage.inherited_sha256:
        return Violation("origin", "the inherited commits differ from what the fork commit recorded: the file was "
                         "changed", version=0, file=INHERITED_FILE)
    return None


def _fork_entry(log: BranchLog) -> dict[str, Any] | None:
    return next((e for e in reversed(log.history()) if e.get("eventlog.operation") == "branch"), None)


def check_origin(lineage: Lineage, origin: BranchLog) -> Violation | None:
    """The origin still holds the prefix the branch was made from: the same anchor as ``verify(expect=...)``.

    Its chain is recomputed up to the last whole commit before the fork and must end in the
    hash the branch recorded; a fork inside a commit also needs the origin's events up to the
    fork to hash as the branch's cut record says.
    """
    where = f"the origin {lineage.origin}"
    if origin.storage.table_id() != lineage.origin_table_id:
        return Violation("origin", f"{where} is another store now (its Delta table id changed since the fork)")
    if origin.head() < lineage.fork_seq:
        return Violation("origin", f"{where} ends at seq {origin.head()}, before the fork at seq {lineage.fork_seq}: "
                         "its tail was truncated", seq=origin.head() + 1)
    commits = [c for c in all_append_commits(origin) if c["last_seq"] <= lineage.base_seq]
    # verify's one pass keys commits by a version: their order is all it needs here.
    table = pl.DataFrame([{**c, "version": i} for i, c in enumerate(commits)],
                         schema={**COMMIT_SCHEMA, "version": pl.Int64})
    found = check_events(origin, lineage.base_seq, table)  # type: ignore[arg-type]
    if found is not None:
        return Violation("origin", f"{where} no longer holds the prefix this branch was made from: {found}",
                         seq=found.seq)
    tip = commits[-1]["hash"] if commits else None
    if tip != lineage.base_hash:
        return Violation("origin", f"{where} holds commit hash {tip} at seq {lineage.base_seq}, the branch recorded "
                         f"{lineage.base_hash}: the origin was rewritten", seq=lineage.base_seq)
    if lineage.fork_seq > lineage.base_seq:
        cut = next((c for c in all_append_commits(origin) if c["first_seq"] == lineage.base_seq + 1), None)
        if cut is None:
            return Violation("origin", f"{where} has no commit starting at seq {lineage.base_seq + 1}",
                             seq=lineage.base_seq + 1)
        partial = _partial(origin, cut, lineage.base_hash, lineage.fork_seq)
        if partial["hash"] != lineage.fork_hash:
            return Violation("origin", f"{where}'s events {lineage.base_seq + 1}..{lineage.fork_seq} differ from the "
                             "branch's first ones (the commit the fork cut)", seq=lineage.base_seq + 1)
    return None


# --- promoting a branch ----------------------------------------------------------------------


def promote(origin: BranchLog, branch: BranchLog, txn: WriteTxn, *,
            check: Callable[[WriteTxn, pl.DataFrame], None] | None = None) -> AppendResult:
    """Append the branch's events after the fork (or after its last promote) to ``origin``, all or nothing.

    Run under the origin's writer lock (``txn``). Fast-forward when the origin has not moved
    since: the events keep their seqs and stream versions. Otherwise they are appended after
    the origin's head and checked again as any append is: their event ids must be new there, a
    stream the branch created must still not exist, and ``check`` (the inventory's stock check)
    must pass. The commit's idempotency key is the newest branch commit hash it brings over, so
    a retried promote returns the first result and appends nothing.

    Raises:
        ValidationError: ``branch`` is not a branch of ``origin``.
        PromoteConflictError: an event no longer fits the origin (named, with the reason).
    """
    lineage = branch.lineage
    if lineage is None:
        raise ValidationError(f"{branch.path} is not a branch (it has no {BRANCH_FILE})", field="branch")
    if Path(lineage.origin) != origin.path or origin.storage.table_id() != lineage.origin_table_id:
        raise ValidationError(f"{branch.path} is a branch of {lineage.origin}, not of {origin.path}", field="branch")
    own = [c for c in all_append_commits(branch) if c["first_seq"] > lineage.fork_seq]
    if not own:
        return AppendResult(txn.head + 1, txn.head, origin.storage.version, dt.datetime.now(dt.timezone.utc),
                            duplicate=True)
    done = _promoted(origin.storage, own)
    if done == len(own):
        return _first_result(origin, own[-1]["hash"])
    start = own[done - 1]["last_seq"] if done else lineage.fork_seq
    start_hash = own[done - 1]["hash"] if done else lineage.fork_hash
    events = branch.scan_range(own[-1]["last_seq"], after=start).sort("seq").collect()
    columns = [c for c in ("event_type", "stream_id", "event_id", "occurred_at", *origin.schema_history.schema.payload)
               if c in events.columns]
    frame = normalize(events.select(columns), origin.schema_history.schema)
    fast_forward = txn.head == start and origin.head_hash() == start_hash
    created = events.filter(pl.col("stream_version") == 1).get_column("stream_id").unique().to_list()
    expected: dict[str, Any] = {} if fast_forward else {s: "no_stream" for s in created}
    try:
        if check is not None and not fast_forward:
            check(txn, frame)
        return txn.append(frame, expected_versions=expected, idempotency_key=PROMOTE_KEY + own[-1]["hash"])
    except ConcurrencyError as exc:
        row = events.with_row_index("__row").filter(pl.col("stream_id") == exc.stream).row(0, named=True)
        raise PromoteConflictError(branch_seq=row["seq"], event_id=row["event_id"], stream=exc.stream,
                                   reason=f"the branch created stream {exc.stream!r}, which the origin now holds "
                                          f"(version {exc.actual})") from exc
    except (DuplicateEventError, InsufficientStockError) as exc:
        index = exc.row or 0
        row = events.row(index, named=True)
        raise PromoteConflictError(branch_seq=row["seq"], event_id=row["event_id"], stream=row["stream_id"],
                                   reason=str(exc).split(": ", 1)[-1]) from exc


def _promoted(storage: EventStore, own: list[dict[str, Any]]) -> int:
    """How many of the branch's own commits (oldest first) earlier promotes brought over."""
    for i in range(len(own) - 1, -1, -1):
        if storage.transaction_version(f"{IDEMPOTENCY_APP}.first:{PROMOTE_KEY}{own[i]['hash']}") is not None:
            return i + 1
    return 0


def _first_result(origin: BranchLog, tip: str) -> AppendResult:
    key = PROMOTE_KEY + tip
    first = origin.storage.transaction_version(f"{IDEMPOTENCY_APP}.first:{key}") or 0
    last = origin.storage.transaction_version(f"{IDEMPOTENCY_APP}.last:{key}") or 0
    recorded = origin.scan_range(last, after=first - 1).select(pl.col("recorded_at").min()).collect().item()
    return AppendResult(first, last, origin.storage.version, recorded, duplicate=True)
