"""The append-only event log: one Delta table of events, one writer at a time, readers never wait."""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import polars as pl
from filelock import FileLock, Timeout

from eventlog._display import html_table, ms_to_iso
from eventlog.core.chain import GENESIS, commit_hash, events_hash
from eventlog.store.atomic import atomic_file, remove_stale, temp_files, write_json_atomically
from eventlog.store.base import EventStore
from eventlog.store.delta import DeltaEvents, arrow_schema, check_store_path, table_exists
from eventlog.core.evolution import SchemaHistory, check_on_events
from eventlog.core.ids import uuid7_series
from eventlog.core.text import is_utf8
from eventlog.core.validate import Batch, first_row, normalize
from eventlog.errors import (
    ConcurrencyError,
    DuplicateEventError,
    IntegrityError,
    LockTimeoutError,
    StorageError,
    StoreExistsError,
    StoreNotFoundError,
    ValidationError,
)
from eventlog.core.schema import PARTITION_COLUMN, EventSchema, Upcaster
from eventlog.verify import VerifyReport, verify


ExpectedVersion = int | Literal["no_stream", "exists", "any"]
_STORE_FILE = "eventlog.json"
_FORMAT = 1
#: A store whose schema evolved (``eventlog.json`` holds the schema history).
_FORMAT_EVOLVED = 2
_IDEMPOTENCY_APP = "eventlog.idempotency"


@dataclass(frozen=True)
class AppendResult:
    """Where a committed batch landed in the log."""

    first_seq: int
    last_seq: int
    version: int
    recorded_at: dt.datetime
    duplicate: bool = False

    @property
    def count(self) -> int:
        return self.last_seq - self.first_seq + 1


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
        self._streams = _StreamVersions()
        self._tip: tuple[int, str] | None = None  # (last seq, hash) of the newest append commit

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
            meta = _read_meta(root / _STORE_FILE)
        except FileNotFoundError:
            raise StoreNotFoundError(f"no event store at {root}; create one with EventLog.create or `eventlog init`") from None
        history = SchemaHistory.from_meta(meta)
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
        lf = self.storage.scan().filter(pl.col("seq") <= cut)
        if after:
            lf = lf.filter(pl.col("seq") > after)
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

    def verify(self, *, progress: Callable[[int], None] | None = None) -> VerifyReport:
        """Recompute the hash chain and check the log's invariants (see ``eventlog.verify``).

        ``progress``, if given, is called with the number of events checked after each group.
        """
        return verify(self, progress=progress)

    def _chain_tip(self, head: int) -> str | None:
        """The hash of the append commit that ends at ``head`` (None for an empty log)."""
        if head == 0:
            return None
        if self._tip is not None and self._tip[0] == head:
            return self._tip[1]
        limit = 16
        while True:
            entries = self.storage.history(limit)
            for entry in entries:
                if entry.get("eventlog.operation") == "append" and int(entry["eventlog.last_seq"]) == head:
                    # A commit made before the chain existed has no hash: the chain restarts
                    # after it, and verify reports the unchained commit.
                    tip = entry.get("eventlog.hash")
                    if tip is not None:
                        self._tip = (head, tip)
                    return tip
            if len(entries) < limit:
                raise IntegrityError(f"{self.path}: no append commit ends at the head seq {head}; run verify")
            limit *= 4

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
        with self.writing() as txn:
            return txn.append(frame, expected_versions=expected_versions, idempotency_key=idempotency_key, schema=schema)

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
        history = SchemaHistory.from_meta(_read_meta(self.path / _STORE_FILE))
        if history.schema.to_json() != self.schema.to_json() or len(history.versions) != len(self.schema_history.versions):
            self._use_history(history)
        self._meta_stamp = stamp

    @contextmanager
    def writing(self) -> Iterator[_WriteTxn]:
        """Hold the writer lock and see the latest commit: check-then-append is atomic inside."""
        try:
            self._lock.acquire()
        except Timeout:
            raise LockTimeoutError(
                f"could not take the writer lock of {self.path} within {self.lock_timeout}s; another writer is busy"
            ) from None
        try:
            self.reload_schema()  # a writer always appends under the store's current schema
            self.storage.refresh()
            yield _WriteTxn(self)
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
        ]

    def _repr_html_(self) -> str:
        return html_table("EventLog", self.describe())


