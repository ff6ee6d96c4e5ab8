"""The checks of the data files against the Delta log: present, unchanged, statistics true."""

from __future__ import annotations

from pathlib import Path

import polars as pl

from eventlog.store.damage import first_unreadable
from eventlog.verify.report import VerifiedLog, Violation


def check_files(log: VerifiedLog, head: int) -> Violation | None:
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


def check_commit_files(log: VerifiedLog, head: int) -> Violation | None:
    """Every commit file holds its commit: an emptied one would hide its events without a gap."""
    problem = log.storage.check_commit_files()
    if problem is None:
        return None
    return Violation("delta log", f"commit file {problem.problem}: it was emptied or rewritten",
                     version=problem.version, file=problem.file)


def check_file_stats(log: VerifiedLog, head: int, *, skip: set[str] | frozenset[str] = frozenset()) -> Violation | None:
    """Each file's content must match what the Delta log says of it: seq range and partition.

    The one pass above selects files by these statistics, so a file whose statistics lie
    (or that holds seq beyond the head) is found here. ``skip``: files a seal vouches for
    (their bytes and listed statistics are those found true before).
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
    listed = listed.filter(~pl.col("path").is_in(list(skip)))
    if listed.height == 0:
        return None
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
        return unreadable(log.storage.path, listed.get_column("file").to_list(), exc)
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


def unreadable(root: Path, paths: list[str], exc: Exception) -> Violation:
    """Name the data file behind a read error (a file changed in place, its size kept)."""
    found = first_unreadable(paths)
    if found is None:
        raise exc  # not a damaged file: a bug, not a verdict on the store
    path, why = found
    return Violation("files", f"a data file cannot be read: {why}", file=str(Path(path).relative_to(root)))


def file_of(log: VerifiedLog, seq: int | None) -> str | None:
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
