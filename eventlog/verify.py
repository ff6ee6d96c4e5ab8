"""``verify``: recompute the hash chain and check the log's invariants; report the first violation.

What is checked, in this order (the first failure is reported, with commit, seq and file):

1. every data file the current Delta version lists exists and is readable;
2. the hash chain: each append commit's recorded previous hash is the hash of the append
   before it, its event hash matches the events now stored for its seq range (the stored
   columns of the schema version it was committed under), and its commit hash matches (see
   ``eventlog._chain`` for the canonical encoding and how it treats evolved schemas);
3. seq is gapless from 1 to the head; each file's seq range matches its Delta statistics
   and its partition matches the date of its events;
4. stream_version is gapless from 1 in seq order within every stream; event_id is unique;
   recorded_at never decreases in seq;
5. domain checks a caller adds (the inventory: no stock below zero at any point; snapshots
   and projections equal to a recomputation from the log).

All checks are vectorised over the log; the hash chain reads the events in seq order once.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import polars as pl

from eventlog._chain import GENESIS, commit_hash, events_hash
from eventlog.errors import IntegrityError
from eventlog.schema import PARTITION_COLUMN

if TYPE_CHECKING:
    from eventlog.log import EventLog

#: Hash the events of this many seqs at a time (bounded memory on large logs).
_CHUNK = 2_000_000


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


Check = Callable[["EventLog", int], Violation | None]


def verify(log: EventLog, *, extra_checks: Iterable[tuple[str, Check]] = ()) -> VerifyReport:
    """Check ``log`` and return a report; ``report.ok`` is False at the first violation."""
    head = log.head()
    commits = append_commits(log)
    report = VerifyReport(head=head, version=log.version, commits=len(commits))
    checks: list[tuple[str, Check]] = [
        ("files", _check_files),
        ("hash chain", lambda lg, h: _check_chain(lg, h, commits)),
        ("seq", _check_seq),
        ("streams, ids and recorded_at", _check_envelope),
        *extra_checks,
    ]
    for name, check in checks:
        report.checks.append(name)
        try:
            violation = check(log, head)
        except FileNotFoundError as exc:
            violation = Violation("files", f"a data file is missing: {exc}", file=_missing_name(exc))
        if violation is not None:
            report.violation = violation
            break
    return report


def append_commits(log: EventLog) -> pl.DataFrame:
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


def _check_files(log: EventLog, head: int) -> Violation | None:
    """Every listed file exists with the size the Delta log recorded (a rewritten file differs)."""
    root = log._events.path
    for path, size in log._events.files().select("path", "size_bytes").iter_rows():
        local = root / path
        if not local.exists():
            return Violation("files", "a data file listed by the Delta log is missing", version=log.version, file=path)
        actual = local.stat().st_size
        if actual != size:
            return Violation("files", f"data file has {actual} bytes, the Delta log recorded {size}: it was changed",
                             version=log.version, file=path)
    return None


def _check_chain(log: EventLog, head: int, commits: pl.DataFrame) -> Violation | None:
    previous: str | None = None
    expected_first = 1
    for chunk in _chunks(commits.rows(named=True)):
        # Stored values, as committed: read rules of later schema versions play no part.
        events = log._scan_raw(chunk[-1]["last_seq"], after=chunk[0]["first_seq"] - 1, upcast=False).sort("seq").collect()
        for commit in chunk:
            schema = log._history.schema_of(commit["schema_version"])
            expected = max(v.version for v in log._history.versions if v.first_seq <= commit["first_seq"])
            if schema is None or commit["schema_version"] != expected:
                return Violation("hash chain", f"commit names schema version {commit['schema_version']}, but by "
                                 f"eventlog.json's schema history its events were committed under version {expected}",
                                 version=commit["version"], seq=commit["first_seq"])
            violation = _check_commit(log, commit, events, previous, expected_first, schema.columns())
            if violation is not None:
                return violation
            previous, expected_first = commit["hash"], commit["last_seq"] + 1
    if expected_first - 1 != head:
        return Violation("hash chain", f"commits cover seq 1..{expected_first - 1} but the head is {head}",
                         seq=expected_first, file=_file_of(log, expected_first))
    return None


def _check_commit(log: EventLog, commit: dict[str, Any], events: pl.DataFrame, previous: str | None,
                  expected_first: int, columns: dict[str, pl.DataType]) -> Violation | None:
    version, first, last = commit["version"], commit["first_seq"], commit["last_seq"]
    if first != expected_first:
        return Violation("hash chain", f"commit starts at seq {first}, expected {expected_first}", version=version,
                         seq=expected_first)
    if commit["hash"] is None:
        return Violation("hash chain", "append commit carries no hash", version=version, seq=first)
    if (commit["prev_hash"] or GENESIS) != (previous or GENESIS):
        return Violation("hash chain", "previous-commit hash does not match the commit before it", version=version, seq=first)
    mine = events.filter(pl.col("seq").is_between(first, last))
    if mine.height != last - first + 1:
        missing = _first_missing(mine, first, last)
        return Violation("hash chain", "events of this commit are missing", version=version, seq=missing,
                         file=_file_of(log, missing))
    digest = events_hash(mine, columns)
    if digest != commit["events_hash"]:
        return Violation("hash chain", "stored events differ from what was committed (event hash mismatch)",
                         version=version, seq=first, file=_file_of(log, first))
    if commit_hash(previous, first, last, digest) != commit["hash"]:
        return Violation("hash chain", "commit hash mismatch", version=version, seq=first)
    return None


def _chunks(rows: list[dict[str, Any]]) -> Iterable[list[dict[str, Any]]]:
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


def _check_seq(log: EventLog, head: int) -> Violation | None:
    stats = log._scan_raw(head).select(
        pl.len().alias("n"), pl.col("seq").min().alias("lo"), pl.col("seq").max().alias("hi"),
        pl.col("seq").n_unique().alias("distinct"),
    ).collect().row(0, named=True)
    if head and (stats["n"] != head or stats["lo"] != 1 or stats["hi"] != head or stats["distinct"] != head):
        seqs = log._scan_raw(head).select("seq").collect().get_column("seq").sort()
        missing = _first_missing(seqs.to_frame(), 1, head)
        dup = seqs.filter(seqs.is_duplicated()).min()
        seq = missing if missing is not None else dup
        what = "missing" if missing is not None else "duplicated"
        return Violation("seq", f"seq {seq} is {what} (seq must run 1..{head} exactly once)", seq=seq, file=_file_of(log, seq))
    return _check_file_stats(log)


def _check_file_stats(log: EventLog) -> Violation | None:
    """Each file's content must match what the Delta log says of it: seq range and partition."""
    files = log._events.files()
    if files.height == 0:
        return None
    root = str(log._events.path)
    listed = files.select(
        (pl.lit(root + "/") + pl.col("path")).alias("file"), "path",
        pl.col("min.seq").alias("lo"), pl.col("max.seq").alias("hi"), pl.col(f"partition.{PARTITION_COLUMN}").alias("day"),
    )
    actual = (
        # extra_columns: files written after a schema evolution have columns older files lack.
        pl.scan_parquet(listed["file"].to_list(), hive_partitioning=False, include_file_paths="file",
                        extra_columns="ignore")
        .group_by("file")
        .agg(pl.col("seq").min().alias("real_lo"), pl.col("seq").max().alias("real_hi"),
             pl.col("occurred_at").dt.date().min().alias("first_day"), pl.col("occurred_at").dt.date().max().alias("last_day"))
        .collect()
    )
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