class _WriteTxn:
    """What a writer may do while holding the lock."""

    def __init__(self, log: EventLog) -> None:
        self._log = log
        self.head, self.last_recorded = log.storage.head_and_last_recorded()
        #: The events of the last append, as stored (seq, stream_version, ... assigned).
        self.appended: pl.DataFrame | None = None

    def stream_versions(self, stream_ids: list[str]) -> dict[str, int]:
        return self._log._streams.versions(self._log, self.head, stream_ids)

    def append(
        self,
        frame: pl.DataFrame,
        *,
        expected_versions: Mapping[str, ExpectedVersion] | None = None,
        idempotency_key: str | None = None,
        schema: EventSchema | None = None,
    ) -> AppendResult:
        """Append ``frame``, normalized with ``schema`` (default: the store's current one).

        A frame normalized with another schema — the store evolved since, or a domain
        normalized with its own — is validated again against the current schema, which
        fills the columns and defaults that schema adds.
        """
        log = self._log
        if idempotency_key is not None:
            done = _committed_result(log, idempotency_key)
            if done is not None:
                return done
        if schema is not None and schema.to_json() != log.schema.to_json():
            frame = normalize(frame, log.schema)
        current = self.stream_versions(frame.get_column("stream_id").unique().to_list())
        if expected_versions:
            _check_expected(expected_versions, self.stream_versions(list(expected_versions)))
        _check_event_ids_unused(log, frame, self.head)
        now = dt.datetime.now(dt.timezone.utc)
        recorded_at = now if self.last_recorded is None else max(now, self.last_recorded + dt.timedelta(milliseconds=1))
        # Every column of the table, in its order: columns no longer in the schema are null.
        assigned = _assign_envelope(frame, self.head, current, recorded_at)
        events = assigned.select(
            pl.col(c) if c in assigned.columns else pl.lit(None, dtype=t).alias(c) for c, t in log.storage.columns().items()
        )
        first, last = self.head + 1, self.head + frame.height
        previous = log._chain_tip(self.head)
        digest = events_hash(events, log.schema.columns())  # the columns of the version it commits under
        own = commit_hash(previous, first, last, digest)
        metadata = {"first_seq": str(first), "last_seq": str(last), "count": str(frame.height),
                    "recorded_at": recorded_at.isoformat(), "operation": "append",
                    "prev_hash": previous or GENESIS, "events_hash": digest, "hash": own}
        if log.schema_version > 1:  # verify hashes each commit with its version's columns
            metadata["schema_version"] = str(log.schema_version)
        transactions = {}
        if idempotency_key is not None:
            metadata["idempotency_key"] = idempotency_key
            transactions = {f"{_IDEMPOTENCY_APP}.first:{idempotency_key}": first,
                            f"{_IDEMPOTENCY_APP}.last:{idempotency_key}": last}
        version = log.storage.append(events.to_arrow(), metadata=metadata, transactions=transactions)
        log._streams.advance(events, last)
        log._tip = (last, own)
        self.head, self.last_recorded = last, recorded_at
        self.appended = events
        return AppendResult(first, last, version, recorded_at)


def _committed_result(log: EventLog, key: str) -> AppendResult | None:
    first = log.storage.transaction_version(f"{_IDEMPOTENCY_APP}.first:{key}")
    if first is None:
        return None
    last = log.storage.transaction_version(f"{_IDEMPOTENCY_APP}.last:{key}")
    recorded = log.scan_range(int(last)).filter(pl.col("seq") == first).select("recorded_at").collect()
    return AppendResult(int(first), int(last), log.version, recorded.item() if recorded.height else None, duplicate=True)


def _check_expected(expected: Mapping[str, ExpectedVersion], actual: dict[str, int]) -> None:
    for stream, want in expected.items():
        have = actual.get(stream, 0)
        is_version = isinstance(want, int) and not isinstance(want, bool) and want >= 0
        if not (is_version or want in ("any", "no_stream", "exists")):
            raise ValidationError(
                f"an expected version is an int >= 0, 'no_stream', 'exists' or 'any', not {want!r}",
                field=f"expected_versions[{stream!r}]",
            )
        ok = (
            want == "any"
            or (want == "no_stream" and have == 0)
            or (want == "exists" and have > 0)
            or (isinstance(want, int) and want == have)
        )
        if not ok:
            raise ConcurrencyError(stream, want, have)


def _check_event_ids_unused(log: EventLog, frame: pl.DataFrame, head: int) -> None:
    """Caller-given event_ids must be new. Generated UUIDv7s are unique by construction."""
    given = frame.get_column("event_id").drop_nulls()
    if given.len() == 0 or head == 0:
        return
    clash = (
        log.scan_range(head)
        .filter(pl.col("event_id").is_in(given.implode()))
        .select("event_id", "seq")
        .collect()
    )
    if clash.height:  # name the first row of the batch that clashes, like every other check
        row = first_row(frame, pl.col("event_id").is_in(clash["event_id"].implode()))
        event_id = frame["event_id"][row]
        seq = clash.filter(pl.col("event_id") == event_id)["seq"][0]
        raise DuplicateEventError(f"event_id {event_id!r} is already in the log at seq {seq}", row=row, field="event_id")


