"""The append-only event log: one Delta table of events, one writer at a time, readers never wait."""

from __future__ import annotations

import json
import os
import shutil
import warnings
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import polars as pl
from filelock import FileLock, Timeout

from eventlog._display import html_table, ms_to_iso
from eventlog.store.atomic import write_json_atomically
from eventlog.store.base import COMPACT_BUDGET, EventStore
from eventlog.store.delta import DeltaEvents, arrow_schema, check_store_path, table_exists
from eventlog.core.evolution import SchemaHistory, check_on_events
from eventlog.core.text import is_utf8
from eventlog.core.validate import Batch, normalize
from eventlog.errors import (
    EventLogError,
    LockTimeoutError,
    MaintenanceWarning,
    StorageError,
    StoreExistsError,
    StoreNotFoundError,
    ValidationError,
)
from eventlog.core.schema import EventSchema, Upcaster
from eventlog.lineage import Lineage, check_origin, check_record, fork, promote, read_inherited, read_lineage
from eventlog.core.cuts import Cut
from eventlog.verify import Check, VerifyReport, verify
from eventlog.grouping import GroupCommit
from eventlog.writer import (
    AppendRequest,
    AppendResult,
    BatchCheck,
    ChainTip,
    ExpectedVersion,
    StreamVersions,
    WriteTxn,
)

_STORE_FILE = "eventlog.json"
_FORMAT = 1
#: A store whose schema evolved (``eventlog.json`` holds the schema history).
_FORMAT_EVOLVED = 2


