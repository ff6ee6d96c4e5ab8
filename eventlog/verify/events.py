"""The one read of the events: hash chain, seq, streams, recorded_at and event ids, a group of commits at a time."""

from __future__ import annotations

import datetime as dt
import functools
import itertools
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import polars as pl

from eventlog.core.chain import GENESIS, EncodedEvents, commit_hash
from eventlog.core.schema import PARTITION_COLUMN
from eventlog.verify.files import unreadable
from eventlog.verify.report import VerifiedLog, Violation
from eventlog.verify.seal import Carry

#: Read and hash the events of about this many seqs at a time (bounded memory on large logs).
_CHUNK = 1_000_000
#: Groups loaded and hashed side by side while the main thread checks the one before.
_THREADS = 2


class GroupReader(Protocol):
    """A check that rides on verify's read of the events instead of reading the log again.

    ``read`` runs on a worker thread with each group's events (seq order, every stored
    column, no read rules applied); what it returns is given to ``absorb`` on the main
    thread, group by group in log order, once the group passed the log's own checks.
    ``begin`` comes first, with the seal the pass starts after (None: from seq 1), the head
    and the append commits (``append_commits``); ``end`` last, with what the pass carried past the head, once the log's checks passed.
    """

    def begin(self, sealed: Carry | None, head: int, commits: pl.DataFrame) -> None: ...

    def read(self, events: pl.DataFrame) -> Any: ...

    def absorb(self, partial: Any) -> None: ...

    def end(self, carry: Carry) -> None: ...


def check_events(log: VerifiedLog, head: int, commits: pl.DataFrame,
                 progress: Callable[[int], None] | None = None, *, sealed: Carry | None = None,
                 readers: Sequence[GroupReader] = (), carried: list[Carry] | None = None) -> Violation | None:
    """Steps 2-4 in one read of the events, a group of commits at a time, in seq order.

    Two threads load and hash the next groups (Parquet decoding, sorting and SHA-256 all
    release the GIL) while this one links the chain and checks the envelope, carrying what
    spans groups: the chain tip, each stream's last version, the last recorded_at and a
    64-bit hash of every event_id. With ``sealed`` (a seal that still describes the log up
    to its head), the commits up to there are linked from their metadata alone and only
    the events after it are read, starting from the carried state. Returns the first
    violation; when there is none, the state carried past the head (for the next seal) is
    appended to ``carried``.
    """
    start = sealed.head if sealed is not None else 0
    chain = _Chain(log, head)
    envelope = _Envelope(sealed)
    rows = commits.rows(named=True)
    for commit in (r for r in rows if r["last_seq"] <= start):
        violation = chain.trust(commit)
        if violation is not None:
            return violation
    if start and progress is not None:
        progress(start)
    for group in _loaded_groups(log, [r for r in rows if r["last_seq"] > start], readers):
        violation = (group.unreadable or chain.check(group) or envelope.check(group.events)
                     or next(filter(None, (_check_metadata(c, group.events) for c in group.commits)), None))
        if violation is not None:
            return violation
        for reader, partial in zip(readers, group.partials, strict=True):
            reader.absorb(partial)
        if progress is not None:
            progress(group.events.height)
    violation = chain.finish() or envelope.finish(log, head)
    if violation is None and carried is not None:
        carried.append(Carry(head, chain.tip, envelope.streams, envelope.last_recorded, envelope.id_hashes))
    return violation


@dataclass
class _Group:
    """Consecutive commits read together: their events in seq order and each commit's digest."""

    commits: list[dict[str, Any]]
    events: pl.DataFrame
    digests: dict[int, str]
    broken: Violation | None  # the first seq missing or twice in the group's range, if any
    unreadable: Violation | None = None  # a data file of the group could not be read at all
    partials: list[Any] = field(default_factory=list)  # what each GroupReader read of the group


