"""The writer's side of the log: the append transaction under the writer lock.

``EventLog.writing()`` holds the lock and hands out a ``WriteTxn``: it checks expected
versions and caller-given event ids, assigns the envelope (seq, stream_version, ids, times)
vectorised, chains the commit's hash to the previous one and commits through the storage.
The current version per stream and the chain's tip are kept between appends.
"""

from __future__ import annotations

import datetime as dt
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

import polars as pl

from eventlog.core.chain import GENESIS, commit_hash, events_hash
from eventlog.core.ids import uuid7_series
from eventlog.core.schema import PARTITION_COLUMN, EventSchema
from eventlog.core.validate import first_row, normalize
from eventlog.errors import (
    ConcurrencyError,
    DuplicateEventError,
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
        #: The events of the last append, as stored (seq, stream_version, ... assigned).
        self.appended: pl.DataFrame | None = None

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
        log = self._log
        if schema is not None and schema.to_json() != log.schema.to_json():
            frame = normalize(frame, log.schema)
        if idempotency_key is not None:
            batch_digest = _batch_digest(frame)
            done = _committed_result(log, idempotency_key, batch_digest)
            if done is not None:
                return done
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
        previous = self._chain.at(log.storage, self.head, log.path)
        table = events.to_arrow()  # once: the storage writes it while the chain hashes it
        hashed_columns = log.schema.columns()  # the columns of the version it commits under
        schema_version = log.schema_version
        transactions = {}
        if idempotency_key is not None:
            transactions = {f"{IDEMPOTENCY_APP}.first:{idempotency_key}": first,
                            f"{IDEMPOTENCY_APP}.last:{idempotency_key}": last,
                            f"{IDEMPOTENCY_APP}.digest:{idempotency_key}": batch_digest}
        hashes: list[str] = []

        def metadata() -> dict[str, str]:
            digest = events_hash(table, hashed_columns)
            own = commit_hash(previous, first, last, digest)
            hashes.append(own)
            out = {"first_seq": str(first), "last_seq": str(last), "count": str(frame.height),
                   "recorded_at": recorded_at.isoformat(), "operation": "append",
                   "prev_hash": previous or GENESIS, "events_hash": digest, "hash": own}
            if schema_version > 1:  # verify hashes each commit with its version's columns
                out["schema_version"] = str(schema_version)
            if idempotency_key is not None:
                out["idempotency_key"] = idempotency_key
            return out

        version = log.storage.append(table, metadata=metadata, transactions=transactions)
        own = hashes[0]
        self._streams.advance(events, last, log.path / "cache")
        self._chain.advance(last, own)
        self.head, self.last_recorded = last, recorded_at
        self.appended = events
        return AppendResult(first, last, version, recorded_at)


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


def _check_event_ids_unused(log: LogView, frame: pl.DataFrame, head: int) -> None:
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
        row = first_row(frame, pl.col("event_id").is_in(clash["event_id"].implode())) or 0
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

    #: Appends of at most this many events update a dict, not the table (a group_by costs milliseconds).
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

    def advance(self, events: pl.DataFrame, last_seq: int, folder: Path) -> None:
        """Add an own append; the on-disk copy is renewed every ``PERSIST_AFTER`` events, so that the
        next process to write reads a short tail of the log, not all of it."""
        if self._through != events["seq"][0] - 1:
            return
        if last_seq - self._saved >= self.PERSIST_AFTER:
            self._merge(events.group_by("stream_id").agg(pl.col("stream_version").max().alias("version")), last_seq)
            self._save(folder)
            return
        if events.height <= self.SMALL and len(self._recent) < 8 * 1024:
            for stream, version in zip(events["stream_id"].to_list(), events["stream_version"].to_list(), strict=True):
                self._recent[stream] = max(version, self._recent.get(stream, 0))
            self._through = last_seq
            return
        self._merge(events.group_by("stream_id").agg(pl.col("stream_version").max().alias("version")), last_seq)

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
