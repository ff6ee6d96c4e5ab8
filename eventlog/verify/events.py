"""The one read of the events: hash chain, seq, streams, recorded_at and event ids, a group of commits at a time."""

from __future__ import annotations

import datetime as dt
import functools
import itertools
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from eventlog.core.chain import GENESIS, EncodedEvents, commit_hash
from eventlog.core.schema import PARTITION_COLUMN
from eventlog.verify.files import unreadable
from eventlog.verify.report import VerifiedLog, Violation

#: Read and hash the events of about this many seqs at a time (bounded memory on large logs).
_CHUNK = 1_000_000
#: Groups loaded and hashed side by side while the main thread checks the one before.
_THREADS = 2


def check_events(log: VerifiedLog, head: int, commits: pl.DataFrame,
                 progress: Callable[[int], None] | None = None) -> Violation | None:
    """Steps 2-4 in one read of the events, a group of commits at a time, in seq order.

    Two threads load and hash the next groups (Parquet decoding, sorting and SHA-256 all
    release the GIL) while this one links the chain and checks the envelope, carrying what
    spans groups: the chain tip, each stream's last version, the last recorded_at and a
    64-bit hash of every event_id.
    """
    chain = _Chain(log, head)
    envelope = _Envelope()
    for group in _loaded_groups(log, commits.rows(named=True)):
        violation = (group.unreadable or chain.check(group) or envelope.check(group.events)
                     or next(filter(None, (_check_metadata(c, group.events) for c in group.commits)), None))
        if violation is not None:
            return violation
        if progress is not None:
            progress(group.events.height)
    return chain.finish() or envelope.finish(log, head)


@dataclass
class _Group:
    """Consecutive commits read together: their events in seq order and each commit's digest."""

    commits: list[dict[str, Any]]
    events: pl.DataFrame
    digests: dict[int, str]
    broken: Violation | None  # the first seq missing or twice in the group's range, if any
    unreadable: Violation | None = None  # a data file of the group could not be read at all


def _loaded_groups(log: VerifiedLog, commits: list[dict[str, Any]]) -> Iterator[_Group]:
    """Groups in order, loaded two ahead on worker threads (bounded memory: about three groups)."""
    files = log.storage.files()
    stored = {c: t for c, t in log.storage.columns().items() if c != PARTITION_COLUMN}
    columns = {v.version: v.schema.columns() for v in log.schema_history.versions}
    load = functools.partial(_load_group, log.storage.path, files, stored, columns)
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
                columns: dict[int, dict[str, pl.DataType]], commits: list[dict[str, Any]]) -> _Group:
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
    return _Group(commits, envelope, digests, broken)


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

    def check(self, group: _Group) -> Violation | None:
        for commit in group.commits:
            violation = self._check_commit(commit, group)
            if violation is not None:
                return violation
            self._previous, self._expected_first = commit["hash"], commit["last_seq"] + 1
        return None

    def _check_commit(self, commit: dict[str, Any], group: _Group) -> Violation | None:
        version, first, last = commit["version"], commit["first_seq"], commit["last_seq"]
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
        broken = group.broken
        if broken is not None and broken.seq is not None and broken.seq <= last:
            return Violation(broken.check, f"{broken.message}; commit {version} holds seq {first}..{last}",
                             version=version, seq=broken.seq)
        digest = group.digests[version]
        if digest != commit["events_hash"]:
            return Violation("hash chain", "stored events differ from what was committed (event hash mismatch)",
                             version=version, seq=first)
        if commit_hash(self._previous, first, last, digest) != commit["hash"]:
            return Violation("hash chain", "commit hash mismatch", version=version, seq=first)
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

    def __init__(self) -> None:
        self._streams = pl.DataFrame(schema={"stream_id": pl.String, "base": pl.Int64})
        self._last_recorded: Any = None
        self._id_hashes: list[pl.Series] = []

    def check(self, events: pl.DataFrame) -> Violation | None:
        checked = (
            events.with_columns(
                rank=pl.int_range(1, pl.len() + 1, dtype=pl.Int64).over("stream_id"),
                back_in_time=pl.col("recorded_at") < pl.col("recorded_at").shift(1, fill_value=self._last_recorded),
            )
            .join(self._streams, on="stream_id", how="left", maintain_order="left")
            .with_columns(expected=pl.col("rank") + pl.col("base").fill_null(0))
        )
        bad = checked.filter((pl.col("stream_version") != pl.col("expected")) | pl.col("back_in_time")).head(1)
        if bad.height:
            return self._violation(bad.row(0, named=True))
        advanced = checked.group_by("stream_id").agg(pl.col("expected").max().alias("base"))
        self._streams = pl.concat([self._streams.join(advanced, on="stream_id", how="anti"), advanced])
        if events.height:
            self._last_recorded = events.get_column("recorded_at")[-1]
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
        """event_id unique: 64-bit hashes first; a repeated hash is then checked on the ids themselves."""
        if not self._id_hashes:
            return None
        hashes = pl.concat(self._id_hashes)
        self._id_hashes = []
        if hashes.n_unique() == hashes.len():
            return None
        suspects = hashes.filter(hashes.is_duplicated()).unique().implode()
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