def _loaded_groups(log: VerifiedLog, commits: list[dict[str, Any]], readers: Sequence[GroupReader]) -> Iterator[_Group]:
    """Groups in order, loaded two ahead on worker threads (bounded memory: about three groups)."""
    files = log.storage.files()
    stored = {c: t for c, t in log.storage.columns().items() if c != PARTITION_COLUMN}
    columns = {v.version: v.schema.columns() for v in log.schema_history.versions}
    load = functools.partial(_load_group, log.storage.path, files, stored, columns, readers)
    with ThreadPoolExecutor(max_workers=_THREADS) as pool:
        pending: deque[Future[_Group]] = deque()
        groups = _chunks(commits)
        for group in itertools.islice(groups, _THREADS):
            pending.append(pool.submit(load, group))
        while pending:
            loaded = pending.popleft().result()
            for group in itertools.islice(groups, 1):
                pending.append(pool.submit(load, group))
            yield loaded


def _load_group(root: Path, files: pl.DataFrame, stored: dict[str, pl.DataType],
                columns: dict[int, dict[str, pl.DataType]], readers: Sequence[GroupReader],
                commits: list[dict[str, Any]]) -> _Group:
    first, last = commits[0]["first_seq"], commits[-1]["last_seq"]
    paths = _paths_holding(root, files, first, last)
    try:
        events = _read_range(paths, stored, first, last)
    except (pl.exceptions.PolarsError, OSError) as exc:
        return _Group(commits, pl.DataFrame(), {}, None, unreadable=unreadable(root, paths, exc))
    if not events.get_column("seq").is_sorted():
        events = events.sort("seq")
    broken = _first_break(events, first, last)
    bad_seq = broken.seq if broken is not None else last + 1
    encoded: dict[int, EncodedEvents] = {}  # one encoding per schema version in the group
    digests = {}
    for commit in commits:
        version = commit["schema_version"]
        if commit["last_seq"] >= bad_seq or version not in columns:
            break  # _Chain reports the break or the unknown version
        if version not in encoded:
            # Stored values as committed, with the columns of the commit's schema version.
            encoded[version] = EncodedEvents(events, columns[version])
        digests[commit["version"]] = encoded[version].digest(commit["first_seq"] - first, commit["last_seq"] - first + 1)
    envelope = events.select("seq", "stream_id", "stream_version", "event_id", "recorded_at")
    partials = [reader.read(events) for reader in readers] if broken is None else []
    return _Group(commits, envelope, digests, broken, partials=partials)


def _paths_holding(root: Path, files: pl.DataFrame, first: int, last: int) -> list[str]:
    """The files whose Delta statistics say they may hold seq first..last, in seq order.

    In that order, when no file's range interleaves another's (no late events in a
    batch), the rows arrive sorted and the caller's sort is skipped.
    """
    overlapping = files.filter(
        (pl.col("min_seq").is_null() | (pl.col("min_seq") <= last)) & (pl.col("max_seq").is_null() | (pl.col("max_seq") >= first))
    )
    return [str(root / p) for p in overlapping.sort("min_seq", nulls_last=True).get_column("path")]


def _read_range(paths: list[str], stored: dict[str, pl.DataType], first: int, last: int) -> pl.DataFrame:
    """Events with first <= seq <= last from ``paths``."""
    if not paths:
        return pl.DataFrame(schema=stored)
    # Files written before an evolution lack the columns added since: they read as null.
    return (
        pl.scan_parquet(paths, schema=stored, missing_columns="insert", extra_columns="ignore", hive_partitioning=False)
        .filter(pl.col("seq").is_between(first, last))
        .collect()
    )


def _first_break(events: pl.DataFrame, first: int, last: int) -> Violation | None:
    """Where seq (sorted) stops running first..last exactly once: a missing or repeated seq."""
    seq = events.get_column("seq")
    expected = pl.int_range(first, first + seq.len(), eager=True)
    off = (seq != expected).arg_true()
    if off.len() == 0:
        if seq.len() == last - first + 1:
            return None
        missing = first + seq.len()
        return Violation("seq", f"seq {missing} is missing (seq must run 1..head exactly once)", seq=missing)
    at = int(off[0])
    if at > 0 and seq[at] == seq[at - 1]:
        return Violation("seq", f"seq {seq[at]} occurs more than once", seq=int(seq[at]))
    missing = first + at
    return Violation("seq", f"seq {missing} is missing (seq must run 1..head exactly once)", seq=missing)