def _assign_envelope(frame: pl.DataFrame, head: int, current: dict[str, int], recorded_at: dt.datetime) -> pl.DataFrame:
    """seq, stream_version, event_id, occurred_at, recorded_at and the partition date, vectorised."""
    n = frame.height
    base = pl.DataFrame(
        {"stream_id": list(current), "__base": list(current.values())}, schema={"stream_id": pl.String, "__base": pl.Int64}
    )
    ts = pl.lit(recorded_at, dtype=pl.Datetime("us", "UTC"))
    out = (
        frame.with_columns(
            seq=pl.int_range(head + 1, head + n + 1, dtype=pl.Int64),
            event_id=pl.col("event_id").fill_null(uuid7_series(n)),
            occurred_at=pl.col("occurred_at").fill_null(ts),
            recorded_at=ts,
        )
        .join(base, on="stream_id", how="left", maintain_order="left")
        .with_columns(
            stream_version=pl.col("__base").fill_null(0) + pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("stream_id")
        )
    )
    return out.with_columns(pl.col("occurred_at").dt.date().alias(PARTITION_COLUMN))


class _StreamVersions:
    """Current version per stream, kept in memory and advanced from the tail of the log.

    A process starting on a large log would otherwise group the whole log by stream before
    its first append, so the table is also kept on disk (``<store>/cache/streams-<seq>.parquet``)
    whenever a catch-up had to read many events. It is a cache: a missing or unreadable file
    only means reading more of the log.
    """

    #: Write the on-disk copy after a catch-up that read at least this many events.
    PERSIST_AFTER = 200_000

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self._table = pl.DataFrame(schema={"stream_id": pl.String, "version": pl.Int64})
        self._through = 0

    def versions(self, log: EventLog, head: int, stream_ids: list[str]) -> dict[str, int]:
        if head < self._through:  # the store was replaced under us: start over
            self._reset()
        if self._through == 0 and head > 0:
            self._load(log.path / "cache", head)
        if head > self._through:
            caught_up = head - self._through
            tail = (
                log.scan_range(head, after=self._through)
                .group_by("stream_id")
                .agg(pl.col("stream_version").max().alias("version"))
                .collect()
            )
            self._merge(tail, head)
            if caught_up >= self.PERSIST_AFTER:
                self._save(log.path / "cache")
        if not stream_ids:
            return {}
        rows = self._table.filter(pl.col("stream_id").is_in(stream_ids))
        return dict(zip(rows["stream_id"].to_list(), rows["version"].to_list(), strict=True))

    def advance(self, events: pl.DataFrame, last_seq: int) -> None:
        if self._through == events["seq"][0] - 1:
            self._merge(events.group_by("stream_id").agg(pl.col("stream_version").max().alias("version")), last_seq)

    def _merge(self, tail: pl.DataFrame, through: int) -> None:
        self._table = (
            pl.concat([self._table, tail]).group_by("stream_id").agg(pl.col("version").max())
        )
        self._through = through

    def _load(self, folder: Path, head: int) -> None:
        usable = sorted(
            (int(p.stem.removeprefix("streams-")), p) for p in folder.glob("streams-*.parquet")
            if p.stem.removeprefix("streams-").isdigit() and int(p.stem.removeprefix("streams-")) <= head
        )
        if not usable:
            return
        through, path = usable[-1]
        try:
            self._table = pl.read_parquet(path).select("stream_id", "version").cast({"version": pl.Int64})
            self._through = through
        except (OSError, pl.exceptions.PolarsError):  # a damaged cache: read the log instead
            self._reset()

    def _save(self, folder: Path) -> None:
        try:
            folder.mkdir(exist_ok=True)
            with atomic_file(folder / f"streams-{self._through:015d}.parquet") as tmp:
                self._table.write_parquet(tmp)
            for old in sorted(folder.glob("streams-*.parquet"))[:-2]:  # keep the newest two
                old.unlink(missing_ok=True)
            remove_stale(temp_files(folder))  # of writers killed while saving
        except OSError:
            pass  # a cache that cannot be written costs time later, never correctness


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


def _read_meta(path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise
    except (OSError, ValueError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise _meta_error(path, str(exc)) from exc
    if not isinstance(meta, dict):
        raise _meta_error(path, "not a JSON object")
    return meta


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