class EventLog:
    """An append-only log of typed events in ``<store>/events`` (a Delta Lake table).

    Example:
        >>> import tempfile
        >>> from eventlog import EventLog, EventSchema, EventType, Field
        >>> schema = EventSchema([EventType("ping", (Field("n", "int64"),))])
        >>> log = EventLog.create(tempfile.mkdtemp() + "/store", schema)
        >>> log.append([{"event_type": "ping", "stream_id": "a", "n": 1}]).last_seq
        1
        >>> log.scan().select("seq", "stream_id", "n").collect().rows()
        [(1, 'a', 1)]
    """

    def __init__(
        self, path: Path, schema: EventSchema, *, lock_timeout: float, history: SchemaHistory | None = None
    ) -> None:
        # Resolved: the storage drops ".." by text, the OS follows symlinks first; and a later
        # chdir must not move the store under a relative path.
        path = Path(path).resolve()
        self.path = path
        self.lock_timeout = lock_timeout
        self._use_history(history or SchemaHistory.from_meta({"schema": schema.to_json()}))
        self._meta_stamp: tuple[int, int, int] | None = None
        self.storage: EventStore = DeltaEvents(path / "events")
        # thread_local: each thread takes its own flock, so threads sharing this object exclude
        # each other too (a shared one let a second thread in while the first was appending).
        self._lock = FileLock(str(path / ".writer.lock"), timeout=lock_timeout, thread_local=True)
        self._checks: dict[str, BatchCheck] = {}
        self._group = GroupCommit(path, self._lock, timeout=lock_timeout, begin=self._begin, checks=self._checks)
        self._streams = StreamVersions()
        self._chain = ChainTip()
        self._lineage: tuple[tuple[int, int, int] | None, Lineage | None] | None = None

    # --- opening -------------------------------------------------------------------------

    @classmethod
    def create(cls, path: str | os.PathLike[str], schema: EventSchema, *, lock_timeout: float = 60.0) -> EventLog:
        """Create a new store at ``path`` with ``schema``; an existing store is an error.

        Raises:
            StoreExistsError: ``path`` already holds a store.
            StorePathError: the storage cannot keep a table under this path (e.g. it holds "[" or
                "#"); nothing was written.
        """
        root = Path(path).resolve()
        if (root / _STORE_FILE).exists():
            raise StoreExistsError(f"{root} already holds an event store; use EventLog.open")
        check_store_path(root)
        made = [p for p in (root, *root.parents) if not p.exists()]
        root.mkdir(parents=True, exist_ok=True)
        with FileLock(str(root / ".writer.lock"), timeout=lock_timeout):
            if (root / _STORE_FILE).exists():  # another process created it while we waited
                raise StoreExistsError(f"{root} already holds an event store; use EventLog.open")
            if not table_exists(root / "events"):
                events_made = not (root / "events").exists()
                try:
                    DeltaEvents.create(root / "events", arrow_schema(schema.columns()))
                except BaseException:  # re-raised: leave no half-made store behind, not even on Ctrl-C
                    _remove_made(root, made, events=events_made)
                    raise
            write_json_atomically(root / _STORE_FILE, {"format": _FORMAT, "schema": schema.to_json()}, default=str)
        return cls(root, schema, lock_timeout=lock_timeout)

    @classmethod
    def open(cls, path: str | os.PathLike[str], *, lock_timeout: float = 60.0) -> EventLog:
        """Open an existing store.

        Raises:
            StoreNotFoundError: no store at ``path``.
            StorePathError: the storage cannot read a table under this path (e.g. it holds "[").
            StorageError: the store's files are damaged (the message names the file).
        """
        root = Path(path).resolve()
        try:
            history = _read_history(root / _STORE_FILE)
        except FileNotFoundError:
            raise StoreNotFoundError(f"no event store at {root}; create one with EventLog.create or `eventlog init`") from None
        return cls(root, history.schema, lock_timeout=lock_timeout, history=history)

    @staticmethod
    def exists(path: str | os.PathLike[str]) -> bool:
        return (Path(path) / _STORE_FILE).exists()

    # --- reads ---------------------------------------------------------------------------

    def head(self) -> int:
        """The last committed seq (0 when the log is empty), after catching up with other writers."""
        self.reload_schema()  # first: an evolved schema's columns are committed before it is
        self.storage.refresh()
        return self.storage.head_and_last_recorded()[0]

    @property
    def schema_version(self) -> int:
        """The version of the store's schema: 1 at creation, one more per ``evolve``."""
        return self.schema_history.version

    @property
    def upcasters(self) -> tuple[Upcaster, ...]:
        """Every upcaster the schema's versions declared, oldest first (``from_version`` set)."""
        return tuple(u for v in self.schema_history.versions for u in v.upcasters)

    @property
    def version(self) -> int:
        """The Delta table version this process has seen last."""
        return self.storage.version

    def scan(
        self,
        *,
        as_of: int | None = None,
        streams: list[str] | None = None,
        event_types: list[str] | None = None,
        upcast: bool = True,
        ordered: bool = True,
    ) -> pl.LazyFrame:
        """The committed log as a LazyFrame, in seq order (``ordered=False`` skips the sort,
        for aggregations over large logs that do not need it).

        Filters are pushed into the Delta scan: seq cuts and stream / type filters skip
        files by their statistics. The frame is cut at the head seen now, so collecting it
        later still shows the same committed prefix.

        Events committed under an older schema version read as the current schema has them:
        fields added since read as null (or as their default), upcasters compute renamed and
        retyped fields (see ``evolve``). ``upcast=False`` shows every stored column as stored
        instead, columns no longer in the schema included.
        """
        for what, names in (("streams", streams), ("event_types", event_types)):
            if isinstance(names, str):  # list("ab") would silently filter on "a" and "b"
                raise ValidationError(f"give a list of names, e.g. {what}=[{names!r}]", field=what)
            for name in names or ():
                if not isinstance(name, str) or not is_utf8(name):
                    raise ValidationError(f"{name!r} is not a name (text that is valid UTF-8)", field=what)
        head = self.head()
        cut = head if as_of is None else min(int(as_of), head)
        lf = self.scan_range(cut, streams=streams, event_types=event_types, upcast=upcast)
        columns = self.schema.columns() if upcast else self.schema_history.columns
        lf = lf.select(list(columns))
        return lf.sort("seq") if ordered else lf

    def scan_range(
        self,
        cut: int,
        *,
        after: int = 0,
        streams: list[str] | None = None,
        event_types: list[str] | None = None,
        upcast: bool = True,
    ) -> pl.LazyFrame:
        """Events with after < seq <= cut, partition column included (for date pruning).

        Every stored column is there; with ``upcast``, old events read through the schema's
        read rules (a no-op for a store that never evolved).
        """
        lf = self.storage.scan(after=after, cut=cut)
        if streams is not None:
            lf = lf.filter(pl.col("stream_id").is_in(list(streams)))
        if event_types is not None:
            lf = lf.filter(pl.col("event_type").is_in(list(event_types)))
        if upcast and self.schema_history.rules:
            lf = self.schema_history.apply(lf)
        return lf

    def stream_version(self, stream_id: str) -> int:
        """The current version of one stream (0 when it has no events)."""
        head = self.head()
        return self._streams.versions(self, head, [stream_id]).get(stream_id, 0)

    def history(self, limit: int | None = None) -> list[dict[str, Any]]:
        """Delta commit history, newest first, with eventlog's own commit metadata."""
        self.storage.refresh()
        return self.storage.history(limit)

    def head_hash(self) -> str | None:
        """The hash of the newest append commit: the anchor to publish, as Git users publish a tag.

        Each commit's hash covers its events and the hash before it, so a later
        ``verify(expect=<this hash>)`` proves the log still holds every event up to here,
        unchanged. None for an empty log.

        Example:
            >>> import tempfile
            >>> from eventlog import EventLog, EventSchema, EventType
            >>> log = EventLog.create(tempfile.mkdtemp() + "/store", EventSchema([EventType("ping", ())]))
            >>> _ = log.append([{"event_type": "ping", "stream_id": "a"}])
            >>> anchor = log.head_hash()
            >>> log.verify(expect=anchor).ok
            True
        """
        head = self.head()
        return self._chain.at(self.storage, head, self.path)

    def verify(self, *, deep: bool = False, progress: Callable[[int], None] | None = None,
               expect: str | None = None) -> VerifyReport:
        """Recompute the hash chain and check the log's invariants (see ``eventlog.verify``).

        Events an earlier verify checked are not recomputed while the files holding them keep
        their bytes (hashed at I/O speed); ``deep=True`` recomputes every value.
        ``progress``, if given, is called with the number of events checked after each group.
        ``expect``, a hash ``head_hash()`` gave earlier, must still be a commit of the log:
        without it, a log whose newest commits were deleted verifies as a shorter log. It
        implies ``deep``.
        """
        return verify(self, deep=deep, extra_checks=self.lineage_checks(), progress=progress, expect=expect)

    # --- branches ------------------------------------------------------------------------

    @property
    def lineage(self) -> Lineage | None:
        """Where this store was branched from (origin, fork seq, fork hash), or None for a store that is no branch."""
        stamp = _stamp(self.path / "branch.json")
        if self._lineage is None or self._lineage[0] != stamp:
            self._lineage = (stamp, read_lineage(self.path) if stamp is not None else None)
        return self._lineage[1]

    def inherited_commits(self) -> list[dict[str, Any]]:
        """The origin's append commits a branch starts with (seq ranges and hashes), oldest first."""
        return read_inherited(self.path) if self.lineage is not None else []

    def branch(self, path: str | os.PathLike[str], *, at: Cut = None) -> EventLog:
        """A new store at ``path`` whose history is this log up to ``at``, as a branch in Git.

        ``at`` is a seq, a business time (a datetime, a date = the end of that UTC day, an ISO
        string: the longest prefix of the log that happened by then) or the head (None). The
        branch has its own Delta log, schema history, snapshots and projections; its hash
        chain continues from the fork. Data files are shared by hard links (copied where the
        file system cannot link); a fork inside a commit rewrites only the files that hold
        events on both sides of it. Writes to either store never change the other.

        Example:
            >>> import tempfile
            >>> from eventlog import EventLog, EventSchema, EventType
            >>> root = tempfile.mkdtemp()
            >>> log = EventLog.create(root + "/main", EventSchema([EventType("ping", ())]))
            >>> _ = log.append([{"event_type": "ping", "stream_id": "a"}] * 3)
            >>> trial = log.branch(root + "/trial", at=2)
            >>> trial.head(), trial.lineage.fork_seq, trial.verify().ok
            (2, 2, True)
        """
        fork(self, Path(path), at)
        return EventLog.open(path, lock_timeout=self.lock_timeout)

    def origin(self) -> EventLog | None:
        """The store this branch was made from, when it is still there (None otherwise, or for no branch)."""
        lineage = self.lineage
        if lineage is None or not EventLog.exists(lineage.origin):
            return None
        return EventLog.open(lineage.origin, lock_timeout=self.lock_timeout)

    def promote(self, branch: EventLog) -> AppendResult:
        """Append ``branch``'s events after the fork to this log (its origin), all or nothing.

        Fast-forward when this log has not moved since the fork; otherwise the events are
        appended after the head and checked again (new event ids, streams the branch created
        still absent). A retried promote appends nothing and returns the first result.

        Raises:
            PromoteConflictError: an event no longer fits; it is named, and nothing was written.
        """
        with self.writing() as txn:
            return promote(self, branch, txn)

    def lineage_checks(self) -> list[tuple[str, Check]]:
        """verify's checks of a branch: its record of the fork, then its origin's prefix when reachable."""
        lineage = self.lineage
        if lineage is None:
            return []
        checks: list[tuple[str, Check]] = [("branch record", lambda lg, h: check_record(self, lineage))]
        origin = self.origin()
        if origin is None:
            return [*checks, (f"origin (not reachable at {lineage.origin}: not checked)", lambda lg, h: None)]
        return [*checks, ("origin", lambda lg, h: check_origin(lineage, origin))]

    def files(self) -> pl.DataFrame:
        """Live data files with their statistics: path (relative to ``<store>/events``), size_bytes,
        rows, min_seq, max_seq, max_recorded_at and day (the partition date)."""
        self.storage.refresh()
        return self.storage.files()

    # --- writes --------------------------------------------------------------------------

    def append(
        self,
        batch: Batch,
        *,
        expected_versions: Mapping[str, ExpectedVersion] | None = None,
        idempotency_key: str | None = None,
    ) -> AppendResult:
        """Append a batch all or nothing.

        Args:
            batch: a table of any library (polars, pyarrow, pandas, a DuckDB relation: whatever
                exports ``__arrow_c_stream__``), a polars LazyFrame, or a list of dicts; with
                ``event_type``, ``stream_id``, optional ``event_id`` and ``occurred_at``, and payload fields.
            expected_versions: stream_id -> exact version, ``"no_stream"``, ``"exists"`` or
                ``"any"``; checked atomically with the commit.
            idempotency_key: a retry with a key already committed returns the first result.

        Raises:
            ValidationError: the batch does not fit the schema (row and field named).
            ConcurrencyError: an expected version did not hold.
        """
        self.reload_schema()  # validate against the store's schema, even if another process evolved it
        schema = self.schema
        frame = normalize(batch, schema)
        return self.commit(AppendRequest(frame, expected_versions=expected_versions, idempotency_key=idempotency_key,
                                         schema_json=schema.to_json()))

    def commit(self, request: AppendRequest) -> AppendResult:
        """Append one normalized batch through the writer lock, grouped with the batches of writers waiting for it.

        When the lock is free the batch commits at once, together with any batches queued
        meanwhile; when it is busy, the batch is queued (``<store>/.writer-queue/``) and
        committed by the lock's holder or by this writer, whichever takes the lock first
        (``eventlog/grouping.py``). Either way it is checked as a lone append would be and
        acknowledged only once committed.

        Raises:
            ValidationError, ConcurrencyError, IdempotencyConflictError, DuplicateEventError, or
                the error of the batch's domain check: it was refused; nothing of it was written.
            LockTimeoutError: no writer committed it within ``lock_timeout``; nothing was written.
        """
        result = self._group.submit(request)
        if self.auto_compact and self.storage.fragmented():
            self._compact_after_append()
        return result

    #: The write policy compacts a fragmented table (``store/base.py``: ``FILES_PER_DAY``) after
    #: the append that finds it so, so that a commit's cost does not grow with the table.
    #: Switch it off for a log whose compaction is scheduled elsewhere.
    auto_compact = True

    def _compact_after_append(self) -> None:
        """Compact the table, unless another writer holds the lock (it will look again after its own
        append). The append is committed and durable already: a failure here is only a warning."""
        try:
            with self.writing(timeout=0):
                if self.storage.fragmented():  # another writer may have compacted it meanwhile
                    self.storage.compact(budget=max(COMPACT_BUDGET, 2 * self.storage.appended_bytes))
        except LockTimeoutError:
            return
        except (EventLogError, OSError) as exc:
            warnings.warn(f"compacting the fragmented events table of {self.path} after an append failed ({exc}); "
                          "the append is committed, the next one tries again", MaintenanceWarning, stacklevel=4)

    def add_check(self, name: str, check: BatchCheck) -> None:
        """Register a domain check that batches naming it (``AppendRequest.check``) must pass under the lock.

        A writer holding the lock runs it for every such batch of its group, its own and the
        queued ones, so each process that writes those batches registers the same check.
        """
        self._checks[name] = check

    def _begin(self) -> WriteTxn:
        """Under the writer lock: the current schema and commit, a transaction from there."""
        self.reload_schema()
        self.storage.refresh()
        return WriteTxn(self, streams=self._streams, chain=self._chain)

    def evolve(self, new_schema: EventSchema, *, upcasters: Sequence[Upcaster] = ()) -> EventLog:
        """Make ``new_schema`` the store's schema; events already stored read under it.

        Compatible changes: new event types; new fields that are optional (old events read
        null) or have a default (old events read the default); relaxing a field; new
        defaults and bounds (they check new appends only). A removed field is allowed only
        as a rename, when an upcaster of that event type reads it; a new required field
        without a default, or an optional field made required without one, needs an
        upcaster for it. Removing an event type or changing a field's type under the same
        name is never allowed: declare a new field and an upcaster that casts the old one.

        Upcasters (see :class:`~eventlog.core.schema.Upcaster`) are applied at read time to the
        events of their type committed before this version. They are run over every such
        event now: each must compute, give a value where its field is required, and give
        the same values in Polars (``scan``, projections) as in DuckDB (the state fold, the
        SQL views).

        The change runs under the writer lock: new columns are added to the events table
        first (one Delta commit), then ``eventlog.json`` is replaced atomically with the
        new version appended to the schema history. Rejected changes change nothing.

        Returns:
            This log, now on the new schema version (unchanged when nothing differs).

        Raises:
            SchemaEvolutionError: the change is not compatible; the message says why and how.

        Example:
            >>> import tempfile
            >>> from eventlog import EventLog, EventSchema, EventType, Field, Upcaster
            >>> v1 = EventSchema([EventType("ping", (Field("n", "int64"),))])
            >>> log = EventLog.create(tempfile.mkdtemp() + "/store", v1)
            >>> _ = log.append([{"event_type": "ping", "stream_id": "a", "n": 1}])
            >>> v2 = EventSchema([EventType("ping", (Field("count", "int64"), Field("note", "string", required=False)))])
            >>> log.evolve(v2, upcasters=[Upcaster("ping", "count", "n")]).schema_version
            2
            >>> log.scan().select("seq", "count", "note").collect().rows()
            [(1, 1, None)]
        """
        with self.writing() as txn:
            stored = self.storage.columns()
            history = self.schema_history.evolve(new_schema, list(upcasters), first_seq=txn.head + 1, stored=stored)
            if history is self.schema_history:
                return self
            check_on_events(history, self.scan_range(txn.head, upcast=False) if txn.head else None)
            added = {c: t for c, t in history.columns.items() if c not in stored}
            if added:  # a retry after a crash here finds the columns there already
                self.storage.add_columns(added, metadata={"operation": "evolve", "schema_version": str(history.version)})
            write_json_atomically(self.path / _STORE_FILE, {"format": _FORMAT_EVOLVED, **history.to_meta()}, default=str)
            self._use_history(history)
            self._meta_stamp = _stamp(self.path / _STORE_FILE)
        return self

    def _use_history(self, history: SchemaHistory) -> None:
        self.schema_history = history
        self.schema = history.schema

    def reload_schema(self) -> None:
        """Pick up an evolution another process (or EventLog object) made: a stat when there is none."""
        stamp = _stamp(self.path / _STORE_FILE)
        if stamp is None or stamp == self._meta_stamp:
            return
        history = _read_history(self.path / _STORE_FILE)
        if history.schema.to_json() != self.schema.to_json() or len(history.versions) != len(self.schema_history.versions):
            self._use_history(history)
        self._meta_stamp = stamp

    @contextmanager
    def writing(self, *, timeout: float | None = None) -> Iterator[WriteTxn]:
        """Hold the writer lock and see the latest commit: check-then-append is atomic inside.

        ``timeout``: how long to wait for the lock (default ``lock_timeout``; 0: only if it is free).
        """
        wait = self.lock_timeout if timeout is None else timeout
        try:
            self._lock.acquire(timeout=wait)
        except Timeout:
            raise LockTimeoutError(
                f"could not take the writer lock of {self.path} within {wait}s; another writer is busy"
            ) from None
        try:
            yield self._begin()  # a writer always appends under the store's current schema
        finally:
            self._lock.release()

    def compact(self, *, target_size: int | None = None) -> dict[str, Any]:
        """Merge small files. Every query result stays the same; old versions stay readable until vacuum."""
        with self.writing():
            return self.storage.compact(target_size=target_size)

    def vacuum(self, *, retention_hours: float = 168, dry_run: bool = False) -> list[str]:
        """Delete data files no version younger than ``retention_hours`` needs, and orphans of crashed writers.

        Runs under the writer lock: our writers only write files while holding it, so no
        file a running writer is about to commit can be taken. Files the current version
        reads are never removed; time travel to Delta versions older than the retention
        may fail afterwards, while the history by seq is complete in the current version.
        """
        with self.writing():
            return self.storage.vacuum(retention_hours=retention_hours, dry_run=dry_run)

    def __repr__(self) -> str:
        return f"EventLog({str(self.path)!r}, schema={self.schema.name!r})"

    def describe(self) -> list[tuple[str, Any]]:
        """(label, value) facts for a summary: store, schema, head, version, events by type, last commit."""
        head = self.head()
        counts = (
            self.scan(as_of=head, ordered=False).group_by("event_type").len().sort("event_type").collect()
            if head else pl.DataFrame({"event_type": [], "len": []})
        )
        last = next((c for c in self.history(1)), {})
        operation = last.get("eventlog.operation") or last.get("operation", "")
        when = last.get("timestamp")
        return [
            ("store", str(self.path)),
            ("schema", self.schema.name),
            ("head seq", f"{head:,}"),
            ("Delta version", self.version),
            ("events by type", ", ".join(f"{t}: {n:,}" for t, n in counts.rows()) or "none"),
            ("last commit", f"{operation} at {ms_to_iso(when)}" if when else "none"),
            *([("origin", f"{self.lineage.origin} at seq {self.lineage.fork_seq:,}")] if self.lineage else []),
        ]

    def _repr_html_(self) -> str:
        return html_table("EventLog", self.describe())


