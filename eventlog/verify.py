"""``verify``: recompute the hash chain and check the log's invariants; report the first violation.

What is checked (the first failure is reported, with commit, seq and file):

1. every commit file of the table holds its commit information (the storage reads an
   emptied one as an empty commit); every data file the current version lists exists
   with the size it was written with;
2. in one read of the events, a group of commits at a time in seq order:
   the hash chain — each append commit's recorded previous hash is the hash of the append
   before it, its event hash matches the events now stored for its seq range (the stored
   columns of the schema version it was committed under) and its commit hash matches (see
   ``eventlog.core.chain`` for the canonical encoding and how it treats evolved schemas);
   seq runs from 1 to the head exactly once; stream_version is gapless from 1 in seq order
   within every stream; recorded_at never decreases in seq; event_id is unique (64-bit
   hashes of the ids are collected on the way and any repeat confirmed on the ids);
3. each file's seq range and partition day match its Delta statistics;
4. domain checks a caller adds (the inventory: no stock below zero at any point; snapshots
   and projections equal to a recomputation from the log).

Within a group, chain and seq problems are reported before envelope ones; a repeated
event_id is reported after the whole log was read. Everything is vectorised; while the
main thread checks one group, two worker threads read, sort and hash the next ones.
"""

from __future__ import annotations

import functools
import itertools
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import polars as pl

from eventlog.core.chain import GENESIS, EncodedEvents, commit_hash
from eventlog.core.schema import PARTITION_COLUMN
from eventlog.errors import IntegrityError
from eventlog.store.delta import first_unreadable

if TYPE_CHECKING:
    from eventlog.core.evolution import SchemaHistory
    from eventlog.store.base import EventStore


class VerifiedLog(Protocol):
    """What verify reads of a log: it sits below ``EventLog`` (which calls it), so it names
    the methods it needs instead of importing the class."""

    path: Path
    storage: EventStore
    schema_history: SchemaHistory

    @property
    def version(self) -> int: ...

    def head(self) -> int: ...

    def history(self, limit: int | None = None) -> list[dict[str, Any]]: ...

    def scan_range(self, cut: int, *, after: int = 0, streams: list[str] | None = None,
                   event_types: list[str] | None = None, upcast: bool = True) -> pl.LazyFrame: ...

#: Read and hash the events of about this many seqs at a time (bounded memory on large logs).
_CHUNK = 1_000_000
#: Groups loaded and hashed side by side while the main thread checks the one before.
_THREADS = 2


@dataclass(frozen=True)
class Violation:
    """One broken promise, located as precisely as the check allows."""

    check: str
    message: str
    version: int | None = None
    seq: int | None = None
    file: str | None = None

    def __str__(self) -> str:
        where = [f"{k} {v}" for k, v in (("commit", self.version), ("seq", self.seq), ("file", self.file)) if v is not None]
        return f"{self.check}: {self.message}" + (f" ({', '.join(where)})" if where else "")


@dataclass
class VerifyReport:
    """The outcome of ``verify``: ``ok`` and the first violation, plus what was checked."""

    head: int
    version: int
    commits: int
    checks: list[str] = field(default_factory=list)
    violation: Violation | None = None

    @property
    def ok(self) -> bool:
        return self.violation is None

    def raise_if_failed(self) -> VerifyReport:
        if self.violation is not None:
            raise IntegrityError(str(self.violation))
        return self

    def __str__(self) -> str:
        state = "OK" if self.ok else f"FAILED — {self.violation}"
        return f"verify {state}: head {self.head}, Delta version {self.version}, {self.commits} append commits; checked {', '.join(self.checks)}"


Check = Callable[[VerifiedLog, int], Violation | None]


def verify(log: VerifiedLog, *, extra_checks: Iterable[tuple[str, Check]] = (),
           progress: Callable[[int], None] | None = None) -> VerifyReport:
    """Check ``log`` and return a report; ``report.ok`` is False at the first violation.

    ``progress`` is called with the number of events checked after each group (for a
    progress bar: a verify of 100M events takes about 40 s here).
    """
    head = log.head()
    commits = append_commits(log)
    report = VerifyReport(head=head, version=log.version, commits=len(commits))
    steps: list[tuple[tuple[str, ...], Check]] = [
        (("delta log",), _check_commit_files),
        (("files",), _check_files),
        (_ONE_PASS, lambda lg, h: _check_events(lg, h, commits, progress)),
        (("file statistics",), _check_file_stats),
        *(((name,), check) for name, check in extra_checks),
    ]
    for names, check in steps:
        report.checks.extend(names)
        try:
            violation = check(log, head)
        except FileNotFoundError as exc:
            violation = Violation("files", f"a data file is missing: {exc}", file=_missing_name(exc))
        if violation is not None:
            report.violation = _located(log, violation, commits)
            break
    return report


#: The checks made in the one read of the events (steps 2-4 of the module docstring).
_ONE_PASS = ("hash chain", "seq", "streams", "event ids", "recorded_at")


def append_commits(log: VerifiedLog) -> pl.DataFrame:
    """One row per append commit, oldest first: version, first/last seq and the chain hashes."""
    rows = []
    for entry in log.history():
        if entry.get("eventlog.operation") != "append":
            continue
        rows.append({
            "version": int(entry["version"]),
            "first_seq": int(entry["eventlog.first_seq"]),
            "last_seq": int(entry["eventlog.last_seq"]),
            "prev_hash": entry.get("eventlog.prev_hash"),
            "events_hash": entry.get("eventlog.events_hash"),
            "hash": entry.get("eventlog.hash"),
            "schema_version": int(entry.get("eventlog.schema_version", 1)),
        })
    schema = {"version": pl.Int64, "first_seq": pl.Int64, "last_seq": pl.Int64,
              "prev_hash": pl.String, "events_hash": pl.String, "hash": pl.String, "schema_version": pl.Int64}
    return pl.DataFrame(rows, schema=schema).sort("version")