class _Chain:
    """Links each commit to the one before it and compares its digest with the stored events."""

    def __init__(self, log: VerifiedLog, head: int) -> None:
        self._log = log
        self._head = head
        self._previous: str | None = None
        self._expected_first = 1

    @property
    def tip(self) -> str | None:
        """The hash of the last commit linked so far."""
        return self._previous

    def check(self, group: _Group) -> Violation | None:
        for commit in group.commits:
            violation = self._check_commit(commit, group)
            if violation is not None:
                return violation
            self._previous, self._expected_first = commit["hash"], commit["last_seq"] + 1
        return None

    def trust(self, commit: dict[str, Any]) -> Violation | None:
        """Link a sealed commit: every check but the recomputation of its event hash (the seal vouches for it)."""
        violation = self._check_links(commit) or self._check_hash(commit, commit["events_hash"])
        if violation is None:
            self._previous, self._expected_first = commit["hash"], commit["last_seq"] + 1
        return violation

    def _check_commit(self, commit: dict[str, Any], group: _Group) -> Violation | None:
        violation = self._check_links(commit)
        if violation is not None:
            return violation
        version, first, last = commit["version"], commit["first_seq"], commit["last_seq"]
        broken = group.broken
        if broken is not None and broken.seq is not None and broken.seq <= last:
            return Violation(broken.check, f"{broken.message}; commit {version} holds seq {first}..{last}",
                             version=version, seq=broken.seq)
        digest = group.digests[version]
        if digest != commit["events_hash"]:
            return Violation("hash chain", "stored events differ from what was committed (event hash mismatch)",
                             version=version, seq=first)
        return self._check_hash(commit, digest)

    def _check_hash(self, commit: dict[str, Any], digest: str | None) -> Violation | None:
        first, last = commit["first_seq"], commit["last_seq"]
        if digest is None or commit_hash(self._previous, first, last, digest) != commit["hash"]:
            return Violation("hash chain", "commit hash mismatch", version=commit["version"], seq=first)
        return None

    def _check_links(self, commit: dict[str, Any]) -> Violation | None:
        """What the commit's metadata alone must satisfy: its schema version, its place, its previous hash."""
        version, first = commit["version"], commit["first_seq"]
        history = self._log.schema_history
        expected_version = max(v.version for v in history.versions if v.first_seq <= first)
        if history.schema_of(commit["schema_version"]) is None or commit["schema_version"] != expected_version:
            return Violation("hash chain", f"commit names schema version {commit['schema_version']}, but by "
                             f"eventlog.json's schema history its events were committed under version {expected_version}",
                             version=version, seq=first)
        if first != self._expected_first:
            return Violation("hash chain", f"commit starts at seq {first}, expected {self._expected_first}",
                             version=version, seq=self._expected_first)
        if commit["hash"] is None:
            return Violation("hash chain", "append commit carries no hash", version=version, seq=first)
        if (commit["prev_hash"] or GENESIS) != (self._previous or GENESIS):
            return Violation("hash chain", "previous-commit hash does not match the commit before it",
                             version=version, seq=first)
        return None

    def finish(self) -> Violation | None:
        covered = self._expected_first - 1
        if covered != self._head:
            return Violation("hash chain", f"commits cover seq 1..{covered} but the head is {self._head}",
                             seq=covered + 1)
        return None


def _check_metadata(commit: dict[str, Any], events: pl.DataFrame) -> Violation | None:
    """The commit's metadata describes its events: its recorded_at is theirs (the ``commits`` view shows it).

    The hash covers the events, not the metadata beside them, so an edited recorded_at would
    otherwise pass. Commits written before recorded_at was recorded have none to compare.
    """
    if commit["recorded_at"] is None:
        return None
    seqs = events.get_column("seq")
    lo, hi = seqs.search_sorted(commit["first_seq"], side="left"), seqs.search_sorted(commit["last_seq"], side="right")
    stamps = events.get_column("recorded_at").slice(lo, hi - lo)
    try:
        claimed = dt.datetime.fromisoformat(commit["recorded_at"])
    except ValueError:
        claimed = None
    if claimed is None or stamps.len() == 0 or stamps.min() != claimed or stamps.max() != claimed:
        return Violation("commit metadata", f"the commit's recorded_at {commit['recorded_at']!r} is not the "
                         f"recorded_at of its events ({stamps.min()!s}); its metadata was edited",
                         version=commit["version"], seq=commit["first_seq"])
    return None


