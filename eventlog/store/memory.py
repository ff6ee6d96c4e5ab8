"""An events store in memory: the reference model of ``EventStore``.

It keeps every version as a tuple of immutable "files" (one per commit and partition
day, as Delta writes them) and answers every question by looking at them directly, so
that it is obviously right. It is for tests and for reading the protocol by example,
not for speed: nothing outlives the process.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Callable
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa

from eventlog.core.schema import PARTITION_COLUMN
from eventlog.errors import CommitError
from eventlog.store.base import FILES_PER_DAY, META_PREFIX, MIN_FILES, CommitFileProblem, FileCover, Rows


@dataclass(frozen=True)
class _File:
    path: str
    events: pl.DataFrame  # the columns stored when it was written, partition column included

    @property
    def day(self) -> dt.date:
        return self.events.get_column(PARTITION_COLUMN)[0]

    @property
    def seqs(self) -> tuple[int, int]:
        seq = self.events.get_column("seq")
        return int(seq.min()), int(seq.max())  # type: ignore[arg-type]


@dataclass(frozen=True)
class _Version:
    files: tuple[_File, ...]
    columns: dict[str, pl.DataType]
    transactions: dict[str, int]
    entry: dict[str, Any]  # its history entry


class MemoryEvents:
    """A versioned table of events held in this process; ``path`` only names it."""

    def __init__(self, path: Path, columns: dict[str, pl.DataType]) -> None:
        self.path = path
        self.appended_bytes = 0  # in memory: no data files
        self._id = str(uuid.uuid4())
        self._versions = [_Version((), dict(columns), {}, _entry(0, "CREATE TABLE", {"operation": "create"}))]

    @classmethod
    def create(cls, path: Path, schema: pa.Schema) -> MemoryEvents:
        return cls(path, dict(pl.DataFrame(pa.Table.from_batches([], schema=schema)).schema))

    # --- state -------------------------------------------------------------------------

    def refresh(self) -> None:
        """Nothing to catch up with: no other process can commit here."""

    @property
    def version(self) -> int:
        return len(self._versions) - 1

    @property
    def _now(self) -> _Version:
        return self._versions[-1]

    def table_id(self) -> str:
        return self._id

    def columns(self) -> dict[str, pl.DataType]:
        return dict(self._now.columns)

    def files(self) -> pl.DataFrame:
        columns = self.columns()
        rows = [
            {"path": f.path, "size_bytes": int(f.events.estimated_size()), "rows": f.events.height,
             "min_seq": f.seqs[0], "max_seq": f.seqs[1], "max_recorded_at": f.events.get_column("recorded_at").max(),
             "day": f.day}
            for f in self._now.files
        ]
        schema = {"path": pl.String(), "size_bytes": pl.Int64(), "rows": pl.Int64(), "min_seq": pl.Int64(),
                  "max_seq": pl.Int64(), "max_recorded_at": columns["recorded_at"], "day": columns[PARTITION_COLUMN]}
        return pl.DataFrame(rows, schema=schema)

    def files_covering(self, *, after: int, cut: int, day_max: dt.date | None = None) -> FileCover:
        if cut <= after:
            return FileCover([], True)
        chosen = [
            f for f in self._now.files
            if f.seqs[1] > after and f.seqs[0] <= cut and (day_max is None or f.day <= day_max)
        ]
        inside = all(after < f.seqs[0] and f.seqs[1] <= cut for f in chosen)
        return FileCover([str(self.path / f.path) for f in chosen], inside)

    def head_and_last_recorded(self) -> tuple[int, dt.datetime | None]:
        events = self.scan().collect()
        if events.height == 0:
            return 0, None
        return int(events.get_column("seq").max()), events.get_column("recorded_at").max()  # type: ignore[arg-type,return-value]

    def history(self, limit: int | None = None) -> list[dict[str, Any]]:
        newest_first = [dict(v.entry) for v in reversed(self._versions)]
        return newest_first if limit is None else newest_first[:limit]

    def transaction_version(self, app_id: str) -> int | None:
        return self._now.transactions.get(app_id)

    def check_commit_files(self) -> CommitFileProblem | None:
        return None  # no commit files to damage

    # --- reads -------------------------------------------------------------------------

    def scan(self, *, after: int = 0, cut: int | None = None) -> pl.LazyFrame:
        files = [f for f in self._now.files if f.seqs[1] > after and (cut is None or f.seqs[0] <= cut)]
        frames = [self._with_all_columns(f) for f in files]
        lf = pl.concat(frames).lazy() if frames else pl.LazyFrame(schema=self.columns())
        if after:
            lf = lf.filter(pl.col("seq") > after)
        return lf if cut is None else lf.filter(pl.col("seq") <= cut)

    # --- writes ------------------------------------------------------------------------

    def append(self, data: Rows, *, metadata: dict[str, str] | Callable[[], dict[str, str]],
               transactions: dict[str, int]) -> int:
        events = pl.DataFrame(data.slice(0, data.num_rows))
        metadata = metadata() if callable(metadata) else metadata
        if dict(events.schema) != self.columns():
            raise CommitError(f"the batch's columns {dict(events.schema)} are not the table's {self.columns()}; "
                              "nothing was committed")
        version = self.version + 1
        days = events.partition_by(PARTITION_COLUMN, maintain_order=True)
        added = tuple(_File(f"{PARTITION_COLUMN}={d.item(0, PARTITION_COLUMN)}/part-{version:05d}-{i}.arrow", d)
                      for i, d in enumerate(days) if d.height)
        self._commit(dataclasses.replace(
            self._now, files=self._now.files + added, transactions={**self._now.transactions, **transactions},
            entry=_entry(version, "WRITE", metadata)))
        return version

    def add_columns(self, columns: dict[str, pl.DataType], *, metadata: dict[str, str]) -> int:
        # After every stored column, the partition column too: where Delta puts them.
        new = {c: t for c, t in columns.items() if c not in self._now.columns}
        self._commit(dataclasses.replace(self._now, columns={**self._now.columns, **new},
                                         entry=_entry(self.version + 1, "ADD COLUMN", metadata)))
        return self.version

    def fragmented(self) -> bool:
        return len(self._now.files) > max(FILES_PER_DAY * len({f.day for f in self._now.files}), MIN_FILES)

    def compact(self, *, target_size: int | None = None, budget: int | None = None) -> dict[str, Any]:
        """One file per day, in seq order (``target_size`` and ``budget`` are ignored: the files are in memory).

        Like Delta, it commits nothing when no day has more than one file.
        """
        by_day: dict[dt.date, list[_File]] = {}
        for f in self._now.files:
            by_day.setdefault(f.day, []).append(f)
        version = self.version + 1
        kept: list[_File] = []
        removed = added = 0
        for day, files in by_day.items():
            if len(files) == 1:
                kept.extend(files)
                continue
            merged = pl.concat([self._with_all_columns(f) for f in files]).sort("seq")
            kept.append(_File(f"{PARTITION_COLUMN}={day}/part-{version:05d}-0.arrow", merged))
            removed, added = removed + len(files), added + 1
        if removed:
            self._commit(dataclasses.replace(self._now, files=tuple(kept),
                                             entry=_entry(version, "OPTIMIZE", {"operation": "compact"})))
        return {"numFilesAdded": added, "numFilesRemoved": removed}

    def vacuum(self, *, retention_hours: float, dry_run: bool) -> list[str]:
        """Nothing to delete: superseded files are dropped with the versions that held them."""
        return []

    def _with_all_columns(self, file: _File) -> pl.DataFrame:
        return file.events.select(pl.col(c) if c in file.events.columns else pl.lit(None, dtype=t).alias(c)
                                  for c, t in self.columns().items())

    def _commit(self, version: _Version) -> None:
        self._versions.append(version)


def _entry(version: int, operation: str, metadata: dict[str, str]) -> dict[str, Any]:
    return {"version": version, "timestamp": int(time.time() * 1000), "operation": operation,
            **{META_PREFIX + k: v for k, v in metadata.items()}}
