"""The writer's side of the log: the append transaction under the writer lock.

``EventLog.writing()`` holds the lock and hands out a ``WriteTxn``: it checks expected
versions and caller-given event ids, assigns the envelope (seq, stream_version, ids, times)
vectorised, chains the commit's hash to the previous one and commits through the storage.
The current version per stream and the chain's tip are kept between appends.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc

from eventlog.core.chain import GENESIS, commit_hash, events_hash
from eventlog.core.ids import Uuid7s
from eventlog.core.schema import PARTITION_COLUMN, EventSchema
from eventlog.core.validate import first_row, normalize
from eventlog.errors import (
    ConcurrencyError,
    DuplicateEventError,
    EventLogError,
    IdempotencyConflictError,
    IntegrityError,
    StorePathWarning,
    ValidationError,
)
from eventlog.store.atomic import atomic_file, remove_stale, temp_files
from eventlog.store.base import EventStore
from eventlog.store.paths import folder_outside, outside

ExpectedVersion = int | Literal["no_stream", "exists", "any"]
#: Delta app ids under which an append records its idempotency key (first and last seq).
IDEMPOTENCY_APP = "eventlog.idempotency"


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



class LogView(Protocol):
    """What the writer reads of its log (an ``EventLog``), named here so the writer sits below it."""

    @property
    def path(self) -> Path: ...

    @property
    def storage(self) -> EventStore: ...

    @property
    def schema(self) -> EventSchema: ...

    @property
    def schema_version(self) -> int: ...

    @property
    def version(self) -> int: ...

    def scan_range(self, cut: int, *, after: int = 0) -> pl.LazyFrame: ...


class WriteTxn:
    """What a writer may do while holding the lock."""

    def __init__(self, log: LogView, *, streams: StreamVersions, chain: ChainTip) -> None:
        self._log = log
        self._streams = streams
        self._chain = chain
        self.head, self.last_recorded = log.storage.head_and_last_recorded()
        #: The events of the last append, as stored (seq, stream_version, ... assigned), event_id aside.
        self.appended: pl.DataFrame | None = None

    @property
    def version(self) -> int:
        """The Delta version the transaction started from (the latest: it was refreshed under the lock)."""
        return self._log.storage.version

    def history(self, limit: int) -> list[dict[str, Any]]:
        """The newest ``limit`` commits, newest first."""
        return self._log.storage.history(limit)

    def stream_versions(self, stream_ids: list[str]) -> dict[str, int]:
        return self._streams.versions(self._log, self.head, stream_ids)

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
        request = AppendRequest(frame, expected_versions=expected_versions, idempotency_key=idempotency_key,
                                schema_json=None if schema is None else schema.to_json())
        outcome = self.append_many([request])[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def append_many(
        self, requests: Sequence[AppendRequest], *, checks: Mapping[str, BatchCheck] | None = None
    ) -> list[AppendResult | EventLogError]:
        """Check each request in order and commit every accepted one together: one Delta commit, one chain link.

        Each request is checked as a lone append would be — idempotency, expected versions,
        event ids, its domain check (``checks[request.check]``) — against the log at the head
        plus the requests accepted before it, so the outcome is what appending them one after
        another would give. A request that fails gets its typed error in its place of the
        list and writes nothing; the others are committed. The commit's metadata lists each
        batch's seq range, idempotency key and request id (``eventlog.batches``) when it holds
        more than one batch or a queued request; a lone direct append commits as it always did.

        Raises:
            CommitError, StorageError: the commit itself failed; nothing was committed.
        """
        log = self._log
        outcomes: list[AppendResult | EventLogError | _Same | None] = [None] * len(requests)
        runs: dict[str, CheckRun] = {}
        accepted: list[tuple[int, pl.DataFrame, int, int, int | None]] = []  # index, frame, first, last, digest
        keys: dict[str, tuple[int, int, int, int]] = {}  # key -> (digest, first, last, index) of this commit
        pending: dict[str, int] = {}  # stream -> version after the batches accepted so far
        given_ids: set[str] = set()
        offset = self.head
        for i, request in enumerate(requests):
            try:
                frame = request.frame
                if request.schema_json is not None and request.schema_json != log.schema.to_json():
                    frame = normalize(frame, log.schema)
                digest = None
                if request.idempotency_key is not None:
                    digest = _batch_digest(frame)
                    mine = keys.get(request.idempotency_key)
                    if mine is not None:  # the same key twice in one commit: the second is its retry
                        if mine[0] != digest:
                            raise IdempotencyConflictError(request.idempotency_key, mine[1], mine[2])
                        outcomes[i] = _Same(mine[3])
                        continue
                    done = _committed_result(log, request.idempotency_key, digest)
                    if done is not None:
                        outcomes[i] = done
                        continue
                streams = frame.get_column("stream_id").unique().to_list()
                if request.expected_versions:
                    _check_expected(request.expected_versions, self._versions_with(list(request.expected_versions),
                                                                                   pending))
                _check_event_ids_unused(log, frame, self.head, given_ids)
                if request.check is not None:
                    run = runs.get(request.check)
                    if run is None:
                        check = (checks or {}).get(request.check)
                        if check is None:
                            raise ValidationError(f"no check named {request.check!r} is registered with this log",
                                                  field="check")
                        run = runs[request.check] = check.begin(self)
                        for _, earlier, _, _, _ in accepted:
                            run.accept(earlier)
                    run.check(frame)
            except EventLogError as exc:
                outcomes[i] = exc
                continue
            for run in runs.values():
                run.accept(frame)
            current = self._versions_with(streams, pending)
            for stream, count in frame.get_column("stream_id").value_counts().iter_rows():
                pending[stream] = current.get(stream, 0) + count
            given_ids.update(frame.get_column("event_id").drop_nulls().to_list())
            accepted.append((i, frame, offset + 1, offset + frame.height, digest))
            if request.idempotency_key is not None and digest is not None:
                keys[request.idempotency_key] = (digest, offset + 1, offset + frame.height, i)
            offset += frame.height
        if accepted:
            version, recorded_at, events = self._commit(requests, accepted)
            for i, _, first, last, _ in accepted:
                outcomes[i] = AppendResult(first, last, version, recorded_at)
            for run in runs.values():
                run.committed(events, self.head)
        out: list[AppendResult | EventLogError] = []
        for outcome in outcomes:
            if isinstance(outcome, _Same):
                first_result = outcomes[outcome.index]
                if not isinstance(first_result, AppendResult):  # the first with this key was accepted
                    raise IntegrityError("a repeated idempotency key in one commit lost its first batch")
                outcome = dataclasses.replace(first_result, duplicate=True)
            out.append(outcome)  # type: ignore[arg-type]
        return out

    def _versions_with(self, streams: list[str], pending: dict[str, int]) -> dict[str, int]:
        """Stream versions at the head, with the batches this commit accepted so far."""
        versions = self.stream_versions(streams)
        for stream in streams:
            if stream in pending:
                versions[stream] = pending[stream]
        return versions

    def _commit(
        self, requests: Sequence[AppendRequest], accepted: list[tuple[int, pl.DataFrame, int, int, int | None]]
    ) -> tuple[int, dt.datetime, pl.DataFrame]:
        """Commit the accepted batches as one: the envelope assigned once, one hash over them all."""
        log = self._log
        frames = [frame for _, frame, _, _, _ in accepted]
        frame = frames[0] if len(frames) == 1 else pl.concat(frames, how="vertical_relaxed")
        current = self.stream_versions(frame.get_column("stream_id").unique().to_list())
        now = dt.datetime.now(dt.timezone.utc)
        recorded_at = now if self.last_recorded is None else max(now, self.last_recorded + dt.timedelta(milliseconds=1))
        first, last = self.head + 1, self.head + frame.height
        # The stored rows, built a file at a time by the storage's writers (and a column at a time
        # by the hash): no table of every stored column is ever held whole.
        rows = AssignedRows(frame, first, current, recorded_at, log.storage.columns())
        previous = self._chain.at(log.storage, self.head, log.path)
        hashed_columns = log.schema.columns()  # the columns of the version it commits under
        schema_version = log.schema_version
        transactions: dict[str, int] = {}
        batches: list[list[int | str | None]] = []
        for i, _, b_first, b_last, digest in accepted:
            key, request_id = requests[i].idempotency_key, requests[i].request_id
            if key is not None and digest is not None:
                transactions.update({f"{IDEMPOTENCY_APP}.first:{key}": b_first,
                                     f"{IDEMPOTENCY_APP}.last:{key}": b_last,
                                     f"{IDEMPOTENCY_APP}.digest:{key}": digest})
            batches.append([b_first, b_last, key, request_id])
        grouped = len(accepted) > 1 or requests[accepted[0][0]].request_id is not None
        hashes: list[str] = []

        def metadata() -> dict[str, str]:
            digest = events_hash(rows, hashed_columns)  # while the storage writes the files
            own = commit_hash(previous, first, last, digest)
            hashes.append(own)
            out = {"first_seq": str(first), "last_seq": str(last), "count": str(frame.height),
                   "recorded_at": recorded_at.isoformat(), "operation": "append",
                   "prev_hash": previous or GENESIS, "events_hash": digest, "hash": own}
            if schema_version > 1:  # verify hashes each commit with its version's columns
                out["schema_version"] = str(schema_version)
            if grouped:
                out["batches"] = json.dumps(batches, separators=(",", ":"))
            elif requests[accepted[0][0]].idempotency_key is not None:
                out["idempotency_key"] = str(requests[accepted[0][0]].idempotency_key)
            return out

        version = log.storage.append(rows, metadata=metadata, transactions=transactions)
        own = hashes[0]
        self._streams.advance(rows.latest_versions(), first, last, log.path / "cache")
        self._chain.advance(last, own)
        self.head, self.last_recorded = last, recorded_at
        events = rows.frame()
        self.appended = events
        return version, recorded_at, events


@dataclass(frozen=True)
class AppendRequest:
    """One batch to append, normalized, with what it must be checked against.

    ``schema_json`` is the schema it was normalized with when that may not be the store's
    current one (it is then validated again). ``check`` names a domain check registered
    with the log (the inventory's stock check). ``request_id`` is set for a batch queued
    by another writer: the commit records it, so that the writer learns whether its
    batch landed even when the writer that committed it died before replying.
    """

    frame: pl.DataFrame
    expected_versions: Mapping[str, ExpectedVersion] | None = None
    idempotency_key: str | None = None
    schema_json: dict[str, Any] | None = None
    check: str | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class _Same:
    """A batch that repeats an idempotency key accepted earlier in the same commit."""

    index: int


class CheckRun(Protocol):
    """A domain check over the batches of one commit, in order."""

    def check(self, frame: pl.DataFrame) -> None:
        """Raise a typed error when ``frame`` does not fit the head plus the batches accepted so far."""

    def accept(self, frame: pl.DataFrame) -> None:
        """``frame`` passed every check and will be committed after the earlier ones."""

    def committed(self, events: pl.DataFrame, last_seq: int) -> None:
        """The commit landed with ``events`` (as stored); the head is now ``last_seq``."""


class BatchCheck(Protocol):
    """A domain's check of batches against the log, run under the writer lock (see ``EventLog.add_check``)."""

    def begin(self, txn: WriteTxn) -> CheckRun: ...


class AssignedRows:
    """The rows of one append as stored: the batch plus the envelope the log assigns.

    stream_version, the filled occurred_at and the partition date are computed once for every
    row, and the random bits of generated event ids drawn once; a ``slice`` or ``take`` of rows
    converts just those rows of the batch to Arrow and adds their envelope (the ids formatted
    then), and ``column`` gives one column to hash a block at a time. So the storage's writers
    build each file's rows as they write it, and no copy of the whole batch in Arrow, nor a
    table of every stored column, ever exists.
    """

    def __init__(self, frame: pl.DataFrame, first_seq: int, current: dict[str, int], recorded_at: dt.datetime,
                 columns: dict[str, pl.DataType]) -> None:
        n = frame.height
        self.num_rows = n
        self._first = first_seq
        self._recorded_us = _epoch_us(recorded_at)
        self._frame = frame
        self.schema = pl.DataFrame(schema=columns).to_arrow().schema
        self.column_names = list(columns)
        self._versions, self._latest = _stream_versions(frame.get_column("stream_id"), current)
        given = frame.get_column("event_id")
        # Generated ids are kept as their random bits and formatted for the rows asked for.
        self._made = Uuid7s(n) if given.null_count() else None
        self._given = given.to_arrow().cast(pa.large_string()) if given.null_count() < n else None
        occurred = frame.get_column("occurred_at").to_arrow()
        if occurred.null_count:
            occurred = pc.coalesce(occurred, pa.scalar(self._recorded_us, type=occurred.type))
        self._occurred = occurred
        self._days = pc.cast(occurred, pa.date32())
        self._own = {"seq", "recorded_at", "stream_version", "event_id", "occurred_at", PARTITION_COLUMN}
        self._batch = [c for c in frame.columns if c not in self._own]

    def latest_versions(self) -> pl.DataFrame:
        """(stream_id, version): each stream's version after this append."""
        return self._latest

    def frame(self) -> pl.DataFrame:
        """The appended events as stored, event_id aside (the state's fold and caches never read it)."""
        n = self.num_rows
        return self._frame.drop("event_id").with_columns(
            pl.int_range(self._first, self._first + n, dtype=pl.Int64, eager=True).alias("seq"),
            pl.Series("stream_version", self._versions),
            pl.Series("occurred_at", self._occurred),
            pl.lit(self._recorded_us, dtype=pl.Int64).cast(pl.Datetime("us", "UTC")).alias("recorded_at"),
        )

    def column(self, name: str) -> pa.Array | pl.Series | _EventIds:
        if name == "event_id":
            return _EventIds(self)
        if name in self._own:
            return self._envelope(name, None, 0, self.num_rows)
        if name in self._batch:
            return self._frame.get_column(name)  # the hash converts it a block at a time
        return pa.nulls(self.num_rows, type=self.schema.field(name).type)  # a column no longer in the schema

    def slice(self, offset: int, length: int) -> pa.Table:
        length = max(0, min(length, self.num_rows - offset))
        return self._table(self._frame.slice(offset, length), None, offset, length)

    def take(self, indices: pa.Array) -> pa.Table:
        return self._table(self._frame[indices.to_numpy()], indices, 0, len(indices))

    def _table(self, part: pl.DataFrame, indices: pa.Array | None, offset: int, length: int) -> pa.Table:
        batch = part.select(self._batch).to_arrow()
        arrays: list[pa.Array | pa.ChunkedArray] = []
        for name in self.column_names:
            if name in self._own:
                arrays.append(self._envelope(name, indices, offset, length))
            elif name in self._batch:
                arrays.append(batch.column(name))
            else:
                arrays.append(pa.nulls(length, type=self.schema.field(name).type))
        return pa.Table.from_arrays(arrays, schema=self.schema)

    def _envelope(self, name: str, indices: pa.Array | None, offset: int, length: int) -> pa.Array:
        """One column the log assigns, for the rows ``indices`` (or offset..offset+length-1)."""
        kind = self.schema.field(name).type
        if name == "seq":
            rows = np.arange(offset, offset + length) if indices is None else indices.to_numpy()
            return pa.array(rows + self._first, type=kind)
        if name == "recorded_at":
            return pa.array(np.full(length, self._recorded_us, dtype=np.int64)).cast(kind)
        if name == "event_id":
            return self._event_ids(indices, offset, length)
        array = {"stream_version": self._versions, "occurred_at": self._occurred, PARTITION_COLUMN: self._days}[name]
        return array.slice(offset, length) if indices is None else array.take(indices)

    def _event_ids(self, indices: pa.Array | None, offset: int, length: int) -> pa.Array:
        rows = np.arange(offset, offset + length) if indices is None else indices.to_numpy()
        given = None
        if self._given is not None:
            given = self._given.slice(offset, length) if indices is None else self._given.take(indices)
        if self._made is None:
            return given
        made = self._made.take(rows)
        return made if given is None else pc.coalesce(given, made)


class _EventIds:
    """The event_id column of an append, sliced for the hash a block at a time (never formatted whole)."""

    def __init__(self, rows: AssignedRows) -> None:
        self._rows = rows

    def slice(self, offset: int, length: int) -> pa.Array:
        length = max(0, min(length, self._rows.num_rows - offset))
        return self._rows._event_ids(None, offset, length)

    def byte_lengths(self, offset: int, length: int) -> np.ndarray:
        """The UTF-8 length of each id, without formatting the generated ones (36 characters each)."""
        length = max(0, min(length, self._rows.num_rows - offset))
        out = np.full(length, 36, dtype=np.int64)
        given = self._rows._given
        if given is not None:
            part = given.slice(offset, length)
            counted = pc.binary_length(part).to_numpy(zero_copy_only=False)
            present = part.is_valid().to_numpy(zero_copy_only=False)
            out[present] = counted[present]
        return out


def _epoch_us(when: dt.datetime) -> int:
    delta = when - dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _stream_versions(stream_ids: pl.Series, current: dict[str, int]) -> tuple[pa.Array, pl.DataFrame]:
    """Each row's stream_version (the stream's current version + its rank in the batch), and each
    stream's version after the batch.

    A slice of rows at a time, each stream's version carried to the next: the group indices of a
    window over the whole batch would take more memory than the batch's ids.
    """
    carry = pl.DataFrame({"stream_id": list(current), "__base": list(current.values())},
                         schema={"stream_id": pl.String, "__base": pl.Int64})
    parts = []
    for offset in range(0, stream_ids.len(), _VERSION_ROWS):
        ranked = (
            stream_ids.slice(offset, _VERSION_ROWS).to_frame("stream_id")
            .join(carry, on="stream_id", how="left", maintain_order="left")
            .select("stream_id", version=pl.col("__base").fill_null(0)
                    + pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("stream_id"))
        )
        parts.append(ranked.get_column("version").to_arrow())
        last = ranked.group_by("stream_id").agg(pl.col("version").max().alias("__base"))
        carry = pl.concat([carry.join(last, on="stream_id", how="anti"), last])
    versions = pa.concat_arrays(parts) if parts else pa.array([], type=pa.int64())
    return versions, carry.rename({"__base": "version"})


#: Rows the stream versions are assigned for at a time.
_VERSION_ROWS = 1 << 18


def _batch_digest(frame: pl.DataFrame) -> int:
    """The batch as the caller gave it (normalized, before the log assigns seq, ids and times), as 60 bits.

    Kept as the version of a Delta transaction (an int64), beside the key's seqs: a retry
    compares it without reading the commit history.
    """
    return int(events_hash(frame, dict(frame.schema))[:15], 16)


def _committed_result(log: LogView, key: str, digest: int) -> AppendResult | None:
    """The first result of ``key``, or None when it is new.

    Raises:
        IdempotencyConflictError: the key was committed with another batch.
    """
    first = log.storage.transaction_version(f"{IDEMPOTENCY_APP}.first:{key}")
    if first is None:
        return None
    last = log.storage.transaction_version(f"{IDEMPOTENCY_APP}.last:{key}")
    if last is None:  # one commit records both
        raise IntegrityError(f"{log.path}: idempotency key {key!r} has a first seq but no last seq; run verify")
    committed = log.storage.transaction_version(f"{IDEMPOTENCY_APP}.digest:{key}")
    if committed is not None and committed != digest:  # None: committed before batches had a digest
        raise IdempotencyConflictError(key, first, last)
    recorded = log.scan_range(last).filter(pl.col("seq") == first).select("recorded_at").collect()
    if recorded.height == 0:
        raise IntegrityError(f"{log.path}: idempotency key {key!r} names seq {first}, which the log does not hold; run verify")
    return AppendResult(first, last, log.version, recorded.item(), duplicate=True)


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


def _check_event_ids_unused(log: LogView, frame: pl.DataFrame, head: int, earlier: set[str]) -> None:
    """Caller-given event_ids must be new (``earlier``: those of batches going into the same commit).
    Generated UUIDv7s are unique by construction."""
    given = frame.get_column("event_id").drop_nulls()
    if given.len() == 0:
        return
    if earlier:
        for row, event_id in enumerate(frame.get_column("event_id").to_list()):
            if event_id in earlier:
                raise DuplicateEventError(f"event_id {event_id!r} is already in a batch committed with this one",
                                          row=row, field="event_id")
    if head == 0:
        return
    clash = (
        log.scan_range(head)
        .filter(pl.col("event_id").is_in(given.implode()))
        .select("event_id", "seq")
        .collect()
    )
    if clash.height:  # name the first row of the batch that clashes, like every other check
        row = first_row(frame, pl.col("event_id").is_in(clash["event_id"].implode())) or 0
        event_id = frame["event_id"][row]
        seq = clash.filter(pl.col("event_id") == event_id)["seq"][0]
        raise DuplicateEventError(f"event_id {event_id!r} is already in the log at seq {seq}", row=row, field="event_id")


class StreamVersions:
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

    #: Appends to at most this many streams update a dict, not the table (a group_by costs milliseconds).
    SMALL = 64

    def _reset(self) -> None:
        self._table = pl.DataFrame(schema={"stream_id": pl.String, "version": pl.Int64})
        self._recent: dict[str, int] = {}  # versions newer than the table's, from small appends
        self._through = 0
        self._saved = 0  # the seq the newest on-disk copy this object wrote or read is at

    def versions(self, log: LogView, head: int, stream_ids: list[str]) -> dict[str, int]:
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
        out = dict(zip(rows["stream_id"].to_list(), rows["version"].to_list(), strict=True))
        for stream in stream_ids if self._recent else ():
            if stream in self._recent:
                out[stream] = self._recent[stream]  # versions only grow: the newer is the larger
        return out

    def advance(self, latest: pl.DataFrame, first_seq: int, last_seq: int, folder: Path) -> None:
        """Add an own append (``latest``: each of its streams' version after it); the on-disk copy is
        renewed every ``PERSIST_AFTER`` events, so that the next process to write reads a short
        tail of the log, not all of it."""
        if self._through != first_seq - 1:
            return
        if last_seq - self._saved >= self.PERSIST_AFTER:
            self._merge(latest, last_seq)
            self._save(folder)
            return
        if latest.height <= self.SMALL and len(self._recent) < 8 * 1024:
            for stream, version in latest.iter_rows():
                self._recent[stream] = max(version, self._recent.get(stream, 0))
            self._through = last_seq
            return
        self._merge(latest, last_seq)

    def _merge(self, tail: pl.DataFrame, through: int) -> None:
        parts = [self._table, tail]
        if self._recent:
            parts.append(pl.DataFrame({"stream_id": list(self._recent), "version": list(self._recent.values())},
                                      schema={"stream_id": pl.String, "version": pl.Int64}))
            self._recent = {}
        self._table = pl.concat(parts).group_by("stream_id").agg(pl.col("version").max())
        self._through = through

    def _load(self, folder: Path, head: int) -> None:
        usable = sorted(
            (int(p.stem.removeprefix("streams-")), p) for p in folder.glob("streams-*.parquet")
            if p.stem.removeprefix("streams-").isdigit() and int(p.stem.removeprefix("streams-")) <= head
        )
        if not usable:
            return
        through, path = usable[-1]
        why = folder_outside(folder.parent, folder) or outside(folder, path.name)
        if why is not None:  # a cache: ignore it, never read what it leads to
            warnings.warn(f"the stream-version cache {path} is ignored: {why}", StorePathWarning, stacklevel=4)
            return
        try:
            self._table = pl.read_parquet(path).select("stream_id", "version").cast({"version": pl.Int64})
            self._through = self._saved = through
        except (OSError, pl.exceptions.PolarsError):  # a damaged cache: read the log instead
            self._reset()

    def _save(self, folder: Path) -> None:
        self._saved = self._through  # tried once per PERSIST_AFTER events, whether or not it can be written
        try:
            folder.mkdir(exist_ok=True)
            if folder_outside(folder.parent, folder) is not None:
                return  # a symlinked cache folder: write (and prune) nothing through it
            with atomic_file(folder / f"streams-{self._through:015d}.parquet") as tmp:
                self._table.write_parquet(tmp)
            for old in sorted(folder.glob("streams-*.parquet"))[:-2]:  # keep the newest two
                old.unlink(missing_ok=True)
            remove_stale(temp_files(folder))  # of writers killed while saving
        except (OSError, pl.exceptions.PolarsError):  # polars reports a full disk as a ComputeError
            pass  # a cache that cannot be written costs time later, never correctness


class ChainTip:
    """The hash of the newest append commit, remembered so an append need not read the history."""

    def __init__(self) -> None:
        self._tip: tuple[int, str] | None = None  # (last seq, hash) of the newest append commit

    def at(self, storage: EventStore, head: int, where: Path) -> str | None:
        """The hash of the append commit that ends at ``head`` (None for an empty log)."""
        if head == 0:
            return None
        if self._tip is not None and self._tip[0] == head:
            return self._tip[1]
        limit = 16
        while True:
            entries = storage.history(limit)
            for entry in entries:
                # A branch's fork commit ends at the fork seq with the origin's hash there.
                if entry.get("eventlog.operation") in ("append", "branch") and int(entry["eventlog.last_seq"]) == head:
                    # A commit made before the chain existed has no hash: the chain restarts
                    # after it, and verify reports the unchained commit.
                    tip = entry.get("eventlog.hash")
                    if tip is not None:
                        self._tip = (head, tip)
                    return tip
            if len(entries) < limit:
                raise IntegrityError(f"{where}: no append commit ends at the head seq {head}; run verify")
            limit *= 4

    def advance(self, last_seq: int, digest: str) -> None:
        self._tip = (last_seq, digest)