class _Envelope:
    """stream_version gapless per stream, recorded_at never decreasing, event_id unique."""

    def __init__(self, sealed: Carry | None = None) -> None:
        self.streams = pl.DataFrame(schema={"stream_id": pl.String, "base": pl.Int64})
        self.last_recorded: Any = None
        #: Hashes of the ids checked before (sorted); those of the groups read now are collected apart.
        self.id_hashes = np.empty(0, dtype=np.uint64)
        if sealed is not None:
            self.streams, self.last_recorded, self.id_hashes = sealed.streams, sealed.last_recorded, sealed.id_hashes
        self._id_hashes: list[pl.Series] = []

    def check(self, events: pl.DataFrame) -> Violation | None:
        checked = (
            events.with_columns(
                rank=pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("stream_id"),
                back_in_time=pl.col("recorded_at") < pl.col("recorded_at").shift(1, fill_value=self.last_recorded),
            )
            .join(self.streams, on="stream_id", how="left", maintain_order="left")
            .with_columns(expected=pl.col("rank") + pl.col("base").fill_null(0))
        )
        bad = checked.filter((pl.col("stream_version") != pl.col("expected")) | pl.col("back_in_time")).head(1)
        if bad.height:
            return self._violation(bad.row(0, named=True))
        advanced = checked.group_by("stream_id").agg(pl.col("expected").max().alias("base"))
        self.streams = pl.concat([self.streams.join(advanced, on="stream_id", how="anti"), advanced])
        if events.height:
            self.last_recorded = events.get_column("recorded_at")[-1]
        self._id_hashes.append(events.get_column("event_id").hash())
        return None

    @staticmethod
    def _violation(row: dict[str, Any]) -> Violation:
        seq = row["seq"]
        if row["stream_version"] != row["expected"]:
            return Violation("streams", f"stream {row['stream_id']!r} has version {row['stream_version']} where "
                             f"{row['expected']} was expected", seq=seq)
        return Violation("recorded_at", f"recorded_at {row['recorded_at']} is earlier than the event before it", seq=seq)

    def finish(self, log: VerifiedLog, head: int) -> Violation | None:
        """event_id unique: 64-bit hashes first; a repeated hash is then checked on the ids themselves.

        The new hashes are sorted and merged into the sorted ones checked before (a seal's):
        a repeat is then a neighbour equal to its neighbour, found without a hash table.
        """
        if not self._id_hashes:
            return None
        new = np.sort(pl.concat(self._id_hashes).to_numpy())
        self._id_hashes = []
        merged = np.insert(self.id_hashes, np.searchsorted(self.id_hashes, new), new)
        self.id_hashes = merged
        repeats = merged[1:][merged[1:] == merged[:-1]]
        if repeats.size == 0:
            return None
        suspects = pl.Series(np.unique(repeats)).implode()
        ids = (
            log.scan_range(head, upcast=False).select("seq", "event_id")
            .filter(pl.col("event_id").hash().is_in(suspects))
            .sort("seq").collect()
        )
        repeated = ids.filter(pl.col("event_id").is_duplicated()).head(1)
        if repeated.height == 0:
            return None  # distinct ids that share a 64-bit hash
        seq, event_id = repeated.row(0)
        return Violation("event ids", f"event_id {event_id!r} occurs more than once", seq=seq)


def _chunks(rows: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """Consecutive commits in groups of about _CHUNK events, so each group is one read."""
    chunk: list[dict[str, Any]] = []
    total = 0
    for row in rows:
        size = row["last_seq"] - row["first_seq"] + 1
        if chunk and total + size > _CHUNK:
            yield chunk
            chunk, total = [], 0
        chunk.append(row)
        total += size
    if chunk:
        yield chunk
