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
   hashes of the ids are collected on the way and any repeat confirmed on the ids); each
   commit's recorded_at metadata is its events' recorded_at;
   with ``expect``, the commit of that hash is still in the log (a truncated tail);
3. each file's seq range and partition day match its Delta statistics;
4. domain checks a caller adds (the inventory: no stock below zero at any point; snapshots
   and projections equal to a recomputation from the log).

Within a group, chain and seq problems are reported before envelope ones; a repeated
event_id is reported after the whole log was read. Everything is vectorised; while the
main thread checks one group, two worker threads read, sort and hash the next ones.

A passing verify leaves a seal (``eventlog.verify.seal``): the next one recomputes only the
events after it, once the bytes of every file it covers are found unchanged. ``deep=True``
(and ``expect``) recompute everything.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace

import polars as pl

from eventlog.errors import ValidationError
from eventlog.verify import seal as seals
from eventlog.verify.events import GroupReader, check_events
from eventlog.verify.files import check_commit_files, check_file_stats, check_files, file_of
from eventlog.verify.report import Check, VerifiedLog, VerifyReport, Violation
from eventlog.verify.seal import Carry


def verify(log: VerifiedLog, *, deep: bool = False, extra_checks: Iterable[tuple[str, Check]] = (),
           readers: Sequence[GroupReader] = (), progress: Callable[[int], None] | None = None,
           expect: str | None = None) -> VerifyReport:
    """Check ``log`` and return a report; ``report.ok`` is False at the first violation.

    ``deep`` recomputes every value (the whole hash chain from the stored events). Without
    it, the events a previous verify checked are not recomputed when its seal still
    describes the log and every data file it covered still has the same bytes (hashed
    again now, at I/O speed): see ``eventlog.verify.seal``. Either way every violation is
    reported by the same check, at the same place.

    ``progress`` is called with the number of events checked after each group (for a
    progress bar: a deep verify of 100M events takes minutes here).

    ``expect`` is a commit hash published earlier (``EventLog.head_hash()``, ``eventlog
    head``): the log must still hold that commit. With the chain intact up to the head,
    that proves every event up to it is there as committed, so ``expect`` implies ``deep``
    (a seal is a file in the store, an anchor is not). Without it, deleting the newest
    commit files leaves a shorter log that verifies: nothing else records that they existed.

    ``readers`` ride on the one read of the events (the inventory's recomputations).

    Raises:
        ValidationError: ``expect`` is not a commit hash (64 hex digits).
    """
    if expect is not None:
        expect = check_anchor(expect)
        deep = True
    head = log.head()
    commits = append_commits(log)
    seal = None if deep else seals.load(log, head, commits)
    start = seal.carry.head if seal is not None else 0
    report = VerifyReport(head=head, version=log.version, commits=len(commits), deep=deep, sealed=start)
    carried: list[Carry] = []

    def one_pass(lg: VerifiedLog, h: int) -> Violation | None:
        for reader in readers:
            reader.begin(seal.carry if seal is not None else None, h, commits)
        violation = check_events(lg, h, commits, progress, sealed=seal.carry if seal else None, readers=readers,
                                 carried=carried)
        for reader in readers if carried else ():
            reader.end(carried[0])
        return violation

    skip = set(seal.files.get_column("path").to_list()) if seal is not None else set()
    anchor: list[tuple[tuple[str, ...], Check]] = (
        [(("anchor",), lambda lg, h: _check_anchor(commits, h, expect))] if expect is not None else [])
    steps: list[tuple[tuple[str, ...], Check]] = [
        (("delta log",), check_commit_files),
        (("files",), check_files),
        (_ONE_PASS, one_pass),
        *anchor,
        (("file statistics",), lambda lg, h: check_file_stats(lg, h, skip=skip)),
    ]
    if _run(log, steps, report, commits) and carried and carried[0].head > start:
        seals.save(log, commits, carried[0], seal.files if seal is not None else None)
    if report.ok:
        _run(log, [((name,), check) for name, check in extra_checks], report, commits)
    return report


def _run(log: VerifiedLog, steps: list[tuple[tuple[str, ...], Check]], report: VerifyReport,
         commits: pl.DataFrame) -> bool:
    """Run ``steps`` until the first violation (recorded in ``report``); whether all passed."""
    for names, check in steps:
        report.checks.extend(names)
        try:
            violation = check(log, report.head)
        except FileNotFoundError as exc:
            violation = Violation("files", f"a data file is missing: {exc}", file=_missing_name(exc))
        if violation is not None:
            report.violation = _located(log, violation, commits)
            return False
    return True


#: The checks made in the one read of the events (steps 2-4 of the module docstring).
_ONE_PASS = ("hash chain", "seq", "streams", "event ids", "recorded_at")


def append_commits(log: VerifiedLog) -> pl.DataFrame:
    """One row per append commit, oldest first: version, first/last seq and the chain hashes."""
    # A branch's first commits are its origin's, recorded at the fork: versions -n..-1 here.
    inherited = log.inherited_commits()
    rows = [{**c, "version": i - len(inherited)} for i, c in enumerate(inherited)]
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
            "recorded_at": entry.get("eventlog.recorded_at"),
        })
    schema = {"version": pl.Int64, "first_seq": pl.Int64, "last_seq": pl.Int64,
              "prev_hash": pl.String, "events_hash": pl.String, "hash": pl.String, "schema_version": pl.Int64,
              "recorded_at": pl.String}
    return pl.DataFrame(rows, schema=schema).sort("version")


def check_anchor(expect: object) -> str:
    """``expect`` as a commit hash (lower case), or a ValidationError saying what one looks like."""
    text = expect.strip().lower() if isinstance(expect, str) else None
    if text is None or len(text) != 64 or any(c not in "0123456789abcdef" for c in text):
        raise ValidationError(f"expect is a commit hash of 64 hex digits (from `eventlog head`), not {expect!r}",
                              field="expect")
    return text


def _check_anchor(commits: pl.DataFrame, head: int, expect: str) -> Violation | None:
    """The commit published as ``expect`` is still in the log (the chain up to it is checked before)."""
    if commits.filter(pl.col("hash") == expect).height:
        return None
    tip = commits.filter(pl.col("last_seq") == head)
    ends = f"seq {head} (commit hash {tip.item(0, 'hash')})" if tip.height and head else "no commit"
    return Violation(
        "anchor",
        f"the log holds no commit with hash {expect}: it ends at {ends}. The commits after that, up to the "
        "expected one, are missing (the tail was truncated or deleted), or the log was rewritten; restore the "
        "store from a backup",
        seq=head + 1 if head else None)


def _located(log: VerifiedLog, violation: Violation, commits: pl.DataFrame) -> Violation:
    """Name the append commit and the data file of the violation's seq when the check did not."""
    seq = violation.seq
    if seq is None:
        return violation
    if violation.version is not None and violation.version < 0:  # inherited: in the fork commit
        violation = replace(violation, version=0, message=violation.message + " (a commit inherited from the origin)")
    if violation.version is None:
        holding = commits.filter((pl.col("first_seq") <= seq) & (pl.col("last_seq") >= seq))
        if holding.height:
            violation = replace(violation, version=max(0, int(holding.item(0, "version"))))
    if violation.file is None:
        violation = replace(violation, file=file_of(log, seq))
    return violation


def _missing_name(exc: FileNotFoundError) -> str | None:
    return exc.filename if isinstance(exc.filename, str) else None


__all__ = ["Check", "GroupReader", "VerifiedLog", "VerifyReport", "Violation", "append_commits", "check_anchor", "verify"]