# --- checks ----------------------------------------------------------------------------------


def _check_files(log: VerifiedLog, head: int) -> Violation | None:
    """Every listed file exists with the size the Delta log recorded (a rewritten file differs)."""
    root = log.storage.path
    for path, size in log.storage.files().select("path", "size_bytes").iter_rows():
        local = root / path
        if not local.exists():
            return Violation("files", "a data file listed by the Delta log is missing", version=log.version, file=path)
        actual = local.stat().st_size
        if actual != size:
            return Violation("files", f"data file has {actual} bytes, the Delta log recorded {size}: it was changed",
                             version=log.version, file=path)
    return None


def _check_commit_files(log: VerifiedLog, head: int) -> Violation | None:
    """Every commit file holds its commit: an emptied one would hide its events without a gap."""
    problem = log.storage.check_commit_files()
    if problem is None:
        return None
    return Violation("delta log", f"commit file {problem.problem}: it was emptied or rewritten",
                     version=problem.version, file=problem.file)


def _check_events(log: VerifiedLog, head: int, commits: pl.DataFrame,
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
        violation = group.unreadable or chain.check(group) or envelope.check(group.events)
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
        return _Group(commits, pl.DataFrame(), {}, None, unreadable=_unreadable(root, paths, exc))
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


def _unreadable(root: Path, paths: list[str], exc: Exception) -> Violation:
    """Name the data file behind a read error (a file changed in place, its size kept)."""
    found = first_unreadable(paths)
    if found is None:
        raise exc  # not a damaged file: a bug, not a verdict on the store
    path, why = found
    return Violation("files", f"a data file cannot be read: {why}", file=str(Path(path).relative_to(root)))


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


def _located(log: VerifiedLog, violation: Violation, commits: pl.DataFrame) -> Violation:
    """Name the append commit and the data file of the violation's seq when the check did not."""
    seq = violation.seq
    if seq is None:
        return violation
    if violation.version is None:
        holding = commits.filter((pl.col("first_seq") <= seq) & (pl.col("last_seq") >= seq))
        if holding.height:
            violation = replace(violation, version=int(holding.item(0, "version")))
    if violation.file is None:
        violation = replace(violation, file=_file_of(log, seq))
    return violation


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


def _check_file_stats(log: VerifiedLog, head: int) -> Violation | None:
    """Each file's content must match what the Delta log says of it: seq range and partition.

    The one pass above selects files by these statistics, so a file whose statistics lie
    (or that holds seq beyond the head) is found here.
    """
    files = log.storage.files()
    if files.height == 0:
        return None
    root = str(log.storage.path)
    listed = files.select(
        (pl.lit(root + "/") + pl.col("path")).alias("file"), "path",
        pl.col("min_seq").alias("lo"), pl.col("max_seq").alias("hi"), "day",
    )
    outside = listed.filter((pl.col("hi") > head) | (pl.col("lo") < 1)).sort("lo")
    if outside.height:
        row = outside.row(0, named=True)
        return Violation("seq", f"file holds seq {row['lo']}..{row['hi']}, outside 1..{head} (the head)",
                         seq=row["lo"] if row["lo"] < 1 else row["hi"], file=row["path"])
    try:
        actual = (
            # extra_columns: files written after a schema evolution have columns older files lack.
            pl.scan_parquet(listed["file"].to_list(), hive_partitioning=False, include_file_paths="file",
                            extra_columns="ignore")
            .group_by("file")
            .agg(pl.col("seq").min().alias("real_lo"), pl.col("seq").max().alias("real_hi"),
                 pl.col("occurred_at").dt.date().min().alias("first_day"),
                 pl.col("occurred_at").dt.date().max().alias("last_day"))
            .collect()
        )
    except (pl.exceptions.PolarsError, OSError) as exc:
        return _unreadable(log.storage.path, listed.get_column("file").to_list(), exc)
    wrong = (
        listed.join(actual, on="file", how="left")
        .filter((pl.col("lo") != pl.col("real_lo")) | (pl.col("hi") != pl.col("real_hi"))
                | (pl.col("first_day") != pl.col("day")) | (pl.col("last_day") != pl.col("day")))
        .sort("lo")
    )
    if wrong.height == 0:
        return None
    row = wrong.row(0, named=True)
    if (row["lo"], row["hi"]) != (row["real_lo"], row["real_hi"]):
        return Violation("seq", f"file holds seq {row['real_lo']}..{row['real_hi']} but the Delta log says "
                         f"{row['lo']}..{row['hi']}", seq=row["real_lo"], file=row["path"])
    return Violation("seq", f"file holds events of {row['first_day']}..{row['last_day']}, not of its partition day "
                     f"{row['day']}", seq=row["lo"], file=row["path"])


# --- locating --------------------------------------------------------------------------------


def _file_of(log: VerifiedLog, seq: int | None) -> str | None:
    """The data file whose Delta statistics cover ``seq`` (or, for a gap, the one after it)."""
    if seq is None:
        return None
    files = log.storage.files()
    if files.height == 0:
        return None
    hit = files.filter((pl.col("min_seq") <= seq) & (pl.col("max_seq") >= seq))
    if hit.height == 0:
        hit = files.filter(pl.col("min_seq") > seq).sort("min_seq")
    return hit.get_column("path")[0] if hit.height else None


def _missing_name(exc: FileNotFoundError) -> str | None:
    return exc.filename if isinstance(exc.filename, str) else None