def _check_envelope(log: EventLog, head: int) -> Violation | None:
    events = log._scan_raw(head).select("seq", "stream_id", "stream_version", "event_id", "recorded_at")
    bad = (
        events.sort("seq")
        .with_columns(
            expected=pl.int_range(1, pl.len() + 1).over("stream_id"),
            dup_id=pl.col("event_id").is_duplicated(),
            back_in_time=pl.col("recorded_at") < pl.col("recorded_at").shift(1),
        )
        .filter((pl.col("stream_version") != pl.col("expected")) | pl.col("dup_id") | pl.col("back_in_time"))
        .head(1)
        .collect()
    )
    if bad.height == 0:
        return None
    row = bad.row(0, named=True)
    seq = row["seq"]
    if row["stream_version"] != row["expected"]:
        message = f"stream {row['stream_id']!r} has version {row['stream_version']} where {row['expected']} was expected"
        return Violation("streams", message, seq=seq, file=_file_of(log, seq))
    if row["dup_id"]:
        return Violation("event ids", f"event_id {row['event_id']!r} occurs more than once", seq=seq, file=_file_of(log, seq))
    return Violation("recorded_at", f"recorded_at {row['recorded_at']} is earlier than the event before it", seq=seq,
                     file=_file_of(log, seq))


# --- locating --------------------------------------------------------------------------------


def _first_missing(events: pl.DataFrame, first: int, last: int) -> int | None:
    have = events.get_column("seq").sort()
    expected = pl.int_range(first, last + 1, eager=True).alias("seq")
    gaps = expected.filter(~expected.is_in(have.implode()))
    return int(gaps[0]) if gaps.len() else None


def _file_of(log: EventLog, seq: int | None) -> str | None:
    """The data file whose Delta statistics cover ``seq`` (or, for a gap, the one after it)."""
    if seq is None:
        return None
    files = log._events.files()
    if files.height == 0:
        return None
    hit = files.filter((pl.col("min.seq") <= seq) & (pl.col("max.seq") >= seq))
    if hit.height == 0:
        hit = files.filter(pl.col("min.seq") > seq).sort("min.seq")
    return hit.get_column("path")[0] if hit.height else None


def _missing_name(exc: FileNotFoundError) -> str | None:
    return exc.filename if isinstance(exc.filename, str) else None