def _remove_made(root: Path, made: list[Path], *, events: bool) -> None:
    """Undo a failed create: the events folder if it made it, then the folders it made, deepest first."""
    if events:
        shutil.rmtree(root / "events", ignore_errors=True)
    for folder in made:
        if folder == root:
            (root / ".writer.lock").unlink(missing_ok=True)
        try:
            folder.rmdir()
        except OSError:  # not empty: someone else put something there
            break


#: ``eventlog.json`` holds a schema and its history: kilobytes. A larger file is not one.
_MAX_META_BYTES = 16 * 2**20


def _read_history(path: Path) -> SchemaHistory:
    """The schema history in ``eventlog.json``; any damage is a StorageError naming the file.

    Raises:
        FileNotFoundError: there is no such file (no store).
        StorageError: the file cannot be read, is not JSON, or does not hold a schema history.
    """
    size = path.stat().st_size  # FileNotFoundError: no store
    if size > _MAX_META_BYTES:
        raise _meta_error(path, f"it is {size:,} bytes, far more than a schema takes")
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise _meta_error(path, str(exc) if not isinstance(exc, RecursionError) else "nested too deeply") from exc
    if not isinstance(meta, dict):
        raise _meta_error(path, "not a JSON object")
    if meta.get("format", _FORMAT) not in (_FORMAT, _FORMAT_EVOLVED):
        raise _meta_error(path, f"its format {meta['format']!r} is not one this eventlog reads ({_FORMAT} or "
                                f"{_FORMAT_EVOLVED}); a newer eventlog may have written it")
    try:
        return SchemaHistory.from_meta(meta)
    except (TypeError, KeyError, ValueError, AttributeError, IndexError, RecursionError) as exc:
        problem = f"it does not hold a store's schema: {type(exc).__name__}: {exc}"
        raise _meta_error(path, problem if len(problem) <= 200 else problem[:199] + "…") from exc


def _meta_error(path: Path, problem: str) -> StorageError:
    return StorageError(
        f"{path} cannot be read ({problem}): the store's schema is lost; restore the file from a backup, "
        "then run `eventlog verify`", store=str(path.parent), file=str(path))


def _stamp(path: Path) -> tuple[int, int, int] | None:
    """Identifies one version of a file: it is only ever replaced by a rename (a new inode)."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size
